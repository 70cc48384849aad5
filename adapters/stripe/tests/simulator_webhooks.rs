//! The Stripe simulator's signed webhook deliveries, driven through the real gateway adapter and checked
//! with the real verifier: signatures, event types, references, amounts, the delivery plan, tampering.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use commerce_ports::payment::{AuthorizeRequest, CaptureRequest, PaymentGateway, RefundRequest, VoidRequest};
use commerce_ports::webhook::{PaymentEventKind, WebhookErrorKind, WebhookEvent, WebhookRequest, WebhookVerifier};
use commerce_ports::{Currency, ErrorKind, IdempotencyKey, Money, Secret, TenderKind};
use commerce_stripe::{RetryPolicy, StripeConfig, StripeGateway, StripeWebhookVerifier};
use commerce_testkit::simulators::stripe::{DEFAULT_WEBHOOK_SECRET, StripeSimulator};
use commerce_testkit::simulators::webhooks::{Delivery, DeliveryPlan};
use serde_json::Value;
use time::OffsetDateTime;

/// The manual clock of these tests.
const T0: i64 = 1_700_000_000;

async fn simulator() -> StripeSimulator {
    match StripeSimulator::start().await {
        Ok(sim) => sim.with_fixed_time(T0),
        Err(e) => panic!("simulator: {e}"),
    }
}

fn gateway(sim: &StripeSimulator) -> StripeGateway {
    let gateway = StripeConfig::new(Secret::new(sim.api_key()))
        .and_then(|c| c.with_base_url(sim.base_url()))
        .map(|c| {
            c.with_timeouts(Duration::from_millis(500), Duration::from_secs(2)).with_retry(RetryPolicy::new(
                1,
                Duration::from_millis(10),
                Duration::from_millis(10),
            ))
        })
        .and_then(StripeGateway::new);
    match gateway {
        Ok(gateway) => gateway,
        Err(e) => panic!("gateway: {e}"),
    }
}

fn key(name: &str) -> IdempotencyKey {
    match IdempotencyKey::new(format!("webhooks-{name}")) {
        Ok(key) => key,
        Err(e) => panic!("{e}"),
    }
}

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

