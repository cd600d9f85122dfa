//! NATS credentials that nats-server itself checks: decentralized JWT accounts (operator mode).
//!
//! voltbus holds an operator key and one account key (nkeys, ed25519). The operator signs the
//! account; the account signs users. nats-server trusts the operator (its configuration names
//! the operator's JWT and preloads the account's, see [`Accounts::server_config`]), so it checks
//! every user's signature and enforces the permissions in the user's JWT: a mobile user gets
//! `sub.allow` on its own subject tree and `pub.deny` on everything, and cannot read another
//! user's messages whatever it tries. Nothing is stored per user: each sign-in mints a fresh
//! key pair, whose seed only the client receives.
//!
//! JWTs follow nats-io/jwt v2: `{"typ":"JWT","alg":"ed25519-nkey"}`, claims with `jti` (the
//! unpadded base32 of SHA-512/256 of the claims without it), `iat`, `iss`, `sub`, `name`,
//! optional `exp`, and the `nats` object; each part base64url without padding.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde_json::{Value, json};

/// Why credentials could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// A configured seed is not an nkey seed of the expected kind.
    #[error("{what} is not a valid {kind} nkey seed")]
    BadSeed {
        /// Which setting.
        what: &'static str,
        /// Operator or account.
        kind: &'static str,
    },
    /// Signing failed (nkeys).
    #[error("signing a NATS JWT: {0}")]
    Signing(String),
}

/// The operator and the account voltbus signs credentials with.
pub struct Accounts {
    operator: KeyPair,
    account: KeyPair,
    /// The server's own account (JetStream needs one in operator mode); derived from the
    /// operator's seed, so the same seeds always make the same server configuration.
    system: KeyPair,
}

/// A user's credentials: the JWT and the seed of its key pair (the secret half).
#[derive(Clone)]
pub struct Credentials {
    /// The user JWT, signed by the account.
    pub jwt: String,
    /// The user's nkey seed (`SU…`); a secret, shown once to its owner.
    pub seed: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("jwt", &"…").field("seed", &"***").finish()
    }
}

impl Credentials {
    /// The standard `.creds` text that NATS clients (async-nats `with_credentials`, the `nats`
    /// CLI, nats.js) read.
    pub fn creds_file(&self) -> String {
        format!(
            "-----BEGIN NATS USER JWT-----\n{}\n------END NATS USER JWT------\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             -----BEGIN USER NKEY SEED-----\n{}\n------END USER NKEY SEED------\n",
            self.jwt, self.seed
        )
    }
}

/// What a user may do on the server.
#[derive(Clone, Debug)]
pub enum Permissions {
    /// Everything (voltbus's own connections).
    All,
    /// Subscribe to these subjects (wildcards allowed) and publish nothing.
    SubscribeOnly(Vec<String>),
    /// A device: publish on these subjects and subscribe to those, nothing else; its JWT is a
    /// bearer token, so an MQTT client (which cannot sign the server's nonce) presents it as its
    /// password.
    Device {
        /// Subjects it may publish on.
        publish: Vec<String>,
        /// Subjects it may subscribe to.
        subscribe: Vec<String>,
    },
}

impl Accounts {
    /// The operator and account of these seeds (`SO…`, `SA…`).
    pub fn from_seeds(operator_seed: &str, account_seed: &str) -> Result<Self, AccountsError> {
        let operator = KeyPair::from_seed(operator_seed.trim())
            .ok()
            .filter(|k| k.public_key().starts_with('O'))
            .ok_or(AccountsError::BadSeed { what: "nats.operator_seed", kind: "operator" })?;
        let account = KeyPair::from_seed(account_seed.trim())
            .ok()
            .filter(|k| k.public_key().starts_with('A'))
            .ok_or(AccountsError::BadSeed { what: "nats.account_seed", kind: "account" })?;
        Self::with(operator, account)
    }

    /// A new operator and account, for `voltbus nats-accounts` and tests.
    pub fn generate() -> Self {
        // Fresh keys always have seeds, so this cannot fail; a failure would be nkeys' bug.
        Self::with(KeyPair::new_operator(), KeyPair::new_account()).unwrap_or_else(|_| unreachable!("fresh keys"))
    }

    fn with(operator: KeyPair, account: KeyPair) -> Result<Self, AccountsError> {
        let seed = operator.seed().map_err(|e| AccountsError::Signing(e.to_string()))?;
        let (_, raw) = nkeys::decode_seed(&seed).map_err(|e| AccountsError::Signing(e.to_string()))?;
        let mut derivation = ring::digest::Context::new(&ring::digest::SHA256);
        derivation.update(b"voltbus system account\n");
        derivation.update(&raw);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(derivation.finish().as_ref());
        let system = KeyPair::new_from_raw(nkeys::KeyPairType::Account, bytes)
            .map_err(|e| AccountsError::Signing(e.to_string()))?;
        Ok(Self { operator, account, system })
    }

    /// The seeds to keep in configuration (secrets).
    pub fn seeds(&self) -> Result<(String, String), AccountsError> {
        let seed = |k: &KeyPair| k.seed().map_err(|e| AccountsError::Signing(e.to_string()));
        Ok((seed(&self.operator)?, seed(&self.account)?))
    }

    /// The account's public key (`A…`).
    pub fn account_public_key(&self) -> String {
        self.account.public_key()
    }

    /// The operator's self-signed JWT.
    pub fn operator_jwt(&self) -> Result<String, AccountsError> {
        let subject = self.operator.public_key();
        let nats = json!({ "system_account": self.system.public_key(), "type": "operator", "version": 2 });
        encode(&self.operator, &subject, "voltbus", None, nats)
    }

