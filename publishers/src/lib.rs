//! What puts messages on the bus: the hyper edge that partners, integrations, apps, providers and
//! operators reach over HTTP, one front door each.
//!
//! Layout:
//! - `edge`: the HTTP server, its one router and a folder per front door (its own map is in
//!   `edge/mod.rs`).
//! - `api_keys`: partner API keys: generation, the stored hash, constant-time checking.
//! - `permissions`: the seed's permissions, read-only defaults, and the access bundles.

pub mod api_keys;
pub mod edge;
pub mod permissions;

pub use edge::{
    ANONYMOUS_TENANT, BusOperations, CommandBus, Console, ConsoleSettings, Edge, GroupStats, HealthCheck,
    IntegrationSettings, LogSms, MOBILE_BASE, MobileApi, MobileSettings, OCPP_BASE, Ocpp, OcppSettings, OcppVersion,
    PORTAL_BASE, PartnerApi, PartnerSettings, PartnerTasks, PaystackSettings, QpaySettings, SmsSender, WebhookSetup,
};
