//! An OTLP/HTTP trace receiver on 127.0.0.1, as a collector is to voltbus's exporter: it decodes
//! what it is sent with the protocol's own messages (`opentelemetry-proto`) and keeps the spans.
//! Shared by the traces test and the end-to-end bench's stage timings.

#![allow(dead_code, reason = "the test and the bench use different parts")]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
pub use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;

/// An OTLP/HTTP trace receiver: keeps every span it is sent, with its resource's `service.name`.
pub struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

impl Collector {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans: Arc<Mutex<Vec<(String, Span)>>> = Arc::default();
        let kept = Arc::clone(&spans);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let kept = Arc::clone(&kept);
                tokio::spawn(async move {
                    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                        let kept = Arc::clone(&kept);
                        async move {
                            assert_eq!(request.uri().path(), "/v1/traces");
                            assert_eq!(request.headers()["content-type"], "application/x-protobuf");
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let export = ExportTraceServiceRequest::decode(body).expect("an OTLP trace export");
                            for resource in export.resource_spans {
                                let service = resource
                                    .resource
                                    .iter()
                                    .flat_map(|r| &r.attributes)
                                    .find(|a| a.key == "service.name")
                                    .map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
                                    .unwrap_or_default();
                                for scope in resource.scope_spans {
                                    let mut kept = kept.lock().unwrap();
                                    kept.extend(scope.spans.into_iter().map(|span| (service.clone(), span)));
                                }
                            }
                            let answer = ExportTraceServiceResponse::default().encode_to_vec();
                            let response = http::Response::builder()
                                .header("content-type", "application/x-protobuf")
                                .body(Full::new(Bytes::from(answer)))
                                .unwrap();
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, spans }
    }

    /// The spans received since the last call, leaving none.
    pub fn take(&self) -> Vec<Span> {
        std::mem::take(&mut *self.spans.lock().unwrap()).into_iter().map(|(_, span)| span).collect()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until a span with id `span_id` arrived; every span by then.
    pub async fn wait_for(&self, span_id: &[u8]) -> Vec<(String, Span)> {
        for _ in 0..200 {
            let spans = self.spans.lock().unwrap().clone();
            if spans.iter().any(|(_, span)| span.span_id == span_id) {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("span {} never arrived", hex::encode(span_id));
    }
}

pub fn text(value: Option<&AnyValue>) -> String {
    match value {
        Some(AnyValue::StringValue(text)) => text.clone(),
        Some(AnyValue::IntValue(n)) => n.to_string(),
        Some(AnyValue::BoolValue(b)) => b.to_string(),
        Some(AnyValue::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

pub fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes.iter().find(|a| a.key == key).map(|a| text(a.value.as_ref().and_then(|v| v.value.as_ref())))
}

pub fn kind(span: &Span) -> &'static str {
    match SpanKind::try_from(span.kind).unwrap_or(SpanKind::Unspecified) {
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
        SpanKind::Unspecified => "unspecified",
    }
}
