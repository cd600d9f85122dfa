//! RabbitMQ names: exchanges, routing keys and queues. Every name the bus declares or binds comes
//! from here, so a consumer and a publisher can never disagree on one.
//!
//! Routing keys:
//! - commands: `{domain}.{type}` on [`COMMANDS_EXCHANGE`]; a domain's work queue binds `{domain}.#`.
//!   Commands are not split by tenant on the way in: one work queue serves every tenant, and the
//!   tenant travels in the envelope.
//! - events: `{tenant}.{subaccount}.{domain}.{type}` on [`EVENTS_EXCHANGE`], tenant first, so a
//!   partner's subscriber queue is bound under its own tenant's prefix and can never match
//!   another's; then the subaccount the event is about ([`ORGANISATION_WORD`] for the
//!   organisation as a whole), so a queue of a key limited to subaccounts is bound to exactly
//!   those and the broker never puts another subaccount's event in it.

use uuid::Uuid;

use crate::{Descriptor, Kind, Message, Reach, TenantId};

/// Topic exchange every command is published to.
pub const COMMANDS_EXCHANGE: &str = "voltbus.commands";
/// Topic exchange every domain event is published to.
pub const EVENTS_EXCHANGE: &str = "voltbus.events";
/// Direct exchange that routes dead letters to their group's dead-letter queue.
pub const DEAD_LETTER_EXCHANGE: &str = "voltbus.dead-letter";
/// Direct exchange that routes retried messages into their delay queue.
pub const RETRY_EXCHANGE: &str = "voltbus.retry";
/// On the embedded transport, the devices' subjects (JetStream's role): routing key = the subject,
/// each stream group's queue bound with its filter subject.
pub const STREAMS_EXCHANGE: &str = "voltbus.streams";

/// Routing key of a command type.
pub fn command_key(descriptor: &Descriptor) -> String {
    debug_assert_eq!(descriptor.kind, Kind::Command, "{} is not a command", descriptor.type_name);
    format!("{}.{}", descriptor.domain, descriptor.type_name)
}

/// Routing key of command type `M`.
pub fn command_key_of<M: Message>() -> String {
    format!("{}.{}", M::DOMAIN, M::TYPE)
}

/// The subaccount word of an event about the organisation as a whole. (Events written before
/// events named their subaccount and still unsent then carry `unscoped`, given by the migration
/// that brought the word: no binding of a key limited to subaccounts names it, so only receivers
/// of the whole organisation and the platform's own groups take them.)
pub const ORGANISATION_WORD: &str = "org";

fn reach_word(reach: Reach) -> String {
    match reach {
        Reach::Organisation => ORGANISATION_WORD.to_owned(),
        Reach::Subaccount(id) => id.to_string(),
    }
}

/// Routing key of an event type for one tenant, about `reach`.
pub fn event_key(tenant: &TenantId, reach: Reach, descriptor: &Descriptor) -> String {
    debug_assert_eq!(descriptor.kind, Kind::Event, "{} is not an event", descriptor.type_name);
    format!("{tenant}.{}.{}.{}", reach_word(reach), descriptor.domain, descriptor.type_name)
}

/// Routing key of event `message` for one tenant.
pub fn event_key_of<M: Message>(tenant: &TenantId, message: &M) -> String {
    format!("{tenant}.{}.{}.{}", reach_word(message.reach()), M::DOMAIN, M::TYPE)
}

/// Binding that takes one tenant's events of one type, whatever they are about.
pub fn tenant_event_binding(tenant: &TenantId, descriptor: &Descriptor) -> String {
    debug_assert_eq!(descriptor.kind, Kind::Event, "{} is not an event", descriptor.type_name);
    format!("{tenant}.*.{}.{}", descriptor.domain, descriptor.type_name)
}

