//! The mobile app's API (EVM seed) under `/api/v1`: sign-in by a code sent to the phone, the
//! profile, and the credentials of the app's realtime channel on NATS.
//!
//! - `POST /user/otp-request {phone}`: a code (random, six digits; a fixed one only when
//!   `mobile.dev_code` is set) goes to the phone through the [`SmsSender`]; only its keyed
//!   hash goes on the bus and into the database. The customers group keeps the limits.
//! - `POST /user/otp-check {phone, code}`: a session token (`vbs_…`, only its SHA-256 kept),
//!   the profile, and `nats: {servers, topic, user, pass}`: `user` is a user JWT signed by
//!   voltbus's NATS account, `pass` that user's nkey seed (connect with both, as a `.creds`
//!   file holds them). The server lets it subscribe to `topic` and below, nothing else, and
//!   publish nothing, for a day at most (`/user/me` renews them). Without NATS accounts
//!   configured, `nats` is null.
//! - `POST /user/me`, `POST /customer/update-notification-token {FCMToken}`,
//!   `POST /customer/update-info {name, email}`, `GET /devices/by-location` (the seed's box
//!   corners; west above east crosses the antimeridian), `POST /devices/:id/start` and
//!   `/finish` (the purchase's `{id}`): with `Authorization: Bearer <token>`. The sign-in's
//!   `device` is the charger of the caller's session in progress.
//!
//! Bodies are the seed's, bare; errors use the partner API's envelope (`error.code`). The
//! organisation is the one the `X-Tenant` header names, else `mobile.tenant`; a session knows
//! its own.

pub(crate) mod purchases;
mod routes;

pub(crate) use routes::{Action, MobileCall, routes};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bus::nats::accounts::{Accounts, Permissions};
use bytes::Bytes;
use chrono::Utc;
use http::{Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use schemars::JsonSchema;
use schemas::charging::{FinishCharging, StartCharging};
use schemas::customers::{RequestSignInCode, SignIn};
use schemas::{Envelope, Message, Sensitive, TenantId, subjects};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use serde_with::{DurationSeconds, serde_as};
use uuid::Uuid;

use crate::edge::commands::CommandBus;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{self, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::router::{Access, Found, Handler};

/// Where the mobile API lives.
pub const MOBILE_BASE: &str = "/api/v1";

/// `[mobile]`: the mobile app's API (EVM seed), read from the settings as they are (each duration
/// in the unit its name says). The sign-in limits are the customers group's, which keeps them; the
/// fields after `code_key` are no part of the section: the composition root sets them from their
/// own sections.
#[serde_as]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileSettings {
    /// The organisation of requests whose `X-Tenant` names none.
    pub tenant: Option<TenantId>,
    /// How long a sign-in code works.
    #[serde(rename = "code_ttl_seconds")]
    #[serde_as(as = "DurationSeconds<u64>")]
    pub code_ttl: Duration,
    /// Wrong guesses a code survives.
    pub code_max_attempts: u32,
    /// Codes a phone may ask for in an hour.
    pub codes_per_hour: u32,
    /// Codes a phone may ask for in a day.
    pub codes_per_day: u32,
    /// How long a session (and its NATS credentials) lasts.
    #[serde(rename = "session_ttl_seconds")]
    #[serde_as(as = "DurationSeconds<u64>")]
    pub session_ttl: Duration,
    /// A fixed code for development (e.g. the seed's `0000`); unset, codes are random. Never in
    /// production.
    pub dev_code: Option<Sensitive>,
    /// Base64 of 32 bytes keying the codes' hashes; unset: a key file in `data_dir`.
    pub code_key: Option<Sensitive>,
    /// What apps are told to connect to (`nats.servers`).
    #[serde(skip)]
    pub nats_servers: Option<String>,
    /// Wait for a command's reply (`partner.command_timeout_ms`).
    #[serde(skip)]
    pub command_timeout: Duration,
    /// Largest body (`partner.body_limit_bytes`).
    #[serde(skip)]
    pub body_limit: usize,
    /// A charger not heard from this long reads as `Offline` (`charging`).
    #[serde(skip)]
    pub charger_offline_after: Duration,
    /// QPay, when configured (`qpay`; Paystack is the partner API's, shared).
    #[serde(skip)]
    pub qpay: Option<crate::edge::providers::qpay::QpaySettings>,
}

impl Default for MobileSettings {
    fn default() -> Self {
        Self {
            tenant: None,
            code_ttl: Duration::from_secs(300),
            code_max_attempts: 5,
            codes_per_hour: 5,
            codes_per_day: 10,
            session_ttl: Duration::from_secs(30 * 86_400),
            dev_code: None,
            code_key: None,
            nats_servers: None,
            command_timeout: Duration::from_secs(10),
            body_limit: 64 * 1024,
            charger_offline_after: Duration::from_secs(300),
            qpay: None,
        }
    }
}

/// Sends a text message to a phone.
pub trait SmsSender: Send + Sync {
    /// Sends `text` to `phone`.
    fn send<'a>(
        &'a self,
        phone: &'a str,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// The default sender: writes the message to the log, for development and for operators who
/// have not connected an SMS provider yet. The message holds the code, so this log is as secret
/// as the codes; production plugs in a real sender.
pub struct LogSms;

impl SmsSender for LogSms {
    fn send<'a>(
        &'a self,
        phone: &'a str,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            tracing::info!(phone, text, "SMS (log sender: no SMS provider configured)");
            Ok(())
        })
    }
}

