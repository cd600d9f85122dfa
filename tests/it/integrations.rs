//! Integrations end to end (EVCare seed) through real HTTP, RabbitMQ and PostgreSQL, at the
//! seed's own paths (`/v1/integrations/…`): an admin creates one and gets its clientId and
//! clientSecret once; the partner's backend trades them for a machine token, maps an external
//! user to a voltbus user and gets a one-time session code, which a browser redeems once for a
//! portal session. Tokens expire, rotate with grace, die on revocation (on every edge), and
//! reach only what their bundle and allow-list reach.

use std::sync::Arc;
use std::time::Duration;

use chrono::Datelike;

use serde_json::{Value, json};

use crate::partner::{Platform, error_code};
use crate::replenish::{Paystack, paystack, signed};
use crate::support::request;

/// A call with `Authorization: Bearer <token>` (an admin key or a machine token), at the seed's
/// paths for `/v1/…` and at the partner API's otherwise.
async fn bearer(platform: &Platform, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let authorization = format!("Bearer {token}");
    let path = if path.starts_with("/v1/") { path.to_owned() } else { format!("/api/partner/v1{path}") };
    let body = body.map(|b| b.to_string());
    let (status, body, _) =
        request(platform.addr(), method, &path, &[("authorization", authorization.as_str())], body.as_deref()).await;
    (status, body)
}

/// A public call (no credentials), answering status, body and headers.
async fn public(platform: &Platform, path: &str, body: Value) -> (u16, Value, http::HeaderMap) {
    request(platform.addr(), "POST", path, &[], Some(&body.to_string())).await
}

