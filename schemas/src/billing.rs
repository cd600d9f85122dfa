//! Usage metering, invoices and Paystack payments of integrations (EVCare seed).

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Money;
use crate::message::message;

/// Count billable use of an integration (calls, active vehicles, sessions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordUsage {
    /// Integration.
    pub integration_id: Uuid,
    /// What is metered (`api_call`, `active_vehicle`, …).
    pub metric: String,
    /// How many units.
    pub quantity: u64,
    /// When the use happened.
    pub occurred_at: DateTime<Utc>,
}
message!(RecordUsage, "usage.record", (1, 0), Command(Billing), Billing, |m| { Some(m.integration_id.to_string()) });

/// Start a Paystack payment; the `Idempotency-Key` makes a retried call the same payment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InitializePayment {
    /// Integration paying.
    pub integration_id: Uuid,
    /// Our payment id.
    pub payment_id: Uuid,
    /// Billing e-mail sent to Paystack.
    pub email: String,
    /// Amount in minor units (Paystack's `amount` is in pesewas/kobo).
    pub amount: i64,
    /// ISO-4217 currency.
    pub currency: crate::Currency,
    /// The caller's `Idempotency-Key` header.
    pub idempotency_key: String,
    /// The invoice it pays, if any (since 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_id: Option<Uuid>,
    /// Paystack's reference of the transaction (since 1.1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reference: String,
    /// The page where it is paid (since 1.1).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub authorization_url: String,
}
message!(InitializePayment, "billing.initialize_payment", (1, 1), Command(Billing), Billing, |m| Some(
    m.integration_id.to_string()
));

/// An integration's plan: a monthly fee, and per metric what is included and the price of each
/// thousand units beyond.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    /// ISO-4217 currency of every amount.
    pub currency: crate::Currency,
    /// Monthly fee, minor units.
    pub monthly_fee: i64,
    /// Per metric (`api_call`, `event_delivery`): included units and the price per thousand beyond.
    pub metrics: Vec<MeteredPrice>,
}

/// The price of one metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeteredPrice {
    /// What is metered.
    pub metric: String,
    /// Units included in the monthly fee.
    pub included: u64,
    /// Minor units per thousand units beyond (a started thousand is prorated, rounded up).
    pub per_thousand: i64,
}

/// Issue an integration's invoice for a billing period that has ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssueInvoice {
    /// Integration billed.
    pub integration_id: Uuid,
    /// The month (`2026-11`).
    pub period: String,
    /// The plan it is billed on.
    pub plan: Plan,
}
message!(IssueInvoice, "billing.issue_invoice", (1, 0), Command(Billing), Billing, |m| Some(
    m.integration_id.to_string()
));

/// Record what Paystack's verify said was paid on a payment; settles it (and its invoice) once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettlePayment {
    /// Our payment id.
    pub payment_id: Uuid,
    /// Paystack's reference.
    pub reference: String,
    /// What Paystack says was paid, minor units.
    pub amount: i64,
    /// In this currency.
    pub currency: crate::Currency,
}
message!(SettlePayment, "billing.settle_payment", (1, 0), Command(Billing), Billing, |m| Some(
    m.payment_id.to_string()
));

/// Usage was counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRecorded {
    /// Integration.
    pub integration_id: Uuid,
    /// Metric.
    pub metric: String,
    /// Units added.
    pub quantity: u64,
    /// Billing period (`2025-01`).
    pub period: String,
}
message!(UsageRecorded, "usage.recorded", (1, 0), Event, Billing, |m| Some(m.integration_id.to_string()));

/// An invoice for a billing period was issued.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceIssued {
    /// Invoice.
    pub invoice_id: Uuid,
    /// Integration billed.
    pub integration_id: Uuid,
    /// Billing period (`2025-01`).
    pub period: String,
    /// Total due.
    pub total: Money,
    /// Due date.
    pub due_at: DateTime<Utc>,
}
message!(InvoiceIssued, "billing.invoice_issued", (1, 0), Event, Billing, |m| Some(m.integration_id.to_string()));

/// Outcome of a Paystack payment, verified with Paystack (never trusted from the redirect alone).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PaymentVerified {
    /// Our payment id.
    pub payment_id: Uuid,
    /// Integration.
    pub integration_id: Uuid,
    /// Paystack's transaction reference.
    pub reference: String,
    /// `success`, `failed` or `abandoned`, as Paystack reports it.
    pub status: String,
    /// Amount in minor units.
    pub amount: i64,
    /// ISO-4217 currency.
    pub currency: crate::Currency,
}
message!(PaymentVerified, "billing.payment_verified", (1, 0), Event, Billing, |m| Some(m.payment_id.to_string()));
