//! The key-management routes (admin keys only) and `/me`. Reads come from the database; every
//! change is a command on the bus, answered by the integrations consumers.

use chrono::{DateTime, Datelike, Duration as Days, Utc};
use http::StatusCode;
use readside::integrations::{ApiKey, LoggedRequest, keys, requests};
use schemars::JsonSchema;
use schemas::integrations::{
    AccessBundle, CreateApiKey, DeleteApiKey, KeyScope, Permission, RateLimits, RegenerateApiKey, UpdateApiKey,
};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::api_keys::{self, NewApiKey};
use crate::edge::body::parse_body;
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::auth::Caller;
use crate::edge::partner::routes::Call;
use crate::edge::query::page_of;
use crate::permissions;

/// Largest allowance per window.
const MAX_LIMIT: u32 = 100_000_000;
/// Longest key name.
const MAX_NAME: usize = 100;

/// A key's scope as a request names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ScopeName {
    /// One subaccount (`subaccount_id`).
    Subaccount,
    /// Several subaccounts (`allowed_subaccount_ids`), chosen per request with `X-Subaccount-Id`.
    Global,
}

/// Request limits as a request gives them; a missing window keeps its default (or current) value.
#[derive(Clone, Copy, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LimitsInput {
    /// Requests per minute (default 60).
    #[schemars(range(min = 1, max = 100_000_000))]
    per_minute: Option<u32>,
    /// Requests per hour (default 1,000).
    #[schemars(range(min = 1, max = 100_000_000))]
    per_hour: Option<u32>,
    /// Requests per day (default 10,000).
    #[schemars(range(min = 1, max = 100_000_000))]
    per_day: Option<u32>,
}

const DEFAULT_LIMITS: RateLimits = RateLimits { per_minute: 60, per_hour: 1_000, per_day: 10_000 };

impl LimitsInput {
    fn over(self, base: RateLimits) -> Result<RateLimits, ApiError> {
        let pick = |value: Option<u32>, default: u32, field: &str| match value {
            None => Ok(default),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(_) => Err(ApiError::invalid(field, format!("{field} must be 1 to {MAX_LIMIT}"))),
        };
        Ok(RateLimits {
            per_minute: pick(self.per_minute, base.per_minute, "rate_limits.per_minute")?,
            per_hour: pick(self.per_hour, base.per_hour, "rate_limits.per_hour")?,
            per_day: pick(self.per_day, base.per_day, "rate_limits.per_day")?,
        })
    }
}

/// `POST /api-keys`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    /// Display name, 1 to 100 characters.
    #[schemars(length(min = 1, max = 100))]
    name: String,
    /// Permissions; the seed's read-only defaults when neither this nor `bundle` is given.
    permissions: Option<Vec<Permission>>,
    /// An access bundle instead of a list of permissions.
    bundle: Option<AccessBundle>,
    /// `subaccount` (needs `subaccount_id`) or `global` (the default).
    scope: Option<ScopeName>,
    /// The subaccount of a `subaccount` key.
    subaccount_id: Option<Uuid>,
    /// The subaccounts a `global` key may act on.
    allowed_subaccount_ids: Option<Vec<Uuid>>,
    /// Per-window limits (defaults 60 / 1,000 / 10,000).
    rate_limits: Option<LimitsInput>,
    /// When the key stops working.
    expires_at: Option<DateTime<Utc>>,
    /// Whether the key may manage keys and read the request log.
    #[serde(default)]
    admin: bool,
}

/// `PATCH /api-keys/{id}`: fields left out stay as they are.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeyChanges {
    /// New display name.
    #[schemars(length(min = 1, max = 100))]
    name: Option<String>,
    /// New permissions.
    permissions: Option<Vec<Permission>>,
    /// New permissions, as a bundle.
    bundle: Option<AccessBundle>,
    /// New scope kind; give `subaccount_id` or `allowed_subaccount_ids` with it.
    scope: Option<ScopeName>,
    /// Subaccount of a `subaccount` key.
    subaccount_id: Option<Uuid>,
    /// Subaccounts of a `global` key.
    allowed_subaccount_ids: Option<Vec<Uuid>>,
    /// New limits; windows left out keep their value.
    rate_limits: Option<LimitsInput>,
    /// New expiry; `null` removes it.
    #[serde(default, deserialize_with = "present")]
    expires_at: Option<Option<DateTime<Utc>>>,
    /// `false` disables the key (it gets 401), `true` enables it.
    active: Option<bool>,
}

