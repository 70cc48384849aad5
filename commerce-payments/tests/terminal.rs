//! Card-present sales as payment intents: [`TerminalGateway`] over the testkit's [`MemoryTerminal`].

mod common;

use common::{eur, key, tenant};
use std::sync::Arc;

use commerce_payments::{DEFAULT_RECORD_WINDOW, NewPayment, Payments, TerminalGateway};
use commerce_ports::payment::{
    Attempt, AuthorizeRequest, CaptureMethod, PaymentGateway, ProviderPaymentStatus, RefundRequest, TenderKind,
};
use commerce_ports::stores::IntentStatus;
use commerce_ports::terminal::{
    OfflineCardRead, OfflineForwardRequest, PaymentTerminal, TerminalCapabilities, TerminalPaymentRequest,
    TerminalPaymentResult, TerminalRefundRequest,
};
use commerce_ports::{Currency, ErrorKind, ManualClock, Money, PaymentError, RegisterId, RetryClass, TerminalError};
use commerce_testkit::memory::{FailingLedger, MemoryTerminal, memory_store_set};
use time::macros::datetime;

const TERMINAL: &str = "V400m-324688179";

/// A card-present sale of `minor` cents at [`TERMINAL`], captured with its authorization.
fn sale(minor: i64, reference: &str) -> NewPayment {
    common::card_present(minor, TERMINAL, reference)
}

struct Fx {
    payments: Payments,
    clock: Arc<ManualClock>,
    terminal: Arc<MemoryTerminal>,
    gateway: TerminalGateway,
}

impl Fx {
    fn new() -> Fx {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 13:10 UTC)));
        let payments = Payments::from_stores(&memory_store_set(), clock.clone());
        let terminal = Arc::new(MemoryTerminal::new());
        let gateway = TerminalGateway::new(terminal.clone(), TERMINAL, RegisterId::new("till-1").expect("register"));
        Fx { payments, clock, terminal, gateway }
    }

    fn sale(&self, minor: i64, reference: &str) -> NewPayment {
        sale(minor, reference)
    }

    async fn pay(
        &self,
        minor: i64,
        reference: &str,
        k: &str,
    ) -> Result<commerce_ports::stores::PaymentIntent, ErrorKind> {
        self.payments
            .authorize(&self.gateway, "adyen", self.sale(minor, reference), &key(k))
            .await
            .map_err(|e| e.kind())
    }
}

#[tokio::test]
async fn an_approved_sale_is_a_captured_intent_and_its_retry_a_replay() {
    let fx = Fx::new();
    let intent = fx.pay(4_890, "S-0002", "S-0002:pay").await.expect("approved");
    assert_eq!(
        (intent.status, intent.tender, intent.authorized, intent.captured),
        (IntentStatus::Captured, TenderKind::CardPresent, eur(4_890), eur(4_890))
    );
    assert!(intent.provider_reference.as_deref().is_some_and(|r| r.starts_with("term_")), "{intent:?}");
    assert_eq!(intent.provider, "adyen");
    let again = fx.pay(4_890, "S-0002", "S-0002:pay").await.expect("replayed");
    assert_eq!(again, intent);
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 1), "one lookup, one card prompt");
    let history = fx.payments.history(&tenant(), &intent.id).await.expect("history");
    assert_eq!(history.len(), 2, "{history:?}");
}

#[tokio::test]
async fn a_declined_card_fails_the_intent_and_the_retry_does_not_ask_again() {
    let fx = Fx::new();
    fx.terminal.decline_next();
    assert_eq!(fx.pay(4_890, "S-0002", "S-0002:pay").await.err(), Some(ErrorKind::Declined));
    assert_eq!(fx.pay(4_890, "S-0002", "S-0002:pay").await.err(), Some(ErrorKind::Declined), "the stored refusal");
    assert_eq!(fx.terminal.pay_calls(), 1);
    // Another attempt for the same sale, with its own key, asks the customer again.
    let second = fx.pay(4_890, "S-0002", "S-0002:pay:2").await.expect("second attempt approved");
    assert_eq!(second.status, IntentStatus::Captured);
    assert_eq!(fx.terminal.pay_calls(), 2);
}

