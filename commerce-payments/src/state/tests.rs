use commerce_ports::payment::{
    CaptureMethod, GatewayCapabilities, ModificationResult, ModificationStatus, PaymentSnapshot, ProviderPaymentStatus,
    TenderKind,
};
use commerce_ports::stores::{IntentEvent, IntentStatus, PaymentIntent};
use commerce_ports::{ChannelId, Currency, ErrorKind, IntentId, Money, RetryClass, TenantId};
use time::OffsetDateTime;
use time::macros::datetime;

use super::*;

const T0: OffsetDateTime = datetime!(2025-01-01 12:00 UTC);

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

fn call(operation: Operation, key: &str) -> ProviderCall {
    ProviderCall::new(operation, key, format!("fp-{key}"))
}

/// An intent and its history, advanced only through the state machine's transitions.
#[derive(Debug, Clone)]
struct Rec {
    intent: PaymentIntent,
    history: Vec<IntentEvent>,
}

impl Rec {
    fn new(amount: Money) -> Rec {
        let intent = PaymentIntent::new(
            IntentId::new("pi_test").expect("id"),
            TenantId::new("acme").expect("tenant"),
            ChannelId::new("web").expect("channel"),
            TenderKind::Card,
            amount,
            "memory",
            "order-1",
            T0,
        );
        let params = AuthorizeParams::new(
            call(Operation::Authorize, "auth"),
            PaymentMethodRef("pm_card_visa".into()),
            CaptureMethod::Manual,
        );
        let Transition { intent, event } = creation(intent, params).expect("record encodes");
        Rec { intent, history: vec![event] }
    }

    /// An intent of 100.00 EUR, authorized in full.
    fn authorized() -> Rec {
        let mut rec = Rec::new(eur(10_000));
        let snap = PaymentSnapshot::authorized("mem_pay_1", ProviderPaymentStatus::Authorized, eur(10_000));
        let t = apply_authorization(&rec.intent, &rec.history, &call(Operation::Authorize, "auth"), &snap, T0);
        rec.push(t);
        rec
    }

    fn push(&mut self, t: Result<Option<Transition>, PaymentsError>) {
        let t = t.expect("transition").expect("a change");
        assert_eq!(t.intent.version, self.intent.version + 1, "every transition bumps the version by one");
        assert_eq!(t.event.sequence, t.intent.version, "the event's sequence is the new version");
        assert_eq!(t.event.status, t.intent.status);
        self.intent = t.intent;
        self.history.push(t.event);
    }

    fn modify(&mut self, key: &str, command: Command) -> Result<(), PaymentsError> {
        let c = call(command.operation(), key);
        let m = match admit_modification(&self.intent, &self.history, &c, command)? {
            Admission::Send(m) => m,
            Admission::AlreadyApplied => return Ok(()),
        };
        let result =
            ModificationResult::new(format!("mod_{key}"), ModificationStatus::Succeeded, m.amount().unwrap_or(eur(0)));
        let t = apply_modification(&self.intent, &self.history, &c, &m, &result, T0);
        self.push(t);
        Ok(())
    }

    fn capture(&mut self, key: &str, minor: i64, final_capture: bool) -> Result<(), PaymentsError> {
        self.modify(key, Command::Capture { amount: Some(eur(minor)), final_capture })
    }

    fn refund(&mut self, key: &str, minor: i64) -> Result<(), PaymentsError> {
        self.modify(key, Command::Refund { amount: eur(minor) })
    }

    fn unknown(&mut self, key: &str, command: Command) {
        let c = call(command.operation(), key);
        let Ok(Admission::Send(m)) = admit_modification(&self.intent, &self.history, &c, command) else {
            panic!("admission refused")
        };
        let t = apply_unknown(
            &self.intent,
            &self.history,
            &c,
            m.amount(),
            m.final_capture(),
            "timed out after sending",
            None,
            T0,
        );
        self.push(t);
    }
}

fn with(status: IntentStatus, authorized: i64, captured: i64, refunded: i64) -> PaymentIntent {
    let mut intent = Rec::new(eur(10_000)).intent;
    intent.status = status;
    intent.authorized = eur(authorized);
    intent.captured = eur(captured);
    intent.refunded = eur(refunded);
    intent
}

