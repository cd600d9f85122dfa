//! The webhook routes (`webhooks:read`, `webhooks:write`): endpoints, their secrets, the
//! delivery log, replays and test events. Reads come from the database; every change is a
//! command answered by the `webhooks` consumers. A new signing secret is made here, shown once,
//! and travels and rests only sealed by the vault.
//!
//! An endpoint receives what the caller that made it reads (its subaccounts, and the read
//! permission of each event type); a caller sees, changes and replays only endpoints within its
//! own reach (404 otherwise), and their logs only as far as events about its subaccounts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use http::StatusCode;
use outbound::ssrf::UrlPolicy;
use readside::webhooks::deliveries::{self, Attempt, Delivery, Filter};
use readside::webhooks::{Endpoint, StoredEndpoint, endpoints};
use schemars::JsonSchema;
use schemas::Sensitive;
use schemas::integrations::Permission;
use schemas::webhooks::{
    CreateWebhookEndpoint, DeleteWebhookEndpoint, ReplayWebhookDeliveries, RotateWebhookSecret, SendTestWebhook,
    UpdateWebhookEndpoint,
};
use schemas::webhooks::{EVENT_TYPES, OPERATIONAL_EVENTS, is_operational};
use serde::{Deserialize, Serialize};
use signatures::Secret;
use signatures::Vault;
use uuid::Uuid;

use crate::edge::body::parse_body;
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::auth::Caller;
use crate::edge::partner::routes::Call;
use crate::edge::query::page_and_filters;

/// What the edge needs to register endpoints: the vault secrets are sealed with, and the URL rules.
#[derive(Clone, Debug)]
pub struct WebhookSetup {
    /// Seals new signing secrets.
    pub vault: Vault,
    /// Which URLs may be registered.
    pub policy: UrlPolicy,
}

/// Longest grace period of a rotated-out secret: 7 days.
const MAX_GRACE_SECONDS: u32 = 7 * 24 * 3600;
/// Headers a partner may not set: ours, or the connection's.
const RESERVED_HEADERS: [&str; 9] = [
    "host",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "user-agent",
    "x-voltbus-signature",
    "webhook-id",
    "webhook-timestamp",
];

/// `POST /webhooks`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewEndpoint {
    /// HTTPS URL that receives the deliveries.
    #[schemars(length(min = 1, max = 2000))]
    url: String,
    /// Event types to receive (`ride.ended`, …, or `*` for all).
    #[schemars(length(min = 1, max = 50))]
    events: Vec<String>,
    /// Extra headers sent with every delivery (at most 20).
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Free text, up to 500 characters.
    #[schemars(length(max = 500))]
    description: Option<String>,
    /// Whether deliveries are made (default true).
    active: Option<bool>,
    /// Each event only after the previous one succeeded or finally failed (default false).
    #[serde(default)]
    ordered: bool,
    /// Most deliveries per second, 1 to 10,000; none by default.
    #[schemars(range(min = 1, max = 10_000))]
    rate_limit_per_second: Option<u32>,
}

/// `PATCH /webhooks/{id}`: what is given changes.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EndpointChanges {
    /// New URL.
    #[schemars(length(min = 1, max = 2000))]
    url: Option<String>,
    /// New subscriptions.
    #[schemars(length(min = 1, max = 50))]
    events: Option<Vec<String>>,
    /// New headers (replace the old ones).
    headers: Option<BTreeMap<String, String>>,
    /// New description.
    #[schemars(length(max = 500))]
    description: Option<String>,
    /// Enable or disable.
    active: Option<bool>,
    /// Ordered delivery on or off.
    ordered: Option<bool>,
    /// New rate limit; 0 removes it.
    #[schemars(range(min = 0, max = 10_000))]
    rate_limit_per_second: Option<u32>,
}

/// `POST /webhooks/{id}/rotate-secret`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rotation {
    /// Seconds the old secret keeps signing (default 86,400; at most 604,800).
    #[schemars(range(min = 0, max = 604_800))]
    grace_period_seconds: Option<u32>,
}

/// `POST /webhooks/{id}/replay`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplaySince {
    /// Every failed delivery created at or after this time is sent again.
    since: DateTime<Utc>,
}

/// An endpoint with its signing secret, shown once.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct EndpointWithSecret {
    #[serde(flatten)]
    endpoint: Endpoint,
    /// The signing secret (`whsec_…`): shown only in this answer.
    secret: Option<String>,
}

