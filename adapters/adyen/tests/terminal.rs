//! The Adyen terminal adapter against the simulator's Terminal API: payments with exact major-unit amounts,
//! referenced refunds, status (only ever the asked sale's), abort, declines and unknown outcomes.

use std::time::Duration;

use commerce_adyen::{AdyenConfig, AdyenTerminal};
use commerce_ports::terminal::{
    EntryMode, OfflineCardRead, OfflineForwardRequest, PaymentTerminal, TerminalPaymentRequest, TerminalRefundRequest,
};
use commerce_ports::{Currency, ErrorKind, IdempotencyKey, Money, RegisterId, RetryClass, Secret};
use commerce_testkit::simulators::adyen::{AdyenSimulator, Fault};

const TERMINAL: &str = "V400m-324688179";

async fn simulator() -> AdyenSimulator {
    match AdyenSimulator::start().await {
        Ok(sim) => sim,
        Err(e) => panic!("simulator: {e}"),
    }
}

fn terminal_with(sim: &AdyenSimulator, key: &str, timeout: Duration) -> AdyenTerminal {
    let terminal = AdyenConfig::new(Secret::new(key), "ShopCOM")
        .and_then(|c| c.with_terminal_base_url(sim.base_url()))
        .map(|c| c.with_terminal_timeout(timeout))
        .map_err(|e| e.to_string())
        .and_then(|c| AdyenTerminal::new(c).map_err(|e| e.to_string()));
    match terminal {
        Ok(terminal) => terminal,
        Err(e) => panic!("terminal: {e}"),
    }
}

fn terminal(sim: &AdyenSimulator) -> AdyenTerminal {
    terminal_with(sim, sim.api_key(), Duration::from_secs(5))
}

fn request(reference: &str, amount: Money) -> TerminalPaymentRequest {
    let register = RegisterId::new("reg-1").unwrap_or_else(|e| panic!("{e}"));
    let key = IdempotencyKey::new(format!("{reference}-key")).unwrap_or_else(|e| panic!("{e}"));
    TerminalPaymentRequest::new(TERMINAL, register, amount, reference, key)
}

fn refund(reference: &str, amount: Money, name: &str) -> TerminalRefundRequest {
    let key = IdempotencyKey::new(name).unwrap_or_else(|e| panic!("{e}"));
    TerminalRefundRequest::new(TERMINAL, reference, amount, key)
}

#[tokio::test]
async fn payments_round_trip_exact_amounts_in_every_exponent() {
    let sim = simulator().await;
    let t = terminal(&sim);
    let amounts = [
        Money::from_minor(1, Currency::JPY),
        Money::from_minor(1_005, Currency::EUR),
        Money::from_minor(1_234, Currency::KWD),
        // 2^53 + 1 cents: not representable as an f64, so only exact decimal text survives the round trip.
        Money::from_minor(9_007_199_254_740_993, Currency::EUR),
        Money::from_minor(i64::MAX, Currency::KWD),
    ];
    for (n, amount) in amounts.into_iter().enumerate() {
        let reference = format!("sale-{n}");
        let result = t.pay(request(&reference, amount)).await.unwrap_or_else(|e| panic!("{amount}: {e}"));
        assert_eq!(result.amount, amount);
        assert!(!result.offline);
        assert_eq!(result.scheme.as_deref(), Some("visa"));
        assert_eq!(result.masked_pan.as_deref(), Some("411111******1111"));
        assert_eq!(result.entry_mode, Some(EntryMode::Contactless));
        assert!(result.provider_reference.starts_with("SIM"), "{}", result.provider_reference);
        let status = t.status(TERMINAL, &reference).await.unwrap_or_else(|e| panic!("status: {e}"));
        assert_eq!(status, result, "status repeats the payment");
    }
}

#[tokio::test]
async fn refunds_reverse_at_most_what_was_paid() {
    let sim = simulator().await;
    let t = terminal(&sim);
    let paid = t.pay(request("refund-sale", Money::from_minor(2_550, Currency::EUR))).await;
    let reference = paid.map(|p| p.provider_reference).unwrap_or_else(|e| panic!("{e}"));
    let first = t.refund(refund(&reference, Money::from_minor(1_005, Currency::EUR), "r1")).await;
    let first = first.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.amount, Money::from_minor(1_005, Currency::EUR));
    assert_ne!(first.provider_reference, reference);
    let too_much = t.refund(refund(&reference, Money::from_minor(1_546, Currency::EUR), "r2")).await.err();
    assert_eq!(too_much.map(|e| e.kind()), Some(ErrorKind::InvalidRequest));
    let unknown = t.refund(refund("SIM0.unknown", Money::from_minor(1, Currency::EUR), "r3")).await.err();
    assert_eq!(unknown.map(|e| e.kind()), Some(ErrorKind::NotFound));
    assert!(t.capabilities().refunds && t.capabilities().abort && t.capabilities().offline.is_none());
}

