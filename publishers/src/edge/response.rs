//! The JSON envelope of every response (Levy Fleets shape): `{data, meta}` on success,
//! `{error: {code, message, details}, meta}` on failure; `meta` carries the request id.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};

/// Header carrying the request id, also in `meta.request_id`.
pub(crate) const REQUEST_ID: &str = "x-request-id";

/// A fresh request id (`req_` + UUIDv7, sortable by time).
pub(crate) fn new_request_id() -> String {
    format!("req_{}", uuid::Uuid::now_v7().simple())
}

fn meta(request_id: &str) -> Value {
    json!({
        "request_id": request_id,
        "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// A JSON response with the request id header.
pub(crate) fn json_response(status: StatusCode, body: &Value, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert(REQUEST_ID, value);
    }
    response
}

/// `{error: {code, message, details}, meta}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str, request_id: &str) -> Response<Full<Bytes>> {
    let body = json!({
        "error": { "code": code, "message": message, "details": {} },
        "meta": meta(request_id),
    });
    json_response(status, &body, request_id)
}