fn err_of<T: std::fmt::Debug>(r: Result<T, PaymentsError>) -> (ErrorKind, String) {
    let e = r.expect_err("an error");
    (e.kind(), e.message().to_owned())
}

// --------------------------------------------------------------------------------------------------------
// Validation

#[test]
fn over_capture_names_both_amounts() {
    let intent = with(IntentStatus::PartiallyCaptured, 5_000, 3_000, 0);
    assert_eq!(
        err_of(validate_capture(&intent, Some(eur(3_000)))),
        (ErrorKind::InvalidRequest, "capture of 30.00 EUR exceeds the capturable 20.00 EUR".to_owned())
    );
    assert_eq!(validate_capture(&intent, Some(eur(2_000))).expect("fits"), eur(2_000));
    assert_eq!(validate_capture(&intent, None).expect("rest"), eur(2_000), "None captures all that remains");
}

#[test]
fn capture_amounts_must_be_positive_and_in_the_intents_currency() {
    let intent = with(IntentStatus::Authorized, 5_000, 0, 0);
    assert_eq!(
        err_of(validate_capture(&intent, Some(eur(0)))),
        (ErrorKind::InvalidRequest, "capture amount must be positive, got 0.00 EUR".to_owned())
    );
    assert_eq!(
        err_of(validate_capture(&intent, Some(eur(-5)))),
        (ErrorKind::InvalidRequest, "capture amount must be positive, got -0.05 EUR".to_owned())
    );
    assert_eq!(
        err_of(validate_capture(&intent, Some(Money::from_minor(1_000, Currency::USD)))),
        (ErrorKind::InvalidRequest, "capture amount 10.00 USD is not in the intent's currency EUR".to_owned())
    );
}

#[test]
fn capture_is_refused_outside_authorized_and_partially_captured() {
    let cases = [
        (IntentStatus::RequiresAuthorization, "is not authorized yet"),
        (IntentStatus::Captured, "no capture may follow a final capture"),
        (IntentStatus::PartiallyRefunded, "no capture may follow a final capture"),
        (IntentStatus::Refunded, "no capture may follow a final capture"),
        (IntentStatus::Voided, "was voided; it cannot be captured"),
        (IntentStatus::Failed, "failed; it cannot be captured"),
        (IntentStatus::OutcomeUnknown, "is unknown; retry it with its idempotency key or reconcile"),
    ];
    for (status, expected) in cases {
        let intent = with(status, 5_000, 1_000, 0);
        let e = validate_capture(&intent, Some(eur(100))).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidState, "{status:?}");
        assert!(e.message().contains(expected), "{status:?}: {}", e.message());
        assert_eq!(e.intent().map(IntentId::as_str), Some("pi_test"));
    }
    let unknown = validate_capture(&with(IntentStatus::OutcomeUnknown, 5_000, 0, 0), None).expect_err("refused");
    assert_eq!(unknown.retry(), RetryClass::Retryable);
}

#[test]
fn refund_rules_name_what_to_do_instead() {
    let cases = [
        (IntentStatus::Authorized, 0, "has nothing captured; void it instead"),
        (IntentStatus::PartiallyCaptured, 1_000, "make a final capture before refunding"),
        (IntentStatus::Refunded, 1_000, "already fully refunded"),
        (IntentStatus::Voided, 0, "was voided"),
        (IntentStatus::Failed, 0, "failed"),
    ];
    for (status, captured, expected) in cases {
        let refunded = if status == IntentStatus::Refunded { captured } else { 0 };
        let e = validate_refund(&with(status, 5_000, captured, refunded), eur(100)).expect_err("refused");
        assert_eq!(e.kind(), ErrorKind::InvalidState, "{status:?}");
        assert!(e.message().contains(expected), "{status:?}: {}", e.message());
    }
    let captured = with(IntentStatus::PartiallyRefunded, 5_000, 4_000, 2_000);
    assert_eq!(
        err_of(validate_refund(&captured, eur(3_000))),
        (ErrorKind::InvalidRequest, "refund of 30.00 EUR exceeds the refundable 20.00 EUR".to_owned())
    );
    assert_eq!(
        err_of(validate_refund(&captured, eur(0))),
        (ErrorKind::InvalidRequest, "refund amount must be positive, got 0.00 EUR".to_owned())
    );
    assert_eq!(
        err_of(validate_refund(&captured, Money::from_minor(5, Currency::JPY))),
        (ErrorKind::InvalidRequest, "refund amount 5 JPY is not in the intent's currency EUR".to_owned())
    );
    assert!(validate_refund(&captured, eur(2_000)).is_ok());
}

