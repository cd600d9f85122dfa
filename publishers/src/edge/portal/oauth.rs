//! OAuth 2.0 client credentials (RFC 6749 §4.4) for integrations, beside the seed's own
//! `/auth/client-token`: `POST /oauth/token` with `grant_type=client_credentials`, the client
//! authenticated by HTTP Basic or by `client_id` and `client_secret` in the form (§2.3.1, one way
//! only), `scope` as the permission names the token is narrowed to (within the integration's
//! bundle); errors as §5.2 says; the server's metadata at `/.well-known/oauth-authorization-server`
//! (RFC 8414). The token is a machine token, so it works wherever machine tokens work.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use chrono::Utc;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use schemars::JsonSchema;
use schemas::integrations::Permission;
use serde::Serialize;
use serde_json::json;

use crate::edge::body::read_form;
use crate::edge::envelope::{ApiError, json_response};
use crate::edge::router::Doors;

/// Where the token endpoint is.
pub(crate) const TOKEN_PATH: &str = "/oauth/token";
/// Where the metadata is (RFC 8414 §3, an issuer without a path).
pub(crate) const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// A token (RFC 6749 §5.1).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AccessToken {
    /// The machine token (`evc_mt_…`), presented as `Authorization: Bearer …`.
    access_token: String,
    /// `Bearer`.
    token_type: &'static str,
    /// Seconds it lives.
    expires_in: u64,
    /// The permissions it grants, space-separated.
    scope: String,
}

/// The authorization server's metadata (RFC 8414 §2).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ServerMetadata {
    /// This edge, as the caller reached it.
    issuer: String,
    /// `POST` here for tokens.
    token_endpoint: String,
    /// `client_credentials`.
    grant_types_supported: [&'static str; 1],
    /// HTTP Basic, or the credentials in the form.
    token_endpoint_auth_methods_supported: [&'static str; 2],
    /// The permission names a `scope` may hold.
    scopes_supported: Vec<String>,
    /// None: there is no authorization endpoint.
    #[schemars(length(max = 0))]
    response_types_supported: Vec<&'static str>,
    /// The partner API's OpenAPI document.
    service_documentation: String,
}

/// The body of a refusal (RFC 6749 §5.2), as the OpenAPI document describes it.
#[derive(JsonSchema)]
#[allow(dead_code)]
pub(crate) struct OAuthErrorBody {
    /// The error code.
    error: OAuthErrorCode,
    /// What went wrong, for humans.
    error_description: String,
}

/// The error codes of RFC 6749 §5.2 this endpoint answers with, and §4.1.2.1's
/// `temporarily_unavailable`.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum OAuthErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidScope,
    UnsupportedGrantType,
    TemporarilyUnavailable,
}

/// An error of RFC 6749 §5.2: its status, code and description, and whether the client tried HTTP
/// Basic (then a 401 names the scheme, §5.2 `invalid_client`).
struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic: bool,
    headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            error,
            description: description.into(),
            basic: false,
            headers: Vec::new(),
        }
    }

    /// The portal's refusal of the client as §5.2 words it.
    fn of(refused: ApiError, basic: bool) -> Self {
        let error = match refused.status {
            StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS => "invalid_client",
            StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
            _ => "invalid_request",
        };
        Self { status: refused.status, error, description: refused.message, basic, headers: refused.headers }
    }
}

/// `POST /oauth/token`.
pub(crate) async fn token(doors: &Doors<'_>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = match issue(doors, request).await {
        Ok(token) => json_response(StatusCode::OK, json!(token).to_string(), doors.request_id),
        Err(error) => {
            let body = json!({ "error": error.error, "error_description": error.description });
            let mut response = json_response(error.status, body.to_string(), doors.request_id);
            response.headers_mut().extend(error.headers);
            if error.status == StatusCode::UNAUTHORIZED && error.basic {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"voltbus\""));
            }
            response
        }
    };
    no_store(answer)
}

