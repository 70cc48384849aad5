//! `StripeWebhookVerifier` against Stripe's published vector and every distinct failure.

use std::time::Duration;

use commerce_ports::Secret;
use commerce_ports::webhook::{PaymentEventKind, WebhookErrorKind, WebhookEvent, WebhookRequest, WebhookVerifier};
use commerce_stripe::{StripeWebhookVerifier, sign};
use proptest::prelude::*;
use time::OffsetDateTime;

/// Published vector (an open-source Stripe client's tests): secret `secret`, t = 1533204620.
const VECTOR_SECRET: &str = "secret";
const VECTOR_T: i64 = 1_533_204_620;
const VECTOR_PAYLOAD: &str = r#"{"account":"acct_123","api_version":"2017-05-25","created":1533204620,"data":{"object":{"amount":1000,"currency":"usd","customer":"cus_123","date":1533204620,"description":"Test Invoice Item","discountable":false,"id":"ii_123","invoice":"in_123","livemode":false,"metadata":{},"object":"invoiceitem","period":{"end":1533204620,"start":1533204620},"proration":false,"quantity":3,"quantity_decimal":"0"}},"id":"evt_123","livemode":false,"object":"event","pending_webhooks":1,"request":{"id":"req_123","idempotency_key":"idempotency-key-123"},"type":"invoiceitem.created"}"#;
const VECTOR_V1: &str = "d7373bc68f4bd320b253cd7461f87af6e1cdf1b4d7db1614d8d1d746972d2d0a";

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("a valid unix timestamp")
}

fn request(header: &str, body: impl Into<Vec<u8>>) -> WebhookRequest {
    WebhookRequest::new(vec![("Stripe-Signature".to_owned(), header.to_owned())], body)
}

fn vector_verifier() -> StripeWebhookVerifier {
    StripeWebhookVerifier::new(Secret::new(VECTOR_SECRET))
}

fn kind_of(result: Result<Vec<WebhookEvent>, commerce_ports::webhook::WebhookError>) -> Option<WebhookErrorKind> {
    result.err().map(|e| e.kind)
}

#[test]
fn published_vector_verifies() {
    let header = format!("t={VECTOR_T},v1={VECTOR_V1}");
    let events = vector_verifier().verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T)).expect("verifies");
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.provider, "stripe");
    assert_eq!(event.event_id, "evt_123");
    assert_eq!(event.event_type, "invoiceitem.created");
    assert_eq!(event.kind, PaymentEventKind::Other);
    assert_eq!(event.occurred_at, Some(at(VECTOR_T)));
}

#[test]
fn the_signature_covers_the_raw_timestamp_text() {
    use hmac::{Hmac, Mac};
    // A `t` with a leading zero: the signed string is "01533204620.{body}", not the re-formatted number.
    let raw_t = "01533204620";
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(VECTOR_SECRET.as_bytes()).expect("any key length");
    mac.update(format!("{raw_t}.{VECTOR_PAYLOAD}").as_bytes());
    let v1 = hex::encode(mac.finalize().into_bytes());
    let header = format!("t={raw_t},v1={v1}");
    let events = vector_verifier().verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T));
    assert_eq!(events.map(|e| e.len()).ok(), Some(1));
    // A signature over the re-formatted number does not match what was sent as `t`.
    let reformatted = format!("t={raw_t},v1={VECTOR_V1}");
    let forged = vector_verifier().verify(&request(&reformatted, VECTOR_PAYLOAD), at(VECTOR_T));
    assert_eq!(kind_of(forged), Some(WebhookErrorKind::NoValidSignature));
}

#[test]
fn sign_reproduces_the_published_vector() {
    let header = sign(&Secret::new(VECTOR_SECRET), VECTOR_T, VECTOR_PAYLOAD.as_bytes());
    assert_eq!(header, format!("t={VECTOR_T},v1={VECTOR_V1}"));
}

#[test]
fn the_whsec_prefix_is_part_of_the_key() {
    let body = br#"{"id":"evt_1","type":"ping"}"#;
    let header = sign(&Secret::new("whsec_abc"), 100, body);
    let without_prefix = StripeWebhookVerifier::new(Secret::new("abc"));
    assert_eq!(
        kind_of(without_prefix.verify(&request(&header, &body[..]), at(100))),
        Some(WebhookErrorKind::NoValidSignature)
    );
    let with_prefix = StripeWebhookVerifier::new(Secret::new("whsec_abc"));
    assert!(with_prefix.verify(&request(&header, &body[..]), at(100)).is_ok());
}

#[test]
fn a_second_v1_that_matches_passes() {
    let old_secret = sign(&Secret::new("whsec_old"), VECTOR_T, VECTOR_PAYLOAD.as_bytes());
    let old_v1 = old_secret.split("v1=").nth(1).expect("a v1");
    let header = format!("t={VECTOR_T},v1={old_v1},v1={VECTOR_V1}");
    assert!(vector_verifier().verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T)).is_ok());
}

