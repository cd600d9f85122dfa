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
    count(db, tenant, &tally(requests)).await
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

/// The requests logged now of one key, integration, outcome and day.
struct Tally {
    key_id: Option<Uuid>,
    integration_id: Option<Uuid>,
    /// Answered (status below 400): an integration's billable call.
    answered: bool,
    day: NaiveDate,
    requests: i64,
    last_at: DateTime<Utc>,
}

/// The batch's requests tallied per key, integration, outcome and day.
fn tally(requests: &[ApiRequestRecord]) -> Vec<Tally> {
    let mut tallies: HashMap<(Option<Uuid>, Option<Uuid>, bool, NaiveDate), Tally> = HashMap::new();
    for request in requests {
        let (key_id, integration_id, received_at) = (request.key_id, request.integration_id, request.received_at);
        let (answered, day) = (request.status < 400, received_at.date_naive());
        let tally = tallies.entry((key_id, integration_id, answered, day)).or_insert(Tally {
            key_id,
            integration_id,
            answered,
            day,
            requests: 0,
            last_at: received_at,
        });
        tally.requests += 1;
        tally.last_at = Ord::max(tally.last_at, received_at);
    }
    tallies.into_values().collect()
}

/// Counts the requests just logged into their keys' daily usage, last-used time and
/// integrations' metered calls.
async fn count(db: &impl ConnectionTrait, tenant: &str, tallies: &[Tally]) -> Result<(), DbErr> {
    let mut per_key_day: HashMap<(Uuid, NaiveDate), i64> = HashMap::new();
    let mut last_used: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    // An integration's answered calls are its billable usage, metered per month; a refused one
    // (4xx, 5xx) is not billed.
    let mut per_integration_month: HashMap<(Uuid, String), u64> = HashMap::new();
    for tally in tallies {
        if let Some(integration) = tally.integration_id
            && tally.answered
        {
            let period = crate::billing::usage::period_of(tally.last_at);
            *per_integration_month.entry((integration, period)).or_default() +=
                u64::try_from(tally.requests).unwrap_or_default();
        }
        let Some(key) = tally.key_id else { continue };
        *per_key_day.entry((key, tally.day)).or_default() += tally.requests;
        let latest = last_used.entry(key).or_insert(tally.last_at);
        *latest = Ord::max(*latest, tally.last_at);
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
