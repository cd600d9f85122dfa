//! The subscription routes (INVERS Messaging API): an integration asks for its own AMQP queue of
//! its tenant's events, among those its key may read (`VehicleChanged` needs `vehicles:read`,
//! `ride.ended` needs `rides:read`, …), and gets a broker user and password, shown once, that
//! can read that queue and nothing else. The password never leaves this request: the command
//! carries the broker's salted hash of it. The queue is bound to the subaccounts the caller
//! reads, and a caller sees only subscriptions within its own reach.

use http::StatusCode;
use readside::Deleted;
use readside::subscriptions::{StoredSubscription, Subscription};
use ring::digest;
use ring::rand::SecureRandom;
use schemars::JsonSchema;
use schemas::integrations::{CreateSubscription, DeleteSubscription};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api_keys;
use crate::edge::body::parse_body;
use crate::edge::commands::command;
use crate::edge::envelope::db_error;
use crate::edge::envelope::{Answer, ApiError};
use crate::edge::partner::PartnerApi;
use crate::edge::partner::routes::Call;

/// Length of a subscription's broker password.
const PASSWORD_LEN: usize = 32;

/// `POST /subscriptions`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewSubscription {
    /// `[a-z0-9-]`, 1 to 40: the queue is `voltbus.subscriber.{organisation}.{name}`.
    #[schemars(length(min = 1, max = 40))]
    name: String,
    /// Event types to receive (1 to 50), among those the key may read.
    #[schemars(length(min = 1, max = 50))]
    events: Vec<String>,
}

/// How to connect, shown once.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Credentials {
    /// `amqp://user:password@host:port/vhost`.
    url: String,
    /// Broker user.
    username: String,
    /// Its password: only in this answer.
    password: String,
}

/// A new subscription with its credentials.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SubscriptionWithCredentials {
    #[serde(flatten)]
    subscription: Subscription,
    /// How to connect (shown once).
    amqp: Option<Credentials>,
}

/// `rabbit_password_hashing_sha256`: base64(salt ‖ SHA-256(salt ‖ password)), which the broker
/// stores as given.
fn broker_hash(password: &str, random: &dyn SecureRandom) -> Result<String, ApiError> {
    use base64::Engine as _;
    let mut salted = [0u8; 4].to_vec();
    random.fill(&mut salted).map_err(|_| ApiError::internal())?;
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(&salted);
    context.update(password.as_bytes());
    salted.extend_from_slice(context.finish().as_ref());
    Ok(base64::engine::general_purpose::STANDARD.encode(salted))
}

/// `POST /subscriptions`.
pub(crate) async fn create(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let request: NewSubscription = parse_body(&call.body)?;
    let name = request.name;
    let fine = (1..=40).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !fine {
        return Err(ApiError::invalid("name", "name must be 1 to 40 of a-z, 0-9 and -"));
    }
    if request.events.is_empty() || request.events.len() > 50 {
        return Err(ApiError::invalid("events", "1 to 50 event types"));
    }
    for event in &request.events {
        if !call.caller.may_receive(event)? {
            return Err(ApiError::invalid("events", format!("`{event}` is not an event subscribers can receive")));
        }
    }
    let Some(broker) = api.settings.amqp_url.as_deref() else {
        return Err(ApiError::conflict("subscriptions need RabbitMQ; this platform runs without it"));
    };
    let password = api_keys::random_text(PASSWORD_LEN, &api.random).map_err(|_| ApiError::internal())?;
    let username = format!("vbsub-{}-{name}", call.caller.tenant);
    let create = CreateSubscription {
        subscription_id: Uuid::now_v7(),
        name,
        events: request.events,
        username: username.clone(),
        password_hash: broker_hash(&password, &api.random)?,
        key_id: call.caller.key().map(|key| key.key.id),
        audience: Some(call.caller.audience()),
    };
    let subscription: Subscription = api.bus.request(&command(&call, create), api.settings.command_timeout).await?;
    // A cluster's first node: its subscriber queue is reachable from any of them.
    let node = bus::nodes(broker).next().unwrap_or(broker);
    let mut url = url::Url::parse(node).map_err(|_| ApiError::internal())?;
    let credentials_set = url.set_username(&username).is_ok() && url.set_password(Some(&password)).is_ok();
    if !credentials_set {
        return Err(ApiError::internal());
    }
    let amqp = Credentials { url: url.to_string(), username, password };
    let answer = SubscriptionWithCredentials { subscription, amqp: Some(amqp) };
    Ok(Answer::with_status(StatusCode::CREATED, answer).withholding("amqp"))
}

/// Whether the caller reads everything `stored` may receive.
fn sees(call: &Call, stored: &StoredSubscription) -> bool {
    call.caller.sees_receiver(&stored.audience, stored.subscription.events.iter().map(String::as_str))
}

/// `GET /subscriptions`.
pub(crate) async fn list(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let all = readside::subscriptions::list(&api.database, call.caller.tenant.as_str()).await.map_err(db_error)?;
    let seen: Vec<Subscription> = all.into_iter().filter(|s| sees(&call, s)).map(|s| s.subscription).collect();
    let page = crate::edge::query::page_of(call.query.as_deref())?;
    Ok(Answer::page_of(seen, page))
}

/// `DELETE /subscriptions/{id}`.
pub(crate) async fn delete(api: &PartnerApi, call: Call) -> Result<Answer, ApiError> {
    let id = call.id("id")?;
    readside::subscriptions::find(&api.database, call.caller.tenant.as_str(), id)
        .await
        .map_err(db_error)?
        .filter(|stored| sees(&call, stored))
        .ok_or_else(|| ApiError::not_found(format!("no subscription {id}")))?;
    let removed: Deleted = api
        .bus
        .request(&command(&call, DeleteSubscription { subscription_id: id }), api.settings.command_timeout)
        .await?;
    Ok(Answer::ok(removed))
}
