//! Monthly invoices of integrations (`integration_invoices`): priced from the month's usage and
//! the plan by one pure function, issued once per integration and month.

use chrono::{DateTime, Utc};
use schemas::billing::Plan;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

pub use readside::billing::invoices::{COLUMNS, Invoice, Line, find, from_row, list, price, select};
use readside::columns::to_json;

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
    use schemas::Currency;
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
