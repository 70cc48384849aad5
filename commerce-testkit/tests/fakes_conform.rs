//! The in-memory fakes pass the conformance suites, directly and through `Arc<dyn>` / `Box<dyn>`.

use std::sync::Arc;

use commerce_ports::payment::{GatewayCapabilities, PaymentGateway};
use commerce_ports::stores::{IdempotencyStore, PaymentIntentStore, SplitLedger};
use commerce_ports::{Currency, TenderKind};
use commerce_testkit::conformance::gateway::{self, GatewayFixture};
use commerce_testkit::conformance::stores::{self, StoreFixture};
use commerce_testkit::conformance::{Failure, Report};
use commerce_testkit::memory::{MemoryGateway, MemoryIdempotencyStore, MemoryPaymentIntentStore, memory_store_set};

fn fixture() -> GatewayFixture {
    GatewayFixture::new(Currency::EUR, TenderKind::Card)
}

#[tokio::test]
async fn memory_gateway_passes_directly() {
    let report = gateway::run_all(&MemoryGateway::new(), &fixture()).await;
    report.assert_passed();
    assert!(report.skipped.is_empty(), "a full gateway skips nothing: {report}");
    assert!(report.passed.len() >= 17, "{report}");
}

#[tokio::test]
async fn memory_gateway_passes_through_arc_and_box() {
    let arc: Arc<dyn PaymentGateway> = Arc::new(MemoryGateway::new());
    gateway::run_all(&arc, &fixture()).await.assert_passed();
    gateway::run_all(arc.as_ref(), &fixture()).await.assert_passed();
    let boxed: Box<dyn PaymentGateway> = Box::new(MemoryGateway::new());
    gateway::run_all(&boxed, &fixture()).await.assert_passed();
    gateway::run_all(boxed.as_ref(), &fixture()).await.assert_passed();
}

#[tokio::test]
async fn a_minimal_gateway_passes_what_it_declares_and_skips_the_rest() {
    let mut caps = GatewayCapabilities::none();
    caps.manual_capture = true;
    caps.tenders = vec![TenderKind::Card];
    let report = gateway::run_all(&MemoryGateway::with_capabilities(caps), &fixture()).await;
    report.assert_passed();
    let skipped: Vec<&str> = report.skipped.iter().map(|(b, _)| *b).collect();
    assert!(skipped.contains(&"capture_in_parts"), "{report}");
    assert!(skipped.contains(&"void_before_capture"), "{report}");
    assert!(skipped.contains(&"retrieve_unknown_is_not_found"), "{report}");
    // Without the capability the fake refuses to read a payment back, as an adapter must.
    let mut caps = GatewayCapabilities::none();
    caps.tenders = vec![TenderKind::Card];
    let gw = MemoryGateway::with_capabilities(caps);
    let answer = gw.retrieve("pi_anything").await.expect_err("no retrieve");
    assert_eq!(answer.kind(), commerce_ports::ErrorKind::Unsupported);
}

#[tokio::test]
async fn a_capture_on_authorize_gateway_passes_without_manual_capture() {
    let mut caps = GatewayCapabilities::none();
    caps.tenders = vec![TenderKind::Card];
    let report = gateway::run_all(&MemoryGateway::with_capabilities(caps), &fixture()).await;
    report.assert_passed();
    assert!(report.skipped.iter().any(|(b, _)| *b == "authorize_then_capture_in_full"), "{report}");
}

#[tokio::test]
async fn a_gateway_without_the_tender_fails_the_fixture() {
    let report = gateway::run_all(&MemoryGateway::new(), &GatewayFixture::new(Currency::EUR, TenderKind::Cash)).await;
    assert!(!report.is_success());
    assert_eq!(report.failed.first().map(|f| f.behaviour), Some("fixture"));
}

/// A gateway that lies (claims success for an over-capture) must be caught: the suite is not vacuous.
#[derive(Debug)]
struct Lenient(MemoryGateway);

