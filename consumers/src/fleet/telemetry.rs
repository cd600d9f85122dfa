//! The telemetry ingest, the platform's hottest path: vehicles publish `vehicle.state_reported`
//! on `voltbus.{tenant}.vehicles.{vehicle}.state` (JetStream), and the `telemetry` group takes
//! them in batches: per batch and tenant, one statement locks the vehicles' latest states, one
//! writes them back merged (newest reading per property wins), one records the history, and
//! one or a few put the events in the outbox: `VehicleStateReceived` for every report some
//! subscription can receive (none is made for the others: [`Listeners`]), and
//! `vehicle.battery_low` / `vehicle.location_updated` where a report crossed their thresholds.
//!
//! The group keeps no inbox rows (one per report would be the largest table of all): every write
//! is idempotent by itself. A report handled again finds its readings no newer than the held
//! ones, its history row and its events (whose ids derive from the report's) already there.
//!
//! `VehicleStateReceived` skips the outbox when the runtime can publish after the commit
//! ([`Handler::handle_publishing`]): handling a report again makes the same event again, so a
//! crash between commit and publish loses none, and the outbox's rows, relay passes and marks
//! (three writes per report) are saved. The derived events stay in the outbox: a report handled
//! again changes nothing, so it would not make them again.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bus::nats::JetStreamGroup;
use bus::outbox::{self, Destination, Outgoing};
use bus::{Context, Handled, Handler, HandlerError, Reply};
use chrono::Utc;
use schemas::integrations::Audience;
use schemas::vehicles::{VehicleBatteryLow, VehicleLocationUpdated, VehicleStateReceived, VehicleStateReported};
use schemas::{AnyMessage, DecodeError, Envelope, Message, Reach, TenantId, subjects};
use sea_orm::{DatabaseTransaction, DbErr};
use uuid::Uuid;

use super::states::{self, Report, Tracked};
use readside::geometry::metres_between;
use readside::ids::derived_id;

/// The ingest's group (JetStream durable consumer).
pub const GROUP: &str = "telemetry";

const SOURCE: &str = "voltbus/telemetry";

/// When telemetry becomes an event of its own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// `vehicle.battery_low` when the state of charge falls below this percentage.
    pub battery_low_percent: u8,
    /// `vehicle.location_updated` when a vehicle is this many metres from where the last one
    /// placed it.
    pub moved_metres: u32,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { battery_low_percent: 20, moved_metres: 100 }
    }
}

