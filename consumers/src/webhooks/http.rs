//! One delivery attempt over HTTP: the URL checked (see `outbound::ssrf`), the signed body
//! POSTed through the platform's guarded client (whose resolver checks every address it
//! connects to, and which follows no redirect), and the status and the first KiB of the answer
//! read, all within the attempt's timeout.
//!
//! Connections are kept alive between attempts (the client's pool, per host), so a burst to one
//! endpoint costs a request per attempt instead of a TCP (and TLS) handshake per attempt. A kept
//! connection goes to the address that was checked when it was opened, so reuse cannot be
//! steered by a changed DNS answer; a new connection resolves and checks again. If the receiver
//! closed a kept connection as the request went out, the client sends it again on a new one.

use std::time::{Duration, Instant};

use bytes::Bytes;
use outbound::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use outbound::ssrf::UrlPolicy;

/// How much of a receiver's answer the delivery log keeps.
pub const RESPONSE_KEPT: usize = 1024;

/// What one attempt came to.
#[derive(Clone, Debug, Default)]
pub struct Attempted {
    /// The receiver's status, when it answered.
    pub status: Option<u16>,
    /// From the start of the attempt to the answer (or the failure).
    pub latency: Duration,
    /// The first KiB of the answer's body.
    pub response: Option<String>,
    /// Why there is no answer, or why it is not a success.
    pub error: Option<String>,
    /// The receiver's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
}

impl Attempted {
    /// A 2xx within the timeout.
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Sends webhook requests.
#[derive(Clone)]
pub struct Client {
    policy: UrlPolicy,
    timeout: Duration,
    http: outbound::Client,
}

impl Client {
    /// A client refusing what `policy` refuses, giving each attempt `timeout`.
    pub fn new(policy: UrlPolicy, timeout: Duration) -> Result<Self, outbound::Error> {
        let agent = concat!("voltbus-webhooks/", env!("CARGO_PKG_VERSION"));
        Ok(Self { http: outbound::guarded(agent, policy.clone())?, policy, timeout })
    }

    /// POSTs `body` to `url` with `headers`.
    pub async fn post(&self, url: &str, headers: &[(String, String)], body: Bytes) -> Attempted {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.exchange(url, headers, body)).await;
        let mut attempted = match outcome {
            Ok(Ok(attempted)) => attempted,
            Ok(Err(error)) => Attempted { error: Some(error), ..Attempted::default() },
            Err(_) => Attempted {
                error: Some(format!("no answer within {} ms", self.timeout.as_millis())),
                ..Attempted::default()
            },
        };
        attempted.latency = started.elapsed();
        if attempted.error.is_none() && !attempted.succeeded() {
            attempted.error = attempted.status.map(|s| format!("the receiver answered {s}"));
        }
        attempted
    }

    async fn exchange(&self, url: &str, headers: &[(String, String)], body: Bytes) -> Result<Attempted, String> {
        let target = self.policy.check(url).map_err(|e| e.to_string())?;
        let mut answer = self
            .http
            .post(target.url)
            .headers(header_map(headers)?)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(body)
            .send()
            .await
            .map_err(|e| described(&e))?;
        let status = answer.status().as_u16();
        let retry_after = answer.headers().get(RETRY_AFTER).and_then(retry_after);
        // Only the start of the answer is kept; the rest is never read (the connection is then
        // closed rather than kept).
        let mut kept = Vec::new();
        while kept.len() < RESPONSE_KEPT {
            match answer.chunk().await {
                Ok(Some(data)) => kept.extend_from_slice(&data[..data.len().min(RESPONSE_KEPT - kept.len())]),
                Ok(None) | Err(_) => break,
            }
        }
        let response = (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned());
        Ok(Attempted { status: Some(status), response, retry_after, ..Attempted::default() })
    }
}

/// The partner's own headers (ours, set after them, overwrite any it tried to set).
fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(headers.len() + 4);
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name}: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
        map.insert(name, value);
    }
    Ok(map)
}

/// A failed request in words, with its cause (reqwest's own message names only the stage).
fn described(error: &outbound::Error) -> String {
    let mut text = format!("HTTP: {error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_retry_after_in_both_forms() {
        assert_eq!(retry_after(&HeaderValue::from_static("7")), Some(Duration::from_secs(7)));
        let later = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822().replace("+0000", "GMT");
        let parsed = retry_after(&HeaderValue::from_str(&later).unwrap()).unwrap();
        assert!(parsed > Duration::from_secs(25) && parsed <= Duration::from_secs(30));
        assert_eq!(retry_after(&HeaderValue::from_static("soon")), None);
    }
}
