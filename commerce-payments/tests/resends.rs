//! A resend (a call that may have reached the provider before) is settled only by the provider's refusal of
//! the operation itself; an error about our side (credentials, configuration, a resource another account does
//! not know) leaves its outcome unknown.

mod common;

use common::{card, eur, key, tenant};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use commerce_payments::{NewPayment, Payments, intent_id_for};
use commerce_ports::payment::{
    AuthorizeRequest, CaptureRequest, GatewayCapabilities, IncrementRequest, ModificationResult, PaymentGateway,
    PaymentMethodRef, PaymentSnapshot, RefundRequest, TenderKind, TokenizeRequest, VoidRequest,
};
use commerce_ports::stores::IntentStatus;
use commerce_ports::{ErrorKind, IntentId, ManualClock, PaymentError, RetryClass};
use commerce_testkit::memory::{FailingLedger, GatewayFault, MemoryGateway, memory_store_set};
use time::macros::datetime;

/// The memory gateway, or, while `refuse` is set, a provider that refuses every call with that kind (rotated
/// credentials, another account bound, a misconfiguration).
#[derive(Debug, Default)]
struct Refusing {
    inner: MemoryGateway,
    refuse: Mutex<Option<ErrorKind>>,
    /// Authorizations and captures reach the provider and are processed, and their answer never comes back.
    hang: std::sync::atomic::AtomicBool,
    /// The next authorization waits for `stalled` and then answers `Unavailable` (nothing happened).
    stall: std::sync::atomic::AtomicBool,
    stalled: tokio::sync::Notify,
    /// Authorizations that reached this gateway.
    entered: std::sync::atomic::AtomicUsize,
}

