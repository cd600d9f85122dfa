//! Starting and stopping the platform.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bus::amqp::{AmqpConsumer, ConsumerOptions};
use bus::embedded::EmbeddedConsumer;
use bus::nats::JetStreamConsumer;
use bus::outbox::Relay;
use migrations::{Migrator, MigratorTrait};
use publishers::{CommandBus, Edge, PartnerApi};
use schemas::TenantId;
use schemas::integrations::{CreateApiKey, KeyScope, RateLimits};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::Settings;
use crate::dead_letters::Transport;
use crate::engines::{Engines, connect_database};

/// Outbox rows published per relay pass.
const RELAY_BATCH: usize = 500;
/// How often an idle relay looks for outbox rows it was not told of (`bus::outbox::committed`
/// wakes it for this process's own at once): rows another process or an earlier run left.
const RELAY_IDLE: Duration = Duration::from_millis(250);
/// How often the partner API's housekeeping runs.
const TIDY_EVERY: Duration = Duration::from_secs(300);

/// Applies pending migrations and exits (`voltbus migrate`).
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    let database = connect_database(settings).await?;
    Migrator::up(database.connection(), None).await.context("applying database migrations")?;
    tracing::info!(kind = database.report().await.kind, "migrations applied");
    database.close().await;
    Ok(())
}

/// A running platform.
pub struct Running {
    /// Where the HTTP edge listens.
    pub addr: SocketAddr,
    /// How devices in this process reach it: its NATS, or its embedded transport without one.
    pub devices: bus::devices::DeviceLink,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops taking requests, lets those in flight finish, then closes brokers and database.
    pub async fn stop(self) -> anyhow::Result<()> {
        // The task may already be gone if the edge failed; joining reports that.
        let _ = self.stop.send(true);
        self.task.await.context("voltbus task panicked")
    }
}

/// What one `voltbus serve` process runs (as svix-server's run modes split server and worker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// The front doors (partner REST, OCPP, mobile, console), which publish commands and read;
    /// health and metrics.
    Api,
    /// The consumer groups, the outbox relay, the webhook dispatcher and scheduler, and
    /// housekeeping; health and metrics, and no other route.
    Worker,
    /// Both, in one process.
    #[default]
    All,
}

impl Role {
    /// Whether this process answers partners, apps and chargers.
    fn serves(self) -> bool {
        self != Role::Worker
    }

    /// Whether this process consumes, relays and delivers.
    fn works(self) -> bool {
        self != Role::Api
    }
}

impl std::fmt::Display for Role {
    /// The name `--role` takes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum as _;
        f.write_str(self.to_possible_value().as_ref().map_or("", clap::builder::PossibleValue::get_name))
    }
}

/// [`start_as`] in the role that runs everything.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    start_as(settings, Role::All).await
}

