//! OpenAPI 3.1 documents generated from the edge's one route table and the Rust types of bodies
//! and answers (their JSON Schemas come from schemars, dialect 2020-12 as OpenAPI 3.1 uses): the
//! partner API's, served at `/api/partner/v1/openapi.json` with paths below its base as partners
//! have always read it; and the whole edge's, at `/openapi.json`: every front door (the partner
//! API, the portal, the mobile app, marketplace and payment providers' callbacks, operations),
//! each operation tagged with its door. The console's pages are HTML forms, not an API: they are
//! routed from the same table but not documented.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use crate::edge::envelope::Pagination;
use crate::edge::partner::auth::{API_KEY_HEADER, SUBACCOUNT_HEADER};
use crate::edge::partner::idempotency;
use crate::edge::partner::routes::BASE;
use crate::edge::portal::oauth::{OAuthErrorBody, TOKEN_PATH};
use crate::edge::router::{Access, Door, Handler, Returns, Route};
use schemas::integrations::Permission;

/// Every permission as an OAuth scope, with what it allows.
fn scopes() -> Map<String, Value> {
    Permission::ALL
        .iter()
        .filter_map(|permission| serde_json::to_value(permission).ok()?.as_str().map(str::to_owned))
        .map(|name| {
            let description = format!("The `{name}` permission.");
            (name, Value::String(description))
        })
        .collect()
}

/// `meta` of every answer.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Meta {
    /// Quote it when reporting a problem.
    request_id: String,
    /// When the answer was made.
    timestamp: chrono::DateTime<chrono::Utc>,
}

/// `error` of failed answers.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct ErrorBody {
    /// Stable code: `UNAUTHORIZED`, `FORBIDDEN`, `NOT_FOUND`, `VALIDATION_ERROR`, `CONFLICT`,
    /// `RATE_LIMIT_EXCEEDED`, `IDEMPOTENCY_KEY_REUSED`, `TIMEOUT`, `INTERNAL`, …
    code: String,
    /// What went wrong, for humans.
    message: String,
    /// Specifics: the field at fault, the window exceeded, …
    details: Map<String, Value>,
}

/// A failed answer.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct ErrorEnvelope {
    error: ErrorBody,
    meta: Meta,
}

fn header_parameter(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "header", "required": false, "description": description, "schema": schema })
}

/// Whether a route passes through the partner pipeline (a key or machine token, limits,
/// idempotency).
fn partner_pipeline(route: &Route) -> bool {
    matches!(route.handler, Handler::Partner(_)) && route.access != Access::Public
}

/// Every error answer, once, under `components/responses`: its status, its name there, what it
/// means, and the envelope's `code` its example carries.
const ERRORS: [(&str, &str, &str, &str); 14] = [
    ("400", "BadRequest", "The body is not JSON.", "MALFORMED_REQUEST"),
    (
        "401",
        "Unauthorized",
        "Missing, unknown, disabled or expired credential (key, token, session, secret, code or signature).",
        "UNAUTHORIZED",
    ),
    ("402", "InsufficientFunds", "The wallet cannot cover it, even with its overdraft.", "INSUFFICIENT_FUNDS"),
    (
        "403",
        "Forbidden",
        "The credential lacks the permission, bundle or subaccount, or the caller may not do this.",
        "FORBIDDEN",
    ),
    ("404", "NotFound", "No such resource (in this organisation).", "NOT_FOUND"),
    ("405", "MethodNotAllowed", "Method not allowed on this path; `Allow` lists those that are.", "METHOD_NOT_ALLOWED"),
    (
        "409",
        "Conflict",
        "Conflict with the resource's state, or the same Idempotency-Key still in progress.",
        "CONFLICT",
    ),
    ("413", "PayloadTooLarge", "The body is too large.", "PAYLOAD_TOO_LARGE"),
    ("415", "UnsupportedMediaType", "The body is not application/json.", "UNSUPPORTED_MEDIA_TYPE"),
    (
        "422",
        "ValidationError",
        "A field, parameter or header is invalid; `details.field` names it.",
        "VALIDATION_ERROR",
    ),
    (
        "429",
        "TooManyRequests",
        "A rate-limit window is used up (keys, tokens), or too many failed attempts from this address; see Retry-After.",
        "RATE_LIMIT_EXCEEDED",
    ),
    ("500", "Internal", "Internal error; quote `meta.request_id`.", "INTERNAL"),
    ("503", "Unavailable", "A dependency is unavailable; nothing was done.", "SERVICE_UNAVAILABLE"),
    ("504", "Timeout", "The bus did not answer in time; retry with the same Idempotency-Key.", "TIMEOUT"),
];

