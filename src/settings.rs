//! Configuration in layers: built-in defaults, then an optional TOML file, then `VOLTBUS__…`
//! environment variables (`VOLTBUS__DATABASE__URL` sets `database.url`).
//!
//! With no database, AMQP or NATS URL, `serve` runs on the embedded default: an SQLite file under
//! `data_dir` and in-process transports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Everything `voltbus` can be told.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where the embedded database lives.
    pub data_dir: PathBuf,
    /// The HTTP edge.
    pub http: HttpSettings,
    /// The partner API.
    pub partner: PartnerSettings,
    /// Outbound webhooks.
    pub webhooks: WebhookSettings,
    /// Vehicles and their telemetry.
    pub fleet: FleetSettings,
    /// The consumers' database.
    pub database: UrlSettings,
    /// RabbitMQ.
    pub amqp: AmqpSettings,
    /// NATS.
    pub nats: NatsSettings,
    /// The bus's own tables.
    pub bus: BusSettings,
    /// The mobile app's API (`/api/v1`).
    pub mobile: MobileSettings,
    /// Chargers.
    pub charging: ChargingSettings,
    /// Integrations (EVCare seed): machine tokens, session codes, portal sessions.
    pub integrations: IntegrationSettings,
    /// The plan integrations are billed on.
    pub billing: BillingSettings,
    /// QPay, an external payment provider.
    pub qpay: QpaySettings,
    /// Paystack, an external payment provider.
    pub paystack: PaystackSettings,
    /// The operator console at `/admin`.
    pub console: ConsoleSettings,
    /// Logging.
    pub log: LogSettings,
}

/// `[console]`: the operator console at `/admin`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Whether `/admin` is served at all.
    pub enabled: bool,
    /// Hours a sign-in lasts.
    pub session_hours: u64,
    /// Failed sign-ins in a row that lock an operator account.
    pub lock_after_failures: u32,
    /// Minutes the lock lasts.
    pub lock_minutes: u64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        let edge = publishers::ConsoleSettings::default();
        Self {
            enabled: true,
            session_hours: edge.session_ttl.as_secs() / 3600,
            lock_after_failures: edge.lock_after,
            lock_minutes: edge.lock_for.as_secs() / 60,
        }
    }
}

impl ConsoleSettings {
    /// As the edge takes them.
    pub fn to_edge(&self) -> publishers::ConsoleSettings {
        publishers::ConsoleSettings {
            // A year at most: `now + ttl` must stay a date.
            session_ttl: std::time::Duration::from_secs(self.session_hours.clamp(1, 24 * 366) * 3600),
            lock_after: self.lock_after_failures.max(1),
            lock_for: std::time::Duration::from_secs(self.lock_minutes.clamp(1, 60 * 24 * 366) * 60),
        }
    }
}

/// The HTTP edge.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Listening address.
    pub bind: SocketAddr,
    /// Seconds requests in flight get to finish at shutdown.
    pub shutdown_grace_seconds: u64,
    /// When set, `GET /metrics` needs `Authorization: Bearer <this>`.
    #[serde(default)]
    pub metrics_token: Option<String>,
}

impl std::fmt::Debug for HttpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSettings")
            .field("bind", &self.bind)
            .field("shutdown_grace_seconds", &self.shutdown_grace_seconds)
            .field("metrics_token", &self.metrics_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// An engine chosen by URL; none means the embedded one.
/// `[partner]`: the partner REST API.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerSettings {
    /// Keys are `<key_prefix>_pk_…` (2 to 8 lower-case letters).
    pub key_prefix: String,
    /// Largest request body, in bytes.
    pub body_limit_bytes: usize,
    /// Longest a request may take, in seconds.
    pub request_timeout_seconds: u64,
    /// Longest the edge waits for a command's reply, in milliseconds.
    pub command_timeout_ms: u64,
    /// How long a key read from the database is trusted, in milliseconds.
    pub key_cache_ttl_ms: u64,
    /// Failed authentications a client address may make per minute before it gets 429.
    pub failed_authentications_per_minute: u32,
}

impl PartnerSettings {
    /// The edge's view of these settings.
    pub fn to_edge(&self) -> publishers::PartnerSettings {
        publishers::PartnerSettings {
            key_prefix: self.key_prefix.clone(),
            body_limit: self.body_limit_bytes,
            request_timeout: std::time::Duration::from_secs(self.request_timeout_seconds),
            command_timeout: std::time::Duration::from_millis(self.command_timeout_ms),
            key_cache_ttl: std::time::Duration::from_millis(self.key_cache_ttl_ms),
            failed_authentications_per_minute: self.failed_authentications_per_minute,
            ..publishers::PartnerSettings::default()
        }
    }
}

