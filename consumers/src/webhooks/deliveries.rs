//! The `webhook_deliveries` and `webhook_attempts` tables. A delivery is one event for one
//! endpoint; it is the source of truth for what happens next: `attempts` says which attempt a
//! command may make (a duplicate command finds it taken and does nothing), `next_attempt_at`
//! says when the scheduler queues the next one. A queued or running attempt holds a lease
//! (`next_attempt_at` in the future): if voltbus dies in the middle, the scheduler queues the
//! delivery again when the lease ends, so nothing acknowledged is ever lost.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::webhooks::DeliverWebhook;
use schemas::{Envelope, TenantId, routing};
use sea_orm::sea_query::{Expr, ExprTrait, LockBehavior, LockType, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use bus::outbox::{self, Destination};

/// Not finished: an attempt is queued, running, or scheduled.
pub const PENDING: &str = "pending";
/// A 2xx arrived.
pub const SUCCEEDED: &str = "succeeded";
/// Every attempt failed (or the endpoint went away).
pub const FAILED: &str = "failed";

const COLUMNS: [&str; 10] = [
    "id",
    "endpoint_id",
    "event_id",
    "event",
    "status",
    "attempts",
    "next_attempt_at",
    "last_status_code",
    "created_at",
    "updated_at",
];

/// The columns of an attempt as the log shows it (and as the dispatcher writes it, with `tenant`).
const ATTEMPT_COLUMNS: [&str; 10] = [
    "delivery_id",
    "endpoint_id",
    "event_id",
    "attempt",
    "outcome",
    "status_code",
    "latency_ms",
    "error",
    "response",
    "attempted_at",
];

/// A delivery as the delivery log shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Delivery {
    /// Delivery id.
    pub id: Uuid,
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// Event id (`evt_…`).
    pub event_id: String,
    /// Event type.
    pub event: String,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Attempts made (or under way).
    pub attempts: u32,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last answer's status code.
    pub last_status_code: Option<u16>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// One attempt, as the delivery log shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Attempt {
    /// Delivery.
    pub delivery_id: Uuid,
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// Event id.
    pub event_id: String,
    /// 1-based.
    pub attempt: u32,
    /// `succeeded`, `failed` or `gave_up`.
    pub outcome: String,
    /// The receiver's status code, when it answered.
    pub status_code: Option<u16>,
    /// Time to the answer or the failure.
    pub latency_ms: u32,
    /// What went wrong.
    pub error: Option<String>,
    /// The first KiB of the answer.
    pub response: Option<String>,
    /// When.
    pub attempted_at: DateTime<Utc>,
}

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