#[async_trait::async_trait]
impl PaymentGateway for Lenient {
    fn capabilities(&self) -> GatewayCapabilities {
        self.0.capabilities()
    }
    async fn authorize(
        &self,
        r: commerce_ports::payment::AuthorizeRequest,
    ) -> Result<commerce_ports::payment::PaymentSnapshot, commerce_ports::PaymentError> {
        self.0.authorize(r).await
    }
    async fn capture(
        &self,
        r: commerce_ports::payment::CaptureRequest,
    ) -> Result<commerce_ports::payment::ModificationResult, commerce_ports::PaymentError> {
        let amount = r.amount;
        match self.0.capture(r).await {
            Err(e) if e.kind() == commerce_ports::ErrorKind::InvalidRequest => {
                Ok(commerce_ports::payment::ModificationResult::new(
                    "fake",
                    commerce_ports::payment::ModificationStatus::Succeeded,
                    amount,
                ))
            }
            other => other,
        }
    }
    async fn refund(
        &self,
        r: commerce_ports::payment::RefundRequest,
    ) -> Result<commerce_ports::payment::ModificationResult, commerce_ports::PaymentError> {
        self.0.refund(r).await
    }
    async fn void(
        &self,
        r: commerce_ports::payment::VoidRequest,
    ) -> Result<commerce_ports::payment::ModificationResult, commerce_ports::PaymentError> {
        self.0.void(r).await
    }
    async fn increment_authorization(
        &self,
        r: commerce_ports::payment::IncrementRequest,
    ) -> Result<commerce_ports::payment::PaymentSnapshot, commerce_ports::PaymentError> {
        self.0.increment_authorization(r).await
    }
    async fn retrieve(
        &self,
        r: &str,
    ) -> Result<commerce_ports::payment::PaymentSnapshot, commerce_ports::PaymentError> {
        self.0.retrieve(r).await
    }
    async fn tokenize(
        &self,
        r: commerce_ports::payment::TokenizeRequest,
    ) -> Result<commerce_ports::payment::PaymentMethodRef, commerce_ports::PaymentError> {
        self.0.tokenize(r).await
    }
}

#[tokio::test]
async fn a_lying_gateway_fails_the_suite() {
    let report = gateway::run_all(&Lenient(MemoryGateway::new()), &fixture()).await;
    let failed: Vec<&str> = report.failed.iter().map(|f: &Failure| f.behaviour).collect();
    assert!(failed.contains(&"over_capture_is_refused"), "{report}");
    assert!(failed.contains(&"currency_mismatch_is_refused"), "{report}");
}

#[tokio::test]
async fn memory_stores_pass() {
    let report = stores::run_all(&memory_store_set(), &StoreFixture::new()).await;
    report.assert_passed();
    assert!(report.passed.len() >= 16, "{report}");
}

#[tokio::test]
async fn both_ledgers_over_the_memory_stores_pass_the_ledger_suite() {
    let fx = StoreFixture::new();
    // The memory ledger (what `memory_store_set` binds) and the split ledger over the same kind of stores.
    let native = memory_store_set();
    let report = stores::run_ledger(&native, &fx).await;
    report.assert_passed();
    assert_eq!(report.passed.len(), 8, "{report}");
    assert!(format!("{:?}", native.ledger).contains("MemoryLedger"), "{:?}", native.ledger);
    let base = memory_store_set();
    let split = base.clone().with_ledger(Arc::new(SplitLedger::new(base.intents.clone(), base.idempotency.clone())));
    stores::run_ledger(&split, &fx).await.assert_passed();
}

