//! The partner request log (`api_requests`) and the per-key daily counters it feeds: the writes.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use schemas::integrations::ApiRequestRecord;
use sea_orm::sea_query::{Expr, ExprTrait, InsertStatement, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, FromQueryResult, QueryResult, Statement};
use uuid::Uuid;

pub use readside::integrations::requests::{IntegrationUse, LoggedRequest, integration_use, list};

/// Records a batch of `tenant`'s requests once (a redelivered batch adds nothing) and counts the
/// new ones into their keys' daily usage and last-used time. One multi-row insert per batch.
pub async fn record(db: &impl ConnectionTrait, tenant: &str, requests: &[ApiRequestRecord]) -> Result<(), DbErr> {
    if requests.is_empty() {
        return Ok(());
    }
    let inserted = match db.get_database_backend() {
        DatabaseBackend::Postgres => db.query_all_raw(insert_from_json(tenant, requests)?).await?,
        _ => db.query_all(&insert_from_values(tenant, requests)).await?,
    };
    count(db, tenant, &inserted).await
}

/// What [`record`] inserts and reads back, the same on either backend.
const COLUMNS: &str = "request_id, tenant, key_id, integration_id, key_prefix, method, route, subaccount_id, status, latency_us, received_at";
const RETURNING: &str = "key_id, integration_id, status, received_at";

/// On PostgreSQL the batch goes in as one JSON parameter unpacked by `json_to_recordset`: one
/// statement text whatever the batch's size, where a `VALUES` list of eleven parameters a row was
/// a new statement of up to 11,000 parameters to parse and plan per batch.
fn insert_from_json(tenant: &str, requests: &[ApiRequestRecord]) -> Result<Statement, DbErr> {
    let rows = serde_json::to_string(requests).map_err(|e| DbErr::Custom(e.to_string()))?;
    let sql = format!(
        "INSERT INTO api_requests ({COLUMNS}) \
         SELECT request_id, $1, key_id, integration_id, key_prefix, method, route, subaccount_id, status, latency_us, received_at \
         FROM json_to_recordset($2::json) AS r(request_id text, key_id uuid, integration_id uuid, key_prefix text, \
         method text, route text, subaccount_id uuid, status int2, latency_us int8, received_at timestamptz) \
         ON CONFLICT (request_id) DO NOTHING RETURNING {RETURNING}"
    );
    Ok(Statement::from_sql_and_values(DatabaseBackend::Postgres, sql, [tenant.into(), rows.into()]))
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
        .on_conflict(OnConflict::column("request_id").do_nothing().to_owned())
        .returning(Query::returning().columns(RETURNING.split(", ")));
    insert
}

/// Counts the requests just logged into their keys' daily usage, last-used time and
/// integrations' metered calls. Only the rows inserted now come back from the insert: a
/// redelivered batch counts nothing twice.
async fn count(db: &impl ConnectionTrait, tenant: &str, inserted: &[QueryResult]) -> Result<(), DbErr> {
    let mut per_key_day: HashMap<(Uuid, NaiveDate), i64> = HashMap::new();
    let mut last_used: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    // An integration's answered calls are its billable usage, metered per month; a refused one
    // (4xx, 5xx) is not billed.
    let mut per_integration_month: HashMap<(Uuid, String), u64> = HashMap::new();
    for row in inserted {
        let Inserted { key_id, integration_id, status, received_at } = Inserted::from_query_result(row, "")?;
        if let Some(integration) = integration_id
            && status < 400
        {
            *per_integration_month.entry((integration, crate::billing::usage::period_of(received_at))).or_default() +=
                1;
        }
        let Some(key) = key_id else { continue };
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

/// What [`record`] reads back of each request it logged.
#[derive(FromQueryResult)]
struct Inserted {
    key_id: Option<Uuid>,
    integration_id: Option<Uuid>,
    status: i16,
    received_at: DateTime<Utc>,
}