/// Creates an integration of `bundle`; its id, clientId and clientSecret.
pub(crate) async fn create(
    platform: &Platform,
    admin: &str,
    bundle: &str,
    endpoints: Value,
) -> (String, String, String) {
    let body = json!({ "name": format!("{bundle} partner"), "bundle": bundle, "allowedEndpoints": endpoints });
    let (status, created) = bearer(platform, admin, "POST", "/v1/integrations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    let data = &created["data"];
    let text = |field: &str| data[field].as_str().unwrap().to_owned();
    (text("id"), text("clientId"), text("clientSecret"))
}

/// A machine token for the credentials, or the refusal's status and body.
pub(crate) async fn token(platform: &Platform, client_id: &str, secret: &str) -> Result<String, (u16, Value)> {
    let credentials = json!({ "clientId": client_id, "clientSecret": secret });
    let (status, body, _) = public(platform, "/v1/integrations/auth/client-token", credentials).await;
    if status == 200 { Ok(body["data"]["accessToken"].as_str().unwrap().to_owned()) } else { Err((status, body)) }
}

/// The whole answer to a GET with `cookie`, as text.
async fn raw_get(platform: &Platform, path: &str, cookie: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(platform.addr()).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nhost: voltbus\r\ncookie: {cookie}\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer
}

/// Waits up to 5 s for `call` to answer `status`.
async fn answers(expected: u16, call: impl AsyncFn() -> (u16, Value)) {
    let mut last = (0, Value::Null);
    for _ in 0..50 {
        last = call().await;
        if last.0 == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("expected {expected}, still {last:?}");
}

#[tokio::test]
async fn the_quickstart_signs_an_external_user_into_the_portal_once() {
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;

    // 1) The admin creates the integration: clientId and clientSecret, the secret shown once.
    let (id, client_id, secret) = create(&platform, &admin, "ALL_ACCESS", json!([])).await;
    assert!(client_id.starts_with("evc_ci_") && secret.starts_with("evc_cs_"), "{client_id} {secret}");
    let (status, read) = bearer(&platform, &admin, "GET", &format!("/v1/integrations/{id}"), None).await;
    assert_eq!((status, &read["data"]["clientId"]), (200, &json!(client_id)), "{read}");
    assert!(read["data"].get("clientSecret").is_none(), "never shown again: {read}");
    let stored = platform.sql(&format!("SELECT secret_hash FROM integrations WHERE integration_id = '{id}'")).await;
    let hash = stored[0].try_get::<String>("", "secret_hash").unwrap();
    assert_eq!(hash.len(), 64, "a SHA-256, not the secret");
    assert!(!hash.contains(&secret[7..]));

    // 2) The machine token: signed, short-lived, carrying the integration and its bundle.
    let (status, issued, _) = public(
        &platform,
        "/v1/integrations/auth/client-token",
        json!({ "clientId": client_id, "clientSecret": secret }),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let machine = issued["data"]["accessToken"].as_str().unwrap().to_owned();
    assert!(machine.starts_with("evc_mt_"), "{issued}");
    assert_eq!((&issued["data"]["expiresIn"], &issued["data"]["bundle"]), (&json!(900), &json!("ALL_ACCESS")));
    assert_eq!(bearer(&platform, &machine, "GET", "/vehicles", None).await.0, 200, "the bundle reaches vehicles");
    let (status, wrong) = token(&platform, &client_id, &format!("evc_cs_{}", "a".repeat(40))).await.unwrap_err();
    assert_eq!((status, error_code(&wrong)), (401, "UNAUTHORIZED"), "{wrong}");

    // 3) The external user is mapped to a voltbus user (made on first sight) with a session code.
    let exchange =
        json!({ "integrationId": id, "externalSubject": "ext_123", "email": "User@Example.com", "roleHint": "CLIENT" });
    let (status, exchanged) =
        bearer(&platform, &machine, "POST", "/v1/integrations/auth/exchange", Some(exchange.clone())).await;
    assert_eq!(status, 200, "{exchanged}");
    let code = exchanged["data"]["sessionCode"].as_str().unwrap().to_owned();
    assert!(code.starts_with("evc_session_"), "{exchanged}");
    assert_eq!((&exchanged["data"]["created"], &exchanged["data"]["role"]), (&json!(true), &json!("CLIENT")));
    let user = exchanged["data"]["userId"].clone();
    let (_, again) = bearer(&platform, &machine, "POST", "/v1/integrations/auth/exchange", Some(exchange)).await;
    assert_eq!((&again["data"]["userId"], &again["data"]["created"]), (&user, &json!(false)), "the same user: {again}");
    // An admin key is not an integration; a token speaks for its own integration only.
    let other = json!({ "integrationId": uuid::Uuid::now_v7(), "externalSubject": "x", "email": "x@example.com" });
    let (status, body) = bearer(&platform, &machine, "POST", "/v1/integrations/auth/exchange", Some(other)).await;
    assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"), "{body}");
    let mine = json!({ "integrationId": id, "externalSubject": "x", "email": "x@example.com" });
    let (status, body) = bearer(&platform, &admin, "POST", "/v1/integrations/auth/exchange", Some(mine)).await;
    assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"), "{body}");

    // 4) The browser redeems the code once for a secure, HttpOnly session cookie.
    let (status, opened, headers) =
        public(&platform, "/v1/integrations/auth/session", json!({ "sessionCode": code })).await;
    assert_eq!(status, 200, "{opened}");
    assert_eq!((&opened["data"]["userId"], &opened["data"]["email"]), (&user, &json!("user@example.com")));
    let cookie = headers["set-cookie"].to_str().unwrap().to_owned();
    for attribute in ["evc_portal=evc_ps_", "Secure", "HttpOnly", "Path=/v1/integrations"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let (status, twice, _) = public(&platform, "/v1/integrations/auth/session", json!({ "sessionCode": code })).await;
    assert_eq!((status, error_code(&twice)), (401, "INVALID_CODE"), "a code works once: {twice}");
    let codes = platform.sql("SELECT code_hash FROM integration_session_codes").await;
    assert!(codes.iter().all(|row| !row.try_get::<String>("", "code_hash").unwrap().starts_with("evc_")));

    // The embed page opens with that session, and not without it.
    let session = cookie.split(';').next().unwrap().to_owned();
    let page = raw_get(&platform, "/v1/integrations/embed", &session).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.to_ascii_lowercase().contains("content-type: text/html"), "{page}");
    assert!(page.contains("user@example.com") && page.contains("CLIENT"), "{page}");
    let (status, _, _) = request(platform.addr(), "GET", "/v1/integrations/embed", &[], None).await;
    assert_eq!(status, 401);

    // Another organisation's admin sees none of it.
    let (_, stranger) = platform.organisation().await;
    assert_eq!(bearer(&platform, &stranger, "GET", &format!("/v1/integrations/{id}"), None).await.0, 404);
    let (_, listed) = bearer(&platform, &stranger, "GET", "/v1/integrations", None).await;
    assert_eq!(listed["pagination"]["total"], 0, "{listed}");
    platform.stop().await;
}

#[tokio::test]
async fn bundles_and_allow_lists_bound_what_a_token_reaches_as_the_openapi_document_says() {
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;
    let (_, client_id, secret) = create(&platform, &admin, "CLIENT_ACCESS", json!([])).await;
    let client = token(&platform, &client_id, &secret).await.unwrap();
    // A client bundle rides and reads vehicles, but is no organisation manager.
    assert_eq!(bearer(&platform, &client, "GET", "/vehicles", None).await.0, 200);
    let (status, body) = bearer(&platform, &client, "GET", "/customers", None).await;
    assert_eq!((status, error_code(&body)), (403, "FORBIDDEN"), "{body}");
    assert_eq!(body["error"]["details"]["bundle"], "CLIENT_ACCESS", "{body}");
    assert_eq!(bearer(&platform, &client, "GET", "/api-keys", None).await.0, 403, "admin routes are no bundle's");
    assert_eq!(bearer(&platform, &client, "GET", "/v1/integrations", None).await.0, 403);

    // The document names the bundles of each route, the same table the edge enforces.
    let (_, document, _) = request(platform.addr(), "GET", "/api/partner/v1/openapi.json", &[], None).await;
    assert_eq!(
        document["paths"]["/customers"]["get"]["x-bundles"],
        json!(["ORGANIZATION_ACCESS", "ALL_ACCESS"]),
        "{}",
        document["paths"]["/customers"]["get"]
    );
    assert_eq!(
        document["paths"]["/integrations/auth/exchange"]["post"]["x-bundles"],
        json!(["CLIENT_ACCESS", "ALL_ACCESS"])
    );
    assert_eq!(document["paths"]["/api-keys"]["get"]["x-bundles"], json!([]));

    // An allow-list narrows the bundle to the operations it names.
    let (_, narrow_id, narrow_secret) =
        create(&platform, &admin, "FLEET_MANAGER_ACCESS", json!(["listVehicles"])).await;
    let narrow = token(&platform, &narrow_id, &narrow_secret).await.unwrap();
    assert_eq!(bearer(&platform, &narrow, "GET", "/vehicles", None).await.0, 200);
    let (status, body) = bearer(&platform, &narrow, "GET", "/zones", None).await;
    assert_eq!((status, &body["error"]["details"]["operation"]), (403, &json!("listZones")), "{body}");
    // An allow-list reaching outside its bundle, or naming nothing, is refused.
    for endpoints in [json!(["listCustomers"]), json!(["noSuchOperation"])] {
        let body = json!({ "name": "x", "bundle": "FLEET_MANAGER_ACCESS", "allowedEndpoints": endpoints });
        let (status, refused) = bearer(&platform, &admin, "POST", "/v1/integrations", Some(body)).await;
        assert_eq!((status, error_code(&refused)), (422, "VALIDATION_ERROR"), "{refused}");
    }
    // A client bundle cannot sign in a fleet manager; a forged or altered token is nobody.
    let (id, client_id, secret) = create(&platform, &admin, "CLIENT_ACCESS", json!([])).await;
    let client = token(&platform, &client_id, &secret).await.unwrap();
    let exchange =
        json!({ "integrationId": id, "externalSubject": "e", "email": "e@example.com", "roleHint": "FLEET_MANAGER" });
    assert_eq!(bearer(&platform, &client, "POST", "/v1/integrations/auth/exchange", Some(exchange)).await.0, 403);
    let mut forged = client.clone();
    forged.insert(10, if client.as_bytes()[10] == b'A' { 'B' } else { 'A' });
    let (status, body) = bearer(&platform, &forged, "GET", "/vehicles", None).await;
    assert_eq!((status, error_code(&body)), (401, "UNAUTHORIZED"), "{body}");

    // The questionnaire: the smallest bundle covering the answers, how sure, and why.
    let answers = json!({ "servesRiders": true, "federatedSignIn": true, "endpoints": ["listVehicles", "startRide"] });
    let (status, advice) =
        bearer(&platform, &admin, "POST", "/v1/integrations/questionnaire/recommend", Some(answers)).await;
    assert_eq!(status, 200, "{advice}");
    assert_eq!(advice["data"]["bundle"], "CLIENT_ACCESS", "{advice}");
    assert!(advice["data"]["confidence"].as_f64().unwrap() > 0.5, "{advice}");
    assert!(!advice["data"]["rationale"].as_array().unwrap().is_empty());
    assert_eq!(advice["data"]["allowedEndpoints"], json!(["listVehicles", "startRide"]));
    let answers = json!({ "managesOrganization": true, "embedPortal": true });
    let (_, advice) =
        bearer(&platform, &admin, "POST", "/v1/integrations/questionnaire/recommend", Some(answers)).await;
    assert_eq!(advice["data"]["bundle"], "ALL_ACCESS", "{advice}");
    let answers = json!({ "managesFleet": true });
    let (_, advice) =
        bearer(&platform, &admin, "POST", "/v1/integrations/questionnaire/recommend", Some(answers)).await;
    assert_eq!(advice["data"]["bundle"], "FLEET_MANAGER_ACCESS", "{advice}");
    let (status, _) =
        bearer(&platform, &client, "POST", "/v1/integrations/questionnaire/recommend", Some(json!({}))).await;
    assert_eq!(status, 403, "admins only");
    platform.stop().await;
}

#[tokio::test]
async fn tokens_expire_rotation_keeps_the_old_secret_for_its_grace_and_revocation_cuts_every_edge_at_once() {
    let platform = Platform::start_with(|s| s.integrations.token_ttl = Duration::from_secs(2)).await;
    let (_, admin) = platform.organisation().await;
    let (id, client_id, old_secret) = create(&platform, &admin, "FLEET_MANAGER_ACCESS", json!([])).await;

    // Expiry: a token works until its time is up, then it is refused as expired.
    let early = token(&platform, &client_id, &old_secret).await.unwrap();
    assert_eq!(bearer(&platform, &early, "GET", "/vehicles", None).await.0, 200);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let (status, body) = bearer(&platform, &early, "GET", "/vehicles", None).await;
    assert_eq!((status, body["error"]["message"].as_str()), (401, Some("token expired")), "{body}");

    // Rotation with 3 s of grace: old and new secrets both work, then only the new one.
    let rotate = json!({ "graceSeconds": 3 });
    let (status, rotated) =
        bearer(&platform, &admin, "POST", &format!("/v1/integrations/{id}/rotate-secret"), Some(rotate)).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["data"]["clientSecret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    assert!(token(&platform, &client_id, &old_secret).await.is_ok(), "the old secret within its grace");
    assert!(token(&platform, &client_id, &new_secret).await.is_ok());
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let (status, _) = token(&platform, &client_id, &old_secret).await.unwrap_err();
    assert_eq!(status, 401, "the old secret after its grace");

    // Revocation: a live token dies at once on this edge and within seconds on another one
    // (a second voltbus on the same database and broker).
    platform.stop().await;
    let platform = Platform::start_with(|s| s.integrations.token_ttl = Duration::from_secs(600)).await;
    let (_, admin) = platform.organisation().await;
    let (id, client_id, secret) = create(&platform, &admin, "FLEET_MANAGER_ACCESS", json!([])).await;
    let live = token(&platform, &client_id, &secret).await.unwrap();
    let other = voltbus::start(platform.settings.clone()).await.unwrap();
    let on_other = async |token: &str| {
        let authorization = format!("Bearer {token}");
        let (status, body, _) =
            request(other.addr, "GET", "/api/partner/v1/vehicles", &[("authorization", authorization.as_str())], None)
                .await;
        (status, body)
    };
    assert_eq!(on_other(&live).await.0, 200, "the other edge takes the token");
    let (status, revoked) = bearer(
        &platform,
        &admin,
        "POST",
        &format!("/v1/integrations/{id}/revoke"),
        Some(json!({ "reason": "leaked" })),
    )
    .await;
    assert_eq!((status, revoked["data"]["active"].as_bool()), (200, Some(false)), "{revoked}");
    assert!(revoked["data"]["revokedAt"].is_string());
    let (status, body) = bearer(&platform, &live, "GET", "/vehicles", None).await;
    assert_eq!((status, body["error"]["message"].as_str()), (401, Some("token revoked")), "{body}");
    answers(401, async || on_other(&live).await).await;
    let (status, _) = token(&platform, &client_id, &secret).await.unwrap_err();
    assert_eq!(status, 401, "no new token either");
    other.stop().await.unwrap();

    // Disabling cuts open tokens too; enabling lets new ones through.
    let (id, client_id, secret) = create(&platform, &admin, "FLEET_MANAGER_ACCESS", json!([])).await;
    let before = token(&platform, &client_id, &secret).await.unwrap();
    assert_eq!(bearer(&platform, &admin, "POST", &format!("/v1/integrations/{id}/disable"), None).await.0, 200);
    assert_eq!(bearer(&platform, &before, "GET", "/vehicles", None).await.0, 401);
    assert!(token(&platform, &client_id, &secret).await.is_err());
    assert_eq!(bearer(&platform, &admin, "POST", &format!("/v1/integrations/{id}/enable"), None).await.0, 200);
    let after = token(&platform, &client_id, &secret).await.unwrap();
    assert_eq!(bearer(&platform, &after, "GET", "/vehicles", None).await.0, 200);
    assert_eq!(bearer(&platform, &before, "GET", "/vehicles", None).await.0, 401, "still dead");
    platform.stop().await;
}

#[tokio::test]
async fn calls_are_metered_into_a_monthly_invoice_paid_through_paystack_exactly_once() {
    let state = Arc::new(Paystack::default());
    let provider = paystack(Arc::clone(&state)).await;
    let platform = Platform::start_with(move |s| {
        s.paystack.base_url = Some(format!("http://{provider}"));
        s.paystack.secret_key = "sk_test_secret".into();
        s.paystack.currency = "GHS".into();
        s.webhooks.allow_hosts = vec!["127.0.0.1".into()];
    })
    .await;
    let (tenant, admin) = platform.organisation().await;
    let (id, client_id, secret) = create(&platform, &admin, "FLEET_MANAGER_ACCESS", json!([])).await;
    let machine = token(&platform, &client_id, &secret).await.unwrap();

    // Three calls with the machine token are this month's usage (the request log, through the
    // bus); a refused one is not billed.
    for _ in 0..3 {
        assert_eq!(bearer(&platform, &machine, "GET", "/vehicles", None).await.0, 200);
    }
    assert_eq!(bearer(&platform, &machine, "GET", "/customers", None).await.0, 403);
    let this_month = consumers::billing::usage::period_of(chrono::Utc::now());
    let usage_path = format!("/v1/integrations/{id}/billing/usage/{this_month}");
    answers(200, async || {
        let (status, report) = bearer(&platform, &admin, "GET", &usage_path, None).await;
        let calls =
            report["data"]["usage"].as_array().and_then(|u| u.iter().find(|m| m["metric"] == "api_call").cloned());
        if calls.is_some_and(|m| m["quantity"] == 3) { (status, report) } else { (0, report) }
    })
    .await;

    // Last month's usage (12,500 calls) makes its invoice: 2,500 beyond the 10,000 included, at
    // 1.00 GHS a thousand = 2.50 GHS; issued once, and never for a month still running.
    let last_month = {
        let today = chrono::Utc::now().date_naive();
        let first = today.with_day(1).unwrap() - chrono::Duration::days(1);
        format!("{:04}-{:02}", first.year(), first.month())
    };
    platform
        .sql(&format!(
            "INSERT INTO integration_usage (integration_id, period, metric, tenant, quantity) \
             VALUES ('{id}', '{last_month}', 'api_call', '{tenant}', 12500)"
        ))
        .await;
    let invoices = format!("/v1/integrations/{id}/billing/invoices");
    let (status, invoice) = bearer(&platform, &admin, "POST", &invoices, Some(json!({ "period": last_month }))).await;
    assert_eq!(
        (status, &invoice["data"]["total"], &invoice["data"]["currency"]),
        (201, &json!(250), &json!("GHS")),
        "{invoice}"
    );
    let invoice_id = invoice["data"]["id"].as_str().unwrap().to_owned();
    let (_, again) = bearer(&platform, &admin, "POST", &invoices, Some(json!({ "period": last_month }))).await;
    assert_eq!(again["data"]["id"], invoice_id, "issued once");
    let (status, body) = bearer(&platform, &admin, "POST", &invoices, Some(json!({ "period": this_month }))).await;
    assert_eq!((status, error_code(&body)), (422, "VALIDATION_ERROR"), "{body}");

    // The seed's step 5: initialize needs an Idempotency-Key, and a retry is the same payment.
    let initialize = format!("/v1/integrations/{id}/billing/paystack/initialize");
    let body = json!({ "email": "billing@partner.com", "amount": 250, "currency": "GHS", "invoiceId": invoice_id });
    let (status, refused) = bearer(&platform, &admin, "POST", &initialize, Some(body.clone())).await;
    assert_eq!((status, refused["error"]["details"]["field"].as_str()), (422, Some("idempotency-key")), "{refused}");
    let authorization = format!("Bearer {admin}");
    let headers = [("authorization", authorization.as_str()), ("idempotency-key", "init-1")];
    let (status, started, _) = request(platform.addr(), "POST", &initialize, &headers, Some(&body.to_string())).await;
    assert_eq!(status, 200, "{started}");
    let reference = started["data"]["reference"].as_str().unwrap().to_owned();
    assert_eq!(started["data"]["authorizationUrl"], format!("https://checkout.paystack.com/{reference}"));
    let (_, retried, _) = request(platform.addr(), "POST", &initialize, &headers, Some(&body.to_string())).await;
    assert_eq!(retried["data"]["reference"], json!(reference));
    {
        let initialized = state.initialized.lock().unwrap();
        assert_eq!(initialized.len(), 1, "one Paystack transaction");
        assert_eq!((initialized[0].0.as_str(), &initialized[0].1["amount"]), (reference.as_str(), &json!(250)));
    }
    let wrong = json!({ "email": "billing@partner.com", "amount": 100, "currency": "GHS", "invoiceId": invoice_id });
    let headers2 = [("authorization", authorization.as_str()), ("idempotency-key", "init-2")];
    let (status, _, _) = request(platform.addr(), "POST", &initialize, &headers2, Some(&wrong.to_string())).await;
    assert_eq!(status, 422, "an invoice is paid whole");

    // A forged webhook is refused and changes nothing; a signed one before Paystack has the money
    // changes nothing either; once Paystack confirms, the payment and its invoice are settled,
    // once, however often the webhook comes.
    let webhook = "/v1/integrations/billing/paystack/webhook";
    let event = json!({ "event": "charge.success", "data": { "reference": reference, "amount": 250 } }).to_string();
    let forged = [("x-paystack-signature", "00ff")];
    let (status, body, _) = request(platform.addr(), "POST", webhook, &forged, Some(&event)).await;
    assert_eq!((status, error_code(&body)), (401, "UNAUTHORIZED"), "{body}");
    let signature = signed(&event, b"sk_test_secret");
    let genuine = [("x-paystack-signature", signature.as_str())];
    assert_eq!(request(platform.addr(), "POST", webhook, &genuine, Some(&event)).await.0, 200);
    let status_of = || async {
        let rows =
            platform.sql(&format!("SELECT status FROM integration_invoices WHERE invoice_id = '{invoice_id}'")).await;
        rows[0].try_get::<String>("", "status").unwrap()
    };
    assert_eq!(status_of().await, "open", "nothing paid yet");
    state.paid.lock().unwrap().insert(reference.clone(), 250);
    for _ in 0..2 {
        assert_eq!(request(platform.addr(), "POST", webhook, &genuine, Some(&event)).await.0, 200);
    }
    assert_eq!(status_of().await, "paid");
    let verified = platform.sql("SELECT count(*) AS n FROM outbox WHERE type_name = 'billing.payment_verified'").await;
    assert_eq!(verified[0].try_get::<i64>("", "n").unwrap(), 1, "settled once");
    let (status, checked) =
        bearer(&platform, &admin, "GET", &format!("/v1/integrations/{id}/billing/paystack/verify/{reference}"), None)
            .await;
    assert_eq!(
        (status, &checked["data"]["status"], &checked["data"]["paidAmount"]),
        (200, &json!("success"), &json!(250))
    );
    // The integration's token is not an admin: billing is out of its reach.
    assert_eq!(bearer(&platform, &machine, "GET", &invoices, None).await.0, 403);

    // Events delivered to an endpoint an integration made are its usage too: one per event and
    // endpoint, whatever the receiver did with it.
    let (hooks, hooks_client, hooks_secret) = create(&platform, &admin, "ALL_ACCESS", json!([])).await;
    let hooks_token = token(&platform, &hooks_client, &hooks_secret).await.unwrap();
    let endpoint = json!({ "url": "http://127.0.0.1:9/events", "events": ["customer.created"] });
    let (status, made) = bearer(&platform, &hooks_token, "POST", "/webhooks", Some(endpoint)).await;
    assert_eq!(status, 201, "{made}");
    let (status, _, _) = platform.call(&admin, "POST", "/customers", Some(json!({ "email": "c@example.com" }))).await;
    assert_eq!(status, 201);
    let hooks_usage = format!("/v1/integrations/{hooks}/billing/usage/{this_month}");
    answers(200, async || {
        let (status, report) = bearer(&platform, &admin, "GET", &hooks_usage, None).await;
        let usage = report["data"]["usage"].as_array().cloned().unwrap_or_default();
        let delivered = usage.iter().find(|m| m["metric"] == "event_delivery").map(|m| m["quantity"].clone());
        if delivered == Some(json!(1)) { (status, report) } else { (0, report) }
    })
    .await;
    platform.stop().await;
}

#[tokio::test]
async fn maintenance_tickets_go_only_to_the_workshops_an_integration_may_choose_and_drivers_report_through_client_bundles()
 {
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;
    let workshop = async |name: &str, independent: bool| {
        let body = json!({ "name": name, "independent": independent });
        let (status, created) = bearer(&platform, &admin, "POST", "/workshops", Some(body)).await;
        assert_eq!(status, 201, "{created}");
        created["data"]["id"].as_str().unwrap().to_owned()
    };
    // Text no database column takes is refused at the door, naming the field.
    let (status, refused) = bearer(&platform, &admin, "POST", "/workshops", Some(json!({ "name": "a\u{0}b" }))).await;
    assert_eq!((status, refused["error"]["details"]["field"].as_str()), (422, Some("name")), "{refused}");
    let (depot, garage, other_depot) =
        (workshop("Depot", false).await, workshop("Garage A", true).await, workshop("Other depot", false).await);
    let body = json!({ "vin": "WVWZZZ1JZXW000009", "subaccount_id": uuid::Uuid::now_v7() });
    let (status, vehicle, _) = platform.call(&admin, "POST", "/vehicles", Some(body)).await;
    assert_eq!(status, 201, "{vehicle}");
    let vehicle = vehicle["data"]["id"].as_str().unwrap().to_owned();

    // The fleet manager's integration may send vehicles to the depot and to any independent workshop.
    let (id, client_id, secret) = create(&platform, &admin, "FLEET_MANAGER_ACCESS", json!([])).await;
    let fleet = token(&platform, &client_id, &secret).await.unwrap();
    let selection = json!({ "allowedWorkshopIds": [depot], "independentWorkshops": true });
    let path = format!("/v1/integrations/{id}/maintenance-selection");
    let (status, set) = bearer(&platform, &admin, "PUT", &path, Some(selection)).await;
    assert_eq!((status, &set["data"]["independentWorkshops"]), (200, &json!(true)), "{set}");
    let (_, selectable) = bearer(&platform, &fleet, "GET", "/maintenance/workshops", None).await;
    let mut names: Vec<&str> =
        selectable["data"].as_array().unwrap().iter().map(|w| w["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Depot", "Garage A"], "{selectable}");
    let ticket = |workshop: &str| json!({ "vehicleId": vehicle, "workshopId": workshop, "title": "brakes", "description": "squeal" });
    for allowed in [&depot, &garage] {
        let (status, opened) = bearer(&platform, &fleet, "POST", "/maintenance/tickets", Some(ticket(allowed))).await;
        assert_eq!((status, &opened["data"]["status"]), (201, &json!("open")), "{opened}");
    }
    let (status, refused) = bearer(&platform, &fleet, "POST", "/maintenance/tickets", Some(ticket(&other_depot))).await;
    assert_eq!((status, error_code(&refused)), (403, "WORKSHOP_NOT_ALLOWED"), "{refused}");
    let missing = json!({ "vehicleId": vehicle, "title": "brakes" });
    let (status, refused) = bearer(&platform, &fleet, "POST", "/maintenance/tickets", Some(missing)).await;
    assert_eq!((status, refused["error"]["details"]["field"].as_str()), (422, Some("workshopId")), "{refused}");
    let (_, listed) = bearer(&platform, &fleet, "GET", "/maintenance/tickets", None).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2, "{listed}");

    // Drivers report through a client bundle; a client bundle opens no maintenance ticket, and
    // an organisation bundle no ticket at all.
    let (_, client_id, secret) = create(&platform, &admin, "CLIENT_ACCESS", json!([])).await;
    let client = token(&platform, &client_id, &secret).await.unwrap();
    let report = json!({ "vehicleId": vehicle, "title": "flat tyre", "reportedBy": "ext_123" });
    let (status, opened) = bearer(&platform, &client, "POST", "/driver-tickets", Some(report.clone())).await;
    assert_eq!((status, &opened["data"]["kind"]), (201, &json!("driver")), "{opened}");
    assert_eq!(bearer(&platform, &client, "POST", "/maintenance/tickets", Some(ticket(&depot))).await.0, 403);
    let (_, client_id, secret) = create(&platform, &admin, "ORGANIZATION_ACCESS", json!([])).await;
    let organization = token(&platform, &client_id, &secret).await.unwrap();
    assert_eq!(bearer(&platform, &organization, "POST", "/driver-tickets", Some(report)).await.0, 403);
    // Each integration sees its own tickets only; another organisation cannot select our workshops.
    let (_, theirs) = bearer(&platform, &fleet, "GET", "/driver-tickets", None).await;
    assert_eq!(theirs["data"], json!([]), "{theirs}");
    let (_, stranger) = platform.organisation().await;
    let (stranger_id, _, _) = create(&platform, &stranger, "FLEET_MANAGER_ACCESS", json!([])).await;
    let foreign = json!({ "allowedWorkshopIds": [depot] });
    let path = format!("/v1/integrations/{stranger_id}/maintenance-selection");
    let (status, refused) = bearer(&platform, &stranger, "PUT", &path, Some(foreign)).await;
    assert_eq!((status, error_code(&refused)), (404, "NOT_FOUND"), "{refused}");
    platform.stop().await;
}

/// OAuth 2.0 client credentials (RFC 6749 §4.4) with a standard client library, Authlib from
/// PyPI (`tests/peers/oauth_client.py`): it finds the token endpoint in the RFC 8414 metadata,
/// authenticates by HTTP Basic and by the form, narrows a token with `scope`, and reads the §5.2
/// error codes of a wrong secret, an unknown scope and another grant type. The tokens are machine
/// tokens: the partner API takes them, within the bundle and the scope.
#[tokio::test]
async fn an_oauth_library_gets_client_credentials_tokens_narrowed_by_scope() {
    use tokio::io::AsyncBufReadExt;
    let platform = Platform::start().await;
    let (_, admin) = platform.organisation().await;
    let (_, client_id, secret) = create(&platform, &admin, "ORGANIZATION_ACCESS", json!([])).await;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut child = tokio::process::Command::new(root.join("scripts/peers.sh"))
        .args(["oauth_client.py", &format!("http://{}", platform.addr()), &client_id, &secret])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("scripts/peers.sh runs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut steps = std::collections::HashMap::new();
    while steps.len() < 6 {
        let line = tokio::time::timeout(std::time::Duration::from_secs(300), lines.next_line()).await;
        let line = line.expect("the client said something in time").unwrap().expect("the client ran to its end");
        eprintln!("oauth client: {line}");
        let step: Value = serde_json::from_str(&line).unwrap();
        steps.insert(step["event"].as_str().unwrap().to_owned(), step);
    }
    let metadata = &steps["metadata"];
    assert_eq!(metadata["token_endpoint"], format!("http://{}/oauth/token", platform.addr()), "{metadata}");
    assert_eq!(metadata["grants"], json!(["client_credentials"]));
    let basic = &steps["basic"];
    assert_eq!((&basic["token_type"], &basic["vehicles"]), (&json!("Bearer"), &json!(200)), "{basic}");
    assert!(basic["scope"].as_str().unwrap().contains("customers:write"), "the bundle's permissions: {basic}");
    let narrowed = &steps["narrowed"];
    assert_eq!(
        (&narrowed["scope"], &narrowed["read"], &narrowed["write"], &narrowed["write_code"]),
        (&json!("vehicles:read"), &json!(200), &json!(403), &json!("FORBIDDEN")),
        "{narrowed}"
    );
    assert_eq!(steps["wrong_secret"]["error"], "invalid_client");
    assert_eq!(steps["unknown_scope"]["error"], "invalid_scope");
    assert_eq!(steps["other_grant"]["error"], "unsupported_grant_type");
    let _ = child.wait().await;
    platform.stop().await;
}
