//! One partner request from head to answer: route, authenticate, limit, authorise, read the body,
//! claim the idempotency key, act, keep the answer for replay, and log the request.

pub(crate) mod audit;
pub(crate) mod auth;
mod chargers;
pub(crate) mod customers;
pub(crate) mod idempotency;
mod key_events;
pub(crate) mod keys;
mod limits;
mod pricing;
mod rides;
pub(crate) mod routes;
mod subscriptions;
mod vehicles;
pub(crate) mod webhooks;
mod zones;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use ring::rand::SystemRandom;
use schemas::TenantId;
use schemas::integrations::{ApiRequestRecord, RateLimits};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::api_keys;
use crate::edge::commands::CommandBus;
use crate::edge::envelope::{self, ApiError};
use crate::edge::marketplace::{CLIENT_ID_PARAM, CLIENT_SECRET_PARAM};
use crate::edge::portal::integrations;
use crate::edge::portal::machine_tokens::{self, Claims, Cutoffs, Signer, TokenError};
use crate::edge::router::{Access, Door, Found, Handler, Lookup, Route, param, router};
use audit::{ANONYMOUS_TENANT, AuditLog};
use auth::{API_KEY_HEADER, Caller, KeyCache};
use idempotency::{Begin, Claim};
use limits::{FailedAuthentications, RateLimiters};
use routes::Call;
use schemas::{Sensitive, ServiceUrl};
use serde::{Deserialize, Serialize};
use serde_with::{DurationMilliSeconds, DurationSeconds, serde_as};
use webhooks::WebhookSetup;

/// `[partner]`: the partner REST API, read from the settings as they are (each duration in the
/// unit its name says). The fields after `failed_authentications_per_minute` are no part of the
/// section: the composition root sets them from their own sections.
#[serde_as]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerSettings {
    /// Keys are `<key_prefix>_pk_…` (2 to 8 lower-case letters).
    pub key_prefix: String,
    /// Largest request body accepted, in bytes.
    #[serde(rename = "body_limit_bytes")]
    pub body_limit: usize,
    /// Longest a request may take, body reading included.
    #[serde(rename = "request_timeout_seconds")]
    #[serde_as(as = "DurationSeconds<u64>")]
    pub request_timeout: Duration,
    /// Longest the edge waits for a command's reply.
    #[serde(rename = "command_timeout_ms")]
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub command_timeout: Duration,
    /// How long a key read from the database is trusted without reading it again.
    #[serde(rename = "key_cache_ttl_ms")]
    #[serde_as(as = "DurationMilliSeconds<u64>")]
    pub key_cache_ttl: Duration,
    /// Failed authentications a client address may make per minute before it gets 429.
    pub failed_authentications_per_minute: u32,
    /// The broker subscribers connect to (`amqp.url`; its credentials are replaced by each
    /// subscription's); none: no subscriptions.
    #[serde(skip)]
    pub amqp_url: Option<ServiceUrl>,
    /// A charger not heard from this long reads as `Offline` (`charging`).
    #[serde(skip)]
    pub charger_offline_after: Duration,
    /// Integrations' machine tokens, session codes and portal sessions (`integrations`).
    #[serde(skip)]
    pub integrations: IntegrationSettings,
    /// The plan integrations are billed on (`billing`).
    #[serde(skip, default = "default_plan")]
    pub billing: schemas::billing::Plan,
    /// Paystack, when configured (`paystack`): integrations' billing and the app's payments.
    #[serde(skip)]
    pub paystack: Option<crate::edge::providers::paystack::PaystackSettings>,
}

