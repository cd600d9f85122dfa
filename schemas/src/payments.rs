//! Purchases, payments and balance replenishment (EVM seed), by wallet balance or through an
//! external provider (QPay), and the app's `{subject}.PAYMENT` and `{subject}.REPLENISHMENT`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Currency;
use crate::message::message;

/// How a purchase or replenishment is paid (the seed's `option`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum PaymentOption {
    /// From the wallet balance.
    Evm,
    /// Through QPay's hosted page.
    Qpay,
    /// Through Paystack's hosted page.
    Paystack,
}

impl PaymentOption {
    /// The app's name of it (`EVM`, `QPAY`, `PAYSTACK`).
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentOption::Evm => "EVM",
            PaymentOption::Qpay => "QPAY",
            PaymentOption::Paystack => "PAYSTACK",
        }
    }
}

/// Pay a purchase (`POST /purchases/:id/pay {option}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PayPurchase {
    /// Purchase.
    pub purchase_id: Uuid,
    /// App user.
    pub user_id: Uuid,
    /// How.
    pub option: PaymentOption,
}
message!(PayPurchase, "purchase.pay", (1, 0), Command(Payments), Payments, |m| Some(m.purchase_id.to_string()));

/// The seed's `feedback` object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Feedback {
    /// 1–5.
    pub score: u8,
    /// Free text.
    pub description: String,
}

/// Leave feedback on a purchase (`POST /purchases/:id/feedback`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaveFeedback {
    /// Purchase.
    pub purchase_id: Uuid,
    /// App user.
    pub user_id: Uuid,
    /// Feedback.
    pub feedback: Feedback,
}
message!(LeaveFeedback, "purchase.feedback", (1, 0), Command(Payments), Payments, |m| Some(m.purchase_id.to_string()));

/// Top up the balance (`POST /customer/replenish {amount, option}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplenishBalance {
    /// Invoice the provider will settle.
    pub invoice_id: Uuid,
    /// App user.
    pub user_id: Uuid,
    /// Minor units.
    pub amount: i64,
    /// ISO-4217 currency.
    pub currency: Currency,
    /// Provider.
    pub option: PaymentOption,
    /// The provider's own id of the invoice (QPay's `invoice_id`).
    pub provider_reference: String,
    /// Where the app pays it.
    pub url: String,
}
message!(ReplenishBalance, "balance.replenish", (1, 0), Command(Payments), Payments, |m| Some(
    m.invoice_id.to_string()
));

/// Record a provider's invoice for a purchase (`pay` with `QPAY`): the edge made it at the
/// provider, the app pays it there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoicePurchase {
    /// Our invoice id.
    pub invoice_id: Uuid,
    /// The purchase it pays.
    pub purchase_id: Uuid,
    /// App user.
    pub user_id: Uuid,
    /// Minor units (the purchase's amount).
    pub amount: i64,
    /// ISO-4217 currency.
    pub currency: Currency,
    /// Provider.
    pub option: PaymentOption,
    /// The provider's own id of the invoice.
    pub provider_reference: String,
    /// Where the app pays it.
    pub url: String,
}
message!(InvoicePurchase, "purchase.invoice", (1, 0), Command(Payments), Payments, |m| Some(m.purchase_id.to_string()));

/// Provider-side outcome of an invoice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum InvoiceStatus {
    /// Not paid yet.
    Pending,
    /// Paid.
    Success,
    /// Failed.
    Error,
    /// Abandoned or cancelled.
    Canceled,
}

/// A provider reports an invoice's outcome (QPay callback, or the status poll).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettleProviderPayment {
    /// Our invoice id (purchase or replenishment).
    pub invoice_id: Uuid,
    /// Provider.
    pub option: PaymentOption,
    /// The provider's own reference.
    pub provider_reference: String,
    /// Outcome.
    pub status: InvoiceStatus,
    /// Amount the provider collected, minor units.
    pub amount: i64,
    /// ISO-4217 currency.
    pub currency: Currency,
}
message!(SettleProviderPayment, "payment.settle", (1, 0), Command(Payments), Payments, |m| Some(
    m.invoice_id.to_string()
));

/// A purchase exists for a finished charging session.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PurchaseCreated {
    /// Purchase.
    pub purchase_id: Uuid,
    /// App user.
    pub user_id: Uuid,
    /// Charging session.
    pub session_id: Uuid,
    /// Minor units.
    pub amount: i64,
    /// ISO-4217 currency.
    pub currency: Currency,
}
message!(PurchaseCreated, "purchase.created", (1, 0), Event, Payments, |m| Some(m.purchase_id.to_string()));

/// Outcome as the app sees it on `{subject}.PAYMENT` and `{subject}.REPLENISHMENT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done.
    Success,
    /// Not done.
    Fail,
}

/// The EVM seed's `{subject}.PAYMENT`: a purchase's payment finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentStatus {
    /// Outcome.
    pub status: Outcome,
    /// Minor units.
    pub amount: i64,
    /// ISO-4217 currency.
    pub currency: Currency,
}
message!(PaymentStatus, "PAYMENT", (1, 0), Event, Payments, |_m| None);

/// The EVM seed's `{subject}.REPLENISHMENT`: a top-up finished.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplenishmentStatus {
    /// Outcome.
    pub status: Outcome,
    /// Minor units.
    pub amount: i64,
    /// ISO-4217 currency.
    pub currency: Currency,
}
message!(ReplenishmentStatus, "REPLENISHMENT", (1, 0), Event, Payments, |_m| None);
