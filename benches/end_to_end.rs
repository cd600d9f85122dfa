//! The whole platform under the simulator's mixed load, at rising rates, on this machine's
//! PostgreSQL and RabbitMQ and a nats-server of the bench's own:
//!
//! - `voltbus serve` runs as its own process (the release binary), so its memory and CPU are its
//!   own; the simulator (`voltbus::simulation`) runs in this process;
//! - one fleet (`BENCH_VEHICLES`, default 5,000 vehicles; 20 chargers) is set up once, then
//!   driven step after step, each `BENCH_STEP_SECONDS` (default 15 s): at step k each vehicle
//!   reports every 32 s / 2^k and 60 × 2^k rides start a minute, until the p99 latency of the
//!   ride commands passes 50 ms at a step with enough of them to tell (200; below, one slow
//!   call is the p99), or after `BENCH_STEPS` (default 7);
//! - per step: telemetry states/s (acknowledged by JetStream), REST commands/s, webhook
//!   deliveries/s received, p50/p99 latency of the partner API's ride commands (and apart, p99 of
//!   the app's charging calls, which wait for the charger), the peak RSS of voltbus, and how the CPU
//!   time split between voltbus, PostgreSQL, RabbitMQ, NATS and the simulator.
//!
//! `BENCH_BASELINE=<an older voltbus binary>` runs that build (A) and this one (B) alternately,
//! `BENCH_ROUNDS` (2) rounds, and prints every figure side by side with B's median over A's.
//! `BENCH_TRACES=1` (this build alone) exports every span to a receiver in this process and
//! prints, per step, the p50/p99 of each stage of a ride command and which stages the slowest
//! hundredth spent its time in.
//!
//! `cargo bench --bench end_to_end`; figures go to stdout and to `target/bench-end-to-end.txt`.

use std::fmt::Write as _;
use std::time::Duration;

use voltbus::simulation::{Fleet, Plan, Target};

mod support;

use support::{Served, cpu_seconds, number};

/// Past this p99 of REST command latency the platform is not keeping up.
const P99_LIMIT_MS: f64 = 50.0;
/// Ride commands a step needs before its p99 means anything.
const ENOUGH_TO_TELL: u64 = 200;

/// Peak resident memory of `pid`, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU seconds of each party, read at one moment.
#[derive(Clone, Copy, Default)]
struct Cpu {
    voltbus: f64,
    postgres: f64,
    rabbitmq: f64,
    nats: f64,
    simulator: f64,
}

impl Cpu {
    fn read(voltbus: u32, nats: u32) -> Self {
        let me = std::process::id();
        Self {
            voltbus: cpu_seconds(|pid, _| pid == voltbus),
            postgres: cpu_seconds(|_, name| name == "postgres"),
            rabbitmq: cpu_seconds(|_, name| name == "beam.smp"),
            nats: cpu_seconds(|pid, _| pid == nats),
            simulator: cpu_seconds(|pid, _| pid == me),
        }
    }

    fn since(self, before: Self) -> Self {
        Self {
            voltbus: self.voltbus - before.voltbus,
            postgres: self.postgres - before.postgres,
            rabbitmq: self.rabbitmq - before.rabbitmq,
            nats: self.nats - before.nats,
            simulator: self.simulator - before.simulator,
        }
    }
}

