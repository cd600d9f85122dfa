//! The HTTP edge: accepts connections, answers routes, and on shutdown stops accepting while the
//! requests already in flight finish.
//!
//! Layout: `server` (accept loop and shutdown), `health` (`GET /health`), `response` (the JSON
//! envelope every answer uses).

mod health;
mod response;
mod server;

pub use health::HealthCheck;
pub use server::Edge;
