//! Headers the runtime adds to a message it retries or dead-letters.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable};

/// Attempts made so far, counting the one that failed (absent on first delivery).
pub const ATTEMPT: &str = "x-voltbus-attempt";
/// Why the message was dead-lettered, in words.
pub const REASON: &str = "x-voltbus-reason";
/// Why, as a short kind: `permanent`, `retries_exhausted`, `malformed`, `unknown_type`, …
pub const ERROR_KIND: &str = "x-voltbus-error-kind";
/// The work queue the message was taken from (where a replay sends it back).
pub const SOURCE_QUEUE: &str = "x-voltbus-source-queue";
/// When it was dead-lettered (RFC 3339).
pub const FAILED_AT: &str = "x-voltbus-failed-at";

/// A header's value as text, if present.
pub fn text(properties: &BasicProperties, name: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// A header's value as a number, if present and numeric.
pub fn number(properties: &BasicProperties, name: &str) -> Option<i64> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(name)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::LongUInt(n) => Some(i64::from(*n)),
        AMQPValue::LongString(s) => s.to_string().parse().ok(),
        _ => None,
    }
}

/// A copy of `properties` with `extra` headers set (replacing same-named ones).
pub fn with(properties: &BasicProperties, extra: Vec<(&str, AMQPValue)>) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    for (name, value) in extra {
        headers.insert(name.into(), value);
    }
    properties.clone().with_headers(headers)
}

/// A copy of `properties` without the named headers.
pub fn without(properties: &BasicProperties, names: &[&str]) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(existing) = properties.headers() {
        for (name, value) in existing.inner() {
            if !names.contains(&name.as_str()) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
    properties.clone().with_headers(headers)
}
