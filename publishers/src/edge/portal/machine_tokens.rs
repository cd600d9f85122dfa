//! Machine tokens of integrations: `evc_mt_<claims>.<signature>`, the claims (integration,
//! tenant, bundle, allow-list, issue and expiry times) as base64url JSON, signed with
//! HMAC-SHA256 under the edge's token key. A token is checked on every call by its signature
//! and expiry alone, with no database read; the one thing an edge must learn from elsewhere is
//! that an integration was revoked or disabled, which [`Cutoffs`] holds: tokens issued before an
//! integration's cut-off are dead.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::hmac;
use schemas::TenantId;
use schemas::integrations::{AccessBundle, Permission};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every machine token starts with this.
pub(crate) const PREFIX: &str = "evc_mt_";
/// Longest token accepted for checking: anything longer is not ours.
const MAX_LEN: usize = 8 * 1024;

/// What a machine token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The integration.
    #[serde(rename = "int")]
    pub integration_id: Uuid,
    /// Its organisation.
    #[serde(rename = "ten")]
    pub tenant: TenantId,
    /// Its access bundle.
    #[serde(rename = "bun")]
    pub bundle: AccessBundle,
    /// Operation ids it is limited to; empty: the whole bundle.
    #[serde(rename = "eps", default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_endpoints: Vec<String>,
    /// The permissions it was narrowed to (OAuth's `scope`); absent: the whole bundle's.
    #[serde(rename = "scp", default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<Permission>>,
    /// Issued, Unix milliseconds.
    pub iat: i64,
    /// Expires, Unix milliseconds.
    pub exp: i64,
}

impl Claims {
    /// Whether the token grants `permission`: its bundle does, and its scope, if any, names it.
    pub fn grants(&self, permission: Permission) -> bool {
        crate::permissions::allows(crate::permissions::bundle(self.bundle), permission)
            && self.scope.as_ref().is_none_or(|scope| scope.contains(&permission))
    }

    /// Every permission the token grants.
    pub fn permissions(&self) -> Vec<Permission> {
        crate::permissions::bundle(self.bundle).iter().copied().filter(|p| self.grants(*p)).collect()
    }

    /// When the token expires.
    pub fn expires_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.exp).unwrap_or_default()
    }
}

/// Why a presented token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// Not a token of ours, or altered.
    #[error("invalid token")]
    Invalid,
    /// Past its expiry.
    #[error("token expired")]
    Expired,
    /// Its integration was revoked or disabled after it was issued.
    #[error("token revoked")]
    Revoked,
}

/// Signs and checks machine tokens.
pub(crate) struct Signer {
    key: hmac::Key,
    ttl: Duration,
}

impl Signer {
    /// A signer with the 32-byte `key`, issuing tokens that live `ttl`.
    pub fn new(key: &[u8; 32], ttl: Duration) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, key), ttl }
    }

    /// How long tokens live.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new token for `integration` of `tenant`, issued `now`, narrowed to `scope` if given.
    pub fn issue(
        &self,
        integration_id: Uuid,
        tenant: TenantId,
        (bundle, allowed_endpoints): (AccessBundle, Vec<String>),
        scope: Option<Vec<Permission>>,
        now: DateTime<Utc>,
    ) -> (String, Claims) {
        let iat = now.timestamp_millis();
        let exp = iat.saturating_add(i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX));
        let claims = Claims { integration_id, tenant, bundle, allowed_endpoints, scope, iat, exp };
        // Our own claims always serialise.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signature = URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, payload.as_bytes()));
        (format!("{PREFIX}{payload}.{signature}"), claims)
    }

    /// The claims of `token`, if it is ours, unaltered, unexpired at `now` and not cut off.
    pub fn check(&self, token: &str, now: DateTime<Utc>, cutoffs: &Cutoffs) -> Result<Claims, TokenError> {
        if token.len() > MAX_LEN {
            return Err(TokenError::Invalid);
        }
        let (payload, signature) =
            token.strip_prefix(PREFIX).and_then(|rest| rest.split_once('.')).ok_or(TokenError::Invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Invalid)?;
        // Constant time: the answer never tells how much of a forged signature was right.
        hmac::verify(&self.key, payload.as_bytes(), &signature).map_err(|_| TokenError::Invalid)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TokenError::Invalid)?;
        if now.timestamp_millis() >= claims.exp {
            return Err(TokenError::Expired);
        }
        if cutoffs.cuts(claims.integration_id, claims.iat) {
            return Err(TokenError::Revoked);
        }
        Ok(claims)
    }
}

/// Per integration, the time before which its tokens are dead (it was revoked or disabled then).
#[derive(Default)]
pub(crate) struct Cutoffs {
    cut: RwLock<HashMap<Uuid, i64>>,
}

impl Cutoffs {
    /// Tokens of `integration` issued before `at` are dead from now on.
    pub fn cut(&self, integration_id: Uuid, at: DateTime<Utc>) {
        let at = at.timestamp_millis();
        if let Ok(mut cut) = self.cut.write() {
            let entry = cut.entry(integration_id).or_insert(at);
            *entry = (*entry).max(at);
        }
    }

