//! Service tests of `commerce-payments` against the testkit's in-memory gateway and stores.

#[path = "../common/mod.rs"]
mod common;
mod concurrency;
mod model;
mod webhook_model;

use std::sync::Arc;

use commerce_payments::{NewPayment, Operation, Payments, PaymentsError, intent_id_for, provider_key, state};
use commerce_ports::payment::{
    CaptureMethod, CaptureRequest, GatewayCapabilities, PaymentGateway, PaymentSnapshot, ProviderPaymentStatus,
    TenderKind, VoidRequest,
};
use commerce_ports::stores::{IdempotencyClaim, IntentEvent, IntentStatus, PaymentIntent, StoreSet};
use commerce_ports::{ChannelId, ErrorKind, IntentId, ManualClock, RetryClass, TenantId};
use commerce_testkit::memory::{GatewayFault, MemoryGateway, memory_store_set};
pub(crate) use common::{eur, key, tenant};
use time::OffsetDateTime;
use time::macros::datetime;

pub(crate) const T0: OffsetDateTime = datetime!(2025-01-01 12:00 UTC);

pub(crate) fn payment(minor: i64) -> NewPayment {
    NewPayment::new(
        tenant(),
        ChannelId::new("web").expect("channel"),
        TenderKind::Card,
        eur(minor),
        "pm_card_visa",
        "order-1",
    )
}

/// Services, fakes and a manual clock, wired as a host would.
pub(crate) struct Fx {
    pub(crate) payments: Payments,
    pub(crate) gateway: Arc<MemoryGateway>,
    pub(crate) stores: StoreSet,
    pub(crate) clock: Arc<ManualClock>,
}

impl Fx {
    pub(crate) fn new() -> Fx {
        Fx::with_gateway(MemoryGateway::new())
    }

    pub(crate) fn with_gateway(gateway: MemoryGateway) -> Fx {
        let stores = memory_store_set();
        let clock = Arc::new(ManualClock::new(T0));
        let payments = Payments::from_stores(&stores, clock.clone());
        Fx { payments, gateway: Arc::new(gateway), stores, clock }
    }

    pub(crate) fn calls(&self) -> u64 {
        self.gateway.provider_calls()
    }

    pub(crate) async fn authorize_with(&self, k: &str, p: NewPayment) -> Result<PaymentIntent, PaymentsError> {
        self.payments.authorize(&*self.gateway, "memory", p, &key(k)).await
    }

    pub(crate) async fn authorize(&self, k: &str, minor: i64) -> Result<PaymentIntent, PaymentsError> {
        self.authorize_with(k, payment(minor)).await
    }

    pub(crate) async fn capture(
        &self,
        id: &IntentId,
        k: &str,
        amount: Option<i64>,
        final_capture: bool,
    ) -> Result<PaymentIntent, PaymentsError> {
        self.payments.capture(&*self.gateway, &tenant(), id, amount.map(eur), final_capture, &key(k)).await
    }

    pub(crate) async fn refund(&self, id: &IntentId, k: &str, minor: i64) -> Result<PaymentIntent, PaymentsError> {
        self.payments.refund(&*self.gateway, &tenant(), id, eur(minor), &key(k)).await
    }

    pub(crate) async fn void(&self, id: &IntentId, k: &str) -> Result<PaymentIntent, PaymentsError> {
        self.payments.void(&*self.gateway, &tenant(), id, &key(k)).await
    }

    pub(crate) async fn reconcile(&self, id: &IntentId) -> Result<PaymentIntent, PaymentsError> {
        self.payments.reconcile(&*self.gateway, &tenant(), id).await
    }

    pub(crate) async fn get(&self, id: &IntentId) -> PaymentIntent {
        self.payments.get(&tenant(), id).await.expect("intent")
    }

    pub(crate) async fn history(&self, id: &IntentId) -> Vec<IntentEvent> {
        self.payments.history(&tenant(), id).await.expect("history")
    }

    pub(crate) async fn provider_view(&self, id: &IntentId) -> PaymentSnapshot {
        let reference = self.get(id).await.provider_reference.expect("a provider reference");
        self.gateway.retrieve(&reference).await.expect("snapshot")
    }