impl Refusing {
    fn check(&self, operation: &'static str) -> Result<(), PaymentError> {
        match *self.refuse.lock().unwrap_or_else(std::sync::PoisonError::into_inner) {
            Some(kind) => Err(PaymentError::new(kind, operation, "refused by the provider")),
            None => Ok(()),
        }
    }
    fn set(&self, kind: Option<ErrorKind>) {
        *self.refuse.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = kind;
    }
    async fn hang_if_set(&self) {
        if self.hang.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait]
impl PaymentGateway for Refusing {
    fn capabilities(&self) -> GatewayCapabilities {
        self.inner.capabilities()
    }
    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError> {
        self.entered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.stall.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.stalled.notified().await;
            return Err(PaymentError::new(ErrorKind::Unavailable, "authorize", "503 before processing"));
        }
        self.check("authorize")?;
        let answer = self.inner.authorize(request).await;
        self.hang_if_set().await;
        answer
    }
    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        self.check("capture")?;
        let answer = self.inner.capture(request).await;
        self.hang_if_set().await;
        answer
    }
    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        self.check("refund")?;
        self.inner.refund(request).await
    }
    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError> {
        self.check("void")?;
        self.inner.void(request).await
    }
    async fn increment_authorization(&self, request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError> {
        self.check("increment_authorization")?;
        self.inner.increment_authorization(request).await
    }
    async fn retrieve(&self, provider_reference: &str) -> Result<PaymentSnapshot, PaymentError> {
        self.check("retrieve")?;
        self.inner.retrieve(provider_reference).await
    }
    async fn tokenize(&self, request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError> {
        self.check("tokenize")?;
        self.inner.tokenize(request).await
    }
}

fn fx() -> (Payments, Refusing) {
    (Payments::from_stores(&memory_store_set(), clock()), Refusing::default())
}

fn payment() -> NewPayment {
    card(5_000, "order-1")
}

async fn status(payments: &Payments, id: &IntentId) -> (IntentStatus, commerce_ports::Money) {
    let intent = payments.get(&tenant(), id).await.expect("intent");
    (intent.status, intent.refunded)
}

#[tokio::test]
async fn a_resent_authorization_refused_for_our_side_stays_unknown_never_failed() {
    for kind in [
        ErrorKind::Authentication,
        ErrorKind::Configuration,
        ErrorKind::NotFound,
        ErrorKind::Unsupported,
        ErrorKind::InvalidRequest,
        ErrorKind::InvalidState,
    ] {
        let (payments, gateway) = fx();
        gateway.inner.inject(GatewayFault::TimeoutAfterProcessing);
        let first = payments.authorize(&gateway, "memory", payment(), &key("a")).await.expect_err("unknown");
        assert_eq!(first.kind(), ErrorKind::OutcomeUnknown);
        let id = intent_id_for(&tenant(), &key("a")).expect("id");
        // The credentials were rotated (or another account bound) before the retry: the provider refuses it, which
        // says nothing about the first attempt, which charged the card.
        gateway.set(Some(kind));
        let retry = payments.authorize(&gateway, "memory", payment(), &key("a")).await.expect_err("still unknown");
        assert_eq!(retry.kind(), ErrorKind::OutcomeUnknown, "{kind:?}: {retry}");
        assert!(retry.message().contains(kind.as_str()), "{retry}");
        assert_eq!(status(&payments, &id).await.0, IntentStatus::OutcomeUnknown, "{kind:?}: not failed");
        // Fixed: the retry with the same key gets the provider's replay; one charge.
        gateway.set(None);
        let settled = payments.authorize(&gateway, "memory", payment(), &key("a")).await.expect("authorized");
        assert_eq!((settled.status, gateway.inner.provider_calls()), (IntentStatus::Authorized, 1), "{kind:?}");
    }
}

#[tokio::test]
async fn a_decline_of_a_resent_authorization_still_fails_it() {
    let (payments, gateway) = fx();
    gateway.inner.inject(GatewayFault::TimeoutAfterProcessing);
    let _ = payments.authorize(&gateway, "memory", payment(), &key("d")).await.expect_err("unknown");
    let id = intent_id_for(&tenant(), &key("d")).expect("id");
    // The provider's verdict on the payment itself (with the same provider key it answers as the first time).
    gateway.set(Some(ErrorKind::Declined));
    let declined = payments.authorize(&gateway, "memory", payment(), &key("d")).await.expect_err("declined");
    assert_eq!(declined.kind(), ErrorKind::Declined);
    assert_eq!(status(&payments, &id).await.0, IntentStatus::Failed);
}

#[tokio::test]
async fn a_resent_refund_refused_for_our_side_keeps_the_refund_pending() {
    let (payments, gateway) = fx();
    let id = payments.authorize(&gateway, "memory", payment(), &key("r")).await.expect("authorized").id;
    payments.capture(&gateway, &tenant(), &id, None, true, &key("r-cap")).await.expect("captured");
    gateway.inner.inject(GatewayFault::TimeoutAfterProcessing);
    let lost = payments.refund(&gateway, &tenant(), &id, eur(2_000), &key("r-ref")).await.expect_err("unknown");
    assert_eq!(lost.kind(), ErrorKind::OutcomeUnknown);
    gateway.set(Some(ErrorKind::Authentication));
    let retry = payments.refund(&gateway, &tenant(), &id, eur(2_000), &key("r-ref")).await.expect_err("unknown");
    assert_eq!(retry.kind(), ErrorKind::OutcomeUnknown, "{retry}");
    // Still pending, so the reconciler sees it and a fresh refund key is refused while it is.
    assert_eq!(status(&payments, &id).await.0, IntentStatus::OutcomeUnknown);
    let other = payments.refund(&gateway, &tenant(), &id, eur(2_000), &key("r-ref-2")).await.expect_err("pending");
    assert_eq!(other.kind(), ErrorKind::InvalidState, "{other}");
    gateway.set(None);
    let refunded = payments.refund(&gateway, &tenant(), &id, eur(2_000), &key("r-ref")).await.expect("refunded");
    assert_eq!((refunded.status, refunded.refunded), (IntentStatus::PartiallyRefunded, eur(2_000)));
    let view = gateway.inner.retrieve(refunded.provider_reference.as_deref().expect("reference")).await;
    assert_eq!(view.expect("view").refunded, eur(2_000), "refunded once");
}

#[tokio::test]
async fn reconcile_takes_a_not_found_only_from_a_gateway_that_looks_payments_up() {
    let (payments, gateway) = fx();
    gateway.inner.inject(GatewayFault::TimeoutAfterProcessing);
    let _ = payments.authorize(&gateway, "memory", payment(), &key("n")).await.expect_err("unknown");
    let id = intent_id_for(&tenant(), &key("n")).expect("id");
    // Another account bound since answers "no such payment method": not a verdict on the first attempt.
    gateway.set(Some(ErrorKind::NotFound));
    let error = payments.reconcile(&gateway, &tenant(), &id).await.expect_err("not concluded");
    assert_eq!(error.kind(), ErrorKind::NotFound);
    assert_eq!(status(&payments, &id).await.0, IntentStatus::OutcomeUnknown);
}

/// The tests' clock.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(datetime!(2026-11-24 09:00 UTC)))
}

