//! What a command's reply says to the edge: done (with the resulting state) or refused (with a
//! stable error code the edge answers with). A refusal is a normal answer, not a failure: the
//! command was handled, committed in the inbox, and a retry gets the same refusal.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// A refusal's code and message; codes are the edge's error codes (`NOT_FOUND`, `CONFLICT`, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// Stable error code.
    pub code: String,
    /// What was wrong.
    pub message: String,
}

impl Refusal {
    /// The thing the command is about does not exist (for this tenant).
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::coded(codes::NOT_FOUND, message)
    }

    /// The command contradicts the state it would change.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::coded(codes::CONFLICT, message)
    }

    /// The command's data breaks a rule the edge would have checked (it came another way).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::coded(codes::VALIDATION_ERROR, message)
    }

    /// Refused for the reason `code` (one of [`codes`]).
    pub fn coded(code: &str, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

/// The refusal codes, shared with the edge, which answers each with its own status.
pub mod codes {
    /// Nothing of that id for this tenant.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// The state does not allow it.
    pub const CONFLICT: &str = "CONFLICT";
    /// The data breaks a rule.
    pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
    /// A ride cannot go from its status to the one asked (a second `end`, a pause while paused).
    pub const INVALID_TRANSITION: &str = "INVALID_TRANSITION";
    /// The customer is blocked.
    pub const CUSTOMER_BLOCKED: &str = "CUSTOMER_BLOCKED";
    /// The wallet cannot cover it, even with its overdraft.
    pub const INSUFFICIENT_FUNDS: &str = "INSUFFICIENT_FUNDS";
    /// The vehicle is not available to ride.
    pub const VEHICLE_UNAVAILABLE: &str = "VEHICLE_UNAVAILABLE";
    /// The place is in a no-ride zone.
    pub const NO_RIDE_ZONE: &str = "NO_RIDE_ZONE";
    /// A sign-in code that is wrong, expired, used, or was never asked for.
    pub const INVALID_CODE: &str = "INVALID_CODE";
    /// A sign-in code guessed wrong too often.
    pub const TOO_MANY_ATTEMPTS: &str = "TOO_MANY_ATTEMPTS";
    /// Too many requests of one kind (sign-in codes for one phone).
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// The charger is not free to start a session (busy, out of order, offline).
    pub const CHARGER_UNAVAILABLE: &str = "CHARGER_UNAVAILABLE";
    /// The integration's maintenance service selection does not include the workshop.
    pub const WORKSHOP_NOT_ALLOWED: &str = "WORKSHOP_NOT_ALLOWED";
}

/// The answer of a command that deleted something (a key, an endpoint, a vehicle, a zone).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Deleted {
    /// What was deleted.
    pub id: Uuid,
    /// Always true.
    pub deleted: bool,
}

impl Deleted {
    /// `id` deleted.
    pub fn of(id: Uuid) -> Self {
        Self { id, deleted: true }
    }
}

/// A command's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", content = "body", rename_all = "snake_case")]
pub enum Outcome<T> {
    /// Done; the body is the resulting state.
    Done(T),
    /// Refused; nothing changed.
    Refused(Refusal),
}

impl<T: Serialize> Outcome<T> {
    /// The reply the runtime sends (and stores in the inbox).
    pub fn to_reply(&self) -> Value {
        // Outcomes are built from database rows and ids: serialising them cannot fail.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}