    pub(crate) async fn idempotency_record_exists(&self, k: &str) -> bool {
        self.stores.idempotency.get(&tenant(), &key(k)).await.expect("record").is_some()
    }
}

pub(crate) fn id_for(k: &str) -> IntentId {
    intent_id_for(&tenant(), &key(k)).expect("id")
}

/// Version equals history length, sequences are 1..=n, the last event has the intent's status.
pub(crate) fn assert_consistent(intent: &PaymentIntent, history: &[IntentEvent]) {
    assert_eq!(u64::try_from(history.len()).expect("len"), intent.version, "version == history length");
    for (i, e) in history.iter().enumerate() {
        assert_eq!(e.sequence, u64::try_from(i + 1).expect("seq"), "sequences are 1..=n");
    }
    assert_eq!(history.last().map(|e| e.status), Some(intent.status));
}

fn kind<T: std::fmt::Debug>(r: &Result<T, PaymentsError>) -> ErrorKind {
    r.as_ref().expect_err("an error").kind()
}

// --------------------------------------------------------------------------------------------------------
// Basics

#[tokio::test]
async fn authorize_capture_refund_with_a_derived_intent_id() {
    let fx = Fx::new();
    let intent = fx.authorize("order-1/auth", 5_000).await.expect("authorized");
    assert_eq!(intent.id, id_for("order-1/auth"));
    assert!(intent.id.as_str().starts_with("pi_") && intent.id.as_str().len() == 27, "{}", intent.id);
    assert_eq!(
        (intent.status, intent.authorized, intent.provider.as_str()),
        (IntentStatus::Authorized, eur(5_000), "memory")
    );
    assert!(intent.provider_reference.is_some());

    let intent = fx.capture(&intent.id, "order-1/cap", None, true).await.expect("captured");
    assert_eq!((intent.status, intent.captured), (IntentStatus::Captured, eur(5_000)));
    let intent = fx.refund(&intent.id, "order-1/ref", 1_500).await.expect("refunded");
    assert_eq!((intent.status, intent.refunded), (IntentStatus::PartiallyRefunded, eur(1_500)));

    let history = fx.history(&intent.id).await;
    assert_consistent(&intent, &history);
    let ops: Vec<_> = history.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["create", "authorize", "capture", "refund"]);
    assert_eq!(fx.calls(), 3);
    let view = fx.provider_view(&intent.id).await;
    assert_eq!((view.captured, view.refunded), (eur(5_000), eur(1_500)));
}

#[tokio::test]
async fn automatic_capture_yields_a_captured_intent() {
    let fx = Fx::new();
    let p = payment(2_000).with_capture_method(CaptureMethod::Automatic);
    let intent = fx.authorize_with("auto", p).await.expect("captured");
    assert_eq!((intent.status, intent.captured), (IntentStatus::Captured, eur(2_000)));
}

#[tokio::test]
async fn declines_fail_the_intent_and_replay_with_their_details() {
    let fx = Fx::new();
    let mut p = payment(2_000);
    p.payment_method.0 = "pm_card_chargeDeclinedInsufficientFunds".into();
    let e = fx.authorize_with("declined", p.clone()).await.expect_err("declined");
    assert_eq!((e.kind(), e.retry()), (ErrorKind::Declined, RetryClass::Declined));
    assert_eq!(e.provider_code(), Some("card_declined"));
    assert_eq!(e.decline().and_then(|d| d.decline_code.as_deref()), Some("insufficient_funds"));
    assert_eq!(e.intent(), Some(&id_for("declined")));
    let intent = fx.get(&id_for("declined")).await;
    assert_eq!(intent.status, IntentStatus::Failed);
    let text = fx.history(&intent.id).await.last().and_then(|e| state::event_text(e).map(str::to_owned));
    assert!(text.is_some_and(|t| t.contains("decline code insufficient_funds")));

    let again = fx.authorize_with("declined", p).await.expect_err("replayed");
    assert_eq!((again.kind(), again.message(), again.provider_code()), (e.kind(), e.message(), e.provider_code()));
    assert_eq!(again.decline(), e.decline());
    assert_eq!(fx.calls(), 1, "the replay did not reach the provider");
}

