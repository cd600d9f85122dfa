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
message!(RecordUsage, "usage.record", (1, 0), Command, Billing, |m| { Some(m.integration_id.to_string()) });

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
}
message!(InitializePayment, "billing.initialize_payment", (1, 0), Command, Billing, |m| Some(
    m.integration_id.to_string()
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
