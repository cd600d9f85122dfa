//! `voltbus`: the command line. Everything it runs lives in the library (`src/lib.rs`).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use voltbus::dead_letters::Transport;
use voltbus::{Settings, telemetry};

// glibc's malloc spent a fifth of the telemetry ingest's time consolidating and unlinking chunks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Integration platform for electric-vehicle and shared-mobility fleets, built as a message bus.
#[derive(Parser)]
#[command(name = "voltbus", version, about)]
struct Cli {
    /// TOML configuration file (layered over the defaults, under `VOLTBUS__…` variables).
    #[arg(long, global = true, env = "VOLTBUS_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the platform: migrations, transports, HTTP edge. Embedded engines unless URLs are configured.
    Serve {
        /// Also drive it with a small simulated fleet (organisation `demo`), to see events flow.
        #[arg(long)]
        simulate: bool,
        /// What this process runs: the front doors (`api`), the consumers, relay, webhook
        /// delivery and housekeeping (`worker`), or both (`all`). `api` and `worker` need
        /// RabbitMQ and PostgreSQL, which they share.
        #[arg(long, value_enum, default_value_t = voltbus::Role::All)]
        role: voltbus::Role,
    },
    /// Drive a running voltbus (the one this configuration describes) like a real fleet:
    /// vehicles report over NATS, chargers report, customers ride through the REST edge, and a
    /// local webhook receiver counts what arrives. Prints progress, then a JSON summary.
    Simulate {
        /// Vehicles reporting their state.
        #[arg(long, default_value_t = 100)]
        vehicles: usize,
        /// Chargers reporting status and meter values.
        #[arg(long, default_value_t = 10)]
        chargers: usize,
        /// Rides started per minute through the REST edge.
        #[arg(long, default_value_t = 60.0)]
        rides_per_minute: f64,
        /// Seconds between two reports of one vehicle.
        #[arg(long, default_value_t = 5)]
        report_every_seconds: u64,
        /// Seconds a ride lasts.
        #[arg(long, default_value_t = 10)]
        ride_seconds: u64,
        /// Vehicle commands sent per minute through the REST edge (answered by simulated devices).
        #[arg(long, default_value_t = 0.0)]
        commands_per_minute: f64,
        /// Stop after this many seconds (default: at Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
        /// The organisation whose fleet it is.
        #[arg(long, default_value = "simulation")]
        tenant: String,
        /// An admin key of that organisation (default: one is made, as `api-keys create-admin` would).
        #[arg(long, env = "VOLTBUS_ADMIN_KEY")]
        admin_key: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Partner API keys.
    ApiKeys {
        #[command(subcommand)]
        action: ApiKeyAction,
    },
    /// Set an organisation's compatibility profile, whole: the webhook signature header's name and
    /// its new keys' prefix, so partners coming from another platform keep their code. Without
    /// options, back to voltbus's own (`X-Voltbus-Signature`, `partner.key_prefix`).
    Profile {
        /// The organisation.
        #[arg(long)]
        tenant: String,
        /// Start from Levy Fleets' names (`X-Levy-Signature`, `lf_pk_…`); the options below override.
        #[arg(long)]
        levy: bool,
        /// The signature header's name (`X-…-Signature`).
        #[arg(long)]
        signature_header: Option<String>,
        /// New keys' prefix (2 to 8 lower-case letters).
        #[arg(long)]
        key_prefix: Option<String>,
    },
    /// Operators of the console at `/admin`.
    Operators {
        #[command(subcommand)]
        action: OperatorAction,
    },
    /// Simulate the vehicles' devices: answer every command sent to a vehicle (needs `nats.url`).
    SimulateDevices {
        /// Vehicles that refuse every command.
        #[arg(long)]
        refusing: Vec<uuid::Uuid>,
        /// Milliseconds a device takes to carry a command out.
        #[arg(long, default_value_t = 200)]
        delay_ms: u64,
    },
    /// Simulate chargers of an organisation: they report their status, take remote start and
    /// stop, and report their meter while charging (needs `nats.url`).
    SimulateChargers {
        /// The organisation.
        #[arg(long)]
        tenant: String,
        /// The chargers (ids from `POST /chargers`).
        #[arg(long = "charger", required = true)]
        chargers: Vec<uuid::Uuid>,
        /// Seconds between meter values while charging.
        #[arg(long, default_value_t = 3)]
        every_seconds: u64,
    },
    /// Make a NATS operator and account for mobile credentials: prints the seeds to configure
    /// (`nats.operator_seed`, `nats.account_seed`) and the lines nats-server's configuration needs.
    NatsAccounts,
    /// Print a vehicle's device credentials (a NATS user JWT of the account, a bearer token): it
    /// may publish its state and take its commands, nothing else. An MQTT unit presents the JWT
    /// as its password through NATS's MQTT listener. Needs `nats.operator_seed` and `nats.account_seed`.
    VehicleCredentials {
        /// The vehicle's organisation.
        #[arg(long)]
        tenant: String,
        /// The vehicle.
        #[arg(long)]
        vehicle: uuid::Uuid,
        /// Days until the credentials expire (none: they last until the account's key changes).
        #[arg(long)]
        days: Option<u32>,
    },
    /// Inspect or replay a consumer group's dead-letter queue (needs `amqp.url`).
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// Print the messages waiting in the group's dead letters, with why they failed (JSON).
    List {
        /// Consumer group.
        #[arg(long)]
        group: String,
        /// At most this many messages.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Where the group runs (default: RabbitMQ when configured, else the embedded transport).
        #[arg(long, value_enum)]
        transport: Option<TransportArg>,
    },
    /// Send dead letters back to where they came from: one by message id, or all.
    Replay {
        /// Consumer group.
        #[arg(long)]
        group: String,
        /// Only the message with this id.
        #[arg(long)]
        id: Option<String>,
        /// Where the group runs (default: RabbitMQ when configured, else the embedded transport).
        #[arg(long, value_enum)]
        transport: Option<TransportArg>,
    },
}

#[derive(Subcommand)]
enum OperatorAction {
    /// Create an operator. The password is read from `VOLTBUS_OPERATOR_PASSWORD`, else from the
    /// first line of standard input (never from the command line, which other users can see);
    /// at least 12 characters. Only its Argon2id hash is stored.
    Create {
        /// The operator's email address, used to sign in.
        #[arg(long)]
        email: String,
        /// The one organisation the operator may see; without it, a platform operator, who sees
        /// every organisation and the whole bus.
        #[arg(long)]
        organisation: Option<String>,
    },
}

#[derive(Subcommand)]
enum ApiKeyAction {
    /// Create an organisation's admin key (the first key, from which the API manages the others).
    /// Prints the key once; only its hash is stored.
    CreateAdmin {
        /// The organisation (tenant id: lower-case letters, digits, `_`, `-`).
        #[arg(long)]
        tenant: String,
        /// The key's display name.
        #[arg(long, default_value = "operator admin key")]
        name: String,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum TransportArg {
    Amqp,
    Nats,
    Embedded,
}

impl From<TransportArg> for Transport {
    fn from(value: TransportArg) -> Self {
        match value {
            TransportArg::Amqp => Transport::Amqp,
            TransportArg::Nats => Transport::Nats,
            TransportArg::Embedded => Transport::Embedded,
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("voltbus: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(&settings.log);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("voltbus: cannot start the async runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("voltbus: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The demo's console operator: made on the first `serve --simulate`, its password printed once
/// on the terminal (not logged).
async fn demo_operator(settings: &Settings, addr: std::net::SocketAddr) {
    const EMAIL: &str = "demo@voltbus.local";
    let password = match publishers::api_keys::random_text(20, &ring::rand::SystemRandom::new()) {
        Ok(password) => password,
        Err(error) => return tracing::warn!(%error, "no demo operator: the random generator failed"),
    };
    match voltbus::create_operator(settings, EMAIL, &password, None).await {
        Ok(_) => eprintln!("voltbus: console at http://{addr}/admin: sign in as {EMAIL} with {password} (shown once)"),
        Err(error) if error.to_string().contains("exists already") => {
            eprintln!("voltbus: console at http://{addr}/admin: sign in as {EMAIL} (made on an earlier run)")
        }
        Err(error) => tracing::warn!(error = %format!("{error:#}"), "no demo operator"),
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Migrate => voltbus::migrate(&settings).await,
        Command::DeadLetters { action } => dead_letters(action, &settings).await,
        Command::Profile { tenant, levy, signature_header, key_prefix } => {
            use schemas::integrations::CompatibilityProfile;
            let mut profile = if levy { CompatibilityProfile::levy() } else { CompatibilityProfile::default() };
            profile.signature_header = signature_header.or(profile.signature_header);
            profile.key_prefix = key_prefix.or(profile.key_prefix);
            let set = voltbus::set_profile(&settings, &tenant, profile).await?;
            println!("{}", serde_json::json!({ "tenant": tenant, "profile": set }));
            Ok(())
        }
        Command::ApiKeys { action: ApiKeyAction::CreateAdmin { tenant, name } } => {
            let (key, id) = voltbus::create_admin_key(&settings, &tenant, &name).await?;
            println!("{}", serde_json::json!({ "id": id, "tenant": tenant, "key": key }));
            eprintln!("voltbus: store this key now; it is not shown again");
            Ok(())
        }
        Command::Operators { action: OperatorAction::Create { email, organisation } } => {
            let password = match std::env::var("VOLTBUS_OPERATOR_PASSWORD") {
                Ok(password) => password,
                Err(_) => {
                    let mut line = String::new();
                    std::io::stdin().read_line(&mut line).context("reading the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let operator = voltbus::create_operator(&settings, &email, &password, organisation.as_deref()).await?;
            println!("{}", serde_json::to_string(&operator)?);
            eprintln!("voltbus: sign in at /admin with {}", operator.email);
            Ok(())
        }
        Command::SimulateChargers { tenant, chargers, every_seconds } => {
            let url = settings.nats.url.as_deref().context("simulate-chargers needs nats.url (VOLTBUS__NATS__URL)")?;
            let nats = voltbus::connect_nats(&settings, url, "voltbus-charger-simulator").await?;
            nats.ensure_replicated_streams(settings.nats.retention(), Some(settings.nats.replicas)).await?;
            let tenant = schemas::TenantId::new(&tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
            let behaviour = voltbus::charger_simulator::Behaviour {
                every: std::time::Duration::from_secs(every_seconds.max(1)),
                ..Default::default()
            };
            tracing::info!(chargers = chargers.len(), "simulating chargers; Ctrl-C stops");
            let stop = async {
                let _ = shutdown_signal().await;
            };
            voltbus::charger_simulator::run(nats, tenant, chargers, behaviour, stop).await?;
            Ok(())
        }
        Command::VehicleCredentials { tenant, vehicle, days } => {
            let tenant = schemas::TenantId::new(&tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
            let accounts = settings.nats.accounts()?.context("set nats.operator_seed and nats.account_seed")?;
            let expires = days.map(|days| chrono::Utc::now().timestamp() + i64::from(days) * 86_400);
            let device = consumers::fleet::unit_permissions(&tenant, vehicle);
            let credentials = accounts.user(&format!("vehicle-{vehicle}"), &device, expires)?;
            println!(
                "# MQTT: any user name, this password; topics voltbus/{tenant}/vehicles/{vehicle}/state, \
                 …/command-results (publish) and …/commands (subscribe)"
            );
            println!("{}", credentials.jwt);
            println!(
                "# NATS: the credentials file
{}",
                credentials.creds_file()
            );
            Ok(())
        }
        Command::NatsAccounts => {
            let accounts = bus::nats::accounts::Accounts::generate();
            let (operator, account) = accounts.seeds()?;
            println!("# voltbus settings (secrets: keep them like a database password)");
            println!("VOLTBUS__NATS__OPERATOR_SEED={operator}");
            println!("VOLTBUS__NATS__ACCOUNT_SEED={account}\n");
            println!("# nats-server configuration: trust voltbus's operator\n{}", accounts.server_config()?);
            Ok(())
        }
        Command::SimulateDevices { refusing, delay_ms } => {
            let url = settings.nats.url.as_deref().context("simulate-devices needs nats.url (VOLTBUS__NATS__URL)")?;
            let nats = voltbus::connect_nats(&settings, url, "voltbus-device-simulator").await?;
            nats.ensure_replicated_streams(settings.nats.retention(), Some(settings.nats.replicas)).await?;
            let devices = voltbus::simulator::Devices {
                refusing: refusing.into_iter().collect(),
                delay: std::time::Duration::from_millis(delay_ms),
                ..Default::default()
            };
            tracing::info!("simulating vehicle devices; Ctrl-C stops");
            let stop = async {
                let _ = shutdown_signal().await;
            };
            voltbus::simulator::run(nats, devices, stop).await?;
            Ok(())
        }
        Command::Serve { simulate: false, role } => {
            let running = voltbus::start_as(settings, role).await?;
            tracing::info!(addr = %running.addr, %role, "voltbus is serving; GET /health to see its engines");
            shutdown_signal().await.context("waiting for a shutdown signal")?;
            tracing::info!("shutting down: finishing work in flight");
            running.stop().await
        }
        Command::Serve { simulate: true, role } => {
            anyhow::ensure!(role == voltbus::Role::All, "--simulate runs every part in one process: leave out --role");
            let mut settings = settings;
            // The simulated fleet's webhook receiver listens on this machine.
            settings.webhooks.allow_hosts.push("127.0.0.1".into());
            // The simulated drivers sign in to the app to charge; a code of this run only.
            if settings.mobile.dev_code.is_none() {
                let mut bytes = [0u8; 4];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
                    .map_err(|_| anyhow::anyhow!("no randomness for the demo's sign-in code"))?;
                let code = format!("{:08}", u32::from_le_bytes(bytes) % 100_000_000);
                settings.mobile.dev_code = Some(code.into());
            }
            let running = voltbus::start(settings.clone()).await?;
            settings.http.bind = running.addr;
            tracing::info!(addr = %running.addr, "voltbus is serving a simulated fleet (organisation `demo`); Ctrl-C stops");
            demo_operator(&settings, running.addr).await;
            let plan = voltbus::simulation::Plan {
                vehicles: 20,
                chargers: 4,
                rides_per_minute: 20.0,
                commands_per_minute: 12.0,
                ..Default::default()
            };
            let stop = async {
                let _ = shutdown_signal().await;
            };
            let summary = voltbus::simulate(&settings, "demo", None, Some(&running), plan, stop).await;
            tracing::info!("shutting down: finishing work in flight");
            running.stop().await?;
            println!("{}", serde_json::to_string_pretty(&summary?)?);
            Ok(())
        }
        Command::Simulate {
            vehicles,
            chargers,
            rides_per_minute,
            report_every_seconds,
            ride_seconds,
            commands_per_minute,
            seconds,
            tenant,
            admin_key,
        } => {
            let plan = voltbus::simulation::Plan {
                vehicles,
                chargers,
                rides_per_minute,
                report_every: std::time::Duration::from_secs(report_every_seconds.max(1)),
                ride_length: std::time::Duration::from_secs(ride_seconds),
                commands_per_minute,
                duration: seconds.map(std::time::Duration::from_secs),
                progress: true,
            };
            let stop = async {
                let _ = shutdown_signal().await;
            };
            let summary = voltbus::simulate(&settings, &tenant, admin_key, None, plan, stop).await?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
    }
}

async fn dead_letters(action: DeadLetterAction, settings: &Settings) -> anyhow::Result<()> {
    let pick = |arg: Option<TransportArg>| arg.map_or_else(|| Transport::default_for(settings), Transport::from);
    match action {
        DeadLetterAction::List { group, limit, transport } => {
            let letters = voltbus::dead_letters::list(settings, pick(transport), &group, limit).await?;
            println!("{}", serde_json::to_string_pretty(&letters)?);
        }
        DeadLetterAction::Replay { group, id, transport } => {
            let replayed = voltbus::dead_letters::replay(settings, pick(transport), &group, id.as_deref()).await?;
            println!("replayed {replayed} message(s) of group {group}");
        }
    }
    Ok(())
}

/// Ctrl-C, or SIGTERM from a process manager.
async fn shutdown_signal() -> std::io::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result,
        _ = terminate.recv() => Ok(()),
    }
}