/// The mobile app's API.
pub struct MobileApi {
    pub(crate) settings: MobileSettings,
    pub(crate) database: DatabaseConnection,
    bus: Arc<CommandBus>,
    /// Keys the codes' hashes, so a copy of the database does not give the codes away.
    code_key: hmac::Key,
    accounts: Option<Arc<Accounts>>,
    sms: Arc<dyn SmsSender>,
    /// The external payment providers configured.
    pub(crate) providers: crate::edge::providers::Providers,
    /// Paystack, when configured, whose webhooks are checked against its key.
    pub(crate) paystack: Option<Arc<crate::edge::providers::paystack::Paystack>>,
    random: SystemRandom,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtpRequest {
    phone: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtpCheck {
    phone: String,
    code: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NotificationToken {
    #[serde(rename = "FCMToken")]
    fcm_token: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Info {
    name: Option<String>,
    email: Option<String>,
}

/// A signed-in caller.
pub(crate) struct Caller {
    pub(crate) tenant: TenantId,
    pub(crate) customer_id: Uuid,
    /// The customer, as read when the request came (its profile, whether it is blocked).
    pub(crate) customer: readside::customers::Customer,
    token: String,
    expires_at: chrono::DateTime<Utc>,
}

impl MobileApi {
    /// The API, sending commands on the partner API's bus; `code_key` keys the codes' hashes.
    pub fn new(
        settings: MobileSettings,
        database: DatabaseConnection,
        partner: &PartnerApi,
        code_key: &[u8; 32],
        accounts: Option<Arc<Accounts>>,
        sms: Arc<dyn SmsSender>,
    ) -> Arc<Self> {
        let paystack = partner.paystack.clone();
        let mut providers: Vec<Arc<dyn crate::edge::providers::Provider>> = Vec::new();
        if let Some(qpay) = settings.qpay.clone() {
            providers.push(Arc::new(crate::edge::providers::qpay::Qpay::new(qpay, partner.http.clone())));
        }
        if let Some(paystack) = &paystack {
            providers.push(Arc::clone(paystack) as Arc<dyn crate::edge::providers::Provider>);
        }
        Arc::new(Self {
            settings,
            database,
            bus: Arc::clone(&partner.bus),
            code_key: hmac::Key::new(hmac::HMAC_SHA256, code_key),
            accounts,
            sms,
            providers: crate::edge::providers::Providers::new(providers),
            paystack,
            random: SystemRandom::new(),
        })
    }

    /// Answers one request to a mobile route: the phone's session first, where the route needs
    /// one; the action's JSON, bare, or the error's envelope.
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        found: Found<'_>,
        request_id: &str,
    ) -> Response<Full<Bytes>> {
        let answer = async {
            let Handler::Mobile(action) = found.route.handler else { return Err(ApiError::internal()) };
            let caller = match found.route.access {
                Access::Session => Some(self.caller(&request).await?),
                _ => None,
            };
            action(self, MobileCall { caller, request, params: found.params }).await
        };
        match answer.await {
            Ok(body) => envelope::json_response(StatusCode::OK, body.to_string(), request_id),
            Err(error) => envelope::error_response(error, request_id),
        }
    }

    /// The organisation a request names, else the configured one; an error only matters to
    /// the routes that sign in.
    pub(crate) fn tenant_of(&self, request: &Request<Incoming>) -> Result<Result<TenantId, ApiError>, ApiError> {
        let named = request.headers().get("x-tenant").map(|v| v.to_str().map(str::to_owned));
        Ok(match named {
            Some(Ok(name)) => TenantId::new(&name).map_err(|e| ApiError::invalid("x-tenant", e.to_string())),
            Some(Err(_)) => Err(ApiError::invalid("x-tenant", "X-Tenant is not text")),
            None => self
                .settings
                .tenant
                .clone()
                .ok_or_else(|| ApiError::invalid("x-tenant", "name the organisation in X-Tenant")),
        })
    }

    /// The session a bearer token opens.
    async fn caller(&self, request: &Request<Incoming>) -> Result<Caller, ApiError> {
        let token = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| t.starts_with("vbs_") && t.len() < 200)
            .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <token> from otp-check"))?;
        let session = readside::sign_in::session(&self.database, &session_hash(token), Utc::now())
            .await
            .map_err(db_error)?
            .ok_or_else(|| ApiError::unauthorized("the session is unknown or has ended; sign in again"))?;
        let customer = readside::customers::find(&self.database, &session.tenant, session.customer_id)
            .await
            .map_err(db_error)?
            .filter(|customer| !customer.blocked)
            .ok_or_else(|| ApiError::forbidden("this customer is blocked or gone"))?;
        let tenant = TenantId::new(&session.tenant).map_err(|_| ApiError::internal())?;
        let (token, expires_at) = (token.to_owned(), session.expires_at);
        Ok(Caller { tenant, customer_id: session.customer_id, customer, token, expires_at })
    }

    pub(crate) async fn request_code(&self, tenant: TenantId, request: OtpRequest) -> Result<Value, ApiError> {
        let phone = phone(&request.phone)?;
        let code = match &self.settings.dev_code {
            Some(code) => code.expose().to_owned(),
            None => {
                let mut bytes = [0u8; 4];
                self.random.fill(&mut bytes).map_err(|_| ApiError::internal())?;
                format!("{:06}", u32::from_le_bytes(bytes) % 1_000_000)
            }
        };
        let expires_at = Utc::now() + chrono::Duration::from_std(self.settings.code_ttl).unwrap_or_default();
        let command =
            RequestSignInCode { code_hash: self.code_hash(&tenant, &phone, &code), phone: phone.clone(), expires_at };
        let _: Value = self.command(&tenant, command).await?;
        let text =
            format!("Your voltbus code is {code}. It works for {} minutes.", self.settings.code_ttl.as_secs() / 60);
        if let Err(error) = self.sms.send(&phone, &text).await {
            tracing::warn!(%error, "the sign-in code could not be sent");
            return Err(ApiError::unavailable("the code could not be sent; try again"));
        }
        Ok(json!({}))
    }

    pub(crate) async fn sign_in(&self, tenant: TenantId, check: OtpCheck) -> Result<Value, ApiError> {
        let phone = phone(&check.phone)?;
        if check.code.is_empty() || check.code.len() > 16 {
            return Err(ApiError::invalid("code", "code must be the one sent to the phone"));
        }
        let mut secret = [0u8; 32];
        self.random.fill(&mut secret).map_err(|_| ApiError::internal())?;
        let token =
            format!("vbs_{}", base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, secret));
        let expires_at = Utc::now() + chrono::Duration::from_std(self.settings.session_ttl).unwrap_or_default();
        let command = SignIn {
            code_hash: self.code_hash(&tenant, &phone, &check.code),
            phone,
            new_customer_id: Uuid::now_v7(),
            session_hash: session_hash(&token),
            session_expires_at: expires_at,
        };
        let signed: readside::sign_in::SignedIn = self.command(&tenant, command).await?;
        let customer = readside::customers::find(&self.database, tenant.as_str(), signed.customer_id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| ApiError::unauthorized("the customer of this session is gone"))?;
        self.me(&Caller { tenant, customer_id: signed.customer_id, customer, token, expires_at }).await
    }

    /// The seed's sign-in answer: token, profile, the active device (none until charging
    /// lands), and fresh NATS credentials.
    pub(crate) async fn me(&self, caller: &Caller) -> Result<Value, ApiError> {
        let tenant = caller.tenant.as_str();
        let customer = &caller.customer;
        let wallet = readside::wallets::find(&self.database, tenant, caller.customer_id, 0).await.map_err(db_error)?;
        let nats = match &self.accounts {
            Some(accounts) => {
                let topic = subjects::user_topic(&caller.tenant, caller.customer_id);
                let permissions = Permissions::SubscribeOnly(vec![topic.clone(), format!("{topic}.>")]);
                let name = format!("{tenant}/{}", caller.customer_id);
                // A day at most: the server cannot revoke a JWT, so a blocked customer's or an
                // ended session's credentials must die soon on their own; `/user/me` renews them.
                let expires_at = caller.expires_at.min(Utc::now() + chrono::Duration::days(1));
                let credentials = accounts
                    .user(&name, &permissions, Some(expires_at.timestamp()))
                    .map_err(|_| ApiError::internal())?;
                json!({
                    "servers": self.settings.nats_servers,
                    "topic": topic,
                    "user": credentials.jwt,
                    "pass": credentials.seed,
                })
            }
            None => Value::Null,
        };
        let profile = &customer.profile;
        Ok(json!({
            "token": caller.token,
            "profile": {
                "name": profile.name.clone().unwrap_or_default(),
                "email": profile.email.clone().unwrap_or_default(),
                "phone": profile.phone.clone().unwrap_or_default(),
                "balance": wallet.balance_cents,
            },
            "device": self.device(caller).await?,
            "nats": nats,
        }))
    }

    /// `POST /devices/:id/start` (answers `{}`) and `/finish` (answers the purchase's `{id}`).
    pub(crate) async fn charge(&self, caller: &Caller, charger_id: Uuid, start: bool) -> Result<Value, ApiError> {
        let user_id = caller.customer_id;
        if start {
            let command = StartCharging { session_id: Uuid::now_v7(), charger_id, user_id };
            let _: Value = self.command(&caller.tenant, command).await?;
            return Ok(json!({}));
        }
        let tenant = caller.tenant.as_str();
        let session = readside::charging::active_of(&self.database, tenant, user_id)
            .await
            .map_err(db_error)?
            .filter(|session| session.charger_id == charger_id)
            .ok_or_else(|| ApiError::not_found("you are not charging at this charger"))?;
        let finish = FinishCharging { session_id: session.id, charger_id, user_id };
        let finished: Value = self.command(&caller.tenant, finish).await?;
        Ok(finished)
    }

    /// The charger of the caller's active session, in the seed's `device` shape.
    pub(crate) async fn device(&self, caller: &Caller) -> Result<Value, ApiError> {
        let tenant = caller.tenant.as_str();
        let Some(session) =
            readside::charging::active_of(&self.database, tenant, caller.customer_id).await.map_err(db_error)?
        else {
            return Ok(Value::Null);
        };
        let offline_after = self.settings.charger_offline_after;
        let charger = readside::chargers::find(&self.database, tenant, session.charger_id, offline_after)
            .await
            .map_err(db_error)?;
        Ok(charger.map_or(Value::Null, |charger| {
            json!({
                "_id": charger.id,
                "deviceNumber": charger.device_number,
                "location": charger.location,
                "waitingPrice": charger.waiting_price,
                "price": charger.price,
            })
        }))
    }

    /// `GET /devices/by-location`: the chargers in the seed's box, in the seed's shape.
    pub(crate) async fn chargers_in(&self, caller: &Caller, query: Option<&str>) -> Result<Value, ApiError> {
        const CORNERS: [&str; 4] =
            ["bottom-left-longitude", "bottom-left-latitude", "upper-right-longitude", "upper-right-latitude"];
        let mut corners = [None; 4];
        for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let Some(index) = CORNERS.iter().position(|c| *c == name) else {
                return Err(ApiError::invalid(name, format!("unknown query parameter; use {}", CORNERS.join(", "))));
            };
            let number = value.parse::<f64>().ok().filter(|n| n.is_finite());
            corners[index] = Some(number.ok_or_else(|| ApiError::invalid(name, format!("{name} must be a number")))?);
        }
        let mut box_ = [0.0; 4];
        for ((corner, name), value) in corners.iter().zip(CORNERS).zip(box_.iter_mut()) {
            *value = corner.ok_or_else(|| ApiError::invalid(name, format!("{name} is required")))?;
        }
        let [west, south, east, north] = box_;
        for (name, longitude) in [(CORNERS[0], west), (CORNERS[2], east)] {
            if !(-180.0..=180.0).contains(&longitude) {
                return Err(ApiError::invalid(name, format!("{name} must be -180 to 180")));
            }
        }
        for (name, latitude) in [(CORNERS[1], south), (CORNERS[3], north)] {
            if !(-90.0..=90.0).contains(&latitude) {
                return Err(ApiError::invalid(name, format!("{name} must be -90 to 90")));
            }
        }
        if south > north {
            return Err(ApiError::invalid(CORNERS[1], "the bottom-left corner must be below the upper-right one"));
        }
        let tenant = caller.tenant.as_str();
        // A box wider than the map's view would show is cut at a thousand chargers.
        let found =
            readside::chargers::in_box(&self.database, tenant, box_, self.settings.charger_offline_after, 1_000)
                .await
                .map_err(db_error)?;
        let devices: Vec<Value> = found
            .into_iter()
            .map(|charger| {
                json!({
                    "_id": charger.id,
                    "deviceNumber": charger.device_number,
                    "price": charger.price,
                    "waitingPrice": charger.waiting_price,
                    "location": charger.location,
                    "state": charger.state,
                })
            })
            .collect();
        Ok(Value::Array(devices))
    }