#[tokio::test]
async fn an_unknown_outcome_is_settled_from_the_terminals_record_never_by_charging_again() {
    let fx = Fx::new();
    fx.terminal.lose_pay_answers(1);
    let lost = fx.payments.authorize(&fx.gateway, "adyen", fx.sale(4_890, "S-0002"), &key("S-0002:pay")).await;
    let error = lost.expect_err("unknown");
    assert_eq!((error.kind(), error.retry()), (ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly));
    let id = error.intent().cloned().expect("the intent is named");
    assert_eq!(fx.payments.get(&tenant(), &id).await.expect("stored").status, IntentStatus::OutcomeUnknown);
    // The retry with the key reads the terminal's record of the sale: the card was charged once.
    let settled = fx.pay(4_890, "S-0002", "S-0002:pay").await.expect("settled");
    assert_eq!((settled.id.clone(), settled.status, settled.captured), (id, IntentStatus::Captured, eur(4_890)));
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 2));
    // And from now on the key replays.
    assert_eq!(fx.pay(4_890, "S-0002", "S-0002:pay").await.expect("replay"), settled);
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 2));
}

#[tokio::test]
async fn reconcile_settles_an_unknown_sale_from_the_terminal() {
    let fx = Fx::new();
    fx.terminal.lose_pay_answers(1);
    let error = fx.payments.authorize(&fx.gateway, "adyen", fx.sale(1_200, "S-0009"), &key("S-0009:pay")).await;
    let id = error.expect_err("unknown").intent().cloned().expect("intent");
    let settled = fx.payments.reconcile(&fx.gateway, &tenant(), &id).await.expect("reconciled");
    assert_eq!((settled.status, settled.captured), (IntentStatus::Captured, eur(1_200)));
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 2));
}

#[tokio::test]
async fn a_sale_unknown_for_longer_than_the_terminal_keeps_its_records_is_left_to_an_operator() {
    let Fx { payments, clock, terminal, gateway } = Fx::new();
    assert_eq!(gateway.record_window(), DEFAULT_RECORD_WINDOW);
    let gateway = gateway.with_record_window(std::time::Duration::from_secs(3600));
    terminal.lose_pay_answers(1);
    let lost = payments.authorize(&gateway, "adyen", sale(2_500, "S-0070"), &key("S-0070:pay")).await;
    let id = lost.expect_err("unknown").intent().cloned().expect("intent");
    let calls = (terminal.pay_calls(), terminal.status_calls());
    // Past the window the terminal may have dropped its record: "never saw it" could be a paid sale. Neither
    // a retry nor a reconciliation asks the terminal; an operator settles it.
    clock.advance(time::Duration::hours(2));
    let retry = payments.authorize(&gateway, "adyen", sale(2_500, "S-0070"), &key("S-0070:pay")).await;
    assert_eq!(retry.expect_err("not asked").kind(), ErrorKind::OutcomeUnknown);
    let reconciled = payments.reconcile(&gateway, &tenant(), &id).await.expect_err("not asked");
    assert_eq!(reconciled.kind(), ErrorKind::InvalidState, "{reconciled}");
    assert_eq!((terminal.pay_calls(), terminal.status_calls()), calls, "the terminal was not asked again");
    assert_eq!(payments.get(&tenant(), &id).await.expect("intent").status, IntentStatus::OutcomeUnknown);
}

#[tokio::test]
async fn a_resent_request_the_terminal_never_saw_is_paid_once() {
    let fx = Fx::new();
    let request = AuthorizeRequest::new(eur(500), TenderKind::CardPresent, TERMINAL, "S-0010", key("S-0010:pay"))
        .with_capture_method(CaptureMethod::Automatic)
        .with_attempt(Attempt::Resend);
    let snapshot = fx.gateway.authorize(request.clone()).await.expect("paid");
    assert_eq!((snapshot.status, snapshot.captured), (ProviderPaymentStatus::Captured, eur(500)));
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 1), "looked up, then paid");
    // Resent again: the terminal's record answers.
    assert_eq!(fx.gateway.authorize(request).await.expect("found"), snapshot);
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 2));
}

