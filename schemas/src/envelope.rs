//! The one envelope every message travels in, following CloudEvents 1.0 attribute names.
//!
//! Two encodings, both CloudEvents content modes:
//! - structured: the whole envelope as one JSON document (`data` inside). RabbitMQ work and event
//!   queues carry this, so a dead-lettered message is readable on its own.
//! - binary: the attributes as transport headers and `data` alone as the body. NATS realtime subjects
//!   carry this, so a mobile app receives exactly the seed's payload (`{energy, waitingTime, amount}`)
//!   and still has every attribute in the headers. The transport adds its own header prefix.

use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{DecodeError, Message, TenantId, Version, catalogue};

/// CloudEvents spec version this envelope follows.
pub const SPECVERSION: &str = "1.0";
/// Content type of `data` in every voltbus message.
pub const DATACONTENTTYPE_JSON: &str = "application/json";

/// A message on the bus: CloudEvents context attributes, voltbus extensions, and the typed `data`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Envelope<T> {
    /// CloudEvents version, always `1.0`.
    pub specversion: String,
    /// UUIDv7: unique per message and sortable by creation time; the inbox de-duplicates on it.
    pub id: Uuid,
    /// Which part of voltbus (or which partner) produced the message, e.g. `voltbus/edge`.
    pub source: String,
    /// Public type name from the catalogue, e.g. `ride.started`.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Version of the `data` shape (`major.minor`).
    pub dataversion: Version,
    /// The aggregate the message is about (vehicle id, ride id, user id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// When the message was created, RFC 3339 UTC.
    pub time: DateTime<Utc>,
    /// Always `application/json`.
    pub datacontenttype: String,
    /// The tenant the message belongs to; nothing crosses tenants.
    pub tenant: TenantId,
    /// Id of the first message of the conversation (the partner's request); shared by all it caused.
    pub correlationid: Uuid,
    /// Id of the message that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<Uuid>,
    /// W3C `traceparent` of the span the message was created in (CloudEvents' distributed tracing
    /// extension); present only where the process exports traces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// W3C `tracestate` that goes with `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
    /// The payload.
    pub data: T,
}

/// A W3C trace context: what [`Envelope::new`] writes into `traceparent` and `tracestate`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TraceContext {
    /// `traceparent` header value.
    pub traceparent: Option<String>,
    /// `tracestate` header value.
    pub tracestate: Option<String>,
}

/// Where new envelopes read the trace they are created in; unset (no trace, no cost) unless the
/// process exports traces.
static CURRENT_TRACE: OnceLock<fn() -> TraceContext> = OnceLock::new();

/// Makes every envelope created from now on carry the trace `current` reports; the first call wins.
pub fn trace_new_envelopes(current: fn() -> TraceContext) {
    let _ = CURRENT_TRACE.set(current);
}

/// One envelope attribute in binary content mode, without the transport's header prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    /// Attribute name (`id`, `type`, `tenant`, …).
    pub name: &'static str,
    /// Attribute value as text.
    pub value: String,
}

/// A message in binary content mode: attributes for the headers, `data` as the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinaryMessage {
    /// Envelope attributes, to be written as transport headers.
    pub attributes: Vec<Attribute>,
    /// `data` as JSON.
    pub body: Vec<u8>,
}

impl<T: Message> Envelope<T> {
    /// A new message that starts a conversation: its own id is its correlation id.
    pub fn new(tenant: TenantId, source: impl Into<String>, data: T) -> Self {
        let id = Uuid::now_v7();
        let TraceContext { traceparent, tracestate } = CURRENT_TRACE.get().map(|current| current()).unwrap_or_default();
        Self {
            specversion: SPECVERSION.to_owned(),
            id,
            source: source.into(),
            type_name: T::TYPE.to_owned(),
            dataversion: T::VERSION,
            subject: data.aggregate(),
            time: Utc::now(),
            datacontenttype: DATACONTENTTYPE_JSON.to_owned(),
            tenant,
            correlationid: id,
            causationid: None,
            traceparent,
            tracestate,
            data,
        }
    }

    /// Decodes a structured-mode message of this type.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let raw = Envelope::parse_raw(bytes)?;
        raw.check_type::<T>()?;
        let typed: T = serde_json::from_str(raw.data.get()).map_err(|e| invalid_data(&raw.type_name, &e))?;
        Ok(raw.map(|_| typed))
    }

    /// Decodes a binary-mode message of this type; `attribute` looks up a header by attribute name.
    pub fn from_binary(attribute: impl Fn(&str) -> Option<String>, body: &[u8]) -> Result<Self, DecodeError> {
        let shell = Envelope::binary_attributes(attribute)?;
        shell.check_type::<T>()?;
        let data: T = serde_json::from_slice(body).map_err(|e| body_error(T::TYPE, &e))?;
        Ok(shell.map(|()| data))
    }
}

impl<T> Envelope<T> {
    /// Makes this message a consequence of `cause`: same conversation, caused by it.
    pub fn caused_by<U>(mut self, cause: &Envelope<U>) -> Self {
        self.correlationid = cause.correlationid;
        self.causationid = Some(cause.id);
        self
    }

    /// Sets the `subject` attribute (e.g. the user a realtime message is for).
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Replaces the payload, keeping every attribute.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Envelope<U> {
        Envelope {
            specversion: self.specversion,
            id: self.id,
            source: self.source,
            type_name: self.type_name,
            dataversion: self.dataversion,
            subject: self.subject,
            time: self.time,
            datacontenttype: self.datacontenttype,
            tenant: self.tenant,
            correlationid: self.correlationid,
            causationid: self.causationid,
            traceparent: self.traceparent,
            tracestate: self.tracestate,
            data: f(self.data),
        }
    }
}

