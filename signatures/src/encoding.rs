//! Base64 as secrets and Standard Webhooks signatures are written (hex is the `hex` crate's:
//! lowercase, as Node's `digest('hex')` writes it, which the seed verifier compares as text).

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Standard base64 that decodes with or without `=` padding: Standard Webhooks libraries pad, but
/// secrets copied by hand and other providers' secrets (24 bytes, no padding needed) may not.
pub(crate) const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
