//! The mobile app's purchases (EVM seed): payment options, paying a purchase from the balance,
//! its status, feedback, and the paged history; under `/api/v1`, with the app's session.

use schemas::payments::{Feedback, LeaveFeedback, PayPurchase, PaymentOption};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::api::parse_body;
use super::mobile::{Caller, MobileApi};
use super::response::ApiError;

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

/// `GET /payment-options`: the balance; external providers once they are wired in.
pub(crate) fn options() -> Value {
    json!([
        { "option": "EVM", "icon": "wallet", "title": "Balance", "disabled": false },
        { "option": "QPAY", "icon": "qpay", "title": "QPay", "disabled": true },
    ])
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
        consumers::payments::list(&api.database, caller.tenant.as_str(), caller.customer_id, offset, size)
            .await
            .map_err(|_| ApiError::unavailable("the database is not reachable"))?;
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
            let option = match option.as_str() {
                "EVM" => PaymentOption::Evm,
                "QPAY" => return Err(ApiError::invalid("option", "QPAY is not available yet; pay with EVM")),
                _ => return Err(ApiError::invalid("option", "option is EVM or QPAY")),
            };
            api.command(&caller.tenant, PayPurchase { purchase_id: id, user_id, option }).await
        }
        "status" => {
            let Status { invoice_id } = parse_body(body)?;
            if invoice_id != id {
                return Err(ApiError::invalid("invoiceId", "invoiceId is the purchase's id"));
            }
            let purchase = consumers::payments::find(&api.database, caller.tenant.as_str(), user_id, id)
                .await
                .map_err(|_| ApiError::unavailable("the database is not reachable"))?
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
