//! The Etvas callback (`POST /etvas-events`, `customers:write`): a marketplace's events about
//! its users and their purchases, each turned into a `marketplace` command whose reply maps the
//! marketplace's ids to ours, answered in the shape the Etvas seed shows.
//!
//! A partner event is idempotent on its type and id: the command's message id is derived from
//! them, so a resent event is answered again by the consumer's inbox and changes nothing twice.
//! (The seed's own examples give `user.create` and `product.purchase` the same event id, so the
//! id alone would not do.)

use readside::marketplace::Mapping;
use schemars::JsonSchema;
use schemas::marketplace::{
    IdPair, PartnerEvent, PartnerEventRef, PartnerUser, Product, ProductCancel, ProductData, ProductPurchase,
    ProductResume, ProductSuspend, UserCreate, UserDelete, UserUpdate,
};
use schemas::{Currency, Message};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::edge::body::{json_of, typed};
use crate::edge::commands::command;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::auth::{Caller, integration_caller};
use crate::edge::partner::routes::{Call, at};
use crate::edge::portal::machine_tokens::Claims;
use crate::edge::portal::oauth::basic_credentials;
use crate::edge::router::Route;
use chrono::Utc;
use http::{HeaderMap, HeaderValue, header};
use readside::ids::derived_id;
use std::net::IpAddr;

/// Etvas charges in euro and sends bare decimal prices.
const ETVAS_CURRENCY: Currency = Currency::EUR;

/// The event types this receiver takes.
const EVENT_TYPES: [&str; 7] = [
    <UserCreate as Message>::TYPE,
    <UserUpdate as Message>::TYPE,
    <UserDelete as Message>::TYPE,
    <ProductPurchase as Message>::TYPE,
    <ProductCancel as Message>::TYPE,
    <ProductSuspend as Message>::TYPE,
    <ProductResume as Message>::TYPE,
];

