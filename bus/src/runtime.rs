//! What every transport's consumer does the same way, so RabbitMQ, JetStream and the embedded
//! transport keep one contract: decode, run the handler (inside a transaction with the inbox
//! record when the group has a database), commit, and only then decide what the transport does
//! with the message: ack it, bring it back after a delay, or dead-letter it with a reason.

use std::future::Future;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use schemas::{AnyMessage, DecodeError, Envelope};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::BusError;
use crate::handler::{Context, Handled, Handler, HandlerError, Reply, ReplyBody};
use crate::inbox::{self, Claim};
use crate::metrics::QueueMetrics;
use crate::outbox::Publisher;
use crate::traces;

/// What the transport must do with a message once the processor is done with it.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Handled (or a duplicate of a handled message): ack it.
    Done {
        /// The handler's answer (or the stored one, for a duplicate).
        reply: Reply,
    },
    /// Failed, worth another attempt after `delay`.
    Retry {
        /// How long to wait.
        delay: Duration,
        /// What went wrong this time.
        reason: String,
    },
    /// Failed for good: to the dead-letter queue.
    DeadLetter {
        /// Short kind: `permanent`, `retries_exhausted`, or a decode error's kind.
        kind: String,
        /// What went wrong.
        reason: String,
    },
}

impl Verdict {
    /// The answer a waiting requester gets, when the verdict is final.
    pub fn reply_body(&self) -> Option<ReplyBody> {
        match self {
            Verdict::Done { reply } => Some(ReplyBody::Ok { data: reply.clone().unwrap_or(Value::Null) }),
            Verdict::Retry { .. } => None,
            Verdict::DeadLetter { kind, reason } => {
                Some(ReplyBody::Error { kind: kind.clone(), message: reason.clone() })
            }
        }
    }
}

/// Runs a consumer group's handler over messages, whatever transport brought them.
pub struct Processor {
    group: String,
    handler: Arc<dyn Handler>,
    /// When set, each message is handled in a transaction with its inbox record.
    database: Option<DatabaseConnection>,
    /// Delay before each retry; attempts = retries + 1.
    retry_delays: Vec<Duration>,
    /// Whether each message gets an inbox row (see [`Processor::without_inbox`]).
    inbox: bool,
    /// Where a group without inbox publishes what its handler hands back after commit, and how
    /// long it waits for a broker that is away.
    publisher: Option<(Publisher, Duration)>,
    metrics: QueueMetrics,
}

impl Processor {
    /// A processor for `group`.
    pub fn new(
        group: impl Into<String>,
        handler: Arc<dyn Handler>,
        database: Option<DatabaseConnection>,
        retry_delays: Vec<Duration>,
    ) -> Self {
        let group = group.into();
        let metrics = QueueMetrics::new(&schemas::routing::work_queue(&group));
        Self { group, handler, database, retry_delays, inbox: true, publisher: None, metrics }
    }

    /// Keeps no inbox rows: for a handler whose writes are idempotent by themselves (the
    /// telemetry ingest: newest reading wins, history and events keyed by the report), where an
    /// inbox row per message would be the largest table of all. Its messages get no reply.
    pub fn without_inbox(mut self) -> Self {
        self.inbox = false;
        self
    }

    /// Publishes, through `publisher`, what the handler hands back
    /// ([`Handler::handle_publishing`]) once its transaction committed, before the messages are
    /// acknowledged; for a group without inbox. A broker that is away is waited for up to
    /// `patience` (see [`publish_committed`]), which must stay under the time the transport
    /// gives a message before it hands it out again; past it the messages come back later,
    /// handled again (harmless: idempotent) and published again.
    pub fn publishing_through(mut self, publisher: Publisher, patience: Duration) -> Self {
        self.publisher = Some((publisher, patience));
        self
    }