fn at(unix: i64) -> OffsetDateTime {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// Authorizes `minor` EUR (manual capture) with merchant reference `reference`; the payment intent id.
async fn authorize(gw: &StripeGateway, reference: &str, minor: i64) -> String {
    let request = AuthorizeRequest::new(eur(minor), TenderKind::Card, "pm_card_visa", reference, key(reference));
    match gw.authorize(request).await {
        Ok(snapshot) => snapshot.provider_reference,
        Err(e) => panic!("authorize {reference}: {e}"),
    }
}

fn request_of(delivery: &Delivery) -> WebhookRequest {
    WebhookRequest::new(delivery.headers.clone(), delivery.body.to_vec())
}

/// Verifies a delivery at `now`; exactly one event.
fn verify(verifier: &StripeWebhookVerifier, delivery: &Delivery, now: i64) -> WebhookEvent {
    let request = request_of(delivery);
    if let Err(e) = verifier.authenticate(&request, at(now)) {
        panic!("{} does not authenticate: {e}", delivery.event_id);
    }
    match verifier.verify(&request, at(now)) {
        Ok(mut events) if events.len() == 1 => events.remove(0),
        Ok(events) => panic!("{} events in one Stripe delivery", events.len()),
        Err(e) => panic!("{} does not verify: {e}", delivery.event_id),
    }
}

fn header<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a str> {
    delivery.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn body_json(delivery: &Delivery) -> Value {
    match serde_json::from_slice(&delivery.body) {
        Ok(value) => value,
        Err(e) => panic!("delivery body is not JSON: {e}"),
    }
}

/// What an event says, for comparisons.
fn summary(event: &WebhookEvent) -> (PaymentEventKind, Option<&str>, Option<&str>, Option<Money>, bool) {
    (
        event.kind.clone(),
        event.provider_reference.as_deref(),
        event.merchant_reference.as_deref(),
        event.amount,
        event.success,
    )
}

#[tokio::test]
async fn every_state_change_delivers_a_signed_event_the_verifier_parses() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let verifier = StripeWebhookVerifier::new(sim.webhook_secret());

    let a = authorize(&gw, "order-a", 1_000).await;
    gw.capture(CaptureRequest::new(&a, eur(600), key("a-capture"))).await.map(drop).unwrap_or_else(|e| panic!("{e}"));
    gw.refund(RefundRequest::new(&a, eur(200), key("a-refund-1"))).await.map(drop).unwrap_or_else(|e| panic!("{e}"));
    gw.refund(RefundRequest::new(&a, eur(100), key("a-refund-2"))).await.map(drop).unwrap_or_else(|e| panic!("{e}"));
    let b = authorize(&gw, "order-b", 700).await;
    gw.void(VoidRequest::new(&b, key("b-void"))).await.map(drop).unwrap_or_else(|e| panic!("{e}"));
    let declined = AuthorizeRequest::new(eur(300), TenderKind::Card, "pm_card_chargeDeclined", "order-c", key("c"));
    let refused = gw.authorize(declined).await.err().map(|e| e.kind());
    assert_eq!(refused, Some(ErrorKind::Declined));

    assert_eq!(sim.pending_webhooks(), 7);
    let deliveries = sim.take_webhooks(DeliveryPlan::in_order());
    assert_eq!(sim.pending_webhooks(), 0, "taking drains the queue");
    let types: Vec<&str> = deliveries.iter().map(|d| d.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "payment_intent.amount_capturable_updated",
            "payment_intent.succeeded",
            "charge.refunded",
            "charge.refunded",
            "payment_intent.amount_capturable_updated",
            "payment_intent.canceled",
            "payment_intent.payment_failed",
        ]
    );

    let events: Vec<WebhookEvent> = deliveries.iter().map(|d| verify(&verifier, d, T0)).collect();
    let c = events[6].provider_reference.clone();
    assert!(c.as_deref().is_some_and(|r| r.starts_with("pi_") && r != a && r != b), "{c:?}");
    let summaries: Vec<_> = events.iter().map(summary).collect();
    assert_eq!(
        summaries,
        [
            (PaymentEventKind::Authorized, Some(a.as_str()), Some("order-a"), Some(eur(1_000)), true),
            (PaymentEventKind::Captured, Some(a.as_str()), Some("order-a"), Some(eur(600)), true),
            // The charge carries no metadata; `amount_refunded` is cumulative.
            (PaymentEventKind::Refunded, Some(a.as_str()), None, Some(eur(200)), true),
            (PaymentEventKind::Refunded, Some(a.as_str()), None, Some(eur(300)), true),
            (PaymentEventKind::Authorized, Some(b.as_str()), Some("order-b"), Some(eur(700)), true),
            (PaymentEventKind::Voided, Some(b.as_str()), Some("order-b"), Some(eur(700)), true),
            (PaymentEventKind::AuthorizationFailed, c.as_deref(), Some("order-c"), Some(eur(300)), false),
        ]
    );

    let mut ids = HashSet::new();
    for (delivery, event) in deliveries.iter().zip(&events) {
        // The delivery's own labels match what the verifier read from the signed body.
        assert_eq!(
            (delivery.event_id.as_str(), delivery.event_type.as_str()),
            (event.event_id.as_str(), event.event_type.as_str())
        );
        assert!(event.event_id.starts_with("evt_"), "{}", event.event_id);
        assert!(ids.insert(event.event_id.clone()), "duplicate id {}", event.event_id);
        assert_eq!(event.provider, "stripe");
        assert_eq!(event.occurred_at, Some(at(T0)));
        assert_eq!(header(delivery, "content-type"), Some("application/json"));
        let signature = header(delivery, "stripe-signature").unwrap_or_default();
        assert!(signature.starts_with(&format!("t={T0},v1=")), "{signature}");
        assert_eq!(signature.len(), format!("t={T0},v1=").len() + 64, "one hex HMAC-SHA256: {signature}");
        let body = body_json(delivery);
        assert_eq!(body["object"], "event");
        assert_eq!(body["livemode"], false);
        assert_eq!(body["created"], T0);
        assert_eq!(body["type"], delivery.event_type.as_str());
        let object_type = if delivery.event_type == "charge.refunded" { "charge" } else { "payment_intent" };
        assert_eq!(body["data"]["object"]["object"], object_type);
    }
    // The object is the state after the change.
    assert_eq!(body_json(&deliveries[0])["data"]["object"]["status"], "requires_capture");
    assert_eq!(body_json(&deliveries[1])["data"]["object"]["status"], "succeeded");
    assert_eq!(body_json(&deliveries[3])["data"]["object"]["amount_captured"], 600);
    assert_eq!(body_json(&deliveries[5])["data"]["object"]["status"], "canceled");
    assert_eq!(body_json(&deliveries[6])["data"]["object"]["last_payment_error"]["code"], "card_declined");
    assert!(sim.take_webhooks(DeliveryPlan::in_order()).is_empty());
}