/// A memory gateway that declares Stripe's replay window (24 h).
fn replaying_a_day() -> MemoryGateway {
    let mut caps = GatewayCapabilities::full(vec![TenderKind::Card]);
    caps.replay_window = Some(std::time::Duration::from_secs(24 * 3600));
    MemoryGateway::with_capabilities(caps)
}

/// [`replaying_a_day`], with the service and its clock.
fn with_replay_window() -> (Payments, Arc<ManualClock>, MemoryGateway) {
    let clock = clock();
    (Payments::from_stores(&memory_store_set(), clock.clone()), clock, replaying_a_day())
}

#[tokio::test]
async fn an_authorization_unknown_for_longer_than_the_replay_window_is_never_sent_again() {
    let (payments, clock, gateway) = with_replay_window();
    gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let _ = payments.authorize(&gateway, "memory", payment(), &key("w")).await.expect_err("unknown");
    let id = intent_id_for(&tenant(), &key("w")).expect("id");
    let calls = gateway.provider_calls();
    // Within the window a retry is answered by the provider's replay; after it, the provider may have forgotten
    // the key and would charge again: nothing is sent, by a retry or by a reconciliation.
    clock.advance(time::Duration::hours(25));
    let retry = payments.authorize(&gateway, "memory", payment(), &key("w")).await.expect_err("not sent");
    assert_eq!(retry.kind(), ErrorKind::OutcomeUnknown, "{retry}");
    assert!(retry.message().contains("replays answers by key"), "{retry}");
    let reconciled = payments.reconcile(&gateway, &tenant(), &id).await.expect_err("not sent");
    assert_eq!(reconciled.kind(), ErrorKind::InvalidState, "{reconciled}");
    assert_eq!(gateway.provider_calls(), calls, "nothing was sent again");
    assert_eq!(status(&payments, &id).await.0, IntentStatus::OutcomeUnknown);
}

#[tokio::test]
async fn a_capture_unknown_for_longer_than_the_replay_window_is_settled_by_retrieve_not_resent() {
    let (payments, clock, gateway) = with_replay_window();
    let id = payments.authorize(&gateway, "memory", payment(), &key("c")).await.expect("authorized").id;
    gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let _ = payments.capture(&gateway, &tenant(), &id, None, true, &key("c-cap")).await.expect_err("unknown");
    let calls = gateway.provider_calls();
    clock.advance(time::Duration::hours(25));
    let retry = payments.capture(&gateway, &tenant(), &id, None, true, &key("c-cap")).await.expect_err("not sent");
    assert_eq!(retry.kind(), ErrorKind::OutcomeUnknown, "{retry}");
    assert_eq!(gateway.provider_calls(), calls, "not sent again");
    // Reading the provider's view is safe at any age.
    let settled = payments.reconcile(&gateway, &tenant(), &id).await.expect("settled");
    assert_eq!((settled.status, settled.captured), (IntentStatus::Captured, eur(5_000)));
}

#[tokio::test]
async fn reconcile_through_a_gateway_refusing_the_request_as_invalid_fails_nothing() {
    let (payments, gateway) = fx();
    gateway.inner.inject(GatewayFault::TimeoutAfterProcessing);
    let _ = payments.authorize(&gateway, "memory", payment(), &key("i")).await.expect_err("unknown");
    let id = intent_id_for(&tenant(), &key("i")).expect("id");
    // A gateway bound since refuses the request as sent now (say, a payment method of another terminal).
    gateway.set(Some(ErrorKind::InvalidRequest));
    let error = payments.reconcile(&gateway, &tenant(), &id).await.expect_err("not concluded");
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert_eq!(status(&payments, &id).await.0, IntentStatus::OutcomeUnknown, "not failed: the card may be charged");
}

