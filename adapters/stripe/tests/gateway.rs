//! The Stripe gateway against the loopback simulator: the conformance suite, idempotent retries and faults.

use std::sync::Arc;
use std::time::Duration;

use commerce_ports::payment::{AuthorizeRequest, CaptureRequest, PaymentGateway, ProviderPaymentStatus, RefundRequest};
use commerce_ports::{Currency, ErrorKind, IdempotencyKey, Money, RetryClass, Secret, TenderKind};
use commerce_stripe::{RetryPolicy, StripeConfig, StripeGateway};
use commerce_testkit::conformance::gateway::{GatewayFixture, run_all};
use commerce_testkit::simulators::stripe::{Fault, StripeSimulator};

const CLIENT_TIMEOUT: Duration = Duration::from_millis(400);
const HOLD: Duration = Duration::from_secs(3);

async fn simulator() -> StripeSimulator {
    match StripeSimulator::start().await {
        Ok(sim) => sim,
        Err(e) => panic!("simulator: {e}"),
    }
}

fn gateway_with(sim: &StripeSimulator, key: &str, attempts: u32) -> StripeGateway {
    gateway_timing(sim, key, attempts, CLIENT_TIMEOUT)
}

fn gateway_timing(sim: &StripeSimulator, key: &str, attempts: u32, timeout: Duration) -> StripeGateway {
    let config = StripeConfig::new(Secret::new(key))
        .and_then(|c| c.with_base_url(sim.base_url()))
        .map(|c| {
            c.with_timeouts(Duration::from_millis(500), timeout).with_retry(RetryPolicy::new(
                attempts,
                Duration::from_millis(20),
                Duration::from_millis(100),
            ))
        })
        .and_then(StripeGateway::new);
    match config {
        Ok(gateway) => gateway,
        Err(e) => panic!("gateway: {e}"),
    }
}

fn gateway(sim: &StripeSimulator) -> StripeGateway {
    gateway_with(sim, sim.api_key(), 3)
}

fn key(name: &str) -> IdempotencyKey {
    match IdempotencyKey::new(format!("test-{name}")) {
        Ok(key) => key,
        Err(e) => panic!("{e}"),
    }
}

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

async fn authorized(gw: &StripeGateway, name: &str, minor: i64) -> String {
    let request =
        AuthorizeRequest::new(eur(minor), TenderKind::Card, "pm_card_visa", name, key(&format!("{name}-auth")));
    match gw.authorize(request).await {
        Ok(snapshot) => {
            assert_eq!(snapshot.status, ProviderPaymentStatus::Authorized);
            snapshot.provider_reference
        }
        Err(e) => panic!("authorize: {e}"),
    }
}

#[tokio::test]
async fn conformance_suite_passes_directly_in_eur_and_jpy() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let report = run_all(&gw, &GatewayFixture::new(Currency::EUR, TenderKind::Card)).await;
    assert!(report.skipped.iter().any(|(b, _)| *b == "capture_in_parts"), "multiple captures are not declared");
    report.assert_passed();
    run_all(&gw, &GatewayFixture::new(Currency::JPY, TenderKind::Wallet)).await.assert_passed();
}

#[tokio::test]
async fn conformance_suite_passes_through_arc_and_box_dyn() {
    let sim = simulator().await;
    let shared: Arc<dyn PaymentGateway> = Arc::new(gateway(&sim));
    run_all(&shared, &GatewayFixture::new(Currency::USD, TenderKind::Card)).await.assert_passed();
    let boxed: Box<dyn PaymentGateway> = Box::new(gateway(&sim));
    run_all(&boxed, &GatewayFixture::new(Currency::EUR, TenderKind::Card)).await.assert_passed();
}

#[tokio::test]
async fn a_timeout_after_processing_is_retried_with_the_same_key_and_replayed() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let reference = authorized(&gw, "timeout-once", 2_000).await;
    sim.inject_on("/capture", Fault::TimeoutAfterProcessing(HOLD));
    let captured = gw.capture(CaptureRequest::new(&reference, eur(1_500), key("timeout-once-capture"))).await;
    assert_eq!(captured.map(|c| c.amount).ok(), Some(eur(1_500)));
    assert_eq!(sim.processed_calls_on("/capture"), 1, "captured once, the retry was a replay");
    let view = gw.retrieve(&reference).await.ok();
    assert_eq!(view.map(|v| (v.status, v.captured)), Some((ProviderPaymentStatus::Captured, eur(1_500))));
}

