//! Integrations and credentials: EVCare integrations (clientId/clientSecret, access bundles,
//! federated identities) and Levy Fleets partner API keys.
//!
//! Secrets never travel: the edge generates them, shows them once to the caller, and puts only
//! their SHA-256 hash in a command.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::message;

/// EVCare access bundles: named sets of permissions an integration or key is granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessBundle {
    /// Organization-wide management endpoints and subordinate account operations.
    OrganizationAccess,
    /// Fleet-scoped vehicles, maintenance, drivers and tickets.
    FleetManagerAccess,
    /// Client/driver self-service, tickets and the sign-in bridge.
    ClientAccess,
    /// Union of all capabilities, including embed portal and federated sign-in.
    AllAccess,
}

/// Levy Fleets partner API permissions, spelled as the seed spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
pub enum Permission {
    /// List and view vehicles.
    #[serde(rename = "vehicles:read")]
    VehiclesRead,
    /// Update vehicle status.
    #[serde(rename = "vehicles:write")]
    VehiclesWrite,
    /// Send commands to vehicles (beyond the seed: INVERS recommends that a client allowed vehicle
    /// edits need not be allowed to unlock them).
    #[serde(rename = "vehicles:commands")]
    VehiclesCommands,
    /// Command vehicles in `maintenance` (beyond the seed: unlocking a car in the workshop is a
    /// decision for those who hold it).
    #[serde(rename = "vehicles:maintenance")]
    VehiclesMaintenance,
    /// List and view rides.
    #[serde(rename = "rides:read")]
    RidesRead,
    /// Start, pause, resume, end rides.
    #[serde(rename = "rides:write")]
    RidesWrite,
    /// List and view customers.
    #[serde(rename = "customers:read")]
    CustomersRead,
    /// Block/unblock customers.
    #[serde(rename = "customers:write")]
    CustomersWrite,
    /// View a customer's wallet balance.
    #[serde(rename = "wallet:read")]
    WalletRead,
    /// Credit/debit customer wallets.
    #[serde(rename = "wallet:write")]
    WalletWrite,
    /// List and view zones.
    #[serde(rename = "zones:read")]
    ZonesRead,
    /// View pricing configuration.
    #[serde(rename = "pricing:read")]
    PricingRead,
    /// List and view webhooks.
    #[serde(rename = "webhooks:read")]
    WebhooksRead,
    /// Create, update, delete webhooks.
    #[serde(rename = "webhooks:write")]
    WebhooksWrite,
}

impl Permission {
    /// Every permission, in the seed's order (ours beside its kin).
    pub const ALL: [Permission; 14] = [
        Permission::VehiclesRead,
        Permission::VehiclesWrite,
        Permission::VehiclesCommands,
        Permission::VehiclesMaintenance,
        Permission::RidesRead,
        Permission::RidesWrite,
        Permission::CustomersRead,
        Permission::CustomersWrite,
        Permission::WalletRead,
        Permission::WalletWrite,
        Permission::ZonesRead,
        Permission::PricingRead,
        Permission::WebhooksRead,
        Permission::WebhooksWrite,
    ];
}

/// Which subaccounts a key may act on (Levy Fleets key scopes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum KeyScope {
    /// Limited to one subaccount.
    Subaccount {
        /// The subaccount.
        subaccount_id: Uuid,
    },
    /// Several subaccounts, chosen per request with `X-Subaccount-Id`.
    Global {
        /// The subaccounts the key may target.
        allowed_subaccount_ids: Vec<Uuid>,
    },
}

impl KeyScope {
    /// The subaccounts the key reads when it names none: its one, or those it lists; `None`: the
    /// whole organisation (a global key that lists none).
    pub fn subaccounts(&self) -> Option<Vec<Uuid>> {
        match self {
            KeyScope::Subaccount { subaccount_id } => Some(vec![*subaccount_id]),
            KeyScope::Global { allowed_subaccount_ids } if allowed_subaccount_ids.is_empty() => None,
            KeyScope::Global { allowed_subaccount_ids } => Some(allowed_subaccount_ids.clone()),
        }
    }
}

