//! QPay (merchant API v2), the external provider of top-ups: an access token for the merchant,
//! an invoice the app pays on QPay's page, and QPay's payment check, which is what settles an
//! invoice: QPay's callback carries no signature, so it is only a hint to ask QPay.
//!
//! Amounts: voltbus keeps minor units (hundredths); QPay takes and answers the currency's whole
//! units, so an invoice of 5,000 minor units is `50` at QPay.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use uuid::Uuid;

/// Where QPay is and who the merchant is.
#[derive(Clone)]
pub struct QpaySettings {
    /// `https://merchant.qpay.mn` (or a sandbox).
    pub base_url: String,
    /// Merchant user name.
    pub username: String,
    /// Merchant password (a secret).
    pub password: String,
    /// The merchant's invoice code.
    pub invoice_code: String,
    /// Where QPay calls back when an invoice is paid (`…/api/v1/payments/qpay/callback`).
    pub callback_url: String,
}

impl std::fmt::Debug for QpaySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QpaySettings")
            .field("base_url", &self.base_url)
            .field("username", &self.username)
            .field("password", &"***")
            .field("invoice_code", &self.invoice_code)
            .field("callback_url", &self.callback_url)
            .finish()
    }
}

/// A QPay merchant client.
pub struct Qpay {
    settings: QpaySettings,
    tls: TlsConnector,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// How long one call to QPay may take.
const TIMEOUT: Duration = Duration::from_secs(15);

impl Qpay {
    /// A client for the merchant of `settings`.
    pub fn new(settings: QpaySettings) -> Self {
        let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let config = ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
        Self { settings, tls: TlsConnector::from(Arc::new(config)) }
    }

    /// Creates an invoice of `amount` minor units for our invoice `id`; QPay's invoice id and
    /// the address the app pays it at.
    pub async fn create_invoice(&self, id: Uuid, amount: i64, description: &str) -> Result<(String, String), String> {
        let token = self.token().await?;
        let body = json!({
            "invoice_code": self.settings.invoice_code,
            "sender_invoice_no": id.to_string(),
            "invoice_receiver_code": "terminal",
            "invoice_description": description,
            "amount": whole(amount),
            "callback_url": format!("{}?invoice={id}", self.settings.callback_url),
        });
        let created = self.call("/v2/invoice", &format!("Bearer {token}"), &body).await?;
        let reference = created["invoice_id"].as_str().ok_or("QPay's invoice has no invoice_id")?;
        let url = created["qPay_shortUrl"].as_str().ok_or("QPay's invoice has no qPay_shortUrl")?;
        Ok((reference.to_owned(), url.to_owned()))
    }

    /// What QPay says was paid on its invoice `reference`, in minor units (none: nothing yet).
    pub async fn paid(&self, reference: &str) -> Result<Option<i64>, String> {
        let token = self.token().await?;
        let body = json!({ "object_type": "INVOICE", "object_id": reference });
        let checked = self.call("/v2/payment/check", &format!("Bearer {token}"), &body).await?;
        let rows = checked["rows"].as_array().cloned().unwrap_or_default();
        if !rows.iter().any(|row| row["payment_status"] == "PAID") {
            return Ok(None);
        }
        let amount = checked["paid_amount"].as_f64().ok_or("QPay's check has no paid_amount")?;
        #[allow(clippy::cast_possible_truncation)]
        Ok(Some((amount * 100.0).round() as i64))
    }

    async fn token(&self) -> Result<String, String> {
        let basic = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", self.settings.username, self.settings.password),
        );
        let answer = self.call("/v2/auth/token", &format!("Basic {basic}"), &json!({})).await?;
        answer["access_token"].as_str().map(str::to_owned).ok_or_else(|| "QPay gave no access_token".into())
    }

    /// POSTs `body` to `path` with `authorization`; the JSON answer of a 2xx.
    async fn call(&self, path: &str, authorization: &str, body: &Value) -> Result<Value, String> {
        tokio::time::timeout(TIMEOUT, self.exchange(path, authorization, body))
            .await
            .unwrap_or_else(|_| Err(format!("QPay did not answer {path} within {} s", TIMEOUT.as_secs())))
    }

    async fn exchange(&self, path: &str, authorization: &str, body: &Value) -> Result<Value, String> {
        let base = url::Url::parse(&self.settings.base_url).map_err(|e| format!("qpay.base_url: {e}"))?;
        let host = base.host_str().ok_or("qpay.base_url has no host")?.to_owned();
        let port = base.port_or_known_default().ok_or("qpay.base_url has no port")?;
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| format!("QPay: {e}"))?;
        let stream: Box<dyn Stream> = if base.scheme() == "https" {
            let name = ServerName::try_from(host.clone()).map_err(|e| format!("QPay's host: {e}"))?;
            Box::new(self.tls.connect(name, tcp).await.map_err(|e| format!("QPay TLS: {e}"))?)
        } else {
            Box::new(tcp)
        };
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("QPay: {e}"))?;
        let driver = tokio::spawn(connection);
        let authority = match base.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        let request = http::Request::post(format!("{}{path}", base.path().trim_end_matches('/')))
            .header(http::header::HOST, authority)
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| format!("QPay request: {e}"))?;
        let answer = sender.send_request(request).await.map_err(|e| format!("QPay: {e}"));
        let result = async {
            let answer = answer?;
            let status = answer.status();
            let bytes = Limited::new(answer.into_body(), 1 << 20)
                .collect()
                .await
                .map_err(|e| format!("QPay's answer: {e}"))?
                .to_bytes();
            if !status.is_success() {
                return Err(format!("QPay answered {path} with {status}"));
            }
            serde_json::from_slice(&bytes).map_err(|e| format!("QPay's answer is not JSON: {e}"))
        }
        .await;
        driver.abort();
        result
    }
}

/// Minor units as QPay's whole units.
fn whole(amount: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let whole = amount as f64 / 100.0;
    whole
}