    /// Whether a token of `integration` issued at `iat` (Unix milliseconds) is dead.
    fn cuts(&self, integration_id: Uuid, iat: i64) -> bool {
        self.cut.read().map_or(true, |cut| cut.get(&integration_id).is_some_and(|at| iat <= *at))
    }

    /// Forgets cut-offs older than any living token: they can no longer matter.
    pub fn forget_before(&self, before: DateTime<Utc>) {
        let before = before.timestamp_millis();
        if let Ok(mut cut) = self.cut.write() {
            cut.retain(|_, at| *at >= before);
        }
    }
}

/// Keeps the integrations' cut-offs current from the database: at start, then every few
/// seconds, so a revocation made through any edge is honoured here within seconds even if its
/// event never arrives.
pub(crate) async fn refresh_cutoffs(
    database: sea_orm::DatabaseConnection,
    cutoffs: std::sync::Arc<Cutoffs>,
    token_ttl: Duration,
) {
    let lifetime = chrono::Duration::from_std(token_ttl).unwrap_or_else(|_| chrono::Duration::days(1));
    loop {
        let oldest_living = Utc::now() - lifetime - chrono::Duration::minutes(1);
        match readside::integrations::clients::cut_off_since(&database, oldest_living).await {
            Ok(cut) => {
                for (integration, at) in cut {
                    cutoffs.cut(integration, at);
                }
                cutoffs.forget_before(oldest_living);
            }
            Err(error) => tracing::warn!(%error, "could not read integrations' cut-offs"),
        }
        tokio::time::sleep(CUTOFF_REFRESH).await;
    }
}

/// How often the edge re-reads integrations' cut-offs, in case an event was missed.
const CUTOFF_REFRESH: Duration = Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        Signer::new(&[7; 32], Duration::from_secs(900))
    }

    fn issue(signer: &Signer, now: DateTime<Utc>) -> (String, Claims) {
        let tenant = TenantId::new("acme").unwrap();
        signer.issue(Uuid::now_v7(), tenant, (AccessBundle::ClientAccess, Vec::new()), None, now)
    }

    #[test]
    fn a_token_is_checked_by_signature_expiry_and_cutoff() {
        let (signer, cutoffs, now) = (signer(), Cutoffs::default(), Utc::now());
        let (token, claims) = issue(&signer, now);
        assert!(token.starts_with(PREFIX));
        assert_eq!(signer.check(&token, now, &cutoffs), Ok(claims.clone()));
        let later = now + chrono::Duration::seconds(900);
        assert_eq!(signer.check(&token, later, &cutoffs), Err(TokenError::Expired));
        cutoffs.cut(claims.integration_id, now);
        assert_eq!(signer.check(&token, now, &cutoffs), Err(TokenError::Revoked));
        // A token issued after the cut-off (the integration enabled again) lives.
        let (fresh, _) = signer.issue(
            claims.integration_id,
            claims.tenant.clone(),
            (claims.bundle, Vec::new()),
            None,
            now + chrono::Duration::milliseconds(5),
        );
        assert!(signer.check(&fresh, now, &cutoffs).is_ok());
    }

    #[test]
    fn an_altered_or_foreign_token_is_invalid() {
        let (signer, cutoffs, now) = (signer(), Cutoffs::default(), Utc::now());
        let (token, claims) = issue(&signer, now);
        let other = Signer::new(&[8; 32], Duration::from_secs(900));
        assert_eq!(other.check(&token, now, &cutoffs), Err(TokenError::Invalid));
        // The same signature over claims granting more.
        let (_, signature) = token.split_once('.').unwrap();
        let wider = Claims { bundle: AccessBundle::AllAccess, ..claims };
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&wider).unwrap());
        assert_eq!(signer.check(&format!("{PREFIX}{payload}.{signature}"), now, &cutoffs), Err(TokenError::Invalid));
        for garbage in ["", "evc_mt_", "evc_mt_abc", "evc_mt_a.b", "Bearer x"] {
            assert_eq!(signer.check(garbage, now, &cutoffs), Err(TokenError::Invalid), "{garbage}");
        }
    }

    #[test]
    fn a_scope_narrows_the_bundle_and_never_widens_it() {
        let tenant = TenantId::new("acme").unwrap();
        let scope = Some(vec![Permission::VehiclesRead, Permission::WebhooksWrite]);
        let (_, claims) =
            signer().issue(Uuid::now_v7(), tenant, (AccessBundle::ClientAccess, Vec::new()), scope, Utc::now());
        assert!(claims.grants(Permission::VehiclesRead));
        assert!(!claims.grants(Permission::RidesWrite), "in the bundle, not in the scope");
        assert!(!claims.grants(Permission::WebhooksWrite), "in the scope, not in the bundle");
        assert_eq!(claims.permissions(), [Permission::VehiclesRead]);
    }
}
