//! Migrations on PostgreSQL, and a write/read round trip through the tables they create.

use sea_orm::{ConnectionTrait, Database, Statement};

use crate::support::{embedded_settings, fresh_postgres_database};

#[tokio::test]
async fn migrate_creates_the_bus_tables_and_is_idempotent() {
    let url = fresh_postgres_database().await;
    let mut settings = embedded_settings();
    settings.database.url = Some(url.clone().into());
    voltbus::migrate(&settings).await.unwrap();
    voltbus::migrate(&settings).await.unwrap();

    let db = Database::connect(&url).await.unwrap();
    let backend = db.get_database_backend();
    let tables = db
        .query_all_raw(Statement::from_string(
            backend,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
        ))
        .await
        .unwrap();
    let names: Vec<String> = tables.iter().map(|r| r.try_get("", "table_name").unwrap()).collect();
    for table in ["inbox", "outbox", "seaql_migrations", "tenants"] {
        assert!(names.iter().any(|n| n == table), "{table} missing from {names:?}");
    }

    // Round trip: an outbox row written and read back, and the inbox refusing a duplicate.
    let id = uuid::Uuid::now_v7();
    db.execute_raw(Statement::from_sql_and_values(
        backend,
        "INSERT INTO outbox (message_id, tenant, type_name, transport, destination, payload) VALUES ($1, 'acme', 'ride.started', 'amqp', 'voltbus.events', '{}')",
        [id.into()],
    ))
    .await
    .unwrap();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT seq, EXISTS (SELECT 1 FROM outbox_pending p WHERE p.seq = outbox.seq) AS unsent \
             FROM outbox WHERE message_id = $1",
            [id.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(row.try_get::<i64>("", "seq").unwrap() > 0);
    assert!(row.try_get::<bool>("", "unsent").unwrap());

    let insert_inbox = Statement::from_sql_and_values(
        backend,
        "INSERT INTO inbox (consumer_group, message_id, tenant, type_name) VALUES ('rides', $1, 'acme', 'ride.start')",
        [id.into()],
    );
    db.execute_raw(insert_inbox.clone()).await.unwrap();
    assert!(db.execute_raw(insert_inbox).await.is_err(), "the inbox must refuse the same message twice");
}

/// Events still unsent when routing keys began to name the subaccount keep reaching the
/// platform's groups (`*.*.{domain}.{type}`) and receivers of the whole organisation, never a
/// queue of a key limited to subaccounts: the migration gives them the word `unscoped`. Sent rows
/// and keys of the new shape are left alone. On PostgreSQL and on the embedded SQLite file.
#[tokio::test]
async fn unsent_events_of_the_old_key_shape_get_the_unscoped_word() {
    use migrations::{Migrator, MigratorTrait};
    let sqlite = format!("sqlite://{}?mode=rwc", crate::support::scratch_dir().join("old.db").display());
    for url in [fresh_postgres_database().await, sqlite] {
        let db = migrated_before(&url, "m20261206_000019_audiences").await;
        for (key, sent) in [
            ("acme.rides.ride.started", false),
            ("acme.vehicles.VehicleChanged", true),
            ("acme.org.customers.customer.created", false),
        ] {
            let sent_at = if sent { "CURRENT_TIMESTAMP" } else { "NULL" };
            let insert = format!(
                "INSERT INTO outbox (message_id, tenant, type_name, transport, destination, routing_key, payload, sent_at) \
                 VALUES ('{}', 'acme', 't', 'amqp', 'voltbus.events', '{key}', '{{}}', {sent_at})",
                uuid::Uuid::now_v7()
            );
            db.execute_unprepared(&insert).await.unwrap();
        }
        Migrator::up(&db, None).await.unwrap();
        let keys = texts(&db, "SELECT routing_key FROM outbox ORDER BY seq", "routing_key").await;
        assert_eq!(
            keys,
            ["acme.unscoped.rides.ride.started", "acme.vehicles.VehicleChanged", "acme.org.customers.customer.created"],
            "{url}"
        );
        assert!(bus::embedded::topic_matches("*.*.rides.ride.started", &keys[0]));
        assert!(!bus::embedded::topic_matches("acme.org.rides.ride.started", &keys[0]));
        // The unsent rows are pending after the later migration that gave them a table of their
        // own; the sent one is not.
        let pending = "SELECT o.routing_key FROM outbox_pending p JOIN outbox o ON o.seq = p.seq ORDER BY p.seq";
        assert_eq!(
            texts(&db, pending, "routing_key").await,
            ["acme.unscoped.rides.ride.started", "acme.org.customers.customer.created"],
            "{url}"
        );
    }
}

/// Commands to vehicles got a permission of their own: every key that held `vehicles:write`,
/// which used to allow them, holds `vehicles:commands` after the migration; no other key does.
/// On PostgreSQL and on the embedded SQLite file.
#[tokio::test]
async fn keys_that_could_command_vehicles_keep_that_under_its_own_permission() {
    use migrations::{Migrator, MigratorTrait};
    let sqlite = format!("sqlite://{}?mode=rwc", crate::support::scratch_dir().join("keys.db").display());
    for url in [fresh_postgres_database().await, sqlite] {
        let db = migrated_before(&url, "m20261206_000022_vehicle_commands_permission").await;
        for (name, permissions) in
            [("writer", r#"["vehicles:read","vehicles:write"]"#), ("reader", r#"["vehicles:read"]"#)]
        {
            let insert = format!(
                "INSERT INTO api_keys (id, tenant, name, display_prefix, key_hash, permissions, scope, per_minute, \
                 per_hour, per_day, created_at, updated_at) VALUES ('{}', 'acme', '{name}', 'vb_pk_x', '{name}', \
                 '{permissions}', '{{}}', 60, 1000, 10000, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
                uuid::Uuid::now_v7()
            );
            db.execute_unprepared(&insert).await.unwrap();
        }
        Migrator::up(&db, None).await.unwrap();
        let permissions: Vec<Vec<String>> = texts(&db, "SELECT permissions FROM api_keys ORDER BY name", "permissions")
            .await
            .iter()
            .map(|json| serde_json::from_str(json).unwrap())
            .collect();
        assert_eq!(
            permissions,
            [vec!["vehicles:read"], vec!["vehicles:read", "vehicles:write", "vehicles:commands"]],
            "{url}"
        );
    }
}

/// A database at `url` with the migrations before `name` applied.
async fn migrated_before(url: &str, name: &str) -> sea_orm::DatabaseConnection {
    use migrations::{Migrator, MigratorTrait};
    let db = Database::connect(url).await.unwrap();
    let before = Migrator::migrations().iter().position(|m| m.name() == name).expect("the migration exists");
    Migrator::up(&db, Some(u32::try_from(before).unwrap())).await.unwrap();
    db
}

/// The text `column` of each row `query` reads.
async fn texts(db: &sea_orm::DatabaseConnection, query: &str, column: &str) -> Vec<String> {
    let rows = db.query_all_raw(Statement::from_string(db.get_database_backend(), query.to_owned())).await.unwrap();
    rows.iter().map(|row| row.try_get("", column).unwrap()).collect()
}
