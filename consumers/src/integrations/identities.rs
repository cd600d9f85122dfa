//! Federated sign-in: external users of an integration mapped to voltbus users
//! (`integration_users`), the one-time session codes handed to their browsers, and the portal
//! sessions those codes open. Codes and sessions are stored as SHA-256 hashes only.

use chrono::{DateTime, Utc};
use schemas::integrations::{ExchangeExternalIdentity, RedeemSessionCode};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

pub use readside::integrations::identities::{LinkedUser, PortalSession, session, tenant_of_code};
use readside::{Outcome, Refusal, codes};

/// Maps the external subject to a user (made on first sight; its e-mail and role follow the
/// partner's latest word) and stores the session code's hash.
pub(crate) async fn exchange(
    db: &impl ConnectionTrait,
    tenant: &str,
    exchange: &ExchangeExternalIdentity,
    now: DateTime<Utc>,
) -> Result<LinkedUser, DbErr> {
    let role = exchange.role_hint.clone().unwrap_or_else(|| "CLIENT".into());
    let fresh = Uuid::now_v7();
    let upsert = Query::insert()
        .into_table("integration_users")
        .columns([
            "user_id",
            "tenant",
            "integration_id",
            "external_subject",
            "email",
            "role",
            "created_at",
            "updated_at",
        ])
        .values_panic([
            fresh.into(),
            tenant.into(),
            exchange.integration_id.into(),
            exchange.external_subject.clone().into(),
            exchange.email.clone().into(),
            role.clone().into(),
            now.into(),
            now.into(),
        ])
        .on_conflict(
            OnConflict::columns(["integration_id", "external_subject"])
                .update_columns(["email", "role", "updated_at"])
                .to_owned(),
        )
        .returning(Query::returning().column("user_id"))
        .to_owned();
    let row = db.query_one(&upsert).await?.ok_or(DbErr::RecordNotInserted)?;
    let user_id: Uuid = row.try_get("", "user_id")?;
    let code = Query::insert()
        .into_table("integration_session_codes")
        .columns(["code_hash", "tenant", "integration_id", "user_id", "expires_at", "used_at"])
        .values_panic([
            exchange.session_code_hash.clone().into(),
            tenant.into(),
            exchange.integration_id.into(),
            user_id.into(),
            exchange.session_code_expires_at.into(),
            Option::<DateTime<Utc>>::None.into(),
        ])
        .to_owned();
    db.execute(&code).await?;
    Ok(LinkedUser { user_id, created: user_id == fresh, role })
}

/// Spends a session code once, before it expires and while its integration is usable, and opens
/// the portal session; anything else is refused with `INVALID_CODE` and changes nothing.
pub(crate) async fn redeem(
    db: &impl ConnectionTrait,
    tenant: &str,
    redeem: &RedeemSessionCode,
    now: DateTime<Utc>,
) -> Result<Outcome<PortalSession>, DbErr> {
    let refused =
        || Outcome::Refused(Refusal::coded(codes::INVALID_CODE, "the session code is unknown, used or expired"));
    let spend = Query::update()
        .table("integration_session_codes")
        .value("used_at", now)
        .and_where(Expr::col("code_hash").eq(redeem.session_code_hash.as_str()))
        .and_where(Expr::col("tenant").eq(tenant))
        .and_where(Expr::col("used_at").is_null())
        .and_where(Expr::col("expires_at").gt(now))
        .returning(Query::returning().columns(["integration_id", "user_id"]))
        .to_owned();
    let Some(spent) = db.query_one(&spend).await? else { return Ok(refused()) };
    let (integration_id, user_id): (Uuid, Uuid) = (spent.try_get("", "integration_id")?, spent.try_get("", "user_id")?);
    match super::clients::find(db, tenant, integration_id).await? {
        Some(integration) if integration.usable() => {}
        _ => return Ok(refused()),
    }
    let open = Query::insert()
        .into_table("portal_sessions")
        .columns(["session_hash", "tenant", "integration_id", "user_id", "created_at", "expires_at"])
        .values_panic([
            redeem.session_hash.clone().into(),
            tenant.into(),
            integration_id.into(),
            user_id.into(),
            now.into(),
            redeem.session_expires_at.into(),
        ])
        .to_owned();
    db.execute(&open).await?;
    Ok(match session(db, &redeem.session_hash, now).await? {
        Some(session) => Outcome::Done(session),
        None => refused(),
    })
}
