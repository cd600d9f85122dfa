//! Integrations' usage per month and metric (`integration_usage`).

use chrono::{DateTime, Datelike, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use uuid::Uuid;

/// A call made with an integration's machine token.
pub const API_CALL: &str = "api_call";

/// An event delivered to an integration.
pub const EVENT_DELIVERY: &str = "event_delivery";

/// The billing period of `at`: its month, `2026-11`.
pub fn period_of(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", at.year(), at.month())
}

/// `integration`'s usage in `period`, per metric.
pub async fn of(db: &impl ConnectionTrait, integration_id: Uuid, period: &str) -> Result<Vec<(String, u64)>, DbErr> {
    let query = Query::select()
        .columns(["metric", "quantity"])
        .from("integration_usage")
        .and_where(Expr::col("integration_id").eq(integration_id))
        .and_where(Expr::col("period").eq(period))
        .to_owned();
    let rows = db.query_all(&query).await?;
    rows.iter()
        .map(|row| {
            let row = Row::from_query_result(row, "")?;
            Ok((row.metric, u64::try_from(row.quantity).unwrap_or(0)))
        })
        .collect()
}

/// A metric's row.
#[derive(FromQueryResult)]
struct Row {
    metric: String,
    quantity: i64,
}
