//! The `api_keys` table: partner keys as the edge reads them and the integrations handler writes
//! them. Only the display prefix and the SHA-256 of a key are ever stored.

use chrono::{DateTime, Utc};
use schemas::integrations::{CreateApiKey, UpdateApiKey};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use readside::columns::to_json;
pub use readside::integrations::keys::{
    ApiKey, COLUMNS, StoredKey, find, find_by_hash, from_row, list, lock, narrowed_audience, returned, select,
    usage_since, with_maker,
};

fn limit(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
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
