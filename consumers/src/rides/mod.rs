//! Rides (Levy Fleets): started, paused, resumed and ended by the `rides` group, priced at the
//! end with the plan they started under and charged to the customer's wallet in the same
//! transaction. The vehicle follows the ride (`in_use` from start to end) and every step is
//! announced with the seed's payload (`ride.started`, `ride.paused`, `ride.resumed`, `ride.ended`).
//!
//! A start is refused when the customer is blocked, the vehicle is not available, the start point
//! is in a no-ride zone, or the wallet cannot cover the unlock fee and the plan's minimum balance.
//! A ride moves only as `machine` allows: a second `end` is refused, never charged twice.
//!
//! Layout: `machine` (the statuses and moves), `store` (the table).

pub mod machine;
pub mod store;

use crate::groups::Group;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bus::outbox;
use bus::{Context, Handler, HandlerError, Reply};
use chrono::{DateTime, Utc};
use schemas::Recipient;
use schemas::rides::{
    PauseRide, PaymentStatus, ResumeRide, RideEnded, RidePaused, RideResumed, RideStarted, StartRide,
};
use schemas::vehicles::{OperationStatus, Position, UpdateVehicle};
use schemas::wallets::{EntrySource, WalletAction};
use schemas::zones::ZoneType;
use schemas::{AnyMessage, Envelope};
use sea_orm::{DatabaseTransaction, DbErr};
use uuid::Uuid;

use crate::fleet::{self, vehicles};
use crate::pricing::{self, Usage};
use crate::wallets::{self, Posting};
use crate::{customers, zones};
pub use machine::RideStatus;
use machine::Step;
use readside::geometry;
use readside::{Outcome, Refusal, codes};
pub(crate) use store::Ride;
use store::Stored;

/// The group's name: its queues are `voltbus.rides…`.
pub const GROUP: &str = Recipient::Rides.name();

const SOURCE: &str = "voltbus/rides";

/// The group: its commands, one a transaction.
pub fn groups() -> Vec<Group> {
    vec![Group::handling(Recipient::Rides, Arc::new(Rides))]
}

/// Handles the ride commands.
pub struct Rides;

impl Handler for Rides {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            let tx = context.database(GROUP)?;
            let message = context.message;
            // A step happens when the edge took the request (the envelope's time), not when a
            // backlog or a retry lets it run: queueing must not bill minutes. Never in the future.
            let now = message.time.min(Utc::now());
            let outcome = match &message.data {
                AnyMessage::StartRide(start) => start_ride(tx, message, start, now).await,
                AnyMessage::PauseRide(PauseRide { ride_id }) => {
                    step(tx, message, *ride_id, Step::Pause, None, now).await
                }
                AnyMessage::ResumeRide(ResumeRide { ride_id }) => {
                    step(tx, message, *ride_id, Step::Resume, None, now).await
                }
                AnyMessage::EndRide(end) => {
                    let at = Position { latitude: end.end_latitude, longitude: end.end_longitude };
                    step(tx, message, end.ride_id, Step::End, Some(at), now).await
                }
                _ => return Err(HandlerError::unhandled(message)),
            };
            outcome.map(|o| Some(o.to_reply())).map_err(|error| HandlerError::Retryable(error.to_string()))
        })
    }
}

fn refused<T>(code: &str, message: impl Into<String>) -> Result<Outcome<T>, DbErr> {
    Ok(Outcome::Refused(Refusal::coded(code, message)))
}