#[tokio::test]
async fn what_a_terminal_cannot_do_is_refused_before_it_is_asked() {
    let fx = Fx::new();
    let request = |tender, method: &str, capture| {
        AuthorizeRequest::new(eur(500), tender, method, "S-0011", key("S-0011:pay")).with_capture_method(capture)
    };
    let refused = |r: Result<_, PaymentError>| r.err().map(|e| e.kind());
    let card = request(TenderKind::Card, TERMINAL, CaptureMethod::Automatic);
    assert_eq!(refused(fx.gateway.authorize(card).await), Some(ErrorKind::Unsupported));
    let manual = request(TenderKind::CardPresent, TERMINAL, CaptureMethod::Manual);
    assert_eq!(refused(fx.gateway.authorize(manual).await), Some(ErrorKind::Unsupported));
    let other = request(TenderKind::CardPresent, "P400-1", CaptureMethod::Automatic);
    let e = fx.gateway.authorize(other).await.expect_err("another terminal");
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert!(e.message().contains("P400-1") && e.message().contains(TERMINAL), "{e}");
    assert_eq!(fx.terminal.pay_calls(), 0);
    // Through the domain, manual capture is refused before any call too.
    let manual = fx.sale(500, "S-0011").with_capture_method(CaptureMethod::Manual);
    let e = fx.payments.authorize(&fx.gateway, "adyen", manual, &key("S-0011:pay")).await.expect_err("manual");
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert_eq!(fx.terminal.pay_calls(), 0);
}

#[tokio::test]
async fn a_sale_is_refunded_at_the_terminal_and_cannot_be_voided() {
    let fx = Fx::new();
    let intent = fx.pay(4_890, "S-0002", "S-0002:pay").await.expect("approved");
    let void = fx.payments.void(&fx.gateway, &tenant(), &intent.id, &key("S-0002:void")).await;
    assert_eq!(void.err().map(|e| e.kind()), Some(ErrorKind::InvalidState), "captured: refund instead");
    let refunded = fx.payments.refund(&fx.gateway, &tenant(), &intent.id, eur(2_900), &key("S-0002:ref")).await;
    let refunded = refunded.expect("refunded");
    assert_eq!((refunded.status, refunded.refunded), (IntentStatus::PartiallyRefunded, eur(2_900)));
    let rest = fx.payments.refund(&fx.gateway, &tenant(), &intent.id, eur(1_990), &key("S-0002:ref2")).await;
    assert_eq!(rest.expect("refunded").status, IntentStatus::Refunded);
    let over = fx.payments.refund(&fx.gateway, &tenant(), &intent.id, eur(1), &key("S-0002:ref3")).await;
    assert_eq!(over.err().map(|e| e.kind()), Some(ErrorKind::InvalidState));
}

#[tokio::test]
async fn a_caller_taking_over_an_abandoned_sale_finds_the_charge_instead_of_charging_again() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 13:10 UTC)));
    let payments = Payments::from_stores(&memory_store_set(), clock.clone());
    let terminal = Arc::new(MemoryTerminal::new());
    let register = RegisterId::new("till-1").expect("register");
    let odd = Odd { inner: terminal.clone(), hangs: true, ..Odd::default() };
    let hold = std::time::Duration::from_millis(200);
    let hanging = TerminalGateway::new(Arc::new(odd), TERMINAL, register.clone()).with_cancelled_hold(hold);
    let sale = || sale(700, "S-0012");
    // The first caller's sale charges the card, and the caller goes away before the answer: no intent is
    // stored, and the key stays claimed until its lease ends.
    let k = key("S-0012:pay");
    let first = payments.authorize(&hanging, "adyen", sale(), &k);
    assert!(tokio::time::timeout(std::time::Duration::from_millis(50), first).await.is_err(), "still waiting");
    assert_eq!(terminal.pay_calls(), 1);
    let busy = payments.authorize(&hanging, "adyen", sale(), &key("S-0012:pay")).await;
    assert_eq!(busy.err().map(|e| e.kind()), Some(ErrorKind::InProgress), "within the lease");
    // After the lease, the next caller takes the key over; the gateway is told the sale may have been sent
    // and finds the charge.
    clock.advance(time::Duration::try_from(payments.lease()).expect("lease") + time::Duration::seconds(1));
    let gateway = TerminalGateway::new(terminal.clone(), TERMINAL, register);
    // In this process the cancelled sale is still held (the customer may still be at the terminal), through
    // any gateway for the terminal; nothing is looked up or paid, and the card may be charged: unknown, and the
    // intent says so (a later attempt is a resend, never a first attempt that could claim it charged nothing).
    let held = payments.authorize(&gateway, "adyen", sale(), &key("S-0012:pay")).await.expect_err("held");
    assert_eq!(held.kind(), ErrorKind::OutcomeUnknown, "{held}");
    assert!(held.message().contains("cancelled") && held.retry_after().is_some(), "{held}");
    let id = held.intent().cloned().expect("the intent records the unknown sale");
    assert_eq!(payments.get(&tenant(), &id).await.expect("intent").status, IntentStatus::OutcomeUnknown);
    assert_eq!((terminal.pay_calls(), terminal.status_calls()), (1, 1));
    tokio::time::sleep(hold).await;
    let intent = payments.authorize(&gateway, "adyen", sale(), &key("S-0012:pay")).await.expect("found");
    assert_eq!((intent.status, intent.captured), (IntentStatus::Captured, eur(700)));
    assert_eq!((terminal.pay_calls(), terminal.status_calls()), (1, 2), "one charge");
}

