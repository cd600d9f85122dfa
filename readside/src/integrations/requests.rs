//! The partner request log (`api_requests`) as admins and the console read it.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One logged request, as admins list them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LoggedRequest {
    /// The edge's request id.
    pub request_id: String,
    /// Display prefix of the key used.
    pub key_prefix: Option<String>,
    /// HTTP method.
    pub method: String,
    /// Route template.
    pub route: String,
    /// Subaccount acted on.
    pub subaccount_id: Option<Uuid>,
    /// Response status.
    pub status: u16,
    /// Microseconds from request head to response.
    pub latency_us: u64,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

/// A row of `api_requests` as listed.
#[derive(FromQueryResult)]
struct Row {
    request_id: String,
    key_prefix: Option<String>,
    method: String,
    route: String,
    subaccount_id: Option<Uuid>,
    status: i16,
    latency_us: i64,
    received_at: DateTime<Utc>,
}

impl From<Row> for LoggedRequest {
    fn from(row: Row) -> Self {
        LoggedRequest {
            request_id: row.request_id,
            key_prefix: row.key_prefix,
            method: row.method,
            route: row.route,
            subaccount_id: row.subaccount_id,
            status: u16::try_from(row.status).unwrap_or(0),
            latency_us: u64::try_from(row.latency_us).unwrap_or(0),
            received_at: row.received_at,
        }
    }
}

/// One page of the requests made with `tenant`'s key `key_id`, newest first, and the total.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    key_id: Uuid,
    offset: u64,
    limit: u64,
) -> Result<(Vec<LoggedRequest>, u64), DbErr> {
    let query = Query::select()
        .columns([
            "request_id",
            "key_prefix",
            "method",
            "route",
            "subaccount_id",
            "status",
            "latency_us",
            "received_at",
        ])
        .from("api_requests")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("key_id").eq(key_id))
        .order_by("seq", Order::Desc)
        .to_owned();
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    let requests =
        rows.iter().map(|row| Row::from_query_result(row, "").map(LoggedRequest::from)).collect::<Result<_, _>>()?;
    Ok((requests, total))
}

/// An integration's use of the partner API, from the request log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct IntegrationUse {
    /// Its last request.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Requests since each of the moments asked about, in order.
    pub since: Vec<u64>,
}

/// When integration `id` of `tenant` last called, and how many requests it made since each of
/// `moments` (an index range on `(integration_id, received_at)` each).
///
/// One statement of scalar subqueries, so every figure is read from one snapshot: read apart, a
/// request logged between them was counted while its time was not yet the last one.
pub async fn integration_use(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
    moments: &[DateTime<Utc>],
) -> Result<IntegrationUse, DbErr> {
    let of_integration = || {
        Query::select()
            .from("api_requests")
            .and_where(Expr::col("integration_id").eq(id))
            .and_where(Expr::col("tenant").eq(tenant))
            .to_owned()
    };
    let mut query = Query::select();
    query.expr_as(of_integration().expr(Expr::col("received_at").max()).to_owned(), "last");
    for (i, moment) in moments.iter().enumerate() {
        let count =
            of_integration().expr(Expr::col("seq").count()).and_where(Expr::col("received_at").gte(*moment)).to_owned();
        query.expr_as(count, format!("n{i}"));
    }
    let Some(row) = db.query_one(&query).await? else { return Ok(IntegrationUse::default()) };
    // The counts are columns named by position, which no derived row can name.
    let since = (0..moments.len())
        .map(|i| row.try_get::<i64>("", &format!("n{i}")).map(|n| u64::try_from(n).unwrap_or(0)))
        .collect::<Result<_, DbErr>>()?;
    Ok(IntegrationUse { last_used_at: row.try_get("", "last")?, since })
}
