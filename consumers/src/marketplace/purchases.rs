//! The `marketplace_purchases` table: one row per user and product, numbered for the marketplace
//! (`p-000001`), with its standing: active, suspended (payment failed) or canceled.

use chrono::{DateTime, Utc};
use schemas::marketplace::Product;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use uuid::Uuid;

const TABLE: &str = "marketplace_purchases";

/// Where a purchase stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Paid for; delivered.
    Active,
    /// The marketplace could not collect payment.
    Suspended,
    /// Canceled by the user.
    Canceled,
}

impl Standing {
    /// The column value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Canceled => "canceled",
        }
    }

    fn parse(text: &str) -> Result<Self, DbErr> {
        match text {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "canceled" => Ok(Self::Canceled),
            other => Err(DbErr::Type(format!("{TABLE}.status: `{other}`"))),
        }
    }
}

/// A purchase.
#[derive(Clone, Debug, PartialEq)]
pub struct Purchase {
    /// Our number for it.
    pub number: i64,
    /// Its standing.
    pub standing: Standing,
    /// The product as last described.
    pub product: Product,
}

impl Purchase {
    /// The id the marketplace is told (`p-000001`).
    pub fn partner_id(&self) -> String {
        partner_id(self.number)
    }
}

fn partner_id(number: i64) -> String {
    format!("p-{number:06}")
}

const COLUMNS: [&str; 8] =
    ["product_id", "number", "status", "name", "price", "currency", "price_type", "price_interval"];

fn from_row(row: &QueryResult) -> Result<Purchase, DbErr> {
    let status: String = row.try_get("", "status")?;
    let currency: Option<String> = row.try_get("", "currency")?;
    let number: i64 = row.try_get("", "number")?;
    Ok(Purchase {
        number,
        standing: Standing::parse(&status)?,
        product: Product {
            id: row.try_get("", "product_id")?,
            partner_id: Some(partner_id(number)),
            name: row.try_get("", "name")?,
            price: row.try_get("", "price")?,
            currency: currency
                .map(|c| schemas::Currency::new(&c).map_err(|e| DbErr::Type(format!("{TABLE}.currency: {e}"))))
                .transpose()?,
            price_type: row.try_get("", "price_type")?,
            price_interval: row.try_get("", "price_interval")?,
        },
    })
}

fn is(tenant: &str, marketplace: &str, user_id: Uuid, product_id: Uuid) -> [SimpleExpr; 4] {
    [
        Expr::col("tenant").eq(tenant),
        Expr::col("marketplace").eq(marketplace),
        Expr::col("user_id").eq(user_id),
        Expr::col("product_id").eq(product_id),
    ]
}

/// `user_id`'s purchase of `product_id`.
pub async fn find(
    db: &impl ConnectionTrait,
    tenant: &str,
    marketplace: &str,
    user_id: Uuid,
    product_id: Uuid,
) -> Result<Option<Purchase>, DbErr> {
    let mut query = Query::select().columns(COLUMNS).from(TABLE).to_owned();
    for condition in is(tenant, marketplace, user_id, product_id) {
        query.and_where(condition);
    }
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// Records a first purchase numbered `number`; `None` if a concurrent command recorded it first.
pub async fn insert(
    db: &impl ConnectionTrait,
    tenant: &str,
    marketplace: &str,
    user_id: Uuid,
    product: &Product,
    number: i64,
    now: DateTime<Utc>,
) -> Result<Option<Purchase>, DbErr> {
    let insert = Query::insert()
        .into_table(TABLE)
        .columns(["tenant", "marketplace", "user_id"].into_iter().chain(COLUMNS).chain(["created_at", "updated_at"]))
        .values_panic([
            tenant.into(),
            marketplace.into(),
            user_id.into(),
            product.id.into(),
            number.into(),
            Standing::Active.as_str().into(),
            product.name.clone().into(),
            product.price.into(),
            product.currency.map(|c| c.to_string()).into(),
            product.price_type.clone().into(),
            product.price_interval.clone().into(),
            now.into(),
            now.into(),
        ])
        .on_conflict(OnConflict::columns(["tenant", "marketplace", "user_id", "product_id"]).do_nothing().to_owned())
        .to_owned();
    let inserted = db.execute(&insert).await?.rows_affected() == 1;
    let product = Product { partner_id: Some(partner_id(number)), ..product.clone() };
    Ok(inserted.then_some(Purchase { number, standing: Standing::Active, product }))
}

/// Sets a purchase's standing, and the product's description where the command gives one.
pub async fn set_standing(
    db: &impl ConnectionTrait,
    tenant: &str,
    marketplace: &str,
    user_id: Uuid,
    product: &Product,
    standing: Standing,
    now: DateTime<Utc>,
) -> Result<Option<Purchase>, DbErr> {
    let keep = |column: &str, value: sea_orm::Value| Expr::expr(Expr::val(value)).if_null(Expr::col(column.to_owned()));
    let mut update = Query::update()
        .table(TABLE)
        .value("status", standing.as_str())
        .value("name", keep("name", product.name.clone().into()))
        .value("price", keep("price", product.price.into()))
        .value("currency", keep("currency", product.currency.map(|c| c.to_string()).into()))
        .value("price_type", keep("price_type", product.price_type.clone().into()))
        .value("price_interval", keep("price_interval", product.price_interval.clone().into()))
        .value("updated_at", now)
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    for condition in is(tenant, marketplace, user_id, product.id) {
        update.and_where(condition);
    }
    db.query_one(&update).await?.as_ref().map(from_row).transpose()
}