/// The rate-limit headers every answer through the partner pipeline carries (and 429's
/// `Retry-After`), under `components/headers`.
const RATE_HEADERS: [(&str, &str, &str); 6] = [
    ("X-RateLimit-Limit", "integer", "Requests allowed in the tightest window."),
    ("X-RateLimit-Remaining", "integer", "Requests left in that window."),
    ("X-RateLimit-Reset", "string", "When that window starts again (RFC 3339)."),
    ("RateLimit-Policy", "string", "Every window: its quota and length (IETF draft `RateLimit-Policy`)."),
    ("RateLimit", "string", "The tightest window's remaining requests and seconds to reset (IETF draft `RateLimit`)."),
    ("Retry-After", "integer", "Seconds to wait before trying again (429 only)."),
];

/// The statuses a route may fail with.
fn errors_of(route: &Route) -> Vec<&'static str> {
    let mut errors = vec!["405", "422", "500"];
    if partner_pipeline(route) || matches!(route.access, Access::Session | Access::Own) {
        errors.extend(["401", "403", "404", "429", "503"]);
    }
    if route.body.is_some() || route.method != http::Method::GET {
        errors.extend(["400", "409", "413", "415", "504"]);
    }
    // Money moves on these: a wallet that cannot cover it is its own answer.
    if crate::edge::partner::routes::PAYING.contains(&route.operation) {
        errors.push("402");
    }
    errors.sort_unstable();
    errors.dedup();
    errors
}

/// `components/responses` and `components/headers`: each error answer in the envelope, with an
/// example, and the rate-limit headers.
fn shared_responses(error: &Value) -> (Value, Value) {
    let mut headers = Map::new();
    for (name, kind, description) in RATE_HEADERS {
        headers.insert(name.to_owned(), json!({ "description": description, "schema": { "type": kind } }));
    }
    let rate_headers = |with_retry: bool| {
        let refs = RATE_HEADERS
            .iter()
            .filter(|(name, _, _)| with_retry || *name != "Retry-After")
            .map(|(name, _, _)| (name.to_string(), json!({ "$ref": format!("#/components/headers/{name}") })));
        Value::Object(refs.collect())
    };
    let mut responses = Map::new();
    for (status, name, description, code) in ERRORS {
        let example = json!({
            "error": { "code": code, "message": description, "details": {} },
            "meta": { "request_id": "req_01a24cfb2de5728eadcdd99e221786cd", "timestamp": EXAMPLE_TIME },
        });
        let mut response = json!({
            "description": description,
            "content": { "application/json": { "schema": error, "example": example } },
        });
        match status {
            "429" => response["headers"] = rate_headers(true),
            "401" => {
                response["headers"] = json!({ "WWW-Authenticate": {
                    "description": "The scheme to authenticate with, where the route takes HTTP Basic.",
                    "schema": { "type": "string" } } });
            }
            "405" => {
                response["headers"] = json!({ "Allow": { "description": "The methods this path takes.", "schema": { "type": "string" } } });
            }
            _ => {}
        }
        responses.insert(name.to_owned(), response);
    }
    (Value::Object(responses), Value::Object(headers))
}

/// Who may call `route`, as OpenAPI security requirements: a key, a machine token or an OAuth
/// token narrowed to the permission's scope; a phone's session; an integration's HTTP Basic; or
/// nothing the document can name (the route checks its own credential).
fn security_of(route: &Route) -> Value {
    let permission = |permission: Permission| serde_json::to_value(permission).unwrap_or_default();
    match route.access {
        Access::Session => json!([{ "mobileSession": [] }]),
        // An integration's callback URL: its client secret is in the URL, or sent as HTTP Basic.
        _ if route.door == Door::Marketplace && route.path.contains("{client_id}") => {
            if route.path.contains("{client_secret}") { json!([]) } else { json!([{ "integrationBasic": [] }]) }
        }
        Access::Public | Access::Own | Access::Operator => json!([]),
        Access::Admin => json!([{ "partnerApiKey": [] }]),
        Access::Key => json!([{ "partnerApiKey": [] }, { "bearer": [] }, { "oauth2": [] }]),
        Access::Capability(_) => json!([{ "bearer": [] }, { "oauth2": [] }]),
        Access::Permission(needed) => {
            json!([{ "partnerApiKey": [] }, { "bearer": [] }, { "oauth2": [permission(needed)] }])
        }
    }
}

