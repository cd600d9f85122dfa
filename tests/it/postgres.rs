//! Migrations on PostgreSQL, and a write/read round trip through the tables they create.

use sea_orm::{ConnectionTrait, Database, Statement};

use crate::support::{embedded_settings, fresh_postgres_database};

#[tokio::test]
async fn migrate_creates_the_bus_tables_and_is_idempotent() {
    let url = fresh_postgres_database().await;
    let mut settings = embedded_settings();
    settings.database.url = Some(url.clone());
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
            "SELECT seq, sent_at IS NULL AS unsent FROM outbox WHERE message_id = $1",
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
