//! Inbound marketplace partner events (Etvas seed): `user.create`, `user.update`,
//! `product.purchase`, `product.cancel`, `product.suspend`, `product.resume`, with the seed's bodies.
//! On the bus they are commands to the `marketplace` group: the partner expects an answer that
//! maps its ids to ours, so each is request/reply. What they change is announced by
//! `marketplace_user.changed` and `marketplace_purchase.changed`.
//!
//! One deviation: the seed sends `price` as a decimal number; here it is minor units plus
//! `currency`, converted once where the partner's request enters voltbus.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::message::message;
use crate::{Currency, Sensitive};

/// The seed's `event` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PartnerEventRef {
    /// The partner's event id; the reply echoes it.
    pub id: Uuid,
    /// The partner's event type (`user.create`, …).
    #[serde(rename = "type")]
    pub event_type: String,
    /// The partner's timestamp, as it sends it.
    pub timestamp: i64,
}

/// The seed's `user.auth` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PartnerAuth {
    /// The partner's token for this user.
    pub token: Sensitive,
    /// Unix time it expires.
    pub expires: i64,
}

/// The seed's `user` object: the partner's user id and ours (`partnerId`, null until mapped).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerUser {
    /// The partner's user id.
    pub id: Uuid,
    /// Our id for the user, once mapped.
    pub partner_id: Option<String>,
    /// The partner's auth for the user.
    pub auth: Option<PartnerAuth>,
}

/// The seed's `data.user` profile.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PartnerProfile {
    /// Mr., Ms., …
    pub salutation: Option<String>,
    /// First name.
    pub first_name: Option<String>,
    /// Last name.
    pub last_name: Option<String>,
    /// E-mail.
    pub email: Option<String>,
    /// Phone.
    pub phone: Option<String>,
    /// `YYYY-MM-DD`.
    pub date_of_birth: Option<String>,
    /// Address line 1.
    pub address1: Option<String>,
    /// Address line 2.
    pub address2: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Region or state.
    #[serde(rename = "region/state")]
    pub region_state: Option<String>,
    /// Country.
    pub country: Option<String>,
    /// Postal code.
    pub postal_code: Option<String>,
}

/// The seed's `webIdentity` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebIdentity {
    /// `verified`, …
    pub status: String,
    /// The partner's verification id.
    pub verification_id: String,
}

/// `data` of user events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserData {
    /// Profile.
    pub user: PartnerProfile,
    /// Identity verification.
    pub web_identity: Option<WebIdentity>,
}

/// The seed's `data.product` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    /// The partner's product id.
    pub id: Uuid,
    /// Our id for the product, once mapped.
    pub partner_id: Option<String>,
    /// Product name.
    pub name: Option<String>,
    /// Price in minor units.
    pub price: Option<i64>,
    /// ISO-4217 currency of `price`.
    pub currency: Option<Currency>,
    /// `SUBSCRIPTION`, `ONE_TIME`, …
    pub price_type: Option<String>,
    /// `MONTHLY`, …
    pub price_interval: Option<String>,
}

/// `data` of product events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProductData {
    /// The product.
    pub product: Product,
}

/// A partner event: the seed's request body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PartnerEvent<D> {
    /// Event reference.
    pub event: PartnerEventRef,
    /// The user it concerns.
    pub user: PartnerUser,
    /// Event data.
    pub data: D,
}

/// Etvas "User Created".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct UserCreate(pub PartnerEvent<UserData>);
message!(UserCreate, "user.create", (1, 0), Command(Marketplace), Marketplace, |m| { Some(m.0.user.id.to_string()) });

/// Etvas "User Profile Updated".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct UserUpdate(pub PartnerEvent<UserData>);
message!(UserUpdate, "user.update", (1, 0), Command(Marketplace), Marketplace, |m| { Some(m.0.user.id.to_string()) });

/// Etvas "User Deleted": the person's data is erased here; the money history stays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct UserDelete {
    /// Event reference.
    pub event: PartnerEventRef,
    /// The user it concerns.
    pub user: PartnerUser,
}
message!(UserDelete, "user.delete", (1, 0), Command(Marketplace), Marketplace, |m| Some(m.user.id.to_string()));

/// Etvas "Product Purchased".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ProductPurchase(pub PartnerEvent<ProductData>);
message!(ProductPurchase, "product.purchase", (1, 0), Command(Marketplace), Marketplace, |m| Some(
    m.0.user.id.to_string()
));

/// Etvas "Product Canceled".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ProductCancel(pub PartnerEvent<ProductData>);
message!(ProductCancel, "product.cancel", (1, 0), Command(Marketplace), Marketplace, |m| Some(m.0.user.id.to_string()));

/// Etvas "Payment Failed".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ProductSuspend(pub PartnerEvent<ProductData>);
message!(ProductSuspend, "product.suspend", (1, 0), Command(Marketplace), Marketplace, |m| Some(
    m.0.user.id.to_string()
));

/// Etvas "Payment Resumed".
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct ProductResume(pub PartnerEvent<ProductData>);
message!(ProductResume, "product.resume", (1, 0), Command(Marketplace), Marketplace, |m| Some(m.0.user.id.to_string()));

/// Which marketplace a mapping belongs to; only Etvas today.
pub const ETVAS: &str = "etvas";

/// A partner's id and ours for the same thing (the seed's `{id, partnerId}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdPair {
    /// The marketplace's id.
    pub id: Uuid,
    /// Ours (`u-000001`, `p-000001`).
    pub partner_id: String,
}

/// What happened to a marketplace user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserChange {
    /// First seen (`user.create`).
    Created,
    /// Profile changed (`user.update`).
    Updated,
    /// Erased at the marketplace's request (`user.delete`; new in 1.1).
    Deleted,
}

/// A marketplace user was mapped to one of ours, or changed their profile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarketplaceUserChanged {
    /// `etvas`.
    pub marketplace: String,
    /// The marketplace's user id and ours.
    pub user: IdPair,
    /// The customer this user is (reserved for the customers domain).
    pub customer_id: Uuid,
    /// The profile as the marketplace last sent it.
    pub profile: PartnerProfile,
    /// What happened.
    pub change: UserChange,
}
message!(MarketplaceUserChanged, "marketplace_user.changed", (1, 1), Event, Marketplace, |m| Some(
    m.user.id.to_string()
));

/// What happened to a purchase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseChange {
    /// Bought (again); active.
    Purchased,
    /// Canceled by the user.
    Canceled,
    /// The marketplace could not collect payment; access may be suspended.
    Suspended,
    /// Payment collected again; active.
    Resumed,
}

/// A marketplace user's purchase of a product started, stopped or changed standing.
/// Payment for it is collected by the marketplace, so voltbus must not charge the user for it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MarketplacePurchaseChanged {
    /// `etvas`.
    pub marketplace: String,
    /// The user who bought, both ids.
    pub user: IdPair,
    /// The product, both ids (ours numbers the purchase).
    pub product: IdPair,
    /// The product as last described.
    pub name: Option<String>,
    /// Price in minor units.
    pub price: Option<i64>,
    /// ISO-4217 currency of `price`.
    pub currency: Option<Currency>,
    /// `SUBSCRIPTION`, `ONE_TIME`, …
    pub price_type: Option<String>,
    /// `MONTHLY`, …
    pub price_interval: Option<String>,
    /// What happened.
    pub change: PurchaseChange,
}
message!(MarketplacePurchaseChanged, "marketplace_purchase.changed", (1, 0), Event, Marketplace, |m| Some(
    m.user.id.to_string()
));
