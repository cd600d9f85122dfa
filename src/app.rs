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
/// Most events the webhook fan-out turns into deliveries in one transaction.
const FANOUT_BATCH: usize = 64;
/// The fan-out's window: few lanes, so a burst makes full batches (few transactions) rather
/// than sixteen small ones at a time, and enough unacked for the next batch of each lane.
const FANOUT_OPTIONS: ConsumerOptions = ConsumerOptions { prefetch: 512, lanes: 4 };
/// How often an idle relay looks for new outbox rows.
const RELAY_IDLE: Duration = Duration::from_millis(10);
/// The ingest's window: enough reports in flight for full batches on every lane.
const TELEMETRY_OPTIONS: ConsumerOptions = ConsumerOptions { prefetch: 4_000, lanes: 4 };
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

/// Connects the engines, migrates, and starts the consumer groups, the outbox relay and the HTTP
/// edge. Stopping goes in the reverse order of dependence: the edge finishes its requests (their
/// commands still answered) and flushes its request log, then consumers and relay finish theirs,
/// then the engines close.
pub async fn start(settings: Settings) -> anyhow::Result<Running> {
    // Before any consumer registers its counters, or they would go to no recorder.
    crate::telemetry::metrics();
    let engines = Arc::new(Engines::connect(&settings, "voltbus").await?);
    let commands = match &engines.amqp {
        Some(amqp) => CommandBus::amqp(Arc::clone(amqp)).await.context("opening the command channel")?,
        None => CommandBus::Embedded(engines.embedded.clone()),
    };
    let database = engines.database.connection().clone();
    // The edge reads, and writes only its idempotency records, which need no fsync of their own.
    let edge_database = engines.database.relaxed().await.context("connecting the edge's database pool")?;
    let vault = webhook_vault(&settings)?;
    let webhooks = publishers::WebhookSetup { vault: vault.clone(), policy: settings.webhooks.url_policy() };
    let edge_settings = publishers::PartnerSettings {
        amqp_url: settings.amqp.url.clone(),
        charger_offline_after: settings.charging.offline_after(),
        integrations: settings.integrations.to_edge(token_key(&settings)?),
        billing: settings.billing.plan(),
        paystack: settings.paystack.to_edge(),
        ..settings.partner.to_edge()
    };
    // The platform's one HTTP client, configured once: for trusted services, and guarded (the
    // SSRF rules) for partners' webhook endpoints.
    let agent = concat!("voltbus/", env!("CARGO_PKG_VERSION"));
    let http = outbound::trusted(agent, Duration::from_secs(30)).context("building the HTTP client")?;
    let (api, mut api_tasks) = PartnerApi::new(edge_settings, edge_database.clone(), commands, webhooks, http.clone());
    if !api_tasks.ready(Duration::from_secs(10)).await {
        tracing::warn!("not yet following key changes; other edges' key changes show after the cache expires");
    }
    let mobile = mobile_api(&settings, edge_database, &api)?;
    let edge = Edge::bind(settings.http.bind, engines.clone(), Arc::clone(&api), mobile)
        .await
        .with_context(|| format!("binding http.bind {}", settings.http.bind))?
        .with_metrics_token(settings.http.metrics_token.clone());
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
    let client = consumers::webhooks::http::Client::new(settings.webhooks.url_policy(), policy.timeout)
        .context("building the webhook client")?;
    let attempts_db =
        engines.database.attempts_pool(4).await.context("connecting the webhook attempts' database pool")?;
    let dispatcher = Arc::new(consumers::webhooks::Dispatcher::new(attempts_db, client, vault, policy.clone()));
    let integrations: Arc<dyn bus::Handler> = Arc::new(consumers::integrations::Integrations);
    let webhooks: Arc<dyn bus::Handler> =
        Arc::new(consumers::webhooks::Webhooks::new(policy.clone(), Arc::clone(&dispatcher)));
    let marketplace: Arc<dyn bus::Handler> = Arc::new(consumers::marketplace::Marketplace);
    let fleet: Arc<dyn bus::Handler> = Arc::new(consumers::fleet::Fleet::new(settings.fleet.command_timeout()));
    let broker = match &settings.amqp.url {
        Some(url) => Some(
            consumers::subscriptions::BrokerAdmin::new(url, settings.amqp.management_url.as_deref(), http.clone())
                .context("amqp.management_url")?,
        ),
        None => None,
    };
    let subscriptions: Arc<dyn bus::Handler> = Arc::new(consumers::subscriptions::Subscriptions::new(broker.clone()));
    let chargers: Arc<dyn bus::Handler> =
        Arc::new(consumers::chargers::Chargers::new(settings.charging.offline_after()));
    let charging: Arc<dyn bus::Handler> =
        Arc::new(consumers::charging::Charging::new(settings.charging.offline_after()));
    let db = Some(database.clone());
    // The last figure: most messages handled in one transaction (1: one at a time).
    let groups = [
        // The integrations groups answer the edge's key commands and write its request log.
        (consumers::integrations::topology(), integrations.clone(), db.clone(), 1),
        (consumers::integrations::request_log_topology(), integrations, db.clone(), 1),
        // Webhooks: endpoint commands, events turned into deliveries (in batches: a burst of
        // events is a few transactions, not one each), and the attempts, which run outside any
        // transaction (the dispatcher keeps its own short ones).
        (consumers::webhooks::topology(), webhooks.clone(), db.clone(), 1),
        (consumers::webhooks::fanout_topology(), webhooks, db.clone(), FANOUT_BATCH),
        (
            consumers::webhooks::delivery_topology(),
            Arc::new(consumers::webhooks::DispatchHandler(Arc::clone(&dispatcher))) as Arc<dyn bus::Handler>,
            None,
            1,
        ),
        // Marketplace partners' events (Etvas), answered with the ids the partner keeps.
        (consumers::marketplace::topology(), marketplace, db.clone(), 1),
        // Vehicles added, changed and removed; zones.
        (consumers::fleet::topology(), fleet, db.clone(), 1),
        (consumers::zones::topology(), Arc::new(consumers::zones::Zones) as Arc<dyn bus::Handler>, db.clone(), 1),
        // Customers, their wallets, pricing plans and rides.
        (
            consumers::customers::topology(),
            Arc::new(consumers::customers::Customers::new(settings.mobile.sign_in_policy())) as Arc<dyn bus::Handler>,
            db.clone(),
            1,
        ),
        (consumers::wallets::topology(), Arc::new(consumers::wallets::Wallets) as Arc<dyn bus::Handler>, db.clone(), 1),
        (consumers::pricing::topology(), Arc::new(consumers::pricing::Pricing) as Arc<dyn bus::Handler>, db.clone(), 1),
        (consumers::rides::topology(), Arc::new(consumers::rides::Rides) as Arc<dyn bus::Handler>, db.clone(), 1),
        // Integrations' own queues of their tenant's events, set up on the broker.
        (consumers::subscriptions::topology(), subscriptions, db.clone(), 1),
        // Chargers registered by admins (their status comes over NATS, below).
        (consumers::chargers::topology(), chargers.clone(), db.clone(), 1),
        // Charging sessions the app starts and finishes (their meter values come over NATS).
        (consumers::charging::topology(), charging.clone(), db.clone(), 1),
        // Purchases paid from the balance, and the app's feedback.
        (
            consumers::payments::topology(),
            Arc::new(consumers::payments::Payments) as Arc<dyn bus::Handler>,
            db.clone(),
            1,
        ),
        // Workshops, maintenance service selection and tickets opened through integrations.
        (
            consumers::maintenance::topology(),
            Arc::new(consumers::maintenance::Maintenance) as Arc<dyn bus::Handler>,
            db.clone(),
            1,
        ),
        // Integrations' invoices and Paystack payments.
        (consumers::billing::topology(), Arc::new(consumers::billing::Billing) as Arc<dyn bus::Handler>, db, 1),
    ];
    let mut consoled = Vec::new();
    for (topology, handler, database, batch) in groups {
        let group = |transport| crate::console::Group { name: topology.group.clone(), transport, stream: None };
        background.push(match (&settings.amqp.url, &engines.amqp) {
            (Some(url), Some(amqp)) => {
                consoled.push(group(Transport::Amqp));
                // Declared before the edge takes a request, so no command finds its queue missing.
                let channel = amqp.channel().await.context("opening a channel to declare queues")?;
                topology.declare(&channel).await.with_context(|| format!("declaring the {} queues", topology.group))?;
                let _ = channel.close(200, "declared".into()).await;
                let options = if batch > 1 { FANOUT_OPTIONS } else { ConsumerOptions::default() };
                let consumer = AmqpConsumer::new(url, topology, options, handler, database).in_batches(batch);
                tokio::spawn(consumer.run(when(&drained)))
            }
            _ => {
                consoled.push(group(Transport::Embedded));
                let embedded = engines.embedded.clone();
                let consumer = EmbeddedConsumer::new(embedded, topology, ConsumerOptions::default(), handler, database);
                tokio::spawn(consumer.run(when(&drained)))
            }
        });
    }
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
    // Telemetry comes from vehicles over NATS: without NATS there is none to take in.
    if let Some(nats) = &engines.nats {
        let telemetry = Arc::new(consumers::fleet::telemetry::Telemetry::new(settings.fleet.thresholds()));
        let consumer = JetStreamConsumer::new(
            nats.clone(),
            jetstream(&mut consoled, consumers::fleet::telemetry::topology()),
            TELEMETRY_OPTIONS,
            telemetry,
            Some(database.clone()),
        )
        .in_batches(settings.fleet.telemetry_batch)
        .without_inbox(engines.publisher());
        background.push(tokio::spawn(consumer.run(when(&drained))));
        // Devices' answers to the commands sent to them.
        let results = JetStreamConsumer::new(
            nats.clone(),
            jetstream(&mut consoled, consumers::fleet::commands::results_topology()),
            ConsumerOptions::default(),
            Arc::new(consumers::fleet::commands::CommandResults),
            Some(database.clone()),
        );
        background.push(tokio::spawn(results.run(when(&drained))));
        // Chargers' OCPP status notifications.
        let statuses = JetStreamConsumer::new(
            nats.clone(),
            jetstream(&mut consoled, consumers::chargers::status_topology()),
            ConsumerOptions::default(),
            chargers,
            Some(database.clone()),
        );
        background.push(tokio::spawn(statuses.run(when(&drained))));
        // Chargers' meter values: idempotent by the charger's timestamps, so no inbox; each
        // reading's progress goes to the app right after its commit.
        let meters = JetStreamConsumer::new(
            nats.clone(),
            jetstream(&mut consoled, consumers::charging::meter_topology()),
            ConsumerOptions::default(),
            charging,
            Some(database.clone()),
        )
        .without_inbox(engines.publisher());
        background.push(tokio::spawn(meters.run(when(&drained))));
    }
    background.push(tokio::spawn(expire_commands(database.clone(), when(&drained))));
    let edge = if settings.console.enabled {
        let desk = Arc::new(crate::console::BusDesk::new(Arc::clone(&engines), consoled));
        edge.with_console(publishers::Console::new(Arc::clone(&api), desk, settings.console.to_edge()))
    } else {
        edge
    };
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
    let kept = Kept {
        history: Duration::from_secs(settings.fleet.history_days.saturating_mul(86_400)),
        inbox: settings.bus.inbox(),
        outbox: settings.bus.outbox(),
    };
    background.push(tokio::spawn(tidy(Arc::clone(&api), database.clone(), policy, kept, when(&stopped))));
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
        dispatcher.finish(grace).await;
        match Arc::try_unwrap(engines) {
            Ok(engines) => engines.close().await,
            Err(_) => {
                tracing::warn!("engines still referenced at shutdown; leaving connections to drop")
            }
        }
        tracing::info!("voltbus stopped");
    });
    Ok(Running { addr, stop, task })
}

