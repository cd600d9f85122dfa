//! The integrations portal's public doors, under `/v1/integrations` (EVCare seed): the machine
//! token (`/auth/client-token`, clientId and clientSecret for a short-lived signed token), the
//! browser session (`/auth/session`, a one-time session code for a secure, HttpOnly cookie) and
//! the hosted portal's embed page (`/embed`, opened with that cookie), and Paystack's webhook of
//! integrations' billing (`/billing/paystack/webhook`, believed only with its signature, and then
//! only as a prompt to verify). No key is needed to reach them; a client address that keeps
//! failing is refused like one guessing partner keys.

use std::net::IpAddr;

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use readside::billing::payments;
use readside::integrations::{clients, identities};
use schemars::JsonSchema;
use schemas::integrations::{AccessBundle, RedeemSessionCode};
use schemas::{Envelope, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api::{PartnerApi, parse_body, read_body};
use super::billing;
use super::integrations::{CLIENT_ID_PREFIX, CLIENT_SECRET_PREFIX, SESSION_CODE_PREFIX};
use super::keys::db_error;
use super::response::{self, Answer, ApiError};
use crate::api_keys::{self, KeyHash};
use crate::permissions::{self, Capability};

/// Where the portal's doors are.
pub const PORTAL_BASE: &str = "/v1/integrations";
/// The browser session's cookie.
const COOKIE: &str = "evc_portal";
/// Portal session tokens start with this.
const SESSION_PREFIX: &str = "evc_ps_";

/// `POST /auth/client-token`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ClientCredentials {
    client_id: String,
    client_secret: String,
}

/// A machine token.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MachineToken {
    access_token: String,
    token_type: &'static str,
    expires_in: u64,
    expires_at: chrono::DateTime<Utc>,
    integration_id: Uuid,
    bundle: AccessBundle,
}

/// `POST /auth/session`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SessionRedemption {
    session_code: String,
}

/// The portal's public doors below [`PORTAL_BASE`], each with its method: each checks its own
/// credentials (client secret, one-time code, portal cookie, Paystack's signature).
pub const DOORS: [(&str, &str); 4] = [
    ("POST", "/auth/client-token"),
    ("POST", "/auth/session"),
    ("GET", "/embed"),
    ("POST", "/billing/paystack/webhook"),
];

/// Whether `path` is one of the portal's public doors.
pub(crate) fn serves(path: &str) -> bool {
    path.strip_prefix(PORTAL_BASE).is_some_and(|door| DOORS.iter().any(|(_, known)| *known == door))
}

