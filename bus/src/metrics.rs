//! The platform's metrics: every name, label and help text in one place, recorded through the
//! `metrics` facade. The binary installs a Prometheus recorder and serves `GET /metrics`; without
//! one (libraries in tests, tools) each call is a no-op.
//!
//! Publishes pay one registry lookup each (a hash of the labels); HTTP series and per-message
//! consumer counters are registered once. Labels never carry a tenant, a vehicle or any other id: a NATS subject is reduced to its
//! pattern ([`subject_pattern`]) and an HTTP path to its route template, so a series neither
//! grows with the fleet nor tells one tenant's names to whoever reads the metrics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use metrics::{Counter, Histogram, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

/// Messages a transport published, by transport, destination and outcome.
pub const PUBLISHED: &str = "voltbus_messages_published_total";
/// Deliveries a consumer group's queue handed to its handler.
pub const CONSUMED: &str = "voltbus_messages_consumed_total";
/// Deliveries that failed and were scheduled for another attempt.
pub const RETRIED: &str = "voltbus_messages_retried_total";
/// Deliveries that went to the group's dead letters.
pub const DEAD_LETTERED: &str = "voltbus_messages_dead_lettered_total";
/// Time a handler took over a delivery or a batch, commit included.
pub const HANDLER_SECONDS: &str = "voltbus_handler_duration_seconds";
/// A command request's stages on RabbitMQ: `confirm` (publish until the broker confirmed it)
/// and `reply` (confirmed until the reply came).
pub const COMMAND_SECONDS: &str = "voltbus_command_stage_duration_seconds";
/// Outbox rows committed but not yet published.
pub const OUTBOX_BACKLOG: &str = "voltbus_outbox_backlog";
/// Webhook delivery attempts, by outcome.
pub const WEBHOOK_DELIVERIES: &str = "voltbus_webhook_deliveries_total";
/// Time a webhook attempt took, from connect to the receiver's answer.
pub const WEBHOOK_SECONDS: &str = "voltbus_webhook_delivery_duration_seconds";
/// HTTP requests answered, by route template, method and status.
pub const HTTP_REQUESTS: &str = "voltbus_http_requests_total";
/// Time to answer an HTTP request.
pub const HTTP_SECONDS: &str = "voltbus_http_request_duration_seconds";
/// Requests refused by a rate limit, by the limit that refused them.
pub const RATE_LIMITED: &str = "voltbus_rate_limited_total";

/// Bucket bounds of every `_seconds` histogram: 1 ms to 30 s.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Gives each metric its help text; call once after installing a recorder.
pub fn describe() {
    describe_counter!(PUBLISHED, "Messages a transport published, by transport, destination and outcome.");
    describe_counter!(CONSUMED, "Deliveries a consumer group's queue handed to its handler.");
    describe_counter!(RETRIED, "Deliveries that failed and were scheduled for another attempt.");
    describe_counter!(DEAD_LETTERED, "Deliveries that went to the group's dead-letter queue, by kind.");
    describe_histogram!(
        HANDLER_SECONDS,
        metrics::Unit::Seconds,
        "Handler time per delivery or batch, commit included."
    );
    describe_histogram!(COMMAND_SECONDS, metrics::Unit::Seconds, "A command request's stages: confirm, reply.");
    describe_gauge!(OUTBOX_BACKLOG, "Outbox rows committed but not yet published (read at scrape).");
    describe_counter!(WEBHOOK_DELIVERIES, "Webhook delivery attempts, by outcome.");
    describe_histogram!(WEBHOOK_SECONDS, metrics::Unit::Seconds, "Webhook attempt time, by outcome.");
    describe_counter!(HTTP_REQUESTS, "HTTP requests answered, by route template, method and status.");
    describe_histogram!(HTTP_SECONDS, metrics::Unit::Seconds, "Time to answer an HTTP request, by route template.");
    describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by limit and window.");
}

/// What a publish came to.
pub(crate) fn published(transport: &'static str, destination: String, outcome: Result<(), &crate::PublishError>) {
    // A message no queue is bound for had nobody to reach: normal operation, not a failure.
    let outcome = match outcome {
        Ok(()) => "confirmed",
        Err(crate::PublishError::Returned { .. }) => "unrouted",
        Err(_) => "failed",
    };
    counter!(PUBLISHED, "transport" => transport, "destination" => destination, "outcome" => outcome).increment(1);
}

/// A NATS subject with its tenant (second token) and, under `vehicles`, `users` and `chargers`,
/// the id (fourth token) replaced by `*`: `voltbus.acme.vehicles.v1.state` becomes
/// `voltbus.*.vehicles.*.state`; an event's domain and type stay (`voltbus.*.events.rides.ride.ended`).
pub fn subject_pattern(subject: &str) -> String {
    let tokens: Vec<&str> = subject.split('.').collect();
    let keyed = matches!(tokens.get(2), Some(&("vehicles" | "users" | "chargers")));
    tokens
        .iter()
        .enumerate()
        .map(|(i, token)| if i == 1 || (i == 3 && keyed) { "*" } else { token })
        .collect::<Vec<_>>()
        .join(".")
}