/// `[integrations]`: integrations' machine tokens, session codes and portal sessions (EVCare).
#[serde_as]
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationSettings {
    /// How long a machine token lives (default 900 s).
    #[serde(rename = "token_ttl_seconds")]
    #[serde_as(as = "DurationSeconds<u64>")]
    pub token_ttl: Duration,
    /// The key machine tokens are signed with, 32 bytes in standard base64; every edge must
    /// share it. Unset: the composition root's key file in `data_dir`, made on first start.
    pub token_key: Option<Sensitive>,
    /// How long a session code may wait to be redeemed (default 120 s).
    #[serde(rename = "session_code_ttl_seconds")]
    #[serde_as(as = "DurationSeconds<u64>")]
    pub session_code_ttl: Duration,
    /// How long a portal session lasts (default 8 hours).
    #[serde(rename = "portal_session_ttl_seconds")]
    #[serde_as(as = "DurationSeconds<u64>")]
    pub portal_session_ttl: Duration,
    /// How long a rotated secret keeps working unless the rotation says otherwise (a day).
    pub rotation_grace_seconds: u32,
}

impl IntegrationSettings {
    /// The token key's 32 bytes, if it is set and is one.
    pub fn token_key_bytes(&self) -> Option<[u8; 32]> {
        let key = self.token_key.as_ref()?;
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key.expose().trim()).ok()?;
        <[u8; 32]>::try_from(bytes).ok()
    }
}

impl Default for IntegrationSettings {
    fn default() -> Self {
        Self {
            token_key: None,
            token_ttl: Duration::from_secs(15 * 60),
            session_code_ttl: Duration::from_secs(120),
            portal_session_ttl: Duration::from_secs(8 * 3600),
            rotation_grace_seconds: 24 * 3600,
        }
    }
}

/// The plan of a platform that says nothing: GHS (the EVCare seed's currency), no fee, 10,000
/// calls and 10,000 event deliveries a month included, then 1.00 per thousand calls and 0.50 per
/// thousand deliveries.
fn default_plan() -> schemas::billing::Plan {
    use schemas::billing::{MeteredPrice, Plan};
    Plan {
        currency: schemas::Currency::GHS,
        monthly_fee: 0,
        metrics: vec![
            MeteredPrice { metric: "api_call".into(), included: 10_000, per_thousand: 100 },
            MeteredPrice { metric: "event_delivery".into(), included: 10_000, per_thousand: 50 },
        ],
    }
}

/// What an integration may do per window: more than a key's defaults, since one integration
/// serves many users.
const INTEGRATION_LIMITS: RateLimits = RateLimits { per_minute: 1_200, per_hour: 30_000, per_day: 300_000 };

impl Default for PartnerSettings {
    fn default() -> Self {
        Self {
            key_prefix: "vb".into(),
            body_limit: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(10),
            key_cache_ttl: Duration::from_secs(5),
            failed_authentications_per_minute: 30,
            amqp_url: None,
            charger_offline_after: Duration::from_secs(300),
            integrations: IntegrationSettings::default(),
            billing: default_plan(),
            paystack: None,
        }
    }
}

/// The partner API: its routes and everything they share.
pub struct PartnerApi {
    pub(crate) settings: PartnerSettings,
    pub(crate) database: DatabaseConnection,
    pub(crate) bus: Arc<CommandBus>,
    pub(crate) keys: Arc<KeyCache>,
    pub(crate) random: SystemRandom,
    pub(crate) webhooks: WebhookSetup,
    limits: RateLimiters,
    pub(crate) failed_authentications: FailedAuthentications,
    /// Signs and checks integrations' machine tokens.
    pub(crate) tokens: Signer,
    /// Integrations whose older tokens are dead.
    pub(crate) cutoffs: Arc<Cutoffs>,
    /// Paystack, when configured.
    pub(crate) paystack: Option<Arc<crate::edge::providers::paystack::Paystack>>,
    /// The platform's HTTP client for trusted services (payment providers).
    pub(crate) http: outbound::Client,
    idempotency: idempotency::Store,
    audit: AuditLog,
    /// The partner API's OpenAPI document.
    openapi: Bytes,
    /// The tenant requests without a recognised key are logged under.
    anonymous: TenantId,
}

/// The background work of a running partner API: the request-log flusher.
pub struct PartnerTasks {
    audit: tokio::task::JoinHandle<()>,
    cutoffs: tokio::task::JoinHandle<()>,
    key_events: Option<(tokio::task::JoinHandle<()>, Option<tokio::sync::oneshot::Receiver<()>>)>,
}