/// Connects the engines, migrates, and starts what `role` runs: the consumer groups, the outbox
/// relay, the HTTP edge. Stopping goes in the reverse order of dependence: the edge finishes its
/// requests (their commands still answered) and flushes its request log, then consumers and relay
/// finish theirs, then the engines close.
pub async fn start_as(settings: Settings, role: Role) -> anyhow::Result<Running> {
    // Before any consumer registers its counters, or they would go to no recorder.
    crate::telemetry::metrics();
    // Before any hop, so the first request is traced too.
    let traces = crate::telemetry::traces(&settings.otel)?;
    let engines = Arc::new(Engines::connect(&settings, "voltbus").await?);
    let shared_database = engines.database.connection().get_database_backend() == sea_orm::DatabaseBackend::Postgres;
    anyhow::ensure!(
        role == Role::All || (engines.amqp.is_some() && shared_database),
        "serve --role {role} needs amqp.url and a PostgreSQL database.url: the embedded transport and \
         SQLite live inside one process, so the other role could never see this one's work"
    );
    let commands = match &engines.amqp {
        Some(amqp) => CommandBus::amqp(Arc::clone(amqp)).await.context("opening the command channel")?,
        None => CommandBus::Embedded(engines.embedded.clone()),
    };
    let devices = match &engines.nats {
        Some(nats) => nats.clone().into(),
        None => bus::devices::DeviceLink::Embedded(engines.embedded.clone()),
    };
    let database = engines.database.connection().clone();
    // The edge reads, and writes only its idempotency records, which need no fsync of their own.
    let edge_database = engines.database.relaxed().await.context("connecting the edge's database pool")?;
    let vault = webhook_vault(&settings)?;
    let webhooks = publishers::WebhookSetup { vault: vault.clone(), policy: settings.webhooks.url_policy() };
    let mut integrations = settings.integrations.clone();
    integrations.token_key = Some(token_key(&settings)?);
    let edge_settings = publishers::PartnerSettings {
        // A worker answers no partner: it needs not follow their keys' changes.
        amqp_url: settings.amqp.url.clone().filter(|_| role.serves()),
        charger_offline_after: settings.charging.offline_after(),
        integrations,
        billing: settings.billing.plan(),
        paystack: settings.paystack.configured(),
        ..settings.partner.clone()
    };
    // The platform's one HTTP client, configured once: for trusted services, and guarded (the
    // SSRF rules) for partners' webhook endpoints.
    let agent = concat!("voltbus/", env!("CARGO_PKG_VERSION"));
    let http = outbound::trusted(agent, Duration::from_secs(30)).context("building the HTTP client")?;
    let (api, mut api_tasks) = PartnerApi::new(edge_settings, edge_database.clone(), commands, webhooks, http.clone());
    if !api_tasks.ready(Duration::from_secs(10)).await {
        tracing::warn!("not yet following key changes; other edges' key changes show after the cache expires");
    }
    let mobile = mobile_api(&settings, edge_database.clone(), &api)?;
    let edge = Edge::bind(settings.http.bind, engines.clone(), Arc::clone(&api), mobile)
        .await
        .with_context(|| format!("binding http.bind {}", settings.http.bind))?
        .with_metrics_token(settings.http.metrics_token.as_ref().map(|token| token.expose().to_owned()))
        .with_front_doors(role.serves());
    let edge = match &engines.nats {
        Some(nats) if role.serves() => {
            // Which process holds a socket, as the console shows it: its id and where it listens.
            let node = format!("{}@{}", std::process::id(), edge.local_addr()?);
            // The edge's pool: a storm of reconnecting chargers must not starve the consumers'.
            let ocpp = publishers::Ocpp::start(edge_database, nats.clone(), &api, settings.ocpp.clone(), node)
                .await
                .context("listening for chargers' remote commands")?;
            edge.with_ocpp(ocpp)
        }
        _ => edge,
    };
    let addr = edge.local_addr()?;
    let reports = publishers::HealthCheck::check(engines.as_ref()).await;
    for report in &reports {
        tracing::info!(engine = report.engine, kind = report.kind, state = ?report.state, detail = %report.detail, "engine");
    }
    let (stop, stopped) = watch::channel(false);
    let (drain, drained) = watch::channel(false);
    let when = |signal: &watch::Receiver<bool>| {
        let mut signal = signal.clone();
        async move {
            // An error means the sender is gone, which is a stop too.
            let _ = signal.wait_for(|stop| *stop).await;
        }
    };

    let mut background = Vec::new();
    let policy = settings.webhooks.policy();
    // Subscriptions are set up through the first node's management API (a cluster's any node
    // serves the whole cluster's).
    let broker = match settings.amqp.url.as_deref().and_then(|url| bus::nodes(url).next()) {
        Some(url) => Some(
            consumers::subscriptions::BrokerAdmin::new(url, settings.amqp.management_url.as_deref(), http.clone())
                .context("amqp.management_url")?
                .with_quorum_size(settings.amqp.quorum_size),
        ),
        None => None,
    };
    let mut consoled = Vec::new();
    let dispatcher = if role.works() {
        let client = consumers::webhooks::http::Client::new(settings.webhooks.url_policy(), policy.timeout)
            .context("building the webhook client")?;
        let attempts_db =
            engines.database.attempts_pool(4).await.context("connecting the webhook attempts' database pool")?;
        let dispatcher = Arc::new(consumers::webhooks::Dispatcher::new(attempts_db, client, vault, policy.clone()));
        let shared = consumers::groups::Shared { dispatcher: Arc::clone(&dispatcher), broker: broker.clone() };
        for group in consumers::groups::all(&settings.groups(), &shared) {
            background
                .push(run_group(group, &engines, &settings.amqp, &database, &mut consoled, when(&drained)).await?);
        }
        Some(dispatcher)
    } else {
        None
    };
    // Queues bound before routing keys named the subaccount, or while their key changed, are
    // bound as they must be before the edge answers (the exchange and bindings are declared).
    if let Some(broker) = &broker {
        match consumers::subscriptions::reconcile_all(&database, broker).await {
            Ok(found) if found.failed == 0 => {
                tracing::info!(bound = found.bound, "subscriber queues bound to what they may receive")
            }
            Ok(found) => tracing::error!(
                bound = found.bound,
                failed = found.failed,
                "some subscriber queues could not be bound; the next start tries again"
            ),
            Err(error) => tracing::error!(%error, "could not read the subscriptions to bind their queues"),
        }
    }
    let edge = if settings.console.enabled && role.serves() {
        let desk = Arc::new(crate::console::BusDesk::new(Arc::clone(&engines), consoled));
        edge.with_console(publishers::Console::new(Arc::clone(&api), desk, settings.console.clone()))
    } else {
        edge
    };
    if role.works() {
        background.push(tokio::spawn(sweep_commands(database.clone(), settings.fleet.commands(), when(&drained))));
        let pace = Duration::from_secs(u64::from(settings.ocpp.meter_interval_seconds.max(1)));
        background.push(tokio::spawn(pace_charging(database.clone(), pace, when(&drained))));
        // The outbox relay publishes what handlers committed, to the brokers or the embedded transport.
        let relay = Relay::new(engines.database.connection().clone(), engines.publisher(), RELAY_BATCH);
        background.push(tokio::spawn(relay.run(RELAY_IDLE, when(&drained))));
        let every = Duration::from_millis(settings.webhooks.scheduler_interval_ms.max(10));
        background.push(tokio::spawn(consumers::webhooks::run_scheduler(
            database.clone(),
            policy.clone(),
            every,
            when(&drained),
        )));
    }
    let kept = Kept {
        history: Duration::from_secs(settings.fleet.history_days.saturating_mul(86_400)),
        inbox: settings.bus.inbox(),
        outbox: settings.bus.outbox(),
    };
    background.push(tokio::spawn(tidy(Arc::clone(&api), database.clone(), policy, kept, role, when(&stopped))));
    drop(api);

    let grace = Duration::from_secs(settings.http.shutdown_grace_seconds);
    let until_stopped = when(&stopped);
    let task = tokio::spawn(async move {
        edge.run(until_stopped, grace).await;
        // The edge and the purge task held the API; once both are gone its request log flushes.
        api_tasks.finish().await;
        let _ = drain.send(true);
        for task in background {
            if task.await.is_err() {
                tracing::warn!("a background task ended abnormally");
            }
        }
        // Attempts already handed to the network get their answer and their log line.
        if let Some(dispatcher) = dispatcher {
            dispatcher.finish(grace).await;
        }
        match Arc::try_unwrap(engines) {
            Ok(engines) => engines.close().await,
            Err(_) => {
                tracing::warn!("engines still referenced at shutdown; leaving connections to drop")
            }
        }
        if let Some(traces) = traces {
            // Sends what the batch holds; blocking, as the exporter is.
            let flushed = tokio::task::spawn_blocking(move || traces.shutdown()).await;
            if !matches!(flushed, Ok(Ok(()))) {
                tracing::warn!("spans still unsent at shutdown were dropped");
            }
        }
        tracing::info!("voltbus stopped");
    });
    Ok(Running { addr, devices, stop, task })
}

