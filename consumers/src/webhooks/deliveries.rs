//! The `webhook_deliveries` and `webhook_attempts` tables. A delivery is one event for one
//! endpoint; it is the source of truth for what happens next: `attempts` says which attempt a
//! command may make (a duplicate command finds it taken and does nothing), `next_attempt_at`
//! says when the scheduler queues the next one. A queued or running attempt holds a lease
//! (`next_attempt_at` in the future): if voltbus dies in the middle, the scheduler queues the
//! delivery again when the lease ends, so nothing acknowledged is ever lost.

use chrono::{DateTime, Utc};
use schemas::webhooks::DeliverWebhook;
use schemas::{Envelope, TenantId, routing};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, TransactionTrait};
use uuid::Uuid;

use bus::outbox::{self, Destination};
pub use readside::webhooks::deliveries::{
    ATTEMPT_COLUMNS, Attempt, COLUMNS, Delivery, FAILED, Filter, PENDING, SUCCEEDED, attempts, list,
};

/// A delivery to create.
#[derive(Debug)]
pub struct NewDelivery<'a> {
    /// Owner.
    pub tenant: &'a str,
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// Event id.
    pub event_id: &'a str,
    /// Event type.
    pub event: &'a str,
    /// The subaccount the event is about; none: the organisation's own.
    pub subaccount_id: Option<Uuid>,
}

impl NewDelivery<'_> {
    /// Attempt `attempt` of it, once stored as delivery `id`.
    fn attempt(&self, id: Uuid, attempt: u32) -> DeliverWebhook {
        let (event_id, event) = (self.event_id.to_owned(), self.event.to_owned());
        DeliverWebhook { delivery_id: id, endpoint_id: self.endpoint_id, event_id, event, attempt }
    }
}

fn small(code: Option<u16>) -> Option<i16> {
    code.map(|c| i16::try_from(c).unwrap_or(i16::MAX))
}

/// Where the first attempt of a delivery that may go now is queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FirstAttempt {
    /// A `webhook.deliver` command in the outbox, for any process's dispatcher.
    Outbox,
    /// Claimed at once (`attempts` = 1, leased) for this process's dispatcher, to which the
    /// caller hands it once its transaction committed; the lease brings it back through the
    /// scheduler (as attempt 2) if it is never made.
    InProcess,
}

/// Stores a new delivery; with a lease, its first attempt's command goes into the outbox too.
pub async fn insert(
    tx: &impl ConnectionTrait,
    cause: Option<Uuid>,
    delivery: &NewDelivery<'_>,
    lease: Option<chrono::Duration>,
    now: DateTime<Utc>,
) -> Result<Uuid, DbErr> {
    let rows = [(cause, delivery, lease.is_some())];
    let ids = insert_all(tx, &rows, lease.unwrap_or_default(), FirstAttempt::Outbox, now).await?;
    ids.first().copied().ok_or_else(|| DbErr::Custom("no delivery inserted".into()))
}

