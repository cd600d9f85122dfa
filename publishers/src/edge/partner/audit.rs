//! The request log: every answered request (key prefix, route, status, latency, request id) goes
//! to the bus in batches, `api_request.record` commands of one organisation's records each, and
//! the integrations consumers write it to the database. Never a body, never a key.
//!
//! Requests are handed to a bounded channel without waiting; a background task flushes what came
//! in [`FLUSH_EVERY`] after the first waiting record, [`BATCH`] records per command at most, and
//! retries a failed publish, under its first message id, until shutdown. A full channel drops
//! records with a warning rather than slowing partners down.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use schemas::integrations::{ApiRequestRecord, RecordApiRequests};
use schemas::{Envelope, TenantId};
use tokio::sync::mpsc;

use crate::edge::commands::CommandBus;

/// Records kept in memory at most.
const CAPACITY: usize = 50_000;
/// Records per command at most.
const BATCH: usize = 1_000;
/// Longest a record waits before it is sent.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// The tenant under which requests with no recognised key are logged.
pub const ANONYMOUS_TENANT: &str = "voltbus";

/// Hands records to the flusher.
#[derive(Clone)]
pub(crate) struct AuditLog {
    sender: mpsc::Sender<(TenantId, ApiRequestRecord)>,
    dropped: Arc<AtomicU64>,
}

impl AuditLog {
    /// A log whose flusher runs on `bus` until every sender is gone.
    pub fn start(bus: Arc<CommandBus>) -> (Self, tokio::task::JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(flush_loop(receiver, bus));
        (Self { sender, dropped }, task)
    }

    /// Queues one record.
    pub fn record(&self, tenant: TenantId, record: ApiRequestRecord) {
        if self.sender.try_send((tenant, record)).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "request log is full; records dropped");
            }
        }
    }
}

async fn flush_loop(mut receiver: mpsc::Receiver<(TenantId, ApiRequestRecord)>, bus: Arc<CommandBus>) {
    // Commands are made once and retried as they are: a publish that failed after the broker
    // took it goes again under the same message id, which the consumers' inbox records once.
    let mut unsent: VecDeque<Envelope<RecordApiRequests>> = VecDeque::new();
    let mut open = true;
    while open || !unsent.is_empty() {
        // While the bus is away, at most a channel's worth waits here; then the channel fills.
        // Once every sender is gone, what is left is taken whatever waits, so shutdown sees it.
        if open && (unsent.len() < CAPACITY / BATCH || receiver.is_closed()) {
            // The first record starts the wait; the others are taken together when it is over,
            // so the flusher wakes once per flush, not once per request.
            let first = if unsent.is_empty() {
                Some(receiver.recv().await)
            } else {
                // Commands wait for a retry: a quiet edge must not hold them until its next request.
                tokio::time::timeout(FLUSH_EVERY, receiver.recv()).await.ok()
            };
            match first {
                Some(Some(first)) => {
                    let mut taken = vec![first];
                    // Once every sender is gone there is nothing to wait for: shutdown takes the rest.
                    if !receiver.is_closed() {
                        tokio::time::sleep(FLUSH_EVERY).await;
                    }
                    let waiting = receiver.len();
                    receiver.recv_many(&mut taken, waiting).await;
                    unsent.extend(commands(taken));
                }
                Some(None) => open = false,
                None => {}
            }
        }
        while let Some(command) = unsent.front() {
            if let Err(error) = bus.publish(command).await {
                tracing::warn!(%error, records = command.data.requests.len(), "request log not published; will retry");
                break;
            }
            unsent.pop_front();
        }
        if !unsent.is_empty() {
            if !open {
                let records = unsent.iter().map(|command| command.data.requests.len()).sum::<usize>();
                tracing::error!(records, "request log lost at shutdown");
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The commands that carry `taken`: per organisation, its records in the order they came, at most
/// [`BATCH`] to a command.
fn commands(taken: Vec<(TenantId, ApiRequestRecord)>) -> Vec<Envelope<RecordApiRequests>> {
    let mut per_tenant: BTreeMap<TenantId, Vec<ApiRequestRecord>> = BTreeMap::new();
    for (tenant, record) in taken {
        per_tenant.entry(tenant).or_default().push(record);
    }
    let mut commands = Vec::new();
    for (tenant, records) in per_tenant {
        let mut records = records.into_iter().peekable();
        while records.peek().is_some() {
            let requests = records.by_ref().take(BATCH).collect();
            commands.push(Envelope::new(tenant.clone(), "voltbus/edge", RecordApiRequests { requests }));
        }
    }
    commands
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize) -> ApiRequestRecord {
        ApiRequestRecord {
            request_id: format!("req_{n}"),
            key_id: None,
            integration_id: None,
            key_prefix: None,
            method: "GET".into(),
            route: "/api/partner/v1/me".into(),
            subaccount_id: None,
            status: 200,
            latency_us: 1,
            received_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_flush_is_cut_into_commands_of_one_organisation_and_at_most_a_batch_each_in_order() {
        let (busy, quiet) = (TenantId::new("org_busy").unwrap(), TenantId::new("org_quiet").unwrap());
        let mut taken: Vec<_> = (0..2 * BATCH + 1).map(|n| (busy.clone(), record(n))).collect();
        taken.insert(BATCH, (quiet.clone(), record(usize::MAX)));
        let commands = commands(taken);
        let shape: Vec<_> = commands.iter().map(|c| (c.tenant.as_str(), c.data.requests.len())).collect();
        assert_eq!(shape, [("org_busy", BATCH), ("org_busy", BATCH), ("org_busy", 1), ("org_quiet", 1)]);
        let ids: Vec<_> = commands[..3].iter().flat_map(|c| &c.data.requests).map(|r| r.request_id.clone()).collect();
        assert_eq!(ids, (0..2 * BATCH + 1).map(|n| format!("req_{n}")).collect::<Vec<_>>());
    }
}
