//! Integrations and credentials (EVCare integrations, Levy Fleets partner API keys): what admins
//! see of them, and what the edge authenticates with (hashes only, never a secret).

pub mod clients;
pub mod identities;
pub mod keys;
pub mod profiles;
pub mod requests;

pub use keys::{ApiKey, StoredKey};
pub use requests::LoggedRequest;
