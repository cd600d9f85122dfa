//! The AsyncAPI 3.0 document of everything voltbus says or hears asynchronously, generated from
//! the one catalogue and the bus's own naming modules: the RabbitMQ exchanges, routing keys and a
//! partner's subscriber queue (with its credentials), the NATS subjects (the app's realtime
//! channels, vehicles' telemetry and commands, chargers, events), and the webhooks as HTTP
//! channels with their signature headers. Every message carries its JSON Schema and an example.
//! Served at `GET /asyncapi.json` beside the OpenAPI document, and kept in `docs/asyncapi.yaml`.
//!
//! The document describes voltbus as the application: `send` is what voltbus publishes or
//! delivers (a partner's side receives it), `receive` what it takes in.

use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use schemas::integrations::Permission;
use schemas::{Descriptor, Envelope, Kind, descriptors, routing, subjects};
use serde_json::{Map, Value, json};

use crate::edge::openapi::example;

/// Version of the AMQP, NATS-less HTTP bindings written.
const AMQP_BINDING: &str = "0.3.0";
const HTTP_BINDING: &str = "0.3.0";

/// The CloudEvents attributes NATS messages carry as `ce-…` headers (binary content mode).
const BINARY_HEADERS: [(&str, &str, Option<&str>); 14] = [
    ("ce-specversion", "CloudEvents version, `1.0`.", None),
    ("ce-id", "The message id (UUIDv7); the inbox de-duplicates on it.", Some("uuid")),
    ("ce-source", "Which part of voltbus produced it (`voltbus/edge`, `voltbus/mqtt`).", None),
    ("ce-type", "The message type (`ride.ended`).", None),
    ("ce-dataversion", "`major.minor` of the data's shape.", None),
    ("ce-time", "When it was made (RFC 3339).", Some("date-time")),
    ("ce-tenant", "The organisation.", None),
    ("ce-correlationid", "The first message of the conversation.", Some("uuid")),
    ("ce-causationid", "The message that directly caused this one.", Some("uuid")),
    ("ce-subject", "The aggregate it is about.", None),
    (
        "ce-traceparent",
        "W3C trace context of the message's creation (CloudEvents distributed tracing), when traces are exported.",
        None,
    ),
    ("ce-tracestate", "W3C `tracestate` that goes with `ce-traceparent`.", None),
    ("traceparent", "The same W3C trace context under its own name, as tracing tools read NATS headers.", None),
    ("tracestate", "The same `tracestate` under its own name.", None),
];

/// An event id as webhooks carry it, for examples.
const EXAMPLE_EVENT_ID: &str = "evt_01a24cfb2d2274edabf1301747869924";

/// How a UUID parameter is described.
const UUID: &str = "a UUID";

/// What a channel carries, in which content mode.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// The whole envelope as JSON (`application/cloudevents+json`): RabbitMQ.
    Structured,
    /// `data` alone, the attributes as `ce-…` headers: NATS.
    Binary,
    /// A webhook's body (`{event, event_id, timestamp, data}`) with its signature headers.
    Webhook,
}

impl Mode {
    fn key(self, type_name: &str) -> String {
        match self {
            Mode::Structured => type_name.to_owned(),
            Mode::Binary => format!("{type_name}.nats"),
            Mode::Webhook => format!("{type_name}.webhook"),
        }
    }
}

