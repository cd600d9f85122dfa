//! Scopes hold on every way out (issue 24): whatever a caller cannot read through the API, it
//! never receives by any other way. The suite is generated, not hand-listed:
//!
//! - routes: every operation of the partner API's document (made from the route table), every
//!   mobile route and every public door of the portal, each tried by five kinds of stranger
//!   (a key of another organisation, a key of another subaccount, a key lacking the route's
//!   permission, a machine token of another integration, a mobile session of another customer)
//!   on the victim's own ids; refused (401/403/404, or 403 exactly for the missing permission),
//!   or answered with nothing of the victim's; and nothing of the victim's changed afterwards;
//! - events: every event type the catalogue offers partners (webhook endpoints, subscriber
//!   queues), voltbus's operational webhooks and every realtime channel, made to happen for the
//!   victim; once its rightful receiver has it, the receivers of another organisation and of
//!   another subaccount (or customer) have nothing of it.
//!
//! A route or an event type that the suite cannot probe fails it, so what is added later is
//! covered by construction. It prints `isolation: N probes (routes R, events E), N refused, 0 leaked`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::ConnectOptions;
use bus::nats::NatsConnection;
use bus::nats::accounts::{Accounts, Credentials, Permissions};
use chrono::Utc;
use futures_util::{FutureExt, StreamExt};
use lapin::options::{BasicAckOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use schemas::subjects::Channel;
use schemas::vehicles::{Position, Reading, VehicleState};
use schemas::{AnyMessage, Envelope, Reach, TenantId, subjects};
use serde_json::{Value, json};
use uuid::Uuid;
use voltbus::charger_simulator::Behaviour;

use crate::fleet::report;
use crate::partner::Platform;
use crate::private_nats::PrivateNats;
use crate::replenish::{Qpay, qpay, with_qpay};
use crate::support::{request, unique};
use crate::webhooks::{Answer, Receiver};

/// A customer and a finished ride in `fleet` by `key` (its pricing plan set by the organisation's
/// `admin`): `customer.created`, `ride.started`, `vehicle.status_changed` twice and `ride.ended`.
/// Returns both ids.
pub(crate) async fn ride_in(platform: &Platform, admin: &str, key: &str, fleet: Uuid) -> (String, String) {
    let plan = json!({ "currency": "EUR", "unlock_cents": 100, "per_minute_cents": 10, "per_km_cents": 0 });
    ok(200, platform.call_in(admin, fleet, "PUT", "/pricing", Some(plan)).await);
    let vin = format!("VIN{}", &Uuid::now_v7().simple().to_string()[20..]);
    let vehicle = ok(201, platform.call(key, "POST", "/vehicles", Some(json!({ "vin": vin }))).await);
    let customer = ok(201, platform.call(key, "POST", "/customers", Some(json!({ "name": "Rider" }))).await);
    let customer = text(&customer["id"]);
    let credit = json!({ "action": "credit", "amount_cents": 5_000, "description": "top-up" });
    ok(201, platform.call(key, "POST", &format!("/customers/{customer}/wallet"), Some(credit)).await);
    let start = json!({ "customer_id": customer, "vehicle_id": vehicle["id"] });
    let ride = text(&ok(201, platform.call(key, "POST", "/rides", Some(start)).await)["id"]);
    let end = json!({ "end_latitude": 52.53, "end_longitude": 13.41 });
    ok(200, platform.call(key, "POST", &format!("/rides/{ride}/end"), Some(end)).await);
    (customer, ride)
}

/// The `data` of an answer that must have `status`.
fn ok(status: u16, (got, body, _): (u16, Value, http::HeaderMap)) -> Value {
    assert_eq!(got, status, "{body}");
    body["data"].clone()
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_else(|| panic!("not text: {value}")).to_owned()
}

/// Whose a marker is: what a stranger of each kind must never be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Owner {
    /// The organisation's name: no secret to its own keys and phones.
    Tenant,
    /// What the organisation's admins alone manage (integrations, keys, workshops).
    Organisation,
    /// Subaccount B's: its vehicles, customers, rides, zones, plan, and what B's key made.
    Subaccount,
    /// The first phone's customer (a customer of the whole organisation, which its keys read).
    Customer,
    /// What only the first phone reads (its purchases, invoices).
    Phone,
}

/// The five kinds of stranger.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stranger {
    /// A key (organisation admin, every permission) of another organisation.
    OtherOrganisation,
    /// A key (every permission) limited to subaccount A of the victim's organisation.
    OtherSubaccount,
    /// A key of the victim's organisation without the route's permission.
    LackingPermission,
    /// A machine token (ALL_ACCESS) of another organisation's integration.
    OtherIntegration,
    /// The mobile session of another customer of the victim's organisation.
    OtherCustomer,
    /// Receivers made by a key of subaccounts A and B with every permission, narrowed to A and
    /// without `customers:read` before the events happen (events only).
    NarrowedKey,
}

const STRANGERS: [Stranger; 5] = [
    Stranger::OtherOrganisation,
    Stranger::OtherSubaccount,
    Stranger::LackingPermission,
    Stranger::OtherIntegration,
    Stranger::OtherCustomer,
];

impl Stranger {
    /// What of the victim's this stranger must never see.
    fn must_not_see(self) -> &'static [Owner] {
        use Owner::*;
        match self {
            Stranger::OtherOrganisation | Stranger::OtherIntegration => {
                &[Tenant, Organisation, Subaccount, Customer, Phone]
            }
            // Organisation-wide, without the route's permission (or any, on routes needing none).
            Stranger::LackingPermission | Stranger::OtherCustomer | Stranger::NarrowedKey => {
                &[Organisation, Subaccount, Customer, Phone]
            }
            // The organisation's customers (a phone's among them) are read by all of its keys.
            Stranger::OtherSubaccount => &[Organisation, Subaccount, Phone],
        }
    }
}

/// What the probes found.
#[derive(Default)]
struct Tally {
    routes: usize,
    events: usize,
    /// Probes that got nothing of the victim's.
    refused: usize,
    /// Route probes of those refused by their status,
    by_status: usize,
    /// and answered with the stranger's own (a list of its own, its own key).
    own: usize,
    leaks: Vec<String>,
}

impl Tally {
    fn probe(&mut self, route: bool, leak: Option<String>) {
        if route {
            self.routes += 1;
        } else {
            self.events += 1;
        }
        match leak {
            Some(leak) => self.leaks.push(leak),
            None => self.refused += 1,
        }
    }

    /// A route probe: refused by its status (4xx), or answered with nothing of the victim's.
    fn route(&mut self, status: u16, leak: Option<String>) {
        match (&leak, (400..500).contains(&status)) {
            (None, true) => self.by_status += 1,
            (None, false) => self.own += 1,
            (Some(_), _) => {}
        }
        self.probe(true, leak);
    }
}

/// The victim: organisation V, its subaccount B, and a phone of V; ids of one of everything.
struct Victim {
    tenant: String,
    admin: String,
    fleet: Uuid,
    ids: HashMap<&'static str, String>,
    /// What must not show in a stranger's answer, by owner.
    markers: Vec<(String, Owner)>,
    /// The victim's things by id (and secrets), by owner: a stranger's change naming one must be refused.
    named: Vec<(String, Owner)>,
}

