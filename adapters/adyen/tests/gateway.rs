//! The Adyen gateway against the loopback simulator: the conformance suite, result codes, idempotency, faults
//! and signed notifications.

use std::sync::Arc;
use std::time::Duration;

use commerce_adyen::{AdyenConfig, AdyenGateway, AdyenWebhookVerifier, RetryPolicy};
use commerce_ports::payment::{
    AuthorizeRequest, CaptureMethod, CaptureRequest, ModificationStatus, PaymentGateway, ProviderPaymentStatus,
    RefundRequest, VoidRequest,
};
use commerce_ports::webhook::{PaymentEventKind, WebhookErrorKind, WebhookRequest, WebhookVerifier};
use commerce_ports::{Currency, ErrorKind, IdempotencyKey, Money, RetryClass, Secret, TenderKind};
use commerce_testkit::conformance::gateway::{GatewayFixture, run_all};
use commerce_testkit::simulators::adyen::{AdyenSimulator, Fault};
use commerce_testkit::simulators::webhooks::{Delivery, DeliveryPlan};
use serde_json::Value;
use time::OffsetDateTime;

const CLIENT_TIMEOUT: Duration = Duration::from_millis(400);
const HOLD: Duration = Duration::from_secs(3);

async fn simulator() -> AdyenSimulator {
    match AdyenSimulator::start().await {
        Ok(sim) => sim,
        Err(e) => panic!("simulator: {e}"),
    }
}

fn gateway_timing(sim: &AdyenSimulator, key: &str, attempts: u32, timeout: Duration) -> AdyenGateway {
    let gateway = AdyenConfig::new(Secret::new(key), "ShopCOM")
        .and_then(|c| c.with_base_url(sim.base_url()))
        .map(|c| {
            c.with_timeouts(Duration::from_millis(500), timeout).with_retry(RetryPolicy::new(
                attempts,
                Duration::from_millis(20),
                Duration::from_millis(100),
            ))
        })
        .and_then(AdyenGateway::new);
    match gateway {
        Ok(gateway) => gateway,
        Err(e) => panic!("gateway: {e}"),
    }
}

fn gateway(sim: &AdyenSimulator) -> AdyenGateway {
    gateway_timing(sim, sim.api_key(), 3, CLIENT_TIMEOUT)
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

fn auth_request(name: &str, minor: i64, method: &str) -> AuthorizeRequest {
    AuthorizeRequest::new(eur(minor), TenderKind::Card, method, name, key(&format!("{name}-auth")))
}

async fn authorized(gw: &AdyenGateway, name: &str, minor: i64) -> String {
    match gw.authorize(auth_request(name, minor, "pm_card_visa")).await {
        Ok(snapshot) => {
            assert_eq!(snapshot.status, ProviderPaymentStatus::Authorized);
            snapshot.provider_reference
        }
        Err(e) => panic!("authorize: {e}"),
    }
}

#[tokio::test]
async fn conformance_suite_passes_in_eur_and_jpy_and_through_dyn() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let report = run_all(&gw, &GatewayFixture::new(Currency::EUR, TenderKind::Card)).await;
    assert!(report.failed.is_empty(), "{report}");
    assert!(report.passed.len() >= 15, "too few behaviours ran: {report}");
    assert!(
        report.skipped.iter().any(|(b, r)| *b == "retrieve_unknown_is_not_found" && *r == "no retrieve"),
        "{report}"
    );
    assert!(report.passed.contains(&"capture_in_parts") && report.passed.contains(&"void_before_capture"), "{report}");
    run_all(&gw, &GatewayFixture::new(Currency::JPY, TenderKind::Wallet)).await.assert_passed();
    let shared: Arc<dyn PaymentGateway> = Arc::new(gateway(&sim));
    run_all(&shared, &GatewayFixture::new(Currency::KWD, TenderKind::Card)).await.assert_passed();
}