/// What a replay or a test queued.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct Queued {
    /// The new deliveries.
    #[serde(default)]
    delivery_ids: Vec<Uuid>,
    /// How many.
    #[serde(default)]
    replayed: usize,
}

/// A test event sent.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub(crate) struct TestSent {
    /// The test event's id.
    event_id: String,
    /// Its delivery.
    delivery_id: Option<Uuid>,
}

/// Filters of the delivery list.
pub(crate) const DELIVERY_FILTERS: &[crate::edge::router::QueryFilter] = &[crate::edge::router::QueryFilter {
    name: "status",
    values: &["pending", "succeeded", "failed"],
    description: "Only deliveries in this state.",
}];
/// Filters of the attempt list.
pub(crate) const ATTEMPT_FILTERS: &[crate::edge::router::QueryFilter] = &[
    crate::edge::router::QueryFilter {
        name: "status",
        values: &["succeeded", "failed", "gave_up"],
        description: "Only attempts with this outcome.",
    },
    crate::edge::router::QueryFilter { name: "event_id", values: &[], description: "Only attempts of this event." },
];
/// Filters of the per-event delivery list.
pub(crate) const EVENT_FILTERS: &[crate::edge::router::QueryFilter] = &[
    crate::edge::router::QueryFilter { name: "event_id", values: &[], description: "The event (`evt_…`); required." },
    crate::edge::router::QueryFilter {
        name: "status",
        values: &["pending", "succeeded", "failed"],
        description: "Only deliveries in this state.",
    },
];

async fn check_url(setup: &WebhookSetup, url: &str) -> Result<(), ApiError> {
    let target = setup.policy.check(url).map_err(|e| ApiError::invalid("url", e.to_string()))?;
    setup.policy.resolve(&target).await.map_err(|e| ApiError::invalid("url", e.to_string()))?;
    Ok(())
}

/// Known event types, each readable by the caller (`*`: those it reads).
fn check_events(caller: &Caller, events: &[String]) -> Result<(), ApiError> {
    if events.is_empty() {
        return Err(ApiError::invalid("events", "subscribe to at least one event type"));
    }
    for event in events {
        if event == "*" || is_operational(event) {
            continue;
        }
        if !EVENT_TYPES.contains(&event.as_str()) {
            return Err(ApiError::invalid("events", format!("unknown event type `{event}`")).details(
                serde_json::json!({ "field": "events", "known": EVENT_TYPES, "operational": OPERATIONAL_EVENTS }),
            ));
        }
        caller.may_receive(event)?;
    }
    Ok(())
}

fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if headers.len() > 20 {
        return Err(ApiError::invalid("headers", "at most 20 headers"));
    }
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        let valid = http::HeaderName::from_bytes(name.as_bytes()).is_ok()
            && http::HeaderValue::from_str(value).is_ok()
            && value.len() <= 1000;
        if !valid {
            return Err(ApiError::invalid("headers", format!("`{name}` is not a valid header")));
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("webhook-") {
            return Err(ApiError::invalid("headers", format!("`{name}` is set by voltbus")));
        }
    }
    Ok(())
}

fn check_text(description: Option<&str>) -> Result<(), ApiError> {
    match description {
        Some(text) if text.chars().count() > 500 => Err(ApiError::invalid("description", "at most 500 characters")),
        _ => Ok(()),
    }
}

fn check_rate(rate: Option<u32>, zero_allowed: bool) -> Result<(), ApiError> {
    match rate {
        Some(0) if zero_allowed => Ok(()),
        Some(r) if (1..=10_000).contains(&r) => Ok(()),
        Some(_) => Err(ApiError::invalid("rate_limit_per_second", "rate_limit_per_second must be 1 to 10000")),
        None => Ok(()),
    }
}

/// A fresh secret and its sealed form.
fn new_secret(setup: &WebhookSetup) -> Result<(Secret, Sensitive), ApiError> {
    let secret = Secret::generate().map_err(|error| {
        tracing::error!(%error, "could not make a webhook secret");
        ApiError::internal()
    })?;
    let sealed = setup.vault.seal(secret.expose()).map_err(|error| {
        tracing::error!(%error, "could not seal a webhook secret");
        ApiError::internal()
    })?;
    Ok((secret, Sensitive(sealed)))
}

fn with_secret(endpoint: Endpoint, secret: &Secret, status: StatusCode) -> Answer {
    Answer::with_status(status, EndpointWithSecret { endpoint, secret: Some(secret.expose().to_owned()) })
        .withholding("secret")
}