#[tokio::test]
async fn automatic_capture_delivers_succeeded_with_the_amount_received() {
    // The gateway authorizes with manual capture; a raw API call shows the automatic-capture event.
    let sim = simulator().await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/payment_intents", sim.base_url()))
        .bearer_auth(sim.api_key())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("amount=1500&currency=eur&payment_method=pm_card_visa&confirm=true&metadata[reference]=order-auto")
        .send()
        .await;
    assert_eq!(response.map(|r| r.status().as_u16()).ok(), Some(200));
    let deliveries = sim.take_webhooks(DeliveryPlan::in_order());
    assert_eq!(deliveries.len(), 1);
    let event = verify(&StripeWebhookVerifier::new(sim.webhook_secret()), &deliveries[0], T0);
    assert_eq!(event.event_type, "payment_intent.succeeded");
    assert_eq!(
        (event.kind, event.merchant_reference.as_deref(), event.amount),
        (PaymentEventKind::Captured, Some("order-auto"), Some(eur(1_500)))
    );
}

#[tokio::test]
async fn the_plan_duplicates_and_reorders_deterministically() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let verifier = StripeWebhookVerifier::new(sim.webhook_secret());
    for n in 0..4 {
        authorize(&gw, &format!("order-{n}"), 100 + n).await;
    }
    let emitted: Vec<String> = {
        // Peek at emission order through an in-order take, then queue the same changes again on a twin.
        let twin = simulator().await;
        let twin_gw = gateway(&twin);
        for n in 0..4 {
            authorize(&twin_gw, &format!("order-{n}"), 100 + n).await;
        }
        twin.take_webhooks(DeliveryPlan::in_order()).into_iter().map(|d| d.event_id).collect()
    };

    let plan = DeliveryPlan { duplicate: true, reorder_seed: Some(7) };
    let deliveries = sim.take_webhooks(plan);
    assert_eq!(deliveries.len(), 8, "every event twice");
    let order: Vec<&str> = deliveries.iter().map(|d| d.event_id.as_str()).collect();
    let emitted_twice: Vec<&str> = emitted.iter().chain(&emitted).map(String::as_str).collect();
    assert_ne!(order, emitted_twice, "seed 7 reorders");

    let mut seen: HashMap<String, (usize, Vec<u8>)> = HashMap::new();
    for delivery in &deliveries {
        // Both copies are the same signed bytes and both verify (deduplication is the receiver's job).
        let event = verify(&verifier, delivery, T0);
        assert_eq!(event.kind, PaymentEventKind::Authorized);
        let entry = seen.entry(event.event_id).or_insert((0, delivery.body.to_vec()));
        entry.0 += 1;
        assert_eq!(entry.1, delivery.body.to_vec());
    }
    assert_eq!(seen.len(), 4);
    assert!(seen.values().all(|(count, _)| *count == 2));
    let mut ids: Vec<&String> = seen.keys().collect();
    ids.sort();
    let mut expected: Vec<&String> = emitted.iter().collect();
    expected.sort();
    assert_eq!(ids, expected, "the same ids as an identical simulator emits (ids are deterministic)");
}

