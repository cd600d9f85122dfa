//! The `integrations` table: EVCare integrations as admins see them and the edge authenticates
//! them. Only SHA-256 hashes of client secrets are stored; after a rotation the previous hash is
//! kept until its grace period ends.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::integrations::{AccessBundle, CreateIntegration};
use sea_orm::sea_query::{Expr, ExprTrait, Func, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{from_name, json_column, name_of, to_json};

const COLUMNS: [&str; 14] = [
    "integration_id",
    "tenant",
    "name",
    "client_id",
    "secret_hash",
    "previous_secret_hash",
    "previous_valid_until",
    "bundle",
    "allowed_endpoints",
    "active",
    "revoked_at",
    "tokens_not_before",
    "created_at",
    "updated_at",
];

/// An integration as admins see it (never its secret).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Integration {
    /// Integration id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// Public client id, `evc_ci_…`.
    pub client_id: String,
    /// Granted access bundle.
    pub bundle: AccessBundle,
    /// Operation ids the integration is limited to within its bundle; empty: the whole bundle.
    pub allowed_endpoints: Vec<String>,
    /// Disabled integrations get no tokens, and their open tokens stop working.
    pub active: bool,
    /// When it was revoked, for good.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Until when the secret before the last rotation still works.
    pub previous_secret_valid_until: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// An integration with what the edge needs to authenticate it, and never shows.
#[derive(Clone, Debug)]
pub struct StoredIntegration {
    /// The organisation (tenant) it belongs to.
    pub tenant: String,
    /// SHA-256 (hex) of the current secret.
    pub secret_hash: String,
    /// SHA-256 (hex) of the previous secret, while it is still accepted.
    pub previous_secret_hash: Option<String>,
    /// Machine tokens issued before this are dead.
    pub tokens_not_before: Option<DateTime<Utc>>,
    /// What admins see.
    pub integration: Integration,
}

impl StoredIntegration {
    /// Whether it may be given tokens at `now`: active and never revoked.
    pub fn usable(&self) -> bool {
        self.integration.active && self.integration.revoked_at.is_none()
    }

    /// The secret hashes accepted at `now`: the current one, and the previous one in its grace.
    pub fn secret_hashes_at(&self, now: DateTime<Utc>) -> impl Iterator<Item = &str> {
        let grace = self.integration.previous_secret_valid_until.is_some_and(|until| now < until);
        std::iter::once(self.secret_hash.as_str()).chain(self.previous_secret_hash.as_deref().filter(|_| grace))
    }
}

fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from("integrations").to_owned()
}

fn from_row(row: &QueryResult) -> Result<StoredIntegration, DbErr> {
    let bundle: String = row.try_get("", "bundle")?;
    let integration = Integration {
        id: row.try_get("", "integration_id")?,
        name: row.try_get("", "name")?,
        client_id: row.try_get("", "client_id")?,
        bundle: from_name(&bundle, "integrations", "bundle")?,
        allowed_endpoints: json_column(row, "integrations", "allowed_endpoints")?,
        active: row.try_get("", "active")?,
        revoked_at: row.try_get("", "revoked_at")?,
        previous_secret_valid_until: row.try_get("", "previous_valid_until")?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
    };
    Ok(StoredIntegration {
        tenant: row.try_get("", "tenant")?,
        secret_hash: row.try_get("", "secret_hash")?,
        previous_secret_hash: row.try_get("", "previous_secret_hash")?,
        tokens_not_before: row.try_get("", "tokens_not_before")?,
        integration,
    })
}

async fn returned(
    db: &impl ConnectionTrait,
    statement: &impl sea_orm::StatementBuilder,
) -> Result<Option<StoredIntegration>, DbErr> {
    db.query_one(statement).await?.as_ref().map(from_row).transpose()
}

/// The integration with client id `client_id`, whatever its tenant: token requests.
pub async fn find_by_client_id(db: &impl ConnectionTrait, client_id: &str) -> Result<Option<StoredIntegration>, DbErr> {
    returned(db, &select().and_where(Expr::col("client_id").eq(client_id)).to_owned()).await
}

/// Integration `id` of `tenant`; another tenant's is not found.
pub async fn find(db: &impl ConnectionTrait, tenant: &str, id: Uuid) -> Result<Option<StoredIntegration>, DbErr> {
    let query =
        select().and_where(Expr::col("tenant").eq(tenant)).and_where(Expr::col("integration_id").eq(id)).to_owned();
    returned(db, &query).await
}

/// One page of `tenant`'s integrations, oldest first, and how many there are in all.
pub async fn list(
    db: &impl ConnectionTrait,
    tenant: &str,
    offset: u64,
    limit: u64,
) -> Result<(Vec<Integration>, u64), DbErr> {
    let query = select()
        .and_where(Expr::col("tenant").eq(tenant))
        .order_by("created_at", Order::Asc)
        .order_by("integration_id", Order::Asc)
        .to_owned();
    let (rows, total) = crate::pages::page_of(db, &query, offset, limit).await?;
    let items = rows.iter().map(|row| from_row(row).map(|s| s.integration)).collect::<Result<Vec<_>, _>>()?;
    Ok((items, total))
}

/// Every integration whose machine tokens were cut off at or after `since`: what an edge needs to
/// refuse tokens issued before a revocation or a disabling.
pub async fn cut_off_since(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
) -> Result<Vec<(Uuid, DateTime<Utc>)>, DbErr> {
    let query = Query::select()
        .columns(["integration_id", "tokens_not_before"])
        .from("integrations")
        .and_where(Expr::col("tokens_not_before").gte(since))
        .to_owned();
    db.query_all(&query)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("", "integration_id")?, row.try_get("", "tokens_not_before")?)))
        .collect()
}

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
