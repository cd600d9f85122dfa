//! Wrappers for values that must travel but never be printed whole: a secret (`Sensitive`), and a
//! URL that may carry a password (`ServiceUrl`).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A credential or token carried in a message: serialized as is, redacted in `Debug` so a
/// `tracing` field or a panic message never shows it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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

impl From<String> for Sensitive {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Sensitive {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// The URL of a service (a database, a broker) as configured: its userinfo may hold a password,
/// so `Debug` shows it as `***`. Read it as text where it is used (`Deref` to `str`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    /// The URL with any userinfo replaced by `***`, for logs and errors.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl std::ops::Deref for ServiceUrl {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<String> for ServiceUrl {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for ServiceUrl {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` with any userinfo (a user and password) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    // A list of nodes (`amqp://…@a,amqp://…@b`) is redacted node by node, so each host still shows.
    if url.contains(',') {
        return url.split(',').map(redact_url).collect::<Vec<_>>().join(",");
    }
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_redacts() {
        let s = super::Sensitive("evc_cs_secret".into());
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[test]
    fn a_service_url_shows_its_host_but_not_its_credentials() {
        let url = super::ServiceUrl::from("amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(format!("{url:?}"), "amqp://***@127.0.0.1:5672/%2f");
        assert_eq!(&*url, "amqp://guest:guest@127.0.0.1:5672/%2f");
        assert_eq!(super::redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }
}