/// From voltbus's own `/metrics` (cumulative since it started): per ride route and per the
/// rides queue's handler, how many, their summed seconds, and how many took over 50 ms.
async fn route_times(edge: std::net::SocketAddr) -> Vec<(String, f64, f64, f64)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(edge).await else { return Vec::new() };
    let head = "GET /metrics HTTP/1.1\r\nhost: voltbus\r\nconnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return Vec::new();
    }
    let mut text = String::new();
    let _ = stream.read_to_string(&mut text).await;
    let value = |line: &str| line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    let mut rows: Vec<(String, f64, f64, f64)> = Vec::new();
    let watched = [
        ("voltbus_http_request_duration_seconds", "route=\"", "/rides"),
        ("voltbus_http_request_duration_seconds", "route=\"", "/api/v1"),
        ("voltbus_handler_duration_seconds", "queue=\"", "voltbus.rides"),
        ("voltbus_command_stage_duration_seconds", "stage=\"", ""),
    ];
    for line in text.lines() {
        let Some((metric, label, _)) = watched.iter().find(|(metric, label, part)| {
            line.starts_with(metric)
                && line.split(label).nth(1).is_some_and(|rest| rest.split('"').next().is_some_and(|v| v.contains(part)))
        }) else {
            continue;
        };
        let Some(name) = line.split(label).nth(1).and_then(|r| r.split('"').next()) else { continue };
        let name = match *metric {
            "voltbus_handler_duration_seconds" => format!("handler {name}"),
            "voltbus_command_stage_duration_seconds" => format!("every command, {name}"),
            _ => name.to_owned(),
        };
        let index = match rows.iter().position(|(r, ..)| *r == name) {
            Some(index) => index,
            None => {
                rows.push((name, 0.0, 0.0, 0.0));
                rows.len() - 1
            }
        };
        let entry = &mut rows[index];
        if line.starts_with(&format!("{metric}_count")) {
            entry.1 = value(line);
        } else if line.starts_with(&format!("{metric}_sum")) {
            entry.2 = value(line);
        } else if line.contains("le=\"0.05\"") {
            entry.3 = value(line);
        }
    }
    // Over 50 ms: all but the 0.05 bucket.
    rows.iter_mut().for_each(|(_, count, _, under)| *under = *count - *under);
    rows
}

/// A ride command's stages, from its trace: the edge before publishing, the publish until the
/// broker's confirm, the broker and the consumer's lane until handling starts, the handler's
/// transaction (its begin, its statements, its commit), the reply's way back, the edge after it.
const STAGES: [&str; 8] = [
    "edge, before publish",
    "publish to confirm",
    "to the handler",
    "begin (a connection)",
    "statements",
    "commit",
    "reply back",
    "edge, after reply",
];

/// Per stage of the ride commands among `spans`, p50 and p99 in ms, and the share of each stage in
/// the slowest hundredth.
fn stages(spans: &[support::otlp::Span]) -> String {
    use std::collections::HashMap;
    let ms = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e6;
    let mut by_parent: HashMap<(&[u8], &[u8]), Vec<&support::otlp::Span>> = HashMap::new();
    for span in spans {
        by_parent.entry((span.trace_id.as_slice(), span.parent_span_id.as_slice())).or_default().push(span);
    }
    let child = |of: &support::otlp::Span, name: &str| {
        by_parent.get(&(of.trace_id.as_slice(), of.span_id.as_slice()))?.iter().find(|s| s.name == name).copied()
    };
    let mut rows: Vec<(f64, [f64; STAGES.len()])> = Vec::new();
    for server in spans.iter().filter(|s| s.name.starts_with("POST /api/partner/v1/rides")) {
        let (Some(publish), Some(wait), Some(process)) = (
            child(server, "publish voltbus.commands"),
            child(server, "await reply"),
            child(server, "process voltbus.commands"),
        ) else {
            continue;
        };
        let Some(transaction) = child(process, "transaction") else { continue };
        let (Some(begin), Some(commit)) = (child(transaction, "begin"), child(transaction, "commit")) else { continue };
        let parts = [
            ms(server.start_time_unix_nano, publish.start_time_unix_nano),
            ms(publish.start_time_unix_nano, publish.end_time_unix_nano),
            ms(publish.end_time_unix_nano, transaction.start_time_unix_nano),
            ms(begin.start_time_unix_nano, begin.end_time_unix_nano),
            ms(begin.end_time_unix_nano, commit.start_time_unix_nano),
            ms(commit.start_time_unix_nano, commit.end_time_unix_nano),
            ms(transaction.end_time_unix_nano, wait.end_time_unix_nano),
            ms(wait.end_time_unix_nano, server.end_time_unix_nano),
        ];
        rows.push((ms(server.start_time_unix_nano, server.end_time_unix_nano), parts));
    }
    if rows.is_empty() {
        return "    stages: no complete ride command trace\n".into();
    }
    let quantile = |mut values: Vec<f64>, q: f64| {
        values.sort_by(f64::total_cmp);
        values[((values.len() as f64 * q).ceil() as usize).clamp(1, values.len()) - 1]
    };
    let totals: Vec<f64> = rows.iter().map(|(total, _)| *total).collect();
    let slow_from = quantile(totals.clone(), 0.99);
    let slow: Vec<&[f64; STAGES.len()]> =
        rows.iter().filter(|(total, _)| *total >= slow_from).map(|(_, parts)| parts).collect();
    let mut out = format!(
        "    stages of {} ride commands (ms): total p50 {:.1} p99 {:.1}; slowest {} from {:.1} ms spent\n",
        rows.len(),
        quantile(totals.clone(), 0.5),
        slow_from,
        slow.len(),
        slow_from
    );
    for (index, stage) in STAGES.iter().enumerate() {
        let values: Vec<f64> = rows.iter().map(|(_, parts)| parts[index]).collect();
        let in_slow = slow.iter().map(|parts| parts[index]).sum::<f64>() / slow.len() as f64;
        out.push_str(&format!(
            "      {stage:<22} p50 {:>6.1} p99 {:>6.1} | mean in the slowest {in_slow:>6.1}\n",
            quantile(values.clone(), 0.5),
            quantile(values, 0.99)
        ));
    }
    out
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(run());
}

