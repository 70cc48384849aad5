//! `PostgresStores::ledger`: the claim (key + intent creation + read in one round trip) and the commit (intent
//! update + event + key resolution in one statement), their answers, atomicity, and races between pools.

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use commerce_ports::stores::{
    IdempotencyBegin, IdempotencyClaim, IntentEvent, IntentStatus, IntentUpdate, KeyResolution, PaymentIntent,
    PaymentLedger, StoreSet,
};
use commerce_ports::{
    ChannelId, Currency, ErrorKind, IdempotencyKey, IntentId, Money, StoreError, TenantId, TenderKind,
};
use commerce_postgres::{PostgresOptions, PostgresStores};
use commerce_testkit::conformance::stores::{StoreFixture, run_ledger};
use time::{Duration, OffsetDateTime};

fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

fn tenant() -> TenantId {
    TenantId::new("acme").unwrap()
}

fn key(k: &str) -> IdempotencyKey {
    IdempotencyKey::new(k).unwrap()
}

fn id(i: &str) -> IntentId {
    IntentId::new(i).unwrap()
}

fn claim(operation: &str, fingerprint: &str) -> IdempotencyClaim {
    let now = now();
    IdempotencyClaim::new(operation, fingerprint, now, now + Duration::minutes(5))
}

/// A new intent (version 1) and its first event.
fn new_intent(intent: &str) -> (PaymentIntent, IntentEvent) {
    let at = now();
    let mut created = PaymentIntent::new(
        id(intent),
        tenant(),
        ChannelId::new("web").unwrap(),
        TenderKind::Card,
        Money::from_minor(4250, Currency::EUR),
        "stripe",
        format!("order-{intent}"),
        at,
    );
    created.provider_reference = Some(format!("ref-{intent}"));
    let event = IntentEvent::new(1, at, "create", IntentStatus::RequiresAuthorization)
        .with_amount(Money::from_minor(4250, Currency::EUR))
        .with_data("{\"call\":\"authorize\"}");
    (created, event)
}

/// The update of `intent` to the next version, authorized.
fn authorized(intent: &PaymentIntent, detail: &str) -> IntentUpdate {
    let mut next = intent.clone();
    next.version = intent.version + 1;
    next.status = IntentStatus::Authorized;
    next.authorized = intent.amount;
    next.updated_at = now();
    let event = IntentEvent::new(next.version, next.updated_at, "authorize", IntentStatus::Authorized)
        .with_amount(intent.amount)
        .with_provider_reference("psp-1")
        .with_detail(detail);
    IntentUpdate::new(next, intent.version, event)
}

struct Instance {
    set: StoreSet,
    ledger: Arc<dyn PaymentLedger>,
}

async fn instance(url: &str, schema: &str) -> Instance {
    let stores = common::instance(url, schema).await;
    Instance { set: stores.store_set(), ledger: stores.ledger() }
}

/// Claims `k` for `intent`, creating it; the snapshot must be there.
async fn claim_new(ledger: &dyn PaymentLedger, k: &str, intent: &str) -> commerce_ports::stores::IntentSnapshot {
    let got = ledger.claim(&tenant(), &key(k), claim("capture", "f"), &id(intent), Some(new_intent(intent))).await;
    got.unwrap().intent.expect("intent")
}

/// Claims `k` for an existing `intent`; the snapshot must be there.
async fn claim_existing(ledger: &dyn PaymentLedger, k: &str, intent: &str) -> commerce_ports::stores::IntentSnapshot {
    let got = ledger.claim(&tenant(), &key(k), claim("capture", "f"), &id(intent), None).await;
    got.unwrap().intent.expect("intent")
}