/// Bindings that take one tenant's events of one type that a receiver limited to `subaccounts`
/// may read (`None`: the whole organisation): the organisation's own and those of each of its
/// subaccounts, never another's.
pub fn audience_bindings(tenant: &TenantId, subaccounts: Option<&[Uuid]>, descriptor: &Descriptor) -> Vec<String> {
    let Some(subaccounts) = subaccounts else { return vec![tenant_event_binding(tenant, descriptor)] };
    std::iter::once(Reach::Organisation)
        .chain(subaccounts.iter().copied().map(Reach::Subaccount))
        .map(|reach| event_key(tenant, reach, descriptor))
        .collect()
}

/// Binding that takes one event type of every tenant (platform-wide groups, which read the
/// tenant from each message), whatever it is about.
pub fn every_tenant_event_binding(descriptor: &Descriptor) -> String {
    debug_assert_eq!(descriptor.kind, Kind::Event, "{} is not an event", descriptor.type_name);
    format!("*.*.{}.{}", descriptor.domain, descriptor.type_name)
}

/// [`every_tenant_event_binding`] of event type `M`.
pub fn every_tenant_event_binding_of<M: Message>() -> String {
    debug_assert_eq!(M::KIND, Kind::Event, "{} is not an event", M::TYPE);
    format!("*.*.{}.{}", M::DOMAIN, M::TYPE)
}

/// Binding that takes every event of one tenant.
pub fn tenant_events_binding(tenant: &TenantId) -> String {
    format!("{tenant}.#")
}

/// Durable work queue of a consumer group.
pub fn work_queue(group: &str) -> String {
    format!("voltbus.{group}")
}

/// Delay queue a consumer group's retries wait in before going back to its work queue.
pub fn retry_queue(group: &str, delay_ms: u64) -> String {
    format!("voltbus.{group}.retry.{delay_ms}ms")
}

/// Dead-letter queue of a consumer group.
pub fn dead_letter_queue(group: &str) -> String {
    format!("voltbus.{group}.dlq")
}

/// Queue of a partner's subscriber app (INVERS-style Messaging API), one per tenant and app.
pub fn subscriber_queue(tenant: &TenantId, app: &str) -> String {
    format!("voltbus.subscriber.{tenant}.{app}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor_of;

    #[test]
    fn keys_put_the_tenant_first_for_events_and_the_domain_first_for_commands() {
        let acme = TenantId::new("acme").unwrap();
        let fleet = Uuid::parse_str("0192b3c4-0000-7000-8000-000000000001").unwrap();
        let changed = descriptor_of("VehicleChanged").unwrap();
        assert_eq!(
            event_key(&acme, Reach::Subaccount(fleet), changed),
            "acme.0192b3c4-0000-7000-8000-000000000001.vehicles.VehicleChanged"
        );
        assert_eq!(event_key(&acme, Reach::Organisation, changed), "acme.org.vehicles.VehicleChanged");
        assert_eq!(tenant_event_binding(&acme, changed), "acme.*.vehicles.VehicleChanged");
        assert_eq!(every_tenant_event_binding(changed), "*.*.vehicles.VehicleChanged");
        assert_eq!(
            audience_bindings(&acme, Some(&[fleet]), changed),
            ["acme.org.vehicles.VehicleChanged", "acme.0192b3c4-0000-7000-8000-000000000001.vehicles.VehicleChanged"]
        );
        assert_eq!(audience_bindings(&acme, None, changed), ["acme.*.vehicles.VehicleChanged"]);
        assert_eq!(command_key_of::<crate::rides::StartRide>(), "rides.ride.start");
        assert_eq!(command_key(descriptor_of("ride.start").unwrap()), "rides.ride.start");
        assert_eq!(tenant_events_binding(&acme), "acme.#");
    }

    #[test]
    fn queue_names() {
        assert_eq!(work_queue("rides"), "voltbus.rides");
        assert_eq!(retry_queue("rides", 1000), "voltbus.rides.retry.1000ms");
        assert_eq!(dead_letter_queue("rides"), "voltbus.rides.dlq");
    }
}
