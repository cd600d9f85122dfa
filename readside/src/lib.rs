//! The read side: each table's rows as partners and operators see them, and the queries that
//! read them, for the edge (which reads the database directly) and for the consumers (which
//! write it, and read back what they wrote). Writes stay in the consumers; nothing here writes.
//!
//! Layout:
//! - `outcome`: the shape of a command's reply (done, or refused with a code), which consumers
//!   send and the edge reads.
//! - One module per domain, named as the consumers' are: its rows, their mapping (derived) and
//!   its queries.
//! - `columns` (JSON and names in text columns, row locks), `pages` (a page of rows and the
//!   total), `geometry` (distances and zones on the sphere), `ids` (ids derived from others).

pub mod billing;
pub mod chargers;
pub mod charging;
pub mod columns;
pub mod customers;
pub mod fleet;
pub mod geometry;
pub mod ids;
pub mod integrations;
pub mod maintenance;
pub mod marketplace;
pub mod operators;
mod outcome;
pub mod pages;
pub mod payments;
pub mod pricing;
pub mod rides;
pub mod sign_in;
pub mod subscriptions;
pub mod wallets;
pub mod webhooks;
pub mod zones;

pub use outcome::{Deleted, Outcome, Refusal, codes};
