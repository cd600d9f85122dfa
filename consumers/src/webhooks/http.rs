//! One delivery attempt over HTTP: resolve and check the address (see `ssrf`), connect to it,
//! TLS when the URL is `https`, POST the signed body, and read the status and the first KiB of
//! the answer, all within the attempt's timeout. A connection per attempt: nothing from one
//! endpoint's connection can leak into another's.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue, USER_AGENT};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

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
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Client {
    /// A client refusing what `policy` refuses, giving each attempt `timeout`.
    pub fn new(policy: UrlPolicy, timeout: Duration) -> Self {
        let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        // Only the ring provider is compiled in, so this is the platform's one TLS stack.
        let config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        Self { policy, timeout, tls: TlsConnector::from(Arc::new(config)) }
    }

    /// The URL rules this client applies.
    pub fn policy(&self) -> &UrlPolicy {
        &self.policy
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
        let addresses = self.policy.resolve(&target).await.map_err(|e| e.to_string())?;
        let stream = connect(&addresses).await?;
        let stream: Box<dyn Stream> = if target.https {
            let name = ServerName::try_from(target.host.clone()).map_err(|e| format!("bad TLS server name: {e}"))?;
            Box::new(self.tls.connect(name, stream).await.map_err(|e| format!("TLS: {e}"))?)
        } else {
            Box::new(stream)
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
        let driver = tokio::spawn(connection);
        let request = build(&target, headers, body)?;
        let answer = sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"));
        let answer = match answer {
            Ok(answer) => answer,
            Err(error) => {
                driver.abort();
                return Err(error);
            }
        };
        let status = answer.status().as_u16();
        let retry_after = answer.headers().get(hyper::header::RETRY_AFTER).and_then(retry_after);
        let response = read_start(answer.into_body()).await;
        driver.abort();
        Ok(Attempted { status: Some(status), response, retry_after, ..Attempted::default() })
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

/// Reads at most [`RESPONSE_KEPT`] bytes of the body; the rest is never read.
async fn read_start(mut body: hyper::body::Incoming) -> Option<String> {
    let mut kept = Vec::new();
    while kept.len() < RESPONSE_KEPT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = RESPONSE_KEPT - kept.len();
                    kept.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            _ => break,
        }
    }
    (!kept.is_empty()).then(|| String::from_utf8_lossy(&kept).into_owned())
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
