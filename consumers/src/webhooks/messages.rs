//! One event becoming deliveries: its payload stored once (`webhook_messages`), one delivery per
//! endpoint that takes it, and for each delivery that may go now its first attempt queued: in
//! the outbox, or handed to this process's dispatcher after commit (the fan-out's batches). An
//! ordered endpoint's delivery waits while an earlier one of it is unfinished.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use super::deliveries;
use super::endpoints::{self, StoredEndpoint};

pub use schemas::webhooks::event_id;

/// The body every endpoint receives, in the seed's shape and field order; `data` is compact JSON.
pub fn payload(event: &str, event_id: &str, timestamp: DateTime<Utc>, data: &str) -> String {
    let quoted = |text: &str| serde_json::Value::from(text).to_string();
    format!(
        r#"{{"event":{},"event_id":{},"timestamp":{},"data":{data}}}"#,
        quoted(event),
        quoted(event_id),
        quoted(&timestamp.to_rfc3339_opts(SecondsFormat::Secs, true)),
    )
}

/// An event on its way to endpoints.
#[derive(Debug)]
pub struct Outgoing<'a> {
    /// Owner.
    pub tenant: &'a str,
    /// Event type (`ride.ended`).
    pub event: &'a str,
    /// `evt_…`.
    pub event_id: &'a str,
    /// The exact body.
    pub payload: &'a str,
    /// What it is about: who may read it in the delivery log.
    pub reach: schemas::Reach,
}

/// Stores `message` and a delivery to each of `endpoints`; returns the deliveries' ids.
pub async fn enqueue(
    tx: &impl ConnectionTrait,
    cause: Option<Uuid>,
    message: &Outgoing<'_>,
    endpoints: &[StoredEndpoint],
    lease: chrono::Duration,
) -> Result<Vec<Uuid>, DbErr> {
    let now = Utc::now();
    store(tx, [message], now).await?;
    let mut ids = Vec::with_capacity(endpoints.len());
    for endpoint in endpoints {
        let id = endpoint.endpoint.id;
        let go_now = if endpoint.endpoint.ordered {
            // The lock makes concurrent events for this endpoint take turns deciding.
            endpoints::find_locked(tx, message.tenant, id).await?;
            !deliveries::has_unfinished(tx, message.tenant, id).await?
        } else {
            true
        };
        let delivery = deliveries::NewDelivery {
            tenant: message.tenant,
            endpoint_id: id,
            event_id: message.event_id,
            event: message.event,
            subaccount_id: message.reach.subaccount(),
        };
        ids.push(deliveries::insert(tx, cause, &delivery, go_now.then_some(lease), now).await?);
    }
    Ok(ids)
}

/// A delivery [`enqueue_all`] stored to go now whose first attempt the caller dispatches.
#[derive(Debug)]
pub struct Queued {
    /// The delivery.
    pub delivery_id: Uuid,
    /// Which of the events it delivers.
    pub event: usize,
    /// Which of that event's endpoints it goes to.
    pub endpoint: usize,
}

/// Stores many events and their deliveries. Events whose endpoints are all unordered take one
/// statement per table between them, and their first attempts are queued as `first` says (the
/// deliveries to dispatch in process are returned); an event for an ordered endpoint goes
/// through [`enqueue`], which takes that endpoint's turn and queues through the outbox.
pub async fn enqueue_all(
    tx: &impl ConnectionTrait,
    events: &[(Option<Uuid>, Outgoing<'_>, &[StoredEndpoint])],
    lease: chrono::Duration,
    first: deliveries::FirstAttempt,
) -> Result<Vec<Queued>, DbErr> {
    let (ordered, free): (Vec<_>, Vec<_>) =
        events.iter().enumerate().partition(|(_, (_, _, endpoints))| endpoints.iter().any(|e| e.endpoint.ordered));
    for (_, (cause, message, endpoints)) in ordered {
        enqueue(tx, *cause, message, endpoints, lease).await?;
    }
    if free.is_empty() {
        return Ok(Vec::new());
    }
    let now = Utc::now();
    store(tx, free.iter().map(|(_, (_, message, _))| message), now).await?;
    let deliveries: Vec<(Option<Uuid>, deliveries::NewDelivery, usize, usize)> = free
        .iter()
        .flat_map(|(index, (cause, message, endpoints))| {
            endpoints.iter().enumerate().map(move |(at, endpoint)| {
                let delivery = deliveries::NewDelivery {
                    tenant: message.tenant,
                    endpoint_id: endpoint.endpoint.id,
                    event_id: message.event_id,
                    event: message.event,
                    subaccount_id: message.reach.subaccount(),
                };
                (*cause, delivery, *index, at)
            })
        })
        .collect();
    let rows: Vec<_> = deliveries.iter().map(|(cause, delivery, _, _)| (*cause, delivery, true)).collect();
    let ids = deliveries::insert_all(tx, &rows, lease, first, now).await?;
    if first == deliveries::FirstAttempt::Outbox {
        return Ok(Vec::new());
    }
    Ok(ids
        .into_iter()
        .zip(&deliveries)
        .map(|(delivery_id, (_, _, event, endpoint))| Queued { delivery_id, event: *event, endpoint: *endpoint })
        .collect())
}

/// Stores the events' bodies, once each: a replayed event keeps the body it was first sent with.
async fn store<'a>(
    tx: &impl ConnectionTrait,
    messages: impl IntoIterator<Item = &'a Outgoing<'a>>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut insert = Query::insert()
        .into_table("webhook_messages")
        .columns(["tenant", "event_id", "event", "payload", "created_at"])
        .on_conflict(OnConflict::columns(["tenant", "event_id"]).do_nothing().to_owned())
        .to_owned();
    for message in messages {
        insert.values_panic([
            message.tenant.into(),
            message.event_id.into(),
            message.event.into(),
            message.payload.into(),
            now.into(),
        ]);
    }
    tx.execute(&insert).await?;
    Ok(())
}
