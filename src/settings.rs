//! Configuration in layers: built-in defaults, then an optional TOML file, then `VOLTBUS__…`
//! environment variables (`VOLTBUS__DATABASE__URL` sets `database.url`).
//!
//! With no database, AMQP or NATS URL, `serve` runs on the embedded default: an SQLite file under
//! `data_dir` and in-process transports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use schemas::{Sensitive, ServiceUrl};
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
    pub partner: publishers::PartnerSettings,
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
    pub mobile: publishers::MobileSettings,
    /// Chargers.
    pub charging: ChargingSettings,
    /// Integrations (EVCare seed): machine tokens, session codes, portal sessions.
    pub integrations: publishers::IntegrationSettings,
    /// The plan integrations are billed on.
    pub billing: BillingSettings,
    /// QPay, an external payment provider.
    pub qpay: publishers::QpaySettings,
    /// Paystack, an external payment provider.
    pub paystack: publishers::PaystackSettings,
    /// The operator console at `/admin`.
    pub console: publishers::ConsoleSettings,
    /// Chargers' OCPP door.
    pub ocpp: publishers::OcppSettings,
    /// Logging.
    pub log: LogSettings,
    /// OpenTelemetry traces.
    pub otel: OtelSettings,
}

/// The HTTP edge.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Listening address.
    pub bind: SocketAddr,
    /// Seconds requests in flight get to finish at shutdown.
    pub shutdown_grace_seconds: u64,
    /// When set, `GET /metrics` needs `Authorization: Bearer <this>`.
    #[serde(default)]
    pub metrics_token: Option<Sensitive>,
}

/// `[webhooks]`: outbound webhook deliveries.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    pub encryption_key: Option<Sensitive>,
    /// How often the scheduler looks for due attempts, in milliseconds.
    pub scheduler_interval_ms: u64,
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
    /// A vehicle that reported within this many seconds is online: a command with a time to
    /// live goes to it at once; to one not heard from longer, it waits until it reports.
    pub online_seconds: u64,
}

impl Default for FleetSettings {
    fn default() -> Self {
        let thresholds = consumers::fleet::telemetry::Thresholds::default();
        let commands = consumers::fleet::commands::Timing::default();
        Self {
            battery_low_percent: thresholds.battery_low_percent,
            moved_metres: thresholds.moved_metres,
            history_days: 30,
            telemetry_batch: 500,
            command_timeout_seconds: commands.answer.as_secs(),
            online_seconds: commands.online.as_secs(),
        }
    }
}

impl FleetSettings {
    /// How commands to vehicles are timed.
    pub fn commands(&self) -> consumers::fleet::commands::Timing {
        consumers::fleet::commands::Timing {
            answer: std::time::Duration::from_secs(self.command_timeout_seconds.max(1)),
            online: std::time::Duration::from_secs(self.online_seconds),
        }
    }

    /// When telemetry becomes an event.
    pub fn thresholds(&self) -> consumers::fleet::telemetry::Thresholds {
        consumers::fleet::telemetry::Thresholds {
            battery_low_percent: self.battery_low_percent,
            moved_metres: self.moved_metres,
        }
    }
}

/// An engine chosen by URL; none means the embedded one.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlSettings {
    /// Connection URL, which may hold a password.
    pub url: Option<ServiceUrl>,
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
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSettings {
    /// Connection URL.
    pub url: Option<ServiceUrl>,
    /// Operator nkey seed (`SO…`) of a server in operator mode (`voltbus nats-accounts` makes
    /// one and prints the server's configuration); with `account_seed`, voltbus connects as a
    /// user of that account and signs each mobile user's credentials.
    pub operator_seed: Option<Sensitive>,
    /// Account nkey seed (`SA…`).
    pub account_seed: Option<Sensitive>,
    /// What mobile apps are told to connect to (`nats.servers`); unset: `url`.
    pub public_url: Option<String>,
    /// Hours JetStream keeps telemetry, events and device commands (consumers take them within
    /// seconds; this bounds the disk, and an outage longer than it loses what it missed).
    pub retention_hours: u64,
    /// Copies JetStream keeps of every stream: 1 on one server, 3 (or 5) on a cluster; a stream
    /// that has another number is changed to it at start.
    pub replicas: usize,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: None,
            operator_seed: None,
            account_seed: None,
            public_url: None,
            retention_hours: bus::nats::DEFAULT_RETENTION.as_secs() / 3600,
            replicas: 1,
        }
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
            (Some(operator), Some(account)) => {
                bus::nats::accounts::Accounts::from_seeds(operator.expose(), account.expose())
                    .map(Some)
                    .map_err(|e| SettingsError(e.to_string()))
            }
            (None, None) => Ok(None),
            _ => Err(SettingsError("nats.operator_seed and nats.account_seed go together".into())),
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

/// `[amqp]`: RabbitMQ.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpSettings {
    /// Connection URL, which may hold a password.
    pub url: Option<ServiceUrl>,
    /// Its management API, where subscriptions are set up; unset: the same host, port 15672,
    /// HTTP, with the AMQP credentials.
    pub management_url: Option<ServiceUrl>,
    /// Members of each quorum queue voltbus makes (`x-quorum-initial-group-size`), 1 to 7; unset:
    /// RabbitMQ's default (3). Queues that exist keep the members they were made with.
    pub quorum_size: Option<u16>,
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

/// `[otel]`: OpenTelemetry traces, exported over OTLP/HTTP (protobuf) to a collector.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OtelSettings {
    /// The collector's OTLP/HTTP base address (`http://127.0.0.1:4318`); spans go to
    /// `<endpoint>/v1/traces`. Unset (the default): no span is made.
    pub endpoint: Option<ServiceUrl>,
    /// The spans' `service.name`.
    pub service_name: String,
    /// Share of new traces kept, 0 to 1; a trace a caller's `traceparent` started keeps the
    /// caller's decision.
    pub sample_ratio: f64,
}

