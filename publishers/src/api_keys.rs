//! Partner API keys (Levy Fleets format): `<prefix>_pk_<32 random characters>`, drawn from the
//! operating system's CSPRNG through ring, shown to the caller once. What is kept is the display
//! prefix (the first 12 characters) and the key's SHA-256; a presented key is hashed and compared
//! with the stored hash in constant time.

use std::fmt;

use ring::digest;
use ring::rand::SecureRandom;
use schemas::Sensitive;
use subtle::ConstantTimeEq;

/// Length of the random part.
pub const SECRET_LEN: usize = 32;
/// Characters of the display prefix kept for humans (the seed's "first 12 characters").
pub const DISPLAY_PREFIX_LEN: usize = 12;
const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
/// Largest multiple of the alphabet's size below 256: bytes at or above it are drawn again, so
/// every character is equally likely (no modulo bias).
const UNBIASED_LIMIT: u8 = 252;

/// Why a key could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// The key prefix is not 2–8 lower-case letters.
    #[error("key prefix `{0}` must be 2 to 8 lower-case letters")]
    Prefix(String),
    /// The system's random generator failed.
    #[error("the random generator failed")]
    Random,
    /// A presented key does not have the `<prefix>_pk_<32 characters>` shape.
    #[error("not an API key")]
    Malformed,
}

/// SHA-256 of a whole key, the only form in which a key is stored.
#[derive(Clone, Copy, Eq)]
pub struct KeyHash([u8; 32]);

impl std::hash::Hash for KeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

/// Equality in time independent of where two hashes differ.
impl PartialEq for KeyHash {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl KeyHash {
    /// Hashes a key.
    pub fn of(key: &str) -> Self {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest::digest(&digest::SHA256, key.as_bytes()).as_ref());
        Self(hash)
    }

    /// Lower-case hex, as stored and as commands carry it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Reads the hex form back.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hex, &mut hash).ok()?;
        Some(Self(hash))
    }

    /// Whether `presented` is the key this hash was made from, in time independent of where
    /// they differ.
    pub fn matches(&self, presented: &str) -> bool {
        KeyHash::of(presented) == *self
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Hashes are not secrets, but short is enough to recognise one in a log.
        write!(f, "KeyHash({}…)", &self.to_hex()[..8])
    }
}

/// A freshly made key: the whole key for the caller, once; prefix and hash to keep.
#[derive(Debug)]
pub struct NewApiKey {
    /// The key itself. Shown once, never stored, never logged.
    pub key: Sensitive,
    /// The first 12 characters, for display.
    pub display_prefix: String,
    /// What is stored.
    pub hash: KeyHash,
}

/// Makes a new key `<prefix>_pk_<32 random characters>`.
pub fn generate(prefix: &str, random: &dyn SecureRandom) -> Result<NewApiKey, ApiKeyError> {
    if !(2..=8).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_lowercase()) {
        return Err(ApiKeyError::Prefix(prefix.to_owned()));
    }
    let secret = random_text(SECRET_LEN, random)?;
    let key = format!("{prefix}_pk_{secret}");
    Ok(NewApiKey { display_prefix: display_prefix(&key), hash: KeyHash::of(&key), key: Sensitive(key) })
}

/// `len` characters of the key alphabet from `random`, each equally likely.
pub fn random_text(len: usize, random: &dyn SecureRandom) -> Result<String, ApiKeyError> {
    let mut text = String::with_capacity(len);
    let mut pool = [0u8; 64];
    while text.len() < len {
        random.fill(&mut pool).map_err(|_| ApiKeyError::Random)?;
        for byte in pool.iter().copied().filter(|b| *b < UNBIASED_LIMIT) {
            if text.len() == len {
                break;
            }
            text.push(char::from(ALPHABET[usize::from(byte) % ALPHABET.len()]));
        }
    }
    Ok(text)
}

/// Whether `text` is made of the key alphabet only (the random part of a secret).
pub fn check_text(text: &str) -> bool {
    text.bytes().all(in_alphabet)
}

/// The display prefix of a key.
pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

/// Checks a presented key's shape before any lookup, so garbage never reaches the database.
/// Whether `byte` is in [`ALPHABET`] (a range test: every request checks its key's shape).
fn in_alphabet(byte: u8) -> bool {
    byte.is_ascii_lowercase() || byte.is_ascii_digit()
}

pub fn check_shape(presented: &str) -> Result<(), ApiKeyError> {
    let (prefix, secret) = presented.split_once("_pk_").ok_or(ApiKeyError::Malformed)?;
    let prefix_ok = (2..=8).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_lowercase());
    let secret_ok = secret.len() == SECRET_LEN && secret.bytes().all(in_alphabet);
    if prefix_ok && secret_ok { Ok(()) } else { Err(ApiKeyError::Malformed) }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use ring::rand::SystemRandom;

    use super::*;

    #[test]
    fn keys_have_the_seed_format() {
        let new = generate("lf", &SystemRandom::new()).unwrap();
        let key = new.key.expose();
        assert!(key.starts_with("lf_pk_"));
        assert_eq!(key.len(), "lf_pk_".len() + SECRET_LEN);
        assert!(check_shape(key).is_ok());
        assert_eq!(new.display_prefix, &key[..12]);
        assert!(!format!("{new:?}").contains(&key[6..]), "Debug never shows the key");
    }

    #[test]
    fn keys_are_unique_and_use_the_whole_alphabet() {
        let random = SystemRandom::new();
        let keys: HashSet<String> =
            (0..2000).map(|_| generate("vb", &random).unwrap().key.expose().to_owned()).collect();
        assert_eq!(keys.len(), 2000);
        let used: HashSet<u8> = keys.iter().flat_map(|k| k[6..].bytes().collect::<Vec<_>>()).collect();
        assert_eq!(used.len(), ALPHABET.len(), "every character appears");
    }

    #[test]
    fn only_the_key_itself_matches_its_hash() {
        let new = generate("lf", &SystemRandom::new()).unwrap();
        assert!(new.hash.matches(new.key.expose()));
        let mut other = new.key.expose().to_owned();
        other.pop();
        other.push(if new.key.expose().ends_with('a') { 'b' } else { 'a' });
        assert!(!new.hash.matches(&other));
        assert_eq!(KeyHash::from_hex(&new.hash.to_hex()), Some(new.hash));
        assert_eq!(KeyHash::from_hex("zz"), None);
    }

    #[test]
    fn bad_prefixes_and_shapes_are_refused() {
        let random = SystemRandom::new();
        for prefix in ["", "x", "toolongprefix", "LF", "l1", "l_f"] {
            assert!(generate(prefix, &random).is_err(), "{prefix:?}");
        }
        for key in [
            "",
            "lf_pk_",
            "lf_pk_short",
            "lf_sk_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
            "LF_pk_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
            "lf_pk_A1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6",
        ] {
            assert_eq!(check_shape(key), Err(ApiKeyError::Malformed), "{key:?}");
        }
        assert!(check_shape("lf_pk_a1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p6").is_ok(), "the seed's own example");
    }
}
