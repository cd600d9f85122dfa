//! The `api_keys` table: partner keys as the edge reads them and the integrations handler writes
//! them. Only the display prefix and the SHA-256 of a key are ever stored.

use chrono::{DateTime, NaiveDate, Utc};
use schemars::JsonSchema;
use schemas::integrations::{Audience, CreateApiKey, KeyScope, Permission, RateLimits, UpdateApiKey};
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{json_column, to_json};

const COLUMNS: [&str; 16] = [
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

fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from("api_keys").to_owned()
}

fn limit_column(row: &QueryResult, column: &str) -> Result<u32, DbErr> {
    let value: i32 = row.try_get("", column)?;
    u32::try_from(value).map_err(|e| DbErr::Type(format!("api_keys.{column}: {e}")))
}

fn from_row(row: &QueryResult) -> Result<StoredKey, DbErr> {
    let key = ApiKey {
        id: row.try_get("", "id")?,
        name: row.try_get("", "name")?,
        prefix: row.try_get("", "display_prefix")?,
        permissions: json_column(row, "api_keys", "permissions")?,
        scope: json_column(row, "api_keys", "scope")?,
        rate_limits: RateLimits {
            per_minute: limit_column(row, "per_minute")?,
            per_hour: limit_column(row, "per_hour")?,
            per_day: limit_column(row, "per_day")?,
        },
        expires_at: row.try_get("", "expires_at")?,
        active: row.try_get("", "active")?,
        admin: row.try_get("", "admin")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
        last_used_at: row.try_get("", "last_used_at")?,
    };
    Ok(StoredKey { tenant: row.try_get("", "tenant")?, key_hash: row.try_get("", "key_hash")?, key })
}

fn limit(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// The row a statement with `RETURNING` wrote, if any: one round trip for the change and its result.
async fn returned(
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
    crate::database::for_update(db, &mut query);
    db.query_one(&query).await.map(|_| ())
}

/// Adds to a select of `table` (a webhook endpoint's or a subscription's, with `tenant` and
/// `key_id` columns) what the key that made each row reads now: `maker_scope` and
/// `maker_permissions`, null when it is gone. A correlated sub-select by primary key: no join
/// to qualify every column for.
pub(crate) fn with_maker(query: &mut SelectStatement, table: &str) {
    for (column, alias) in [("scope", "maker_scope"), ("permissions", "maker_permissions")] {
        let maker =
            format!("(SELECT k.{column} FROM api_keys k WHERE k.tenant = {table}.tenant AND k.id = {table}.key_id)");
        query.expr_as(Expr::cust(maker), alias);
    }
}

/// What a row's recorded `audience` may still receive, narrowed by what its maker reads now
/// (the columns [`with_maker`] adds); as recorded when the maker is gone.
pub(crate) fn narrowed_audience(row: &QueryResult, table: &str) -> Result<Audience, DbErr> {
    let recorded = crate::columns::audience_column(row, table)?;
    let scope: Option<String> = row.try_get("", "maker_scope")?;
    let permissions: Option<String> = row.try_get("", "maker_permissions")?;
    let (Some(scope), Some(permissions)) = (scope, permissions) else { return Ok(recorded) };
    let scope: KeyScope = serde_json::from_str(&scope).map_err(|e| DbErr::Type(format!("api_keys.scope: {e}")))?;
    let permissions =
        serde_json::from_str(&permissions).map_err(|e| DbErr::Type(format!("api_keys.permissions: {e}")))?;
    Ok(recorded.narrowed_to(&Audience { subaccount_ids: scope.subaccounts(), permissions }))
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

/// Stores a new key of `tenant` and returns it.
pub async fn insert(
    db: &impl ConnectionTrait,
    tenant: &str,
    command: &CreateApiKey,
    now: DateTime<Utc>,
) -> Result<StoredKey, DbErr> {
    let insert = Query::insert()
        .into_table("api_keys")
        .columns(COLUMNS)
        .values_panic([
            command.key_id.into(),
            tenant.into(),
            command.name.as_str().into(),
            command.display_prefix.as_str().into(),
            command.admin.into(),
            to_json(&command.permissions).into(),
            to_json(&command.scope).into(),
            limit(command.rate_limits.per_minute).into(),
            limit(command.rate_limits.per_hour).into(),
            limit(command.rate_limits.per_day).into(),
            command.expires_at.into(),
            true.into(),
            now.into(),
            now.into(),
            Option::<DateTime<Utc>>::None.into(),
            command.key_hash.as_str().into(),
        ])
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returned(db, &insert).await?.ok_or(DbErr::RecordNotInserted)
}

/// Applies `command` to `tenant`'s key and returns it; `None` when there is no such key.
pub async fn update(
    db: &impl ConnectionTrait,
    tenant: &str,
    command: &UpdateApiKey,
    now: DateTime<Utc>,
) -> Result<Option<StoredKey>, DbErr> {
    let mut update = Query::update();
    update.table("api_keys").value("updated_at", now);
    if let Some(name) = &command.name {
        update.value("name", name.as_str());
    }
    if let Some(permissions) = &command.permissions {
        update.value("permissions", to_json(permissions));
    }
    if let Some(scope) = &command.scope {
        update.value("scope", to_json(scope));
    }
    if let Some(limits) = &command.rate_limits {
        update
            .value("per_minute", limit(limits.per_minute))
            .value("per_hour", limit(limits.per_hour))
            .value("per_day", limit(limits.per_day));
    }
    if command.clear_expiry {
        update.value("expires_at", Option::<DateTime<Utc>>::None);
    } else if let Some(expires_at) = command.expires_at {
        update.value("expires_at", expires_at);
    }
    if let Some(active) = command.active {
        update.value("active", active);
    }
    update.and_where(Expr::col("tenant").eq(tenant)).and_where(Expr::col("id").eq(command.key_id));
    update.returning(Query::returning().columns(COLUMNS));
    returned(db, &update).await
}

/// Replaces a key's secret (its hash and display prefix); `None` when there is no such key.
pub async fn replace_secret(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
    display_prefix: &str,
    key_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<StoredKey>, DbErr> {
    let update = Query::update()
        .table("api_keys")
        .value("display_prefix", display_prefix)
        .value("key_hash", key_hash)
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("id").eq(id))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returned(db, &update).await
}

/// Deletes a key and its usage counters (its request log stays); false when there is no such key.
pub async fn delete(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<bool, DbErr> {
    let delete = Query::delete()
        .from_table("api_keys")
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("id").eq(id))
        .to_owned();
    if db.execute(&delete).await?.rows_affected() == 0 {
        return Ok(false);
    }
    let usage = Query::delete().from_table("api_key_usage").and_where(Expr::col("key_id").eq(id)).to_owned();
    db.execute(&usage).await?;
    Ok(true)
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
    db.query_all(&query)
        .await?
        .iter()
        .map(|row| {
            let requests: i64 = row.try_get("", "requests")?;
            Ok((row.try_get("", "day")?, u64::try_from(requests).unwrap_or(0)))
        })
        .collect()
}