#[tokio::test]
async fn a_failed_lookup_never_leads_to_a_payment() {
    let fx = Fx::new();
    // Before a first payment: nothing is charged, nothing stored, and the retry pays.
    fx.terminal.fail_next_status(ErrorKind::Unexpected);
    let first = fx.payments.authorize(&fx.gateway, "adyen", fx.sale(900, "S-0020"), &key("S-0020:pay")).await;
    let error = first.expect_err("could not look up");
    assert_eq!((error.kind(), fx.terminal.pay_calls()), (ErrorKind::Unavailable, 0), "{error}");
    assert!(error.message().contains("this attempt charged nothing"), "{error}");
    assert_eq!(fx.pay(900, "S-0020", "S-0020:pay").await.expect("paid").status, IntentStatus::Captured);
    // After an unknown outcome: still unknown (not a refusal), nothing charged again; a later retry settles it.
    fx.terminal.lose_pay_answers(1);
    let lost = fx.payments.authorize(&fx.gateway, "adyen", fx.sale(700, "S-0021"), &key("S-0021:pay")).await;
    let id = lost.expect_err("unknown").intent().cloned().expect("intent");
    for kind in [ErrorKind::Unexpected, ErrorKind::Authentication, ErrorKind::InvalidRequest, ErrorKind::Unavailable] {
        fx.terminal.fail_next_status(kind);
        let retry = fx.payments.authorize(&fx.gateway, "adyen", fx.sale(700, "S-0021"), &key("S-0021:pay")).await;
        let error = retry.expect_err("lookup failed");
        assert_eq!((error.kind(), error.retry()), (ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly), "{kind:?}");
        assert_eq!(fx.payments.get(&tenant(), &id).await.expect("intent").status, IntentStatus::OutcomeUnknown);
    }
    assert_eq!(fx.terminal.pay_calls(), 2, "S-0020 once, S-0021 once");
    assert_eq!(fx.pay(700, "S-0021", "S-0021:pay").await.expect("settled").status, IntentStatus::Captured);
    assert_eq!(fx.terminal.pay_calls(), 2);
}

#[tokio::test]
async fn an_approval_whose_recording_failed_is_found_by_the_retry() {
    let stores = memory_store_set();
    let ledger = Arc::new(FailingLedger::new(stores.ledger.clone()));
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 13:10 UTC)));
    let payments = Payments::from_stores(&stores, clock).with_ledger(ledger.clone());
    let fx = Fx::new();
    let sale = || fx.sale(1_500, "S-0030");
    // The terminal approves, but the intent cannot be stored: no intent; the key is kept and handed over.
    ledger.fail_next_commits(1);
    let failed = payments.authorize(&fx.gateway, "adyen", sale(), &key("S-0030:pay")).await;
    assert_eq!(failed.err().map(|e| e.kind()), Some(ErrorKind::Unavailable));
    assert_eq!(fx.terminal.pay_calls(), 1);
    // The retry takes the key over as a resend and the terminal's record answers it.
    let intent = payments.authorize(&fx.gateway, "adyen", sale(), &key("S-0030:pay")).await.expect("found");
    assert_eq!((intent.status, intent.captured), (IntentStatus::Captured, eur(1_500)));
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 2), "charged once");
}

