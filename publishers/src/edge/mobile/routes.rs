//! The mobile app's routes (EVM seed), below [`MOBILE_BASE`]: signing in is open, the rest need
//! the phone's session. Bodies are the seed's, bare. (Payment providers' callbacks to the app's
//! purchases come through the providers' door.)

use http::{Method, Request};
use hyper::body::Incoming;
use schemas::customers::{CustomerProfile, SetNotificationToken, UpdateCustomer};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Caller, Info, MOBILE_BASE, MobileApi, NotificationToken, OtpCheck, OtpRequest, purchases};
use crate::edge::body::{parse_body, read_body};
use crate::edge::envelope::ApiError;
use crate::edge::router::{Access, Boxed, Door, Handler, Params, Returns, Route, SchemaOf, param, schema_of};

/// What a mobile route does, once its session (where it needs one) is checked.
pub(crate) type Action = for<'a> fn(&'a MobileApi, MobileCall) -> Boxed<'a, Result<Value, ApiError>>;

/// One call of a mobile route.
pub(crate) struct MobileCall {
    /// The signed-in phone, on routes that need one.
    pub caller: Option<Caller>,
    pub request: Request<Incoming>,
    pub params: Params,
}

impl MobileCall {
    /// The signed-in phone; the pipeline checked it for every route that needs it.
    fn caller(&self) -> Result<&Caller, ApiError> {
        self.caller.as_ref().ok_or_else(ApiError::internal)
    }

    /// The id a path names (a charger, a purchase); one that is no UUID names nothing.
    fn id(&self, what: &str) -> Result<Uuid, ApiError> {
        let named = param(&self.params, "id");
        named.parse().map_err(|_| ApiError::not_found(format!("no {what} {named}")))
    }

    /// The body, at most the API's limit.
    async fn body(self, api: &MobileApi) -> Result<(Option<Caller>, bytes::Bytes), ApiError> {
        let body = read_body(self.request, api.settings.body_limit).await?;
        Ok((self.caller, body))
    }
}

/// The mobile API's routes.
pub(crate) fn routes() -> Vec<Route> {
    let route = |method: Method, path: &str, operation, summary, access, body: Option<SchemaOf>, action| Route {
        door: Door::Mobile,
        method,
        path: format!("{MOBILE_BASE}{path}"),
        operation,
        summary,
        access,
        body,
        status: 200,
        returns: Returns::Bare(schema_of::<Value>),
        handler: Handler::Mobile(action),
    };
    use Access::{Own, Session};
    vec![
        route(
            Method::POST,
            "/user/otp-request",
            "requestSignInCode",
            "A sign-in code sent to the phone (`X-Tenant` names the organisation).",
            Own,
            Some(schema_of::<OtpRequest>),
            |api, call| Box::pin(otp_request(api, call)),
        ),
        route(
            Method::POST,
            "/user/otp-check",
            "signIn",
            "The code for a session token, the profile and the app's NATS credentials.",
            Own,
            Some(schema_of::<OtpCheck>),
            |api, call| Box::pin(otp_check(api, call)),
        ),
        route(
            Method::POST,
            "/user/me",
            "getProfile",
            "The profile, with fresh NATS credentials.",
            Session,
            None,
            |api, call| Box::pin(async move { api.me(call.caller()?).await }),
        ),
        route(
            Method::POST,
            "/customer/update-notification-token",
            "setNotificationToken",
            "The phone's FCM token.",
            Session,
            Some(schema_of::<NotificationToken>),
            |api, call| Box::pin(notification_token(api, call)),
        ),
        route(
            Method::POST,
            "/customer/update-info",
            "updateProfile",
            "The customer's name and e-mail.",
            Session,
            Some(schema_of::<Info>),
            |api, call| Box::pin(update_info(api, call)),
        ),
        route(
            Method::POST,
            "/customer/replenish",
            "replenishBalance",
            "Tops the balance up through a payment provider.",
            Session,
            Some(schema_of::<Value>),
            |api, call| {
                Box::pin(async move {
                    let (caller, body) = call.body(api).await?;
                    purchases::replenish(api, &signed(caller)?, &body).await
                })
            },
        ),
        route(
            Method::POST,
            "/customer/replenishment",
            "getReplenishment",
            "Where a top-up stands.",
            Session,
            Some(schema_of::<Value>),
            |api, call| {
                Box::pin(async move {
                    let (caller, body) = call.body(api).await?;
                    purchases::replenishment(api, &signed(caller)?, &body).await
                })
            },
        ),
        route(
            Method::GET,
            "/devices/by-location",
            "listChargersInBox",
            "Chargers in the box the seed's corners give (west above east crosses the antimeridian).",
            Session,
            None,
            |api, call| Box::pin(async move { api.chargers_in(call.caller()?, call.request.uri().query()).await }),
        ),
        route(
            Method::POST,
            "/devices/{id}/start",
            "startCharging",
            "Starts charging at a charger.",
            Session,
            None,
            |api, call| Box::pin(async move { api.charge(call.caller()?, call.id("charger")?, true).await }),
        ),
        route(
            Method::POST,
            "/devices/{id}/finish",
            "finishCharging",
            "Finishes the session at a charger; its purchase follows.",
            Session,
            None,
            |api, call| Box::pin(async move { api.charge(call.caller()?, call.id("charger")?, false).await }),
        ),
        route(
            Method::GET,
            "/payment-options",
            "listPaymentOptions",
            "How purchases may be paid.",
            Session,
            None,
            |api, _| Box::pin(async move { Ok(purchases::options(api)) }),
        ),
        route(Method::GET, "/purchases", "listPurchases", "The customer's purchases.", Session, None, |api, call| {
            Box::pin(async move { purchases::history(api, call.caller()?, call.request.uri().query()).await })
        }),
        route(
            Method::POST,
            "/purchases/{id}/pay",
            "payPurchase",
            "Pays a purchase from the balance or through a provider.",
            Session,
            Some(schema_of::<Value>),
            |api, call| Box::pin(purchase_action(api, call, "pay")),
        ),
        route(
            Method::POST,
            "/purchases/{id}/status",
            "getPurchaseStatus",
            "Where a purchase's payment stands.",
            Session,
            Some(schema_of::<Value>),
            |api, call| Box::pin(purchase_action(api, call, "status")),
        ),
        route(
            Method::POST,
            "/purchases/{id}/feedback",
            "leavePurchaseFeedback",
            "The customer's feedback on a purchase.",
            Session,
            Some(schema_of::<Value>),
            |api, call| Box::pin(purchase_action(api, call, "feedback")),
        ),
    ]
}

