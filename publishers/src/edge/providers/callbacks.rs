//! Payment providers' callbacks: Paystack's webhooks (of integrations' bills, and of the app's
//! purchases) and QPay's callback. Each is believed only with the provider's signature, and then
//! only as a prompt to ask the provider itself what was paid.

use std::net::IpAddr;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use readside::billing::payments;
use schemas::TenantId;

use crate::edge::body::read_body;
use crate::edge::envelope::{self, Answer, ApiError, db_error};
use crate::edge::mobile::{MOBILE_BASE, purchases};
use crate::edge::partner::PartnerApi;
use crate::edge::portal::PORTAL_BASE;
use crate::edge::router::{Access, Door, Doors, Handler, Returns, Route, schema_of};

/// The providers' callbacks.
pub(crate) fn routes() -> Vec<Route> {
    let callback = |method: Method, path: String, operation, summary, handler| Route {
        door: Door::Providers,
        method,
        path,
        operation,
        summary,
        access: Access::Own,
        body: None,
        status: 200,
        returns: Returns::Bare(schema_of::<serde_json::Value>),
        handler: Handler::Own(handler),
    };
    vec![
        callback(
            Method::POST,
            format!("{PORTAL_BASE}/billing/paystack/webhook"),
            "paystackBillingWebhook",
            "Paystack's webhook of integrations' bills (`x-paystack-signature`).",
            |doors, request, _| Box::pin(bill_paid(doors, request)),
        ),
        callback(
            Method::POST,
            format!("{MOBILE_BASE}/payments/paystack/webhook"),
            "paystackPurchaseWebhook",
            "Paystack's webhook of the app's purchases (`x-paystack-signature`).",
            |doors, request, _| Box::pin(purchase_paid_by_paystack(doors, request)),
        ),
        callback(
            Method::GET,
            format!("{MOBILE_BASE}/payments/qpay/callback"),
            "qpayCallback",
            "QPay's callback of a purchase's invoice (`?invoice=`): QPay is asked what was paid.",
            |doors, request, _| Box::pin(purchase_paid_by_qpay(doors, request)),
        ),
        callback(
            Method::POST,
            format!("{MOBILE_BASE}/payments/qpay/callback"),
            "qpayCallbackPost",
            "The same callback, as QPay also sends it.",
            |doors, request, _| Box::pin(purchase_paid_by_qpay(doors, request)),
        ),
    ]
}

/// Integrations' bills: Paystack's signed `charge.success`.
async fn bill_paid(doors: &Doors<'_>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let answer = settle_bill(doors.api, request, doors.peer).await;
    envelope::door_response(answer.map(|answer| (answer, None)), doors.request_id)
}

/// The app's purchases paid through Paystack.
async fn purchase_paid_by_paystack(doors: &Doors<'_>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let signature = request.headers().get("x-paystack-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let answer = match read_body(request, doors.mobile.settings.body_limit).await {
        Ok(body) => purchases::paystack_webhook(doors.mobile, signature.as_deref(), &body).await,
        Err(error) => Err(error),
    };
    bare(answer, doors.request_id)
}

/// The app's purchases paid through QPay.
async fn purchase_paid_by_qpay(doors: &Doors<'_>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    bare(purchases::qpay_callback(doors.mobile, request.uri().query()).await, doors.request_id)
}

/// A provider's answer: the JSON itself, as the app's API answers.
fn bare(answer: Result<serde_json::Value, ApiError>, request_id: &str) -> Response<Full<Bytes>> {
    match answer {
        Ok(body) => envelope::json_response(StatusCode::OK, body.to_string(), request_id),
        Err(error) => envelope::error_response(error, request_id),
    }
}

/// `POST /v1/integrations/billing/paystack/webhook` (integrations' bills): a signed `charge.success` makes voltbus verify the payment
/// with Paystack and settle it once; a forged one is refused and logged, changing nothing.
async fn settle_bill(api: &PartnerApi, request: Request<Incoming>, peer: IpAddr) -> Result<Answer, ApiError> {
    let paystack = api.paystack.as_deref().ok_or_else(|| ApiError::unavailable("Paystack is not configured here"))?;
    let signature = request.headers().get("x-paystack-signature").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = read_body(request, api.settings.body_limit).await?;
    if !signature.as_deref().is_some_and(|signature| paystack.signed(&body, signature)) {
        tracing::warn!(%peer, "a Paystack webhook without a valid signature; refused");
        return Err(crate::edge::portal::failed(api, peer, ApiError::unauthorized("invalid x-paystack-signature")));
    }
    let event: serde_json::Value = crate::edge::body::json_of(&body)?;
    let reference = event["data"]["reference"].as_str().unwrap_or_default();
    if event["event"] != "charge.success" || reference.is_empty() {
        return Ok(Answer::ok(serde_json::json!({ "received": true })));
    }
    let Some((tenant, payment)) = payments::by_reference(&api.database, reference).await.map_err(db_error)? else {
        tracing::info!(reference, "a Paystack webhook for no integration payment; ignored");
        return Ok(Answer::ok(serde_json::json!({ "received": true })));
    };
    if payment.status == "pending" {
        let tenant = TenantId::new(tenant).map_err(|_| ApiError::internal())?;
        if crate::edge::portal::billing::settle(api, &tenant, &payment).await?.is_none() {
            tracing::warn!(
                reference,
                "a signed Paystack webhook for a payment Paystack does not confirm; nothing settled"
            );
        }
    }
    Ok(Answer::ok(serde_json::json!({ "received": true })))
}
