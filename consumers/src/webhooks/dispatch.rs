//! The dispatcher: makes delivery attempts. For each `webhook.deliver` command, and for each
//! first attempt the fan-out hands over after its commit ([`Dispatcher::hand_over`]), it checks
//! the endpoint's limits and hands the attempt to a worker task, so the message is acknowledged
//! at once and a slow receiver holds no consumer lane: one dead endpoint never delays another.
//!
//! Per endpoint and process: at most `concurrency_per_endpoint` workers; attempts beyond that
//! wait in the endpoint's queue in memory, taken by its workers as they finish (a burst costs no
//! database round trips). A rate-limited endpoint's attempts each book the next free slot and
//! wait for it in memory. Whatever waits in memory is safe: its delivery's lease (set when the
//! command was queued or the fan-out handed it over) brings it back through the scheduler if
//! this process dies. Rate-limit waits longer than the timeout, a full queue, a hand-over whose
//! lease ran short while it waited, and whatever waits at shutdown go back to the database
//! instead (`deliveries::defer`), which uses up no attempt. Each attempt goes to the endpoint as
//! it is when the attempt starts. No HTTP call runs inside a database transaction: the claim and
//! the result are two short ones.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use ring::rand::{SecureRandom, SystemRandom};
use schemas::webhooks::DeliverWebhook;
use schemas::{AnyMessage, Envelope, Reach};
use sea_orm::{DatabaseConnection, DbErr};
use signatures::Secret;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;
use uuid::Uuid;

use bus::{Context, Handler, HandlerError, Reply};

use super::deliveries::{self, Settled};
use super::endpoints::{self, StoredEndpoint};
use super::http::{Attempted, Client};
use super::ledger::{Ledger, Settlement};
use super::{DeliveryPolicy, Vault};

/// Makes delivery attempts.
pub struct Dispatcher {
    db: DatabaseConnection,
    client: Client,
    vault: Vault,
    policy: DeliveryPolicy,
    /// Where attempts are logged, in batches.
    ledger: Ledger,
    /// Endpoints recently read.
    endpoints: Arc<EndpointCache>,
    gates: Mutex<HashMap<Uuid, Gate>>,
    /// Bounds the attempts in flight in this process; all permits back means none is running.
    in_flight: Arc<Semaphore>,
    /// Set by [`Dispatcher::finish`]: an attempt that wakes from its rate-limit wait goes back.
    stopping: std::sync::atomic::AtomicBool,
    random: SystemRandom,
}

/// A first attempt the fan-out hands over once the delivery is committed, already claimed
/// (`attempts` = 1) and leased.
#[derive(Debug)]
pub struct Handover {
    /// Owner.
    pub tenant: String,
    /// The attempt, as a `webhook.deliver` command would carry it.
    pub command: DeliverWebhook,
    /// The endpoint, as the fan-out read it (active).
    pub endpoint: Arc<StoredEndpoint>,
    /// The body, as stored.
    pub payload: String,
    /// What the event is about.
    pub reach: Reach,
    /// When the delivery's lease, taken at commit, runs out.
    pub leased_until: Instant,
    /// The W3C `traceparent` of the event's creation, which the attempt's span joins.
    pub trace: Option<String>,
}

/// One attempt to make.
struct Job {
    tenant: String,
    command: DeliverWebhook,
    endpoint: Arc<StoredEndpoint>,
    /// Set when the attempt was claimed before it reached the dispatcher (a hand-over).
    claimed: Option<Claimed>,
    span: tracing::Span,
    /// The W3C `traceparent` the attempt's client span is a child of.
    trace: Option<String>,
}

/// An attempt claimed in advance: its body, what it is about, and until when its lease keeps
/// the scheduler away.
struct Claimed {
    payload: String,
    reach: Reach,
    leased_until: Instant,
}