/// An Etvas event, as its seed sends it (the OpenAPI description of the body).
#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)]
#[schemars(example = seed_user_created())]
pub(crate) struct Callback {
    /// Which event, with the marketplace's id for it.
    event: CallbackEvent,
    /// The user it concerns.
    user: PartnerUser,
    /// `{user, webIdentity}` for user events, `{product}` for product events.
    data: Value,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[allow(dead_code)]
struct CallbackEvent {
    id: Uuid,
    #[serde(rename = "type")]
    event_type: CallbackType,
    timestamp: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
enum CallbackType {
    #[serde(rename = "user.create")]
    UserCreate,
    #[serde(rename = "user.update")]
    UserUpdate,
    #[serde(rename = "product.purchase")]
    ProductPurchase,
    #[serde(rename = "product.cancel")]
    ProductCancel,
    #[serde(rename = "product.suspend")]
    ProductSuspend,
    #[serde(rename = "product.resume")]
    ProductResume,
}

/// The seed's `data.product`, with its decimal price.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CallbackProduct {
    id: Uuid,
    partner_id: Option<String>,
    name: Option<String>,
    price: Option<f64>,
    price_type: Option<String>,
    price_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CallbackProductData {
    product: CallbackProduct,
}

/// The seed's own User Created request, the document's example.
fn seed_user_created() -> Value {
    serde_json::json!({
        "event": { "id": "5fa30c48-7c7f-4440-bbc6-fdd927e7dc48", "type": "user.create", "timestamp": 19786584376u64 },
        "user": {
            "id": "52f3d719-a192-4153-a05c-2b6bcc26c839",
            "partnerId": null,
            "auth": { "token": "378aee42-49a8-41ef-acdb-52d1259814de", "expires": 2086584376 }
        },
        "data": {
            "user": {
                "salutation": "Mr.", "firstName": "john", "lastName": "Doe", "email": "john@doe.com",
                "phone": "+1303500600", "dateOfBirth": "1990-12-21", "address1": "2698 Sundown Lane",
                "address2": "Ap. 255", "city": "Berlin", "region/state": "Brandenburg", "country": "Germany",
                "postalCode": "10101"
            },
            "webIdentity": { "status": "verified", "verificationId": "450a936a-aa4a-4d3d-a3dd-333d73c8ba99" }
        }
    })
}

/// The seed's answer to its User Created request, the document's example.
fn seed_user_created_reply() -> Value {
    serde_json::json!({
        "status": 200,
        "event": { "id": "5fa30c48-7c7f-4440-bbc6-fdd927e7dc48" },
        "data": { "user": { "id": "52f3d719-a192-4153-a05c-2b6bcc26c839", "partnerId": "u-000001" } }
    })
}

/// The answer: the event's id and the ids the marketplace is to keep.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(example = seed_user_created_reply())]
pub(crate) struct CallbackReply {
    /// 200, as the seed's answers carry it.
    status: u16,
    /// The event answered.
    event: RepliedEvent,
    /// The user, on product events.
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<IdPair>,
    /// The user on user events, the product on product events.
    data: ReplyData,
}

#[derive(Debug, Serialize, JsonSchema)]
struct RepliedEvent {
    id: Uuid,
}

#[derive(Debug, Serialize, JsonSchema)]
struct ReplyData {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<IdPair>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<IdPair>,
}

/// `POST /etvas-events`.
pub(crate) async fn receive(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    // A marketplace's users are customers of the whole organisation, which only keys of the
    // whole organisation change (as `PATCH /customers` holds for them).
    if call.caller.fleets().is_some() {
        return Err(ApiError::forbidden(
            "marketplace events change the organisation's own customers: use a key of the whole organisation",
        ));
    }
    let body = json_of(&call.body)?;
    let event_type = body.pointer("/event/type").and_then(Value::as_str).unwrap_or_default().to_owned();
    let event_id = match event_type.as_str() {
        "user.create" => send(api, &call, UserCreate(typed(body)?)).await?,
        "user.update" => send(api, &call, UserUpdate(typed(body)?)).await?,
        "user.delete" => send(api, &call, typed::<UserDelete>(body)?).await?,
        "product.purchase" => send(api, &call, ProductPurchase(product_event(body)?)).await?,
        "product.cancel" => send(api, &call, ProductCancel(product_event(body)?)).await?,
        "product.suspend" => send(api, &call, ProductSuspend(product_event(body)?)).await?,
        "product.resume" => send(api, &call, ProductResume(product_event(body)?)).await?,
        "" => return Err(ApiError::invalid("event.type", "`event.type` is required")),
        other => {
            return Err(ApiError::invalid("event.type", format!("unknown event type `{other}`"))
                .details(serde_json::json!({ "field": "event.type", "known": EVENT_TYPES })));
        }
    };
    Ok(Answer::bare(event_id))
}

/// A product event with its price in minor units.
fn product_event(body: Value) -> Result<PartnerEvent<ProductData>, ApiError> {
    let event: PartnerEvent<CallbackProductData> = typed(body)?;
    let product = event.data.product;
    let price = product.price.map(minor_units).transpose()?;
    Ok(PartnerEvent {
        event: event.event,
        user: event.user,
        data: ProductData {
            product: Product {
                id: product.id,
                partner_id: product.partner_id,
                name: product.name,
                price,
                currency: price.map(|_| ETVAS_CURRENCY),
                price_type: product.price_type,
                price_interval: product.price_interval,
            },
        },
    })
}

/// `123.45` as `12345`; refuses what is not a whole number of cents.
fn minor_units(price: f64) -> Result<i64, ApiError> {
    let cents = (price * 100.0).round();
    let exact = (price * 100.0 - cents).abs() < 1e-6;
    if !price.is_finite() || price < 0.0 || !exact || cents > 1e15 {
        return Err(ApiError::invalid(
            "data.product.price",
            "price must be a non-negative amount with at most two decimals",
        ));
    }
    // Checked above: a whole, non-negative number below 10^15.
    Ok(cents as i64)
}

/// Sends the event as its command and shapes the reply.
async fn send<M>(api: &PartnerApi, call: &Call, data: M) -> Result<CallbackReply, ApiError>
where
    M: Message + PartnerEventOf,
{
    let reference = data.reference().clone();
    let mut envelope = command(call, data);
    envelope.id = derived_id(&format!("{}\netvas-event\n{}\n{}", call.caller.tenant, M::TYPE, reference.id));
    let mapping: Mapping = api.bus.request(&envelope, api.settings.command_timeout).await?;
    let event = RepliedEvent { id: reference.id };
    Ok(match mapping.product {
        Some(product) => CallbackReply {
            status: 200,
            event,
            user: Some(mapping.user),
            data: ReplyData { user: None, product: Some(product) },
        },
        None => CallbackReply {
            status: 200,
            event,
            user: None,
            data: ReplyData { user: Some(mapping.user), product: None },
        },
    })
}

/// The seed's `event` object of a marketplace command.
trait PartnerEventOf {
    fn reference(&self) -> &PartnerEventRef;
}

macro_rules! partner_event_of {
    ($($ty:ty),*) => {
        $(impl PartnerEventOf for $ty {
            fn reference(&self) -> &PartnerEventRef {
                &self.0.event
            }
        })*
    };
}
partner_event_of!(UserCreate, UserUpdate, ProductPurchase, ProductCancel, ProductSuspend, ProductResume);

impl PartnerEventOf for UserDelete {
    fn reference(&self) -> &PartnerEventRef {
        &self.event
    }
}

/// The path parameter naming the integration whose callback URL it is.
pub(crate) const CLIENT_ID_PARAM: &str = "client_id";
/// The path parameter carrying its client secret, for marketplaces that can only be given a URL.
pub(crate) const CLIENT_SECRET_PARAM: &str = "client_secret";
/// Where an integration's own callback URLs start.
const INTEGRATION_BASE: &str = "/marketplace";

/// The caller of a callback at an integration's own URL: the integration whose client id the URL
/// names, proven by its client secret in the URL (`in_url`) or as HTTP Basic (Etvas sends no
/// header of ours; its product settings take a URL, and URLs carry Basic credentials).
pub(crate) async fn caller(
    api: &PartnerApi,
    headers: &HeaderMap,
    client_id: &str,
    in_url: &str,
    peer: IpAddr,
) -> Result<Caller, ApiError> {
    let refused = |why: &str| {
        let mut refused = ApiError::unauthorized(why);
        refused.headers.push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"etvas-events\"")));
        refused
    };
    let secret = if in_url.is_empty() {
        match basic_credentials(headers.get(header::AUTHORIZATION)) {
            Ok(Some((id, secret))) if id == client_id => secret,
            Ok(Some(_)) => return Err(refused("the Basic user is not the client id this URL names")),
            Ok(None) | Err(()) => return Err(refused("send the integration's client id and secret as HTTP Basic")),
        }
    } else {
        in_url.to_owned()
    };
    let (tenant, integration) = crate::edge::portal::authenticate(api, client_id, &secret, peer).await?;
    let now = Utc::now().timestamp_millis();
    let claims = Claims {
        integration_id: integration.id,
        tenant,
        bundle: integration.bundle,
        allowed_endpoints: integration.allowed_endpoints,
        scope: None,
        iat: now,
        exp: now,
    };
    integration_caller(claims, headers)
}

