//! One event becoming deliveries: its payload stored once (`webhook_messages`), one delivery per
//! endpoint that takes it, and the first attempt's command in the outbox for each delivery that
//! may go now. An ordered endpoint's delivery waits while an earlier one of it is unfinished.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr};
use uuid::Uuid;

use super::deliveries;
use super::endpoints::{self, StoredEndpoint};

/// The id partners de-duplicate on: the bus event's own id, so every retry and every replay of
/// one event carries the same one.
pub fn event_id(id: Uuid) -> String {
    format!("evt_{}", id.simple())
}

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
    let insert = Query::insert()
        .into_table("webhook_messages")
        .columns(["tenant", "event_id", "event", "payload", "created_at"])
        .values_panic([
            message.tenant.into(),
            message.event_id.into(),
            message.event.into(),
            message.payload.into(),
            now.into(),
        ])
        .on_conflict(OnConflict::columns(["tenant", "event_id"]).do_nothing().to_owned())
        .to_owned();
    tx.execute(&insert).await?;
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
        };
        ids.push(deliveries::insert(tx, cause, &delivery, go_now.then_some(lease), now).await?);
    }
    Ok(ids)
}