impl Default for PartnerSettings {
    fn default() -> Self {
        let edge = publishers::PartnerSettings::default();
        Self {
            key_prefix: edge.key_prefix,
            body_limit_bytes: edge.body_limit,
            request_timeout_seconds: edge.request_timeout.as_secs(),
            command_timeout_ms: u64::try_from(edge.command_timeout.as_millis()).unwrap_or(u64::MAX),
            key_cache_ttl_ms: u64::try_from(edge.key_cache_ttl.as_millis()).unwrap_or(u64::MAX),
            failed_authentications_per_minute: edge.failed_authentications_per_minute,
        }
    }
}

/// `[webhooks]`: outbound webhook deliveries.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// An attempt without a 2xx within this many milliseconds failed.
    pub timeout_ms: u64,
    /// Milliseconds before attempt 2, 3, …: the seed's 1, 2, 4, 8 s by default; minutes to
    /// hours for a longer schedule.
    pub retry_schedule_ms: Vec<u64>,
    /// Longest wait, in seconds, a receiver's `Retry-After` can ask for.
    pub retry_after_max_seconds: u64,
    /// Attempts to one endpoint at once, per process.
    pub concurrency_per_endpoint: usize,
    /// Seconds an endpoint may fail without a success before it is disabled (5 days).
    pub disable_after_seconds: u64,
    /// Days payloads and attempt logs are kept.
    pub retention_days: u64,
    /// Hosts allowed plain HTTP and private addresses (tests, on-premise receivers).
    #[serde(default)]
    pub allow_hosts: Vec<String>,
    /// Base64 of the 32-byte key that seals signing secrets at rest. Unset: a key file in
    /// `data_dir`, made on first start.
    pub encryption_key: Option<String>,
    /// How often the scheduler looks for due attempts, in milliseconds.
    pub scheduler_interval_ms: u64,
}

impl std::fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The encryption key is a secret: never printed.
        f.debug_struct("WebhookSettings")
            .field("timeout_ms", &self.timeout_ms)
            .field("retry_schedule_ms", &self.retry_schedule_ms)
            .field("allow_hosts", &self.allow_hosts)
            .field("encryption_key", &self.encryption_key.as_ref().map(|_| "***"))
            .finish_non_exhaustive()
    }
}

impl Default for WebhookSettings {
    fn default() -> Self {
        let policy = consumers::webhooks::DeliveryPolicy::default();
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Self {
            timeout_ms: ms(policy.timeout),
            retry_schedule_ms: policy.retry_delays.iter().map(|d| ms(*d)).collect(),
            retry_after_max_seconds: policy.retry_after_max.as_secs(),
            concurrency_per_endpoint: policy.concurrency_per_endpoint,
            disable_after_seconds: policy.disable_after.as_secs(),
            retention_days: policy.retention.as_secs() / 86_400,
            allow_hosts: Vec::new(),
            encryption_key: None,
            scheduler_interval_ms: 100,
        }
    }
}

impl WebhookSettings {
    /// The dispatcher's policy.
    pub fn policy(&self) -> consumers::webhooks::DeliveryPolicy {
        use std::time::Duration;
        consumers::webhooks::DeliveryPolicy {
            timeout: Duration::from_millis(self.timeout_ms),
            retry_delays: self.retry_schedule_ms.iter().map(|ms| Duration::from_millis(*ms)).collect(),
            retry_after_max: Duration::from_secs(self.retry_after_max_seconds),
            concurrency_per_endpoint: self.concurrency_per_endpoint.max(1),
            disable_after: Duration::from_secs(self.disable_after_seconds),
            retention: Duration::from_secs(self.retention_days.saturating_mul(86_400)),
        }
    }

    /// The URL rules.
    pub fn url_policy(&self) -> outbound::ssrf::UrlPolicy {
        outbound::ssrf::UrlPolicy { allow_hosts: self.allow_hosts.clone() }
    }
}