/// Tells "given as null" (`Some(None)`) from "left out" (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// A key with its secret: the only answer that ever shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct KeyWithSecret {
    #[serde(flatten)]
    stored: ApiKey,
    /// The whole key: shown in this answer only (`null` when the answer is an idempotent replay).
    key: Option<String>,
}

/// How much a key was used.
#[derive(Debug, Default, Serialize, JsonSchema)]
pub(crate) struct Usage {
    /// Requests today (UTC).
    requests_today: u64,
    /// Requests since Monday (UTC).
    requests_this_week: u64,
    /// Requests since the 1st of the month (UTC).
    requests_this_month: u64,
}

/// A key with its usage.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct KeyWithUsage {
    #[serde(flatten)]
    stored: ApiKey,
    /// Request counts.
    usage: Usage,
}

/// The calling key, as `/me` shows it.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CurrentKey<'k> {
    /// The organisation the key belongs to.
    organization_id: &'k str,
    /// The subaccount this request acts on (`null`: the organisation as a whole).
    subaccount_id: Option<Uuid>,
    /// The key.
    // Serialised once, when the edge read the key: see `auth::KnownKey`.
    #[schemars(with = "ApiKey")]
    key: &'k serde_json::value::RawValue,
}

/// A key may not change, regenerate or delete itself: another admin key does that, so no key
/// can lock its organisation out, raise its own limits, or cut the branch it sits on mid-session.
fn not_itself(call: &Call, id: Uuid) -> Result<Uuid, ApiError> {
    if call.caller.key().is_some_and(|key| key.key.id == id) {
        return Err(ApiError::forbidden("a key cannot change itself; use another admin key")
            .details(serde_json::json!({ "key_id": id })));
    }
    Ok(id)
}

/// `GET /me`.
pub(crate) async fn current(_: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let caller = &call.caller;
    let key = caller.require_key()?.shown();
    Ok(Answer::ok(CurrentKey { organization_id: caller.tenant.as_str(), subaccount_id: caller.subaccount, key }))
}

/// `GET /api-keys`.
pub(crate) async fn list(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let page = page_of(call.query.as_deref())?;
    let (items, total) =
        keys::list(&api.database, call.caller.tenant.as_str(), page.offset(), page.limit).await.map_err(db_error)?;
    Ok(Answer::list(items, page, total))
}

async fn find(api: &PartnerApi, call: &Call) -> Result<ApiKey, ApiError> {
    let id = call.id("id")?;
    keys::find(&api.database, call.caller.tenant.as_str(), id)
        .await
        .map_err(db_error)?
        .map(|stored| stored.key)
        .ok_or_else(|| ApiError::not_found(format!("no API key {id}")))
}

/// `GET /api-keys/{id}`.
pub(crate) async fn get(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let stored = find(api, &call).await?;
    let today = Utc::now().date_naive();
    let week = today - Days::days(i64::from(today.weekday().num_days_from_monday()));
    let month = today.with_day(1).unwrap_or(today);
    let days = keys::usage_since(&api.database, stored.id, week.min(month)).await.map_err(db_error)?;
    let mut usage = Usage::default();
    for (day, requests) in days {
        usage.requests_today += if day == today { requests } else { 0 };
        usage.requests_this_week += if day >= week { requests } else { 0 };
        usage.requests_this_month += if day >= month { requests } else { 0 };
    }
    Ok(Answer::ok(KeyWithUsage { stored, usage }))
}

/// `GET /api-keys/{id}/requests`.
pub(crate) async fn requests(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let page = page_of(call.query.as_deref())?;
    let key = find(api, &call).await?;
    let (items, total): (Vec<LoggedRequest>, u64) =
        requests::list(&api.database, call.caller.tenant.as_str(), key.id, page.offset(), page.limit)
            .await
            .map_err(db_error)?;
    Ok(Answer::list(items, page, total))
}

