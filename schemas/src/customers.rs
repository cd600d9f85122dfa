//! Customers (Levy Fleets): created, updated, blocked and unblocked.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Reach;
use crate::message::message;

/// Profile fields of a customer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerProfile {
    /// E-mail, searchable.
    pub email: Option<String>,
    /// Full name.
    pub name: Option<String>,
    /// Phone in international format.
    pub phone: Option<String>,
}

/// Create a customer (from the partner API or a marketplace `user.create`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CreateCustomer {
    /// New customer's id.
    pub customer_id: Uuid,
    /// The subaccount the customer signed up in; none: the whole organisation's (a marketplace's users).
    pub subaccount_id: Option<Uuid>,
    /// Profile.
    pub profile: CustomerProfile,
    /// The id a partner knows the customer by (marketplace user id).
    pub external_ref: Option<String>,
    /// Who collects the customer's payments: none, this platform (the wallet); a marketplace's
    /// name (`etvas`) for the users it brought and bills itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payments_collected_by: Option<String>,
}
message!(CreateCustomer, "customer.create", (1, 1), Command(Customers), Customers, |m| Some(m.customer_id.to_string()));

/// Update a customer's profile; `null` fields are left as they are.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UpdateCustomer {
    /// Customer.
    pub customer_id: Uuid,
    /// Fields to change.
    pub changes: CustomerProfile,
}
message!(UpdateCustomer, "customer.update", (1, 0), Command(Customers), Customers, |m| Some(m.customer_id.to_string()));

/// Block a customer from riding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BlockCustomer {
    /// Customer.
    pub customer_id: Uuid,
    /// Why.
    pub reason: String,
}
message!(BlockCustomer, "customer.block", (1, 0), Command(Customers), Customers, |m| Some(m.customer_id.to_string()));

/// Lift a block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UnblockCustomer {
    /// Customer.
    pub customer_id: Uuid,
    /// Why.
    pub reason: String,
}
message!(UnblockCustomer, "customer.unblock", (1, 0), Command(Customers), Customers, |m| Some(
    m.customer_id.to_string()
));

/// Levy Fleets `customer.created`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerCreated {
    /// Customer.
    pub customer_id: Uuid,
    /// Sequential customer number.
    pub customer_number: u64,
    /// Profile.
    pub profile: CustomerProfile,
    /// Subaccount; none for a customer of the whole organisation.
    pub subaccount_id: Option<Uuid>,
}
message!(
    CustomerCreated,
    "customer.created",
    (1, 0),
    Event,
    Customers,
    |m| Some(m.customer_id.to_string()),
    offered(CustomersRead, |m| Reach::of(m.subaccount_id))
);

/// Levy Fleets `customer.updated`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerUpdated {
    /// Customer.
    pub customer_id: Uuid,
    /// Profile after the change.
    pub profile: CustomerProfile,
    /// Names of the changed fields.
    pub changed_fields: Vec<String>,
    /// Subaccount; none for a customer of the whole organisation.
    pub subaccount_id: Option<Uuid>,
}
message!(
    CustomerUpdated,
    "customer.updated",
    (1, 0),
    Event,
    Customers,
    |m| Some(m.customer_id.to_string()),
    offered(CustomersRead, |m| Reach::of(m.subaccount_id))
);

/// Levy Fleets `customer.blocked`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerBlocked {
    /// Customer.
    pub customer_id: Uuid,
    /// Why.
    pub reason: String,
    /// Subaccount; none for a customer of the whole organisation.
    pub subaccount_id: Option<Uuid>,
}
message!(
    CustomerBlocked,
    "customer.blocked",
    (1, 0),
    Event,
    Customers,
    |m| Some(m.customer_id.to_string()),
    offered(CustomersRead, |m| Reach::of(m.subaccount_id))
);

/// Levy Fleets `customer.unblocked`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CustomerUnblocked {
    /// Customer.
    pub customer_id: Uuid,
    /// Why.
    pub reason: String,
    /// Subaccount; none for a customer of the whole organisation.
    pub subaccount_id: Option<Uuid>,
}
message!(
    CustomerUnblocked,
    "customer.unblocked",
    (1, 0),
    Event,
    Customers,
    |m| Some(m.customer_id.to_string()),
    offered(CustomersRead, |m| Reach::of(m.subaccount_id))
);

/// A mobile app's sign-in code (EVM `otp-request`): the edge made the code and sends it by
/// SMS; only its keyed hash travels and rests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RequestSignInCode {
    /// Phone in international format, digits only after the `+`.
    pub phone: String,
    /// HMAC-SHA256 of the phone and the code under the edge's key, hex.
    pub code_hash: String,
    /// When the code stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}
message!(RequestSignInCode, "customer.request_sign_in_code", (1, 0), Command(Customers), Customers, |m| Some(
    m.phone.clone()
));

/// A mobile app's sign-in (EVM `otp-check`): the code's hash is checked against the latest
/// one requested; on success the phone's customer (made on first sight) gets a session whose
/// token the edge made (only its hash travels and rests).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SignIn {
    /// Phone in international format.
    pub phone: String,
    /// HMAC-SHA256 of the phone and the code given, hex.
    pub code_hash: String,
    /// The customer to create when the phone is new.
    pub new_customer_id: Uuid,
    /// SHA-256 of the session token, hex.
    pub session_hash: String,
    /// When the session ends.
    pub session_expires_at: chrono::DateTime<chrono::Utc>,
}
message!(SignIn, "customer.sign_in", (1, 0), Command(Customers), Customers, |m| Some(m.phone.clone()));

/// A mobile customer's push notification token (EVM `update-notification-token`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SetNotificationToken {
    /// Customer.
    pub customer_id: Uuid,
    /// The app's Firebase Cloud Messaging token.
    pub token: String,
}
message!(SetNotificationToken, "customer.set_notification_token", (1, 0), Command(Customers), Customers, |m| Some(
    m.customer_id.to_string()
));
