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

use crate::edge::partner::auth::{API_KEY_HEADER, SUBACCOUNT_HEADER};
use crate::edge::partner::idempotency;
use crate::edge::partner::routes::BASE;
use crate::edge::router::{Access, Door, Handler, Returns, Route};

/// `meta` of every answer.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Meta {
    /// Quote it when reporting a problem.
    request_id: String,
    /// When the answer was made.
    timestamp: chrono::DateTime<chrono::Utc>,
}

/// `pagination` of list answers.
#[derive(JsonSchema)]
#[allow(dead_code)]
struct Pagination {
    page: u64,
    limit: u64,
    total: u64,
    has_next: bool,
    has_prev: bool,
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

fn errors_of(route: &Route) -> Vec<(&'static str, &'static str)> {
    let mut errors = vec![
        ("405", "Method not allowed on this path."),
        ("422", "A field, parameter or header is invalid."),
        ("500", "Internal error."),
    ];
    if partner_pipeline(route) {
        errors.extend([
            ("401", "Missing, unknown, disabled or expired key."),
            ("403", "The key lacks the permission or subaccount."),
            ("404", "No such resource (in this organisation)."),
            ("429", "A rate-limit window is used up; see Retry-After."),
            ("503", "A dependency is unavailable; nothing was done."),
        ]);
    } else if matches!(route.access, Access::Session | Access::Own) {
        errors.extend([
            ("401", "Missing, unknown or expired credential (session, secret, code, signature)."),
            ("403", "The caller may not do this (a blocked customer)."),
            ("404", "No such resource."),
            ("429", "Too many failed attempts from this address; see Retry-After."),
            ("503", "A dependency is unavailable; nothing was done."),
        ]);
    }
    if route.body.is_some() || route.method != http::Method::GET {
        errors.extend([
            ("400", "The body is not JSON."),
            ("409", "Conflict, or the same Idempotency-Key still in progress."),
            ("413", "The body is too large."),
            ("415", "The body is not application/json."),
            ("504", "The bus did not answer in time; retry with the same Idempotency-Key."),
        ]);
    }
    // Money moves on these: a wallet that cannot cover it is its own answer.
    if crate::edge::partner::routes::PAYING.contains(&route.operation) {
        errors.push(("402", "The wallet cannot cover it, even with its overdraft (`INSUFFICIENT_FUNDS`)."));
    }
    errors.sort();
    errors.dedup_by_key(|(status, _)| *status);
    errors
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
    responses.insert(
        route.status.to_string(),
        json!({ "description": "Success.", "content": { content_type: { "schema": success } } }),
    );
    let error = generator.subschema_for::<ErrorEnvelope>();
    for (status, description) in errors_of(route) {
        responses.insert(
            status.to_owned(),
            json!({ "description": description, "content": { "application/json": { "schema": error } } }),
        );
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
            "The subaccount to act on, for global keys.",
            json!({ "type": "string", "format": "uuid" }),
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
    match route.access {
        Access::Public | Access::Own => operation["security"] = json!([]),
        Access::Session => operation["security"] = json!([{ "mobileSession": [] }]),
        _ => {}
    }
    operation
}

/// The partner API's document: its routes (those through the partner pipeline, whatever their
/// door), with paths below its base.
pub(crate) fn partner_document(routes: &[Route]) -> Value {
    let partner = routes.iter().filter(|route| matches!(route.handler, Handler::Partner(_)));
    let description =
        "Fleet operations for partners: every write is a command on the bus, answered once it is committed.";
    document(partner, BASE, "voltbus partner API", description)
}

/// The whole edge's document: every front door but the console's pages.
pub(crate) fn edge_document(routes: &[Route]) -> Value {
    let documented = routes.iter().filter(|route| route.door != Door::Console);
    let description = "Every front door of voltbus: the partner API, the integrations portal, the mobile app, \
        marketplace and payment providers' callbacks, and operations. Each operation's tag names its door, and \
        `x-required-access` what it needs.";
    document(documented, "", "voltbus edge", description)
}

/// A document of `routes`, their paths below `base`.
fn document<'a>(routes: impl Iterator<Item = &'a Route>, base: &str, title: &str, description: &str) -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let mut generator = SchemaGenerator::new(settings);
    let mut paths = Map::new();
    let whole = base.is_empty();
    for route in routes {
        let path = route.path.strip_prefix(base).unwrap_or(&route.path);
        let mut operation = operation(route, path, &mut generator);
        if whole {
            operation["tags"] = json!([route.door.name()]);
        }
        let entry = paths.entry(path.to_owned()).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = operation;
    }
    let schemas: Map<String, Value> = generator.take_definitions(true);
    let mut document = json!({
        "openapi": "3.1.0",
        "info": { "title": title, "version": env!("CARGO_PKG_VERSION"), "description": description },
        "servers": [{ "url": if whole { "/" } else { base } }],
        "security": [{ "partnerApiKey": [] }, { "bearer": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "partnerApiKey": { "type": "apiKey", "in": "header", "name": API_KEY_HEADER },
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An integration's machine token (`evc_mt_…`, from POST /v1/integrations/auth/client-token), or a partner key.",
                },
            },
        },
    });
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
            let name = target.strip_prefix("#/components/schemas/").unwrap_or(target);
            !document["components"]["schemas"][name].is_object()
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
}
