//! Incremental authorization: `Payments::increment_authorization` against the testkit's in-memory gateway
//! and stores.

mod common;

use common::{eur, key, tenant};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use commerce_payments::{NewPayment, Payments, PaymentsError, WebhookIngestor};
use commerce_ports::payment::{
    AuthorizeRequest, CaptureRequest, GatewayCapabilities, IncrementRequest, ModificationResult, PaymentGateway,
    PaymentMethodRef, PaymentSnapshot, RefundRequest, TenderKind, TokenizeRequest, VoidRequest,
};
use commerce_ports::stores::{IntentEvent, IntentStatus, PaymentIntent};
use commerce_ports::webhook::WebhookRequest;
use commerce_ports::{
    ChannelId, Currency, DeclineDetails, ErrorKind, IntentId, ManualClock, Money, PaymentError, RetryClass, Secret,
};
use commerce_stripe::{SIGNATURE_HEADER, StripeWebhookVerifier, sign};
use commerce_testkit::memory::{GatewayFault, MemoryGateway, MemoryWebhookEventStore, memory_store_set};
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2025-01-01 12:00 UTC);
const SECRET: &str = "whsec_test";

/// What [`Scripted`] does with an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Increments {
    Forward,
    Decline,
    /// Answer `OutcomeUnknown` without forwarding it (the provider never saw it).
    Lose,
}

/// A [`MemoryGateway`] whose increments follow a script.
#[derive(Debug)]
struct Scripted {
    inner: MemoryGateway,
    increments: Mutex<Increments>,
    /// Every void request received.
    voids: Mutex<Vec<VoidRequest>>,
}

impl Scripted {
    fn new(increments: Increments) -> Scripted {
        Scripted { inner: MemoryGateway::new(), increments: Mutex::new(increments), voids: Mutex::new(Vec::new()) }
    }

    fn set(&self, increments: Increments) {
        *self.increments.lock().expect("lock") = increments;
    }
}

