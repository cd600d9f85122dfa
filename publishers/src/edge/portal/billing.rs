//! Integrations' billing (admin keys only): the month's metered usage with the invoice it would
//! make, monthly invoices, and their Paystack payments — `initialize` (an `Idempotency-Key` is
//! required and becomes Paystack's), `verify`, and Paystack's signed webhook (in `portal`), each
//! settled only on Paystack's own verify, exactly once.

use chrono::{Datelike, NaiveDate, Utc};
use http::StatusCode;
use readside::billing::invoices::{self, Invoice};
use readside::billing::payments::{self, Payment};
use readside::billing::usage;
use schemars::JsonSchema;
use schemas::billing::{InitializePayment, IssueInvoice, SettlePayment};
use schemas::{Currency, Envelope, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::edge::body::parse_body;
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::customers::is_email;
use crate::edge::partner::routes::Call;
use crate::edge::providers::Provider;
use crate::edge::providers::paystack::Paystack;

/// `GET /integrations/{id}/billing/usage`.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UsageReport {
    /// The month (`2026-11`).
    period: String,
    /// Units per metric.
    usage: Vec<MetricUsage>,
    /// The invoice the month would make on the current plan.
    preview: Preview,
}

/// One metric's units in a month.
#[derive(Serialize, JsonSchema)]
pub(crate) struct MetricUsage {
    metric: String,
    quantity: u64,
}

/// An invoice not issued.
#[derive(Serialize, JsonSchema)]
pub(crate) struct Preview {
    currency: Currency,
    lines: Vec<invoices::Line>,
    total: i64,
}

/// `POST /integrations/{id}/billing/invoices`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewInvoice {
    /// A month that has ended, `YYYY-MM`.
    #[schemars(regex(pattern = r"^\d{4}-\d{2}$"))]
    period: String,
}

/// `POST /integrations/{id}/billing/paystack/initialize` (the seed's body).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Initialize {
    /// The billing e-mail Paystack sends the receipt to.
    #[schemars(length(min = 3, max = 254))]
    email: String,
    /// Minor units (pesewas, kobo), as Paystack counts.
    #[schemars(range(min = 1))]
    amount: i64,
    /// Paystack's configured currency.
    currency: String,
    /// The invoice it pays; its total must be the amount.
    invoice_id: Option<Uuid>,
}

/// What `initialize` answers.
#[derive(Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Initialized {
    payment_id: Uuid,
    reference: String,
    authorization_url: String,
    status: String,
}

fn paystack(api: &PartnerApi) -> Result<&Paystack, ApiError> {
    api.paystack.as_deref().ok_or_else(|| ApiError::unavailable("Paystack is not configured here"))
}

/// The integration of the path, checked to be the caller's organisation's.
async fn integration_of(api: &PartnerApi, call: &Call) -> Result<Uuid, ApiError> {
    let id = call.id("id")?;
    readside::integrations::clients::find(&api.database, call.caller.tenant.as_str(), id)
        .await
        .map_err(db_error)?
        .map(|stored| stored.integration.id)
        .ok_or_else(|| ApiError::not_found(format!("no integration {id}")))
}

/// A `YYYY-MM` month.
fn month(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").ok().filter(|_| text.len() == 7)
}

/// `GET /integrations/{id}/billing/usage/{period}`.
pub(crate) async fn usage_report(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let integration = integration_of(api, &call).await?;
    let period = call.params.iter().find(|(name, _)| name == "period").map(|(_, v)| v.clone()).unwrap_or_default();
    if month(&period).is_none() {
        return Err(ApiError::invalid("period", "period is a month, YYYY-MM"));
    }
    let used = usage::of(&api.database, integration, &period).await.map_err(db_error)?;
    let plan = &api.settings.billing;
    let (lines, total) = invoices::price(plan, &used);
    let usage = used.into_iter().map(|(metric, quantity)| MetricUsage { metric, quantity }).collect();
    Ok(Answer::ok(UsageReport { period, usage, preview: Preview { currency: plan.currency, lines, total } }))
}

/// `GET /integrations/{id}/billing/invoices`.
pub(crate) async fn list_invoices(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let integration = integration_of(api, &call).await?;
    let all = invoices::list(&api.database, call.caller.tenant.as_str(), integration).await.map_err(db_error)?;
    Ok(Answer::ok(all))
}

/// `POST /integrations/{id}/billing/invoices`: the invoice of a month that has ended (issued
/// once; asking again answers the same invoice).
pub(crate) async fn issue_invoice(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: NewInvoice = parse_body(&call.body)?;
    let integration = integration_of(api, &call).await?;
    let Some(first_day) = month(&request.period) else {
        return Err(ApiError::invalid("period", "period is a month, YYYY-MM"));
    };
    let today = Utc::now().date_naive();
    if (first_day.year(), first_day.month()) >= (today.year(), today.month()) {
        return Err(ApiError::invalid("period", "only a month that has ended is invoiced"));
    }
    let issue =
        IssueInvoice { integration_id: integration, period: request.period, plan: api.settings.billing.clone() };
    let invoice: Invoice = api.bus.request(&command(&call, issue), api.settings.command_timeout).await?;
    Ok(Answer::with_status(StatusCode::CREATED, invoice))
}