#[tokio::test]
async fn a_taken_over_authorization_refused_before_sending_keeps_its_key_as_a_possible_resend() {
    let clock = clock();
    let payments = Payments::from_stores(&memory_store_set(), clock.clone());
    let gateway = Refusing::default();
    // The first caller's authorization is processed by the provider, and the caller goes away before the
    // answer: no intent, the key claimed until its lease ends.
    gateway.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let k = key("t");
    let first = payments.authorize(&gateway, "memory", payment(), &k);
    assert!(tokio::time::timeout(std::time::Duration::from_millis(20), first).await.is_err());
    gateway.hang.store(false, std::sync::atomic::Ordering::SeqCst);
    clock.advance(time::Duration::try_from(payments.lease()).expect("lease") + time::Duration::seconds(1));
    // The next caller takes the key over through a gateway that cannot take the request: refused before
    // sending, but not stored as the payment's outcome (the first attempt may have charged the card).
    let wrong = MemoryGateway::with_capabilities(GatewayCapabilities::full(vec![TenderKind::Wallet]));
    let refused = payments.authorize(&wrong, "memory", payment(), &key("t")).await.expect_err("refused");
    assert_eq!(refused.kind(), ErrorKind::Unsupported, "{refused}");
    // The key is kept and handed over at once: the right gateway's request is a resend (the provider replays
    // its first answer), one charge, authorized.
    let intent = payments.authorize(&gateway, "memory", payment(), &key("t")).await.expect("authorized");
    assert_eq!((intent.status, gateway.inner.provider_calls()), (IntentStatus::Authorized, 1));
}

/// A gateway declaring Stripe's replay window (24 h) whose answers can be lost (`hang`), with its clock.
fn hanging_with_replay_window() -> (Payments, Arc<ManualClock>, Arc<Refusing>) {
    let (payments, clock, inner) = with_replay_window();
    (payments, clock, Arc::new(Refusing { inner, ..Refusing::default() }))
}

/// Runs `call` until it is at the provider, then drops it: the caller went away (or died) mid-call.
async fn abandon<T>(gateway: &Refusing, call: impl std::future::Future<Output = T>) {
    gateway.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(tokio::time::timeout(std::time::Duration::from_millis(20), call).await.is_err(), "answered");
    gateway.hang.store(false, std::sync::atomic::Ordering::SeqCst);
}

#[tokio::test]
async fn a_key_taken_over_after_the_replay_window_is_not_sent_again_and_is_recorded_unknown() {
    let (payments, clock, gateway) = hanging_with_replay_window();
    abandon(&gateway, payments.authorize(&*gateway, "memory", payment(), &key("late"))).await;
    let calls = gateway.inner.provider_calls();
    // Nobody retried for a day: the provider may have forgotten the key and would charge the card again.
    clock.advance(time::Duration::hours(25));
    let late = payments.authorize(&*gateway, "memory", payment(), &key("late")).await.expect_err("not sent");
    assert_eq!(late.kind(), ErrorKind::OutcomeUnknown, "{late}");
    assert!(late.message().contains("replays answers by key"), "{late}");
    assert_eq!(gateway.inner.provider_calls(), calls, "nothing was sent again");
    // The intent is stored as unknown, so a retry knows it at once and the reconciler's pass finds it for an
    // operator.
    let id = intent_id_for(&tenant(), &key("late")).expect("id");
    assert_eq!(status(&payments, &id).await.0, IntentStatus::OutcomeUnknown);
    let again = payments.authorize(&*gateway, "memory", payment(), &key("late")).await.expect_err("not sent");
    assert_eq!(again.kind(), ErrorKind::OutcomeUnknown, "{again}");
    let bound: Arc<dyn PaymentGateway> = gateway.clone();
    let report = payments.reconcile_unknown(&tenant(), |_| Some(bound.clone()), 10, None).await.expect("pass");
    let counts = (report.examined, report.needs_operator.len(), report.settled.len());
    assert_eq!(counts, (1, 1, 0), "{report:?}");
    assert_eq!(gateway.inner.provider_calls(), calls, "nothing was sent again");
}

