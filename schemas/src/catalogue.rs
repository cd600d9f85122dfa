//! The list of every message type, and decoding of a message whose type is known only at run time.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Serialize;

use crate::envelope::{body_error, check_version, invalid_data};
use crate::{DecodeError, Domain, Envelope, Kind, Message, Version};

/// What the catalogue knows about one message type.
#[derive(Clone, Copy, Debug)]
pub struct Descriptor {
    /// Public type name (`ride.started`).
    pub type_name: &'static str,
    /// Current version of its shape.
    pub version: Version,
    /// Command or event.
    pub kind: Kind,
    /// Owning domain.
    pub domain: Domain,
    /// The permission a partner needs to receive it; `None`: no partner does.
    pub read: Option<crate::integrations::Permission>,
    /// Who carries it out, for a command.
    pub recipient: Option<crate::Recipient>,
    /// Name of the Rust type, for the generated JSON Schema title.
    pub rust_name: &'static str,
    pub(crate) schema: fn() -> schemars::Schema,
    /// The schema of `data` alone, through a generator of the caller's (its definitions where the
    /// caller's document keeps them: the AsyncAPI document's components).
    pub data_schema: fn(&mut schemars::SchemaGenerator) -> schemars::Schema,
    /// Decodes `data` from its JSON text, with no tree in between.
    decode_slice: fn(&[u8]) -> Result<AnyMessage, serde_json::Error>,
}

impl Descriptor {
    /// The JSON Schema of the whole envelope carrying this type.
    pub fn json_schema(&self) -> schemars::Schema {
        (self.schema)()
    }
}

macro_rules! catalogue {
    ($($module:ident :: $ty:ident),* $(,)?) => {
        /// A message of any catalogue type, for code that routes or inspects without knowing it.
        #[derive(Clone, Debug, PartialEq)]
        pub enum AnyMessage {
            $(
                #[doc = concat!("`", stringify!($module), "::", stringify!($ty), "`")]
                $ty(crate::$module::$ty),
            )*
        }

        impl AnyMessage {
            /// The catalogue entry of this message's type.
            pub fn descriptor(&self) -> &'static Descriptor {
                let type_name = match self {
                    $( AnyMessage::$ty(_) => <crate::$module::$ty as Message>::TYPE, )*
                };
                descriptor_of(type_name).expect("every variant is in the catalogue")
            }

            /// The aggregate the message is about.
            pub fn aggregate(&self) -> Option<String> {
                match self {
                    $( AnyMessage::$ty(m) => m.aggregate(), )*
                }
            }

            /// What the message is about, for who may receive it.
            pub fn reach(&self) -> crate::Reach {
                match self {
                    $( AnyMessage::$ty(m) => m.reach(), )*
                }
            }
        }

        impl Serialize for AnyMessage {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                match self {
                    $( AnyMessage::$ty(m) => m.serialize(serializer), )*
                }
            }
        }

        fn all() -> Vec<Descriptor> {
            vec![$(
                Descriptor {
                    type_name: <crate::$module::$ty as Message>::TYPE,
                    version: <crate::$module::$ty as Message>::VERSION,
                    kind: <crate::$module::$ty as Message>::KIND,
                    domain: <crate::$module::$ty as Message>::DOMAIN,
                    read: <crate::$module::$ty as Message>::READ,
                    recipient: <crate::$module::$ty as Message>::RECIPIENT,
                    rust_name: stringify!($ty),
                    schema: crate::json_schema::envelope_schema::<crate::$module::$ty>,
                    data_schema: |generator| generator.subschema_for::<crate::$module::$ty>(),
                    decode_slice: |b| serde_json::from_slice(b).map(AnyMessage::$ty),
                },
            )*]
        }
    };
}

