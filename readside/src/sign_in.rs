//! The mobile app's sign-in (EVM seed): live sessions in `mobile_sessions` (token hashes only),
//! and what a sign-in answers.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A signed-in mobile customer, as the sign-in answers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignedIn {
    /// The customer the phone is.
    pub customer_id: Uuid,
    /// Whether this sign-in made the customer.
    pub created: bool,
}

/// A live session.
#[derive(Clone, Debug, PartialEq, FromQueryResult)]
pub struct Session {
    /// Owner.
    pub tenant: String,
    /// The signed-in customer.
    pub customer_id: Uuid,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// The live session whose token hashes to `session_hash`.
pub async fn session(
    db: &impl ConnectionTrait,
    session_hash: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>, DbErr> {
    let query = Query::select()
        .columns(["tenant", "customer_id", "expires_at"])
        .from("mobile_sessions")
        .and_where(Expr::col("session_hash").eq(session_hash))
        .and_where(Expr::col("expires_at").gt(now))
        .to_owned();
    db.query_one(&query).await?.map(|row| Session::from_query_result(&row, "")).transpose()
}