#[tokio::test]
async fn a_refund_retried_with_its_key_never_refunds_twice() {
    let sim = simulator().await;
    let t = terminal(&sim);
    let paid = t.pay(request("retry-sale", Money::from_minor(3_000, Currency::EUR))).await;
    let reference = paid.map(|p| p.provider_reference).unwrap_or_else(|e| panic!("{e}"));
    let once = refund(&reference, Money::from_minor(1_000, Currency::EUR), "r-once");
    let once_key = once.idempotency_key.clone();
    t.refund(once.clone()).await.unwrap_or_else(|e| panic!("{e}"));
    // The retry sends the same ServiceID (derived from the key), which the terminal refuses as used: the second
    // 10.00 EUR is not refunded, so 20.00 EUR remains refundable.
    assert!(t.refund(once).await.is_err(), "a retry with the same key was refunded again");
    let rest = t.refund(refund(&reference, Money::from_minor(2_000, Currency::EUR), "r-rest")).await;
    assert_eq!(rest.map(|r| r.amount).ok(), Some(Money::from_minor(2_000, Currency::EUR)));
    assert_eq!(
        commerce_adyen::refund_service_id("acme", &once_key),
        commerce_adyen::refund_service_id("acme", &once_key)
    );
    assert_ne!(
        commerce_adyen::refund_service_id("acme", &once_key),
        commerce_adyen::refund_service_id("acme", &IdempotencyKey::new("r-rest").unwrap_or_else(|e| panic!("{e}")))
    );
}

#[tokio::test]
async fn a_decline_is_declined_with_details() {
    let sim = simulator().await;
    let t = terminal(&sim);
    sim.inject_on("/sync", Fault::Decline);
    let err = t.pay(request("declined", Money::from_minor(500, Currency::EUR))).await.err();
    let Some(err) = err else { panic!("approved") };
    assert_eq!(
        (err.kind(), err.retry(), err.provider_code()),
        (ErrorKind::Declined, RetryClass::Declined, Some("Refusal"))
    );
    assert_eq!(err.decline().and_then(|d| d.decline_code.as_deref()), Some("05"));
}

#[tokio::test]
async fn an_unknown_outcome_is_resolved_with_status_never_by_paying_again() {
    let sim = simulator().await;
    let t = terminal_with(&sim, sim.api_key(), Duration::from_millis(300));
    sim.inject_on("/sync", Fault::TimeoutAfterProcessing(Duration::from_secs(2)));
    let amount = Money::from_minor(4_200, Currency::EUR);
    let err = t.pay(request("lost", amount)).await.err();
    assert_eq!(err.map(|e| (e.kind(), e.retry())), Some((ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly)));
    let status = t.status(TERMINAL, "lost").await;
    assert_eq!(status.map(|s| s.amount).ok(), Some(amount));
    assert_eq!(sim.processed_calls_on("/sync"), 2, "one payment, one status");

    sim.inject_on("/sync", Fault::DropAfterProcessing);
    let err = t.pay(request("dropped", amount)).await.err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::OutcomeUnknown));
    let never = t.status(TERMINAL, "never-seen").await.err();
    assert_eq!(never.map(|e| e.kind()), Some(ErrorKind::NotFound));
}

#[tokio::test]
async fn abort_stops_a_payment_in_progress_and_a_busy_terminal_says_so() {
    let sim = simulator().await;
    let t = terminal(&sim);
    sim.inject_on("/sync", Fault::Latency(Duration::from_millis(400)));
    let amount = Money::from_minor(900, Currency::EUR);
    let others = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let in_progress = t.status(TERMINAL, "aborted").await.err().map(|e| e.kind());
        let busy = t.pay(request("second", amount)).await.err().map(|e| e.kind());
        let aborted = t.abort(TERMINAL, "aborted").await;
        (in_progress, busy, aborted)
    };
    let (paid, (in_progress, busy, aborted)) = tokio::join!(t.pay(request("aborted", amount)), others);
    assert_eq!(in_progress, Some(ErrorKind::InProgress));
    assert_eq!(busy, Some(ErrorKind::InProgress));
    assert!(aborted.is_ok(), "{aborted:?}");
    let paid = paid.err();
    assert_eq!(
        paid.map(|e| (e.kind(), e.provider_code().map(str::to_owned))),
        Some((ErrorKind::Declined, Some("Aborted".to_owned())))
    );
}