/// A fixed instant for examples, so the written documents do not change from run to run.
const EXAMPLE_TIME: &str = "2026-12-06T12:00:00Z";
/// A UUID in any case, as a pattern.
const UUID_PATTERN: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
/// A fixed id for examples.
const EXAMPLE_ID: &str = "01a24cfb-2d22-74ed-abf1-301747869924";

/// A value `schema` accepts, made from its own words (its example, default, first value, format,
/// bounds), `schemas` resolving its references. Optional properties are left out below `depth` 3,
/// so recursive types end.
pub(crate) fn example(schema: &Value, schemas: &Map<String, Value>, depth: usize) -> Value {
    let Some(schema) = schema.as_object() else { return json!({}) };
    if let Some(found) = schema.get("examples").and_then(|e| e.get(0)).or_else(|| schema.get("example")) {
        return found.clone();
    }
    for word in ["const", "default"] {
        if let Some(value) = schema.get(word) {
            return value.clone();
        }
    }
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let name = target.rsplit('/').next().unwrap_or_default();
        return schemas.get(name).map_or(json!({}), |target| example(target, schemas, depth + 1));
    }
    if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
        let mut merged = Map::new();
        for part in parts {
            match example(part, schemas, depth) {
                Value::Object(fields) => merged.extend(fields),
                // `allOf: [{$ref}]` beside a description (draft 7's way to annotate a reference)
                // of something that is no object: its value is the example.
                other => return other,
            }
        }
        if let Some(Value::Object(own)) = own_object(schema, schemas, depth) {
            merged.extend(own);
        }
        return Value::Object(merged);
    }
    for word in ["oneOf", "anyOf"] {
        if let Some(choices) = schema.get(word).and_then(Value::as_array) {
            let chosen = choices.iter().find(|c| c.get("type") != Some(&json!("null"))).or(choices.first());
            let mut value = chosen.map_or(Value::Null, |choice| example(choice, schemas, depth));
            // Fields beside the choice (an internally tagged enum's common ones) join it.
            if let (Value::Object(fields), Some(Value::Object(own))) = (&mut value, own_object(schema, schemas, depth))
            {
                fields.extend(own);
            }
            return value;
        }
    }
    let kind = match schema.get("type") {
        Some(Value::Array(kinds)) => kinds.iter().filter_map(Value::as_str).find(|k| *k != "null").unwrap_or("null"),
        Some(Value::String(kind)) => kind.as_str(),
        _ if schema.contains_key("properties") => "object",
        _ => return json!({}),
    };
    let bound = |word: &str| schema.get(word).and_then(Value::as_f64);
    match kind {
        "object" => own_object(schema, schemas, depth).unwrap_or_else(|| json!({})),
        "array" => {
            if let Some(items) = schema.get("prefixItems").and_then(Value::as_array) {
                return Value::Array(items.iter().map(|item| example(item, schemas, depth)).collect());
            }
            let count = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1);
            let count = if schema.get("maxItems").and_then(Value::as_u64) == Some(0) { 0 } else { count.max(1) };
            let item = schema.get("items").map_or(json!({}), |items| example(items, schemas, depth));
            Value::Array((0..count).map(|_| item.clone()).collect())
        }
        "integer" | "number" => {
            let low = bound("minimum").or(bound("exclusiveMinimum").map(|m| m + 1.0)).unwrap_or(1.0);
            let high = bound("maximum").or(bound("exclusiveMaximum").map(|m| m - 1.0)).unwrap_or(f64::MAX);
            let value = low.max(1.0).min(high);
            if kind == "integer" { json!(value as i64) } else { json!(value) }
        }
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => json!(example_text(schema)),
    }
}

/// The properties of an object schema, each with its example (the optional ones only near the top).
fn own_object(schema: &Map<String, Value>, schemas: &Map<String, Value>, depth: usize) -> Option<Value> {
    let properties = schema.get("properties")?.as_object()?;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
    let fields = properties
        .iter()
        .filter(|(name, _)| depth < 3 || required.contains(&name.as_str()))
        .map(|(name, property)| (name.clone(), example(property, schemas, depth + 1)));
    Some(Value::Object(fields.collect()))
}

