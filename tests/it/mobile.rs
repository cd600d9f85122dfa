//! The mobile app's API (EVM seed) end to end, on real PostgreSQL, RabbitMQ and a nats-server of
//! the test's own in operator mode: a phone signs in with the code sent to it, gets a session and
//! NATS credentials, reads its own realtime channel and no one else's; the codes' limits hold.

use std::time::Duration;

use async_nats::ConnectOptions;
use bus::nats::accounts::{Accounts, Credentials, Permissions};
use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::partner::{Platform, error_code};
use crate::private_nats::PrivateNats;
use crate::support::request;

/// A mobile app of `tenant`'s, talking to `platform`.
struct App<'a> {
    platform: &'a Platform,
    tenant: String,
}

impl App<'_> {
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("x-tenant", self.tenant.as_str())];
        if let Some(bearer) = &bearer {
            headers.push(("authorization", bearer.as_str()));
        }
        let path = format!("/api/v1{path}");
        let (status, body, _) = request(self.platform.addr(), "POST", &path, &headers, Some(&body.to_string())).await;
        (status, body)
    }

    /// Asks for a code and signs in with `code`.
    async fn sign_in(&self, phone: &str, code: &str) -> Value {
        let (status, body) = self.post("/user/otp-request", None, json!({ "phone": phone })).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = self.post("/user/otp-check", None, json!({ "phone": phone, "code": code })).await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

async fn listen(
    server: &PrivateNats,
    nats: &Value,
) -> (async_nats::Client, async_nats::Subscriber, async_nats::Subscriber) {
    let credentials =
        Credentials { jwt: nats["user"].as_str().unwrap().to_owned(), seed: nats["pass"].as_str().unwrap().to_owned() };
    let client =
        ConnectOptions::with_credentials(&credentials.creds_file()).unwrap().connect(server.url()).await.unwrap();
    let topic = nats["topic"].as_str().unwrap();
    let own = client.subscribe(format!("{topic}.>")).await.unwrap();
    let everything = client.subscribe(">").await.unwrap();
    client.flush().await.unwrap();
    (client, own, everything)
}

/// Whether nothing arrives within 400 ms.
async fn nothing(subscriber: &mut async_nats::Subscriber) -> bool {
    tokio::time::timeout(Duration::from_millis(400), subscriber.next()).await.is_err()
}

/// A platform whose NATS server (the test's own) runs in operator mode with voltbus's accounts,
/// and whose sign-in code is the seed's `0000`.
pub(crate) async fn with_mobile_nats() -> (Accounts, PrivateNats, Platform) {
    with_mobile_nats_and(|_| {}).await
}

/// [`with_mobile_nats`], after `adjust` has had its say.
pub(crate) async fn with_mobile_nats_and(
    adjust: impl FnOnce(&mut voltbus::Settings),
) -> (Accounts, PrivateNats, Platform) {
    let accounts = Accounts::generate();
    let server = PrivateNats::with_config(&accounts.server_config().unwrap());
    let (operator, account) = accounts.seeds().unwrap();
    let platform = Platform::start_with(|s| {
        s.nats.url = Some(server.url().into());
        s.nats.operator_seed = Some(operator.into());
        s.nats.account_seed = Some(account.into());
        s.mobile.dev_code = Some("0000".into());
        adjust(s);
    })
    .await;
    (accounts, server, platform)
}

#[tokio::test]
async fn a_phone_signs_in_by_code_and_reads_only_its_own_realtime_channel() {
    let (accounts, server, platform) = with_mobile_nats().await;
    let (tenant, admin) = platform.organisation().await;
    let app = App { platform: &platform, tenant: tenant.clone() };

    let alice = app.sign_in("+976 8666 1488", "0000").await;
    let token = alice["token"].as_str().unwrap();
    assert!(token.starts_with("vbs_"), "{alice}");
    assert_eq!(alice["profile"], json!({ "name": "", "email": "", "phone": "+97686661488", "balance": 0 }));
    assert_eq!(alice["device"], Value::Null);
    let nats = &alice["nats"];
    let topic = nats["topic"].as_str().unwrap();
    assert!(topic.starts_with(&format!("voltbus.{tenant}.users.")), "{nats}");
    assert_eq!(nats["servers"], server.url());
    // Signing in again from another device is the same customer, with a session of its own.
    let again = app.sign_in("+97686661488", "0000").await;
    assert_eq!(again["nats"]["topic"], nats["topic"]);
    assert_ne!(again["token"], alice["token"]);
    // The phone became a customer of the organisation, announced like any other.
    let customers = platform.sql(&format!("SELECT count(*) AS n FROM customers WHERE tenant = '{tenant}'")).await;
    assert_eq!(customers[0].try_get::<i64>("", "n").unwrap(), 1);

    // The session: the profile, changed by the app.
    let (status, body) =
        app.post("/customer/update-info", Some(token), json!({ "name": "Alice", "email": "a@example.com" })).await;
    assert_eq!((status, &body), (200, &json!({})));
    let (status, body) =
        app.post("/customer/update-notification-token", Some(token), json!({ "FCMToken": "fcm-1" })).await;
    assert_eq!((status, &body), (200, &json!({})));
    let (status, me) = app.post("/user/me", Some(token), json!({})).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["profile"]["name"], "Alice");
    assert_eq!(me["profile"]["email"], "a@example.com");
    assert_eq!(me["token"], alice["token"]);
    let stored = platform.sql("SELECT notification_token FROM mobile_accounts").await;
    assert_eq!(stored[0].try_get::<Option<String>>("", "notification_token").unwrap().as_deref(), Some("fcm-1"));
    for bad in [None, Some("vbs_not-a-session"), Some("garbage")] {
        let (status, body) = app.post("/user/me", bad, json!({})).await;
        assert_eq!((status, error_code(&body)), (401, "UNAUTHORIZED"), "{body}");
    }
    // Only hashes rest: no token and no code in the database.
    let sessions = platform.sql("SELECT session_hash FROM mobile_sessions").await;
    assert!(sessions.iter().all(|r| r.try_get::<String>("", "session_hash").unwrap() != token));
    let codes = platform.sql("SELECT code_hash FROM sign_in_codes").await;
    assert!(codes.iter().all(|r| r.try_get::<String>("", "code_hash").unwrap().len() == 64));

    // The realtime channel: each user reads its own topic, never another's.
    let bob = app.sign_in("+976 9911 2233", "0000").await;
    let (_alice_client, mut alice_own, mut alice_everything) = listen(&server, &alice["nats"]).await;
    let (bob_client, mut bob_own, _) = listen(&server, &bob["nats"]).await;
    let mut bob_snooping = bob_client.subscribe(format!("{topic}.>")).await.unwrap();
    bob_client.flush().await.unwrap();
    let voltbus = accounts.user("test-publisher", &Permissions::All, None).unwrap();
    let publisher =
        ConnectOptions::with_credentials(&voltbus.creds_file()).unwrap().connect(server.url()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let progress = json!({ "energy": 1.5, "waitingTime": 0, "amount": 450 }).to_string();
    publisher.publish(format!("{topic}.CHARGING"), progress.clone().into()).await.unwrap();
    publisher.flush().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), alice_own.next()).await.unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&got.payload), progress);
    assert!(nothing(&mut bob_snooping).await, "bob read alice's channel");
    assert!(nothing(&mut bob_own).await, "bob got alice's message");
    assert!(nothing(&mut alice_everything).await, "alice subscribed to everything");

    // The operator blocks alice: her sessions stop working, and she gets no new one.
    let customer = topic.rsplit('.').next().unwrap();
    let (status, body, _) = platform
        .call(&admin, "POST", &format!("/customers/{customer}/block"), Some(json!({ "reason": "fraud" })))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.post("/user/me", Some(token), json!({})).await;
    assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"), "{body}");
    app.post("/user/otp-request", None, json!({ "phone": "+976 8666 1488" })).await;
    let (status, body) = app.post("/user/otp-check", None, json!({ "phone": "+976 8666 1488", "code": "0000" })).await;
    assert_eq!((status, error_code(&body)), (409, "CUSTOMER_BLOCKED"), "{body}");
    platform.stop().await;
}