#[tokio::test]
async fn an_approval_that_does_not_fit_the_sale_is_unknown_not_refused() {
    for (approved, why) in [(eur(1_600), "above the sale"), (Money::from_minor(1_500, Currency::USD), "other currency")]
    {
        let terminal = Arc::new(MemoryTerminal::new());
        let odd = Arc::new(Odd { inner: terminal.clone(), approved: Some(approved), ..Odd::default() });
        let gateway = TerminalGateway::new(odd, TERMINAL, RegisterId::new("till-1").expect("register"));
        let fx = Fx::new();
        let sale = fx.sale(1_500, "S-0031");
        let result = fx.payments.authorize(&gateway, "adyen", sale, &key("S-0031:pay")).await;
        let error = result.expect_err(why);
        assert_eq!(error.kind(), ErrorKind::OutcomeUnknown, "{why}: {error}");
        assert!(error.message().contains("settle it by hand"), "{error}");
        let id = error.intent().cloned().expect("intent");
        let stored = fx.payments.get(&tenant(), &id).await.expect("stored");
        assert_eq!(stored.status, IntentStatus::OutcomeUnknown, "{why}: recorded, never as a refusal");
    }
}

#[tokio::test]
async fn a_refund_is_never_sent_to_the_terminal_twice() {
    let fx = Fx::new();
    let intent = fx.pay(4_890, "S-0002", "S-0002:pay").await.expect("approved");
    fx.terminal.lose_refund_answers(1);
    let (t, k) = (tenant(), key("S-0002:ref"));
    let lost = fx.payments.refund(&fx.gateway, &t, &intent.id, eur(1_000), &k).await.expect_err("unknown");
    assert_eq!(lost.kind(), ErrorKind::OutcomeUnknown);
    let again = fx.payments.refund(&fx.gateway, &t, &intent.id, eur(1_000), &k).await.expect_err("still unknown");
    assert_eq!((again.kind(), again.retry()), (ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly));
    assert!(again.message().contains("not sent again"), "{again}");
    assert_eq!(fx.terminal.refund_calls(), 1);
    assert_eq!(fx.payments.get(&tenant(), &intent.id).await.expect("intent").status, IntentStatus::OutcomeUnknown);
    // A refund the terminal rejects as invalid may be the rejection of one sent again: unknown, not refused.
    let reference = intent.provider_reference.clone().expect("reference");
    let direct = RefundRequest::new(reference, eur(99_999), key("S-0002:ref-direct"));
    let e = fx.gateway.refund(direct).await.expect_err("rejected");
    assert_eq!(e.kind(), ErrorKind::OutcomeUnknown, "{e}");
}

/// `inner` with a twist on `pay`: it approves a fixed amount (what a tip, a currency conversion or a bug at the
/// terminal would give), or charges the card and then never answers (the caller's process dies, or gives up,
/// mid-call).
#[derive(Debug, Default)]
struct Odd {
    inner: Arc<MemoryTerminal>,
    approved: Option<Money>,
    hangs: bool,
    /// Another process pays the same sale (its own key) just before this payment reaches the terminal.
    raced: bool,
    /// The payment is lost on the way: nothing is charged, the answer is `OutcomeUnknown`.
    lost: bool,
}

