//! Operators' passwords: Argon2id (memory-hard), as PHC strings that carry their own salt and
//! parameters, so stronger parameters later still verify what is stored now.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

/// 19 MiB, two passes, one lane: OWASP's first choice for Argon2id.
fn argon2() -> Argon2<'static> {
    // These constants are within Argon2's bounds; `new` checks only that.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 12;

/// Whether `password` may be set: long enough, and not absurdly long.
pub fn acceptable(password: &str) -> Result<(), String> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(format!("the password must have at least {MIN_LENGTH} characters"));
    }
    if password.len() > 1024 {
        return Err("the password must have at most 1,024 bytes".into());
    }
    Ok(())
}

/// The PHC string of `password` with a fresh random salt (tens of milliseconds: call off the
/// async threads).
pub fn hash(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    argon2().hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `stored` (compared in constant time by argon2);
/// false for anything unreadable.
pub fn verify(stored: &str, password: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(parsed) => argon2().verify_password(password.as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_names_argon2id() {
        let stored = hash("correct horse battery").expect("hashes");
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{stored}");
        assert!(verify(&stored, "correct horse battery"));
        assert!(!verify(&stored, "correct horse batterY"));
        assert!(!verify("not a phc string", "anything"));
        assert_ne!(stored, hash("correct horse battery").expect("hashes"), "salted");
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(acceptable("short").is_err());
        assert!(acceptable("twelve chars").is_ok());
    }
}
