//! Monthly invoices of integrations (`integration_invoices`): priced from the month's usage and
//! the plan by one pure function, issued once per integration and month.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::Currency;
use schemas::billing::Plan;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{Json, Named};

/// One line of an invoice.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Line {
    /// `monthly_fee`, or the metric (`api_call`, `event_delivery`).
    pub item: String,
    /// Units used in the month (1 for the fee).
    pub quantity: u64,
    /// Units the fee includes.
    pub included: u64,
    /// Minor units per thousand units beyond (the fee's line: the fee).
    pub unit_price: i64,
    /// What the line costs, minor units.
    pub amount: i64,
}

/// An integration's invoice for a month.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    /// Invoice id.
    pub id: Uuid,
    /// Integration billed.
    pub integration_id: Uuid,
    /// The month (`2026-11`).
    pub period: String,
    /// Currency of every amount.
    pub currency: Currency,
    /// What it is made of.
    pub lines: Vec<Line>,
    /// The sum of the lines.
    pub total: i64,
    /// `open` or `paid`.
    pub status: String,
    /// The payment that paid it.
    pub payment_id: Option<Uuid>,
    /// Issued.
    pub issued_at: DateTime<Utc>,
    /// Paid.
    pub paid_at: Option<DateTime<Utc>>,
}

/// Prices a month's `usage` (metric, units) on `plan`: the fee, then per metric the units beyond
/// those included, each started thousand prorated and rounded up to a minor unit.
pub fn price(plan: &Plan, usage: &[(String, u64)]) -> (Vec<Line>, i64) {
    let mut lines = vec![Line {
        item: "monthly_fee".into(),
        quantity: 1,
        included: 0,
        unit_price: plan.monthly_fee,
        amount: plan.monthly_fee,
    }];
    for metered in &plan.metrics {
        let quantity = usage.iter().filter(|(metric, _)| *metric == metered.metric).map(|(_, n)| *n).sum::<u64>();
        let beyond = i128::from(quantity.saturating_sub(metered.included));
        let amount = (beyond * i128::from(metered.per_thousand) + 999).div_euclid(1000);
        lines.push(Line {
            item: metered.metric.clone(),
            quantity,
            included: metered.included,
            unit_price: metered.per_thousand,
            amount: i64::try_from(amount).unwrap_or(i64::MAX),
        });
    }
    let total = lines.iter().fold(0i64, |sum, line| sum.saturating_add(line.amount));
    (lines, total)
}

/// The columns an [`Invoice`] is read from.
pub const COLUMNS: [&str; 11] = [
    "invoice_id",
    "tenant",
    "integration_id",
    "period",
    "currency",
    "lines",
    "total",
    "status",
    "payment_id",
    "issued_at",
    "paid_at",
];

/// Every invoice.
pub fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from("integration_invoices").to_owned()
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    invoice_id: Uuid,
    integration_id: Uuid,
    period: String,
    currency: Named<Currency>,
    lines: Json<Vec<Line>>,
    total: i64,
    status: String,
    payment_id: Option<Uuid>,
    issued_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
}

/// An invoice from a row of [`COLUMNS`].
pub fn from_row(row: &QueryResult) -> Result<Invoice, DbErr> {
    let row = Row::from_query_result(row, "")?;
    Ok(Invoice {
        id: row.invoice_id,
        integration_id: row.integration_id,
        period: row.period,
        currency: row.currency.0,
        lines: row.lines.0,
        total: row.total,
        status: row.status,
        payment_id: row.payment_id,
        issued_at: row.issued_at,
        paid_at: row.paid_at,
    })
}

/// Invoice `id` of `integration` in `tenant`.
pub async fn find(
    db: &impl ConnectionTrait,
    tenant: &str,
    integration_id: Uuid,
    id: Uuid,
) -> Result<Option<Invoice>, DbErr> {
    let query = select()
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("integration_id").eq(integration_id))
        .and_where(Expr::col("invoice_id").eq(id))
        .to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// `integration`'s invoices, newest period first.
pub async fn list(db: &impl ConnectionTrait, tenant: &str, integration_id: Uuid) -> Result<Vec<Invoice>, DbErr> {
    let query = select()
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("integration_id").eq(integration_id))
        .order_by("period", Order::Desc)
        .to_owned();
    db.query_all(&query).await?.iter().map(from_row).collect()
}
