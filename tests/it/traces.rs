//! Traces over every hop: a ride ended through the partner API, with the caller's own W3C
//! `traceparent`, is one trace from that REST call to the webhook it causes, exported over OTLP
//! to a receiver that decodes what it gets with the protocol's own messages
//! (`opentelemetry-proto`), as a collector does.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use crate::otlp::{Collector, Span, attribute, kind};
use crate::partner::Platform;
use crate::support::request;
use crate::webhooks::Receiver;

/// One line per span of the trace, children under their parent, with what the conventions
/// name in it.
fn render(spans: &[&Span], root_parent: &[u8]) -> String {
    fn walk(spans: &[&Span], parent: &[u8], depth: usize, out: &mut String) {
        let mut children: Vec<&&Span> = spans.iter().filter(|s| s.parent_span_id == parent).collect();
        children.sort_by_key(|s| s.start_time_unix_nano);
        for span in children {
            let took = span.end_time_unix_nano.saturating_sub(span.start_time_unix_nano) as f64 / 1e6;
            let shown: Vec<String> = [
                "messaging.system",
                "messaging.destination.name",
                "messaging.rabbitmq.destination.routing_key",
                "messaging.consumer.group.name",
                "http.route",
                "http.response.status_code",
                "voltbus.webhook.event_type",
            ]
            .iter()
            .filter_map(|key| attribute(span, key).map(|value| format!("{key}={value}")))
            .collect();
            out.push_str(&format!(
                "{:indent$}{} [{}] {took:.1} ms {}\n",
                "",
                span.name,
                kind(span),
                shown.join(" "),
                indent = depth * 2
            ));
            walk(spans, &span.span_id, depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(spans, root_parent, 0, &mut out);
    out
}

#[tokio::test]
async fn a_ride_ended_through_the_api_is_one_trace_from_the_rest_call_to_the_webhook_it_causes() {
    let collector = Collector::start().await;
    let receiver = Receiver::start(Vec::new()).await;
    let platform = Platform::start_with(|settings| {
        settings.webhooks.allow_hosts = vec!["127.0.0.1".into()];
        settings.otel.endpoint = Some(collector.url().into());
        settings.otel.service_name = "voltbus-under-test".into();
    })
    .await;
    let (_, admin) = platform.organisation().await;
    let fleet = Uuid::now_v7();
    let call = |method: &'static str, path: String, body: serde_json::Value| {
        let (platform, admin) = (&platform, admin.clone());
        async move {
            let (status, answer, _) = platform.call_in(&admin, fleet, method, &path, Some(body)).await;
            assert!(status < 300, "{method} {path}: {status} {answer}");
            answer["data"].clone()
        }
    };
    let hook = json!({ "url": receiver.url(), "events": ["ride.ended"] });
    crate::webhooks::create_endpoint(&platform, &admin, hook).await;
    let plan = json!({ "currency": "EUR", "unlock_cents": 100, "per_minute_cents": 25 });
    call("PUT", "/pricing".into(), plan).await;
    let vehicle = call("POST", "/vehicles".into(), json!({ "vin": "TRACE1", "vehicle_number": "T1" })).await;
    let customer = call("POST", "/customers".into(), json!({ "email": "trace@example.com", "name": "Tracy" })).await;
    let wallet = format!("/customers/{}/wallet", customer["id"].as_str().unwrap());
    call("POST", wallet, json!({ "action": "credit", "amount_cents": 2000, "description": "top-up" })).await;
    let start = json!({ "customer_id": customer["id"], "vehicle_id": vehicle["id"] });
    let ride = call("POST", "/rides".into(), start).await;

    // The partner's own trace: its client span is the parent of everything voltbus does.
    let (trace_id, caller_span) = (Uuid::now_v7().simple().to_string(), "00f067aa0ba902b7");
    let traceparent = format!("00-{trace_id}-{caller_span}-01");
    let path = format!("/api/partner/v1/rides/{}/end", ride["id"].as_str().unwrap());
    let (fleet_header, end) = (fleet.to_string(), json!({ "end_latitude": 52.0, "end_longitude": 13.0 }).to_string());
    let headers = [
        ("x-partner-api-key", admin.as_str()),
        ("x-subaccount-id", fleet_header.as_str()),
        ("traceparent", &traceparent),
    ];
    let (status, ended, _) = request(platform.addr(), "POST", &path, &headers, Some(&end)).await;
    assert_eq!(status, 200, "{ended}");

    // The webhook carries the trace on: same trace id, its own span as parent.
    let delivered = receiver.wait_for(1, Duration::from_secs(20)).await;
    let sent = delivered[0].headers.get("traceparent").expect("the webhook carries a traceparent").to_str().unwrap();
    let parts: Vec<&str> = sent.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1], parts[3]), (4, "00", trace_id.as_str(), "01"), "{sent}");
    let webhook_span = hex::decode(parts[2]).unwrap();

    // Stopping flushes what the exporter's batch still holds.
    platform.stop().await;
    let spans = collector.wait_for(&webhook_span).await;
    let trace = hex::decode(&trace_id).unwrap();
    let in_trace: Vec<&Span> = spans.iter().map(|(_, s)| s).filter(|s| s.trace_id == trace).collect();
    assert!(spans.iter().all(|(service, _)| service == "voltbus-under-test"));
    let caller = hex::decode(caller_span).unwrap();
    println!("the trace of a ride's end, from the REST call to the webhook:\n{}", render(&in_trace, &caller));

    // From the webhook request up to the caller: every hop is there, each a child of the one before.
    let by_id: HashMap<&[u8], &Span> = in_trace.iter().map(|s| (s.span_id.as_slice(), *s)).collect();
    let mut chain = Vec::new();
    let mut at = by_id.get(webhook_span.as_slice()).copied();
    while let Some(span) = at {
        chain.push((kind(span), span.name.clone()));
        at = by_id.get(span.parent_span_id.as_slice()).copied();
        if at.is_none() {
            assert_eq!(span.parent_span_id, caller, "the outermost span is the caller's child");
        }
    }
    chain.reverse();
    let route = "POST /api/partner/v1/rides/{id}/end";
    let expected = [
        ("server", route.to_owned()),
        ("consumer", "process voltbus.commands".to_owned()),
        ("internal", "transaction".to_owned()),
        ("client", "POST".to_owned()),
    ];
    assert_eq!(chain, expected, "the hops from the REST call to the webhook");

    // Beside that line: the command's publish and the wait for its reply under the request, the
    // event's relay under the transaction that wrote it.
    let named = |name: &'static str| in_trace.iter().filter(move |s| s.name == name);
    let server = named(route).next().unwrap();
    let command = named("publish voltbus.commands").find(|s| s.parent_span_id == server.span_id);
    let command = command.expect("the command's publish is a child of the request");
    assert_eq!((kind(command), attribute(command, "messaging.system").as_deref()), ("producer", Some("rabbitmq")));
    assert!(attribute(command, "messaging.rabbitmq.destination.routing_key").is_some_and(|key| key.contains("ride")));
    assert!(named("await reply").any(|s| s.parent_span_id == server.span_id));
    let transaction = named("transaction").next().unwrap();
    for wait in ["begin", "commit"] {
        assert!(named(wait).any(|s| s.parent_span_id == transaction.span_id), "the transaction's {wait} is its child");
    }
    let relayed = named("publish voltbus.events").find(|s| {
        s.parent_span_id == transaction.span_id
            && attribute(s, "messaging.rabbitmq.destination.routing_key")
                .is_some_and(|key| key.ends_with(".ride.ended"))
    });
    relayed.expect("the event's publish is a child of the transaction that wrote it");
    let webhook = by_id[webhook_span.as_slice()];
    assert_eq!(attribute(webhook, "http.response.status_code").as_deref(), Some("200"));
    assert_eq!(attribute(webhook, "voltbus.webhook.event_type").as_deref(), Some("ride.ended"));
    assert_eq!(attribute(server, "http.response.status_code").as_deref(), Some("200"));

    // The fan-out took the event in a batch: its span is linked to the event's creation.
    let fan_out = spans.iter().map(|(_, s)| s).find(|s| {
        s.name == "process voltbus.events"
            && s.links.iter().any(|l| l.trace_id == trace && l.span_id == transaction.span_id)
    });
    let fan_out = fan_out.expect("the fan-out's batch span links to the event's trace");
    assert_eq!(attribute(fan_out, "messaging.consumer.group.name").as_deref(), Some("webhook-fanout"));
}
