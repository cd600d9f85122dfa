//! External payment providers behind one interface: each makes a payment page for one of our
//! invoices, and says what was paid on it. A provider's word is only ever taken from its own
//! API (QPay's payment check, Paystack's verify), never from a callback alone. The calls run at
//! the edge, outside any transaction, over HTTPS (plain HTTP only where a test's provider runs).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use schemas::Currency;
use schemas::payments::PaymentOption;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use uuid::Uuid;

/// A future a provider answers with.
pub(crate) type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// An external payment provider.
pub(crate) trait Provider: Send + Sync {
    /// The app's name of it (`QPAY`, `PAYSTACK`).
    fn option(&self) -> PaymentOption;

    /// The currency it collects in.
    fn currency(&self) -> Currency;

    /// The smallest step of an amount it takes, minor units (100: whole units only).
    fn step(&self) -> i64 {
        1
    }

    /// Makes the provider's payment of `amount` minor units for our invoice `id`, by `email`
    /// where the provider wants one: its reference, and the page the app pays on.
    fn create<'a>(
        &'a self,
        id: Uuid,
        amount: i64,
        description: &'a str,
        email: &'a str,
    ) -> Answer<'a, (String, String)>;

    /// What the provider says was paid on `reference`, minor units (none: nothing yet).
    fn paid<'a>(&'a self, reference: &'a str) -> Answer<'a, Option<i64>>;
}

/// The configured providers, by option.
#[derive(Clone, Default)]
pub(crate) struct Providers(Vec<Arc<dyn Provider>>);

impl Providers {
    /// These providers.
    pub(crate) fn new(providers: Vec<Arc<dyn Provider>>) -> Self {
        Self(providers)
    }

    /// The provider of `option`, if configured.
    pub(crate) fn of(&self, option: PaymentOption) -> Option<&Arc<dyn Provider>> {
        self.0.iter().find(|p| p.option() == option)
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How long one call to a provider may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// A small JSON client for providers' APIs.
#[derive(Clone)]
pub(crate) struct Client {
    tls: TlsConnector,
}

impl Client {
    pub(crate) fn new() -> Self {
        let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        Self { tls: TlsConnector::from(Arc::new(config)) }
    }

    /// Sends `method` to `url` with `headers` and `body` (JSON when some); the JSON answer of a
    /// 2xx.
    pub(crate) async fn call(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, String> {
        tokio::time::timeout(TIMEOUT, self.exchange(method, url, headers, body))
            .await
            .unwrap_or_else(|_| Err(format!("no answer from {url} within {} s", TIMEOUT.as_secs())))
    }

    async fn exchange(
        &self,
        method: http::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let target = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let host = target.host_str().ok_or("the URL has no host")?.to_owned();
        let port = target.port_or_known_default().ok_or("the URL has no port")?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("{host}: {e}"))?;
        let stream: Box<dyn Stream> = if target.scheme() == "https" {
            let name = ServerName::try_from(host.clone()).map_err(|e| format!("{host}: {e}"))?;
            Box::new(self.tls.connect(name, tcp).await.map_err(|e| format!("{host} TLS: {e}"))?)
        } else {
            Box::new(tcp)
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("{host}: {e}"))?;
        let driver = tokio::spawn(connection);
        let authority = match target.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        let path = match target.query() {
            Some(query) => format!("{}?{query}", target.path()),
            None => target.path().to_owned(),
        };
        let mut request = http::Request::builder().method(method).uri(path).header(http::header::HOST, authority);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let payload = match body {
            Some(body) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(payload)).map_err(|e| format!("request: {e}"))?;
        let result = async {
            let answer = sender.send_request(request).await.map_err(|e| format!("{host}: {e}"))?;
            let status = answer.status();
            let bytes = Limited::new(answer.into_body(), 1 << 20)
                .collect()
                .await
                .map_err(|e| format!("{host}'s answer: {e}"))?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("{host} answered {status}"));
            }
            serde_json::from_slice(&bytes).map_err(|e| format!("{host}'s answer is not JSON: {e}"))
        }
        .await;
        driver.abort();
        result
    }
}
