//! Monthly invoices of integrations (`integration_invoices`): priced from the month's usage and
//! the plan by one pure function, issued once per integration and month.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::Currency;
use schemas::billing::Plan;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{json_column, to_json};

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

const COLUMNS: [&str; 11] = [
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

fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from("integration_invoices").to_owned()
}

fn from_row(row: &QueryResult) -> Result<Invoice, DbErr> {
    let currency: String = row.try_get("", "currency")?;
    Ok(Invoice {
        id: row.try_get("", "invoice_id")?,
        integration_id: row.try_get("", "integration_id")?,
        period: row.try_get("", "period")?,
        currency: Currency::new(&currency).map_err(|e| DbErr::Type(format!("integration_invoices.currency: {e}")))?,
        lines: json_column(row, "integration_invoices", "lines")?,
        total: row.try_get("", "total")?,
        status: row.try_get("", "status")?,
        payment_id: row.try_get("", "payment_id")?,
        issued_at: row.try_get("", "issued_at")?,
        paid_at: row.try_get("", "paid_at")?,
    })
}

/// Issues the invoice of `integration` for `period` on `plan` from its usage; an invoice already
/// issued for the period is kept as it is and returned.
pub(crate) async fn issue(
    db: &impl ConnectionTrait,
    tenant: &str,
    integration_id: Uuid,
    period: &str,
    plan: &Plan,
    now: DateTime<Utc>,
) -> Result<(Invoice, bool), DbErr> {
    let usage = super::usage::of(db, integration_id, period).await?;
    let (lines, total) = price(plan, &usage);
    let insert = Query::insert()
        .into_table("integration_invoices")
        .columns(COLUMNS)
        .values_panic([
            Uuid::now_v7().into(),
            tenant.into(),
            integration_id.into(),
            period.into(),
            plan.currency.as_str().into(),
            to_json(&lines).into(),
            total.into(),
            "open".into(),
            Option::<Uuid>::None.into(),
            now.into(),
            Option::<DateTime<Utc>>::None.into(),
        ])
        .on_conflict(OnConflict::columns(["integration_id", "period"]).do_nothing().to_owned())
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    if let Some(row) = db.query_one(&insert).await? {
        return Ok((from_row(&row)?, true));
    }
    let existing = select()
        .and_where(Expr::col("integration_id").eq(integration_id))
        .and_where(Expr::col("period").eq(period))
        .to_owned();
    let row = db.query_one(&existing).await?.ok_or(DbErr::RecordNotFound("the period's invoice".into()))?;
    Ok((from_row(&row)?, false))
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

/// Marks an open invoice paid by `payment_id`; false if it was not open.
pub(crate) async fn mark_paid(
    db: &impl ConnectionTrait,
    invoice_id: Uuid,
    payment_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let update = Query::update()
        .table("integration_invoices")
        .value("status", "paid")
        .value("payment_id", payment_id)
        .value("paid_at", now)
        .and_where(Expr::col("invoice_id").eq(invoice_id))
        .and_where(Expr::col("status").eq("open"))
        .to_owned();
    Ok(db.execute(&update).await?.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use schemas::billing::MeteredPrice;

    use super::*;

    fn plan() -> Plan {
        Plan {
            currency: Currency::GHS,
            monthly_fee: 5_000,
            metrics: vec![
                MeteredPrice { metric: "api_call".into(), included: 10_000, per_thousand: 100 },
                MeteredPrice { metric: "event_delivery".into(), included: 1_000, per_thousand: 50 },
            ],
        }
    }

    #[test]
    fn the_fee_and_what_is_used_beyond_the_included_units_are_billed() {
        let usage = vec![("api_call".to_owned(), 12_500), ("event_delivery".to_owned(), 900)];
        let (lines, total) = price(&plan(), &usage);
        // 2,500 calls beyond at 100 per thousand = 250; deliveries within the included ones.
        assert_eq!(lines.iter().map(|l| l.amount).collect::<Vec<_>>(), vec![5_000, 250, 0]);
        assert_eq!(total, 5_250);
    }

    #[test]
    fn a_started_thousand_is_prorated_and_rounded_up() {
        let (_, total) = price(&plan(), &[("api_call".to_owned(), 10_001)]);
        assert_eq!(total, 5_001, "one call beyond costs 0.1, rounded up to a minor unit");
        let (_, total) = price(&plan(), &[]);
        assert_eq!(total, 5_000, "no usage: the fee");
    }
}
