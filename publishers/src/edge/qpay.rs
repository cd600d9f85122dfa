//! QPay (merchant API v2), the external provider of top-ups: an access token for the merchant,
//! an invoice the app pays on QPay's page, and QPay's payment check, which is what settles an
//! invoice: QPay's callback carries no signature, so it is only a hint to ask QPay.
//!
//! Amounts: voltbus keeps minor units (hundredths); QPay takes and answers the currency's whole
//! units, so an invoice of 5,000 minor units is `50` at QPay.

use schemas::Currency;
use schemas::payments::PaymentOption;
use serde_json::{Value, json};
use uuid::Uuid;

use super::providers::{Answer, Client, Provider};

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
    client: Client,
}

impl Qpay {
    /// A client for the merchant of `settings`.
    pub fn new(settings: QpaySettings) -> Self {
        Self { settings, client: Client::new() }
    }

    async fn token(&self) -> Result<String, String> {
        let basic = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", self.settings.username, self.settings.password),
        );
        let authorization = format!("Basic {basic}");
        let answer = self.call("/v2/auth/token", &authorization, &json!({})).await?;
        answer["access_token"].as_str().map(str::to_owned).ok_or_else(|| "QPay gave no access_token".into())
    }

    async fn call(&self, path: &str, authorization: &str, body: &Value) -> Result<Value, String> {
        let url = format!("{}{path}", self.settings.base_url.trim_end_matches('/'));
        self.client.call(http::Method::POST, &url, &[("authorization", authorization)], Some(body)).await
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
        })
    }

    fn paid<'a>(&'a self, reference: &'a str) -> Answer<'a, Option<i64>> {
        Box::pin(async move {
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
        })
    }
}

/// Minor units as QPay's whole units.
fn whole(amount: i64) -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let whole = amount as f64 / 100.0;
    whole
}
