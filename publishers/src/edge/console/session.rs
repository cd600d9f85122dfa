//! Operators' sign-in and sessions: an Argon2id check of the password (off the async threads),
//! a random session token in a `Secure; HttpOnly; SameSite=Strict` cookie stored only as its
//! hash, a CSRF token derived from the session token (nothing more to store), and lock-out: a
//! run of failed sign-ins locks the account, and a client address that keeps failing is refused
//! before any password is checked. Sessions and failed attempts are written by commands on the
//! bus, as every other write.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::Utc;
use http::HeaderMap;
use readside::operators::{self, Operator};
use ring::hmac;
use schemas::operators::{CloseOperatorSession, OpenOperatorSession, RecordOperatorSignInFailure};
use schemas::{Envelope, TenantId};
use subtle::ConstantTimeEq;

use super::Console;
use crate::api_keys::{self, KeyHash};
use crate::edge::envelope::ApiError;
use crate::edge::envelope::db_error;

/// The session cookie.
pub(super) const COOKIE: &str = "voltbus_console";
/// The sign-in form's own CSRF cookie (before there is a session).
pub(super) const SIGN_IN_COOKIE: &str = "voltbus_console_sign_in";
/// Session tokens are `vbs_` and 40 random characters.
const TOKEN_PREFIX: &str = "vbs_";
const TOKEN_LENGTH: usize = 40;
/// Where the console lives: cookies are sent to nothing else.
const PATH: &str = "/admin";
/// What a refused sign-in says, whatever the reason: no telling which addresses exist.
pub(super) const REFUSED: &str =
    "Sign-in failed: the email or password is wrong, or the account is locked after repeated failures.";

/// A signed-in operator's request.
pub(super) struct Session {
    /// Who.
    pub operator: Arc<Operator>,
    /// The token, as the cookie carries it.
    token: String,
}

impl Session {
    /// The CSRF token every form of this session carries.
    pub fn csrf(&self) -> String {
        csrf_of(&self.token)
    }

    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf().as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// HMAC-SHA256 of a fixed label under the session token: unguessable without the cookie, which
/// scripts on other sites cannot read or send (SameSite=Strict).
fn csrf_of(token: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token.as_bytes());
    hex::encode(hmac::sign(&key, b"voltbus console csrf").as_ref())
}

/// The value of cookie `name` in `headers`.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for the console's path.
pub(super) fn set_cookie(name: &str, value: &str, max_age: u64) -> String {
    format!("{name}={value}; Path={PATH}; Max-Age={max_age}; Secure; HttpOnly; SameSite=Strict")
}

/// The command envelopes' tenant: operators belong to the platform, not to an organisation.
fn platform() -> Result<TenantId, ApiError> {
    TenantId::new(crate::edge::ANONYMOUS_TENANT).map_err(|_| ApiError::internal())
}

/// A PHC string with the parameters every account has, checked when the address is unknown so
/// that an unknown address costs what a wrong password costs (its password does not matter:
/// the answer is a refusal whatever it says).
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$6LsTqFHA3QNjPICH0cHCQA$kqZvoFf43IvT//COH3kXaHM6VAC4z1N0C61tFdoRSk4";

impl Console {
    /// The session a request's cookie opens, if any.
    pub(super) async fn session(&self, headers: &HeaderMap) -> Result<Option<Session>, ApiError> {
        let Some(token) = cookie(headers, COOKIE) else { return Ok(None) };
        let shaped = token
            .strip_prefix(TOKEN_PREFIX)
            .is_some_and(|rest| rest.len() == TOKEN_LENGTH && api_keys::check_text(rest));
        if !shaped {
            return Ok(None);
        }
        let hash = KeyHash::of(token).to_hex();
        let operator = operators::session(&self.api.database, &hash, Utc::now()).await.map_err(db_error)?;
        Ok(operator.map(|operator| Session { operator: Arc::new(operator), token: token.to_owned() }))
    }