impl PartnerTasks {
    /// Waits for the request log to be flushed; call after the last request (and the API) is dropped.
    /// Waits up to `limit` for the edge to follow key changes made elsewhere (RabbitMQ only), so
    /// that no request is served on a cache that would miss them; false if it did not in time.
    pub async fn ready(&mut self, limit: Duration) -> bool {
        match self.key_events.as_mut().and_then(|(_, ready)| ready.take()) {
            Some(ready) => matches!(tokio::time::timeout(limit, ready).await, Ok(Ok(()))),
            None => true,
        }
    }

    pub async fn finish(self) {
        if let Some((key_events, _)) = self.key_events {
            key_events.abort();
        }
        self.cutoffs.abort();
        if self.audit.await.is_err() {
            tracing::warn!("request log flusher ended abnormally");
        }
    }
}

impl PartnerApi {
    /// The API over `database` (reads, idempotency records) and `bus` (commands, request log),
    /// calling payment providers with `http` (the platform's client for trusted services).
    pub fn new(
        settings: PartnerSettings,
        database: DatabaseConnection,
        bus: CommandBus,
        webhooks: WebhookSetup,
        http: outbound::Client,
    ) -> (Arc<Self>, PartnerTasks) {
        let bus = Arc::new(bus);
        let (audit, audit_task) = AuditLog::start(Arc::clone(&bus));
        let openapi = Bytes::from(crate::edge::openapi::partner_document(router().routes()).to_string());
        let keys = Arc::new(KeyCache::new(database.clone(), settings.key_cache_ttl));
        let cutoffs = Arc::new(Cutoffs::default());
        let key_events = bus.amqp_connection().map(|amqp| {
            let (ready, is_ready) = tokio::sync::oneshot::channel();
            let follow = key_events::follow(Arc::clone(amqp), Arc::clone(&keys), Arc::clone(&cutoffs), ready);
            (tokio::spawn(follow), Some(is_ready))
        });
        let token_key = settings.integrations.token_key_bytes().unwrap_or_else(|| {
            tracing::warn!("no integrations.token_key: machine tokens are signed with a key of this process only");
            let mut key = [0u8; 32];
            if ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut key).is_err() {
                tracing::error!("the random generator failed; machine tokens cannot be trusted");
            }
            key
        });
        let tokens = Signer::new(&token_key, settings.integrations.token_ttl);
        let cutoff_task = tokio::spawn(crate::edge::portal::machine_tokens::refresh_cutoffs(
            database.clone(),
            Arc::clone(&cutoffs),
            settings.integrations.token_ttl,
        ));
        let api = Self {
            failed_authentications: FailedAuthentications::new(settings.failed_authentications_per_minute),
            tokens,
            cutoffs,
            paystack: settings
                .paystack
                .clone()
                .map(|settings| Arc::new(crate::edge::providers::paystack::Paystack::new(settings, http.clone()))),
            http,
            keys,
            idempotency: idempotency::Store::new(database.clone(), settings.request_timeout),
            settings,
            database,
            bus,
            random: SystemRandom::new(),
            webhooks,
            limits: RateLimiters::default(),
            audit,
            openapi,
            anonymous: TenantId::new(ANONYMOUS_TENANT).expect("the anonymous tenant id is valid"),
        };
        (Arc::new(api), PartnerTasks { audit: audit_task, cutoffs: cutoff_task, key_events })
    }

    /// The access a route of operation id `operation` needs, if there is such a route.
    pub(crate) fn access_of(&self, operation: &str) -> Option<Access> {
        router().operation(operation).map(|route| route.access)
    }

    /// The caller of a request: a machine token, or a partner key.
    async fn authenticate(&self, request: &Request<Incoming>, peer: IpAddr) -> Result<Caller, ApiError> {
        let headers = request.headers();
        if headers.get(API_KEY_HEADER).is_none()
            && let Some(token) = auth::bearer(headers)?.filter(|t| t.starts_with(machine_tokens::PREFIX))
        {
            return match self.tokens.check(token, Utc::now(), &self.cutoffs) {
                Ok(claims) => auth::integration_caller(claims, headers),
                Err(error) => {
                    if error == TokenError::Invalid {
                        self.failed_authentications.failed(peer);
                    }
                    Err(ApiError::unauthorized(error.to_string()))
                }
            };
        }
        // Keys already known are served whatever the address did; only database lookups are
        // refused to an address that keeps failing.
        let may_read = || self.failed_authentications.check(peer);
        self.keys.authenticate(headers, may_read).await.inspect_err(|error| {
            if error.status == StatusCode::UNAUTHORIZED {
                self.failed_authentications.failed(peer);
            }
        })
    }

    /// Housekeeping the serve loop runs now and then: deletes idempotency records past their
    /// retention and forgets client addresses whose failed authentications have aged out.
    pub async fn tidy(&self) -> Result<u64, sea_orm::DbErr> {
        self.failed_authentications.forget_idle();
        self.idempotency.purge().await
    }

    /// Answers one request under [`routes::BASE`].
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        peer: IpAddr,
        request_id: &str,
        found: Result<Found<'static>, ApiError>,
    ) -> Response<Full<Bytes>> {
        let received_at = Utc::now();
        let started = Instant::now();
        let method = request.method().clone();
        // An unmatched path is logged as sent, cut short: the log is no place to store what a
        // client cares to put in a URL. A matched one is logged as its route.
        let unmatched = found.is_err().then(|| request.uri().path().chars().take(256).collect::<String>());
        // Read only if no key is found: the log names what was presented then.
        let presented = request.headers().get(API_KEY_HEADER).cloned();
        let mut outcome = Outcome { caller: None, route: None, rate_headers: Vec::new(), replayed: false };
        let answer = tokio::time::timeout(
            self.settings.request_timeout,
            self.answer(request, peer, found, &mut outcome, request_id),
        )
        .await
        .unwrap_or_else(|_| Err(ApiError::timeout("the request took too long")));
        let Rendered { status, body, headers: extra_headers } =
            answer.unwrap_or_else(|error| Rendered::error(error, request_id));
        let mut response = envelope::json_response(status, body, request_id);
        let headers = response.headers_mut();
        for (name, value) in outcome.rate_headers.into_iter().chain(extra_headers) {
            headers.insert(name, value);
        }
        if outcome.replayed {
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
        }
        let route = outcome.route.map(str::to_owned).or(unmatched).unwrap_or_default();
        let (tenant, subaccount_id) = match &outcome.caller {
            Some(caller) => (caller.tenant.clone(), caller.subaccount),
            None => (self.anonymous.clone(), None),
        };
        let key = outcome.caller.as_ref().and_then(Caller::key);
        self.audit.record(
            tenant,
            ApiRequestRecord {
                request_id: request_id.to_owned(),
                key_id: key.map(|k| k.key.id),
                integration_id: outcome.caller.as_ref().and_then(|c| c.integration()).map(|c| c.integration_id),
                key_prefix: key.map(|k| k.key.prefix.clone()).or_else(|| {
                    let presented = presented.as_ref()?.to_str().ok()?;
                    api_keys::check_shape(presented).ok().map(|()| api_keys::display_prefix(presented))
                }),
                method: method.to_string(),
                route,
                subaccount_id,
                status: status.as_u16(),
                latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                received_at,
            },
        );
        response
    }

    async fn answer(
        &self,
        request: Request<Incoming>,
        peer: IpAddr,
        found: Result<Found<'static>, ApiError>,
        outcome: &mut Outcome,
        request_id: &str,
    ) -> Result<Rendered, ApiError> {
        let Found { route, params } = found?;
        let path = request.uri().path();
        outcome.route = Some(&route.path);
        crate::edge::query::check_query(route.returns, request.uri().query())?;
        if route.access == Access::Public {
            let body = String::from_utf8_lossy(&self.openapi).into_owned();
            return Ok(Rendered { status: StatusCode::OK, body, headers: Vec::new() });
        }

        let caller = match param(&params, CLIENT_ID_PARAM) {
            client_id if route.door == Door::Marketplace && !client_id.is_empty() => {
                let in_url = param(&params, CLIENT_SECRET_PARAM);
                crate::edge::marketplace::caller(self, request.headers(), client_id, in_url, peer).await?
            }
            _ => self.authenticate(&request, peer).await?,
        };
        outcome.caller = Some(caller.clone());
        let standing = match (caller.key(), caller.integration()) {
            (Some(key), _) => self.limits.check(key.key.id, key.key.rate_limits)?,
            (None, Some(claims)) => self.limits.check(claims.integration_id, INTEGRATION_LIMITS)?,
            (None, None) => return Err(ApiError::internal()),
        };
        outcome.rate_headers = limits::headers(&standing);
        authorise(route, &caller)?;

        let query = request.uri().query().map(str::to_owned);
        let path = path.to_owned();
        let method = request.method().clone();
        // Only the one header outlives the body read: no copy of the whole map per request.
        let idempotency_key = request.headers().get(idempotency::HEADER).cloned();
        let body = self.read_body(request).await?;
        let claim = if matches!(method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE) {
            Claim::from_request(
                &caller.tenant,
                idempotency_key.as_ref(),
                method.as_str(),
                &path,
                caller.subaccount,
                &body,
            )?
        } else {
            None
        };
        let claim = match claim {
            None => None,
            Some(claim) => match self.idempotency.begin(claim).await? {
                Begin::Fresh(claim) => Some(claim),
                Begin::Replay { status, body } => {
                    outcome.replayed = true;
                    return Ok(Rendered { status, body, headers: Vec::new() });
                }
            },
        };
        let Handler::Partner(Some(action)) = route.handler else {
            return Err(ApiError::internal());
        };
        let command_id = claim.as_ref().map_or_else(Uuid::now_v7, Claim::command_id);
        let idempotency_key = idempotency_key.and_then(|v| v.to_str().ok().map(str::to_owned));
        let call = Call { caller, params, query, body, command_id, idempotency_key };
        tracing::trace!("idempotency key taken");
        let result = action(self, call).await;
        tracing::trace!("action done");
        let (rendered, kept) = match result {
            Ok(answer) => {
                let kept = answer.replay_data.as_ref().map(|data| answer.text_with(data, request_id));
                (Rendered { status: answer.status, body: answer.text(request_id), headers: Vec::new() }, kept)
            }
            Err(error) => (Rendered::error(error, request_id), None),
        };
        if let Some(claim) = &claim {
            if rendered.status.is_server_error() {
                // Nothing to replay: the retry runs again, and its command (same id) is
                // de-duplicated by the consumer's inbox if the first one did arrive.
                self.idempotency.abandon(claim).await;
            } else {
                self.idempotency.finish(claim, rendered.status, kept.as_deref().unwrap_or(&rendered.body)).await;
            }
        }
        Ok(rendered)
    }

    /// The partner route `method relative` names (below [`routes::BASE`]) and its path
    /// parameters; 404 for no such path, 405 naming the methods it has.
    fn route(&self, relative: &str, method: &Method) -> Result<Found<'static>, ApiError> {
        match router().find(method, &routes::at(relative)) {
            Lookup::Found(found) if matches!(found.route.handler, Handler::Partner(_)) => Ok(found),
            Lookup::MethodNotAllowed(allowed) => Err(ApiError::method_not_allowed(&allowed.join(", "))),
            _ => Err(ApiError::not_found("no such route")),
        }
    }

    /// Runs the partner route `method relative` (below [`routes::BASE`]) for the console, with
    /// `caller` (an operator): the same route table, access rules and commands as a partner's
    /// request, logged in the organisation's request log. Returns the envelope body on success.
    pub(crate) async fn call_as(
        &self,
        caller: Caller,
        method: Method,
        relative: &str,
        query: Option<String>,
        body: serde_json::Value,
        request_id: &str,
    ) -> Result<serde_json::Value, ApiError> {
        let (received_at, started) = (Utc::now(), Instant::now());
        let Found { route, params } = self.route(relative, &method)?;
        let tenant = caller.tenant.clone();
        let operator = caller.operator().map(|o| o.operator_id);
        let result = async {
            crate::edge::query::check_query(route.returns, query.as_deref())?;
            authorise(route, &caller)?;
            let Handler::Partner(Some(action)) = route.handler else { return Err(ApiError::internal()) };
            let body = if body.is_null() { Bytes::new() } else { Bytes::from(body.to_string()) };
            let call = Call { caller, params, query, body, command_id: Uuid::now_v7(), idempotency_key: None };
            tokio::time::timeout(self.settings.request_timeout, action(self, call))
                .await
                .unwrap_or_else(|_| Err(ApiError::timeout("the request took too long")))
        }
        .await;
        let status = match &result {
            Ok(answer) => answer.status,
            Err(error) => error.status,
        };
        tracing::info!(?operator, %tenant, %method, route = route.path, status = status.as_u16(), "console call");
        self.audit.record(
            tenant,
            ApiRequestRecord {
                request_id: request_id.to_owned(),
                key_id: None,
                integration_id: None,
                key_prefix: Some(CONSOLE_PREFIX.to_owned()),
                method: method.to_string(),
                route: route.path.clone(),
                subaccount_id: None,
                status: status.as_u16(),
                latency_us: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
                received_at,
            },
        );
        result.map(|answer| answer.body(request_id))
    }

    /// Reads the body, refusing more than the limit and anything but JSON.
    async fn read_body(&self, request: Request<Incoming>) -> Result<Bytes, ApiError> {
        crate::edge::body::read_body(request, self.settings.body_limit).await
    }
}

