//! NATS subjects and JetStream stream names.
//!
//! Everything lives under `voltbus.{tenant}.…`, so one tenant's credentials are one subject
//! prefix, and a user's realtime channels sit under that user's own topic
//! (`voltbus.{tenant}.users.{user}`), which is what a mobile credential may subscribe to.

use uuid::Uuid;

use crate::charging::ChargingProgress;
use crate::payments::{PaymentStatus, ReplenishmentStatus};
use crate::{Descriptor, Message, TenantId};

/// First token of every voltbus subject.
pub const ROOT: &str = "voltbus";
/// JetStream stream of vehicle and charger telemetry.
pub const TELEMETRY_STREAM: &str = "VOLTBUS_TELEMETRY";
/// JetStream stream of commands to vehicles and their devices' answers: kept apart from
/// telemetry so that a device consumes only what is meant for it.
pub const VEHICLE_COMMANDS_STREAM: &str = "VOLTBUS_VEHICLE_COMMANDS";
/// JetStream stream of domain events.
pub const EVENTS_STREAM: &str = "VOLTBUS_EVENTS";
/// JetStream stream of dead letters from JetStream consumer groups.
pub const DEAD_LETTER_STREAM: &str = "VOLTBUS_DLQ";
/// JetStream stream that keeps the server's max-deliveries advisories, so a message that exhausted
/// its deliveries while no watcher ran is still moved to the dead letters later.
pub const ADVISORY_STREAM: &str = "VOLTBUS_ADVISORIES";

/// A user's realtime channel (EVM seed: `{subject}.CHARGING` and friends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    /// Charging progress every 2–5 s.
    Charging,
    /// Outcome of a purchase's payment.
    Payment,
    /// Outcome of a balance top-up.
    Replenishment,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 3] = [Channel::Charging, Channel::Payment, Channel::Replenishment];

    /// The last subject token, which is also the message type sent on it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Charging => ChargingProgress::TYPE,
            Channel::Payment => PaymentStatus::TYPE,
            Channel::Replenishment => ReplenishmentStatus::TYPE,
        }
    }
}

/// The topic a mobile user is given at sign-in (`nats.topic`); channels are its children.
pub fn user_topic(tenant: &TenantId, user: Uuid) -> String {
    format!("{ROOT}.{tenant}.users.{user}")
}

/// One realtime channel of a user.
pub fn user_channel(tenant: &TenantId, user: Uuid, channel: Channel) -> String {
    format!("{}.{}", user_topic(tenant, user), channel.as_str())
}

/// Where a vehicle (its telematics unit) publishes its state.
pub fn vehicle_state(tenant: &TenantId, vehicle: Uuid) -> String {
    format!("{ROOT}.{tenant}.vehicles.{vehicle}.state")
}

/// The tenant and vehicle a vehicle's subject ending in `leaf` (`state`, `command-results`) names.
pub fn vehicle_of(subject: &str, leaf: &str) -> Option<(TenantId, Uuid)> {
    let tokens: Vec<&str> = subject.split('.').collect();
    let [ROOT, tenant, "vehicles", vehicle, last] = tokens.as_slice() else { return None };
    if *last != leaf {
        return None;
    }
    Some((TenantId::new(*tenant).ok()?, vehicle.parse().ok()?))
}

/// Every vehicle's state subject, of every tenant.
pub fn every_vehicle_state() -> String {
    format!("{ROOT}.*.vehicles.*.state")
}

/// Where a vehicle's device takes the commands sent to it.
pub fn vehicle_commands(tenant: &TenantId, vehicle: Uuid) -> String {
    format!("{ROOT}.{tenant}.vehicles.{vehicle}.commands")
}

/// Where a vehicle's device answers a command.
pub fn vehicle_command_results(tenant: &TenantId, vehicle: Uuid) -> String {
    format!("{ROOT}.{tenant}.vehicles.{vehicle}.command-results")
}

/// Every vehicle's commands, of every tenant.
pub fn every_vehicle_commands() -> String {
    format!("{ROOT}.*.vehicles.*.commands")
}