/// One endpoint's limits in this process.
struct Gate {
    workers: Arc<Semaphore>,
    /// Attempts waiting for a worker of this endpoint.
    waiting: VecDeque<Job>,
    /// The next free slot, when the endpoint has a rate limit.
    next_slot: Instant,
}

/// A worker's right to run: one of the process's and one of its endpoint's.
type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

/// What admission decided.
enum Admission {
    /// Run it now, on a new worker.
    Run(Job, Permits),
    /// Its rate-limit slot is this far ahead: wait in memory, then run.
    Wait(Job, Duration),
    /// In the endpoint's queue: a worker takes it.
    Queued,
    /// Back to the database until then.
    Defer(Job, Duration),
}

/// Endpoints as the dispatcher last read them, each trusted for [`ENDPOINT_TTL`]: a burst to one
/// endpoint reads it once, not once per attempt. Changes made in this process evict at once
/// ([`EndpointCache::forget`]); made elsewhere, they show within the TTL.
#[derive(Default)]
pub struct EndpointCache {
    entries: Mutex<HashMap<(String, Uuid), Cached>>,
}

/// An endpoint (none: deleted) and when it was read.
type Cached = (Instant, Option<Arc<StoredEndpoint>>);

/// How long a read endpoint is trusted.
const ENDPOINT_TTL: Duration = Duration::from_secs(1);

impl EndpointCache {
    /// Drops what is known of `tenant`'s endpoint `id`.
    pub fn forget(&self, tenant: &str, id: Uuid) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&(tenant.to_owned(), id));
        }
    }

    /// `tenant`'s endpoint `id` (none if deleted), from memory while fresh.
    async fn get(&self, db: &DatabaseConnection, tenant: &str, id: Uuid) -> Result<Option<Arc<StoredEndpoint>>, DbErr> {
        let key = (tenant.to_owned(), id);
        if let Ok(entries) = self.entries.lock()
            && let Some((read_at, endpoint)) = entries.get(&key)
            && read_at.elapsed() < ENDPOINT_TTL
        {
            return Ok(endpoint.clone());
        }
        let read_at = Instant::now();
        let endpoint = endpoints::find(db, tenant, id).await?.map(Arc::new);
        if let Ok(mut entries) = self.entries.lock() {
            // Bounded by the endpoints that had deliveries within the TTL.
            entries.retain(|_, (at, _)| at.elapsed() < ENDPOINT_TTL);
            entries.insert(key, (read_at, endpoint.clone()));
        }
        Ok(endpoint)
    }
}

/// Attempts in flight per process, across endpoints.
const MAX_IN_FLIGHT: u32 = 1024;
/// Attempts one endpoint may have waiting in memory (a few hundred bytes each): a burst must
/// fit, or the overflow churns through the database and the scheduler.
const MAX_WAITING: usize = 100_000;
/// How far ahead an attempt may be scheduled when the process is full.
const BUSY: Duration = Duration::from_millis(250);
/// Lease a handed-over attempt must have left beyond its timeout to be made: room for the
/// result to be written, and for the clocks of other processes' schedulers.
const LEASE_MARGIN: Duration = Duration::from_secs(10);