#[test]
fn void_only_before_any_capture_and_says_refund_instead() {
    assert!(validate_void(&with(IntentStatus::Authorized, 5_000, 0, 0)).is_ok());
    for status in [IntentStatus::PartiallyCaptured, IntentStatus::Captured, IntentStatus::PartiallyRefunded] {
        assert_eq!(
            err_of(validate_void(&with(status, 5_000, 1_000, 0))),
            (
                ErrorKind::InvalidState,
                "intent `pi_test` has 10.00 EUR captured and can no longer be voided; refund instead".to_owned()
            ),
        );
    }
    assert_eq!(
        err_of(validate_void(&with(IntentStatus::Voided, 5_000, 0, 0))),
        (ErrorKind::InvalidState, "intent `pi_test` is already voided".to_owned())
    );
    assert_eq!(err_of(validate_void(&with(IntentStatus::RequiresAuthorization, 0, 0, 0))).0, ErrorKind::InvalidState);
}

#[test]
fn capabilities_are_checked_before_the_provider_is_called() {
    let mut caps = GatewayCapabilities::full(vec![TenderKind::Card]);
    caps.partial_capture = false;
    caps.void = false;
    let intent = with(IntentStatus::Authorized, 5_000, 0, 0);
    let partial = Modification::Capture { amount: eur(1_000), final_capture: false };
    assert_eq!(
        err_of(check_supported(&intent, &partial, &caps)),
        (ErrorKind::Unsupported, "the gateway of intent `pi_test` does not support partial capture".to_owned())
    );
    assert!(
        check_supported(&intent, &Modification::Capture { amount: eur(5_000), final_capture: true }, &caps).is_ok()
    );
    assert_eq!(err_of(check_supported(&intent, &Modification::Void, &caps)).0, ErrorKind::Unsupported);
    caps.multiple_refunds = false;
    let refunded = with(IntentStatus::PartiallyRefunded, 5_000, 5_000, 1_000);
    let e = check_supported(&refunded, &Modification::Refund { amount: eur(1_000) }, &caps).expect_err("unsupported");
    assert!(e.message().contains("multiple refunds"), "{}", e.message());
}

// --------------------------------------------------------------------------------------------------------
// Transitions

