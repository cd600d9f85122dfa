//! The `customers` table (Levy Fleets customers): a customer signs up in a subaccount, or belongs
//! to the whole organisation (a marketplace's users). Every statement names the tenant.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::customers::CustomerProfile;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The table.
pub const TABLE: &str = "customers";

/// The columns a [`Customer`] is read from.
pub const COLUMNS: [&str; 12] = [
    "customer_id",
    "subaccount_id",
    "number",
    "email",
    "name",
    "phone",
    "external_ref",
    "payments_collected_by",
    "blocked",
    "block_reason",
    "created_at",
    "updated_at",
];

/// A customer as partners see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Customer {
    /// Customer id.
    pub id: Uuid,
    /// The subaccount they signed up in; none: the whole organisation's.
    pub subaccount_id: Option<Uuid>,
    /// Sequential number, per organisation.
    pub customer_number: u64,
    /// E-mail, name and phone.
    #[serde(flatten)]
    pub profile: CustomerProfile,
    /// The id a partner knows them by (a marketplace's user).
    pub external_ref: Option<String>,
    /// Who collects their payments: none, this platform (the wallet); a marketplace's name
    /// (`etvas`) for the users it brought: their rides are priced here and billed there.
    pub payments_collected_by: Option<String>,
    /// Blocked from riding.
    pub blocked: bool,
    /// Why, while blocked.
    pub block_reason: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// What the customer list is narrowed to.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Only these subaccounts' customers and the organisation's own; `None`: all.
    pub subaccounts: Option<Vec<Uuid>>,
    /// This e-mail, any case.
    pub email: Option<String>,
    /// Blocked or not.
    pub blocked: Option<bool>,
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    customer_id: Uuid,
    subaccount_id: Option<Uuid>,
    number: i64,
    email: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    external_ref: Option<String>,
    payments_collected_by: Option<String>,
    blocked: bool,
    block_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A customer from a row of [`COLUMNS`] (a select's, or a write's `RETURNING`).
pub fn from_row(row: &QueryResult) -> Result<Customer, DbErr> {
    let row = Row::from_query_result(row, "")?;
    Ok(Customer {
        id: row.customer_id,
        subaccount_id: row.subaccount_id,
        customer_number: u64::try_from(row.number).unwrap_or_default(),
        profile: CustomerProfile { email: row.email, name: row.name, phone: row.phone },
        external_ref: row.external_ref,
        payments_collected_by: row.payments_collected_by,
        blocked: row.blocked,
        block_reason: row.block_reason,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// `tenant`'s customers.
pub fn select(tenant: &str) -> SelectStatement {
    Query::select().columns(COLUMNS).from(TABLE).and_where(Expr::col("tenant").eq(tenant)).to_owned()
}

/// Customer `id` of `tenant`.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Customer>, DbErr> {
    let query = select(tenant).and_where(Expr::col("customer_id").eq(id)).to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// Who collects customer `id`'s payments, when not this platform (see [`Customer`]).
pub async fn payments_collected_by(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<String>, DbErr> {
    let query = Query::select()
        .column("payments_collected_by")
        .from(TABLE)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("customer_id").eq(id))
        .to_owned();
    match db.query_one(&query).await? {
        Some(row) => row.try_get("", "payments_collected_by"),
        None => Ok(None),
    }
}

/// Customer `id` of `tenant`, locked until the transaction ends (PostgreSQL; SQLite writes one
/// transaction at a time anyway).
pub async fn find_locked(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<Customer>, DbErr> {
    let mut query = select(tenant).and_where(Expr::col("customer_id").eq(id)).to_owned();
    crate::columns::for_update(db, &mut query);
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// One page of `tenant`'s customers that pass `filter`, oldest first.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    filter: &Filter,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Customer>, u64), DbErr> {
    let mut query = select(tenant);
    if let Some(subaccounts) = &filter.subaccounts {
        query.and_where(
            Expr::col("subaccount_id").is_null().or(Expr::col("subaccount_id").is_in(subaccounts.iter().copied())),
        );
    }
    if let Some(email) = &filter.email {
        query.and_where(Expr::col("email_search").eq(email.to_lowercase()));
    }
    if let Some(blocked) = filter.blocked {
        query.and_where(Expr::col("blocked").eq(blocked));
    }
    query.order_by("number", Order::Asc);
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    Ok((rows.iter().map(from_row).collect::<Result<_, _>>()?, total))
}
