//! Who is calling: a partner key (`X-Partner-Api-Key`, or `Authorization: Bearer <key>`)
//! checked against the stored hashes (through a short-lived cache), or an integration's machine
//! token (`Authorization: Bearer evc_mt_…`, checked by its signature alone); and the subaccount
//! the request acts on (`X-Subaccount-Id`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use http::HeaderMap;
use readside::integrations::{StoredKey, keys};
use schemas::TenantId;
use schemas::integrations::{Audience, KeyScope, Permission};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::api_keys::{self, KeyHash};
use crate::edge::envelope::ApiError;
use crate::edge::portal::machine_tokens::Claims;

/// Header carrying the partner's key.
pub(crate) const API_KEY_HEADER: &str = "x-partner-api-key";
/// Header choosing the subaccount, for global keys.
pub(crate) const SUBACCOUNT_HEADER: &str = "x-subaccount-id";

/// Integrations act on the whole organisation, choosing a subaccount per request.
static WHOLE_ORGANISATION: KeyScope = KeyScope::Global { allowed_subaccount_ids: Vec::new() };

/// A partner key as the edge keeps it: as stored, and as `GET /me` shows it, serialised once
/// when the key is read (an `ALL_ACCESS` key's permissions made serialising it a twentieth of the
/// CPU of a busy key's `/me` calls).
#[derive(Debug)]
pub(crate) struct KnownKey {
    stored: StoredKey,
    shown: Box<serde_json::value::RawValue>,
}

impl KnownKey {
    fn new(stored: StoredKey) -> Result<Self, serde_json::Error> {
        let shown = serde_json::value::to_raw_value(&stored.key)?;
        Ok(Self { stored, shown })
    }

    /// The key's settings as the API shows them.
    pub fn shown(&self) -> &serde_json::value::RawValue {
        &self.shown
    }
}

impl std::ops::Deref for KnownKey {
    type Target = StoredKey;

    fn deref(&self) -> &StoredKey {
        &self.stored
    }
}

/// Who authenticated.
#[derive(Clone, Debug)]
pub(crate) enum Principal {
    /// A partner key, as stored.
    Key(Arc<KnownKey>),
    /// An integration, by its machine token's claims.
    Integration(Arc<Claims>),
    /// An operator signed in to the console, acting as the organisation's admin.
    Operator(Arc<readside::operators::Operator>),
}

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// The caller's organisation.
    pub tenant: TenantId,
    /// The key or integration.
    pub principal: Principal,
    /// The subaccount this request acts on; `None` is the organisation as a whole.
    pub subaccount: Option<Uuid>,
}

impl Caller {
    /// Whether the caller holds `permission`: a key's own, or an integration's bundle's.
    pub fn may(&self, permission: Permission) -> bool {
        match &self.principal {
            Principal::Key(key) => crate::permissions::allows(&key.key.permissions, permission),
            Principal::Integration(claims) => claims.grants(permission),
            Principal::Operator(_) => true,
        }
    }

    /// The key, when a key calls.
    pub fn key(&self) -> Option<&KnownKey> {
        match &self.principal {
            Principal::Key(key) => Some(key),
            Principal::Integration(_) | Principal::Operator(_) => None,
        }
    }

    /// The integration's claims, when an integration calls.
    pub fn integration(&self) -> Option<&Claims> {
        match &self.principal {
            Principal::Integration(claims) => Some(claims),
            Principal::Key(_) | Principal::Operator(_) => None,
        }
    }

    /// The operator, when the console calls.
    pub fn operator(&self) -> Option<&readside::operators::Operator> {
        match &self.principal {
            Principal::Operator(operator) => Some(operator),
            Principal::Key(_) | Principal::Integration(_) => None,
        }
    }

    /// The key, or 403 for an integration on a route only keys may use.
    pub fn require_key(&self) -> Result<&KnownKey, ApiError> {
        self.key().ok_or_else(|| ApiError::forbidden("this route needs a partner API key"))
    }