/// Runs `group` on its transport until `stop`: a queue group on RabbitMQ (its queues declared
/// first, so no command finds its queue missing) or the embedded transport; a JetStream group on
/// NATS, or without NATS on the embedded transport, where the simulated devices of `serve
/// --simulate` publish. Notes it for the console.
async fn run_group(
    group: consumers::groups::Group,
    engines: &Engines,
    amqp: &crate::settings::AmqpSettings,
    database: &sea_orm::DatabaseConnection,
    consoled: &mut Vec<crate::console::Group>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<JoinHandle<()>> {
    use consumers::groups::Source;
    let name = group.name().to_owned();
    let database = group.transactional.then(|| database.clone());
    let options = group.options.unwrap_or_default();
    let noted = |transport, stream| crate::console::Group { name: name.clone(), transport, stream };
    Ok(match (group.source, amqp.url.as_deref().zip(engines.amqp.as_ref()), &engines.nats) {
        (Source::Queue(topology), Some((url, connection)), _) => {
            consoled.push(noted(Transport::Amqp, None));
            let topology = topology.with_quorum_size(amqp.quorum_size);
            topology.declare(connection).await.with_context(|| format!("declaring the {name} queues"))?;
            let consumer = AmqpConsumer::new(url, topology, options, group.handler, database);
            tokio::spawn(consumer.in_batches(group.batch).run(stop))
        }
        (Source::Queue(topology), None, _) => {
            consoled.push(noted(Transport::Embedded, None));
            let consumer = embedded(engines, topology, group.handler, database);
            tokio::spawn(consumer.run(stop))
        }
        (Source::Stream(stream), _, Some(nats)) => {
            consoled.push(noted(Transport::Nats, Some(stream.stream.clone())));
            let consumer =
                JetStreamConsumer::new(nats.clone(), stream, options, group.handler, database).in_batches(group.batch);
            let consumer = if group.without_inbox { consumer.without_inbox(engines.publisher()) } else { consumer };
            tokio::spawn(consumer.run(stop))
        }
        // Without NATS, devices in this process (the simulators) publish on the embedded transport.
        (Source::Stream(stream), _, None) => {
            consoled.push(noted(Transport::Embedded, None));
            let consumer = embedded(engines, stream.on_embedded(), group.handler, database);
            let consumer = if group.without_inbox { consumer.without_inbox(engines.publisher()) } else { consumer };
            tokio::spawn(consumer.run(stop))
        }
    })
}

/// A group's queue on the embedded transport, which takes one message at a time in its own window.
fn embedded(
    engines: &Engines,
    topology: bus::amqp::GroupTopology,
    handler: std::sync::Arc<dyn bus::Handler>,
    database: Option<sea_orm::DatabaseConnection>,
) -> EmbeddedConsumer {
    EmbeddedConsumer::new(engines.embedded.clone(), topology, ConsumerOptions::default(), handler, database)
}

/// How long housekeeping keeps what it purges.
struct Kept {
    /// Vehicle state history.
    history: Duration,
    /// Inbox rows of handled messages.
    inbox: Duration,
    /// Published outbox rows.
    outbox: Duration,
}

/// Housekeeping now and then, until `stop`: expired idempotency records, webhook payloads and
/// logs past their retention, and vehicle state history, inbox rows and published outbox rows
/// older than `kept` says.
async fn tidy(
    api: Arc<PartnerApi>,
    db: sea_orm::DatabaseConnection,
    policy: consumers::webhooks::DeliveryPolicy,
    kept: Kept,
    role: Role,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        if role.serves() {
            logged(api.tidy().await, "expired idempotency records");
        }
        if role.works() {
            purge(&db, &policy, &kept).await;
        }
        tokio::select! {
            () = tokio::time::sleep(TIDY_EVERY) => {}
            () = &mut stop => return,
        }
    }
}

