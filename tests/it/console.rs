//! The operator console at `/admin`, against the machine's PostgreSQL, RabbitMQ and NATS: sign-in
//! with Argon2id, the session cookie, CSRF, lock-out and sign-out over plain HTTP; what each role
//! may see; and the whole console in headless Chromium (`tests/console/e2e.mjs`, playwright-core),
//! whose screenshots go to `target/console-screenshots/`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bus::nats::NatsConnection;
use chrono::Utc;
use lapin::BasicProperties;
use schemas::TenantId;
use schemas::subjects;
use schemas::vehicles::{Position, Reading, VehicleState};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::json;
use uuid::Uuid;

use crate::partner::Platform;
use crate::support::request_bytes;
use crate::webhooks::{Receiver, fast_retries};

pub(crate) const PASSWORD: &str = "correct horse battery staple";

/// A browser of sorts: keeps the console's cookies between requests.
pub(crate) struct Visitor {
    addr: SocketAddr,
    cookies: HashMap<String, String>,
}

/// One answer: status, headers, body as text.
pub(crate) struct Seen {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: String,
}

impl Seen {
    pub(crate) fn location(&self) -> &str {
        self.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The value of the first hidden `csrf` field on the page.
    pub(crate) fn csrf(&self) -> String {
        let at = self.body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        self.body[at..].split('"').next().unwrap().to_owned()
    }
}

impl Visitor {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Self { addr, cookies: HashMap::new() }
    }

