//! The partner API's routes, as one table: the router is built from it and the OpenAPI document
//! is generated from it, so the two cannot disagree.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::Method;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use schemas::integrations::Permission;

use crate::permissions::Capability;
use uuid::Uuid;

use super::api::PartnerApi;
use super::auth::Caller;
use super::billing;
use super::chargers;
use super::customers;
use super::integrations;
use super::keys;
use super::maintenance;
use super::marketplace;
use super::pricing;
use super::response::{Answer, ApiError};
use super::rides;
use super::subscriptions;
use super::vehicles;
use super::webhooks;
use super::zones;

/// Every partner route is under this path.
pub(crate) const BASE: &str = "/api/partner/v1";

/// The operations that answer 402 when a wallet cannot cover them.
pub(crate) const PAYING: [&str; 3] = ["postWalletEntry", "refundWalletEntry", "startRide"];

/// What a caller needs to use a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone (the OpenAPI document).
    Public,
    /// Any valid key.
    Key,
    /// A key with this permission.
    Permission(Permission),
    /// An organisation admin key (key management, request log).
    Admin,
    /// An integration's machine token whose bundle grants this capability.
    Capability(Capability),
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
    /// `T` itself, not enveloped: a partner's protocol fixes the body.
    Bare(SchemaOf),
    /// The OpenAPI document itself, not enveloped.
    Document,
}

/// A query parameter a list route filters by.
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

/// One call of a route, after authentication, limits and idempotency.
pub(crate) struct Call {
    /// Who calls.
    pub caller: Caller,
    /// Path parameters by name.
    pub params: Params,
    /// The query string.
    pub query: Option<String>,
    /// The request body (checked to be JSON when not empty).
    pub body: Bytes,
    /// The message id of the command this call sends: fixed by its Idempotency-Key, else fresh.
    pub command_id: Uuid,
    /// The Idempotency-Key header, where the call has one.
    pub idempotency_key: Option<String>,
}

impl Call {
    /// A UUID path parameter; one that is no UUID names nothing, so it is 404.
    pub fn id(&self, name: &str) -> Result<Uuid, ApiError> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| Uuid::parse_str(v).ok())
            .ok_or_else(|| ApiError::not_found(format!("no such {name}")))
    }
}

/// What a route does.
pub(crate) type Action =
    for<'a> fn(&'a PartnerApi, Call) -> Pin<Box<dyn Future<Output = Result<Answer, ApiError>> + Send + 'a>>;

/// One route of the partner API.
pub(crate) struct Route {
    pub method: Method,
    /// Below [`BASE`], with `{name}` parameters as matchit and OpenAPI both write them.
    pub path: &'static str,
    /// OpenAPI `operationId`.
    pub operation: &'static str,
    /// One-line summary.
    pub summary: &'static str,
    pub access: Access,
    /// The request body's schema, when the route takes one.
    pub body: Option<SchemaOf>,
    /// Success status.
    pub status: u16,
    pub returns: Returns,
    pub action: Option<Action>,
}

