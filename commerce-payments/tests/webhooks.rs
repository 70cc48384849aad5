//! Webhook ingestion: Stripe-signed deliveries against the in-memory stores and gateway.

mod common;

use common::{eur, key, tenant};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use commerce_payments::{IngestError, IngestReport, NewPayment, Payments, WebhookIngestor};
use commerce_ports::payment::TenderKind;
use commerce_ports::stores::{IntentEvent, IntentStatus, PaymentIntent, StoreSet, WebhookEventStore};
use commerce_ports::webhook::{WebhookAck, WebhookError, WebhookEvent, WebhookRequest, WebhookVerifier};
use commerce_ports::{ChannelId, ErrorKind, IntentId, ManualClock, Money, Secret, StoreError, TenantId};
use commerce_stripe::{SIGNATURE_HEADER, StripeWebhookVerifier, sign};
use commerce_testkit::memory::{FailingLedger, GatewayFault, MemoryGateway, MemoryWebhookEventStore, memory_store_set};
use proptest::prelude::*;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;

const T0: OffsetDateTime = datetime!(2025-01-01 12:00 UTC);
const SECRET: &str = "whsec_test";

/// A `WebhookEventStore` whose `record` fails while `fail` is set (then clears it).
#[derive(Debug, Default)]
struct FlakyEvents {
    inner: MemoryWebhookEventStore,
    fail: AtomicBool,
}

#[async_trait]
impl WebhookEventStore for FlakyEvents {
    async fn record(
        &self,
        tenant: &TenantId,
        provider: &str,
        event_id: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        if self.fail.swap(false, Ordering::SeqCst) {
            return Err(StoreError::new(ErrorKind::Unavailable, "record", "database unavailable"));
        }
        self.inner.record(tenant, provider, event_id, at).await
    }

    async fn contains(&self, tenant: &TenantId, provider: &str, event_id: &str) -> Result<bool, StoreError> {
        self.inner.contains(tenant, provider, event_id).await
    }
}

struct Fx {
    stores: StoreSet,
    clock: Arc<ManualClock>,
    payments: Payments,
    gateway: MemoryGateway,
    events: Arc<FlakyEvents>,
    ingestor: WebhookIngestor,
}

impl Fx {
    fn new() -> Fx {
        let stores = memory_store_set();
        let clock = Arc::new(ManualClock::new(T0));
        let payments = Payments::from_stores(&stores, clock.clone());
        let events = Arc::new(FlakyEvents::default());
        let verifier = Arc::new(StripeWebhookVerifier::new(Secret::new(SECRET)));
        let ingestor = WebhookIngestor::new(&payments, events.clone(), tenant(), "stripe", verifier);
        Fx { stores, clock, payments, gateway: MemoryGateway::new(), events, ingestor }
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
        self.payments.authorize(&self.gateway, "stripe", payment, &key("order-1:auth")).await.expect("authorized")
    }

    /// An intent known to the provider by `reference`, not yet authorized (its authorization answer was lost).
    async fn awaiting(&self, reference: &str, minor: i64) -> IntentId {
        let id = IntentId::new(format!("pi_{reference}")).expect("id");
        let mut intent = PaymentIntent::new(
            id.clone(),
            tenant(),
            ChannelId::new("web").expect("channel"),
            TenderKind::Card,
            eur(minor),
            "stripe",
            "order-p",
            T0,
        );
        intent.provider_reference = Some(reference.to_owned());
        let event = IntentEvent::new(1, T0, "create", IntentStatus::RequiresAuthorization);
        self.stores.intents.create(intent, event).await.expect("created");
        id
    }

    async fn get(&self, id: &IntentId) -> PaymentIntent {
        self.payments.get(&tenant(), id).await.expect("intent")
    }

    async fn history(&self, id: &IntentId) -> Vec<IntentEvent> {
        self.payments.history(&tenant(), id).await.expect("history")
    }

    async fn recorded(&self, event_id: &str) -> bool {
        self.events.contains(&tenant(), "stripe", event_id).await.expect("contains")
    }

    async fn deliver(&self, body: &[u8]) -> Result<IngestReport, IngestError> {
        self.ingestor.ingest(&signed(body, T0.unix_timestamp())).await
    }
}

fn signed(body: &[u8], timestamp: i64) -> WebhookRequest {
    let header = sign(&Secret::new(SECRET), timestamp, body);
    WebhookRequest::new(vec![(SIGNATURE_HEADER.to_owned(), header)], body.to_vec())
}

fn http_request(body: &[u8], timestamp: i64) -> http::Request<Bytes> {
    http::Request::post("/webhooks/stripe")
        .header(SIGNATURE_HEADER, sign(&Secret::new(SECRET), timestamp, body))
        .body(Bytes::copy_from_slice(body))
        .expect("request")
}

/// A Stripe event about payment intent `reference`.
fn event(id: &str, kind: &str, reference: &str, minor: i64) -> Vec<u8> {
    let object = match kind {
        "authorized" => json!({ "object": "payment_intent", "id": reference, "amount": minor,
                                "amount_capturable": minor, "currency": "eur" }),
        "captured" => json!({ "object": "payment_intent", "id": reference, "amount": minor,
                              "amount_received": minor, "currency": "eur" }),
        "refunded" => json!({ "object": "charge", "id": "ch_1", "payment_intent": reference, "amount": minor,
                              "amount_refunded": minor, "currency": "eur" }),
        _ => json!({ "object": "payment_intent", "id": reference, "amount": minor, "currency": "eur" }),
    };
    let event_type = match kind {
        "authorized" => "payment_intent.amount_capturable_updated",
        "captured" => "payment_intent.succeeded",
        "refunded" => "charge.refunded",
        _ => "payment_intent.canceled",
    };
    json!({ "id": id, "type": event_type, "created": T0.unix_timestamp(), "data": { "object": object } })
        .to_string()
        .into_bytes()
}

