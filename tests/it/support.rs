//! Shared helpers: service URLs, isolated databases and tenants, a tiny HTTP client.

use std::path::PathBuf;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::Value;
use voltbus::Settings;

/// PostgreSQL of the test machine (trust auth; the password only matters on a fresh install).
pub fn postgres_url() -> String {
    std::env::var("VOLTBUS_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into())
}

/// RabbitMQ of the test machine.
pub fn amqp_url() -> String {
    std::env::var("VOLTBUS_TEST_AMQP").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// NATS (JetStream on) of the test machine.
pub fn nats_url() -> String {
    std::env::var("VOLTBUS_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A short unique name, for databases, tenants and subjects of one test.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

/// A tenant id no other test uses.
pub fn tenant() -> schemas::TenantId {
    schemas::TenantId::new(unique("t")).unwrap()
}

/// Creates an empty PostgreSQL database for one test and returns its URL.
pub async fn fresh_postgres_database() -> String {
    let admin_url = postgres_url();
    let admin = Database::connect(&admin_url).await.expect("PostgreSQL must be running (scripts/test.sh starts it)");
    let name = unique("vb");
    admin
        .execute_raw(Statement::from_string(admin.get_database_backend(), format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    admin.close().await.unwrap();
    let base = admin_url.rsplit_once('/').unwrap().0;
    format!("{base}/{name}")
}

/// A scratch directory under the target directory.
pub fn scratch_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique("run"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Settings for an in-process app on a free port with its own embedded data directory.
pub fn embedded_settings() -> Settings {
    let mut settings = Settings::default();
    settings.http.bind = "127.0.0.1:0".parse().unwrap();
    settings.data_dir = scratch_dir();
    settings.http.shutdown_grace_seconds = 5;
    settings
}

/// GET a path and return status and JSON body.
pub async fn get_json(addr: std::net::SocketAddr, path: &str) -> (u16, Value, http::HeaderMap) {
    request(addr, "GET", path, &[], None).await
}

/// The engine entry of a `/health` body.
pub fn engine<'a>(health: &'a Value, role: &str) -> &'a Value {
    health["engines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["engine"] == role)
        .unwrap_or_else(|| panic!("no {role} in {health}"))
}

/// A RabbitMQ virtual host of one test, so that its consumer groups (same queue names as every
/// other app's) see only its own commands. Returns the AMQP URL into it.
pub fn fresh_vhost() -> String {
    let vhost = unique("vb");
    broker_admin("PUT", &format!("/api/vhosts/{vhost}"), "", &["add_vhost", &vhost]);
    let everything = r#"{"configure":".*","write":".*","read":".*"}"#;
    let permissions = ["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"];
    broker_admin("PUT", &format!("/api/permissions/{vhost}/guest"), everything, &permissions);
    let base = amqp_url();
    format!("{}/{vhost}", base.rsplit_once('/').unwrap().0)
}

/// Deletes a virtual host made by [`fresh_vhost`]; any other (a private node's `/`) is left alone.
pub fn drop_vhost(url: &str) {
    let vhost = url.rsplit_once('/').unwrap().1;
    if vhost.starts_with("vb_") {
        broker_admin("DELETE", &format!("/api/vhosts/{vhost}"), "", &["delete_vhost", vhost]);
    }
}

/// The routing keys `queue` of the virtual host of `amqp_url` is bound to the events exchange
/// with, sorted, as RabbitMQ's management API lists them.
pub async fn event_bindings(amqp_url: &str, queue: &str) -> Vec<String> {
    let vhost = amqp_url.rsplit_once('/').unwrap().1;
    let path = format!("/api/queues/{vhost}/{queue}/bindings");
    let addr = management_addr().parse().unwrap();
    let authorization = [("authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")];
    let (status, bindings, _) = request(addr, "GET", &path, &authorization, None).await;
    assert_eq!(status, 200, "{path}: {bindings}");
    let mut keys: Vec<String> = bindings
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["source"] == schemas::routing::EVENTS_EXCHANGE)
        .map(|b| b["routing_key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

/// RabbitMQ's management API of the test machine (scripts/test.sh enables it).
fn management_addr() -> String {
    std::env::var("VOLTBUS_TEST_RABBIT_MANAGEMENT").unwrap_or_else(|_| "127.0.0.1:15672".into())
}

/// One change to the broker's virtual hosts: through the management API, or, where it is not
/// enabled, `rabbitmqctl`. The API first: two `rabbitmqctl` run at once (tests run in parallel
/// processes) were seen to hang each other for good.
fn broker_admin(method: &str, path: &str, body: &str, rabbitmqctl_args: &[&str]) {
    use std::io::{Read, Write};
    if let Ok(mut stream) = std::net::TcpStream::connect(management_addr()) {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
        // guest:guest, the test broker's account.
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic Z3Vlc3Q6Z3Vlc3Q=\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            management_addr(),
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer.split(' ').nth(1).unwrap_or_default();
        assert!(matches!(status, "201" | "204" | "404"), "{method} {path}: {answer}");
        return;
    }
    rabbitmqctl(rabbitmqctl_args);
}

fn rabbitmqctl(args: &[&str]) {
    let direct = crate::private_rabbit::rabbitmqctl().args(args).output();
    if direct.as_ref().is_ok_and(|o| o.status.success()) {
        return;
    }
    let output = crate::private_rabbit::rabbitmqctl_as_root().args(args).output();
    let ok = output.as_ref().is_ok_and(|o| o.status.success());
    assert!(ok, "rabbitmqctl {args:?} failed: {direct:?} / {output:?}");
}

/// One HTTP request: method, path, headers, optional body; returns status, JSON body, headers.
pub async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value, http::HeaderMap) {
    let (status, body, headers) = request_bytes(addr, method, path, headers, body).await;
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null), headers)
}

/// Like [`request`], with the body as it came.
pub async fn request_bytes(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Bytes, http::HeaderMap) {
    use http_body_util::Full;
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let mut builder = http::Request::builder().method(method).uri(path).header("host", addr.to_string());
    if body.is_some() && !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
        builder = builder.header("content-type", "application/json");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::from(body.unwrap_or_default().to_owned()))).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, response.into_body().collect().await.unwrap().to_bytes(), headers)
}

/// A free port below the kernel's range for outgoing connections (32768–60999), for a server a
/// test stops and starts again on the same address: while it is down, no client's connection can
/// take its port (which one from `bind(0)` could, from that range).
pub fn steady_port() -> u16 {
    for attempt in 0..1_000u128 {
        let seed = (uuid::Uuid::now_v7().as_u128() ^ attempt.wrapping_mul(0x9e37_79b9)) % 12_000;
        let port = 20_000 + u16::try_from(seed).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000")
}

/// `step` within `seconds`, or a failure that names it: tests that start and stop processes once
/// hung until nextest cut them at 300 s, saying nothing of where. Each step's time is printed
/// (shown when the test fails).
pub async fn within<T>(seconds: u64, step: &str, future: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(seconds), future).await;
    eprintln!("{step}: {:?}", started.elapsed());
    outcome.unwrap_or_else(|_| panic!("{step}: not done within {seconds} s"))
}

/// `work` (a blocking call: a CLI, a process started or stopped) on the blocking pool, so that
/// [`within`] can bound it.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.expect("blocking step panicked")
}
