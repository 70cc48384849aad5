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

#[tokio::test]
async fn the_default_paging_serves_a_store_written_before_it_even_with_ties_in_another_order() {
    use commerce_ports::stores::{IntentCursor, IntentEvent, IntentStatus, PaymentIntent};
    use commerce_ports::{ChannelId, IntentId, Money, StoreError, TenantId};

    /// An intent store written before `list_by_status_after` (the port's default pages it), whose
    /// `list_by_status` orders intents updated at the same instant by id descending (all it promised was
    /// "oldest update first").
    #[derive(Debug, Default)]
    struct Older(MemoryPaymentIntentStore);
    #[async_trait::async_trait]
    impl PaymentIntentStore for Older {
        async fn create(&self, intent: PaymentIntent, event: IntentEvent) -> Result<(), StoreError> {
            self.0.create(intent, event).await
        }
        async fn get(&self, tenant: &TenantId, id: &IntentId) -> Result<PaymentIntent, StoreError> {
            self.0.get(tenant, id).await
        }
        async fn update(&self, intent: PaymentIntent, expected: u64, event: IntentEvent) -> Result<(), StoreError> {
            self.0.update(intent, expected, event).await
        }
        async fn events(&self, tenant: &TenantId, id: &IntentId) -> Result<Vec<IntentEvent>, StoreError> {
            self.0.events(tenant, id).await
        }
        async fn find_by_provider_reference(
            &self,
            tenant: &TenantId,
            provider: &str,
            reference: &str,
        ) -> Result<Option<PaymentIntent>, StoreError> {
            self.0.find_by_provider_reference(tenant, provider, reference).await
        }
        async fn find_by_reference(
            &self,
            tenant: &TenantId,
            reference: &str,
        ) -> Result<Vec<PaymentIntent>, StoreError> {
            self.0.find_by_reference(tenant, reference).await
        }
        async fn list_by_status(
            &self,
            tenant: &TenantId,
            status: IntentStatus,
            limit: u32,
        ) -> Result<Vec<PaymentIntent>, StoreError> {
            let mut all = self.0.list_by_status(tenant, status, u32::MAX).await?;
            all.sort_by(|a, b| a.updated_at.cmp(&b.updated_at).then_with(|| b.id.as_str().cmp(a.id.as_str())));
            all.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            Ok(all)
        }
    }

    let store = Older::default();
    let fx = StoreFixture::new();
    let tenant = TenantId::new("older").expect("tenant");
    let mut ids = Vec::new();
    for (name, seconds) in [("d", 0), ("a", 5), ("c", 5), ("b", 5), ("e", 9)] {
        let id = IntentId::new(format!("pi_{name}")).expect("id");
        let at = fx.now + time::Duration::seconds(seconds);
        let mut intent = PaymentIntent::new(
            id.clone(),
            tenant.clone(),
            ChannelId::new("web").expect("channel"),
            TenderKind::Card,
            Money::from_minor(100, Currency::EUR),
            "memory",
            "order",
            at,
        );
        intent.status = IntentStatus::OutcomeUnknown;
        store.create(intent, IntentEvent::new(1, at, "create", IntentStatus::OutcomeUnknown)).await.expect("create");
        ids.push((seconds, id));
    }
    let mut paged = Vec::new();
    let mut cursor: Option<IntentCursor> = None;
    for _ in 0..10 {
        let page = store.list_by_status_after(&tenant, IntentStatus::OutcomeUnknown, cursor.clone(), 1).await;
        let page = page.expect("page");
        let Some(last) = page.last() else { break };
        cursor = Some(IntentCursor::after(last));
        paged.extend(page.into_iter().map(|i| i.id.as_str().to_owned()));
    }
    assert_eq!(paged, vec!["pi_d", "pi_a", "pi_b", "pi_c", "pi_e"], "every intent once, ties by id");
    // The cursor a host stored survives a round trip through JSON.
    let stored = serde_json::to_string(&cursor).expect("json");
    assert_eq!(serde_json::from_str::<Option<IntentCursor>>(&stored).expect("back"), cursor);
}
