//! Top-ups and purchases paid through QPay end to end: a small HTTP server on 127.0.0.1 speaks
//! QPay's merchant API (token, invoice, payment check); the app tops up, QPay calls back (forged
//! first, then for real, then again), and the wallet is credited exactly once, the app told on
//! `{topic}.REPLENISHMENT`; a purchase paid on QPay's page is settled and told on `PAYMENT`.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use crate::mobile::with_mobile_nats_and;
use crate::partner::error_code;
use crate::support::request;

/// QPay as the test plays it: invoices by id, and which are paid (with how much, whole units).
#[derive(Default)]
pub(crate) struct Qpay {
    pub(crate) invoices: Mutex<HashMap<String, Value>>,
    pub(crate) paid: Mutex<HashMap<String, f64>>,
    /// How many access tokens were asked for.
    pub(crate) tokens: std::sync::atomic::AtomicUsize,
}

/// A provider's API on 127.0.0.1: each request answered by `answer(path, header, body)`.
async fn provider<F>(answer: F) -> SocketAddr
where
    F: Fn(&str, &dyn Fn(&str) -> String, Value) -> (u16, Value) + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                    let answer = Arc::clone(&answer);
                    async move {
                        let path = request.uri().path().to_owned();
                        let headers = request.headers().clone();
                        let header =
                            |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                        let body: Value =
                            serde_json::from_slice(&request.into_body().collect().await.unwrap().to_bytes())
                                .unwrap_or_default();
                        let (status, answer) = answer(&path, &header, body);
                        let response = http::Response::builder()
                            .status(status)
                            .body(Full::new(Bytes::from(answer.to_string())))
                            .unwrap();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    addr
}

/// QPay's merchant API (token, invoice, payment check), as the test plays it.
pub(crate) async fn qpay(state: Arc<Qpay>) -> SocketAddr {
    provider(move |path, header, body| {
        let authorization = header("authorization");
        match path {
            // merchant:secret
            "/v2/auth/token" if authorization == "Basic bWVyY2hhbnQ6c2VjcmV0" => {
                state.tokens.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (200, json!({ "access_token": "token-1", "expires_in": 3600 }))
            }
            _ if authorization != "Bearer token-1" => (401, json!({ "error": "NO_CREDENTIALS" })),
            "/v2/invoice" => {
                let mut invoices = state.invoices.lock().unwrap();
                let id = format!("qp-{}", invoices.len() + 1);
                invoices.insert(id.clone(), body);
                (200, json!({ "invoice_id": id, "qPay_shortUrl": format!("https://s.qpay.mn/{id}") }))
            }
            "/v2/payment/check" => {
                let id = body["object_id"].as_str().unwrap_or_default();
                match state.paid.lock().unwrap().get(id) {
                    Some(amount) => (
                        200,
                        json!({ "count": 1, "paid_amount": amount,
                                "rows": [{ "payment_id": "pay-1", "payment_status": "PAID", "payment_amount": amount }] }),
                    ),
                    None => (200, json!({ "count": 0, "paid_amount": 0, "rows": [] })),
                }
            }
            _ => (404, json!({})),
        }
    })
    .await
}

/// Settings pointing voltbus at the test's QPay at `provider`, as its merchant.
pub(crate) fn with_qpay(provider: SocketAddr) -> impl FnOnce(&mut voltbus::Settings) {
    move |s| {
        s.qpay.base_url = Some(format!("http://{provider}"));
        s.qpay.username = "merchant".into();
        s.qpay.password = "secret".into();
        s.qpay.invoice_code = "VOLTBUS_INVOICE".into();
        s.qpay.callback_url = "https://voltbus.example/api/v1/payments/qpay/callback".into();
    }
}

