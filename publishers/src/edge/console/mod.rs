//! The operator console at `/admin`: server-rendered pages over the partner API, for what
//! partners cannot do for themselves (EVCare's admin UI, Levy's Settings → Integrations, INVERS
//! FleetControl). It is a client like any other: every read and action of an organisation runs a
//! route of the partner route table (`PartnerApi::call_as`) with the operator as caller, so the
//! same permissions, commands and request log apply. Read directly: what no route offers (the
//! organisations, a vehicle's recent reports and commands, an integration's use, by tenant) and
//! the transports.
//!
//! Layout:
//! - `session`: sign-in (Argon2id), the session cookie, CSRF tokens, lock-out, sign-out.
//! - `html`: escaping, the page frame, tables and forms.
//! - `integrations`: integrations and API keys (secrets shown once); `webhooks`: endpoints, test
//!   events, the delivery log and replay; `fleet`: vehicles, their map, a vehicle's page and its
//!   commands; `bus`: queues, dead letters and replay, the outbox backlog (what [`BusOperations`]
//!   reads), with live numbers.
//! - `assets/`: the one stylesheet and script, compiled into the binary (no build step, no CDN).

mod bus;
mod chargers;
mod fleet;
mod html;
mod integrations;
mod profile;
mod routes;
mod session;
mod webhooks;

pub(crate) use routes::{Page, routes};

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use schemas::TenantId;
use serde_json::Value;

pub use bus::{BusOperations, GroupStats};

use self::html::{Frame, esc};
use self::session::Session;
use crate::edge::envelope::{self, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::auth::{Caller, Principal};
use crate::edge::router::{Doors, Found, Handler, Params, param};

/// Where the console is served.
pub(crate) const BASE: &str = "/admin";

/// `[console]`: the operator console at `/admin`, and how it treats sign-ins.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleSettings {
    /// Whether `/admin` is served at all.
    pub enabled: bool,
    /// Hours a sign-in lasts.
    pub session_hours: u64,
    /// Failed sign-ins in a row that lock an operator account.
    pub lock_after_failures: u32,
    /// Minutes the lock lasts.
    pub lock_minutes: u64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self { enabled: true, session_hours: 8, lock_after_failures: 5, lock_minutes: 15 }
    }
}

impl ConsoleSettings {
    /// How long a session lasts: a year at most, so `now + ttl` stays a date.
    pub fn session_ttl(&self) -> Duration {
        Duration::from_secs(self.session_hours.clamp(1, 24 * 366) * 3600)
    }

    /// Failed sign-ins in a row that lock an account (one at least).
    pub fn lock_after(&self) -> u32 {
        self.lock_after_failures.max(1)
    }

    /// How long the lock lasts.
    pub fn lock_for(&self) -> Duration {
        Duration::from_secs(self.lock_minutes.clamp(1, 60 * 24 * 366) * 60)
    }
}

/// The operator console.
pub struct Console {
    api: Arc<PartnerApi>,
    transports: Arc<dyn BusOperations>,
    settings: ConsoleSettings,
    /// The last reading of consumed totals, for rates.
    last_sample: Mutex<Option<bus::Sample>>,
    /// Password checks allowed at once: each takes 19 MiB and a core for tens of milliseconds.
    verifications: tokio::sync::Semaphore,
}

/// Password checks that may run at once.
const CONCURRENT_VERIFICATIONS: usize = 4;

/// Largest form body accepted.
const FORM_LIMIT: usize = 64 * 1024;

/// What a view answers.
pub(crate) enum View {
    /// A page with this title and body (HTML), in the frame of `organisation` when it has one.
    Page {
        /// Its title.
        title: String,
        /// The organisation the navigation leads around.
        organisation: Option<String>,
        /// The page's own HTML.
        body: String,
    },
    /// 303 to this path.
    Redirect(String),
    /// Signed out: to the sign-in page, the session cookie cleared by this `Set-Cookie`.
    SignedOut(String),
    /// JSON for the page's live numbers.
    Json(Value),
}

/// One request of a signed-in operator.
pub(crate) struct Visit<'a> {
    console: &'a Console,
    session: Session,
    request_id: &'a str,
    /// The form's fields (POST) or the query's (GET).
    fields: Vec<(String, String)>,
    /// The path's parameters (`org`, `id`, …).
    params: Params,
    /// Partner calls made so far: each gets its own request id (`{request_id}.{n}`), as the
    /// request log keeps one row per id.
    calls: std::sync::atomic::AtomicU32,
}

