//! A wrapper for values that must travel but never be printed.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A credential or token carried in a message: serialized as is, redacted in `Debug` so a
/// `tracing` field or a panic message never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Sensitive(pub String);

impl Sensitive {
    /// The value itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Sensitive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sensitive(***)")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_redacts() {
        let s = super::Sensitive("evc_cs_secret".into());
        assert!(!format!("{s:?}").contains("secret"));
    }
}
