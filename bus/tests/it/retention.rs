//! How long the inbox and the outbox keep their rows, on PostgreSQL and on the embedded SQLite
//! file, whose `CURRENT_TIMESTAMP` text only compares with text of its own shape; and a table
//! whose times the application writes (the vehicle state history), purged the same way.

use bus::outbox::{Destination, enqueue};
use bus::{inbox, retention};
use chrono::{TimeDelta, Utc};
use schemas::AnyMessage;
use schemas::rides::RidePaused;
use sea_orm::sea_query::Query;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait};
use uuid::Uuid;

use crate::conformance::embedded::open_embedded;
use crate::support::{fresh_database, pause_ride, tenant, unique};

async fn count(db: &DatabaseConnection, sql: &str) -> i64 {
    let row = db.query_one_raw(Statement::from_string(db.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index(0).unwrap()
}

/// Handled messages in the inbox; two events in the outbox, one of them published the way the
/// relay marks it. Then: nothing handled or published within the last hour goes, everything
/// handled or published before the next hour does, and the unpublished event stays.
async fn keeps_rows_for_their_retention(db: DatabaseConnection) {
    let tenant = tenant();
    // More than one chunk (5,000 rows a statement).
    let handled = 5_002;
    let envelopes: Vec<_> =
        (0..handled).map(|_| pause_ride(Uuid::now_v7(), &tenant).map(AnyMessage::PauseRide)).collect();
    let tx = db.begin().await.unwrap();
    inbox::claim_all(&tx, "retention", &envelopes.iter().collect::<Vec<_>>()).await.unwrap();
    let events: Vec<_> = (0..2)
        .map(|_| {
            schemas::Envelope::new(
                tenant.clone(),
                "voltbus/test",
                RidePaused {
                    ride_id: Uuid::now_v7(),
                    customer_id: Uuid::nil(),
                    vehicle_id: Uuid::nil(),
                    paused_at: Utc::now(),
                    subaccount_id: Uuid::nil(),
                },
            )
        })
        .collect();
    for event in &events {
        enqueue(&tx, event, &Destination::event(&tenant, &event.data)).await.unwrap();
    }
    tx.commit().await.unwrap();
    // As the relay marks a row it published.
    let published = "DELETE FROM outbox_pending WHERE seq = (SELECT min(seq) FROM outbox)";
    db.execute_raw(Statement::from_string(db.get_database_backend(), published)).await.unwrap();

    let hour = TimeDelta::hours(1);
    assert_eq!(retention::purge_inbox(&db, Utc::now() - hour).await.unwrap(), 0, "handled within the hour");
    assert_eq!(retention::purge_published(&db, Utc::now() - hour).await.unwrap(), 0, "published within the hour");
    assert_eq!(count(&db, "SELECT count(*) FROM inbox").await, handled);

    assert_eq!(retention::purge_inbox(&db, Utc::now() + hour).await.unwrap(), handled as u64);
    assert_eq!(retention::purge_published(&db, Utc::now() + hour).await.unwrap(), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM inbox").await, 0);
    assert_eq!(count(&db, "SELECT count(*) FROM outbox").await, 1, "not published: kept");
    assert_eq!(count(&db, "SELECT count(*) FROM outbox_pending").await, 1, "and still pending");
}

/// More than a chunk of state reports received two hours ago and two received now, their times
/// bound by the application as the ingest binds them: a purge before an hour ago takes exactly
/// the old ones.
async fn purges_rows_stamped_by_the_application(db: DatabaseConnection) {
    let tenant = tenant();
    let vehicle = Uuid::now_v7();
    let old = Utc::now() - TimeDelta::hours(2);
    let ages = std::iter::repeat_n(old, 5_002).chain(std::iter::repeat_n(Utc::now(), 2)).collect::<Vec<_>>();
    for chunk in ages.chunks(1_000) {
        let mut insert = Query::insert()
            .into_table("vehicle_state_history")
            .columns(["message_id", "tenant", "vehicle_id", "received_at", "state"])
            .to_owned();
        for received_at in chunk {
            insert.values_panic([
                Uuid::now_v7().into(),
                tenant.as_str().into(),
                vehicle.into(),
                (*received_at).into(),
                "{}".into(),
            ]);
        }
        db.execute(&insert).await.unwrap();
    }
    let purge = |before| {
        retention::purge_before(&db, "vehicle_state_history", "received_at", retention::Stamped::ByApplication, before)
    };
    assert_eq!(purge(old - TimeDelta::minutes(1)).await.unwrap(), 0, "nothing older than the oldest");
    assert_eq!(purge(Utc::now() - TimeDelta::hours(1)).await.unwrap(), 5_002);
    assert_eq!(count(&db, "SELECT count(*) FROM vehicle_state_history").await, 2, "the recent reports stay");
}

#[tokio::test]
async fn postgres_purges_history_stamped_by_the_application_a_chunk_at_a_time() {
    purges_rows_stamped_by_the_application(fresh_database().await).await;
}

#[tokio::test]
async fn sqlite_purges_history_stamped_by_the_application_a_chunk_at_a_time() {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.db", unique("history")));
    purges_rows_stamped_by_the_application(open_embedded(&path).await).await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn postgres_keeps_inbox_and_published_outbox_rows_for_their_retention() {
    keeps_rows_for_their_retention(fresh_database().await).await;
}

#[tokio::test]
async fn sqlite_keeps_inbox_and_published_outbox_rows_for_their_retention() {
    let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{}.db", unique("retention")));
    keeps_rows_for_their_retention(open_embedded(&path).await).await;
    let _ = std::fs::remove_file(&path);
}