/// Whether `caller` may use `route`.
fn authorise(route: &Route, caller: &Caller) -> Result<(), ApiError> {
    if let Some(claims) = caller.integration() {
        authorise_integration(route, claims)?;
    }
    match route.access {
        Access::Admin if !caller.is_admin() => Err(ApiError::forbidden("this route needs an organisation admin key")),
        Access::Capability(_) if caller.integration().is_none() => {
            Err(ApiError::forbidden("this route needs an integration's machine token"))
        }
        Access::Permission(permission) if !caller.may(permission) => {
            let name = serde_json::to_value(permission).unwrap_or_default();
            Err(ApiError::forbidden(format!("this key lacks the {} permission", name.as_str().unwrap_or("")))
                .details(serde_json::json!({ "required_permission": name })))
        }
        _ => Ok(()),
    }
}

/// Whether an integration may use `route`: its bundle must reach it, and its allow-list (if
/// any) must name it.
fn authorise_integration(route: &Route, claims: &Claims) -> Result<(), ApiError> {
    if route.access == Access::Admin {
        return Err(ApiError::forbidden("this route needs an organisation admin key"));
    }
    let bundle = serde_json::to_value(claims.bundle).unwrap_or_default();
    if !integrations::grants(claims.bundle, route.access) {
        return Err(ApiError::forbidden("the integration's access bundle does not include this route").details(
            serde_json::json!({ "bundle": bundle, "allowed_bundles": integrations::bundles_of(route.access) }),
        ));
    }
    if !claims.allowed_endpoints.is_empty() && !claims.allowed_endpoints.iter().any(|op| op == route.operation) {
        return Err(ApiError::forbidden("the integration's endpoint allow-list does not include this route")
            .details(serde_json::json!({ "operation": route.operation })));
    }
    Ok(())
}

/// What the pipeline learned on the way, for headers and the request log.
struct Outcome {
    caller: Option<Caller>,
    route: Option<&'static str>,
    rate_headers: Vec<(http::HeaderName, HeaderValue)>,
    replayed: bool,
}

/// A status, the envelope's text, and headers the answer needs.
struct Rendered {
    status: StatusCode,
    body: String,
    headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl Rendered {
    fn error(error: ApiError, request_id: &str) -> Self {
        if error.status.is_server_error() {
            tracing::warn!(code = error.code, message = %error.message, "answered with an error");
        }
        Self { status: error.status, body: error.body(request_id).to_string(), headers: error.headers }
    }
}

/// What the request log shows as the key of a call the console made.
const CONSOLE_PREFIX: &str = "console";