/// One channel: its id, address, server, what it says, and the binding of its transport.
struct Channel {
    id: &'static str,
    address: String,
    server: &'static str,
    description: String,
    parameters: &'static [(&'static str, &'static str)],
    messages: Vec<(&'static Descriptor, Mode)>,
    action: &'static str,
    bindings: Value,
}

fn of(names: &[&str], mode: Mode) -> Vec<(&'static Descriptor, Mode)> {
    names.iter().filter_map(|name| schemas::descriptor_of(name)).map(|d| (d, mode)).collect()
}

fn every(kind: Kind, mode: Mode) -> Vec<(&'static Descriptor, Mode)> {
    descriptors().iter().filter(|d| d.kind == kind).map(|d| (d, mode)).collect()
}

/// What partners may receive: the events a permission reads.
fn offered(mode: Mode) -> Vec<(&'static Descriptor, Mode)> {
    descriptors().iter().filter(|d| d.kind == Kind::Event && d.read.is_some()).map(|d| (d, mode)).collect()
}

fn exchange(name: &str) -> Value {
    json!({ "amqp": { "is": "routingKey", "exchange": { "name": name, "type": "topic", "durable": true,
        "autoDelete": false, "vhost": "/" }, "bindingVersion": AMQP_BINDING } })
}

fn channels() -> Vec<Channel> {
    vec![
        Channel {
            id: "commands",
            address: "{domain}.{type}".into(),
            server: "rabbitmq",
            description: format!(
                "Commands, on the `{}` topic exchange: each domain's work queue (`voltbus.{{group}}`) binds `{{domain}}.#`; the tenant travels in the envelope.",
                routing::COMMANDS_EXCHANGE
            ),
            parameters: &[("domain", "The owning domain."), ("type", "The command type.")],
            messages: every(Kind::Command, Mode::Structured),
            action: "receive",
            bindings: exchange(routing::COMMANDS_EXCHANGE),
        },
        Channel {
            id: "events",
            address: "{tenant}.{subaccount}.{domain}.{type}".into(),
            server: "rabbitmq",
            description: format!(
                "Domain events, on the `{}` topic exchange, tenant first so a partner's queue is bound under its own tenant; then the subaccount the event is about (`{}` for the organisation as a whole).",
                routing::EVENTS_EXCHANGE,
                routing::ORGANISATION_WORD
            ),
            parameters: &[
                ("tenant", "The organisation."),
                ("subaccount", "The subaccount's UUID, or `org`."),
                ("domain", "The owning domain."),
                ("type", "The event type."),
            ],
            messages: every(Kind::Event, Mode::Structured),
            action: "send",
            bindings: exchange(routing::EVENTS_EXCHANGE),
        },
        Channel {
            id: "subscriberQueue",
            address: "voltbus.subscriber.{tenant}.{app}".into(),
            server: "rabbitmq",
            description: "A partner's own durable queue (the Messaging API): `POST /api/partner/v1/subscriptions` with the event types (each needs the permission that reads it) binds it to exactly those, of the key's subaccounts only, and answers once with a broker user and password that may read this queue and nothing else.".into(),
            parameters: &[("tenant", "The organisation."), ("app", "The subscription's name.")],
            messages: offered(Mode::Structured),
            action: "send",
            bindings: json!({ "amqp": { "is": "queue", "queue": { "name": "voltbus.subscriber.{tenant}.{app}",
                "durable": true, "exclusive": false, "autoDelete": false, "vhost": "/" }, "bindingVersion": AMQP_BINDING } }),
        },
        Channel {
            id: "webhooks",
            address: "{path}".into(),
            server: "partnerEndpoint",
            description: format!(
                "Webhook deliveries: `POST` to the endpoint a partner registered (`POST /api/partner/v1/webhooks`), signed with its secret in `{}` (`t=…,v1=…`, or the organisation's profile name, `X-Levy-Signature`) and in the Standard Webhooks headers; retried with backoff until a 2xx.",
                signatures::VOLTBUS_SIGNATURE
            ),
            parameters: &[("path", "The path of the endpoint's URL.")],
            messages: of(&schemas::webhooks::EVENT_TYPES, Mode::Webhook),
            action: "send",
            bindings: json!({ "http": { "bindingVersion": HTTP_BINDING } }),
        },
        Channel {
            id: "userCharging",
            address: "voltbus.{tenant}.users.{user}.CHARGING".into(),
            server: "nats",
            description: "A phone's charging progress every few seconds (EVM seed: `{topic}.CHARGING`); the app's credentials may subscribe to its own topic only.".into(),
            parameters: &[("tenant", "The organisation."), ("user", UUID)],
            messages: of(&[subjects::Channel::Charging.as_str()], Mode::Binary),
            action: "send",
            bindings: Value::Null,
        },
        Channel {
            id: "userPayment",
            address: "voltbus.{tenant}.users.{user}.PAYMENT".into(),
            server: "nats",
            description: "The outcome of a purchase's payment (EVM seed: `{topic}.PAYMENT`).".into(),
            parameters: &[("tenant", "The organisation."), ("user", UUID)],
            messages: of(&[subjects::Channel::Payment.as_str()], Mode::Binary),
            action: "send",
            bindings: Value::Null,
        },
        Channel {
            id: "userReplenishment",
            address: "voltbus.{tenant}.users.{user}.REPLENISHMENT".into(),
            server: "nats",
            description: "The outcome of a balance top-up (EVM seed: `{topic}.REPLENISHMENT`).".into(),
            parameters: &[("tenant", "The organisation."), ("user", UUID)],
            messages: of(&[subjects::Channel::Replenishment.as_str()], Mode::Binary),
            action: "send",
            bindings: Value::Null,
        },
        Channel {
            id: "vehicleState",
            address: "voltbus.{tenant}.vehicles.{vehicle}.state".into(),
            server: "nats",
            description: format!(
                "A vehicle's telematics unit reports its state (kept in the `{}` stream); an MQTT unit publishes the state object alone on `voltbus/{{tenant}}/vehicles/{{vehicle}}/state` through NATS's MQTT listener.",
                subjects::TELEMETRY_STREAM
            ),
            parameters: &[("tenant", "The organisation."), ("vehicle", UUID)],
            messages: of(&["vehicle.state_reported"], Mode::Binary),
            action: "receive",
            bindings: Value::Null,
        },
        Channel {
            id: "vehicleCommands",
            address: "voltbus.{tenant}.vehicles.{vehicle}.commands".into(),
            server: "nats",
            description: format!(
                "Commands for a vehicle's device (kept in the `{}` stream); not to be carried out after `expires_at`.",
                subjects::VEHICLE_COMMANDS_STREAM
            ),
            parameters: &[("tenant", "The organisation."), ("vehicle", UUID)],
            messages: of(&["vehicle.device_command"], Mode::Binary),
            action: "send",
            bindings: Value::Null,
        },
        Channel {
            id: "vehicleCommandResults",
            address: "voltbus.{tenant}.vehicles.{vehicle}.command-results".into(),
            server: "nats",
            description: "A device's answer to a command.".into(),
            parameters: &[("tenant", "The organisation."), ("vehicle", UUID)],
            messages: of(&["vehicle.device_command_result"], Mode::Binary),
            action: "receive",
            bindings: Value::Null,
        },
        Channel {
            id: "chargerStatus",
            address: "voltbus.{tenant}.chargers.{charger}.status".into(),
            server: "nats",
            description: "A charger's OCPP status notifications, as the OCPP door or a charger's bridge publishes them.".into(),
            parameters: &[("tenant", "The organisation."), ("charger", UUID)],
            messages: of(&["charger.status_notification"], Mode::Binary),
            action: "receive",
            bindings: Value::Null,
        },
        Channel {
            id: "chargerMeter",
            address: "voltbus.{tenant}.chargers.{charger}.meter".into(),
            server: "nats",
            description: "A charger's OCPP meter values.".into(),
            parameters: &[("tenant", "The organisation."), ("charger", UUID)],
            messages: of(&["charger.meter_values"], Mode::Binary),
            action: "receive",
            bindings: Value::Null,
        },
        Channel {
            id: "chargerCommands",
            address: "voltbus.{tenant}.chargers.{charger}.commands".into(),
            server: "nats",
            description: "Remote start and stop for a charger.".into(),
            parameters: &[("tenant", "The organisation."), ("charger", UUID)],
            messages: of(&["charger.remote_command"], Mode::Binary),
            action: "send",
            bindings: Value::Null,
        },
        Channel {
            id: "natsEvents",
            address: "voltbus.{tenant}.events.{domain}.{type}".into(),
            server: "nats",
            description: format!("Domain events bound for NATS (kept in the `{}` stream).", subjects::EVENTS_STREAM),
            parameters: &[("tenant", "The organisation."), ("domain", "The owning domain."), ("type", "The event type.")],
            messages: every(Kind::Event, Mode::Binary),
            action: "send",
            bindings: Value::Null,
        },
    ]
}

/// The `ce-…` headers of a binary-mode message.
fn binary_headers(type_name: &str, version: &str) -> Value {
    let mut properties: Map<String, Value> = BINARY_HEADERS
        .iter()
        .map(|(name, description, format)| {
            let mut schema = json!({ "type": "string", "description": description });
            if let Some(format) = format {
                schema["format"] = json!(format);
            }
            (name.to_string(), schema)
        })
        .collect();
    properties.insert("ce-type".into(), json!({ "const": type_name, "description": "The message type." }));
    properties.insert("ce-specversion".into(), json!({ "const": "1.0", "description": "CloudEvents version." }));
    properties["ce-dataversion"]["examples"] = json!([version]);
    let required = ["ce-specversion", "ce-id", "ce-source", "ce-type", "ce-dataversion", "ce-time", "ce-tenant"];
    json!({ "type": "object", "required": required, "properties": properties })
}

/// The signature headers of a webhook delivery.
fn webhook_headers() -> Value {
    json!({
        "type": "object",
        "required": [signatures::VOLTBUS_SIGNATURE, signatures::WEBHOOK_ID, signatures::WEBHOOK_TIMESTAMP, signatures::WEBHOOK_SIGNATURE],
        "properties": {
            signatures::VOLTBUS_SIGNATURE: { "type": "string", "pattern": "^t=[0-9]+(,v1=[0-9a-f]{64})+$",
                "examples": [format!("t=1765022400,v1={}", "5e".repeat(32))],
                "description": "HMAC-SHA256 of `{t}.{body}` with each live secret, newest first (the Levy seed's format; `X-Levy-Signature` under a Levy profile)." },
            signatures::WEBHOOK_ID: { "type": "string", "examples": [EXAMPLE_EVENT_ID],
                "description": "The event's id, the same on every attempt: an idempotency key." },
            signatures::WEBHOOK_TIMESTAMP: { "type": "string", "pattern": "^[0-9]+$", "examples": ["1765022400"],
                "description": "Unix seconds of the signature." },
            signatures::WEBHOOK_SIGNATURE: { "type": "string", "examples": ["v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="],
                "description": "Standard Webhooks: `v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>`, space-separated." },
            "traceparent": { "type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
                "examples": ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"],
                "description": "W3C trace context of the delivery attempt's span, a child of the trace that caused the event (the partner's own REST call's, when it sent one); when voltbus exports traces." },
        },
    })
}

/// The message of `descriptor` in `mode`: its payload's schema (definitions in `generator`), headers,
/// content type and bindings; its example is added once the definitions are known.
fn message(descriptor: &Descriptor, mode: Mode, generator: &mut SchemaGenerator) -> Value {
    let data: Value = (descriptor.data_schema)(generator).into();
    let name = descriptor.type_name;
    let version = format!("{}.{}", descriptor.version.major, descriptor.version.minor);
    let reads = descriptor.read.map(|p: Permission| serde_json::to_value(p).unwrap_or_default());
    let mut summary =
        format!("`{name}` {}, {} domain, data version {version}", descriptor.kind.as_str(), descriptor.domain);
    if let Some(Value::String(permission)) = &reads {
        summary.push_str(&format!("; partners need `{permission}`"));
    }
    let mut message = json!({ "name": name, "title": descriptor.rust_name, "summary": summary });
    match mode {
        Mode::Structured => {
            let envelope: Value = generator.subschema_for::<Envelope<serde_json::Value>>().into();
            message["contentType"] = json!("application/cloudevents+json");
            message["payload"] = json!({ "allOf": [envelope, { "type": "object", "properties": {
                "type": { "const": name },
                "dataversion": { "type": "string", "pattern": format!("^{}\\.[0-9]+$", descriptor.version.major),
                    "examples": [version] },
                "data": data,
            } }] });
            message["bindings"] =
                json!({ "amqp": { "contentEncoding": "utf-8", "messageType": name, "bindingVersion": AMQP_BINDING } });
        }
        Mode::Binary => {
            message["contentType"] = json!("application/json");
            message["headers"] = binary_headers(name, &version);
            message["payload"] = data;
        }
        Mode::Webhook => {
            message["contentType"] = json!("application/json");
            message["headers"] = webhook_headers();
            message["payload"] = json!({ "type": "object", "required": ["event", "event_id", "timestamp", "data"], "properties": {
                "event": { "const": name },
                "event_id": { "type": "string", "pattern": "^evt_[0-9a-f]{32}$", "examples": [EXAMPLE_EVENT_ID],
                    "description": "The event's id (`evt_…`), as in `webhook-id`." },
                "timestamp": { "type": "string", "format": "date-time" },
                "data": data,
            } });
            message["bindings"] = json!({ "http": { "bindingVersion": HTTP_BINDING } });
        }
    }
    message
}

/// The whole document.
pub(crate) fn document() -> Value {
    let settings = SchemaSettings::draft07().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    });
    let mut generator = SchemaGenerator::new(settings);
    let mut messages = Map::new();
    let mut channels_out = Map::new();
    let mut operations = Map::new();
    for channel in channels() {
        let mut listed = Map::new();
        for (descriptor, mode) in &channel.messages {
            let key = mode.key(descriptor.type_name);
            if !messages.contains_key(&key) {
                messages.insert(key.clone(), message(descriptor, *mode, &mut generator));
            }
            listed.insert(key.clone(), json!({ "$ref": format!("#/components/messages/{key}") }));
        }
        let parameters: Map<String, Value> = channel
            .parameters
            .iter()
            .map(|(name, description)| (name.to_string(), json!({ "description": description })))
            .collect();
        let mut described = json!({
            "address": channel.address,
            "description": channel.description,
            "servers": [{ "$ref": format!("#/servers/{}", channel.server) }],
            "messages": listed,
            "parameters": parameters,
        });
        if !channel.bindings.is_null() {
            described["bindings"] = channel.bindings.clone();
        }
        let references: Vec<Value> = listed_keys(&described)
            .into_iter()
            .map(|key| json!({ "$ref": format!("#/channels/{}/messages/{key}", channel.id) }))
            .collect();
        let mut operation = json!({
            "action": channel.action,
            "channel": { "$ref": format!("#/channels/{}", channel.id) },
            "summary": format!("voltbus {}s on `{}`.", channel.action, channel.address),
            "messages": references,
        });
        if channel.server == "partnerEndpoint" {
            operation["bindings"] = json!({ "http": { "method": "POST", "bindingVersion": HTTP_BINDING } });
        }
        let verb = if channel.action == "send" { "send" } else { "receive" };
        operations.insert(format!("{verb}{}", capitalised(channel.id)), operation);
        channels_out.insert(channel.id.to_owned(), described);
    }
    let schemas: Map<String, Value> = generator.take_definitions(true);
    for message in messages.values_mut() {
        let mut example_of = json!({ "payload": example(&message["payload"], &schemas, 0) });
        if message.get("headers").is_some() {
            example_of["headers"] = example(&message["headers"], &schemas, 0);
        }
        message["examples"] = json!([example_of]);
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "voltbus messages",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every message voltbus publishes or takes, on every transport, from its one catalogue: RabbitMQ (commands, events, a partner's subscriber queue; the whole CloudEvents envelope as JSON), NATS (the app's realtime channels, vehicles, chargers, events; `data` alone with the attributes as `ce-` headers), and webhooks (the seed's body, signed). Each message has its JSON Schema and an example.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "rabbitmq": {
                "host": "localhost:5672",
                "protocol": "amqp",
                "protocolVersion": "0.9.1",
                "description": "The operator's RabbitMQ (`amqp.url`); partners reach only their subscriber queue.",
                "security": [{ "$ref": "#/components/securitySchemes/subscriberCredentials" }],
            },
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The operator's NATS with JetStream (`nats.url`).",
                "security": [{ "$ref": "#/components/securitySchemes/natsCredentials" }],
            },
            "partnerEndpoint": {
                "host": "{host}",
                "protocol": "https",
                "description": "A partner's webhook endpoint: the URL it registered.",
                "variables": { "host": { "description": "The endpoint's host." } },
            },
        },
        "channels": channels_out,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": schemas,
            "securitySchemes": {
                "subscriberCredentials": { "type": "userPassword",
                    "description": "The broker user and password `POST /api/partner/v1/subscriptions` answers with once; they read the subscription's queue and nothing else." },
                "natsCredentials": { "type": "userPassword",
                    "description": "A NATS user JWT of the organisation's account: the app's (`nats` in the sign-in answer) may subscribe to its own user topic; a vehicle's (`voltbus vehicle-credentials`) may publish its state and take its commands." },
            },
        },
    })
}