#[tokio::test]
async fn persistent_faults_after_processing_are_outcome_unknown_and_a_later_retry_settles_once() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let reference = authorized(&gw, "unknown", 3_000).await;
    sim.inject_on("/capture", Fault::TimeoutAfterProcessing(HOLD));
    sim.inject_on("/capture", Fault::DropAfterProcessing);
    sim.inject_on("/capture", Fault::TimeoutAfterProcessing(HOLD));
    let request = CaptureRequest::new(&reference, eur(3_000), key("unknown-capture"));
    let err = gw.capture(request.clone()).await.err();
    assert_eq!(err.as_ref().map(|e| (e.kind(), e.retry())), Some((ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly)));
    assert_eq!(sim.processed_calls_on("/capture"), 1);

    let settled = gw.capture(request).await;
    assert_eq!(settled.map(|c| c.amount).ok(), Some(eur(3_000)));
    assert_eq!(sim.processed_calls_on("/capture"), 1, "the later retry was a replay, not a second capture");
    assert_eq!(gw.retrieve(&reference).await.ok().map(|v| v.captured), Some(eur(3_000)));
}

#[tokio::test]
async fn a_503_that_must_not_be_retried_is_unavailable_after_one_attempt() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let reference = authorized(&gw, "no-retry", 1_000).await;
    let before = sim.requests_received();
    sim.inject_on("/capture", Fault::Unavailable { status: 503, should_retry: Some(false) });
    let err = gw.capture(CaptureRequest::new(&reference, eur(1_000), key("no-retry-capture"))).await.err();
    assert_eq!(err.as_ref().map(|e| (e.kind(), e.retry())), Some((ErrorKind::Unavailable, RetryClass::Retryable)));
    // The pre-capture currency check (a GET) and one capture attempt.
    assert_eq!(sim.requests_received() - before, 2);
    assert_eq!(sim.processed_calls_on("/capture"), 0);

    // A retryable 5xx is retried with the same key and succeeds.
    sim.inject_on("/capture", Fault::Unavailable { status: 503, should_retry: Some(true) });
    sim.inject_on("/capture", Fault::Unavailable { status: 502, should_retry: None });
    let ok = gw.capture(CaptureRequest::new(&reference, eur(1_000), key("no-retry-capture"))).await;
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(sim.processed_calls_on("/capture"), 1);
}

#[tokio::test]
async fn persistent_5xx_on_a_post_is_outcome_unknown_as_the_client_cannot_tell_it_was_not_processed() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    for _ in 0..3 {
        sim.inject_on("/v1/payment_intents", Fault::Unavailable { status: 500, should_retry: None });
    }
    let request = AuthorizeRequest::new(eur(100), TenderKind::Card, "pm_card_visa", "x", key("exhausted"));
    let err = gw.authorize(request.clone()).await.err();
    assert_eq!(err.as_ref().map(|e| (e.kind(), e.retry())), Some((ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly)));
    assert_eq!(sim.processed_calls(), 0);
    // The same-key retry the error asks for settles it.
    assert_eq!(gw.authorize(request).await.map(|s| s.authorized).ok(), Some(eur(100)));
    assert_eq!(sim.processed_calls(), 1);

    // 502 and 504 (from a proxy) are as ambiguous as a 500; GETs stay Unavailable.
    let reference = authorized(&gw, "gateway-5xx", 1_000).await;
    for status in [502, 504] {
        for _ in 0..3 {
            sim.inject_on("/capture", Fault::Unavailable { status, should_retry: None });
        }
        let err = gw.capture(CaptureRequest::new(&reference, eur(1_000), key("gateway-5xx-capture"))).await.err();
        assert_eq!(err.map(|e| (e.kind(), e.retry())), Some((ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly)));
    }
    for _ in 0..3 {
        sim.inject_on(reference.clone(), Fault::Unavailable { status: 500, should_retry: None });
    }
    let read = gw.retrieve(&reference).await.err();
    assert_eq!(read.map(|e| (e.kind(), e.retry())), Some((ErrorKind::Unavailable, RetryClass::Exhausted)));
}

