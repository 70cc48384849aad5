//! Many callers at once: one key, one provider call; optimistic version conflicts re-applied once.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use commerce_payments::{Payments, state};
use commerce_ports::stores::{IntentEvent, IntentStatus, PaymentIntent, PaymentIntentStore};
use commerce_ports::{ErrorKind, IntentId, StoreError, TenantId};
use commerce_testkit::memory::{GatewayFault, MemoryGateway, MemoryPaymentIntentStore, memory_store_set};
use futures_util::future::join_all;

use super::*;

fn tally(results: &[Result<PaymentIntent, PaymentsError>]) -> (usize, usize) {
    let ok: Vec<&PaymentIntent> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let in_progress = results.iter().filter(|r| r.as_ref().is_err_and(|e| e.kind() == ErrorKind::InProgress)).count();
    assert_eq!(ok.len() + in_progress, results.len(), "only the intent or InProgress: {results:?}");
    assert!(!ok.is_empty(), "the first caller gets the intent");
    assert!(ok.windows(2).all(|w| w[0] == w[1]), "every caller gets the same intent");
    (ok.len(), in_progress)
}

#[tokio::test]
async fn hundred_concurrent_authorizes_with_one_key_make_one_provider_call() {
    let fx = Fx::new();
    let calls = (0..100).map(|_| fx.authorize("same-key", 5_000));
    let results = join_all(calls).await;
    tally(&results);
    assert_eq!(fx.calls(), 1);
    let intent = fx.get(&id_for("same-key")).await;
    assert_eq!(intent.status, IntentStatus::Authorized);
    assert_consistent(&intent, &fx.history(&intent.id).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_spawned_authorizes_on_clones_make_one_provider_call() {
    let fx = Fx::new();
    let mut handles = Vec::new();
    for _ in 0..100 {
        let payments: Payments = fx.payments.clone();
        let gateway = Arc::clone(&fx.gateway);
        handles.push(tokio::spawn(async move {
            payments.authorize(&*gateway, "memory", payment(5_000), &key("same-key")).await
        }));
    }
    let results: Vec<_> = join_all(handles).await.into_iter().map(|joined| joined.expect("task")).collect();
    tally(&results);
    assert_eq!(fx.calls(), 1);
    assert_eq!(fx.get(&id_for("same-key")).await.authorized, eur(5_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_captures_with_one_key_capture_once() {
    let fx = Fx::new();
    let id = fx.authorize("a", 5_000).await.expect("authorized").id;
    let mut handles = Vec::new();
    for _ in 0..50 {
        let (payments, gateway, id) = (fx.payments.clone(), Arc::clone(&fx.gateway), id.clone());
        handles.push(tokio::spawn(async move {
            payments.capture(&*gateway, &tenant(), &id, Some(eur(1_000)), false, &key("cap")).await
        }));
    }
    let results: Vec<_> = join_all(handles).await.into_iter().map(|joined| joined.expect("task")).collect();
    let (ok, _) = tally(&results);
    assert!(ok >= 1);
    assert_eq!(fx.calls(), 2);
    assert_eq!(fx.get(&id).await.captured, eur(1_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_captures_with_distinct_keys_all_count_once() {
    let fx = Fx::new();
    let id = fx.authorize("a", 1_000).await.expect("authorized").id;
    let keys: Vec<String> = (0..10).map(|i| format!("cap-{i}")).collect();
    let mut remaining = keys.clone();
    for _round in 0..20 {
        if remaining.is_empty() {
            break;
        }
        let mut handles = Vec::new();
        for k in &remaining {
            let (payments, gateway, id, k) = (fx.payments.clone(), Arc::clone(&fx.gateway), id.clone(), k.clone());
            handles.push(tokio::spawn(async move {
                let r = payments.capture(&*gateway, &tenant(), &id, Some(eur(100)), false, &key(&k)).await;
                (k, r)
            }));
        }
        let mut again = Vec::new();
        for joined in join_all(handles).await {
            let (k, r) = joined.expect("task");
            match r {
                Ok(_) => {}
                // Lost a race: retry with the same key (the provider replays if it acted).
                Err(e) if matches!(e.retry(), RetryClass::Retryable | RetryClass::SameKeyOnly) => again.push(k),
                Err(e) => panic!("capture {k} failed: {e}"),
            }
        }
        remaining = again;
    }
    assert!(remaining.is_empty(), "retries with the same keys settle every capture: {remaining:?}");
    let intent = fx.get(&id).await;
    assert_eq!((intent.status, intent.captured), (IntentStatus::Captured, eur(1_000)));
    assert_eq!(fx.provider_view(&id).await.captured, eur(1_000), "the books match the provider");
    assert_eq!(fx.calls(), 11, "one authorization and ten captures, none twice");
    assert_consistent(&intent, &fx.history(&id).await);
}

// --------------------------------------------------------------------------------------------------------
// Optimistic version conflicts

/// An intent store that lets another writer's update land just before the next update.
#[derive(Debug, Default)]
struct InterleavingStore {
    inner: MemoryPaymentIntentStore,
    before_next_update: Mutex<Option<(PaymentIntent, u64, IntentEvent)>>,
}

impl InterleavingStore {
    fn interleave(&self, transition: state::Transition, expected_version: u64) {
        *self.before_next_update.lock().expect("lock") = Some((transition.intent, expected_version, transition.event));
    }
}

#[async_trait]
impl PaymentIntentStore for InterleavingStore {
    async fn create(&self, intent: PaymentIntent, event: IntentEvent) -> Result<(), StoreError> {
        self.inner.create(intent, event).await
    }
    async fn get(&self, tenant: &TenantId, id: &IntentId) -> Result<PaymentIntent, StoreError> {
        self.inner.get(tenant, id).await
    }
    async fn update(&self, intent: PaymentIntent, expected_version: u64, event: IntentEvent) -> Result<(), StoreError> {
        let other = self.before_next_update.lock().expect("lock").take();
        if let Some((i, v, e)) = other {
            self.inner.update(i, v, e).await?;
        }
        self.inner.update(intent, expected_version, event).await
    }
    async fn events(&self, tenant: &TenantId, id: &IntentId) -> Result<Vec<IntentEvent>, StoreError> {
        self.inner.events(tenant, id).await
    }
    async fn find_by_provider_reference(
        &self,
        tenant: &TenantId,
        provider: &str,
        reference: &str,
    ) -> Result<Option<PaymentIntent>, StoreError> {
        self.inner.find_by_provider_reference(tenant, provider, reference).await
    }
    async fn find_by_reference(&self, tenant: &TenantId, reference: &str) -> Result<Vec<PaymentIntent>, StoreError> {
        self.inner.find_by_reference(tenant, reference).await
    }
    async fn list_by_status(
        &self,
        tenant: &TenantId,
        status: IntentStatus,
        limit: u32,
    ) -> Result<Vec<PaymentIntent>, StoreError> {
        self.inner.list_by_status(tenant, status, limit).await
    }
}

fn interleaving_fx() -> (Fx, Arc<InterleavingStore>) {
    let stores = memory_store_set();
    let store = Arc::new(InterleavingStore::default());
    let clock = Arc::new(commerce_ports::ManualClock::new(T0));
    let payments = Payments::new(store.clone(), stores.idempotency.clone(), clock.clone());
    (Fx { payments, gateway: Arc::new(MemoryGateway::new()), stores, clock }, store)
}

#[tokio::test]
async fn a_retry_racing_a_reconcile_applies_the_capture_once() {
    let (fx, store) = interleaving_fx();
    let id = fx.authorize("a", 5_000).await.expect("authorized").id;
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    fx.capture(&id, "c", Some(3_000), false).await.expect_err("unknown");

    // A reconciler settles the intent while the retry is talking to the provider.
    let (intent, history) = (fx.get(&id).await, fx.history(&id).await);
    let snapshot = fx.provider_view(&id).await;
    let reconciled = state::apply_snapshot(&intent, &history, &snapshot, T0).expect("ok").expect("change");
    store.interleave(reconciled, intent.version);

    let retried = fx.capture(&id, "c", Some(3_000), false).await.expect("retry");
    assert_eq!((retried.status, retried.captured), (IntentStatus::PartiallyCaptured, eur(3_000)), "not 60.00 EUR");
    assert_eq!(fx.calls(), 2);
    let history = fx.history(&id).await;
    assert_consistent(&retried, &history);
    assert_eq!(history.last().map(|e| e.operation.as_str()), Some("reconcile"), "the retry added nothing");
}

#[tokio::test]
async fn a_concurrent_capture_is_kept_when_another_is_reapplied() {
    let (fx, store) = interleaving_fx();
    let intent = fx.authorize("a", 5_000).await.expect("authorized");
    // Another instance's capture of 10.00 EUR (key "other") lands first.
    let other = fx.capture(&intent.id, "other", Some(1_000), false);
    let other = other.await.expect("captured");
    let history = fx.history(&intent.id).await;
    let call = state::ProviderCall::new(state::Operation::Capture, "other-2", "fp");
    let m = state::Modification::Capture { amount: eur(500), final_capture: false };
    let result = commerce_ports::payment::ModificationResult::new(
        "cap_x",
        commerce_ports::payment::ModificationStatus::Succeeded,
        eur(500),
    );
    let t = state::apply_modification(&other, &history, &call, &m, &result, T0).expect("ok").expect("change");
    store.interleave(t, other.version);

    let intent = fx.capture(&intent.id, "mine", Some(2_000), false).await.expect("re-applied on the new version");
    assert_eq!(intent.captured, eur(3_500), "10.00 + 5.00 (interleaved) + 20.00");
    assert_consistent(&intent, &fx.history(&intent.id).await);
}
