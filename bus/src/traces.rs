//! OpenTelemetry spans over every hop a message makes: the HTTP request that sends a command, its
//! publish, the consumer that handles it and its transaction, the events it writes and their
//! relay, the webhook request they become. The W3C trace context travels in the envelope
//! (CloudEvents' `traceparent`/`tracestate`, the context the message was created in) and in the
//! transports' own headers; a span's parent is read from there.
//!
//! Off until the binary installs an exporting tracer ([`enable`]): until then no span is made,
//! no context attached, and envelopes carry no trace. `tracing` stays the log's: its spans carry
//! the ids every log line needs, these carry the hops and their timing, under the messaging and
//! HTTP semantic conventions' names.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::Either;
use opentelemetry::context::{FutureExt as _, WithContext};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Link, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracer;
use opentelemetry_semantic_conventions::attribute as semconv;
use schemas::{Envelope, TraceContext};

/// The semantic conventions' attribute names, for attributes set outside this module.
pub use opentelemetry_semantic_conventions::attribute;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// `messaging.system` of RabbitMQ.
pub const RABBITMQ: &str = "rabbitmq";
/// `messaging.system` of NATS (not among the conventions' well-known values; its own name).
pub const NATS: &str = "nats";
/// `messaging.system` of the embedded transport (the PostgreSQL/SQLite queue of the default set-up).
pub const EMBEDDED: &str = "voltbus_embedded";

/// Turns spans on with `tracer` (the first call wins); new envelopes carry the trace they are
/// created in from then on.
pub fn enable(tracer: SdkTracer) {
    if TRACER.set(tracer).is_ok() {
        schemas::trace_new_envelopes(current);
        ENABLED.store(true, Ordering::Release);
    }
}

/// Whether spans are made.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The W3C context of the span current on this task, for a message created now.
fn current() -> TraceContext {
    w3c(&Context::current())
}

/// `cx`'s span as W3C header values; empty when it has none.
fn w3c(cx: &Context) -> TraceContext {
    if !cx.span().span_context().is_valid() {
        return TraceContext::default();
    }
    let mut fields = HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut fields);
    TraceContext { traceparent: fields.remove("traceparent"), tracestate: fields.remove("tracestate") }
}

/// A context whose parent is the W3C trace in `traceparent`/`tracestate`; an empty one (a new
/// trace) for absent or malformed values.
fn parent_of(traceparent: Option<&str>, tracestate: Option<&str>) -> Context {
    struct Fields<'a>(Option<&'a str>, Option<&'a str>);
    impl Extractor for Fields<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                "traceparent" => self.0,
                "tracestate" => self.1,
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec!["traceparent", "tracestate"]
        }
    }
    match traceparent {
        Some(_) => TraceContextPropagator::new().extract(&Fields(traceparent, tracestate)),
        None => Context::new(),
    }
}

/// One hop's span, as the context its work runs in; nothing when spans are off. The span ends
/// when the last clone of it is dropped.
#[derive(Clone, Debug, Default)]
pub struct Hop(Option<Context>);

impl Hop {
    fn start(
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        parent: &Context,
        attributes: Vec<KeyValue>,
        links: Vec<Link>,
    ) -> Self {
        let Some(tracer) = TRACER.get() else { return Self(None) };
        let span = tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .with_links(links)
            .start_with_context(tracer, parent);
        Self(Some(parent.with_span(span)))
    }

    /// Runs `work` with this span current: messages created in it carry its trace, spans started
    /// in it are its children.
    pub fn wrap<F: Future>(&self, work: F) -> Either<WithContext<F>, F> {
        match &self.0 {
            Some(cx) => Either::Left(work.with_context(cx.clone())),
            None => Either::Right(work),
        }
    }

    /// Adds an attribute.
    pub fn set(&self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if let Some(cx) = &self.0 {
            cx.span().set_attribute(KeyValue::new(key, value));
        }
    }

    /// Renames the span (an HTTP server span learns its route after routing).
    pub fn rename(&self, name: impl Into<Cow<'static, str>>) {
        if let Some(cx) = &self.0 {
            cx.span().update_name(name);
        }
    }