/// Tokens are never cached (§5.1).
fn no_store(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response.headers_mut().insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn issue(doors: &Doors<'_>, request: Request<Incoming>) -> Result<AccessToken, OAuthError> {
    let api = doors.api;
    let basic = basic_credentials(request.headers().get(header::AUTHORIZATION)).map_err(|()| {
        let mut refused = OAuthError::new("invalid_client", "the Authorization header is not HTTP Basic");
        refused.status = StatusCode::UNAUTHORIZED;
        refused.basic = true;
        refused
    })?;
    let mut form = read_form(request, api.settings.body_limit).await.map_err(|refused| {
        let mut error = OAuthError::new("invalid_request", refused.message);
        error.status = refused.status;
        error
    })?;
    // §3.2: a parameter sent twice makes the request invalid.
    form.sort();
    if form.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err(OAuthError::new("invalid_request", "a parameter was sent more than once"));
    }
    let field = |name: &str| form.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let (client_id, client_secret) = match (basic, field("client_id"), field("client_secret")) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(OAuthError::new("invalid_request", "authenticate the client one way only"));
        }
        (Some((id, secret)), None, None) => (id, secret),
        (None, Some(id), Some(secret)) => (id.to_owned(), secret.to_owned()),
        (None, _, _) => {
            let mut refused = OAuthError::new("invalid_client", "client authentication is missing");
            refused.status = StatusCode::UNAUTHORIZED;
            refused.basic = true;
            return Err(refused);
        }
    };
    let used_basic = field("client_id").is_none();
    match field("grant_type") {
        None => return Err(OAuthError::new("invalid_request", "grant_type is missing")),
        Some("client_credentials") => {}
        Some(other) => {
            return Err(OAuthError::new("unsupported_grant_type", format!("`{other}`: only client_credentials")));
        }
    }
    let (tenant, integration) = super::authenticate(api, &client_id, &client_secret, doors.peer)
        .await
        .map_err(|refused| OAuthError::of(refused, used_basic))?;
    let granted = crate::permissions::bundle(integration.bundle);
    let scope = match field("scope") {
        None => None,
        Some(asked) => {
            let mut scope = Vec::new();
            for name in asked.split(' ').filter(|n| !n.is_empty()) {
                match crate::permissions::parse(name) {
                    Ok(permission) if granted.contains(&permission) => scope.push(permission),
                    _ => return Err(OAuthError::new("invalid_scope", format!("`{name}` is not the integration's"))),
                }
            }
            scope.sort();
            scope.dedup();
            Some(scope)
        }
    };
    let now = Utc::now();
    let (access_token, claims) =
        api.tokens.issue(integration.id, tenant, (integration.bundle, integration.allowed_endpoints), scope, now);
    tracing::info!(integration = %integration.id, "OAuth access token issued");
    let scope: Vec<String> = claims.permissions().iter().map(name_of).collect();
    Ok(AccessToken {
        access_token,
        token_type: "Bearer",
        expires_in: api.tokens.ttl().as_secs(),
        scope: scope.join(" "),
    })
}

/// The permission's name, as the seed spells it.
fn name_of(permission: &Permission) -> String {
    serde_json::to_value(permission).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// The client id and secret of an `Authorization: Basic` header (each form-urlencoded first,
/// §2.3.1), if one was sent; `Err` when the header is there but no such thing.
pub(crate) fn basic_credentials(header: Option<&HeaderValue>) -> Result<Option<(String, String)>, ()> {
    let Some(value) = header else { return Ok(None) };
    let encoded = value.to_str().ok().and_then(|v| v.strip_prefix("Basic ")).ok_or(())?;
    let decoded = STANDARD.decode(encoded.trim()).ok().and_then(|bytes| String::from_utf8(bytes).ok()).ok_or(())?;
    let (id, secret) = decoded.split_once(':').ok_or(())?;
    let unescape =
        |text: &str| url::form_urlencoded::parse(format!("x={text}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Ok(Some((unescape(id).ok_or(())?, unescape(secret).ok_or(())?)))
}

/// `GET /.well-known/oauth-authorization-server`: the issuer is this edge as the caller reached it
/// (`X-Forwarded-Proto` says whether through TLS).
pub(crate) fn metadata(doors: &Doors<'_>, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    let host = request.headers().get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("localhost");
    let scheme = match request.headers().get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
        Some("https") => "https",
        _ => "http",
    };
    let issuer = format!("{scheme}://{host}");
    let scopes: Vec<String> = Permission::ALL.iter().map(name_of).collect();
    let metadata = ServerMetadata {
        token_endpoint: format!("{issuer}{TOKEN_PATH}"),
        grant_types_supported: ["client_credentials"],
        token_endpoint_auth_methods_supported: ["client_secret_basic", "client_secret_post"],
        scopes_supported: scopes,
        response_types_supported: Vec::new(),
        service_documentation: format!("{issuer}/api/partner/v1/openapi.json"),
        issuer,
    };
    json_response(StatusCode::OK, json!(metadata).to_string(), doors.request_id)
}
