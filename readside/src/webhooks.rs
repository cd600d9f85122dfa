//! Outbound webhooks as partners read them: their endpoints (`endpoints`) and the delivery log
//! (`deliveries`).

pub mod deliveries;
pub mod endpoints;

pub use endpoints::{Endpoint, StoredEndpoint};