/// What a webhook endpoint or a subscriber queue may receive: what the caller that made it could
/// read through the API (its subaccounts and its read permissions), recorded when it was made,
/// and narrowed later as the key that made it is narrowed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Audience {
    /// The subaccounts it hears of (besides the organisation's own things); `None`: all of them.
    pub subaccount_ids: Option<Vec<Uuid>>,
    /// The permissions it holds; an event needs the one that reads it.
    pub permissions: Vec<Permission>,
}

impl Audience {
    /// Everything of the organisation: what receivers made before audiences were recorded had.
    pub fn everything() -> Self {
        Self { subaccount_ids: None, permissions: Permission::ALL.to_vec() }
    }

    /// Whether something about `reach` is for it.
    pub fn admits(&self, reach: crate::Reach) -> bool {
        match (reach, &self.subaccount_ids) {
            (crate::Reach::Organisation, _) | (_, None) => true,
            (crate::Reach::Subaccount(id), Some(ids)) => ids.contains(&id),
        }
    }

    /// Whether it may receive events of type `event`: one offered to partners whose permission it
    /// holds.
    pub fn reads(&self, event: &str) -> bool {
        crate::descriptor_of(event).and_then(|d| d.read).is_some_and(|needed| self.permissions.contains(&needed))
    }

    /// Whether a caller reading `subaccounts` (`None`: all) reads everything it may receive.
    pub fn within(&self, subaccounts: Option<&[Uuid]>) -> bool {
        match (subaccounts, &self.subaccount_ids) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(reader), Some(ids)) => ids.iter().all(|id| reader.contains(id)),
        }
    }

    /// Whether it reads everything a receiver with audience `other`, taking `events`, may receive:
    /// `other`'s subaccounts are among its own, and it reads each of those event types (types
    /// offered to no partner carry nothing of a subaccount's).
    pub fn covers<'e>(&self, other: &Audience, mut events: impl Iterator<Item = &'e str>) -> bool {
        let offered = |event: &str| crate::descriptor_of(event).is_some_and(|d| d.read.is_some());
        other.within(self.subaccount_ids.as_deref()) && events.all(|event| !offered(event) || self.reads(event))
    }

    /// What it may still receive once its maker reads only `maker`: both narrowed to what they share.
    pub fn narrowed_to(&self, maker: &Audience) -> Audience {
        let subaccount_ids = match (&self.subaccount_ids, &maker.subaccount_ids) {
            (None, other) | (other, None) => other.clone(),
            (Some(mine), Some(theirs)) => Some(mine.iter().filter(|id| theirs.contains(id)).copied().collect()),
        };
        let permissions = self.permissions.iter().filter(|p| maker.permissions.contains(p)).copied().collect();
        Audience { subaccount_ids, permissions }
    }
}

/// Per-key request limits per window (Levy Fleets defaults: 60/min, 1,000/h, 10,000/day).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RateLimits {
    /// Requests per minute.
    pub per_minute: u32,
    /// Requests per hour.
    pub per_hour: u32,
    /// Requests per day.
    pub per_day: u32,
}

/// Admin creates an integration; the edge already generated `clientId` and the secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateIntegration {
    /// New integration's id.
    pub integration_id: Uuid,
    /// Display name.
    pub name: String,
    /// Public client id, `evc_ci_…`.
    pub client_id: String,
    /// SHA-256 (hex) of the one-time client secret `evc_cs_…`.
    pub client_secret_hash: String,
    /// Granted access bundle.
    pub bundle: AccessBundle,
    /// Optional endpoint allow-list narrowing the bundle.
    pub allowed_endpoints: Vec<String>,
}
message!(CreateIntegration, "integration.create", (1, 0), Command(Integrations), Integrations, |m| Some(
    m.integration_id.to_string()
));