/// Permissions from a list or a bundle (not both), none beyond the caller's own.
fn permissions_of(
    caller: &Caller,
    list: Option<Vec<Permission>>,
    bundle: Option<AccessBundle>,
) -> Result<Option<Vec<Permission>>, ApiError> {
    let mut granted = match (list, bundle) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("bundle", "give either permissions or bundle, not both")),
        (Some(list), None) => list,
        (None, Some(bundle)) => permissions::bundle(bundle).to_vec(),
        (None, None) => return Ok(None),
    };
    granted.sort();
    granted.dedup();
    if let Some(beyond) = granted.iter().find(|p| !caller.may(**p)) {
        let name = serde_json::to_value(beyond).unwrap_or_default();
        return Err(ApiError::forbidden("a key cannot grant a permission it does not hold")
            .details(serde_json::json!({ "field": "permissions", "permission": name })));
    }
    Ok(Some(granted))
}

/// The scope from its parts, within the caller's own reach.
fn scope_of(
    caller: &Caller,
    scope: Option<ScopeName>,
    subaccount_id: Option<Uuid>,
    allowed: Option<Vec<Uuid>>,
) -> Result<Option<KeyScope>, ApiError> {
    let scope = match (scope, subaccount_id, allowed) {
        (None, None, None) => return Ok(None),
        (Some(ScopeName::Subaccount) | None, Some(subaccount_id), None) => KeyScope::Subaccount { subaccount_id },
        (Some(ScopeName::Subaccount), None, _) => {
            return Err(ApiError::invalid("subaccount_id", "a subaccount key needs subaccount_id"));
        }
        (Some(ScopeName::Global) | None, None, allowed) => {
            let mut allowed_subaccount_ids = allowed.unwrap_or_default();
            allowed_subaccount_ids.sort();
            allowed_subaccount_ids.dedup();
            KeyScope::Global { allowed_subaccount_ids }
        }
        (Some(ScopeName::Global), Some(_), _) => {
            return Err(ApiError::invalid("subaccount_id", "a global key takes allowed_subaccount_ids"));
        }
        (_, Some(_), Some(_)) => {
            return Err(ApiError::invalid("allowed_subaccount_ids", "a subaccount key takes subaccount_id only"));
        }
    };
    let reachable = |id: &Uuid| match caller.scope() {
        KeyScope::Subaccount { subaccount_id } => subaccount_id == id,
        KeyScope::Global { allowed_subaccount_ids } => allowed_subaccount_ids.contains(id),
    };
    let within = match (caller.scope(), &scope) {
        // An organisation-wide key reaches everything.
        (KeyScope::Global { allowed_subaccount_ids }, _) if allowed_subaccount_ids.is_empty() => true,
        (_, KeyScope::Subaccount { subaccount_id }) => reachable(subaccount_id),
        (_, KeyScope::Global { allowed_subaccount_ids }) => {
            !allowed_subaccount_ids.is_empty() && allowed_subaccount_ids.iter().all(reachable)
        }
    };
    if !within {
        return Err(ApiError::forbidden("a key cannot reach subaccounts beyond the caller's own")
            .details(serde_json::json!({ "field": "scope" })));
    }
    Ok(Some(scope))
}

/// Admin keys manage the whole organisation's keys, integrations and request log, so they are
/// the whole organisation's: an admin key limited to subaccounts would read other subaccounts'.
fn admin_reach(admin: bool, scope: &KeyScope) -> Result<(), ApiError> {
    if admin && scope.subaccounts().is_some() {
        return Err(ApiError::invalid("admin", "an admin key acts on the whole organisation: give it no subaccounts"));
    }
    Ok(())
}

fn name_of(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(ApiError::invalid("name", format!("name must be 1 to {MAX_NAME} characters")));
    }
    Ok(name.to_owned())
}

fn future_expiry(expires_at: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
    if expires_at <= Utc::now() {
        return Err(ApiError::invalid("expires_at", "expires_at must be in the future"));
    }
    Ok(expires_at)
}

/// A new key for `call`'s organisation, with its compatibility profile's prefix or the instance's.
async fn new_secret(api: &PartnerApi, call: &Call) -> Result<NewApiKey, ApiError> {
    let profile = readside::integrations::profiles::find(&api.database, call.caller.tenant.as_str())
        .await
        .map_err(crate::edge::envelope::db_error)?;
    let prefix = profile.key_prefix.as_deref().unwrap_or(&api.settings.key_prefix);
    api_keys::generate(prefix, &api.random).map_err(|error| {
        tracing::error!(%error, "could not make a key");
        ApiError::internal()
    })
}