/// The partner API.
pub(crate) fn table() -> Vec<Route> {
    use Access::*;
    vec![
        Route {
            method: Method::GET,
            path: "/openapi.json",
            operation: "getOpenApi",
            summary: "This document.",
            access: Public,
            body: None,
            status: 200,
            returns: Returns::Document,
            action: None,
        },
        Route {
            method: Method::GET,
            path: "/me",
            operation: "getCurrentKey",
            summary: "The calling key: organisation, subaccount, permissions, limits.",
            access: Key,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<keys::CurrentKey>),
            action: Some(|api, call| Box::pin(keys::current(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/integrations",
            operation: "createIntegration",
            summary: "Create an integration with an access bundle; its clientId and clientSecret are shown once.",
            access: Admin,
            body: Some(schema_of::<integrations::NewIntegration>),
            status: 201,
            returns: Returns::Item(schema_of::<integrations::IntegrationWithSecret>),
            action: Some(|api, call| Box::pin(integrations::create(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/integrations",
            operation: "listIntegrations",
            summary: "The organisation's integrations.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::integrations::clients::Integration>, &[]),
            action: Some(|api, call| Box::pin(integrations::list(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/integrations/{id}",
            operation: "getIntegration",
            summary: "One integration.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::integrations::clients::Integration>),
            action: Some(|api, call| Box::pin(integrations::get(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/integrations/{id}/rotate-secret",
            operation: "rotateIntegrationSecret",
            summary: "A new clientSecret, shown once; the old one works for the grace period.",
            access: Admin,
            body: Some(schema_of::<integrations::Rotation>),
            status: 200,
            returns: Returns::Item(schema_of::<integrations::IntegrationWithSecret>),
            action: Some(|api, call| Box::pin(integrations::rotate(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/integrations/{id}/revoke",
            operation: "revokeIntegration",
            summary: "Revoke for good: its secrets and every open machine token stop working at once.",
            access: Admin,
            body: Some(schema_of::<integrations::Revocation>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::integrations::clients::Integration>),
            action: Some(|api, call| Box::pin(integrations::revoke(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/integrations/{id}/disable",
            operation: "disableIntegration",
            summary: "Disable: no new tokens, open ones stop working; enable brings it back.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::integrations::clients::Integration>),
            action: Some(|api, call| Box::pin(integrations::set_active(api, call, false))),
        },
        Route {
            method: Method::POST,
            path: "/integrations/{id}/enable",
            operation: "enableIntegration",
            summary: "Enable a disabled integration.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::integrations::clients::Integration>),
            action: Some(|api, call| Box::pin(integrations::set_active(api, call, true))),
        },
        Route {
            method: Method::POST,
            path: "/integrations/auth/exchange",
            operation: "exchangeExternalIdentity",
            summary: "Map an external user to a voltbus user; a one-time session code for the browser.",
            access: Capability(crate::permissions::Capability::SignInBridge),
            body: Some(schema_of::<integrations::Exchange>),
            status: 200,
            returns: Returns::Item(schema_of::<integrations::SessionCode>),
            action: Some(|api, call| Box::pin(integrations::exchange(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/integrations/questionnaire/recommend",
            operation: "recommendBundle",
            summary: "The smallest access bundle covering an integrator's answers, with confidence and rationale.",
            access: Admin,
            body: Some(schema_of::<integrations::Questionnaire>),
            status: 200,
            returns: Returns::Item(schema_of::<integrations::Recommendation>),
            action: Some(|api, call| Box::pin(integrations::questionnaire(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/integrations/{id}/billing/usage/{period}",
            operation: "getIntegrationUsage",
            summary: "A month's metered usage (`YYYY-MM`) and the invoice it would make.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<billing::UsageReport>),
            action: Some(|api, call| Box::pin(billing::usage_report(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/integrations/{id}/billing/invoices",
            operation: "listIntegrationInvoices",
            summary: "The integration's invoices, newest month first.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<Vec<readside::billing::invoices::Invoice>>),
            action: Some(|api, call| Box::pin(billing::list_invoices(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/integrations/{id}/billing/invoices",
            operation: "issueIntegrationInvoice",
            summary: "Issue the invoice of a month that has ended, priced from its usage (once).",
            access: Admin,
            body: Some(schema_of::<billing::NewInvoice>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::billing::invoices::Invoice>),
            action: Some(|api, call| Box::pin(billing::issue_invoice(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/integrations/{id}/billing/paystack/initialize",
            operation: "initializePaystackPayment",
            summary: "Start a Paystack payment (Idempotency-Key required): the page to pay on.",
            access: Admin,
            body: Some(schema_of::<billing::Initialize>),
            status: 200,
            returns: Returns::Item(schema_of::<billing::Initialized>),
            action: Some(|api, call| Box::pin(billing::initialize(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/integrations/{id}/billing/paystack/verify/{reference}",
            operation: "verifyPaystackPayment",
            summary: "Ask Paystack about a payment; settled (with its invoice) once Paystack confirms it.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::billing::payments::Payment>),
            action: Some(|api, call| Box::pin(billing::verify(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/workshops",
            operation: "addWorkshop",
            summary: "Register a workshop (the organisation's own, or independent).",
            access: Admin,
            body: Some(schema_of::<maintenance::NewWorkshop>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::maintenance::Workshop>),
            action: Some(|api, call| Box::pin(maintenance::add_workshop(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/workshops",
            operation: "listWorkshops",
            summary: "The organisation's workshops.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<Vec<readside::maintenance::Workshop>>),
            action: Some(|api, call| Box::pin(maintenance::list_workshops(api, call))),
        },
        Route {
            method: Method::PUT,
            path: "/integrations/{id}/maintenance-selection",
            operation: "setMaintenanceSelection",
            summary: "The workshops an integration may send vehicles to, and whether independent ones too.",
            access: Admin,
            body: Some(schema_of::<maintenance::SelectionInput>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::maintenance::Selection>),
            action: Some(|api, call| Box::pin(maintenance::set_selection(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/maintenance/workshops",
            operation: "listSelectableWorkshops",
            summary: "The workshops the calling integration may choose.",
            access: Capability(crate::permissions::Capability::MaintenanceTickets),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<Vec<readside::maintenance::Workshop>>),
            action: Some(|api, call| Box::pin(maintenance::selectable(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/maintenance/tickets",
            operation: "openMaintenanceTicket",
            summary: "Open a maintenance ticket for a vehicle at a selectable workshop.",
            access: Capability(crate::permissions::Capability::MaintenanceTickets),
            body: Some(schema_of::<maintenance::NewTicket>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::maintenance::Ticket>),
            action: Some(|api, call| Box::pin(maintenance::open_maintenance(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/maintenance/tickets",
            operation: "listMaintenanceTickets",
            summary: "The maintenance tickets the calling integration opened.",
            access: Capability(crate::permissions::Capability::MaintenanceTickets),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<Vec<readside::maintenance::Ticket>>),
            action: Some(|api, call| Box::pin(maintenance::list_maintenance(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/driver-tickets",
            operation: "openDriverTicket",
            summary: "Open a ticket for a problem a driver reports.",
            access: Capability(crate::permissions::Capability::DriverTickets),
            body: Some(schema_of::<maintenance::NewTicket>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::maintenance::Ticket>),
            action: Some(|api, call| Box::pin(maintenance::open_driver(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/driver-tickets",
            operation: "listDriverTickets",
            summary: "The driver tickets the calling integration opened.",
            access: Capability(crate::permissions::Capability::DriverTickets),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<Vec<readside::maintenance::Ticket>>),
            action: Some(|api, call| Box::pin(maintenance::list_driver(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/api-keys",
            operation: "listApiKeys",
            summary: "The organisation's API keys.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::integrations::ApiKey>, &[]),
            action: Some(|api, call| Box::pin(keys::list(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/api-keys",
            operation: "createApiKey",
            summary: "Creates a key; its secret is in this answer and nowhere else.",
            access: Admin,
            body: Some(schema_of::<keys::NewKey>),
            status: 201,
            returns: Returns::Item(schema_of::<keys::KeyWithSecret>),
            action: Some(|api, call| Box::pin(keys::create(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/api-keys/{id}",
            operation: "getApiKey",
            summary: "One key, with its usage.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<keys::KeyWithUsage>),
            action: Some(|api, call| Box::pin(keys::get(api, call))),
        },
        Route {
            method: Method::PATCH,
            path: "/api-keys/{id}",
            operation: "updateApiKey",
            summary: "Changes a key's name, permissions, scope, limits, expiry or active flag.",
            access: Admin,
            body: Some(schema_of::<keys::KeyChanges>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::integrations::ApiKey>),
            action: Some(|api, call| Box::pin(keys::update(api, call))),
        },
        Route {
            method: Method::DELETE,
            path: "/api-keys/{id}",
            operation: "deleteApiKey",
            summary: "Deletes a key for good.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::Deleted>),
            action: Some(|api, call| Box::pin(keys::delete(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/api-keys/{id}/regenerate",
            operation: "regenerateApiKey",
            summary: "Replaces a key's secret; the old one stops working at once.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<keys::KeyWithSecret>),
            action: Some(|api, call| Box::pin(keys::regenerate(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/api-keys/{id}/requests",
            operation: "listApiKeyRequests",
            summary: "The request log of one key, newest first.",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::integrations::LoggedRequest>, &[]),
            action: Some(|api, call| Box::pin(keys::requests(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/webhooks",
            operation: "listWebhooks",
            summary: "The organisation's webhook endpoints.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksRead),
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::webhooks::Endpoint>, &[]),
            action: Some(|api, call| Box::pin(webhooks::list(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/webhooks",
            operation: "createWebhook",
            summary: "Registers an endpoint; its signing secret is shown once.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksWrite),
            body: Some(schema_of::<webhooks::NewEndpoint>),
            status: 201,
            returns: Returns::Item(schema_of::<webhooks::EndpointWithSecret>),
            action: Some(|api, call| Box::pin(webhooks::create(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/webhooks/{id}",
            operation: "getWebhook",
            summary: "One endpoint.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksRead),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::webhooks::Endpoint>),
            action: Some(|api, call| Box::pin(webhooks::get(api, call))),
        },
        Route {
            method: Method::PATCH,
            path: "/webhooks/{id}",
            operation: "updateWebhook",
            summary: "Changes an endpoint; re-enabling one clears its failure record.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksWrite),
            body: Some(schema_of::<webhooks::EndpointChanges>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::webhooks::Endpoint>),
            action: Some(|api, call| Box::pin(webhooks::update(api, call))),
        },
        Route {
            method: Method::DELETE,
            path: "/webhooks/{id}",
            operation: "deleteWebhook",
            summary: "Deletes an endpoint; its delivery log stays until purged.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksWrite),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::Deleted>),
            action: Some(|api, call| Box::pin(webhooks::delete(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/webhooks/{id}/rotate-secret",
            operation: "rotateWebhookSecret",
            summary: "A new signing secret, shown once; the old one signs too during the grace period.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksWrite),
            body: Some(schema_of::<webhooks::Rotation>),
            status: 200,
            returns: Returns::Item(schema_of::<webhooks::EndpointWithSecret>),
            action: Some(|api, call| Box::pin(webhooks::rotate(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/webhooks/{id}/test",
            operation: "testWebhook",
            summary: "Sends a `webhook.test` event to the endpoint.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksWrite),
            body: None,
            status: 202,
            returns: Returns::Item(schema_of::<webhooks::TestSent>),
            action: Some(|api, call| Box::pin(webhooks::test(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/webhooks/{id}/deliveries",
            operation: "listWebhookDeliveries",
            summary: "The endpoint's deliveries, newest first.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksRead),
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::webhooks::deliveries::Delivery>, webhooks::DELIVERY_FILTERS),
            action: Some(|api, call| Box::pin(webhooks::deliveries(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/webhooks/{id}/attempts",
            operation: "listWebhookAttempts",
            summary: "Every attempt to the endpoint: time, status, latency, error, answer.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksRead),
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::webhooks::deliveries::Attempt>, webhooks::ATTEMPT_FILTERS),
            action: Some(|api, call| Box::pin(webhooks::attempts(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/webhooks/{id}/deliveries/{delivery_id}/replay",
            operation: "replayWebhookDelivery",
            summary: "Sends one delivery again, as a new delivery.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksWrite),
            body: None,
            status: 202,
            returns: Returns::Item(schema_of::<webhooks::Queued>),
            action: Some(|api, call| Box::pin(webhooks::replay_one(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/webhooks/{id}/replay",
            operation: "replayFailedWebhookDeliveries",
            summary: "Sends again every failed delivery of the endpoint since a time.",
            access: Access::Permission(schemas::integrations::Permission::WebhooksWrite),
            body: Some(schema_of::<webhooks::ReplaySince>),
            status: 202,
            returns: Returns::Item(schema_of::<webhooks::Queued>),
            action: Some(|api, call| Box::pin(webhooks::replay_failed(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/webhook-deliveries",
            operation: "listEventDeliveries",
            summary: "One event's deliveries to every endpoint (`event_id` required).",
            access: Access::Permission(schemas::integrations::Permission::WebhooksRead),
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::webhooks::deliveries::Delivery>, webhooks::EVENT_FILTERS),
            action: Some(|api, call| Box::pin(webhooks::event_deliveries(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/vehicles",
            operation: "listVehicles",
            summary: "The fleet's vehicles, with their latest state; filtered and searched.",
            access: Access::Permission(schemas::integrations::Permission::VehiclesRead),
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::fleet::Vehicle>, vehicles::FILTERS),
            action: Some(|api, call| Box::pin(vehicles::list(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/vehicles",
            operation: "addVehicle",
            summary: "Adds a vehicle to a fleet.",
            access: Access::Permission(schemas::integrations::Permission::VehiclesWrite),
            body: Some(schema_of::<vehicles::NewVehicle>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::fleet::Vehicle>),
            action: Some(|api, call| Box::pin(vehicles::create(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/vehicles/custom-fields",
            operation: "bulkChangeCustomField",
            summary: "Adds, changes or removes one custom field of many vehicles, all or nothing.",
            access: Access::Permission(schemas::integrations::Permission::VehiclesWrite),
            body: Some(schema_of::<vehicles::BulkEdit>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::fleet::BulkResult>),
            action: Some(|api, call| Box::pin(vehicles::bulk(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/vehicles/nearby",
            operation: "listNearbyVehicles",
            summary: "Vehicles within `radius` metres of `lat`/`lng`, nearest first.",
            access: Access::Permission(schemas::integrations::Permission::VehiclesRead),
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::fleet::Nearby>, vehicles::NEARBY),
            action: Some(|api, call| Box::pin(vehicles::nearby(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/vehicles/{id}",
            operation: "getVehicle",
            summary: "One vehicle: master data, custom fields, status, capabilities, latest state.",
            access: Access::Permission(schemas::integrations::Permission::VehiclesRead),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::fleet::Vehicle>),
            action: Some(|api, call| Box::pin(vehicles::get(api, call))),
        },
        Route {
            method: Method::PATCH,
            path: "/vehicles/{id}",
            operation: "updateVehicle",
            summary: "Changes master data, custom fields and operation status at once.",
            access: Access::Permission(schemas::integrations::Permission::VehiclesWrite),
            body: Some(schema_of::<vehicles::VehicleChanges>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::fleet::Vehicle>),
            action: Some(|api, call| Box::pin(vehicles::update(api, call))),
        },
        Route {
            method: Method::DELETE,
            path: "/vehicles/{id}",
            operation: "removeVehicle",
            summary: "Removes a vehicle from its fleet; its state history stays until it ages out.",
            access: Access::Permission(schemas::integrations::Permission::VehiclesWrite),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::Deleted>),
            action: Some(|api, call| Box::pin(vehicles::delete(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/vehicles/{id}/state",
            operation: "getVehicleState",
            summary: "The latest reading of each property the vehicle reported, each with its time.",
            access: Access::Permission(schemas::integrations::Permission::VehiclesRead),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::fleet::LatestState>),
            action: Some(|api, call| Box::pin(vehicles::state(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/vehicles/{id}/commands/{command}",
            operation: "sendVehicleCommand",
            summary: "Sends a command (`unlock-central-lock`, `honk-and-flash`, …) and waits for the vehicle's answer, or answers 202 at once.",
            access: Access::Permission(schemas::integrations::Permission::VehiclesWrite),
            body: Some(schema_of::<vehicles::CommandRequest>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::fleet::commands::CommandStatus>),
            action: Some(|api, call| Box::pin(vehicles::send_command(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/vehicle-commands/{id}",
            operation: "getVehicleCommand",
            summary: "Where a command sent to a vehicle stands.",
            access: Access::Permission(schemas::integrations::Permission::VehiclesRead),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::fleet::commands::CommandStatus>),
            action: Some(|api, call| Box::pin(vehicles::command_status(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/subscriptions",
            operation: "listSubscriptions",
            summary: "The organisation's event subscriptions (AMQP queues).",
            access: Key,
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::subscriptions::Subscription>, &[]),
            action: Some(|api, call| Box::pin(subscriptions::list(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/subscriptions",
            operation: "createSubscription",
            summary: "An AMQP queue of the organisation's events the key may read, with credentials that read it only (shown once).",
            access: Key,
            body: Some(schema_of::<subscriptions::NewSubscription>),
            status: 201,
            returns: Returns::Item(schema_of::<subscriptions::SubscriptionWithCredentials>),
            action: Some(|api, call| Box::pin(subscriptions::create(api, call))),
        },
        Route {
            method: Method::DELETE,
            path: "/subscriptions/{id}",
            operation: "deleteSubscription",
            summary: "Deletes a subscription: its queue and its broker user.",
            access: Key,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::Deleted>),
            action: Some(|api, call| Box::pin(subscriptions::delete(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/zones",
            operation: "listZones",
            summary: "The zones: parking, no-parking, no-ride, slow and operating areas.",
            access: Access::Permission(schemas::integrations::Permission::ZonesRead),
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::zones::StoredZone>, zones::FILTERS),
            action: Some(|api, call| Box::pin(zones::list(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/zones",
            operation: "createZone",
            summary: "Creates a zone (organisation admins).",
            access: Admin,
            body: Some(schema_of::<zones::ZoneBody>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::zones::StoredZone>),
            action: Some(|api, call| Box::pin(zones::create(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/zones/containing",
            operation: "listZonesContaining",
            summary: "The zones that hold the point `lat`/`lng`.",
            access: Access::Permission(schemas::integrations::Permission::ZonesRead),
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::zones::StoredZone>, zones::POINT),
            action: Some(|api, call| Box::pin(zones::containing(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/zones/{id}",
            operation: "getZone",
            summary: "One zone.",
            access: Access::Permission(schemas::integrations::Permission::ZonesRead),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::zones::StoredZone>),
            action: Some(|api, call| Box::pin(zones::get(api, call))),
        },
        Route {
            method: Method::PUT,
            path: "/zones/{id}",
            operation: "replaceZone",
            summary: "Replaces a zone (organisation admins).",
            access: Admin,
            body: Some(schema_of::<zones::ZoneBody>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::zones::StoredZone>),
            action: Some(|api, call| Box::pin(zones::replace(api, call))),
        },
        Route {
            method: Method::DELETE,
            path: "/zones/{id}",
            operation: "deleteZone",
            summary: "Deletes a zone (organisation admins).",
            access: Admin,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::Deleted>),
            action: Some(|api, call| Box::pin(zones::delete(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/chargers",
            operation: "listChargers",
            summary: "The chargers, with the state their status notifications keep current.",
            access: Key,
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::chargers::Charger>, &[]),
            action: Some(|api, call| Box::pin(chargers::list(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/chargers",
            operation: "registerCharger",
            summary: "Registers a charger (organisation admins).",
            access: Admin,
            body: Some(schema_of::<chargers::ChargerBody>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::chargers::Charger>),
            action: Some(|api, call| Box::pin(chargers::register(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/chargers/{id}",
            operation: "getCharger",
            summary: "One charger.",
            access: Key,
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::chargers::Charger>),
            action: Some(|api, call| Box::pin(chargers::get(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/customers",
            operation: "listCustomers",
            summary: "The customers, searched by e-mail or status.",
            access: Access::Permission(schemas::integrations::Permission::CustomersRead),
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::customers::Customer>, customers::FILTERS),
            action: Some(|api, call| Box::pin(customers::list(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/customers",
            operation: "createCustomer",
            summary: "Registers a customer.",
            access: Access::Permission(schemas::integrations::Permission::CustomersWrite),
            body: Some(schema_of::<customers::NewCustomer>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::customers::Customer>),
            action: Some(|api, call| Box::pin(customers::create(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/customers/{id}",
            operation: "getCustomer",
            summary: "One customer.",
            access: Access::Permission(schemas::integrations::Permission::CustomersRead),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::customers::Customer>),
            action: Some(|api, call| Box::pin(customers::get(api, call))),
        },
        Route {
            method: Method::PATCH,
            path: "/customers/{id}",
            operation: "updateCustomer",
            summary: "Changes a customer's e-mail, name or phone.",
            access: Access::Permission(schemas::integrations::Permission::CustomersWrite),
            body: Some(schema_of::<customers::CustomerChanges>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::customers::Customer>),
            action: Some(|api, call| Box::pin(customers::update(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/customers/{id}/block",
            operation: "blockCustomer",
            summary: "Blocks a customer from riding, with a reason.",
            access: Access::Permission(schemas::integrations::Permission::CustomersWrite),
            body: Some(schema_of::<customers::Reason>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::customers::Customer>),
            action: Some(|api, call| Box::pin(customers::block(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/customers/{id}/unblock",
            operation: "unblockCustomer",
            summary: "Lifts a customer's block, with a reason.",
            access: Access::Permission(schemas::integrations::Permission::CustomersWrite),
            body: Some(schema_of::<customers::Reason>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::customers::Customer>),
            action: Some(|api, call| Box::pin(customers::unblock(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/customers/{id}/wallet",
            operation: "getWallet",
            summary: "A customer's balance and latest ledger entries.",
            access: Access::Permission(schemas::integrations::Permission::WalletRead),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::wallets::Wallet>),
            action: Some(|api, call| Box::pin(customers::wallet(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/customers/{id}/wallet",
            operation: "postWalletEntry",
            summary: "Credits or debits a wallet; once per Idempotency-Key.",
            access: Access::Permission(schemas::integrations::Permission::WalletWrite),
            body: Some(schema_of::<customers::WalletPosting>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::wallets::Entry>),
            action: Some(|api, call| Box::pin(customers::post_entry(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/customers/{id}/wallet/entries/{entry_id}/refund",
            operation: "refundWalletEntry",
            summary: "Reverses an entry with an entry of the opposite direction.",
            access: Access::Permission(schemas::integrations::Permission::WalletWrite),
            body: Some(schema_of::<customers::Reason>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::wallets::Entry>),
            action: Some(|api, call| Box::pin(customers::refund(api, call))),
        },
        Route {
            method: Method::PUT,
            path: "/customers/{id}/wallet/overdraft",
            operation: "setWalletOverdraft",
            summary: "Sets how far below zero a wallet may go (organisation admins).",
            access: Admin,
            body: Some(schema_of::<customers::Overdraft>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::wallets::Wallet>),
            action: Some(|api, call| Box::pin(customers::set_overdraft(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/rides",
            operation: "listRides",
            summary: "The rides, newest first; by status, customer or vehicle.",
            access: Access::Permission(schemas::integrations::Permission::RidesRead),
            body: None,
            status: 200,
            returns: Returns::List(schema_of::<readside::rides::Ride>, rides::FILTERS),
            action: Some(|api, call| Box::pin(rides::list(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/rides",
            operation: "startRide",
            summary: "Starts a ride: the customer unlocks the vehicle.",
            access: Access::Permission(schemas::integrations::Permission::RidesWrite),
            body: Some(schema_of::<rides::NewRide>),
            status: 201,
            returns: Returns::Item(schema_of::<readside::rides::Ride>),
            action: Some(|api, call| Box::pin(rides::start(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/rides/{id}",
            operation: "getRide",
            summary: "One ride, with its price once ended.",
            access: Access::Permission(schemas::integrations::Permission::RidesRead),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::rides::Ride>),
            action: Some(|api, call| Box::pin(rides::get(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/rides/{id}/pause",
            operation: "pauseRide",
            summary: "Pauses an active ride.",
            access: Access::Permission(schemas::integrations::Permission::RidesWrite),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::rides::Ride>),
            action: Some(|api, call| Box::pin(rides::pause(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/rides/{id}/resume",
            operation: "resumeRide",
            summary: "Resumes a paused ride.",
            access: Access::Permission(schemas::integrations::Permission::RidesWrite),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::rides::Ride>),
            action: Some(|api, call| Box::pin(rides::resume(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/rides/{id}/end",
            operation: "endRide",
            summary: "Ends a ride: priced, charged to the wallet, the vehicle released.",
            access: Access::Permission(schemas::integrations::Permission::RidesWrite),
            body: Some(schema_of::<rides::RideEnd>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::rides::Ride>),
            action: Some(|api, call| Box::pin(rides::end(api, call))),
        },
        Route {
            method: Method::GET,
            path: "/pricing",
            operation: "getPricing",
            summary: "The pricing plan of the subaccount the request acts on.",
            access: Access::Permission(schemas::integrations::Permission::PricingRead),
            body: None,
            status: 200,
            returns: Returns::Item(schema_of::<readside::pricing::StoredPlan>),
            action: Some(|api, call| Box::pin(pricing::get(api, call))),
        },
        Route {
            method: Method::PUT,
            path: "/pricing",
            operation: "setPricing",
            summary: "Sets the subaccount's pricing plan; rides started afterwards use it (organisation admins).",
            access: Admin,
            body: Some(schema_of::<pricing::PlanBody>),
            status: 200,
            returns: Returns::Item(schema_of::<readside::pricing::StoredPlan>),
            action: Some(|api, call| Box::pin(pricing::set(api, call))),
        },
        Route {
            method: Method::POST,
            path: "/etvas-events",
            operation: "receiveEtvasEvent",
            summary: "The Etvas marketplace callback: user and product events, answered with our ids.",
            access: Access::Permission(schemas::integrations::Permission::CustomersWrite),
            body: Some(schema_of::<marketplace::Callback>),
            status: 200,
            returns: Returns::Bare(schema_of::<marketplace::CallbackReply>),
            action: Some(|api, call| Box::pin(marketplace::receive(api, call))),
        },
    ]
}

/// Reads `page` and `limit` from a list route's query (defaults 1 and 50, limit at most 100).
pub(crate) fn page_of(query: Option<&str>) -> Result<super::response::Page, ApiError> {
    page_and_filters(query, &[]).map(|(page, _)| page)
}

/// The filters a request gave, by name.
pub(crate) type FilterValues = Vec<(&'static str, String)>;

/// The page asked for and the values of `filters` given; any other parameter is refused.
pub(crate) fn page_and_filters(
    query: Option<&str>,
    filters: &[QueryFilter],
) -> Result<(super::response::Page, FilterValues), ApiError> {
    let mut page = super::response::Page { page: 1, limit: 50 };
    let mut values = Vec::new();
    for (name, value) in query_pairs(query) {
        let value = &percent_decoded(value)
            .ok_or_else(|| ApiError::invalid(name, format!("`{name}` is not valid percent-encoded UTF-8")))?;
        let number = |max: u64| value.parse::<u64>().ok().filter(|n| (1..=max).contains(n));
        match name {
            "page" => {
                page.page = number(1_000_000).ok_or_else(|| ApiError::invalid("page", "page must be 1 to 1000000"))?
            }
            "limit" => page.limit = number(100).ok_or_else(|| ApiError::invalid("limit", "limit must be 1 to 100"))?,
            _ => {
                let Some(filter) = filters.iter().find(|f| f.name == name) else {
                    return unreachable_param(name).map(|()| (page, values));
                };
                let accepted = if filter.values.is_empty() {
                    !value.is_empty() && value.len() <= 200
                } else {
                    filter.values.contains(&value.as_str())
                };
                if !accepted {
                    let expected = if filter.values.is_empty() {
                        "1 to 200 characters".to_owned()
                    } else {
                        filter.values.join(", ")
                    };
                    return Err(ApiError::invalid(filter.name, format!("{} must be {expected}", filter.name)));
                }
                values.push((filter.name, value.clone()));
            }
        }
    }
    Ok((page, values))
}

/// Refuses query parameters a route does not take.
pub(crate) fn check_query(returns: Returns, query: Option<&str>) -> Result<(), ApiError> {
    match returns {
        Returns::List(_, filters) => page_and_filters(query, filters).map(|_| ()),
        Returns::Item(_) | Returns::Bare(_) | Returns::Document => match query_pairs(query).next() {
            Some((name, _)) => unreachable_param(name),
            None => Ok(()),
        },
    }
}

fn unreachable_param(name: &str) -> Result<(), ApiError> {
    Err(ApiError::invalid(name, format!("unknown query parameter `{name}`")))
}

/// A query value as sent in a URL (`%2C` is `,`, `+` a space); `None` if it is not UTF-8.
fn percent_decoded(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8(decoded).ok()
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query.unwrap_or_default().split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")))
}