/// `[fleet]`: vehicles and the telemetry ingest.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSettings {
    /// `vehicle.battery_low` when a vehicle's charge falls below this percentage.
    pub battery_low_percent: u8,
    /// `vehicle.location_updated` when a vehicle is this many metres from where the last one
    /// placed it.
    pub moved_metres: u32,
    /// Days the state history is kept.
    pub history_days: u64,
    /// Most reports the ingest takes in one transaction.
    pub telemetry_batch: usize,
    /// Seconds a command to a vehicle waits for its device's answer before it has timed out
    /// (and the device must no longer carry it out).
    pub command_timeout_seconds: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        let thresholds = consumers::fleet::telemetry::Thresholds::default();
        Self {
            battery_low_percent: thresholds.battery_low_percent,
            moved_metres: thresholds.moved_metres,
            history_days: 30,
            telemetry_batch: 500,
            command_timeout_seconds: 30,
        }
    }
}

impl FleetSettings {
    /// How long a command to a vehicle waits for its device's answer.
    pub fn command_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.command_timeout_seconds.max(1))
    }

    /// When telemetry becomes an event.
    pub fn thresholds(&self) -> consumers::fleet::telemetry::Thresholds {
        consumers::fleet::telemetry::Thresholds {
            battery_low_percent: self.battery_low_percent,
            moved_metres: self.moved_metres,
        }
    }
}

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlSettings {
    /// Connection URL, which may hold a password.
    pub url: Option<String>,
}

impl std::fmt::Debug for UrlSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never print it whole.
        let shown = self.url.as_deref().map(bus::redact_url);
        f.debug_struct("UrlSettings").field("url", &shown).finish()
    }
}

/// `[bus]`: how long the bus's own tables keep their rows.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSettings {
    /// Days a handled message's inbox row is kept: longer than it can come again (NATS
    /// retention, a day of idempotency keys).
    pub inbox_days: u64,
    /// Days a published outbox row is kept (0: until the next housekeeping pass).
    pub outbox_days: u64,
}

impl Default for BusSettings {
    fn default() -> Self {
        Self { inbox_days: 7, outbox_days: 7 }
    }
}

impl BusSettings {
    /// How long inbox rows are kept.
    pub fn inbox(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.inbox_days.saturating_mul(86_400))
    }

    /// How long published outbox rows are kept.
    pub fn outbox(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.outbox_days.saturating_mul(86_400))
    }
}

/// `[nats]`: NATS, and the accounts that sign mobile users' credentials.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// Connection URL.
    pub url: Option<String>,
    /// Operator nkey seed (`SO…`) of a server in operator mode (`voltbus nats-accounts` makes
    /// one and prints the server's configuration); with `account_seed`, voltbus connects as a
    /// user of that account and signs each mobile user's credentials.
    pub operator_seed: Option<String>,
    /// Account nkey seed (`SA…`).
    pub account_seed: Option<String>,
    /// What mobile apps are told to connect to (`nats.servers`); unset: `url`.
    pub public_url: Option<String>,
    /// Hours JetStream keeps telemetry, events and device commands (consumers take them within
    /// seconds; this bounds the disk, and an outage longer than it loses what it missed).
    pub retention_hours: u64,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: None,
            operator_seed: None,
            account_seed: None,
            public_url: None,
            retention_hours: bus::nats::DEFAULT_RETENTION.as_secs() / 3600,
        }
    }
}

impl std::fmt::Debug for NatsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |seed: &Option<String>| seed.as_ref().map(|_| "***");
        f.debug_struct("NatsSettings")
            .field("url", &self.url.as_deref().map(bus::redact_url))
            .field("operator_seed", &hidden(&self.operator_seed))
            .field("account_seed", &hidden(&self.account_seed))
            .field("public_url", &self.public_url)
            .field("retention_hours", &self.retention_hours)
            .finish()
    }
}

impl NatsSettings {
    /// How long JetStream keeps telemetry, events and device commands.
    pub fn retention(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.retention_hours.saturating_mul(3600))
    }

    /// The accounts that sign credentials, when both seeds are set.
    pub fn accounts(&self) -> Result<Option<bus::nats::accounts::Accounts>, SettingsError> {
        match (&self.operator_seed, &self.account_seed) {
            (Some(operator), Some(account)) => bus::nats::accounts::Accounts::from_seeds(operator, account)
                .map(Some)
                .map_err(|e| SettingsError(e.to_string())),
            (None, None) => Ok(None),
            _ => Err(SettingsError("nats.operator_seed and nats.account_seed go together".into())),
        }
    }
}

