//! The attempt ledger: results of delivery attempts, written in batches. A worker hands its
//! result over and waits until it is committed; one writer takes whatever has gathered since its
//! last commit and writes it in one transaction. Under load many attempts share the round trips
//! and the WAL flush; when idle, an attempt is written at once. Should a batch fail, its results
//! are written one by one, so one bad row cannot fail the others.

use std::collections::HashMap;

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
    pub endpoint: Option<StoredEndpoint>,
    /// Whether the attempt succeeded.
    pub succeeded: bool,
}

type Entry = (Settlement, oneshot::Sender<Result<(), DbErr>>);

/// Results written together.
pub(crate) struct Ledger {
    sender: mpsc::Sender<Entry>,
}

/// Most results in one transaction.
const MAX_BATCH: usize = 256;

fn stopped() -> DbErr {
    DbErr::Custom("the attempt ledger has stopped".into())
}

impl Ledger {
    /// Starts the writer; it stops when the ledger is dropped, after writing what it was given.
    pub fn start(db: DatabaseConnection, policy: DeliveryPolicy) -> Self {
        let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(write(Writer { db, policy }, receiver));
        Self { sender }
    }

    /// Writes `settlement`; returns once it is committed.
    pub async fn record(&self, settlement: Settlement) -> Result<(), DbErr> {
        let (done, committed) = oneshot::channel();
        self.sender.send((settlement, done)).await.map_err(|_| stopped())?;
        committed.await.unwrap_or_else(|_| Err(stopped()))
    }
}

async fn write(writer: Writer, mut receiver: mpsc::Receiver<Entry>) {
    let mut batch: Vec<Entry> = Vec::with_capacity(MAX_BATCH);
    while receiver.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let settlements: Vec<&Settlement> = batch.iter().map(|(settlement, _)| settlement).collect();
        match writer.commit(&settlements).await {
            Ok(()) => batch.drain(..).for_each(|(_, done)| {
                let _ = done.send(Ok(()));
            }),
            Err(error) if batch.len() > 1 => {
                tracing::warn!(%error, size = batch.len(), "a batch of webhook attempts failed; writing them one by one");
                for (settlement, done) in batch.drain(..) {
                    let _ = done.send(writer.commit(&[&settlement]).await);
                }
            }
            Err(error) => batch.drain(..).for_each(|(_, done)| {
                let _ = done.send(Err(DbErr::Custom(error.to_string())));
            }),
        }
    }
}

struct Writer {
    db: DatabaseConnection,
    policy: DeliveryPolicy,
}

impl Writer {
    /// Logs the attempts and decides their deliveries' next steps, in one transaction.
    async fn commit(&self, settlements: &[&Settlement]) -> Result<(), DbErr> {
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
        tx.commit().await
    }
}
