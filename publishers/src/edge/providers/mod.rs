//! External payment providers: their callbacks to us (`callbacks`, the door they come through),
//! and, behind one interface, each makes a payment page for one of our
//! invoices, and says what was paid on it. A provider's word is only ever taken from its own
//! API (QPay's payment check, Paystack's verify), never from a callback alone. The calls run at
//! the edge, outside any transaction, over HTTPS (plain HTTP only where a test's provider runs).

mod callbacks;
pub(crate) mod paystack;
pub(crate) mod qpay;

pub(crate) use callbacks::routes;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use schemas::Currency;
use schemas::payments::PaymentOption;
use serde_json::Value;
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

/// How long one call to a provider may take.
const TIMEOUT: Duration = Duration::from_secs(15);
/// The largest answer read from a provider.
const ANSWER_LIMIT: usize = 1 << 20;

/// A small JSON client for providers' APIs, over the platform's one HTTP client.
#[derive(Clone)]
pub(crate) struct Client {
    http: outbound::Client,
}

impl Client {
    /// Calls over `http`, each call bounded by [`TIMEOUT`].
    pub(crate) fn new(http: outbound::Client) -> Self {
        Self { http }
    }

    /// Sends `method` to `url` with `headers` and `body` (JSON when some); the JSON answer of a
    /// 2xx.
    pub(crate) async fn call(
        &self,
        method: outbound::Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let target = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        let host = target.host_str().ok_or("the URL has no host")?.to_owned();
        let mut request = self.http.request(method, target).timeout(TIMEOUT);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.header(outbound::header::CONTENT_TYPE, "application/json").body(body.to_string());
        }
        let mut answer = request.send().await.map_err(|e| format!("{host}: {e}"))?;
        let status = answer.status();
        let mut bytes = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| format!("{host}'s answer: {e}"))? {
            if bytes.len() + chunk.len() > ANSWER_LIMIT {
                return Err(format!("{host}'s answer is over {ANSWER_LIMIT} bytes"));
            }
            bytes.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            return Err(format!("{host} answered {status}"));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("{host}'s answer is not JSON: {e}"))
    }
}