#[tokio::test]
async fn capabilities_say_asynchronous_without_retrieve_and_retrieve_says_why() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let caps = gw.capabilities();
    assert!(caps.asynchronous_modifications && !caps.retrieve && caps.multiple_captures);
    assert_eq!(caps.max_idempotency_key_len, 64);
    let err = gw.retrieve("8800000000000001").await.err();
    assert_eq!(err.as_ref().map(|e| e.kind()), Some(ErrorKind::Unsupported));
    assert!(err.is_some_and(|e| e.message().contains("notification")));
    assert_eq!(sim.requests_received(), 0, "retrieve never calls Adyen");
}

#[tokio::test]
async fn result_codes_from_the_simulator_map_to_the_port() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let cases = [
        ("pm_card_threeDSecureRequired", ProviderPaymentStatus::RequiresAction),
        ("pm_card_pending", ProviderPaymentStatus::Pending),
        ("pm_card_visa", ProviderPaymentStatus::Authorized),
    ];
    for (method, status) in cases {
        let snapshot = gw.authorize(auth_request(method, 1_000, method)).await;
        assert_eq!(snapshot.map(|s| s.status).ok(), Some(status), "{method}");
    }
    let automatic = auth_request("auto", 700, "pm_card_visa").with_capture_method(CaptureMethod::Automatic);
    let snapshot = gw.authorize(automatic).await.ok();
    assert_eq!(snapshot.map(|s| (s.status, s.captured)), Some((ProviderPaymentStatus::Captured, eur(700))));

    let declined = gw.authorize(auth_request("funds", 1_000, "pm_card_chargeDeclinedInsufficientFunds")).await.err();
    let Some(declined) = declined else { panic!("approved") };
    assert_eq!((declined.kind(), declined.retry()), (ErrorKind::Declined, RetryClass::Declined));
    assert!(declined.message().contains("Not enough balance"), "{declined}");
    assert_eq!(declined.decline().and_then(|d| d.decline_code.as_deref()), Some("12"));
    assert_eq!(declined.decline().and_then(|d| d.network_decline_code.as_deref()), Some("51 : Insufficient funds"));
    let error = gw.authorize(auth_request("error", 1_000, "pm_card_processingError")).await.err();
    assert_eq!(error.map(|e| (e.kind(), e.retry())), Some((ErrorKind::Unexpected, RetryClass::Permanent)));
}

#[tokio::test]
async fn same_key_replays_and_another_body_conflicts() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let request = auth_request("replay", 1_500, "pm_card_visa");
    let first = gw.authorize(request.clone()).await.ok().map(|s| s.provider_reference);
    let again = gw.authorize(request.clone()).await.ok().map(|s| s.provider_reference);
    assert!(first.is_some() && first == again, "{first:?} {again:?}");
    assert_eq!(sim.payment_count(), 1);
    let mut other = request;
    other.amount = eur(1_501);
    let err = gw.authorize(other).await.err();
    assert_eq!(
        err.map(|e| (e.kind(), e.retry(), e.provider_code().map(str::to_owned))),
        Some((ErrorKind::IdempotencyConflict, RetryClass::Permanent, Some("704".to_owned())))
    );
    assert_eq!(sim.payment_count(), 1);

    // A key longer than Adyen's 64 characters is shortened stably: the retry still replays.
    let long = IdempotencyKey::new(format!("order-{}", "x".repeat(150))).unwrap_or_else(|e| panic!("{e}"));
    let request = AuthorizeRequest::new(eur(300), TenderKind::Card, "pm_card_visa", "long", long);
    let a = gw.authorize(request.clone()).await.map(|s| s.provider_reference);
    let b = gw.authorize(request).await.map(|s| s.provider_reference);
    assert!(a.is_ok() && a.ok() == b.ok());
    assert_eq!(sim.payment_count(), 2);
}

