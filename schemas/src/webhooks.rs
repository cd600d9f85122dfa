//! Outbound webhooks: endpoints partners register and the deliveries made to them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::message;
use crate::{Message, Sensitive, customers, rides, vehicles};

/// Register an endpoint. The signing secret travels only encrypted with the platform key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateWebhookEndpoint {
    /// New endpoint's id.
    pub endpoint_id: Uuid,
    /// HTTPS URL (plain HTTP only for allow-listed hosts).
    pub url: String,
    /// Subscribed event types (`ride.ended`, …).
    pub events: Vec<String>,
    /// Extra headers sent with every delivery.
    pub headers: BTreeMap<String, String>,
    /// Free text.
    pub description: Option<String>,
    /// Whether deliveries are made.
    pub active: bool,
    /// Signing secret, encrypted at rest and in flight.
    pub secret_ciphertext: Sensitive,
    /// Each event only after the previous one succeeded or finally failed.
    #[serde(default)]
    pub ordered: bool,
    /// Most deliveries per second; more wait without using up attempts. None: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    /// The integration that created it with its machine token, whose usage its deliveries are
    /// (since 1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<Uuid>,
    /// The partner key that created it, whose narrowing narrows it (since 1.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Uuid>,
    /// What its maker could read, and so what it may receive; none (before 1.3): the whole
    /// organisation, every event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<crate::integrations::Audience>,
}
message!(CreateWebhookEndpoint, "webhook_endpoint.create", (1, 3), Command(Webhooks), Webhooks, |m| Some(
    m.endpoint_id.to_string()
));

/// Change an endpoint; `null` fields are left as they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateWebhookEndpoint {
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// New URL.
    pub url: Option<String>,
    /// New subscriptions.
    pub events: Option<Vec<String>>,
    /// New headers.
    pub headers: Option<BTreeMap<String, String>>,
    /// New description.
    pub description: Option<String>,
    /// New state.
    pub active: Option<bool>,
    /// New ordering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordered: Option<bool>,
    /// New rate limit; 0 removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_second: Option<u32>,
    /// What it may receive from now on, when the change narrows it (whoever changes an
    /// endpoint's address or events reads no less than what it receives) (since 1.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<crate::integrations::Audience>,
}
message!(UpdateWebhookEndpoint, "webhook_endpoint.update", (1, 2), Command(Webhooks), Webhooks, |m| Some(
    m.endpoint_id.to_string()
));

/// Delete an endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteWebhookEndpoint {
    /// Endpoint.
    pub endpoint_id: Uuid,
}
message!(DeleteWebhookEndpoint, "webhook_endpoint.delete", (1, 0), Command(Webhooks), Webhooks, |m| Some(
    m.endpoint_id.to_string()
));

/// Replace an endpoint's secret; the old one keeps signing for a grace period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RotateWebhookSecret {
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// New secret, encrypted.
    pub secret_ciphertext: Sensitive,
    /// Seconds the old secret stays live.
    pub grace_seconds: u32,
}
message!(RotateWebhookSecret, "webhook_endpoint.rotate_secret", (1, 0), Command(Webhooks), Webhooks, |m| Some(
    m.endpoint_id.to_string()
));

/// Make one attempt of one delivery (the dispatcher's work item). The payload stays in the
/// database: the command names the attempt, so a duplicate of it has no second effect.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeliverWebhook {
    /// Delivery.
    pub delivery_id: Uuid,
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// Stable across retries, for the receiver's de-duplication (`evt_…`).
    pub event_id: String,
    /// Event type.
    pub event: String,
    /// 1-based attempt this command is for.
    pub attempt: u32,
}
// The aggregate is the delivery: attempts of different deliveries are independent (an ordered
// endpoint is sequenced by the database), so neither the outbox nor a consumer lane serialises
// one endpoint's deliveries behind each other.
message!(DeliverWebhook, "webhook.deliver", (2, 0), Command(WebhookDeliveries), Webhooks, |m| Some(
    m.delivery_id.to_string()
));

/// Send a `webhook.test` event to one endpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SendTestWebhook {
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// The test event's id (`evt_…`), chosen by the edge so it can answer with it.
    pub event_id: String,
}
message!(SendTestWebhook, "webhook.test", (1, 0), Command(Webhooks), Webhooks, |m| Some(m.endpoint_id.to_string()));

/// Replay one delivery, or every failed delivery since a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplayWebhookDeliveries {
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// One delivery, or
    pub delivery_id: Option<Uuid>,
    /// all failed since.
    pub failed_since: Option<DateTime<Utc>>,
}
message!(ReplayWebhookDeliveries, "webhook.replay", (1, 0), Command(Webhooks), Webhooks, |m| Some(
    m.endpoint_id.to_string()
));

/// What happened to an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EndpointChange {
    /// Registered.
    Created,
    /// Changed.
    Updated,
    /// Secret replaced.
    SecretRotated,
    /// Deleted.
    Deleted,
}

/// An endpoint changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookEndpointChanged {
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// What.
    pub change: EndpointChange,
}
message!(WebhookEndpointChanged, "webhook_endpoint.changed", (1, 0), Event, Webhooks, |m| Some(
    m.endpoint_id.to_string()
));

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// 2xx.
    Succeeded,
    /// Failed; another attempt follows.
    Failed,
    /// Failed and it was the last attempt.
    GaveUp,
}

/// One delivery attempt, for the delivery log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WebhookDeliveryAttempted {
    /// Delivery.
    pub delivery_id: Uuid,
    /// Endpoint.
    pub endpoint_id: Uuid,
    /// Event id.
    pub event_id: String,
    /// 1-based attempt number.
    pub attempt: u32,
    /// Result.
    pub outcome: AttemptOutcome,
    /// HTTP status, if the endpoint answered.
    pub status_code: Option<u16>,
    /// Round-trip time.
    pub latency_ms: u32,
    /// First bytes of the response or the connection error.
    pub response_snippet: Option<String>,
}
message!(WebhookDeliveryAttempted, "webhook.delivery_attempted", (1, 0), Event, Webhooks, |m| Some(
    m.delivery_id.to_string()
));

/// The seed's webhook event types, named by their catalogue events.
pub const EVENT_TYPES: [&str; 11] = [
    <rides::RideStarted as Message>::TYPE,
    <rides::RideEnded as Message>::TYPE,
    <rides::RidePaused as Message>::TYPE,
    <rides::RideResumed as Message>::TYPE,
    <customers::CustomerCreated as Message>::TYPE,
    <customers::CustomerUpdated as Message>::TYPE,
    <customers::CustomerBlocked as Message>::TYPE,
    <customers::CustomerUnblocked as Message>::TYPE,
    <vehicles::VehicleStatusChanged as Message>::TYPE,
    <vehicles::VehicleBatteryLow as Message>::TYPE,
    <vehicles::VehicleLocationUpdated as Message>::TYPE,
];

/// The test event's type: the command's own name.
pub const TEST_EVENT: &str = <SendTestWebhook as Message>::TYPE;

/// voltbus's own operational event types (as Svix names them), about an endpoint's deliveries.
pub const OPERATIONAL_EVENTS: [&str; 3] =
    ["endpoint.disabled", "message.attempt.exhausted", "message.attempt.recovered"];

/// Whether `event` is one of voltbus's own operational events.
pub fn is_operational(event: &str) -> bool {
    OPERATIONAL_EVENTS.contains(&event)
}

/// The id partners de-duplicate on: the bus event's own id, so every retry and every replay of
/// one event carries the same one.
pub fn event_id(id: Uuid) -> String {
    format!("evt_{}", id.simple())
}