/// Replace an integration's secret; the old one stays valid for a grace period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotateIntegrationSecret {
    /// Integration.
    pub integration_id: Uuid,
    /// SHA-256 (hex) of the new secret.
    pub new_secret_hash: String,
    /// How long the previous secret keeps working.
    pub grace_seconds: u32,
}
message!(RotateIntegrationSecret, "integration.rotate_secret", (1, 0), Command(Integrations), Integrations, |m| Some(
    m.integration_id.to_string()
));

/// Revoke an integration: its secrets and every open token die at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevokeIntegration {
    /// Integration.
    pub integration_id: Uuid,
    /// Why, for the audit log.
    pub reason: String,
}
message!(RevokeIntegration, "integration.revoke", (1, 0), Command(Integrations), Integrations, |m| Some(
    m.integration_id.to_string()
));

/// Enable or disable an integration without revoking it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SetIntegrationActive {
    /// Integration.
    pub integration_id: Uuid,
    /// New state.
    pub active: bool,
}
message!(SetIntegrationActive, "integration.set_active", (1, 0), Command(Integrations), Integrations, |m| Some(
    m.integration_id.to_string()
));

/// Map an external user to a voltbus user and open a one-time session code (`/auth/exchange`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeExternalIdentity {
    /// Integration the user comes through.
    pub integration_id: Uuid,
    /// The user's id at the partner.
    pub external_subject: String,
    /// The user's e-mail.
    pub email: String,
    /// Requested role (`CLIENT`, `FLEET_MANAGER`, …).
    pub role_hint: Option<String>,
    /// SHA-256 (hex) of the `evc_session_…` code handed to the browser.
    pub session_code_hash: String,
    /// When the code stops working.
    pub session_code_expires_at: DateTime<Utc>,
}
message!(ExchangeExternalIdentity, "integration.exchange_identity", (1, 0), Command(Integrations), Integrations, |m| {
    Some(m.integration_id.to_string())
});

/// Redeem a one-time `evc_session_…` code for a browser session of the portal
/// (`/auth/session`): the code works once, before it expires.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedeemSessionCode {
    /// SHA-256 (hex) of the code presented.
    pub session_code_hash: String,
    /// SHA-256 (hex) of the session token the browser gets as a cookie.
    pub session_hash: String,
    /// When the browser session ends.
    pub session_expires_at: DateTime<Utc>,
}
message!(RedeemSessionCode, "integration.redeem_session", (1, 0), Command(Integrations), Integrations, |_m| None);

/// An integration exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationCreated {
    /// Integration.
    pub integration_id: Uuid,
    /// Display name.
    pub name: String,
    /// Public client id.
    pub client_id: String,
    /// Granted bundle.
    pub bundle: AccessBundle,
}
message!(IntegrationCreated, "integration.created", (1, 0), Event, Integrations, |m| Some(
    m.integration_id.to_string()
));

/// An integration's secret was replaced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationSecretRotated {
    /// Integration.
    pub integration_id: Uuid,
    /// Until when the previous secret is still accepted.
    pub previous_secret_valid_until: DateTime<Utc>,
}
message!(IntegrationSecretRotated, "integration.secret_rotated", (1, 0), Event, Integrations, |m| Some(
    m.integration_id.to_string()
));

/// An integration was revoked; every edge drops its tokens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationRevoked {
    /// Integration.
    pub integration_id: Uuid,
    /// When.
    pub revoked_at: DateTime<Utc>,
}
message!(IntegrationRevoked, "integration.revoked", (1, 0), Event, Integrations, |m| Some(
    m.integration_id.to_string()
));

/// An integration was enabled or disabled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IntegrationActiveChanged {
    /// Integration.
    pub integration_id: Uuid,
    /// New state.
    pub active: bool,
}
message!(IntegrationActiveChanged, "integration.active_changed", (1, 0), Event, Integrations, |m| Some(
    m.integration_id.to_string()
));

/// An external identity is mapped to a voltbus user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExternalIdentityLinked {
    /// Integration.
    pub integration_id: Uuid,
    /// The partner's id for the user.
    pub external_subject: String,
    /// Our user.
    pub user_id: Uuid,
    /// True when this exchange created the user.
    pub created: bool,
}
message!(ExternalIdentityLinked, "integration.identity_linked", (1, 0), Event, Integrations, |m| Some(
    m.user_id.to_string()
));