async fn response_of(set: &StoreSet, k: &str) -> Option<Option<Vec<u8>>> {
    set.idempotency.get(&tenant(), &key(k)).await.unwrap().map(|record| record.response)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_conformance_suite_passes() {
    common::on_fresh_schema("the_ledger_conformance_suite_passes", |url, schema| async move {
        let stores = common::instance(&url, &schema).await;
        let set = stores.store_set().with_ledger(stores.ledger());
        run_ledger(&set, &StoreFixture::new()).await.assert_passed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_creates_the_intent_and_its_event_only_when_started() {
    common::on_fresh_schema("claim_creates_the_intent_and_its_event_only_when_started", |url, schema| async move {
        let Instance { set, ledger, .. } = instance(&url, &schema).await;
        let (created, first) = new_intent("pi_1");
        let got = ledger
            .claim(
                &tenant(),
                &key("auth-1"),
                claim("authorize", "f1"),
                &id("pi_1"),
                Some((created.clone(), first.clone())),
            )
            .await
            .unwrap();
        assert_eq!(got.begin, IdempotencyBegin::Started { recovered: false });
        let snapshot = got.intent.expect("created intent");
        assert_eq!(snapshot.intent, created);
        assert_eq!(snapshot.history, vec![first.clone()]);
        assert_eq!(set.intents.get(&tenant(), &id("pi_1")).await.unwrap(), created);
        assert_eq!(set.intents.events(&tenant(), &id("pi_1")).await.unwrap(), vec![first.clone()]);

        // Held key: InProgress, and its `create` is not applied.
        let (other, other_first) = new_intent("pi_2");
        let got = ledger
            .claim(&tenant(), &key("auth-1"), claim("authorize", "f1"), &id("pi_2"), Some((other, other_first)))
            .await
            .unwrap();
        assert_eq!(got.begin, IdempotencyBegin::InProgress);
        assert_eq!(got.intent, None);
        assert_eq!(set.intents.get(&tenant(), &id("pi_2")).await.unwrap_err().kind(), ErrorKind::NotFound);

        // Another key on an existing intent: Started, the intent is read, not created again.
        let (mut again, again_first) = new_intent("pi_1");
        again.reference = "something else".to_owned();
        let got = ledger
            .claim(&tenant(), &key("auth-2"), claim("authorize", "f2"), &id("pi_1"), Some((again, again_first)))
            .await
            .unwrap();
        assert_eq!(got.begin, IdempotencyBegin::Started { recovered: false });
        let snapshot = got.intent.expect("existing intent");
        assert_eq!(snapshot.intent, created);
        assert_eq!(snapshot.history, vec![first]);

        // Without `create`, a missing intent is read as absent (the key is still claimed).
        let got = ledger.claim(&tenant(), &key("cap-9"), claim("capture", "f"), &id("pi_9"), None).await.unwrap();
        assert_eq!(got.begin, IdempotencyBegin::Started { recovered: false });
        assert_eq!(got.intent, None);
        assert_eq!(response_of(&set, "cap-9").await, Some(None));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_rejects_an_inconsistent_create_and_claims_nothing() {
    common::on_fresh_schema("claim_rejects_an_inconsistent_create_and_claims_nothing", |url, schema| async move {
        let Instance { set, ledger, .. } = instance(&url, &schema).await;
        let e = ledger
            .claim(&tenant(), &key("k"), claim("authorize", "f"), &id("pi_x"), Some(new_intent("pi_1")))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
        let (mut v2, first) = new_intent("pi_1");
        v2.version = 2;
        let e = ledger.claim(&tenant(), &key("k"), claim("authorize", "f"), &id("pi_1"), Some((v2, first))).await;
        assert_eq!(e.unwrap_err().kind(), ErrorKind::InvalidRequest);
        let (mut mixed, first) = new_intent("pi_1");
        mixed.captured = Money::from_minor(1, Currency::USD);
        let e = ledger.claim(&tenant(), &key("k"), claim("authorize", "f"), &id("pi_1"), Some((mixed, first))).await;
        assert_eq!(e.unwrap_err().kind(), ErrorKind::InvalidRequest);
        assert_eq!(response_of(&set, "k").await, None, "nothing claimed");
        assert_eq!(set.intents.get(&tenant(), &id("pi_1")).await.unwrap_err().kind(), ErrorKind::NotFound);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_answers_completed_in_progress_and_conflict_like_begin() {
    common::on_fresh_schema("claim_answers_completed_in_progress_and_conflict_like_begin", |url, schema| async move {
        let Instance { set, ledger, .. } = instance(&url, &schema).await;
        let t = tenant();
        let first = ledger.claim(&t, &key("k"), claim("capture", "f"), &id("pi_1"), Some(new_intent("pi_1"))).await;
        assert_eq!(first.unwrap().begin, IdempotencyBegin::Started { recovered: false });
        let held = ledger.claim(&t, &key("k"), claim("capture", "f"), &id("pi_1"), None).await.unwrap();
        assert_eq!((held.begin, held.intent), (IdempotencyBegin::InProgress, None));
        let other = ledger.claim(&t, &key("k"), claim("capture", "other"), &id("pi_1"), None).await.unwrap();
        assert_eq!(other.begin, IdempotencyBegin::Conflict { operation: "capture".to_owned() });
        let other = ledger.claim(&t, &key("k"), claim("refund", "f"), &id("pi_1"), None).await.unwrap();
        assert_eq!(other.begin, IdempotencyBegin::Conflict { operation: "capture".to_owned() });

        ledger.commit(&t, &key("k"), None, KeyResolution::Complete(b"answer".to_vec())).await.unwrap();
        let done = ledger.claim(&t, &key("k"), claim("capture", "f"), &id("pi_1"), None).await.unwrap();
        assert_eq!((done.begin, done.intent), (IdempotencyBegin::Completed(b"answer".to_vec()), None));
        let other = ledger.claim(&t, &key("k"), claim("capture", "other"), &id("pi_1"), None).await.unwrap();
        assert_eq!(other.begin, IdempotencyBegin::Conflict { operation: "capture".to_owned() });

        // An expired lease is taken over (recovered), with the intent read.
        let past = now() - Duration::minutes(10);
        let expired = IdempotencyClaim::new("capture", "g", past, past + Duration::minutes(1));
        let got = ledger.claim(&t, &key("old"), expired, &id("pi_1"), None).await.unwrap();
        assert_eq!(got.begin, IdempotencyBegin::Started { recovered: false });
        let got = ledger.claim(&t, &key("old"), claim("capture", "g"), &id("pi_1"), None).await.unwrap();
        assert_eq!(got.begin, IdempotencyBegin::Started { recovered: true });
        assert_eq!(got.intent.expect("intent").intent.id, id("pi_1"));
        assert_eq!(response_of(&set, "old").await, Some(None));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_applies_the_update_and_completes_the_key_together() {
    common::on_fresh_schema("commit_applies_the_update_and_completes_the_key_together", |url, schema| async move {
        let Instance { set, ledger, .. } = instance(&url, &schema).await;
        let t = tenant();
        let got = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), Some(new_intent("pi_1"))).await;
        let snapshot = got.unwrap().intent.expect("intent");
        let update = authorized(&snapshot.intent, "ok");
        ledger.commit(&t, &key("k"), Some(update.clone()), KeyResolution::Complete(b"done".to_vec())).await.unwrap();
        assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap(), update.intent);
        let events = set.intents.events(&t, &id("pi_1")).await.unwrap();
        assert_eq!(events, vec![snapshot.history[0].clone(), update.event.clone()]);
        assert_eq!(response_of(&set, "k").await, Some(Some(b"done".to_vec())));

        // The next claim reads the new version and the whole history.
        let got = ledger.claim(&t, &key("k2"), claim("capture", "f"), &id("pi_1"), None).await.unwrap();
        let snapshot = got.intent.expect("intent");
        assert_eq!(snapshot.intent, update.intent);
        assert_eq!(snapshot.history, events);

        // Inconsistent versions are rejected before anything is sent.
        let mut bad = authorized(&update.intent, "bad");
        bad.event.sequence = 7;
        let e = ledger.commit(&t, &key("k2"), Some(bad), KeyResolution::Complete(vec![])).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{e}");
        assert_eq!(response_of(&set, "k2").await, Some(None));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_with_a_stale_version_is_conflict_and_leaves_the_key_open() {
    common::on_fresh_schema(
        "commit_with_a_stale_version_is_conflict_and_leaves_the_key_open",
        |url, schema| async move {
            let Instance { set, ledger, .. } = instance(&url, &schema).await;
            let t = tenant();
            let got = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), Some(new_intent("pi_1"))).await;
            let snapshot = got.unwrap().intent.expect("intent");
            // A webhook moves the intent on meanwhile.
            let webhook = authorized(&snapshot.intent, "webhook");
            set.intents.update(webhook.intent.clone(), 1, webhook.event.clone()).await.unwrap();

            let stale = authorized(&snapshot.intent, "late");
            for resolution in [KeyResolution::Complete(b"x".to_vec()), KeyResolution::Release] {
                let e = ledger.commit(&t, &key("k"), Some(stale.clone()), resolution).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                assert!(e.to_string().contains("version 2"), "{e}");
                assert_eq!(response_of(&set, "k").await, Some(None), "the key stays uncompleted");
                assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap(), webhook.intent);
                assert_eq!(set.intents.events(&t, &id("pi_1")).await.unwrap().len(), 2);
            }

            // A missing intent is NotFound, and the key stays open too.
            let (ghost, _) = new_intent("pi_ghost");
            let e = ledger
                .commit(&t, &key("k"), Some(authorized(&ghost, "x")), KeyResolution::Complete(vec![]))
                .await
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
            assert_eq!(response_of(&set, "k").await, Some(None));

            // Retried on the current version, it goes through.
            let current = authorized(&webhook.intent, "retry");
            ledger.commit(&t, &key("k"), Some(current.clone()), KeyResolution::Complete(b"ok".to_vec())).await.unwrap();
            assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap(), current.intent);
            assert_eq!(response_of(&set, "k").await, Some(Some(b"ok".to_vec())));
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_on_a_completed_or_missing_key_changes_nothing() {
    common::on_fresh_schema("commit_on_a_completed_or_missing_key_changes_nothing", |url, schema| async move {
        let Instance { set, ledger, .. } = instance(&url, &schema).await;
        let t = tenant();
        let got = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), Some(new_intent("pi_1"))).await;
        let snapshot = got.unwrap().intent.expect("intent");
        set.idempotency.complete(&t, &key("k"), b"first".to_vec()).await.unwrap();

        let update = authorized(&snapshot.intent, "x");
        for resolution in [KeyResolution::Complete(b"second".to_vec()), KeyResolution::Release] {
            let e = ledger.commit(&t, &key("k"), Some(update.clone()), resolution.clone()).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidState, "{e}");
            let e = ledger.commit(&t, &key("k"), None, resolution).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidState, "{e}");
        }
        assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap(), snapshot.intent, "the intent is unchanged");
        assert_eq!(set.intents.events(&t, &id("pi_1")).await.unwrap().len(), 1);
        assert_eq!(response_of(&set, "k").await, Some(Some(b"first".to_vec())));

        let e = ledger.commit(&t, &key("nope"), Some(update.clone()), KeyResolution::Complete(vec![])).await;
        assert_eq!(e.unwrap_err().kind(), ErrorKind::NotFound);
        let e = ledger.commit(&t, &key("nope"), None, KeyResolution::Complete(vec![])).await;
        assert_eq!(e.unwrap_err().kind(), ErrorKind::NotFound);
        assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap(), snapshot.intent);
        assert_eq!(response_of(&set, "nope").await, None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_can_release_the_key_with_or_without_an_update() {
    common::on_fresh_schema("commit_can_release_the_key_with_or_without_an_update", |url, schema| async move {
        let Instance { set, ledger, .. } = instance(&url, &schema).await;
        let t = tenant();
        let got = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), Some(new_intent("pi_1"))).await;
        let snapshot = got.unwrap().intent.expect("intent");
        let update = authorized(&snapshot.intent, "pending");
        ledger.commit(&t, &key("k"), Some(update.clone()), KeyResolution::Release).await.unwrap();
        assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap(), update.intent);
        assert_eq!(response_of(&set, "k").await, None, "released");

        // Released: the same key starts again and sees the update.
        let again = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), None).await.unwrap();
        assert_eq!(again.begin, IdempotencyBegin::Started { recovered: false });
        assert_eq!(again.intent.expect("intent").intent, update.intent);
        ledger.commit(&t, &key("k"), None, KeyResolution::Release).await.unwrap();
        assert_eq!(response_of(&set, "k").await, None);
        // Releasing a key that is not there is fine, as `release` is.
        ledger.commit(&t, &key("k"), None, KeyResolution::Release).await.unwrap();
    })
    .await;
}

/// Two pools on one schema.
async fn two_instances(url: &str, schema: &str) -> [Instance; 2] {
    let (a, b) = tokio::join!(instance(url, schema), instance(url, schema));
    [a, b]
}

/// Commits `a` on the first instance and `b` on the second at the same moment (each completing its key with
/// the key's own bytes) and returns both answers.
async fn race_commits(
    instances: &[Instance],
    a: (&String, &IntentUpdate),
    b: (&String, &IntentUpdate),
) -> (Result<(), StoreError>, Result<(), StoreError>) {
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let spawn = |ledger: Arc<dyn PaymentLedger>, k: String, update: IntentUpdate| {
        let barrier = Arc::clone(&barrier);
        tokio::spawn(async move {
            barrier.wait().await;
            ledger.commit(&tenant(), &key(&k), Some(update), KeyResolution::Complete(k.clone().into_bytes())).await
        })
    };
    let ha = spawn(Arc::clone(&instances[0].ledger), a.0.clone(), a.1.clone());
    let hb = spawn(Arc::clone(&instances[1].ledger), b.0.clone(), b.1.clone());
    (ha.await.expect("first commit task"), hb.await.expect("second commit task"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_racing_on_one_key_across_two_pools_start_once() {
    common::on_fresh_schema("claims_racing_on_one_key_across_two_pools_start_once", |url, schema| async move {
        let instances = two_instances(&url, &schema).await;
        for round in 0..5 {
            let k = format!("k-{round}");
            let intent = format!("pi_{round}");
            let barrier = Arc::new(tokio::sync::Barrier::new(16));
            let handles: Vec<_> = (0..16)
                .map(|i| {
                    let ledger = Arc::clone(&instances[i % 2].ledger);
                    let (barrier, k, intent) = (Arc::clone(&barrier), k.clone(), intent.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        ledger
                            .claim(
                                &tenant(),
                                &key(&k),
                                claim("authorize", "f"),
                                &id(&intent),
                                Some(new_intent(&intent)),
                            )
                            .await
                    })
                })
                .collect();
            let mut started = 0;
            for handle in handles {
                let got = handle.await.unwrap().unwrap();
                match got.begin {
                    IdempotencyBegin::Started { recovered: false } => {
                        started += 1;
                        assert_eq!(got.intent.expect("intent").history.len(), 1);
                    }
                    IdempotencyBegin::InProgress => assert_eq!(got.intent, None),
                    other => panic!("unexpected answer {other:?}"),
                }
            }
            assert_eq!(started, 1, "round {round}");
            let events = instances[0].set.intents.events(&tenant(), &id(&intent)).await.unwrap();
            assert_eq!(events.len(), 1);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_racing_on_one_intent_from_two_keys_one_wins_and_nothing_is_half_applied() {
    common::on_fresh_schema(
        "commits_racing_on_one_intent_from_two_keys_one_wins_and_nothing_is_half_applied",
        |url, schema| async move {
            let instances = two_instances(&url, &schema).await;
            let t = tenant();
            for round in 0..10 {
                let intent = format!("pi_{round}");
                let (ka, kb) = (format!("a-{round}"), format!("b-{round}"));
                let a = claim_new(&*instances[0].ledger, &ka, &intent).await;
                let b = claim_existing(&*instances[1].ledger, &kb, &intent).await;
                assert_eq!(a, b);
                let (ua, ub) = (authorized(&a.intent, "a"), authorized(&b.intent, "b"));
                let (ra, rb) = race_commits(&instances, (&ka, &ua), (&kb, &ub)).await;
                let (winner, loser, e) = match (&ra, &rb) {
                    (Ok(()), Err(e)) => (&ka, &kb, e),
                    (Err(e), Ok(())) => (&kb, &ka, e),
                    other => panic!("expected one winner, got {other:?}"),
                };
                assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
                let set = &instances[0].set;
                let stored = set.intents.get(&t, &id(&intent)).await.unwrap();
                let events = set.intents.events(&t, &id(&intent)).await.unwrap();
                assert_eq!(events.len(), 2);
                let winning = if winner == &ka { &ua } else { &ub };
                assert_eq!(stored, winning.intent);
                assert_eq!(events[1], winning.event);
                assert_eq!(response_of(set, winner).await, Some(Some(winner.clone().into_bytes())));
                assert_eq!(response_of(set, loser).await, Some(None), "the loser's key stays uncompleted");
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_commits_of_one_key_resolve_it_once() {
    common::on_fresh_schema("racing_commits_of_one_key_resolve_it_once", |url, schema| async move {
        let instances = two_instances(&url, &schema).await;
        let t = tenant();
        for round in 0..10 {
            let intent = format!("pi_{round}");
            let k = format!("k-{round}");
            let snapshot = claim_new(&*instances[0].ledger, &k, &intent).await;
            // The same key committed twice at once, once on the intent and once on a copy at another version.
            let (update, mut other) = (authorized(&snapshot.intent, "a"), authorized(&snapshot.intent, "b"));
            other.event.detail = Some("b".to_owned());
            let barrier = Arc::new(tokio::sync::Barrier::new(2));
            let handles: Vec<_> = [(0, update.clone(), b"a".to_vec()), (1, other.clone(), b"b".to_vec())]
                .into_iter()
                .map(|(i, update, response)| {
                    let (ledger, barrier, k) = (Arc::clone(&instances[i].ledger), Arc::clone(&barrier), k.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        ledger.commit(&tenant(), &key(&k), Some(update), KeyResolution::Complete(response)).await
                    })
                })
                .collect();
            let mut results = Vec::new();
            for handle in handles {
                results.push(handle.await.unwrap());
            }
            let oks = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(oks, 1, "{results:?}");
            for e in results.iter().filter_map(|r| r.as_ref().err()) {
                assert!(matches!(e.kind(), ErrorKind::InvalidState | ErrorKind::Conflict), "{e}");
            }
            let set = &instances[1].set;
            let events = set.intents.events(&t, &id(&intent)).await.unwrap();
            assert_eq!(events.len(), 2);
            let response = response_of(set, &k).await.flatten().expect("completed");
            let expected_detail = if response == b"a" { "a" } else { "b" };
            assert_eq!(events[1].detail.as_deref(), Some(expected_detail), "the key's answer matches the update");
        }
    })
    .await;
}

const TIMEOUT: StdDuration = StdDuration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_or_claim_without_an_answer_is_outcome_unknown_and_the_pool_recovers() {
    common::on_fresh_schema(
        "a_commit_or_claim_without_an_answer_is_outcome_unknown_and_the_pool_recovers",
        |url, schema| async move {
            let options = PostgresOptions::new().with_schema(&schema).with_operation_timeout(TIMEOUT).with_pool_size(1);
            let stores = PostgresStores::connect(&url, options).await.expect("connect");
            let (set, ledger) = (stores.store_set(), stores.ledger());
            let t = tenant();
            let got = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), Some(new_intent("pi_1"))).await;
            let snapshot = got.unwrap().intent.expect("intent");

            // Another session holds the key row: the commit is sent but gets no answer in time.
            let mut raw = common::raw(&url).await;
            let lock = raw.transaction().await.unwrap();
            lock.execute(
                &format!(
                    "SELECT 1 FROM \"{schema}\".idempotency_records WHERE tenant = 'acme' AND key = 'k' FOR UPDATE"
                ),
                &[],
            )
            .await
            .unwrap();
            let update = authorized(&snapshot.intent, "x");
            let e = ledger.commit(&t, &key("k"), Some(update.clone()), KeyResolution::Complete(b"r".to_vec())).await;
            assert_eq!(e.unwrap_err().kind(), ErrorKind::OutcomeUnknown);
            let e = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), None).await.unwrap_err();
            assert_eq!(e.kind(), ErrorKind::OutcomeUnknown, "{e}");
            lock.rollback().await.unwrap();

            // The timed-out connections were discarded; the (single-connection) pool serves again, and whatever
            // happened, intent and key agree.
            tokio::time::sleep(StdDuration::from_millis(200)).await;
            let stored = set.intents.get(&t, &id("pi_1")).await.unwrap();
            let response = response_of(&set, "k").await.expect("record");
            match stored.version {
                1 => assert_eq!(response, None),
                2 => assert_eq!(response, Some(b"r".to_vec())),
                v => panic!("version {v}"),
            }
            let again = ledger.claim(&t, &key("k2"), claim("capture", "f"), &id("pi_1"), None).await.unwrap();
            assert_eq!(again.intent.expect("intent").intent, stored);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_key_whose_intent_does_not_parse_is_given_back() {
    common::on_fresh_schema("a_claimed_key_whose_intent_does_not_parse_is_given_back", |url, schema| async move {
        let Instance { set, ledger, .. } = instance(&url, &schema).await;
        let t = tenant();
        claim_new(&*ledger, "auth", "pi_1").await;
        let raw = common::raw(&url).await;
        raw.execute(&format!("UPDATE \"{schema}\".payment_intents SET status = 'teleported' WHERE id = 'pi_1'"), &[])
            .await
            .unwrap();
        let e = ledger.claim(&t, &key("cap"), claim("capture", "f"), &id("pi_1"), None).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unexpected, "{e}");
        assert!(e.to_string().contains("status"), "{e}");
        assert_eq!(response_of(&set, "cap").await, None, "the key was released");
    })
    .await;
}

/// The creation of `intent` together with its authorization (version 2), in one commit.
fn created_authorized(intent: &str, detail: &str) -> IntentUpdate {
    let (created, first) = new_intent(intent);
    let update = authorized(&created, detail);
    IntentUpdate::creating(created, first, update.intent, update.event)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_creating_the_intent_stores_it_with_both_events_and_completes_the_key() {
    common::on_fresh_schema(
        "commit_creating_the_intent_stores_it_with_both_events_and_completes_the_key",
        |url, schema| async move {
            let Instance { set, ledger, .. } = instance(&url, &schema).await;
            let t = tenant();
            let got = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), None).await.unwrap();
            assert_eq!((got.begin, got.intent), (IdempotencyBegin::Started { recovered: false }, None));
            assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap_err().kind(), ErrorKind::NotFound);

            let update = created_authorized("pi_1", "ok");
            let (_, first) = update.created.clone().expect("creation");
            ledger
                .commit(&t, &key("k"), Some(update.clone()), KeyResolution::Complete(b"done".to_vec()))
                .await
                .unwrap();
            let stored = set.intents.get(&t, &id("pi_1")).await.unwrap();
            assert_eq!(stored, update.intent);
            assert_eq!(stored.version, 2);
            assert_eq!(set.intents.events(&t, &id("pi_1")).await.unwrap(), vec![first.clone(), update.event.clone()]);
            assert_eq!(response_of(&set, "k").await, Some(Some(b"done".to_vec())));

            // The key replays its response; another key reads the intent with its whole history.
            let replay = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), None).await.unwrap();
            assert_eq!((replay.begin, replay.intent), (IdempotencyBegin::Completed(b"done".to_vec()), None));
            let snapshot = claim_existing(&*ledger, "k2", "pi_1").await;
            assert_eq!(snapshot.intent, update.intent);
            assert_eq!(snapshot.history, vec![first, update.event]);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_creating_an_existing_intent_is_already_exists_and_changes_nothing() {
    common::on_fresh_schema(
        "commit_creating_an_existing_intent_is_already_exists_and_changes_nothing",
        |url, schema| async move {
            let Instance { set, ledger, .. } = instance(&url, &schema).await;
            let t = tenant();
            let existing = claim_new(&*ledger, "first", "pi_1").await;
            ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), None).await.unwrap();

            let mut update = created_authorized("pi_1", "late");
            update.event.detail = Some("late".to_owned());
            for resolution in [KeyResolution::Complete(b"x".to_vec()), KeyResolution::Release] {
                let e = ledger.commit(&t, &key("k"), Some(update.clone()), resolution).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
                assert!(e.to_string().contains("pi_1") && e.to_string().contains("exists already"), "{e}");
                assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap(), existing.intent, "the intent is unchanged");
                assert_eq!(set.intents.events(&t, &id("pi_1")).await.unwrap(), existing.history);
                assert_eq!(response_of(&set, "k").await, Some(None), "the key is still held");
            }
            let held = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), None).await.unwrap();
            assert_eq!(held.begin, IdempotencyBegin::InProgress);

            // The held key can still be given back.
            ledger.commit(&t, &key("k"), None, KeyResolution::Release).await.unwrap();
            assert_eq!(response_of(&set, "k").await, None);
            // Under a completed or missing key, the key's error comes first, as for other commits.
            let e = ledger.commit(&t, &key("k"), Some(update.clone()), KeyResolution::Complete(vec![])).await;
            assert_eq!(e.unwrap_err().kind(), ErrorKind::NotFound);
            set.idempotency.complete(&t, &key("first"), b"r".to_vec()).await.unwrap();
            let e =
                ledger.commit(&t, &key("first"), Some(created_authorized("pi_2", "x")), KeyResolution::Release).await;
            assert_eq!(e.unwrap_err().kind(), ErrorKind::InvalidState);
            assert_eq!(set.intents.get(&t, &id("pi_2")).await.unwrap_err().kind(), ErrorKind::NotFound);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_creating_the_intent_can_release_the_key() {
    common::on_fresh_schema("commit_creating_the_intent_can_release_the_key", |url, schema| async move {
        let Instance { set, ledger, .. } = instance(&url, &schema).await;
        let t = tenant();
        ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), None).await.unwrap();
        let update = created_authorized("pi_1", "pending");
        ledger.commit(&t, &key("k"), Some(update.clone()), KeyResolution::Release).await.unwrap();
        assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap(), update.intent);
        assert_eq!(set.intents.events(&t, &id("pi_1")).await.unwrap().len(), 2);
        assert_eq!(response_of(&set, "k").await, None, "released");
        let again = ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), None).await.unwrap();
        assert_eq!(again.begin, IdempotencyBegin::Started { recovered: false });
        assert_eq!(again.intent.expect("intent").intent, update.intent);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_creating_refuses_a_creation_that_is_not_the_update_s_origin() {
    common::on_fresh_schema(
        "commit_creating_refuses_a_creation_that_is_not_the_update_s_origin",
        |url, schema| async move {
            let Instance { set, ledger, .. } = instance(&url, &schema).await;
            let t = tenant();
            ledger.claim(&t, &key("k"), claim("authorize", "f"), &id("pi_1"), None).await.unwrap();
            let base = created_authorized("pi_1", "x");
            let (created, first) = base.created.clone().expect("creation");
            let changed = |change: &dyn Fn(&mut PaymentIntent)| {
                let mut c = created.clone();
                change(&mut c);
                c
            };
            let variants: Vec<(&str, PaymentIntent)> = vec![
                ("channel", changed(&|c| c.channel = ChannelId::new("pos").unwrap())),
                ("tender", changed(&|c| c.tender = TenderKind::Wallet)),
                ("provider", changed(&|c| c.provider = "adyen".to_owned())),
                ("reference", changed(&|c| c.reference = "other".to_owned())),
                ("created_at", changed(&|c| c.created_at -= Duration::seconds(1))),
                (
                    "currency",
                    changed(&|c| {
                        c.amount = Money::from_minor(4250, Currency::USD);
                        c.authorized = Money::zero(Currency::USD);
                        c.captured = Money::zero(Currency::USD);
                        c.refunded = Money::zero(Currency::USD);
                    }),
                ),
            ];
            for (field, bad) in variants {
                let update = IntentUpdate::creating(bad, first.clone(), base.intent.clone(), base.event.clone());
                let e = ledger.commit(&t, &key("k"), Some(update), KeyResolution::Complete(vec![])).await.unwrap_err();
                assert_eq!(e.kind(), ErrorKind::InvalidRequest, "{field}: {e}");
                assert!(e.to_string().contains(field), "{field}: {e}");
            }
            assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap_err().kind(), ErrorKind::NotFound);
            assert_eq!(response_of(&set, "k").await, Some(None), "the key is still held");
            // The unchanged creation goes through.
            ledger.commit(&t, &key("k"), Some(base.clone()), KeyResolution::Complete(vec![])).await.unwrap();
            assert_eq!(set.intents.get(&t, &id("pi_1")).await.unwrap(), base.intent);
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_commits_racing_on_one_intent_from_two_keys_create_it_once() {
    common::on_fresh_schema(
        "creating_commits_racing_on_one_intent_from_two_keys_create_it_once",
        |url, schema| async move {
            let instances = two_instances(&url, &schema).await;
            let t = tenant();
            for round in 0..10 {
                let intent = format!("pi_{round}");
                let (ka, kb) = (format!("a-{round}"), format!("b-{round}"));
                for (i, k) in [(0, &ka), (1, &kb)] {
                    instances[i].ledger.claim(&t, &key(k), claim("authorize", "f"), &id(&intent), None).await.unwrap();
                }
                let (ua, ub) = (created_authorized(&intent, "a"), created_authorized(&intent, "b"));
                let (ra, rb) = race_commits(&instances, (&ka, &ua), (&kb, &ub)).await;
                let (winner, loser, e) = match (&ra, &rb) {
                    (Ok(()), Err(e)) => (&ka, &kb, e),
                    (Err(e), Ok(())) => (&kb, &ka, e),
                    other => panic!("expected one winner, got {other:?}"),
                };
                assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
                let set = &instances[0].set;
                let winning = if winner == &ka { &ua } else { &ub };
                assert_eq!(set.intents.get(&t, &id(&intent)).await.unwrap(), winning.intent);
                let events = set.intents.events(&t, &id(&intent)).await.unwrap();
                assert_eq!(events.len(), 2);
                assert_eq!(events[1], winning.event);
                assert_eq!(response_of(set, winner).await, Some(Some(winner.clone().into_bytes())));
                assert_eq!(response_of(set, loser).await, Some(None), "the loser's key stays held");
            }
        },
    )
    .await;
}