/// `POST /integrations/{id}/billing/paystack/initialize`.
pub(crate) async fn initialize(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let Some(idempotency_key) = call.idempotency_key.clone() else {
        return Err(ApiError::invalid("idempotency-key", "an Idempotency-Key header is required"));
    };
    let request: Initialize = parse_body(&call.body)?;
    let integration = integration_of(api, &call).await?;
    let paystack = paystack(api)?;
    let email = request.email.trim().to_ascii_lowercase();
    if !is_email(&email) {
        return Err(ApiError::invalid("email", "email must be an e-mail address"));
    }
    if request.amount <= 0 {
        return Err(ApiError::invalid("amount", "amount is above 0 minor units"));
    }
    let currency = Currency::new(&request.currency).map_err(|e| ApiError::invalid("currency", e.to_string()))?;
    if currency != paystack.currency() {
        return Err(ApiError::invalid("currency", format!("Paystack collects in {} here", paystack.currency())));
    }
    if let Some(invoice_id) = request.invoice_id {
        let invoice = invoices::find(&api.database, call.caller.tenant.as_str(), integration, invoice_id)
            .await
            .map_err(db_error)?
            .ok_or_else(|| ApiError::not_found(format!("no invoice {invoice_id}")))?;
        if invoice.status != "open" {
            return Err(ApiError::conflict(format!("invoice {invoice_id} is {}", invoice.status)));
        }
        if (invoice.total, invoice.currency) != (request.amount, currency) {
            return Err(ApiError::invalid(
                "amount",
                format!("invoice {invoice_id} is {} {}", invoice.total, invoice.currency),
            ));
        }
    }
    // The payment id is fixed by the Idempotency-Key, and is Paystack's: a retry makes one
    // transaction.
    let payment_id = call.command_id;
    let (reference, authorization_url) =
        paystack.create(payment_id, request.amount, "voltbus integration billing", &email).await.map_err(|error| {
            tracing::warn!(%error, "Paystack initialize failed");
            ApiError::unavailable("Paystack could not be reached; retry with the same Idempotency-Key")
        })?;
    let initialize = InitializePayment {
        integration_id: integration,
        payment_id,
        email,
        amount: request.amount,
        currency,
        idempotency_key,
        invoice_id: request.invoice_id,
        reference,
        authorization_url,
    };
    let payment: Payment = api.bus.request(&command(&call, initialize), api.settings.command_timeout).await?;
    Ok(Answer::ok(Initialized {
        payment_id: payment.id,
        reference: payment.reference,
        authorization_url: payment.authorization_url,
        status: payment.status,
    }))
}

/// `GET /integrations/{id}/billing/paystack/verify/{reference}`: asks Paystack, and settles a
/// pending payment it confirms.
pub(crate) async fn verify(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let integration = integration_of(api, &call).await?;
    let reference =
        call.params.iter().find(|(name, _)| name == "reference").map(|(_, v)| v.clone()).unwrap_or_default();
    let found = payments::by_reference(&api.database, &reference).await.map_err(db_error)?;
    let payment = found
        .filter(|(tenant, payment)| tenant == call.caller.tenant.as_str() && payment.integration_id == integration)
        .map(|(_, payment)| payment)
        .ok_or_else(|| ApiError::not_found(format!("no payment {reference}")))?;
    if payment.status != "pending" {
        return Ok(Answer::ok(payment));
    }
    let settled = settle(api, &call.caller.tenant, &payment).await?;
    Ok(Answer::ok(settled.unwrap_or(payment)))
}

/// Asks Paystack about `payment` and settles it when Paystack confirms; the payment as it then
/// is, or none when Paystack has nothing yet.
pub(crate) async fn settle(
    api: &PartnerApi,
    tenant: &TenantId,
    payment: &Payment,
) -> Result<Option<Payment>, ApiError> {
    let paystack = paystack(api)?;
    let paid = paystack.paid(&payment.reference).await.map_err(|error| {
        tracing::warn!(%error, "Paystack verify failed");
        ApiError::unavailable("Paystack could not be reached")
    })?;
    let Some(amount) = paid else { return Ok(None) };
    let settle = SettlePayment {
        payment_id: payment.id,
        reference: payment.reference.clone(),
        amount,
        currency: paystack.currency(),
    };
    let envelope = Envelope::new(tenant.clone(), "voltbus/billing", settle);
    api.bus.request(&envelope, api.settings.command_timeout).await.map(Some)
}
