//! Paystack payments of integrations (`integration_payments`): recorded when initialized (one per
//! Idempotency-Key), settled once when Paystack's verify confirms at least the amount in the
//! currency, which also marks the invoice paid.

use chrono::{DateTime, Utc};
pub use readside::billing::payments::{COLUMNS, Payment, by_reference, from_row, select};
use schemas::billing::{InitializePayment, SettlePayment};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};

/// Records an initialized payment; one already recorded for the same Idempotency-Key is kept.
pub(crate) async fn record(
    db: &impl ConnectionTrait,
    tenant: &str,
    command: &InitializePayment,
    now: DateTime<Utc>,
) -> Result<Payment, DbErr> {
    let insert = Query::insert()
        .into_table("integration_payments")
        .columns(COLUMNS)
        .values_panic([
            command.payment_id.into(),
            tenant.into(),
            command.integration_id.into(),
            command.invoice_id.into(),
            command.email.clone().into(),
            command.amount.into(),
            command.currency.as_str().into(),
            command.idempotency_key.clone().into(),
            command.reference.clone().into(),
            command.authorization_url.clone().into(),
            "pending".into(),
            Option::<i64>::None.into(),
            now.into(),
            Option::<DateTime<Utc>>::None.into(),
        ])
        .on_conflict(OnConflict::columns(["integration_id", "idempotency_key"]).do_nothing().to_owned())
        .to_owned();
    db.execute(&insert).await?;
    let query = select()
        .and_where(Expr::col("integration_id").eq(command.integration_id))
        .and_where(Expr::col("idempotency_key").eq(command.idempotency_key.as_str()))
        .to_owned();
    let row = db.query_one(&query).await?.ok_or(DbErr::RecordNotInserted)?;
    Ok(from_row(&row)?.1)
}

/// How a settlement went.
pub(crate) enum Settled {
    /// Settled now: the payment, and whether it paid an invoice.
    Now(Payment),
    /// Already settled before (a replayed webhook or verify): nothing changed.
    Before(Payment),
    /// Paystack confirmed less, or another currency: nothing changed.
    Short(Payment),
    /// No such payment.
    Unknown,
}

/// Settles a payment once, when Paystack confirmed at least its amount in its currency.
pub(crate) async fn settle(
    db: &impl ConnectionTrait,
    tenant: &str,
    command: &SettlePayment,
    now: DateTime<Utc>,
) -> Result<Settled, DbErr> {
    let query = select()
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("payment_id").eq(command.payment_id))
        .to_owned();
    let Some(row) = db.query_one(&query).await? else { return Ok(Settled::Unknown) };
    let (_, mut payment) = from_row(&row)?;
    if payment.status != "pending" {
        return Ok(Settled::Before(payment));
    }
    if command.currency != payment.currency || command.amount < payment.amount {
        return Ok(Settled::Short(payment));
    }
    let update = Query::update()
        .table("integration_payments")
        .value("status", "success")
        .value("paid_amount", command.amount)
        .value("paid_at", now)
        .and_where(Expr::col("payment_id").eq(command.payment_id))
        .and_where(Expr::col("status").eq("pending"))
        .to_owned();
    if db.execute(&update).await?.rows_affected() == 0 {
        return Ok(Settled::Before(payment));
    }
    if let Some(invoice) = payment.invoice_id {
        super::invoices::mark_paid(db, invoice, payment.id, now).await?;
    }
    payment.status = "success".into();
    payment.paid_amount = Some(command.amount);
    payment.paid_at = Some(now);
    Ok(Settled::Now(payment))
}
