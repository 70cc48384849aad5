//! Card-present sales as payment intents: [`TerminalGateway`] over the testkit's [`MemoryTerminal`].

mod common;

use common::{eur, key, tenant};
use std::sync::Arc;

use commerce_payments::{NewPayment, Payments, TerminalGateway};
use commerce_ports::payment::{AuthorizeRequest, CaptureMethod, PaymentGateway, ProviderPaymentStatus, TenderKind};
use commerce_ports::stores::IntentStatus;
use commerce_ports::terminal::{
    OfflineCardRead, OfflineForwardRequest, PaymentTerminal, TerminalCapabilities, TerminalPaymentRequest,
    TerminalPaymentResult, TerminalRefundRequest,
};
use commerce_ports::{ChannelId, ErrorKind, ManualClock, PaymentError, RegisterId, RetryClass, TerminalError};
use commerce_testkit::memory::{MemoryTerminal, memory_store_set};
use time::macros::datetime;

const TERMINAL: &str = "V400m-324688179";

struct Fx {
    payments: Payments,
    terminal: Arc<MemoryTerminal>,
    gateway: TerminalGateway,
}

impl Fx {
    fn new() -> Fx {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 13:10 UTC)));
        let payments = Payments::from_stores(&memory_store_set(), clock);
        let terminal = Arc::new(MemoryTerminal::new());
        let gateway = TerminalGateway::new(terminal.clone(), TERMINAL, RegisterId::new("till-1").expect("register"));
        Fx { payments, terminal, gateway }
    }

    fn sale(&self, minor: i64, reference: &str) -> NewPayment {
        NewPayment::new(
            tenant(),
            ChannelId::new("berlin").expect("channel"),
            TenderKind::CardPresent,
            eur(minor),
            TERMINAL,
            reference,
        )
        .with_capture_method(CaptureMethod::Automatic)
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
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 0), "one card prompt, no lookup");
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
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 1));
    // And from now on the key replays.
    assert_eq!(fx.pay(4_890, "S-0002", "S-0002:pay").await.expect("replay"), settled);
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 1));
}

#[tokio::test]
async fn reconcile_settles_an_unknown_sale_from_the_terminal() {
    let fx = Fx::new();
    fx.terminal.lose_pay_answers(1);
    let error = fx.payments.authorize(&fx.gateway, "adyen", fx.sale(1_200, "S-0009"), &key("S-0009:pay")).await;
    let id = error.expect_err("unknown").intent().cloned().expect("intent");
    let settled = fx.payments.reconcile(&fx.gateway, &tenant(), &id).await.expect("reconciled");
    assert_eq!((settled.status, settled.captured), (IntentStatus::Captured, eur(1_200)));
    assert_eq!((fx.terminal.pay_calls(), fx.terminal.status_calls()), (1, 1));
}

#[tokio::test]
async fn a_resent_request_the_terminal_never_saw_is_paid_once() {
    let fx = Fx::new();
    let request = AuthorizeRequest::new(eur(500), TenderKind::CardPresent, TERMINAL, "S-0010", key("S-0010:pay"))
        .with_capture_method(CaptureMethod::Automatic)
        .with_resend(true);
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

/// A terminal that charges the card and then never answers (the caller's process dies, or gives up, mid-call).
#[derive(Debug)]
struct ChargesThenHangs(Arc<MemoryTerminal>);

#[async_trait::async_trait]
impl PaymentTerminal for ChargesThenHangs {
    fn capabilities(&self) -> TerminalCapabilities {
        self.0.capabilities()
    }
    async fn pay(&self, request: TerminalPaymentRequest) -> Result<TerminalPaymentResult, TerminalError> {
        self.0.pay(request).await?;
        std::future::pending().await
    }
    async fn refund(&self, request: TerminalRefundRequest) -> Result<TerminalPaymentResult, TerminalError> {
        self.0.refund(request).await
    }
    async fn abort(&self, terminal_id: &str, reference: &str) -> Result<(), TerminalError> {
        self.0.abort(terminal_id, reference).await
    }
    async fn status(&self, terminal_id: &str, reference: &str) -> Result<TerminalPaymentResult, TerminalError> {
        self.0.status(terminal_id, reference).await
    }
    async fn read_offline(&self, request: &TerminalPaymentRequest) -> Result<OfflineCardRead, TerminalError> {
        self.0.read_offline(request).await
    }
    async fn forward_offline(&self, request: OfflineForwardRequest) -> Result<TerminalPaymentResult, TerminalError> {
        self.0.forward_offline(request).await
    }
}

#[tokio::test]
async fn a_caller_taking_over_an_abandoned_sale_finds_the_charge_instead_of_charging_again() {
    let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 13:10 UTC)));
    let payments = Payments::from_stores(&memory_store_set(), clock.clone());
    let terminal = Arc::new(MemoryTerminal::new());
    let register = RegisterId::new("till-1").expect("register");
    let hanging = TerminalGateway::new(Arc::new(ChargesThenHangs(terminal.clone())), TERMINAL, register.clone());
    let sale = || {
        NewPayment::new(
            tenant(),
            ChannelId::new("berlin").expect("channel"),
            TenderKind::CardPresent,
            eur(700),
            TERMINAL,
            "S-0012",
        )
        .with_capture_method(CaptureMethod::Automatic)
    };
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
    let intent = payments.authorize(&gateway, "adyen", sale(), &key("S-0012:pay")).await.expect("found");
    assert_eq!((intent.status, intent.captured), (IntentStatus::Captured, eur(700)));
    assert_eq!((terminal.pay_calls(), terminal.status_calls()), (1, 1), "one charge");
}