#[tokio::test]
async fn a_resend_under_a_key_taken_over_is_dated_from_the_first_claim() {
    let (payments, clock, gateway) = hanging_with_replay_window();
    abandon(&gateway, payments.authorize(&*gateway, "memory", payment(), &key("dated"))).await;
    // Two hours later the key is taken over and sent again; that answer is lost too.
    clock.advance(time::Duration::hours(2));
    gateway.set(Some(ErrorKind::OutcomeUnknown));
    let unknown = payments.authorize(&*gateway, "memory", payment(), &key("dated")).await.expect_err("unknown");
    assert_eq!(unknown.kind(), ErrorKind::OutcomeUnknown, "{unknown}");
    gateway.set(None);
    let id = intent_id_for(&tenant(), &key("dated")).expect("id");
    assert_eq!(status(&payments, &id).await.0, IntentStatus::OutcomeUnknown, "recorded at the resend");
    let calls = gateway.inner.provider_calls();
    // A day after the first claim (22 h after the resend) the provider may have forgotten the key: not sent.
    clock.advance(time::Duration::hours(22) + time::Duration::seconds(1));
    let late = payments.authorize(&*gateway, "memory", payment(), &key("dated")).await.expect_err("not sent");
    assert_eq!(late.kind(), ErrorKind::OutcomeUnknown, "{late}");
    assert_eq!(gateway.inner.provider_calls(), calls, "nothing was sent a day after the first claim");
}

#[tokio::test]
async fn a_capture_taken_over_after_the_replay_window_is_recorded_unknown_and_settled_by_retrieve() {
    let (payments, clock, gateway) = hanging_with_replay_window();
    let id = payments.authorize(&*gateway, "memory", payment(), &key("a")).await.expect("authorized").id;
    abandon(&gateway, payments.capture(&*gateway, &tenant(), &id, None, true, &key("a-cap"))).await;
    let calls = gateway.inner.provider_calls();
    clock.advance(time::Duration::hours(25));
    let late = payments.capture(&*gateway, &tenant(), &id, None, true, &key("a-cap")).await.expect_err("not sent");
    assert_eq!(late.kind(), ErrorKind::OutcomeUnknown, "{late}");
    assert_eq!(gateway.inner.provider_calls(), calls, "not sent again");
    assert_eq!(status(&payments, &id).await.0, IntentStatus::OutcomeUnknown, "the capture is recorded pending");
    // The provider's view, read by reference, settles it: the abandoned capture took effect, once.
    let settled = payments.reconcile(&*gateway, &tenant(), &id).await.expect("settled");
    assert_eq!((settled.status, settled.captured), (IntentStatus::Captured, eur(5_000)));
}

#[tokio::test]
async fn an_unknown_outcome_that_could_not_be_recorded_keeps_its_key_and_its_first_claim() {
    let (clock, stores) = (clock(), memory_store_set());
    let ledger = Arc::new(FailingLedger::new(stores.ledger.clone()));
    let payments = Payments::from_stores(&stores, clock.clone()).with_ledger(ledger.clone());
    let gateway = replaying_a_day();
    // The answer is lost and the unknown outcome cannot be stored: no intent.
    gateway.inject(GatewayFault::TimeoutAfterProcessing);
    ledger.fail_next_commits(1);
    let lost = payments.authorize(&gateway, "memory", payment(), &key("u")).await.expect_err("unknown");
    assert_eq!(lost.kind(), ErrorKind::OutcomeUnknown, "{lost}");
    let id = intent_id_for(&tenant(), &key("u")).expect("id");
    assert_eq!(payments.get(&tenant(), &id).await.map(|_| ()).expect_err("no intent").kind(), ErrorKind::NotFound);
    let calls = gateway.provider_calls();
    // The key was kept, with its first claim: a retry a day later is known to be a late resend and not sent.
    clock.advance(time::Duration::hours(25));
    let late = payments.authorize(&gateway, "memory", payment(), &key("u")).await.expect_err("not sent");
    assert_eq!(late.kind(), ErrorKind::OutcomeUnknown, "{late}");
    assert_eq!(gateway.provider_calls(), calls, "nothing was sent again");
    assert_eq!(status(&payments, &id).await.0, IntentStatus::OutcomeUnknown);
}