#[tokio::test]
async fn top_ups_and_purchases_paid_through_qpay_are_settled_once_by_qpays_own_check() {
    let state = Arc::new(Qpay::default());
    let provider = qpay(Arc::clone(&state)).await;
    let (_accounts, server, platform) = with_mobile_nats_and(with_qpay(provider)).await;
    let (tenant, admin) = platform.organisation().await;
    let headers = [("x-tenant", tenant.as_str())];
    let post = |path: &'static str, headers: Vec<(&'static str, String)>, body: Value| {
        let platform = &platform;
        async move {
            let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let (status, body, _) =
                request(platform.addr(), "POST", &format!("/api/v1{path}"), &headers, Some(&body.to_string())).await;
            (status, body)
        }
    };
    request(platform.addr(), "POST", "/api/v1/user/otp-request", &headers, Some(r#"{"phone":"+97686661488"}"#)).await;
    let (_, signed_in, _) = request(
        platform.addr(),
        "POST",
        "/api/v1/user/otp-check",
        &headers,
        Some(r#"{"phone":"+97686661488","code":"0000"}"#),
    )
    .await;
    let bearer = vec![("authorization", format!("Bearer {}", signed_in["token"].as_str().unwrap()))];
    let nats = &signed_in["nats"];
    let credentials = bus::nats::accounts::Credentials {
        jwt: nats["user"].as_str().unwrap().to_owned(),
        seed: nats["pass"].as_str().unwrap().to_owned(),
    };
    let client = async_nats::ConnectOptions::with_credentials(&credentials.creds_file())
        .unwrap()
        .connect(server.url())
        .await
        .unwrap();
    let mut told = client.subscribe(format!("{}.REPLENISHMENT", nats["topic"].as_str().unwrap())).await.unwrap();
    client.flush().await.unwrap();
    let balance = || async {
        let (_, me) = post("/user/me", bearer.clone(), json!({})).await;
        me["profile"]["balance"].as_i64().unwrap()
    };

    // The top-up: QPay's invoice, of 50 MNT (5,000 minor units), calling back to voltbus.
    let (status, body) = post("/customer/replenish", bearer.clone(), json!({ "amount": 5000, "option": "QPAY" })).await;
    assert_eq!(status, 200, "{body}");
    let invoice = body["invoiceId"].as_str().unwrap().to_owned();
    assert_eq!((&body["option"], &body["url"]), (&json!("QPAY"), &json!("https://s.qpay.mn/qp-1")));
    let made = state.invoices.lock().unwrap()["qp-1"].clone();
    assert_eq!((&made["amount"], &made["sender_invoice_no"]), (&json!(50.0), &json!(invoice)));
    assert!(made["callback_url"].as_str().unwrap().ends_with(&format!("?invoice={invoice}")));

    // A callback before QPay has the money (forged, or early): nothing changes.
    let callback = format!("/api/v1/payments/qpay/callback?invoice={invoice}");
    let (status, _, _) = request(platform.addr(), "GET", &callback, &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(balance().await, 0);
    let (_, polled) = post("/customer/replenishment", bearer.clone(), json!({ "invoiceId": invoice })).await;
    assert_eq!(polled, json!({ "status": "pending", "amount": 5000 }));

    // QPay has it: the callback credits the wallet once, and the app is told; a replay does nothing.
    state.paid.lock().unwrap().insert("qp-1".into(), 50.0);
    for _ in 0..2 {
        let (status, _, _) = request(platform.addr(), "GET", &callback, &[], None).await;
        assert_eq!(status, 200);
    }
    let message = tokio::time::timeout(Duration::from_secs(10), told.next()).await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&message.payload).unwrap(),
        json!({ "status": "success", "amount": 5000, "currency": "MNT" })
    );
    assert_eq!(balance().await, 5000);
    let (_, polled) = post("/customer/replenishment", bearer.clone(), json!({ "invoiceId": invoice })).await;
    assert_eq!(polled, json!({ "status": "success", "amount": 5000 }));
    assert!(tokio::time::timeout(Duration::from_millis(400), told.next()).await.is_err(), "told twice");
    let entries = platform.sql("SELECT count(*) AS n FROM wallet_entries WHERE source = 'replenishment'").await;
    assert_eq!(entries[0].try_get::<i64>("", "n").unwrap(), 1, "credited once");

    // A charging purchase of 11.75 MNT paid through QPay, which takes whole units: invoiced 12,
    // settled by QPay's check.
    let customer = nats["topic"].as_str().unwrap().rsplit('.').next().unwrap().to_owned();
    let purchase = uuid::Uuid::now_v7();
    platform
        .sql(&format!(
            "INSERT INTO purchases (purchase_id, tenant, customer_id, session_id, charger_id, energy_kwh, amount, currency, \
             status, created_at, updated_at) VALUES ('{purchase}', '{tenant}', '{customer}', '{}', '{}', 2.5, 1175, 'MNT', \
             'pending', now(), now())",
            uuid::Uuid::now_v7(),
            uuid::Uuid::now_v7()
        ))
        .await;
    let mut payments = client.subscribe(format!("{}.PAYMENT", nats["topic"].as_str().unwrap())).await.unwrap();
    client.flush().await.unwrap();
    let (status, body) =
        post_path(&platform, &format!("/purchases/{purchase}/pay"), &bearer, json!({ "option": "QPAY" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["option"], &body["url"]), (&json!("QPAY"), &json!("https://s.qpay.mn/qp-2")));
    let qpay_invoice = body["invoiceId"].as_str().unwrap().to_owned();
    assert_eq!(state.invoices.lock().unwrap()["qp-2"]["amount"], json!(12.0));
    let status_of = json!({ "invoiceId": qpay_invoice });
    let (_, polled) = post_path(&platform, &format!("/purchases/{purchase}/status"), &bearer, status_of.clone()).await;
    assert_eq!(polled, json!({ "status": "pending", "amount": 1200 }));
    state.paid.lock().unwrap().insert("qp-2".into(), 12.0);
    let callback = format!("/api/v1/payments/qpay/callback?invoice={qpay_invoice}");
    let (status, _, _) = request(platform.addr(), "POST", &callback, &[], Some("{}")).await;
    assert_eq!(status, 200);
    let message = tokio::time::timeout(Duration::from_secs(10), payments.next()).await.unwrap().unwrap();
    assert_eq!(
        serde_json::from_slice::<Value>(&message.payload).unwrap(),
        json!({ "status": "success", "amount": 1175, "currency": "MNT" })
    );
    let (_, polled) =
        post_path(&platform, &format!("/purchases/{purchase}/status"), &bearer, json!({ "invoiceId": purchase })).await;
    assert_eq!(polled, json!({ "status": "success", "amount": 1175 }));
    assert_eq!(balance().await, 5000, "paid by QPay, not from the balance");
    // One access token served two invoices and every check.
    assert_eq!(state.tokens.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A top-up QPay cannot take (not whole MNT): refused before anything is made.
    let (status, body) =
        post_path(&platform, "/customer/replenish", &bearer, json!({ "amount": 150, "option": "QPAY" })).await;
    assert_eq!((status, body["error"]["details"]["field"].as_str()), (422, Some("amount")), "{body}");

    // Nobody else's invoice, no invoice at all, another provider: typed errors.
    let (status, body) = post("/customer/replenish", bearer.clone(), json!({ "amount": 5000, "option": "EVM" })).await;
    assert_eq!((status, error_code(&body)), (422, "VALIDATION_ERROR"), "{body}");
    let (status, _, _) =
        request(platform.addr(), "GET", "/api/v1/payments/qpay/callback?invoice=nope", &[], None).await;
    assert_eq!(status, 422);
    let (status, _, _) = platform.call(&admin, "GET", "/me", None).await;
    assert_eq!(status, 200);
    platform.stop().await;
}

async fn post_path(
    platform: &crate::partner::Platform,
    path: &str,
    bearer: &[(&'static str, String)],
    body: Value,
) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = bearer.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let (status, body, _) =
        request(platform.addr(), "POST", &format!("/api/v1{path}"), &headers, Some(&body.to_string())).await;
    (status, body)
}

/// Paystack as the test plays it: transactions by reference, and which succeeded.
#[derive(Default)]
pub(crate) struct Paystack {
    pub(crate) initialized: Mutex<Vec<(String, Value)>>,
    pub(crate) paid: Mutex<HashMap<String, i64>>,
}

/// Paystack's API (initialize, verify), as the test plays it.
pub(crate) async fn paystack(state: Arc<Paystack>) -> SocketAddr {
    provider(move |path, header, body| {
        if header("authorization") != "Bearer sk_test_secret" {
            (401, json!({ "status": false }))
        } else if path == "/transaction/initialize" {
            let reference = body["reference"].as_str().unwrap_or_default().to_owned();
            state.initialized.lock().unwrap().push((header("idempotency-key"), body));
            let page = format!("https://checkout.paystack.com/{reference}");
            (200, json!({ "status": true, "data": { "authorization_url": page, "access_code": "ac", "reference": reference } }))
        } else if let Some(reference) = path.strip_prefix("/transaction/verify/") {
            match state.paid.lock().unwrap().get(reference) {
                Some(amount) => {
                    (200, json!({ "status": true, "data": { "status": "success", "amount": amount, "currency": "GHS" } }))
                }
                None => (200, json!({ "status": true, "data": { "status": "abandoned", "amount": 0, "currency": "GHS" } })),
            }
        } else {
            (404, json!({}))
        }
    })
    .await
}

pub(crate) fn signed(body: &str, key: &[u8]) -> String {
    let tag = ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA512, key), body.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_paystack_top_up_is_credited_once_only_on_a_signed_and_verified_webhook() {
    let state = Arc::new(Paystack::default());
    let provider = paystack(Arc::clone(&state)).await;
    let (_accounts, _server, platform) = with_mobile_nats_and(move |s| {
        s.paystack.base_url = Some(format!("http://{provider}"));
        s.paystack.secret_key = "sk_test_secret".into();
        s.paystack.currency = "GHS".into();
    })
    .await;
    let (tenant, _) = platform.organisation().await;
    let headers = [("x-tenant", tenant.as_str())];
    request(platform.addr(), "POST", "/api/v1/user/otp-request", &headers, Some(r#"{"phone":"+233201234567"}"#)).await;
    let (_, signed_in, _) = request(
        platform.addr(),
        "POST",
        "/api/v1/user/otp-check",
        &headers,
        Some(r#"{"phone":"+233201234567","code":"0000"}"#),
    )
    .await;
    let bearer = vec![("authorization", format!("Bearer {}", signed_in["token"].as_str().unwrap()))];
    let balance = || async {
        let (_, me) = post_path(&platform, "/user/me", &bearer, json!({})).await;
        me["profile"]["balance"].as_i64().unwrap()
    };
    let (status, options) = post_path(&platform, "/payment-options", &bearer, json!({})).await;
    assert_eq!(status, 405, "options are a GET: {options}");

    let (status, body) =
        post_path(&platform, "/customer/replenish", &bearer, json!({ "amount": 3000, "option": "PAYSTACK" })).await;
    assert_eq!(status, 200, "{body}");
    let invoice = body["invoiceId"].as_str().unwrap().to_owned();
    assert_eq!(body["url"], format!("https://checkout.paystack.com/{invoice}"));
    let (key, initialized) = state.initialized.lock().unwrap()[0].clone();
    assert_eq!(
        (key.as_str(), &initialized["amount"], &initialized["currency"]),
        (invoice.as_str(), &json!(3000), &json!("GHS"))
    );

    let webhook =
        json!({ "event": "charge.success", "data": { "reference": invoice, "amount": 3000, "currency": "GHS" } })
            .to_string();
    let deliver = |signature: String| {
        let (platform, webhook) = (&platform, webhook.clone());
        async move {
            let headers = [("x-paystack-signature", signature.as_str())];
            request(platform.addr(), "POST", "/api/v1/payments/paystack/webhook", &headers, Some(&webhook)).await.0
        }
    };
    // Forged (another key), then signed but not paid at Paystack: nothing changes.
    assert_eq!(deliver(signed(&webhook, b"sk_guess")).await, 401);
    assert_eq!(deliver(signed(&webhook, b"sk_test_secret")).await, 200);
    assert_eq!(balance().await, 0);
    // Paid at Paystack: the signed webhook credits once; its replay credits nothing.
    state.paid.lock().unwrap().insert(invoice.clone(), 3000);
    assert_eq!(deliver(signed(&webhook, b"sk_test_secret")).await, 200);
    assert_eq!(deliver(signed(&webhook, b"sk_test_secret")).await, 200);
    assert_eq!(balance().await, 3000);
    let (_, polled) = post_path(&platform, "/customer/replenishment", &bearer, json!({ "invoiceId": invoice })).await;
    assert_eq!(polled, json!({ "status": "success", "amount": 3000 }));
    let entries = platform.sql("SELECT count(*) AS n FROM wallet_entries WHERE source = 'replenishment'").await;
    assert_eq!(entries[0].try_get::<i64>("", "n").unwrap(), 1, "credited once");
    platform.stop().await;
}
