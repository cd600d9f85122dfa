//! What PostgreSQL does per message: statements and WAL per vehicle state, per ride and per
//! webhook, measured with `pg_stat_statements` on a PostgreSQL of the bench's own (never the
//! shared one, where the extension would stay loaded for everyone):
//!
//! - `voltbus serve` (the release binary) on that server, a nats-server of the bench's own and
//!   this machine's RabbitMQ; the simulator (`voltbus::simulation`) drives one fleet;
//! - phase "states": the vehicles report (`BENCH_STATES_PER_SECOND`, default 200/s) and nothing
//!   else happens, for `BENCH_PHASE_SECONDS` (default 20 s);
//! - phase "rides": the vehicles are quiet, rides start and end (`BENCH_RIDES_PER_MINUTE`, default
//!   240), each announced to a webhook endpoint the simulator receives;
//! - per phase, after a pause for what is in flight: every statement's calls, and the WAL written
//!   (`pg_current_wal_lsn`), divided by what the phase did; statements that touch the webhook
//!   tables are counted per webhook received, the rest per ride. The busiest statements are
//!   printed with their share.
//!
//! `cargo bench --bench pg_per_message`; figures go to stdout and to `target/bench-pg.txt`.

use std::fmt::Write as _;
use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use voltbus::simulation::{Fleet, Plan, Target};

mod support;

use support::private_postgres::PrivatePostgres;
use support::{Served, number};

/// One statement's calls in a phase.
struct Counted {
    calls: i64,
    query: String,
}

/// What the database did in one phase.
struct Phase {
    statements: Vec<Counted>,
    wal_bytes: i64,
}

impl Phase {
    fn calls(&self, keep: impl Fn(&str) -> bool) -> i64 {
        self.statements.iter().filter(|s| keep(&s.query)).map(|s| s.calls).sum()
    }
}

async fn one(db: &DatabaseConnection, sql: &str) -> sea_orm::QueryResult {
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .expect("query")
        .expect("a row")
}

/// Forgets the counts, and where the WAL is.
async fn begin(db: &DatabaseConnection) -> String {
    one(db, "SELECT pg_stat_statements_reset()::text AS reset").await;
    one(db, "SELECT pg_current_wal_lsn()::text AS lsn").await.try_get("", "lsn").expect("lsn")
}

/// The counts and the WAL written since `lsn`.
async fn end(db: &DatabaseConnection, lsn: &str) -> Phase {
    let wal: i64 = one(db, &format!("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{lsn}')::bigint AS bytes"))
        .await
        .try_get("", "bytes")
        .expect("bytes");
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT calls, query FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' \
             AND query NOT LIKE '%pg_current_wal_lsn%' ORDER BY calls DESC"
                .to_owned(),
        ))
        .await
        .expect("statements");
    let statements = rows
        .iter()
        .map(|row| Counted {
            calls: row.try_get("", "calls").expect("calls"),
            query: row.try_get("", "query").expect("query"),
        })
        .collect();
    Phase { statements, wal_bytes: wal }
}

/// The busiest statements of `phase`, one line each.
fn busiest(phase: &Phase, per: f64, report: &mut String) {
    for statement in phase.statements.iter().take(8) {
        let text: String = statement.query.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(110).collect();
        let _ = writeln!(report, "    {:>7.2}  {text}", statement.calls as f64 / per);
    }
}

fn main() {
    // Before any thread: the served voltbus is pointed at the private server through the variable
    // every bench reads.
    let postgres =
        PrivatePostgres::start_with(&["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=top"]);
    // SAFETY: no other thread runs yet.
    unsafe { std::env::set_var("VOLTBUS_TEST_POSTGRES", postgres.url()) };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(run());
    drop(postgres);
}

/// Each build's phases (one, or A B A B with `BENCH_BASELINE`), then the figures side by side.
async fn run() {
    let mut report = String::new();
    let mut runs = Vec::new();
    for build in support::builds() {
        let _ = writeln!(report, "== build {} round {} ({})", build.side, build.round, build.exe.display());
        let figures = measure(&build.exe, &mut report).await;
        runs.push((build, figures));
    }
    if runs.len() > 1 {
        let _ = write!(report, "\n{}", support::compare(&runs));
    }
    print!("{report}");
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-pg.txt");
    let _ = std::fs::write(out, &report);
}

