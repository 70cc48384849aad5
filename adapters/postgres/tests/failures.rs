//! Failures a caller must be able to tell apart: no answer in time (`Unavailable` when nothing can have been
//! written, `OutcomeUnknown` when a write was sent, and indeed it may still be applied afterwards), and stored
//! rows that do not parse (`Unexpected`, naming table, key and column; never a panic).

mod common;

use std::time::Duration as StdDuration;

use commerce_ports::stores::{IdempotencyBegin, IdempotencyClaim, IntentEvent, IntentStatus, PaymentIntent};
use commerce_ports::{
    ChannelId, Currency, ErrorKind, IdempotencyKey, IntentId, Money, RetryClass, TenantId, TenderKind,
};
use commerce_postgres::{PostgresOptions, PostgresStores};
use time::{Duration, OffsetDateTime};

const TIMEOUT: StdDuration = StdDuration::from_millis(300);

async fn impatient(url: &str, schema: &str) -> PostgresStores {
    let options = PostgresOptions::new().with_schema(schema).with_operation_timeout(TIMEOUT);
    PostgresStores::connect(url, options).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sent_write_without_an_answer_is_outcome_unknown() {
    common::on_fresh_schema("a_sent_write_without_an_answer_is_outcome_unknown", |url, schema| async move {
        let set = impatient(&url, &schema).await.store_set();
        let (tenant, key) = (TenantId::new("acme").unwrap(), IdempotencyKey::new("k-1").unwrap());
        let now = OffsetDateTime::now_utc();
        let claim = IdempotencyClaim::new("capture", "f", now, now + Duration::minutes(1));
        assert_eq!(
            set.idempotency.begin(&tenant, &key, claim).await.unwrap(),
            IdempotencyBegin::Started { recovered: false }
        );
        // Another session holds the row, so the UPDATE is sent but gets no answer in time.
        let mut raw = common::raw(&url).await;
        let lock = raw.transaction().await.unwrap();
        lock.execute(
            &format!("SELECT 1 FROM \"{schema}\".idempotency_records WHERE tenant = 'acme' AND key = 'k-1' FOR UPDATE"),
            &[],
        )
        .await
        .unwrap();
        let e = set.idempotency.complete(&tenant, &key, b"done".to_vec()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutcomeUnknown, "{e}");
        assert_eq!(e.retry(), RetryClass::SameKeyOnly);
        lock.rollback().await.unwrap();
        // The statement was sent, so it may or may not have been applied (the server's statement_timeout
        // usually cancels it first); either way the store keeps serving and the record is consistent.
        let record = set.idempotency.get(&tenant, &key).await.unwrap().expect("record");
        assert!(matches!(record.response.as_deref(), None | Some(b"done")), "{record:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_without_an_answer_before_commit_is_unavailable_and_rolled_back() {
    common::on_fresh_schema(
        "a_transaction_without_an_answer_before_commit_is_unavailable_and_rolled_back",
        |url, schema| async move {
            let set = impatient(&url, &schema).await.store_set();
            let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
            let created = PaymentIntent::new(
                IntentId::new("pi_t").unwrap(),
                TenantId::new("acme").unwrap(),
                ChannelId::new("web").unwrap(),
                TenderKind::Card,
                Money::from_minor(500, Currency::JPY),
                "stripe",
                "order-9",
                now,
            );
            let first = IntentEvent::new(1, now, "create", IntentStatus::RequiresAuthorization);
            set.intents.create(created.clone(), first).await.unwrap();
            let next = |reference: &str| {
                let mut next = created.clone();
                next.version = 2;
                next.status = IntentStatus::Voided;
                next.reference = reference.to_owned();
                (next, IntentEvent::new(2, now, "void", IntentStatus::Voided))
            };
            let mut raw = common::raw(&url).await;
            let lock = raw.transaction().await.unwrap();
            lock.execute(&format!("SELECT 1 FROM \"{schema}\".payment_intents WHERE id = 'pi_t' FOR UPDATE"), &[])
                .await
                .unwrap();
            let (timed_out, event) = next("timed-out");
            let e = set.intents.update(timed_out, 1, event).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
            lock.rollback().await.unwrap();
            // The abandoned transaction rolls back: a new update from version 1 wins.
            let (winner, event) = next("winner");
            set.intents.update(winner, 1, event).await.expect("update after the rollback");
            let stored = set.intents.get(&created.tenant, &created.id).await.unwrap();
            assert_eq!((stored.version, stored.reference.as_str()), (2, "winner"));
            assert_eq!(set.intents.events(&created.tenant, &created.id).await.unwrap().len(), 2);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_does_not_parse_is_unexpected_and_named() {
    common::on_fresh_schema("a_row_that_does_not_parse_is_unexpected_and_named", |url, schema| async move {
        let set = impatient(&url, &schema).await.store_set();
        let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
        let intent = PaymentIntent::new(
            IntentId::new("pi_bad").unwrap(),
            TenantId::new("acme").unwrap(),
            ChannelId::new("web").unwrap(),
            TenderKind::Card,
            Money::from_minor(100, Currency::EUR),
            "stripe",
            "order-1",
            now,
        );
        let first = IntentEvent::new(1, now, "create", IntentStatus::RequiresAuthorization);
        set.intents.create(intent.clone(), first).await.unwrap();
        let raw = common::raw(&url).await;
        for (column, value) in [("status", "'teleported'"), ("currency", "'XXX1'"), ("version", "-1")] {
            raw.batch_execute(&format!(
                "ALTER TABLE \"{schema}\".payment_intents DROP CONSTRAINT IF EXISTS payment_intents_version_check; \
                 UPDATE \"{schema}\".payment_intents SET {column} = {value} WHERE id = 'pi_bad'"
            ))
            .await
            .unwrap_or_else(|e| panic!("corrupting {column}: {e}"));
            let e = set.intents.get(&intent.tenant, &intent.id).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Unexpected, "{e}");
            let message = e.message();
            assert!(message.contains("`payment_intents`") && message.contains("pi_bad"), "{message}");
            assert!(message.contains(&format!("`{column}`")), "{message}");
            raw.batch_execute(&format!(
                "UPDATE \"{schema}\".payment_intents SET status = 'requires_authorization', currency = 'EUR', \
                 version = 1 WHERE id = 'pi_bad'"
            ))
            .await
            .unwrap();
        }
        assert_eq!(set.intents.get(&intent.tenant, &intent.id).await.unwrap(), intent);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_connection_is_discarded_and_the_server_stops_its_statement() {
    common::on_fresh_schema("a_timed_out_connection_is_discarded", |url, schema| async move {
        let options = PostgresOptions::new().with_schema(&schema).with_operation_timeout(TIMEOUT).with_pool_size(1);
        let set = PostgresStores::connect(&url, options).await.expect("connect").store_set();
        let tenant = TenantId::new("acme").unwrap();
        let now = OffsetDateTime::now_utc();
        // Another session locks the table, so the INSERT is sent and waits past the operation timeout.
        let mut raw = common::raw(&url).await;
        let lock = raw.transaction().await.unwrap();
        lock.batch_execute(&format!("LOCK TABLE \"{schema}\".webhook_events IN ACCESS EXCLUSIVE MODE")).await.unwrap();
        let e = set.webhooks.record(&tenant, "stripe", "evt_slow", now).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::OutcomeUnknown, "{e}");
        // The waiting statement ends on the server (statement_timeout, and its connection is closed) while the
        // lock is still held: nothing of this pool still waits on the table.
        // Watched from a third session: inside a transaction, pg_stat_activity is a snapshot.
        let watcher = common::raw(&url).await;
        let mut waiting = 1;
        for _ in 0..50 {
            let row = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                     WHERE application_name = 'commerce-postgres' AND state = 'active'
                       AND query LIKE '%' || $1 || '%webhook_events%' AND pid <> pg_backend_pid()",
                    &[&schema],
                )
                .await
                .unwrap();
            waiting = row.get::<_, i64>(0);
            if waiting == 0 {
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        assert_eq!(waiting, 0, "a timed-out statement still runs on the server");
        let old: Vec<i32> = watcher
            .query(
                "SELECT pid FROM pg_stat_activity
                 WHERE application_name = 'commerce-postgres' AND query LIKE '%' || $1 || '%webhook_events%'",
                &[&schema],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(old.len(), 1, "the timed-out connection's backend: {old:?}");
        lock.rollback().await.unwrap();
        // The one-connection pool still serves, on a fresh connection: the timed-out one is discarded.
        assert!(set.webhooks.record(&tenant, "stripe", "evt_next", now).await.unwrap());
        let mut gone = false;
        for _ in 0..50 {
            let row =
                watcher.query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&old[0]]).await.unwrap();
            if row.get::<_, i64>(0) == 0 {
                gone = true;
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        assert!(gone, "the timed-out connection was recycled instead of discarded");
        assert!(!set.webhooks.contains(&tenant, "stripe", "evt_slow").await.unwrap());
    })
    .await;
}