/// How an organisation's partners see voltbus where they came from another platform and keep
/// their code: the webhook signature header's name and the API keys' prefix. Absent: voltbus's
/// (`X-Voltbus-Signature`, the instance's `partner.key_prefix`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CompatibilityProfile {
    /// The header carrying the seed's `t=…,v1=…` signature (`X-Levy-Signature` for Levy's partners).
    pub signature_header: Option<String>,
    /// The prefix of new keys, `<prefix>_pk_…` (`lf` for Levy's partners): 2 to 8 lower-case letters.
    pub key_prefix: Option<String>,
}

impl CompatibilityProfile {
    /// Levy Fleets' (the seed's own names): `X-Levy-Signature`, `lf_pk_…` keys.
    pub fn levy() -> Self {
        Self { signature_header: Some("X-Levy-Signature".into()), key_prefix: Some("lf".into()) }
    }

    /// Why the profile cannot be used, if it cannot: a header name `X-…-Signature` of letters,
    /// digits and `-` (64 at most), a prefix of 2 to 8 lower-case letters.
    pub fn check(&self) -> Result<(), String> {
        if let Some(name) = &self.signature_header {
            let shaped = name.len() <= 64
                && name.get(..2).is_some_and(|start| start.eq_ignore_ascii_case("x-"))
                && name.to_ascii_lowercase().ends_with("-signature")
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !shaped {
                return Err(format!("signature header `{name}`: X-…-Signature, letters, digits and `-`"));
            }
        }
        if let Some(prefix) = &self.key_prefix
            && !((2..=8).contains(&prefix.len()) && prefix.bytes().all(|b| b.is_ascii_lowercase()))
        {
            return Err(format!("key prefix `{prefix}`: 2 to 8 lower-case letters"));
        }
        Ok(())
    }
}

/// Set an organisation's compatibility profile (the operator's: command line and console).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetCompatibilityProfile {
    /// The profile, whole: what is absent goes back to voltbus's.
    pub profile: CompatibilityProfile,
}
message!(SetCompatibilityProfile, "organisation.set_profile", (1, 0), Command(Integrations), Integrations, |_m| None);

/// Create a partner API key (`<prefix>_pk_…`); the edge keeps the key itself and sends its hash.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateApiKey {
    /// New key's id.
    pub key_id: Uuid,
    /// Display name.
    pub name: String,
    /// First 12 characters of the key, for display.
    pub display_prefix: String,
    /// SHA-256 (hex) of the whole key.
    pub key_hash: String,
    /// Granted permissions.
    pub permissions: Vec<Permission>,
    /// Subaccount scope.
    #[serde(flatten)]
    pub scope: KeyScope,
    /// Request limits.
    pub rate_limits: RateLimits,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether the key may manage the organisation's keys and read its request log.
    #[serde(default)]
    pub admin: bool,
}
message!(CreateApiKey, "api_key.create", (1, 1), Command(Integrations), Integrations, |m| Some(m.key_id.to_string()));

/// Replace a key's secret; the old key is dead at once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegenerateApiKey {
    /// Key.
    pub key_id: Uuid,
    /// Display prefix of the new key.
    pub display_prefix: String,
    /// SHA-256 (hex) of the new key.
    pub key_hash: String,
}
message!(RegenerateApiKey, "api_key.regenerate", (1, 0), Command(Integrations), Integrations, |m| Some(
    m.key_id.to_string()
));

/// Change a key's settings; fields left out stay as they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateApiKey {
    /// Key.
    pub key_id: Uuid,
    /// New display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New permissions (replacing the old set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<Permission>>,
    /// New subaccount scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<KeyScope>,
    /// New request limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limits: Option<RateLimits>,
    /// New expiry (see `clear_expiry` to remove it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Removes the expiry: the key no longer expires.
    #[serde(default)]
    pub clear_expiry: bool,
    /// Enables or disables the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}
