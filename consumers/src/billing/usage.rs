//! Integrations' usage per month and metric (`integration_usage`), counted from the bus: API
//! calls from the request log's batches, event deliveries from `usage.record`.

pub use readside::billing::usage::{API_CALL, EVENT_DELIVERY, of, period_of};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

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
