//! The `subscriptions` table (INVERS Messaging API): subscriber queues as their owners see them,
//! each with what its maker's key reads now.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::integrations::Audience;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Json;
use crate::integrations::keys::{narrowed_audience, with_maker};

/// The table.
pub const TABLE: &str = "subscriptions";
/// The columns a [`StoredSubscription`] is read from (besides its maker's, [`with_maker`]).
pub const COLUMNS: [&str; 9] =
    ["subscription_id", "tenant", "name", "queue", "username", "events", "created_at", "key_id", "audience"];

/// A subscription as its owner sees it (never with its password).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Subscription {
    /// Subscription id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// The queue to consume.
    pub queue: String,
    /// The broker user that may read it.
    pub username: String,
    /// Event types delivered to it.
    pub events: Vec<String>,
    /// The subaccounts whose events it receives (besides the organisation's own); `null`: all.
    pub subaccount_ids: Option<Vec<Uuid>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A subscription with who made it and what it may receive, which nobody is shown.
#[derive(Clone, Debug)]
pub struct StoredSubscription {
    /// Owner.
    pub tenant: String,
    /// As its owner sees it.
    pub subscription: Subscription,
    /// The key that made it.
    pub key_id: Option<Uuid>,
    /// What it may receive: what its maker could read when it made it, narrowed by what the key
    /// reads now (a key's subaccounts or permissions taken away are taken from what it made; a
    /// deleted key leaves it as recorded, the organisation's to manage).
    pub audience: Audience,
}

/// A row of [`COLUMNS`] (the audience is read with its maker's, by [`narrowed_audience`]).
#[derive(FromQueryResult)]
struct Row {
    subscription_id: Uuid,
    tenant: String,
    name: String,
    queue: String,
    username: String,
    events: Json<Vec<String>>,
    created_at: DateTime<Utc>,
    key_id: Option<Uuid>,
}

fn from_row(row: &QueryResult) -> Result<StoredSubscription, DbErr> {
    let audience = narrowed_audience(row, TABLE)?;
    let row = Row::from_query_result(row, "")?;
    let subscription = Subscription {
        id: row.subscription_id,
        name: row.name,
        queue: row.queue,
        username: row.username,
        events: row.events.0,
        subaccount_ids: audience.subaccount_ids.clone(),
        created_at: row.created_at,
    };
    Ok(StoredSubscription { tenant: row.tenant, subscription, key_id: row.key_id, audience })
}

/// Subscriptions, each with what its maker's key reads now.
fn select() -> SelectStatement {
    let mut query = Query::select().columns(COLUMNS).from(TABLE).order_by("created_at", Order::Asc).to_owned();
    with_maker(&mut query, TABLE);
    query
}

/// `tenant`'s subscriptions, oldest first.
pub async fn list(db: &impl ConnectionTrait, tenant: &str) -> Result<Vec<StoredSubscription>, DbErr> {
    let query = select().and_where(Expr::col("tenant").eq(tenant)).to_owned();
    db.query_all(&query).await?.iter().map(from_row).collect()
}

/// Who may receive events of type `event` through a subscription, every tenant's: each
/// subscription taking it whose audience reads it, with that audience.
pub async fn hearing(db: &impl ConnectionTrait, event: &str) -> Result<Vec<(String, Audience)>, DbErr> {
    let all = db.query_all(&select()).await?.iter().map(from_row).collect::<Result<Vec<_>, _>>()?;
    Ok(all
        .into_iter()
        .filter(|s| s.subscription.events.iter().any(|e| e == event) && s.audience.reads(event))
        .map(|s| (s.tenant, s.audience))
        .collect())
}

/// Subscription `id` of `tenant`.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<StoredSubscription>, DbErr> {
    let query =
        select().and_where(Expr::col("tenant").eq(tenant)).and_where(Expr::col("subscription_id").eq(id)).to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}
