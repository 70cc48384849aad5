//! The offline queue on SQLite beyond the conformance suite: migration 2 upgrades a version-1 file in place,
//! the table refuses deletes and changes of a settled result, card data is stored verbatim while pending and
//! erased on disk once settled, and migration 4 erases what an earlier release left on settled entries.

mod common;

use commerce_ports::offline_queue::{Enqueued, OfflineEntry, OfflineQueueStore};
use commerce_ports::terminal::{EntryMode, OfflineCardRead, TerminalPaymentRequest};
use commerce_ports::{ChannelId, Currency, IdempotencyKey, Money, RegisterId, TenantId};
use commerce_sqlite::{SCHEMA_VERSION, SqliteStores};
use commerce_testkit::conformance::offline_queue::run_all;
use commerce_testkit::conformance::stores::StoreFixture;
use rusqlite::Connection;
use time::OffsetDateTime;

use common::TempDb;

fn entry(n: u32, card_data: &str) -> OfflineEntry {
    let payment = TerminalPaymentRequest::new(
        "ped-1",
        RegisterId::new("till-1").expect("register"),
        Money::from_minor(990, Currency::EUR),
        format!("sale-{n}"),
        IdempotencyKey::new(format!("offline-{n}")).expect("key"),
    );
    let card = OfflineCardRead::new(Some("visa".to_owned()), EntryMode::Contactless, card_data);
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
    OfflineEntry::new(
        TenantId::new("acme").expect("tenant"),
        ChannelId::new("shop").expect("channel"),
        payment,
        card,
        at,
    )
}

#[tokio::test]
async fn a_version_1_file_is_upgraded_and_keeps_its_data() {
    let db = TempDb::new("offline-upgrade");
    let stores = SqliteStores::open(db.path()).await.expect("open");
    let tenant = TenantId::new("acme").expect("tenant");
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
    assert!(stores.store_set().webhooks.record(&tenant, "stripe", "evt_1", now).await.expect("record"));
    drop(stores);
    // Take the file back to version 1, as an earlier release left it.
    let conn = Connection::open(db.path()).expect("inspect");
    conn.execute_batch(
        "DROP TABLE offline_payments; ALTER TABLE idempotency_records DROP COLUMN claimed_at;
         DELETE FROM schema_migrations WHERE version >= 2",
    )
    .expect("downgrade");
    drop(conn);

    let upgraded = SqliteStores::open(db.path()).await.expect("reopen");
    assert_eq!(upgraded.applied_migrations(), &[2, 3, 4, 5]);
    assert_eq!(SCHEMA_VERSION, 5);
    let set = upgraded.store_set();
    assert!(!set.webhooks.record(&tenant, "stripe", "evt_1", now).await.expect("record again"), "v1 data was lost");
    run_all(set.offline_queue.as_ref(), &StoreFixture::new()).await.assert_passed();
}

#[tokio::test]
async fn rows_are_kept_verbatim_and_settled_results_cannot_be_rewritten() {
    let db = TempDb::new("offline-audit");
    let stores = SqliteStores::open(db.path()).await.expect("open");
    let queue = stores.store_set().offline_queue;
    let blob = "emv:9F26=0A1B;9F27=80 \u{1F512}\n";
    assert!(matches!(queue.enqueue(entry(1, blob), 5).await.expect("enqueue"), Enqueued::Queued { pending: 1, .. }));
    queue.enqueue(entry(2, "x"), 5).await.expect("enqueue");
    let tenant = TenantId::new("acme").expect("tenant");
    let key = IdempotencyKey::new("offline-1").expect("key");
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_100).expect("time");
    let conn = Connection::open(db.path()).expect("inspect");
    let raw_card_data = |key: &str| -> String {
        conn.query_row("SELECT card_data FROM offline_payments WHERE key = ?1", [key], |r| r.get(0)).expect("row")
    };
    assert_eq!(raw_card_data("offline-1"), blob, "pending card data is stored verbatim");
    let settled = queue.mark_forwarded(&tenant, "ped-1", &key, "psp-1", at).await.expect("mark");
    assert!(settled.card.is_erased());
    assert_eq!(raw_card_data("offline-1"), "", "settled card data is erased on disk");
    assert_eq!(raw_card_data("offline-2"), "x", "a pending row kept its card data");
    let delete = conn.execute("DELETE FROM offline_payments WHERE key = 'offline-2'", []);
    assert!(delete.is_err(), "a row was deleted");
    let rewrite = conn.execute(
        "UPDATE offline_payments SET status = 'declined', provider_reference = NULL, decline_reason = '05'
         WHERE key = 'offline-1'",
        [],
    );
    assert!(rewrite.is_err(), "a settled result was rewritten");
    let count: i64 = conn.query_row("SELECT COUNT(*) FROM offline_payments", [], |r| r.get(0)).expect("count");
    assert_eq!(count, 2);
}

