//! Request bodies as every front door takes them: at most a limit, JSON when there is one (or a
//! urlencoded form where a protocol says so), parsed into a type with a 422 naming the field at
//! fault.

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::edge::envelope::ApiError;

/// A request's body, at most `limit` bytes, which must be JSON when there is one.
pub(crate) async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let is_json = has_type(&request, "application/json");
    let body = read_limited(request, limit).await?;
    if !body.is_empty() && !is_json {
        return Err(ApiError::unsupported_media_type());
    }
    Ok(body)
}

/// The fields of a urlencoded form body of at most `limit` bytes (the console's forms, OAuth's
/// token requests).
pub(crate) async fn read_form(request: Request<Incoming>, limit: usize) -> Result<Vec<(String, String)>, ApiError> {
    if !has_type(&request, "application/x-www-form-urlencoded") {
        return Err(ApiError::unsupported_media_type());
    }
    let body = read_limited(request, limit).await?;
    Ok(url::form_urlencoded::parse(&body).into_owned().collect())
}

/// Whether the request's media type is `media_type`.
fn has_type(request: &Request<Incoming>, media_type: &str) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case(media_type)))
}

/// The body, at most `limit` bytes.
async fn read_limited(request: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let body = Limited::new(request.into_body(), limit).collect().await.map_err(|error| {
        if error.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            ApiError::too_large(limit)
        } else {
            ApiError::malformed("the request body could not be read")
        }
    })?;
    Ok(body.to_bytes())
}

/// `text` trimmed, if it has at most `max` characters (and one at least, when `required`); else
/// 422 naming `field`.
pub(crate) fn bounded_text(field: &str, text: &str, max: usize, required: bool) -> Result<String, ApiError> {
    let text = text.trim();
    if (required && text.is_empty()) || text.chars().count() > max {
        let least = usize::from(required);
        return Err(ApiError::invalid(field, format!("{field} must be {least} to {max} characters")));
    }
    Ok(text.to_owned())
}

/// Parses a JSON body into `T`, naming the field that is wrong.
pub(crate) fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Syntax first: not JSON at all is 400; JSON of the wrong shape is 422 naming the field.
    typed(json_of(body)?)
}

/// The body as JSON (an empty one as `{}`); not JSON at all is 400, and text holding a NUL
/// character (which no database column takes) is 422 naming the field.
pub(crate) fn json_of(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    let body: &[u8] = if body.is_empty() { b"{}" } else { body };
    let value =
        serde_json::from_slice(body).map_err(|e| ApiError::malformed(format!("the body is not valid JSON: {e}")))?;
    match nul_at(&value) {
        Some(field) => Err(ApiError::invalid(&field, "text may not contain NUL characters")),
        None => Ok(value),
    }
}

/// Where in `value` a string or key holds a NUL character, if anywhere.
fn nul_at(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(text) if text.contains('\0') => Some(String::new()),
        Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| nul_at(item).map(|inner| format!("[{i}]{inner}")))
        }
        Value::Object(fields) => fields.iter().find_map(|(name, field)| {
            if name.contains('\0') {
                return Some(String::new());
            }
            nul_at(field).map(|inner| {
                if inner.starts_with('[') {
                    format!("{name}{inner}")
                } else if inner.is_empty() {
                    name.clone()
                } else {
                    format!("{name}.{inner}")
                }
            })
        }),
        _ => None,
    }
}

/// `value` as a `T`; a wrong shape is 422 naming the field.
pub(crate) fn typed<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|error| {
        let field = error.path().to_string();
        let field = if field == "." { String::new() } else { field };
        ApiError::invalid(&field, error.inner().to_string())
    })
}