#[async_trait::async_trait]
impl PaymentTerminal for Odd {
    fn capabilities(&self) -> TerminalCapabilities {
        self.inner.capabilities()
    }
    async fn pay(&self, request: TerminalPaymentRequest) -> Result<TerminalPaymentResult, TerminalError> {
        if self.lost {
            return Err(TerminalError::new(ErrorKind::OutcomeUnknown, "pay", "the connection broke"));
        }
        if self.raced {
            let mut other = request.clone();
            other.idempotency_key = key("other-process");
            self.inner.pay(other).await?;
        }
        let mut result = self.inner.pay(request).await?;
        if self.hangs {
            std::future::pending::<()>().await;
        }
        result.amount = self.approved.unwrap_or(result.amount);
        Ok(result)
    }
    async fn refund(&self, request: TerminalRefundRequest) -> Result<TerminalPaymentResult, TerminalError> {
        self.inner.refund(request).await
    }
    async fn abort(&self, terminal_id: &str, reference: &str) -> Result<(), TerminalError> {
        self.inner.abort(terminal_id, reference).await
    }
    async fn status(&self, terminal_id: &str, reference: &str) -> Result<TerminalPaymentResult, TerminalError> {
        self.inner.status(terminal_id, reference).await
    }
    async fn read_offline(&self, request: &TerminalPaymentRequest) -> Result<OfflineCardRead, TerminalError> {
        self.inner.read_offline(request).await
    }
    async fn forward_offline(&self, request: OfflineForwardRequest) -> Result<TerminalPaymentResult, TerminalError> {
        self.inner.forward_offline(request).await
    }
}

#[tokio::test]
async fn a_sale_running_at_the_terminal_is_not_looked_up_and_paid_a_second_time() {
    let terminal = Arc::new(MemoryTerminal::new());
    let odd = Odd { inner: terminal.clone(), hangs: true, ..Odd::default() };
    let hold = std::time::Duration::from_millis(200);
    let gateway = TerminalGateway::new(Arc::new(odd), TERMINAL, RegisterId::new("till-1").expect("register"))
        .with_cancelled_hold(hold);
    let request = AuthorizeRequest::new(eur(800), TenderKind::CardPresent, TERMINAL, "S-0040", key("S-0040:pay"))
        .with_capture_method(CaptureMethod::Automatic);
    // The sale waits at the terminal; meanwhile `reconcile` (or a retry) sends it again.
    let (first, second) = tokio::join!(
        tokio::time::timeout(std::time::Duration::from_millis(100), gateway.authorize(request.clone())),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            gateway.authorize(request.clone().with_attempt(Attempt::Resend)).await
        }
    );
    assert!(first.is_err(), "the first is still at the terminal");
    let second = second.expect_err("in progress");
    assert_eq!(second.kind(), ErrorKind::InProgress, "{second}");
    assert_eq!((terminal.pay_calls(), terminal.status_calls()), (1, 1), "one lookup, one payment");
    // The first call is gone (cancelled) while the terminal was paying: the sale stays held for the hold,
    // then a resend finds its charge.
    let held = gateway.authorize(request.clone().with_attempt(Attempt::Resend)).await.expect_err("held");
    assert_eq!(held.kind(), ErrorKind::OutcomeUnknown, "{held}");
    tokio::time::sleep(hold).await;
    let found = gateway.authorize(request.with_attempt(Attempt::Resend)).await.expect("found");
    assert_eq!((found.captured, terminal.pay_calls()), (eur(800), 1));
}

#[tokio::test]
async fn a_call_cancelled_before_the_terminal_was_asked_to_pay_frees_the_sale_at_once() {
    /// A terminal whose lookups never answer.
    #[derive(Debug)]
    struct SlowLookup(Arc<MemoryTerminal>);
    #[async_trait::async_trait]
    impl PaymentTerminal for SlowLookup {
        fn capabilities(&self) -> TerminalCapabilities {
            self.0.capabilities()
        }
        async fn pay(&self, request: TerminalPaymentRequest) -> Result<TerminalPaymentResult, TerminalError> {
            self.0.pay(request).await
        }
        async fn refund(&self, request: TerminalRefundRequest) -> Result<TerminalPaymentResult, TerminalError> {
            self.0.refund(request).await
        }
        async fn abort(&self, terminal_id: &str, reference: &str) -> Result<(), TerminalError> {
            self.0.abort(terminal_id, reference).await
        }
        async fn status(&self, _terminal_id: &str, _reference: &str) -> Result<TerminalPaymentResult, TerminalError> {
            std::future::pending().await
        }
        async fn read_offline(&self, request: &TerminalPaymentRequest) -> Result<OfflineCardRead, TerminalError> {
            self.0.read_offline(request).await
        }
        async fn forward_offline(
            &self,
            request: OfflineForwardRequest,
        ) -> Result<TerminalPaymentResult, TerminalError> {
            self.0.forward_offline(request).await
        }
    }
    let terminal = Arc::new(MemoryTerminal::new());
    let slow = TerminalGateway::new(
        Arc::new(SlowLookup(terminal.clone())),
        TERMINAL,
        RegisterId::new("till-1").expect("register"),
    );
    assert_eq!(slow.cancelled_hold(), commerce_payments::DEFAULT_CANCELLED_HOLD);
    let request = AuthorizeRequest::new(eur(300), TenderKind::CardPresent, TERMINAL, "S-0041", key("S-0041:pay"))
        .with_capture_method(CaptureMethod::Automatic);
    let first = tokio::time::timeout(std::time::Duration::from_millis(30), slow.authorize(request.clone())).await;
    assert!(first.is_err(), "the lookup is still waiting");
    // Nobody was asked to pay: the sale is free again at once, and the next call pays it.
    let gateway = TerminalGateway::new(terminal.clone(), TERMINAL, RegisterId::new("till-1").expect("register"));
    let paid = gateway.authorize(request).await.expect("paid");
    assert_eq!((paid.captured, terminal.pay_calls()), (eur(300), 1));
}

