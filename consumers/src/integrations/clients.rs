//! The `integrations` table: EVCare integrations as admins see them and the edge authenticates
//! them. Only SHA-256 hashes of client secrets are stored; after a rotation the previous hash is
//! kept until its grace period ends.

use chrono::{DateTime, Utc};
use schemas::integrations::CreateIntegration;
use sea_orm::sea_query::{Expr, ExprTrait, Func, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use readside::columns::{name_of, to_json};
pub use readside::integrations::clients::{
    COLUMNS, Integration, StoredIntegration, cut_off_since, find, find_by_client_id, from_row, list, returned, select,
};

/// Stores a new integration.
pub(crate) async fn insert(
    db: &impl ConnectionTrait,
    tenant: &str,
    create: &CreateIntegration,
    now: DateTime<Utc>,
) -> Result<StoredIntegration, DbErr> {
    let insert = Query::insert()
        .into_table("integrations")
        .columns(COLUMNS)
        .values_panic([
            create.integration_id.into(),
            tenant.into(),
            create.name.clone().into(),
            create.client_id.clone().into(),
            create.client_secret_hash.clone().into(),
            Option::<String>::None.into(),
            Option::<DateTime<Utc>>::None.into(),
            name_of(&create.bundle).into(),
            to_json(&create.allowed_endpoints).into(),
            true.into(),
            Option::<DateTime<Utc>>::None.into(),
            Option::<DateTime<Utc>>::None.into(),
            now.into(),
            now.into(),
        ])
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returned(db, &insert).await?.ok_or_else(|| DbErr::RecordNotInserted)
}

/// Replaces the secret of a usable integration; the old one is accepted until `previous_until`.
pub(crate) async fn rotate(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
    new_hash: &str,
    previous_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<StoredIntegration>, DbErr> {
    let update = Query::update()
        .table("integrations")
        .value("previous_secret_hash", Expr::col("secret_hash"))
        .value("previous_valid_until", previous_until)
        .value("secret_hash", new_hash)
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("integration_id").eq(id))
        .and_where(Expr::col("revoked_at").is_null())
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returned(db, &update).await
}

/// Revokes an integration for good: no secret works any more, and no token issued before `now`.
/// A second revocation keeps the first one's time.
pub(crate) async fn revoke(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<StoredIntegration>, DbErr> {
    let update = Query::update()
        .table("integrations")
        .value("revoked_at", Func::coalesce([Expr::col("revoked_at"), Expr::value(now)]))
        .value("tokens_not_before", Func::coalesce([Expr::col("revoked_at"), Expr::value(now)]))
        .value("previous_secret_hash", Option::<String>::None)
        .value("previous_valid_until", Option::<DateTime<Utc>>::None)
        .value("active", false)
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("integration_id").eq(id))
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    returned(db, &update).await
}

/// Enables or disables an integration that is not revoked; disabling cuts off its open tokens.
pub(crate) async fn set_active(
    db: &impl ConnectionTrait,
    tenant: &str,
    id: Uuid,
    active: bool,
    now: DateTime<Utc>,
) -> Result<Option<StoredIntegration>, DbErr> {
    let mut update = Query::update()
        .table("integrations")
        .value("active", active)
        .value("updated_at", now)
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("integration_id").eq(id))
        .and_where(Expr::col("revoked_at").is_null())
        .returning(Query::returning().columns(COLUMNS))
        .to_owned();
    if !active {
        update.value("tokens_not_before", now);
    }
    returned(db, &update).await
}
