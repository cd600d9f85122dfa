//! Federated sign-in: external users of an integration mapped to voltbus users, the one-time
//! session codes handed to their browsers, and the portal sessions those codes open. Codes and
//! sessions are stored as SHA-256 hashes only.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use schemas::integrations::AccessBundle;
use sea_orm::sea_query::{Expr, ExprTrait, JoinType, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Named;

/// A voltbus user as an integration's exchange made it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LinkedUser {
    /// Our user.
    pub user_id: Uuid,
    /// True when this exchange created the user.
    pub created: bool,
    /// The role the user has.
    pub role: String,
}

/// A portal session, as the browser's cookie opens it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortalSession {
    /// The user signed in.
    pub user_id: Uuid,
    /// The integration the user came through.
    pub integration_id: Uuid,
    /// The user's e-mail.
    pub email: String,
    /// The user's role.
    pub role: String,
    /// The organisation.
    pub tenant: String,
    /// The integration's bundle, which decides what the portal shows.
    pub bundle: AccessBundle,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// The tenant a session code was issued in, if it is still unused: where to send its redemption.
pub async fn tenant_of_code(db: &impl ConnectionTrait, code_hash: &str) -> Result<Option<String>, DbErr> {
    let query = Query::select()
        .column("tenant")
        .from("integration_session_codes")
        .and_where(Expr::col("code_hash").eq(code_hash))
        .and_where(Expr::col("used_at").is_null())
        .to_owned();
    Ok(db.query_one(&query).await?.map(|row| Tenant::from_query_result(&row, "")).transpose()?.map(|row| row.tenant))
}

/// A row's tenant.
#[derive(FromQueryResult)]
struct Tenant {
    tenant: String,
}

/// The open portal session whose token hashes to `session_hash`, with its user.
pub async fn session(
    db: &impl ConnectionTrait,
    session_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<PortalSession>, DbErr> {
    let query = Query::select()
        .expr_as(Expr::col(("s", "user_id")), "user_id")
        .expr_as(Expr::col(("s", "integration_id")), "integration_id")
        .expr_as(Expr::col(("s", "tenant")), "tenant")
        .expr_as(Expr::col(("s", "expires_at")), "expires_at")
        .expr_as(Expr::col(("u", "email")), "email")
        .expr_as(Expr::col(("u", "role")), "role")
        .expr_as(Expr::col(("i", "bundle")), "bundle")
        .from_as("portal_sessions", "s")
        .join_as(JoinType::InnerJoin, "integration_users", "u", Expr::col(("u", "user_id")).equals(("s", "user_id")))
        // A revoked or disabled integration's sessions end with it.
        .join_as(
            JoinType::InnerJoin,
            "integrations",
            "i",
            Expr::col(("i", "integration_id")).equals(("s", "integration_id")),
        )
        .and_where(Expr::col(("i", "active")).eq(true))
        .and_where(Expr::col(("i", "revoked_at")).is_null())
        .and_where(Expr::col(("s", "session_hash")).eq(session_hash))
        .and_where(Expr::col(("s", "expires_at")).gt(now))
        .to_owned();
    let row = db.query_one(&query).await?.map(|row| SessionRow::from_query_result(&row, "")).transpose()?;
    Ok(row.map(|row| PortalSession {
        user_id: row.user_id,
        integration_id: row.integration_id,
        email: row.email,
        role: row.role,
        tenant: row.tenant,
        bundle: row.bundle.0,
        expires_at: row.expires_at,
    }))
}

/// A portal session's row, with its user and integration.
#[derive(FromQueryResult)]
struct SessionRow {
    user_id: Uuid,
    integration_id: Uuid,
    email: String,
    role: String,
    tenant: String,
    bundle: Named<AccessBundle>,
    expires_at: DateTime<Utc>,
}
