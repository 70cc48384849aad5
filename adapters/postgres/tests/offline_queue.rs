//! The offline store-and-forward queue on PostgreSQL: the conformance suite, the bound holding when two
//! instances (two pools) enqueue on one terminal at once, racing marks, and the migrations that create the
//! table (2) and erase the card data an earlier release left on settled entries (3).

mod common;

use std::sync::Arc;

use commerce_ports::offline_queue::{Enqueued, OfflineEntry, OfflineQueueStore, OfflineStatus};
use commerce_ports::terminal::{EntryMode, OfflineCardRead, TerminalPaymentRequest};
use commerce_ports::{ChannelId, Currency, ErrorKind, IdempotencyKey, Money, RegisterId, TenantId};
use commerce_testkit::conformance::offline_queue::run_all;
use commerce_testkit::conformance::stores::StoreFixture;
use time::OffsetDateTime;

fn entry(tenant: &TenantId, n: usize, card_data: &str) -> OfflineEntry {
    let payment = TerminalPaymentRequest::new(
        "ped-1",
        RegisterId::new("till-1").expect("register"),
        Money::from_minor(1_000, Currency::EUR),
        format!("sale-{n}"),
        IdempotencyKey::new(format!("offline-{n}")).expect("key"),
    );
    let card = OfflineCardRead::new(Some("visa".to_owned()), EntryMode::Chip, card_data);
    let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
    OfflineEntry::new(tenant.clone(), ChannelId::new("shop").expect("channel"), payment, card, at)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_queue_conformance_suite_passes() {
    common::on_fresh_schema("offline_queue_conformance_suite_passes", |url, schema| async move {
        let stores = common::instance(&url, &schema).await;
        let report = run_all(stores.store_set().offline_queue.as_ref(), &StoreFixture::new()).await;
        println!("{report}");
        report.assert_passed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_enqueues_from_two_pools_never_exceed_the_bound() {
    common::on_fresh_schema("offline_enqueues_from_two_pools_never_exceed_the_bound", |url, schema| async move {
        let sets =
            [common::instance(&url, &schema).await.store_set(), common::instance(&url, &schema).await.store_set()];
        let tenant = TenantId::new("acme").expect("tenant");
        for round in 0..3 {
            let tasks: Vec<_> = (0..24)
                .map(|n| {
                    let set = sets[n % 2].clone();
                    let entry = entry(&tenant, round * 100 + n, &format!("enc-{round}-{n}"));
                    tokio::spawn(async move { set.offline_queue.enqueue(entry, 6).await })
                })
                .collect();
            let mut queued = 0;
            for task in tasks {
                match task.await.expect("join") {
                    Ok(Enqueued::Queued { pending, .. }) => {
                        assert!(pending <= 6, "an enqueue saw {pending} pending");
                        queued += 1;
                    }
                    Ok(other) => panic!("unexpected outcome {other:?}"),
                    Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidState, "a refused enqueue failed with {e}"),
                }
            }
            assert_eq!(queued, 6, "round {round}: {queued} of 24 enqueues across two pools were queued; bound 6");
            let pending = sets[1].offline_queue.pending(&tenant, "ped-1", 100).await.expect("pending");
            assert_eq!(pending.len(), 6);
            // Settle them all from the other instance, making room for the next round.
            for e in pending {
                sets[0]
                    .offline_queue
                    .mark_forwarded(&tenant, "ped-1", e.key(), &format!("psp-{}", e.key()), e.accepted_at)
                    .await
                    .expect("mark");
            }
            assert_eq!(sets[1].offline_queue.pending_count(&tenant, "ped-1").await.expect("count"), 0);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_marks_from_two_pools_settle_once() {
    common::on_fresh_schema("racing_marks_from_two_pools_settle_once", |url, schema| async move {
        let sets =
            [common::instance(&url, &schema).await.store_set(), common::instance(&url, &schema).await.store_set()];
        let tenant = TenantId::new("acme").expect("tenant");
        let e = entry(&tenant, 1, "enc-1");
        sets[0].offline_queue.enqueue(e.clone(), 5).await.expect("enqueue");
        let raw = common::raw(&url).await;
        let card_data_sql = format!("SELECT card_data FROM \"{schema}\".offline_payments");
        let pending_row = raw.query_one(&card_data_sql, &[]).await.expect("raw row");
        assert_eq!(pending_row.get::<_, String>(0), "enc-1", "pending card data is stored verbatim");
        let at = e.accepted_at;
        let tasks: Vec<_> = (0..16)
            .map(|n| {
                let (set, tenant, key) = (sets[n % 2].clone(), tenant.clone(), e.key().clone());
                tokio::spawn(async move {
                    if n % 4 == 3 {
                        set.offline_queue.mark_declined(&tenant, "ped-1", &key, "05", at).await
                    } else {
                        set.offline_queue.mark_forwarded(&tenant, "ped-1", &key, "psp-1", at).await
                    }
                })
            })
            .collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("join"));
        }
        let stored = sets[1].offline_queue.get(&tenant, "ped-1", e.key()).await.expect("get").expect("entry");
        assert!(!stored.status.is_pending());
        for r in results {
            match r {
                Ok(entry) => assert_eq!(entry.status, stored.status, "a mark succeeded with another result"),
                Err(err) => assert_eq!(err.kind(), ErrorKind::InvalidState, "{err}"),
            }
        }
        let row = raw
            .query_one(&format!("SELECT card_data, status FROM \"{schema}\".offline_payments"), &[])
            .await
            .expect("raw row");
        assert_eq!(row.get::<_, String>(0), "", "settled card data is erased on disk");
        assert!(stored.card.is_erased());
        let status: String = row.get(1);
        assert_eq!(status == "forwarded", matches!(stored.status, OfflineStatus::Forwarded { .. }));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_version_1_schema_is_upgraded_to_the_current_version() {
    common::on_fresh_schema("a_version_1_schema_is_upgraded_to_the_current_version", |url, schema| async move {
        let first = common::instance(&url, &schema).await;
        assert_eq!(first.applied_migrations(), &[1, 2, 3, 4]);
        let tenant = TenantId::new("acme").expect("tenant");
        let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
        assert!(first.store_set().webhooks.record(&tenant, "stripe", "evt_1", now).await.expect("record"));
        first.close();
        let raw = common::raw(&url).await;
        raw.batch_execute(&format!(
            "DROP TABLE \"{schema}\".offline_payments; DELETE FROM \"{schema}\".schema_migrations WHERE version >= 2"
        ))
        .await
        .expect("downgrade");
        let upgraded = common::instance(&url, &schema).await;
        assert_eq!(upgraded.applied_migrations(), &[2, 3, 4]);
        let set = upgraded.store_set();
        assert!(!set.webhooks.record(&tenant, "stripe", "evt_1", now).await.expect("record again"), "v1 data lost");
        run_all(set.offline_queue.as_ref(), &StoreFixture::new()).await.assert_passed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migration_3_erases_the_card_data_an_earlier_release_left_on_settled_entries() {
    let test = "migration_3_erases_the_card_data_an_earlier_release_left_on_settled_entries";
    common::on_fresh_schema(test, |url, schema| async move {
        let tenant = TenantId::new("acme").expect("tenant");
        let key = |n: usize| IdempotencyKey::new(format!("offline-{n}")).expect("key");
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_100).expect("time");
        let entries = |queue: Arc<dyn OfflineQueueStore>| {
            let tenant = tenant.clone();
            async move {
                let mut found = Vec::new();
                for n in 1..=3 {
                    found.push(queue.get(&tenant, "ped-1", &key(n)).await.expect("get").expect("entry"));
                }
                found
            }
        };
        // A forwarded, a declined and a pending entry, as this release leaves them.
        let first = common::instance(&url, &schema).await;
        let queue = first.store_set().offline_queue;
        for n in 1..=3 {
            queue.enqueue(entry(&tenant, n, &format!("blob-{n}")), 5).await.expect("enqueue");
        }
        queue.mark_forwarded(&tenant, "ped-1", &key(1), "psp-1", at).await.expect("forward");
        queue.mark_declined(&tenant, "ped-1", &key(2), "05", at).await.expect("decline");
        let settled_now = entries(queue).await;
        first.close();
        let erased: Vec<bool> = settled_now.iter().map(|e| e.card.is_erased()).collect();
        assert_eq!(erased, [true, true, false]);
        // Take the schema back to version 2 as a release before decision 014 left it: the same table, but the
        // settled rows still hold their card data.
        let raw = common::raw(&url).await;
        let table = format!("\"{schema}\".offline_payments");
        raw.batch_execute(&format!(
            "UPDATE {table} SET card_data = 'old-' || key WHERE status <> 'pending';
             DELETE FROM \"{schema}\".schema_migrations WHERE version >= 3"
        ))
        .await
        .expect("downgrade");
        let card_data_sql = format!("SELECT card_data FROM {table} ORDER BY key");
        let raw_card_data = || async {
            let rows = raw.query(&card_data_sql, &[]).await.expect("raw rows");
            rows.iter().map(|r| r.get::<_, String>(0)).collect::<Vec<_>>()
        };
        assert_eq!(raw_card_data().await, ["old-offline-1", "old-offline-2", "blob-3"]);

        let upgraded = common::instance(&url, &schema).await;
        assert_eq!(upgraded.applied_migrations(), &[3, 4]);
        // Settled entries erased, through the port and in the table; the pending one keeps its card data.
        assert_eq!(
            entries(upgraded.store_set().offline_queue).await,
            settled_now,
            "settled entries must come back erased, the pending one with its card data"
        );
        assert_eq!(raw_card_data().await, ["", "", "blob-3"]);
    })
    .await;
}