#[tokio::test]
async fn a_stored_5xx_is_replayed_like_stripe_does() {
    let sim = simulator().await;
    let gw = gateway_with(&sim, sim.api_key(), 1);
    sim.inject_on("/v1/payment_intents", Fault::ApiError { status: 500, should_retry: Some(false) });
    let request = AuthorizeRequest::new(eur(100), TenderKind::Card, "pm_card_visa", "x", key("stored-500"));
    // Stripe: the result of a 500 is indeterminate, whatever `Stripe-Should-Retry` says.
    let unknown = Some((ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly));
    assert_eq!(gw.authorize(request.clone()).await.err().map(|e| (e.kind(), e.retry())), unknown);
    assert_eq!(gw.authorize(request).await.err().map(|e| (e.kind(), e.retry())), unknown, "replayed");
}

#[tokio::test]
async fn a_connection_reset_before_processing_is_retried() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    sim.inject(Fault::ConnectionReset);
    let request = AuthorizeRequest::new(eur(700), TenderKind::Card, "pm_card_visa", "reset", key("reset"));
    let snapshot = gw.authorize(request).await;
    assert_eq!(snapshot.map(|s| s.authorized).ok(), Some(eur(700)));
    assert_eq!(sim.processed_calls(), 1);
}

#[tokio::test]
async fn an_unreachable_stripe_is_unavailable() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    drop(sim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let request = AuthorizeRequest::new(eur(700), TenderKind::Card, "pm_card_visa", "gone", key("gone"));
    let err = gw.authorize(request).await.err();
    assert_eq!(err.map(|e| (e.kind(), e.retry())), Some((ErrorKind::Unavailable, RetryClass::Exhausted)));
}

#[tokio::test]
async fn a_malformed_body_is_retried_for_mutations_then_unknown_and_unexpected_for_reads() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let reference = authorized(&gw, "malformed", 1_000).await;
    sim.inject_on("/capture", Fault::MalformedBody);
    let request = CaptureRequest::new(&reference, eur(1_000), key("malformed-capture"));
    assert_eq!(gw.capture(request).await.map(|c| c.amount).ok(), Some(eur(1_000)), "the retry got the replay");
    assert_eq!(sim.processed_calls_on("/capture"), 1);

    let other = authorized(&gw, "malformed-2", 1_000).await;
    for _ in 0..3 {
        sim.inject_on("/refunds", Fault::MalformedBody);
    }
    gw.capture(CaptureRequest::new(&other, eur(1_000), key("malformed-2-capture"))).await.ok();
    let refund = gw.refund(RefundRequest::new(&other, eur(400), key("malformed-2-refund"))).await.err();
    assert_eq!(refund.map(|e| e.kind()), Some(ErrorKind::OutcomeUnknown));
    assert_eq!(sim.processed_calls_on("/refunds"), 1);

    for _ in 0..3 {
        sim.inject_on(other.clone(), Fault::MalformedBody);
    }
    assert_eq!(gw.retrieve(&other).await.err().map(|e| e.kind()), Some(ErrorKind::Unexpected));
    assert_eq!(gw.retrieve(&other).await.ok().map(|v| v.refunded), Some(eur(400)));
}

#[tokio::test]
async fn concurrent_use_of_a_key_is_in_progress() {
    let sim = simulator().await;
    // A patient client (its timeout far above the injected latency) and one that does not retry.
    let gw = gateway_timing(&sim, sim.api_key(), 3, Duration::from_secs(5));
    let impatient = gateway_with(&sim, sim.api_key(), 1);
    let reference = authorized(&gw, "concurrent", 1_000).await;
    sim.inject_on("/capture", Fault::Latency(Duration::from_millis(300)));
    let request = CaptureRequest::new(&reference, eur(1_000), key("concurrent-capture"));
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        impatient.capture(request.clone()).await
    };
    let (first, second) = tokio::join!(gw.capture(request.clone()), second);
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(
        second.err().map(|e| (e.kind(), e.provider_code().map(str::to_owned))),
        Some((ErrorKind::InProgress, Some("idempotency_key_in_use".to_owned())))
    );
    assert_eq!(sim.processed_calls_on("/capture"), 1);
}

#[tokio::test]
async fn a_key_reused_on_another_endpoint_conflicts() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let reference = authorized(&gw, "reuse", 1_000).await;
    gw.capture(CaptureRequest::new(&reference, eur(1_000), key("reuse-shared"))).await.ok();
    let err = gw.refund(RefundRequest::new(&reference, eur(100), key("reuse-shared"))).await.err();
    assert_eq!(err.map(|e| e.kind()), Some(ErrorKind::IdempotencyConflict));
}

