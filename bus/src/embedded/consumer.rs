//! The consumer runtime of the embedded transport: claims rows of its group's queue with a lease,
//! in `seq` order, hands them to lanes by aggregate, and settles each by the processor's verdict.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use schemas::Envelope;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use super::{EmbeddedBus, now_ms};
use crate::amqp::{ConsumerOptions, GroupTopology};
use crate::handler::Handler;
use crate::runtime::{Lanes, Processor, Verdict};

/// How long a claimed row stays leased before another consumer may take it (a dead consumer's
/// rows come back after this).
const LEASE: Duration = Duration::from_secs(30);
/// How often an idle consumer looks for rows that became due (retries) without a wake-up.
const POLL: Duration = Duration::from_millis(50);

/// A claimed row.
struct Claimed {
    seq: i64,
    payload: String,
    attempt: u32,
    aggregate: Option<String>,
    message_id: uuid::Uuid,
}

/// A consumer group's runtime on the embedded transport.
pub struct EmbeddedConsumer {
    bus: EmbeddedBus,
    topology: GroupTopology,
    options: ConsumerOptions,
    processor: Processor,
    /// How long a claim is leased.
    pub lease: Duration,
}

impl EmbeddedConsumer {
    /// A runtime for `topology`'s group (its bindings are registered on `bus`).
    pub fn new(
        bus: EmbeddedBus,
        topology: GroupTopology,
        options: ConsumerOptions,
        handler: Arc<dyn Handler>,
        database: Option<DatabaseConnection>,
    ) -> Self {
        bus.declare(&topology);
        let options = ConsumerOptions { prefetch: Ord::max(options.prefetch, 1), lanes: Ord::max(options.lanes, 1) };
        let processor = Processor::new(topology.group.clone(), handler, database, topology.retry_delays.clone());
        Self { bus, topology, options, processor, lease: LEASE }
    }

    /// Keeps no inbox rows, and publishes through `publisher` what the handler hands back after
    /// each commit, as a JetStream group does (`JetStreamConsumer::without_inbox`); a broker that
    /// is away is waited for up to two thirds of the lease.
    pub fn without_inbox(mut self, publisher: crate::outbox::Publisher) -> Self {
        let patience = self.lease * 2 / 3;
        self.processor = self.processor.without_inbox().publishing_through(publisher, patience);
        self
    }

    /// Runs until `shutdown` resolves; what was claimed is finished first.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let this = Arc::new(self);
        tokio::pin!(shutdown);
        // At most `prefetch` rows claimed and not yet settled, as a broker's prefetch.
        let in_flight = Arc::new(Semaphore::new(usize::from(this.options.prefetch)));
        let lanes = Lanes::start(this.options.lanes, usize::from(this.options.prefetch), {
            let this = Arc::clone(&this);
            move |(claimed, permit): (Claimed, OwnedSemaphorePermit)| {
                let this = Arc::clone(&this);
                async move {
                    this.process(claimed).await;
                    drop(permit);
                }
            }
        });
        loop {
            let free = in_flight.available_permits();
            let claimed = if free == 0 { Ok(Vec::new()) } else { this.claim(free).await };
            match claimed {
                Ok(rows) if !rows.is_empty() => {
                    for row in rows {
                        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else { break };
                        let (aggregate, seq) = (row.aggregate.clone(), u64::try_from(row.seq).unwrap_or(0));
                        // A lane only goes away with its worker, which lives until `finish`.
                        lanes.dispatch(aggregate.as_deref(), seq, (row, permit)).await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(group = %this.topology.group, %error, "cannot claim messages"),
            }
            tokio::select! {
                () = this.bus.arrivals() => {}
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.as_mut() => break,
            }
        }
        lanes.finish().await;
    }

    /// Leases up to `limit` due rows of the group's queue, oldest first.
    async fn claim(&self, limit: usize) -> Result<Vec<Claimed>, DbErr> {
        let now = now_ms();
        let lease_ms = i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX / 2);
        let due = Query::select()
            .column("seq")
            .from("bus_queue")
            .and_where(Expr::col("queue").eq(self.topology.work_queue()))
            .and_where(Expr::col("available_at_ms").lte(now))
            .and_where(Expr::col("locked_until_ms").lte(now))
            .order_by("seq", Order::Asc)
            .limit(u64::try_from(limit).unwrap_or(u64::MAX))
            .to_owned();
        let claim = Query::update()
            .table("bus_queue")
            .value("locked_until_ms", now + lease_ms)
            .and_where(Expr::col("seq").in_subquery(due))
            .returning(Query::returning().columns(["seq", "payload", "attempt", "aggregate", "message_id"]))
            .to_owned();
        let rows = self.bus.database().query_all(&claim).await?;
        let mut claimed: Vec<Claimed> = rows
            .iter()
            .map(|r| {
                Ok(Claimed {
                    seq: r.try_get("", "seq")?,
                    payload: r.try_get("", "payload")?,
                    attempt: u32::try_from(r.try_get::<i32>("", "attempt")?).unwrap_or(1),
                    aggregate: r.try_get("", "aggregate")?,
                    message_id: r.try_get("", "message_id")?,
                })
            })
            .collect::<Result<_, DbErr>>()?;
        // RETURNING gives no order guarantee.
        claimed.sort_by_key(|c| c.seq);
        Ok(claimed)
    }

