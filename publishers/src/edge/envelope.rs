//! The JSON envelope of every response (Levy Fleets shape): `{data, meta}` on success,
//! `{data, pagination, meta}` for lists, `{error: {code, message, details}, meta}` on failure;
//! `meta` carries the request id and time.

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// JSON `null`, as a raw value.
fn null() -> Box<RawValue> {
    RawValue::from_string("null".to_owned()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

/// Header carrying the request id, also in `meta.request_id`.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// A fresh request id (`req_` + UUIDv7, sortable by time).
pub(crate) fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
}

fn meta(request_id: &str) -> Value {
    json!(Meta::now(request_id))
}

/// The envelope's `meta`.
#[derive(Serialize)]
struct Meta<'a> {
    request_id: &'a str,
    timestamp: String,
}

impl<'a> Meta<'a> {
    fn now(request_id: &'a str) -> Self {
        Self { request_id, timestamp: to_the_second(chrono::Utc::now()) }
    }
}

/// `at` in RFC 3339 to the second (`2026-12-07T15:59:00Z`), as `meta.timestamp` and
/// `X-RateLimit-Reset` show it: formatted once per second and thread, not once per answer
/// (chrono's formatting was a fiftieth of an authenticated GET's CPU).
pub(crate) fn to_the_second(at: chrono::DateTime<chrono::Utc>) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let second = at.timestamp();
    LAST.with_borrow_mut(|(formatted_at, text)| {
        if *formatted_at != second {
            *text = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            *formatted_at = second;
        }
        text.clone()
    })
}

/// A success envelope, serialised straight from its parts: building it as a `Value` first
/// copied `data` whole, which was a tenth of an authenticated GET's CPU.
#[derive(Serialize)]
struct Enveloped<'a> {
    data: &'a RawValue,
    meta: Meta<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pagination: Option<Pagination>,
}

/// `pagination` of list answers.
#[derive(Serialize, schemars::JsonSchema)]
pub(crate) struct Pagination {
    page: u64,
    limit: u64,
    total: u64,
    has_next: bool,
    has_prev: bool,
}

/// Where a list page is: `page` is 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    /// 1-based page number.
    pub page: u64,
    /// Items per page.
    pub limit: u64,
}

impl Page {
    /// Rows to skip.
    pub fn offset(&self) -> u64 {
        (self.page - 1).saturating_mul(self.limit)
    }
}

/// A successful answer before it is wrapped in the envelope.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: StatusCode,
    pub data: Box<RawValue>,
    /// Set for lists: the page shown and the number of items in all.
    pub pagination: Option<(Page, u64)>,
    /// What an idempotent replay shows instead of `data`, when `data` holds a secret.
    pub replay_data: Option<Box<RawValue>>,
    /// `data` is the whole body: a partner's protocol fixes the shape (the Etvas callback).
    pub bare: bool,
}

impl Answer {
    /// `200 {data}`.
    pub fn ok(data: impl Serialize) -> Self {
        Self::with_status(StatusCode::OK, data)
    }

    /// `{data}` with another success status (`201` on creation).
    pub fn with_status(status: StatusCode, data: impl Serialize) -> Self {
        // Straight to text, never a `Value`: a JSON tree of the answer cost more than the rest
        // of an authenticated GET. Answers are built from our own types: serialising them cannot fail.
        let data = serde_json::value::to_raw_value(&data).unwrap_or_else(|_| null());
        Self { status, data, pagination: None, replay_data: None, bare: false }
    }

    /// `200` with `body` as it is, outside the envelope.
    pub fn bare(body: impl Serialize) -> Self {
        Self { bare: true, ..Self::ok(body) }
    }

    /// Keeps `field` of `data` out of the copy kept for idempotent replays: a secret is shown once.
    pub fn withholding(mut self, field: &str) -> Self {
        let mut kept: Value = serde_json::from_str(self.data.get()).unwrap_or_default();
        kept[field] = Value::Null;
        self.replay_data = Some(serde_json::value::to_raw_value(&kept).unwrap_or_else(|_| null()));
        self
    }

    /// `200 {data: [...], pagination}`.
    pub fn list(items: impl Serialize, page: Page, total: u64) -> Self {
        Self { pagination: Some((page, total)), ..Self::ok(items) }
    }

    /// [`Answer::list`] of the page `page` of `all`, which were found whole (sorted in memory).
    pub fn page_of<T: Serialize>(all: Vec<T>, page: Page) -> Self {
        let total = all.len() as u64;
        let skip = usize::try_from(page.offset()).unwrap_or(usize::MAX);
        let items: Vec<T> =
            all.into_iter().skip(skip).take(usize::try_from(page.limit).unwrap_or(usize::MAX)).collect();
        Self::list(items, page, total)
    }

    /// The envelope's body.
    pub fn body(&self, request_id: &str) -> Value {
        // The console's calls, not a partner's: parsing the text back costs them little.
        serde_json::from_str(&self.text(request_id)).unwrap_or_default()
    }

    /// The envelope's body, as sent.
    pub fn text(&self, request_id: &str) -> String {
        self.text_with(&self.data, request_id)
    }

    /// The envelope's body with `data` in place of the answer's own (an idempotent replay's copy).
    pub fn text_with(&self, data: &RawValue, request_id: &str) -> String {
        if self.bare {
            return data.get().to_owned();
        }
        // Serialising our own values to a string cannot fail.
        serde_json::to_string(&self.enveloped(data, request_id)).unwrap_or_default()
    }

