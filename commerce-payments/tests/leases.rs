//! Lease renewal ([`Payments::with_lease_renewal`]): an operation that outlasts its lease keeps its key.

mod common;

use common::{card, key};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use commerce_payments::{NewPayment, Payments};
use commerce_ports::payment::{
    AuthorizeRequest, CaptureRequest, GatewayCapabilities, IncrementRequest, ModificationResult, PaymentGateway,
    PaymentMethodRef, PaymentSnapshot, RefundRequest, TokenizeRequest, VoidRequest,
};
use commerce_ports::stores::{IntentStatus, StoreSet};
use commerce_ports::{ErrorKind, ManualClock, PaymentError};
use commerce_testkit::memory::{MemoryGateway, memory_store_set};
use time::macros::datetime;
use tokio::sync::Notify;

/// A gateway whose first authorization waits until `release` is notified (a customer at a terminal, a slow
/// provider); everything else goes straight to the memory gateway.
#[derive(Debug, Default)]
struct Slow {
    inner: MemoryGateway,
    first_taken: AtomicBool,
    release: Notify,
}

#[async_trait]
impl PaymentGateway for Slow {
    fn capabilities(&self) -> GatewayCapabilities {
        self.inner.capabilities()
    }
    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError> {
        if !self.first_taken.swap(true, Ordering::SeqCst) {
            self.release.notified().await;
        }
        self.inner.authorize(request).await
    }
    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        self.inner.capture(request).await
    }
    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        self.inner.refund(request).await
    }
    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError> {
        self.inner.void(request).await
    }
    async fn increment_authorization(&self, request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError> {
        self.inner.increment_authorization(request).await
    }
    async fn retrieve(&self, provider_reference: &str) -> Result<PaymentSnapshot, PaymentError> {
        self.inner.retrieve(provider_reference).await
    }
    async fn tokenize(&self, request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError> {
        self.inner.tokenize(request).await
    }
}

fn payment() -> NewPayment {
    card(2_500, "order-7")
}

const LEASE: Duration = Duration::from_secs(30);
const EVERY: Duration = Duration::from_millis(20);

/// Starts an authorization through `gateway` that waits at the provider, then lets a minute pass on `clock`
/// (twice the lease) in steps, waiting in between long enough for renewals to run; answers what a second caller
/// with the same key gets meanwhile.
async fn second_caller_after_a_minute(
    payments: &Payments,
    clock: &ManualClock,
    gateway: &Arc<Slow>,
) -> (tokio::task::JoinHandle<Result<commerce_ports::stores::PaymentIntent, ErrorKind>>, Result<IntentStatus, ErrorKind>)
{
    let first = {
        let (payments, gateway) = (payments.clone(), gateway.clone());
        tokio::spawn(async move {
            payments.authorize(&*gateway, "memory", payment(), &key("order-7:auth")).await.map_err(|e| e.kind())
        })
    };
    while !gateway.first_taken.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for _ in 0..6 {
        clock.advance(time::Duration::seconds(10));
        tokio::time::sleep(EVERY * 4).await;
    }
    let second = payments.authorize(&**gateway, "memory", payment(), &key("order-7:auth")).await;
    (first, second.map(|i| i.status).map_err(|e| e.kind()))
}

fn service(stores: &StoreSet, clock: Arc<ManualClock>) -> Payments {
    Payments::from_stores(stores, clock).with_lease(LEASE)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_lease_keeps_a_long_call_its_key() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 13:10 UTC)));
    let payments = service(&memory_store_set(), clock.clone()).with_lease_renewal(EVERY);
    assert_eq!(payments.lease_renewal(), EVERY);
    let gateway = Arc::new(Slow::default());
    let (first, second) = second_caller_after_a_minute(&payments, &clock, &gateway).await;
    // Twice the lease has passed, but the first caller renewed it: the second waits its turn.
    assert_eq!(second, Err(ErrorKind::InProgress));
    gateway.release.notify_one();
    let first = first.await.expect("task").expect("authorized");
    assert_eq!(first.status, IntentStatus::Authorized);
    assert_eq!(gateway.inner.provider_calls(), 1);
    // Renewals stopped with the operation: the key is completed and replays.
    let again = payments.authorize(&*gateway, "memory", payment(), &key("order-7:auth")).await.expect("replay");
    assert_eq!((again, gateway.inner.provider_calls()), (first, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_renewal_a_call_that_outlasts_its_lease_is_taken_over() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 13:10 UTC)));
    let payments = service(&memory_store_set(), clock.clone());
    assert_eq!(payments.lease_renewal(), Duration::ZERO, "off by default");
    let gateway = Arc::new(Slow::default());
    let (first, second) = second_caller_after_a_minute(&payments, &clock, &gateway).await;
    // The lease ran out: the second caller took the key over and sent the request again (same provider key).
    assert_eq!(second, Ok(IntentStatus::Authorized));
    gateway.release.notify_one();
    // The first caller's answer is a replay at the provider; the intent is authorized once either way.
    let _ = first.await.expect("task");
    assert_eq!(gateway.inner.provider_calls(), 1, "the provider replayed by key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_renew_lets_the_lease_run_its_course() {
    /// The memory idempotency store without `renew` (the port's default: `Unsupported`).
    #[derive(Debug)]
    struct NoRenew(Arc<dyn commerce_ports::IdempotencyStore>);
    #[async_trait]
    impl commerce_ports::IdempotencyStore for NoRenew {
        async fn begin(
            &self,
            tenant: &commerce_ports::TenantId,
            key: &commerce_ports::IdempotencyKey,
            claim: commerce_ports::stores::IdempotencyClaim,
        ) -> Result<commerce_ports::stores::IdempotencyBegin, commerce_ports::StoreError> {
            self.0.begin(tenant, key, claim).await
        }
        async fn complete(
            &self,
            tenant: &commerce_ports::TenantId,
            key: &commerce_ports::IdempotencyKey,
            response: Vec<u8>,
        ) -> Result<(), commerce_ports::StoreError> {
            self.0.complete(tenant, key, response).await
        }
        async fn release(
            &self,
            tenant: &commerce_ports::TenantId,
            key: &commerce_ports::IdempotencyKey,
        ) -> Result<(), commerce_ports::StoreError> {
            self.0.release(tenant, key).await
        }
        async fn get(
            &self,
            tenant: &commerce_ports::TenantId,
            key: &commerce_ports::IdempotencyKey,
        ) -> Result<Option<commerce_ports::stores::IdempotencyRecord>, commerce_ports::StoreError> {
            self.0.get(tenant, key).await
        }
    }
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 13:10 UTC)));
    let stores = memory_store_set();
    let payments = Payments::new(stores.intents.clone(), Arc::new(NoRenew(stores.idempotency.clone())), clock.clone())
        .with_lease(LEASE)
        .with_lease_renewal(EVERY);
    let gateway = Arc::new(Slow::default());
    let (first, second) = second_caller_after_a_minute(&payments, &clock, &gateway).await;
    assert_eq!(second, Ok(IntentStatus::Authorized), "not renewed: taken over after the lease");
    gateway.release.notify_one();
    let _ = first.await.expect("task");
}
