//! What the benches share: settings from the environment, a voltbus of their own on a fresh
//! PostgreSQL database and RabbitMQ virtual host (dropped at the end), an HTTP client, and
//! percentiles.

#![allow(dead_code, reason = "each bench uses the part it needs")]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// `name` from the environment, or `default`.
pub fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// A number from the environment, or `default`.
pub fn number(name: &str, default: u64) -> u64 {
    env(name, &default.to_string()).parse().unwrap_or(default)
}

/// The `p` quantile of `sorted`.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// One HTTP/1 client connection.
pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// Opens a client connection to `addr`.
pub async fn connect(addr: SocketAddr) -> Sender {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
    tokio::spawn(connection);
    sender
}

/// A request with a JSON body, if any.
pub fn request(
    method: &str,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, String)],
    body: Option<String>,
) -> http::Request<Full<Bytes>> {
    let mut builder = http::Request::builder().method(method).uri(path).header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, value);
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    builder.body(Full::new(Bytes::from(body.unwrap_or_default()))).expect("request")
}

/// Sends `request` and reads the whole answer.
pub async fn send(sender: &mut Sender, request: http::Request<Full<Bytes>>) -> (u16, Bytes) {
    sender.ready().await.expect("connection ready");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    (status, response.into_body().collect().await.expect("body").to_bytes())
}

/// CPU seconds used so far by the processes `select` picks by pid and command name.
pub fn cpu_seconds(select: impl Fn(u32, &str) -> bool) -> f64 {
    let ticks = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = &stat[open + 1..close];
        if !select(pid, name) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
        let used: f64 = fields.get(11..13).map_or(0.0, |f| f.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
        total += used / ticks;
    }
    total
}

fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl").args(args).output().expect("rabbitmqctl runs").status;
    assert!(status.success(), "rabbitmqctl {args:?}");
}

/// A running voltbus on a database and virtual host of its own.
pub struct BenchPlatform {
    pub running: voltbus::Running,
    pub settings: voltbus::Settings,
    name: String,
    admin: DatabaseConnection,
}

impl BenchPlatform {
    /// Starts voltbus on a fresh database and virtual host, after `adjust` has had its say.
    pub async fn start(adjust: impl FnOnce(&mut voltbus::Settings)) -> Self {
        let postgres = env("VOLTBUS_TEST_POSTGRES", "postgres://postgres:postgres@127.0.0.1:5432/test");
        let amqp = env("VOLTBUS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2f");
        let name = format!("vb_bench_{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
        let admin = Database::connect(&postgres).await.expect("PostgreSQL");
        admin
            .execute_raw(Statement::from_string(admin.get_database_backend(), format!("CREATE DATABASE {name}")))
            .await
            .expect("create database");
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        let mut settings = voltbus::Settings::default();
        settings.http.bind = "127.0.0.1:0".parse().expect("addr");
        // Loopback: TLS would only measure rustls on both ends of one machine.
        settings.database.url =
            Some(format!("{}/{name}?sslmode=disable", postgres.rsplit_once('/').expect("url").0).into());
        settings.amqp.url = Some(format!("{}/{name}", amqp.rsplit_once('/').expect("amqp url").0).into());
        settings.log.filter = "warn".into();
        adjust(&mut settings);
        // `RUST_LOG` turns on the platform's own logs, to see where the time goes.
        if std::env::var_os("RUST_LOG").is_some() {
            voltbus::telemetry::init(&settings.log);
        }
        let running = voltbus::start(settings.clone()).await.expect("voltbus starts");
        Self { running, settings, name, admin }
    }

    /// Stops voltbus and drops its database and virtual host.
    pub async fn stop(self) {
        self.running.stop().await.expect("voltbus stops");
        rabbitmqctl(&["delete_vhost", &self.name]);
        let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        let _ = self.admin.execute_raw(Statement::from_string(self.admin.get_database_backend(), drop)).await;
    }
}

/// A name no other run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &uuid::Uuid::now_v7().simple().to_string()[20..])
}

