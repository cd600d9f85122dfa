//! Signing secrets at rest: AES-256-GCM under the platform's webhook key. The secret must be
//! recoverable to sign with, so it is encrypted, never hashed; the key lives in configuration
//! (or a 0600 file beside the embedded database), never in the database it protects.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The configured key is not 32 bytes of standard base64.
    #[error("the webhook encryption key must be 32 bytes in standard base64")]
    BadKey,
    /// The stored value is not one of ours, or was sealed under another key.
    #[error("a stored webhook secret cannot be opened (wrong key or damaged value)")]
    Unreadable,
    /// The system's CSPRNG failed.
    #[error("no randomness available")]
    Random,
}

/// Seals and opens webhook signing secrets.
#[derive(Clone)]
pub struct Vault {
    key: std::sync::Arc<LessSafeKey>,
    random: SystemRandom,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(***)")
    }
}

/// Associated data: binds a ciphertext to its use, so it cannot be replayed as another kind of value.
const PURPOSE: &[u8] = b"voltbus webhook signing secret v1";

impl Vault {
    /// A vault over `key_base64` (32 bytes).
    pub fn new(key_base64: &str) -> Result<Self, VaultError> {
        let bytes = STANDARD.decode(key_base64.trim()).map_err(|_| VaultError::BadKey)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| VaultError::BadKey)?;
        Ok(Self { key: std::sync::Arc::new(LessSafeKey::new(key)), random: SystemRandom::new() })
    }

    /// A fresh random key, base64, for a new deployment.
    pub fn generate_key() -> Result<String, VaultError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| VaultError::Random)?;
        Ok(STANDARD.encode(bytes))
    }

    /// `base64(nonce ‖ ciphertext ‖ tag)` of `secret`, under a fresh random nonce.
    pub fn seal(&self, secret: &str) -> Result<String, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let mut sealed = secret.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(PURPOSE), &mut sealed)
            .map_err(|_| VaultError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(STANDARD.encode(out))
    }

    /// The secret sealed in `sealed`.
    pub fn open(&self, sealed: &str) -> Result<String, VaultError> {
        let mut bytes = STANDARD.decode(sealed).map_err(|_| VaultError::Unreadable)?;
        if bytes.len() < NONCE_LEN {
            return Err(VaultError::Unreadable);
        }
        let mut body = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| VaultError::Unreadable)?;
        let plain = self.key.open_in_place(nonce, Aad::from(PURPOSE), &mut body).map_err(|_| VaultError::Unreadable)?;
        String::from_utf8(plain.to_vec()).map_err(|_| VaultError::Unreadable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_refuses_another_key() {
        let vault = Vault::new(&Vault::generate_key().unwrap()).unwrap();
        let sealed = vault.seal("whsec_abc").unwrap();
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(sealed, vault.seal("whsec_abc").unwrap(), "a fresh nonce each time");
        assert_eq!(vault.open(&sealed).unwrap(), "whsec_abc");
        let other = Vault::new(&Vault::generate_key().unwrap()).unwrap();
        assert!(matches!(other.open(&sealed), Err(VaultError::Unreadable)));
        assert!(matches!(vault.open("not base64!"), Err(VaultError::Unreadable)));
        assert!(matches!(Vault::new("c2hvcnQ="), Err(VaultError::BadKey)));
        assert_eq!(format!("{vault:?}"), "Vault(***)");
    }
}