#[async_trait]
impl PaymentGateway for Scripted {
    fn capabilities(&self) -> GatewayCapabilities {
        self.inner.capabilities()
    }
    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError> {
        self.inner.authorize(request).await
    }
    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        self.inner.capture(request).await
    }
    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        self.inner.refund(request).await
    }
    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError> {
        self.voids.lock().expect("lock").push(request.clone());
        self.inner.void(request).await
    }
    async fn increment_authorization(&self, request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError> {
        const OP: &str = "increment_authorization";
        let mode = *self.increments.lock().expect("lock");
        match mode {
            Increments::Forward => self.inner.increment_authorization(request).await,
            Increments::Decline => Err(PaymentError::new(ErrorKind::Declined, OP, "the card was declined")
                .with_decline(DeclineDetails::with_code("insufficient_funds"))),
            Increments::Lose => Err(PaymentError::new(ErrorKind::OutcomeUnknown, OP, "connection reset")),
        }
    }
    async fn retrieve(&self, provider_reference: &str) -> Result<PaymentSnapshot, PaymentError> {
        self.inner.retrieve(provider_reference).await
    }
    async fn tokenize(&self, request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError> {
        self.inner.tokenize(request).await
    }
}

struct Fx<G: PaymentGateway = MemoryGateway> {
    payments: Payments,
    gateway: G,
}

impl Fx {
    fn new() -> Fx {
        Fx::with_gateway(MemoryGateway::new())
    }
}

impl<G: PaymentGateway> Fx<G> {
    fn with_gateway(gateway: G) -> Fx<G> {
        let stores = memory_store_set();
        let payments = Payments::from_stores(&stores, Arc::new(ManualClock::new(T0)));
        Fx { payments, gateway }
    }

    async fn authorized(&self, minor: i64) -> PaymentIntent {
        let payment = NewPayment::new(
            tenant(),
            ChannelId::new("web").expect("channel"),
            TenderKind::Card,
            eur(minor),
            "pm_card_visa",
            "order-1",
        );
        self.payments.authorize(&self.gateway, "memory", payment, &key("order-1:auth")).await.expect("authorized")
    }

    async fn increment(&self, id: &IntentId, k: &str, total: Money) -> Result<PaymentIntent, PaymentsError> {
        self.payments.increment_authorization(&self.gateway, &tenant(), id, total, &key(k)).await
    }

    async fn capture(&self, id: &IntentId, k: &str, amount: Option<i64>) -> Result<PaymentIntent, PaymentsError> {
        self.payments.capture(&self.gateway, &tenant(), id, amount.map(eur), true, &key(k)).await
    }

    async fn get(&self, id: &IntentId) -> PaymentIntent {
        self.payments.get(&tenant(), id).await.expect("intent")
    }

    async fn history(&self, id: &IntentId) -> Vec<IntentEvent> {
        self.payments.history(&tenant(), id).await.expect("history")
    }

    async fn snapshot(&self, intent: &PaymentIntent) -> PaymentSnapshot {
        let reference = intent.provider_reference.as_deref().expect("reference");
        self.gateway.retrieve(reference).await.expect("snapshot")
    }
}

/// (operation, status) of every event after the creation.
fn steps(history: &[IntentEvent]) -> Vec<(&str, IntentStatus)> {
    history.iter().skip(1).map(|e| (e.operation.as_str(), e.status)).collect()
}

fn amounts(intent: &PaymentIntent) -> (IntentStatus, Money, Money, Money) {
    (intent.status, intent.amount, intent.authorized, intent.captured)
}

#[tokio::test]
async fn a_void_states_the_authorization_it_releases_incremented_or_not() {
    let fx = Fx::with_gateway(Scripted::new(Increments::Forward));
    let intent = fx.authorized(1_000).await;
    let incremented = fx.increment(&intent.id, "inc-1", eur(1_500)).await.expect("incremented");
    assert_eq!(incremented.authorized, eur(1_500));
    let voided = fx.payments.void(&fx.gateway, &tenant(), &intent.id, &key("void-1")).await.expect("voided");
    assert_eq!(voided.status, IntentStatus::Voided);
    let voids = fx.gateway.voids.lock().expect("lock").clone();
    assert_eq!(voids.len(), 1);
    assert_eq!(voids[0].authorized, Some(eur(1_500)), "the provider adapter can report what was released");
    assert_eq!(voids[0].provider_reference, intent.provider_reference.clone().expect("reference"));
}

#[tokio::test]
async fn an_increment_raises_the_authorization_and_the_new_total_can_be_captured() {
    let fx = Fx::new();
    let intent = fx.authorized(8_000).await;
    let incremented = fx.increment(&intent.id, "inc-1", eur(10_000)).await.expect("incremented");
    assert_eq!(amounts(&incremented), (IntentStatus::Authorized, eur(10_000), eur(10_000), eur(0)));
    assert_eq!(fx.snapshot(&incremented).await.authorized, eur(10_000));
    assert_eq!(incremented.version, intent.version + 1);

    let last = fx.history(&intent.id).await.pop().expect("event");
    assert_eq!((last.operation.as_str(), last.amount), ("increment", Some(eur(10_000))));
    assert!(last.detail.as_deref().is_some_and(|d| d.contains("80.00 EUR") && d.contains("100.00 EUR")), "{last:?}");

    // A second increment on top of the first.
    let again = fx.increment(&intent.id, "inc-2", eur(12_000)).await.expect("incremented again");
    assert_eq!((again.amount, again.authorized), (eur(12_000), eur(12_000)));

    let captured = fx.capture(&intent.id, "cap-1", None).await.expect("captured");
    assert_eq!((captured.status, captured.captured), (IntentStatus::Captured, eur(12_000)));
    assert_eq!(
        steps(&fx.history(&intent.id).await),
        vec![
            ("authorize", IntentStatus::Authorized),
            ("increment", IntentStatus::Authorized),
            ("increment", IntentStatus::Authorized),
            ("capture", IntentStatus::Captured),
        ]
    );
}

#[tokio::test]
async fn a_new_total_not_above_the_authorized_amount_is_invalid() {
    let fx = Fx::new();
    let intent = fx.authorized(8_000).await;
    for (k, total) in [("inc-lower", 5_000), ("inc-equal", 8_000)] {
        let e = fx.increment(&intent.id, k, eur(total)).await.expect_err("invalid");
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert_eq!(e.message(), format!("new total {} must exceed the authorized 80.00 EUR", eur(total)));
    }
    assert_eq!(fx.gateway.provider_calls(), 1);
    assert_eq!(fx.get(&intent.id).await, intent);
}

#[tokio::test]
async fn a_new_total_in_another_currency_is_invalid() {
    let fx = Fx::new();
    let intent = fx.authorized(8_000).await;
    let e = fx.increment(&intent.id, "inc-usd", Money::from_minor(10_000, Currency::USD)).await.expect_err("invalid");
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.message().contains("100.00 USD") && e.message().contains("EUR"), "{}", e.message());
    assert_eq!(fx.gateway.provider_calls(), 1);
}

