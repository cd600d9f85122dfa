//! The consumers: what takes messages off the bus and owns the database. Domain handlers (rides,
//! wallets, vehicles, …) arrive with their issues; this crate already holds the database
//! connection they share.
//!
//! Layout:
//! - `database`: connecting to PostgreSQL or the embedded SQLite file, and its `/health` line.

mod database;

pub use database::{Database, DatabaseError};