fn from_row(row: &QueryResult) -> Result<Delivery, DbErr> {
    let attempts: i32 = row.try_get("", "attempts")?;
    let code: Option<i16> = row.try_get("", "last_status_code")?;
    Ok(Delivery {
        id: row.try_get("", "id")?,
        endpoint_id: row.try_get("", "endpoint_id")?,
        event_id: row.try_get("", "event_id")?,
        event: row.try_get("", "event")?,
        status: row.try_get("", "status")?,
        attempts: u32::try_from(attempts).unwrap_or(0),
        next_attempt_at: row.try_get("", "next_attempt_at")?,
        last_status_code: code.and_then(|c| u16::try_from(c).ok()),
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    })
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
    let id: Uuid = row.try_get("", "id")?;
    let (event_id, event): (String, String) = (row.try_get("", "event_id")?, row.try_get("", "event")?);
    let update = Query::update()
        .table("webhook_deliveries")
        .value("next_attempt_at", Utc::now() + lease)
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    tx.execute(&update).await?;
    let command = DeliverWebhook { delivery_id: id, endpoint_id, event_id, event, attempt: 1 };
    queue_attempt(tx, tenant, command).await
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
    let ids = rows.iter().map(|row| row.try_get::<Uuid>("", "id")).collect::<Result<Vec<_>, _>>()?;
    let lease_rows = Query::update()
        .table("webhook_deliveries")
        .value("next_attempt_at", now + lease)
        .and_where(Expr::col("id").is_in(ids.iter().copied()))
        .to_owned();
    tx.execute(&lease_rows).await?;
    for (row, id) in rows.iter().zip(ids) {
        let tenant: String = row.try_get("", "tenant")?;
        let (event_id, event): (String, String) = (row.try_get("", "event_id")?, row.try_get("", "event")?);
        let attempts: i32 = row.try_get("", "attempts")?;
        let attempt = u32::try_from(attempts).unwrap_or(0).saturating_add(1);
        let command =
            DeliverWebhook { delivery_id: id, endpoint_id: row.try_get("", "endpoint_id")?, event_id, event, attempt };
        queue_attempt(&tx, &tenant, command).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// Which deliveries or attempts to list.
#[derive(Debug, Default)]
pub struct Filter {
    /// One event's.
    pub event_id: Option<String>,
    /// Deliveries: `pending`, `succeeded`, `failed`; attempts: `succeeded`, `failed`, `gave_up`.
    pub status: Option<String>,
    /// Only events about the organisation's own things or these subaccounts (the caller's reach);
    /// `None`: all.
    pub subaccounts: Option<Vec<Uuid>>,
    /// Only these endpoints' (one named, or those the caller sees); `None`: any.
    pub endpoint_ids: Option<Vec<Uuid>>,
}

/// Deliveries about the organisation's own things or one of `subaccounts`.
fn readable(subaccounts: &[Uuid]) -> sea_orm::sea_query::SimpleExpr {
    Expr::col("subaccount_id").is_null().or(Expr::col("subaccount_id").is_in(subaccounts.iter().copied()))
}

fn filtered(mut query: SelectStatement, tenant: &str, filter: &Filter, status_column: &'static str) -> SelectStatement {
    query.and_where(Expr::col("tenant").eq(tenant));
    if let Some(endpoints) = &filter.endpoint_ids {
        query.and_where(Expr::col("endpoint_id").is_in(endpoints.iter().copied()));
    }
    if let Some(event) = &filter.event_id {
        query.and_where(Expr::col("event_id").eq(event.as_str()));
    }
    if let Some(status) = &filter.status {
        query.and_where(Expr::col(status_column).eq(status.as_str()));
    }
    query
}

/// One page of deliveries, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    filter: &Filter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Delivery>, u64), DbErr> {
    let mut query = Query::select().columns(COLUMNS).from("webhook_deliveries").to_owned();
    if let Some(subaccounts) = &filter.subaccounts {
        query.and_where(readable(subaccounts));
    }
    let query = filtered(query, tenant, filter, "status")
        .order_by("created_at", Order::Desc)
        .order_by("id", Order::Desc)
        .to_owned();
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, total))
}

/// One page of attempts, newest first.
pub async fn attempts(
    db: &impl ConnectionTrait,
    tenant: &str,
    filter: &Filter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Attempt>, u64), DbErr> {
    let mut query = Query::select().columns(ATTEMPT_COLUMNS).from("webhook_attempts").to_owned();
    if let Some(subaccounts) = &filter.subaccounts {
        let mut deliveries = Query::select()
            .column("id")
            .from("webhook_deliveries")
            .and_where(Expr::col("tenant").eq(tenant))
            .and_where(readable(subaccounts))
            .to_owned();
        if let Some(endpoints) = &filter.endpoint_ids {
            deliveries.and_where(Expr::col("endpoint_id").is_in(endpoints.iter().copied()));
        }
        query.and_where(Expr::col("delivery_id").in_subquery(deliveries));
    }
    let query = filtered(query, tenant, filter, "outcome").order_by("seq", Order::Desc).to_owned();
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    let attempts = rows
        .iter()
        .map(|row| {
            let (attempt, latency): (i32, i32) = (row.try_get("", "attempt")?, row.try_get("", "latency_ms")?);
            let code: Option<i16> = row.try_get("", "status_code")?;
            Ok(Attempt {
                delivery_id: row.try_get("", "delivery_id")?,
                endpoint_id: row.try_get("", "endpoint_id")?,
                event_id: row.try_get("", "event_id")?,
                attempt: u32::try_from(attempt).unwrap_or(0),
                outcome: row.try_get("", "outcome")?,
                status_code: code.and_then(|c| u16::try_from(c).ok()),
                latency_ms: u32::try_from(latency).unwrap_or(0),
                error: row.try_get("", "error")?,
                response: row.try_get("", "response")?,
                attempted_at: row.try_get("", "attempted_at")?,
            })
        })
        .collect::<Result<_, DbErr>>()?;
    Ok((attempts, total))
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
        let (event_id, event): (String, String) = (row.try_get("", "event_id")?, row.try_get("", "event")?);
        let subaccount_id: Option<Uuid> = row.try_get("", "subaccount_id")?;
        // By what it may receive, not by subscription: an event since unsubscribed goes again.
        if !endpoint.may_receive(&event, schemas::Reach::of(subaccount_id)) {
            continue;
        }
        let delivery = NewDelivery { tenant, endpoint_id, event_id: &event_id, event: &event, subaccount_id };
        ids.push(insert(tx, cause, &delivery, Some(lease), now).await?);
    }
    Ok(ids)
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