/// `[mobile]`: the mobile app's API (EVM seed).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileSettings {
    /// The organisation of requests whose `X-Tenant` names none.
    pub tenant: Option<String>,
    /// How long a sign-in code works.
    pub code_ttl_seconds: u64,
    /// Wrong guesses a code survives.
    pub code_max_attempts: u32,
    /// Codes a phone may ask for in an hour.
    pub codes_per_hour: u32,
    /// Codes a phone may ask for in a day.
    pub codes_per_day: u32,
    /// How long a session (and its NATS credentials) lasts.
    pub session_ttl_seconds: u64,
    /// A fixed code for development (e.g. the seed's `0000`); unset, codes are random.
    pub dev_code: Option<String>,
    /// Base64 of 32 bytes keying the codes' hashes; unset: a key file in `data_dir`.
    pub code_key: Option<String>,
}

impl std::fmt::Debug for MobileSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MobileSettings")
            .field("tenant", &self.tenant)
            .field("code_ttl_seconds", &self.code_ttl_seconds)
            .field("code_max_attempts", &self.code_max_attempts)
            .field("codes_per_hour", &self.codes_per_hour)
            .field("codes_per_day", &self.codes_per_day)
            .field("session_ttl_seconds", &self.session_ttl_seconds)
            .field("dev_code", &self.dev_code.as_ref().map(|_| "***"))
            .field("code_key", &self.code_key.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Default for MobileSettings {
    fn default() -> Self {
        Self {
            tenant: None,
            code_ttl_seconds: 300,
            code_max_attempts: 5,
            codes_per_hour: 5,
            codes_per_day: 10,
            session_ttl_seconds: 30 * 86_400,
            dev_code: None,
            code_key: None,
        }
    }
}

impl MobileSettings {
    /// The limits the customers group keeps.
    pub fn sign_in_policy(&self) -> consumers::sign_in::SignInPolicy {
        consumers::sign_in::SignInPolicy {
            max_attempts: self.code_max_attempts,
            codes_per_hour: self.codes_per_hour,
            codes_per_day: self.codes_per_day,
        }
    }
}

/// `[charging]`: chargers.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargingSettings {
    /// A charger not heard from (status or meter values) this long reads as `Offline`.
    pub offline_after_seconds: u64,
}

impl Default for ChargingSettings {
    fn default() -> Self {
        Self { offline_after_seconds: 300 }
    }
}

impl ChargingSettings {
    /// [`ChargingSettings::offline_after_seconds`] as a duration.
    pub fn offline_after(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.offline_after_seconds)
    }
}

/// `[integrations]`: integrations' machine tokens, session codes and portal sessions.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSettings {
    /// How long a machine token lives (default 900: 15 minutes).
    pub token_ttl_seconds: u64,
    /// The key machine tokens are signed with, 32 bytes in standard base64; every edge must
    /// share it. Unset: a key file in `data_dir`, made on first start.
    pub token_key: Option<String>,
    /// How long a session code may wait to be redeemed (default 120).
    pub session_code_ttl_seconds: u64,
    /// How long a portal session lasts (default 28,800: 8 hours).
    pub portal_session_ttl_seconds: u64,
    /// How long a rotated secret keeps working unless the rotation says otherwise (default
    /// 86,400: a day).
    pub rotation_grace_seconds: u32,
}

impl std::fmt::Debug for IntegrationSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationSettings")
            .field("token_ttl_seconds", &self.token_ttl_seconds)
            .field("token_key", &self.token_key.as_ref().map(|_| "***"))
            .field("session_code_ttl_seconds", &self.session_code_ttl_seconds)
            .field("portal_session_ttl_seconds", &self.portal_session_ttl_seconds)
            .field("rotation_grace_seconds", &self.rotation_grace_seconds)
            .finish()
    }
}

impl Default for IntegrationSettings {
    fn default() -> Self {
        let edge = publishers::IntegrationSettings::default();
        Self {
            token_ttl_seconds: edge.token_ttl.as_secs(),
            token_key: None,
            session_code_ttl_seconds: edge.session_code_ttl.as_secs(),
            portal_session_ttl_seconds: edge.portal_session_ttl.as_secs(),
            rotation_grace_seconds: edge.rotation_grace_seconds,
        }
    }
}