    /// Checks `email` and `password`; on success opens a session and returns its cookie. Every
    /// refusal costs the same (one Argon2id check, one command round trip) and reads the same,
    /// whether the address is unknown, the account locked or the password wrong.
    pub(super) async fn sign_in(&self, peer: IpAddr, email: &str, password: &str) -> Result<String, ApiError> {
        // An address that keeps failing gets 429 before any password is hashed; and at most a few
        // checks of 19 MiB each run at once, whoever sends them.
        self.api.failed_authentications.check(peer)?;
        let Ok(_permit) = self.verifications.try_acquire() else {
            let busy = "too many sign-ins at once; try again in a moment";
            return Err(ApiError::refused(readside::codes::RATE_LIMITED, busy.into()));
        };
        let found = operators::find_by_email(&self.api.database, email).await.map_err(db_error)?;
        let stored = found.as_ref().map_or(DECOY, |(_, hash)| hash.as_str()).to_owned();
        let password = password.to_owned();
        let right = tokio::task::spawn_blocking(move || operators::password::verify(&stored, &password))
            .await
            .map_err(|_| ApiError::internal())?;
        let operator = found.map(|(operator, _)| operator);
        let locked = operator.as_ref().is_some_and(|o| o.locked_until.is_some_and(|until| until > Utc::now()));
        match operator {
            Some(operator) if right && !locked => self.open(&operator).await,
            _ => {
                self.api.failed_authentications.failed(peer);
                if locked {
                    tracing::warn!("sign-in to a locked operator account refused");
                }
                // An unknown address counts against an id no one has: the same round trip.
                let known = operator.is_some();
                let operator_id = operator.map_or_else(uuid::Uuid::now_v7, |o| o.operator_id);
                let failure = RecordOperatorSignInFailure {
                    operator_id,
                    lock_after: self.settings.lock_after(),
                    lock_seconds: u32::try_from(self.settings.lock_for().as_secs()).unwrap_or(u32::MAX),
                };
                let command = Envelope::new(platform()?, SOURCE, failure);
                let recorded: Result<serde_json::Value, ApiError> =
                    self.api.bus.request(&command, self.api.settings.command_timeout).await;
                match recorded {
                    Err(error) if known => {
                        tracing::warn!(code = error.code, "a failed operator sign-in could not be recorded");
                    }
                    _ => {}
                }
                Err(ApiError::unauthorized(REFUSED))
            }
        }
    }

    /// Opens a session for `operator`; its cookie.
    async fn open(&self, operator: &Operator) -> Result<String, ApiError> {
        let token = api_keys::random_text(TOKEN_LENGTH, &self.api.random).map_err(|_| ApiError::internal())?;
        let token = format!("{TOKEN_PREFIX}{token}");
        let ttl = self.settings.session_ttl();
        let open = OpenOperatorSession {
            operator_id: operator.operator_id,
            session_hash: KeyHash::of(&token).to_hex(),
            expires_at: Utc::now() + ttl,
        };
        let _: serde_json::Value =
            self.api.bus.request(&Envelope::new(platform()?, SOURCE, open), self.api.settings.command_timeout).await?;
        tracing::info!(operator = %operator.operator_id, "operator signed in");
        Ok(set_cookie(COOKIE, &token, ttl.as_secs()))
    }

    /// Ends `session`; returns the cookie that clears it.
    pub(super) async fn sign_out(&self, session: &Session) -> Result<String, ApiError> {
        let close = CloseOperatorSession { session_hash: KeyHash::of(&session.token).to_hex() };
        let _: serde_json::Value =
            self.api.bus.request(&Envelope::new(platform()?, SOURCE, close), self.api.settings.command_timeout).await?;
        tracing::info!(operator = %session.operator.operator_id, "operator signed out");
        Ok(set_cookie(COOKIE, "", 0))
    }
}

/// The `source` of the console's commands.
pub(super) const SOURCE: &str = "voltbus/console";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_exact_name_and_csrf_tokens_differ_by_session() {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::COOKIE, "voltbus_console_sign_in=a; voltbus_console=b".parse().unwrap());
        assert_eq!(cookie(&headers, COOKIE), Some("b"));
        assert_eq!(cookie(&headers, SIGN_IN_COOKIE), Some("a"));
        assert_ne!(csrf_of("one"), csrf_of("two"));
        assert_eq!(csrf_of("one").len(), 64);
        assert!(set_cookie(COOKIE, "x", 60).contains("Secure; HttpOnly; SameSite=Strict"));
    }
}