/// The answer showing a new secret, unless the command's reply is from an earlier attempt of the
/// same request (same Idempotency-Key) whose answer was lost: that secret cannot be shown again.
fn with_secret(stored: ApiKey, secret: NewApiKey, status: StatusCode) -> Result<Answer, ApiError> {
    if stored.prefix != secret.display_prefix {
        return Err(ApiError::conflict(
            "an earlier attempt of this request already set this key's secret; regenerate the key to get a new one",
        ));
    }
    Ok(Answer::with_status(status, KeyWithSecret { stored, key: Some(secret.key.0) }).withholding("key"))
}

/// `POST /api-keys`.
pub(crate) async fn create(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: NewKey = parse_body(&call.body)?;
    let caller = &call.caller;
    let permissions =
        permissions_of(caller, request.permissions, request.bundle)?.unwrap_or_else(|| permissions::DEFAULTS.to_vec());
    let scope = scope_of(caller, request.scope, request.subaccount_id, request.allowed_subaccount_ids)?
        .unwrap_or_else(|| caller.scope().clone());
    admin_reach(request.admin, &scope)?;
    let secret = new_secret(api, &call).await?;
    let create = CreateApiKey {
        key_id: Uuid::now_v7(),
        name: name_of(&request.name)?,
        display_prefix: secret.display_prefix.clone(),
        key_hash: secret.hash.to_hex(),
        permissions,
        scope,
        rate_limits: request.rate_limits.unwrap_or_default().over(DEFAULT_LIMITS)?,
        expires_at: request.expires_at.map(future_expiry).transpose()?,
        admin: request.admin,
    };
    let stored: ApiKey = api.bus.request(&command(&call, create), api.settings.command_timeout).await?;
    with_secret(stored, secret, StatusCode::CREATED)
}

/// `PATCH /api-keys/{id}`.
pub(crate) async fn update(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let changes: KeyChanges = parse_body(&call.body)?;
    let current = find(api, &call).await?;
    let caller = &call.caller;
    let scope = scope_of(caller, changes.scope, changes.subaccount_id, changes.allowed_subaccount_ids)?;
    if let Some(scope) = &scope {
        admin_reach(current.admin, scope)?;
    }
    let update = UpdateApiKey {
        key_id: not_itself(&call, current.id)?,
        name: changes.name.as_deref().map(name_of).transpose()?,
        permissions: permissions_of(caller, changes.permissions, changes.bundle)?,
        scope,
        rate_limits: changes.rate_limits.map(|l| l.over(current.rate_limits)).transpose()?,
        expires_at: changes.expires_at.flatten().map(future_expiry).transpose()?,
        clear_expiry: changes.expires_at == Some(None),
        active: changes.active,
    };
    let stored: ApiKey = api.bus.request(&command(&call, update), api.settings.command_timeout).await?;
    api.keys.evict(stored.id);
    Ok(Answer::ok(stored))
}

/// `POST /api-keys/{id}/regenerate`.
pub(crate) async fn regenerate(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    // No body, or an empty object: the route takes no fields.
    let fields: serde_json::Map<String, serde_json::Value> = parse_body(&call.body)?;
    if let Some(field) = fields.keys().next() {
        return Err(ApiError::invalid(field, format!("unknown field `{field}`")));
    }
    let id = not_itself(&call, call.id("id")?)?;
    let secret = new_secret(api, &call).await?;
    let regenerate =
        RegenerateApiKey { key_id: id, display_prefix: secret.display_prefix.clone(), key_hash: secret.hash.to_hex() };
    let stored: ApiKey = api.bus.request(&command(&call, regenerate), api.settings.command_timeout).await?;
    api.keys.evict(stored.id);
    with_secret(stored, secret, StatusCode::OK)
}

/// `DELETE /api-keys/{id}`.
pub(crate) async fn delete(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let id = not_itself(&call, call.id("id")?)?;
    let deleted: readside::Deleted =
        api.bus.request(&command(&call, DeleteApiKey { key_id: id }), api.settings.command_timeout).await?;
    api.keys.evict(deleted.id);
    Ok(Answer::ok(deleted))
}
