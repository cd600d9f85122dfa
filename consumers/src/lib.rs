//! The consumers: what takes messages off the bus and writes the database. What they read back is
//! the read side's (`readside`), re-exported where a domain's own code uses it.
//!
//! Layout:
//! - `groups`: every domain's consumer groups, for the composition root to run; each domain
//!   module has its `groups()`, and its queue bindings come from the catalogue (each command names
//!   its recipient).
//! - `database`: connecting to PostgreSQL or the embedded SQLite file, and its `/health` line.
//! - `integrations`: partner API keys, EVCare integrations (credentials, federated sign-in)
//!   and the partner request log; `billing`: integrations' usage, invoices and payments.
//! - `webhooks`: partners' webhook endpoints, and the signed deliveries of their events.
//! - `marketplace`: marketplace partners' users and purchases (Etvas), mapped to ours.
//! - `fleet`: vehicles, their commands, and the telemetry ingest.
//! - `operators`: the console's operator accounts, sessions and lock-out.
//! - `subscriptions`: integrations' own AMQP queues of their tenant's events.
//! - `customers`, `sign_in` (mobile codes and sessions), `wallets` (an append-only ledger each),
//!   `pricing` (plans and the price of a ride), `rides` (start, pause, resume, end, charged at
//!   the end), `chargers` and `charging` (sessions metered by OCPP), `payments` (purchases).
//! - `maintenance`: workshops, integrations' maintenance service selection, tickets.
//! - `zones`: parking, no-parking, no-ride, slow and operating areas.
//! - `sequences`: per-tenant counters that number what partners are shown.

pub mod billing;
pub mod chargers;
pub mod charging;
pub mod customers;
mod database;
pub mod fleet;
pub mod groups;
pub mod integrations;
pub mod maintenance;
pub mod marketplace;
pub mod operators;
pub mod payments;
pub mod pricing;
pub mod rides;
mod sequences;
pub mod sign_in;
pub mod subscriptions;
pub mod wallets;
pub mod webhooks;
pub mod zones;

pub use database::{Database, DatabaseError};

/// Delays before the bus retries a message whose handler failed for a passing reason (a lock,
/// a lost connection): quick, then patient. Not webhook attempts: those follow the delivery policy.
pub(crate) const RETRY_DELAYS: [std::time::Duration; 3] =
    [std::time::Duration::from_millis(200), std::time::Duration::from_secs(2), std::time::Duration::from_secs(10)];
pub use readside::{Deleted, Outcome, Refusal, codes};