#[test]
fn any_matching_v1_passes_while_a_secret_rolls() {
    let wrong = "0".repeat(64);
    let header = format!("t={VECTOR_T},v1={wrong},v1=zz-not-hex,v1={VECTOR_V1},v0={VECTOR_V1}");
    assert!(vector_verifier().verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T)).is_ok());
}

#[test]
fn v0_only_is_no_valid_signature() {
    let header = format!("t={VECTOR_T},v0={VECTOR_V1}");
    let result = vector_verifier().verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T));
    assert_eq!(kind_of(result), Some(WebhookErrorKind::NoValidSignature));
}

#[test]
fn tampered_body_is_no_valid_signature() {
    let header = format!("t={VECTOR_T},v1={VECTOR_V1}");
    let tampered = VECTOR_PAYLOAD.replace("\"amount\":1000", "\"amount\":1");
    let result = vector_verifier().verify(&request(&header, tampered), at(VECTOR_T));
    assert_eq!(kind_of(result), Some(WebhookErrorKind::NoValidSignature));
}

#[test]
fn tampered_timestamp_is_no_valid_signature() {
    let header = format!("t={},v1={VECTOR_V1}", VECTOR_T + 1);
    let result = vector_verifier().verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T));
    assert_eq!(kind_of(result), Some(WebhookErrorKind::NoValidSignature));
}

#[test]
fn stale_or_future_timestamp_is_outside_tolerance() {
    let header = format!("t={VECTOR_T},v1={VECTOR_V1}");
    let verifier = vector_verifier();
    assert!(verifier.verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T + 300)).is_ok(), "300 s is inside");
    for now in [VECTOR_T + 301, VECTOR_T - 301, VECTOR_T + 86_400] {
        let result = verifier.verify(&request(&header, VECTOR_PAYLOAD), at(now));
        assert_eq!(kind_of(result), Some(WebhookErrorKind::TimestampOutsideTolerance), "now = {now}");
    }
    let strict = vector_verifier().with_tolerance(Duration::from_secs(10));
    let result = strict.verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T + 11));
    assert_eq!(kind_of(result), Some(WebhookErrorKind::TimestampOutsideTolerance));
}

#[test]
fn a_forged_stale_delivery_is_reported_as_forged() {
    // Signature first, timestamp second: a bad signature never reveals the tolerance check.
    let header = format!("t={},v1={}", VECTOR_T - 10_000, "0".repeat(64));
    let result = vector_verifier().verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T));
    assert_eq!(kind_of(result), Some(WebhookErrorKind::NoValidSignature));
}

#[test]
fn missing_or_empty_header_is_missing_signature() {
    let verifier = vector_verifier();
    let none = WebhookRequest::new(vec![("Content-Type".to_owned(), "application/json".to_owned())], VECTOR_PAYLOAD);
    assert_eq!(kind_of(verifier.verify(&none, at(VECTOR_T))), Some(WebhookErrorKind::MissingSignature));
    for empty in ["", "   "] {
        let result = verifier.verify(&request(empty, VECTOR_PAYLOAD), at(VECTOR_T));
        assert_eq!(kind_of(result), Some(WebhookErrorKind::MissingSignature), "{empty:?}");
    }
}

#[test]
fn malformed_headers_are_malformed_signature_header() {
    let verifier = vector_verifier();
    let cases = [
        format!("v1={VECTOR_V1}"),
        format!("t=yesterday,v1={VECTOR_V1}"),
        format!("t={VECTOR_T},v1{VECTOR_V1}"),
        format!("t={VECTOR_T};v1={VECTOR_V1}"),
        "nonsense".to_owned(),
    ];
    for header in cases {
        let result = verifier.verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T));
        assert_eq!(kind_of(result), Some(WebhookErrorKind::MalformedSignatureHeader), "{header}");
    }
}

#[test]
fn oversized_body_is_payload_too_large() {
    let verifier = vector_verifier().with_max_body_bytes(VECTOR_PAYLOAD.len() - 1);
    let header = format!("t={VECTOR_T},v1={VECTOR_V1}");
    let result = verifier.verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T));
    assert_eq!(kind_of(result), Some(WebhookErrorKind::PayloadTooLarge));
    let exact = vector_verifier().with_max_body_bytes(VECTOR_PAYLOAD.len());
    assert!(exact.verify(&request(&header, VECTOR_PAYLOAD), at(VECTOR_T)).is_ok());
    // The default limit is 256 KiB.
    let big = vec![b' '; 256 * 1024 + 1];
    let result =
        vector_verifier().verify(&request(&sign(&Secret::new(VECTOR_SECRET), VECTOR_T, &big), big), at(VECTOR_T));
    assert_eq!(kind_of(result), Some(WebhookErrorKind::PayloadTooLarge));
}

#[test]
fn header_names_are_case_insensitive() {
    let header = format!("t={VECTOR_T},v1={VECTOR_V1}");
    for name in ["stripe-signature", "STRIPE-SIGNATURE", "Stripe-Signature", "sTrIpE-sIgNaTuRe"] {
        let req = WebhookRequest::new(vec![(name.to_owned(), header.clone())], VECTOR_PAYLOAD);
        assert!(vector_verifier().verify(&req, at(VECTOR_T)).is_ok(), "{name}");
    }
}