    /// Carries out what a committed transaction handed back: publishes its messages, then runs
    /// its hand-offs.
    async fn after_commit(&self, handled: Handled) -> Result<(), HandlerError> {
        if !handled.publish.is_empty() {
            let Some((publisher, patience)) = &self.publisher else {
                // A handler bug, kept visible: the messages come back and end in the dead letters.
                return Err(HandlerError::Retryable("messages to publish after commit, but no publisher".into()));
            };
            publish_committed(publisher, &handled.publish, *patience)
                .await
                .map_err(|e| HandlerError::Retryable(format!("committed, but publishing after commit failed: {e}")))?;
        }
        handled.then.into_iter().for_each(|then| then());
        Ok(())
    }

    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// How many attempts a message gets.
    pub fn max_attempts(&self) -> u32 {
        u32::try_from(self.retry_delays.len()).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// A `tracing` span carrying the message id, correlation id, tenant and type through the handler.
    pub fn span(&self, decoded: &Result<Envelope<AnyMessage>, DecodeError>, attempt: u32) -> tracing::Span {
        match decoded {
            Ok(envelope) => tracing::info_span!(
                "message",
                group = %self.group,
                message_id = %envelope.id,
                correlation_id = %envelope.correlationid,
                tenant = %envelope.tenant,
                r#type = %envelope.type_name,
                attempt,
            ),
            Err(_) => tracing::info_span!("message", group = %self.group, attempt),
        }
    }

    /// The consumer span of a delivery taken from `from` (see [`crate::traces::process`]); the
    /// consumer runs [`Processor::process`] in it.
    pub fn hop(
        &self,
        from: traces::Destination<'_>,
        decoded: &Result<Envelope<AnyMessage>, DecodeError>,
    ) -> traces::Hop {
        traces::process(from, &self.group, decoded.as_ref().ok().map(Into::into))
    }

    /// The consumer span of a batch taken from `from`, linked to each message's trace; the
    /// consumer runs [`Processor::process_batch`] in it.
    pub fn batch_hop(
        &self,
        from: traces::Destination<'_>,
        messages: &[(Result<Envelope<AnyMessage>, DecodeError>, u32)],
    ) -> traces::Hop {
        traces::process_batch(from, &self.group, messages.iter().filter_map(|(m, _)| m.as_ref().ok().map(Into::into)))
    }

    /// Handles one delivery (`attempt` is 1-based) and says what to do with it.
    pub async fn process(&self, decoded: Result<Envelope<AnyMessage>, DecodeError>, attempt: u32) -> Verdict {
        tracing::trace!("received");
        let started = Instant::now();
        let hop = traces::current_hop();
        let verdict = match decoded {
            Err(error) => Verdict::DeadLetter { kind: error.kind().into(), reason: error.to_string() },
            Ok(envelope) => {
                let work = if self.database.is_some() { hop.child("transaction") } else { traces::Hop::default() };
                match work.wrap(self.invoke(&envelope, attempt)).await {
                    Ok(reply) => Verdict::Done { reply },
                    Err(error) => self.verdict_of_failure(error, attempt),
                }
            }
        };
        if let Verdict::DeadLetter { kind, reason } = &verdict {
            hop.fail(kind, reason.clone());
        }
        match &verdict {
            Verdict::Done { .. } => tracing::debug!("handled"),
            Verdict::Retry { delay, reason } => tracing::info!(?delay, %reason, "retrying later"),
            Verdict::DeadLetter { kind, reason } => tracing::warn!(%kind, %reason, "dead-lettered"),
        }
        self.metrics.record([&verdict], started.elapsed());
        verdict
    }

    /// What becomes of a message whose attempt `attempt` failed with `error`.
    fn verdict_of_failure(&self, error: HandlerError, attempt: u32) -> Verdict {
        match error {
            HandlerError::Retryable(reason) => match self.retry_delays.get(attempt.saturating_sub(1) as usize) {
                Some(delay) => Verdict::Retry { delay: *delay, reason },
                None => Verdict::DeadLetter {
                    kind: "retries_exhausted".into(),
                    reason: format!("gave up after {attempt} attempts: {reason}"),
                },
            },
            HandlerError::Permanent(reason) => Verdict::DeadLetter { kind: "permanent".into(), reason },
        }
    }

    async fn invoke(&self, envelope: &Envelope<AnyMessage>, attempt: u32) -> Result<Reply, HandlerError> {
        let Some(database) = &self.database else {
            return self.call(Context { message: envelope, attempt, transaction: None }).await;
        };
        let retryable = |e: DbErr| HandlerError::Retryable(format!("database: {e}"));
        // The begin (a connection from the pool) and the commit (the WAL's flush) are spans of
        // their own: the two waits a transaction's statements do not show.
        let hop = traces::current_hop();
        let transaction = hop.child("begin").wrap(database.begin()).await.map_err(retryable)?;
        if !self.inbox {
            let one = [(envelope, attempt)];
            let handled = AssertUnwindSafe(self.handler.handle_publishing(&transaction, &one)).catch_unwind().await;
            let handled = match handled {
                Ok(Ok(handled)) => handled,
                Ok(Err(error)) => {
                    let _ = transaction.rollback().await;
                    return Err(error);
                }
                Err(_) => {
                    let _ = transaction.rollback().await;
                    return Err(HandlerError::Permanent("the handler panicked".into()));
                }
            };
            hop.child("commit").wrap(transaction.commit()).await.map_err(retryable)?;
            crate::outbox::committed();
            self.after_commit(handled).await?;
            return Ok(None);
        }
        if let Claim::Duplicate(reply) = inbox::claim(&transaction, &self.group, envelope).await.map_err(retryable)? {
            // Rolling back a transaction that only read cannot lose anything.
            let _ = transaction.rollback().await;
            tracing::debug!("already handled; skipping the duplicate");
            return Ok(reply);
        }
        let reply = match self.call(Context { message: envelope, attempt, transaction: Some(&transaction) }).await {
            Ok(reply) => reply,
            Err(error) => {
                let _ = transaction.rollback().await;
                return Err(error);
            }
        };
        if let Some(reply) = &reply {
            inbox::record_reply(&transaction, &self.group, envelope, reply).await.map_err(retryable)?;
        }
        hop.child("commit").wrap(transaction.commit()).await.map_err(retryable)?;
        crate::outbox::committed();
        Ok(reply)
    }

    /// Handles a batch of messages in one transaction, with one inbox statement for all of them.
    /// Returns a verdict per message, or `None` when the batch failed as a whole (the handler
    /// failed, or the database): nothing of it was committed, and the caller hands the messages
    /// over one at a time, so a poison message is dead-lettered alone and the others go through.
    pub async fn process_batch(
        &self,
        messages: &[(Result<Envelope<AnyMessage>, DecodeError>, u32)],
    ) -> Option<Vec<Verdict>> {
        let started = Instant::now();
        let verdicts = self.handle_batch(messages).await?;
        self.metrics.record(&verdicts, started.elapsed());
        Some(verdicts)
    }

    async fn handle_batch(
        &self,
        messages: &[(Result<Envelope<AnyMessage>, DecodeError>, u32)],
    ) -> Option<Vec<Verdict>> {
        let database = self.database.as_ref()?;
        let decoded: Vec<&Envelope<AnyMessage>> = messages.iter().filter_map(|(m, _)| m.as_ref().ok()).collect();
        let failed = |stage: &str, error: &dyn std::fmt::Display| {
            tracing::info!(size = messages.len(), %error, "batch failed at {stage}; handling its messages one by one");
        };
        let transaction = database.begin().await.inspect_err(|e| failed("begin", e)).ok()?;
        let fresh = if self.inbox {
            Some(inbox::claim_all(&transaction, &self.group, &decoded).await.inspect_err(|e| failed("inbox", e)).ok()?)
        } else {
            None
        };
        let mut taken = std::collections::HashSet::new();
        let batch: Vec<(&Envelope<AnyMessage>, u32)> = messages
            .iter()
            .filter_map(|(m, attempt)| m.as_ref().ok().map(|m| (m, *attempt)))
            .filter(|(m, _)| fresh.as_ref().is_none_or(|fresh| fresh.contains(&m.id)) && taken.insert(m.id))
            .collect();
        let mut after = Handled::default();
        if !batch.is_empty() {
            let handled = AssertUnwindSafe(self.handler.handle_publishing(&transaction, &batch)).catch_unwind().await;
            match handled {
                Ok(Ok(handled)) => after = handled,
                failure => {
                    let _ = transaction.rollback().await;
                    let reason = match failure {
                        Ok(Err(error)) => error.to_string(),
                        _ => "the handler panicked".to_owned(),
                    };
                    failed("the handler", &reason);
                    return None;
                }
            }
        }
        transaction.commit().await.inspect_err(|e| failed("commit", e)).ok()?;
        crate::outbox::committed();
        if let Err(error) = self.after_commit(after).await {
            // Committed: handling the batch again is harmless, so every message comes back.
            tracing::warn!(size = messages.len(), %error, "batch committed but not published; it comes back");
            return Some(
                messages
                    .iter()
                    .map(|(decoded, attempt)| match decoded {
                        Ok(_) => self.verdict_of_failure(error.clone(), *attempt),
                        Err(error) => Verdict::DeadLetter { kind: error.kind().into(), reason: error.to_string() },
                    })
                    .collect(),
            );
        }
        tracing::debug!(size = messages.len(), new = batch.len(), "batch handled");
        Some(
            messages
                .iter()
                .map(|(decoded, _)| match decoded {
                    Ok(_) => Verdict::Done { reply: None },
                    Err(error) => Verdict::DeadLetter { kind: error.kind().into(), reason: error.to_string() },
                })
                .collect(),
        )
    }

    /// Calls the handler; a panic becomes a permanent error, so a poison message cannot take a
    /// worker down with it.
    async fn call(&self, context: Context<'_>) -> Result<Reply, HandlerError> {
        match AssertUnwindSafe(self.handler.handle(context)).catch_unwind().await {
            Ok(result) => result,
            Err(panic) => {
                let text = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(HandlerError::Permanent(format!("handler panicked: {text}")))
            }
        }
    }
}

/// Publishes what a committed transaction handed back, waiting up to `patience` for a broker
/// that is briefly away (a restart takes seconds): the work is committed, and each failure handed
/// back would spend one of the messages' retries, so a restart longer than the retry schedule
/// would send a whole stream of telemetry to the dead letters. The publishes repeat whole; a
/// message confirmed before the failure goes out twice, under its own id.
async fn publish_committed(
    publisher: &Publisher,
    messages: &[crate::outbox::Outgoing],
    patience: Duration,
) -> Result<(), crate::PublishError> {
    let deadline = Instant::now() + patience;
    let mut pause = Duration::from_millis(100);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        // One attempt may itself hang on a reconnect: it gets what is left of the patience.
        let error = match tokio::time::timeout(remaining, publisher.publish_all(messages)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => error,
            Err(_) => crate::PublishError::Disconnected(format!("no confirm within {patience:?}")),
        };
        if !error.is_transient() || Instant::now() + pause >= deadline {
            return Err(error);
        }
        tracing::warn!(%error, ?pause, size = messages.len(), "committed, but the broker is away; publishing again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

/// Workers that handle one aggregate's messages in order and different aggregates at once:
/// each message goes to the lane its aggregate hashes to, and a lane handles one at a time.
pub(crate) struct Lanes<T> {
    senders: Vec<mpsc::Sender<T>>,
    workers: JoinSet<()>,
}

impl<T: Send + 'static> Lanes<T> {
    /// Starts `count` lanes, each holding up to `capacity` waiting messages, running `work` on each.
    pub(crate) fn start<F, Fut>(count: usize, capacity: usize, work: F) -> Self
    where
        F: Fn(T) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send,
    {
        Self::start_batched(count, capacity, 1, move |batch: Vec<T>| {
            let work = work.clone();
            async move {
                for item in batch {
                    work(item).await;
                }
            }
        })
    }

    /// Like [`Lanes::start`], but each lane hands `work` whatever waits for it, up to `batch`
    /// messages at once, in arrival order: a batch never waits to fill up.
    pub(crate) fn start_batched<F, Fut>(count: usize, capacity: usize, batch: usize, work: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let mut senders = Vec::with_capacity(count.max(1));
        let mut workers = JoinSet::new();
        for _ in 0..count.max(1) {
            let (sender, mut receiver) = mpsc::channel::<T>(capacity.max(1));
            senders.push(sender);
            let work = work.clone();
            workers.spawn(async move {
                let mut items = Vec::with_capacity(batch.max(1));
                while receiver.recv_many(&mut items, batch.max(1)).await > 0 {
                    work(std::mem::take(&mut items)).await;
                }
            });
        }
        Self { senders, workers }
    }

    /// Queues `item` on its aggregate's lane (`fallback` spreads messages without one); false
    /// when the lane is gone.
    pub(crate) async fn dispatch(&self, aggregate: Option<&str>, fallback: u64, item: T) -> bool {
        let mut hasher = DefaultHasher::new();
        match aggregate {
            Some(aggregate) => aggregate.hash(&mut hasher),
            None => fallback.hash(&mut hasher),
        }
        let lane = usize::try_from(hasher.finish() % self.senders.len() as u64).unwrap_or(0);
        self.senders[lane].send(item).await.is_ok()
    }

    /// Takes no more messages and waits until every lane finished what it was given.
    pub(crate) async fn finish(mut self) {
        self.senders.clear();
        while self.workers.join_next().await.is_some() {}
    }
}

/// First wait before a consumer reconnects; doubles up to [`MAX_BACKOFF`].
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// How one consumer session ended.
pub(crate) enum SessionEnd {
    /// Told to stop.
    Shutdown,
    /// The connection or the broker-side consumer went away.
    Lost,
}

/// A consumer that works in sessions: connect, declare, consume until lost or told to stop.
pub(crate) trait Sessions: Send + Sync + 'static {
    /// The consumer group, for logs.
    fn group(&self) -> &str;

    /// Runs one session; sets `backoff` back to [`FIRST_BACKOFF`] once it is consuming.
    fn session<F: Future<Output = ()> + Send>(
        self: &Arc<Self>,
        shutdown: Pin<&mut F>,
        backoff: &mut Duration,
    ) -> impl Future<Output = Result<SessionEnd, BusError>> + Send;
}

/// Runs sessions until `shutdown` resolves, starting a new one with backoff after each loss.
pub(crate) async fn supervise<S: Sessions>(this: Arc<S>, shutdown: impl Future<Output = ()> + Send) {
    tokio::pin!(shutdown);
    let mut backoff = FIRST_BACKOFF;
    loop {
        match this.session(shutdown.as_mut(), &mut backoff).await {
            Ok(SessionEnd::Shutdown) => return,
            Ok(SessionEnd::Lost) => tracing::warn!(group = this.group(), "consumer lost its connection; reconnecting"),
            Err(error) => tracing::warn!(group = this.group(), %error, ?backoff, "cannot consume; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.as_mut() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
