//! The sockets this process holds, and the remote commands that reach them from any process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use schemas::charging::{ChargerRemoteCommand, ResetKind};
use schemas::{AnyMessage, TenantId};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use super::Ocpp;

/// What reaches a connection from outside its socket.
#[derive(Debug)]
pub(crate) enum Order {
    /// A remote command from the bus.
    Remote(ChargerRemoteCommand),
    /// A reset an operator asked for.
    Reset(ResetKind),
}

/// A socket held: where its orders go.
struct Held {
    tenant: TenantId,
    orders: mpsc::Sender<Order>,
    generation: u64,
}

/// The sockets this process holds, by charger.
pub(crate) struct Registry {
    held: Mutex<HashMap<Uuid, Held>>,
    generations: AtomicU64,
    closing: watch::Sender<bool>,
}

impl Default for Registry {
    fn default() -> Self {
        Self { held: Mutex::default(), generations: AtomicU64::new(1), closing: watch::channel(false).0 }
    }
}

/// A connection's hold on its charger's entry, released when the connection ends.
pub(crate) struct Hold {
    pub orders: mpsc::Receiver<Order>,
    pub closing: watch::Receiver<bool>,
    pub generation: u64,
}

impl Registry {
    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Held>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes `charger`'s entry. A socket it already had here loses its orders' sender, which ends
    /// it: the charger reconnected, the older socket is stale.
    pub(crate) fn hold(&self, charger: Uuid, tenant: TenantId) -> Hold {
        let (orders, receiver) = mpsc::channel(8);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        self.held().insert(charger, Held { tenant, orders, generation });
        Hold { orders: receiver, closing: self.closing.subscribe(), generation }
    }

    /// Gives up `charger`'s entry, unless a newer socket took it.
    pub(crate) fn release(&self, charger: Uuid, generation: u64) {
        let mut held = self.held();
        if held.get(&charger).is_some_and(|h| h.generation == generation) {
            held.remove(&charger);
        }
    }

    /// Hands `order` to `charger`'s socket when this process holds it for `tenant`.
    pub(crate) fn send(&self, tenant: &TenantId, charger: Uuid, order: Order) -> bool {
        let held = self.held();
        let Some(entry) = held.get(&charger).filter(|h| &h.tenant == tenant) else { return false };
        match entry.orders.try_send(order) {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%charger, %error, "a charger's orders are backed up; dropped one");
                false
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.held().len()
    }

    /// Tells every socket to close and waits up to `grace` until none is held.
    pub(crate) async fn close(&self, grace: Duration) {
        self.closing.send_replace(true);
        let drained = async {
            while self.len() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(left = self.len(), "charger sockets still open after the grace period");
        }
    }
}

/// Listens (core NATS, every process) for remote commands to every charger and hands those of
/// this process's sockets to them. A command for a charger no process holds reaches nobody: the
/// charger is offline, and starting a session on it was refused already.
pub(crate) async fn follow_commands(door: Arc<Ocpp>) -> Result<(), bus::BusError> {
    let subject = format!("{}.*.chargers.*.commands", schemas::subjects::ROOT);
    let mut commands = door.nats.subscribe(subject).await?;
    // The door's own Arc would keep it alive forever; the task ends with the door.
    let door = Arc::downgrade(&door);
    tokio::spawn(async move {
        while let Some(message) = commands.next().await {
            let Some(door) = door.upgrade() else { break };
            let envelope = match bus::nats::decode(&message) {
                Ok(envelope) => envelope,
                Err(error) => {
                    tracing::warn!(subject = %message.subject, %error, "an unreadable charger command");
                    continue;
                }
            };
            let (charger, order) = match envelope.data {
                AnyMessage::ChargerRemoteCommand(command) => (command.charger_id, Order::Remote(command)),
                AnyMessage::ChargerResetRequested(reset) => (reset.charger_id, Order::Reset(reset.kind)),
                _ => continue,
            };
            if door.registry.send(&envelope.tenant, charger, order) {
                tracing::info!(%charger, message_id = %envelope.id, tenant = %envelope.tenant, "remote command to its socket");
            }
        }
    });
    Ok(())
}
