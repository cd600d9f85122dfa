//! QPay (merchant API v2), the external provider of top-ups: an access token for the merchant,
//! an invoice the app pays on QPay's page, and QPay's payment check, which is what settles an
//! invoice: QPay's callback carries no signature, so it is only a hint to ask QPay.
//!
//! Amounts: voltbus keeps minor units (hundredths); QPay takes and answers the currency's whole
//! units, so an invoice of 5,000 minor units is `50` at QPay.

use std::time::{Duration, Instant};

use schemas::payments::PaymentOption;
use schemas::{Currency, Sensitive};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::edge::providers::{Answer, Client, Provider};

/// `[qpay]`: QPay (merchant API v2), through which the app tops its balance up; off unless
/// `base_url` is set.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QpaySettings {
    /// `https://merchant.qpay.mn` (or a sandbox).
    pub base_url: Option<String>,
    /// Merchant user name.
    pub username: String,
    /// Merchant password.
    pub password: Sensitive,
    /// The merchant's invoice code.
    pub invoice_code: String,
    /// voltbus's public address of `…/api/v1/payments/qpay/callback`, where QPay calls back.
    pub callback_url: String,
}

impl QpaySettings {
    /// These settings, when QPay is configured.
    pub fn configured(&self) -> Option<Self> {
        self.base_url.is_some().then(|| self.clone())
    }
}

/// A QPay merchant client.
pub struct Qpay {
    settings: QpaySettings,
    client: Client,
    /// QPay's access token and when to stop using it: one token call per token lifetime, not
    /// one per invoice and check (a callback storm would otherwise double QPay's load).
    token: std::sync::Mutex<Option<(String, Instant)>>,
}

/// Stop using a token this long before QPay says it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

impl Qpay {
    /// A client for the merchant of `settings`.
    pub fn new(settings: QpaySettings, http: outbound::Client) -> Self {
        Self { settings, client: Client::new(http), token: std::sync::Mutex::new(None) }
    }

    /// A call with the merchant's token; a refused cached token is dropped and the call made once
    /// more with a fresh one.
    async fn authorized(&self, path: &str, body: &Value) -> Result<Value, String> {
        let cached = self.cached_token();
        let token = match &cached {
            Some(token) => token.clone(),
            None => self.token().await?,
        };
        match self.call(path, &format!("Bearer {token}"), body).await {
            Err(_) if cached.is_some() => {
                self.forget_token();
                let token = self.token().await?;
                self.call(path, &format!("Bearer {token}"), body).await
            }
            answer => answer,
        }
    }

    fn cached_token(&self) -> Option<String> {
        let cached = self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        cached.as_ref().filter(|(_, until)| Instant::now() < *until).map(|(token, _)| token.clone())
    }

    fn forget_token(&self) {
        *self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// A new access token, kept until shortly before it expires.
    async fn token(&self) -> Result<String, String> {
        let basic = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", self.settings.username, self.settings.password.expose()),
        );
        let authorization = format!("Basic {basic}");
        let answer = self.call("/v2/auth/token", &authorization, &json!({})).await?;
        let token = answer["access_token"].as_str().ok_or("QPay gave no access_token")?.to_owned();
        let lifetime = lifetime(answer["expires_in"].as_u64().unwrap_or(0)).saturating_sub(TOKEN_MARGIN);
        if !lifetime.is_zero() {
            *self.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((token.clone(), Instant::now() + lifetime));
        }
        Ok(token)
    }

    async fn call(&self, path: &str, authorization: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.settings.base_url.as_deref().unwrap_or_default().trim_end_matches('/'));
        self.client.call(outbound::Method::POST, &url, &[("authorization", authorization)], Some(body)).await
    }
}

impl Provider for Qpay {
    fn option(&self) -> PaymentOption {
        PaymentOption::Qpay
    }

    fn currency(&self) -> Currency {
        Currency::MNT
    }

    fn step(&self) -> i64 {
        100
    }

    fn create<'a>(
        &'a self,
        id: Uuid,
        amount: i64,
        description: &'a str,
        _email: &'a str,
    ) -> Answer<'a, (String, String)> {
        Box::pin(async move {
            let body = json!({
                "invoice_code": self.settings.invoice_code,
                "sender_invoice_no": id.to_string(),
                "invoice_receiver_code": "terminal",
                "invoice_description": description,
                "amount": whole(amount),
                "callback_url": format!("{}?invoice={id}", self.settings.callback_url),
            });
            let created = self.authorized("/v2/invoice", &body).await?;
            let reference = created["invoice_id"].as_str().ok_or("QPay's invoice has no invoice_id")?;
            let url = created["qPay_shortUrl"].as_str().ok_or("QPay's invoice has no qPay_shortUrl")?;
            Ok((reference.to_owned(), url.to_owned()))
        })
    }

    fn paid<'a>(&'a self, reference: &'a str) -> Answer<'a, Option<i64>> {
        Box::pin(async move {
            let body = json!({ "object_type": "INVOICE", "object_id": reference });
            let checked = self.authorized("/v2/payment/check", &body).await?;
            let rows = checked["rows"].as_array().cloned().unwrap_or_default();
            if !rows.iter().any(|row| row["payment_status"] == "PAID") {
                return Ok(None);
            }
            let amount = checked["paid_amount"].as_f64().ok_or("QPay's check has no paid_amount")?;
            #[allow(clippy::cast_possible_truncation)]
            Ok(Some((amount * 100.0).round() as i64))
        })
    }
}

/// A token's lifetime from QPay's `expires_in`, which some QPay deployments give in seconds and
/// others as the Unix time of expiry.
fn lifetime(expires_in: u64) -> Duration {
    const A_YEAR: u64 = 365 * 24 * 3600;
    if expires_in < A_YEAR {
        return Duration::from_secs(expires_in);
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    Duration::from_secs(expires_in).saturating_sub(now)
}

/// Minor units as QPay's whole units.
fn whole(amount: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let whole = amount as f64 / 100.0;
    whole
}
