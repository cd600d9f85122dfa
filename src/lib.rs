//! The `voltbus` binary's library: configuration, logging, and the start and stop of the whole
//! platform (database, transports, HTTP edge), kept here so tests start it in-process.
//!
//! Layout:
//! - `settings`: layered configuration ([`Settings`]).
//! - `telemetry`: `tracing` subscriber set-up.
//! - `engines`: the database and transports chosen by configuration, and their `/health`.
//! - `app`: `migrate`, `start` and graceful stop ([`Running`]).
//! - `dead_letters`: listing and replaying a consumer group's dead letters on any transport.
//! - `simulator`: simulated vehicle devices that answer commands; `charger_simulator`: simulated
//!   chargers reporting their status.

mod app;
pub mod charger_simulator;
pub mod dead_letters;
mod engines;
pub mod settings;
pub mod simulator;
pub mod telemetry;

pub use app::{Running, create_admin_key, migrate, start};
pub use engines::{Engines, connect_nats};
pub use settings::Settings;
