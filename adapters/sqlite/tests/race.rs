//! Two `SqliteStores` on one file: the contracts' atomicity holds across them, because it comes from SQLite
//! transactions and constraints rather than from locks in one `SqliteStores`.

mod common;

use commerce_ports::offline_queue::{Enqueued, OfflineEntry};
use commerce_ports::stores::{IdempotencyBegin, IdempotencyClaim, IntentEvent, IntentStatus, PaymentIntent, StoreSet};
use commerce_ports::terminal::{EntryMode, OfflineCardRead, TerminalPaymentRequest};
use commerce_ports::{
    ChannelId, Currency, ErrorKind, IdempotencyKey, IntentId, Money, RegisterId, TenantId, TenderKind,
};
use commerce_sqlite::{SCHEMA_VERSION, SqliteStores};
use time::{Duration, OffsetDateTime};

use common::TempDb;

async fn two_sets(db: &TempDb) -> (SqliteStores, SqliteStores) {
    let a = SqliteStores::open(db.path()).await.expect("open a");
    let b = SqliteStores::open(db.path()).await.expect("open b");
    (a, b)
}

fn pick(n: usize, a: &StoreSet, b: &StoreSet) -> StoreSet {
    if n.is_multiple_of(2) { a.clone() } else { b.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn begin_on_two_store_sets_starts_exactly_once() {
    let db = TempDb::new("race-begin");
    let (a, b) = two_sets(&db).await;
    let (a, b) = (a.store_set(), b.store_set());
    let tenant = TenantId::new("acme").expect("tenant");
    let key = IdempotencyKey::new("race-key").expect("key");
    let now = OffsetDateTime::now_utc();
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let (set, tenant, key) = (pick(n, &a, &b), tenant.clone(), key.clone());
            tokio::spawn(async move {
                let claim = IdempotencyClaim::new("authorize", "f", now, now + Duration::minutes(1));
                set.idempotency.begin(&tenant, &key, claim).await
            })
        })
        .collect();
    let mut started = 0;
    for task in tasks {
        match task.await.expect("join").expect("begin") {
            IdempotencyBegin::Started { recovered: false } => started += 1,
            IdempotencyBegin::InProgress => {}
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!(started, 1, "{started} of 32 concurrent begins across two store sets started");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn webhook_record_on_two_store_sets_is_new_exactly_once() {
    let db = TempDb::new("race-webhook");
    let (a, b) = two_sets(&db).await;
    let (a, b) = (a.store_set(), b.store_set());
    let now = OffsetDateTime::now_utc();
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let set = pick(n, &a, &b);
            tokio::spawn(async move {
                set.webhooks.record(&TenantId::new("acme").expect("tenant"), "stripe", "evt_race", now).await
            })
        })
        .collect();
    let mut fresh = 0;
    for task in tasks {
        if task.await.expect("join").expect("record") {
            fresh += 1;
        }
    }
    assert_eq!(fresh, 1, "{fresh} of 32 concurrent records across two store sets were new");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn intent_updates_on_two_store_sets_let_exactly_one_win() {
    let db = TempDb::new("race-update");
    let (a, b) = two_sets(&db).await;
    let (a, b) = (a.store_set(), b.store_set());
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
    let created = PaymentIntent::new(
        IntentId::new("pi_race").expect("id"),
        TenantId::new("acme").expect("tenant"),
        ChannelId::new("web").expect("channel"),
        TenderKind::Card,
        Money::from_minor(500, Currency::EUR),
        "memory",
        "order",
        now,
    );
    a.intents
        .create(created.clone(), IntentEvent::new(1, now, "create", IntentStatus::RequiresAuthorization))
        .await
        .expect("create");
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let set = pick(n, &a, &b);
            let mut next = created.clone();
            next.version = 2;
            next.status = IntentStatus::Authorized;
            next.reference = format!("writer-{n}");
            tokio::spawn(async move {
                set.intents.update(next, 1, IntentEvent::new(2, now, "authorize", IntentStatus::Authorized)).await
            })
        })
        .collect();
    let mut wins = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(()) => wins += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::Conflict, "a losing update failed with {e}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(b.intents.events(&created.tenant, &created.id).await.expect("events").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_opens_of_a_new_file_migrate_it_once() {
    let db = TempDb::new("race-open");
    let path = db.path().to_path_buf();
    let other = path.clone();
    let first = tokio::spawn(async move { SqliteStores::open(path).await });
    let second = tokio::spawn(async move { SqliteStores::open(other).await });
    let first = first.await.expect("join").expect("first open");
    let second = second.await.expect("join").expect("second open");
    let mut applied = [first.applied_migrations().to_vec(), second.applied_migrations().to_vec()];
    applied.sort();
    assert_eq!(applied, [vec![], (1..=SCHEMA_VERSION).collect::<Vec<u32>>()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_enqueues_on_two_store_sets_never_exceed_the_bound() {
    let db = TempDb::new("race-offline");
    let (a, b) = two_sets(&db).await;
    let (a, b) = (a.store_set(), b.store_set());
    let tenant = TenantId::new("acme").expect("tenant");
    let now = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time");
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let set = pick(n, &a, &b);
            let payment = TerminalPaymentRequest::new(
                "ped-1",
                RegisterId::new("till-1").expect("register"),
                Money::from_minor(1_000, Currency::EUR),
                format!("sale-{n}"),
                IdempotencyKey::new(format!("offline-{n}")).expect("key"),
            );
            let card = OfflineCardRead::new(Some("visa".to_owned()), EntryMode::Chip, format!("enc-{n}"));
            let entry = OfflineEntry::new(tenant.clone(), ChannelId::new("shop").expect("channel"), payment, card, now);
            tokio::spawn(async move { set.offline_queue.enqueue(entry, 7).await })
        })
        .collect();
    let mut queued = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(Enqueued::Queued { .. }) => queued += 1,
            Ok(other) => panic!("unexpected outcome {other:?}"),
            Err(e) => assert_eq!(e.kind(), ErrorKind::InvalidState, "a refused enqueue failed with {e}"),
        }
    }
    assert_eq!(queued, 7, "{queued} of 32 concurrent enqueues across two store sets were queued; the bound is 7");
    assert_eq!(a.offline_queue.pending_count(&tenant, "ped-1").await.expect("count"), 7);
    assert_eq!(b.offline_queue.pending(&tenant, "ped-1", 100).await.expect("pending").len(), 7);
}