/// Deletes what is past its retention: webhook logs, vehicle history, mobile sessions, inbox and
/// published outbox rows.
async fn purge(db: &sea_orm::DatabaseConnection, policy: &consumers::webhooks::DeliveryPolicy, kept: &Kept) {
    logged(consumers::webhooks::purge(db, policy).await, "webhook payloads and logs past retention");
    logged(consumers::fleet::states::purge_history(db, kept.history).await, "vehicle states past retention");
    logged(consumers::sign_in::purge(db, chrono::Utc::now()).await, "ended mobile sessions and old sign-in codes");
    // A retention longer than the calendar goes back keeps everything.
    if let Some(before) = bus::retention::cutoff(kept.inbox) {
        logged(bus::retention::purge_inbox(db, before).await, "inbox rows past retention");
    }
    if let Some(before) = bus::retention::cutoff(kept.outbox) {
        logged(bus::retention::purge_published(db, before).await, "published outbox rows past retention");
    }
}

/// Logs what a purge of `what` deleted, or why it could not (it runs again next time).
fn logged(purged: Result<u64, impl std::fmt::Display>, what: &str) {
    match purged {
        Ok(0) => {}
        Ok(purged) => tracing::info!(purged, "{what} deleted"),
        Err(error) => tracing::warn!(%error, "could not delete {what}"),
    }
}