#[tokio::test]
async fn concurrent_use_of_a_key_is_in_progress() {
    let sim = simulator().await;
    let patient = gateway_timing(&sim, sim.api_key(), 3, Duration::from_secs(5));
    let impatient = gateway_timing(&sim, sim.api_key(), 1, CLIENT_TIMEOUT);
    let reference = authorized(&patient, "concurrent", 1_000).await;
    sim.inject_on("/captures", Fault::Latency(Duration::from_millis(300)));
    let request = CaptureRequest::new(&reference, eur(1_000), key("concurrent-capture"));
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        impatient.capture(request.clone()).await
    };
    let (first, second) = tokio::join!(patient.capture(request.clone()), second);
    assert_eq!(first.map(|c| c.status).ok(), Some(ModificationStatus::Pending));
    assert_eq!(
        second.err().map(|e| (e.kind(), e.provider_code().map(str::to_owned))),
        Some((ErrorKind::InProgress, Some("704".to_owned())))
    );
    assert_eq!(sim.processed_calls_on("/captures"), 1);
}

#[tokio::test]
async fn a_timeout_after_processing_is_retried_with_the_same_key_and_makes_one_payment() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    sim.inject_on("/v71/payments", Fault::TimeoutAfterProcessing(HOLD));
    let snapshot = gw.authorize(auth_request("timeout", 2_000, "pm_card_visa")).await;
    assert_eq!(snapshot.map(|s| (s.status, s.authorized)).ok(), Some((ProviderPaymentStatus::Authorized, eur(2_000))));
    assert_eq!(sim.payment_count(), 1, "the retry was a replay");
    assert!(sim.requests_received() >= 2);
}

#[tokio::test]
async fn persistent_faults_after_processing_are_outcome_unknown_and_a_later_retry_settles_once() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let reference = authorized(&gw, "unknown", 3_000).await;
    sim.inject_on("/captures", Fault::TimeoutAfterProcessing(HOLD));
    sim.inject_on("/captures", Fault::DropAfterProcessing);
    sim.inject_on("/captures", Fault::MalformedBody);
    let request = CaptureRequest::new(&reference, eur(3_000), key("unknown-capture"));
    let err = gw.capture(request.clone()).await.err();
    assert_eq!(err.map(|e| (e.kind(), e.retry())), Some((ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly)));
    assert_eq!(sim.processed_calls_on("/captures"), 1);
    let settled = gw.capture(request).await;
    assert_eq!(settled.map(|c| (c.status, c.amount)).ok(), Some((ModificationStatus::Pending, eur(3_000))));
    assert_eq!(sim.processed_calls_on("/captures"), 1, "the later retry was a replay");
    assert_eq!(sim.pending_modifications(), 1);
}

#[tokio::test]
async fn persistent_5xx_is_outcome_unknown_and_resets_before_processing_are_retried() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    for _ in 0..3 {
        sim.inject_on("/v71/payments", Fault::Unavailable { status: 503 });
    }
    let request = auth_request("five", 100, "pm_card_visa");
    let err = gw.authorize(request.clone()).await.err();
    assert_eq!(err.map(|e| (e.kind(), e.retry())), Some((ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly)));
    assert_eq!(sim.payment_count(), 0);
    assert_eq!(gw.authorize(request).await.map(|s| s.authorized).ok(), Some(eur(100)));

    sim.inject(Fault::ConnectionReset);
    sim.inject(Fault::Unavailable { status: 502 });
    let snapshot = gw.authorize(auth_request("reset", 700, "pm_card_visa")).await;
    assert_eq!(snapshot.map(|s| s.authorized).ok(), Some(eur(700)));
    assert_eq!(sim.payment_count(), 2);
}

#[tokio::test]
async fn an_unknown_result_code_is_outcome_unknown_and_the_retry_gets_the_stored_answer() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    sim.inject_on("/v71/payments", Fault::UnknownResultCode);
    let request = auth_request("odd", 800, "pm_card_visa");
    let err = gw.authorize(request.clone()).await.err();
    assert_eq!(err.map(|e| (e.kind(), e.retry())), Some((ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly)));
    assert_eq!(gw.authorize(request).await.map(|s| s.status).ok(), Some(ProviderPaymentStatus::Authorized));
    assert_eq!(sim.payment_count(), 1);
}