    async fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)], extra: &[(&str, &str)]) -> Seen {
        let cookie: Vec<String> = self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let cookie = cookie.join("; ");
        let mut headers = vec![("cookie", cookie.as_str())];
        let body = (method == "POST").then(|| {
            let mut encoded = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in form {
                encoded.append_pair(name, value);
            }
            encoded.finish()
        });
        if body.is_some() {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
        }
        headers.extend_from_slice(extra);
        let (status, body, headers) = request_bytes(self.addr, method, path, &headers, body.as_deref()).await;
        for set in headers.get_all("set-cookie") {
            let set = set.to_str().unwrap();
            let (pair, _) = set.split_once(';').unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Seen { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Seen {
        self.send("GET", path, &[], &[]).await
    }

    pub(crate) async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Seen {
        self.send("POST", path, form, &[]).await
    }

    /// Signs in through the form; the answer to the form's POST.
    pub(crate) async fn sign_in(&mut self, email: &str, password: &str) -> Seen {
        let form = self.get("/admin/sign-in").await;
        let csrf = form.csrf();
        self.post("/admin/sign-in", &[("csrf", &csrf), ("email", email), ("password", password)]).await
    }
}

pub(crate) async fn operator(platform: &Platform, email: &str, organisation: Option<&str>) {
    voltbus::create_operator(&platform.settings, email, PASSWORD, organisation).await.unwrap();
}

pub(crate) fn email() -> String {
    format!("{}@operators.example", crate::support::unique("op"))
}

#[tokio::test]
async fn operators_sign_in_with_an_argon2id_password_a_strict_cookie_csrf_and_lock_out() {
    let platform = Platform::start().await;
    let (org, _) = platform.organisation().await;
    let (careless, careful) = (email(), email());
    operator(&platform, &careless, Some(&org)).await;
    operator(&platform, &careful, Some(&org)).await;
    // Stored as an Argon2id PHC string, never as the password.
    let database = Database::connect(platform.settings.database.url.as_deref().unwrap()).await.unwrap();
    let account = async |columns: &str| {
        let sql = format!("SELECT {columns} FROM operators WHERE email = '{careless}'");
        database.query_one_raw(Statement::from_string(database.get_database_backend(), sql)).await.unwrap().unwrap()
    };
    let stored = account("password_hash").await;
    let hash: String = stored.try_get("", "password_hash").unwrap();
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$") && !hash.contains(PASSWORD), "{hash}");
    assert!(
        voltbus::create_operator(&platform.settings, &email(), "too short", None).await.is_err(),
        "short passwords are refused"
    );

    let mut visitor = Visitor::new(platform.addr());
    let first = visitor.get("/admin").await;
    assert_eq!((first.status, first.location()), (303, "/admin/sign-in"), "anonymous visits are sent to sign in");
    // The sign-in form needs its own cookie back (login CSRF).
    let mut stranger = Visitor::new(platform.addr());
    let refused =
        stranger.post("/admin/sign-in", &[("csrf", "forged"), ("email", &careful), ("password", PASSWORD)]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);

    // Five wrong passwords lock the account: then even the right one is refused, with the same words.
    for attempt in 1..=5 {
        let wrong = visitor.sign_in(&careless, "not the password at all").await;
        assert_eq!(wrong.status, 401, "attempt {attempt}");
        assert!(wrong.body.contains("Sign-in failed"), "{}", wrong.body);
    }
    let locked = visitor.sign_in(&careless, PASSWORD).await;
    assert_eq!(locked.status, 401, "a locked account is refused even with its password");
    let row = account("locked_until").await;
    let until: chrono::DateTime<Utc> = row.try_get("", "locked_until").unwrap();
    assert!(until > Utc::now() + chrono::Duration::minutes(14), "locked for 15 minutes: {until}");
    let unknown = visitor.sign_in("nobody@operators.example", PASSWORD).await;
    assert_eq!(unknown.status, 401, "an unknown address reads like a wrong password");

    // The other operator signs in: the cookie is Secure, HttpOnly, SameSite=Strict, for /admin only.
    let mut visitor = Visitor::new(platform.addr());
    let signed_in = visitor.sign_in(&careful, PASSWORD).await;
    assert_eq!((signed_in.status, signed_in.location()), (303, "/admin"));
    let cookie = signed_in
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("voltbus_console="))
        .expect("a session cookie");
    for flag in ["Path=/admin", "Secure", "HttpOnly", "SameSite=Strict"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    let home = visitor.get("/admin").await;
    assert_eq!(home.location(), format!("/admin/orgs/{org}/integrations"), "an organisation operator lands on its own");
    let keys = visitor.get(&format!("/admin/orgs/{org}/keys")).await;
    assert_eq!(keys.status, 200);
    for header in ["content-security-policy", "x-frame-options", "x-content-type-options", "cache-control"] {
        assert!(keys.headers.contains_key(header), "{header}");
    }
    let csrf = keys.csrf();

    // A form without the session's CSRF token, or sent from another site, changes nothing.
    let path = format!("/admin/orgs/{org}/keys");
    let forged = visitor.post(&path, &[("csrf", "0000"), ("name", "forged"), ("permissions", "vehicles:read")]).await;
    assert_eq!(forged.status, 403);
    let form = [("csrf", csrf.as_str()), ("name", "cross-site"), ("permissions", "vehicles:read")];
    let cross = visitor.send("POST", &path, &form, &[("origin", "https://evil.example")]).await;
    assert_eq!(cross.status, 403);
    let made = visitor.post(&path, &[("csrf", &csrf), ("name", "made here"), ("permissions", "vehicles:read")]).await;
    assert_eq!(made.status, 200, "{}", made.body);
    let listed = visitor.get(&path).await.body;
    assert!(listed.contains("made here") && !listed.contains("forged") && !listed.contains("cross-site"));

    // Signing out ends the session on the server, not only in the browser.
    let kept = visitor.cookies.clone();
    let out = visitor.post("/admin/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    let mut replayed = Visitor { addr: platform.addr(), cookies: kept };
    assert_eq!(replayed.get(&path).await.location(), "/admin/sign-in", "the old cookie opens nothing");
    platform.stop().await;
}

#[tokio::test]
async fn an_organisation_operator_sees_only_its_organisation_and_its_own_dead_letters() {
    let platform = Platform::start_with(fast_retries).await;
    let (mine, admin) = platform.organisation().await;
    let (theirs, _) = platform.organisation().await;
    let (local, global) = (email(), email());
    operator(&platform, &local, Some(&mine)).await;
    operator(&platform, &global, None).await;
    // Their organisation has a key and a dead letter.
    let mut platform_visitor = Visitor::new(platform.addr());
    platform_visitor.sign_in(&global, PASSWORD).await;
    let page = platform_visitor.get(&format!("/admin/orgs/{theirs}/keys")).await;
    assert_eq!(page.status, 200, "a platform operator opens any organisation");
    let csrf = page.csrf();
    let made = platform_visitor
        .post(
            &format!("/admin/orgs/{theirs}/keys"),
            &[("csrf", &csrf), ("name", "theirs"), ("bundle", "CLIENT_ACCESS")],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let poison = poison(&platform, Some(&theirs)).await;

    let mut visitor = Visitor::new(platform.addr());
    visitor.sign_in(&local, PASSWORD).await;
    for path in ["keys", "integrations", "webhooks", "vehicles"] {
        let other = visitor.get(&format!("/admin/orgs/{theirs}/{path}")).await;
        assert_eq!(other.status, 404, "another organisation's {path} do not exist for this operator");
        assert!(!other.body.contains("theirs"));
    }
    assert_eq!(visitor.get("/admin/orgs").await.location(), format!("/admin/orgs/{mine}/integrations"));
    let bus = visitor.get("/admin/bus").await;
    assert!(!bus.body.contains("id=\"queues\""), "queue figures are everyone's: not shown");
    let letters = visitor.get("/admin/bus/dead-letters/integrations").await;
    assert!(!letters.body.contains(&poison), "another organisation's dead letter is not listed");
    let csrf = visitor.get(&format!("/admin/orgs/{mine}/keys")).await.csrf();
    let path = "/admin/bus/dead-letters/integrations/replay";
    assert_eq!(visitor.post(path, &[("csrf", &csrf), ("message_id", &poison)]).await.status, 404);
    assert_eq!(visitor.post(path, &[("csrf", &csrf)]).await.status, 403, "replaying a whole queue is the platform's");
    let everything = platform_visitor.get("/admin/bus/dead-letters/integrations").await;
    assert!(everything.body.contains(&poison), "the platform operator sees it");
    // Its own organisation's dead letter, the operator sees and replays.
    let own = self::poison(&platform, Some(&mine)).await;
    let letters = visitor.get("/admin/bus/dead-letters/integrations").await;
    assert!(letters.body.contains(&own) && !letters.body.contains(&poison), "only its own");
    let replayed = visitor.post(path, &[("csrf", &csrf), ("message_id", &own)]).await;
    assert_eq!(replayed.location(), "/admin/bus/dead-letters/integrations?notice=dead-letters-replayed");

    // Failed deliveries since a time (a `datetime-local` field, read as UTC) are replayed.
    let receiver = Receiver::start(Vec::new()).await;
    let hooks = format!("/admin/orgs/{mine}/webhooks");
    let made = visitor.post(&hooks, &[("csrf", &csrf), ("url", &receiver.url()), ("events", "*")]).await;
    assert_eq!(made.status, 200, "{}", made.body);
    let at = made.body.find(&format!("{hooks}/")).expect("a link to the endpoint") + hooks.len() + 1;
    let endpoint: String = made.body[at..].chars().take_while(|c| *c != '"').collect();
    let replay =
        visitor.post(&format!("{hooks}/{endpoint}/replay"), &[("csrf", &csrf), ("since", "2026-01-01T00:00")]).await;
    assert_eq!(replay.location(), format!("{hooks}/{endpoint}?notice=replayed"), "{}", replay.body);
    let bad = visitor.post(&format!("{hooks}/{endpoint}/replay"), &[("csrf", &csrf), ("since", "yesterday")]).await;
    assert_eq!(bad.status, 422, "a bad time is the API's validation error, shown as such");
    assert!(bad.body.contains("VALIDATION_ERROR"), "{}", bad.body);

    // An integration's use shows on its row: last used, and requests today, this week, this month.
    let (_, client_id, secret) = crate::integrations::create(&platform, &admin, "ALL_ACCESS", json!([])).await;
    let token = crate::integrations::token(&platform, &client_id, &secret).await.unwrap();
    let bearer = format!("Bearer {token}");
    let (status, _, _) = crate::support::request(
        platform.addr(),
        "GET",
        "/api/partner/v1/vehicles",
        &[("authorization", bearer.as_str())],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let row = async |visitor: &mut Visitor| {
        let page = visitor.get(&format!("/admin/orgs/{mine}/integrations")).await.body;
        let at = page.find(&client_id).expect("the integration is listed");
        page[at..].split("</tr>").next().unwrap().to_owned()
    };
    // The request log is written by a consumer after the answer: wait until the row shows it.
    let mut seen = row(&mut visitor).await;
    for _ in 0..50 {
        if !seen.contains("data-label=\"Today\">0<") && !seen.contains("data-label=\"Last used\">–<") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen = row(&mut visitor).await;
    }
    for column in ["Today", "This week", "This month"] {
        assert!(!seen.contains(&format!("data-label=\"{column}\">0<")), "{column}: {seen}");
    }
    assert!(!seen.contains("data-label=\"Last used\">–<"), "{seen}");

    // What the console did went through the partner API's commands: the admin key sees it.
    let (_, keys, _) = platform.call(&admin, "GET", "/api-keys", None).await;
    assert!(!keys.to_string().contains("\"theirs\""), "the other organisation's key is not in this one");
    platform.stop().await;
}

/// Publishes a message the integrations group cannot read, in `tenant`'s name when given; its id.
async fn poison(platform: &Platform, tenant: Option<&str>) -> String {
    let amqp =
        bus::amqp::AmqpConnection::connect(platform.settings.amqp.url.as_deref().unwrap(), "poisoner").await.unwrap();
    let id = Uuid::now_v7().to_string();
    let mut headers = lapin::types::FieldTable::default();
    if let Some(tenant) = tenant {
        headers.insert("tenant".into(), lapin::types::AMQPValue::LongString(tenant.into()));
    }
    let properties = BasicProperties::default()
        .with_message_id(id.clone().into())
        .with_type("api_key.create".into())
        .with_headers(headers)
        .with_delivery_mode(2);
    let key = schemas::routing::command_key_of::<schemas::integrations::CreateApiKey>();
    amqp.publish_raw(schemas::routing::COMMANDS_EXCHANGE, &key, b"{not json", properties, true).await.unwrap();
    // Until it is in the dead letters.
    let queue = schemas::routing::dead_letter_queue("integrations");
    for _ in 0..100 {
        let letters = bus::amqp::list_dead_letters(&amqp, &queue, 100).await.unwrap();
        if letters.iter().any(|l| l.message_id.as_deref() == Some(id.as_str())) {
            amqp.close().await;
            return id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the poisoned message never reached {queue}");
}

#[tokio::test]
async fn the_console_in_chromium_signs_in_shows_secrets_once_delivers_replays_and_replays_dead_letters() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/console/e2e.mjs");
    assert!(
        root.join("tests/console/node_modules/playwright-core").exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and playwright-core: scripts/test.sh installs both"
    );
    let nats_server = crate::private_nats::PrivateNats::start();
    let platform = Platform::start_with(|settings| {
        fast_retries(settings);
        settings.nats.url = Some(nats_server.url().into());
    })
    .await;
    let (org, admin) = platform.organisation().await;
    let email = email();
    operator(&platform, &email, None).await;
    let receiver = Receiver::start(Vec::new()).await;
    // A vehicle with a position and a charge, for the map.
    let (status, vehicle, _) = platform
        .call(
            &admin,
            "POST",
            "/vehicles",
            Some(json!({ "vin": "CONSOLE1", "vehicle_number": "C-1", "subaccount_id": Uuid::now_v7(),
                         "capabilities": ["honk-and-flash"] })),
        )
        .await;
    assert_eq!(status, 201, "{vehicle}");
    let vehicle: Uuid = vehicle["data"]["id"].as_str().unwrap().parse().unwrap();
    let tenant = TenantId::new(&org).unwrap();
    let device = NatsConnection::connect(&nats_server.url(), "console-device").await.unwrap();
    let now = Utc::now();
    let state = VehicleState {
        charge_level: Some(Reading { value: 42, time: now }),
        position: Some(Reading { value: Position { latitude: 52.52, longitude: 13.405 }, time: now }),
        ..VehicleState::default()
    };
    device
        .publish_durable(subjects::vehicle_state(&tenant, vehicle), &crate::fleet::report(&tenant, vehicle, state))
        .await
        .unwrap();
    for _ in 0..100 {
        let (_, latest, _) = platform.call(&admin, "GET", &format!("/vehicles/{vehicle}/state"), None).await;
        if latest["data"]["charge_level"]["value"] == 42 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A charger on OCPP 1.6, connected while the operator looks (a charge point of PyPI's `ocpp`).
    let (charger, password) = crate::ocpp::register(&platform, &admin, "CH-1").await;
    let mut point = crate::ocpp::ChargePoint::start(&platform, crate::ocpp::V16, charger, &password, "journey");
    point.until("Available").await;
    let poisoned = poison(&platform, None).await;
    // The vehicle's device answers commands after a second, so the page shows them pending first.
    let devices = voltbus::simulator::Devices { delay: Duration::from_secs(1), ..Default::default() };
    let (stop_devices, devices_stopped) = tokio::sync::oneshot::channel::<()>();
    let device_nats = NatsConnection::connect(&nats_server.url(), "console-devices").await.unwrap();
    let simulator = tokio::spawn(voltbus::simulator::run(device_nats, devices, async move {
        let _ = devices_stopped.await;
    }));

    let screenshots = root.join("target/console-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .env("CONSOLE_URL", format!("http://{}", platform.addr()))
        .env("ORGANISATION", &org)
        .env("OPERATOR_EMAIL", &email)
        .env("OPERATOR_PASSWORD", PASSWORD)
        .env("RECEIVER_URL", receiver.url())
        .env("VEHICLE_ID", vehicle.to_string())
        .env("CHARGER_NUMBER", "CH-1")
        .env("DEAD_LETTER_GROUP", "integrations")
        .env("POISON_ID", &poisoned)
        .env("SCREENSHOTS", &screenshots)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), output).await.expect("the browser run ends").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("all checks passed"), "{stdout}");

    // The receiver got the test event and its replay: one event id, delivered twice.
    let got = receiver.wait_for(2, Duration::from_secs(10)).await;
    let ids: Vec<&str> = got.iter().map(|r| r.headers["webhook-id"].to_str().unwrap()).collect();
    assert_eq!(ids[0], ids[1], "the replay is the same event");
    // The replayed dead letter went back to its queue, failed again, and is back where it was.
    let letters = bus::amqp::list_dead_letters(
        &bus::amqp::AmqpConnection::connect(platform.settings.amqp.url.as_deref().unwrap(), "check").await.unwrap(),
        &schemas::routing::dead_letter_queue("integrations"),
        100,
    )
    .await
    .unwrap();
    assert!(letters.iter().any(|l| l.message_id.as_deref() == Some(poisoned.as_str())));
    let _ = stop_devices.send(());
    simulator.await.unwrap().unwrap();
    for page in [
        "sign-in",
        "integration-secret",
        "webhook-deliveries",
        "fleet",
        "vehicle-command",
        "bus",
        "dead-letters",
        "phone-webhooks",
    ] {
        let found =
            std::fs::read_dir(&screenshots).unwrap().flatten().any(|f| f.file_name().to_string_lossy().contains(page));
        assert!(found, "a screenshot of {page}");
    }
    platform.stop().await;
}