/// Sends charging apps their progress every `every` when their charger reports less often, until `stop`.
async fn pace_charging(db: sea_orm::DatabaseConnection, every: Duration, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = &mut stop => return,
        }
        if let Err(error) = consumers::charging::pace(&db, every).await {
            tracing::warn!(%error, "could not pace the charging sessions' progress");
        }
    }
}

/// Sends queued commands to vehicles heard from again, and ends those whose time ran out, every
/// second, until `stop`.
async fn sweep_commands(
    db: sea_orm::DatabaseConnection,
    timing: consumers::fleet::commands::Timing,
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        match consumers::fleet::commands::sweep(&db, timing).await {
            Ok(swept) if swept == consumers::fleet::commands::Swept::default() => {}
            Ok(swept) => tracing::info!(?swept, "vehicle commands swept"),
            Err(error) => tracing::warn!(%error, "could not sweep vehicle commands"),
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = &mut stop => return,
        }
    }
}

/// The vault sealing webhook secrets: the configured key, or the key file in `data_dir`
/// (made on first start, readable by this user only).
fn webhook_vault(settings: &Settings) -> anyhow::Result<signatures::Vault> {
    if let Some(key) = &settings.webhooks.encryption_key {
        return signatures::Vault::new(key.expose()).context("webhooks.encryption_key");
    }
    let path = settings.data_dir.join("webhook-secrets.key");
    let key = key_file(settings, &path, signatures::Vault::generate_key)?;
    signatures::Vault::new(&key).with_context(|| format!("the key in {}", path.display()))
}

/// The key integrations' machine tokens are signed with: the configured one, or the key file in
/// `data_dir` (made on first start, readable by this user only).
fn token_key(settings: &Settings) -> anyhow::Result<schemas::Sensitive> {
    let key = match &settings.integrations.token_key {
        Some(key) => key.clone(),
        None => {
            key_file(settings, &settings.data_dir.join("machine-tokens.key"), signatures::Vault::generate_key)?.into()
        }
    };
    key_bytes(&key).context("integrations.token_key must be 32 bytes in standard base64")?;
    Ok(key)
}

/// The 32 bytes of a key in standard base64, if it is one.
fn key_bytes(key: &schemas::Sensitive) -> Option<[u8; 32]> {
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key.expose().trim()).ok()?;
    <[u8; 32]>::try_from(bytes).ok()
}

/// The mobile app's API, with the key of its sign-in codes and the NATS accounts that sign its
/// users' credentials.
fn mobile_api(
    settings: &Settings,
    database: sea_orm::DatabaseConnection,
    partner: &PartnerApi,
) -> anyhow::Result<Arc<publishers::MobileApi>> {
    let key = match &settings.mobile.code_key {
        Some(key) => key.clone(),
        None => {
            key_file(settings, &settings.data_dir.join("sign-in-codes.key"), signatures::Vault::generate_key)?.into()
        }
    };
    let bytes = key_bytes(&key).context("mobile.code_key must be 32 bytes in standard base64")?;
    let accounts = settings.nats.accounts()?.map(Arc::new);
    let mobile = &settings.mobile;
    let edge = publishers::MobileSettings {
        nats_servers: settings.nats.public_url.clone().or_else(|| settings.nats.url.as_ref().map(|url| url.redacted())),
        command_timeout: settings.partner.command_timeout,
        body_limit: settings.partner.body_limit,
        charger_offline_after: settings.charging.offline_after(),
        qpay: settings.qpay.configured(),
        ..mobile.clone()
    };
    // No SMS provider is wired in yet: the log sender is what sends codes.
    tracing::warn!(
        "sign-in codes are sent through the log (no SMS provider configured): keep the log as secret as the codes"
    );
    if mobile.dev_code.is_some() {
        tracing::warn!("mobile.dev_code is set: every sign-in code is the fixed one; never do this in production");
    }
    Ok(publishers::MobileApi::new(edge, database, partner, &bytes, accounts, Arc::new(publishers::LogSms)))
}