#[tokio::test]
async fn request_time_refusals_are_invalid_requests() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let reference = authorized(&gw, "refusals", 1_000).await;
    let refund = gw.refund(RefundRequest::new(&reference, eur(100), key("refusals-refund"))).await.err();
    assert_eq!(
        refund.map(|e| (e.kind(), e.provider_code().map(str::to_owned))),
        Some((ErrorKind::InvalidRequest, Some("010".to_owned())))
    );
    let unknown = gw.capture(CaptureRequest::new("8899999999999999", eur(100), key("refusals-unknown"))).await.err();
    assert_eq!(
        unknown.map(|e| (e.kind(), e.provider_code().map(str::to_owned))),
        Some((ErrorKind::InvalidRequest, Some("167".to_owned())))
    );
    let void = gw.void(VoidRequest::new(&reference, key("refusals-void"))).await;
    assert_eq!(void.map(|v| (v.status, v.amount)).ok(), Some((ModificationStatus::Pending, eur(1_000))));
    assert_eq!(
        gw.void(VoidRequest::new("", key("refusals-empty"))).await.err().map(|e| e.kind()),
        Some(ErrorKind::InvalidRequest)
    );
}

#[tokio::test]
async fn a_void_reports_the_authorization_the_caller_states_even_from_a_fresh_process() {
    let sim = simulator().await;
    let reference = authorized(&gateway(&sim), "fresh-void", 2_500).await;
    // Another gateway (a restarted process) never saw the authorization; `/cancels` answers no amount.
    let fresh = gateway(&sim);
    let stated = VoidRequest::new(&reference, key("fresh-void-v")).with_authorized(eur(2_500));
    let void = fresh.void(stated).await;
    assert_eq!(void.map(|v| (v.status, v.amount)).ok(), Some((ModificationStatus::Pending, eur(2_500))));
}

#[tokio::test]
async fn a_wrong_api_key_is_an_authentication_error_that_never_shows_the_key() {
    let sim = simulator().await;
    let gw = gateway_timing(&sim, "AQE_wrong_and_secret", 3, CLIENT_TIMEOUT);
    assert!(!format!("{gw:?}").contains("wrong_and_secret"));
    let Some(err) = gw.authorize(auth_request("auth", 100, "pm_card_visa")).await.err() else { panic!("accepted") };
    assert_eq!((err.kind(), err.retry()), (ErrorKind::Authentication, RetryClass::Permanent));
    assert!(!err.to_string().contains("wrong_and_secret") && !format!("{err:?}").contains("wrong_and_secret"));
    assert_eq!(sim.requests_received(), 1, "authentication failures are not retried");
}

#[tokio::test]
async fn an_unreachable_adyen_is_unavailable() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    drop(sim);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = gw.authorize(auth_request("gone", 700, "pm_card_visa")).await.err();
    assert_eq!(err.map(|e| (e.kind(), e.retry())), Some((ErrorKind::Unavailable, RetryClass::Exhausted)));
}

fn verifier(sim: &AdyenSimulator) -> AdyenWebhookVerifier {
    AdyenWebhookVerifier::new(Secret::new(sim.hmac_key())).unwrap_or_else(|e| panic!("{e:?}"))
}

fn verify(verifier: &AdyenWebhookVerifier, delivery: &Delivery) -> Vec<commerce_ports::webhook::WebhookEvent> {
    let request = WebhookRequest::new(delivery.headers.clone(), delivery.body.to_vec());
    verifier.verify(&request, OffsetDateTime::now_utc()).unwrap_or_else(|e| panic!("{e:?}"))
}