/// Three entries of terminal `ped-1` as the queue holds them.
async fn entries(queue: &dyn OfflineQueueStore, keys: &[IdempotencyKey]) -> Vec<OfflineEntry> {
    let tenant = TenantId::new("acme").expect("tenant");
    let mut found = Vec::new();
    for key in keys {
        found.push(queue.get(&tenant, "ped-1", key).await.expect("get").expect("entry"));
    }
    found
}

#[tokio::test]
async fn migration_4_erases_the_card_data_an_earlier_release_left_on_settled_entries() {
    let db = TempDb::new("offline-erase-settled");
    let tenant = TenantId::new("acme").expect("tenant");
    let keys: Vec<_> = (1..=3).map(|n| IdempotencyKey::new(format!("offline-{n}")).expect("key")).collect();
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_100).expect("time");
    // A forwarded, a declined and a pending entry, as this release leaves them.
    let settled_now = {
        let stores = SqliteStores::open(db.path()).await.expect("open");
        let queue = stores.store_set().offline_queue;
        for n in 1..=3 {
            queue.enqueue(entry(n, &format!("blob-{n}")), 5).await.expect("enqueue");
        }
        queue.mark_forwarded(&tenant, "ped-1", &keys[0], "psp-1", at).await.expect("forward");
        queue.mark_declined(&tenant, "ped-1", &keys[1], "05", at).await.expect("decline");
        entries(queue.as_ref(), &keys).await
    };
    let erased: Vec<bool> = settled_now.iter().map(|e| e.card.is_erased()).collect();
    assert_eq!(erased, [true, true, false]);
    // Take the file back to version 3 as a release before decision 014 left it: the same table, but the
    // settled rows still hold their card data.
    let conn = Connection::open(db.path()).expect("inspect");
    conn.execute_batch(
        "UPDATE offline_payments SET card_data = 'old-' || key WHERE status <> 'pending';
         ALTER TABLE idempotency_records DROP COLUMN claimed_at;
         DELETE FROM schema_migrations WHERE version >= 4",
    )
    .expect("downgrade");
    let raw_card_data = || -> Vec<String> {
        let mut s = conn.prepare("SELECT card_data FROM offline_payments ORDER BY key").expect("prepare");
        s.query_map([], |r| r.get(0)).expect("query").collect::<Result<_, _>>().expect("rows")
    };
    assert_eq!(raw_card_data(), ["old-offline-1", "old-offline-2", "blob-3"]);

    let upgraded = SqliteStores::open(db.path()).await.expect("reopen");
    assert_eq!(upgraded.applied_migrations(), &[4, 5]);
    let queue = upgraded.store_set().offline_queue;
    // Settled entries erased, through the port and on disk; the pending one keeps its card data.
    assert_eq!(
        entries(queue.as_ref(), &keys).await,
        settled_now,
        "settled entries must come back erased, the pending one with its card data"
    );
    assert_eq!(raw_card_data(), ["", "", "blob-3"]);
    assert!(queue.enqueue(entry(1, "blob-1"), 5).await.expect("replay").is_replay());
}