impl IntegrationSettings {
    /// The edge's settings, with the token key (already read and checked).
    pub fn to_edge(&self, token_key: [u8; 32]) -> publishers::IntegrationSettings {
        use std::time::Duration;
        publishers::IntegrationSettings {
            token_key: Some(token_key),
            token_ttl: Duration::from_secs(self.token_ttl_seconds),
            session_code_ttl: Duration::from_secs(self.session_code_ttl_seconds),
            portal_session_ttl: Duration::from_secs(self.portal_session_ttl_seconds),
            rotation_grace_seconds: self.rotation_grace_seconds,
        }
    }
}

/// `[billing]`: the plan integrations are billed on, monthly, in Paystack's currency.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BillingSettings {
    /// ISO-4217 currency of the plan (default GHS).
    pub currency: String,
    /// Monthly fee, minor units.
    pub monthly_fee: i64,
    /// API calls a month included in the fee.
    pub included_api_calls: u64,
    /// Minor units per thousand calls beyond.
    pub api_calls_per_thousand: i64,
    /// Event deliveries a month included.
    pub included_event_deliveries: u64,
    /// Minor units per thousand deliveries beyond.
    pub event_deliveries_per_thousand: i64,
}

impl Default for BillingSettings {
    fn default() -> Self {
        let plan = publishers::PartnerSettings::default().billing;
        let metric = |name: &str| plan.metrics.iter().find(|m| m.metric == name).cloned();
        let (calls, deliveries) = (metric("api_call"), metric("event_delivery"));
        Self {
            currency: plan.currency.as_str().to_owned(),
            monthly_fee: plan.monthly_fee,
            included_api_calls: calls.as_ref().map_or(0, |m| m.included),
            api_calls_per_thousand: calls.map_or(0, |m| m.per_thousand),
            included_event_deliveries: deliveries.as_ref().map_or(0, |m| m.included),
            event_deliveries_per_thousand: deliveries.map_or(0, |m| m.per_thousand),
        }
    }
}

impl BillingSettings {
    /// The plan (the currency already checked by validation).
    pub fn plan(&self) -> schemas::billing::Plan {
        use schemas::billing::MeteredPrice;
        schemas::billing::Plan {
            currency: schemas::Currency::new(&self.currency).unwrap_or(schemas::Currency::GHS),
            monthly_fee: self.monthly_fee,
            metrics: vec![
                MeteredPrice {
                    metric: "api_call".into(),
                    included: self.included_api_calls,
                    per_thousand: self.api_calls_per_thousand,
                },
                MeteredPrice {
                    metric: "event_delivery".into(),
                    included: self.included_event_deliveries,
                    per_thousand: self.event_deliveries_per_thousand,
                },
            ],
        }
    }
}

/// `[qpay]`: QPay (merchant API v2), through which the app tops its balance up; off unless
/// `base_url` is set.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QpaySettings {
    /// `https://merchant.qpay.mn`.
    pub base_url: Option<String>,
    /// Merchant user name.
    pub username: String,
    /// Merchant password (a secret).
    pub password: String,
    /// The merchant's invoice code.
    pub invoice_code: String,
    /// voltbus's public address of `…/api/v1/payments/qpay/callback`.
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

impl QpaySettings {
    /// The edge's view, when QPay is configured.
    pub fn to_edge(&self) -> Option<publishers::QpaySettings> {
        self.base_url.as_ref().map(|base_url| publishers::QpaySettings {
            base_url: base_url.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            invoice_code: self.invoice_code.clone(),
            callback_url: self.callback_url.clone(),
        })
    }
}

/// `[paystack]`: Paystack, through which the app can pay and top up; off unless `base_url` is
/// set.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaystackSettings {
    /// `https://api.paystack.co`.
    pub base_url: Option<String>,
    /// The secret key (`sk_…`), which also signs Paystack's webhooks (a secret).
    pub secret_key: String,
    /// The currency Paystack collects in.
    pub currency: String,
}

impl Default for PaystackSettings {
    fn default() -> Self {
        Self { base_url: None, secret_key: String::new(), currency: "GHS".into() }
    }
}

impl std::fmt::Debug for PaystackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaystackSettings")
            .field("base_url", &self.base_url)
            .field("secret_key", &"***")
            .field("currency", &self.currency)
            .finish()
    }
}

impl PaystackSettings {
    /// The edge's view, when Paystack is configured.
    pub fn to_edge(&self) -> Option<publishers::PaystackSettings> {
        let currency = schemas::Currency::new(&self.currency).ok()?;
        self.base_url.as_ref().map(|base_url| publishers::PaystackSettings {
            base_url: base_url.clone(),
            secret_key: self.secret_key.clone(),
            currency,
        })
    }
}