    /// The account's JWT, signed by the operator: no limits (JetStream included, which
    /// voltbus's own streams need).
    pub fn account_jwt(&self) -> Result<String, AccountsError> {
        encode(&self.operator, &self.account.public_key(), "voltbus", None, Self::account_claims(true))
    }

    /// The system account's JWT (no JetStream: the server's own traffic only).
    fn system_jwt(&self) -> Result<String, AccountsError> {
        encode(&self.operator, &self.system.public_key(), "SYS", None, Self::account_claims(false))
    }

    fn account_claims(jetstream: bool) -> Value {
        let storage = if jetstream { -1 } else { 0 };
        json!({
            "limits": {
                "subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": true,
                "conn": -1, "leaf": -1,
                "mem_storage": storage, "disk_storage": storage, "streams": storage, "consumer": storage,
            },
            "default_permissions": { "pub": {}, "sub": {} },
            "type": "account",
            "version": 2,
        })
    }

    /// The lines of nats-server's configuration that make it trust this operator and know the
    /// accounts (a memory resolver: they never change at run time).
    pub fn server_config(&self) -> Result<String, AccountsError> {
        Ok(format!(
            "operator: \"{}\"\nsystem_account: {}\nresolver: MEMORY\nresolver_preload: {{\n  {}: \"{}\"\n  {}: \"{}\"\n}}\n",
            self.operator_jwt()?,
            self.system.public_key(),
            self.account.public_key(),
            self.account_jwt()?,
            self.system.public_key(),
            self.system_jwt()?,
        ))
    }

    /// Credentials of a new user named `name` with `permissions`, valid until `expires_at`
    /// (unix seconds) when given.
    pub fn user(
        &self,
        name: &str,
        permissions: &Permissions,
        expires_at: Option<i64>,
    ) -> Result<Credentials, AccountsError> {
        let user = KeyPair::new_user();
        let (publish, subscribe, bearer) = match permissions {
            Permissions::All => (json!({}), json!({}), false),
            Permissions::SubscribeOnly(subjects) => (json!({ "deny": [">"] }), json!({ "allow": subjects }), false),
            Permissions::Device { publish, subscribe } => {
                (json!({ "allow": publish }), json!({ "allow": subscribe }), true)
            }
        };
        let mut nats = json!({
            "pub": publish,
            "sub": subscribe,
            "subs": -1,
            "data": -1,
            "payload": -1,
            "type": "user",
            "version": 2,
        });
        if bearer {
            nats["bearer_token"] = true.into();
        }
        let jwt = encode(&self.account, &user.public_key(), name, expires_at, nats)?;
        let seed = user.seed().map_err(|e| AccountsError::Signing(e.to_string()))?;
        Ok(Credentials { jwt, seed })
    }
}

/// A JWT for `subject`, issued and signed by `issuer`.
fn encode(
    issuer: &KeyPair,
    subject: &str,
    name: &str,
    expires_at: Option<i64>,
    nats: Value,
) -> Result<String, AccountsError> {
    let mut claims = serde_json::Map::new();
    if let Some(exp) = expires_at {
        claims.insert("exp".into(), exp.into());
    }
    claims.insert("iat".into(), chrono::Utc::now().timestamp().into());
    claims.insert("iss".into(), issuer.public_key().into());
    claims.insert("name".into(), name.into());
    claims.insert("sub".into(), subject.into());
    // The id is the hash of the registered claims without it, as nats-io/jwt makes it.
    let digest = ring::digest::digest(&ring::digest::SHA512_256, Value::Object(claims.clone()).to_string().as_bytes());
    claims.insert("jti".into(), data_encoding::BASE32_NOPAD.encode(digest.as_ref()).into());
    claims.insert("nats".into(), nats);
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ed25519-nkey"}"#);
    let body = URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string());
    let signed = format!("{header}.{body}");
    let signature = issuer.sign(signed.as_bytes()).map_err(|e| AccountsError::Signing(e.to_string()))?;
    Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jwt: &str) -> Value {
        let body = jwt.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap()
    }

    #[test]
    fn a_user_is_signed_by_the_account_and_the_account_by_the_operator() {
        let accounts = Accounts::generate();
        let permissions = Permissions::SubscribeOnly(vec!["voltbus.acme.users.u1.>".into()]);
        let user = accounts.user("u1", &permissions, Some(4_000_000_000)).unwrap();
        let user_claims = claims(&user.jwt);
        assert_eq!(user_claims["iss"], accounts.account_public_key());
        assert_eq!(user_claims["nats"]["sub"]["allow"][0], "voltbus.acme.users.u1.>");
        assert_eq!(user_claims["nats"]["pub"]["deny"][0], ">");
        let (signed, signature) = user.jwt.rsplit_once('.').unwrap();
        let account = KeyPair::from_public_key(&accounts.account_public_key()).unwrap();
        account.verify(signed.as_bytes(), &URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
        assert_eq!(claims(&accounts.account_jwt().unwrap())["iss"], accounts.operator.public_key());
        assert!(user.seed.starts_with("SU"));
        assert!(!format!("{user:?}").contains(&user.seed), "a seed is never printed");
    }

    #[test]
    fn seeds_round_trip_and_wrong_kinds_are_refused() {
        let accounts = Accounts::generate();
        let (operator, account) = accounts.seeds().unwrap();
        let again = Accounts::from_seeds(&operator, &account).unwrap();
        assert_eq!(again.account_public_key(), accounts.account_public_key());
        assert!(Accounts::from_seeds(&account, &operator).is_err());
        assert!(Accounts::from_seeds("nonsense", &account).is_err());
    }
}
