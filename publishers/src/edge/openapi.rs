//! The OpenAPI 3.1 document of the partner API, generated from the route table and the Rust types
//! of bodies and answers (their JSON Schemas come from schemars, dialect 2020-12 as OpenAPI 3.1
//! uses), served at `/api/partner/v1/openapi.json`.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::auth::{API_KEY_HEADER, SUBACCOUNT_HEADER};
use super::idempotency;
use super::routes::{Access, BASE, Returns, Route};

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

fn errors_of(route: &Route) -> Vec<(&'static str, &'static str)> {
    let mut errors = vec![
        ("405", "Method not allowed on this path."),
        ("422", "A field, parameter or header is invalid."),
        ("500", "Internal error."),
    ];
    if route.access != Access::Public {
        errors.extend([
            ("401", "Missing, unknown, disabled or expired key."),
            ("403", "The key lacks the permission or subaccount."),
            ("404", "No such resource (in this organisation)."),
            ("429", "A rate-limit window is used up; see Retry-After."),
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
    if super::routes::PAYING.contains(&route.operation) {
        errors.push(("402", "The wallet cannot cover it, even with its overdraft (`INSUFFICIENT_FUNDS`)."));
    }
    errors.sort();
    errors
}

fn operation(route: &Route, generator: &mut SchemaGenerator) -> Value {
    let meta = generator.subschema_for::<Meta>();
    let success = match route.returns {
        Returns::Document => json!({ "type": "object" }),
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
        json!({ "description": "Success.", "content": { "application/json": { "schema": success } } }),
    );
    let error = generator.subschema_for::<ErrorEnvelope>();
    for (status, description) in errors_of(route) {
        responses.insert(
            status.to_owned(),
            json!({ "description": description, "content": { "application/json": { "schema": error } } }),
        );
    }
    let mut parameters: Vec<Value> = route
        .path
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            // Every path parameter is an id, but a billing month.
            let schema = if name == "period" {
                json!({ "type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$" })
            } else {
                json!({ "type": "string", "format": "uuid" })
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
    if route.access != Access::Public {
        parameters.push(header_parameter(
            SUBACCOUNT_HEADER,
            "The subaccount to act on, for global keys.",
            json!({ "type": "string", "format": "uuid" }),
        ));
    }
    if matches!(route.method, http::Method::POST | http::Method::PUT | http::Method::PATCH | http::Method::DELETE) {
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
    operation["x-required-access"] = match route.access {
        Access::Public => json!("public"),
        Access::Key => json!("key"),
        Access::Admin => json!("admin"),
        Access::Permission(permission) => json!(permission),
        Access::Capability(capability) => json!(capability),
    };
    // Which integration bundles reach it: the same table the edge enforces.
    operation["x-bundles"] = json!(super::integrations::bundles_of(route.access));
    if route.access == Access::Public {
        operation["security"] = json!([]);
    }
    operation
}

/// The whole document.
pub(crate) fn document(routes: &[Route]) -> Value {
    let settings = SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let mut generator = SchemaGenerator::new(settings);
    let mut paths = Map::new();
    for route in routes {
        let operation = operation(route, &mut generator);
        let entry = paths.entry(route.path.to_owned()).or_insert_with(|| json!({}));
        entry[route.method.as_str().to_ascii_lowercase()] = operation;
    }
    let schemas: Map<String, Value> = generator.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "voltbus partner API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Fleet operations for partners: every write is a command on the bus, answered once it is committed.",
        },
        "servers": [{ "url": BASE }],
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_errors() {
        let routes = super::super::routes::table();
        let document = document(&routes);
        assert_eq!(document["openapi"], "3.1.0");
        for route in &routes {
            let operation = &document["paths"][route.path][route.method.as_str().to_ascii_lowercase()];
            assert_eq!(operation["operationId"], route.operation, "{}", route.path);
            assert!(operation["responses"][route.status.to_string()].is_object());
        }
        let text = document.to_string();
        for reference in text.split("\"$ref\":\"").skip(1) {
            let target = reference.split('"').next().unwrap();
            let name = target.strip_prefix("#/components/schemas/").unwrap();
            assert!(document["components"]["schemas"][name].is_object(), "dangling {target}");
        }
    }
}