message!(UpdateApiKey, "api_key.update", (1, 0), Command(Integrations), Integrations, |m| Some(m.key_id.to_string()));

/// Enable or disable a key; disabled keys get 401.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetApiKeyActive {
    /// Key.
    pub key_id: Uuid,
    /// New state.
    pub active: bool,
}
message!(SetApiKeyActive, "api_key.set_active", (1, 0), Command(Integrations), Integrations, |m| Some(
    m.key_id.to_string()
));

/// Delete a key for good.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteApiKey {
    /// Key.
    pub key_id: Uuid,
}
message!(DeleteApiKey, "api_key.delete", (1, 0), Command(Integrations), Integrations, |m| Some(m.key_id.to_string()));

/// One request the partner edge answered, for the request log (never a body, never a key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiRequestRecord {
    /// The edge's `request_id`.
    pub request_id: String,
    /// The key that made it, when one was recognised.
    pub key_id: Option<Uuid>,
    /// The integration that made it with a machine token (since 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integration_id: Option<Uuid>,
    /// Display prefix of the presented key, when it had a key's shape.
    pub key_prefix: Option<String>,
    /// HTTP method.
    pub method: String,
    /// The route template (`/api/partner/v1/api-keys/{id}`), or the raw path when none matched.
    pub route: String,
    /// Subaccount the request acted on.
    pub subaccount_id: Option<Uuid>,
    /// Response status.
    pub status: u16,
    /// Time from request head to response, in microseconds.
    pub latency_us: u64,
    /// When the request arrived.
    pub received_at: DateTime<Utc>,
}

/// A batch of answered requests of one organisation, for its request log and key usage counters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RecordApiRequests {
    /// The requests, oldest first.
    pub requests: Vec<ApiRequestRecord>,
}
message!(RecordApiRequests, "api_request.record", (1, 1), Command(RequestLog), Integrations, |_m| None);

/// What happened to a key, so every edge refreshes or drops what it cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyChange {
    /// Created.
    Created,
    /// Settings changed.
    Updated,
    /// Secret replaced.
    Regenerated,
    /// Enabled.
    Enabled,
    /// Disabled.
    Disabled,
    /// Deleted.
    Deleted,
}

/// A key changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ApiKeyChanged {
    /// Key.
    pub key_id: Uuid,
    /// What changed.
    pub change: ApiKeyChange,
}
message!(ApiKeyChanged, "api_key.changed", (1, 1), Event, Integrations, |m| Some(m.key_id.to_string()));

/// Give an integration its own AMQP queue of its tenant's events, and a broker user that may
/// read that queue and nothing else (INVERS Messaging API). The password never travels: only
/// the broker's salted SHA-256 of it, which the broker stores as it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateSubscription {
    /// The subscription's id.
    pub subscription_id: Uuid,
    /// Its name: `[a-z0-9-]`, 1 to 40; the queue is `voltbus.subscriber.{tenant}.{name}`.
    pub name: String,
    /// Event types delivered to the queue (`VehicleChanged`, `VehicleStateReceived`, …).
    pub events: Vec<String>,
    /// The broker user that reads the queue.
    pub username: String,
    /// `rabbit_password_hashing_sha256` of its password: base64(salt ‖ SHA-256(salt ‖ password)).
    pub password_hash: String,
    /// The partner key that created it, whose narrowing narrows it (since 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<Uuid>,
    /// What its maker could read, and so what its queue is bound to; none (before 1.1): the whole
    /// organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<Audience>,
}
message!(CreateSubscription, "subscription.create", (1, 1), Command(Subscriptions), Integrations, |m| Some(
    m.subscription_id.to_string()
));

/// Remove a subscription: its queue, its bindings and its broker user.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteSubscription {
    /// The subscription.
    pub subscription_id: Uuid,
}
message!(DeleteSubscription, "subscription.delete", (1, 0), Command(Subscriptions), Integrations, |m| Some(
    m.subscription_id.to_string()
));