#[tokio::test]
async fn bad_input_and_unsupported_tenders_never_reach_the_provider() {
    let fx = Fx::new();
    let e = fx.authorize("zero", 0).await.expect_err("invalid");
    assert_eq!((e.kind(), e.message()), (ErrorKind::InvalidRequest, "authorize amount must be positive, got 0.00 EUR"));
    let mut cash = payment(100);
    cash.tender = TenderKind::Cash;
    let e = fx.authorize_with("cash", cash).await.expect_err("unsupported");
    assert_eq!((e.kind(), e.message()), (ErrorKind::Unsupported, "the gateway `memory` does not accept tender `cash`"));
    assert_eq!(fx.calls(), 0);
    let missing = fx.capture(&id_for("nobody"), "c", None, true).await;
    assert_eq!(kind(&missing), ErrorKind::NotFound);
}

#[tokio::test]
async fn void_after_capture_says_refund_instead() {
    let fx = Fx::new();
    let id = fx.authorize("a", 5_000).await.expect("authorized").id;
    fx.capture(&id, "c", Some(1_000), false).await.expect("partial");
    let e = fx.void(&id, "v").await.expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::InvalidState);
    assert!(e.message().ends_with("can no longer be voided; refund instead"), "{}", e.message());
    assert_eq!(fx.calls(), 2);
}

#[tokio::test]
async fn a_provider_refusal_leaves_the_intent_unchanged_and_is_the_keys_outcome() {
    let fx = Fx::new();
    let intent = fx.authorize("a", 5_000).await.expect("authorized");
    // Someone voids the payment at the provider directly; the intent does not know yet.
    let reference = intent.provider_reference.clone().expect("reference");
    fx.gateway.void(VoidRequest::new(reference, key("dashboard-void"))).await.expect("voided at the provider");
    let calls = fx.calls();
    let e = fx.capture(&intent.id, "c", None, true).await.expect_err("refused by the provider");
    assert_eq!(e.kind(), ErrorKind::InvalidState);
    assert!(e.message().contains("was voided"), "{}", e.message());
    assert_eq!(fx.get(&intent.id).await, intent, "a refused capture changes nothing");
    let again = fx.capture(&intent.id, "c", None, true).await.expect_err("replayed");
    assert_eq!((again.kind(), again.message()), (e.kind(), e.message()));
    assert_eq!(fx.calls(), calls + 1, "one provider call for the capture, none for its replay");
    let reconciled = fx.reconcile(&intent.id).await.expect("reconciled");
    assert_eq!(reconciled.status, IntentStatus::Voided);
}

// --------------------------------------------------------------------------------------------------------
// Idempotency

#[tokio::test]
async fn replays_return_the_stored_intent_without_provider_calls() {
    let fx = Fx::new();
    let first = fx.authorize("a", 5_000).await.expect("authorized");
    let captured = fx.capture(&first.id, "c", Some(2_000), false).await.expect("captured");
    assert_eq!(fx.calls(), 2);
    assert_eq!(fx.authorize("a", 5_000).await.expect("replay"), first, "the stored intent, as it was then");
    assert_eq!(fx.capture(&first.id, "c", Some(2_000), false).await.expect("replay"), captured);
    assert_eq!(fx.calls(), 2, "replays never reach the provider");
    assert_eq!(fx.get(&first.id).await.captured, eur(2_000), "captured once");
}

#[tokio::test]
async fn same_key_with_other_parameters_or_operation_conflicts() {
    let fx = Fx::new();
    let id = fx.authorize("a", 5_000).await.expect("authorized").id;
    let e = fx.authorize("a", 6_000).await.expect_err("conflict");
    assert_eq!(e.kind(), ErrorKind::IdempotencyConflict);
    assert_eq!(e.message(), "idempotency key `a` was first used for `authorize` with other parameters");
    fx.capture(&id, "c", Some(1_000), false).await.expect("captured");
    let e = fx.refund(&id, "c", 1_000).await.expect_err("conflict");
    assert_eq!((e.kind(), e.operation()), (ErrorKind::IdempotencyConflict, Operation::Refund));
    assert!(e.message().contains("first used for `capture`"), "{}", e.message());
    let e = fx.capture(&id, "c", Some(1_001), false).await.expect_err("conflict");
    assert_eq!(e.kind(), ErrorKind::IdempotencyConflict);
    assert_eq!(fx.calls(), 2);
}