/// Every device's command answers, of every tenant.
pub fn every_vehicle_command_result() -> String {
    format!("{ROOT}.*.vehicles.*.command-results")
}

/// Subjects the vehicle commands stream stores.
pub fn vehicle_commands_stream_subjects() -> Vec<String> {
    vec![every_vehicle_commands(), every_vehicle_command_result()]
}

/// Where a charger publishes OCPP status notifications.
pub fn charger_status(tenant: &TenantId, charger: Uuid) -> String {
    format!("{ROOT}.{tenant}.chargers.{charger}.status")
}

/// Where a charger publishes OCPP meter values.
pub fn charger_meter(tenant: &TenantId, charger: Uuid) -> String {
    format!("{ROOT}.{tenant}.chargers.{charger}.meter")
}

/// Where a charger takes voltbus's remote commands.
pub fn charger_commands(tenant: &TenantId, charger: Uuid) -> String {
    format!("{ROOT}.{tenant}.chargers.{charger}.commands")
}

/// Every charger's meter values, of every tenant.
pub fn every_charger_meter() -> String {
    format!("{ROOT}.*.chargers.*.meter")
}

/// Every charger's status notifications, of every tenant.
pub fn every_charger_status() -> String {
    format!("{ROOT}.*.chargers.*.status")
}

/// Where a domain event is published on NATS.
pub fn event(tenant: &TenantId, descriptor: &Descriptor) -> String {
    format!("{ROOT}.{tenant}.events.{}.{}", descriptor.domain, descriptor.type_name)
}

/// Where a JetStream consumer group's dead letters are kept. Outside `voltbus.…`: a stream's
/// subjects may not overlap another's, and `voltbus.*.events.>` would cover `voltbus.dlq.events…`.
pub fn dead_letter_subject(group: &str) -> String {
    format!("{ROOT}-dlq.{group}")
}

/// Subjects the dead-letter stream stores.
pub fn dead_letter_stream_subjects() -> Vec<String> {
    vec![format!("{ROOT}-dlq.>")]
}

/// The server's advisory when a message of `stream` reached `consumer`'s max deliveries.
pub fn max_deliveries_advisory(stream: &str, consumer: &str) -> String {
    format!("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}")
}

/// Subjects the advisory stream stores.
pub fn advisory_stream_subjects() -> Vec<String> {
    vec!["$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>".to_owned()]
}

/// Every subject of one tenant.
pub fn tenant_wildcard(tenant: &TenantId) -> String {
    format!("{ROOT}.{tenant}.>")
}

/// Subjects the telemetry stream stores.
pub fn telemetry_stream_subjects() -> Vec<String> {
    vec![every_vehicle_state(), format!("{ROOT}.*.chargers.*.*")]
}

/// Subjects the events stream stores.
pub fn events_stream_subjects() -> Vec<String> {
    vec![format!("{ROOT}.*.events.>")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realtime_channels_use_the_seed_names_under_the_user_topic() {
        let t = TenantId::new("acme").unwrap();
        let u = Uuid::nil();
        let topic = user_topic(&t, u);
        assert_eq!(topic, "voltbus.acme.users.00000000-0000-0000-0000-000000000000");
        assert_eq!(user_channel(&t, u, Channel::Charging), format!("{topic}.CHARGING"));
        assert_eq!(user_channel(&t, u, Channel::Payment), format!("{topic}.PAYMENT"));
        assert_eq!(user_channel(&t, u, Channel::Replenishment), format!("{topic}.REPLENISHMENT"));
    }

    #[test]
    fn every_subject_is_under_its_tenant() {
        let t = TenantId::new("acme").unwrap();
        let prefix = "voltbus.acme.";
        let d = crate::descriptor_of("ride.started").unwrap();
        for s in [
            vehicle_state(&t, Uuid::nil()),
            vehicle_commands(&t, Uuid::nil()),
            vehicle_command_results(&t, Uuid::nil()),
            charger_status(&t, Uuid::nil()),
            charger_meter(&t, Uuid::nil()),
            event(&t, d),
        ] {
            assert!(s.starts_with(prefix), "{s}");
        }
    }
}
