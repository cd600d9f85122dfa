//! Helpers: service URLs, unique names, scripted handlers, fresh databases, queue clean-up.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bus::{Context, Handler, HandlerError, Reply};
use migrations::{Migrator, MigratorTrait};
use schemas::{AnyMessage, Envelope, TenantId};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use uuid::Uuid;

/// Logs to the test output when `TEST_LOG` is set (silent otherwise).
pub fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter("info,lapin=warn").with_test_writer().try_init();
    }
}

pub fn amqp_url() -> String {
    std::env::var("VOLTBUS_TEST_AMQP").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn postgres_url() -> String {
    std::env::var("VOLTBUS_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into())
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", &Uuid::now_v7().simple().to_string()[20..])
}

pub fn tenant() -> TenantId {
    TenantId::new(unique("t")).unwrap()
}

/// A migrated PostgreSQL database of its own.
pub async fn fresh_database() -> DatabaseConnection {
    let admin = Database::connect(postgres_url()).await.unwrap();
    let name = unique("vb");
    admin
        .execute_raw(Statement::from_string(admin.get_database_backend(), format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    admin.close().await.unwrap();
    let url = format!("{}/{name}", postgres_url().rsplit_once('/').unwrap().0);
    let db = Database::connect(url).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db
}

/// One handler call: message id, attempt, subject.
pub type Call = (Uuid, u32, Option<String>);

/// What a scripted handler does with each call: given the message and attempt.
pub type Script = dyn Fn(&Envelope<AnyMessage>, u32) -> Result<Reply, HandlerError> + Send + Sync;

/// A handler that records every call and answers from a script; with a database it also writes
/// one `tenants` row per call, in the runtime's transaction, to make effects countable.
pub struct Scripted {
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub script: Box<Script>,
    pub delay: Duration,
}

impl Scripted {
    pub fn new(
        script: impl Fn(&Envelope<AnyMessage>, u32) -> Result<Reply, HandlerError> + Send + Sync + 'static,
    ) -> Self {
        Self { calls: Arc::default(), script: Box::new(script), delay: Duration::ZERO }
    }
}

impl Handler for Scripted {
    fn handle<'a>(
        &'a self,
        context: Context<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Reply, HandlerError>> + Send + 'a>> {
        Box::pin(async move {
            if !self.delay.is_zero() {
                tokio::time::sleep(self.delay).await;
            }
            self.calls.lock().unwrap().push((context.message.id, context.attempt, context.message.subject.clone()));
            if let Some(tx) = context.transaction {
                let sql = format!("INSERT INTO tenants (id, name) VALUES ('{}', 'effect')", unique("e"));
                tx.execute_raw(Statement::from_string(tx.get_database_backend(), sql))
                    .await
                    .map_err(|e| HandlerError::Retryable(e.to_string()))?;
            }
            (self.script)(context.message, context.attempt)
        })
    }
}

/// Waits until `check` holds, up to `within`.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

pub fn pause_ride(ride: Uuid, tenant: &TenantId) -> Envelope<schemas::rides::PauseRide> {
    Envelope::new(tenant.clone(), "voltbus/test", schemas::rides::PauseRide { ride_id: ride })
}