#[tokio::test]
async fn a_validation_failure_is_stored_and_replayed_even_when_it_would_now_pass() {
    let fx = Fx::new();
    let id = fx.authorize("a", 5_000).await.expect("authorized").id;
    let over = fx.capture(&id, "over", Some(6_000), false).await.expect_err("over-capture");
    assert_eq!(
        (over.kind(), over.message()),
        (ErrorKind::InvalidRequest, "capture of 60.00 EUR exceeds the capturable 50.00 EUR")
    );
    let early = fx.refund(&id, "early", 1_000).await.expect_err("nothing captured");
    assert!(early.message().ends_with("has nothing captured; void it instead"), "{}", early.message());
    fx.capture(&id, "c", None, true).await.expect("captured");
    // The refund would pass now, but the key's outcome is the stored failure.
    let replay = fx.refund(&id, "early", 1_000).await.expect_err("stored failure");
    assert_eq!((replay.kind(), replay.message()), (early.kind(), early.message()));
    let replay = fx.capture(&id, "over", Some(6_000), false).await.expect_err("stored failure");
    assert_eq!((replay.kind(), replay.message()), (over.kind(), over.message()));
    assert_eq!(fx.calls(), 2);
    assert_eq!(fx.get(&id).await.refunded, eur(0));
}

/// The idempotency record another instance would hold for `k` after running `run` on a twin service.
async fn twin_record(k: &str, run: impl AsyncFnOnce(&Fx)) -> IdempotencyClaim {
    let twin = Fx::new();
    run(&twin).await;
    let record = twin.stores.idempotency.get(&tenant(), &key(k)).await.expect("get").expect("record");
    IdempotencyClaim::new(record.operation, record.fingerprint, T0, T0 + time::Duration::seconds(30))
}

#[tokio::test]
async fn a_crashed_holder_is_taken_over_after_the_lease_and_the_provider_replays() {
    let fx = Fx::new();
    let intent = fx.authorize("a", 5_000).await.expect("authorized");
    let claim = twin_record("c", async |twin: &Fx| {
        let id = twin.authorize("a", 5_000).await.expect("authorized").id;
        twin.capture(&id, "c", Some(2_000), true).await.expect("captured");
    })
    .await;
    // Another instance claimed "c", sent the capture with the same provider key, and died before recording it.
    fx.stores.idempotency.begin(&tenant(), &key("c"), claim).await.expect("claimed");
    let reference = intent.provider_reference.clone().expect("reference");
    fx.gateway.capture(CaptureRequest::new(reference, eur(2_000), key("c"))).await.expect("sent");
    assert_eq!(fx.calls(), 2);

    let e = fx.capture(&intent.id, "c", Some(2_000), true).await.expect_err("held");
    assert_eq!((e.kind(), e.retry()), (ErrorKind::InProgress, RetryClass::Retryable));
    fx.clock.advance(time::Duration::seconds(31));
    let recovered = fx.capture(&intent.id, "c", Some(2_000), true).await.expect("taken over");
    assert_eq!((recovered.status, recovered.captured), (IntentStatus::Captured, eur(2_000)));
    assert_eq!(fx.calls(), 2, "the provider replayed the crashed holder's capture");
    assert_eq!(fx.provider_view(&intent.id).await.captured, eur(2_000));
}

#[tokio::test]
async fn a_held_key_is_in_progress_until_its_lease_ends() {
    let fx = Fx::new();
    let claim = twin_record("a", async |twin: &Fx| {
        twin.authorize("a", 5_000).await.expect("authorized");
    })
    .await;
    fx.stores.idempotency.begin(&tenant(), &key("a"), claim).await.expect("claimed");

    let e = fx.authorize("a", 5_000).await.expect_err("in progress");
    assert_eq!((e.kind(), e.retry()), (ErrorKind::InProgress, RetryClass::Retryable));
    assert_eq!(fx.calls(), 0);

    // The holder died: after the lease, the next caller takes over.
    fx.clock.advance(time::Duration::seconds(31));
    let intent = fx.authorize("a", 5_000).await.expect("taken over");
    assert_eq!(intent.status, IntentStatus::Authorized);
    assert_eq!(fx.calls(), 1);
}

