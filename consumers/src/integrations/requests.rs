//! The partner request log (`api_requests`) and the per-key daily counters it feeds.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use schemas::integrations::ApiRequestRecord;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Order, Query};
use sea_orm::{ConnectionTrait, DbErr};
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

/// Records a batch of `tenant`'s requests once (a redelivered batch adds nothing) and counts the
/// new ones into their keys' daily usage and last-used time. One multi-row insert per batch.
pub async fn record(db: &impl ConnectionTrait, tenant: &str, requests: &[ApiRequestRecord]) -> Result<(), DbErr> {
    if requests.is_empty() {
        return Ok(());
    }
    let mut insert = Query::insert();
    insert.into_table("api_requests").columns([
        "request_id",
        "tenant",
        "key_id",
        "integration_id",
        "key_prefix",
        "method",
        "route",
        "subaccount_id",
        "status",
        "latency_us",
        "received_at",
    ]);
    for request in requests {
        insert.values_panic([
            request.request_id.as_str().into(),
            tenant.into(),
            request.key_id.into(),
            request.integration_id.into(),
            request.key_prefix.clone().into(),
            request.method.as_str().into(),
            request.route.as_str().into(),
            request.subaccount_id.into(),
            i16::try_from(request.status).unwrap_or(i16::MAX).into(),
            i64::try_from(request.latency_us).unwrap_or(i64::MAX).into(),
            request.received_at.into(),
        ]);
    }
    insert
        .on_conflict(OnConflict::column("request_id").do_nothing().to_owned())
        .returning(Query::returning().columns(["key_id", "integration_id", "status", "received_at"]));
    // Only the rows inserted now come back: a redelivered batch counts nothing twice.
    let mut per_key_day: HashMap<(Uuid, NaiveDate), i64> = HashMap::new();
    let mut last_used: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    // An integration's answered calls are its billable usage, metered per month; a refused one
    // (4xx, 5xx) is not billed.
    let mut per_integration_month: HashMap<(Uuid, String), u64> = HashMap::new();
    for row in db.query_all(&insert).await? {
        let received_at: DateTime<Utc> = row.try_get("", "received_at")?;
        let status: i16 = row.try_get("", "status")?;
        if let Some(integration) = row.try_get::<Option<Uuid>>("", "integration_id")?
            && status < 400
        {
            *per_integration_month.entry((integration, crate::billing::usage::period_of(received_at))).or_default() +=
                1;
        }
        let Some(key) = row.try_get::<Option<Uuid>>("", "key_id")? else { continue };
        *per_key_day.entry((key, received_at.date_naive())).or_default() += 1;
        let latest = last_used.entry(key).or_insert(received_at);
        *latest = Ord::max(*latest, received_at);
    }
    for ((key, day), count) in per_key_day {
        let upsert = Query::insert()
            .into_table("api_key_usage")
            .columns(["key_id", "day", "requests"])
            .values_panic([key.into(), day.into(), count.into()])
            .on_conflict(
                OnConflict::columns(["key_id", "day"])
                    .value(
                        "requests",
                        Expr::col(("api_key_usage", "requests")).add(Expr::col(("excluded", "requests"))),
                    )
                    .to_owned(),
            )
            .to_owned();
        db.execute(&upsert).await?;
    }
    for ((integration, period), calls) in per_integration_month {
        crate::billing::usage::add(db, tenant, integration, &period, crate::billing::usage::API_CALL, calls).await?;
    }
    for (key, at) in last_used {
        // Batches may arrive out of order: last_used_at only moves forward.
        let update = Query::update()
            .table("api_keys")
            .value("last_used_at", at)
            .and_where(Expr::col("id").eq(key))
            .and_where(Expr::col("tenant").eq(tenant))
            .and_where(Expr::col("last_used_at").is_null().or(Expr::col("last_used_at").lt(at)))
            .to_owned();
        db.execute(&update).await?;
    }
    Ok(())
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
    let requests = rows
        .iter()
        .map(|row| {
            let status: i16 = row.try_get("", "status")?;
            let latency: i64 = row.try_get("", "latency_us")?;
            Ok(LoggedRequest {
                request_id: row.try_get("", "request_id")?,
                key_prefix: row.try_get("", "key_prefix")?,
                method: row.try_get("", "method")?,
                route: row.try_get("", "route")?,
                subaccount_id: row.try_get("", "subaccount_id")?,
                status: u16::try_from(status).unwrap_or(0),
                latency_us: u64::try_from(latency).unwrap_or(0),
                received_at: row.try_get("", "received_at")?,
            })
        })
        .collect::<Result<_, DbErr>>()?;
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
    let since = (0..moments.len())
        .map(|i| row.try_get::<i64>("", &format!("n{i}")).map(|n| u64::try_from(n).unwrap_or(0)))
        .collect::<Result<_, DbErr>>()?;
    Ok(IntegrationUse { last_used_at: row.try_get("", "last")?, since })
}