async fn measure(exe: &std::path::Path, report: &mut String) -> support::Figures {
    let seconds = number("BENCH_PHASE_SECONDS", 20);
    let states_per_second = number("BENCH_STATES_PER_SECOND", 200);
    let rides_per_minute = number("BENCH_RIDES_PER_MINUTE", 240) as f64;
    let vehicles = 400usize;
    let served = Served::spawn_build(exe, "vb_pg", "").await;
    let settings = &served.settings;
    let db = Database::connect(settings.database.url.as_deref().expect("database")).await.expect("PostgreSQL");
    let create = Statement::from_string(db.get_database_backend(), "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
    db.execute_raw(create).await.expect("pg_stat_statements");
    let key = served.admin_key("bench", "pg bench");
    let connection = voltbus::connect_nats(settings, &served.nats.url(), "bench-simulator").await.expect("NATS");
    let tenant = schemas::TenantId::new("bench").expect("tenant");
    let target = Target {
        edge: settings.http.bind,
        admin_key: key,
        tenant,
        devices: Some(connection.into()),
        sign_in_code: None,
    };
    let quiet = Duration::from_secs(3_600);
    let top = Plan {
        vehicles,
        chargers: 0,
        rides_per_minute,
        report_every: Duration::from_secs_f64(vehicles as f64 / states_per_second as f64),
        ride_length: Duration::from_secs(2),
        progress: false,
        ..Plan::default()
    };
    let fleet = Fleet::set_up(target, &top).await.expect("fleet set up");
    let settle = || tokio::time::sleep(Duration::from_secs(3));
    settle().await;

    let mut figures = support::Figures::new();
    let _ = writeln!(
        report,
        "PostgreSQL per message ({vehicles} vehicles; phases of {seconds} s; pg_stat_statements on a private server)"
    );

    let lsn = begin(&db).await;
    let plan = Plan { rides_per_minute: 0.0, duration: Some(Duration::from_secs(seconds)), ..top.clone() };
    let states = fleet.drive(&plan, std::future::pending()).await;
    settle().await;
    let phase = end(&db, &lsn).await;
    let per = states.states_published.max(1) as f64;
    figures.push(("per vehicle state: statements".into(), phase.calls(|_| true) as f64 / per));
    figures.push(("per vehicle state: WAL bytes".into(), phase.wal_bytes as f64 / per));
    let _ = writeln!(
        report,
        "  per vehicle state ({} states): {:.2} statements, {:.0} WAL bytes",
        states.states_published,
        phase.calls(|_| true) as f64 / per,
        phase.wal_bytes as f64 / per
    );
    busiest(&phase, per, report);

    let lsn = begin(&db).await;
    let plan = Plan { report_every: quiet, duration: Some(Duration::from_secs(seconds)), ..top.clone() };
    let rides = fleet.drive(&plan, std::future::pending()).await;
    settle().await;
    let phase = end(&db, &lsn).await;
    let webhook = |query: &str| query.contains("webhook_");
    let ended = rides.rides_ended.max(1) as f64;
    let delivered = rides.webhooks_received.max(1) as f64;
    let _ = writeln!(
        report,
        "  per ride ({} started, {} ended; start and end calls, wallet, events): {:.2} statements",
        rides.rides_started,
        rides.rides_ended,
        phase.calls(|q| !webhook(q)) as f64 / ended
    );
    let _ = writeln!(
        report,
        "  per webhook ({} received): {:.2} statements on the webhook tables",
        rides.webhooks_received,
        phase.calls(webhook) as f64 / delivered
    );
    let _ = writeln!(report, "  WAL per ride with its webhooks: {:.0} bytes", phase.wal_bytes as f64 / ended);
    busiest(&phase, ended, report);
    figures.push(("per ride: statements".into(), phase.calls(|q| !webhook(q)) as f64 / ended));
    figures.push(("per ride: transactions (BEGIN)".into(), phase.calls(|q| q.trim() == "BEGIN") as f64 / ended));
    figures.push(("per webhook: statements on the webhook tables".into(), phase.calls(webhook) as f64 / delivered));
    figures.push(("per ride with its webhooks: WAL bytes".into(), phase.wal_bytes as f64 / ended));
    fleet.tear_down().await;
    db.close().await.ok();
    served.stop().await;
    figures
}