/// Notes a JetStream group for the console, and hands it on.
fn jetstream(groups: &mut Vec<crate::console::Group>, group: bus::nats::JetStreamGroup) -> bus::nats::JetStreamGroup {
    groups.push(crate::console::Group {
        name: group.group.clone(),
        transport: Transport::Nats,
        stream: Some(group.stream.clone()),
    });
    group
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
    stop: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(stop);
    loop {
        match api.tidy().await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired idempotency records deleted"),
            Err(error) => tracing::warn!(%error, "could not purge idempotency records"),
        }
        match consumers::webhooks::purge(&db, &policy).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "webhook payloads and logs past retention deleted"),
            Err(error) => tracing::warn!(%error, "could not purge webhook logs"),
        }
        match consumers::fleet::states::purge_history(&db, kept.history).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "vehicle states past retention deleted"),
            Err(error) => tracing::warn!(%error, "could not purge vehicle state history"),
        }
        match consumers::sign_in::purge(&db, chrono::Utc::now()).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "ended mobile sessions and old sign-in codes deleted"),
            Err(error) => tracing::warn!(%error, "could not purge mobile sessions"),
        }
        // A retention longer than the calendar goes back keeps everything.
        if let Some(before) = bus::retention::cutoff(kept.inbox) {
            match bus::retention::purge_inbox(&db, before).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "inbox rows past retention deleted"),
                Err(error) => tracing::warn!(%error, "could not purge the inbox"),
            }
        }
        if let Some(before) = bus::retention::cutoff(kept.outbox) {
            match bus::retention::purge_published(&db, before).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "published outbox rows past retention deleted"),
                Err(error) => tracing::warn!(%error, "could not purge the outbox"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(TIDY_EVERY) => {}
            () = &mut stop => return,
        }
    }
}