impl Default for OtelSettings {
    fn default() -> Self {
        Self { endpoint: None, service_name: "voltbus".into(), sample_ratio: 1.0 }
    }
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
            partner: publishers::PartnerSettings::default(),
            webhooks: WebhookSettings::default(),
            fleet: FleetSettings::default(),
            database: UrlSettings::default(),
            amqp: AmqpSettings::default(),
            nats: NatsSettings::default(),
            bus: BusSettings::default(),
            mobile: publishers::MobileSettings::default(),
            charging: ChargingSettings::default(),
            integrations: publishers::IntegrationSettings::default(),
            billing: BillingSettings::default(),
            qpay: publishers::QpaySettings::default(),
            paystack: publishers::PaystackSettings::default(),
            console: publishers::ConsoleSettings::default(),
            ocpp: publishers::OcppSettings::default(),
            log: LogSettings { format: LogFormat::Human, filter: "info".into() },
            otel: OtelSettings::default(),
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
        let check = |key: &str, url: &Option<ServiceUrl>, schemes: &[&str]| match url {
            Some(u) if u.trim().is_empty() => {
                Err(SettingsError(format!("{key} is empty; remove it to use the embedded default")))
            }
            Some(u) if !schemes.iter().any(|s| u.starts_with(s)) => {
                Err(SettingsError(format!("{key} `{}` must start with {}", u.redacted(), schemes.join(" or "))))
            }
            _ => Ok(()),
        };
        check("database.url", &self.database.url, &["postgres://", "postgresql://", "sqlite:"])?;
        check("amqp.url", &self.amqp.url, &["amqp://", "amqps://"])?;
        for (key, url, schemes) in [
            ("amqp.url", &self.amqp.url, &["amqp://", "amqps://"][..]),
            ("nats.url", &self.nats.url, &["nats://", "tls://", "ws://", "wss://"][..]),
        ] {
            // A cluster's nodes, separated by commas: each must be a URL of the engine's.
            for node in url.iter().flat_map(|url| bus::nodes(url)) {
                check(key, &Some(ServiceUrl::from(node.to_owned())), schemes)?;
            }
        }
        check("nats.url", &self.nats.url, &["nats://", "tls://", "ws://", "wss://"])?;
        // The exporter speaks plain HTTP: a collector beside voltbus forwards with TLS.
        check("otel.endpoint", &self.otel.endpoint, &["http://"])?;
        if self.amqp.quorum_size.is_some_and(|size| !(1..=7).contains(&size)) {
            return Err(SettingsError(format!("amqp.quorum_size {:?} must be 1 to 7", self.amqp.quorum_size)));
        }
        if !(1..=5).contains(&self.nats.replicas) {
            return Err(SettingsError(format!("nats.replicas {} must be 1 to 5", self.nats.replicas)));
        }
        if !(0.0..=1.0).contains(&self.otel.sample_ratio) {
            return Err(SettingsError(format!("otel.sample_ratio {} must be between 0 and 1", self.otel.sample_ratio)));
        }
        let prefix = &self.partner.key_prefix;
        if !(2..=8).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_lowercase()) {
            return Err(SettingsError(format!("partner.key_prefix `{prefix}` must be 2 to 8 lower-case letters")));
        }
        if self.partner.body_limit == 0 || self.partner.command_timeout.is_zero() {
            return Err(SettingsError(
                "partner.body_limit_bytes and partner.command_timeout_ms must be above 0".into(),
            ));
        }
        if self.webhooks.timeout_ms == 0 || self.webhooks.retry_schedule_ms.len() > 50 {
            return Err(SettingsError(
                "webhooks.timeout_ms must be above 0 and webhooks.retry_schedule_ms at most 50 long".into(),
            ));
        }
        if self.webhooks.encryption_key.as_ref().is_some_and(|key| signatures::Vault::new(key.expose()).is_err()) {
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
        let seconds = |d: std::time::Duration| d.as_secs();
        if !(1..=24 * 3600).contains(&seconds(integrations.token_ttl))
            || !(1..=3600).contains(&seconds(integrations.session_code_ttl))
            || integrations.portal_session_ttl.is_zero()
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
        if self.paystack.base_url.is_some() && self.paystack.secret_key.expose().is_empty() {
            return Err(SettingsError("paystack.secret_key is needed with paystack.base_url".into()));
        }
        if self.mobile.code_ttl.is_zero() || self.mobile.session_ttl.is_zero() || self.mobile.code_max_attempts == 0 {
            return Err(SettingsError(
                "mobile.code_ttl_seconds, mobile.session_ttl_seconds and mobile.code_max_attempts must be above 0"
                    .into(),
            ));
        }
        if self.mobile.dev_code.as_ref().is_some_and(|code| code.expose().is_empty() || code.expose().len() > 16) {
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
            sign_in: consumers::sign_in::SignInPolicy {
                max_attempts: self.mobile.code_max_attempts,
                codes_per_hour: self.mobile.codes_per_hour,
                codes_per_day: self.mobile.codes_per_day,
            },
            vehicle_commands: self.fleet.commands(),
            thresholds: self.fleet.thresholds(),
            telemetry_batch: self.fleet.telemetry_batch,
            charger_offline_after: self.charging.offline_after(),
            webhooks: self.webhooks.policy(),
        }
    }

    /// The database URL: the configured one, or the embedded SQLite file under `data_dir`.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.to_string(),
            None => format!("sqlite://{}?mode=rwc", self.data_dir.join("voltbus.db").display()),
        }
    }
}
