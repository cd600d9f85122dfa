//! Every route of the edge, for every front door, in one table: the one router dispatches from
//! it, and the OpenAPI documents are generated from it, so neither can disagree with the other.
//!
//! Each door lists its own routes (`routes()` in its folder); this module only puts them
//! together. A route names its door, and its handler says which door's pipeline it passes
//! through before its action runs (the partner pipeline's keys and limits, the mobile session,
//! the console's sign-in and CSRF token), or that it checks what it needs by itself.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::LazyLock;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use schemas::integrations::Permission;

use crate::edge::console::Console;
use crate::edge::mobile::MobileApi;
use crate::edge::operations::HealthCheck;
use crate::edge::partner::PartnerApi;
use crate::permissions::Capability;

/// Who comes through a door: each has a folder of its own under `edge/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Door {
    /// Partners' REST API (Levy Fleets, INVERS): `/api/partner/v1`.
    Partner,
    /// The integrations portal (EVCare): integrations, their tokens, sign-in bridge, embed page.
    Portal,
    /// The mobile app (EVM): `/api/v1`.
    Mobile,
    /// Marketplace partners' callbacks (Etvas).
    Marketplace,
    /// Payment providers' callbacks (Paystack, QPay).
    Providers,
    /// The operator console: `/admin`.
    Console,
    /// Operations: health, metrics, the edge's OpenAPI document.
    Operations,
    /// Chargers: OCPP-J over WebSocket at `/ocpp/{chargerId}`.
    Ocpp,
}

impl Door {
    /// Its name in metrics and the OpenAPI document's tags.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Door::Partner => "partner",
            Door::Portal => "portal",
            Door::Mobile => "mobile",
            Door::Marketplace => "marketplace",
            Door::Providers => "providers",
            Door::Console => "console",
            Door::Operations => "operations",
            Door::Ocpp => "ocpp",
        }
    }

    /// The door a path no route names belongs to, by where it is: the door that answers it with
    /// its own 404 (the partner API logs it, the console shows a page).
    pub(crate) fn of_path(path: &str) -> Door {
        let under = |base: &str| path == base || path.strip_prefix(base).is_some_and(|rest| rest.starts_with('/'));
        if under(crate::edge::partner::routes::BASE) || under(crate::edge::portal::PORTAL_BASE) {
            Door::Partner
        } else if under(crate::edge::mobile::MOBILE_BASE) {
            Door::Mobile
        } else if under(crate::edge::console::BASE) {
            Door::Console
        } else if under(crate::edge::ocpp::OCPP_BASE) {
            Door::Ocpp
        } else {
            Door::Operations
        }
    }
}

/// What a caller needs to use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone (the OpenAPI documents, health).
    Public,
    /// Any valid partner key.
    Key,
    /// A partner key with this permission.
    Permission(Permission),
    /// An organisation admin key (key management, request log).
    Admin,
    /// An integration's machine token whose bundle grants this capability.
    Capability(Capability),
    /// A signed-in phone (`Authorization: Bearer vbs_…`).
    Session,
    /// A signed-in console operator (cookie session; forms carry the CSRF token).
    Operator,
    /// The route checks its own credential: a client secret, a one-time code, a portal cookie, a
    /// provider's signature (or asking the provider back), the metrics token.
    Own,
}

impl Access {
    /// As the OpenAPI document's `x-required-access` says it.
    pub(crate) fn name(self) -> serde_json::Value {
        match self {
            Access::Public => "public".into(),
            Access::Key => "key".into(),
            Access::Admin => "admin".into(),
            Access::Session => "session".into(),
            Access::Operator => "operator".into(),
            Access::Own => "own".into(),
            Access::Permission(permission) => serde_json::json!(permission),
            Access::Capability(capability) => serde_json::json!(capability),
        }
    }
}

/// A JSON Schema, generated on demand for the OpenAPI document.
pub(crate) type SchemaOf = fn(&mut SchemaGenerator) -> Schema;