    fn enveloped<'a>(&self, data: &'a RawValue, request_id: &'a str) -> Enveloped<'a> {
        let pagination = self.pagination.map(|(page, total)| Pagination {
            page: page.page,
            limit: page.limit,
            total,
            has_next: page.offset().saturating_add(page.limit) < total,
            has_prev: page.page > 1,
        });
        Enveloped { data, meta: Meta::now(request_id), pagination }
    }
}

/// A failed answer: status, stable code, message, details, and headers it needs (`Retry-After`).
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Value,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), details: json!({}), headers: Vec::new() }
    }

    /// Adds `details`.
    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// 401: no key, or not a usable one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
    }

    /// 403: the key may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "FORBIDDEN", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 405: the path exists, the method does not.
    pub fn method_not_allowed(allowed: &str) -> Self {
        let mut error = Self::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", format!("use {allowed}"));
        if let Ok(value) = HeaderValue::from_str(allowed) {
            error.headers.push((header::ALLOW, value));
        }
        error
    }

    /// 400: the body is not JSON at all (or a header is unreadable).
    pub fn malformed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message)
    }

    /// 422: a field (body path, query parameter or header) has a wrong type or value.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_ERROR", message).details(json!({ "field": field }))
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "CONFLICT", message)
    }

    /// A command's refusal, as the status its code stands for: a ride's rules are 409s with
    /// their own codes, an empty wallet is 402, anything unknown a 422.
    pub fn refused(code: &str, message: String) -> Self {
        use readside::codes;
        let (status, code) = match code {
            codes::NOT_FOUND => return Self::not_found(message),
            codes::CONFLICT => return Self::conflict(message),
            codes::INSUFFICIENT_FUNDS => (StatusCode::PAYMENT_REQUIRED, codes::INSUFFICIENT_FUNDS),
            codes::INVALID_TRANSITION => (StatusCode::CONFLICT, codes::INVALID_TRANSITION),
            codes::CUSTOMER_BLOCKED => (StatusCode::CONFLICT, codes::CUSTOMER_BLOCKED),
            codes::VEHICLE_UNAVAILABLE => (StatusCode::CONFLICT, codes::VEHICLE_UNAVAILABLE),
            codes::NO_RIDE_ZONE => (StatusCode::CONFLICT, codes::NO_RIDE_ZONE),
            codes::INVALID_CODE => (StatusCode::UNAUTHORIZED, codes::INVALID_CODE),
            codes::TOO_MANY_ATTEMPTS => (StatusCode::TOO_MANY_REQUESTS, codes::TOO_MANY_ATTEMPTS),
            codes::RATE_LIMITED => (StatusCode::TOO_MANY_REQUESTS, codes::RATE_LIMITED),
            codes::CHARGER_UNAVAILABLE => (StatusCode::CONFLICT, codes::CHARGER_UNAVAILABLE),
            codes::WORKSHOP_NOT_ALLOWED => (StatusCode::FORBIDDEN, codes::WORKSHOP_NOT_ALLOWED),
            _ => return Self::invalid("", message),
        };
        Self::new(status, code, message)
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE", format!("request body over {limit} bytes"))
            .details(json!({ "limit_bytes": limit }))
    }

    /// 415: a body that is not `application/json`.
    pub fn unsupported_media_type() -> Self {
        Self::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "VALIDATION_ERROR", "send bodies as application/json")
            .details(json!({ "field": "content-type" }))
    }

    /// 422: an idempotency key reused with another request.
    pub fn idempotency_key_reused() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "IDEMPOTENCY_KEY_REUSED",
            "this Idempotency-Key was used with a different request",
        )
        .details(json!({ "field": "idempotency-key" }))
    }

    /// 504: the bus did not answer in time; the command may still take effect.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "TIMEOUT", message)
    }

    /// 500: our fault; the detail goes to the log, not to the caller.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "internal error; quote the request_id when reporting it",
        )
    }

    /// 503: a dependency is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    /// The envelope's body.
    pub fn body(&self, request_id: &str) -> Value {
        json!({
            "error": { "code": self.code, "message": self.message, "details": self.details },
            "meta": meta(request_id),
        })
    }
}

/// A JSON response with the request id header.
pub(crate) fn json_response(status: StatusCode, body: String, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    // Room for the rate-limit and other headers most answers add: growing the map cost more.
    headers.reserve(12);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, value);
    }
    response
}

/// A failed read of the database: logged, and 503 to the caller (nothing was done).
pub(crate) fn db_error(error: sea_orm::DbErr) -> ApiError {
    tracing::error!(%error, "database read failed");
    ApiError::unavailable("cannot read right now")
}

/// The answer of a door that checks its own credential: the envelope, never cached (it carries
/// a token or a session), with the cookie it sets, if any; or the error.
pub(crate) fn door_response(
    answer: Result<(Answer, Option<String>), ApiError>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    match answer {
        Ok((answer, cookie)) => {
            let mut response = json_response(answer.status, answer.text(request_id), request_id);
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(error) => error_response(error, request_id),
    }
}

/// `error` as an answer: the envelope, with the headers it asks for.
pub(crate) fn error_response(error: ApiError, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = json_response(error.status, error.body(request_id).to_string(), request_id);
    response.headers_mut().extend(error.headers);
    response
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[test]
    fn a_time_is_shown_to_its_second_and_the_next_second_is_not_the_last_ones() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 12, 7, 15, 59, 0).unwrap();
        assert_eq!(super::to_the_second(at), "2026-12-07T15:59:00Z");
        assert_eq!(super::to_the_second(at + chrono::Duration::milliseconds(999)), "2026-12-07T15:59:00Z");
        assert_eq!(super::to_the_second(at + chrono::Duration::seconds(1)), "2026-12-07T15:59:01Z");
    }
}
