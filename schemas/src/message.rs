//! The contract every payload type meets: its public name, version, kind and domain.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A payload that travels on the bus inside an [`crate::Envelope`].
pub trait Message: Serialize + DeserializeOwned + JsonSchema + Send + Sync + 'static {
    /// The public type name, as partners see it (`ride.started`, `VehicleChanged`, `CHARGING`).
    const TYPE: &'static str;
    /// The version of this payload's shape; consumers refuse a major version they do not know.
    const VERSION: Version;
    /// Whether it asks for something to happen or says that something happened.
    const KIND: Kind;
    /// The domain that owns it; it names work queues, routing keys and subjects.
    const DOMAIN: Domain;

    /// The permission a partner needs to receive this event through a webhook or a subscriber
    /// queue; `None`: it is the platform's own and no partner receives it.
    const READ: Option<crate::integrations::Permission> = None;

    /// Who carries out a command: the consumer group whose work queue it is routed to, or the
    /// device it is sent to. `None` for events, which every subscriber may hear.
    const RECIPIENT: Option<Recipient> = None;

    /// The aggregate this message is about (a vehicle, a ride, a wallet): the CloudEvents `subject`
    /// and the key that keeps messages of one aggregate in order.
    fn aggregate(&self) -> Option<String>;

    /// The subaccount this message is about, which decides who among the organisation's partners
    /// may receive it. No default: every type says it (the `message!` macro makes a type that is
    /// no partner's say `Organisation`, the word its routing key carries).
    fn reach(&self) -> Reach;
}

/// What a message is about, as far as who may receive it goes: partners receive what they may read
/// through the API, and a key limited to subaccounts reads only theirs (Levy Fleets key scopes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reach {
    /// The organisation as a whole (a marketplace's customer, who belongs to no subaccount), which
    /// every key of the organisation reads.
    Organisation,
    /// One subaccount's vehicle, ride, customer, zone or plan.
    Subaccount(uuid::Uuid),
}

impl Reach {
    /// The reach of something that may belong to a subaccount.
    pub fn of(subaccount: Option<uuid::Uuid>) -> Self {
        subaccount.map_or(Reach::Organisation, Reach::Subaccount)
    }

    /// The subaccount, if it is about one.
    pub fn subaccount(self) -> Option<uuid::Uuid> {
        match self {
            Reach::Organisation => None,
            Reach::Subaccount(id) => Some(id),
        }
    }
}

/// Command or event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Asks one consumer group to do something; goes to a work queue and may get a reply.
    Command,
    /// Says that something happened; fans out to every subscriber allowed to see it.
    Event,
}

impl Kind {
    /// Lower-case name used in routing keys and file names.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Command => "command",
            Kind::Event => "event",
        }
    }
}

/// Who carries out a command: a consumer group (its queues are `voltbus.{name}…`), or a device
/// the platform sends it to. The catalogue names one for every command, so the groups' queue
/// bindings are derived from it (`bus::amqp::GroupTopology::handling`) and never listed twice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Recipient {
    /// API keys, EVCare integrations, federated sign-in, operator sessions.
    Integrations,
    /// The partner request log, apart so a burst of it never delays a key command.
    RequestLog,
    /// Subscriber queues (INVERS Messaging API).
    Subscriptions,
    /// Workshops, integrations' maintenance choices, tickets.
    Maintenance,
    /// Vehicles and commands to them.
    Fleet,
    /// Customers and their sign-in.
    Customers,
    /// Rides.
    Rides,
    /// Wallet ledgers.
    Wallets,
    /// Zones.
    Zones,
    /// Pricing plans.
    Pricing,
    /// Chargers registered by admins.
    Chargers,
    /// Charging sessions.
    Charging,
    /// Purchases, their payments and replenishment.
    Payments,
    /// Integrations' usage, invoices and payments.
    Billing,
    /// Webhook endpoints, replays and tests.
    Webhooks,
    /// Each attempt of a webhook delivery.
    WebhookDeliveries,
    /// Marketplace partner events (Etvas).
    Marketplace,
    /// The device itself (a vehicle's telematics unit, a charger), over NATS: no group here.
    Device,
}

impl Recipient {
    /// The consumer group's name, which names its queues (`device` for a device, which has none).
    pub const fn name(self) -> &'static str {
        match self {
            Recipient::Integrations => "integrations",
            Recipient::RequestLog => "integrations-request-log",
            Recipient::Subscriptions => "subscriptions",
            Recipient::Maintenance => "maintenance",
            Recipient::Fleet => "fleet",
            Recipient::Customers => "customers",
            Recipient::Rides => "rides",
            Recipient::Wallets => "wallets",
            Recipient::Zones => "zones",
            Recipient::Pricing => "pricing",
            Recipient::Chargers => "chargers",
            Recipient::Charging => "charging",
            Recipient::Payments => "payments",
            Recipient::Billing => "billing",
            Recipient::Webhooks => "webhooks",
            Recipient::WebhookDeliveries => "webhook-deliveries",
            Recipient::Marketplace => "marketplace",
            Recipient::Device => "device",
        }
    }
}