/// `path` as logs may show it: a secret callback URL's secret withheld.
pub(crate) fn loggable(path: &str) -> std::borrow::Cow<'_, str> {
    let Some(rest) = path.strip_prefix(INTEGRATION_BASE).and_then(|rest| rest.strip_prefix('/')) else {
        return path.into();
    };
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [client_id, _secret, "etvas-events"] => format!("{INTEGRATION_BASE}/{client_id}/…/etvas-events").into(),
        _ => path.into(),
    }
}

/// The marketplace's callback: through the partner pipeline with a key of the organisation, and
/// at an integration's own URLs for marketplaces that send no key (Etvas).
pub(crate) fn routes() -> Vec<Route> {
    use crate::edge::router::{Access, Door, Handler, Returns, schema_of};
    use http::Method;
    let route = |path: String, operation, summary| Route {
        door: Door::Marketplace,
        method: Method::POST,
        path,
        operation,
        summary,
        access: Access::Permission(schemas::integrations::Permission::CustomersWrite),
        body: Some(schema_of::<Callback>),
        status: 200,
        returns: Returns::Bare(schema_of::<CallbackReply>),
        handler: Handler::Partner(Some(|api, call| Box::pin(receive(api, call)))),
    };
    vec![
        route(
            at("/etvas-events"),
            "receiveEtvasEvent",
            "The Etvas marketplace callback: user and product events, answered with our ids.",
        ),
        route(
            format!("{INTEGRATION_BASE}/{{{CLIENT_ID_PARAM}}}/etvas-events"),
            "receiveEtvasEventAsIntegration",
            "The Etvas callback at an integration's URL, its client id and secret as HTTP Basic.",
        ),
        route(
            format!("{INTEGRATION_BASE}/{{{CLIENT_ID_PARAM}}}/{{{CLIENT_SECRET_PARAM}}}/etvas-events"),
            "receiveEtvasEventAtSecretUrl",
            "The Etvas callback at an integration's secret URL (the product URL Etvas is given).",
        ),
    ]
}
