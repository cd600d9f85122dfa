//! Who is calling: the `X-Partner-Api-Key` header checked against the stored hashes (through a
//! short-lived cache), and the subaccount the request acts on (`X-Subaccount-Id`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use consumers::integrations::{StoredKey, keys};
use http::HeaderMap;
use schemas::TenantId;
use schemas::integrations::{KeyScope, Permission};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use super::response::ApiError;
use crate::api_keys::{self, KeyHash};

/// Header carrying the partner's key.
pub(crate) const API_KEY_HEADER: &str = "x-partner-api-key";
/// Header choosing the subaccount, for global keys.
pub(crate) const SUBACCOUNT_HEADER: &str = "x-subaccount-id";

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The key's organisation.
    pub tenant: TenantId,
    /// The key, as stored.
    pub key: Arc<StoredKey>,
    /// The subaccount this request acts on; `None` is the organisation as a whole.
    pub subaccount: Option<Uuid>,
}

impl Caller {
    /// Whether the key holds `permission`.
    pub fn may(&self, permission: Permission) -> bool {
        crate::permissions::allows(&self.key.key.permissions, permission)
    }
}

struct Cached {
    key: Arc<StoredKey>,
    fetched: Instant,
}

/// Keys by hash, each kept for a short time so that a busy key costs no database read per request.
/// A change made through this edge evicts the key at once; on RabbitMQ every edge also evicts it
/// when its `api_key.changed` event arrives (`key_events`); otherwise at expiry.
pub(crate) struct KeyCache {
    database: DatabaseConnection,
    ttl: Duration,
    entries: RwLock<HashMap<KeyHash, Cached>>,
}

impl KeyCache {
    pub fn new(database: DatabaseConnection, ttl: Duration) -> Self {
        Self { database, ttl, entries: RwLock::default() }
    }

    async fn lookup(
        &self,
        hash: KeyHash,
        may_read: impl FnOnce() -> Result<(), ApiError>,
    ) -> Result<Option<Arc<StoredKey>>, ApiError> {
        if let Ok(entries) = self.entries.read()
            && let Some(cached) = entries.get(&hash).filter(|c| c.fetched.elapsed() < self.ttl)
        {
            return Ok(Some(Arc::clone(&cached.key)));
        }
        may_read()?;
        let stored = keys::find_by_hash(&self.database, &hash.to_hex()).await.map_err(|error| {
            tracing::error!(%error, "key lookup failed");
            ApiError::unavailable("cannot check API keys right now")
        })?;
        let Some(stored) = stored else { return Ok(None) };
        // The database compared hashes with `=`; compare again in constant time, so the answer
        // never depends on how much of a guessed hash matched.
        if KeyHash::from_hex(&stored.key_hash) != Some(hash) {
            return Ok(None);
        }
        let stored = Arc::new(stored);
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() > 100_000 {
                entries.retain(|_, c| c.fetched.elapsed() < self.ttl);
            }
            entries.insert(hash, Cached { key: Arc::clone(&stored), fetched: Instant::now() });
        }
        Ok(Some(stored))
    }

    /// Forgets every key.
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    /// Forgets key `id`, after a change to it.
    pub fn evict(&self, id: Uuid) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, c| c.key.key.id != id);
        }
    }

    /// The caller of a request with `headers`, or 401/403 with why. A key not in the cache is
    /// read from the database only if `may_read` allows it (the client is not refused for guessing).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        may_read: impl FnOnce() -> Result<(), ApiError>,
    ) -> Result<Caller, ApiError> {
        let presented = headers
            .get(API_KEY_HEADER)
            .ok_or_else(|| ApiError::unauthorized("missing X-Partner-Api-Key header"))?
            .to_str()
            .map_err(|_| ApiError::unauthorized("invalid API key"))?;
        api_keys::check_shape(presented).map_err(|_| ApiError::unauthorized("invalid API key"))?;
        let stored = self
            .lookup(KeyHash::of(presented), may_read)
            .await?
            .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
        if !stored.usable_at(Utc::now()) {
            return Err(ApiError::unauthorized("API key disabled or expired"));
        }
        let tenant = TenantId::new(stored.tenant.clone()).map_err(|error| {
            tracing::error!(%error, "stored key has an invalid tenant");
            ApiError::internal()
        })?;
        let subaccount = subaccount(&stored.key.scope, headers)?;
        Ok(Caller { tenant, key: stored, subaccount })
    }
}

/// The subaccount a request acts on: a subaccount key's own, or the one a global key names in
/// `X-Subaccount-Id` among those it may use (any, if it lists none).
fn subaccount(scope: &KeyScope, headers: &HeaderMap) -> Result<Option<Uuid>, ApiError> {
    let requested = match headers.get(SUBACCOUNT_HEADER) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| Uuid::parse_str(text.trim()).ok())
                .ok_or_else(|| ApiError::invalid(SUBACCOUNT_HEADER, "X-Subaccount-Id must be a UUID"))?,
        ),
    };
    match (scope, requested) {
        (KeyScope::Subaccount { subaccount_id }, None) => Ok(Some(*subaccount_id)),
        (KeyScope::Subaccount { subaccount_id }, Some(requested)) if requested == *subaccount_id => Ok(Some(requested)),
        (KeyScope::Global { .. }, None) => Ok(None),
        // A global key that lists none is the whole organisation's: it may act on any subaccount.
        (KeyScope::Global { allowed_subaccount_ids }, Some(requested))
            if allowed_subaccount_ids.is_empty() || allowed_subaccount_ids.contains(&requested) =>
        {
            Ok(Some(requested))
        }
        (_, Some(requested)) => Err(ApiError::forbidden("this key may not act on that subaccount")
            .details(serde_json::json!({ "subaccount_id": requested }))),
    }
}
