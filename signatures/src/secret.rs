//! The shared webhook secret, `whsec_` followed by base64, as partners receive it.

use std::fmt;

use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

use crate::encoding::BASE64;
use crate::error::SignatureError;

/// The prefix Standard Webhooks libraries strip before base64-decoding the key.
const PREFIX: &str = "whsec_";
/// 32 bytes is what Standard Webhooks recommends for a new secret.
const GENERATED_BYTES: usize = 32;
/// Standard Webhooks accepts keys of 24 to 64 bytes; shorter keys are too weak, longer ones are mistakes.
const MIN_BYTES: usize = 24;
const MAX_BYTES: usize = 64;

/// A webhook secret, `whsec_` + base64, never printed by `Debug`.
///
/// Both HMAC keys are derived once here, so signing does not decode the secret on every delivery and
/// cannot meet an undecodable secret.
#[derive(Clone)]
pub struct Secret {
    text: String,
    /// The seed's verifier keys HMAC with the UTF-8 bytes of the whole string, prefix included.
    voltbus_key: hmac::Key,
    /// Standard Webhooks keys HMAC with the base64-decoded bytes after the prefix.
    standard_key: hmac::Key,
}

impl Secret {
    /// A new random secret of 32 bytes from the system CSPRNG.
    pub fn generate() -> Result<Secret, SignatureError> {
        let mut bytes = [0u8; GENERATED_BYTES];
        SystemRandom::new().fill(&mut bytes).map_err(|_| SignatureError::Random)?;
        Ok(Secret::from_parts(format!("{PREFIX}{}", BASE64.encode(bytes)), &bytes))
    }

    /// Reads a secret as a partner or the database holds it: `whsec_` + base64 of 24 to 64 bytes.
    pub fn parse(text: &str) -> Result<Secret, SignatureError> {
        let encoded = text
            .strip_prefix(PREFIX)
            .ok_or_else(|| SignatureError::BadSecret(format!("does not start with `{PREFIX}`")))?;
        let bytes = BASE64
            .decode(encoded)
            .map_err(|_| SignatureError::BadSecret(format!("the part after `{PREFIX}` is not standard base64")))?;
        if !(MIN_BYTES..=MAX_BYTES).contains(&bytes.len()) {
            return Err(SignatureError::BadSecret(format!(
                "decodes to {} bytes, expected {MIN_BYTES} to {MAX_BYTES}",
                bytes.len()
            )));
        }
        Ok(Secret::from_parts(text.to_owned(), &bytes))
    }

    /// The secret as text, to store it or hand it to the partner once.
    pub fn expose(&self) -> &str {
        &self.text
    }

    pub(crate) fn voltbus_key(&self) -> &hmac::Key {
        &self.voltbus_key
    }

    pub(crate) fn standard_key(&self) -> &hmac::Key {
        &self.standard_key
    }

    fn from_parts(text: String, decoded: &[u8]) -> Secret {
        let voltbus_key = hmac::Key::new(hmac::HMAC_SHA256, text.as_bytes());
        let standard_key = hmac::Key::new(hmac::HMAC_SHA256, decoded);
        Secret { text, voltbus_key, standard_key }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Constant time, so comparing a guessed secret with a stored one does not reveal the common prefix.
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.text.as_bytes().ct_eq(other.text.as_bytes()).into()
    }
}

impl Eq for Secret {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The secret of the Standard Webhooks reference example.
    const REFERENCE: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn whsec(bytes: usize) -> String {
        format!("whsec_{}", BASE64.encode(vec![7u8; bytes]))
    }

    #[test]
    fn generated_secrets_parse_back_and_differ() {
        let first = Secret::generate().expect("CSPRNG");
        let second = Secret::generate().expect("CSPRNG");
        assert!(first.expose().starts_with("whsec_"));
        assert_eq!(first.expose().len(), "whsec_".len() + 44);
        assert_eq!(Secret::parse(first.expose()).expect("generated secret parses"), first);
        assert_ne!(first, second);
    }

    #[test]
    fn parse_accepts_24_to_64_bytes_padded_or_not() {
        assert_eq!(Secret::parse(REFERENCE).expect("reference secret").expose(), REFERENCE);
        Secret::parse(&whsec(24)).expect("24 bytes");
        Secret::parse(&whsec(64)).expect("64 bytes");
        let padded = whsec(32);
        assert!(padded.ends_with('='));
        Secret::parse(&padded).expect("padded");
        Secret::parse(padded.trim_end_matches('=')).expect("unpadded");
    }

    #[test]
    fn parse_rejects_bad_secrets_without_quoting_them() {
        let cases = [
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            "WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
            "whsec_MfKQ9r8GKYqrTwjUPD8I!PZIo2LaLaSw".to_owned(),
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw ".to_owned(),
            "whsec_".to_owned(),
            whsec(23),
            whsec(65),
        ];
        for case in cases {
            let error = Secret::parse(&case).expect_err(&case);
            assert!(matches!(error, SignatureError::BadSecret(_)), "{case}: {error:?}");
            let secret_part = case.trim_start_matches("whsec_").trim();
            assert!(secret_part.is_empty() || !error.to_string().contains(secret_part), "{error}");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let secret = Secret::parse(REFERENCE).expect("reference secret");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        let nested = format!("{:#?}", (Some(&secret), vec![secret.clone()]));
        assert!(!nested.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), "{nested}");
        assert!(!nested.contains("whsec_"), "{nested}");
    }

    #[test]
    fn equality_compares_the_whole_text() {
        let secret = Secret::parse(REFERENCE).expect("reference secret");
        assert_eq!(secret.clone(), secret);
        assert_ne!(secret, Secret::parse(&whsec(24)).expect("24 bytes"));
        let unpadded = whsec(32).trim_end_matches('=').to_owned();
        assert_ne!(Secret::parse(&whsec(32)).expect("padded"), Secret::parse(&unpadded).expect("unpadded"));
    }
}
