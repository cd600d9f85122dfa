//! Operators of the console at `/admin`: the sessions their sign-ins open and close, and the
//! failed attempts that lock an account. Passwords never travel; session tokens only as hashes.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::message;

/// An operator signed in with the right password: open a session, forget failed attempts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OpenOperatorSession {
    /// The operator.
    pub operator_id: Uuid,
    /// SHA-256 (hex) of the session token the browser gets as a cookie.
    pub session_hash: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}
message!(OpenOperatorSession, "operator.open_session", (1, 0), Command(Integrations), Integrations, |m| Some(
    m.operator_id.to_string()
));

/// An operator's sign-in failed: count it, and lock the account when the count reaches `lock_after`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordOperatorSignInFailure {
    /// The operator.
    pub operator_id: Uuid,
    /// Failed attempts in a row that lock the account.
    pub lock_after: u32,
    /// How long a lock lasts, in seconds.
    pub lock_seconds: u32,
}
message!(
    RecordOperatorSignInFailure,
    "operator.record_sign_in_failure",
    (1, 0),
    Command(Integrations),
    Integrations,
    |m| Some(m.operator_id.to_string())
);

/// An operator signed out: the session ends now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CloseOperatorSession {
    /// SHA-256 (hex) of the session token.
    pub session_hash: String,
}
message!(CloseOperatorSession, "operator.close_session", (1, 0), Command(Integrations), Integrations, |_m| None);