async fn start_ride(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    start: &StartRide,
    now: DateTime<Utc>,
) -> Result<Outcome<Ride>, DbErr> {
    let tenant = message.tenant.as_str();
    let Some(customer) = customers::find_locked(tx, tenant, start.customer_id).await? else {
        return refused(codes::NOT_FOUND, format!("no customer {}", start.customer_id));
    };
    let Some(vehicle) = vehicles::find_locked(tx, tenant, &[start.vehicle_id]).await?.pop() else {
        return refused(codes::NOT_FOUND, format!("no vehicle {}", start.vehicle_id));
    };
    // A customer of one fleet is unknown to another; the organisation's own ride anywhere.
    if customer.subaccount_id.is_some_and(|s| s != vehicle.subaccount_id) {
        return refused(codes::NOT_FOUND, format!("no customer {} in the vehicle's fleet", customer.id));
    }
    if customer.blocked {
        let why = customer.block_reason.unwrap_or_default();
        return refused(codes::CUSTOMER_BLOCKED, format!("customer {} is blocked: {why}", customer.id));
    }
    if vehicle.status != OperationStatus::Available {
        let status = readside::columns::name_of(&vehicle.status);
        return refused(codes::VEHICLE_UNAVAILABLE, format!("vehicle {} is {status}", vehicle.id));
    }
    // The status is the operator's to change: a ride in progress holds the vehicle regardless.
    let (vehicle_on, customer_on) = store::in_progress_of(tx, tenant, vehicle.id, customer.id).await?;
    if let Some(ride) = vehicle_on {
        return refused(codes::VEHICLE_UNAVAILABLE, format!("vehicle {} is on ride {ride}", vehicle.id));
    }
    if let Some(ride) = customer_on {
        return refused(codes::CONFLICT, format!("customer {} is already on ride {ride}", customer.id));
    }
    let position = match (start.start_latitude, start.start_longitude) {
        (Some(latitude), Some(longitude)) => Some(Position { latitude, longitude }),
        _ => vehicle.state.state.position.as_ref().map(|p| p.value),
    };
    if let Some(at) = position {
        let fleet = [vehicle.subaccount_id];
        let holding = zones::containing(tx, tenant, Some(&fleet), at).await?;
        if let Some(zone) = holding.iter().find(|z| z.zone.zone_type == ZoneType::NoRide) {
            return refused(codes::NO_RIDE_ZONE, format!("the start point is in no-ride zone `{}`", zone.zone.name));
        }
    }
    let Some(plan) = pricing::find(tx, tenant, vehicle.subaccount_id).await? else {
        return refused(codes::CONFLICT, format!("subaccount {} has no pricing plan", vehicle.subaccount_id));
    };
    let plan = plan.plan;
    // A marketplace that brought the customer collects their payments: no wallet here to check.
    if customer.payments_collected_by.is_none()
        && let Err(refusal) = afford(tx, message, customer.id, &plan).await?
    {
        return Ok(Outcome::Refused(refusal));
    }
    let ride = Ride {
        id: start.ride_id,
        subaccount_id: vehicle.subaccount_id,
        customer_id: customer.id,
        vehicle_id: vehicle.id,
        status: RideStatus::Active,
        start_time: now,
        paused_at: None,
        paused_ms: 0,
        end_time: None,
        start_position: position,
        end_position: None,
        distance_m: None,
        pricing: None,
        payment_status: None,
        charge_entry_id: None,
        updated_at: now,
    };
    let start_odometer = vehicle.state.state.odometer.as_ref().and_then(|o| i64::try_from(o.value).ok());
    if !store::insert(tx, tenant, &Stored { ride: ride.clone(), plan, start_odometer }).await? {
        return refused(codes::CONFLICT, format!("ride id {} is taken", ride.id));
    }
    let event = RideStarted {
        ride_id: ride.id,
        customer_id: customer.id,
        customer_number: Some(customer.customer_number),
        vehicle_id: vehicle.id,
        vehicle_number: vehicle.master_data.vehicle_number.clone(),
        start_time: now,
        subaccount_id: vehicle.subaccount_id,
    };
    set_vehicle_status(tx, message, vehicle, OperationStatus::InUse, now, outbox::event(message, SOURCE, event))
        .await?;
    Ok(Outcome::Done(ride))
}