#[tokio::test]
async fn offline_is_unsupported_because_adyen_terminals_store_and_forward_themselves() {
    let sim = simulator().await;
    let t = terminal(&sim);
    let payment = request("offline", Money::from_minor(100, Currency::EUR));
    let read = t.read_offline(&payment).await.err();
    assert_eq!(read.as_ref().map(|e| e.kind()), Some(ErrorKind::Unsupported));
    assert!(read.is_some_and(|e| e.message().contains("store and forward")));
    let card = OfflineCardRead::new(Some("visa".into()), EntryMode::Chip, "blob");
    let forwarded = t.forward_offline(OfflineForwardRequest::new(payment, card, 0)).await.err();
    assert_eq!(forwarded.map(|e| e.kind()), Some(ErrorKind::Unsupported));
    assert_eq!(sim.requests_received(), 0);
}

#[tokio::test]
async fn invalid_requests_and_wrong_keys_fail_cleanly() {
    let sim = simulator().await;
    let t = terminal(&sim);
    let zero = t.pay(request("zero", Money::zero(Currency::EUR))).await.err();
    assert_eq!(zero.map(|e| e.kind()), Some(ErrorKind::InvalidRequest));
    let wrong = terminal_with(&sim, "AQE_wrong_terminal_key", Duration::from_secs(5));
    assert!(!format!("{wrong:?}").contains("wrong_terminal"));
    let err = wrong.pay(request("auth", Money::from_minor(100, Currency::EUR))).await.err();
    let Some(err) = err else { panic!("accepted") };
    assert_eq!(err.kind(), ErrorKind::Authentication);
    assert!(!err.to_string().contains("wrong_terminal"));
    // The same sale reference twice reuses its ServiceID, which the terminal rejects: pay once, then status.
    assert!(t.pay(request("twice", Money::from_minor(100, Currency::EUR))).await.is_ok());
    let again = t.pay(request("twice", Money::from_minor(100, Currency::EUR))).await.err();
    assert_eq!(again.map(|e| e.kind()), Some(ErrorKind::InvalidRequest));
}

#[tokio::test]
async fn a_configured_poi_id_is_used_when_a_request_names_no_terminal() {
    let sim = simulator().await;
    let configured = AdyenConfig::for_terminal(Secret::new(sim.api_key()))
        .and_then(|c| c.with_terminal_base_url(sim.base_url()))
        .and_then(|c| c.with_poi_id(TERMINAL))
        .map_err(|e| e.to_string())
        .and_then(|c| AdyenTerminal::new(c).map_err(|e| e.to_string()))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut payment = request("no-terminal", Money::from_minor(300, Currency::EUR));
    payment.terminal_id = String::new();
    assert!(configured.pay(payment.clone()).await.is_ok());
    assert!(configured.status("", "no-terminal").await.is_ok());
    payment.reference = "no-terminal-2".to_owned();
    let err = terminal(&sim).pay(payment).await.err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::InvalidRequest));
}

#[tokio::test]
async fn a_status_answered_with_another_sales_payment_is_unexpected_never_that_payment() {
    let sim = simulator().await;
    let t = terminal(&sim);
    let service_id = |reference: &str| commerce_adyen::payment_service_id(commerce_adyen::DEFAULT_SALE_ID, reference);
    let amount = Money::from_minor(1_500, Currency::EUR);
    let paid = t.pay(request("sale-a", amount)).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.status(TERMINAL, "sale-a").await.ok(), Some(paid), "the asked sale's own status is found");

    // sale-b "collides" with sale-a: its status lookup finds sale-a's approved payment.
    sim.answer_status_with(commerce_adyen::DEFAULT_SALE_ID, service_id("sale-b"), service_id("sale-a"));
    let err = t.status(TERMINAL, "sale-b").await.err();
    let Some(err) = err else { panic!("sale-a's payment was reported as sale-b's") };
    assert_eq!(err.kind(), ErrorKind::Unexpected, "{err}");
    let message = err.message();
    assert!(message.contains("`sale-b`") && message.contains("`sale-a`"), "{err}");
    assert!(message.contains(&service_id("sale-b")) && message.contains("unknown"), "{err}");

    // A declined payment of another sale is not this sale's decline either.
    sim.inject_on("/sync", Fault::Decline);
    assert_eq!(t.pay(request("sale-c", amount)).await.err().map(|e| e.kind()), Some(ErrorKind::Declined));
    sim.answer_status_with(commerce_adyen::DEFAULT_SALE_ID, service_id("sale-d"), service_id("sale-c"));
    let err = t.status(TERMINAL, "sale-d").await.err();
    assert_eq!(err.as_ref().map(|e| (e.kind(), e.decline().is_some())), Some((ErrorKind::Unexpected, false)));
    assert_eq!(t.status(TERMINAL, "sale-c").await.err().map(|e| e.kind()), Some(ErrorKind::Declined));
}