/// `[amqp]`: RabbitMQ.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// Connection URL, which may hold a password.
    pub url: Option<String>,
    /// Its management API, where subscriptions are set up; unset: the same host, port 15672,
    /// HTTP, with the AMQP credentials.
    pub management_url: Option<String>,
}

impl std::fmt::Debug for AmqpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Both URLs may carry a password: never print them whole.
        f.debug_struct("AmqpSettings")
            .field("url", &self.url.as_deref().map(bus::redact_url))
            .field("management_url", &self.management_url.as_deref().map(bus::redact_url))
            .finish()
    }
}

/// Logging.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `human` for people, `json` for log collectors.
    pub format: LogFormat,
    /// `tracing` filter (`info`, `voltbus=debug,lapin=warn`); `RUST_LOG` wins when set.
    pub filter: String,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("voltbus-data"),
            http: HttpSettings {
                bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
                shutdown_grace_seconds: 30,
                metrics_token: None,
            },
            partner: PartnerSettings::default(),
            webhooks: WebhookSettings::default(),
            fleet: FleetSettings::default(),
            database: UrlSettings::default(),
            amqp: AmqpSettings::default(),
            nats: NatsSettings::default(),
            bus: BusSettings::default(),
            mobile: MobileSettings::default(),
            charging: ChargingSettings::default(),
            integrations: IntegrationSettings::default(),
            billing: BillingSettings::default(),
            qpay: QpaySettings::default(),
            paystack: PaystackSettings::default(),
            console: ConsoleSettings::default(),
            log: LogSettings { format: LogFormat::Human, filter: "info".into() },
        }
    }
}

/// Configuration that cannot be used; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(String);