/// Whether `customer_id`'s wallet may start a ride on `plan`: an unpaid ride is collected first,
/// or the start is refused (a wallet that could not pay for one ride does not get the next one
/// free); then the plan's unlock fee and minimum balance must be there.
async fn afford(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    customer_id: Uuid,
    plan: &schemas::pricing::PricingPlan,
) -> Result<Result<(), Refusal>, DbErr> {
    let tenant = message.tenant.as_str();
    if let Some(unpaid) = store::unpaid(tx, tenant, customer_id).await?
        && !collect(tx, message, unpaid.ride.clone()).await?
    {
        let owed = unpaid.ride.pricing.map_or(0, |p| p.total_cents);
        let why =
            format!("ride {} is unpaid ({owed} {}); top up the wallet first", unpaid.ride.id, unpaid.plan.currency);
        return Ok(Err(Refusal::coded(codes::INSUFFICIENT_FUNDS, why)));
    }
    let needed = plan.unlock_cents.saturating_add(plan.minimum_balance_cents);
    // No wallet yet is an empty one.
    let (currency, balance, overdraft) =
        wallets::funds(tx, tenant, customer_id).await?.unwrap_or((plan.currency, 0, 0));
    if currency != plan.currency {
        let why = format!("the wallet is in {currency}, the plan in {}", plan.currency);
        return Ok(Err(Refusal::coded(codes::CONFLICT, why)));
    }
    if balance.saturating_add(overdraft) < needed {
        let why = format!("a ride needs {needed} {currency} in the wallet; it has {balance}");
        return Ok(Err(Refusal::coded(codes::INSUFFICIENT_FUNDS, why)));
    }
    Ok(Ok(()))
}

/// Moves the operation status of `vehicle`, which the ride holds locked, through the fleet's
/// own path, and writes the fleet's events and then the ride's `event` into the outbox in one
/// statement.
async fn set_vehicle_status(
    tx: &DatabaseTransaction,
    cause: &Envelope<AnyMessage>,
    vehicle: vehicles::Vehicle,
    status: OperationStatus,
    now: DateTime<Utc>,
    event: outbox::Outgoing,
) -> Result<(), DbErr> {
    let edit = UpdateVehicle { vehicle_id: vehicle.id, status: Some(status), ..UpdateVehicle::default() };
    let (_, mut events) = fleet::update_locked(tx, cause, vehicle, &edit, now).await?;
    events.push(event);
    outbox::enqueue_encoded(tx, &events).await
}

/// Milliseconds from `from` to `to`, never negative.
fn elapsed_ms(from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    (to - from).num_milliseconds().max(0)
}

async fn step(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    ride_id: Uuid,
    step: Step,
    end_at: Option<Position>,
    now: DateTime<Utc>,
) -> Result<Outcome<Ride>, DbErr> {
    let tenant = message.tenant.as_str();
    let Some(Stored { mut ride, plan, start_odometer }) = store::find_locked(tx, tenant, ride_id).await? else {
        return refused(codes::NOT_FOUND, format!("no ride {ride_id}"));
    };
    // Steps keep their order even if their requests' clocks disagree.
    let now = now.max(ride.updated_at);
    let to = match machine::next(ride.status, step) {
        Ok(to) => to,
        Err(why) => return refused(codes::INVALID_TRANSITION, format!("ride {ride_id}: {why}")),
    };
    // A pause ends with the ride or with a resume: its time is counted then.
    if let Some(paused_at) = ride.paused_at.take() {
        ride.paused_ms += elapsed_ms(paused_at, now);
    }
    ride.status = to;
    ride.updated_at = now;
    let (customer_id, vehicle_id, subaccount_id) = (ride.customer_id, ride.vehicle_id, ride.subaccount_id);
    match step {
        Step::Pause => {
            ride.paused_at = Some(now);
            store::update(tx, tenant, &ride).await?;
            let event = RidePaused { ride_id, customer_id, vehicle_id, paused_at: now, subaccount_id };
            outbox::enqueue_event(tx, message, SOURCE, event).await?;
        }
        Step::Resume => {
            store::update(tx, tenant, &ride).await?;
            let event = RideResumed { ride_id, customer_id, vehicle_id, resumed_at: now, subaccount_id };
            outbox::enqueue_event(tx, message, SOURCE, event).await?;
        }
        Step::End => end(tx, message, &mut ride, &plan, start_odometer, end_at, now).await?,
    }
    Ok(Outcome::Done(ride))
}

