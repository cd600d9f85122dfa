//! A mobile app's view of voltbus (EVM seed): sign in with a phone over HTTP, connect to NATS
//! with the credentials the sign-in answers (`nats.user` is the user JWT, `nats.pass` its nkey
//! seed), and print each realtime message on the user's topic (`CHARGING`, `PAYMENT`,
//! `REPLENISHMENT`) as the app receives it: the seed's body, the envelope in `ce-…` headers.
//!
//! ```sh
//! cargo run --example realtime_listener -- http://127.0.0.1:8080 "+976 8666 1488" acme
//! ```
//!
//! It asks for the code sent to the phone on standard input (with no SMS provider configured,
//! voltbus writes the message to its log). The NATS server must trust voltbus's operator
//! (`voltbus nats-accounts`).

use anyhow::Context;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// POSTs `body` to `base` + `/api/v1` + `path` for organisation `tenant`; the answer's body.
async fn post(base: &str, tenant: &str, path: &str, body: Value) -> anyhow::Result<Value> {
    let authority = base.strip_prefix("http://").context("the voltbus URL must be http://host:port")?;
    let authority = authority.trim_end_matches('/');
    let stream = tokio::net::TcpStream::connect(authority).await.with_context(|| format!("connecting to {base}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = http::Request::post(format!("/api/v1{path}"))
        .header("host", authority)
        .header("content-type", "application/json")
        .header("x-tenant", tenant)
        .body(Full::new(Bytes::from(body.to_string())))?;
    let answer = sender.send_request(request).await?;
    let status = answer.status();
    let body: Value = serde_json::from_slice(&answer.into_body().collect().await?.to_bytes())?;
    anyhow::ensure!(status.is_success(), "{path} answered {status}: {body}");
    Ok(body)
}

/// Signs `phone` in with the code `code_sent` gives once it was sent; the answer's `nats`.
async fn sign_in(
    base: &str,
    tenant: &str,
    phone: &str,
    code_sent: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<Value> {
    post(base, tenant, "/user/otp-request", json!({ "phone": phone })).await?;
    let code = code_sent()?;
    let signed_in = post(base, tenant, "/user/otp-check", json!({ "phone": phone, "code": code })).await?;
    anyhow::ensure!(!signed_in["nats"].is_null(), "this voltbus gives no NATS credentials (nats.operator_seed unset)");
    Ok(signed_in["nats"].clone())
}

/// Connects with the sign-in's credentials and prints what arrives on the user's topic;
/// returns after `limit` messages (`None`: never).
async fn listen(nats: &Value, limit: Option<usize>) -> anyhow::Result<Vec<String>> {
    let (jwt, seed) = (nats["user"].as_str().unwrap_or_default(), nats["pass"].as_str().unwrap_or_default());
    let credentials = bus::nats::accounts::Credentials { jwt: jwt.to_owned(), seed: seed.to_owned() };
    let servers = nats["servers"].as_str().context("nats.servers")?;
    let client = async_nats::ConnectOptions::with_credentials(&credentials.creds_file())?.connect(servers).await?;
    let topic = nats["topic"].as_str().context("nats.topic")?;
    let mut subscriber = client.subscribe(format!("{topic}.>")).await?;
    client.flush().await?;
    println!("listening on {topic}.>");
    let mut seen = Vec::new();
    while let Some(message) = subscriber.next().await {
        let body = String::from_utf8_lossy(&message.payload).into_owned();
        let channel = message.subject.rsplit('.').next().unwrap_or_default().to_owned();
        match bus::nats::decode(&message) {
            Ok(envelope) => println!("{channel} ({}): {body}", envelope.type_name),
            Err(error) => println!("{channel} (undecodable: {}): {body}", error.kind()),
        }
        seen.push(body);
        if limit.is_some_and(|n| seen.len() >= n) {
            break;
        }
    }
    Ok(seen)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let base = args.next().unwrap_or_else(|| "http://127.0.0.1:8080".into());
    let phone = args.next().context("give the phone to sign in with, e.g. \"+976 8666 1488\"")?;
    let tenant = args.next().unwrap_or_else(|| "acme".into());
    let nats = sign_in(&base, &tenant, &phone, || {
        println!("code sent to {phone}; type it:");
        let mut code = String::new();
        std::io::stdin().read_line(&mut code)?;
        Ok(code.trim().to_owned())
    })
    .await?;
    listen(&nats, None).await?;
    Ok(())
}

#[tokio::test]
async fn signs_in_and_prints_its_charging_message() {
    use bus::nats::accounts::{Accounts, Permissions};
    use schemas::{Currency, Envelope, TenantId, charging::ChargingProgress, subjects::Channel};

    // A nats-server of the example's own, trusting a fresh operator.
    let accounts = Accounts::generate();
    let dir = std::env::temp_dir().join(format!("voltbus-example-{}", uuid::Uuid::now_v7().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("server.conf"), accounts.server_config().unwrap()).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let binary =
        if std::path::Path::new("/usr/sbin/nats-server").exists() { "/usr/sbin/nats-server" } else { "nats-server" };
    let mut server = std::process::Command::new(binary)
        .arg("-c")
        .arg(dir.join("server.conf"))
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&dir)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server is installed (scripts/test.sh installs it)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let url = format!("nats://127.0.0.1:{port}");

    // voltbus on its embedded default, with that NATS for the realtime channel.
    let (operator, account) = accounts.seeds().unwrap();
    let mut settings = voltbus::Settings { data_dir: dir.join("data"), ..Default::default() };
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.nats.url = Some(url.clone().into());
    settings.nats.operator_seed = Some(operator.into());
    settings.nats.account_seed = Some(account.into());
    settings.mobile.dev_code = Some("0000".into());
    // The organisation the app belongs to (its first admin key registers it).
    voltbus::create_admin_key(&settings, "example", "admin").await.unwrap();
    let running = voltbus::start(settings).await.unwrap();
    let base = format!("http://{}", running.addr);

    let nats = sign_in(&base, "example", "+976 8666 1488", || Ok("0000".into())).await.unwrap();
    let listener = {
        let nats = nats.clone();
        tokio::spawn(async move { listen(&nats, Some(1)).await })
    };
    // voltbus's side: a charging session's progress on the user's channel.
    let service = accounts.user("example-publisher", &Permissions::All, None).unwrap();
    let publisher = bus::nats::NatsConnection::connect_with(&url, "example", Some(service.creds_file())).await.unwrap();
    let tenant = TenantId::new("example").unwrap();
    let topic = nats["topic"].as_str().unwrap();
    let user: uuid::Uuid = topic.rsplit('.').next().unwrap().parse().unwrap();
    let progress =
        ChargingProgress { energy: 1.0, waiting_time: 0, amount: 100, currency: Currency::MNT, purchase_id: None };
    let envelope = Envelope::new(tenant.clone(), "example", progress).with_subject(user.to_string());
    // The subscription may not be registered yet: publish until the listener has its message.
    for _ in 0..50 {
        let channel = schemas::subjects::user_channel(&tenant, user, Channel::Charging);
        publisher.publish_realtime(channel, &envelope).await.unwrap();
        if listener.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen = listener.await.unwrap().unwrap();
    assert!(seen[0].contains("\"waitingTime\":0"), "{seen:?}");
    running.stop().await.unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