/// A consumer group's counters, registered once so the hot path only adds.
#[derive(Clone)]
pub(crate) struct QueueMetrics {
    consumed: Counter,
    /// The same count, readable in this process (the console's rates) without a recorder.
    consumed_here: Arc<AtomicU64>,
    retried: Counter,
    dead_lettered: Counter,
    handler: Histogram,
}

impl QueueMetrics {
    /// The counters of `queue`.
    pub(crate) fn new(queue: &str) -> Self {
        let queue = queue.to_owned();
        let consumed_here = {
            let mut totals = consumed_totals().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::clone(totals.entry(queue.clone()).or_default())
        };
        Self {
            consumed_here,
            consumed: counter!(CONSUMED, "queue" => queue.clone()),
            retried: counter!(RETRIED, "queue" => queue.clone()),
            dead_lettered: counter!(DEAD_LETTERED, "queue" => queue.clone()),
            handler: histogram!(HANDLER_SECONDS, "queue" => queue),
        }
    }

    /// One delivery or a batch handled in `took`, with what became of each message.
    pub(crate) fn record<'a>(&self, verdicts: impl IntoIterator<Item = &'a crate::Verdict>, took: Duration) {
        let (mut consumed, mut retried, mut dead) = (0, 0, 0);
        for verdict in verdicts {
            consumed += 1;
            match verdict {
                crate::Verdict::Done { .. } => {}
                crate::Verdict::Retry { .. } => retried += 1,
                crate::Verdict::DeadLetter { .. } => dead += 1,
            }
        }
        self.consumed.increment(consumed);
        self.consumed_here.fetch_add(consumed, Ordering::Relaxed);
        self.retried.increment(retried);
        self.dead_lettered.increment(dead);
        self.handler.record(took);
    }
}

fn consumed_totals() -> &'static Mutex<HashMap<String, Arc<AtomicU64>>> {
    static TOTALS: OnceLock<Mutex<HashMap<String, Arc<AtomicU64>>>> = OnceLock::new();
    TOTALS.get_or_init(Mutex::default)
}

/// Deliveries this process's consumers of `queue` have handled since it started.
pub fn consumed_so_far(queue: &str) -> u64 {
    let totals = consumed_totals().lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    totals.get(queue).map_or(0, |total| total.load(Ordering::Relaxed))
}

/// One stage of a command request took `took`.
pub(crate) fn command_stage(stage: &'static str, took: Duration) {
    histogram!(COMMAND_SECONDS, "stage" => stage).record(took);
}

/// The outbox backlog, as read at scrape time (NaN when it could not be read).
pub fn outbox_backlog(rows: f64) {
    gauge!(OUTBOX_BACKLOG).set(rows);
}

/// One webhook attempt settled: `outcome` is `succeeded`, `failed` or `gave_up`; `took` is the
/// HTTP exchange's time, none when no request was sent (endpoint gone, payload purged).
pub fn webhook_attempt(outcome: &'static str, took: Option<Duration>) {
    counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
    if let Some(took) = took {
        histogram!(WEBHOOK_SECONDS, "outcome" => outcome).record(took);
    }
}

/// One HTTP request answered. `route` is a template (`/vehicles/{id}`), never a raw path.
pub fn http_request(route: String, method: &str, status: u16, took: Duration) {
    let method = match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        _ => "other",
    };
    // The handles of each route, method and status are made once: the registry's lookup hashed
    // three labels (and formatted the status) per request, a fortieth of a busy edge's CPU.
    type Series = HashMap<(&'static str, u16), HashMap<String, (Counter, Histogram)>>;
    static SERIES: OnceLock<RwLock<Series>> = OnceLock::new();
    let series = SERIES.get_or_init(RwLock::default);
    let known = series.read().ok().and_then(|series| series.get(&(method, status))?.get(&route).cloned());
    let (requests, seconds) = known.unwrap_or_else(|| {
        let made = (
            counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status.to_string()),
            histogram!(HTTP_SECONDS, "route" => route.clone()),
        );
        if let Ok(mut series) = series.write() {
            series.entry((method, status)).or_default().insert(route, made.clone());
        }
        made
    });
    requests.increment(1);
    seconds.record(took);
}

/// One request refused by `limit` (`caller`: a key's or integration's allowance;
/// `failed_auth`: an address that failed to authenticate too often) over `window`.
pub fn rate_limited(limit: &'static str, window: &'static str) {
    counter!(RATE_LIMITED, "limit" => limit, "window" => window).increment(1);
}

#[cfg(test)]
mod tests {
    use super::subject_pattern;

    #[test]
    fn subject_patterns_hide_tenants_and_ids() {
        assert_eq!(subject_pattern("voltbus.acme.vehicles.v-1.state"), "voltbus.*.vehicles.*.state");
        assert_eq!(subject_pattern("voltbus.acme.users.u1.CHARGING"), "voltbus.*.users.*.CHARGING");
        assert_eq!(subject_pattern("voltbus.acme.events.rides.ride.ended"), "voltbus.*.events.rides.ride.ended");
        assert_eq!(subject_pattern("voltbus"), "voltbus");
    }
}
