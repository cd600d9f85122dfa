//! The `marketplace_users` table: a marketplace's user, the number we know them by (`u-000001`)
//! and the customer they are. Every statement names the tenant.

use chrono::{DateTime, Utc};
use schemas::marketplace::{PartnerProfile, UserData};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use uuid::Uuid;

use readside::columns::{json_column, to_json};

const TABLE: &str = "marketplace_users";

/// A mapped user.
#[derive(Clone, Debug, PartialEq)]
pub struct User {
    /// Our number for them.
    pub number: i64,
    /// The customer they are.
    pub customer_id: Uuid,
    /// The profile as last sent.
    pub profile: PartnerProfile,
}

impl User {
    /// The id the marketplace is told (`u-000001`).
    pub fn partner_id(&self) -> String {
        format!("u-{:06}", self.number)
    }
}

fn from_row(row: &QueryResult) -> Result<User, DbErr> {
    Ok(User {
        number: row.try_get("", "number")?,
        customer_id: row.try_get("", "customer_id")?,
        profile: json_column(row, TABLE, "profile")?,
    })
}

fn is(tenant: &str, marketplace: &str, user_id: Uuid) -> [sea_orm::sea_query::SimpleExpr; 3] {
    [Expr::col("tenant").eq(tenant), Expr::col("marketplace").eq(marketplace), Expr::col("user_id").eq(user_id)]
}

/// The user `user_id` of `marketplace`, as `tenant` knows them.
pub async fn find(
    db: &impl ConnectionTrait,
    tenant: &str,
    marketplace: &str,
    user_id: Uuid,
) -> Result<Option<User>, DbErr> {
    let mut query = Query::select().columns(["number", "customer_id", "profile"]).from(TABLE).to_owned();
    for condition in is(tenant, marketplace, user_id) {
        query.and_where(condition);
    }
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// Maps a new user numbered `number`; `None` if they were mapped already (by a concurrent
/// command), in which case nothing is written.
pub async fn insert(
    db: &impl ConnectionTrait,
    tenant: &str,
    marketplace: &str,
    user_id: Uuid,
    number: i64,
    data: &UserData,
    now: DateTime<Utc>,
) -> Result<Option<User>, DbErr> {
    let user = User { number, customer_id: Uuid::now_v7(), profile: data.user.clone() };
    let insert = Query::insert()
        .into_table(TABLE)
        .columns([
            "tenant",
            "marketplace",
            "user_id",
            "number",
            "customer_id",
            "profile",
            "web_identity",
            "created_at",
            "updated_at",
        ])
        .values_panic([
            tenant.into(),
            marketplace.into(),
            user_id.into(),
            number.into(),
            user.customer_id.into(),
            to_json(&data.user).into(),
            data.web_identity.as_ref().map(to_json).into(),
            now.into(),
            now.into(),
        ])
        .on_conflict(OnConflict::columns(["tenant", "marketplace", "user_id"]).do_nothing().to_owned())
        .to_owned();
    let inserted = db.execute(&insert).await?.rows_affected() == 1;
    Ok(inserted.then_some(user))
}

/// Replaces a mapped user's profile; `None` if the user is not mapped.
pub async fn update(
    db: &impl ConnectionTrait,
    tenant: &str,
    marketplace: &str,
    user_id: Uuid,
    data: &UserData,
    now: DateTime<Utc>,
) -> Result<Option<User>, DbErr> {
    let mut update = Query::update()
        .table(TABLE)
        .value("profile", to_json(&data.user))
        .value("web_identity", data.web_identity.as_ref().map(to_json))
        .value("updated_at", now)
        .returning(Query::returning().columns(["number", "customer_id", "profile"]))
        .to_owned();
    for condition in is(tenant, marketplace, user_id) {
        update.and_where(condition);
    }
    db.query_one(&update).await?.as_ref().map(from_row).transpose()
}

/// Erases a mapped user's profile, keeping the mapping (a resent event still finds them); `None`
/// if the user is not mapped.
pub async fn erase(
    db: &impl ConnectionTrait,
    tenant: &str,
    marketplace: &str,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<User>, DbErr> {
    let erased = UserData { user: PartnerProfile::default(), web_identity: None };
    update(db, tenant, marketplace, user_id, &erased, now).await
}
