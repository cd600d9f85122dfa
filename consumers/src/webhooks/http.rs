//! One delivery attempt over HTTP: resolve and check the address (see `ssrf`), connect to it,
//! TLS when the URL is `https`, POST the signed body, and read the status and the first KiB of
//! the answer, all within the attempt's timeout.
//!
//! Connections are kept alive between attempts, but only for the endpoint (and URL) that opened
//! them: nothing from one endpoint's connection can leak into another's. A kept connection goes
//! to the address that was checked when it was opened, so reuse cannot be steered by a changed
//! DNS answer; a new connection resolves and checks again. A burst to one endpoint then costs a
//! request per attempt instead of a TCP (and TLS) handshake per attempt.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use uuid::Uuid;

use super::ssrf::{Target, UrlPolicy};

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
    tls: TlsConnector,
    idle: Arc<Idle>,
}

/// How long an idle connection is kept. Below the shortest keep-alive of common servers
/// (Node.js closes idle connections after 5 s), so a kept one is rarely found closed.
const IDLE_FOR: Duration = Duration::from_secs(4);
/// Idle connections kept per endpoint: more than its concurrent attempts, by default 8.
const IDLE_PER_ENDPOINT: usize = 32;

/// Idle connections, by the endpoint and URL they were opened for.
#[derive(Default)]
struct Idle {
    connections: Mutex<HashMap<(Uuid, String), Vec<Connection>>>,
}

