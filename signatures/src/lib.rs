//! Signatures of outgoing webhook deliveries, and their verification on the receiving side. No I/O:
//! callers pass the body bytes and the clock (`now`), so every check is a pure function of its inputs.
//!
//! Every delivery carries two signatures of the same body, so that each partner can keep the verifier
//! they already run:
//! - `X-Voltbus-Signature: t=<unix seconds>,v1=<hex>`, the format of the Levy Fleets seed, keyed with
//!   the whole secret string (`whsec_...`) because that is what the seed's Node.js verifier does;
//! - the [Standard Webhooks](https://www.standardwebhooks.com) headers `webhook-id`, `webhook-timestamp`
//!   and `webhook-signature`, keyed with the base64-decoded part of the secret, so the official
//!   Standard Webhooks libraries accept them.
//!
//! Layout:
//! - `secret`: [`Secret`], the shared `whsec_` secret, generated from the system CSPRNG or parsed.
//! - `sign`: [`sign()`] and the [`Signed`] header values, one signature per live secret, newest first.
//! - `verify`: [`verify()`] and [`verify_standard()`], for tests and for partners' reference code.
//! - `error`: [`SignatureError`], which says whether a header was malformed, stale or forged.
//! - `encoding`: base64 as secrets and signatures are written (hex is the `hex` crate's).
//! - `vault`: [`Vault`], the signing secrets sealed at rest (AES-256-GCM under the platform key),
//!   since they must be recovered to sign with.

mod encoding;
mod error;
mod secret;
mod sign;
mod vault;
mod verify;

pub use error::SignatureError;
pub use secret::Secret;
pub use sign::{Signed, VOLTBUS_SIGNATURE, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, sign};
pub use vault::{Vault, VaultError};
pub use verify::{DEFAULT_TOLERANCE_SECONDS, verify, verify_standard};
