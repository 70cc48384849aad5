//! Several service instances sharing one database: concurrent requests with one idempotency key, spread over
//! the instances, make exactly one provider call, and every caller gets the one outcome or a clear
//! "in progress". On SQLite (two store sets on one file) always; on PostgreSQL (two pools on one schema) when
//! `COMMERCE_TEST_POSTGRES_URL` is set (CI sets it), otherwise the test says it skipped.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use commerce_payments::{NewPayment, Payments};
use commerce_ports::payment::{
    AuthorizeRequest, CaptureRequest, GatewayCapabilities, IncrementRequest, ModificationResult, PaymentGateway,
    PaymentMethodRef, PaymentSnapshot, RefundRequest, TokenizeRequest, VoidRequest,
};
use commerce_ports::stores::{IntentStatus, StoreSet};
use commerce_ports::{
    ChannelId, Currency, ErrorKind, IdempotencyKey, Money, PaymentError, SystemClock, TenantId, TenderKind,
};
use commerce_postgres::{PostgresOptions, PostgresStores};
use commerce_sqlite::SqliteStores;
use commerce_testkit::memory::MemoryGateway;

/// A provider whose authorizations and captures take a while, so concurrent callers really overlap.
#[derive(Debug)]
struct SlowProvider(MemoryGateway);

const LATENCY: Duration = Duration::from_millis(40);

#[async_trait]
impl PaymentGateway for SlowProvider {
    fn capabilities(&self) -> GatewayCapabilities {
        self.0.capabilities()
    }
    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError> {
        tokio::time::sleep(LATENCY).await;
        self.0.authorize(request).await
    }
    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        tokio::time::sleep(LATENCY).await;
        self.0.capture(request).await
    }
    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        self.0.refund(request).await
    }
    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError> {
        self.0.void(request).await
    }
    async fn increment_authorization(&self, request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError> {
        self.0.increment_authorization(request).await
    }
    async fn retrieve(&self, provider_reference: &str) -> Result<PaymentSnapshot, PaymentError> {
        self.0.retrieve(provider_reference).await
    }
    async fn tokenize(&self, request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError> {
        self.0.tokenize(request).await
    }
}

const CALLERS: usize = 24;

/// Runs authorize, then capture, each from `CALLERS` concurrent callers with one key, alternating between the
/// two instances; checks one provider call per operation and one outcome for everyone.
async fn one_call_per_key(a: &StoreSet, b: &StoreSet) {
    let provider = Arc::new(SlowProvider(MemoryGateway::new()));
    let instances = [Payments::from_stores(a, Arc::new(SystemClock)), Payments::from_stores(b, Arc::new(SystemClock))];
    let tenant = TenantId::new("acme").expect("tenant");
    let payment = NewPayment::new(
        tenant.clone(),
        ChannelId::new("web").expect("channel"),
        TenderKind::Card,
        Money::from_minor(12_500, Currency::EUR),
        "pm_card_visa",
        "order-77",
    );
    let key = IdempotencyKey::new("order-77:authorize").expect("key");

    let calls = (0..CALLERS).map(|i| {
        let (payments, provider, payment, key) =
            (instances[i % 2].clone(), Arc::clone(&provider), payment.clone(), key.clone());
        tokio::spawn(async move { payments.authorize(provider.as_ref(), "memory", payment, &key).await })
    });
    let mut intents = Vec::new();
    for call in calls.collect::<Vec<_>>() {
        match call.await.expect("task") {
            Ok(intent) => intents.push(intent),
            Err(e) => assert_eq!(e.kind(), ErrorKind::InProgress, "a concurrent caller got {e}"),
        }
    }
    assert_eq!(provider.0.provider_calls(), 1, "one authorization at the provider");
    assert!(!intents.is_empty(), "the caller that ran it got its outcome");
    assert!(intents.windows(2).all(|w| w[0] == w[1]), "every answer is the same intent: {intents:?}");
    // Afterwards, every instance replays it.
    for payments in &instances {
        let replay = payments.authorize(provider.as_ref(), "memory", payment.clone(), &key).await.expect("replay");
        assert_eq!(replay, intents[0]);
    }
    assert_eq!(provider.0.provider_calls(), 1, "replays make no provider call");

    let id = intents[0].id.clone();
    let capture_key = IdempotencyKey::new("order-77:capture").expect("key");
    let captures = (0..CALLERS).map(|i| {
        let (payments, provider, tenant, id, key) =
            (instances[i % 2].clone(), Arc::clone(&provider), tenant.clone(), id.clone(), capture_key.clone());
        tokio::spawn(async move { payments.capture(provider.as_ref(), &tenant, &id, None, true, &key).await })
    });
    let mut captured = 0;
    for capture in captures.collect::<Vec<_>>() {
        match capture.await.expect("task") {
            Ok(intent) => {
                assert_eq!(intent.status, IntentStatus::Captured);
                captured += 1;
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::InProgress, "a concurrent capture got {e}"),
        }
    }
    assert!(captured >= 1);
    assert_eq!(provider.0.provider_calls(), 2, "one capture at the provider");
    let intent = instances[1].get(&tenant, &id).await.expect("get");
    assert_eq!((intent.status, intent.captured.minor()), (IntentStatus::Captured, 12_500));
    let history = instances[0].history(&tenant, &id).await.expect("history");
    assert_eq!(history.len(), 3, "create, authorize, capture: {history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sqlite_instances_on_one_file_make_one_provider_call_per_key() {
    let path = std::env::temp_dir().join(format!("commerce-instances-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let a = SqliteStores::open(&path).await.expect("open a");
    let b = SqliteStores::open(&path).await.expect("open b");
    one_call_per_key(&a.store_set(), &b.store_set()).await;
    drop((a, b));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_postgres_instances_on_one_schema_make_one_provider_call_per_key() {
    const VAR: &str = "COMMERCE_TEST_POSTGRES_URL";
    let Some(url) = std::env::var(VAR).ok().filter(|u| !u.trim().is_empty()) else {
        let _ =
            std::io::stderr().write_all(format!("skipped: {VAR} is not set (two PostgreSQL instances)\n").as_bytes());
        return;
    };
    let schema = format!("commerce_instances_{}", std::process::id());
    let options = || PostgresOptions::new().with_schema(&schema);
    let a = PostgresStores::connect(&url, options()).await.expect("connect a");
    let b = PostgresStores::connect(&url, options()).await.expect("connect b");
    let outcome = tokio::spawn({
        let (a, b) = (a.store_set(), b.store_set());
        async move { one_call_per_key(&a, &b).await }
    })
    .await;
    a.close();
    b.close();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