// --------------------------------------------------------------------------------------------------------
// Unknown outcomes

#[tokio::test]
async fn unknown_authorization_then_retry_with_the_same_key_authorizes_once() {
    let fx = Fx::new();
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let e = fx.authorize("a", 5_000).await.expect_err("unknown");
    assert_eq!((e.kind(), e.retry()), (ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly));
    let id = id_for("a");
    let intent = fx.get(&id).await;
    assert_eq!((intent.status, intent.authorized), (IntentStatus::OutcomeUnknown, eur(0)));
    assert!(!fx.idempotency_record_exists("a").await, "the key is released, not completed as failed");
    let history = fx.history(&id).await;
    assert_consistent(&intent, &history);
    let last = history.last().expect("event");
    assert_eq!(last.operation, "authorize");
    assert!(state::event_text(last).is_some_and(|t| t.starts_with("outcome unknown: ")));

    let intent = fx.authorize("a", 5_000).await.expect("the provider replays");
    assert_eq!((intent.status, intent.authorized), (IntentStatus::Authorized, eur(5_000)));
    assert_eq!(fx.calls(), 1, "one real authorization");
    assert_consistent(&intent, &fx.history(&id).await);
    assert_eq!(fx.authorize("a", 5_000).await.expect("replay"), intent);
}

#[tokio::test]
async fn unknown_authorization_is_settled_by_reconcile_which_resends_with_the_same_key() {
    let fx = Fx::new();
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    fx.authorize("a", 5_000).await.expect_err("unknown");
    let intent = fx.reconcile(&id_for("a")).await.expect("reconciled");
    assert_eq!((intent.status, intent.authorized), (IntentStatus::Authorized, eur(5_000)));
    assert!(intent.provider_reference.is_some());
    assert_eq!(fx.calls(), 1, "the re-sent authorization was a replay at the provider");
    // A late retry of the original call is recognised: no new event, no provider call.
    let late = fx.authorize("a", 5_000).await.expect("late retry");
    assert_eq!(late, intent);
    assert_eq!(fx.calls(), 1);
}

#[tokio::test]
async fn unknown_capture_then_retry_with_the_same_key_captures_once() {
    let fx = Fx::new();
    let id = fx.authorize("a", 5_000).await.expect("authorized").id;
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let e = fx.capture(&id, "c", Some(3_000), false).await.expect_err("unknown");
    assert_eq!(e.kind(), ErrorKind::OutcomeUnknown);
    let intent = fx.get(&id).await;
    assert_eq!((intent.status, intent.captured), (IntentStatus::OutcomeUnknown, eur(0)));
    let pending = state::pending_operation(&intent, &fx.history(&id).await).expect("pending");
    assert_eq!(
        (pending.call.operation, pending.amount, pending.prior_status),
        (Operation::Capture, Some(eur(3_000)), IntentStatus::Authorized)
    );

    // Other operations wait, and are not stored as the outcome of their keys.
    let e = fx.void(&id, "v").await.expect_err("waits");
    assert_eq!((e.kind(), e.retry()), (ErrorKind::InvalidState, RetryClass::Retryable));
    assert!(!fx.idempotency_record_exists("v").await);

    let intent = fx.capture(&id, "c", Some(3_000), false).await.expect("retry");
    assert_eq!((intent.status, intent.captured), (IntentStatus::PartiallyCaptured, eur(3_000)));
    assert_eq!(fx.calls(), 2, "authorize and one capture");
    assert_eq!(fx.provider_view(&id).await.captured, eur(3_000), "captured once at the provider");
    assert_eq!(fx.capture(&id, "c", Some(3_000), false).await.expect("replay"), intent);
    assert_consistent(&intent, &fx.history(&id).await);
}

