//! The mobile app's purchases (EVM seed): payment options, paying a purchase from the balance,
//! its status, feedback, and the paged history; top-ups through QPay, their status, and QPay's
//! callback; under `/api/v1`, with the app's session (the callback has none).

use schemas::payments::{
    Feedback, InvoicePurchase, InvoiceStatus, LeaveFeedback, PayPurchase, PaymentOption, ReplenishBalance,
    SettleProviderPayment,
};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use std::sync::Arc;

use crate::edge::body::parse_body;
use crate::edge::envelope::ApiError;
use crate::edge::envelope::db_error;
use crate::edge::mobile::{Caller, MobileApi};
use crate::edge::providers::Provider;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pay {
    option: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Status {
    invoice_id: Uuid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackBody {
    feedback: FeedbackFields,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackFields {
    score: u8,
    #[serde(default)]
    description: String,
}

/// `GET /payment-options`: the balance, and each external provider when it is configured.
pub(crate) fn options(api: &MobileApi) -> Value {
    let off = |option| api.providers.of(option).is_none();
    json!([
        { "option": "EVM", "icon": "wallet", "title": "Balance", "disabled": false },
        { "option": "QPAY", "icon": "qpay", "title": "QPay", "disabled": off(PaymentOption::Qpay) },
        { "option": "PAYSTACK", "icon": "paystack", "title": "Paystack", "disabled": off(PaymentOption::Paystack) },
    ])
}

/// An external provider's option, from its name.
fn external(option: &str) -> Result<PaymentOption, ApiError> {
    match option {
        "QPAY" => Ok(PaymentOption::Qpay),
        "PAYSTACK" => Ok(PaymentOption::Paystack),
        _ => Err(ApiError::invalid("option", "option is QPAY or PAYSTACK")),
    }
}

/// The configured provider of `option`.
fn provider(api: &MobileApi, option: PaymentOption) -> Result<&Arc<dyn Provider>, ApiError> {
    api.providers
        .of(option)
        .ok_or_else(|| ApiError::invalid("option", format!("{} is not configured", option.as_str())))
}

/// The e-mail a provider that wants one gets: the customer's, else one that reaches nobody.
fn email_of(caller: &Caller) -> String {
    caller.customer.profile.email.clone().unwrap_or_else(|| format!("{}@customers.voltbus.invalid", caller.customer_id))
}

/// `GET /purchases?page=&page-size=`: the caller's purchases, newest first.
pub(crate) async fn history(api: &MobileApi, caller: &Caller, query: Option<&str>) -> Result<Value, ApiError> {
    let (mut page, mut size) = (1u64, 50u64);
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let number = value.parse::<u64>().ok();
        match name {
            "page" => {
                page = number.filter(|n| *n >= 1).ok_or_else(|| ApiError::invalid("page", "page is 1 or more"))?
            }
            "page-size" => {
                size = number
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| ApiError::invalid("page-size", "page-size is 1 to 100"))?;
            }
            other => return Err(ApiError::invalid(other, "unknown query parameter; use page, page-size")),
        }
    }
    let offset = (page - 1).saturating_mul(size);
    let (items, total) =
        readside::payments::list(&api.database, caller.tenant.as_str(), caller.customer_id, offset, size)
            .await
            .map_err(db_error)?;
    let items: Vec<Value> = items
        .into_iter()
        .map(|p| {
            json!({
                "_id": p.id, "device": p.charger_id, "energy": p.energy_kwh, "amount": p.amount,
                "currency": p.currency, "status": p.status, "option": p.payment_option,
                "paidAt": p.paid_at, "feedback": p.feedback_score, "createdAt": p.created_at,
            })
        })
        .collect();
    Ok(json!({ "items": items, "page": page, "pageSize": size, "total": total }))
}

/// `POST /purchases/:id/pay|status|feedback`.
pub(crate) async fn act(
    api: &MobileApi,
    caller: &Caller,
    id: Uuid,
    action: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    let user_id = caller.customer_id;
    match action {
        "pay" => {
            let Pay { option } = parse_body(body)?;
            match option.as_str() {
                "EVM" => {
                    api.command(&caller.tenant, PayPurchase { purchase_id: id, user_id, option: PaymentOption::Evm })
                        .await
                }
                other => pay_by_provider(api, caller, id, external(other)?).await,
            }
        }
        "status" => {
            let Status { invoice_id } = parse_body(body)?;
            if invoice_id != id {
                // A QPay invoice of this purchase: where it stands, QPay asked while pending.
                let invoice = readside::payments::invoice(&api.database, invoice_id)
                    .await
                    .map_err(db_error)?
                    .filter(|i| {
                        i.tenant == caller.tenant.as_str() && i.customer_id == user_id && i.purchase_id == Some(id)
                    })
                    .ok_or_else(|| ApiError::not_found(format!("no invoice {invoice_id} of purchase {id}")))?;
                return confirm(api, invoice).await;
            }
            let purchase = readside::payments::find(&api.database, caller.tenant.as_str(), user_id, id)
                .await
                .map_err(db_error)?
                .ok_or_else(|| ApiError::not_found(format!("no purchase {id}")))?;
            Ok(json!({ "status": purchase.status, "amount": purchase.amount }))
        }
        _ => {
            let FeedbackBody { feedback } = parse_body(body)?;
            if !(1..=5).contains(&feedback.score) || feedback.description.len() > 2_000 {
                return Err(ApiError::invalid("feedback", "the score is 1 to 5, the description at most 2,000 bytes"));
            }
            let feedback = Feedback { score: feedback.score, description: feedback.description };
            let _: Value = api.command(&caller.tenant, LeaveFeedback { purchase_id: id, user_id, feedback }).await?;
            Ok(json!({}))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Replenish {
    amount: i64,
    option: String,
}

/// `POST /customer/replenish {amount, option}`: the provider's payment page for the top-up.
pub(crate) async fn replenish(api: &MobileApi, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let Replenish { amount, option } = parse_body(body)?;
    let option = external(&option)?;
    let provider = provider(api, option)?;
    if !(100..=100_000_000_000).contains(&amount) {
        return Err(ApiError::invalid("amount", "amount is 100 to 100,000,000,000 minor units"));
    }
    if amount % provider.step() != 0 {
        let message = format!("{} takes amounts in steps of {} minor units", option.as_str(), provider.step());
        return Err(ApiError::invalid("amount", message));
    }
    // The wallet keeps one currency: a top-up in another could be collected and never credited.
    let wallet = readside::wallets::currency(&api.database, caller.tenant.as_str(), caller.customer_id)
        .await
        .map_err(db_error)?;
    if let Some(currency) = wallet.filter(|currency| *currency != provider.currency()) {
        let message = format!("the balance is in {currency}, {} collects {}", option.as_str(), provider.currency());
        return Err(ApiError::invalid("option", message));
    }
    let invoice_id = Uuid::now_v7();
    let email = email_of(caller);
    let (reference, url) = provider.create(invoice_id, amount, "voltbus top-up", &email).await.map_err(|error| {
        tracing::warn!(%error, option = option.as_str(), "the provider refused or failed to make the payment");
        ApiError::unavailable("the provider could not make the payment; nothing was charged")
    })?;
    let command = ReplenishBalance {
        invoice_id,
        user_id: caller.customer_id,
        amount,
        currency: provider.currency(),
        option,
        provider_reference: reference,
        url: url.clone(),
    };
    let _: Value = api.command(&caller.tenant, command).await?;
    Ok(json!({ "option": option.as_str(), "invoiceId": invoice_id, "url": url }))
}

/// `pay` through a provider: its payment page of the purchase's amount, recorded.
async fn pay_by_provider(
    api: &MobileApi,
    caller: &Caller,
    purchase_id: Uuid,
    option: PaymentOption,
) -> Result<Value, ApiError> {
    let provider = provider(api, option)?;
    let purchase = readside::payments::find(&api.database, caller.tenant.as_str(), caller.customer_id, purchase_id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| ApiError::not_found(format!("no purchase {purchase_id}")))?;
    if purchase.status != "pending" {
        return Err(ApiError::conflict(format!("the purchase is {}", purchase.status)));
    }
    if purchase.currency != provider.currency() {
        let message =
            format!("{} collects {}, the purchase is in {}", option.as_str(), provider.currency(), purchase.currency);
        return Err(ApiError::invalid("option", message));
    }
    let invoice_id = Uuid::now_v7();
    let email = email_of(caller);
    // A provider that takes whole units only is invoiced the amount rounded up to one.
    let step = provider.step().max(1);
    let amount = (purchase.amount.saturating_add(step - 1) / step).saturating_mul(step);
    let (reference, url) = provider.create(invoice_id, amount, "voltbus charging", &email).await.map_err(|error| {
        tracing::warn!(%error, option = option.as_str(), "the provider refused or failed to make the payment");
        ApiError::unavailable("the provider could not make the payment; nothing was charged")
    })?;
    let command = InvoicePurchase {
        invoice_id,
        purchase_id,
        user_id: caller.customer_id,
        amount,
        currency: purchase.currency,
        option,
        provider_reference: reference,
        url,
    };
    api.command(&caller.tenant, command).await
}

/// Asks the invoice's provider what was paid, and settles the invoice when it was; the answer.
async fn confirm(api: &MobileApi, invoice: readside::payments::Invoice) -> Result<Value, ApiError> {
    let answer = |status: &str| json!({ "status": status, "amount": invoice.amount });
    let provider = external(&invoice.provider).ok().and_then(|option| api.providers.of(option));
    let (Some(provider), "pending") = (provider, invoice.status.as_str()) else {
        return Ok(answer(&invoice.status));
    };
    let paid = provider.paid(&invoice.provider_reference).await.map_err(|error| {
        tracing::warn!(%error, provider = %invoice.provider, "could not ask the provider about a payment");
        ApiError::unavailable("the provider did not answer; try again")
    })?;
    let Some(paid) = paid else { return Ok(answer("pending")) };
    let tenant = schemas::TenantId::new(&invoice.tenant).map_err(|_| ApiError::internal())?;
    let settle = SettleProviderPayment {
        invoice_id: invoice.id,
        option: provider.option(),
        provider_reference: invoice.provider_reference.clone(),
        status: InvoiceStatus::Success,
        amount: paid,
        currency: invoice.currency,
    };
    api.command(&tenant, settle).await
}

/// `POST /customer/replenishment {invoiceId}`: where the caller's top-up stands (QPay asked
/// while it is pending).
pub(crate) async fn replenishment(api: &MobileApi, caller: &Caller, body: &[u8]) -> Result<Value, ApiError> {
    let Status { invoice_id } = parse_body(body)?;
    let invoice = readside::payments::invoice(&api.database, invoice_id)
        .await
        .map_err(db_error)?
        .filter(|i| i.tenant == caller.tenant.as_str() && i.customer_id == caller.customer_id)
        .ok_or_else(|| ApiError::not_found(format!("no top-up {invoice_id}")))?;
    confirm(api, invoice).await
}

/// QPay's callback (`…/payments/qpay/callback?invoice=…`): unsigned, so only a hint to ask QPay
/// itself; a callback QPay does not confirm changes nothing and is logged.
pub(crate) async fn qpay_callback(api: &MobileApi, query: Option<&str>) -> Result<Value, ApiError> {
    let invoice_id = query
        .unwrap_or_default()
        .split('&')
        .find_map(|pair| pair.strip_prefix("invoice="))
        .and_then(|id| id.parse::<Uuid>().ok())
        .ok_or_else(|| ApiError::invalid("invoice", "the callback names no invoice"))?;
    let invoice = readside::payments::invoice(&api.database, invoice_id).await.map_err(db_error)?.ok_or_else(|| {
        tracing::warn!(%invoice_id, "a QPay callback for an invoice we never made; ignored");
        ApiError::not_found("no such invoice")
    })?;
    let answered = confirm(api, invoice).await?;
    if answered["status"] == "pending" {
        tracing::warn!(%invoice_id, "a QPay callback for an invoice QPay says is unpaid (forged, or early); nothing changed");
    }
    Ok(json!({}))
}

/// Paystack's webhook: believed only with Paystack's signature of the raw body, and even then
/// only as a prompt to verify the payment with Paystack. A forged one changes nothing and is
/// logged.
pub(crate) async fn paystack_webhook(api: &MobileApi, signature: Option<&str>, body: &[u8]) -> Result<Value, ApiError> {
    let Some(paystack) = api.paystack.as_ref() else { return Err(ApiError::not_found("no such route")) };
    if !signature.is_some_and(|signature| paystack.signed(body, signature)) {
        tracing::warn!("a Paystack webhook without Paystack's signature; ignored");
        return Err(ApiError::unauthorized("the signature does not hold"));
    }
    let event: Value = serde_json::from_slice(body).map_err(|_| ApiError::malformed("the body is not JSON"))?;
    if event["event"] != "charge.success" {
        return Ok(json!({}));
    }
    let Some(invoice_id) = event["data"]["reference"].as_str().and_then(|r| r.parse::<Uuid>().ok()) else {
        tracing::warn!("a signed Paystack webhook names a reference we never made; ignored");
        return Ok(json!({}));
    };
    let invoice = readside::payments::invoice(&api.database, invoice_id).await.map_err(db_error)?;
    match invoice {
        Some(invoice) if invoice.provider == PaymentOption::Paystack.as_str() => {
            let answered = confirm(api, invoice).await?;
            if answered["status"] == "pending" {
                tracing::warn!(%invoice_id, "a Paystack webhook for a payment Paystack does not verify; nothing changed");
            }
        }
        _ => tracing::warn!(%invoice_id, "a signed Paystack webhook for an invoice that is not Paystack's; ignored"),
    }
    Ok(json!({}))
}