impl Victim {
    fn id(&self, name: &str) -> &str {
        self.ids.get(name).unwrap_or_else(|| panic!("the victim has no {name}"))
    }

    fn keep(&mut self, name: &'static str, value: impl Into<String>, owner: Owner) -> String {
        let value = value.into();
        self.ids.insert(name, value.clone());
        self.markers.push((value.clone(), owner));
        self.named.push((value.clone(), owner));
        value
    }

    /// The first of the victim's things `stranger` may not reach that a request names.
    fn named_in(&self, stranger: Stranger, asked: &str) -> Option<&str> {
        self.named
            .iter()
            .filter(|(_, owner)| stranger.must_not_see().contains(owner))
            .map(|(id, _)| id.as_str())
            .find(|id| asked.contains(id))
    }

    /// The first of the markers `stranger` may not see that `answer` holds, unless the request
    /// itself carried it (a stranger's own words echoed back tell it nothing).
    fn leaked_in(&self, stranger: Stranger, answer: &str, asked: &str) -> Option<&str> {
        self.markers
            .iter()
            .filter(|(_, owner)| stranger.must_not_see().contains(owner))
            .map(|(marker, _)| marker.as_str())
            .find(|marker| answer.contains(marker) && !asked.contains(marker))
    }
}

/// A phone signed in to the mobile API (EVM seed): its session and its realtime credentials.
struct Phone {
    addr: SocketAddr,
    tenant: String,
    token: String,
    topic: String,
    credentials: Credentials,
}

