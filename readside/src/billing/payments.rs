//! Paystack payments of integrations (`integration_payments`).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::Currency;
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Named;

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

/// The columns a [`Payment`] is read from, with its tenant.
pub const COLUMNS: [&str; 14] = [
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

/// Every payment.
pub fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from("integration_payments").to_owned()
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    payment_id: Uuid,
    tenant: String,
    integration_id: Uuid,
    invoice_id: Option<Uuid>,
    email: String,
    amount: i64,
    currency: Named<Currency>,
    reference: String,
    authorization_url: String,
    status: String,
    paid_amount: Option<i64>,
    created_at: DateTime<Utc>,
    paid_at: Option<DateTime<Utc>>,
}

/// A payment and its tenant from a row of [`COLUMNS`].
pub fn from_row(row: &QueryResult) -> Result<(String, Payment), DbErr> {
    let row = Row::from_query_result(row, "")?;
    let payment = Payment {
        id: row.payment_id,
        integration_id: row.integration_id,
        invoice_id: row.invoice_id,
        email: row.email,
        amount: row.amount,
        currency: row.currency.0,
        reference: row.reference,
        authorization_url: row.authorization_url,
        status: row.status,
        paid_amount: row.paid_amount,
        created_at: row.created_at,
        paid_at: row.paid_at,
    };
    Ok((row.tenant, payment))
}

/// The payment with Paystack reference `reference`, whatever its tenant (webhooks), with its tenant.
pub async fn by_reference(db: &impl ConnectionTrait, reference: &str) -> Result<Option<(String, Payment)>, DbErr> {
    let query = select().and_where(Expr::col("reference").eq(reference)).to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}
