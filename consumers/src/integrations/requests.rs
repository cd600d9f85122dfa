//! The partner request log (`api_requests`) and the per-key daily counters it feeds: the writes.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use schemas::integrations::ApiRequestRecord;
use sea_orm::sea_query::{ArrayType, Expr, ExprTrait, InsertStatement, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, Statement, Value};
use uuid::Uuid;

pub use readside::integrations::requests::{IntegrationUse, LoggedRequest, integration_use, list};

/// Records a batch of `tenant`'s requests and counts them into their keys' daily usage and
/// last-used time. One multi-row insert per batch; a batch is recorded once because its command
/// is (the integrations group's inbox), so nothing is read back.
pub async fn record(db: &impl ConnectionTrait, tenant: &str, requests: &[ApiRequestRecord]) -> Result<(), DbErr> {
    if requests.is_empty() {
        return Ok(());
    }
    match db.get_database_backend() {
        DatabaseBackend::Postgres => db.execute_raw(insert_from_arrays(tenant, requests)).await?,
        _ => db.execute(&insert_from_values(tenant, requests)).await?,
    };
    count(db, tenant, requests).await
}

/// What [`record`] inserts, the same on either backend.
const COLUMNS: &str = "request_id, tenant, key_id, integration_id, key_prefix, method, route, subaccount_id, status, latency_us, received_at";

/// On PostgreSQL the batch goes in as one array per column, unnested: one statement text
/// whatever the batch's size, and every value in binary. (A `VALUES` list was a new statement of
/// up to 11,000 parameters to plan per batch; one JSON parameter cost PostgreSQL more to lex and
/// unpack, object by object, than the insert itself.) Arrays bound here carry no NULL elements,
/// so an absent id travels as the nil UUID (`Uuid::default()`) and an absent prefix as "" (neither
/// is ever real).
fn insert_from_arrays(tenant: &str, requests: &[ApiRequestRecord]) -> Statement {
    let column = |value: fn(&ApiRequestRecord) -> Value| -> Vec<Value> { requests.iter().map(value).collect() };
    let array = |kind: ArrayType, values: Vec<Value>| Value::Array(kind, Some(Box::new(values)));
    let values = [
        tenant.into(),
        array(ArrayType::String, column(|r| r.request_id.clone().into())),
        array(ArrayType::Uuid, column(|r| r.key_id.unwrap_or_default().into())),
        array(ArrayType::Uuid, column(|r| r.integration_id.unwrap_or_default().into())),
        array(ArrayType::String, column(|r| r.key_prefix.clone().unwrap_or_default().into())),
        array(ArrayType::String, column(|r| r.method.clone().into())),
        array(ArrayType::String, column(|r| r.route.clone().into())),
        array(ArrayType::Uuid, column(|r| r.subaccount_id.unwrap_or_default().into())),
        array(ArrayType::SmallInt, column(|r| i16::try_from(r.status).unwrap_or(i16::MAX).into())),
        array(ArrayType::BigInt, column(|r| i64::try_from(r.latency_us).unwrap_or(i64::MAX).into())),
        array(ArrayType::ChronoDateTimeUtc, column(|r| r.received_at.into())),
    ];
    const NIL: &str = "'00000000-0000-0000-0000-000000000000'::uuid";
    let sql = format!(
        "INSERT INTO api_requests ({COLUMNS}) \
         SELECT request_id, $1, NULLIF(key_id, {NIL}), NULLIF(integration_id, {NIL}), NULLIF(key_prefix, ''), \
         method, route, NULLIF(subaccount_id, {NIL}), status, latency_us, received_at \
         FROM UNNEST($2::text[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], $7::text[], $8::uuid[], \
         $9::int2[], $10::int8[], $11::timestamptz[]) \
         AS r(request_id, key_id, integration_id, key_prefix, method, route, subaccount_id, status, latency_us, received_at)"
    );
    Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, values)
}

fn insert_from_values(tenant: &str, requests: &[ApiRequestRecord]) -> InsertStatement {
    let mut insert = Query::insert();
    insert.into_table("api_requests").columns(COLUMNS.split(", "));
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
}

/// Counts the requests just logged into their keys' daily usage, last-used time and
/// integrations' metered calls.
async fn count(db: &impl ConnectionTrait, tenant: &str, requests: &[ApiRequestRecord]) -> Result<(), DbErr> {
    let mut per_key_day: HashMap<(Uuid, NaiveDate), i64> = HashMap::new();
    let mut last_used: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    // An integration's answered calls are its billable usage, metered per month; a refused one
    // (4xx, 5xx) is not billed.
    let mut per_integration_month: HashMap<(Uuid, String), u64> = HashMap::new();
    for request in requests {
        let received_at = request.received_at;
        if let Some(integration) = request.integration_id
            && request.status < 400
        {
            *per_integration_month.entry((integration, crate::billing::usage::period_of(received_at))).or_default() +=
                1;
        }
        let Some(key) = request.key_id else { continue };
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
