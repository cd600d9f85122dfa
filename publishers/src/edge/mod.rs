//! The HTTP edge: accepts connections, answers `/health` and the partner API, and on shutdown
//! stops accepting while the requests already in flight finish.
//!
//! Layout:
//! - `server`: accept loop and shutdown; `health`: `GET /health`.
//! - `api`: one partner request from head to answer; `routes`: the route table.
//! - `auth` (keys and subaccounts), `key_events` (cache eviction across edges), `limits` (rate limits), `idempotency`, `audit` (request log).
//! - `keys`: the key-management routes; `webhooks`: endpoints, delivery log, replay; `marketplace`: the Etvas
//!   callback; `vehicles`: the fleet; `customers` (and their wallets), `rides`, `pricing`; `zones`: zones; `subscriptions`: AMQP queues for integrations; `commands`: commands to the bus and their replies.
//! - `response`: the JSON envelope; `openapi`: the document generated from the route table.
//! - `chargers`: chargers registered by admins, listed with their state.
//! - `console`: the operator console at `/admin` (server-rendered pages over the route table).
//! - `integrations`: EVCare integrations (admin routes, the sign-in bridge, the bundle
//!   questionnaire); `machine_tokens`: their signed tokens and cut-offs; `portal`: the public
//!   doors under `/v1/integrations` (client token, session code redemption, embed page, Paystack
//!   webhook); `billing`: their usage, invoices and Paystack payments; `maintenance`: workshops,
//!   integrations' maintenance service selection, maintenance and driver tickets.
//! - `mobile`: the mobile app's API under `/api/v1` (EVM seed: sign-in by SMS code, profile,
//!   NATS credentials), with its own bearer sessions; `purchases`: its purchases and payments.

mod api;
mod audit;
mod auth;
mod billing;
mod chargers;
mod commands;
mod console;
mod customers;
mod health;
mod idempotency;
mod integrations;
mod key_events;
mod keys;
mod limits;
mod machine_tokens;
mod maintenance;
mod marketplace;
mod mobile;
mod openapi;
mod paystack;
mod portal;
mod pricing;
mod providers;
mod purchases;
mod qpay;
mod response;
mod rides;
mod routes;
mod server;
mod subscriptions;
mod vehicles;
mod webhooks;
mod zones;

pub use api::{IntegrationSettings, PartnerApi, PartnerSettings, PartnerTasks};
pub use audit::ANONYMOUS_TENANT;
pub use commands::CommandBus;
pub use console::{BusOperations, Console, ConsoleSettings, GroupStats};
pub use health::HealthCheck;
pub use mobile::{
    LogSms, MOBILE_BASE, MobileAccess, MobileApi, MobileRoute, MobileSettings, ROUTES as MOBILE_ROUTES, SmsSender,
};
pub use paystack::PaystackSettings;
pub use portal::{DOORS as PORTAL_DOORS, PORTAL_BASE};
pub use qpay::QpaySettings;
pub use server::Edge;
pub use webhooks::WebhookSetup;
