//! Paystack payments of integrations (`integration_payments`): recorded when initialized (one per
//! Idempotency-Key), settled once when Paystack's verify confirms at least the amount in the
//! currency, which also marks the invoice paid.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::Currency;
use schemas::billing::{InitializePayment, SettlePayment};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A payment as admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// Our payment id.
    pub id: Uuid,
    /// Integration paying.
    pub integration_id: Uuid,
    /// The invoice it pays, if any.
    pub invoice_id: Option<Uuid>,
    /// Billing e-mail.
    pub email: String,
    /// Amount, minor units.
    pub amount: i64,
    /// Currency.
    pub currency: Currency,
    /// Paystack's reference.
    pub reference: String,
    /// Where it is paid.
    pub authorization_url: String,
    /// `pending` or `success`.
    pub status: String,
    /// What Paystack confirmed, minor units.
    pub paid_amount: Option<i64>,
    /// Initialized.
    pub created_at: DateTime<Utc>,
    /// Settled.
    pub paid_at: Option<DateTime<Utc>>,
}

const COLUMNS: [&str; 14] = [
    "payment_id",
    "tenant",
    "integration_id",
    "invoice_id",
    "email",
    "amount",
    "currency",
    "idempotency_key",
    "reference",
    "authorization_url",
    "status",
    "paid_amount",
    "created_at",
    "paid_at",
];

fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from("integration_payments").to_owned()
}

fn from_row(row: &QueryResult) -> Result<(String, Payment), DbErr> {
    let currency: String = row.try_get("", "currency")?;
    let payment = Payment {
        id: row.try_get("", "payment_id")?,
        integration_id: row.try_get("", "integration_id")?,
        invoice_id: row.try_get("", "invoice_id")?,
        email: row.try_get("", "email")?,
        amount: row.try_get("", "amount")?,
        currency: Currency::new(&currency).map_err(|e| DbErr::Type(format!("integration_payments.currency: {e}")))?,
        reference: row.try_get("", "reference")?,
        authorization_url: row.try_get("", "authorization_url")?,
        status: row.try_get("", "status")?,
        paid_amount: row.try_get("", "paid_amount")?,
        created_at: row.try_get("", "created_at")?,
        paid_at: row.try_get("", "paid_at")?,
    };
    Ok((row.try_get("", "tenant")?, payment))
}

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

/// The payment with Paystack reference `reference`, whatever its tenant (webhooks), with its tenant.
pub async fn by_reference(db: &impl ConnectionTrait, reference: &str) -> Result<Option<(String, Payment)>, DbErr> {
    let query = select().and_where(Expr::col("reference").eq(reference)).to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
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