impl<T: Serialize> Envelope<T> {
    /// Structured mode: the whole envelope as JSON.
    pub fn encode(&self) -> Vec<u8> {
        // Catalogue types have string map keys and derived serializers only, so this cannot fail.
        serde_json::to_vec(self).expect("catalogue messages always serialize")
    }

    /// Binary mode: attributes for the headers, `data` as the body.
    pub fn to_binary(&self) -> BinaryMessage {
        let attr = |name: &'static str, value: String| Attribute { name, value };
        let mut attributes = vec![
            attr("specversion", self.specversion.clone()),
            attr("id", self.id.to_string()),
            attr("source", self.source.clone()),
            attr("type", self.type_name.clone()),
            attr("dataversion", self.dataversion.to_string()),
            attr("time", self.time.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            attr("datacontenttype", self.datacontenttype.clone()),
            attr("tenant", self.tenant.to_string()),
            attr("correlationid", self.correlationid.to_string()),
        ];
        if let Some(subject) = &self.subject {
            attributes.push(attr("subject", subject.clone()));
        }
        if let Some(causation) = self.causationid {
            attributes.push(attr("causationid", causation.to_string()));
        }
        if let Some(traceparent) = &self.traceparent {
            attributes.push(attr("traceparent", traceparent.clone()));
        }
        if let Some(tracestate) = &self.tracestate {
            attributes.push(attr("tracestate", tracestate.clone()));
        }
        let body = serde_json::to_vec(&self.data).expect("catalogue messages always serialize");
        BinaryMessage { attributes, body }
    }
}

impl Envelope<()> {
    /// A binary-mode message's attributes, read from its headers, without its body.
    pub(crate) fn binary_attributes(attribute: impl Fn(&str) -> Option<String>) -> Result<Self, DecodeError> {
        let required =
            |name: &str| attribute(name).ok_or_else(|| DecodeError::Malformed(format!("missing attribute `{name}`")));
        let uuid = |name: &str, value: String| {
            Uuid::parse_str(&value).map_err(|e| DecodeError::Malformed(format!("attribute `{name}`: {e}")))
        };
        Ok(Self {
            specversion: required("specversion")?,
            id: uuid("id", required("id")?)?,
            source: required("source")?,
            type_name: required("type")?,
            dataversion: required("dataversion")?
                .parse()
                .map_err(|e| DecodeError::Malformed(format!("attribute `dataversion`: {e}")))?,
            subject: attribute("subject"),
            time: DateTime::parse_from_rfc3339(&required("time")?)
                .map_err(|e| DecodeError::Malformed(format!("attribute `time`: {e}")))?
                .with_timezone(&Utc),
            datacontenttype: required("datacontenttype")?,
            tenant: TenantId::new(required("tenant")?)
                .map_err(|e| DecodeError::Malformed(format!("attribute `tenant`: {e}")))?,
            correlationid: uuid("correlationid", required("correlationid")?)?,
            causationid: attribute("causationid").map(|v| uuid("causationid", v)).transpose()?,
            traceparent: attribute("traceparent"),
            tracestate: attribute("tracestate"),
            data: (),
        })
    }
}

impl<'a> Envelope<&'a serde_json::value::RawValue> {
    /// Parses the envelope of a structured-mode message, leaving `data` as the JSON text it was:
    /// no tree is built for a payload that is decoded into its type, or passed on, afterwards.
    pub fn parse_raw(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

impl Envelope<Value> {
    /// Parses the envelope of a structured-mode message, leaving `data` untyped.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }

    /// Checks type and version against `T` and decodes `data` into it.
    pub fn into_typed<T: Message>(self) -> Result<Envelope<T>, DecodeError> {
        self.check_type::<T>()?;
        let type_name = self.type_name.clone();
        let mut data = Value::Null;
        let shell = self.map(|d| data = d);
        let typed: T = serde_json::from_value(data).map_err(|e| invalid_data(&type_name, &e))?;
        Ok(shell.map(|()| typed))
    }
}

impl<D> Envelope<D> {
    /// Whether this envelope carries a `T` of a version this build reads.
    fn check_type<T: Message>(&self) -> Result<(), DecodeError> {
        if self.type_name != T::TYPE {
            return Err(match catalogue::descriptor_of(&self.type_name) {
                Some(_) => DecodeError::UnexpectedType { expected: T::TYPE, found: self.type_name.clone() },
                None => DecodeError::UnknownType(self.type_name.clone()),
            });
        }
        check_version(&self.type_name, self.dataversion, T::VERSION)
    }
}

/// Why a binary-mode body did not decode into `type_name`: not JSON at all, or not its shape.
pub(crate) fn body_error(type_name: &str, error: &serde_json::Error) -> DecodeError {
    match error.classify() {
        serde_json::error::Category::Data => invalid_data(type_name, error),
        _ => DecodeError::Malformed(format!("body: {error}")),
    }
}

/// JSON that is not the shape of `type_name`.
pub(crate) fn invalid_data(type_name: &str, error: &serde_json::Error) -> DecodeError {
    DecodeError::InvalidData { type_name: type_name.to_owned(), reason: error.to_string() }
}

/// A message of a known major version is readable whatever its minor version: minor versions
/// only add optional fields.
pub(crate) fn check_version(type_name: &str, found: Version, supported: Version) -> Result<(), DecodeError> {
    if found.major == supported.major {
        Ok(())
    } else {
        Err(DecodeError::UnsupportedVersion { type_name: type_name.to_owned(), found, supported: supported.major })
    }
}
