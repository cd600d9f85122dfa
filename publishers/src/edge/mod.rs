//! The HTTP edge: one router over every front door, each a folder named for who comes through it.
//! On shutdown it stops accepting while the requests already in flight finish.
//!
//! Layout:
//! - `server`: accept loop and shutdown; each request goes through `router` to its door.
//! - `router`: the one table of every route of every door (each door lists its own), the path
//!   router over it, and what a route needs (`Access`) and answers (`Returns`); `openapi`: the
//!   documents generated from it (`/openapi.json` for every door, the partner API's own).
//! - Doors:
//!   - `partner/`: partners' REST API (Levy Fleets, INVERS) under `/api/partner/v1`: its pipeline
//!     (`mod.rs`: authenticate, limit, authorise, idempotency, act, log) with `auth`, `limits`,
//!     `idempotency`, `audit` (request log), `key_events`; its routes (`routes`) and their actions
//!     by domain (`keys`, `webhooks`, `vehicles`, `subscriptions`, `zones`, `chargers`,
//!     `customers` and their wallets, `rides`, `pricing`).
//!   - `portal/`: the integrations portal (EVCare): admins' integrations (`integrations`), their
//!     bills (`billing`), workshops and tickets (`maintenance`), machine tokens
//!     (`machine_tokens`), and the public doors under `/v1/integrations`.
//!   - `mobile/`: the mobile app (EVM) under `/api/v1`: sign-in, profile, charging (`mod.rs`),
//!     purchases and top-ups (`purchases`), its routes (`routes`).
//!   - `marketplace/`: marketplace partners' callback (Etvas).
//!   - `providers/`: payment providers (QPay, Paystack): their callbacks (`callbacks`) and the
//!     clients that ask them what was paid.
//!   - `console/`: the operator console at `/admin` (server-rendered pages over the partner routes).
//!   - `operations/`: health, metrics, the edge's OpenAPI document.
//!   - `ocpp/`: chargers' OCPP-J WebSockets at `/ocpp/{chargerId}` (1.6; frames in `rpc`, one
//!     socket's loop in `connection`, the sockets held and the commands to them in `registry`).
//! - Shared by the doors: `envelope` (the JSON envelope and typed errors), `body` (reading and
//!   parsing JSON bodies), `query` (pages and filters), `commands` (commands to the bus and their
//!   replies).

mod asyncapi;

/// Test support: a document generated from the code and kept in the repository (`relative` to
/// its root) must be what the code generates now; `VOLTBUS_WRITE_DOCS=1` writes it instead.
#[cfg(test)]
fn assert_written(relative: &str, generated: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative);
    if std::env::var_os("VOLTBUS_WRITE_DOCS").is_some() {
        std::fs::create_dir_all(path.parent().expect("a folder")).expect("writable");
        std::fs::write(&path, generated).expect("writable");
    } else {
        let found = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            found == generated,
            "{relative} differs from what the code generates: run `VOLTBUS_WRITE_DOCS=1 cargo test -p \
             voltbus-publishers` and read the diff"
        );
    }
}
mod body;
mod commands;
mod console;
mod envelope;
mod marketplace;
mod mobile;
mod ocpp;
mod openapi;
mod operations;
mod partner;
mod portal;
mod providers;
mod query;
mod router;
mod server;
#[cfg(test)]
mod where_is_it;

pub use commands::CommandBus;
pub use console::{BusOperations, Console, ConsoleSettings, GroupStats};
pub use mobile::{LogSms, MOBILE_BASE, MobileApi, MobileSettings, SmsSender};
pub use ocpp::{OCPP_BASE, Ocpp, OcppSettings, Version as OcppVersion};
pub use operations::HealthCheck;
pub use partner::audit::ANONYMOUS_TENANT;
pub use partner::webhooks::WebhookSetup;
pub use partner::{IntegrationSettings, PartnerApi, PartnerSettings, PartnerTasks};
pub use portal::PORTAL_BASE;
pub use providers::paystack::PaystackSettings;
pub use providers::qpay::QpaySettings;
pub use server::Edge;