#[tokio::test]
async fn memory_stores_pass_through_arc_and_box() {
    let fx = StoreFixture::new();
    let arc: Arc<dyn IdempotencyStore> = Arc::new(MemoryIdempotencyStore::default());
    stores::run_idempotency(&arc, &fx).await.assert_passed();
    let boxed: Box<dyn PaymentIntentStore> = Box::new(MemoryPaymentIntentStore::default());
    stores::run_intents(&boxed, &fx).await.assert_passed();
    let arc_intents: Arc<dyn PaymentIntentStore> = Arc::new(MemoryPaymentIntentStore::default());
    stores::run_intents(&arc_intents, &fx).await.assert_passed();
    let boxed_idem: Box<dyn IdempotencyStore> = Box::new(MemoryIdempotencyStore::default());
    stores::run_idempotency(&boxed_idem, &fx).await.assert_passed();
}

#[tokio::test]
async fn every_store_suite_passes_through_box_dyn() {
    use commerce_ports::stores::{DomainClaimStore, PairingStore, PrintJobStore, ReplicationStore, WebhookEventStore};
    use commerce_testkit::memory::{
        MemoryDomainClaimStore, MemoryPairingStore, MemoryPrintJobStore, MemoryReplicationStore,
        MemoryWebhookEventStore,
    };
    let fx = StoreFixture::new();
    let webhooks: Box<dyn WebhookEventStore> = Box::new(MemoryWebhookEventStore::default());
    let domains: Box<dyn DomainClaimStore> = Box::new(MemoryDomainClaimStore::default());
    let replication: Box<dyn ReplicationStore> = Box::new(MemoryReplicationStore::default());
    let jobs: Box<dyn PrintJobStore> = Box::new(MemoryPrintJobStore::default());
    let pairings: Box<dyn PairingStore> = Box::new(MemoryPairingStore::default());
    let outcomes = [
        stores::webhooks_deduplicate(&webhooks, &fx).await,
        stores::domains_claims_and_mappings(&domains, &fx).await,
        stores::replication_outbox(&replication, &fx).await,
        stores::replication_inbox_checkpoint(&replication, &fx).await,
        stores::print_jobs_queue(&jobs, &fx).await,
        stores::pairings_lifecycle(&pairings, &fx).await,
    ];
    for outcome in outcomes {
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
    }
}

#[test]
fn an_empty_report_is_not_a_success() {
    assert!(!Report::default().is_success());
}

#[tokio::test]
async fn renewal_is_forwarded_and_a_store_without_it_skips_its_behaviours() {
    use commerce_ports::stores::{IdempotencyBegin, IdempotencyClaim, IdempotencyRecord};
    use commerce_ports::{IdempotencyKey, StoreError, TenantId};
    let fx = StoreFixture::new();
    // Through `Arc<dyn>` the memory store's own `renew` runs, not the port's default.
    let arc: Arc<dyn IdempotencyStore> = Arc::new(MemoryIdempotencyStore::default());
    let report = stores::run_idempotency(&arc, &fx).await;
    report.assert_passed();
    assert!(report.passed.contains(&"idempotency_renew") && report.skipped.is_empty(), "{report}");

    /// An idempotency store written before `renew` existed (the port's default answers `Unsupported`).
    #[derive(Debug, Default)]
    struct Older(MemoryIdempotencyStore);
    #[async_trait::async_trait]
    impl IdempotencyStore for Older {
        async fn begin(
            &self,
            tenant: &TenantId,
            key: &IdempotencyKey,
            claim: IdempotencyClaim,
        ) -> Result<IdempotencyBegin, StoreError> {
            self.0.begin(tenant, key, claim).await
        }
        async fn complete(&self, tenant: &TenantId, key: &IdempotencyKey, response: Vec<u8>) -> Result<(), StoreError> {
            self.0.complete(tenant, key, response).await
        }
        async fn release(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<(), StoreError> {
            self.0.release(tenant, key).await
        }
        async fn get(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, StoreError> {
            self.0.get(tenant, key).await
        }
    }
    let report = stores::run_idempotency(&Older::default(), &fx).await;
    report.assert_passed();
    let skipped: Vec<&str> = report.skipped.iter().map(|(b, _)| *b).collect();
    assert_eq!(skipped, vec!["idempotency_renew"], "{report}");
}