    /// Marks the hop failed, with `error.type` and a description.
    pub fn fail(&self, error_type: &str, description: impl Into<Cow<'static, str>>) {
        if let Some(cx) = &self.0 {
            let span = cx.span();
            span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, error_type.to_owned()));
            span.set_status(Status::error(description));
        }
    }

    /// This span as a W3C `traceparent` header value, for a request it makes.
    pub fn traceparent(&self) -> Option<String> {
        self.0.as_ref().and_then(|cx| w3c(cx).traceparent)
    }

    /// Starts a child span of work inside this hop (a transaction, a wait).
    pub fn child(&self, name: &'static str) -> Hop {
        match &self.0 {
            Some(cx) => Self::start(name, SpanKind::Internal, cx, Vec::new(), Vec::new()),
            None => Self(None),
        }
    }
}

/// An HTTP request received: a server span under the caller's `traceparent`, if any. Named by
/// method until [`Hop::rename`] gives it the route.
pub fn server(method: &str, path: &str, traceparent: Option<&str>, tracestate: Option<&str>) -> Hop {
    if !enabled() {
        return Hop(None);
    }
    let attributes = vec![
        KeyValue::new(semconv::HTTP_REQUEST_METHOD, method.to_owned()),
        KeyValue::new(semconv::URL_PATH, path.to_owned()),
    ];
    Hop::start(method.to_owned(), SpanKind::Server, &parent_of(traceparent, tracestate), attributes, Vec::new())
}

/// Where a message goes or comes from, as the messaging conventions name it.
#[derive(Clone, Copy, Debug)]
pub struct Destination<'a> {
    /// `messaging.system`.
    pub system: &'static str,
    /// `messaging.destination.name`: the exchange, the subject, or the queue consumed.
    pub name: &'a str,
    /// The routing key a RabbitMQ message was published with.
    pub routing_key: Option<&'a str>,
}

impl Destination<'_> {
    fn attributes(&self, operation: &'static str, operation_type: &'static str) -> Vec<KeyValue> {
        let mut attributes = vec![
            KeyValue::new(semconv::MESSAGING_SYSTEM, self.system),
            KeyValue::new(semconv::MESSAGING_OPERATION_NAME, operation),
            KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, operation_type),
            KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, self.name.to_owned()),
        ];
        if let Some(key) = self.routing_key.filter(|key| !key.is_empty()) {
            attributes.push(KeyValue::new(semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY, key.to_owned()));
        }
        attributes
    }
}

/// What a span needs of a message: its ids and the trace it was created in.
#[derive(Clone, Copy, Debug)]
pub struct MessageTrace<'a> {
    /// The envelope's id.
    pub id: uuid::Uuid,
    /// Its correlation id (the conversation), where known.
    pub correlation_id: Option<uuid::Uuid>,
    /// Its `traceparent`.
    pub traceparent: Option<&'a str>,
    /// Its `tracestate`.
    pub tracestate: Option<&'a str>,
}

impl<'a, T> From<&'a Envelope<T>> for MessageTrace<'a> {
    fn from(envelope: &'a Envelope<T>) -> Self {
        Self {
            id: envelope.id,
            correlation_id: Some(envelope.correlationid),
            traceparent: envelope.traceparent.as_deref(),
            tracestate: envelope.tracestate.as_deref(),
        }
    }
}

impl MessageTrace<'_> {
    fn attributes(&self) -> impl Iterator<Item = KeyValue> {
        let conversation =
            self.correlation_id.map(|id| KeyValue::new(semconv::MESSAGING_MESSAGE_CONVERSATION_ID, id.to_string()));
        std::iter::once(KeyValue::new(semconv::MESSAGING_MESSAGE_ID, self.id.to_string())).chain(conversation)
    }

    fn parent(&self) -> Context {
        parent_of(self.traceparent, self.tracestate)
    }
}

/// A message sent to `to`: a producer span (`publish <destination>`) under the context the
/// message was created in.
pub fn publish(to: Destination<'_>, message: MessageTrace<'_>) -> Hop {
    if !enabled() {
        return Hop(None);
    }
    let mut attributes = to.attributes("publish", "send");
    attributes.extend(message.attributes());
    Hop::start(format!("publish {}", to.name), SpanKind::Producer, &message.parent(), attributes, Vec::new())
}