    /// Which subaccounts the caller may act on.
    pub fn scope(&self) -> &KeyScope {
        match &self.principal {
            Principal::Key(key) => &key.key.scope,
            Principal::Integration(_) | Principal::Operator(_) => &WHOLE_ORGANISATION,
        }
    }

    /// An organisation admin key (admin, and not limited to subaccounts: what admins manage is
    /// the whole organisation's), or an operator (whom the console lets act only where the
    /// operator's role reaches).
    pub fn is_admin(&self) -> bool {
        matches!(self.principal, Principal::Operator(_))
            || self.key().is_some_and(|key| key.key.admin && key.key.scope.subaccounts().is_none())
    }

    /// The subaccounts this request reads; `None`: all of the organisation's. A request that
    /// names one reads that one; else the key's scope decides.
    pub fn fleets(&self) -> Option<Vec<Uuid>> {
        match (self.subaccount, self.scope()) {
            (Some(subaccount), _) => Some(vec![subaccount]),
            (None, scope) => scope.subaccounts(),
        }
    }

    /// Whether events of type `event` are offered to partners: `false` when they are not, 403
    /// when they are but the caller lacks the permission that reads them.
    pub fn may_receive(&self, event: &str) -> Result<bool, ApiError> {
        let Some(needed) = schemas::descriptor_of(event).and_then(|d| d.read) else { return Ok(false) };
        if !self.may(needed) {
            let permission = serde_json::to_value(needed).unwrap_or_default();
            return Err(ApiError::forbidden(format!("`{event}` needs {permission}"))
                .details(serde_json::json!({ "field": "events", "required_permission": permission })));
        }
        Ok(true)
    }

    /// Whether this caller reads everything a receiver (webhook endpoint, subscriber queue) with
    /// `audience`, taking `events`, may receive: its subaccounts, and each of its event types.
    /// What it does not read, it does not see, change or replay.
    pub fn sees_receiver<'e>(&self, audience: &Audience, events: impl Iterator<Item = &'e str>) -> bool {
        self.audience().covers(audience, events)
    }

    /// What this request could read through the API: what a webhook endpoint or a subscriber
    /// queue it makes may receive.
    pub fn audience(&self) -> Audience {
        let permissions = match &self.principal {
            Principal::Key(key) => key.key.permissions.clone(),
            Principal::Integration(claims) => claims.permissions(),
            Principal::Operator(_) => Permission::ALL.to_vec(),
        };
        Audience { subaccount_ids: self.fleets(), permissions }
    }
}

struct Cached {
    key: Arc<KnownKey>,
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
    ) -> Result<Option<Arc<KnownKey>>, ApiError> {
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
        let stored = Arc::new(KnownKey::new(stored).map_err(|error| {
            tracing::error!(%error, "stored key cannot be shown");
            ApiError::internal()
        })?);
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
        let presented = match headers.get(API_KEY_HEADER) {
            Some(key) => key.to_str().map_err(|_| ApiError::unauthorized("invalid API key"))?,
            None => bearer(headers)?.ok_or_else(|| {
                ApiError::unauthorized("missing X-Partner-Api-Key header (or Authorization: Bearer token)")
            })?,
        };
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
        Ok(Caller { tenant, principal: Principal::Key(stored), subaccount })
    }
}

/// The token of an `Authorization: Bearer …` header, if there is one.
pub(crate) fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().map_err(|_| ApiError::unauthorized("invalid Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => {
            Ok(Some(token.trim()))
        }
        _ => Err(ApiError::unauthorized("Authorization must be `Bearer <token>`")),
    }
}

/// The caller of a request bearing an integration's machine token.
pub(crate) fn integration_caller(claims: Claims, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let subaccount = subaccount(&WHOLE_ORGANISATION, headers)?;
    Ok(Caller { tenant: claims.tenant.clone(), principal: Principal::Integration(Arc::new(claims)), subaccount })
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