#[test]
fn creation_and_authorization_record_versions_and_parameters() {
    let rec = Rec::authorized();
    assert_eq!(rec.intent.status, IntentStatus::Authorized);
    assert_eq!(rec.intent.version, 2);
    assert_eq!(rec.intent.authorized, eur(10_000));
    assert_eq!(rec.intent.provider_reference.as_deref(), Some("mem_pay_1"));
    assert_eq!(rec.history.iter().map(|e| e.sequence).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(rec.history[0].operation, "create");
    let params = authorize_params(&rec.history).expect("recorded");
    assert_eq!(params.payment_method.0, "pm_card_visa");
    assert_eq!(event_text(&rec.history[1]), Some("authorized 100.00 EUR"));
    assert_eq!(rec.history[1].detail.as_deref(), Some("authorized 100.00 EUR"), "detail is text for people only");
    assert!(rec.history[1].data.as_deref().is_some_and(|d| d.starts_with('{')), "the applied call is recorded in data");
}

#[test]
fn automatic_capture_and_declines() {
    let mut rec = Rec::new(eur(500));
    let mut snap = PaymentSnapshot::authorized("p", ProviderPaymentStatus::Captured, eur(500));
    snap.captured = eur(500);
    let t = apply_authorization(&rec.intent, &rec.history, &call(Operation::Authorize, "auth"), &snap, T0);
    rec.push(t);
    assert_eq!((rec.intent.status, rec.intent.captured), (IntentStatus::Captured, eur(500)));

    let rec = Rec::new(eur(500));
    let refusal = PaymentsError::new(ErrorKind::Declined, Operation::Authorize, "Your card was declined.")
        .with_decline(commerce_ports::DeclineDetails::with_code("insufficient_funds"));
    let t = apply_authorization_refused(&rec.intent, &rec.history, &call(Operation::Authorize, "auth"), &refusal, T0)
        .expect("ok")
        .expect("change");
    assert_eq!(t.intent.status, IntentStatus::Failed);
    assert_eq!(
        event_text(&t.event),
        Some("authorization refused (declined): Your card was declined. (decline code insufficient_funds)")
    );
    assert_eq!(t.intent.authorized, eur(0));
}

#[test]
fn provider_authorizing_more_than_asked_is_unexpected() {
    let rec = Rec::new(eur(500));
    let snap = PaymentSnapshot::authorized("p", ProviderPaymentStatus::Authorized, eur(600));
    let e = apply_authorization(&rec.intent, &rec.history, &call(Operation::Authorize, "auth"), &snap, T0)
        .expect_err("refused");
    assert_eq!(e.kind(), ErrorKind::Unexpected);
}

#[test]
fn partial_then_full_capture_then_refunds_to_terminal() {
    let mut rec = Rec::authorized();
    rec.capture("c1", 4_000, false).expect("partial");
    assert_eq!((rec.intent.status, rec.intent.captured), (IntentStatus::PartiallyCaptured, eur(4_000)));
    rec.capture("c2", 6_000, false).expect("rest");
    assert_eq!(
        (rec.intent.status, rec.intent.captured),
        (IntentStatus::Captured, eur(10_000)),
        "capturing all is a full capture"
    );
    rec.refund("r1", 2_500).expect("partial refund");
    assert_eq!((rec.intent.status, rec.intent.refunded), (IntentStatus::PartiallyRefunded, eur(2_500)));
    rec.refund("r2", 7_500).expect("rest");
    assert_eq!(rec.intent.status, IntentStatus::Refunded);
    assert!(rec.intent.status.is_terminal());
    assert_eq!(err_of(rec.refund("r3", 1)).0, ErrorKind::InvalidState, "terminal stays terminal");
    assert_eq!(rec.intent.version, 6);
    assert_eq!(rec.history.len(), 6);
}

#[test]
fn final_capture_below_authorized_is_captured_and_closes_capturing() {
    let mut rec = Rec::authorized();
    rec.capture("c1", 3_000, true).expect("final");
    assert_eq!(
        (rec.intent.status, rec.intent.captured, rec.intent.authorized),
        (IntentStatus::Captured, eur(3_000), eur(10_000))
    );
    assert_eq!(event_text(rec.history.last().expect("event")), Some("captured 30.00 EUR (final; 70.00 EUR released)"));
    let e = rec.capture("c2", 1_000, false).expect_err("closed");
    assert!(e.message().contains("no capture may follow a final capture"), "{}", e.message());
    rec.refund("r1", 3_000).expect("refund all captured");
    assert_eq!(rec.intent.status, IntentStatus::Refunded);
}

#[test]
fn void_is_terminal_and_keeps_amounts() {
    let mut rec = Rec::authorized();
    rec.modify("v1", Command::Void).expect("void");
    assert_eq!(rec.intent.status, IntentStatus::Voided);
    assert_eq!(rec.intent.authorized, eur(10_000), "amounts never decrease, even on a void");
    assert_eq!(err_of(rec.capture("c1", 100, false)).0, ErrorKind::InvalidState);
    let snap = PaymentSnapshot::authorized("mem_pay_1", ProviderPaymentStatus::Captured, eur(10_000));
    assert_eq!(
        apply_snapshot(&rec.intent, &rec.history, &snap, T0).expect("ok"),
        None,
        "reconcile leaves terminal intents alone"
    );
}

#[test]
fn check_transition_guards_every_invariant() {
    let prev = with(IntentStatus::PartiallyCaptured, 5_000, 3_000, 0);
    let mut next = prev.clone();
    next.version += 1;
    assert!(check_transition(&prev, &next, Operation::Capture).is_ok());

    let mut lower = next.clone();
    lower.captured = eur(2_000);
    let e = check_transition(&prev, &lower, Operation::Reconcile).expect_err("decrease");
    assert_eq!(e.kind(), ErrorKind::Unexpected);
    assert!(e.message().contains("captured would decrease from 30.00 EUR to 20.00 EUR"), "{}", e.message());

    let mut over = next.clone();
    over.captured = eur(6_000);
    assert!(
        err_of(check_transition(&prev, &over, Operation::Capture))
            .1
            .contains("captured 60.00 EUR exceeds authorized 50.00 EUR")
    );

    let mut refund_over = next.clone();
    refund_over.refunded = eur(3_500);
    assert!(
        err_of(check_transition(&prev, &refund_over, Operation::Refund))
            .1
            .contains("refunded 35.00 EUR exceeds captured 30.00 EUR")
    );

    let mut skipped = next.clone();
    skipped.version += 1;
    assert!(err_of(check_transition(&prev, &skipped, Operation::Capture)).1.contains("does not follow"));

    let terminal = with(IntentStatus::Voided, 5_000, 0, 0);
    let mut revived = terminal.clone();
    revived.version += 1;
    revived.status = IntentStatus::Authorized;
    assert!(err_of(check_transition(&terminal, &revived, Operation::Reconcile)).1.contains("a terminal state"));

    let mut other_currency = next;
    other_currency.refunded = Money::from_minor(0, Currency::USD);
    assert!(
        err_of(check_transition(&prev, &other_currency, Operation::Refund)).1.contains("not in the intent's currency")
    );
}

// --------------------------------------------------------------------------------------------------------
// Unknown outcomes

#[test]
fn unknown_capture_keeps_amounts_and_records_the_pending_call() {
    let mut rec = Rec::authorized();
    rec.capture("c1", 2_000, false).expect("partial");
    rec.unknown("c2", Command::Capture { amount: Some(eur(3_000)), final_capture: true });
    assert_eq!(rec.intent.status, IntentStatus::OutcomeUnknown);
    assert_eq!(rec.intent.captured, eur(2_000), "amounts stay as they were before the unknown call");
    let last = rec.history.last().expect("event");
    assert_eq!((last.operation.as_str(), last.amount), ("capture", Some(eur(3_000))));
    assert_eq!(event_text(last), Some("outcome unknown: timed out after sending"));
    let pending = pending_operation(&rec.intent, &rec.history).expect("pending");
    assert_eq!(pending.call, call(Operation::Capture, "c2"));
    assert_eq!(
        (pending.amount, pending.final_capture, pending.prior_status),
        (Some(eur(3_000)), true, IntentStatus::PartiallyCaptured)
    );
}

#[test]
fn while_unknown_only_the_pending_call_may_run() {
    let mut rec = Rec::authorized();
    rec.unknown("c1", Command::Capture { amount: Some(eur(3_000)), final_capture: false });
    let retry = admit_modification(
        &rec.intent,
        &rec.history,
        &call(Operation::Capture, "c1"),
        Command::Capture { amount: Some(eur(3_000)), final_capture: false },
    )
    .expect("the retry is admitted");
    assert_eq!(retry, Admission::Send(Modification::Capture { amount: eur(3_000), final_capture: false }));

    let other = admit_modification(
        &rec.intent,
        &rec.history,
        &call(Operation::Refund, "r1"),
        Command::Refund { amount: eur(100) },
    )
    .expect_err("another call waits");
    assert_eq!((other.kind(), other.retry()), (ErrorKind::InvalidState, RetryClass::Retryable));
    assert!(
        other.message().contains("the outcome of the capture of 30.00 EUR on intent `pi_test` is unknown"),
        "{}",
        other.message()
    );

    let reused = ProviderCall::new(Operation::Capture, "c1", "another-fingerprint");
    let e = admit_modification(
        &rec.intent,
        &rec.history,
        &reused,
        Command::Capture { amount: Some(eur(10)), final_capture: false },
    )
    .expect_err("conflict");
    assert_eq!(e.kind(), ErrorKind::IdempotencyConflict);
    assert!(e.message().contains("first used for `capture`"), "{}", e.message());
}

#[test]
fn the_answer_to_a_pending_call_is_applied_once() {
    let mut rec = Rec::authorized();
    rec.unknown("c1", Command::Capture { amount: Some(eur(3_000)), final_capture: false });
    rec.capture("c1", 3_000, false).expect("the retry's answer");
    assert_eq!((rec.intent.status, rec.intent.captured), (IntentStatus::PartiallyCaptured, eur(3_000)));

    // The same answer again (a late retry, or a re-application after a version conflict) changes nothing.
    let c = call(Operation::Capture, "c1");
    let m = Modification::Capture { amount: eur(3_000), final_capture: false };
    let result = ModificationResult::new("mod_c1", ModificationStatus::Succeeded, eur(3_000));
    assert_eq!(apply_modification(&rec.intent, &rec.history, &c, &m, &result, T0).expect("ok"), None);
    let again = admit_modification(
        &rec.intent,
        &rec.history,
        &c,
        Command::Capture { amount: Some(eur(3_000)), final_capture: false },
    );
    assert_eq!(again.expect("admitted"), Admission::AlreadyApplied);
}

#[test]
fn a_refused_pending_call_restores_the_prior_status() {
    let mut rec = Rec::authorized();
    rec.capture("c1", 10_000, true).expect("captured");
    rec.unknown("r1", Command::Refund { amount: eur(1_000) });
    let refusal = PaymentsError::new(ErrorKind::InvalidRequest, Operation::Refund, "no");
    let t = apply_refusal(&rec.intent, &rec.history, &call(Operation::Refund, "r1"), &refusal, T0);
    rec.push(t);
    assert_eq!((rec.intent.status, rec.intent.refunded), (IntentStatus::Captured, eur(0)));
    // A refusal of a call that was not pending changes nothing.
    assert_eq!(
        apply_refusal(&rec.intent, &rec.history, &call(Operation::Refund, "r2"), &refusal, T0).expect("ok"),
        None
    );
}

#[test]
fn reconcile_applies_a_pending_capture_from_the_provider_and_remembers_it() {
    let mut rec = Rec::authorized();
    rec.unknown("c1", Command::Capture { amount: Some(eur(3_000)), final_capture: true });
    let mut snap = PaymentSnapshot::authorized("mem_pay_1", ProviderPaymentStatus::Captured, eur(10_000));
    snap.captured = eur(3_000);
    let t = apply_snapshot(&rec.intent, &rec.history, &snap, T0);
    rec.push(t);
    assert_eq!(
        (rec.intent.status, rec.intent.captured),
        (IntentStatus::Captured, eur(3_000)),
        "the pending capture was final"
    );
    assert!(
        event_text(rec.history.last().expect("e"))
            .is_some_and(|t| t.contains("the pending capture of 30.00 EUR took effect"))
    );
    let retry = admit_modification(
        &rec.intent,
        &rec.history,
        &call(Operation::Capture, "c1"),
        Command::Capture { amount: Some(eur(3_000)), final_capture: true },
    );
    assert_eq!(retry.expect("admitted"), Admission::AlreadyApplied, "a late retry is not counted twice");
    assert_eq!(
        apply_snapshot(&rec.intent, &rec.history, &snap, T0).expect("ok"),
        None,
        "reconciling again changes nothing"
    );
}

#[test]
fn reconcile_without_effect_returns_to_the_prior_status_and_never_lowers_amounts() {
    let mut rec = Rec::authorized();
    rec.capture("c1", 2_000, false).expect("partial");
    rec.unknown("c2", Command::Capture { amount: Some(eur(1_000)), final_capture: false });
    // The provider shows less than we know: ours wins, and the pending capture did not happen.
    let snap = PaymentSnapshot::authorized("mem_pay_1", ProviderPaymentStatus::Authorized, eur(10_000));
    let t = apply_snapshot(&rec.intent, &rec.history, &snap, T0);
    rec.push(t);
    assert_eq!((rec.intent.status, rec.intent.captured), (IntentStatus::PartiallyCaptured, eur(2_000)));
    assert!(pending_operation(&rec.intent, &rec.history).is_none());
    // The retry with the same key is a fresh call again.
    let retry = admit_modification(
        &rec.intent,
        &rec.history,
        &call(Operation::Capture, "c2"),
        Command::Capture { amount: Some(eur(1_000)), final_capture: false },
    );
    assert_eq!(
        retry.expect("admitted"),
        Admission::Send(Modification::Capture { amount: eur(1_000), final_capture: false })
    );
}

#[test]
fn reconcile_keeps_an_unknown_intent_while_the_provider_is_undecided() {
    let mut rec = Rec::authorized();
    rec.unknown("v1", Command::Void);
    let snap = PaymentSnapshot::authorized("mem_pay_1", ProviderPaymentStatus::Pending, eur(10_000));
    assert_eq!(apply_snapshot(&rec.intent, &rec.history, &snap, T0).expect("ok"), None);
    let voided = PaymentSnapshot::authorized("mem_pay_1", ProviderPaymentStatus::Voided, eur(10_000));
    let t = apply_snapshot(&rec.intent, &rec.history, &voided, T0);
    rec.push(t);
    assert_eq!(rec.intent.status, IntentStatus::Voided);
}

#[test]
fn reconcile_refuses_another_payments_snapshot() {
    let rec = Rec::authorized();
    let snap = PaymentSnapshot::authorized("someone_else", ProviderPaymentStatus::Authorized, eur(10_000));
    assert_eq!(err_of(apply_snapshot(&rec.intent, &rec.history, &snap, T0)).0, ErrorKind::Unexpected);
}

#[test]
fn an_unknown_authorization_is_settled_by_its_own_answer_only() {
    let mut rec = Rec::new(eur(500));
    let auth = call(Operation::Authorize, "auth");
    let t = apply_unknown(&rec.intent, &rec.history, &auth, Some(eur(500)), false, "reset", None, T0);
    rec.push(t);
    assert_eq!(admit_authorize(&rec.intent, &rec.history, &auth).expect("retry"), Admission::Send(auth.clone()));
    let e = admit_authorize(&rec.intent, &rec.history, &ProviderCall::new(Operation::Authorize, "auth", "other"))
        .expect_err("conflict");
    assert_eq!(e.kind(), ErrorKind::IdempotencyConflict);
    let snap = PaymentSnapshot::authorized("mem_pay_9", ProviderPaymentStatus::Authorized, eur(500));
    let t = apply_authorization(&rec.intent, &rec.history, &auth, &snap, T0);
    rec.push(t);
    assert_eq!(rec.intent.status, IntentStatus::Authorized);
    assert_eq!(admit_authorize(&rec.intent, &rec.history, &auth).expect("again"), Admission::AlreadyApplied);
    assert_eq!(apply_authorization(&rec.intent, &rec.history, &auth, &snap, T0).expect("ok"), None);
}

#[test]
fn pending_modifications_of_asynchronous_providers_wait_for_reconciliation() {
    let mut rec = Rec::authorized();
    let c = call(Operation::Capture, "c1");
    let m = Modification::Capture { amount: eur(4_000), final_capture: true };
    let pending = ModificationResult::new("cap_1", ModificationStatus::Pending, eur(4_000));
    let t = apply_modification(&rec.intent, &rec.history, &c, &m, &pending, T0);
    rec.push(t);
    assert_eq!((rec.intent.status, rec.intent.captured), (IntentStatus::OutcomeUnknown, eur(0)));
    let mut snap = PaymentSnapshot::authorized("mem_pay_1", ProviderPaymentStatus::Captured, eur(10_000));
    snap.captured = eur(4_000);
    let t = apply_snapshot(&rec.intent, &rec.history, &snap, T0);
    rec.push(t);
    assert_eq!((rec.intent.status, rec.intent.captured), (IntentStatus::Captured, eur(4_000)));
}

#[test]
fn records_live_in_data_and_details_stay_text() {
    let plain = IntentEvent::new(1, T0, "webhook", IntentStatus::Authorized).with_detail("evt_1");
    assert_eq!(event_text(&plain), Some("evt_1"));
    assert_eq!(tag_of(&plain), None);
    let foreign = IntentEvent::new(1, T0, "webhook", IntentStatus::Authorized).with_data("not json");
    assert_eq!(tag_of(&foreign), None, "a record this crate did not write is ignored, not misread");
}

#[test]
fn an_increment_raises_authorized_and_amount_and_is_admitted_only_before_a_capture() {
    let mut rec = Rec::authorized();
    let e = rec.modify("inc-low", Command::Increment { new_total: eur(10_000) }).expect_err("not above");
    assert_eq!(
        (e.kind(), e.message()),
        (ErrorKind::InvalidRequest, "new total 100.00 EUR must exceed the authorized 100.00 EUR")
    );
    let usd = Money::from_minor(12_000, Currency::USD);
    let e = rec.modify("inc-usd", Command::Increment { new_total: usd }).expect_err("currency");
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);

    let inc = call(Operation::Increment, "inc-1");
    let command = Command::Increment { new_total: eur(12_000) };
    let Ok(Admission::Send(m)) = admit_modification(&rec.intent, &rec.history, &inc, command) else {
        panic!("admitted");
    };
    let mut caps = GatewayCapabilities::full(vec![TenderKind::Card]);
    assert!(check_supported(&rec.intent, &m, &caps).is_ok());
    caps.incremental_authorization = false;
    assert_eq!(check_supported(&rec.intent, &m, &caps).map_err(|e| e.kind()), Err(ErrorKind::Unsupported));

    // The provider may not report more than asked.
    let too_much = PaymentSnapshot::authorized("mem_pay_1", ProviderPaymentStatus::Authorized, eur(13_000));
    let e = apply_increment(&rec.intent, &rec.history, &inc, eur(12_000), &too_much, T0).expect_err("contradicts");
    assert_eq!(e.kind(), ErrorKind::Unexpected);

    let snap = PaymentSnapshot::authorized("mem_pay_1", ProviderPaymentStatus::Authorized, eur(12_000));
    rec.push(apply_increment(&rec.intent, &rec.history, &inc, eur(12_000), &snap, T0));
    assert_eq!(
        (rec.intent.status, rec.intent.amount, rec.intent.authorized),
        (IntentStatus::Authorized, eur(12_000), eur(12_000))
    );
    // Re-applying the same answer changes nothing; a late retry is recognised.
    assert_eq!(
        apply_increment(&rec.intent, &rec.history, &inc, eur(12_000), &snap, T0).map(|t| t.is_none()).ok(),
        Some(true)
    );
    assert_eq!(admit_modification(&rec.intent, &rec.history, &inc, command).ok(), Some(Admission::AlreadyApplied));

    rec.modify("cap-1", Command::Capture { amount: Some(eur(1_000)), final_capture: false }).expect("captured");
    let e = rec.modify("inc-2", Command::Increment { new_total: eur(15_000) }).expect_err("after a capture");
    assert_eq!(e.kind(), ErrorKind::InvalidState);
    assert!(e.message().contains("only before the first capture"), "{}", e.message());
}

