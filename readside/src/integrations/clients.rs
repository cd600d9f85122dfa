//! The `integrations` table: EVCare integrations as admins see them and the edge authenticates
//! them. Only SHA-256 hashes of client secrets are stored; after a rotation the previous hash is
//! kept until its grace period ends.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::integrations::AccessBundle;
use sea_orm::sea_query::{Expr, ExprTrait, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::{Json, Named};

/// The columns a [`StoredIntegration`] is read from.
pub const COLUMNS: [&str; 14] = [
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

/// Every integration.
pub fn select() -> SelectStatement {
    Query::select().columns(COLUMNS).from("integrations").to_owned()
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    integration_id: Uuid,
    tenant: String,
    name: String,
    client_id: String,
    secret_hash: String,
    previous_secret_hash: Option<String>,
    previous_valid_until: Option<DateTime<Utc>>,
    bundle: Named<AccessBundle>,
    allowed_endpoints: Json<Vec<String>>,
    active: bool,
    revoked_at: Option<DateTime<Utc>>,
    tokens_not_before: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An integration from a row of [`COLUMNS`].
pub fn from_row(row: &QueryResult) -> Result<StoredIntegration, DbErr> {
    let row = Row::from_query_result(row, "")?;
    let integration = Integration {
        id: row.integration_id,
        name: row.name,
        client_id: row.client_id,
        bundle: row.bundle.0,
        allowed_endpoints: row.allowed_endpoints.0,
        active: row.active,
        revoked_at: row.revoked_at,
        previous_secret_valid_until: row.previous_valid_until,
        created_at: row.created_at,
        updated_at: row.updated_at,
    };
    Ok(StoredIntegration {
        tenant: row.tenant,
        secret_hash: row.secret_hash,
        previous_secret_hash: row.previous_secret_hash,
        tokens_not_before: row.tokens_not_before,
        integration,
    })
}

/// The integration a statement read or wrote (`RETURNING`), if any.
pub async fn returned(
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
    let rows = db.query_all(&query).await?;
    rows.iter().map(|row| CutOff::from_query_result(row, "").map(|c| (c.integration_id, c.tokens_not_before))).collect()
}

/// An integration's cut-off.
#[derive(FromQueryResult)]
struct CutOff {
    integration_id: Uuid,
    tokens_not_before: DateTime<Utc>,
}