fn gateway_over(odd: Odd) -> TerminalGateway {
    TerminalGateway::new(Arc::new(odd), TERMINAL, RegisterId::new("till-1").expect("register"))
}

#[tokio::test]
async fn reconcile_never_prompts_a_sale_the_terminal_never_saw_fails() {
    let fx = Fx::new();
    let lost = gateway_over(Odd { inner: fx.terminal.clone(), lost: true, ..Odd::default() });
    let error = fx.payments.authorize(&lost, "adyen", fx.sale(600, "S-0050"), &key("S-0050:pay")).await;
    let id = error.expect_err("unknown").intent().cloned().expect("intent");
    // Hours later a reconciler looks: the terminal never saw the sale, so nothing was charged; no card prompt.
    let settled = fx.payments.reconcile(&fx.gateway, &tenant(), &id).await.expect("settled");
    assert_eq!((settled.status, settled.captured), (IntentStatus::Failed, eur(0)));
    assert_eq!(fx.terminal.pay_calls(), 0);
}

#[tokio::test]
async fn a_payment_rejected_for_a_sale_paid_meanwhile_is_answered_from_the_terminals_record() {
    let fx = Fx::new();
    let raced = gateway_over(Odd { inner: fx.terminal.clone(), raced: true, ..Odd::default() });
    let intent = fx.payments.authorize(&raced, "adyen", fx.sale(650, "S-0051"), &key("S-0051:pay")).await;
    let intent = intent.expect("the other payment's record");
    assert_eq!((intent.status, intent.captured), (IntentStatus::Captured, eur(650)));
    assert_eq!(fx.terminal.pay_calls(), 2, "the other process's payment and the rejected one: one charge");
}

#[tokio::test]
async fn a_declined_record_fails_the_sale_without_a_prompt() {
    let fx = Fx::new();
    fx.terminal.fail_next_status(ErrorKind::Declined);
    assert_eq!(fx.pay(900, "S-0052", "S-0052:pay").await.err(), Some(ErrorKind::Declined));
    assert_eq!(fx.terminal.pay_calls(), 0);
}

#[tokio::test]
async fn a_refund_whose_key_the_terminal_knows_for_another_refund_is_unknown() {
    let fx = Fx::new();
    let intent = fx.pay(4_890, "S-0002", "S-0002:pay").await.expect("approved");
    let reference = intent.provider_reference.clone().expect("reference");
    let first = RefundRequest::new(reference.clone(), eur(500), key("S-0002:ref-k"));
    fx.gateway.refund(first).await.expect("refunded");
    let other = RefundRequest::new(reference, eur(600), key("S-0002:ref-k"));
    assert_eq!(fx.gateway.refund(other).await.err().map(|e| e.kind()), Some(ErrorKind::OutcomeUnknown));
}