/// Stores new deliveries in one statement, each with the message that caused it; those marked
/// to go now get `lease` and, through the outbox, their first attempt's command (one statement
/// too) unless `first` says the caller dispatches them. Returns their ids, in order.
pub async fn insert_all(
    tx: &impl ConnectionTrait,
    deliveries: &[(Option<Uuid>, &NewDelivery<'_>, bool)],
    lease: chrono::Duration,
    first: FirstAttempt,
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, DbErr> {
    if deliveries.is_empty() {
        return Ok(Vec::new());
    }
    let mut insert = Query::insert()
        .into_table("webhook_deliveries")
        .columns(COLUMNS.into_iter().chain(["tenant", "subaccount_id"]))
        .to_owned();
    let mut ids = Vec::with_capacity(deliveries.len());
    let mut commands = Vec::new();
    for (cause, delivery, go_now) in deliveries {
        let id = Uuid::now_v7();
        insert.values_panic([
            id.into(),
            delivery.endpoint_id.into(),
            delivery.event_id.into(),
            delivery.event.into(),
            PENDING.into(),
            i32::from(*go_now && first == FirstAttempt::InProcess).into(),
            go_now.then(|| now + lease).into(),
            Option::<i16>::None.into(),
            now.into(),
            now.into(),
            delivery.tenant.into(),
            delivery.subaccount_id.into(),
        ]);
        ids.push(id);
        if *go_now && first == FirstAttempt::Outbox {
            commands.push(attempt_command(*cause, delivery.tenant, delivery.attempt(id, 1))?);
        }
    }
    tx.execute(&insert).await?;
    let destination = attempt_destination();
    outbox::enqueue_all(tx, commands.iter().map(|command| (command, &destination))).await?;
    Ok(ids)
}

/// The envelope of attempt command `command` of `tenant`, caused by `cause`.
fn attempt_command(
    cause: Option<Uuid>,
    tenant: &str,
    command: DeliverWebhook,
) -> Result<Envelope<DeliverWebhook>, DbErr> {
    let tenant = TenantId::new(tenant).map_err(|e| DbErr::Custom(format!("stored tenant: {e}")))?;
    let mut envelope = Envelope::new(tenant, "voltbus/webhooks", command);
    envelope.causationid = cause;
    Ok(envelope)
}

fn attempt_destination() -> Destination {
    Destination::Amqp {
        exchange: routing::COMMANDS_EXCHANGE.into(),
        routing_key: routing::command_key_of::<DeliverWebhook>(),
    }
}

/// Puts attempt command `command` of `tenant` into the outbox.
async fn queue_attempt(tx: &impl ConnectionTrait, tenant: &str, command: DeliverWebhook) -> Result<(), DbErr> {
    outbox::enqueue(tx, &attempt_command(None, tenant, command)?, &attempt_destination()).await
}

/// Whether endpoint `endpoint_id` has a delivery still pending.
pub async fn has_unfinished(db: &impl ConnectionTrait, tenant: &str, endpoint_id: Uuid) -> Result<bool, DbErr> {
    let query = Query::select()
        .column("id")
        .from("webhook_deliveries")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("endpoint_id").eq(endpoint_id))
        .and_where(Expr::col("status").eq(PENDING))
        .limit(1)
        .to_owned();
    Ok(db.query_one(&query).await?.is_some())
}

/// Takes attempt `attempt` of delivery `id` for this worker until `lease_until`; none when the
/// attempt was already taken (a duplicate command) or the delivery is finished.
pub async fn claim(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
    attempt: u32,
    lease_until: DateTime<Utc>,
) -> Result<Option<Claimed>, DbErr> {
    let previous = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    // The payload comes back with the claim: one round trip instead of two.
    let payload = Query::select()
        .column(("webhook_messages", "payload"))
        .from("webhook_messages")
        .and_where(Expr::col(("webhook_messages", "tenant")).equals(("webhook_deliveries", "tenant")))
        .and_where(Expr::col(("webhook_messages", "event_id")).equals(("webhook_deliveries", "event_id")))
        .to_owned();
    let update = Query::update()
        .table("webhook_deliveries")
        .value("attempts", previous.saturating_add(1))
        .value("next_attempt_at", lease_until)
        .value("updated_at", Utc::now())
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("id").eq(id))
        .and_where(Expr::col("status").eq(PENDING))
        .and_where(Expr::col("attempts").eq(previous))
        .returning(
            Query::returning().exprs([Expr::SubQuery(None, Box::new(payload.into())), Expr::col("subaccount_id")]),
        )
        .to_owned();
    match db.query_one(&update).await? {
        Some(row) => Ok(Some(Claimed { payload: row.try_get_by_index(0)?, subaccount_id: row.try_get_by_index(1)? })),
        None => Ok(None),
    }
}

/// An attempt claimed: the body it sends, and what its event is about.
#[derive(Debug)]
pub struct Claimed {
    /// The event's payload; none once purged.
    pub payload: Option<String>,
    /// The subaccount the event is about; none: the organisation's own.
    pub subaccount_id: Option<Uuid>,
}

/// Moves attempt `attempt` of `tenant`'s deliveries `ids`, not made, to `until` without using
/// it up (the endpoint's rate or concurrency limit said "not now", or the process is stopping);
/// `claimed` ones (hand-overs) are given back.
pub async fn defer(
    db: &impl ConnectionTrait,
    tenant: &str,
    ids: &[Uuid],
    attempt: u32,
    claimed: bool,
    until: DateTime<Utc>,
) -> Result<(), DbErr> {
    let previous = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
    let current = if claimed { previous.saturating_add(1) } else { previous };
    let update = Query::update()
        .table("webhook_deliveries")
        .value("attempts", previous)
        .value("next_attempt_at", until)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("id").is_in(ids.iter().copied()))
        .and_where(Expr::col("status").eq(PENDING))
        .and_where(Expr::col("attempts").eq(current))
        .to_owned();
    db.execute(&update).await?;
    Ok(())
}

