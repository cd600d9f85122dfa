//! The `purchases` and `invoices` tables (EVM seed): what a phone bought (a charging session)
//! and the providers' invoices that pay purchases and top-ups.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::Currency;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Named;

/// The columns a [`Purchase`] is read from.
pub const COLUMNS: [&str; 12] = [
    "purchase_id",
    "customer_id",
    "session_id",
    "charger_id",
    "energy_kwh",
    "amount",
    "currency",
    "status",
    "payment_option",
    "paid_at",
    "feedback_score",
    "created_at",
];

/// A purchase as the app sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Purchase {
    /// Purchase id.
    pub id: Uuid,
    /// Buyer.
    pub customer_id: Uuid,
    /// The charging session it is for.
    pub session_id: Uuid,
    /// Charger.
    pub charger_id: Uuid,
    /// Energy delivered, kWh.
    pub energy_kwh: f64,
    /// Price, minor units.
    pub amount: i64,
    /// Currency.
    pub currency: Currency,
    /// `pending`, `success`, `error` or `canceled`.
    pub status: String,
    /// How it was paid.
    pub payment_option: Option<String>,
    /// When it was paid.
    pub paid_at: Option<DateTime<Utc>>,
    /// The app's score, 1 to 5.
    pub feedback_score: Option<i16>,
    /// Made.
    pub created_at: DateTime<Utc>,
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct PurchaseRow {
    purchase_id: Uuid,
    customer_id: Uuid,
    session_id: Uuid,
    charger_id: Uuid,
    energy_kwh: f64,
    amount: i64,
    currency: Named<Currency>,
    status: String,
    payment_option: Option<String>,
    paid_at: Option<DateTime<Utc>>,
    feedback_score: Option<i16>,
    created_at: DateTime<Utc>,
}

/// A purchase from a row of [`COLUMNS`].
pub fn purchase_of(row: &QueryResult) -> Result<Purchase, DbErr> {
    let row = PurchaseRow::from_query_result(row, "")?;
    Ok(Purchase {
        id: row.purchase_id,
        customer_id: row.customer_id,
        session_id: row.session_id,
        charger_id: row.charger_id,
        energy_kwh: row.energy_kwh,
        amount: row.amount,
        currency: row.currency.0,
        status: row.status,
        payment_option: row.payment_option,
        paid_at: row.paid_at,
        feedback_score: row.feedback_score,
        created_at: row.created_at,
    })
}

/// Customer `customer_id`'s purchases.
pub fn select(tenant: &str, customer_id: Uuid) -> SelectStatement {
    Query::select()
        .columns(COLUMNS)
        .from("purchases")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(customer_id))
        .to_owned()
}

/// Customer `customer_id`'s purchase `id`.
pub async fn find(
    db: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
    id: Uuid,
) -> Result<Option<Purchase>, DbErr> {
    let query = select(tenant, customer_id).and_where(Expr::col("purchase_id").eq(id)).to_owned();
    db.query_one(&query).await?.map(|row| purchase_of(&row)).transpose()
}

/// One page of customer `customer_id`'s purchases, newest first, and how many there are.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    customer_id: Uuid,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Purchase>, u64), DbErr> {
    let query =
        select(tenant, customer_id).order_by("created_at", Order::Desc).order_by("purchase_id", Order::Desc).to_owned();
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    Ok((rows.iter().map(purchase_of).collect::<Result<_, _>>()?, total))
}

/// A provider's invoice, as the app and the edge see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Invoice {
    /// Our invoice id.
    pub id: Uuid,
    /// Owner.
    pub tenant: String,
    /// Payer.
    pub customer_id: Uuid,
    /// Minor units.
    pub amount: i64,
    /// Currency.
    pub currency: Currency,
    /// The provider's own id.
    pub provider_reference: String,
    /// `pending`, `success`, `error` or `canceled`.
    pub status: String,
    /// The purchase it pays; none for a top-up.
    pub purchase_id: Option<Uuid>,
    /// The provider (`QPAY`, `PAYSTACK`).
    pub provider: String,
}

/// Invoice `id`, whoever's it is (a provider's callback names only the invoice).
pub async fn invoice(db: &impl ConnectionTrait, id: Uuid) -> Result<Option<Invoice>, DbErr> {
    let query = Query::select()
        .columns([
            "invoice_id",
            "tenant",
            "customer_id",
            "amount",
            "currency",
            "provider_reference",
            "status",
            "purchase_id",
            "provider",
        ])
        .from("invoices")
        .and_where(Expr::col("invoice_id").eq(id))
        .to_owned();
    Ok(db.query_one(&query).await?.map(|row| InvoiceRow::from_query_result(&row, "")).transpose()?.map(|row| Invoice {
        id: row.invoice_id,
        tenant: row.tenant,
        customer_id: row.customer_id,
        amount: row.amount,
        currency: row.currency.0,
        provider_reference: row.provider_reference,
        status: row.status,
        purchase_id: row.purchase_id,
        provider: row.provider,
    }))
}

/// An invoice's row.
#[derive(FromQueryResult)]
struct InvoiceRow {
    invoice_id: Uuid,
    tenant: String,
    customer_id: Uuid,
    amount: i64,
    currency: Named<Currency>,
    provider_reference: String,
    status: String,
    purchase_id: Option<Uuid>,
    provider: String,
}