impl Settings {
    /// Loads defaults, then `file` (required when given), then `VOLTBUS__…` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, SettingsError> {
        Self::load_from(file, std::env::vars())
    }

    /// Like [`Settings::load`], with the environment given explicitly (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let defaults = config::Config::try_from(&Settings::default()).map_err(|e| SettingsError(e.to_string()))?;
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml).required(true));
        }
        let env: config::Map<String, String> = env.into_iter().filter(|(k, _)| k.starts_with("VOLTBUS__")).collect();
        builder = builder.add_source(
            config::Environment::with_prefix("VOLTBUS").prefix_separator("__").separator("__").source(Some(env)),
        );
        let settings: Settings =
            builder.build().and_then(config::Config::try_deserialize).map_err(|e| SettingsError(e.to_string()))?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), SettingsError> {
        let check = |key: &str, url: &Option<String>, schemes: &[&str]| match url {
            Some(u) if u.trim().is_empty() => {
                Err(SettingsError(format!("{key} is empty; remove it to use the embedded default")))
            }
            Some(u) if !schemes.iter().any(|s| u.starts_with(s)) => {
                Err(SettingsError(format!("{key} `{}` must start with {}", bus::redact_url(u), schemes.join(" or "))))
            }
            _ => Ok(()),
        };
        check("database.url", &self.database.url, &["postgres://", "postgresql://", "sqlite:"])?;
        check("amqp.url", &self.amqp.url, &["amqp://", "amqps://"])?;
        check("nats.url", &self.nats.url, &["nats://", "tls://", "ws://", "wss://"])?;
        let prefix = &self.partner.key_prefix;
        if !(2..=8).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(SettingsError(format!("partner.key_prefix `{prefix}` must be 2 to 8 lower-case letters")));
        }
        if self.partner.body_limit_bytes == 0 || self.partner.command_timeout_ms == 0 {
            return Err(SettingsError(
                "partner.body_limit_bytes and partner.command_timeout_ms must be above 0".into(),
            ));
        }
        if self.webhooks.timeout_ms == 0 || self.webhooks.retry_schedule_ms.len() > 50 {
            return Err(SettingsError(
                "webhooks.timeout_ms must be above 0 and webhooks.retry_schedule_ms at most 50 long".into(),
            ));
        }
        if self.webhooks.encryption_key.as_deref().is_some_and(|key| signatures::Vault::new(key).is_err()) {
            return Err(SettingsError("webhooks.encryption_key must be 32 bytes in standard base64".into()));
        }
        // The duplicate window must fit in the age limit, and an inbox row must outlive every way
        // its message comes again: the stream replayed whole, or a day's idempotency key.
        let stream_hours = self.nats.retention_hours;
        if !(1..=87_600).contains(&stream_hours)
            || self.bus.inbox_days < 2
            || self.bus.inbox_days.saturating_mul(24) <= stream_hours
        {
            return Err(SettingsError(format!(
                "nats.retention_hours must be 1 to 87600 (ten years), and bus.inbox_days at least 2 and \
                 longer than nats.retention_hours ({stream_hours} h)"
            )));
        }
        if self.fleet.battery_low_percent > 100 || self.fleet.telemetry_batch == 0 {
            return Err(SettingsError(
                "fleet.battery_low_percent must be 0 to 100 and fleet.telemetry_batch above 0".into(),
            ));
        }
        self.nats.accounts()?;
        let integrations = &self.integrations;
        if integrations.token_ttl_seconds == 0
            || integrations.token_ttl_seconds > 24 * 3600
            || integrations.session_code_ttl_seconds == 0
            || integrations.session_code_ttl_seconds > 3600
            || integrations.portal_session_ttl_seconds == 0
        {
            return Err(SettingsError(
                "integrations.token_ttl_seconds must be 1 to 86400, session_code_ttl_seconds 1 to 3600, \
                 portal_session_ttl_seconds above 0"
                    .into(),
            ));
        }
        // Credentials travel to providers: HTTPS, but for a provider on this machine (tests).
        for (key, url) in [("qpay.base_url", &self.qpay.base_url), ("paystack.base_url", &self.paystack.base_url)] {
            let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"];
            if url.as_deref().is_some_and(|u| !u.starts_with("https://") && !local.iter().any(|l| u.starts_with(l))) {
                return Err(SettingsError(format!("{key} must be https:// (plain HTTP only on this machine)")));
            }
        }
        if schemas::Currency::new(&self.billing.currency).is_err()
            || self.billing.monthly_fee < 0
            || self.billing.api_calls_per_thousand < 0
            || self.billing.event_deliveries_per_thousand < 0
        {
            return Err(SettingsError(
                "billing.currency must be an ISO-4217 code and billing's prices 0 or more".into(),
            ));
        }
        if self.paystack.base_url.is_some() && self.billing.currency != self.paystack.currency {
            return Err(SettingsError(format!(
                "billing.currency `{}` must be paystack.currency `{}`: invoices are paid through Paystack",
                self.billing.currency, self.paystack.currency
            )));
        }
        if schemas::Currency::new(&self.paystack.currency).is_err() {
            return Err(SettingsError(format!(
                "paystack.currency `{}` is not an ISO-4217 code",
                self.paystack.currency
            )));
        }
        if self.paystack.base_url.is_some() && self.paystack.secret_key.is_empty() {
            return Err(SettingsError("paystack.secret_key is needed with paystack.base_url".into()));
        }
        if let Some(tenant) = &self.mobile.tenant
            && schemas::TenantId::new(tenant).is_err()
        {
            return Err(SettingsError(format!("mobile.tenant `{tenant}` is not an organisation id")));
        }
        if self.mobile.code_ttl_seconds == 0
            || self.mobile.session_ttl_seconds == 0
            || self.mobile.code_max_attempts == 0
        {
            return Err(SettingsError(
                "mobile.code_ttl_seconds, mobile.session_ttl_seconds and mobile.code_max_attempts must be above 0"
                    .into(),
            ));
        }
        if self.mobile.dev_code.as_ref().is_some_and(|code| code.is_empty() || code.len() > 16) {
            return Err(SettingsError("mobile.dev_code must be 1 to 16 characters".into()));
        }
        if self.log.filter.parse::<tracing_subscriber::EnvFilter>().is_err() {
            return Err(SettingsError(format!("log.filter `{}` is not a tracing filter", self.log.filter)));
        }
        Ok(())
    }

    /// How the consumer groups behave.
    pub fn groups(&self) -> consumers::groups::Settings {
        consumers::groups::Settings {
            sign_in: self.mobile.sign_in_policy(),
            vehicle_command_timeout: self.fleet.command_timeout(),
            thresholds: self.fleet.thresholds(),
            telemetry_batch: self.fleet.telemetry_batch,
            charger_offline_after: self.charging.offline_after(),
            webhooks: self.webhooks.policy(),
        }
    }

    /// The database URL: the configured one, or the embedded SQLite file under `data_dir`.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("voltbus.db").display()),
        }
    }
}