impl Phone {
    async fn sign_in(platform: &Platform, tenant: &str, phone: &str) -> Self {
        let app = crate::charging::App::sign_in(platform, tenant, phone).await;
        let nats = &app.nats;
        Self {
            addr: platform.addr(),
            tenant: tenant.to_owned(),
            token: app.token().to_owned(),
            topic: text(&nats["topic"]),
            credentials: Credentials { jwt: text(&nats["user"]), seed: text(&nats["pass"]) },
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        vec![("authorization", format!("Bearer {}", self.token)), ("x-tenant", self.tenant.clone())]
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let headers = self.headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let body = body.map(|b| b.to_string());
        let (status, body, _) = request(self.addr, method, &format!("/api/v1{path}"), &headers, body.as_deref()).await;
        (status, body)
    }

    /// Its own NATS connection, with the credentials the sign-in gave.
    async fn client(&self, server: &PrivateNats) -> async_nats::Client {
        ConnectOptions::with_credentials(&self.credentials.creds_file()).unwrap().connect(server.url()).await.unwrap()
    }

    /// The customer behind it.
    fn customer(&self) -> &str {
        self.topic.rsplit('.').next().unwrap_or_default()
    }
}

/// Everything the suite runs against.
struct World {
    platform: Platform,
    server: PrivateNats,
    accounts: Accounts,
    qpay: Arc<Qpay>,
    victim: Victim,
    /// Subaccount A of the victim's organisation, and a key of it.
    fleet_a: Uuid,
    key_a: String,
    /// Organisation P: its admin key and an integration's machine token.
    other_admin: String,
    other_token: String,
    /// Keys of V lacking one permission, by the access they lack (`admin`: every permission but
    /// not admin; `none`: no permission at all).
    lacking: BTreeMap<String, String>,
    /// The victim's phone, another phone of V, and a phone of P.
    first_phone: Phone,
    second_phone: Phone,
    other_phone: Phone,
    /// Takes the webhook endpoints the probes make.
    probe_receiver: Receiver,
}

#[tokio::test]
async fn no_stranger_reads_the_victims_data_by_any_route_or_event() {
    let started = Instant::now();
    let state = Arc::new(Qpay::default());
    let provider = qpay(Arc::clone(&state)).await;
    let paystack = crate::replenish::paystack(Arc::default()).await;
    let (accounts, server, platform) = crate::mobile::with_mobile_nats_and(|s| {
        with_qpay(provider)(s);
        s.paystack.base_url = Some(format!("http://{paystack}"));
        s.paystack.secret_key = "sk_test_secret".into();
        crate::webhooks::fast_retries(s);
        s.webhooks.retry_schedule_ms = vec![100, 100, 100, 100];
        s.webhooks.disable_after_seconds = 2;
        // Hundreds of probes from one address, many of them refused on purpose.
        s.partner.failed_authentications_per_minute = 1_000_000;
    })
    .await;
    let mut tally = Tally::default();
    let mut world = World::build(platform, accounts, server, state).await;
    let simulator = world.chargers();
    world.events(&mut tally).await;
    world.settled().await;
    let before = world.snapshot().await;
    world.routes(&mut tally).await;
    let after = world.snapshot().await;
    let changed: Vec<String> = before
        .iter()
        .filter(|(read, value)| after.get(*read) != Some(value))
        .map(|(read, value)| format!("{read}:\n  before {value}\n  after  {}", after.get(read).unwrap_or(&Value::Null)))
        .collect();
    let probes = tally.routes + tally.events;
    println!(
        "isolation: {probes} probes (routes {}, events {}), {} refused, {} leaked \
         ({} routes refused by status, {} answered with the stranger's own; {:.0} s)",
        tally.routes,
        tally.events,
        tally.refused,
        tally.leaks.len(),
        tally.by_status,
        tally.own,
        started.elapsed().as_secs_f64()
    );
    assert!(tally.leaks.is_empty(), "leaked:\n{}", tally.leaks.join("\n"));
    assert!(changed.is_empty(), "a stranger's probe changed the victim's data:\n{}", changed.join("\n"));
    simulator.abort();
    world.platform.stop().await;
}

/// An Etvas `user.create` for partner user `user` (the seed's body).
fn etvas_user_create(user: Uuid) -> Value {
    json!({
        "event": { "id": Uuid::now_v7(), "type": "user.create", "timestamp": 19786584376u64 },
        "user": { "id": user, "partnerId": null, "auth": { "token": Uuid::now_v7(), "expires": 2086584376 } },
        "data": {
            "user": { "firstName": "Vic", "lastName": "Tim", "email": format!("{}@etvas.example", unique("u")) },
            "webIdentity": { "status": "verified", "verificationId": Uuid::now_v7() }
        }
    })
}

impl World {
    async fn build(platform: Platform, accounts: Accounts, server: PrivateNats, qpay: Arc<Qpay>) -> Self {
        let (tenant, admin) = platform.organisation().await;
        let (_, other_admin) = platform.organisation().await;
        let (fleet, fleet_a) = (Uuid::now_v7(), Uuid::now_v7());
        let mut victim = Victim { tenant, admin, fleet, ids: HashMap::new(), markers: Vec::new(), named: Vec::new() };
        victim.markers.push((victim.tenant.clone(), Owner::Tenant));
        victim.markers.push((fleet.to_string(), Owner::Subaccount));
        let limits = json!({ "per_minute": 100_000, "per_hour": 1_000_000, "per_day": 10_000_000 });
        let scoped = |fleet: Uuid| {
            json!({ "name": "fleet", "scope": "subaccount", "subaccount_id": fleet, "bundle": "ALL_ACCESS",
                    "rate_limits": limits })
        };
        let (key_b_id, key_b) = platform.create_key(&victim.admin, scoped(fleet)).await;
        victim.keep("key_b", key_b.clone(), Owner::Subaccount);
        victim.keep("key_b_id", key_b_id, Owner::Organisation);
        let (_, key_a) = platform.create_key(&victim.admin, scoped(fleet_a)).await;

        // One of everything, in subaccount B (by B's key) or the organisation's (by its admin).
        let plan = json!({ "currency": "EUR", "unlock_cents": 100, "per_minute_cents": 10 });
        ok(200, platform.call_in(&victim.admin, fleet, "PUT", "/pricing", Some(plan)).await);
        let vin = format!("VB{}", &Uuid::now_v7().simple().to_string()[18..]);
        let vehicle = ok(201, platform.call(&key_b, "POST", "/vehicles", Some(json!({ "vin": vin }))).await);
        victim.keep("vehicle", text(&vehicle["id"]), Owner::Subaccount);
        victim.keep("vin", vin, Owner::Subaccount);
        let email = format!("{}@victim.example", unique("b"));
        let customer = ok(201, platform.call(&key_b, "POST", "/customers", Some(json!({ "email": email }))).await);
        let customer = victim.keep("customer", text(&customer["id"]), Owner::Subaccount);
        victim.keep("email", email, Owner::Subaccount);
        let credit = json!({ "action": "credit", "amount_cents": 5_000, "description": "top-up" });
        let wallet = format!("/customers/{customer}/wallet");
        let entry = ok(201, platform.call(&key_b, "POST", &wallet, Some(credit)).await);
        victim.keep("entry", text(&entry["id"]), Owner::Subaccount);
        let start = json!({ "customer_id": customer, "vehicle_id": victim.id("vehicle") });
        let ride = ok(201, platform.call(&key_b, "POST", "/rides", Some(start)).await);
        victim.keep("ride", text(&ride["id"]), Owner::Subaccount);
        let zone_name = unique("zone");
        let zone = json!({ "name": zone_name, "type": "parking", "subaccount_id": fleet,
            "polygon": [[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1]] });
        let zone = ok(201, platform.call(&victim.admin, "POST", "/zones", Some(zone)).await);
        victim.keep("zone", text(&zone["id"]), Owner::Subaccount);
        victim.keep("zone_name", zone_name, Owner::Subaccount);
        let honk = format!("/vehicles/{}/commands/honk-and-flash", victim.id("vehicle"));
        let command = ok(202, platform.call(&key_b, "POST", &honk, Some(json!({ "wait": false }))).await);
        victim.keep("command", text(&command["id"]), Owner::Subaccount);
        let subscription = json!({ "name": unique("sub").replace('_', "-"), "events": ["VehicleChanged"] });
        let subscription = ok(201, platform.call(&key_b, "POST", "/subscriptions", Some(subscription)).await);
        victim.keep("subscription", text(&subscription["id"]), Owner::Subaccount);
        victim.keep("queue", text(&subscription["queue"]), Owner::Subaccount);
        let (integration, client_id, _) =
            crate::integrations::create(&platform, &victim.admin, "ALL_ACCESS", json!([])).await;
        victim.keep("integration", integration, Owner::Organisation);
        victim.keep("client_id", client_id, Owner::Organisation);
        let workshop = json!({ "name": unique("workshop") });
        let workshop = ok(201, platform.call(&victim.admin, "POST", "/workshops", Some(workshop)).await);
        victim.keep("workshop", text(&workshop["id"]), Owner::Organisation);
        let charger = json!({ "device_number": unique("CH"), "location": [106.91, 47.92], "price": 450,
            "waiting_price": 50, "currency": "MNT" });
        let charger = ok(201, platform.call(&victim.admin, "POST", "/chargers", Some(charger)).await);
        // A charger is the organisation's, for every key and phone of it: no marker.
        victim.ids.insert("charger", text(&charger["id"]));
        let etvas_user = Uuid::now_v7();
        let (status, created, _) =
            platform.call(&victim.admin, "POST", "/etvas-events", Some(etvas_user_create(etvas_user))).await;
        assert_eq!(status, 200, "{created}");
        victim.ids.insert("etvas_user", etvas_user.to_string());

        // Another organisation's integration and token; two phones of V, one of P.
        let (_, client_id, secret) =
            crate::integrations::create(&platform, &other_admin, "ALL_ACCESS", json!([])).await;
        let other_token = crate::integrations::token(&platform, &client_id, &secret).await.unwrap();
        let first_phone = Phone::sign_in(&platform, &victim.tenant, "+97680000001").await;
        let second_phone = Phone::sign_in(&platform, &victim.tenant, "+97680000002").await;
        let other_tenant = platform.organisation().await.0;
        let other_phone = Phone::sign_in(&platform, &other_tenant, "+97680000003").await;
        victim.keep("phone_customer", first_phone.customer(), Owner::Customer);
        victim.markers.push(("+97680000001".into(), Owner::Customer));

        let mut world = World {
            platform,
            server,
            accounts,
            qpay,
            victim,
            fleet_a,
            key_a,
            other_admin,
            other_token,
            lacking: BTreeMap::new(),
            first_phone,
            second_phone,
            other_phone,
            probe_receiver: Receiver::start(vec![]).await,
        };
        world.lacking_keys(limits).await;
        world
    }

    /// Keys of V, organisation-wide, each without one permission (or admin, or any).
    async fn lacking_keys(&mut self, limits: Value) {
        let all: Vec<String> =
            publishers::permissions::ALL.iter().map(|p| text(&serde_json::to_value(p).unwrap())).collect();
        let mut wanted: Vec<(String, Vec<String>)> =
            all.iter().map(|p| (p.clone(), all.iter().filter(|q| *q != p).cloned().collect())).collect();
        wanted.push(("admin".into(), all.clone()));
        wanted.push(("none".into(), Vec::new()));
        for (lacks, permissions) in wanted {
            let body = json!({ "name": format!("lacks {lacks}"), "permissions": permissions, "rate_limits": limits });
            let (_, key) = self.platform.create_key(&self.victim.admin, body).await;
            self.lacking.insert(lacks, key);
        }
    }

