//! What puts messages on the bus. Today: the hyper edge that partners, apps and operators reach
//! over HTTP. Inbound partner webhooks and the fleet simulator join it with their issues.
//!
//! Layout:
//! - `edge`: the HTTP server (graceful shutdown, JSON envelope of responses) and its routes.

pub mod edge;

pub use edge::{Edge, HealthCheck};