#[tokio::test]
async fn reconcile_after_an_unknown_capture_takes_the_providers_amount() {
    let fx = Fx::new();
    let id = fx.authorize("a", 5_000).await.expect("authorized").id;
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    fx.capture(&id, "c", Some(2_000), true).await.expect_err("unknown");
    let intent = fx.reconcile(&id).await.expect("reconciled");
    assert_eq!(
        (intent.status, intent.captured),
        (IntentStatus::Captured, eur(2_000)),
        "a final capture closes capturing"
    );
    assert_eq!(intent.captured, fx.provider_view(&id).await.captured);
    // The original caller retries later: recognised, nothing applied twice, no provider call.
    let retried = fx.capture(&id, "c", Some(2_000), true).await.expect("retry");
    assert_eq!(retried, intent);
    assert_eq!(fx.calls(), 2);
    // Reconciling a settled intent changes nothing.
    assert_eq!(fx.reconcile(&id).await.expect("again"), intent);
    // The void that had to wait now gets a precise answer.
    let e = fx.void(&id, "v").await.expect_err("captured");
    assert!(e.message().ends_with("refund instead"), "{}", e.message());
}

#[tokio::test]
async fn unknown_refund_and_void_settle_by_retry() {
    let fx = Fx::new();
    let id = fx.authorize("a", 5_000).await.expect("authorized").id;
    fx.capture(&id, "c", None, true).await.expect("captured");
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    fx.refund(&id, "r", 5_000).await.expect_err("unknown");
    assert_eq!(fx.refund(&id, "r", 5_000).await.expect("retry").status, IntentStatus::Refunded);

    let id = fx.authorize("b", 1_000).await.expect("authorized").id;
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    fx.void(&id, "v2").await.expect_err("unknown");
    assert_eq!(fx.void(&id, "v2").await.expect("retry").status, IntentStatus::Voided);
    assert_eq!(fx.calls(), 5);
}

#[tokio::test]
async fn unavailable_records_nothing_as_done_and_a_retry_runs() {
    let fx = Fx::new();
    fx.gateway.inject(GatewayFault::Unavailable);
    let e = fx.authorize("a", 5_000).await.expect_err("unavailable");
    assert_eq!((e.kind(), e.retry()), (ErrorKind::Unavailable, RetryClass::Retryable));
    // Nothing happened at the provider: no intent is stored (it is written with the provider's answer).
    assert_eq!(kind(&fx.payments.get(&tenant(), &id_for("a")).await), ErrorKind::NotFound);
    assert!(!fx.idempotency_record_exists("a").await);
    let intent = fx.authorize("a", 5_000).await.expect("retry");
    assert_eq!((intent.status, intent.version), (IntentStatus::Authorized, 2));
    assert_eq!(fx.history(&intent.id).await.len(), 2, "created and authorized, written together");

    fx.gateway.inject(GatewayFault::Unavailable);
    let before = fx.get(&intent.id).await;
    assert_eq!(kind(&fx.capture(&intent.id, "c", None, true).await), ErrorKind::Unavailable);
    assert_eq!(fx.get(&intent.id).await, before, "nothing recorded");
    assert_eq!(fx.capture(&intent.id, "c", None, true).await.expect("retry").captured, eur(5_000));
    assert_eq!(fx.calls(), 4, "two failed calls and two real ones");
}

#[tokio::test]
async fn long_keys_get_a_stable_derived_provider_key() {
    let mut caps = GatewayCapabilities::full(vec![TenderKind::Card]);
    caps.max_idempotency_key_len = 20;
    let fx = Fx::with_gateway(MemoryGateway::with_capabilities(caps));
    let long = "order-000000000001/capture/attempt";
    let id = fx.authorize("order-000000000001/authorize", 5_000).await.expect("authorized").id;
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    fx.capture(&id, long, Some(1_000), false).await.expect_err("unknown");
    let intent = fx.capture(&id, long, Some(1_000), false).await.expect("the retry sends the same derived key");
    assert_eq!(intent.captured, eur(1_000));
    assert_eq!(fx.provider_view(&id).await.captured, eur(1_000));
    assert_eq!(fx.calls(), 2);
}