#[tokio::test]
async fn codes_expire_are_used_once_survive_five_wrong_guesses_and_a_phone_gets_five_an_hour() {
    let platform = Platform::start_with(|s| {
        s.mobile.dev_code = Some("0000".into());
        s.mobile.code_ttl = Duration::from_secs(2);
    })
    .await;
    let (tenant, _) = platform.organisation().await;
    let app = App { platform: &platform, tenant };
    let check = |phone: &'static str, code: &'static str| {
        let app = &app;
        async move { app.post("/user/otp-check", None, json!({ "phone": phone, "code": code })).await }
    };
    let refused = |(status, body): (u16, Value)| (status, error_code(&body).to_owned());

    // Never asked for.
    assert_eq!(refused(check("+97611111111", "0000").await), (401, "INVALID_CODE".into()));
    // Five wrong guesses kill the code, even for the right one after them.
    app.post("/user/otp-request", None, json!({ "phone": "+97622222222" })).await;
    for _ in 0..5 {
        assert_eq!(refused(check("+97622222222", "1234").await), (401, "INVALID_CODE".into()));
    }
    assert_eq!(refused(check("+97622222222", "0000").await), (429, "TOO_MANY_ATTEMPTS".into()));
    // Four more codes this hour are fine; the sixth is refused.
    for _ in 0..4 {
        let (status, body) = app.post("/user/otp-request", None, json!({ "phone": "+97622222222" })).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = app.post("/user/otp-request", None, json!({ "phone": "+97622222222" })).await;
    assert_eq!((status, error_code(&body)), (429, "RATE_LIMITED"), "{body}");
    // A code works once.
    app.post("/user/otp-request", None, json!({ "phone": "+97633333333" })).await;
    assert_eq!(check("+97633333333", "0000").await.0, 200);
    assert_eq!(refused(check("+97633333333", "0000").await), (401, "INVALID_CODE".into()));
    // A code expires.
    app.post("/user/otp-request", None, json!({ "phone": "+97644444444" })).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(refused(check("+97644444444", "0000").await), (401, "INVALID_CODE".into()));

    // Bad input: a typed error naming the field.
    let (status, body) = app.post("/user/otp-request", None, json!({ "phone": "8666 1488" })).await;
    assert_eq!(
        (status, error_code(&body), body["error"]["details"]["field"].as_str()),
        (422, "VALIDATION_ERROR", Some("phone"))
    );
    let (status, body) = app.post("/user/otp-request", None, json!({ "phone": "+97686661488", "extra": 1 })).await;
    assert_eq!((status, error_code(&body)), (422, "VALIDATION_ERROR"), "{body}");
    let path = "/api/v1/user/otp-request";
    let (status, body, _) = request(platform.addr(), "POST", path, &[], Some(r#"{"phone":"+97686661488"}"#)).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("x-tenant")), "{body}");
    let (status, _, _) = request(platform.addr(), "GET", path, &[("x-tenant", "acme")], None).await;
    assert_eq!(status, 405);
    let (status, body, _) =
        request(platform.addr(), "POST", path, &[("x-tenant", "nobody")], Some(r#"{"phone":"+97686661488"}"#)).await;
    assert_eq!((status, error_code(&body)), (404, "NOT_FOUND"), "{body}");
    // Without NATS accounts configured, sign-in works and says there is no realtime channel.
    app.post("/user/otp-request", None, json!({ "phone": "+97655555555" })).await;
    let (status, body) = check("+97655555555", "0000").await;
    assert_eq!((status, &body["nats"]), (200, &Value::Null), "{body}");
    platform.stop().await;
}