fn listed_keys(channel: &Value) -> Vec<String> {
    channel["messages"].as_object().map_or(Vec::new(), |m| m.keys().cloned().collect())
}

fn capitalised(id: &str) -> String {
    let mut chars = id.chars();
    chars.next().map_or(String::new(), |first| first.to_uppercase().chain(chars).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::TenantId;
    use uuid::Uuid;

    /// Each channel's address is the name the bus really uses, its parameters filled in.
    #[test]
    fn addresses_are_the_bus_own_names() {
        let acme = TenantId::new("acme").unwrap();
        let id = Uuid::now_v7();
        let ride_ended = schemas::descriptor_of("ride.ended").unwrap();
        let start = schemas::descriptor_of("ride.start").unwrap();
        let fill = |address: &str| {
            address
                .replace("{tenant}", "acme")
                .replace("{user}", &id.to_string())
                .replace("{vehicle}", &id.to_string())
                .replace("{charger}", &id.to_string())
                .replace("{app}", "fleet-app")
                .replace("{subaccount}", routing::ORGANISATION_WORD)
        };
        let expected = [
            (
                "commands",
                routing::command_key(start),
                "{domain}.{type}".replace("{domain}", start.domain.as_str()).replace("{type}", start.type_name),
            ),
            ("userCharging", subjects::user_channel(&acme, id, subjects::Channel::Charging), String::new()),
            ("userPayment", subjects::user_channel(&acme, id, subjects::Channel::Payment), String::new()),
            ("userReplenishment", subjects::user_channel(&acme, id, subjects::Channel::Replenishment), String::new()),
            ("vehicleState", subjects::vehicle_state(&acme, id), String::new()),
            ("vehicleCommands", subjects::vehicle_commands(&acme, id), String::new()),
            ("vehicleCommandResults", subjects::vehicle_command_results(&acme, id), String::new()),
            ("chargerStatus", subjects::charger_status(&acme, id), String::new()),
            ("chargerMeter", subjects::charger_meter(&acme, id), String::new()),
            ("chargerCommands", subjects::charger_commands(&acme, id), String::new()),
            ("subscriberQueue", routing::subscriber_queue(&acme, "fleet-app"), String::new()),
        ];
        let channels = channels();
        for (id, real, direct) in expected {
            let channel = channels.iter().find(|c| c.id == id).unwrap();
            let written = if direct.is_empty() { fill(&channel.address) } else { direct };
            assert_eq!(written, real, "{id}");
        }
        let events = channels.iter().find(|c| c.id == "events").unwrap();
        let written = fill(&events.address)
            .replace("{domain}", ride_ended.domain.as_str())
            .replace("{type}", ride_ended.type_name);
        assert_eq!(written, routing::event_key(&acme, schemas::Reach::Organisation, ride_ended));
        let nats = channels.iter().find(|c| c.id == "natsEvents").unwrap();
        let written =
            fill(&nats.address).replace("{domain}", ride_ended.domain.as_str()).replace("{type}", ride_ended.type_name);
        assert_eq!(written, subjects::event(&acme, ride_ended));
    }

    /// Every catalogue type is in the document, and every webhook type as a webhook.
    #[test]
    fn every_catalogue_type_is_described() {
        let document = document();
        let messages = document["components"]["messages"].as_object().unwrap();
        for descriptor in descriptors() {
            assert!(messages.contains_key(descriptor.type_name), "{}", descriptor.type_name);
        }
        for event in schemas::webhooks::EVENT_TYPES {
            assert!(messages.contains_key(&format!("{event}.webhook")), "{event}");
        }
    }

    /// `docs/asyncapi.yaml` is the served document: the test fails when the file is stale, and
    /// `VOLTBUS_WRITE_DOCS=1` writes it.
    #[test]
    fn docs_asyncapi_yaml_is_the_served_document() {
        let written = format!("{YAML_HEADER}{}", yaml_serde::to_string(&document()).expect("a document is YAML"));
        crate::edge::assert_written("docs/asyncapi.yaml", &written);
    }

    const YAML_HEADER: &str = "# voltbus's AsyncAPI document, as `GET /asyncapi.json` serves it. Generated from the catalogue:\n\
        # `VOLTBUS_WRITE_DOCS=1 cargo test -p voltbus-publishers` writes it; do not edit.\n";
}