/// Whether the caller reads everything `stored` may receive.
fn sees(caller: &Caller, stored: &StoredEndpoint) -> bool {
    caller.sees_receiver(&stored.audience, stored.receivable())
}

/// Endpoint `{id}` as stored, if the caller reads everything it may receive.
async fn find_stored(api: &PartnerApi, call: &Call) -> Result<StoredEndpoint, ApiError> {
    let id = call.id("id")?;
    endpoints::find(&api.database, call.caller.tenant.as_str(), id)
        .await
        .map_err(db_error)?
        .filter(|stored| sees(&call.caller, stored))
        .ok_or_else(|| ApiError::not_found(format!("no webhook endpoint {id}")))
}

/// Endpoint `{id}`, if the caller reads everything it may receive.
async fn find(api: &PartnerApi, call: &Call) -> Result<Endpoint, ApiError> {
    find_stored(api, call).await.map(|stored| stored.endpoint)
}

/// The endpoints the caller sees, oldest first.
async fn seen(api: &PartnerApi, caller: &Caller) -> Result<Vec<Endpoint>, ApiError> {
    let all = endpoints::list(&api.database, caller.tenant.as_str()).await.map_err(db_error)?;
    Ok(all.into_iter().filter(|stored| sees(caller, stored)).map(|stored| stored.endpoint).collect())
}

/// `GET /webhooks`.
pub(crate) async fn list(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, _) = page_and_filters(call.query.as_deref(), &[])?;
    Ok(Answer::page_of(seen(api, &call.caller).await?, page))
}

/// `GET /webhooks/{id}`.
pub(crate) async fn get(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    Ok(Answer::ok(find(api, &call).await?))
}

/// `POST /webhooks`.
pub(crate) async fn create(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: NewEndpoint = parse_body(&call.body)?;
    check_events(&call.caller, &request.events)?;
    check_headers(&request.headers)?;
    check_text(request.description.as_deref())?;
    check_rate(request.rate_limit_per_second, false)?;
    check_url(&api.webhooks, &request.url).await?;
    let (secret, sealed) = new_secret(&api.webhooks)?;
    let create = CreateWebhookEndpoint {
        endpoint_id: Uuid::now_v7(),
        url: request.url,
        events: request.events,
        headers: request.headers,
        description: request.description,
        active: request.active.unwrap_or(true),
        secret_ciphertext: sealed,
        ordered: request.ordered,
        rate_limit_per_second: request.rate_limit_per_second,
        integration_id: call.caller.integration().map(|claims| claims.integration_id),
        key_id: call.caller.key().map(|key| key.key.id),
        audience: Some(call.caller.audience()),
    };
    let stored: Endpoint = api.bus.request(&command(&call, create), api.settings.command_timeout).await?;
    Ok(with_secret(stored, &secret, StatusCode::CREATED))
}

/// `PATCH /webhooks/{id}`.
pub(crate) async fn update(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let changes: EndpointChanges = parse_body(&call.body)?;
    let current = find_stored(api, &call).await?;
    if let Some(events) = &changes.events {
        check_events(&call.caller, events)?;
    }
    if let Some(headers) = &changes.headers {
        check_headers(headers)?;
    }
    check_text(changes.description.as_deref())?;
    check_rate(changes.rate_limit_per_second, true)?;
    if let Some(url) = &changes.url {
        check_url(&api.webhooks, url).await?;
    }
    // Whoever changes an endpoint (its URL, its events) could point it at itself: from now on
    // it receives no more than the one who changed it reads, too.
    let narrowed = current.audience.narrowed_to(&call.caller.audience());
    let update = UpdateWebhookEndpoint {
        endpoint_id: current.endpoint.id,
        url: changes.url,
        events: changes.events,
        headers: changes.headers,
        description: changes.description,
        active: changes.active,
        ordered: changes.ordered,
        rate_limit_per_second: changes.rate_limit_per_second,
        audience: (narrowed != current.audience).then_some(narrowed),
    };
    let stored: Endpoint = api.bus.request(&command(&call, update), api.settings.command_timeout).await?;
    Ok(Answer::ok(stored))
}

/// `DELETE /webhooks/{id}`.
pub(crate) async fn delete(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let delete = DeleteWebhookEndpoint { endpoint_id: find(api, &call).await?.id };
    let deleted: readside::Deleted = api.bus.request(&command(&call, delete), api.settings.command_timeout).await?;
    Ok(Answer::ok(deleted))
}