#[tokio::test]
async fn an_increment_after_a_capture_is_refused() {
    let fx = Fx::new();
    let intent = fx.authorized(8_000).await;
    let partial = fx.payments.capture(&fx.gateway, &tenant(), &intent.id, Some(eur(3_000)), false, &key("cap-1")).await;
    assert_eq!(partial.expect("captured").status, IntentStatus::PartiallyCaptured);
    let e = fx.increment(&intent.id, "inc-1", eur(10_000)).await.expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidState);
    assert!(e.message().contains("only before the first capture"), "{}", e.message());
    assert_eq!(fx.gateway.provider_calls(), 2);
}

#[tokio::test]
async fn a_gateway_without_the_capability_is_unsupported_and_not_called() {
    let mut caps = GatewayCapabilities::full(vec![TenderKind::Card]);
    caps.incremental_authorization = false;
    let fx = Fx::with_gateway(MemoryGateway::with_capabilities(caps));
    let intent = fx.authorized(8_000).await;
    let e = fx.increment(&intent.id, "inc-1", eur(10_000)).await.expect_err("unsupported");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(e.message().contains("incremental authorization"), "{}", e.message());
    assert_eq!(fx.gateway.provider_calls(), 1);
    assert_eq!(fx.get(&intent.id).await, intent);
}

#[tokio::test]
async fn a_replay_returns_the_stored_outcome_and_another_amount_conflicts() {
    let fx = Fx::new();
    let intent = fx.authorized(8_000).await;
    let first = fx.increment(&intent.id, "inc-1", eur(10_000)).await.expect("incremented");
    let calls = fx.gateway.provider_calls();
    let replay = fx.increment(&intent.id, "inc-1", eur(10_000)).await.expect("replayed");
    assert_eq!(replay, first);
    assert_eq!(fx.gateway.provider_calls(), calls);

    let e = fx.increment(&intent.id, "inc-1", eur(11_000)).await.expect_err("conflict");
    assert_eq!(e.kind(), ErrorKind::IdempotencyConflict);
    assert_eq!(fx.gateway.provider_calls(), calls);
    assert_eq!(fx.get(&intent.id).await, first);
}

#[tokio::test]
async fn a_declined_increment_is_recorded_and_the_original_stays_capturable() {
    let fx = Fx::with_gateway(Scripted::new(Increments::Decline));
    let intent = fx.authorized(8_000).await;
    let e = fx.increment(&intent.id, "inc-1", eur(10_000)).await.expect_err("declined");
    assert_eq!(e.kind(), ErrorKind::Declined);
    let after = fx.get(&intent.id).await;
    assert_eq!(amounts(&after), (IntentStatus::Authorized, eur(8_000), eur(8_000), eur(0)));
    let last = fx.history(&intent.id).await.pop().expect("event");
    assert_eq!(
        (last.operation.as_str(), last.status, last.amount),
        ("increment", IntentStatus::Authorized, Some(eur(10_000)))
    );
    assert!(
        last.detail.as_deref().is_some_and(|d| d.contains("refused") && d.contains("insufficient_funds")),
        "{last:?}"
    );

    // The refusal is the key's stored outcome: a retry returns it without recording anything again.
    let replay = fx.increment(&intent.id, "inc-1", eur(10_000)).await.expect_err("declined again");
    assert_eq!((replay.kind(), replay.message()), (ErrorKind::Declined, e.message()));
    assert_eq!(fx.get(&intent.id).await.version, after.version);

    let captured = fx.capture(&intent.id, "cap-1", None).await.expect("captured");
    assert_eq!((captured.status, captured.captured), (IntentStatus::Captured, eur(8_000)));
}