/// Runs `send`, the publish of `message` to `to`, under its producer span ([`publish`]), which
/// is marked failed if the publish fails.
pub async fn published<T>(
    to: Destination<'_>,
    message: MessageTrace<'_>,
    send: impl Future<Output = Result<T, crate::PublishError>>,
) -> Result<T, crate::PublishError> {
    let hop = publish(to, message);
    let outcome = send.await;
    if let Err(error) = &outcome {
        hop.fail(error.kind(), error.to_string());
    }
    outcome
}

/// A message taken from `from` by consumer `group`: a consumer span (`process <queue>`) under
/// the context the message was created in. A message that did not decode has no trace to join.
pub fn process(from: Destination<'_>, group: &str, message: Option<MessageTrace<'_>>) -> Hop {
    if !enabled() {
        return Hop(None);
    }
    let mut attributes = from.attributes("process", "process");
    attributes.push(KeyValue::new(semconv::MESSAGING_CONSUMER_GROUP_NAME, group.to_owned()));
    let parent = match &message {
        Some(message) => {
            attributes.extend(message.attributes());
            message.parent()
        }
        None => Context::new(),
    };
    Hop::start(format!("process {}", from.name), SpanKind::Consumer, &parent, attributes, Vec::new())
}

/// A batch of messages handled together: one consumer span in a trace of its own, linked to the
/// context each message was created in (the conventions' way for batches).
pub fn process_batch<'m>(from: Destination<'_>, group: &str, messages: impl Iterator<Item = MessageTrace<'m>>) -> Hop {
    if !enabled() {
        return Hop(None);
    }
    let links: Vec<Link> = messages
        .filter_map(|message| {
            let span_context = message.parent().span().span_context().clone();
            span_context.is_valid().then(|| Link::with_context(span_context))
        })
        .collect();
    let mut attributes = from.attributes("process", "process");
    attributes.push(KeyValue::new(semconv::MESSAGING_CONSUMER_GROUP_NAME, group.to_owned()));
    attributes.push(KeyValue::new(semconv::MESSAGING_BATCH_MESSAGE_COUNT, links.len() as i64));
    Hop::start(format!("process {}", from.name), SpanKind::Consumer, &Context::new(), attributes, links)
}

/// An HTTP request made to `url` under the context in `traceparent` (the message it carries).
pub fn client(method: &'static str, url: &str, traceparent: Option<&str>) -> Hop {
    if !enabled() {
        return Hop(None);
    }
    // Without userinfo or query: either may hold the receiver's credentials.
    let shown = schemas::redact_url(url.split(['?', '#']).next().unwrap_or_default());
    let attributes = vec![KeyValue::new(semconv::HTTP_REQUEST_METHOD, method), KeyValue::new(semconv::URL_FULL, shown)];
    Hop::start(method, SpanKind::Client, &parent_of(traceparent, None), attributes, Vec::new())
}

/// The hop current on this task, for work that outlives it (a webhook attempt queued in memory).
pub fn current_hop() -> Hop {
    if !enabled() {
        return Hop(None);
    }
    let cx = Context::current();
    Hop(cx.span().span_context().is_valid().then_some(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_traceparent_starts_a_new_trace_rather_than_failing() {
        for bad in ["", "00-zz-yy-01", "00-00000000000000000000000000000000-0000000000000000-01"] {
            assert!(!parent_of(Some(bad), None).span().span_context().is_valid(), "{bad}");
        }
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = parent_of(Some(good), Some("vendor=1"));
        assert!(cx.span().span_context().is_remote());
        assert_eq!(w3c(&cx).traceparent.as_deref(), Some(good));
        assert_eq!(w3c(&cx).tracestate.as_deref(), Some("vendor=1"));
    }

    #[test]
    fn off_makes_no_span_and_no_trace() {
        assert!(!enabled());
        let hop = server("GET", "/", Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
        assert!(hop.0.is_none() && hop.traceparent().is_none());
        assert_eq!(current(), TraceContext::default());
    }
}