/// What an attempt came to, for the log and the delivery's next step.
#[derive(Clone, Debug)]
pub struct Settled {
    /// Owner.
    pub tenant: String,
    /// Delivery.
    pub delivery_id: Uuid,
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// Event id.
    pub event_id: String,
    /// 1-based.
    pub attempt: u32,
    /// `succeeded`, `failed` or `gave_up`.
    pub outcome: &'static str,
    /// Status code, if answered.
    pub status_code: Option<u16>,
    /// Latency.
    pub latency_ms: u32,
    /// Error.
    pub error: Option<String>,
    /// Answer's first KiB.
    pub response: Option<String>,
    /// The next attempt's time, when there is one.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// Logs the attempts and moves their deliveries on: finished, or due again at `next_attempt_at`.
/// One statement logs them all and one moves every delivery that goes the same way, so many
/// attempts settle in a few round trips.
pub async fn settle(tx: &impl ConnectionTrait, settled: &[&Settled], now: DateTime<Utc>) -> Result<(), DbErr> {
    if settled.is_empty() {
        return Ok(());
    }
    let mut log = Query::insert()
        .into_table("webhook_attempts")
        .columns(ATTEMPT_COLUMNS.into_iter().chain(["tenant"]))
        .to_owned();
    for settled in settled {
        log.values_panic([
            settled.delivery_id.into(),
            settled.endpoint_id.into(),
            settled.event_id.as_str().into(),
            i32::try_from(settled.attempt).unwrap_or(i32::MAX).into(),
            settled.outcome.into(),
            small(settled.status_code).into(),
            i32::try_from(settled.latency_ms).unwrap_or(i32::MAX).into(),
            settled.error.clone().into(),
            settled.response.clone().into(),
            now.into(),
            settled.tenant.as_str().into(),
        ]);
    }
    tx.execute(&log).await?;
    // Deliveries going the same way (most often: succeeded with 200) move in one statement.
    // (status, next attempt, last status code, tenant, attempt) → deliveries.
    type Step<'a> = (&'a str, Option<DateTime<Utc>>, Option<i16>, &'a str, u32);
    let mut groups: Vec<(Step, Vec<Uuid>)> = Vec::new();
    for settled in settled {
        let status = match settled.outcome {
            "succeeded" => SUCCEEDED,
            "gave_up" => FAILED,
            _ => PENDING,
        };
        let key =
            (status, settled.next_attempt_at, small(settled.status_code), settled.tenant.as_str(), settled.attempt);
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, ids)) => ids.push(settled.delivery_id),
            None => groups.push((key, vec![settled.delivery_id])),
        }
    }
    for ((status, next_attempt_at, status_code, tenant, attempt), ids) in groups {
        // Only the attempt the delivery is at moves it: a late result of an attempt the
        // scheduler has since replaced (its lease ran out) is logged but changes nothing.
        let update = Query::update()
            .table("webhook_deliveries")
            .value("status", status)
            .value("next_attempt_at", next_attempt_at)
            .value("last_status_code", status_code)
            .value("updated_at", now)
            .and_where(Expr::col("tenant").eq(tenant))
            .and_where(Expr::col("id").is_in(ids))
            .and_where(Expr::col("status").eq(PENDING))
            .and_where(Expr::col("attempts").eq(i32::try_from(attempt).unwrap_or(i32::MAX)))
            .to_owned();
        tx.execute(&update).await?;
    }
    Ok(())
}

/// Queues the oldest waiting delivery of an ordered endpoint, if any (its predecessor finished).
pub async fn release_next(
    tx: &impl ConnectionTrait,
    tenant: &str,
    endpoint_id: Uuid,
    lease: chrono::Duration,
) -> Result<(), DbErr> {
    let query = Query::select()
        .columns(["id", "event_id", "event"])
        .from("webhook_deliveries")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("endpoint_id").eq(endpoint_id))
        .and_where(Expr::col("status").eq(PENDING))
        .and_where(Expr::col("next_attempt_at").is_null())
        .order_by("created_at", Order::Asc)
        .order_by("id", Order::Asc)
        .limit(1)
        .to_owned();
    let Some(row) = tx.query_one(&query).await? else { return Ok(()) };
    let Queued { id, event_id, event } = Queued::from_query_result(&row, "")?;
    let update = Query::update()
        .table("webhook_deliveries")
        .value("next_attempt_at", Utc::now() + lease)
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    tx.execute(&update).await?;
    let command = DeliverWebhook { delivery_id: id, endpoint_id, event_id, event, attempt: 1 };
    queue_attempt(tx, tenant, command).await
}

/// A delivery to queue an attempt of.
#[derive(FromQueryResult)]
struct Queued {
    id: Uuid,
    event_id: String,
    event: String,
}

/// A delivery whose next attempt is due.
#[derive(FromQueryResult)]
struct Due {
    id: Uuid,
    tenant: String,
    endpoint_id: Uuid,
    event_id: String,
    event: String,
    attempts: i32,
}

