//! A subscriber app's view of voltbus (INVERS Messaging API): keep a local copy of the fleet in
//! sync from the organisation's subscription queue. `VehicleChanged` adds, changes or removes a
//! vehicle's master data, custom fields and status; `VehicleStateReceived` brings each reading
//! that is newer than the one held (reports may arrive late or twice).
//!
//! Get a queue and its credentials with `POST /api/partner/v1/subscriptions`
//! (`{"name": "sync", "events": ["VehicleChanged", "VehicleStateReceived"]}`), then:
//!
//! ```sh
//! cargo run --example fleet_sync -- 'amqp://vbsub-acme-sync:…@127.0.0.1:5672/%2f' voltbus.subscriber.acme.sync
//! ```

use std::collections::{BTreeMap, HashMap};

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use schemas::vehicles::{MasterData, OperationStatus, Reading, VehicleChangeType, VehicleState};
use schemas::{AnyMessage, Envelope};
use serde_json::Value;
use uuid::Uuid;

/// What the app keeps of one vehicle.
#[derive(Clone, Debug, Default, PartialEq)]
struct LocalVehicle {
    master_data: MasterData,
    custom_fields: BTreeMap<String, Value>,
    status: Option<OperationStatus>,
    state: VehicleState,
}

/// The app's copy of the fleet.
#[derive(Debug, Default)]
struct LocalFleet {
    vehicles: HashMap<Uuid, LocalVehicle>,
}

/// Keeps `new` if it is newer than what is held.
fn newer<T: Clone>(held: &mut Option<Reading<T>>, new: &Option<Reading<T>>) {
    if let Some(new) = new
        && held.as_ref().is_none_or(|held| new.time > held.time)
    {
        *held = Some(new.clone());
    }
}

impl LocalFleet {
    /// Applies one message; other types are not this app's business.
    fn apply(&mut self, message: &Envelope<AnyMessage>) {
        match &message.data {
            AnyMessage::VehicleChanged(changed) if changed.change_type == VehicleChangeType::Deleted => {
                self.vehicles.remove(&changed.vehicle_id);
            }
            AnyMessage::VehicleChanged(changed) => {
                let vehicle = self.vehicles.entry(changed.vehicle_id).or_default();
                vehicle.master_data = changed.master_data.clone().unwrap_or_default();
                vehicle.custom_fields = changed.custom_fields.clone();
                vehicle.status = changed.status;
            }
            AnyMessage::VehicleStateReceived(received) => {
                let held = &mut self.vehicles.entry(received.vehicle_id).or_default().state;
                let new = &received.state;
                newer(&mut held.charge_level, &new.charge_level);
                newer(&mut held.position, &new.position);
                newer(&mut held.odometer, &new.odometer);
                newer(&mut held.remaining_range, &new.remaining_range);
                newer(&mut held.speed, &new.speed);
                newer(&mut held.central_lock, &new.central_lock);
                newer(&mut held.ignition, &new.ignition);
            }
            _ => {}
        }
    }
}

/// Consumes `queue` and keeps `fleet` in sync; returns after `limit` messages (`None`: never).
async fn sync(url: &str, queue: &str, fleet: &mut LocalFleet, limit: Option<usize>) -> anyhow::Result<()> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    // A bounded window: the broker pushes no more than the app has in hand.
    channel.basic_qos(100, Default::default()).await?;
    let mut deliveries = channel
        .basic_consume(queue.into(), "fleet-sync".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let mut seen = 0;
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery?;
        match bus::amqp::decode(&delivery) {
            Ok(message) => {
                fleet.apply(&message);
                println!(
                    "{} {} → {} vehicles",
                    message.type_name,
                    message.subject.unwrap_or_default(),
                    fleet.vehicles.len()
                );
            }
            Err(error) => eprintln!("skipped a message that does not decode ({})", error.kind()),
        }
        // Acked once applied: a crash before this brings the message again, and applying it
        // again changes nothing.
        delivery.ack(BasicAckOptions::default()).await?;
        seen += 1;
        if limit.is_some_and(|n| seen >= n) {
            break;
        }
    }
    connection.close(200, "done".into()).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().unwrap_or_else(|| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let queue = args.next().unwrap_or_else(|| "voltbus.subscriber.acme.sync".into());
    let mut fleet = LocalFleet::default();
    sync(&url, &queue, &mut fleet, None).await
}

#[tokio::test]
async fn keeps_a_local_copy_of_the_fleet() {
    use bus::amqp::AmqpConnection;
    use lapin::options::{QueueBindOptions, QueueDeclareOptions};
    use schemas::vehicles::{VehicleChanged, VehicleStateReceived};
    use schemas::{TenantId, routing};

    let url = std::env::var("VOLTBUS_TEST_AMQP").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let amqp = AmqpConnection::connect(&url, "fleet-sync-test").await.unwrap();
    amqp.declare_exchanges().await.unwrap();
    let tenant = TenantId::new(format!("sync_{}", &Uuid::now_v7().simple().to_string()[20..])).unwrap();
    // Stands in for the subscription's queue (the end-to-end tests make a real one).
    let channel = amqp.channel().await.unwrap();
    let queue = routing::subscriber_queue(&tenant, "sync");
    let options = QueueDeclareOptions { auto_delete: true, ..Default::default() };
    channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await.unwrap();
    let binding = format!("{tenant}.*.vehicles.#");
    channel
        .queue_bind(
            queue.as_str().into(),
            routing::EVENTS_EXCHANGE.into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let (kept, gone) = (Uuid::now_v7(), Uuid::now_v7());
    let now = chrono::Utc::now();
    let changed = |id: Uuid, change_type| VehicleChanged {
        vehicle_id: id,
        subaccount_id: Uuid::nil(),
        change_type,
        changed_properties: vec!["status".into()],
        master_data: Some(MasterData { vin: Some(format!("VIN{}", id.simple())), ..MasterData::default() }),
        custom_fields: BTreeMap::new(),
        status: Some(OperationStatus::Available),
    };
    let charge = |level: u8, time| VehicleStateReceived {
        vehicle_id: kept,
        subaccount_id: Uuid::nil(),
        state: VehicleState { charge_level: Some(Reading { value: level, time }), ..VehicleState::default() },
    };
    async fn publish<M: schemas::Message>(amqp: &AmqpConnection, tenant: &TenantId, data: M) {
        let envelope = Envelope::new(tenant.clone(), "test/fleet", data);
        amqp.publish(routing::EVENTS_EXCHANGE, &routing::event_key_of(tenant, &envelope.data), &envelope)
            .await
            .unwrap();
    }
    publish(&amqp, &tenant, changed(kept, VehicleChangeType::Created)).await;
    publish(&amqp, &tenant, changed(gone, VehicleChangeType::Created)).await;
    publish(&amqp, &tenant, charge(80, now)).await;
    // Late: measured before the one above; kept out.
    publish(&amqp, &tenant, charge(95, now - chrono::TimeDelta::minutes(5))).await;
    publish(&amqp, &tenant, changed(gone, VehicleChangeType::Deleted)).await;

    let mut fleet = LocalFleet::default();
    tokio::time::timeout(std::time::Duration::from_secs(20), sync(&url, &queue, &mut fleet, Some(5)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(fleet.vehicles.len(), 1);
    let vehicle = &fleet.vehicles[&kept];
    assert_eq!(vehicle.status, Some(OperationStatus::Available));
    assert_eq!(vehicle.state.charge_level.as_ref().map(|r| r.value), Some(80));
    amqp.close().await;
}