/// The domains of the platform, one per seed area.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// Integrations, API keys, machine tokens, federated sign-in (EVCare, Levy Fleets keys).
    Integrations,
    /// Usage metering, invoices and Paystack payments of integrations (EVCare).
    Billing,
    /// Vehicle lifecycle, master data, state and commands (INVERS OneAPI).
    Vehicles,
    /// Rides (Levy Fleets).
    Rides,
    /// Customers (Levy Fleets).
    Customers,
    /// Wallet ledgers (Levy Fleets, EVM balance).
    Wallets,
    /// Zones (Levy Fleets).
    Zones,
    /// Pricing plans (Levy Fleets).
    Pricing,
    /// Chargers and charging sessions (EVM, OCPP vocabulary).
    Charging,
    /// Purchases, payments and replenishment (EVM, QPay).
    Payments,
    /// Outbound webhook endpoints and deliveries (Levy Fleets, EVCare).
    Webhooks,
    /// Inbound marketplace partner events (Etvas).
    Marketplace,
}

impl Domain {
    /// Every domain, in declaration order.
    pub const ALL: [Domain; 12] = [
        Domain::Integrations,
        Domain::Billing,
        Domain::Vehicles,
        Domain::Rides,
        Domain::Customers,
        Domain::Wallets,
        Domain::Zones,
        Domain::Pricing,
        Domain::Charging,
        Domain::Payments,
        Domain::Webhooks,
        Domain::Marketplace,
    ];

    /// Lower-case name used in routing keys, subjects and queue names.
    pub const fn as_str(self) -> &'static str {
        match self {
            Domain::Integrations => "integrations",
            Domain::Billing => "billing",
            Domain::Vehicles => "vehicles",
            Domain::Rides => "rides",
            Domain::Customers => "customers",
            Domain::Wallets => "wallets",
            Domain::Zones => "zones",
            Domain::Pricing => "pricing",
            Domain::Charging => "charging",
            Domain::Payments => "payments",
            Domain::Webhooks => "webhooks",
            Domain::Marketplace => "marketplace",
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `major.minor` version of a payload shape. A minor bump only adds optional fields, so any
/// consumer that knows the major version can read it; a major bump is a different contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version {
    /// Incompatible changes.
    pub major: u16,
    /// Compatible additions.
    pub minor: u16,
}

impl Version {
    /// A version from its two parts.
    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s.split_once('.').ok_or_else(|| format!("version `{s}` is not major.minor"))?;
        let part = |p: &str| p.parse::<u16>().map_err(|_| format!("version `{s}` is not major.minor"));
        Ok(Self::new(part(major)?, part(minor)?))
    }
}

impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Version {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Version".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[0-9]+\\.[0-9]+$" })
    }
}

/// Implements [`Message`] for a payload type in one line per type. An event offered to partners
/// ends with `offered(Permission, |m| reach)`: the permission that reads it, and what it is about.
macro_rules! message {
    ($ty:ty, $name:literal, ($major:literal, $minor:literal), $kind:ident, $domain:ident, |$m:ident| $aggregate:expr,
        offered($read:ident, |$r:ident| $reach:expr)) => {
        impl $crate::Message for $ty {
            const TYPE: &'static str = $name;
            const VERSION: $crate::Version = $crate::Version::new($major, $minor);
            const KIND: $crate::Kind = $crate::Kind::$kind;
            const DOMAIN: $crate::Domain = $crate::Domain::$domain;
            const READ: Option<$crate::integrations::Permission> = Some($crate::integrations::Permission::$read);

            #[allow(unused_braces)]
            fn aggregate(&self) -> Option<String> {
                let $m = self;
                $aggregate
            }

            #[allow(unused_braces)]
            fn reach(&self) -> $crate::Reach {
                let $r = self;
                $reach
            }
        }
    };
    ($ty:ty, $name:literal, ($major:literal, $minor:literal), $kind:ident $(($handler:ident))?, $domain:ident, |$m:ident| $aggregate:expr) => {
        impl $crate::Message for $ty {
            const TYPE: &'static str = $name;
            const VERSION: $crate::Version = $crate::Version::new($major, $minor);
            const KIND: $crate::Kind = $crate::Kind::$kind;
            const DOMAIN: $crate::Domain = $crate::Domain::$domain;
            $(const RECIPIENT: Option<$crate::Recipient> = Some($crate::Recipient::$handler);)?

            // rustfmt wraps long one-line closures in braces.
            #[allow(unused_braces)]
            fn aggregate(&self) -> Option<String> {
                let $m = self;
                $aggregate
            }

            fn reach(&self) -> $crate::Reach {
                $crate::Reach::Organisation
            }
        }
    };
}
pub(crate) use message;