/// The secret in the 0600 file at `path`, made by `generate` on first use (several processes
/// starting at once agree on the first one written).
fn key_file(
    settings: &Settings,
    path: &std::path::Path,
    generate: impl FnOnce() -> Result<String, signatures::VaultError>,
) -> anyhow::Result<String> {
    use std::io::Write;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("creating data directory {}", settings.data_dir.display()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let key = generate()?;
            file.write_all(key.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "made a new key; keep it with the database backups");
            Ok(key)
        }
        // Made by an earlier start (or a concurrent one): read it.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        }
        Err(error) => Err(error).with_context(|| format!("creating {}", path.display())),
    }
}

/// Creates an operator of the console (`/admin`): a `platform` operator sees every organisation,
/// an `organisation` operator only `tenant`. The password is stored as an Argon2id hash.
pub async fn create_operator(
    settings: &Settings,
    email: &str,
    password: &str,
    tenant: Option<&str>,
) -> anyhow::Result<consumers::operators::Operator> {
    use consumers::operators::Role;
    let tenant = tenant.map(TenantId::new).transpose().map_err(|e| anyhow::anyhow!("--organisation: {e}"))?;
    let role = if tenant.is_some() { Role::Organisation } else { Role::Platform };
    let database = connect_database(settings).await?;
    Migrator::up(database.connection(), None).await.context("applying database migrations")?;
    let created = consumers::operators::create(database.connection(), email, password, role, tenant.as_ref()).await;
    database.close().await;
    Ok(created?)
}

/// Sets organisation `tenant`'s compatibility profile outside the API (the operator's command line).
pub async fn set_profile(
    settings: &Settings,
    tenant: &str,
    profile: schemas::integrations::CompatibilityProfile,
) -> anyhow::Result<schemas::integrations::CompatibilityProfile> {
    let tenant = TenantId::new(tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    profile.check().map_err(|why| anyhow::anyhow!(why))?;
    let database = connect_database(settings).await?;
    Migrator::up(database.connection(), None).await.context("applying database migrations")?;
    let set = consumers::integrations::bootstrap_profile(database.connection(), &tenant, profile).await;
    database.close().await;
    Ok(set?)
}

/// Creates an organisation admin key outside the API (the operator's first key) and returns it
/// with its secret, which is shown this once.
pub async fn create_admin_key(settings: &Settings, tenant: &str, name: &str) -> anyhow::Result<(String, Uuid)> {
    let tenant = TenantId::new(tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    anyhow::ensure!(tenant.as_str() != publishers::ANONYMOUS_TENANT, "--tenant `{tenant}` is reserved");
    let database = connect_database(settings).await?;
    Migrator::up(database.connection(), None).await.context("applying database migrations")?;
    let profile = readside::integrations::profiles::find(database.connection(), tenant.as_str()).await?;
    let prefix = profile.key_prefix.as_deref().unwrap_or(&settings.partner.key_prefix);
    let secret = publishers::api_keys::generate(prefix, &ring::rand::SystemRandom::new())?;
    let create = CreateApiKey {
        key_id: Uuid::now_v7(),
        name: name.to_owned(),
        display_prefix: secret.display_prefix.clone(),
        key_hash: secret.hash.to_hex(),
        permissions: publishers::permissions::ALL.to_vec(),
        scope: KeyScope::Global { allowed_subaccount_ids: Vec::new() },
        rate_limits: RateLimits { per_minute: 600, per_hour: 10_000, per_day: 100_000 },
        expires_at: None,
        admin: true,
    };
    let key_id = create.key_id;
    consumers::integrations::bootstrap_key(database.connection(), &tenant, create)
        .await
        .context("storing the admin key")?;
    database.close().await;
    Ok((secret.key.0, key_id))
}