impl Visit<'_> {
    /// A parameter of the page's path.
    pub fn param(&self, name: &str) -> &str {
        param(&self.params, name)
    }

    /// A field of the form or query.
    pub fn field(&self, name: &str) -> Option<&str> {
        field_of(&self.fields, name)
    }

    /// Every value of a repeated field (checkboxes).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The session's CSRF token, for forms.
    pub fn csrf(&self) -> String {
        self.session.csrf()
    }

    /// Whether the operator sees every organisation and the whole bus.
    pub fn platform(&self) -> bool {
        self.session.operator.role == readside::operators::Role::Platform
    }

    /// The caller for organisation `org`: the operator as its admin, if the role reaches it
    /// (otherwise the organisation does not exist, as far as this operator can tell).
    pub fn caller(&self, org: &str) -> Result<Caller, ApiError> {
        let tenant = TenantId::new(org).map_err(|_| ApiError::not_found("no such organisation"))?;
        if !self.session.operator.may_see(tenant.as_str()) {
            return Err(ApiError::not_found("no such organisation"));
        }
        Ok(Caller { tenant, principal: Principal::Operator(Arc::clone(&self.session.operator)), subaccount: None })
    }

    /// Runs partner route `method path` (below the API's base) as `caller`; its envelope body.
    pub async fn call(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        query: Option<String>,
        body: Value,
    ) -> Result<Value, ApiError> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let request_id = format!("{}.{n}", self.request_id);
        self.console.api.call_as(caller.clone(), method, path, query, body, &request_id).await
    }

    /// `GET path` as `caller`: its `data`.
    pub async fn get(&self, caller: &Caller, path: &str, query: Option<String>) -> Result<Value, ApiError> {
        Ok(self.call(caller, Method::GET, path, query, Value::Null).await?["data"].take())
    }
}

/// The notices a redirect may ask for (`?notice=`): fixed texts, so a link cannot make the console
/// say something else.
const NOTICES: &[(&str, &str)] = &[
    ("disabled", "Disabled."),
    ("charger-reset", "Reset sent to the charger's socket."),
    ("enabled", "Enabled."),
    ("revoked", "Revoked: it works no more."),
    ("deleted", "Deleted."),
    ("test-sent", "Test event queued for delivery."),
    ("replayed", "Replay queued."),
    ("dead-letters-replayed", "Dead letters replayed to their queue."),
    ("nothing-replayed", "Nothing was replayed."),
    ("signed-out", "Signed out."),
    ("saved", "Saved."),
];

impl Console {
    /// The console over `api`, reading the transports through `transports`.
    pub fn new(api: Arc<PartnerApi>, transports: Arc<dyn BusOperations>, settings: ConsoleSettings) -> Arc<Self> {
        Arc::new(Self {
            api,
            transports,
            settings,
            last_sample: Mutex::default(),
            verifications: tokio::sync::Semaphore::new(CONCURRENT_VERIFICATIONS),
        })
    }

    /// Answers a request to a console page: the operator's session first (a GET without one is
    /// sent to sign in; the live numbers and forms get 401), a form's CSRF token, then the page.
    pub(crate) async fn handle(
        &self,
        request: Request<Incoming>,
        found: Found<'_>,
        request_id: &str,
    ) -> Response<Full<Bytes>> {
        match self.answer(request, found, request_id).await {
            Ok(response) => response,
            Err(error) => error_page(error),
        }
    }