/// The schema of `T`, as a [`SchemaOf`].
pub(crate) fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// What a route answers on success.
#[derive(Clone, Copy)]
pub(crate) enum Returns {
    /// `{data: T, meta}`.
    Item(SchemaOf),
    /// `{data: [T], pagination, meta}`; the route takes `page`, `limit` and these filters.
    List(SchemaOf, &'static [QueryFilter]),
    /// `T` itself, not enveloped: a partner's or an app's protocol fixes the body.
    Bare(SchemaOf),
    /// An OpenAPI document.
    Document,
    /// A page of the console, or another text that is no JSON (`text/html`, metrics).
    Text(&'static str),
}

/// A query parameter a route filters by.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueryFilter {
    /// Parameter name.
    pub name: &'static str,
    /// The values it takes; empty: any text up to 200 characters.
    pub values: &'static [&'static str],
    /// One line for the OpenAPI document.
    pub description: &'static str,
}

/// Path parameters by name, as the router found them.
pub(crate) type Params = Vec<(String, String)>;

/// The value of path parameter `name`, or nothing.
pub(crate) fn param<'a>(params: &'a Params, name: &str) -> &'a str {
    params.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
}

/// A boxed future of a handler.
pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A route that answers by itself, with what every door shares.
pub(crate) type OwnAction = for<'a> fn(&'a Doors<'a>, Request<Incoming>, Found<'a>) -> Boxed<'a, Response<Full<Bytes>>>;

/// Which pipeline a route passes through before its action.
#[derive(Clone, Copy)]
pub(crate) enum Handler {
    /// The partner pipeline: a key or machine token, rate limits, idempotency, the request log.
    /// `None`: the partner API's OpenAPI document.
    Partner(Option<crate::edge::partner::routes::Action>),
    /// The mobile pipeline: the phone's session, where the route's access asks for one.
    Mobile(crate::edge::mobile::Action),
    /// A console page, behind the operator's session and the form's CSRF token.
    Console(crate::edge::console::Page),
    /// No pipeline: the route checks what it needs itself (its access is `Own` or `Public`).
    Own(OwnAction),
}

/// One route.
pub(crate) struct Route {
    /// The door it belongs to.
    pub door: Door,
    pub method: Method,
    /// The whole path, with `{name}` parameters as matchit and OpenAPI both write them.
    pub path: String,
    /// OpenAPI `operationId`.
    pub operation: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    pub access: Access,
    /// The request body's schema, when the route takes a JSON one.
    pub body: Option<SchemaOf>,
    /// Success status.
    pub status: u16,
    pub returns: Returns,
    pub handler: Handler,
}

/// A route the router found, and its path parameters.
pub(crate) struct Found<'a> {
    pub route: &'a Route,
    pub params: Params,
}

/// What the router says of a request.
pub(crate) enum Lookup<'a> {
    /// This route.
    Found(Found<'a>),
    /// The path is a route's, not the method: these are.
    MethodNotAllowed(Vec<&'a str>),
    /// No route has this path.
    NotFound,
}

/// What the doors share for one request: every door's state, and who is asking.
pub(crate) struct Doors<'a> {
    pub api: &'a PartnerApi,
    pub mobile: &'a MobileApi,
    pub health: &'a dyn HealthCheck,
    pub metrics_token: Option<&'a str>,
    pub console: Option<&'a Console>,
    pub ocpp: Option<&'a std::sync::Arc<crate::edge::ocpp::Ocpp>>,
    /// Whether partners', apps', the console's and chargers' routes are answered (not on a worker).
    pub front_doors: bool,
    pub peer: IpAddr,
    pub request_id: &'a str,
}

/// The table and the path router over it.
pub(crate) struct Router {
    routes: Vec<Route>,
    paths: matchit::Router<Vec<usize>>,
}