    /// The victim's charger, played by the simulator with its own NATS credentials.
    fn chargers(&self) -> tokio::task::JoinHandle<()> {
        let device = self.accounts.user("chargers", &Permissions::All, None).unwrap();
        let (url, tenant) = (self.server.url(), TenantId::new(&self.victim.tenant).unwrap());
        let charger: Uuid = self.victim.id("charger").parse().unwrap();
        tokio::spawn(async move {
            let nats = NatsConnection::connect_with(&url, "simulator", Some(device.creds_file())).await.unwrap();
            let behaviour = Behaviour { every: Duration::from_millis(300), power: 240_000.0 };
            let _ =
                voltbus::charger_simulator::run(nats, tenant, vec![charger], behaviour, std::future::pending()).await;
        })
    }
}

/// A subscriber queue and the URL its own credentials read it with.
struct Queue {
    name: String,
    url: String,
}

impl Queue {
    /// Every message now in the queue, taken.
    async fn drain(&self) -> Vec<Envelope<AnyMessage>> {
        let connection = lapin::Connection::connect(&self.url, lapin::ConnectionProperties::default()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let mut taken = Vec::new();
        while let Some(message) = channel
            .basic_get(self.name.as_str().into(), lapin::options::BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            taken.push(bus::amqp::decode(&message.delivery).unwrap());
        }
        let _ = connection.close(200, "drained".into()).await;
        taken
    }

    /// Messages as they come, until `enough` says the ones so far are; all of them.
    async fn until(&self, what: &str, enough: impl Fn(&[Envelope<AnyMessage>]) -> bool) -> Vec<Envelope<AnyMessage>> {
        let connection = lapin::Connection::connect(&self.url, lapin::ConnectionProperties::default()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let mut deliveries = channel
            .basic_consume(
                self.name.as_str().into(),
                "rightful".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let mut got = Vec::new();
        while !enough(&got) {
            let next = tokio::time::timeout(Duration::from_secs(30), deliveries.next()).await;
            let Ok(Some(Ok(delivery))) = next else {
                let types: BTreeSet<&str> = got.iter().map(|e| e.type_name.as_str()).collect();
                panic!("{what}: never came (got {types:?}); no trigger of the suite makes it happen: add one");
            };
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            got.push(bus::amqp::decode(&delivery).unwrap());
        }
        let _ = connection.close(200, "read".into()).await;
        got
    }
}

/// The event types the catalogue offers partners (by webhook and subscriber queue).
fn offered() -> BTreeSet<&'static str> {
    schemas::descriptors().iter().filter(|d| d.read.is_some()).map(|d| d.type_name).collect()
}

/// The event types webhook endpoints take: the seed's, and voltbus's operational ones.
fn webhook_types() -> BTreeSet<&'static str> {
    consumers::webhooks::EVENT_TYPES.iter().chain(&consumers::webhooks::operational::EVENTS).copied().collect()
}

impl World {
    async fn call(&self, key: &str, method: &str, path: &str, body: Value) -> Value {
        let body = (!body.is_null()).then_some(body);
        let (status, answer, _) = self.platform.call(key, method, path, body).await;
        assert!((200..300).contains(&status), "{method} {path}: {status} {answer}");
        answer["data"].clone()
    }

    async fn endpoint(&self, key: &str, receiver: &Receiver, events: Value) -> String {
        text(&self.call(key, "POST", "/webhooks", json!({ "url": receiver.url(), "events": events })).await["id"])
    }

    async fn subscription(&self, key: &str) -> Queue {
        let body = json!({ "name": unique("sub").replace('_', "-"), "events": offered() });
        let created = self.call(key, "POST", "/subscriptions", body).await;
        Queue { name: text(&created["queue"]), url: text(&created["amqp"]["url"]) }
    }