    async fn answer(
        &self,
        request: Request<Incoming>,
        found: Found<'_>,
        request_id: &str,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let Handler::Console(page) = found.route.handler else { return Err(ApiError::internal()) };
        let method = request.method().clone();
        let query = request.uri().query().map(str::to_owned);
        let Some(session) = self.session(request.headers()).await? else {
            if method == Method::GET && !found.route.path.ends_with("/live") {
                return Ok(redirect("/admin/sign-in", None));
            }
            return Err(ApiError::unauthorized("sign in first"));
        };
        let fields = if method == Method::POST {
            same_origin(request.headers())?;
            let fields = crate::edge::body::read_form(request, FORM_LIMIT).await?;
            let presented = field_of(&fields, "csrf").unwrap_or_default();
            if !session.csrf_matches(presented) {
                tracing::warn!(operator = %session.operator.operator_id, "console form without a valid CSRF token");
                return Err(ApiError::forbidden("the form's CSRF token is missing or wrong; reload the page"));
            }
            fields
        } else {
            query.as_deref().map(parse_form).unwrap_or_default()
        };
        let notice = notice_of(&fields);
        let visit =
            Visit { console: self, session, request_id, fields, params: found.params, calls: Default::default() };
        Ok(match page(&visit).await? {
            View::Redirect(location) => redirect(&location, None),
            View::SignedOut(cleared) => redirect("/admin/sign-in?notice=signed-out", Some(cleared)),
            View::Json(value) => {
                let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
                response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
                secure(response)
            }
            View::Page { title, organisation, body } => {
                let csrf = visit.csrf();
                let frame = Frame {
                    title: &title,
                    operator: &visit.session.operator.email,
                    organisation: organisation.as_deref(),
                    platform: visit.platform(),
                    csrf: &csrf,
                    notice,
                };
                html_response(StatusCode::OK, html::page(&frame, &body))
            }
        })
    }

    /// Answers an open console route (its assets, signing in) through `answer`, where the console
    /// is served; else the route is not there.
    pub(crate) fn door(
        doors: &Doors<'_>,
        answer: impl FnOnce(&Console) -> Result<Response<Full<Bytes>>, ApiError>,
    ) -> Response<Full<Bytes>> {
        match doors.console {
            Some(console) => answer(console).unwrap_or_else(error_page),
            None => envelope::error_response(ApiError::not_found("no such route"), doors.request_id),
        }
    }

    /// `POST /admin/sign-in`, where the console is served.
    pub(crate) async fn sign_in_door(doors: &Doors<'_>, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match doors.console {
            Some(console) => console.sign_in_submitted(request, doors.peer).await.unwrap_or_else(error_page),
            None => envelope::error_response(ApiError::not_found("no such route"), doors.request_id),
        }
    }

    /// Where `/admin` leads: an organisation operator's own organisation, or the list of them.
    pub(super) fn home(&self, visit: &Visit<'_>) -> String {
        match (&visit.session.operator.tenant, visit.platform()) {
            (Some(tenant), false) => format!("/admin/orgs/{tenant}/integrations"),
            _ => "/admin/orgs".into(),
        }
    }

    /// `GET /admin/orgs`: the organisations a platform operator may open.
    pub(super) async fn organisations(&self, visit: &Visit<'_>) -> Result<View, ApiError> {
        if !visit.platform() {
            return Ok(View::Redirect(self.home(visit)));
        }
        let names =
            readside::operators::organisations(&self.api.database).await.map_err(crate::edge::envelope::db_error)?;
        let rows: Vec<html::Row> = names
            .iter()
            .map(|name| vec![format!("<a href=\"/admin/orgs/{0}/integrations\">{0}</a>", esc(name))])
            .collect();
        let body = format!(
            "<form method=\"get\" action=\"/admin/orgs/go\" class=\"stack\" id=\"open-organisation\">{}<button type=\"submit\">Open</button></form>{}",
            html::input("organisation", "Organisation id", "text", "", "required pattern=\"[a-z0-9][a-z0-9_-]{0,62}\""),
            html::table("organisations", &["Organisation"], &rows, "No organisation yet.")
        );
        Ok(View::Page { title: "Organisations".into(), organisation: None, body })
    }

    pub(super) fn sign_in_page(
        &self,
        error: Option<&str>,
        status: StatusCode,
        query: Option<&str>,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        let token = crate::api_keys::random_text(32, &self.api.random).map_err(|_| ApiError::internal())?;
        let notice = notice_of(&query.map(parse_form).unwrap_or_default());
        let message = match (error, notice) {
            (Some(error), _) => format!("<p class=\"error\" id=\"error\" role=\"alert\">{}</p>", esc(error)),
            (None, Some(notice)) => format!("<p class=\"notice\" role=\"status\">{}</p>", esc(notice)),
            (None, None) => String::new(),
        };
        let body = format!(
            "<main class=\"sign-in\"><h1>voltbus console</h1>{message}<form method=\"post\" action=\"/admin/sign-in\" class=\"stack\" id=\"sign-in\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{token}\">{}{}<button type=\"submit\">Sign in</button></form></main>",
            html::input("email", "Email", "email", "", "required autocomplete=\"username\""),
            html::input("password", "Password", "password", "", "required autocomplete=\"current-password\""),
        );
        let mut response = html_response(status, html::document("Sign in", &body));
        if let Ok(value) = HeaderValue::from_str(&session::set_cookie(session::SIGN_IN_COOKIE, &token, 3600)) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
        Ok(response)
    }

    async fn sign_in_submitted(
        &self,
        request: Request<Incoming>,
        peer: IpAddr,
    ) -> Result<Response<Full<Bytes>>, ApiError> {
        same_origin(request.headers())?;
        let expected = session::cookie(request.headers(), session::SIGN_IN_COOKIE).unwrap_or_default().to_owned();
        let fields = crate::edge::body::read_form(request, FORM_LIMIT).await?;
        let field = |name: &str| field_of(&fields, name).unwrap_or_default();
        use subtle::ConstantTimeEq;
        if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(field("csrf").as_bytes())) {
            return self.sign_in_page(Some("The form expired; sign in again."), StatusCode::FORBIDDEN, None);
        }
        match self.sign_in(peer, field("email"), field("password")).await {
            Ok(cookie) => Ok(redirect(BASE, Some(cookie))),
            Err(error) if error.status == StatusCode::UNAUTHORIZED => {
                self.sign_in_page(Some(session::REFUSED), StatusCode::UNAUTHORIZED, None)
            }
            Err(error) => Err(error),
        }
    }
}