#[tokio::test]
async fn an_unknown_terminal_refund_is_settled_from_the_operators_view() {
    let fx = Fx::new();
    let intent = fx.pay(4_890, "S-0002", "S-0002:pay").await.expect("approved");
    let reference = intent.provider_reference.clone().expect("reference");
    fx.terminal.lose_refund_answers(1);
    let refund = fx.payments.refund(&fx.gateway, &tenant(), &intent.id, eur(1_000), &key("S-0002:ref")).await;
    assert_eq!(refund.err().map(|e| e.kind()), Some(ErrorKind::OutcomeUnknown));
    // `reconcile` cannot ask a terminal; an operator reads the provider's records and settles it.
    let reconcile = fx.payments.reconcile(&fx.gateway, &tenant(), &intent.id).await;
    assert_eq!(reconcile.err().map(|e| e.kind()), Some(ErrorKind::Unsupported));
    let mut view = commerce_ports::payment::PaymentSnapshot::authorized(
        reference.clone(),
        ProviderPaymentStatus::Captured,
        eur(4_890),
    );
    (view.captured, view.refunded) = (eur(4_890), eur(1_000));
    let settled = fx.payments.reconcile_from(&tenant(), &intent.id, &view).await.expect("settled");
    assert_eq!((settled.status, settled.refunded), (IntentStatus::PartiallyRefunded, eur(1_000)));
    // The retry of the refund's key is recognised as applied: not sent again.
    let retried = fx.payments.refund(&fx.gateway, &tenant(), &intent.id, eur(1_000), &key("S-0002:ref")).await;
    assert_eq!(retried.expect("applied").refunded, eur(1_000));
    assert_eq!(fx.terminal.refund_calls(), 1);
    // A view of another payment is refused.
    let other =
        commerce_ports::payment::PaymentSnapshot::authorized("term_other", ProviderPaymentStatus::Captured, eur(1));
    let refused = fx.payments.reconcile_from(&tenant(), &intent.id, &other).await;
    assert_eq!(refused.err().map(|e| e.kind()), Some(ErrorKind::Unexpected));
}

#[tokio::test]
async fn a_terminal_refund_whose_answer_was_not_recorded_keeps_its_key_and_is_not_sent_again() {
    let stores = memory_store_set();
    let ledger = Arc::new(FailingLedger::new(stores.ledger.clone()));
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 13:10 UTC)));
    let payments = Payments::from_stores(&stores, clock.clone()).with_ledger(ledger.clone());
    let fx = Fx::new();
    let intent = payments.authorize(&fx.gateway, "adyen", sale(4_890, "S-0060"), &key("S-0060:pay")).await;
    let intent = intent.expect("approved");
    let (t, k) = (tenant(), key("S-0060:ref"));
    // The terminal refunds, but the answer cannot be recorded.
    ledger.fail_next_commits(1);
    let failed = payments.refund(&fx.gateway, &t, &intent.id, eur(1_000), &k).await.expect_err("not recorded");
    assert_eq!(failed.retry(), RetryClass::SameKeyOnly, "{failed}");
    assert_eq!(fx.terminal.refund_calls(), 1);
    // The key is kept and handed over: the retry takes it over at once as a resend, which is not sent again;
    // the outcome is unknown.
    let unknown = payments.refund(&fx.gateway, &t, &intent.id, eur(1_000), &k).await.expect_err("unknown");
    assert_eq!(unknown.kind(), ErrorKind::OutcomeUnknown, "{unknown}");
    assert_eq!(fx.terminal.refund_calls(), 1, "refunded once");
    assert_eq!(payments.get(&t, &intent.id).await.expect("intent").status, IntentStatus::OutcomeUnknown);
}

#[tokio::test]
async fn a_hold_too_long_to_represent_still_holds() {
    let terminal = Arc::new(MemoryTerminal::new());
    let odd = Odd { inner: terminal.clone(), hangs: true, ..Odd::default() };
    let gateway = gateway_over(odd).with_cancelled_hold(std::time::Duration::MAX);
    let request = AuthorizeRequest::new(eur(900), TenderKind::CardPresent, TERMINAL, "S-0042", key("S-0042:pay"))
        .with_capture_method(CaptureMethod::Automatic);
    let first = tokio::time::timeout(std::time::Duration::from_millis(30), gateway.authorize(request.clone())).await;
    assert!(first.is_err(), "still at the terminal");
    let held = gateway.authorize(request.with_attempt(Attempt::Resend)).await.expect_err("held");
    assert_eq!((held.kind(), terminal.pay_calls()), (ErrorKind::OutcomeUnknown, 1), "{held}");
}