/// Where the EVCare seed puts the integrations' routes, besides the partner API's base: every
/// portal route below `{partner BASE}/integrations` also answers below `PORTAL_BASE`.
pub(crate) fn portal_alias(route: &Route) -> Option<String> {
    let rest = route.path.strip_prefix(crate::edge::partner::routes::BASE)?.strip_prefix("/integrations")?;
    (route.door == Door::Portal && matches!(route.handler, Handler::Partner(_)))
        .then(|| format!("{}{rest}", crate::edge::portal::PORTAL_BASE))
}

impl Router {
    fn new(routes: Vec<Route>) -> Self {
        let mut by_path: Vec<(String, Vec<usize>)> = Vec::new();
        let mut add = |path: String, index: usize| match by_path.iter_mut().find(|(known, _)| *known == path) {
            Some((_, indices)) => indices.push(index),
            None => by_path.push((path, vec![index])),
        };
        for (index, route) in routes.iter().enumerate() {
            add(route.path.clone(), index);
            if let Some(alias) = portal_alias(route) {
                add(alias, index);
            }
        }
        let mut paths = matchit::Router::new();
        for (path, indices) in by_path {
            // The table is ours and its paths distinct: a conflict is a bug every test catches.
            paths.insert(path, indices).expect("route paths are valid and distinct");
        }
        Self { routes, paths }
    }

    /// The route `method path` names.
    pub(crate) fn find(&self, method: &Method, path: &str) -> Lookup<'_> {
        let Ok(matched) = self.paths.at(path) else { return Lookup::NotFound };
        let routes = matched.value.iter().map(|&index| &self.routes[index]);
        match routes.clone().find(|route| route.method == method) {
            Some(route) => {
                let params = matched.params.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
                Lookup::Found(Found { route, params })
            }
            None => Lookup::MethodNotAllowed(routes.map(|route| route.method.as_str()).collect()),
        }
    }

    /// Every route.
    pub(crate) fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route of operation id `operation`.
    pub(crate) fn operation(&self, operation: &str) -> Option<&Route> {
        self.routes.iter().find(|route| route.operation == operation)
    }
}

/// The edge's one router, built once from every door's routes.
pub(crate) fn router() -> &'static Router {
    static ROUTER: LazyLock<Router> = LazyLock::new(|| {
        let doors = [
            crate::edge::partner::routes::routes(),
            crate::edge::portal::routes(),
            crate::edge::mobile::routes(),
            crate::edge::marketplace::routes(),
            crate::edge::providers::routes(),
            crate::edge::console::routes(),
            crate::edge::operations::routes(),
            crate::edge::ocpp::routes(),
        ];
        Router::new(doors.into_iter().flatten().collect())
    });
    &ROUTER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_named_once_and_every_route_found_by_its_own_path() {
        let router = router();
        let mut names: Vec<&str> = router.routes().iter().map(|route| route.operation).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "an operation id is used twice");
        for route in router.routes() {
            let path = route.path.replace("{id}", "x").replace("{org}", "acme").replace("{period}", "2026-01");
            let path = path
                .split('/')
                .map(|segment| if segment.starts_with('{') { "x" } else { segment })
                .collect::<Vec<_>>()
                .join("/");
            match router.find(&route.method, &path) {
                Lookup::Found(found) => assert_eq!(found.route.operation, route.operation, "{path}"),
                _ => panic!("{} {path} is not found", route.method),
            }
        }
    }

    #[test]
    fn a_path_no_route_has_belongs_to_the_door_it_is_under() {
        assert_eq!(Door::of_path("/api/partner/v1/nothing"), Door::Partner);
        assert_eq!(Door::of_path("/v1/integrations/nothing"), Door::Partner);
        assert_eq!(Door::of_path("/api/v1/nothing"), Door::Mobile);
        assert_eq!(Door::of_path("/admin/nothing"), Door::Console);
        assert_eq!(Door::of_path("/administrator"), Door::Operations);
        assert_eq!(Door::of_path("/nothing"), Door::Operations);
    }
}