/// Answers one request to a public door.
pub(crate) async fn handle(
    api: &PartnerApi,
    request: Request<Incoming>,
    peer: IpAddr,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().strip_prefix(PORTAL_BASE).unwrap_or_default().to_owned();
    let answer = match (request.method().clone(), path.as_str()) {
        (Method::POST, "/auth/client-token") => client_token(api, request, peer).await.map(|a| (a, None)),
        (Method::POST, "/auth/session") => session(api, request, peer).await.map(|(a, cookie)| (a, Some(cookie))),
        (Method::GET, "/embed") => return embed(api, &request, peer, request_id).await,
        (Method::POST, "/billing/paystack/webhook") => paystack_webhook(api, request, peer).await.map(|a| (a, None)),
        (_, "/embed") => Err(ApiError::method_not_allowed("GET")),
        _ => Err(ApiError::method_not_allowed("POST")),
    };
    match answer {
        Ok((answer, cookie)) => {
            let mut response = response::json_response(answer.status, answer.body(request_id).to_string(), request_id);
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => error_response(error, request_id),
    }
}

fn error_response(error: ApiError, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = response::json_response(error.status, error.body(request_id).to_string(), request_id);
    response.headers_mut().extend(error.headers);
    response
}

/// Refuses and counts a failed authentication of `peer`.
fn failed(api: &PartnerApi, peer: IpAddr, error: ApiError) -> ApiError {
    api.failed_authentications.failed(peer);
    error
}

/// `POST /auth/client-token`: clientId and clientSecret (the current one, or the previous one
/// within its grace) for a machine token.
async fn client_token(api: &PartnerApi, request: Request<Incoming>, peer: IpAddr) -> Result<Answer, ApiError> {
    let body = read_body(request, api.settings.body_limit).await?;
    let credentials: ClientCredentials = parse_body(&body)?;
    let invalid = || ApiError::unauthorized("invalid client credentials");
    let shaped = |text: &str, prefix: &str| {
        text.strip_prefix(prefix).is_some_and(|rest| rest.len() == 40 && api_keys::check_text(rest))
    };
    if !shaped(&credentials.client_id, CLIENT_ID_PREFIX) || !shaped(&credentials.client_secret, CLIENT_SECRET_PREFIX) {
        return Err(failed(api, peer, invalid()));
    }
    api.failed_authentications.check(peer)?;
    let stored = clients::find_by_client_id(&api.database, &credentials.client_id).await.map_err(db_error)?;
    let Some(stored) = stored else { return Err(failed(api, peer, invalid())) };
    let now = Utc::now();
    let presented = KeyHash::of(&credentials.client_secret);
    // Every accepted hash is compared, each in constant time.
    let matches = stored
        .secret_hashes_at(now)
        .filter(|hash| KeyHash::from_hex(hash).is_some_and(|hash| hash == presented))
        .count();
    if matches == 0 {
        return Err(failed(api, peer, invalid()));
    }
    if !stored.usable() {
        return Err(ApiError::unauthorized("the integration is disabled or revoked"));
    }
    let tenant = TenantId::new(stored.tenant.clone()).map_err(|error| {
        tracing::error!(%error, "stored integration has an invalid tenant");
        ApiError::internal()
    })?;
    let integration = stored.integration;
    let (access_token, claims) =
        api.tokens.issue(integration.id, tenant, integration.bundle, integration.allowed_endpoints, now);
    tracing::info!(integration = %integration.id, "machine token issued");
    Ok(Answer::ok(MachineToken {
        access_token,
        token_type: "Bearer",
        expires_in: api.tokens.ttl().as_secs(),
        expires_at: claims.expires_at(),
        integration_id: integration.id,
        bundle: integration.bundle,
    }))
}

/// `POST /auth/session`: spends a session code once for a browser session in a cookie.
async fn session(api: &PartnerApi, request: Request<Incoming>, peer: IpAddr) -> Result<(Answer, String), ApiError> {
    let body = read_body(request, api.settings.body_limit).await?;
    let redemption: SessionRedemption = parse_body(&body)?;
    let invalid =
        || ApiError::refused(readside::codes::INVALID_CODE, "the session code is unknown, used or expired".into());
    let code = redemption.session_code.trim();
    let shaped =
        code.strip_prefix(SESSION_CODE_PREFIX).is_some_and(|rest| rest.len() == 40 && api_keys::check_text(rest));
    if !shaped {
        return Err(failed(api, peer, invalid()));
    }
    api.failed_authentications.check(peer)?;
    let code_hash = KeyHash::of(code).to_hex();
    let tenant = identities::tenant_of_code(&api.database, &code_hash).await.map_err(db_error)?;
    let Some(tenant) = tenant.and_then(|t| TenantId::new(t).ok()) else { return Err(failed(api, peer, invalid())) };
    let token = api_keys::random_text(40, &api.random).map_err(|_| ApiError::internal())?;
    let token = format!("{SESSION_PREFIX}{token}");
    let ttl = api.settings.integrations.portal_session_ttl;
    let expires_at = Utc::now() + ttl;
    let redeem = RedeemSessionCode {
        session_code_hash: code_hash,
        session_hash: KeyHash::of(&token).to_hex(),
        session_expires_at: expires_at,
    };
    let command = Envelope::new(tenant, "voltbus/portal", redeem);
    let opened: identities::PortalSession = api
        .bus
        .request(&command, api.settings.command_timeout)
        .await
        .map_err(|error| if error.status == StatusCode::UNAUTHORIZED { failed(api, peer, error) } else { error })?;
    // Embedded in the partner's pages, so sent cross-site: Secure and SameSite=None; never
    // readable by scripts.
    let cookie =
        format!("{COOKIE}={token}; Path={PORTAL_BASE}; Max-Age={}; Secure; HttpOnly; SameSite=None", ttl.as_secs());
    tracing::info!(integration = %opened.integration_id, user = %opened.user_id, "portal session opened");
    Ok((Answer::ok(opened), cookie))
}

/// `POST /billing/paystack/webhook`: a signed `charge.success` makes voltbus verify the payment
/// with Paystack and settle it once; a forged one is refused and logged, changing nothing.
async fn paystack_webhook(api: &PartnerApi, request: Request<Incoming>, peer: IpAddr) -> Result<Answer, ApiError> {
    let paystack = api.paystack.as_deref().ok_or_else(|| ApiError::unavailable("Paystack is not configured here"))?;
    let signature = request.headers().get("x-paystack-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = read_body(request, api.settings.body_limit).await?;
    if !signature.as_deref().is_some_and(|signature| paystack.signed(&body, signature)) {
        tracing::warn!(%peer, "a Paystack webhook without a valid signature; refused");
        return Err(failed(api, peer, ApiError::unauthorized("invalid x-paystack-signature")));
    }
    let event: serde_json::Value = super::api::json_of(&body)?;
    let reference = event["data"]["reference"].as_str().unwrap_or_default();
    if event["event"] != "charge.success" || reference.is_empty() {
        return Ok(Answer::ok(serde_json::json!({ "received": true })));
    }
    let Some((tenant, payment)) = payments::by_reference(&api.database, reference).await.map_err(db_error)? else {
        tracing::info!(reference, "a Paystack webhook for no integration payment; ignored");
        return Ok(Answer::ok(serde_json::json!({ "received": true })));
    };
    if payment.status == "pending" {
        let tenant = TenantId::new(tenant).map_err(|_| ApiError::internal())?;
        if billing::settle(api, &tenant, &payment).await?.is_none() {
            tracing::warn!(
                reference,
                "a signed Paystack webhook for a payment Paystack does not confirm; nothing settled"
            );
        }
    }
    Ok(Answer::ok(serde_json::json!({ "received": true })))
}

/// The portal session a request's cookie opens, if any.
fn session_token(request: &Request<Incoming>) -> Option<&str> {
    request
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}

/// `GET /embed`: the hosted portal's page for the signed-in user, for integrations whose bundle
/// includes the embed portal.
async fn embed(api: &PartnerApi, request: &Request<Incoming>, peer: IpAddr, request_id: &str) -> Response<Full<Bytes>> {
    let Some(token) = session_token(request) else {
        return error_response(ApiError::unauthorized("no portal session: redeem a session code first"), request_id);
    };
    let found = match identities::session(&api.database, &KeyHash::of(token).to_hex(), Utc::now()).await {
        Ok(found) => found,
        Err(error) => return error_response(db_error(error), request_id),
    };
    let Some(session) = found else {
        api.failed_authentications.failed(peer);
        return error_response(ApiError::unauthorized("the portal session is unknown or over"), request_id);
    };
    if !permissions::capabilities(session.bundle).contains(&Capability::EmbedPortal) {
        return error_response(
            ApiError::forbidden("the integration's bundle does not include the embed portal"),
            request_id,
        );
    }
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>voltbus portal</title></head>\
         <body><main><h1>voltbus portal</h1><p>Signed in as <strong>{}</strong> ({}), organisation {}.</p>\
         <p>Session ends {}.</p></main></body></html>",
        escape(&session.email),
        escape(&session.role),
        escape(&session.tenant),
        session.expires_at.to_rfc3339(),
    );
    let mut response = Response::new(Full::new(Bytes::from(page)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    // No script, no outside resource; framed only by secure pages (the partner's).
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'self' https:"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", value);
    }
    response
}

/// Text safe inside HTML.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}
