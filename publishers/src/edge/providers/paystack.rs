//! Paystack, the second external provider: `transaction/initialize` (with an `Idempotency-Key`:
//! our invoice id, so a retried call makes one transaction) gives the page the app pays on, and
//! `transaction/verify/{reference}` says what was paid. Paystack's webhook is signed
//! (`x-paystack-signature`: HMAC-SHA512 of the raw body under the secret key, hex); a webhook is
//! believed only when the signature holds, compared in constant time, and even then only as a
//! prompt to verify with Paystack.

use ring::hmac;
use schemas::payments::PaymentOption;
use schemas::{Currency, Sensitive};
use serde_json::json;
use uuid::Uuid;

use crate::edge::providers::{Answer, Client, Provider};

/// `[paystack]`: Paystack, through which integrations pay their bills and the app pays and tops
/// up; off unless `base_url` is set.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaystackSettings {
    /// `https://api.paystack.co`.
    pub base_url: Option<String>,
    /// The secret key (`sk_…`), which also signs Paystack's webhooks.
    pub secret_key: Sensitive,
    /// The ISO-4217 currency it collects in (`GHS`, `NGN`, …).
    pub currency: String,
}

impl Default for PaystackSettings {
    fn default() -> Self {
        Self { base_url: None, secret_key: Sensitive::default(), currency: "GHS".into() }
    }
}

impl PaystackSettings {
    /// These settings, when Paystack is configured.
    pub fn configured(&self) -> Option<Self> {
        self.base_url.is_some().then(|| self.clone())
    }

    /// The currency it collects in (checked when the settings were read).
    pub fn currency(&self) -> Currency {
        Currency::new(&self.currency).unwrap_or(Currency::GHS)
    }

    fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or_default().trim_end_matches('/')
    }
}

/// A Paystack merchant client.
pub struct Paystack {
    settings: PaystackSettings,
    client: Client,
    webhook_key: hmac::Key,
}

impl Paystack {
    /// A client for the merchant of `settings`.
    pub fn new(settings: PaystackSettings, http: outbound::Client) -> Self {
        let webhook_key = hmac::Key::new(hmac::HMAC_SHA512, settings.secret_key.expose().as_bytes());
        Self { settings, client: Client::new(http), webhook_key }
    }

    /// Whether `signature` (hex) is Paystack's signature of `body`, in constant time.
    pub fn signed(&self, body: &[u8], signature: &str) -> bool {
        let Ok(tag) = hex::decode(signature.trim()) else { return false };
        hmac::verify(&self.webhook_key, body, &tag).is_ok()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.settings.base_url())
    }
}

impl Provider for Paystack {
    fn option(&self) -> PaymentOption {
        PaymentOption::Paystack
    }

    fn currency(&self) -> Currency {
        self.settings.currency()
    }

    fn create<'a>(
        &'a self,
        id: Uuid,
        amount: i64,
        _description: &'a str,
        email: &'a str,
    ) -> Answer<'a, (String, String)> {
        Box::pin(async move {
            let authorization = format!("Bearer {}", self.settings.secret_key.expose());
            let key = id.to_string();
            let headers = [("authorization", authorization.as_str()), ("idempotency-key", key.as_str())];
            let body =
                json!({ "email": email, "amount": amount, "currency": self.settings.currency(), "reference": key });
            let url = self.url("/transaction/initialize");
            let answer = self.client.call(outbound::Method::POST, &url, &headers, Some(&body)).await?;
            let page = answer["data"]["authorization_url"].as_str().ok_or("Paystack gave no authorization_url")?;
            let reference = answer["data"]["reference"].as_str().unwrap_or(&key);
            Ok((reference.to_owned(), page.to_owned()))
        })
    }

    fn paid<'a>(&'a self, reference: &'a str) -> Answer<'a, Option<i64>> {
        Box::pin(async move {
            let authorization = format!("Bearer {}", self.settings.secret_key.expose());
            let url = self.url(&format!("/transaction/verify/{reference}"));
            let answer = self
                .client
                .call(outbound::Method::GET, &url, &[("authorization", authorization.as_str())], None)
                .await?;
            let data = &answer["data"];
            let currency = data["currency"].as_str().unwrap_or_default();
            if data["status"] != "success" || currency != self.settings.currency().as_str() {
                return Ok(None);
            }
            data["amount"].as_i64().map(Some).ok_or_else(|| "Paystack's verify has no amount".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_is_believed_only_with_paystacks_signature() {
        let http = outbound::trusted("voltbus-test", std::time::Duration::from_secs(5)).unwrap();
        let paystack = Paystack::new(
            PaystackSettings {
                base_url: Some("https://api.paystack.co".into()),
                secret_key: "sk_test_secret".into(),
                currency: "GHS".into(),
            },
            http,
        );
        let body = br#"{"event":"charge.success","data":{"reference":"r1"}}"#;
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, b"sk_test_secret"), body);
        let hex = hex::encode(tag.as_ref());
        assert!(paystack.signed(body, &hex));
        assert!(!paystack.signed(br#"{"event":"charge.success","data":{"reference":"r2"}}"#, &hex));
        assert!(!paystack.signed(body, "00"));
        assert!(!paystack.signed(body, "not hex"));
    }
}