#[path = "../../tests/it/private_postgres.rs"]
pub mod private_postgres;

#[path = "../../bus/tests/it/private_nats.rs"]
pub mod private_nats;

#[path = "../../tests/it/otlp.rs"]
pub mod otlp;

/// `voltbus serve` as its own process (the release binary, so its memory and CPU are its own) on
/// a fresh database and virtual host and a nats-server of its own; `extra` is appended to its
/// configuration file.
pub struct Served {
    pub server: std::process::Child,
    pub settings: voltbus::Settings,
    pub nats: private_nats::PrivateNats,
    pub name: String,
    admin: DatabaseConnection,
    /// The build served, and its configuration file.
    exe: std::path::PathBuf,
    config: std::path::PathBuf,
}

impl Served {
    /// This checkout's `voltbus serve`.
    pub async fn spawn(prefix: &str, extra: &str) -> Self {
        Self::spawn_build(std::path::Path::new(env!("CARGO_BIN_EXE_voltbus")), prefix, extra).await
    }

    /// `exe serve` (this checkout's voltbus or an older build, see [`builds`]).
    pub async fn spawn_build(exe: &std::path::Path, prefix: &str, extra: &str) -> Self {
        use std::process::{Command, Stdio};
        let postgres = env("VOLTBUS_TEST_POSTGRES", "postgres://postgres:postgres@127.0.0.1:5432/test");
        let amqp = env("VOLTBUS_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/%2f");
        let name = unique(prefix);
        let admin = Database::connect(&postgres).await.expect("PostgreSQL");
        let create = Statement::from_string(admin.get_database_backend(), format!("CREATE DATABASE {name}"));
        admin.execute_raw(create).await.expect("create database");
        for args in [vec!["add_vhost", &name], vec!["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]] {
            assert!(Command::new("rabbitmqctl").args(&args).output().expect("rabbitmqctl").status.success());
        }
        let nats = private_nats::PrivateNats::start();
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&name);
        std::fs::create_dir_all(&dir).expect("bench dir");
        let config = dir.join("voltbus.toml");
        let toml = format!(
            "data_dir = {data:?}\n[http]\nbind = \"127.0.0.1:{port}\"\n[database]\nurl = {db:?}\n[amqp]\nurl = {amqp:?}\n\
             [nats]\nurl = {nats:?}\n[webhooks]\nallow_hosts = [\"127.0.0.1\"]\n[mobile]\ndev_code = \"0000\"\n\
             [log]\nfilter = \"warn\"\n{extra}",
            data = dir.join("data"),
            db = format!("{}/{name}?sslmode=disable", postgres.rsplit_once('/').expect("url").0),
            amqp = format!("{}/{name}", amqp.rsplit_once('/').expect("amqp url").0),
            nats = nats.url(),
        );
        std::fs::write(&config, toml).expect("config");
        let settings = voltbus::Settings::load(Some(&config)).expect("settings");
        let server = Command::new(exe)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("voltbus.log")).map_or_else(|_| Stdio::null(), Into::into))
            .spawn()
            .expect("voltbus serve");
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(settings.http.bind).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { server, settings, nats, name, admin, exe: exe.to_owned(), config }
    }

    /// An admin key of `tenant`, made by the served build's own `api-keys create-admin`: the
    /// library call would migrate the database with this checkout's migrations, and an older
    /// build (`BENCH_BASELINE`) would then run on a schema it does not know.
    pub fn admin_key(&self, tenant: &str, name: &str) -> String {
        let output = std::process::Command::new(&self.exe)
            .arg("--config")
            .arg(&self.config)
            .args(["api-keys", "create-admin", "--tenant", tenant, "--name", name])
            .output()
            .expect("voltbus api-keys create-admin");
        assert!(output.status.success(), "create-admin: {}", String::from_utf8_lossy(&output.stderr));
        let made: serde_json::Value = serde_json::from_slice(&output.stdout).expect("create-admin prints JSON");
        made["key"].as_str().expect("the key").to_owned()
    }

    /// Runs `sql` on the served database.
    pub async fn sql(&self, sql: &str) {
        let url = self.settings.database.url.as_deref().expect("database url").to_owned();
        let db = Database::connect(&url).await.expect("the served database");
        db.execute_raw(Statement::from_string(db.get_database_backend(), sql.to_owned())).await.expect("sql");
        db.close().await.ok();
    }

    /// Stops voltbus (SIGINT, as an operator would) and drops its database and virtual host.
    pub async fn stop(mut self) {
        use std::process::Command;
        let _ = Command::new("kill").args(["-INT", &self.server.id().to_string()]).status();
        let _ = self.server.wait();
        let drop_db = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        let _ = self.admin.execute_raw(Statement::from_string(self.admin.get_database_backend(), drop_db)).await;
        let _ = Command::new("rabbitmqctl").args(["delete_vhost", &self.name]).output();
    }
}