/// A string of the schema's format, pattern and length.
fn example_text(schema: &Map<String, Value>) -> String {
    let format = schema.get("format").and_then(Value::as_str).unwrap_or_default();
    let pattern = schema.get("pattern").and_then(Value::as_str).unwrap_or_default();
    let text = match (format, pattern) {
        ("uuid", _) | (_, UUID_PATTERN) => EXAMPLE_ID.to_owned(),
        ("date-time", _) => EXAMPLE_TIME.to_owned(),
        ("date", _) => "2026-12-06".to_owned(),
        ("email", _) => "driver@example.com".to_owned(),
        ("uri" | "url", _) => "https://partner.example.com/voltbus".to_owned(),
        (_, "^[A-Z]{3}$") => "EUR".to_owned(),
        (_, pattern) if pattern.contains("{4}-") => "2026-12".to_owned(),
        _ => "example".to_owned(),
    };
    let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = schema.get("maxLength").and_then(Value::as_u64).map_or(usize::MAX, |m| m as usize);
    let mut text = text;
    while text.chars().count() < min {
        text.push('x');
    }
    text.chars().take(max).collect()
}

/// `{oneOf: [{const, type: string, description}…]}` as `{type: string, enum, x-enum-descriptions}`.
fn plain_enum(map: &mut Map<String, Value>) {
    let Some(Value::Array(choices)) = map.get("oneOf") else { return };
    let constant = |choice: &Value| {
        let fields = choice.as_object()?;
        let only_these = fields.keys().all(|k| matches!(k.as_str(), "const" | "type" | "description"));
        (only_these && fields.get("type") == Some(&json!("string"))).then_some(())?;
        Some((fields.get("const")?.as_str()?.to_owned(), fields.get("description").cloned()))
    };
    let Some(values) = choices.iter().map(constant).collect::<Option<Vec<_>>>() else { return };
    map.remove("oneOf");
    map.insert("type".into(), json!("string"));
    let descriptions: Map<String, Value> =
        values.iter().filter_map(|(value, description)| Some((value.clone(), description.clone()?))).collect();
    map.insert("enum".into(), values.into_iter().map(|(value, _)| Value::String(value)).collect());
    if !descriptions.is_empty() {
        map.insert("x-enum-descriptions".into(), Value::Object(descriptions));
    }
}

/// Gives every request body, JSON answer and path parameter of `paths` its example.
fn add_examples(paths: &mut Map<String, Value>, schemas: &Map<String, Value>) {
    for operation in paths.values_mut().filter_map(Value::as_object_mut).flat_map(|ops| ops.values_mut()) {
        let fill = |media: &mut Value| {
            let made = example(&media["schema"], schemas, 0);
            media["example"] = made;
        };
        if let Some(body) = operation.pointer_mut("/requestBody/content/application~1json") {
            fill(body);
        }
        let responses = operation.get_mut("responses").and_then(Value::as_object_mut);
        for response in responses.into_iter().flat_map(|r| r.values_mut()) {
            if let Some(json) = response.pointer_mut("/content/application~1json") {
                fill(json);
            }
        }
        // Path parameters only: a header's example would be sent as it is by tools that replay
        // examples (schemathesis), naming a subaccount or replaying a key on every call.
        let parameters = operation.get_mut("parameters").and_then(Value::as_array_mut);
        for parameter in parameters.into_iter().flatten().filter(|p| p["in"] == "path") {
            let made = example(&parameter["schema"], schemas, 0);
            parameter["example"] = made;
        }
    }
}

