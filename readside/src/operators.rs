//! Operators of the console (`/admin`): their accounts (never their password hashes, except to
//! the sign-in that checks one) and open sessions.

pub mod password;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, JoinType, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::columns::Named;

/// What an operator may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Every organisation, and the whole bus.
    Platform,
    /// One organisation: its data, and its own dead letters.
    Organisation,
}

/// An operator account, without its password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operator {
    /// Account id.
    pub operator_id: Uuid,
    /// Sign-in address, lower-cased.
    pub email: String,
    /// What the operator may see.
    pub role: Role,
    /// The organisation of an `organisation` operator.
    pub tenant: Option<String>,
    /// Sign-in is refused until then.
    pub locked_until: Option<DateTime<Utc>>,
}

impl Operator {
    /// Whether the operator may act in `tenant`.
    pub fn may_see(&self, tenant: &str) -> bool {
        match self.role {
            Role::Platform => true,
            Role::Organisation => self.tenant.as_deref() == Some(tenant),
        }
    }
}

/// A row of [`COLUMNS`].
#[derive(FromQueryResult)]
struct Row {
    operator_id: Uuid,
    email: String,
    role: Named<Role>,
    tenant: Option<String>,
    locked_until: Option<DateTime<Utc>>,
}

/// An operator from a row of [`COLUMNS`].
pub fn operator_of(row: &QueryResult) -> Result<Operator, DbErr> {
    let row = Row::from_query_result(row, "")?;
    Ok(Operator {
        operator_id: row.operator_id,
        email: row.email,
        role: row.role.0,
        tenant: row.tenant,
        locked_until: row.locked_until,
    })
}

/// The columns an [`Operator`] is read from.
pub const COLUMNS: [&str; 5] = ["operator_id", "email", "role", "tenant", "locked_until"];

/// The operator signing in as `email`, with the stored password hash.
pub async fn find_by_email(db: &impl ConnectionTrait, email: &str) -> Result<Option<(Operator, String)>, DbErr> {
    let query = Query::select()
        .columns(COLUMNS)
        .column("password_hash")
        .from("operators")
        .and_where(Expr::col("email").eq(email.trim().to_lowercase()))
        .to_owned();
    match db.query_one(&query).await? {
        Some(row) => Ok(Some((operator_of(&row)?, row.try_get("", "password_hash")?))),
        None => Ok(None),
    }
}

/// The operator whose open session hashes to `session_hash`.
pub async fn session(
    db: &impl ConnectionTrait,
    session_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Operator>, DbErr> {
    let mut query = Query::select();
    for column in COLUMNS {
        query.expr_as(Expr::col(("o", column)), column);
    }
    let query = query
        .from_as("operator_sessions", "s")
        .join_as(JoinType::InnerJoin, "operators", "o", Expr::col(("o", "operator_id")).equals(("s", "operator_id")))
        .and_where(Expr::col(("s", "session_hash")).eq(session_hash))
        .and_where(Expr::col(("s", "expires_at")).gt(now))
        .to_owned();
    db.query_one(&query).await?.map(|row| operator_of(&row)).transpose()
}

/// The organisations there are, for a platform operator to choose from.
pub async fn organisations(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let query = Query::select().column("id").from("tenants").order_by("id", sea_orm::Order::Asc).to_owned();
    db.query_all(&query).await?.iter().map(|row| row.try_get("", "id")).collect()
}