#[test]
fn signed_body_that_is_not_an_event_is_malformed_payload() {
    let secret = Secret::new("whsec_x");
    for body in [&b"hello"[..], br#"{"object":"event"}"#] {
        let req = request(&sign(&secret, 5, body), body);
        let result = StripeWebhookVerifier::new(secret.clone()).verify(&req, at(5));
        assert_eq!(kind_of(result), Some(WebhookErrorKind::MalformedPayload));
    }
}

#[test]
fn empty_secret_is_invalid_secret() {
    let body = br#"{"id":"evt_1","type":"ping"}"#;
    let req = request(&sign(&Secret::new(""), 5, body), &body[..]);
    let result = StripeWebhookVerifier::new(Secret::new("")).verify(&req, at(5));
    assert_eq!(kind_of(result), Some(WebhookErrorKind::InvalidSecret));
}

#[test]
fn messages_never_contain_the_secret_or_a_computed_signature() {
    let secret = "whsec_very_secret_value";
    let body = br#"{"id":"evt_1","type":"ping"}"#;
    let good = sign(&Secret::new(secret), 1_000, body);
    let computed = good.split("v1=").nth(1).expect("a v1").to_owned();
    let verifier = StripeWebhookVerifier::new(Secret::new(secret));
    let attempts = [
        request("t=1000,v1=00", &body[..]),
        request(&good, &b"{}"[..]),
        request(&good, &body[..]),
        request("t=1000,v1", &body[..]),
    ];
    for (req, now) in attempts.iter().zip([1_000, 1_000, 99_999, 1_000]) {
        let message = verifier.verify(req, at(now)).err().map(|e| e.to_string()).expect("rejected");
        assert!(!message.contains(secret) && !message.contains(&computed), "{message}");
    }
    assert!(!format!("{verifier:?}").contains(secret));
}

#[test]
fn ack_is_json_received() {
    let ack = vector_verifier().ack();
    assert_eq!(
        (ack.status, ack.content_type, ack.body.as_slice()),
        (200, "application/json", &br#"{"received":true}"#[..])
    );
    assert_eq!(vector_verifier().provider(), "stripe");
}

#[test]
fn works_behind_arc_and_box_dyn() {
    let header = format!("t={VECTOR_T},v1={VECTOR_V1}");
    let req = request(&header, VECTOR_PAYLOAD);
    let arc: std::sync::Arc<dyn WebhookVerifier> = std::sync::Arc::new(vector_verifier());
    let boxed: Box<dyn WebhookVerifier> = Box::new(vector_verifier());
    assert!(arc.verify(&req, at(VECTOR_T)).is_ok());
    assert!(boxed.verify(&req, at(VECTOR_T)).is_ok());
}

fn event_body(id: &str, description: &str, padding: &str) -> Vec<u8> {
    let object = serde_json::json!({ "id": id, "type": "payment_intent.succeeded", "description": description });
    format!("{padding}{object}{padding}").into_bytes()
}

proptest! {
    #[test]
    fn signed_events_verify(id in "evt_[A-Za-z0-9]{1,24}", description in any::<String>(), spaces in 0usize..4, t in 0i64..4_000_000_000) {
        let secret = Secret::new("whsec_prop");
        let body = event_body(&id, &description, &" ".repeat(spaces));
        let events = StripeWebhookVerifier::new(secret.clone()).verify(&request(&sign(&secret, t, &body), body), at(t));
        prop_assert_eq!(events.map(|e| e[0].event_id.clone()).ok(), Some(id));
    }

    #[test]
    fn any_signed_bytes_pass_the_signature_check(body in proptest::collection::vec(any::<u8>(), 0..512), t in 0i64..4_000_000_000) {
        // Arbitrary bytes are rarely an event, but the signature itself must always be accepted.
        let secret = Secret::new("whsec_prop");
        let result = StripeWebhookVerifier::new(secret.clone()).verify(&request(&sign(&secret, t, &body), body), at(t));
        let kind = kind_of(result);
        prop_assert!(kind.is_none() || kind == Some(WebhookErrorKind::MalformedPayload), "{:?}", kind);
    }

    #[test]
    fn flipping_any_body_byte_fails(
        description in any::<String>(),
        index in any::<proptest::sample::Index>(),
        mask in 1u8..=255,
    ) {
        let secret = Secret::new("whsec_prop");
        let body = event_body("evt_1", &description, "");
        let header = sign(&secret, 1_000, &body);
        let mut tampered = body.clone();
        let i = index.index(tampered.len());
        tampered[i] ^= mask;
        let result = StripeWebhookVerifier::new(secret).verify(&request(&header, tampered), at(1_000));
        prop_assert_eq!(kind_of(result), Some(WebhookErrorKind::NoValidSignature));
    }
}