/// Marks commands to vehicles that got no answer in time as timed out, every second, until `stop`.
async fn expire_commands(db: sea_orm::DatabaseConnection, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        match consumers::fleet::commands::expire(&db).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "vehicle commands timed out"),
            Err(error) => tracing::warn!(%error, "could not time out vehicle commands"),
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
        return signatures::Vault::new(key).context("webhooks.encryption_key");
    }
    let path = settings.data_dir.join("webhook-secrets.key");
    let key = key_file(settings, &path, signatures::Vault::generate_key)?;
    signatures::Vault::new(&key).with_context(|| format!("the key in {}", path.display()))
}

/// The key integrations' machine tokens are signed with: the configured one, or the key file in
/// `data_dir` (made on first start, readable by this user only).
fn token_key(settings: &Settings) -> anyhow::Result<[u8; 32]> {
    let key = match &settings.integrations.token_key {
        Some(key) => key.clone(),
        None => key_file(settings, &settings.data_dir.join("machine-tokens.key"), signatures::Vault::generate_key)?,
    };
    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .context("integrations.token_key must be 32 bytes in standard base64")
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
        None => key_file(settings, &settings.data_dir.join("sign-in-codes.key"), signatures::Vault::generate_key)?,
    };
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .context("mobile.code_key must be 32 bytes in standard base64")?;
    let accounts = settings.nats.accounts()?.map(Arc::new);
    let mobile = &settings.mobile;
    let edge = publishers::MobileSettings {
        tenant: mobile.tenant.as_deref().map(TenantId::new).transpose().context("mobile.tenant")?,
        code_ttl: Duration::from_secs(mobile.code_ttl_seconds),
        session_ttl: Duration::from_secs(mobile.session_ttl_seconds),
        dev_code: mobile.dev_code.clone(),
        nats_servers: settings.nats.public_url.clone().or_else(|| settings.nats.url.as_deref().map(bus::redact_url)),
        command_timeout: Duration::from_millis(settings.partner.command_timeout_ms),
        body_limit: settings.partner.body_limit_bytes,
        charger_offline_after: settings.charging.offline_after(),
        qpay: settings.qpay.to_edge(),
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

/// Creates an organisation admin key outside the API (the operator's first key) and returns it
/// with its secret, which is shown this once.
pub async fn create_admin_key(settings: &Settings, tenant: &str, name: &str) -> anyhow::Result<(String, Uuid)> {
    let tenant = TenantId::new(tenant).map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    anyhow::ensure!(tenant.as_str() != publishers::ANONYMOUS_TENANT, "--tenant `{tenant}` is reserved");
    let database = connect_database(settings).await?;
    Migrator::up(database.connection(), None).await.context("applying database migrations")?;
    let secret = publishers::api_keys::generate(&settings.partner.key_prefix, &ring::rand::SystemRandom::new())?;
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