catalogue! {
    integrations::CreateIntegration,
    integrations::RotateIntegrationSecret,
    integrations::RevokeIntegration,
    integrations::SetIntegrationActive,
    integrations::ExchangeExternalIdentity,
    integrations::RedeemSessionCode,
    integrations::IntegrationCreated,
    integrations::IntegrationSecretRotated,
    integrations::IntegrationRevoked,
    integrations::IntegrationActiveChanged,
    integrations::ExternalIdentityLinked,
    integrations::SetCompatibilityProfile,
    integrations::CreateApiKey,
    integrations::RegenerateApiKey,
    integrations::UpdateApiKey,
    integrations::RecordApiRequests,
    integrations::SetApiKeyActive,
    integrations::DeleteApiKey,
    integrations::ApiKeyChanged,
    integrations::CreateSubscription,
    integrations::DeleteSubscription,
    operators::OpenOperatorSession,
    operators::RecordOperatorSignInFailure,
    operators::CloseOperatorSession,
    billing::RecordUsage,
    billing::InitializePayment,
    billing::IssueInvoice,
    billing::SettlePayment,
    billing::UsageRecorded,
    billing::InvoiceIssued,
    billing::PaymentVerified,
    maintenance::AddWorkshop,
    maintenance::SetMaintenanceSelection,
    maintenance::OpenTicket,
    maintenance::TicketOpened,
    vehicles::AddVehicle,
    vehicles::RemoveVehicle,
    vehicles::UpdateMasterData,
    vehicles::UpdateVehicle,
    vehicles::ChangeCustomFields,
    vehicles::BulkChangeCustomField,
    vehicles::BulkEditCustomFields,
    vehicles::SetOperationStatus,
    vehicles::SendVehicleCommand,
    vehicles::VehicleStateReported,
    vehicles::VehicleChanged,
    vehicles::VehicleStateReceived,
    vehicles::VehicleStatusChanged,
    vehicles::VehicleBatteryLow,
    vehicles::VehicleLocationUpdated,
    vehicles::VehicleCommandCompleted,
    vehicles::VehicleCommandStateChanged,
    vehicles::DeviceCommand,
    vehicles::DeviceCommandResult,
    rides::StartRide,
    rides::PauseRide,
    rides::ResumeRide,
    rides::EndRide,
    rides::RideStarted,
    rides::RidePaused,
    rides::RideResumed,
    rides::RideEnded,
    customers::CreateCustomer,
    customers::UpdateCustomer,
    customers::BlockCustomer,
    customers::UnblockCustomer,
    customers::RequestSignInCode,
    customers::SignIn,
    customers::SetNotificationToken,
    customers::CustomerCreated,
    customers::CustomerUpdated,
    customers::CustomerBlocked,
    customers::CustomerUnblocked,
    wallets::PostWalletEntry,
    wallets::RefundWalletEntry,
    wallets::SetWalletOverdraft,
    wallets::WalletEntryPosted,
    zones::UpsertZone,
    zones::DeleteZone,
    zones::ZoneChanged,
    pricing::SetPricing,
    pricing::PricingChanged,
    charging::RegisterCharger,
    charging::SetChargerPassword,
    charging::ResetCharger,
    charging::RecordChargerConnection,
    charging::ChargerResetRequested,
    charging::ChargerStatusNotification,
    charging::ChargerMeterValues,
    charging::ChargerStateChanged,
    charging::StartCharging,
    charging::FinishCharging,
    charging::ChargingStarted,
    charging::ChargingProgress,
    charging::ChargingFinished,
    charging::ChargerRemoteCommand,
    payments::PayPurchase,
    payments::InvoicePurchase,
    payments::LeaveFeedback,
    payments::ReplenishBalance,
    payments::SettleProviderPayment,
    payments::PurchaseCreated,
    payments::PaymentStatus,
    payments::ReplenishmentStatus,
    webhooks::CreateWebhookEndpoint,
    webhooks::UpdateWebhookEndpoint,
    webhooks::DeleteWebhookEndpoint,
    webhooks::RotateWebhookSecret,
    webhooks::DeliverWebhook,
    webhooks::ReplayWebhookDeliveries,
    webhooks::SendTestWebhook,
    webhooks::WebhookEndpointChanged,
    webhooks::WebhookDeliveryAttempted,
    marketplace::UserCreate,
    marketplace::UserUpdate,
    marketplace::UserDelete,
    marketplace::ProductPurchase,
    marketplace::ProductCancel,
    marketplace::ProductSuspend,
    marketplace::ProductResume,
    marketplace::MarketplaceUserChanged,
    marketplace::MarketplacePurchaseChanged,
}

fn index() -> &'static (Vec<Descriptor>, HashMap<&'static str, usize>) {
    static INDEX: OnceLock<(Vec<Descriptor>, HashMap<&'static str, usize>)> = OnceLock::new();
    INDEX.get_or_init(|| {
        let list = all();
        let by_name = list.iter().enumerate().map(|(i, d)| (d.type_name, i)).collect();
        (list, by_name)
    })
}

/// Every message type of the catalogue.
pub fn descriptors() -> &'static [Descriptor] {
    &index().0
}

/// The catalogue entry for a public type name.
pub fn descriptor_of(type_name: &str) -> Option<&'static Descriptor> {
    let (list, by_name) = index();
    by_name.get(type_name).map(|&i| &list[i])
}

/// Decodes a structured-mode message of any catalogue type.
pub fn decode_any(bytes: &[u8]) -> Result<Envelope<AnyMessage>, DecodeError> {
    let raw = Envelope::parse_raw(bytes)?;
    let descriptor = checked_descriptor(&raw.type_name, raw.dataversion)?;
    // `data` goes straight from its text into its type: a JSON tree first cost as much again.
    let message =
        (descriptor.decode_slice)(raw.data.get().as_bytes()).map_err(|e| invalid_data(descriptor.type_name, &e))?;
    Ok(raw.map(|_| message))
}

/// Decodes a binary-mode message of any catalogue type.
pub fn decode_any_binary(
    attribute: impl Fn(&str) -> Option<String>,
    body: &[u8],
) -> Result<Envelope<AnyMessage>, DecodeError> {
    let shell = Envelope::binary_attributes(attribute)?;
    let descriptor = checked_descriptor(&shell.type_name, shell.dataversion)?;
    // The headers name the type: the body goes straight into it, which on the telemetry ingest
    // costs half of parsing a JSON tree first.
    let message = (descriptor.decode_slice)(body).map_err(|e| body_error(descriptor.type_name, &e))?;
    Ok(shell.map(|()| message))
}

/// The descriptor of `type_name`, if it decodes `version`.
fn checked_descriptor(type_name: &str, version: Version) -> Result<&'static Descriptor, DecodeError> {
    let descriptor = descriptor_of(type_name).ok_or_else(|| DecodeError::UnknownType(type_name.to_owned()))?;
    check_version(descriptor.type_name, version, descriptor.version)?;
    Ok(descriptor)
}