/// `POST /user/otp-request`.
async fn otp_request(api: &MobileApi, call: MobileCall) -> Result<Value, ApiError> {
    let tenant = api.tenant_of(&call.request)??;
    let (_, body) = call.body(api).await?;
    api.request_code(tenant, parse_body(&body)?).await
}

/// `POST /user/otp-check`.
async fn otp_check(api: &MobileApi, call: MobileCall) -> Result<Value, ApiError> {
    let tenant = api.tenant_of(&call.request)??;
    let (_, body) = call.body(api).await?;
    api.sign_in(tenant, parse_body(&body)?).await
}

/// A purchase's `pay`, `status` or `feedback`.
async fn purchase_action(api: &MobileApi, call: MobileCall, action: &str) -> Result<Value, ApiError> {
    let id = call.id("purchase")?;
    let (caller, body) = call.body(api).await?;
    let caller = signed(caller)?;
    purchases::act(api, &caller, id, action, &body).await
}

/// The signed-in phone a call's body came with; the pipeline checked it for every route that
/// needs it.
fn signed(caller: Option<Caller>) -> Result<Caller, ApiError> {
    caller.ok_or_else(ApiError::internal)
}

/// `POST /customer/update-notification-token`.
async fn notification_token(api: &MobileApi, call: MobileCall) -> Result<Value, ApiError> {
    let (caller, body) = call.body(api).await?;
    let caller = signed(caller)?;
    let NotificationToken { fcm_token } = parse_body(&body)?;
    if fcm_token.is_empty() || fcm_token.len() > 4096 {
        return Err(ApiError::invalid("FCMToken", "FCMToken must be 1 to 4096 characters"));
    }
    let command = SetNotificationToken { customer_id: caller.customer_id, token: fcm_token };
    let _: Value = api.command(&caller.tenant, command).await?;
    Ok(json!({}))
}

/// `POST /customer/update-info`.
async fn update_info(api: &MobileApi, call: MobileCall) -> Result<Value, ApiError> {
    let (caller, body) = call.body(api).await?;
    let caller = signed(caller)?;
    let Info { name, email } = parse_body(&body)?;
    if name.as_ref().is_some_and(|n| n.trim().is_empty() || n.len() > 200) {
        return Err(ApiError::invalid("name", "name must be 1 to 200 characters"));
    }
    if email.as_ref().is_some_and(|e| !e.contains('@') || e.len() > 254) {
        return Err(ApiError::invalid("email", "email must be an e-mail address"));
    }
    let changes = CustomerProfile { name, email, phone: None };
    let _: Value = api.command(&caller.tenant, UpdateCustomer { customer_id: caller.customer_id, changes }).await?;
    Ok(json!({}))
}
