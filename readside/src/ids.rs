//! Ids derived from other ids or names, so that the same cause always yields the same message.

use ring::digest;
use uuid::Uuid;

/// A message id fixed by `text`: the same request always sends the same command (which the
/// consumer's inbox then takes once), the same report the same event (which the outbox then
/// holds once).
pub fn derived_id(text: &str) -> Uuid {
    let hash = digest::digest(&digest::SHA256, text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_ref()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}