fn report(applied: u32, duplicates: u32, unknown: u32, ignored: u32, conflicts: u32) -> IngestReport {
    let mut r = IngestReport::default();
    (r.applied, r.duplicates, r.unknown_payments, r.ignored, r.conflicts) =
        (applied, duplicates, unknown, ignored, conflicts);
    r
}

fn reference(intent: &PaymentIntent) -> String {
    intent.provider_reference.clone().expect("reference")
}

#[tokio::test]
async fn a_valid_event_is_applied_and_acknowledged() {
    let fx = Fx::new();
    let intent = fx.authorized(5_000).await;
    let body = event("evt_cap", "captured", &reference(&intent), 5_000);
    let response = fx.ingestor.handle(http_request(&body, T0.unix_timestamp())).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.body().as_ref(), br#"{"received":true}"#);
    let after = fx.get(&intent.id).await;
    assert_eq!((after.status, after.captured), (IntentStatus::Captured, eur(5_000)));
    let last = fx.history(&intent.id).await.pop().expect("event");
    assert_eq!(last.operation, "webhook");
    assert!(last.detail.as_deref().is_some_and(|d| d.contains("evt_cap")), "{last:?}");
    assert!(fx.recorded("evt_cap").await);
}

#[tokio::test]
async fn a_duplicate_delivery_is_acknowledged_without_a_second_change() {
    let fx = Fx::new();
    let intent = fx.authorized(5_000).await;
    let body = event("evt_cap", "captured", &reference(&intent), 5_000);
    assert_eq!(fx.deliver(&body).await.expect("first"), report(1, 0, 0, 0, 0));
    let len = fx.history(&intent.id).await.len();
    assert_eq!(fx.deliver(&body).await.expect("second"), report(0, 1, 0, 0, 0));
    let response = fx.ingestor.handle(http_request(&body, T0.unix_timestamp())).await;
    assert_eq!(response.status(), 200);
    assert_eq!(fx.history(&intent.id).await.len(), len);
}

#[tokio::test]
async fn a_capture_before_the_authorization_event_does_not_regress() {
    let fx = Fx::new();
    let intent = fx.authorized(5_000).await;
    let r = reference(&intent);
    fx.deliver(&event("evt_cap", "captured", &r, 5_000)).await.expect("capture");
    let captured = fx.get(&intent.id).await;
    let len = fx.history(&intent.id).await.len();
    assert_eq!(fx.deliver(&event("evt_auth", "authorized", &r, 5_000)).await.expect("auth"), report(0, 0, 0, 1, 0));
    assert_eq!(fx.get(&intent.id).await, captured);
    assert_eq!(fx.history(&intent.id).await.len(), len);
    assert!(fx.recorded("evt_auth").await);
}

#[tokio::test]
async fn a_void_after_a_capture_is_ignored_and_recorded_as_a_conflict() {
    let fx = Fx::new();
    let intent = fx.authorized(5_000).await;
    let r = reference(&intent);
    fx.deliver(&event("evt_cap", "captured", &r, 5_000)).await.expect("capture");
    assert_eq!(fx.deliver(&event("evt_void", "voided", &r, 5_000)).await.expect("void"), report(0, 0, 0, 0, 1));
    let after = fx.get(&intent.id).await;
    assert_eq!((after.status, after.captured), (IntentStatus::Captured, eur(5_000)));
    let last = fx.history(&intent.id).await.pop().expect("event");
    assert!(last.detail.as_deref().is_some_and(|d| d.contains("conflict") && d.contains("evt_void")), "{last:?}");
}

#[tokio::test]
async fn tampered_stale_and_malformed_deliveries_are_400_and_record_nothing() {
    let fx = Fx::new();
    let intent = fx.authorized(5_000).await;
    let body = event("evt_cap", "captured", &reference(&intent), 5_000);
    let now = T0.unix_timestamp();

    let mut tampered = http_request(&body, now);
    *tampered.body_mut() = Bytes::from(event("evt_cap", "captured", &reference(&intent), 9));
    let stale = http_request(&body, now - 3_600);
    let malformed = http_request(b"{not json", now);
    for (request, kind) in
        [(tampered, "no_valid_signature"), (stale, "timestamp_outside_tolerance"), (malformed, "malformed_payload")]
    {
        let response = fx.ingestor.handle(request).await;
        assert_eq!(response.status(), 400, "{kind}");
        let body: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
        assert_eq!(body["error"]["kind"], kind);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    assert!(!fx.recorded("evt_cap").await);
    assert_eq!(fx.get(&intent.id).await, intent);
}

#[tokio::test]
async fn an_oversized_body_is_413() {
    let fx = Fx::new();
    let ingestor = fx.ingestor.clone().with_max_body_bytes(64);
    let body = vec![b' '; 65];
    let response = ingestor.handle(http_request(&body, T0.unix_timestamp())).await;
    assert_eq!(response.status(), 413);
    let json: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
    assert_eq!(json["error"]["kind"], "payload_too_large");

    // A declared length over the limit is refused before the body is looked at.
    let mut declared = http_request(b"{}", T0.unix_timestamp());
    declared.headers_mut().insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("1000000"));
    assert_eq!(ingestor.handle(declared).await.status(), 413);
    assert_eq!(fx.ingestor.max_body_bytes(), commerce_payments::DEFAULT_MAX_WEBHOOK_BODY);
}