/// Each event type's destination for each subaccount, made once per batch: a fleet's reports
/// share a handful of routing keys.
#[derive(Default)]
struct Destinations(HashMap<(&'static str, Reach), Destination>);

impl Destinations {
    fn of<M: Message>(&mut self, tenant: &TenantId, event: &M) -> Destination {
        self.0.entry((M::TYPE, event.reach())).or_insert_with(|| Destination::event(tenant, event)).clone()
    }
}

/// The ingest's JetStream consumer: every vehicle's state subject in the telemetry stream.
pub fn topology() -> JetStreamGroup {
    JetStreamGroup::new(
        GROUP,
        subjects::TELEMETRY_STREAM,
        subjects::every_vehicle_state(),
        crate::RETRY_DELAYS.to_vec(),
    )
    // Vehicles publish here, each with credentials for its own tenant's subjects.
    .checking_tenant_in_subject()
    .accepting_headless(plain_state)
}

/// A vehicle's state as an MQTT unit publishes it (MQTT 3.1.1 has no headers): the state object
/// alone, on its own subject, which names the tenant and the vehicle. The envelope's id is derived
/// from the vehicle and the body, so a unit that sends the same report again (QoS 1 resends) is
/// taken once.
fn plain_state(subject: &str, body: &[u8]) -> Result<Envelope<AnyMessage>, DecodeError> {
    let (tenant, vehicle_id) = subjects::vehicle_of(subject, "state")
        .ok_or_else(|| DecodeError::Malformed(format!("{subject} is no vehicle's state subject")))?;
    let state = serde_json::from_slice(body).map_err(|e| DecodeError::Malformed(format!("a vehicle state: {e}")))?;
    let report = VehicleStateReported { vehicle_id, telematics_unit_id: None, state };
    let mut envelope = Envelope::new(tenant, "voltbus/mqtt", report).map(AnyMessage::VehicleStateReported);
    envelope.id = derived_id(&format!("{vehicle_id}/{}", String::from_utf8_lossy(body)));
    Ok(envelope)
}

/// Takes vehicle states in.
pub struct Telemetry {
    thresholds: Thresholds,
    listeners: Listeners,
}

impl Telemetry {
    /// An ingest that derives events at `thresholds`.
    pub fn new(thresholds: Thresholds) -> Self {
        Self { thresholds, listeners: Listeners::default() }
    }
}

/// How long the ingest trusts what it read of who hears `VehicleStateReceived`: a subscription
/// made or deleted in any process is followed within this.
const LISTENERS_TTL: Duration = Duration::from_millis(500);

/// Who may receive `VehicleStateReceived`: the subscriptions taking it, every tenant's, with what
/// they may hear, read again once older than [`LISTENERS_TTL`]. No internal group and no webhook
/// takes the event, so a report no subscription can receive is not published at all: the broker
/// works at the pace of those who listen, not of the fleet.
#[derive(Default)]
struct Listeners {
    /// When it was read, and what.
    known: RwLock<Option<(Instant, Arc<Heard>)>>,
}

impl Listeners {
    /// Who hears the event now.
    async fn current(&self, tx: &DatabaseTransaction) -> Result<Arc<Heard>, DbErr> {
        if let Ok(known) = self.known.read()
            && let Some((read_at, listeners)) = known.as_ref()
            && read_at.elapsed() < LISTENERS_TTL
        {
            return Ok(Arc::clone(listeners));
        }
        let listeners = Arc::new(readside::subscriptions::hearing(tx, VehicleStateReceived::TYPE).await?);
        if let Ok(mut known) = self.known.write() {
            *known = Some((Instant::now(), Arc::clone(&listeners)));
        }
        Ok(listeners)
    }
}

/// Subscriptions taking `VehicleStateReceived`: their tenant and audience.
type Heard = Vec<(String, Audience)>;

/// Whether anyone of `tenant` hears about a vehicle of `subaccount`.
fn heard(listeners: &[(String, Audience)], tenant: &str, subaccount: Uuid) -> bool {
    listeners.iter().any(|(of, audience)| of == tenant && audience.admits(Reach::Subaccount(subaccount)))
}

impl Handler for Telemetry {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database("telemetry")?;
            let received = self.ingest(tx, &[(context.message, context.attempt)]).await?;
            enqueue(tx, received).await.map(|()| None)
        })
    }

    fn handle_batch<'a>(
        &'a self,
        transaction: &'a DatabaseTransaction,
        messages: &'a [(&'a Envelope<AnyMessage>, u32)],
    ) -> Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'a>> {
        Box::pin(async move { enqueue(transaction, self.ingest(transaction, messages).await?).await })
    }

    fn handle_publishing<'a>(
        &'a self,
        transaction: &'a DatabaseTransaction,
        messages: &'a [(&'a Envelope<AnyMessage>, u32)],
    ) -> Pin<Box<dyn Future<Output = Result<Handled, HandlerError>> + Send + 'a>> {
        Box::pin(async move { self.ingest(transaction, messages).await.map(Handled::publishing) })
    }
}

/// Puts `VehicleStateReceived` events into the outbox, for a runtime that does not publish after commit.
async fn enqueue(tx: &DatabaseTransaction, received: Vec<Outgoing>) -> Result<(), HandlerError> {
    outbox::enqueue_encoded(tx, &received).await.map_err(|e| HandlerError::Retryable(format!("database: {e}")))
}

/// The derived events one batch of one tenant gives rise to.
#[derive(Default)]
struct Derived {
    battery_low: Vec<Envelope<VehicleBatteryLow>>,
    moved: Vec<Envelope<VehicleLocationUpdated>>,
}

/// An event caused by `report`, with an id derived from the report's, so that handling the
/// report again writes the same outbox row (which is then skipped).
fn caused<M: Message>(report: &Envelope<AnyMessage>, data: M) -> Envelope<M> {
    let mut event = Envelope::new(report.tenant.clone(), SOURCE, data).caused_by(report);
    event.id = derived_id(&format!("{}\n{}", report.id, M::TYPE));
    event
}

impl Telemetry {
    /// Takes `messages` in; returns their `VehicleStateReceived` events, not yet published.
    async fn ingest(
        &self,
        tx: &DatabaseTransaction,
        messages: &[(&Envelope<AnyMessage>, u32)],
    ) -> Result<Vec<Outgoing>, HandlerError> {
        // A batch may hold several tenants' reports; each tenant's are handled together, in order.
        let mut by_tenant: BTreeMap<&str, Vec<(&Envelope<AnyMessage>, &VehicleStateReported)>> = BTreeMap::new();
        for (message, _) in messages {
            let AnyMessage::VehicleStateReported(report) = &message.data else {
                let type_name = message.type_name.as_str();
                return Err(HandlerError::Permanent(format!("`{type_name}` is not telemetry")));
            };
            by_tenant.entry(message.tenant.as_str()).or_default().push((message, report));
        }
        let mut received = Vec::with_capacity(messages.len());
        let listeners =
            self.listeners.current(tx).await.map_err(|e| HandlerError::Retryable(format!("database: {e}")))?;
        for (tenant, reports) in by_tenant {
            self.ingest_tenant(tx, tenant, &reports, &listeners, &mut received).await?;
        }
        Ok(received)
    }