/// An increment whose answer is lost after the provider processed it.
async fn unknown_increment(fx: &Fx) -> PaymentIntent {
    let intent = fx.authorized(8_000).await;
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let e = fx.increment(&intent.id, "inc-1", eur(10_000)).await.expect_err("unknown");
    assert_eq!((e.kind(), e.retry()), (ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly));
    let unknown = fx.get(&intent.id).await;
    assert_eq!(amounts(&unknown), (IntentStatus::OutcomeUnknown, eur(8_000), eur(8_000), eur(0)));
    let last = fx.history(&intent.id).await.pop().expect("event");
    assert_eq!((last.operation.as_str(), last.amount), ("increment", Some(eur(10_000))));

    // Other operations wait for the outcome.
    let e = fx.capture(&intent.id, "cap-early", None).await.expect_err("waits");
    assert_eq!((e.kind(), e.retry()), (ErrorKind::InvalidState, RetryClass::Retryable));
    let e = fx.increment(&intent.id, "inc-other", eur(12_000)).await.expect_err("waits");
    assert_eq!((e.kind(), e.retry()), (ErrorKind::InvalidState, RetryClass::Retryable));
    unknown
}

#[tokio::test]
async fn an_unknown_increment_applies_once_on_a_retry_with_the_same_key() {
    let fx = Fx::new();
    let unknown = unknown_increment(&fx).await;
    let calls = fx.gateway.provider_calls();
    let settled = fx.increment(&unknown.id, "inc-1", eur(10_000)).await.expect("replayed");
    assert_eq!(amounts(&settled), (IntentStatus::Authorized, eur(10_000), eur(10_000), eur(0)));
    assert_eq!(fx.snapshot(&settled).await.authorized, eur(10_000));
    // The provider replayed; the increment counted once.
    assert_eq!(fx.gateway.provider_calls(), calls);
    let again = fx.increment(&unknown.id, "inc-1", eur(10_000)).await.expect("stored");
    assert_eq!(again, settled);

    let captured = fx.capture(&unknown.id, "cap-1", None).await.expect("captured");
    assert_eq!(captured.captured, eur(10_000));
    assert_eq!(
        steps(&fx.history(&unknown.id).await),
        vec![
            ("authorize", IntentStatus::Authorized),
            ("increment", IntentStatus::OutcomeUnknown),
            ("increment", IntentStatus::Authorized),
            ("capture", IntentStatus::Captured),
        ]
    );
}

#[tokio::test]
async fn an_unknown_increment_is_settled_once_by_reconcile_and_a_late_retry_is_recognised() {
    let fx = Fx::new();
    let unknown = unknown_increment(&fx).await;
    let reconciled = fx.payments.reconcile(&fx.gateway, &tenant(), &unknown.id).await.expect("reconciled");
    assert_eq!(amounts(&reconciled), (IntentStatus::Authorized, eur(10_000), eur(10_000), eur(0)));
    let last = fx.history(&unknown.id).await.pop().expect("event");
    assert!(last.detail.as_deref().is_some_and(|d| d.contains("took effect")), "{last:?}");

    // Reconciling again changes nothing; the late retry is recognised from the history, with no provider call.
    let calls = fx.gateway.provider_calls();
    assert_eq!(fx.payments.reconcile(&fx.gateway, &tenant(), &unknown.id).await.expect("again"), reconciled);
    let late = fx.increment(&unknown.id, "inc-1", eur(10_000)).await.expect("recognised");
    assert_eq!(late, reconciled);
    assert_eq!(fx.gateway.provider_calls(), calls);
    assert_eq!(
        steps(&fx.history(&unknown.id).await),
        vec![
            ("authorize", IntentStatus::Authorized),
            ("increment", IntentStatus::OutcomeUnknown),
            ("reconcile", IntentStatus::Authorized),
        ]
    );
    let captured = fx.capture(&unknown.id, "cap-1", None).await.expect("captured");
    assert_eq!(captured.captured, eur(10_000));
}