/// A voltbus build a bench runs.
#[derive(Clone, Debug)]
pub struct Build {
    /// `A` (the baseline) or `B` (this checkout's).
    pub side: &'static str,
    /// Its round, from 1.
    pub round: u64,
    /// The `voltbus` executable.
    pub exe: std::path::PathBuf,
}

/// The builds a bench runs, in order: this checkout's alone; or, with
/// `BENCH_BASELINE=<path to an older voltbus binary>`, that one (A) and this one (B) alternately
/// for `BENCH_ROUNDS` (default 2) rounds, A B A B, so the machine's drift falls on both.
pub fn builds() -> Vec<Build> {
    let candidate = std::path::PathBuf::from(env!("CARGO_BIN_EXE_voltbus"));
    let Some(baseline) = std::env::var_os("BENCH_BASELINE").map(std::path::PathBuf::from) else {
        return vec![Build { side: "B", round: 1, exe: candidate }];
    };
    assert!(baseline.is_file(), "BENCH_BASELINE {} is not a file", baseline.display());
    (1..=number("BENCH_ROUNDS", 2).max(1))
        .flat_map(|round| {
            [Build { side: "A", round, exe: baseline.clone() }, Build { side: "B", round, exe: candidate.clone() }]
        })
        .collect()
}

/// One run's figures, by name, in the order measured.
pub type Figures = Vec<(String, f64)>;

/// Every figure of the runs side by side, each build's rounds in order, and the ratio of B's
/// median to A's.
pub fn compare(runs: &[(Build, Figures)]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (_, figures) in runs {
        for (name, _) in figures {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
    }
    let values = |side: &str, name: &str| -> Vec<Option<f64>> {
        runs.iter()
            .filter(|(build, _)| build.side == side)
            .map(|(_, figures)| figures.iter().find(|(n, _)| n == name).map(|(_, v)| *v))
            .collect()
    };
    let median = |values: &[Option<f64>]| {
        let mut known: Vec<f64> = values.iter().flatten().copied().collect();
        known.sort_by(f64::total_cmp);
        match known.len() {
            0 => None,
            n if n % 2 == 1 => Some(known[n / 2]),
            n => Some((known[n / 2 - 1] + known[n / 2]) / 2.0),
        }
    };
    let shown = |values: &[Option<f64>]| {
        values.iter().map(|v| v.map_or("—".to_owned(), |v| format!("{v:.1}"))).collect::<Vec<_>>().join(" / ")
    };
    let mut out = format!("{:<58} {:>22} {:>22} {:>7}\n", "figure", "A (each round)", "B (each round)", "B/A");
    for name in names {
        let (a, b) = (values("A", name), values("B", name));
        let ratio = match (median(&a), median(&b)) {
            (Some(a), Some(b)) if a != 0.0 => format!("{:.2}", b / a),
            _ => "—".to_owned(),
        };
        out.push_str(&format!("{name:<58} {:>22} {:>22} {ratio:>7}\n", shown(&a), shown(&b)));
    }
    out
}