#[tokio::test]
async fn a_gateway_too_strict_for_derived_keys_is_a_configuration_error_naming_the_operation() {
    let mut caps = GatewayCapabilities::full(vec![TenderKind::Card]);
    caps.max_idempotency_key_len = 8;
    let fx = Fx::with_gateway(MemoryGateway::with_capabilities(caps));
    let e = fx.authorize("a-key-longer-than-eight", 5_000).await.expect_err("too strict");
    assert_eq!((e.kind(), e.operation()), (ErrorKind::Configuration, Operation::Authorize));
    let id = fx.authorize("short", 5_000).await.expect("fits").id;
    let e = fx.capture(&id, "a-capture-key-longer-than-eight", None, true).await.expect_err("too strict");
    assert_eq!((e.kind(), e.operation()), (ErrorKind::Configuration, Operation::Capture));
    assert!(e.message().contains("at most 8 characters"), "{}", e.message());
    assert_eq!(fx.calls(), 1);
}

#[test]
fn provider_keys_fit_the_gateway_and_are_stable_per_tenant() {
    let short = key("k1");
    assert_eq!(provider_key(&tenant(), &short, 255).expect("fits"), short);
    let long = key(&"x".repeat(80));
    let derived = provider_key(&tenant(), &long, 64).expect("derived");
    assert_eq!(derived.as_str().len(), 64);
    assert!(derived.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(provider_key(&tenant(), &long, 64).expect("again"), derived, "stable");
    let other = TenantId::new("globex").expect("tenant");
    assert_ne!(provider_key(&other, &long, 64).expect("derived"), derived, "tenant-specific");
    assert_eq!(provider_key(&tenant(), &long, 20).expect("short").as_str(), &derived.as_str()[..20]);
    let e = provider_key(&tenant(), &long, 8).expect_err("too short");
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert_ne!(id_for("a"), id_for("b"));
    assert_ne!(intent_id_for(&other, &key("a")).expect("id"), id_for("a"));
}

#[tokio::test]
async fn reconcile_leaves_terminal_and_unsent_intents_alone() {
    let fx = Fx::new();
    let id = fx.authorize("a", 5_000).await.expect("authorized").id;
    let voided = fx.void(&id, "v").await.expect("voided");
    assert_eq!(fx.reconcile(&id).await.expect("terminal"), voided);
    fx.gateway.inject(GatewayFault::Unavailable);
    fx.authorize("b", 5_000).await.expect_err("unavailable");
    // Nothing happened at the provider, so nothing is stored: the intent is written with the provider's answer.
    assert_eq!(kind(&fx.payments.get(&tenant(), &id_for("b")).await), ErrorKind::NotFound);
    assert_eq!(kind(&fx.reconcile(&id_for("b")).await), ErrorKind::NotFound);
    // An intent stored before its provider call (as the claim can still create one) is left alone.
    let unsent = PaymentIntent::new(
        id_for("c"),
        tenant(),
        ChannelId::new("web").expect("channel"),
        TenderKind::Card,
        eur(5_000),
        "memory",
        "order-c",
        T0,
    );
    let created = IntentEvent::new(1, T0, "create", IntentStatus::RequiresAuthorization);
    fx.stores.intents.create(unsent.clone(), created).await.expect("stored unsent");
    assert_eq!(fx.reconcile(&unsent.id).await.expect("nothing to do"), unsent);
    assert_eq!(kind(&fx.reconcile(&id_for("nobody")).await), ErrorKind::NotFound);
    // The unavailable authorization's retry with the same key runs and stores the intent once.
    let retried = fx.authorize("b", 5_000).await.expect("the retry authorizes");
    assert_eq!((retried.status, retried.version), (IntentStatus::Authorized, 2));
    assert_eq!(fx.history(&retried.id).await.len(), 2);
}

#[tokio::test]
async fn provider_snapshot_helpers_match_the_intent() {
    // Guards the fixture itself: a snapshot reflects what the gateway did.
    let fx = Fx::new();
    let id = fx.authorize("a", 700).await.expect("authorized").id;
    let view = fx.provider_view(&id).await;
    assert_eq!((view.status, view.authorized), (ProviderPaymentStatus::Authorized, eur(700)));
}