/// The scheduler's pass: queues every delivery whose next attempt is due (up to `limit`),
/// leasing each so the next pass leaves it alone; returns how many. Several voltbus processes
/// may run it at once: each takes rows the others have not locked.
pub async fn queue_due(db: &sea_orm::DatabaseConnection, lease: chrono::Duration, limit: u64) -> Result<usize, DbErr> {
    let tx = db.begin().await?;
    let now = Utc::now();
    let mut due = Query::select()
        .columns(["id", "tenant", "endpoint_id", "event_id", "event", "attempts"])
        .from("webhook_deliveries")
        .and_where(Expr::col("status").eq(PENDING))
        .and_where(Expr::col("next_attempt_at").lte(now))
        .order_by("next_attempt_at", Order::Asc)
        .limit(limit)
        .to_owned();
    if db.get_database_backend() == sea_orm::DatabaseBackend::Postgres {
        due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let rows = tx.query_all(&due).await?;
    if rows.is_empty() {
        // Nothing due (the common case): the transaction only read.
        tx.rollback().await?;
        return Ok(0);
    }
    let due = rows.iter().map(|row| Due::from_query_result(row, "")).collect::<Result<Vec<_>, _>>()?;
    let lease_rows = Query::update()
        .table("webhook_deliveries")
        .value("next_attempt_at", now + lease)
        .and_where(Expr::col("id").is_in(due.iter().map(|d| d.id)))
        .to_owned();
    tx.execute(&lease_rows).await?;
    for Due { id, tenant, endpoint_id, event_id, event, attempts } in due {
        let attempt = u32::try_from(attempts).unwrap_or(0).saturating_add(1);
        queue_attempt(&tx, &tenant, DeliverWebhook { delivery_id: id, endpoint_id, event_id, event, attempt }).await?;
    }
    tx.commit().await?;
    bus::outbox::committed();
    Ok(rows.len())
}

/// Sends again, as new deliveries, delivery `one` or every failed delivery of the endpoint
/// created since `failed_since` that the endpoint still takes (its maker's key may have been
/// narrowed since); returns the new deliveries' ids. History is never rewritten: the old
/// deliveries and their attempts stay in the log.
pub async fn replay(
    tx: &impl ConnectionTrait,
    cause: Option<Uuid>,
    endpoint: &super::endpoints::StoredEndpoint,
    one: Option<Uuid>,
    failed_since: Option<DateTime<Utc>>,
    lease: chrono::Duration,
) -> Result<Vec<Uuid>, DbErr> {
    let (tenant, endpoint_id) = (endpoint.tenant.as_str(), endpoint.endpoint.id);
    let mut query = Query::select()
        .columns(["event_id", "event", "subaccount_id"])
        .from("webhook_deliveries")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("endpoint_id").eq(endpoint_id))
        .order_by("created_at", Order::Asc)
        .to_owned();
    match (one, failed_since) {
        (Some(id), _) => query.and_where(Expr::col("id").eq(id)),
        (None, Some(since)) => {
            query.and_where(Expr::col("status").eq(FAILED)).and_where(Expr::col("created_at").gte(since))
        }
        (None, None) => return Ok(Vec::new()),
    };
    let rows = tx.query_all(&query).await?;
    let now = Utc::now();
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let Past { event_id, event, subaccount_id } = Past::from_query_result(row, "")?;
        // By what it may receive, not by subscription: an event since unsubscribed goes again.
        if !endpoint.may_receive(&event, schemas::Reach::of(subaccount_id)) {
            continue;
        }
        let delivery = NewDelivery { tenant, endpoint_id, event_id: &event_id, event: &event, subaccount_id };
        ids.push(insert(tx, cause, &delivery, Some(lease), now).await?);
    }
    Ok(ids)
}

/// A delivery sent before, as [`replay`] reads it.
#[derive(FromQueryResult)]
struct Past {
    event_id: String,
    event: String,
    subaccount_id: Option<Uuid>,
}

/// Deletes attempts, finished deliveries and payloads older than `before`; returns rows deleted.
pub async fn purge(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, DbErr> {
    let mut deleted = 0;
    let attempts =
        Query::delete().from_table("webhook_attempts").and_where(Expr::col("attempted_at").lt(before)).to_owned();
    deleted += db.execute(&attempts).await?.rows_affected();
    let finished = Query::delete()
        .from_table("webhook_deliveries")
        .and_where(Expr::col("created_at").lt(before))
        .and_where(Expr::col("status").ne(PENDING))
        .to_owned();
    deleted += db.execute(&finished).await?.rows_affected();
    let messages =
        Query::delete().from_table("webhook_messages").and_where(Expr::col("created_at").lt(before)).to_owned();
    deleted += db.execute(&messages).await?.rows_affected();
    Ok(deleted)
}
