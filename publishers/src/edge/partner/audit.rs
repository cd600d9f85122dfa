//! The request log: every answered request (key prefix, route, status, latency, request id) goes
//! to the bus in batches, one `api_request.record` command per organisation per flush, and the
//! integrations consumers write it to the database. Never a body, never a key.
//!
//! Requests are handed to a bounded channel without waiting; a background task flushes every
//! [`FLUSH_EVERY`] or [`BATCH`] records and retries a failed publish, under its first message id,
//! until shutdown. A full channel drops records with a warning rather than slowing partners down.

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
            let mut pending: BTreeMap<TenantId, Vec<ApiRequestRecord>> = BTreeMap::new();
            let deadline = tokio::time::sleep(FLUSH_EVERY);
            tokio::pin!(deadline);
            let mut taken = 0;
            while taken < BATCH {
                tokio::select! {
                    received = receiver.recv() => match received {
                        Some((tenant, record)) => {
                            pending.entry(tenant).or_default().push(record);
                            taken += 1;
                        }
                        None => { open = false; break; }
                    },
                    () = &mut deadline => break,
                }
            }
            // At most BATCH records were taken: one command per organisation.
            unsent.extend(
                pending
                    .into_iter()
                    .map(|(tenant, requests)| Envelope::new(tenant, "voltbus/edge", RecordApiRequests { requests })),
            );
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
