//! The delivery log as partners read it: `webhook_deliveries` (one event for one endpoint) and
//! `webhook_attempts` (each try), filtered to what the caller reads.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Not finished: an attempt is queued, running, or scheduled.
pub const PENDING: &str = "pending";
/// A 2xx arrived.
pub const SUCCEEDED: &str = "succeeded";
/// Every attempt failed (or the endpoint went away).
pub const FAILED: &str = "failed";

/// The columns a [`Delivery`] is read from.
pub const COLUMNS: [&str; 10] = [
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
pub const ATTEMPT_COLUMNS: [&str; 10] = [
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

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct DeliveryRow {
    id: Uuid,
    endpoint_id: Uuid,
    event_id: String,
    event: String,
    status: String,
    attempts: i32,
    next_attempt_at: Option<DateTime<Utc>>,
    last_status_code: Option<i16>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<DeliveryRow> for Delivery {
    fn from(row: DeliveryRow) -> Self {
        Delivery {
            id: row.id,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            event: row.event,
            status: row.status,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            next_attempt_at: row.next_attempt_at,
            last_status_code: row.last_status_code.and_then(|c| u16::try_from(c).ok()),
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// A row of [`ATTEMPT_COLUMNS`].
#[derive(FromQueryResult)]
struct AttemptRow {
    delivery_id: Uuid,
    endpoint_id: Uuid,
    event_id: String,
    attempt: i32,
    outcome: String,
    status_code: Option<i16>,
    latency_ms: i32,
    error: Option<String>,
    response: Option<String>,
    attempted_at: DateTime<Utc>,
}

impl From<AttemptRow> for Attempt {
    fn from(row: AttemptRow) -> Self {
        Attempt {
            delivery_id: row.delivery_id,
            endpoint_id: row.endpoint_id,
            event_id: row.event_id,
            attempt: u32::try_from(row.attempt).unwrap_or(0),
            outcome: row.outcome,
            status_code: row.status_code.and_then(|c| u16::try_from(c).ok()),
            latency_ms: u32::try_from(row.latency_ms).unwrap_or(0),
            error: row.error,
            response: row.response,
            attempted_at: row.attempted_at,
        }
    }
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
    let deliveries = rows.iter().map(|row| DeliveryRow::from_query_result(row, "").map(Delivery::from));
    Ok((deliveries.collect::<Result<_, _>>()?, total))
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
    let attempts = rows.iter().map(|row| AttemptRow::from_query_result(row, "").map(Attempt::from));
    Ok((attempts.collect::<Result<_, _>>()?, total))
}
