//! The request log: every answered request (key prefix, route, status, latency, request id) goes
//! to the bus in batches, one `api_request.record` command per organisation per flush, and the
//! integrations consumers write it to the database. Never a body, never a key.
//!
//! Requests are handed to a bounded channel without waiting; a background task flushes every
//! [`FLUSH_EVERY`] or [`BATCH`] records and retries a failed publish until shutdown. A full
//! channel drops records with a warning rather than slowing partners down.

use std::collections::BTreeMap;
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
    let mut pending: BTreeMap<TenantId, Vec<ApiRequestRecord>> = BTreeMap::new();
    let mut open = true;
    while open || !pending.is_empty() {
        if open {
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
        }
        let mut failed = false;
        while let Some((tenant, records)) = pending.pop_first() {
            for chunk in records.chunks(BATCH) {
                let command =
                    Envelope::new(tenant.clone(), "voltbus/edge", RecordApiRequests { requests: chunk.to_vec() });
                if let Err(error) = bus.publish(&command).await {
                    tracing::warn!(%error, records = chunk.len(), "request log not published; will retry");
                    failed = true;
                    break;
                }
            }
            if failed {
                // Keep the whole tenant's records (a chunk already sent is recorded once: request ids are unique).
                pending.insert(tenant, records);
                break;
            }
        }
        if failed {
            if !open {
                tracing::error!(
                    records = pending.values().map(Vec::len).sum::<usize>(),
                    "request log lost at shutdown"
                );
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}