/// Each build's steps (one, or A B A B with `BENCH_BASELINE`), then the figures side by side.
async fn run() {
    let mut report = String::new();
    let mut runs = Vec::new();
    for build in support::builds() {
        let heading = format!("== build {} round {} ({})", build.side, build.round, build.exe.display());
        println!("{heading}");
        let _ = writeln!(report, "{heading}");
        let figures = measure(&build.exe, &mut report).await;
        runs.push((build, figures));
    }
    if runs.len() > 1 {
        let table = support::compare(&runs);
        println!("\n{table}");
        let _ = write!(report, "\n{table}");
    }
    let _ = std::fs::write(concat!(env!("CARGO_MANIFEST_DIR"), "/target/bench-end-to-end.txt"), &report);
}

/// One build's steps, printed and added to `report`; returns their figures.
async fn measure(exe: &std::path::Path, report: &mut String) -> support::Figures {
    let vehicles = number("BENCH_VEHICLES", 5_000) as usize;
    let step_seconds = number("BENCH_STEP_SECONDS", 15);
    let steps = number("BENCH_STEPS", 7);
    let mut figures = support::Figures::new();

    let collector = match std::env::var_os("BENCH_TRACES") {
        Some(_) => {
            assert!(std::env::var_os("BENCH_BASELINE").is_none(), "BENCH_TRACES runs this build alone");
            Some(support::otlp::Collector::start().await)
        }
        None => None,
    };
    let extra = collector.as_ref().map_or(String::new(), |c| format!("[otel]\nendpoint = {:?}\n", c.url()));

    // The engines: a fresh database and virtual host, a nats-server of the bench's own.
    let served = Served::spawn_build(exe, "vb_e2e", &extra).await;
    let (settings, nats) = (&served.settings, &served.nats);
    let edge = settings.http.bind;

    // The fleet, made once at the highest rates it will be driven at.
    let top = Plan {
        vehicles,
        chargers: 20,
        rides_per_minute: 60.0 * 2f64.powi(i32::try_from(steps).unwrap_or(7) - 1),
        ride_length: Duration::from_secs(2),
        progress: false,
        ..Plan::default()
    };
    let key = served.admin_key("bench", "end-to-end bench");
    let connection = voltbus::connect_nats(settings, &nats.url(), "bench-simulator").await.expect("NATS");
    let tenant = schemas::TenantId::new("bench").expect("tenant");
    let target =
        Target { edge, admin_key: key, tenant, devices: Some(connection.into()), sign_in_code: Some("0000".into()) };
    let started = std::time::Instant::now();
    let fleet = Fleet::set_up(target, &top).await.expect("fleet set up");
    println!("fleet of {vehicles} vehicles set up in {:.1} s", started.elapsed().as_secs_f64());

    let pid = served.server.id();
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    let nats_pid = nats.pid();
    let printed = report.len();
    let _ = writeln!(
        report,
        "end to end, {vehicles} vehicles, 20 chargers, steps of {step_seconds} s (voltbus, PostgreSQL, RabbitMQ, NATS and the simulator on the same {cores} cores)"
    );
    let _ = writeln!(
        report,
        "{:>9} {:>9} | {:>9} {:>9} {:>9} | {:>7} {:>7} {:>9} | {:>8} | cpu % voltbus/postgres/rabbitmq/nats/simulator",
        "states/s", "rides/min", "states/s", "cmds/s", "hooks/s", "p50 ms", "p99 ms", "chg p99", "RSS MiB"
    );
    print!("{}", &report[printed..]);
    let mut sustained = 0.0;
    for step in 0..steps {
        let factor = 2f64.powi(i32::try_from(step).unwrap_or(0));
        let report_every = Duration::from_secs_f64(32.0 / factor);
        let plan = Plan {
            report_every,
            rides_per_minute: 60.0 * factor,
            duration: Some(Duration::from_secs(step_seconds)),
            ..top.clone()
        };
        let offered = vehicles as f64 / report_every.as_secs_f64();
        let before = Cpu::read(pid, nats_pid);
        let summary = fleet.drive(&plan, std::future::pending()).await;
        let cpu = Cpu::read(pid, nats_pid).since(before);
        let total = (cpu.voltbus + cpu.postgres + cpu.rabbitmq + cpu.nats + cpu.simulator).max(f64::EPSILON);
        let share = |part: f64| part / total * 100.0;
        let line = format!(
            "{:>9.0} {:>9.0} | {:>9.0} {:>9.1} {:>9.1} | {:>7.1} {:>7.1} {:>9.1} | {:>8.0} | {:.0}/{:.0}/{:.0}/{:.0}/{:.0} (of {:.0} % of the cores){}",
            offered,
            plan.rides_per_minute,
            summary.states_per_second(),
            summary.commands_per_second(),
            summary.webhooks_per_second(),
            summary.command_p50_ms,
            summary.command_p99_ms,
            summary.charging_p99_ms,
            peak_rss_mib(pid),
            share(cpu.voltbus),
            share(cpu.postgres),
            share(cpu.rabbitmq),
            share(cpu.nats),
            share(cpu.simulator),
            total / summary.seconds / cores * 100.0,
            if summary.commands_failed.is_empty() {
                String::new()
            } else {
                format!("  failed: {:?}", summary.commands_failed)
            },
        );
        println!("{line}");
        let _ = writeln!(report, "{line}");
        let at = format!("{offered:>5.0} states/s:");
        figures.push((format!("{at} ride command p50 ms"), summary.command_p50_ms));
        figures.push((format!("{at} ride command p99 ms"), summary.command_p99_ms));
        figures.push((format!("{at} states/s acknowledged"), summary.states_per_second()));
        figures.push((format!("{at} webhooks/s received"), summary.webhooks_per_second()));
        figures.push((format!("{at} voltbus CPU % of the cores"), cpu.voltbus / summary.seconds / cores * 100.0));
        for (route, count, seconds, slow) in route_times(edge).await {
            let detail = format!(
                "    {route}: {count:.0} answered since start, mean {:.1} ms, {slow:.0} over 50 ms",
                seconds / count.max(1.0) * 1000.0
            );
            println!("{detail}");
            let _ = writeln!(report, "{detail}");
        }
        if let Some(collector) = &collector {
            // The exporter sends every 5 s.
            tokio::time::sleep(Duration::from_secs(6)).await;
            let stages = stages(&collector.take());
            print!("{stages}");
            report.push_str(&stages);
        }
        let ride_commands = summary.rides_started + summary.rides_ended;
        if summary.command_p99_ms > P99_LIMIT_MS && ride_commands >= ENOUGH_TO_TELL {
            let _ = writeln!(report, "p99 passed {P99_LIMIT_MS} ms: the step before is the sustained rate");
            println!("p99 passed {P99_LIMIT_MS} ms: stopping");
            break;
        }
        sustained = offered;
    }
    figures.push(("sustained states/s (last step with ride p99 within 50 ms)".into(), sustained));
    fleet.tear_down().await;
    served.stop().await;
    figures
}