#[tokio::test]
async fn second_captures_are_unsupported_and_refund_limits_hold() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let reference = authorized(&gw, "second", 5_000).await;
    let first = gw.capture(CaptureRequest::new(&reference, eur(2_000), key("second-1")).partial()).await;
    assert!(first.is_ok(), "{first:?}");
    let second = gw.capture(CaptureRequest::new(&reference, eur(1_000), key("second-2"))).await.err();
    assert_eq!(second.map(|e| e.kind()), Some(ErrorKind::Unsupported));
    let view = gw.retrieve(&reference).await.ok();
    assert_eq!(view.map(|v| (v.authorized, v.captured)), Some((eur(5_000), eur(2_000))));
    assert!(gw.refund(RefundRequest::new(&reference, eur(2_000), key("second-r1"))).await.is_ok());
    let again = gw.refund(RefundRequest::new(&reference, eur(1), key("second-r2"))).await.err();
    assert_eq!(
        again.map(|e| (e.kind(), e.provider_code().map(str::to_owned))),
        Some((ErrorKind::InvalidState, Some("charge_already_refunded".to_owned())))
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_an_authentication_error_that_never_shows_the_key() {
    let sim = simulator().await;
    let gw = gateway_with(&sim, "sk_test_wrong_and_secret", 3);
    assert!(!format!("{gw:?}").contains("wrong_and_secret"));
    let err = gw.retrieve("pi_1").await.err();
    let Some(err) = err else { panic!("a wrong key was accepted") };
    assert_eq!((err.kind(), err.retry()), (ErrorKind::Authentication, RetryClass::Permanent));
    assert!(!err.to_string().contains("wrong_and_secret"), "{err}");
    assert!(!format!("{err:?}").contains("wrong_and_secret"), "{err:?}");
    assert_eq!(sim.requests_received(), 1, "authentication failures are not retried");
}

#[tokio::test]
async fn an_unmappable_answer_to_a_post_is_outcome_unknown_and_unexpected_for_reads() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    sim.inject_on("/v1/payment_intents", Fault::UnknownStatus);
    let request = AuthorizeRequest::new(eur(800), TenderKind::Card, "pm_card_visa", "odd", key("odd-auth"));
    let err = gw.authorize(request.clone()).await.err();
    assert_eq!(err.as_ref().map(|e| (e.kind(), e.retry())), Some((ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly)));
    assert!(err.as_ref().and_then(std::error::Error::source).is_some(), "the mapping error is kept");
    assert_eq!(sim.processed_calls(), 1, "the authorization happened");
    // The same-key retry gets Stripe's stored answer.
    let snapshot = gw.authorize(request).await;
    assert_eq!(snapshot.as_ref().map(|s| s.authorized).ok(), Some(eur(800)));
    assert_eq!(sim.processed_calls(), 1);

    let reference = snapshot.map(|s| s.provider_reference).unwrap_or_default();
    sim.inject_on(reference.clone(), Fault::UnknownStatus);
    assert_eq!(gw.retrieve(&reference).await.err().map(|e| e.kind()), Some(ErrorKind::Unexpected));
}

#[tokio::test]
async fn a_capture_slower_than_the_client_timeout_is_captured_once_by_same_key_retries() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let reference = authorized(&gw, "slow", 2_000).await;
    // Longer than the client's request timeout: the first attempt times out while Stripe is still working.
    sim.inject_on("/capture", Fault::Latency(CLIENT_TIMEOUT + Duration::from_millis(400)));
    let request = CaptureRequest::new(&reference, eur(2_000), key("slow-capture"));
    let mut outcome = gw.capture(request.clone()).await;
    for _ in 0..10 {
        match &outcome {
            Err(e) if e.kind() == ErrorKind::OutcomeUnknown || e.kind() == ErrorKind::InProgress => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                outcome = gw.capture(request.clone()).await;
            }
            _ => break,
        }
    }
    assert_eq!(outcome.map(|c| c.amount).ok(), Some(eur(2_000)));
    assert_eq!(sim.processed_calls_on("/capture"), 1);
    let view = gw.retrieve(&reference).await.ok();
    assert_eq!(view.map(|v| (v.status, v.captured)), Some((ProviderPaymentStatus::Captured, eur(2_000))));
}