#[tokio::test]
async fn an_event_for_an_unknown_payment_is_acknowledged_and_counted() {
    let fx = Fx::new();
    let body = event("evt_other", "captured", "pi_not_ours", 1_000);
    assert_eq!(fx.deliver(&body).await.expect("ingested"), report(0, 0, 1, 0, 0));
    assert!(fx.recorded("evt_other").await);
    let response = fx.ingestor.handle(http_request(&body, T0.unix_timestamp())).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn tenants_sharing_a_provider_account_each_apply_the_same_event() {
    // Tenant A (`acme`, the fixture's) and tenant B share one event store (one database) and one provider
    // account.
    let fx = Fx::new();
    let tenant_b = TenantId::new("globex").expect("tenant");
    let b_payments = Payments::from_stores(&memory_store_set(), Arc::new(ManualClock::new(T0)));
    let verifier = Arc::new(StripeWebhookVerifier::new(Secret::new(SECRET)));
    let ingestor_b = WebhookIngestor::new(&b_payments, fx.events.clone(), tenant_b.clone(), "stripe", verifier);
    let payment = NewPayment::new(
        tenant_b.clone(),
        ChannelId::new("web").expect("channel"),
        TenderKind::Card,
        eur(5_000),
        "pm_card_visa",
        "order-b",
    );
    let b_intent =
        b_payments.authorize(&fx.gateway, "stripe", payment, &key("order-b:auth")).await.expect("authorized");
    let body = event("evt_shared", "captured", &reference(&b_intent), 5_000);

    // Tenant A does not know the payment: recorded for A and acknowledged.
    assert_eq!(fx.deliver(&body).await.expect("A ingests"), report(0, 0, 1, 0, 0));
    assert!(fx.recorded("evt_shared").await);
    assert!(!fx.events.contains(&tenant_b, "stripe", "evt_shared").await.expect("contains"));

    // Tenant B still applies it.
    let response = ingestor_b.handle(http_request(&body, T0.unix_timestamp())).await;
    assert_eq!(response.status(), 200);
    let after = b_payments.get(&tenant_b, &b_intent.id).await.expect("intent");
    assert_eq!((after.status, after.captured), (IntentStatus::Captured, eur(5_000)));
    assert!(fx.events.contains(&tenant_b, "stripe", "evt_shared").await.expect("contains"));
    assert_eq!(ingestor_b.ingest(&signed(&body, T0.unix_timestamp())).await.expect("again"), report(0, 1, 0, 0, 0));
}

/// A Stripe verifier that also fills [`WebhookEvent::merchant_reference`] from `data.object.metadata.reference`
/// (what the gateway adapter sends), as the Stripe parser is to do.
#[derive(Debug)]
struct MerchantReferenceVerifier(StripeWebhookVerifier);

impl WebhookVerifier for MerchantReferenceVerifier {
    fn provider(&self) -> &'static str {
        self.0.provider()
    }
    fn verify(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<Vec<WebhookEvent>, WebhookError> {
        let events = self.0.verify(request, now)?;
        let body: serde_json::Value = serde_json::from_slice(&request.body).expect("json");
        let reference = body["data"]["object"]["metadata"]["reference"].as_str().map(str::to_owned);
        Ok(events
            .into_iter()
            .map(|e| match &reference {
                Some(r) => e.with_merchant_reference(r.clone()),
                None => e,
            })
            .collect())
    }
    fn authenticate(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<(), WebhookError> {
        self.0.authenticate(request, now)
    }
    fn ack(&self) -> WebhookAck {
        self.0.ack()
    }
}

/// A Stripe authorization event for provider intent `provider_reference` of merchant reference `reference`.
fn authorized_with_reference(id: &str, provider_reference: &str, reference: &str, minor: i64) -> Vec<u8> {
    let object = json!({ "object": "payment_intent", "id": provider_reference, "amount": minor,
                         "amount_capturable": minor, "currency": "eur", "metadata": { "reference": reference } });
    json!({ "id": id, "type": "payment_intent.amount_capturable_updated", "created": T0.unix_timestamp(),
            "data": { "object": object } })
    .to_string()
    .into_bytes()
}

impl Fx {
    /// An authorization whose answer was lost: `OutcomeUnknown`, no provider reference, merchant reference
    /// `order-1`.
    async fn unknown_authorization(&self) -> PaymentIntent {
        self.gateway.inject(GatewayFault::TimeoutAfterProcessing);
        let payment = NewPayment::new(
            tenant(),
            ChannelId::new("web").expect("channel"),
            TenderKind::Card,
            eur(5_000),
            "pm_card_visa",
            "order-1",
        );
        let unknown = self.payments.authorize(&self.gateway, "stripe", payment, &key("order-1:auth")).await;
        assert_eq!(unknown.map_err(|e| e.kind()).err(), Some(ErrorKind::OutcomeUnknown));
        let listed = self.stores.intents.list_by_status(&tenant(), IntentStatus::OutcomeUnknown, 10).await;
        let intent = listed.expect("listed").pop().expect("an unknown intent");
        assert_eq!(intent.provider_reference, None);
        intent
    }

    fn with_merchant_references(&self) -> WebhookIngestor {
        let verifier = Arc::new(MerchantReferenceVerifier(StripeWebhookVerifier::new(Secret::new(SECRET))));
        WebhookIngestor::new(&self.payments, self.events.clone(), tenant(), "stripe", verifier)
    }
}

#[tokio::test]
async fn an_unknown_authorization_is_settled_by_the_events_merchant_reference() {
    let fx = Fx::new();
    let intent = fx.unknown_authorization().await;
    let ingestor = fx.with_merchant_references();
    let body = authorized_with_reference("evt_auth", "pi_lost", "order-1", 5_000);
    let ingested = ingestor.ingest(&signed(&body, T0.unix_timestamp())).await.expect("ingested");
    assert_eq!(ingested, report(1, 0, 0, 0, 0));
    let after = fx.get(&intent.id).await;
    assert_eq!(
        (after.status, after.authorized, after.provider_reference.as_deref()),
        (IntentStatus::Authorized, eur(5_000), Some("pi_lost"))
    );
    assert!(fx.recorded("evt_auth").await);
    // From now on the provider reference finds it.
    let capture = event("evt_cap", "captured", "pi_lost", 5_000);
    assert_eq!(fx.deliver(&capture).await.expect("capture"), report(1, 0, 0, 0, 0));
}

#[tokio::test]
async fn an_unmatched_event_is_redelivered_while_an_authorization_outcome_is_unknown() {
    let fx = Fx::new();
    let intent = fx.unknown_authorization().await;
    // Without a merchant reference the event matches nothing, but may be the unknown authorization's.
    let body = event("evt_auth", "authorized", "pi_lost", 5_000);
    let response = fx.ingestor.handle(http_request(&body, T0.unix_timestamp())).await;
    assert_eq!(response.status(), 503);
    let json: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
    assert_eq!(json["error"]["kind"], "unavailable");
    assert!(!fx.recorded("evt_auth").await);
    assert_eq!(fx.get(&intent.id).await, intent);

    // An event with a merchant reference that matches no intent is not the unknown authorization's (that
    // reference would have found it): acknowledged as another system's payment.
    let ingestor = fx.with_merchant_references();
    let other = authorized_with_reference("evt_other", "pi_other", "order-elsewhere", 5_000);
    assert_eq!(
        ingestor.ingest(&signed(&other, T0.unix_timestamp())).await.expect("acknowledged"),
        report(0, 0, 1, 0, 0)
    );
    assert!(fx.recorded("evt_other").await);

    // The redelivery that carries the merchant reference settles it; after that, unmatched events are
    // recorded and acknowledged as before.
    let redelivered = authorized_with_reference("evt_auth", "pi_lost", "order-1", 5_000);
    assert_eq!(
        ingestor.ingest(&signed(&redelivered, T0.unix_timestamp())).await.expect("applied"),
        report(1, 0, 0, 0, 0)
    );
    assert_eq!(fx.get(&intent.id).await.status, IntentStatus::Authorized);
    let stray = event("evt_stray", "authorized", "pi_stray", 100);
    assert_eq!(fx.deliver(&stray).await.expect("acknowledged"), report(0, 0, 1, 0, 0));
    assert!(fx.recorded("evt_stray").await);
}

#[tokio::test]
async fn events_are_held_back_for_an_unknown_authorization_only_for_the_hold() {
    let fx = Fx::new();
    let intent = fx.unknown_authorization().await;
    let stray = event("evt_stray", "authorized", "pi_stray", 100);
    assert_eq!(fx.deliver(&stray).await.err().map(|e| e.status()), Some(503), "within the hold");
    // An hour later the intent is still unknown (nobody retried its key), and another system's events are
    // acknowledged again instead of failing until the provider gives up on the endpoint.
    fx.clock.advance(commerce_payments::DEFAULT_UNKNOWN_HOLD + time::Duration::seconds(1));
    let now = (T0 + commerce_payments::DEFAULT_UNKNOWN_HOLD + time::Duration::seconds(1)).unix_timestamp();
    let acknowledged = fx.ingestor.ingest(&signed(&stray, now)).await;
    assert_eq!(acknowledged.ok(), Some(report(0, 0, 1, 0, 0)));
    assert_eq!(fx.get(&intent.id).await.status, IntentStatus::OutcomeUnknown, "the intent waits for its retry");
    // A shorter hold is a setting.
    let fx = Fx::new();
    fx.unknown_authorization().await;
    fx.clock.advance(time::Duration::minutes(6));
    let ingestor = fx.ingestor.clone().with_unknown_hold(std::time::Duration::from_secs(300));
    let now = (T0 + time::Duration::minutes(6)).unix_timestamp();
    assert_eq!(ingestor.ingest(&signed(&stray, now)).await.ok(), Some(report(0, 0, 1, 0, 0)));
}

#[tokio::test]
async fn a_store_failure_is_503_and_the_redelivery_applies_once() {
    let fx = Fx::new();
    let intent = fx.authorized(5_000).await;
    let body = event("evt_cap", "captured", &reference(&intent), 5_000);
    fx.events.fail.store(true, Ordering::SeqCst);
    let response = fx.ingestor.handle(http_request(&body, T0.unix_timestamp())).await;
    assert_eq!(response.status(), 503);
    let json: serde_json::Value = serde_json::from_slice(response.body()).expect("json");
    assert_eq!(json["error"]["kind"], "unavailable");
    assert!(!fx.recorded("evt_cap").await);
    // The intent change was stored before the failure; the redelivery recognises it.
    let len = fx.history(&intent.id).await.len();
    assert_eq!(fx.deliver(&body).await.expect("redelivered"), report(0, 1, 0, 0, 0));
    assert!(fx.recorded("evt_cap").await);
    let history = fx.history(&intent.id).await;
    assert_eq!(history.len(), len);
    let webhook_events = history.iter().filter(|e| e.operation == "webhook").count();
    assert_eq!(webhook_events, 1);
    assert_eq!(fx.get(&intent.id).await.captured, eur(5_000));
}

#[tokio::test]
async fn a_webhook_settles_a_pending_capture_like_a_reconciliation() {
    let fx = Fx::new();
    let intent = fx.authorized(5_000).await;
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let capture_key = key("order-1:capture");
    let unknown = fx.payments.capture(&fx.gateway, &tenant(), &intent.id, Some(eur(5_000)), true, &capture_key).await;
    assert_eq!(unknown.map_err(|e| e.kind()).err(), Some(ErrorKind::OutcomeUnknown));
    assert_eq!(fx.get(&intent.id).await.status, IntentStatus::OutcomeUnknown);

    let r = reference(&intent);
    fx.deliver(&event("evt_cap", "captured", &r, 5_000)).await.expect("ingested");
    let settled = fx.get(&intent.id).await;
    assert_eq!((settled.status, settled.captured), (IntentStatus::Captured, eur(5_000)));

    // A late retry with the same key finds the call applied and does not call the provider.
    let calls = fx.gateway.provider_calls();
    let retried = fx.payments.capture(&fx.gateway, &tenant(), &intent.id, Some(eur(5_000)), true, &capture_key).await;
    assert_eq!(retried.expect("retry").captured, eur(5_000));
    assert_eq!(fx.gateway.provider_calls(), calls);
}

#[tokio::test]
async fn events_while_another_call_is_pending_are_ignored() {
    let fx = Fx::new();
    let intent = fx.authorized(5_000).await;
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let _ = fx.payments.void(&fx.gateway, &tenant(), &intent.id, &key("order-1:void")).await;
    let before = fx.get(&intent.id).await;
    assert_eq!(before.status, IntentStatus::OutcomeUnknown);
    let body = event("evt_auth", "authorized", &reference(&intent), 5_000);
    assert_eq!(fx.deliver(&body).await.expect("ingested"), report(0, 0, 0, 1, 0));
    assert_eq!(fx.get(&intent.id).await, before);
}

// ------------------------------------------------------------------------------------------------------
// Order and redelivery do not matter

fn final_state(intent: &PaymentIntent) -> (IntentStatus, Money, Money, Money) {
    (intent.status, intent.authorized, intent.captured, intent.refunded)
}

async fn run(bodies: &[Vec<u8>], order: &[usize]) -> (IntentStatus, Money, Money, Money) {
    let fx = Fx::new();
    let id = fx.awaiting("pi_prop", 5_000).await;
    for &i in order {
        fx.deliver(&bodies[i]).await.expect("ingested");
    }
    let intent = fx.get(&id).await;
    let history = fx.history(&id).await;
    assert_eq!(u64::try_from(history.len()).expect("len"), intent.version);
    final_state(&intent)
}

fn scenario() -> impl Strategy<Value = (i64, i64, i64, Vec<usize>)> {
    (1i64..=5_000)
        .prop_flat_map(|c| (Just(c), 0i64..=c))
        .prop_flat_map(|(c, r2)| (Just(c), 0i64..=r2, Just(r2)))
        .prop_flat_map(|(c, r1, r2)| {
            let order = proptest::collection::vec(0usize..4, 0..6)
                .prop_map(|extra| [vec![0, 1, 2, 3], extra].concat())
                .prop_shuffle();
            (Just(c), Just(r1), Just(r2), order)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn permutations_with_duplicates_end_like_in_order_delivery((c, r1, r2, order) in scenario()) {
        let bodies = vec![
            event("evt_auth", "authorized", "pi_prop", 5_000),
            event("evt_cap", "captured", "pi_prop", c),
            event("evt_ref1", "refunded", "pi_prop", r1),
            event("evt_ref2", "refunded", "pi_prop", r2),
        ];
        let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let in_order = rt.block_on(run(&bodies, &[0, 1, 2, 3]));
        let shuffled = rt.block_on(run(&bodies, &order));
        prop_assert_eq!(shuffled, in_order);
        let expected_status = if r2 == 0 {
            IntentStatus::Captured
        } else if r2 == c {
            IntentStatus::Refunded
        } else {
            IntentStatus::PartiallyRefunded
        };
        prop_assert_eq!(in_order, (expected_status, eur(5_000), eur(c), eur(r2)));
    }
}

/// What one early delivery gave: the merchant reference the event carried, and the report or HTTP status.
type EarlyDelivery = (Option<&'static str>, Result<IngestReport, u16>);

/// A gateway whose provider notifies before its answer reaches the service: during `authorize` it delivers
/// events about the new payment through the ingestor and keeps what each delivery gave.
struct NotifiesEarly {
    inner: MemoryGateway,
    ingestor: std::sync::OnceLock<WebhookIngestor>,
    /// (merchant reference in the event or none, the delivery's result) per early delivery.
    early: std::sync::Mutex<Vec<EarlyDelivery>>,
}

impl std::fmt::Debug for NotifiesEarly {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NotifiesEarly")
    }
}

/// A Stripe authorization event for `reference`, carrying `merchant_reference` in its metadata when given.
fn authorized_event(id: &str, reference: &str, minor: i64, merchant_reference: Option<&str>) -> Vec<u8> {
    let mut object = json!({ "object": "payment_intent", "id": reference, "amount": minor,
                             "amount_capturable": minor, "currency": "eur" });
    if let Some(m) = merchant_reference {
        object["metadata"] = json!({ "reference": m });
    }
    json!({ "id": id, "type": "payment_intent.amount_capturable_updated", "created": T0.unix_timestamp(),
            "data": { "object": object } })
    .to_string()
    .into_bytes()
}

#[async_trait]
impl commerce_ports::payment::PaymentGateway for NotifiesEarly {
    fn capabilities(&self) -> commerce_ports::payment::GatewayCapabilities {
        self.inner.capabilities()
    }
    async fn authorize(
        &self,
        request: commerce_ports::payment::AuthorizeRequest,
    ) -> Result<commerce_ports::payment::PaymentSnapshot, commerce_ports::PaymentError> {
        let snapshot = self.inner.authorize(request).await?;
        let ingestor = self.ingestor.get().expect("ingestor set");
        for (n, merchant) in [Some("order-1"), None, Some("order-9")].into_iter().enumerate() {
            let body = authorized_event(&format!("evt_early_{n}"), &snapshot.provider_reference, 4_200, merchant);
            let result = ingestor.ingest(&signed(&body, T0.unix_timestamp())).await.map_err(|e| e.status());
            self.early.lock().expect("lock").push((merchant, result));
        }
        Ok(snapshot)
    }
    async fn capture(
        &self,
        request: commerce_ports::payment::CaptureRequest,
    ) -> Result<commerce_ports::payment::ModificationResult, commerce_ports::PaymentError> {
        self.inner.capture(request).await
    }
    async fn refund(
        &self,
        request: commerce_ports::payment::RefundRequest,
    ) -> Result<commerce_ports::payment::ModificationResult, commerce_ports::PaymentError> {
        self.inner.refund(request).await
    }
    async fn void(
        &self,
        request: commerce_ports::payment::VoidRequest,
    ) -> Result<commerce_ports::payment::ModificationResult, commerce_ports::PaymentError> {
        self.inner.void(request).await
    }
    async fn increment_authorization(
        &self,
        request: commerce_ports::payment::IncrementRequest,
    ) -> Result<commerce_ports::payment::PaymentSnapshot, commerce_ports::PaymentError> {
        self.inner.increment_authorization(request).await
    }
    async fn retrieve(
        &self,
        provider_reference: &str,
    ) -> Result<commerce_ports::payment::PaymentSnapshot, commerce_ports::PaymentError> {
        self.inner.retrieve(provider_reference).await
    }
    async fn tokenize(
        &self,
        request: commerce_ports::payment::TokenizeRequest,
    ) -> Result<commerce_ports::payment::PaymentMethodRef, commerce_ports::PaymentError> {
        self.inner.tokenize(request).await
    }
}

#[tokio::test]
async fn an_event_arriving_while_its_authorization_runs_is_delivered_again_not_dropped() {
    let fx = Fx::new();
    let (intent, early) = authorize_notifying(&fx, fx.ingestor.clone()).await;
    // With the running authorization's merchant reference: 503, nothing recorded.
    assert_eq!(early[0], (Some("order-1"), Err(503)));
    assert!(!fx.recorded("evt_early_0").await);
    // Without a merchant reference, or with another one, it cannot be told from another system's payment:
    // acknowledged as unknown (holding such events back would hold them for good on a busy tenant).
    assert_eq!(early[1], (None, Ok(report(0, 0, 1, 0, 0))));
    assert_eq!(early[2], (Some("order-9"), Ok(report(0, 0, 1, 0, 0))));
    assert!(fx.recorded("evt_early_1").await && fx.recorded("evt_early_2").await);
    // The provider delivers again once the intent is stored: it is found and recorded now.
    let body = authorized_event("evt_early_0", &reference(&intent), 4_200, Some("order-1"));
    let again = fx.deliver(&body).await.expect("delivered again");
    assert_eq!(again.unknown_payments, 0, "{again:?}");
    assert!(fx.recorded("evt_early_0").await);
    assert_eq!(fx.get(&intent.id).await.status, IntentStatus::Authorized);
    // And with nothing running any more, an event for an unknown payment is acknowledged at once.
    let stray = authorized_event("evt_stray", "pi_elsewhere", 100, None);
    assert_eq!(fx.deliver(&stray).await.ok(), Some(report(0, 0, 1, 0, 0)));
}

#[tokio::test]
async fn an_event_for_an_authorization_whose_outcome_was_not_stored_waits_for_the_retry() {
    let stores = memory_store_set();
    let ledger = Arc::new(FailingLedger::new(stores.ledger.clone()));
    ledger.fail_next_commits(1);
    let payments = Payments::from_stores(&stores, Arc::new(ManualClock::new(T0))).with_ledger(ledger.clone());
    let events = Arc::new(FlakyEvents::default());
    let verifier = Arc::new(StripeWebhookVerifier::new(Secret::new(SECRET)));
    let ingestor = WebhookIngestor::new(&payments, events.clone(), tenant(), "stripe", verifier);
    let gateway = MemoryGateway::new();
    let payment = || {
        NewPayment::new(
            tenant(),
            ChannelId::new("web").expect("channel"),
            TenderKind::Card,
            eur(900),
            "pm_card_visa",
            "order-7",
        )
    };
    // The provider authorizes, but the outcome cannot be stored: no intent exists.
    let failed = payments.authorize(&gateway, "stripe", payment(), &key("seven:auth")).await;
    assert_eq!(failed.err().map(|e| e.kind()), Some(ErrorKind::Unavailable));
    assert_eq!(gateway.provider_calls(), 1);
    // The provider's notification arrives now: held back (503), not acknowledged as an unknown payment.
    let body = authorized_event("evt_seven", "pi_seven", 900, Some("order-7"));
    let held = ingestor.ingest(&signed(&body, T0.unix_timestamp())).await;
    assert_eq!(held.err().map(|e| e.status()), Some(503));
    assert!(!events.contains(&tenant(), "stripe", "evt_seven").await.expect("contains"));
    // The caller retries with the key; the provider replays its answer and the intent is stored.
    let intent = payments.authorize(&gateway, "stripe", payment(), &key("seven:auth")).await.expect("authorized");
    assert_eq!(gateway.provider_calls(), 1, "the retry is a replay at the provider");
    let body = authorized_event("evt_seven", &reference(&intent), 900, Some("order-7"));
    let delivered = ingestor.ingest(&signed(&body, T0.unix_timestamp())).await.expect("delivered again");
    assert_eq!(delivered.unknown_payments, 0, "{delivered:?}");
    assert!(events.contains(&tenant(), "stripe", "evt_seven").await.expect("contains"));
}

#[tokio::test]
async fn an_early_event_of_a_second_attempt_is_not_given_to_the_refused_first() {
    let fx = Fx::new();
    let order = |method: &str| {
        NewPayment::new(
            tenant(),
            ChannelId::new("web").expect("channel"),
            TenderKind::Card,
            eur(4_200),
            method,
            "order-1",
        )
    };
    // The first attempt for order-1 is refused: a terminal intent with the same merchant reference.
    let refused = fx.payments.authorize(&fx.gateway, "stripe", order("pm_card_chargeDeclined"), &key("try-1")).await;
    assert_eq!(refused.err().map(|e| e.kind()), Some(ErrorKind::Declined));
    let first = fx.stores.intents.find_by_reference(&tenant(), "order-1").await.expect("find").pop().expect("intent");
    assert_eq!(first.status, IntentStatus::Failed);
    let first_history = fx.history(&first.id).await;
    // The second attempt's provider notifies before its answer is stored.
    let gateway = NotifiesEarly {
        inner: MemoryGateway::new(),
        ingestor: std::sync::OnceLock::new(),
        early: std::sync::Mutex::new(Vec::new()),
    };
    gateway.ingestor.set(fx.ingestor.clone()).expect("set once");
    let second = fx.payments.authorize(&gateway, "stripe", order("pm_card_visa"), &key("try-2")).await.expect("second");
    let early = gateway.early.lock().expect("lock").clone();
    assert_eq!(early[0], (Some("order-1"), Err(503)), "held back for the second attempt, not applied to the first");
    assert_eq!(fx.history(&first.id).await, first_history, "the refused attempt is untouched");
    assert!(!fx.recorded("evt_early_0").await);
    let body = authorized_event("evt_early_0", &reference(&second), 4_200, Some("order-1"));
    assert_eq!(fx.deliver(&body).await.expect("delivered again").unknown_payments, 0);
    assert!(fx.recorded("evt_early_0").await);
}

#[tokio::test]
async fn a_hold_too_long_to_measure_holds_without_a_bound() {
    let fx = Fx::new();
    fx.unknown_authorization().await;
    let ingestor = fx.ingestor.clone().with_unknown_hold(std::time::Duration::MAX);
    let stray = event("evt_stray", "authorized", "pi_stray", 100);
    let held = ingestor.ingest(&signed(&stray, T0.unix_timestamp())).await;
    assert_eq!(held.err().map(|e| e.status()), Some(503));
}

/// `body` with its `created` time `minutes` before [`T0`] (after it, when negative).
fn aged(body: &[u8], minutes: i64) -> Vec<u8> {
    let mut value: serde_json::Value = serde_json::from_slice(body).expect("json");
    value["created"] = json!((T0 - time::Duration::minutes(minutes)).unix_timestamp());
    value.to_string().into_bytes()
}

/// Authorizes `order-1` through `fx.payments` with a gateway that delivers three early events (see
/// [`NotifiesEarly`]) to `ingestor` from inside its `authorize`.
async fn authorize_notifying(fx: &Fx, ingestor: WebhookIngestor) -> (PaymentIntent, Vec<EarlyDelivery>) {
    let gateway = NotifiesEarly {
        inner: MemoryGateway::new(),
        ingestor: std::sync::OnceLock::new(),
        early: std::sync::Mutex::new(Vec::new()),
    };
    gateway.ingestor.set(ingestor).expect("set once");
    let payment = NewPayment::new(
        tenant(),
        ChannelId::new("web").expect("channel"),
        TenderKind::Card,
        eur(4_200),
        "pm_card_visa",
        "order-1",
    );
    let intent = fx.payments.authorize(&gateway, "stripe", payment, &key("early:auth")).await.expect("authorized");
    let early = gateway.early.lock().expect("lock").clone();
    (intent, early)
}

/// Another service instance over `fx`'s stores, and its ingestor.
fn instance_b(fx: &Fx) -> WebhookIngestor {
    let instance_b = Payments::from_stores(&fx.stores, fx.clock.clone());
    let verifier = Arc::new(StripeWebhookVerifier::new(Secret::new(SECRET)));
    WebhookIngestor::new(&instance_b, fx.events.clone(), tenant(), "stripe", verifier)
}

#[tokio::test]
async fn with_the_fresh_hold_an_event_reaching_another_instance_mid_authorization_is_delivered_again() {
    // Instance A (`fx.payments`) authorizes; the provider's webhook reaches instance B, which knows nothing of
    // A's authorizations under way. Without the fresh hold, B acknowledges it as another system's payment.
    let fx = Fx::new();
    let (_, early) = authorize_notifying(&fx, instance_b(&fx)).await;
    assert_eq!(early[0], (Some("order-1"), Ok(report(0, 0, 1, 0, 0))));
    // With it, every early event happened moments ago and matches no intent yet: held back, whatever its
    // merchant reference, and nothing recorded.
    let fx = Fx::new();
    let ingestor_b = instance_b(&fx).with_fresh_hold(commerce_payments::RECOMMENDED_FRESH_HOLD);
    let (intent, early) = authorize_notifying(&fx, ingestor_b.clone()).await;
    assert_eq!(early.len(), 3);
    for (n, (merchant, result)) in early.iter().enumerate() {
        assert_eq!(*result, Err(503), "event {n} with merchant reference {merchant:?}");
        assert!(!fx.recorded(&format!("evt_early_{n}")).await);
    }
    // The redeliveries find the intent by its provider reference, now that A has stored it.
    for (n, merchant) in [Some("order-1"), None, Some("order-9")].into_iter().enumerate() {
        let body = authorized_event(&format!("evt_early_{n}"), &reference(&intent), 4_200, merchant);
        let again = ingestor_b.ingest(&signed(&body, T0.unix_timestamp())).await.expect("delivered again");
        assert_eq!(again.unknown_payments, 0, "event {n}: {again:?}");
        assert!(fx.recorded(&format!("evt_early_{n}")).await);
    }
    assert_eq!(fx.get(&intent.id).await.status, IntentStatus::Authorized);
}

#[tokio::test]
async fn the_fresh_hold_holds_back_only_recent_events_that_may_start_a_payment() {
    let fx = Fx::new();
    let held = fx.ingestor.clone().with_fresh_hold(commerce_payments::RECOMMENDED_FRESH_HOLD);
    let deliver = |body: Vec<u8>| {
        let ingestor = held.clone();
        async move { ingestor.ingest(&signed(&body, T0.unix_timestamp())).await.map_err(|e| e.status()) }
    };
    let unknown = Ok(report(0, 0, 1, 0, 0));
    // Authorization and capture events: held back while recent, by the provider's clock either way.
    let fresh = event("evt_auth", "authorized", "pi_elsewhere", 100);
    assert_eq!(deliver(fresh.clone()).await, Err(503));
    assert_eq!(deliver(aged(&event("evt_cap", "captured", "pi_elsewhere", 100), 1)).await, Err(503));
    assert_eq!(deliver(aged(&event("evt_ahead", "captured", "pi_elsewhere", 100), -1)).await, Err(503));
    assert!(!fx.recorded("evt_auth").await && !fx.recorded("evt_cap").await);
    // Older than the hold, or too far in the future to be trusted: acknowledged as another system's payment.
    assert_eq!(deliver(aged(&event("evt_old", "captured", "pi_elsewhere", 100), 3)).await, unknown);
    assert_eq!(deliver(aged(&event("evt_future", "captured", "pi_elsewhere", 100), -3)).await, unknown);
    // A refund or a cancellation cannot be the first news of a payment: acknowledged at once.
    assert_eq!(deliver(event("evt_refund", "refunded", "pi_elsewhere", 100)).await, unknown);
    assert_eq!(deliver(event("evt_void", "canceled", "pi_elsewhere", 100)).await, unknown);
    // The hold is measured from when the event happened: after it, the same delivery is acknowledged.
    fx.clock.set(T0 + commerce_payments::RECOMMENDED_FRESH_HOLD);
    assert_eq!(deliver(fresh.clone()).await, unknown);
    assert!(fx.recorded("evt_auth").await);
    // Off by default.
    let fx = Fx::new();
    assert_eq!(fx.deliver(&fresh).await.map_err(|e| e.status()), unknown);
}

#[tokio::test]
async fn the_fresh_hold_lets_a_refused_attempts_own_failure_through() {
    let fx = Fx::new();
    let declined = NewPayment::new(
        tenant(),
        ChannelId::new("web").expect("channel"),
        TenderKind::Card,
        eur(4_200),
        "pm_card_chargeDeclined",
        "order-1",
    );
    let refused = fx.payments.authorize(&fx.gateway, "stripe", declined, &key("order-1:auth")).await;
    assert_eq!(refused.err().map(|e| e.kind()), Some(ErrorKind::Declined));
    let held = fx.ingestor.clone().with_fresh_hold(commerce_payments::RECOMMENDED_FRESH_HOLD);
    let failed = json!({ "id": "evt_failed", "type": "payment_intent.payment_failed", "created": T0.unix_timestamp(),
                         "data": { "object": { "object": "payment_intent", "id": "pi_refused", "amount": 4_200,
                                               "currency": "eur", "metadata": { "reference": "order-1" } } } });
    let body = failed.to_string().into_bytes();
    let ingested = held.ingest(&signed(&body, T0.unix_timestamp())).await.map_err(|e| e.status());
    assert_eq!(ingested, Ok(report(0, 0, 0, 1, 0)), "the refusal is already stored (ignored); nothing to wait for");
    assert!(fx.recorded("evt_failed").await);
    // Another order's failure, though, may be an attempt under way elsewhere: held back while recent.
    let mut other = failed.clone();
    other["id"] = json!("evt_failed_2");
    other["data"]["object"]["metadata"]["reference"] = json!("order-2");
    let body = other.to_string().into_bytes();
    assert_eq!(held.ingest(&signed(&body, T0.unix_timestamp())).await.map_err(|e| e.status()), Err(503));
}

/// Sells `minor` cents card present under key `{order}:pay` through a memory terminal that loses `lost` payment
/// answers (the provider name is the ingestor's), and the provider's notification of it: its own payment
/// reference, and the sale's reference at the terminal (the key) as the merchant reference.
async fn card_present_sale(
    fx: &Fx,
    order: &str,
    lost: u32,
) -> (Result<PaymentIntent, commerce_payments::PaymentsError>, serde_json::Value) {
    use commerce_payments::TerminalGateway;
    use commerce_ports::RegisterId;
    use commerce_testkit::memory::MemoryTerminal;
    let terminal = Arc::new(MemoryTerminal::new());
    terminal.lose_pay_answers(lost);
    let gateway = TerminalGateway::new(terminal, "V400m-1", RegisterId::new("till-1").expect("register"));
    let sale = common::card_present(4_890, "V400m-1", order);
    let sold = fx.payments.authorize(&gateway, "stripe", sale, &key(&format!("{order}:pay"))).await;
    let mut news: serde_json::Value =
        serde_json::from_slice(&event(&format!("evt_{order}"), "captured", "psp_4711", 4_890)).expect("json");
    news["data"]["object"]["metadata"] = json!({ "reference": format!("{order}:pay") });
    (sold, news)
}

#[tokio::test]
async fn a_card_present_sales_own_notification_is_recognised_not_held_back() {
    let fx = Fx::new();
    let (sold, mut news) = card_present_sale(&fx, "S-0002", 0).await;
    let intent = sold.expect("sold");
    assert_eq!(intent.status, IntentStatus::Captured);
    let held = fx.ingestor.clone().with_fresh_hold(commerce_payments::RECOMMENDED_FRESH_HOLD);
    // Neither reference is the intent's: recognised as the sale's news and acknowledged at once.
    let body = news.to_string().into_bytes();
    let ingested = held.ingest(&signed(&body, T0.unix_timestamp())).await.map_err(|e| e.status());
    assert_eq!(ingested, Ok(report(0, 0, 0, 1, 0)));
    assert!(fx.recorded("evt_S-0002").await);
    assert_eq!(fx.get(&intent.id).await, intent, "nothing changed");
    // Without the fresh hold it is counted the same way.
    news["id"] = json!("evt_sale_2");
    let body = news.to_string().into_bytes();
    assert_eq!(fx.deliver(&body).await.map_err(|e| e.status()), Ok(report(0, 0, 0, 1, 0)));
    // News the sale does not show (another amount: perhaps another payment whose merchant reference is the
    // same text) is not taken as the sale's: held back while recent, then acknowledged as matching no intent.
    news["id"] = json!("evt_other_amount");
    news["data"]["object"]["amount"] = json!(1_000);
    news["data"]["object"]["amount_received"] = json!(1_000);
    let body = news.to_string().into_bytes();
    assert_eq!(held.ingest(&signed(&body, T0.unix_timestamp())).await.map_err(|e| e.status()), Err(503));
    assert_eq!(fx.deliver(&body).await.map_err(|e| e.status()), Ok(report(0, 0, 1, 0, 0)));
    // A key of no card-present sale stays what it was: held back while recent.
    news["id"] = json!("evt_other");
    news["data"]["object"]["metadata"] = json!({ "reference": "S-0003:pay" });
    let body = news.to_string().into_bytes();
    assert_eq!(held.ingest(&signed(&body, T0.unix_timestamp())).await.map_err(|e| e.status()), Err(503));
}

#[tokio::test]
async fn news_of_a_card_present_sale_whose_outcome_is_unknown_is_not_taken_as_reflected() {
    let fx = Fx::new();
    let (lost, news) = card_present_sale(&fx, "S-0004", 1).await;
    assert_eq!(lost.expect_err("unknown").kind(), ErrorKind::OutcomeUnknown);
    let body = news.to_string().into_bytes();
    // The intent does not show the capture (its outcome is unknown): not "already reflected".
    assert_eq!(fx.deliver(&body).await.map_err(|e| e.status()), Ok(report(0, 0, 1, 0, 0)));
}