#[tokio::test]
async fn a_resend_that_did_nothing_keeps_the_first_claim_of_a_key_taken_over() {
    let (payments, clock, gateway) = hanging_with_replay_window();
    let id = payments.authorize(&*gateway, "memory", payment(), &key("n")).await.expect("authorized").id;
    abandon(&gateway, payments.authorize(&*gateway, "memory", card(700, "order-2"), &key("n2"))).await;
    abandon(&gateway, payments.capture(&*gateway, &tenant(), &id, None, true, &key("n-cap"))).await;
    let calls = gateway.inner.provider_calls();
    // Two hours later the keys are taken over; the provider is down, so the resends do nothing this time,
    // while the first calls may have charged and captured.
    clock.advance(time::Duration::hours(2));
    gateway.set(Some(ErrorKind::Unavailable));
    let busy = payments.authorize(&*gateway, "memory", card(700, "order-2"), &key("n2")).await.expect_err("down");
    assert_eq!((busy.kind(), busy.retry()), (ErrorKind::Unavailable, RetryClass::SameKeyOnly), "{busy}");
    let busy = payments.capture(&*gateway, &tenant(), &id, None, true, &key("n-cap")).await.expect_err("down");
    assert_eq!((busy.kind(), busy.retry()), (ErrorKind::Unavailable, RetryClass::SameKeyOnly), "{busy}");
    gateway.set(None);
    // A day after the first claims the provider may have forgotten the keys: the retries are not sent.
    clock.advance(time::Duration::hours(22) + time::Duration::seconds(1));
    let late = payments.authorize(&*gateway, "memory", card(700, "order-2"), &key("n2")).await.expect_err("late");
    assert_eq!(late.kind(), ErrorKind::OutcomeUnknown, "{late}");
    let late = payments.capture(&*gateway, &tenant(), &id, None, true, &key("n-cap")).await.expect_err("late");
    assert_eq!(late.kind(), ErrorKind::OutcomeUnknown, "{late}");
    assert_eq!(gateway.inner.provider_calls(), calls, "nothing was sent after the window");
}

/// Waits until `n` authorizations have reached `gateway`.
async fn entered(gateway: &Refusing, n: usize) {
    while gateway.entered.load(std::sync::atomic::Ordering::SeqCst) < n {
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn a_caller_whose_lease_ran_out_does_not_release_the_key_another_took_over() {
    let clock = clock();
    let payments = Payments::from_stores(&memory_store_set(), clock.clone());
    let gateway = Arc::new(Refusing::default());
    // A's call outlives its lease (no renewal); meanwhile B takes the key over and its call is under way.
    gateway.stall.store(true, std::sync::atomic::Ordering::SeqCst);
    let a = tokio::spawn({
        let (payments, gateway) = (payments.clone(), gateway.clone());
        async move { payments.authorize(&*gateway, "memory", payment(), &key("slow")).await }
    });
    entered(&gateway, 1).await;
    clock.advance(time::Duration::try_from(payments.lease()).expect("lease") + time::Duration::seconds(1));
    gateway.hang.store(true, std::sync::atomic::Ordering::SeqCst);
    let b = tokio::spawn({
        let (payments, gateway) = (payments.clone(), gateway.clone());
        async move { payments.authorize(&*gateway, "memory", payment(), &key("slow")).await }
    });
    entered(&gateway, 2).await;
    gateway.hang.store(false, std::sync::atomic::Ordering::SeqCst);
    // A's provider answers "unavailable": A gives nothing back, since the key is B's now.
    gateway.stalled.notify_one();
    let a = a.await.expect("task").expect_err("unavailable");
    assert_eq!(a.kind(), ErrorKind::Unavailable, "{a}");
    let c = payments.authorize(&*gateway, "memory", payment(), &key("slow")).await.expect_err("B holds it");
    assert_eq!(c.kind(), ErrorKind::InProgress, "{c}");
    b.abort();
}