    pub(crate) async fn command<M: Message, T: serde::de::DeserializeOwned>(
        &self,
        tenant: &TenantId,
        data: M,
    ) -> Result<T, ApiError> {
        self.bus.request(&Envelope::new(tenant.clone(), "voltbus/mobile", data), self.settings.command_timeout).await
    }

    /// HMAC-SHA256 of the organisation, phone and code, hex.
    fn code_hash(&self, tenant: &TenantId, phone: &str, code: &str) -> String {
        let tag = hmac::sign(&self.code_key, format!("{tenant}\n{phone}\n{code}").as_bytes());
        hex::encode(tag.as_ref())
    }
}

/// SHA-256 of a session token, hex (as partner keys are kept): what the database keeps.
fn session_hash(token: &str) -> String {
    crate::api_keys::KeyHash::of(token).to_hex()
}

/// A phone in international format, as `+` and digits (the seed writes `+976 8666 1488`).
fn phone(given: &str) -> Result<String, ApiError> {
    let compact: String = given.chars().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.')).collect();
    let digits = compact.strip_prefix('+').unwrap_or_default();
    let valid =
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) && !digits.starts_with('0');
    if !valid {
        return Err(ApiError::invalid("phone", "phone must be in international format, like +976 8666 1488"));
    }
    Ok(compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_are_taken_in_international_format_only() {
        assert_eq!(phone("+976 8666 1488").unwrap(), "+97686661488");
        assert_eq!(phone("+1 (415) 555-0100").unwrap(), "+14155550100");
        for bad in ["86661488", "+0 123 456 789", "+976 8666", "+976 8666 1488 1234 5", "+976 8666 14a8", ""] {
            assert!(phone(bad).is_err(), "{bad}");
        }
    }
}