/// An error, as a page of the console.
pub(crate) fn error_page(error: ApiError) -> Response<Full<Bytes>> {
    if error.status.is_server_error() {
        tracing::warn!(code = error.code, message = %error.message, "console answered with an error");
    }
    let body = format!(
        "<section class=\"error\" id=\"error\"><p><strong>{}</strong> {}</p><p><a href=\"/admin\">Back to the console</a></p></section>",
        esc(error.code),
        esc(&error.message)
    );
    let mut response = html_response(error.status, html::document("Error", &format!("<main>{body}</main>")));
    response.headers_mut().extend(error.headers);
    response
}

/// `GET /admin/orgs/go`: the organisation the form names.
fn go_to_organisation(visit: &Visit<'_>) -> Result<View, ApiError> {
    let org = visit.field("organisation").unwrap_or_default();
    let tenant = TenantId::new(org.trim()).map_err(|_| ApiError::not_found("no such organisation"))?;
    Ok(View::Redirect(format!("/admin/orgs/{tenant}/integrations")))
}

/// The console's stylesheet.
fn stylesheet() -> Response<Full<Bytes>> {
    asset("text/css; charset=utf-8", include_str!("assets/console.css"))
}

/// The console's script.
fn script() -> Response<Full<Bytes>> {
    asset("text/javascript; charset=utf-8", include_str!("assets/console.js"))
}

/// Refuses a POST whose `Origin` names another site than the one it was sent to.
fn same_origin(headers: &http::HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
    if host.is_empty() || authority != host {
        return Err(ApiError::forbidden("the form was sent from another site"));
    }
    Ok(())
}

/// A non-empty field of `fields`.
fn field_of<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// The fixed text a `notice` field names, if any.
fn notice_of(fields: &[(String, String)]) -> Option<&'static str> {
    let code = field_of(fields, "notice")?;
    NOTICES.iter().find(|(c, _)| *c == code).map(|(_, text)| *text)
}

fn parse_form(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes()).map(|(n, v)| (n.into_owned(), v.into_owned())).collect()
}

/// Headers every console answer carries: nothing but the console's own files may run or load,
/// no page may frame it, nothing is cached.
fn secure(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        // `no-referrer` would make Chromium send `Origin: null` with the console's own forms.
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

fn html_response(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    secure(response)
}

fn redirect(location: &str, cookie: Option<String>) -> Response<Full<Bytes>> {
    let mut response = html_response(StatusCode::SEE_OTHER, String::new());
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if let Some(value) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn asset(content_type: &'static str, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    let mut response = secure(response);
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}
