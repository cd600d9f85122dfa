//! The integrations portal (EVCare seed). Its admin routes (`integrations`, `billing`,
//! `maintenance`) pass through the partner pipeline with an admin key or an integration's machine
//! token (`machine_tokens`); its public doors, under `/v1/integrations`, check their own
//! credential: the machine token (`/auth/client-token`, clientId and clientSecret for a
//! short-lived signed token), the browser session (`/auth/session`, a one-time session code for a
//! secure, HttpOnly cookie) and the hosted portal's embed page (`/embed`, opened with that
//! cookie). No key is needed to reach the doors; a client address that keeps failing is refused
//! like one guessing partner keys. Every route is listed in `routes`.

pub(crate) mod billing;
pub(crate) mod integrations;
pub(crate) mod machine_tokens;
pub(crate) mod maintenance;
pub(crate) mod oauth;
mod routes;

pub(crate) use routes::routes;

use std::net::IpAddr;

use bytes::Bytes;
use chrono::Utc;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use readside::integrations::{clients, identities};
use schemars::JsonSchema;
use schemas::integrations::{AccessBundle, RedeemSessionCode};
use schemas::{Envelope, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api_keys::{self, KeyHash};
use crate::edge::body::{parse_body, read_body};
use crate::edge::envelope::db_error;
use crate::edge::envelope::{self, Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::router::Doors;
use crate::permissions::{self, Capability};
use integrations::{CLIENT_ID_PREFIX, CLIENT_SECRET_PREFIX, SESSION_CODE_PREFIX};

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
#[derive(Debug, Serialize, JsonSchema)]
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

/// `POST /auth/client-token`, as its route answers it.
async fn client_token(doors: &Doors<'_>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = issue_token(doors.api, request, doors.peer).await;
    envelope::door_response(answer.map(|answer| (answer, None)), doors.request_id)
}

/// `POST /auth/session`, as its route answers it: the session's cookie with the answer.
async fn session(doors: &Doors<'_>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = open_session(doors.api, request, doors.peer).await;
    envelope::door_response(answer.map(|(answer, cookie)| (answer, Some(cookie))), doors.request_id)
}

/// `GET /embed`, as its route answers it.
async fn embed(doors: &Doors<'_>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    embed_page(doors.api, &request, doors.peer, doors.request_id).await
}

/// Refuses and counts a failed authentication of `peer`.
pub(crate) fn failed(api: &PartnerApi, peer: IpAddr, error: ApiError) -> ApiError {
    api.failed_authentications.failed(peer);
    error
}

/// `POST /auth/client-token`: clientId and clientSecret (the current one, or the previous one
/// within its grace) for a machine token.
async fn issue_token(api: &PartnerApi, request: Request<Incoming>, peer: IpAddr) -> Result<Answer, ApiError> {
    let body = read_body(request, api.settings.body_limit).await?;
    let credentials: ClientCredentials = parse_body(&body)?;
    let (tenant, integration) = authenticate(api, &credentials.client_id, &credentials.client_secret, peer).await?;
    let now = Utc::now();
    let (access_token, claims) =
        api.tokens.issue(integration.id, tenant, (integration.bundle, integration.allowed_endpoints), None, now);
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

/// The integration whose client id and secret (the current one, or the previous one within its
/// grace) these are, if it is usable; a failure counts against `peer`.
pub(crate) async fn authenticate(
    api: &PartnerApi,
    client_id: &str,
    client_secret: &str,
    peer: IpAddr,
) -> Result<(TenantId, readside::integrations::clients::Integration), ApiError> {
    let invalid = || ApiError::unauthorized("invalid client credentials");
    let shaped = |text: &str, prefix: &str| {
        text.strip_prefix(prefix).is_some_and(|rest| rest.len() == 40 && api_keys::check_text(rest))
    };
    if !shaped(client_id, CLIENT_ID_PREFIX) || !shaped(client_secret, CLIENT_SECRET_PREFIX) {
        return Err(failed(api, peer, invalid()));
    }
    api.failed_authentications.check(peer)?;
    let stored = clients::find_by_client_id(&api.database, client_id).await.map_err(db_error)?;
    let Some(stored) = stored else { return Err(failed(api, peer, invalid())) };
    let presented = KeyHash::of(client_secret);
    // Every accepted hash is compared, each in constant time.
    let matches = stored
        .secret_hashes_at(Utc::now())
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
    Ok((tenant, stored.integration))
}

/// `POST /auth/session`: spends a session code once for a browser session in a cookie.
async fn open_session(
    api: &PartnerApi,
    request: Request<Incoming>,
    peer: IpAddr,
) -> Result<(Answer, String), ApiError> {
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
async fn embed_page(
    api: &PartnerApi,
    request: &Request<Incoming>,
    peer: IpAddr,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let Some(token) = session_token(request) else {
        return envelope::error_response(
            ApiError::unauthorized("no portal session: redeem a session code first"),
            request_id,
        );
    };
    let found = match identities::session(&api.database, &KeyHash::of(token).to_hex(), Utc::now()).await {
        Ok(found) => found,
        Err(error) => return envelope::error_response(db_error(error), request_id),
    };
    let Some(session) = found else {
        api.failed_authentications.failed(peer);
        return envelope::error_response(ApiError::unauthorized("the portal session is unknown or over"), request_id);
    };
    if !permissions::capabilities(session.bundle).contains(&Capability::EmbedPortal) {
        return envelope::error_response(
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