impl Dispatcher {
    /// A dispatcher writing `db`, sending with `client`, opening secrets with `vault`; starts
    /// its attempt ledger's writer, so it must be made inside the runtime.
    pub fn new(db: DatabaseConnection, client: Client, vault: Vault, policy: DeliveryPolicy) -> Self {
        Self {
            ledger: Ledger::start(db.clone(), policy.clone()),
            endpoints: Arc::default(),
            db,
            client,
            vault,
            policy,
            gates: Mutex::default(),
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize)),
            stopping: std::sync::atomic::AtomicBool::new(false),
            random: SystemRandom::new(),
        }
    }

    /// The endpoints this dispatcher has read, for the endpoint commands to evict what they change.
    pub fn endpoints(&self) -> Arc<EndpointCache> {
        Arc::clone(&self.endpoints)
    }

    /// For shutdown: gives the attempts waiting in memory back to the database, due at once
    /// (else they would wait for their leases to run out, and a hand-over's claim would cost an
    /// attempt), then waits (up to `limit`) for the attempts in flight to finish and their
    /// results to be written.
    pub async fn finish(&self, limit: Duration) {
        self.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
        let waiting: Vec<Job> = match self.gates.lock() {
            Ok(mut gates) => gates.values_mut().flat_map(|gate| gate.waiting.drain(..)).collect(),
            Err(_) => Vec::new(),
        };
        // (tenant, attempt, claimed) → deliveries: one statement for each.
        let mut back: HashMap<(&str, u32, bool), Vec<Uuid>> = HashMap::new();
        for job in &waiting {
            let key = (job.tenant.as_str(), job.command.attempt, job.claimed.is_some());
            back.entry(key).or_default().push(job.command.delivery_id);
        }
        for ((tenant, attempt, claimed), ids) in back {
            for ids in ids.chunks(1000) {
                if let Err(error) = deliveries::defer(&self.db, tenant, ids, attempt, claimed, Utc::now()).await {
                    tracing::warn!(%error, "could not give waiting webhook attempts back; their leases bring them back");
                }
            }
        }
        let all = self.in_flight.acquire_many(MAX_IN_FLIGHT);
        let finished = async {
            let _all = all.await;
            self.ledger.flushed().await;
        };
        if tokio::time::timeout(limit, finished).await.is_err() {
            tracing::warn!("webhook attempts still running at shutdown; their leases will bring them back");
        }
    }

    /// Decides when `job` runs; `booked` when it already waited for its rate-limit slot.
    fn admit(&self, job: Job, booked: bool) -> Admission {
        let Ok(mut gates) = self.gates.lock() else { return Admission::Defer(job, BUSY) };
        let gate = gates.entry(job.endpoint.endpoint.id).or_insert_with(|| Gate {
            workers: Arc::new(Semaphore::new(self.policy.concurrency_per_endpoint)),
            waiting: VecDeque::new(),
            next_slot: Instant::now(),
        });
        let now = Instant::now();
        if let Some(rate) = job.endpoint.endpoint.rate_limit_per_second.filter(|r| *r > 0 && !booked) {
            let slot = gate.next_slot.max(now);
            let wait = slot - now;
            if wait > self.policy.timeout {
                // Too far for memory: the database keeps it, and no slot is taken.
                return Admission::Defer(job, wait);
            }
            gate.next_slot = slot + Duration::from_secs(1) / rate;
            if !wait.is_zero() {
                return Admission::Wait(job, wait);
            }
        }
        let Ok(global) = Arc::clone(&self.in_flight).try_acquire_owned() else { return Admission::Defer(job, BUSY) };
        match Arc::clone(&gate.workers).try_acquire_owned() {
            Ok(worker) => Admission::Run(job, (global, worker)),
            Err(_) if gate.waiting.len() < MAX_WAITING => {
                gate.waiting.push_back(job);
                Admission::Queued
            }
            Err(_) => Admission::Defer(job, BUSY),
        }
    }

    /// Carries out an admission; returns the job when it must go back to the database.
    fn launch(self: &Arc<Self>, admission: Admission) -> Option<(Job, Duration)> {
        match admission {
            Admission::Run(job, permits) => {
                tokio::spawn(Arc::clone(self).work(permits, job));
                None
            }
            Admission::Wait(job, wait) => {
                let this = Arc::clone(self);
                tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    if this.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                        return this.defer(&job, Duration::ZERO).await;
                    }
                    if let Some((job, wait)) = this.launch(this.admit(job, true)) {
                        this.defer(&job, wait).await;
                    }
                });
                None
            }
            Admission::Queued => None,
            Admission::Defer(job, wait) => Some((job, wait)),
        }
    }

    async fn defer(&self, job: &Job, wait: Duration) {
        let until = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
        let (command, claimed) = (&job.command, job.claimed.is_some());
        let ids = [command.delivery_id];
        let deferred = deliveries::defer(&self.db, &job.tenant, &ids, command.attempt, claimed, until);
        if let Err(error) = deferred.await {
            // The lease brings it back all the same.
            tracing::warn!(%error, "could not put a webhook attempt back");
        }
    }

    /// A worker: runs `job`, then whatever waits for its endpoint, then gives its permits back.
    async fn work(self: Arc<Self>, permits: Permits, mut job: Job) {
        loop {
            let (span, endpoint_id) = (job.span.clone(), job.endpoint.endpoint.id);
            self.run(job).instrument(span).await;
            let Ok(mut gates) = self.gates.lock() else { return };
            let next = gates.get_mut(&endpoint_id).and_then(|gate| gate.waiting.pop_front());
            match next {
                Some(next) => job = next,
                None => {
                    // Released under the lock: an attempt queued meanwhile found no free worker,
                    // and one queued from now on finds this one free.
                    drop(permits);
                    return;
                }
            }
        }
    }

    /// Claims (unless claimed already), makes and records one attempt, to the endpoint as it is
    /// now (read at most [`ENDPOINT_TTL`] ago): one deleted, disabled or moved while the attempt
    /// waited in memory is not sent to its old address.
    async fn run(&self, job: Job) {
        let Job { tenant, command, endpoint: seen, claimed, trace, .. } = job;
        let tenant = tenant.as_str();
        let (payload, reach) = match claimed {
            Some(Claimed { payload, reach, leased_until }) => {
                if Instant::now() + self.policy.timeout + LEASE_MARGIN >= leased_until {
                    // The lease could run out mid-attempt and the scheduler send the next attempt
                    // alongside: give the claim back, due at once, so the attempt is not lost.
                    tracing::info!("a handed-over attempt waited too long for its lease; giving it back");
                    let ids = [command.delivery_id];
                    if let Err(error) =
                        deliveries::defer(&self.db, tenant, &ids, command.attempt, true, Utc::now()).await
                    {
                        tracing::warn!(%error, "could not give a webhook attempt back; its lease brings it back");
                    }
                    return;
                }
                (Some(payload), reach)
            }
            None => {
                let lease_until = Utc::now() + self.policy.lease();
                match deliveries::claim(&self.db, tenant, command.delivery_id, command.attempt, lease_until).await {
                    Ok(Some(claimed)) => (claimed.payload, Reach::of(claimed.subaccount_id)),
                    Ok(None) => return tracing::debug!("attempt already taken; skipping the duplicate"),
                    Err(error) => {
                        return tracing::warn!(%error, "could not claim a webhook attempt; its lease brings it back");
                    }
                }
            }
        };
        let current = match self.endpoints.get(&self.db, tenant, command.endpoint_id).await {
            Ok(current) => current,
            Err(error) => {
                tracing::warn!(%error, "could not read the endpoint again; sending as it was queued");
                Some(seen)
            }
        };
        let endpoint = match current {
            Some(endpoint) if endpoint.endpoint.active => endpoint,
            other => {
                // Kept in the log as a failure, so the owner can replay it once the endpoint is back.
                let why = if other.is_some() { "the endpoint is disabled" } else { "the endpoint was deleted" };
                let attempted = Attempted { error: Some(why.into()), ..Attempted::default() };
                return self.settle(tenant, &command, other, attempted, true).await;
            }
        };
        // Its maker's key may have been narrowed since the event was fanned out: an attempt goes
        // only where the event may still be received, however long its retries run.
        if !endpoint.may_receive(&command.event, reach) {
            let why = "the endpoint's maker no longer reads this event";
            let attempted = Attempted { error: Some(why.into()), ..Attempted::default() };
            return self.settle(tenant, &command, Some(endpoint), attempted, true).await;
        }
        let attempted = match payload {
            Some(body) => self.attempt(&command, &endpoint, body, trace.as_deref()).await,
            None => Attempted { error: Some("the payload was purged".into()), ..Attempted::default() },
        };
        self.settle(tenant, &command, Some(endpoint), attempted, false).await;
    }

    /// Takes first attempts straight from the fan-out, saving each a trip through the outbox
    /// and the broker. Each delivery is committed with a lease, so an attempt this process never
    /// makes (it died, or deferring failed) is queued again by the scheduler.
    pub fn hand_over(self: &Arc<Self>, handovers: Vec<Handover>) {
        let span = tracing::Span::current();
        let deferred: Vec<(Job, Duration)> = handovers
            .into_iter()
            .filter_map(|Handover { tenant, command, endpoint, payload, reach, leased_until, trace }| {
                let claimed = Some(Claimed { payload, reach, leased_until });
                let job = Job { tenant, command, endpoint, claimed, span: span.clone(), trace };
                self.launch(self.admit(job, false))
            })
            .collect();
        if !deferred.is_empty() {
            let this = Arc::clone(self);
            tokio::spawn(async move {
                for (job, wait) in deferred {
                    this.defer(&job, wait).await;
                }
            });
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        envelope: &Envelope<AnyMessage>,
        command: &DeliverWebhook,
    ) -> Result<(), DbErr> {
        let tenant = envelope.tenant.as_str();
        let endpoint = match self.endpoints.get(&self.db, tenant, command.endpoint_id).await? {
            Some(endpoint) if endpoint.endpoint.active => endpoint,
            other => {
                // Kept in the log as a failure, so the owner can replay it once the endpoint is back.
                let lease_until = Utc::now() + self.policy.lease();
                if deliveries::claim(&self.db, tenant, command.delivery_id, command.attempt, lease_until)
                    .await?
                    .is_some()
                {
                    let why = if other.is_some() { "the endpoint is disabled" } else { "the endpoint was deleted" };
                    let attempted = Attempted { error: Some(why.into()), ..Attempted::default() };
                    self.settle(tenant, command, other, attempted, true).await;
                }
                return Ok(());
            }
        };
        let (span, trace) = (tracing::Span::current(), bus::traces::current_hop().traceparent());
        let job = Job { tenant: tenant.to_owned(), command: command.clone(), endpoint, claimed: None, span, trace };
        if let Some((job, wait)) = self.launch(self.admit(job, false)) {
            self.defer(&job, wait).await;
        }
        Ok(())
    }

    /// Signs and sends the payload, under a client span of the trace in `trace` whose context the
    /// receiver gets in `traceparent`.
    async fn attempt(
        &self,
        command: &DeliverWebhook,
        endpoint: &StoredEndpoint,
        body: String,
        trace: Option<&str>,
    ) -> Attempted {
        let now = Utc::now();
        let mut secrets = Vec::new();
        for sealed in endpoint.live_secrets(now) {
            match self.vault.open(&sealed.ciphertext).map(|text| Secret::parse(&text)) {
                Ok(Ok(secret)) => secrets.push(secret),
                _ => tracing::error!(endpoint = %endpoint.endpoint.id, "a signing secret cannot be opened"),
            }
        }
        if secrets.is_empty() {
            return Attempted { error: Some("no signing secret can be opened".into()), ..Attempted::default() };
        }
        let secrets: Vec<&Secret> = secrets.iter().collect();
        let signed = signatures::sign(&secrets, &command.event_id, now.timestamp(), body.as_bytes());
        let seed_header = endpoint.signature_header.as_deref().unwrap_or(signatures::VOLTBUS_SIGNATURE);
        // A partner's own header never stands in for a signature (the profile may name one later).
        let mut headers: Vec<(String, String)> = endpoint
            .endpoint
            .headers
            .iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case(seed_header))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        let signature = signed.headers_named(seed_header);
        headers.extend(signature.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())));
        let url = &endpoint.endpoint.url;
        let hop = bus::traces::client("POST", url, trace);
        if let Some(traceparent) = hop.traceparent() {
            // Ours, as the signature: a partner header of that name does not stand in for it.
            headers.retain(|(name, _)| !name.eq_ignore_ascii_case("traceparent"));
            headers.push(("traceparent".to_owned(), traceparent));
        }
        let attempted = self.client.post(url, &headers, Bytes::from(body)).await;
        if bus::traces::enabled() {
            if let Some(status) = attempted.status {
                hop.set(bus::traces::attribute::HTTP_RESPONSE_STATUS_CODE, i64::from(status));
            }
            if !attempted.succeeded() {
                let error_type = attempted.status.map_or("no_answer", |_| "status");
                hop.fail(error_type, attempted.error.clone().unwrap_or_default());
            }
            hop.set("voltbus.webhook.event_type", command.event.clone());
            hop.set("voltbus.webhook.attempt", i64::from(command.attempt));
        }
        attempted
    }

    /// Hands the attempt to the ledger, which logs it and decides the delivery's next step.
    async fn settle(
        &self,
        tenant: &str,
        command: &DeliverWebhook,
        endpoint: Option<Arc<StoredEndpoint>>,
        attempted: Attempted,
        final_now: bool,
    ) {
        let now = Utc::now();
        let succeeded = attempted.succeeded();
        let last = final_now || command.attempt >= self.policy.max_attempts();
        let (outcome, next) = match (succeeded, last) {
            (true, _) => ("succeeded", None),
            (false, true) => ("gave_up", None),
            (false, false) => ("failed", Some(now + self.next_delay(command.attempt, attempted.retry_after))),
        };
        let latency_ms = u32::try_from(attempted.latency.as_millis()).unwrap_or(u32::MAX);
        tracing::info!(delivery = %command.delivery_id, attempt = command.attempt, outcome, status = ?attempted.status, latency_ms, "webhook attempt");
        let sent = attempted.status.is_some() || !attempted.latency.is_zero();
        bus::metrics::webhook_attempt(outcome, sent.then_some(attempted.latency));
        let settled = Settled {
            tenant: tenant.to_owned(),
            delivery_id: command.delivery_id,
            endpoint_id: command.endpoint_id,
            event_id: command.event_id.clone(),
            attempt: command.attempt,
            outcome,
            status_code: attempted.status,
            latency_ms,
            error: attempted.error,
            response: attempted.response,
            next_attempt_at: next,
        };
        self.ledger.record(Settlement { settled, command: command.clone(), endpoint, succeeded }).await;
    }

    /// The wait before the attempt after `attempt`: the schedule's, with up to 20 % jitter so
    /// retries to one receiver do not arrive in step, and never sooner than the receiver's
    /// `Retry-After` (clamped to the configured maximum).
    fn next_delay(&self, attempt: u32, retry_after: Option<Duration>) -> chrono::Duration {
        let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
        let base = self.policy.retry_delays.get(index).or(self.policy.retry_delays.last()).copied().unwrap_or_default();
        let mut byte = [0u8; 1];
        let _ = self.random.fill(&mut byte);
        let jittered = base + base.mul_f64(f64::from(byte[0]) / 255.0 * 0.2);
        let wait = retry_after.map_or(jittered, |asked| jittered.max(asked.min(self.policy.retry_after_max)));
        chrono::Duration::from_std(wait).unwrap_or_default()
    }
}

/// The dispatcher as a consumer group's handler.
pub struct DispatchHandler(pub Arc<Dispatcher>);

impl Handler for DispatchHandler {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let AnyMessage::DeliverWebhook(command) = &context.message.data else {
                let type_name = context.message.type_name.as_str();
                return Err(HandlerError::Permanent(format!("`{type_name}` has no handler in the dispatcher")));
            };
            self.0.dispatch(context.message, command).await.map_err(|e| HandlerError::Retryable(e.to_string()))?;
            Ok(None)
        })
    }
}