    async fn ingest_tenant(
        &self,
        tx: &DatabaseTransaction,
        tenant: &str,
        reports: &[(&Envelope<AnyMessage>, &VehicleStateReported)],
        listeners: &[(String, Audience)],
        received: &mut Vec<Outgoing>,
    ) -> Result<(), HandlerError> {
        let retryable = |e: DbErr| HandlerError::Retryable(format!("database: {e}"));
        let mut ids: Vec<Uuid> = reports.iter().map(|(_, r)| r.vehicle_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut tracked: HashMap<Uuid, Tracked> =
            states::track(tx, tenant, &ids).await.map_err(retryable)?.into_iter().map(|t| (t.vehicle_id, t)).collect();
        if let Some(unknown) = ids.iter().find(|id| !tracked.contains_key(id)) {
            // Not this organisation's vehicle (or removed): nothing to keep it for, and a
            // retry will not change that.
            return Err(HandlerError::Permanent(format!("vehicle {unknown} is not in the fleet of `{tenant}`")));
        }
        let tenant_id = TenantId::new(tenant).map_err(|e| HandlerError::Permanent(e.to_string()))?;
        let mut destinations = Destinations::default();
        let now = Utc::now();
        let mut derived = Derived::default();
        for (message, report) in reports {
            let Some(vehicle) = tracked.get_mut(&report.vehicle_id) else { continue };
            vehicle.latest.received_at = Some(now);
            let charge_before = vehicle.latest.state.charge_level.as_ref().map(|r| r.value);
            if states::merge(&mut vehicle.latest.state, &report.state) {
                self.derive(message, report, vehicle, charge_before, &mut derived);
            }
            if !heard(listeners, tenant, vehicle.subaccount_id) {
                continue;
            }
            let event = caused(
                message,
                VehicleStateReceived {
                    vehicle_id: report.vehicle_id,
                    subaccount_id: vehicle.subaccount_id,
                    state: report.state.clone(),
                },
            );
            received.push(Outgoing::new(&event, destinations.of(&tenant_id, &event.data)));
        }
        let written: Vec<&Tracked> = tracked.values().collect();
        states::write(tx, tenant, &written).await.map_err(retryable)?;
        let history: Vec<Report> = reports
            .iter()
            .map(|(message, report)| Report {
                message_id: message.id,
                vehicle_id: report.vehicle_id,
                state: &report.state,
            })
            .collect();
        states::record(tx, tenant, now, &history).await.map_err(retryable)?;
        let mut derived_events: Vec<_> =
            derived.battery_low.iter().map(|e| Outgoing::new(e, destinations.of(&tenant_id, &e.data))).collect();
        derived_events.extend(derived.moved.iter().map(|e| Outgoing::new(e, destinations.of(&tenant_id, &e.data))));
        outbox::enqueue_encoded(tx, &derived_events).await.map_err(retryable)?;
        Ok(())
    }

    /// The events a report that changed the latest state gives rise to.
    fn derive(
        &self,
        message: &Envelope<AnyMessage>,
        report: &VehicleStateReported,
        vehicle: &mut Tracked,
        charge_before: Option<u8>,
        events: &mut Derived,
    ) {
        let threshold = self.thresholds.battery_low_percent;
        let latest = &vehicle.latest.state;
        // Only a reading this report brought counts (an older one in it changed nothing).
        let reported_charge = report.state.charge_level.as_ref().filter(|r| latest.charge_level.as_ref() == Some(*r));
        if let Some(charge) = reported_charge
            && charge.value < threshold
            && charge_before.is_none_or(|before| before >= threshold)
        {
            let low = VehicleBatteryLow {
                vehicle_id: vehicle.vehicle_id,
                vehicle_number: vehicle.vehicle_number.clone(),
                battery_level: charge.value,
                threshold,
                subaccount_id: vehicle.subaccount_id,
            };
            events.battery_low.push(caused(message, low));
        }
        let reported_position = report.state.position.as_ref().filter(|r| latest.position.as_ref() == Some(*r));
        if let Some(position) = reported_position {
            let distance = vehicle.announced.map_or(0.0, |from| metres_between(from, position.value));
            if vehicle.announced.is_none() || distance > f64::from(self.thresholds.moved_metres) {
                vehicle.announced = Some(position.value);
                let moved = VehicleLocationUpdated {
                    vehicle_id: vehicle.vehicle_id,
                    vehicle_number: vehicle.vehicle_number.clone(),
                    latitude: position.value.latitude,
                    longitude: position.value.longitude,
                    // Whole metres, and no vehicle is 4,000 km from its last report.
                    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                    distance_m: distance.round().min(f64::from(u32::MAX)) as u32,
                    subaccount_id: vehicle.subaccount_id,
                };
                events.moved.push(caused(message, moved));
            }
        }
    }
}