/// An open HTTP/1.1 connection and the task that drives it.
struct Connection {
    sender: SendRequest<Full<Bytes>>,
    driver: JoinHandle<()>,
    idle_since: Instant,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Idle {
    /// A kept connection of `key` that is still open, if any.
    fn take(&self, key: &(Uuid, String)) -> Option<Connection> {
        let mut connections = self.connections.lock().ok()?;
        let kept = connections.get_mut(key)?;
        while let Some(connection) = kept.pop() {
            if connection.idle_since.elapsed() < IDLE_FOR && connection.sender.is_ready() {
                return Some(connection);
            }
        }
        None
    }

    /// Keeps `connection` for the next attempt of `key`.
    fn put(&self, key: (Uuid, String), mut connection: Connection) {
        let Ok(mut connections) = self.connections.lock() else { return };
        if connections.len() > 1024 {
            // Endpoints that went quiet: their connections are past IDLE_FOR anyway.
            connections.retain(|_, kept| kept.iter().any(|c| c.idle_since.elapsed() < IDLE_FOR));
        }
        let kept = connections.entry(key).or_default();
        kept.retain(|c| c.idle_since.elapsed() < IDLE_FOR);
        if kept.len() < IDLE_PER_ENDPOINT {
            connection.idle_since = Instant::now();
            kept.push(connection);
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Client {
    /// A client refusing what `policy` refuses, giving each attempt `timeout`.
    pub fn new(policy: UrlPolicy, timeout: Duration) -> Self {
        let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        // Only the ring provider is compiled in, so this is the platform's one TLS stack.
        let config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        Self { policy, timeout, tls: TlsConnector::from(Arc::new(config)), idle: Arc::default() }
    }

    /// The URL rules this client applies.
    pub fn policy(&self) -> &UrlPolicy {
        &self.policy
    }

    /// POSTs `body` to endpoint `endpoint`'s `url` with `headers`.
    pub async fn post(&self, endpoint: Uuid, url: &str, headers: &[(String, String)], body: Bytes) -> Attempted {
        let started = Instant::now();
        let outcome = tokio::time::timeout(self.timeout, self.exchange(endpoint, url, headers, body)).await;
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

    async fn exchange(
        &self,
        endpoint: Uuid,
        url: &str,
        headers: &[(String, String)],
        body: Bytes,
    ) -> Result<Attempted, String> {
        let target = self.policy.check(url).map_err(|e| e.to_string())?;
        let key = (endpoint, url.to_owned());
        if let Some(mut kept) = self.idle.take(&key) {
            match kept.sender.send_request(build(&target, headers, body.clone())?).await {
                Ok(answer) => return Ok(self.read(key, kept, answer).await),
                // The server closed the kept connection (idle too long) as the request went out,
                // before answering: the attempt goes on a new connection. Had the server read the
                // request and closed without an answer, the receiver sees it twice under one
                // `webhook-id`, which it de-duplicates as it does every retry.
                Err(error) if error.is_canceled() || error.is_incomplete_message() => {}
                Err(error) => return Err(format!("HTTP: {error}")),
            }
        }
        let mut connection = self.open(&target).await?;
        let answer = connection.sender.send_request(build(&target, headers, body)?).await;
        let answer = answer.map_err(|e| format!("HTTP: {e}"))?;
        Ok(self.read(key, connection, answer).await)
    }

    /// Resolves, checks and connects to `target`'s address.
    async fn open(&self, target: &Target) -> Result<Connection, String> {
        let addresses = self.policy.resolve(target).await.map_err(|e| e.to_string())?;
        let stream = connect(&addresses).await?;
        let stream: Box<dyn Stream> = if target.https {
            let name = ServerName::try_from(target.host.clone()).map_err(|e| format!("bad TLS server name: {e}"))?;
            Box::new(self.tls.connect(name, stream).await.map_err(|e| format!("TLS: {e}"))?)
        } else {
            Box::new(stream)
        };
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { sender, driver, idle_since: Instant::now() })
    }

    /// Reads the answer; the connection is kept when the whole answer was read.
    async fn read(
        &self,
        key: (Uuid, String),
        connection: Connection,
        answer: http::Response<hyper::body::Incoming>,
    ) -> Attempted {
        let status = answer.status().as_u16();
        let retry_after = answer.headers().get(hyper::header::RETRY_AFTER).and_then(retry_after);
        let (response, finished) = read_start(answer.into_body()).await;
        if finished {
            self.idle.put(key, connection);
        }
        Attempted { status: Some(status), response, retry_after, ..Attempted::default() }
    }
}

async fn connect(addresses: &[std::net::SocketAddr]) -> Result<TcpStream, String> {
    let mut last = String::from("no address");
    for address in addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => last = format!("cannot connect to {address}: {error}"),
        }
    }
    Err(last)
}

fn build(target: &Target, headers: &[(String, String)], body: Bytes) -> Result<http::Request<Full<Bytes>>, String> {
    let path = match target.url.query() {
        Some(query) => format!("{}?{query}", target.url.path()),
        None => target.url.path().to_owned(),
    };
    let mut request = http::Request::post(path).body(Full::new(body)).map_err(|e| format!("request: {e}"))?;
    let map = request.headers_mut();
    // The partner's own headers first: ours below overwrite any it tried to set.
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name}: {e}"))?;
        let value = HeaderValue::from_str(value).map_err(|e| format!("header {name}: {e}"))?;
        map.insert(name, value);
    }
    let authority = match target.url.port() {
        Some(port) => format!("{}:{port}", target.url.host_str().unwrap_or(&target.host)),
        None => target.url.host_str().unwrap_or(&target.host).to_owned(),
    };
    map.insert(HOST, HeaderValue::from_str(&authority).map_err(|e| format!("host: {e}"))?);
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    map.insert(USER_AGENT, HeaderValue::from_static(concat!("voltbus-webhooks/", env!("CARGO_PKG_VERSION"))));
    Ok(request)
}

/// Reads at most [`RESPONSE_KEPT`] bytes of the body, and whether that was all of it (the
/// connection can then carry another request); the rest is never read.
async fn read_start(mut body: hyper::body::Incoming) -> (Option<String>, bool) {
    use hyper::body::Body as _;
    let mut kept = Vec::new();
    let finished = loop {
        if kept.len() >= RESPONSE_KEPT {
            break body.is_end_stream();
        }
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = RESPONSE_KEPT - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            Some(Err(_)) => break false,
            None => break true,
        }
    };
    ((!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned()), finished)
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
