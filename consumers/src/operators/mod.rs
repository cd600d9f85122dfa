//! Operators of the console (`/admin`): accounts bootstrapped from the command line, sessions
//! opened by a right password, and the lock that repeated failures put on an account. Passwords
//! are stored as Argon2id PHC strings (`password`), session tokens as SHA-256 hashes.
//!
//! The commands (`operator.*`) belong to the integrations consumer group; this module holds
//! their effects and the reads the edge makes.

pub use readside::operators::password;

use chrono::{DateTime, Utc};
use schemas::operators::{CloseOperatorSession, OpenOperatorSession, RecordOperatorSignInFailure};
use schemas::{AnyMessage, Envelope};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use readside::columns::name_of;
pub use readside::operators::{COLUMNS, Operator, Role, find_by_email, operator_of, organisations, session};
use readside::{Outcome, Refusal};

/// Errors of the operator bootstrap.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The password could not be hashed.
    #[error("the password could not be hashed: {0}")]
    Hash(String),
    /// Something about the account is wrong.
    #[error("{0}")]
    Invalid(String),
}

/// Creates an operator account with `password` (hashed here); refuses an address already taken.
pub async fn create(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
    role: Role,
    tenant: Option<&schemas::TenantId>,
) -> Result<Operator, OperatorError> {
    let email = email.trim().to_lowercase();
    if email.len() > 254 || !email.contains('@') {
        return Err(OperatorError::Invalid("the email address is not valid".into()));
    }
    match (role, tenant) {
        (Role::Organisation, None) => {
            return Err(OperatorError::Invalid("an organisation operator needs its organisation".into()));
        }
        (Role::Platform, Some(_)) => {
            return Err(OperatorError::Invalid("a platform operator belongs to no one organisation".into()));
        }
        _ => {}
    }
    password::acceptable(password).map_err(OperatorError::Invalid)?;
    if find_by_email(db, &email).await?.is_some() {
        return Err(OperatorError::Invalid(format!("an operator {email} exists already")));
    }
    let hash = password::hash(password).map_err(OperatorError::Hash)?;
    let operator_id = Uuid::now_v7();
    let insert = Query::insert()
        .into_table("operators")
        .columns(["operator_id", "email", "password_hash", "role", "tenant", "failed_attempts", "created_at"])
        .values_panic([
            operator_id.into(),
            email.clone().into(),
            hash.into(),
            name_of(&role).into(),
            tenant.map(|t| t.as_str().to_owned()).into(),
            0.into(),
            Utc::now().into(),
        ])
        .to_owned();
    db.execute(&insert).await?;
    Ok(Operator { operator_id, email, role, tenant: tenant.map(|t| t.as_str().to_owned()), locked_until: None })
}

/// The effect of an `operator.*` command; `None` for any other message.
pub(crate) async fn handle(
    tx: &impl ConnectionTrait,
    message: &Envelope<AnyMessage>,
) -> Result<Option<serde_json::Value>, DbErr> {
    let now = Utc::now();
    match &message.data {
        AnyMessage::OpenOperatorSession(open) => open_session(tx, open, now).await.map(Some),
        AnyMessage::RecordOperatorSignInFailure(failure) => record_failure(tx, failure, now).await.map(Some),
        AnyMessage::CloseOperatorSession(close) => close_session(tx, close).await.map(Some),
        _ => Ok(None),
    }
}

async fn open_session(
    tx: &impl ConnectionTrait,
    open: &OpenOperatorSession,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, DbErr> {
    let reset = Query::update()
        .table("operators")
        .value("failed_attempts", 0)
        .value("last_sign_in_at", now)
        .and_where(Expr::col("operator_id").eq(open.operator_id))
        .to_owned();
    if tx.execute(&reset).await?.rows_affected() == 0 {
        return Ok(no_operator(open.operator_id));
    }
    // Expired sessions of this operator go when a new one opens: the table stays small.
    let expired = Query::delete()
        .from_table("operator_sessions")
        .and_where(Expr::col("operator_id").eq(open.operator_id))
        .and_where(Expr::col("expires_at").lte(now))
        .to_owned();
    tx.execute(&expired).await?;
    let insert = Query::insert()
        .into_table("operator_sessions")
        .columns(["session_hash", "operator_id", "created_at", "expires_at"])
        .values_panic([open.session_hash.clone().into(), open.operator_id.into(), now.into(), open.expires_at.into()])
        .to_owned();
    tx.execute(&insert).await?;
    Ok(Outcome::Done(serde_json::json!({ "operator_id": open.operator_id, "expires_at": open.expires_at })).to_reply())
}

async fn record_failure(
    tx: &impl ConnectionTrait,
    failure: &RecordOperatorSignInFailure,
    now: DateTime<Utc>,
) -> Result<serde_json::Value, DbErr> {
    let count = Query::update()
        .table("operators")
        .value("failed_attempts", Expr::col("failed_attempts").add(1))
        .and_where(Expr::col("operator_id").eq(failure.operator_id))
        .returning(Query::returning().column("failed_attempts"))
        .to_owned();
    let Some(row) = tx.query_one(&count).await? else {
        return Ok(no_operator(failure.operator_id));
    };
    let attempts: i32 = row.try_get("", "failed_attempts")?;
    let mut locked_until = None;
    if u32::try_from(attempts).unwrap_or(0) >= std::cmp::max(failure.lock_after, 1) {
        let until = now + chrono::Duration::seconds(i64::from(failure.lock_seconds));
        let lock = Query::update()
            .table("operators")
            .value("failed_attempts", 0)
            .value("locked_until", until)
            .and_where(Expr::col("operator_id").eq(failure.operator_id))
            .to_owned();
        tx.execute(&lock).await?;
        // Open sessions stay: whoever holds one already knew the password.
        tracing::warn!(operator = %failure.operator_id, %until, "operator locked out after repeated failed sign-ins");
        locked_until = Some(until);
    }
    Ok(Outcome::Done(serde_json::json!({ "failed_attempts": attempts, "locked_until": locked_until })).to_reply())
}

/// The refusal of a command about an operator that does not exist.
fn no_operator(id: Uuid) -> serde_json::Value {
    Outcome::<()>::Refused(Refusal::not_found(format!("no operator {id}"))).to_reply()
}

async fn close_session(tx: &impl ConnectionTrait, close: &CloseOperatorSession) -> Result<serde_json::Value, DbErr> {
    let delete = Query::delete()
        .from_table("operator_sessions")
        .and_where(Expr::col("session_hash").eq(close.session_hash.as_str()))
        .to_owned();
    let closed = tx.execute(&delete).await?.rows_affected() > 0;
    Ok(Outcome::Done(serde_json::json!({ "closed": closed })).to_reply())
}