/// Prices `ride`, charges the wallet and gives the vehicle back.
async fn end(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    ride: &mut Ride,
    plan: &schemas::pricing::PricingPlan,
    start_odometer: Option<i64>,
    end_at: Option<Position>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let tenant = message.tenant.as_str();
    let vehicle = vehicles::find_locked(tx, tenant, &[ride.vehicle_id]).await?.pop();
    // The odometer is the vehicle's own measure of the way it went; the great-circle line from
    // start to end is the least the ride covered, so a missing or stale odometer never bills less.
    let odometer_now =
        vehicle.as_ref().and_then(|v| v.state.state.odometer.as_ref()).and_then(|o| i64::try_from(o.value).ok());
    let odometer_m = match (start_odometer, odometer_now) {
        (Some(from), Some(to)) if to >= from => to - from,
        _ => 0,
    };
    let line_m = match (ride.start_position, end_at) {
        (Some(from), Some(to)) => geometry::metres_between(from, to).round() as i64,
        _ => 0,
    };
    let distance_m = odometer_m.max(line_m);
    let usage = Usage {
        riding_ms: (elapsed_ms(ride.start_time, now) - ride.paused_ms).max(0),
        paused_ms: ride.paused_ms,
        distance_m,
    };
    let price = pricing::price(plan, usage);
    ride.pricing = Some(price);
    let customer = customers::find(tx, tenant, ride.customer_id).await?;
    let (payment_status, charge) = match customer.as_ref().and_then(|c| c.payments_collected_by.as_deref()) {
        Some(collector) => {
            tracing::debug!(ride = %ride.id, collector, "ride priced, not charged: the marketplace collects");
            (PaymentStatus::CollectedByMarketplace, None)
        }
        None => charge(tx, message, ride).await?,
    };
    ride.end_time = Some(now);
    ride.end_position = end_at;
    ride.distance_m = Some(distance_m);
    ride.payment_status = Some(payment_status);
    ride.charge_entry_id = charge;
    store::update(tx, tenant, ride).await?;
    let vehicle_number = vehicle.as_ref().and_then(|v| v.master_data.vehicle_number.clone());
    let event = RideEnded {
        ride_id: ride.id,
        customer_id: ride.customer_id,
        customer_number: customer.map(|c| c.customer_number),
        vehicle_id: ride.vehicle_id,
        vehicle_number,
        start_time: ride.start_time,
        end_time: now,
        duration_minutes: u32::try_from(usage.riding_minutes() + usage.paused_minutes()).unwrap_or(u32::MAX),
        distance_km: distance_m as f64 / 1_000.0,
        pricing: price,
        payment_status,
        subaccount_id: ride.subaccount_id,
    };
    let event = outbox::event(message, SOURCE, event);
    // The operator may have taken the vehicle out of service meanwhile: only a vehicle the
    // ride holds is given back.
    match vehicle.filter(|v| v.status == OperationStatus::InUse) {
        Some(vehicle) => set_vehicle_status(tx, message, vehicle, OperationStatus::Available, now, event).await,
        None => outbox::enqueue_encoded(tx, &[event]).await,
    }
}

/// Debits `ride`'s price from its customer's wallet, once (`ride:{id}`): paid, or failed when the
/// wallet cannot cover it, in which case the ride is owed and nothing is posted.
async fn charge(
    tx: &DatabaseTransaction,
    message: &Envelope<AnyMessage>,
    ride: &Ride,
) -> Result<(PaymentStatus, Option<Uuid>), DbErr> {
    let Some(price) = ride.pricing.filter(|p| p.total_cents > 0) else { return Ok((PaymentStatus::Paid, None)) };
    let posting = Posting {
        action: WalletAction::Debit,
        amount_cents: price.total_cents,
        currency: price.currency,
        description: format!("Ride {}", ride.id),
        source: EntrySource::Ride,
        idempotency_key: format!("ride:{}", ride.id),
        reverses: None,
    };
    Ok(match wallets::post(tx, message, ride.customer_id, &posting).await? {
        Outcome::Done(entry) => (PaymentStatus::Paid, Some(entry.id)),
        Outcome::Refused(refusal) => {
            tracing::warn!(ride = %ride.id, reason = %refusal.message, "ride charge failed; the ride is owed");
            (PaymentStatus::Failed, None)
        }
    })
}

/// Charges an ended ride that was not paid; whether it is paid now.
async fn collect(tx: &DatabaseTransaction, message: &Envelope<AnyMessage>, mut ride: Ride) -> Result<bool, DbErr> {
    let (payment_status, entry) = charge(tx, message, &ride).await?;
    if payment_status != PaymentStatus::Paid {
        return Ok(false);
    }
    ride.payment_status = Some(payment_status);
    ride.charge_entry_id = entry;
    store::update(tx, message.tenant.as_str(), &ride).await?;
    Ok(true)
}
