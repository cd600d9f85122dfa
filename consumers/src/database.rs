//! The database the consumers write: PostgreSQL in production, an SQLite file on the embedded default.

use std::time::Duration;

use bus::{EngineReport, EngineState, redact_url as redact};
use sea_orm::{ConnectOptions, DatabaseBackend, DatabaseConnection};

/// Why the database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The URL names a database voltbus does not run on.
    #[error("database URL must start with postgres:// or sqlite: (got `{0}`)")]
    UnsupportedUrl(String),
    /// Could not connect.
    #[error("cannot connect to the database: {0}")]
    Connect(#[source] sea_orm::DbErr),
}

/// How every pool of ours connects to `url`.
fn pool_options(url: String) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(5))
        // A ping on every checkout was one more round trip per transaction, each a chance to wait
        // for a core; a connection in use within the last seconds is alive, or its first
        // statement fails, the connection is dropped and the message retried.
        .test_before_acquire_if_idle_for(IDLE_BEFORE_PING)
        // SQL statements are traced by our own spans, not logged one by one.
        .sqlx_logging(false);
    options
}

/// How long a pooled connection may sit unused before it is pinged on checkout.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(10);

/// A pool of connections to the consumers' database.
#[derive(Clone)]
pub struct Database {
    connection: DatabaseConnection,
    url: String,
    kind: &'static str,
    detail: String,
}

impl Database {
    /// Connects to `url` (`postgres://…` or `sqlite://path?mode=rwc`).
    pub async fn connect(url: &str) -> Result<Self, DatabaseError> {
        let (kind, detail) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            ("postgresql", redact(url))
        } else if url.starts_with("sqlite:") {
            ("sqlite", url.to_owned())
        } else {
            return Err(DatabaseError::UnsupportedUrl(redact(url)));
        };
        let mut options = pool_options(url.to_owned());
        if kind == "sqlite" {
            // One writer at a time is all SQLite allows; a single connection avoids `database is locked`.
            options.max_connections(1);
        }
        let connection = sea_orm::Database::connect(options).await.map_err(DatabaseError::Connect)?;
        Ok(Self { connection, url: url.to_owned(), kind, detail })
    }

    /// The sea-orm connection.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.connection
    }

    /// Which backend this is.
    pub fn backend(&self) -> DatabaseBackend {
        self.connection.get_database_backend()
    }

    /// A second pool on the same PostgreSQL database whose commits do not wait for the disk
    /// (`synchronous_commit=off`), for records that can be rebuilt if a crash loses the last
    /// instants of them (the edge's idempotency records: a lost one only lets a retry through
    /// to the inbox, which answers it from its own, durable, record). On SQLite, the same pool.
    pub async fn relaxed(&self) -> Result<DatabaseConnection, DatabaseError> {
        self.pool(None, "&options[synchronous_commit]=off").await
    }

    /// A pool of its own, of at most `max_connections`, whose commits do not wait for the disk,
    /// for the webhook attempts: they must not wait behind the consumer groups' transactions for
    /// a connection (the fan-out of a burst would otherwise hold every connection), nor for a WAL
    /// flush per claim. A crash of PostgreSQL that loses the last instants of claims and results
    /// leaves those deliveries as they were before the attempt, and their leases bring them back:
    /// the attempt is made again (same event id), never lost. On SQLite, the same pool.
    pub async fn attempts_pool(&self, max_connections: u32) -> Result<DatabaseConnection, DatabaseError> {
        self.pool(Some(max_connections), "&options[synchronous_commit]=off").await
    }

    async fn pool(&self, max_connections: Option<u32>, parameters: &str) -> Result<DatabaseConnection, DatabaseError> {
        if self.kind != "postgresql" {
            return Ok(self.connection.clone());
        }
        let url = match parameters.strip_prefix('&') {
            Some(first) if !self.url.contains('?') => format!("{}?{first}", self.url),
            _ => format!("{}{parameters}", self.url),
        };
        let mut options = pool_options(url);
        if let Some(max) = max_connections {
            options.max_connections(max);
        }
        sea_orm::Database::connect(options).await.map_err(DatabaseError::Connect)
    }

    /// Pings the database for `/health`.
    pub async fn report(&self) -> EngineReport {
        let (state, detail) = match self.connection.ping().await {
            Ok(()) => (EngineState::Up, self.detail.clone()),
            Err(e) => (EngineState::Down, format!("{}: {e}", self.detail)),
        };
        EngineReport { engine: "database", kind: self.kind, state, detail }
    }

    /// Closes the pool after in-flight statements finish.
    pub async fn close(self) {
        // Closing an already broken pool has nothing left to report.
        let _ = self.connection.close().await;
    }
}