/// `POST /webhooks/{id}/rotate-secret`.
pub(crate) async fn rotate(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let rotation: Rotation = if call.body.is_empty() { Rotation::default() } else { parse_body(&call.body)? };
    let grace = rotation.grace_period_seconds.unwrap_or(86_400);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::invalid("grace_period_seconds", format!("at most {MAX_GRACE_SECONDS} seconds")));
    }
    let endpoint_id = find(api, &call).await?.id;
    let (secret, sealed) = new_secret(&api.webhooks)?;
    let rotate = RotateWebhookSecret { endpoint_id, secret_ciphertext: sealed, grace_seconds: grace };
    let stored: Endpoint = api.bus.request(&command(&call, rotate), api.settings.command_timeout).await?;
    Ok(with_secret(stored, &secret, StatusCode::OK))
}

/// `POST /webhooks/{id}/test`.
pub(crate) async fn test(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let event_id = schemas::webhooks::event_id(call.command_id);
    let test = SendTestWebhook { endpoint_id: find(api, &call).await?.id, event_id };
    let sent: TestSent = api.bus.request(&command(&call, test), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::ACCEPTED, sent))
}

/// The log's filter from the query, within what the caller reads.
fn filter_of(call: &Call, values: &[(&'static str, String)], endpoint_id: Option<Uuid>) -> Filter {
    let get = |name: &str| values.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
    let subaccounts = call.caller.fleets();
    let endpoint_ids = endpoint_id.map(|id| vec![id]);
    Filter { endpoint_ids, event_id: get("event_id"), status: get("status"), subaccounts }
}

/// `GET /webhooks/{id}/deliveries`.
pub(crate) async fn deliveries(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, values) = page_and_filters(call.query.as_deref(), DELIVERY_FILTERS)?;
    let endpoint = find(api, &call).await?;
    let filter = filter_of(&call, &values, Some(endpoint.id));
    let tenant = call.caller.tenant.as_str();
    let (items, total): (Vec<Delivery>, u64) =
        deliveries::list(&api.database, tenant, &filter, page.offset(), page.limit).await.map_err(db_error)?;
    Ok(Answer::list(items, page, total))
}

/// `GET /webhooks/{id}/attempts`.
pub(crate) async fn attempts(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, values) = page_and_filters(call.query.as_deref(), ATTEMPT_FILTERS)?;
    let endpoint = find(api, &call).await?;
    let filter = filter_of(&call, &values, Some(endpoint.id));
    let tenant = call.caller.tenant.as_str();
    let (items, total): (Vec<Attempt>, u64) =
        deliveries::attempts(&api.database, tenant, &filter, page.offset(), page.limit).await.map_err(db_error)?;
    Ok(Answer::list(items, page, total))
}

/// `GET /webhook-deliveries?event_id=…`: one event's deliveries to every endpoint.
pub(crate) async fn event_deliveries(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let (page, values) = page_and_filters(call.query.as_deref(), EVENT_FILTERS)?;
    let mut filter = filter_of(&call, &values, None);
    if filter.event_id.is_none() {
        return Err(ApiError::invalid("event_id", "name the event: ?event_id=evt_…"));
    }
    let tenant = call.caller.tenant.as_str();
    let reads_everything = filter.subaccounts.is_none() && Permission::ALL.iter().all(|p| call.caller.may(*p));
    if !reads_everything {
        // Only to the endpoints the caller sees (one that reads everything sees those since deleted too).
        filter.endpoint_ids = Some(seen(api, &call.caller).await?.iter().map(|endpoint| endpoint.id).collect());
    }
    let (items, total): (Vec<Delivery>, u64) =
        deliveries::list(&api.database, tenant, &filter, page.offset(), page.limit).await.map_err(db_error)?;
    Ok(Answer::list(items, page, total))
}

/// `POST /webhooks/{id}/deliveries/{delivery_id}/replay`.
pub(crate) async fn replay_one(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let replay = ReplayWebhookDeliveries {
        endpoint_id: find(api, &call).await?.id,
        delivery_id: Some(call.id("delivery_id")?),
        failed_since: None,
    };
    let queued: Queued = api.bus.request(&command(&call, replay), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::ACCEPTED, queued))
}

/// `POST /webhooks/{id}/replay`.
pub(crate) async fn replay_failed(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let since: ReplaySince = parse_body(&call.body)?;
    let endpoint_id = find(api, &call).await?.id;
    let replay = ReplayWebhookDeliveries { endpoint_id, delivery_id: None, failed_since: Some(since.since) };
    let queued: Queued = api.bus.request(&command(&call, replay), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::ACCEPTED, queued))
}
