//! Tenant identifiers: the boundary no message, queue binding or NATS subject may cross.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The operator organisation a message belongs to.
///
/// A tenant id becomes one token of RabbitMQ routing keys and NATS subjects, so it is restricted to
/// `[a-z0-9_-]`: a `.`, `*`, `>` or `#` in it would let a binding or a subscription match another
/// tenant's traffic.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

/// Why a string is not a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    /// Empty or longer than 63 characters.
    #[error("tenant id must be 1 to 63 characters long")]
    Length,
    /// Contains something other than lower-case ASCII letters, digits, `_` and `-`, or starts with `_`/`-`.
    #[error("tenant id `{0}` may only contain a-z, 0-9, `_` and `-`, and must start with a letter or digit")]
    Characters(String),
}

impl TenantId {
    /// Validates and wraps a tenant id.
    pub fn new(id: impl Into<String>) -> Result<Self, TenantIdError> {
        let id = id.into();
        if id.is_empty() || id.len() > 63 {
            return Err(TenantIdError::Length);
        }
        let valid_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
        let first_ok = id.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !first_ok || !id.chars().all(valid_char) {
            return Err(TenantIdError::Characters(id));
        }
        Ok(Self(id))
    }

    /// The id as a string slice, safe to use as one routing-key word or subject token.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = TenantIdError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<TenantId> for String {
    fn from(value: TenantId) -> Self {
        value.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TenantId({})", self.0)
    }
}

impl JsonSchema for TenantId {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TenantId".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for id in ["acme", "acme-mobility", "t_01", "7eleven"] {
            assert!(TenantId::new(id).is_ok(), "{id}");
        }
    }

    #[test]
    fn refuses_ids_that_could_widen_a_binding_or_subscription() {
        for id in ["", "a.b", "*", ">", "#", "acme.>", "Acme", "-x", "_x", "a b", &"x".repeat(64)] {
            assert!(TenantId::new(id).is_err(), "{id:?} must be refused");
        }
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<TenantId>("\"a.b\"").is_err());
        assert_eq!(serde_json::from_str::<TenantId>("\"acme\"").unwrap().as_str(), "acme");
    }
}
