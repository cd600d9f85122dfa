//! Operational webhooks: voltbus telling an endpoint's owner about its deliveries, through the
//! owner's own endpoints subscribed to these event types (as Svix names them).

use schemas::webhooks::DeliverWebhook;
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use super::endpoints::{self, StoredEndpoint};
use super::messages::{self, Outgoing};

/// What voltbus reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The endpoint failed for too long and was disabled.
    EndpointDisabled,
    /// A delivery used up its attempts.
    AttemptExhausted,
    /// The endpoint succeeded again after failures.
    AttemptRecovered,
}

pub use schemas::webhooks::{OPERATIONAL_EVENTS as EVENTS, is_operational};

impl Notice {
    fn event(self) -> &'static str {
        match self {
            Notice::EndpointDisabled => EVENTS[0],
            Notice::AttemptExhausted => EVENTS[1],
            Notice::AttemptRecovered => EVENTS[2],
        }
    }
}

/// Sends `notice` about `endpoint` to the tenant's endpoints subscribed to it whose makers could
/// see `endpoint` (they read all it may receive): a subaccount's partner hears nothing of another's.
pub async fn announce(
    tx: &impl ConnectionTrait,
    tenant: &str,
    notice: Notice,
    endpoint: &StoredEndpoint,
    command: &DeliverWebhook,
    lease: chrono::Duration,
) -> Result<(), DbErr> {
    let event = notice.event();
    let mut listeners = endpoints::subscribed(tx, tenant, event).await?;
    listeners.retain(|listener| listener.audience.covers(&endpoint.audience, endpoint.receivable()));
    if listeners.is_empty() {
        return Ok(());
    }
    let data = serde_json::json!({
        "endpoint_id": endpoint.endpoint.id,
        "url": endpoint.endpoint.url,
        "delivery_id": command.delivery_id,
        "event_id": command.event_id,
        "event": command.event,
        "attempts": command.attempt,
    });
    let event_id = messages::event_id(Uuid::now_v7());
    let payload = messages::payload(event, &event_id, chrono::Utc::now(), &data.to_string());
    let reach = schemas::Reach::Organisation;
    let outgoing = Outgoing { tenant, event, event_id: &event_id, payload: &payload, reach };
    messages::enqueue(tx, None, &outgoing, &listeners, lease).await?;
    Ok(())
}
