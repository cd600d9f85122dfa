//! What puts messages on the bus. Today: the hyper edge that partners, apps and operators reach
//! over HTTP. Inbound partner webhooks and the fleet simulator join it with their issues.
//!
//! Layout:
//! - `edge`: the HTTP server (graceful shutdown, JSON envelope of responses) and its routes.
//! - `api_keys`: partner API keys: generation, the stored hash, constant-time checking.
//! - `permissions`: the seed's permissions, read-only defaults, and the access bundles.

pub mod api_keys;
pub mod edge;
pub mod permissions;

pub use edge::{
    ANONYMOUS_TENANT, BusOperations, CommandBus, Console, ConsoleSettings, Edge, GroupStats, HealthCheck,
    IntegrationSettings, LogSms, MOBILE_BASE, MobileApi, MobileSettings, PORTAL_BASE, PartnerApi, PartnerSettings,
    PartnerTasks, PaystackSettings, QpaySettings, SmsSender, WebhookSetup,
};
