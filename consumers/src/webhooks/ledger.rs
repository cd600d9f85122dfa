//! The attempt ledger: results of delivery attempts, written in batches. A worker hands its
//! result over and goes on to its endpoint's next attempt; one writer takes whatever has
//! gathered since its last commit and writes it in one transaction. Under load many attempts
//! share the round trips; when idle, an attempt is written at once. The hand-over waits only
//! when the writer is a full channel behind, so a slow database slows the workers instead of
//! filling memory. Should a batch fail, its results are written one by one, so one bad row
//! cannot fail the others; a result that cannot be written is logged, and its delivery's lease
//! brings it back (the attempt is made again, never lost).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::Utc;
use schemas::webhooks::DeliverWebhook;
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::deliveries::{self, Settled};
use super::endpoints::{self, Health, StoredEndpoint};
use super::{DeliveryPolicy, operational};

/// One attempt's result, and what deciding the delivery's next step needs.
#[derive(Debug)]
pub(crate) struct Settlement {
    /// The log line and the delivery's next step.
    pub settled: Settled,
    /// The command the attempt carried out.
    pub command: DeliverWebhook,
    /// The endpoint as the attempt saw it; none when it was deleted.
    pub endpoint: Option<Arc<StoredEndpoint>>,
    /// Whether the attempt succeeded.
    pub succeeded: bool,
}

// Nearly every entry is a result: boxing it would cost an allocation per attempt to save the
// few bytes of the rare barrier.
#[allow(clippy::large_enum_variant)]
enum Entry {
    Result(Settlement),
    /// Answered once everything handed over before it is written.
    Barrier(oneshot::Sender<()>),
}

/// Results written together.
pub(crate) struct Ledger {
    sender: mpsc::Sender<Entry>,
}

/// Most results in one transaction.
const MAX_BATCH: usize = 256;

impl Ledger {
    /// Starts the writer; it stops when the ledger is dropped, after writing what it was given.
    pub fn start(db: DatabaseConnection, policy: DeliveryPolicy) -> Self {
        let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write(Writer { db, policy }, receiver));
        Self { sender }
    }

    /// Hands `settlement` to the writer.
    pub async fn record(&self, settlement: Settlement) {
        if self.sender.send(Entry::Result(settlement)).await.is_err() {
            tracing::warn!("the attempt ledger has stopped; the delivery's lease brings the attempt back");
        }
    }

    /// Returns once every result handed over so far is written (or failed to be); for shutdown.
    pub async fn flushed(&self) {
        let (done, written) = oneshot::channel();
        if self.sender.send(Entry::Barrier(done)).await.is_ok() {
            let _ = written.await;
        }
    }
}

async fn write(writer: Writer, mut receiver: mpsc::Receiver<Entry>) {
    let mut batch: Vec<Entry> = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let mut barriers = Vec::new();
        let mut settlements = Vec::with_capacity(batch.len());
        for entry in batch.drain(..) {
            match entry {
                Entry::Result(settlement) => settlements.push(settlement),
                Entry::Barrier(done) => barriers.push(done),
            }
        }
        let all: Vec<&Settlement> = settlements.iter().collect();
        match writer.commit(&all).await {
            Ok(()) => {}
            Err(error) if all.len() > 1 => {
                tracing::warn!(%error, size = all.len(), "a batch of webhook attempts failed; writing them one by one");
                for settlement in all {
                    if let Err(error) = writer.commit(&[settlement]).await {
                        unwritten(settlement, &error);
                    }
                }
            }
            Err(error) => all.iter().for_each(|settlement| unwritten(settlement, &error)),
        }
        barriers.into_iter().for_each(|done| {
            let _ = done.send(());
        });
    }
}

fn unwritten(settlement: &Settlement, error: &DbErr) {
    let delivery = settlement.settled.delivery_id;
    tracing::warn!(%error, %delivery, attempt = settlement.settled.attempt, "could not record a webhook attempt; its lease brings it back");
}

struct Writer {
    db: DatabaseConnection,
    policy: DeliveryPolicy,
}

impl Writer {
    /// Logs the attempts and decides their deliveries' next steps, in one transaction.
    async fn commit(&self, settlements: &[&Settlement]) -> Result<(), DbErr> {
        if settlements.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        let tx = self.db.begin().await?;
        let settled: Vec<&Settled> = settlements.iter().map(|s| &s.settled).collect();
        deliveries::settle(&tx, &settled, now).await?;
        let lease = self.policy.lease();
        let disable_after = chrono::Duration::from_std(self.policy.disable_after).unwrap_or(chrono::Duration::MAX);
        // The outcome last recorded for each endpoint in this batch: the same outcome again
        // changes nothing, so a burst of successes costs one health statement, not one each.
        let mut last: HashMap<Uuid, bool> = HashMap::new();
        for settlement in settlements {
            let Some(endpoint) = &settlement.endpoint else { continue };
            let Settlement { settled, command, succeeded, .. } = settlement;
            if endpoint.endpoint.ordered && settled.next_attempt_at.is_none() {
                deliveries::release_next(&tx, &settled.tenant, endpoint.endpoint.id, lease).await?;
            }
            if last.insert(endpoint.endpoint.id, *succeeded) == Some(*succeeded) && settled.outcome != "gave_up" {
                continue;
            }
            let health = endpoints::record_health(&tx, endpoint, *succeeded, now, disable_after).await?;
            // Operational events are not themselves reported on, or a failing endpoint subscribed
            // to them would feed itself.
            if operational::is_operational(&command.event) {
                continue;
            }
            let notice = match (health, settled.outcome) {
                (Health::Disabled, _) => Some(operational::Notice::EndpointDisabled),
                (_, "gave_up") => Some(operational::Notice::AttemptExhausted),
                (Health::Recovered, _) => Some(operational::Notice::AttemptRecovered),
                _ => None,
            };
            if let Some(notice) = notice {
                operational::announce(&tx, &settled.tenant, notice, endpoint, command, lease).await?;
            }
        }
        tx.commit().await?;
        bus::outbox::committed();
        Ok(())
    }
}