#[tokio::test]
async fn a_tampered_body_or_another_secret_does_not_verify() {
    let secret = Secret::new("whsec_custom_endpoint_secret");
    let sim = simulator().await.with_webhook_secret(secret.clone());
    assert_eq!(sim.webhook_secret(), secret);
    let gw = gateway(&sim);
    authorize(&gw, "order-t", 1_000).await;
    let delivery = sim.take_webhooks(DeliveryPlan::in_order()).remove(0);

    let verifier = StripeWebhookVerifier::new(secret);
    assert_eq!(verify(&verifier, &delivery, T0).amount, Some(eur(1_000)));

    // One changed digit of the amount: the JSON is still a valid event, but the signature no longer matches.
    let body = String::from_utf8(delivery.body.to_vec()).unwrap_or_default();
    let tampered_body = body.replacen("\"amount\":1000", "\"amount\":9000", 1);
    assert_ne!(tampered_body, body);
    let tampered = WebhookRequest::new(delivery.headers.clone(), tampered_body.into_bytes());
    let kind = verifier.verify(&tampered, at(T0)).err().map(|e| e.kind);
    assert_eq!(kind, Some(WebhookErrorKind::NoValidSignature));
    assert_eq!(
        verifier.authenticate(&tampered, at(T0)).err().map(|e| e.kind),
        Some(WebhookErrorKind::NoValidSignature)
    );

    // The default secret is not the one this simulator signs with.
    let wrong = StripeWebhookVerifier::new(Secret::new(DEFAULT_WEBHOOK_SECRET));
    let kind = wrong.verify(&request_of(&delivery), at(T0)).err().map(|e| e.kind);
    assert_eq!(kind, Some(WebhookErrorKind::NoValidSignature));
    // The secret never shows in the simulator's Debug output.
    assert!(!format!("{sim:?}").contains("whsec_custom_endpoint_secret"));
}

#[tokio::test]
async fn signatures_use_the_simulator_clock_and_the_verifier_tolerance_applies() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let verifier = StripeWebhookVerifier::new(sim.webhook_secret());
    let a = authorize(&gw, "order-clock", 500).await;
    sim.set_unix_time(Some(T0 + 1_000));
    assert_eq!(sim.unix_time(), T0 + 1_000);
    gw.void(VoidRequest::new(&a, key("clock-void"))).await.map(drop).unwrap_or_else(|e| panic!("{e}"));
    let deliveries = sim.take_webhooks(DeliveryPlan::in_order());
    assert_eq!(deliveries.len(), 2);

    // Signed when taken (like Stripe signs each delivery attempt), so both carry the take time in `t`, while
    // `created` (occurred_at) stays the time of the change. Within 300 s either side of `t`, and not beyond.
    let signed = T0 + 1_000;
    for d in &deliveries {
        assert!(header(d, "Stripe-Signature").is_some_and(|s| s.starts_with(&format!("t={signed},"))));
    }
    assert_eq!(verify(&verifier, &deliveries[0], signed + 300).occurred_at, Some(at(T0)));
    assert_eq!(verify(&verifier, &deliveries[0], signed - 300).occurred_at, Some(at(T0)));
    let stale = verifier.verify(&request_of(&deliveries[0]), at(signed + 301)).err().map(|e| e.kind);
    assert_eq!(stale, Some(WebhookErrorKind::TimestampOutsideTolerance));
    assert_eq!(verify(&verifier, &deliveries[1], signed).occurred_at, Some(at(T0 + 1_000)));

    // Back on the system clock: a fresh event verifies against the real now.
    sim.set_unix_time(None);
    authorize(&gw, "order-now", 500).await;
    let fresh = sim.take_webhooks(DeliveryPlan::in_order());
    assert_eq!(fresh.len(), 1);
    verify(&verifier, &fresh[0], OffsetDateTime::now_utc().unix_timestamp());
}

#[tokio::test]
async fn requests_that_change_nothing_deliver_nothing() {
    let sim = simulator().await;
    let gw = gateway(&sim);
    let a = authorize(&gw, "order-n", 1_000).await;
    assert_eq!(sim.take_webhooks(DeliveryPlan::in_order()).len(), 1);

    // Over-capture: refused, nothing changes.
    let over = gw.capture(CaptureRequest::new(&a, eur(1_001), key("n-over"))).await;
    assert!(over.is_err());
    assert_eq!(sim.pending_webhooks(), 0);
    // A capture, then its idempotent replay: one event.
    for _ in 0..2 {
        gw.capture(CaptureRequest::new(&a, eur(1_000), key("n-capture")))
            .await
            .map(drop)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(sim.pending_webhooks(), 1);
    // Canceling a captured intent is refused: nothing.
    assert!(gw.void(VoidRequest::new(&a, key("n-void"))).await.is_err());
    let deliveries = sim.take_webhooks(DeliveryPlan::in_order());
    let types: Vec<&str> = deliveries.iter().map(|d| d.event_type.as_str()).collect();
    assert_eq!(types, ["payment_intent.succeeded"]);
}