    async fn process(&self, claimed: Claimed) {
        let decoded = schemas::decode_any(claimed.payload.as_bytes());
        let attempt = Ord::max(claimed.attempt, 1);
        let span = self.processor.span(&decoded, attempt);
        let from = crate::traces::Destination {
            system: crate::traces::EMBEDDED,
            name: self.processor.group(),
            routing_key: None,
        };
        let hop = self.processor.hop(from, &decoded);
        hop.wrap(
            async {
                let verdict = self.processor.process(decoded, attempt).await;
                if let Some(body) = verdict.reply_body() {
                    self.bus.reply(claimed.message_id, &body);
                }
                if let Err(error) = self.settle(&claimed, verdict).await {
                    // The lease runs out and the row comes back; the inbox makes the repeat harmless.
                    tracing::warn!(%error, "could not settle the message; it will come again");
                }
            }
            .instrument(span),
        )
        .await
    }

    async fn settle(&self, claimed: &Claimed, verdict: Verdict) -> Result<(), DbErr> {
        let database = self.bus.database();
        let this_row = Expr::col("seq").eq(claimed.seq);
        match verdict {
            Verdict::Done { .. } => {
                database.execute(&Query::delete().from_table("bus_queue").and_where(this_row).to_owned()).await?;
            }
            Verdict::Retry { delay, .. } => {
                let due = now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2);
                let update = Query::update()
                    .table("bus_queue")
                    .value("attempt", i64::from(claimed.attempt) + 1)
                    .value("available_at_ms", due)
                    .value("locked_until_ms", 0)
                    .and_where(this_row)
                    .to_owned();
                database.execute(&update).await?;
            }
            Verdict::DeadLetter { kind, reason } => {
                let update = Query::update()
                    .table("bus_queue")
                    .value("queue", self.topology.dead_letter_queue())
                    .value("reason", reason)
                    .value("error_kind", kind)
                    .value("source_queue", self.topology.work_queue())
                    .value("failed_at_ms", now_ms())
                    .value("locked_until_ms", 0)
                    .and_where(this_row)
                    .to_owned();
                database.execute(&update).await?;
            }
        }
        Ok(())
    }
}

/// The type and tenant of a stored payload, when it is an envelope at all.
pub(crate) fn describe(payload: &str) -> (Option<String>, Option<String>) {
    match Envelope::parse_raw(payload.as_bytes()) {
        Ok(envelope) => (Some(envelope.type_name), Some(envelope.tenant.to_string())),
        Err(_) => (None, None),
    }
}