#[tokio::test]
async fn an_unknown_increment_that_never_reached_the_provider_reconciles_to_the_old_amounts() {
    let fx = Fx::with_gateway(Scripted::new(Increments::Lose));
    let intent = fx.authorized(8_000).await;
    let e = fx.increment(&intent.id, "inc-1", eur(10_000)).await.expect_err("unknown");
    assert_eq!(e.kind(), ErrorKind::OutcomeUnknown);
    assert_eq!(fx.get(&intent.id).await.status, IntentStatus::OutcomeUnknown);
    fx.gateway.set(Increments::Forward);
    let reconciled = fx.payments.reconcile(&fx.gateway, &tenant(), &intent.id).await.expect("reconciled");
    assert_eq!(amounts(&reconciled), (IntentStatus::Authorized, eur(8_000), eur(8_000), eur(0)));
    let last = fx.history(&intent.id).await.pop().expect("event");
    assert!(last.detail.as_deref().is_some_and(|d| d.contains("did not take effect")), "{last:?}");

    // A retry with the same key now sends the increment again, and it applies once.
    let retried = fx.increment(&intent.id, "inc-1", eur(10_000)).await.expect("incremented");
    assert_eq!(amounts(&retried), (IntentStatus::Authorized, eur(10_000), eur(10_000), eur(0)));
    let captured = fx.capture(&intent.id, "cap-1", None).await.expect("captured");
    assert_eq!(captured.captured, eur(10_000));
}

/// A Stripe-signed `payment_intent.amount_capturable_updated` for `reference` with `minor` capturable.
fn authorized_event(id: &str, reference: &str, minor: i64) -> WebhookRequest {
    let body = json!({
        "id": id,
        "type": "payment_intent.amount_capturable_updated",
        "created": T0.unix_timestamp(),
        "data": { "object": { "object": "payment_intent", "id": reference, "amount": minor,
                              "amount_capturable": minor, "currency": "eur" } },
    })
    .to_string()
    .into_bytes();
    let header = sign(&Secret::new(SECRET), T0.unix_timestamp(), &body);
    WebhookRequest::new(vec![(SIGNATURE_HEADER.to_owned(), header)], body)
}

#[tokio::test]
async fn a_webhook_with_the_new_total_settles_an_unknown_increment_and_one_with_the_old_amount_does_not() {
    let fx = Fx::new();
    let unknown = unknown_increment(&fx).await;
    let verifier = Arc::new(StripeWebhookVerifier::new(Secret::new(SECRET)));
    let events = Arc::new(MemoryWebhookEventStore::default());
    let ingestor = WebhookIngestor::new(&fx.payments, events, tenant(), "memory", verifier);
    let reference = unknown.provider_reference.clone().expect("reference");

    // The old amount neither settles the pending increment nor changes anything.
    let report = ingestor.ingest(&authorized_event("evt_old", &reference, 8_000)).await.expect("acknowledged");
    assert_eq!((report.applied, report.ignored, report.conflicts), (0, 1, 0));
    assert_eq!(fx.get(&unknown.id).await, unknown);

    let report = ingestor.ingest(&authorized_event("evt_new", &reference, 10_000)).await.expect("acknowledged");
    assert_eq!(report.applied, 1);
    let settled = fx.get(&unknown.id).await;
    assert_eq!(amounts(&settled), (IntentStatus::Authorized, eur(10_000), eur(10_000), eur(0)));
    let last = fx.history(&unknown.id).await.pop().expect("event");
    assert!(last.detail.as_deref().is_some_and(|d| d.contains("took effect")), "{last:?}");

    // A late event with the old amount does not regress; the late retry is recognised without a provider call.
    let report = ingestor.ingest(&authorized_event("evt_late", &reference, 8_000)).await.expect("acknowledged");
    assert_eq!((report.applied, report.ignored), (0, 1));
    assert_eq!(fx.get(&unknown.id).await, settled);
    let calls = fx.gateway.provider_calls();
    assert_eq!(fx.increment(&unknown.id, "inc-1", eur(10_000)).await.expect("recognised"), settled);
    assert_eq!(fx.gateway.provider_calls(), calls);
    assert_eq!(fx.capture(&unknown.id, "cap-1", None).await.expect("captured").captured, eur(10_000));
}