#[test]
fn an_unknown_increment_the_provider_does_not_show_returns_to_the_old_authorization() {
    let mut rec = Rec::authorized();
    let inc = call(Operation::Increment, "inc-1");
    rec.push(apply_unknown(&rec.intent, &rec.history, &inc, Some(eur(12_000)), false, "timeout", None, T0));
    assert_eq!(rec.intent.status, IntentStatus::OutcomeUnknown);
    let old = PaymentSnapshot::authorized("mem_pay_1", ProviderPaymentStatus::Authorized, eur(10_000));
    rec.push(apply_snapshot(&rec.intent, &rec.history, &old, T0));
    assert_eq!(
        (rec.intent.status, rec.intent.amount, rec.intent.authorized),
        (IntentStatus::Authorized, eur(10_000), eur(10_000))
    );
    assert!(applied_call(&rec.history, "inc-1").is_none(), "not applied: a retry sends it again");
    assert!(event_text(rec.history.last().expect("event")).is_some_and(|t| t.contains("did not take effect")));

    // Declined on the retry: recorded, the authorization unchanged.
    let refusal = PaymentsError::new(ErrorKind::Declined, Operation::Increment, "declined");
    rec.push(apply_increment_refusal(&rec.intent, &rec.history, &inc, eur(12_000), &refusal, T0));
    assert_eq!((rec.intent.status, rec.intent.authorized), (IntentStatus::Authorized, eur(10_000)));
    assert_eq!(rec.history.last().map(|e| e.operation.as_str()), Some("increment"));
}