/// Boolean schemas (`true`, what schemars writes for any JSON) as the empty schema, and a `oneOf`
/// of string constants (what schemars writes for an enum whose values have doc comments) as an
/// `enum` with the values' descriptions in `x-enum-descriptions`: the same to a validator, and the
/// only forms some OpenAPI tools (client generators) read.
fn objects_for_true(value: &mut Value) {
    match value {
        Value::Object(map) => {
            plain_enum(map);
            for (key, inner) in map.iter_mut() {
                let schema_place = matches!(key.as_str(), "schema" | "items" | "additionalProperties");
                if schema_place && *inner == Value::Bool(true) {
                    *inner = json!({});
                } else if key == "properties"
                    && let Value::Object(properties) = inner
                {
                    for property in properties.values_mut() {
                        if *property == Value::Bool(true) {
                            *property = json!({});
                        } else {
                            objects_for_true(property);
                        }
                    }
                } else {
                    objects_for_true(inner);
                }
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                if *item == Value::Bool(true) {
                    // Inside anyOf/oneOf/allOf/prefixItems: a schema.
                    *item = json!({});
                } else {
                    objects_for_true(item);
                }
            }
        }
        _ => {}
    }
}

/// The operation of `route`, its path as the document writes it being `path`.
fn operation(route: &Route, path: &str, generator: &mut SchemaGenerator) -> Value {
    let meta = generator.subschema_for::<Meta>();
    let mut content_type = "application/json";
    let success = match route.returns {
        Returns::Document => json!({ "type": "object" }),
        Returns::Text(text) => {
            content_type = text;
            json!({ "type": "string" })
        }
        Returns::Bare(schema) => schema(generator).into(),
        Returns::Item(schema) => json!({
            "type": "object",
            "required": ["data", "meta"],
            "properties": { "data": schema(generator), "meta": meta },
        }),
        Returns::List(schema, _) => json!({
            "type": "object",
            "required": ["data", "pagination", "meta"],
            "properties": {
                "data": { "type": "array", "items": schema(generator) },
                "pagination": generator.subschema_for::<Pagination>(),
                "meta": meta,
            },
        }),
    };
    let mut responses = Map::new();
    let mut succeeded = json!({ "description": "Success.", "content": { content_type: { "schema": success } } });
    if partner_pipeline(route) {
        let headers = RATE_HEADERS
            .iter()
            .filter(|(name, _, _)| *name != "Retry-After")
            .map(|(name, _, _)| (name.to_string(), json!({ "$ref": format!("#/components/headers/{name}") })));
        succeeded["headers"] = Value::Object(headers.collect());
    }
    responses.insert(route.status.to_string(), succeeded);
    for status in errors_of(route) {
        let (name, description) = ERRORS
            .iter()
            .find(|(s, ..)| *s == status)
            .map_or(("Internal", ""), |(_, name, description, _)| (name, description));
        // The token endpoint refuses in OAuth's own shape (RFC 6749 §5.2), which its clients read.
        let answer = if route.path == TOKEN_PATH {
            let schema = generator.subschema_for::<OAuthErrorBody>();
            json!({ "description": description, "content": { "application/json": { "schema": schema } } })
        } else {
            json!({ "$ref": format!("#/components/responses/{name}") })
        };
        responses.insert(status.to_owned(), answer);
    }
    let mut parameters: Vec<Value> = path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            // Every path parameter is an id, but a billing month and the console's names.
            let schema = match name {
                "period" => json!({ "type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$" }),
                "org" | "group" => json!({ "type": "string", "minLength": 1 }),
                _ => json!({ "type": "string", "format": "uuid" }),
            };
            json!({ "name": name, "in": "path", "required": true, "schema": schema })
        })
        .collect();
    if let Returns::List(_, filters) = route.returns {
        parameters.push(json!({ "name": "page", "in": "query", "required": false,
            "schema": { "type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1 } }));
        parameters.push(json!({ "name": "limit", "in": "query", "required": false,
            "schema": { "type": "integer", "minimum": 1, "maximum": 100, "default": 50 } }));
        for filter in filters {
            let schema = if filter.values.is_empty() {
                json!({ "type": "string", "minLength": 1, "maxLength": 200 })
            } else {
                json!({ "type": "string", "enum": filter.values })
            };
            parameters.push(json!({ "name": filter.name, "in": "query", "required": false,
                "description": filter.description, "schema": schema }));
        }
    }
    if partner_pipeline(route) {
        parameters.push(header_parameter(
            SUBACCOUNT_HEADER,
            "The subaccount to act on, for global keys: a UUID.",
            // A pattern rather than `format: uuid`: header values are text, and generated clients
            // given a format hand their HTTP library a UUID object it cannot send.
            json!({ "type": "string", "pattern": UUID_PATTERN }),
        ));
    }
    if partner_pipeline(route)
        && matches!(route.method, http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE)
    {
        parameters.push(header_parameter(
            idempotency::HEADER,
            "Replays the first answer to a retry of the same request for 24 hours.",
            json!({ "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$" }),
        ));
    }
    let mut operation = json!({
        "operationId": route.operation,
        "summary": route.summary,
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(body) = route.body {
        operation["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": body(generator) } } });
    }
    // Who may call it, machine-readable: tests (and partners' tooling) read it from the document.
    operation["x-required-access"] = route.access.name();
    if partner_pipeline(route) {
        // Which integration bundles reach it: the same table the edge enforces.
        operation["x-bundles"] = json!(crate::edge::portal::integrations::bundles_of(route.access));
    }
    operation["security"] = security_of(route);
    operation
}

/// The partner API's document: its routes (those through the partner pipeline below its base,
/// whatever their door), with paths below its base. (An integration's own callback URLs pass the
/// pipeline too but live elsewhere: the edge's document has them.)
pub(crate) fn partner_document(routes: &[Route]) -> Value {
    let partner =
        routes.iter().filter(|route| matches!(route.handler, Handler::Partner(_)) && route.path.starts_with(BASE));
    let description =
        "Fleet operations for partners: every write is a command on the bus, answered once it is committed.";
    document(partner.map(|route| (route.path.clone(), route)), BASE, "voltbus partner API", description)
}

/// The integrations portal's document (the EVCare seed's contract, which it keeps at
/// `functions/src/config/integrations.openapi.yaml`, written by a test): its routes where the seed
/// puts them.
#[cfg(test)]
pub(crate) fn integrations_document(routes: &[Route]) -> Value {
    use crate::edge::portal::PORTAL_BASE;
    use crate::edge::router::portal_alias;
    let portal = routes
        .iter()
        .filter(|route| route.door == Door::Portal)
        .map(|route| (portal_alias(route).unwrap_or_else(|| route.path.clone()), route))
        .filter(|(path, _)| path.starts_with(PORTAL_BASE));
    let description = "The integrations portal: integrations and their secrets, machine tokens, the sign-in bridge, \
        the embed page, maintenance and billing, for integrators of the EVCare seed.";
    document(portal, PORTAL_BASE, "voltbus integrations API", description)
}

/// The whole edge's document: every front door but the console's pages.
pub(crate) fn edge_document(routes: &[Route]) -> Value {
    let documented = routes.iter().filter(|route| route.door != Door::Console).map(|route| (route.path.clone(), route));
    let description = "Every front door of voltbus: the partner API, the integrations portal, the mobile app, \
        marketplace and payment providers' callbacks, and operations. Each operation's tag names its door, and \
        `x-required-access` what it needs.";
    document(documented, "", "voltbus edge", description)
}

/// A document of `routes`, their paths below `base`.
fn document<'a>(
    routes: impl Iterator<Item = (String, &'a Route)>,
    base: &str,
    title: &str,
    description: &str,
) -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let mut generator = SchemaGenerator::new(settings);
    let mut paths = Map::new();
    let whole = base.is_empty();
    for (path, route) in routes {
        // The base itself is the document's `/`.
        let path = match path.strip_prefix(base) {
            Some("") => "/",
            Some(relative) => relative,
            None => &path,
        };
        let mut operation = operation(route, path, &mut generator);
        if whole {
            operation["tags"] = json!([route.door.name()]);
        }
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = operation;
    }
    let error = generator.subschema_for::<ErrorEnvelope>();
    let (responses, headers) = shared_responses(&error.into());
    let schemas: Map<String, Value> = generator.take_definitions(true);
    let mut document = json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": env!("CARGO_PKG_VERSION"), "description": description },
        "servers": [{ "url": if whole { "/" } else { base } }],
        "security": [{ "partnerApiKey": [] }, { "bearer": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": responses,
            "headers": headers,
            "securitySchemes": {
                "partnerApiKey": { "type": "apiKey", "in": "header", "name": API_KEY_HEADER },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An integration's machine token (`evc_mt_…`, from POST /v1/integrations/auth/client-token), or a partner key.",
                },
                "oauth2": {
                    "type": "oauth2",
                    "description": "OAuth 2.0 client credentials (RFC 6749 §4.4) of an integration: its client id and secret at the token endpoint, `scope` naming permissions of its bundle.",
                    "flows": { "clientCredentials": { "tokenUrl": TOKEN_PATH, "scopes": scopes() } },
                },
                "integrationBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "An integration's client id and secret as HTTP Basic (a marketplace's callback URL).",
                },
            },
        },
    });
    objects_for_true(&mut document);
    if let (Some(paths), Some(schemas)) =
        (document["paths"].as_object().cloned(), document["components"]["schemas"].as_object().cloned())
    {
        let mut paths = paths;
        add_examples(&mut paths, &schemas);
        document["paths"] = Value::Object(paths);
    }
    if whole {
        document["components"]["securitySchemes"]["mobileSession"] = json!({
            "type": "http",
            "scheme": "bearer",
            "description": "A phone's session (`vbs_…`, from POST /api/v1/user/otp-check).",
        });
        document["tags"] = json!([
            { "name": "partner", "description": "Partners' REST API (Levy Fleets, INVERS)." },
            { "name": "portal", "description": "The integrations portal (EVCare)." },
            { "name": "mobile", "description": "The mobile app (EVM)." },
            { "name": "marketplace", "description": "Marketplace partners' callbacks (Etvas)." },
            { "name": "providers", "description": "Payment providers' callbacks (Paystack, QPay)." },
            { "name": "operations", "description": "Health, metrics, this document." },
        ]);
    }
    document
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edge::router::router;

    fn dangling(document: &Value) -> Option<String> {
        let text = document.to_string();
        text.split("\"$ref\":\"").skip(1).map(|r| r.split('"').next().unwrap_or_default().to_owned()).find(|target| {
            !target.strip_prefix('#').and_then(|pointer| document.pointer(pointer)).is_some_and(Value::is_object)
        })
    }

    #[test]
    fn every_route_is_documented_with_its_errors() {
        let routes = router().routes();
        let partner = partner_document(routes);
        let edge = edge_document(routes);
        assert_eq!(partner["openapi"], "3.1.0");
        for route in routes {
            let method = route.method.as_str().to_ascii_lowercase();
            let in_edge = &edge["paths"][&route.path][&method];
            if route.door == Door::Console {
                assert!(in_edge.is_null(), "{} is a console page", route.path);
                continue;
            }
            assert_eq!(in_edge["operationId"], route.operation, "{}", route.path);
            assert_eq!(in_edge["tags"][0], route.door.name());
            assert!(in_edge["responses"][route.status.to_string()].is_object());
            if let Some(relative) =
                route.path.strip_prefix(BASE).filter(|_| matches!(route.handler, Handler::Partner(_)))
            {
                assert_eq!(partner["paths"][relative][&method]["operationId"], route.operation, "{relative}");
            }
        }
        assert_eq!(dangling(&partner), None);
        assert_eq!(dangling(&edge), None);
    }

    /// `docs/openapi.yaml` is the edge's document as this build serves it: the test fails when the
    /// file is stale, and `VOLTBUS_WRITE_DOCS=1` writes it.
    #[test]
    fn docs_openapi_yaml_is_the_served_document() {
        let document = yaml_serde::to_string(&edge_document(router().routes())).expect("a document is YAML");
        crate::edge::assert_written("docs/openapi.yaml", &format!("{YAML_HEADER}{document}"));
    }

    /// The EVCare seed's contract file, where the seed says it is: the portal's document.
    #[test]
    fn the_seed_s_integrations_contract_is_the_portal_s_document() {
        let document = integrations_document(router().routes());
        assert!(document["paths"]["/auth/client-token"]["post"].is_object(), "{}", document["paths"]);
        assert!(document["paths"]["/auth/exchange"]["post"].is_object());
        let written = format!("{CONTRACT_HEADER}{}", yaml_serde::to_string(&document).expect("a document is YAML"));
        crate::edge::assert_written("functions/src/config/integrations.openapi.yaml", &written);
    }

    const CONTRACT_HEADER: &str = "# The integrations portal's OpenAPI contract, at the path the EVCare seed names. Generated\n\
        # from the route table: `VOLTBUS_WRITE_DOCS=1 cargo test -p voltbus-publishers` writes it; do not edit.\n";

    const YAML_HEADER: &str = "# The whole edge's OpenAPI document, as `GET /openapi.json` serves it. Generated from the route\n\
        # table: `VOLTBUS_WRITE_DOCS=1 cargo test -p voltbus-publishers` writes it; do not edit.\n";
}
