//! Integrations' usage per month and metric (`integration_usage`), counted from the bus: API
//! calls from the request log's batches, event deliveries from `usage.record`.

use chrono::{DateTime, Datelike, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

/// A call made with an integration's machine token.
pub const API_CALL: &str = "api_call";
/// An event delivered to an integration.
pub const EVENT_DELIVERY: &str = "event_delivery";

/// The billing period of `at`: its month, `2026-11`.
pub fn period_of(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", at.year(), at.month())
}

/// Adds `quantity` units of `metric` to `integration`'s usage in `period`.
pub(crate) async fn add(
    db: &impl ConnectionTrait,
    tenant: &str,
    integration_id: Uuid,
    period: &str,
    metric: &str,
    quantity: u64,
) -> Result<(), DbErr> {
    let quantity = i64::try_from(quantity).unwrap_or(i64::MAX);
    let insert = Query::insert()
        .into_table("integration_usage")
        .columns(["integration_id", "period", "metric", "tenant", "quantity"])
        .values_panic([integration_id.into(), period.into(), metric.into(), tenant.into(), quantity.into()])
        .on_conflict(
            OnConflict::columns(["integration_id", "period", "metric"])
                .value("quantity", Expr::col(("integration_usage", "quantity")).add(quantity))
                .to_owned(),
        )
        .to_owned();
    db.execute(&insert).await.map(|_| ())
}

/// `integration`'s usage in `period`, per metric.
pub async fn of(db: &impl ConnectionTrait, integration_id: Uuid, period: &str) -> Result<Vec<(String, u64)>, DbErr> {
    let query = Query::select()
        .columns(["metric", "quantity"])
        .from("integration_usage")
        .and_where(Expr::col("integration_id").eq(integration_id))
        .and_where(Expr::col("period").eq(period))
        .to_owned();
    db.query_all(&query)
        .await?
        .iter()
        .map(|row| {
            let quantity: i64 = row.try_get("", "quantity")?;
            Ok((row.try_get("", "metric")?, u64::try_from(quantity).unwrap_or(0)))
        })
        .collect()
}
