//! Several service instances (separate pools on one schema) racing on the same keys: the database, not a
//! process, decides the single winner.

mod common;

use std::sync::Arc;

use commerce_ports::replication::{Change, Direction, Stream};
use commerce_ports::stores::{
    DomainClaim, IdempotencyBegin, IdempotencyClaim, IntentEvent, IntentStatus, PaymentIntent, StoreSet,
};
use commerce_ports::{
    ChannelId, Currency, DatasetId, ErrorKind, IdempotencyKey, IntentId, Money, StoreError, StoreId, TenantId,
    TenderKind,
};
use time::{Duration, OffsetDateTime};
use tokio::task::JoinHandle;

/// Two instances on one schema.
async fn two_instances(url: &str, schema: &str) -> [StoreSet; 2] {
    let (a, b) = tokio::join!(common::instance(url, schema), common::instance(url, schema));
    [a.store_set(), b.store_set()]
}

fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// Runs `n` tasks, alternating between the instances, and collects their results.
async fn race<T, F, Fut>(sets: &[StoreSet; 2], n: usize, task: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(StoreSet, usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let handles: Vec<JoinHandle<T>> = (0..n)
        .map(|i| {
            let fut = task(sets[i % 2].clone(), i);
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for h in handles {
        results.push(h.await.expect("task"));
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_begin_across_two_instances_starts_once() {
    common::on_fresh_schema("concurrent_begin_across_two_instances_starts_once", |url, schema| async move {
        let sets = two_instances(&url, &schema).await;
        let (tenant, key) = (TenantId::new("acme").unwrap(), IdempotencyKey::new("order-1-authorize").unwrap());
        let now = now();
        let results = race(&sets, 32, |set, _| {
            let (tenant, key) = (tenant.clone(), key.clone());
            async move {
                let claim = IdempotencyClaim::new("authorize", "f1", now, now + Duration::minutes(1));
                set.idempotency.begin(&tenant, &key, claim).await
            }
        })
        .await;
        let mut started = 0;
        for r in results {
            match r.expect("begin") {
                IdempotencyBegin::Started { recovered: false } => started += 1,
                IdempotencyBegin::InProgress => {}
                other => panic!("unexpected begin result {other:?}"),
            }
        }
        assert_eq!(started, 1, "{started} of 32 concurrent callers on two instances started");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expired_lease_is_taken_over_by_exactly_one_instance() {
    common::on_fresh_schema("expired_lease_is_taken_over_by_exactly_one_instance", |url, schema| async move {
        let sets = two_instances(&url, &schema).await;
        let (tenant, key) = (TenantId::new("acme").unwrap(), IdempotencyKey::new("order-2-capture").unwrap());
        let now = now();
        let first = IdempotencyClaim::new("capture", "f", now, now + Duration::seconds(30));
        assert_eq!(
            sets[0].idempotency.begin(&tenant, &key, first).await.unwrap(),
            IdempotencyBegin::Started { recovered: false }
        );
        let later = now + Duration::seconds(31);
        let results = race(&sets, 16, |set, _| {
            let (tenant, key) = (tenant.clone(), key.clone());
            async move {
                let claim = IdempotencyClaim::new("capture", "f", later, later + Duration::seconds(30));
                set.idempotency.begin(&tenant, &key, claim).await
            }
        })
        .await;
        let recovered = results
            .into_iter()
            .map(|r| r.expect("begin"))
            .filter(|r| match r {
                IdempotencyBegin::Started { recovered: true } => true,
                IdempotencyBegin::InProgress => false,
                other => panic!("unexpected begin result {other:?}"),
            })
            .count();
        assert_eq!(recovered, 1, "{recovered} of 16 callers took over one expired lease");
        let record = sets[1].idempotency.get(&tenant, &key).await.unwrap().expect("record");
        assert_eq!(record.lease_until, later + Duration::seconds(30));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_intent_updates_across_two_instances_one_wins() {
    common::on_fresh_schema("concurrent_intent_updates_across_two_instances_one_wins", |url, schema| async move {
        let sets = two_instances(&url, &schema).await;
        let now = now();
        let created = PaymentIntent::new(
            IntentId::new("pi_1").unwrap(),
            TenantId::new("acme").unwrap(),
            ChannelId::new("web").unwrap(),
            TenderKind::Card,
            Money::from_minor(12_345, Currency::EUR),
            "stripe",
            "order-7",
            now,
        );
        let first = IntentEvent::new(1, now, "create", IntentStatus::RequiresAuthorization);
        sets[0].intents.create(created.clone(), first).await.unwrap();
        let results = race(&sets, 16, |set, n| {
            let mut next = created.clone();
            async move {
                next.version = 2;
                next.status = IntentStatus::Authorized;
                next.authorized = next.amount;
                next.reference = format!("writer-{n}");
                next.updated_at = now + Duration::seconds(1);
                let event = IntentEvent::new(2, next.updated_at, "authorize", IntentStatus::Authorized)
                    .with_detail(format!("writer {n}"));
                set.intents.update(next, 1, event).await
            }
        })
        .await;
        let wins = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(wins, 1, "{wins} of 16 updates from version 1 succeeded");
        for e in results.into_iter().filter_map(Result::err) {
            assert_eq!(e.kind(), ErrorKind::Conflict, "a losing update failed with {e}");
        }
        let history = sets[1].intents.events(&created.tenant, &created.id).await.unwrap();
        assert_eq!(history.len(), 2, "history: {history:?}");
        let stored = sets[1].intents.get(&created.tenant, &created.id).await.unwrap();
        assert_eq!(stored.version, 2);
        assert_eq!(history[1].detail.as_deref(), Some(format!("writer {}", &stored.reference[7..]).as_str()));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_webhook_records_across_two_instances_one_is_new() {
    common::on_fresh_schema("concurrent_webhook_records_across_two_instances_one_is_new", |url, schema| async move {
        let sets = two_instances(&url, &schema).await;
        let now = now();
        let results = race(&sets, 32, |set, _| async move {
            set.webhooks.record(&TenantId::new("acme").unwrap(), "stripe", "evt_123", now).await
        })
        .await;
        let fresh = results.into_iter().map(|r| r.expect("record")).filter(|new| *new).count();
        assert_eq!(fresh, 1, "{fresh} of 32 concurrent records of one id were new");
        assert!(sets[0].webhooks.contains(&TenantId::new("acme").unwrap(), "stripe", "evt_123").await.unwrap());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_domain_claims_across_two_instances_one_wins() {
    common::on_fresh_schema("concurrent_domain_claims_across_two_instances_one_wins", |url, schema| async move {
        let sets = two_instances(&url, &schema).await;
        let now = now();
        let results = race(&sets, 8, |set, n| async move {
            let claim = DomainClaim::new(
                "shop.example.com",
                TenantId::new(format!("tenant-{n}")).unwrap(),
                ChannelId::new("web").unwrap(),
                format!("token-{n}"),
                now,
            );
            set.domains.create(claim).await
        })
        .await;
        assert_one_winner(results, ErrorKind::AlreadyExists);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_replication_writes_across_two_instances_one_wins() {
    common::on_fresh_schema("concurrent_replication_writes_across_two_instances_one_wins", |url, schema| async move {
        let sets = two_instances(&url, &schema).await;
        let now = now();
        let stream = Stream::new(
            ChannelId::new("store").unwrap(),
            StoreId::new("store-1").unwrap(),
            DatasetId::new("orders").unwrap(),
            Direction::Up,
        );
        let change = move |n: usize, sequence: u64| {
            Change::new(DatasetId::new("orders").unwrap(), sequence, format!("c-{n}"), "order-1", Some(vec![1, 2]), now)
        };
        // Eight different changes want outbox sequence 1: one is appended, the others are refused whole.
        let appends = race(&sets, 8, |set, n| {
            let stream = stream.clone();
            async move { set.replication.outbox_append(&stream, vec![change(n, 1)]).await }
        })
        .await;
        assert_one_winner(appends, ErrorKind::InvalidRequest);
        assert_eq!(sets[1].replication.outbox_pending(&stream, 10).await.unwrap().len(), 1);
        // Sixteen commits from checkpoint 0: one advances it.
        let commits = race(&sets, 16, |set, n| {
            let stream = stream.clone();
            async move { set.replication.inbox_commit(&stream, 0, 1, vec![change(n, 1)]).await.map(drop) }
        })
        .await;
        assert_one_winner(commits, ErrorKind::Conflict);
        assert_eq!(sets[0].replication.checkpoint(&stream).await.unwrap(), 1);
    })
    .await;
}

fn assert_one_winner<T: std::fmt::Debug>(results: Vec<Result<T, StoreError>>, losers: ErrorKind) {
    let n = results.len();
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{wins} of {n} concurrent writes succeeded: {results:?}");
    for e in results.into_iter().filter_map(Result::err) {
        assert_eq!(e.kind(), losers, "a losing write failed with {e}");
    }
}