#[tokio::test]
async fn modifications_settle_by_signed_notifications_that_the_verifier_accepts() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let verifier = verifier(&sim);
    let reference = authorized(&gw, "notify", 5_000).await;
    let capture = gw.capture(CaptureRequest::new(&reference, eur(5_000), key("notify-capture"))).await;
    let capture_psp = capture.map(|c| c.provider_reference).unwrap_or_default();
    assert_eq!(sim.payment_totals(&reference), Some((0, 0)), "nothing applied before settlement");
    assert!(gw.refund(RefundRequest::new(&reference, eur(1_200), key("notify-refund"))).await.is_ok());
    let declined = gw.authorize(auth_request("notify-declined", 900, "pm_card_chargeDeclined")).await;
    assert!(declined.is_err());

    let deliveries = sim.take_webhooks(DeliveryPlan::in_order());
    assert_eq!(sim.payment_totals(&reference), Some((5_000, 1_200)));
    let events: Vec<_> = deliveries.iter().flat_map(|d| verify(&verifier, d)).collect();
    let kinds: Vec<_> = events.iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            PaymentEventKind::Authorized,
            PaymentEventKind::AuthorizationFailed,
            PaymentEventKind::Captured,
            PaymentEventKind::Refunded
        ]
    );
    let captured = events.iter().find(|e| e.kind == PaymentEventKind::Captured);
    assert_eq!(captured.and_then(|e| e.provider_reference.clone()), Some(reference.clone()));
    assert_eq!(captured.map(|e| e.event_id.clone()), Some(format!("{capture_psp}:CAPTURE:true")));
    assert_eq!(captured.and_then(|e| e.amount), Some(eur(5_000)));
    assert!(sim.take_webhooks(DeliveryPlan::in_order()).is_empty(), "handed out once");

    // A failed modification is reported with success false.
    let other = authorized(&gw, "notify-fail", 1_000).await;
    assert!(gw.capture(CaptureRequest::new(&other, eur(1_000), key("notify-fail-capture"))).await.is_ok());
    sim.fail_next_modification();
    let plan = DeliveryPlan { duplicate: true, reorder_seed: Some(3) };
    let deliveries = sim.take_webhooks(plan);
    assert_eq!(deliveries.len(), 4, "authorisation and capture, twice each");
    let failed: Vec<_> = deliveries
        .iter()
        .flat_map(|d| verify(&verifier, d))
        .filter(|e| e.kind == PaymentEventKind::CaptureFailed)
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(sim.payment_totals(&other), Some((0, 0)));
}

#[tokio::test]
async fn one_tampered_item_rejects_the_whole_batch() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let verifier = verifier(&sim);
    let reference = authorized(&gw, "batch", 2_000).await;
    assert!(gw.capture(CaptureRequest::new(&reference, eur(2_000), key("batch-capture"))).await.is_ok());
    let items: Vec<Value> = sim
        .take_webhooks(DeliveryPlan::in_order())
        .iter()
        .filter_map(|d| serde_json::from_slice::<Value>(&d.body).ok())
        .filter_map(|v| v["notificationItems"].as_array().cloned())
        .flatten()
        .collect();
    assert_eq!(items.len(), 2);
    let batch = |items: &[Value]| serde_json::json!({ "live": "false", "notificationItems": items }).to_string();
    let ok = verifier.verify(&WebhookRequest::new(vec![], batch(&items)), OffsetDateTime::now_utc());
    assert_eq!(ok.map(|e| e.len()).ok(), Some(2));
    let mut tampered = items.clone();
    if let Some(item) = tampered.get_mut(1) {
        item["NotificationRequestItem"]["amount"]["value"] = serde_json::json!(1);
    }
    let err = verifier.verify(&WebhookRequest::new(vec![], batch(&tampered)), OffsetDateTime::now_utc()).err();
    assert_eq!(err.map(|e| e.kind), Some(WebhookErrorKind::NoValidSignature));
    let wrong_key = AdyenWebhookVerifier::new(Secret::new("00ff")).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(wrong_key.verify(&WebhookRequest::new(vec![], batch(&items)), OffsetDateTime::now_utc()).is_err());
}