    /// Every event a partner can receive, made to happen for the victim while the rightful
    /// receivers and the strangers' listen; once the rightful ones have each, the strangers'
    /// must have none.
    async fn events(&mut self, tally: &mut Tally) {
        let (admin, fleet) = (self.victim.admin.as_str(), self.victim.fleet);
        let key_b = self.victim.id("key_b").to_owned();
        // Webhook endpoints: the organisation's (rightful), two of B's that fail (for the
        // operational events), and the strangers'.
        let rightful = Receiver::start(vec![]).await;
        self.endpoint(admin, &rightful, json!(["*"])).await;
        let flaky = Receiver::start(vec![Answer::Status(500); 5]).await;
        let flaky_id = self.endpoint(&key_b, &flaky, json!(["ride.ended"])).await;
        let broken = Receiver::start(vec![Answer::Status(500); 10_000]).await;
        let broken_id = self.endpoint(&key_b, &broken, json!(["ride.ended"])).await;
        let (other_org, other_sub) = (Receiver::start(vec![]).await, Receiver::start(vec![]).await);
        let other_org_id = self.endpoint(&self.other_admin, &other_org, json!(["*"])).await;
        let other_sub_id = self.endpoint(&self.key_a, &other_sub, json!(["*"])).await;
        // Subscriber queues of every offered event type.
        let (rightful_queue, other_org_queue, other_sub_queue) = (
            self.subscription(admin).await,
            self.subscription(&self.other_admin).await,
            self.subscription(&self.key_a).await,
        );
        // Receivers of a key of A and B, which is then narrowed to A and loses customers:read.
        let both =
            json!({ "name": "narrowed", "allowed_subaccount_ids": [self.fleet_a, fleet], "bundle": "ALL_ACCESS" });
        let (narrowed_id, narrowed_key) = self.platform.create_key(admin, both).await;
        let narrowed = Receiver::start(vec![]).await;
        let narrowed_endpoint = self.endpoint(&narrowed_key, &narrowed, json!(["*"])).await;
        let narrowed_queue = self.subscription(&narrowed_key).await;
        let all_but_customers: Vec<Value> = publishers::permissions::ALL
            .iter()
            .map(|p| serde_json::to_value(p).unwrap())
            .filter(|p| p != "customers:read")
            .collect();
        let narrowing = json!({ "allowed_subaccount_ids": [self.fleet_a], "permissions": all_but_customers });
        self.call(admin, "PATCH", &format!("/api-keys/{narrowed_id}"), narrowing).await;
        // The queue is rebound when the subscriptions group takes the key's change: before the
        // events, or a leak would be the test's own race.
        let amqp_url = self.platform.settings.amqp.url.clone().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while crate::support::event_bindings(&amqp_url, &narrowed_queue.name)
            .await
            .iter()
            .any(|key| key.contains(&fleet.to_string()) || key.contains(".customers."))
        {
            assert!(Instant::now() < deadline, "the narrowed key's queue was never rebound");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The phones: the victim's own topic; the others', their own and (refused by the server)
        // the victim's organisation's and the victim's.
        let victim_client = self.first_phone.client(&self.server).await;
        let mut heard = victim_client.subscribe(format!("{}.>", self.first_phone.topic)).await.unwrap();
        let mut strangers = Vec::new();
        for phone in [&self.second_phone, &self.other_phone] {
            let client = phone.client(&self.server).await;
            let mut subscribers = vec![client.subscribe(format!("{}.>", phone.topic)).await.unwrap()];
            for reach in [format!("voltbus.{}.>", self.victim.tenant), format!("{}.>", self.first_phone.topic)] {
                subscribers.push(client.subscribe(reach).await.unwrap());
            }
            strangers.push((client, subscribers));
        }
        victim_client.flush().await.unwrap();

        // B's customers, wallet, vehicles, telemetry, zone, plan, rides.
        let customer = text(&self.call(&key_b, "POST", "/customers", json!({ "name": "Cy" })).await["id"]);
        self.call(&key_b, "PATCH", &format!("/customers/{customer}"), json!({ "name": "Cyd" })).await;
        self.call(&key_b, "POST", &format!("/customers/{customer}/block"), json!({ "reason": "test" })).await;
        self.call(&key_b, "POST", &format!("/customers/{customer}/unblock"), json!({ "reason": "test" })).await;
        let credit = json!({ "action": "credit", "amount_cents": 5_000, "description": "top-up" });
        self.call(&key_b, "POST", &format!("/customers/{customer}/wallet"), credit).await;
        let vin = format!("VC{}", &Uuid::now_v7().simple().to_string()[18..]);
        let vehicle = text(&self.call(&key_b, "POST", "/vehicles", json!({ "vin": vin })).await["id"]);
        for status in ["maintenance", "available"] {
            self.call(&key_b, "PATCH", &format!("/vehicles/{vehicle}"), json!({ "status": status })).await;
        }
        let device = self.accounts.user("devices", &Permissions::All, None).unwrap();
        let device =
            NatsConnection::connect_with(&self.server.url(), "device", Some(device.creds_file())).await.unwrap();
        let tenant = TenantId::new(&self.victim.tenant).unwrap();
        for (charge, latitude) in [(50, 52.52), (10, 52.53)] {
            let now = Utc::now();
            let state = VehicleState {
                charge_level: Some(Reading { value: charge, time: now }),
                position: Some(Reading { value: Position { latitude, longitude: 13.405 }, time: now }),
                ..VehicleState::default()
            };
            let id: Uuid = vehicle.parse().unwrap();
            device.publish_durable(subjects::vehicle_state(&tenant, id), &report(&tenant, id, state)).await.unwrap();
        }
        let zone = json!({ "name": unique("zone"), "type": "no_ride", "subaccount_id": fleet,
            "polygon": [[14.0, 52.0], [14.1, 52.0], [14.1, 52.1], [14.0, 52.1]] });
        self.call(admin, "POST", "/zones", zone).await;
        let plan = json!({ "currency": "EUR", "unlock_cents": 100, "per_minute_cents": 12 });
        ok(200, self.platform.call_in(admin, fleet, "PUT", "/pricing", Some(plan)).await);
        // The first ride's end fails five times at both failing endpoints (attempts exhausted);
        // the second's, more than two seconds later, recovers one and disables the other.
        self.ride(&key_b, &customer, &vehicle, true).await;
        let first_end = Instant::now();
        let (purchase, invoice) = self.phone_events().await;
        tokio::time::sleep(Duration::from_millis(2_200).saturating_sub(first_end.elapsed())).await;
        self.ride(&key_b, &customer, &vehicle, false).await;
        self.victim.keep("purchase", purchase, Owner::Phone);
        self.victim.keep("invoice", invoice, Owner::Phone);
        self.victim.keep("endpoint", flaky_id.clone(), Owner::Subaccount);
        self.victim.markers.push((flaky.url(), Owner::Subaccount));

        // Webhooks: once the organisation's endpoint has each type about B, the strangers' have
        // none of them (an event's deliveries are all made in one transaction).
        let about_b = |body: &Value| {
            body["data"]["subaccount_id"] == json!(fleet)
                || [&flaky_id, &broken_id].iter().any(|id| body["data"]["endpoint_id"] == json!(id))
        };
        let wanted = webhook_types();
        let deadline = Instant::now() + Duration::from_secs(60);
        let bodies = loop {
            let bodies = rightful.bodies();
            let seen: BTreeSet<&str> =
                bodies.iter().filter(|b| about_b(b)).filter_map(|b| b["event"].as_str()).collect();
            if wanted.iter().all(|t| seen.contains(t)) {
                break bodies;
            }
            let missing: Vec<_> = wanted.iter().filter(|t| !seen.contains(*t)).collect();
            assert!(
                Instant::now() < deadline,
                "webhooks {missing:?} never came; no trigger of the suite makes them happen"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let delivery = self
            .platform
            .sql(&format!("SELECT id FROM webhook_deliveries WHERE endpoint_id = '{flaky_id}' LIMIT 1"))
            .await;
        self.victim.keep("delivery", delivery[0].try_get::<Uuid>("", "id").unwrap().to_string(), Owner::Subaccount);
        let ended = bodies.iter().find(|b| about_b(b) && b["event"] == "ride.ended").unwrap();
        self.victim.keep("event", text(&ended["event_id"]), Owner::Subaccount);
        for event in &wanted {
            let ids: Vec<String> =
                bodies.iter().filter(|b| about_b(b) && b["event"] == *event).map(|b| text(&b["event_id"])).collect();
            for (stranger, endpoint, receiver) in [
                (Stranger::OtherOrganisation, &other_org_id, &other_org),
                (Stranger::OtherSubaccount, &other_sub_id, &other_sub),
                (Stranger::NarrowedKey, &narrowed_endpoint, &narrowed),
            ] {
                let listed = ids.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(",");
                let rows = self
                    .platform
                    .sql(&format!(
                        "SELECT count(*) AS n FROM webhook_deliveries WHERE endpoint_id = '{endpoint}' AND event_id IN ({listed})"
                    ))
                    .await;
                let delivered: i64 = rows[0].try_get("", "n").unwrap();
                let received = receiver
                    .bodies()
                    .iter()
                    .map(Value::to_string)
                    .find_map(|b| self.victim.leaked_in(stranger, &b, "").map(str::to_owned));
                let leak = (delivered > 0 || received.is_some()).then(|| {
                    format!("webhook {event} → {stranger:?}'s endpoint ({delivered} deliveries, {received:?})")
                });
                tally.probe(false, leak);
            }
        }

        // Subscriber queues: once the organisation's queue has each offered type about B, the
        // broker routed none of them to the strangers' queues (routing is done at the publish).
        let types = offered();
        let rightful_got = rightful_queue
            .until("offered event types about B", |got| {
                let seen: BTreeSet<&str> = got
                    .iter()
                    .filter(|e| e.data.reach() == Reach::Subaccount(fleet))
                    .map(|e| e.type_name.as_str())
                    .collect();
                types.iter().all(|t| seen.contains(t))
            })
            .await;
        assert!(rightful_got.iter().all(|e| e.tenant.as_str() == self.victim.tenant));
        for (stranger, queue) in [
            (Stranger::OtherOrganisation, &other_org_queue),
            (Stranger::OtherSubaccount, &other_sub_queue),
            (Stranger::NarrowedKey, &narrowed_queue),
        ] {
            let got = queue.drain().await;
            for event in &types {
                let leaked = got.iter().find(|e| {
                    e.type_name == *event
                        && (e.tenant.as_str() == self.victim.tenant && stranger == Stranger::OtherOrganisation
                            || e.data.reach() == Reach::Subaccount(fleet))
                });
                tally.probe(false, leaked.map(|e| format!("queue {event} → {stranger:?}'s queue: {}", e.id)));
            }
        }

        // The phones: once the victim's has each channel, the others' connections (flushed: the
        // server sent them everything before its answer) hold nothing.
        let mut channels = BTreeSet::new();
        while channels.len() < Channel::ALL.len() {
            let message = tokio::time::timeout(Duration::from_secs(30), heard.next()).await;
            let Ok(Some(message)) = message else { panic!("the victim's phone heard only {channels:?}") };
            channels.insert(message.subject.rsplit('.').next().unwrap_or_default().to_owned());
        }
        for ((client, subscribers), stranger) in
            strangers.iter_mut().zip([Stranger::OtherCustomer, Stranger::OtherOrganisation])
        {
            client.flush().await.unwrap();
            let mut got = Vec::new();
            for subscriber in subscribers.iter_mut() {
                while let Some(Some(message)) = subscriber.next().now_or_never() {
                    got.push(message.subject.to_string());
                }
            }
            for channel in Channel::ALL {
                let leaked = got.iter().find(|s| s.ends_with(channel.as_str()));
                tally.probe(false, leaked.map(|s| format!("{} → {stranger:?}'s phone: {s}", channel.as_str())));
            }
        }
    }

    /// A ride of `customer` on `vehicle`, paused and resumed or not.
    async fn ride(&self, key: &str, customer: &str, vehicle: &str, pause: bool) {
        let start = json!({ "customer_id": customer, "vehicle_id": vehicle });
        let ride = text(&self.call(key, "POST", "/rides", start).await["id"]);
        if pause {
            self.call(key, "POST", &format!("/rides/{ride}/pause"), Value::Null).await;
            self.call(key, "POST", &format!("/rides/{ride}/resume"), Value::Null).await;
        }
        let end = json!({ "end_latitude": 52.53, "end_longitude": 13.41 });
        self.call(key, "POST", &format!("/rides/{ride}/end"), end).await;
    }

    /// The victim's phone tops up through QPay (`REPLENISHMENT`), charges (`CHARGING`) and pays
    /// the purchase from its balance (`PAYMENT`).
    async fn phone_events(&self) -> (String, String) {
        let phone = &self.first_phone;
        let (status, body) =
            phone.call("POST", "/customer/replenish", Some(json!({ "amount": 100_000, "option": "QPAY" }))).await;
        assert_eq!(status, 200, "{body}");
        let invoice = text(&body["invoiceId"]);
        let provider_invoice = self.qpay.invoices.lock().unwrap().keys().max().cloned().unwrap();
        self.qpay.paid.lock().unwrap().insert(provider_invoice, 1_000.0);
        let callback = format!("/api/v1/payments/qpay/callback?invoice={invoice}");
        assert_eq!(request(self.platform.addr(), "GET", &callback, &[], None).await.0, 200);
        let charger = self.victim.id("charger");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (status, body) = phone.call("POST", &format!("/devices/{charger}/start"), Some(json!({}))).await;
            if status == 200 {
                break;
            }
            assert!(Instant::now() < deadline, "charging never started: {status} {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // At least one reading with energy, then finish.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        let (status, finished) = phone.call("POST", &format!("/devices/{charger}/finish"), Some(json!({}))).await;
        assert_eq!(status, 200, "{finished}");
        let purchase = text(&finished["id"]);
        let (status, paid) =
            phone.call("POST", &format!("/purchases/{purchase}/pay"), Some(json!({ "option": "EVM" }))).await;
        assert_eq!(status, 200, "{paid}");
        (purchase, invoice)
    }

    /// Waits until every delivery of the victim's has finished, so the snapshot stands still.
    async fn settled(&self) {
        let query = format!(
            "SELECT count(*) AS n FROM webhook_deliveries WHERE tenant = '{}' AND status = 'pending'",
            self.victim.tenant
        );
        for _ in 0..300 {
            if self.platform.sql(&query).await[0].try_get::<i64>("", "n").unwrap() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the victim's webhook deliveries never settled");
    }
}

/// What a probe must meet besides showing nothing of the victim's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// Refused, or answered with nothing of the victim's.
    Nothing,
    /// Exactly this status (403 for the permission it lacks, 401 for a credential of another kind).
    Status(u16),
    /// Shows nothing of the victim's; a prompt to ask someone else (a payment provider), so
    /// naming the victim's things in it acts on nothing by itself.
    Prompt,
}

impl World {
    /// Every operation of the edge's OpenAPI document (every front door but the console's pages),
    /// by each kind of stranger, on the victim's own ids.
    async fn routes(&self, tally: &mut Tally) {
        let addr = self.platform.addr();
        let (_, document, _) = request(addr, "GET", "/openapi.json", &[], None).await;
        for (path, operations) in document["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let name = text(&operation["operationId"]);
                let access = text(&operation["x-required-access"]);
                let door = text(&operation["tags"][0]);
                let method = method.to_uppercase();
                let mobile = path.strip_prefix("/api/v1");
                let integration_url = path.starts_with("/marketplace/");
                let (url, body) = match (door.as_str(), mobile) {
                    ("mobile" | "providers", Some(relative)) => {
                        let what = if relative.starts_with("/devices/") { "charger" } else { "purchase" };
                        let filled = relative.replace("{id}", self.victim.id(what));
                        (format!("/api/v1{filled}{}", self.mobile_query(relative)), self.mobile_body(relative))
                    }
                    // An integration's own callback URL, named with the victim's client id: the
                    // credential is the secret (in the URL or as Basic), which no stranger has.
                    ("marketplace", _) if integration_url => {
                        let guessed = format!("evc_cs_{}", "a".repeat(40));
                        let url = path.replace("{client_id}", self.victim.id("client_id"));
                        (url.replace("{client_secret}", &guessed), self.body_for("receiveEtvasEvent"))
                    }
                    ("partner" | "portal" | "marketplace", _) if access != "own" => {
                        let relative = path.strip_prefix("/api/partner/v1").unwrap();
                        let url = format!("/api/partner/v1{}{}", self.fill(relative), self.query_for(&name));
                        let body = operation.get("requestBody").map(|_| {
                            self.body_for(&name).unwrap_or_else(|| panic!("{name}: no probe body; teach the suite one"))
                        });
                        (url, body)
                    }
                    // A charger's socket: the victim's charger, asked for by every stranger.
                    _ => (path.replace("{chargerId}", self.victim.id("charger")), self.door_body(path)),
                };
                // A provider's callback is a prompt to ask the provider what was paid, which no
                // stranger can answer: what it did shows in the victim's snapshot, not in its 200.
                let expect_prompt = door == "providers";
                for stranger in STRANGERS {
                    let (headers, expect) = match (door.as_str(), access.as_str(), mobile) {
                        (_, "session", _) => self.mobile_credentials(stranger, true),
                        (_, "own", Some(_)) => self.mobile_credentials(stranger, false),
                        (_, "own" | "public", None) => {
                            (self.partner_credentials(stranger, "public").0, Expect::Nothing)
                        }
                        _ => self.partner_credentials(stranger, &access),
                    };
                    let expect = match () {
                        () if expect_prompt => Expect::Prompt,
                        () if integration_url => Expect::Status(401),
                        () => expect,
                    };
                    let (status, leak) = self.probe(stranger, expect, &method, &url, &headers, body.as_ref()).await;
                    tally.route(status, leak.map(|leak| format!("{door} {name} {leak}")));
                }
            }
        }
    }

    /// The body of a door that checks its own credential (the portal's, a provider's callback).
    fn door_body(&self, path: &str) -> Option<Value> {
        match path {
            "/v1/integrations/auth/client-token" => Some(
                json!({ "clientId": self.victim.id("client_id"), "clientSecret": format!("evc_cs_{}", "a".repeat(40)) }),
            ),
            "/v1/integrations/auth/session" => Some(json!({ "sessionCode": "evc_sc_probe" })),
            // OAuth's token endpoint takes a form: the probe's JSON is refused before any client is read.
            "/oauth/token" => {
                Some(json!({ "grant_type": "client_credentials", "client_id": self.victim.id("client_id") }))
            }
            "/v1/integrations/billing/paystack/webhook" => {
                Some(json!({ "event": "charge.success", "data": { "reference": "probe" } }))
            }
            "/v1/integrations/embed"
            | "/.well-known/oauth-authorization-server"
            | "/health"
            | "/health/ready"
            | "/health/live"
            | "/metrics"
            | "/openapi.json"
            | "/asyncapi.json"
            | "/ocpp/{chargerId}" => None,
            other => panic!("door {other}: no probe body; teach the suite one"),
        }
    }

    /// One probe: its status, and what it leaked, if anything.
    async fn probe(
        &self,
        stranger: Stranger,
        expect: Expect,
        method: &str,
        url: &str,
        headers: &[(&'static str, String)],
        body: Option<&Value>,
    ) -> (u16, Option<String>) {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let sent = body.map(Value::to_string);
        let (status, answer, _) = request(self.platform.addr(), method, url, &headers, sent.as_deref()).await;
        let (answer, asked) = (answer.to_string(), format!("{url} {}", sent.unwrap_or_default()));
        let what = format!("{method} {url} by {stranger:?}: {status} {answer}");
        let leak = if status >= 500 {
            Some(format!("failed: {what}"))
        } else if let Expect::Status(expected) = expect
            && status != expected
        {
            Some(format!("expected {expected}: {what}"))
        } else if let Some(id) = self
            .victim
            .named_in(stranger, &asked)
            .filter(|_| method != "GET" && status < 300 && expect != Expect::Prompt)
        {
            // A change naming the victim's things went through: whatever it answered, it acted.
            Some(format!("acted on {id}: {what}"))
        } else {
            self.victim.leaked_in(stranger, &answer, &asked).map(|marker| format!("showed {marker}: {what}"))
        };
        (status, leak)
    }

    /// The credentials of `stranger` on a partner route needing `access`, and what it must get.
    fn partner_credentials(&self, stranger: Stranger, access: &str) -> (Vec<(&'static str, String)>, Expect) {
        let key = |key: &str| vec![("x-partner-api-key", key.to_owned())];
        let guarded = !matches!(access, "key" | "public");
        match stranger {
            Stranger::OtherOrganisation => (key(&self.other_admin), Expect::Nothing),
            Stranger::OtherSubaccount => (key(&self.key_a), Expect::Nothing),
            Stranger::LackingPermission => {
                let lacks = if self.lacking.contains_key(access) {
                    access
                } else if guarded {
                    "admin"
                } else {
                    "none"
                };
                (key(&self.lacking[lacks]), if guarded { Expect::Status(403) } else { Expect::Nothing })
            }
            Stranger::OtherIntegration => {
                (vec![("authorization", format!("Bearer {}", self.other_token))], Expect::Nothing)
            }
            Stranger::OtherCustomer => {
                (self.second_phone.headers(), if access == "public" { Expect::Nothing } else { Expect::Status(401) })
            }
            Stranger::NarrowedKey => unreachable!("the narrowed key probes events only"),
        }
    }

    /// The credentials of `stranger` on a mobile route, and what it must get.
    fn mobile_credentials(&self, stranger: Stranger, session: bool) -> (Vec<(&'static str, String)>, Expect) {
        let not_a_session = if session { Expect::Status(401) } else { Expect::Nothing };
        match stranger {
            Stranger::OtherOrganisation => (self.other_phone.headers(), Expect::Nothing),
            Stranger::OtherCustomer => (self.second_phone.headers(), Expect::Nothing),
            Stranger::OtherSubaccount => (vec![("x-partner-api-key", self.key_a.clone())], not_a_session),
            Stranger::LackingPermission => (vec![("x-partner-api-key", self.lacking["none"].clone())], not_a_session),
            Stranger::OtherIntegration => {
                (vec![("authorization", format!("Bearer {}", self.other_token))], not_a_session)
            }
            Stranger::NarrowedKey => unreachable!("the narrowed key probes events only"),
        }
    }

    /// A document path with the victim's ids in its parameters.
    fn fill(&self, path: &str) -> String {
        let first = path.trim_start_matches('/').split('/').next().unwrap_or_default();
        path.split('/')
            .map(|segment| {
                let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
                    return segment.to_owned();
                };
                let id = match (first, name) {
                    ("api-keys", "id") => "key_b_id",
                    ("chargers", "id") => "charger",
                    ("customers", "id") => "customer",
                    ("customers", "entry_id") => "entry",
                    ("integrations", "id") => "integration",
                    ("rides", "id") => "ride",
                    ("subscriptions", "id") => "subscription",
                    ("vehicle-commands", "id") => "command",
                    ("vehicles", "id") => "vehicle",
                    ("webhooks", "id") => "endpoint",
                    ("webhooks", "delivery_id") => "delivery",
                    ("zones", "id") => "zone",
                    (_, "period") => return Utc::now().format("%Y-%m").to_string(),
                    (_, "reference") => return "vbps_probe".to_owned(),
                    (_, "command") => return "honk-and-flash".to_owned(),
                    _ => panic!("{path}: no victim's id for `{name}`; teach the suite one"),
                };
                self.victim.id(id).to_owned()
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    /// A valid body for operation `name`, aimed at the victim's things where it names any.
    fn body_for(&self, name: &str) -> Option<Value> {
        let v = |id: &str| self.victim.id(id).to_owned();
        let fleet = self.victim.fleet;
        let polygon = json!([[15.0, 52.0], [15.1, 52.0], [15.1, 52.1], [15.0, 52.1]]);
        Some(match name {
            "createApiKey" | "updateApiKey" => json!({ "name": "probe" }),
            "resetCharger" => json!({ "type": "Soft" }),
            "registerCharger" => {
                json!({ "device_number": unique("P"), "location": [0.0, 0.0], "price": 1, "waiting_price": 1, "currency": "MNT" })
            }
            "createCustomer" => json!({ "name": "probe", "subaccount_id": fleet }),
            "updateCustomer" => json!({ "name": "probe" }),
            "blockCustomer" | "unblockCustomer" | "refundWalletEntry" => json!({ "reason": "probe" }),
            "postWalletEntry" => json!({ "action": "debit", "amount_cents": 1, "description": "probe" }),
            "setWalletOverdraft" => json!({ "overdraft_limit_cents": 100 }),
            "openDriverTicket" | "openMaintenanceTicket" => {
                json!({ "title": "probe", "vehicleId": v("vehicle"), "workshopId": v("workshop") })
            }
            "receiveEtvasEvent" => {
                let mut event = etvas_user_create(v("etvas_user").parse().unwrap());
                event["event"]["type"] = json!("user.update");
                event["user"]["partnerId"] = json!("u-000001");
                event
            }
            "createIntegration" => json!({ "name": "probe", "bundle": "CLIENT_ACCESS" }),
            "exchangeExternalIdentity" => {
                json!({ "integrationId": v("integration"), "externalSubject": "probe", "email": "probe@example.com" })
            }
            "recommendBundle" => json!({}),
            "issueIntegrationInvoice" => json!({ "period": "2026-01" }),
            "initializePaystackPayment" => json!({ "email": "probe@example.com", "amount": 100, "currency": "NGN" }),
            "setMaintenanceSelection" => json!({ "allowedWorkshopIds": [v("workshop")] }),
            "revokeIntegration" | "rotateIntegrationSecret" | "rotateWebhookSecret" | "sendVehicleCommand" => json!({}),
            "setPricing" => json!({ "currency": "EUR", "unlock_cents": 1, "per_minute_cents": 1 }),
            "startRide" => json!({ "customer_id": v("customer"), "vehicle_id": v("vehicle") }),
            "endRide" => json!({ "end_latitude": 52.5, "end_longitude": 13.4 }),
            "createSubscription" => json!({ "name": unique("probe").replace('_', "-"), "events": ["VehicleChanged"] }),
            "addVehicle" => {
                json!({ "vin": format!("P{}", &Uuid::now_v7().simple().to_string()[20..]), "subaccount_id": fleet })
            }
            "bulkChangeCustomField" => {
                json!({ "vehicle_ids": [v("vehicle")], "operation": "add", "field": "probe", "value": "x" })
            }
            "updateVehicle" => json!({ "vehicle_number": "probe" }),
            "createWebhook" => json!({ "url": self.probe_receiver.url(), "events": ["ride.ended"] }),
            "updateWebhook" => json!({ "description": "probe" }),
            "replayFailedWebhookDeliveries" => json!({ "since": "2020-01-01T00:00:00Z" }),
            "addWorkshop" => json!({ "name": "probe" }),
            "createZone" | "replaceZone" => {
                json!({ "name": "probe", "type": "parking", "polygon": polygon, "subaccount_id": fleet })
            }
            _ => return None,
        })
    }

    /// The operation's query, where it needs one to say what it is about.
    fn query_for(&self, name: &str) -> String {
        match name {
            "listNearbyVehicles" => "?lat=52.52&lng=13.405&radius=50000".to_owned(),
            "listZonesContaining" => "?lat=52.05&lng=13.05".to_owned(),
            "listEventDeliveries" => format!("?event_id={}", self.victim.id("event")),
            "listRides" => format!("?customer_id={}", self.victim.id("customer")),
            _ => String::new(),
        }
    }

    fn mobile_query(&self, path: &str) -> String {
        match path {
            "/devices/by-location" => "?bottom-left-longitude=106.5&bottom-left-latitude=47.5\
                                       &upper-right-longitude=107.5&upper-right-latitude=48.5"
                .to_owned(),
            "/purchases" => "?page=1&page-size=50".to_owned(),
            "/payments/qpay/callback" => format!("?invoice={}", self.victim.id("invoice")),
            _ => String::new(),
        }
    }

    fn mobile_body(&self, path: &str) -> Option<Value> {
        let phone = "+97680000001";
        Some(match path {
            "/user/otp-request" => json!({ "phone": phone }),
            "/user/otp-check" => json!({ "phone": phone, "code": "999999" }),
            "/customer/update-notification-token" => json!({ "FCMToken": "probe" }),
            "/customer/update-info" => json!({ "name": "probe" }),
            "/customer/replenish" => json!({ "amount": 100, "option": "QPAY" }),
            "/customer/replenishment" | "/purchases/{id}/status" => json!({ "invoiceId": self.victim.id("invoice") }),
            "/purchases/{id}/pay" => json!({ "option": "EVM" }),
            "/purchases/{id}/feedback" => json!({ "feedback": { "score": 1, "description": "probe" } }),
            "/payments/paystack/webhook" => json!({ "event": "charge.success", "data": { "reference": "probe" } }),
            "/devices/{id}/start" | "/devices/{id}/finish" | "/user/me" => json!({}),
            "/devices/by-location" | "/payment-options" | "/purchases" | "/payments/qpay/callback" => return None,
            other => panic!("mobile {other}: no probe body; teach the suite one"),
        })
    }

    /// What the victim has, as its own keys and phone read it, without what changes by itself.
    async fn snapshot(&self) -> BTreeMap<String, Value> {
        let (admin, key_b) = (self.victim.admin.as_str(), self.victim.id("key_b"));
        let customer = self.victim.id("customer");
        let endpoint = self.victim.id("endpoint");
        let mut reads = BTreeMap::new();
        for (key, path) in [
            (key_b, "/vehicles?limit=100".to_owned()),
            (key_b, "/rides?limit=100".to_owned()),
            (key_b, "/zones?limit=100".to_owned()),
            (key_b, "/webhooks".to_owned()),
            (key_b, format!("/webhooks/{endpoint}/deliveries?limit=100")),
            (key_b, "/subscriptions".to_owned()),
            (key_b, "/pricing".to_owned()),
            (key_b, format!("/customers/{customer}")),
            (key_b, format!("/customers/{customer}/wallet")),
            (admin, "/api-keys?limit=100".to_owned()),
            (admin, "/integrations".to_owned()),
            (admin, "/workshops".to_owned()),
        ] {
            let (_, mut answer, _) = self.platform.call(key, "GET", &path, None).await;
            normalise(&mut answer);
            reads.insert(path, answer);
        }
        // B's customers only: the organisation's (the phones) change their own profiles.
        let (_, customers, _) = self.platform.call(key_b, "GET", "/customers?limit=100", None).await;
        let of_b: Vec<&Value> = customers["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["subaccount_id"] == json!(self.victim.fleet))
            .collect();
        reads.insert("/customers of B".into(), json!(of_b));
        let (_, mut me) = self.first_phone.call("POST", "/user/me", Some(json!({}))).await;
        normalise(&mut me);
        reads.insert("phone /user/me".into(), me);
        reads.insert(
            "phone /purchases".into(),
            self.first_phone.call("GET", "/purchases?page=1&page-size=50", None).await.1,
        );
        reads
    }
}

/// Drops what changes by itself: answer metadata, last use and request counts.
fn normalise(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|key, _| {
                // The sign-in's realtime credentials are made afresh at each `/user/me`.
                !(key == "meta"
                    || key == "nats"
                    || key.contains("last_used")
                    || key.contains("lastUsed")
                    || key.starts_with("requests"))
            });
            map.values_mut().for_each(normalise);
        }
        Value::Array(items) => items.iter_mut().for_each(normalise),
        _ => {}
    }
}
