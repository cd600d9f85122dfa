//! The voltbus message catalogue: every command and event that crosses RabbitMQ or NATS, the one
//! envelope they travel in, and the names (routing keys, NATS subjects) they travel under. No I/O.
//!
//! Layout:
//! - `envelope`: the CloudEvents-shaped [`Envelope`], structured (JSON) and binary (headers + body) modes.
//! - `message`: the [`Message`] trait every payload implements, with its [`Kind`], [`Domain`], [`Version`].
//! - `catalogue`: the list of all message types, [`AnyMessage`], and decoding of a message of any type.
//! - `error`: [`DecodeError`], which says whether bytes were malformed, of an unknown type or version.
//! - `tenant`, `money`, `sensitive`: the value types every domain shares.
//! - `routing`: RabbitMQ exchange, queue and routing-key names. `subjects`: NATS subjects and streams.
//! - `json_schema`: the JSON Schema of each type, as committed under `schemas/json/`.
//! - One module per domain: `integrations`, `billing`, `vehicles`, `rides`, `customers`, `wallets`,
//!   `zones`, `pricing`, `charging`, `payments`, `webhooks`, `marketplace`, `maintenance`,
//!   `operators` (the console).

mod catalogue;
mod envelope;
mod error;
mod json_schema;
mod message;
mod money;
mod sensitive;
mod tenant;

pub mod routing;
pub mod subjects;

pub mod billing;
pub mod charging;
pub mod customers;
pub mod integrations;
pub mod maintenance;
pub mod marketplace;
pub mod operators;
pub mod payments;
pub mod pricing;
pub mod rides;
pub mod vehicles;
pub mod wallets;
pub mod webhooks;
pub mod zones;

pub use catalogue::{AnyMessage, Descriptor, decode_any, decode_any_binary, descriptor_of, descriptors};
pub use envelope::{
    Attribute, BinaryMessage, DATACONTENTTYPE_JSON, Envelope, SPECVERSION, TraceContext, trace_new_envelopes,
};
pub use error::DecodeError;
pub use json_schema::{envelope_schema, schema_file_name};
pub use message::{Domain, Kind, Message, Reach, Recipient, Version};
pub use money::{Currency, CurrencyError, Money};
pub use sensitive::{Sensitive, ServiceUrl, redact_url};
pub use tenant::{TenantId, TenantIdError};
