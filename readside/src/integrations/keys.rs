//! The `api_keys` table: partner keys as the edge reads them. Only the display prefix and the
//! SHA-256 of a key are ever stored.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use schemas::integrations::{Audience, KeyScope, Permission, RateLimits};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Json;

/// The columns a [`StoredKey`] is read from.
pub const COLUMNS: [&str; 16] = [
    "id",
    "tenant",
    "name",
    "display_prefix",
    "admin",
    "permissions",
    "scope",
    "per_minute",
    "per_hour",
    "per_day",
    "expires_at",
    "active",
    "created_at",
    "updated_at",
    "last_used_at",
    "key_hash",
];

/// A partner API key as stored (without its secret) and as admins see it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiKey {
    /// Key id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// First 12 characters of the key.
    pub prefix: String,
    /// Granted permissions.
    pub permissions: Vec<Permission>,
    /// Subaccount scope.
    #[serde(flatten)]
    pub scope: KeyScope,
    /// Request limits per window.
    pub rate_limits: RateLimits,
    /// When the key stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// Disabled keys get 401.
    pub active: bool,
    /// May manage the organisation's keys and read its request log.
    pub admin: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
    /// Last request made with it.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A key with what the edge needs to authenticate it, and never shows.
#[derive(Clone, Debug)]
pub struct StoredKey {
    /// The organisation (tenant) the key belongs to.
    pub tenant: String,
    /// SHA-256 of the key, hex.
    pub key_hash: String,
    /// The key's settings.
    pub key: ApiKey,
}

impl ApiKey {
    /// What the key reads when it names no subaccount: the reach of what it makes.
    pub fn audience(&self) -> Audience {
        Audience { subaccount_ids: self.scope.subaccounts(), permissions: self.permissions.clone() }
    }
}

impl StoredKey {
    /// Whether the key may be used at `now`: active and not expired.
    pub fn usable_at(&self, now: DateTime<Utc>) -> bool {
        self.key.active && self.key.expires_at.is_none_or(|expiry| now < expiry)
    }
}

/// Every key.
pub fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from("api_keys").to_owned()
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    id: Uuid,
    tenant: String,
    name: String,
    display_prefix: String,
    admin: bool,
    permissions: Json<Vec<Permission>>,
    scope: Json<KeyScope>,
    per_minute: i32,
    per_hour: i32,
    per_day: i32,
    expires_at: Option<DateTime<Utc>>,
    active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    key_hash: String,
}

/// A key from a row of [`COLUMNS`].
pub fn from_row(row: &QueryResult) -> Result<StoredKey, DbErr> {
    let row = Row::from_query_result(row, "")?;
    let limit =
        |value: i32, column: &str| u32::try_from(value).map_err(|e| DbErr::Type(format!("api_keys.{column}: {e}")));
    let key = ApiKey {
        id: row.id,
        name: row.name,
        prefix: row.display_prefix,
        permissions: row.permissions.0,
        scope: row.scope.0,
        rate_limits: RateLimits {
            per_minute: limit(row.per_minute, "per_minute")?,
            per_hour: limit(row.per_hour, "per_hour")?,
            per_day: limit(row.per_day, "per_day")?,
        },
        expires_at: row.expires_at,
        active: row.active,
        admin: row.admin,
        created_at: row.created_at,
        updated_at: row.updated_at,
        last_used_at: row.last_used_at,
    };
    Ok(StoredKey { tenant: row.tenant, key_hash: row.key_hash, key })
}

/// The key a statement read or wrote (`RETURNING`), if any.
pub async fn returned(
    db: &impl ConnectionTrait,
    statement: &impl sea_orm::StatementBuilder,
) -> Result<Option<StoredKey>, DbErr> {
    db.query_one(statement).await?.as_ref().map(from_row).transpose()
}

/// The key whose SHA-256 is `key_hash` (hex), whatever its tenant: authentication.
pub async fn find_by_hash(db: &impl ConnectionTrait, key_hash: &str) -> Result<Option<StoredKey>, DbErr> {
    let query = select().and_where(Expr::col("key_hash").eq(key_hash)).to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// Key `id` of `tenant`; another tenant's key is not found.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<StoredKey>, DbErr> {
    let query = select().and_where(Expr::col("tenant").eq(tenant)).and_where(Expr::col("id").eq(id)).to_owned();
    db.query_one(&query).await?.as_ref().map(from_row).transpose()
}

/// Locks key `id` of `tenant` until the transaction ends (PostgreSQL), so a change to it waits
/// for what is being set up from it (a subscriber queue bound from its scope), and the other way
/// round.
pub async fn lock(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<(), DbErr> {
    let mut query = Query::select()
        .column("id")
        .from("api_keys")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    crate::columns::for_update(db, &mut query);
    db.query_one(&query).await.map(|_| ())
}

/// What [`with_maker`] adds to a row.
#[derive(FromQueryResult)]
struct Maker {
    maker_scope: Option<Json<KeyScope>>,
    maker_permissions: Option<Json<Vec<Permission>>>,
}

/// Adds to a select of `table` (a webhook endpoint's or a subscription's, with `tenant` and
/// `key_id` columns) what the key that made each row reads now: `maker_scope` and
/// `maker_permissions`, null when it is gone. A correlated sub-select by primary key: no join
/// to qualify every column for.
pub fn with_maker(query: &mut SelectStatement, table: &str) {
    for (column, alias) in [("scope", "maker_scope"), ("permissions", "maker_permissions")] {
        let maker =
            format!("(SELECT k.{column} FROM api_keys k WHERE k.tenant = {table}.tenant AND k.id = {table}.key_id)");
        query.expr_as(Expr::cust(maker), alias);
    }
}

/// What a row's recorded `audience` may still receive, narrowed by what its maker reads now
/// (the columns [`with_maker`] adds); as recorded when the maker is gone.
pub fn narrowed_audience(row: &QueryResult, table: &str) -> Result<Audience, DbErr> {
    let recorded = crate::columns::audience_column(row, table)?;
    let maker = Maker::from_query_result(row, "")?;
    let (Some(scope), Some(permissions)) = (maker.maker_scope, maker.maker_permissions) else { return Ok(recorded) };
    Ok(recorded.narrowed_to(&Audience { subaccount_ids: scope.0.subaccounts(), permissions: permissions.0 }))
}

/// One page of `tenant`'s keys, oldest first, and how many there are in all.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<ApiKey>, u64), DbErr> {
    let query = select()
        .and_where(Expr::col("tenant").eq(tenant))
        .order_by("created_at", Order::Asc)
        .order_by("id", Order::Asc)
        .to_owned();
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    let keys = rows.iter().map(|row| from_row(row).map(|k| k.key)).collect::<Result<_, _>>()?;
    Ok((keys, total))
}

/// Requests made with a key per day, from `since` on.
pub async fn usage_since(
    db: &impl ConnectionTrait,
    id: Uuid,
    since: NaiveDate,
) -> Result<Vec<(NaiveDate, u64)>, DbErr> {
    let query = Query::select()
        .columns(["day", "requests"])
        .from("api_key_usage")
        .and_where(Expr::col("key_id").eq(id))
        .and_where(Expr::col("day").gte(since))
        .to_owned();
    let rows = db.query_all(&query).await?;
    rows.iter()
        .map(|row| Day::from_query_result(row, "").map(|d| (d.day, u64::try_from(d.requests).unwrap_or(0))))
        .collect()
}

/// A key's requests on a day.
#[derive(FromQueryResult)]
struct Day {
    day: NaiveDate,
    requests: i64,
}
