//! Stripe webhook verification of a 2 KiB signed event, against raw HMAC-SHA256 over the same signed
//! bytes.
//!
//! - `authenticate`: [`WebhookVerifier::authenticate`] of [`StripeWebhookVerifier`] on a full request:
//!   secret and size checks, `Stripe-Signature` lookup and parsing (`t` and every `v1`), HMAC-SHA256 of
//!   `"{t}.{body}"`, hex decode into a stack array and constant-time compare, tolerance check. No JSON.
//! - `raw`: HMAC-SHA256 (the `hmac` and `sha2` crates, keyed per call like `authenticate`) over the
//!   pre-built `"{t}.{body}"` bytes, and a comparison of the tag with the expected one.
//! - `verify`: [`WebhookVerifier::verify`], i.e. `authenticate` plus the typed parse of the event into a
//!   [`WebhookEvent`](commerce_ports::webhook::WebhookEvent). Printed with its own ratio for information.
//! - `raw, pre-keyed`: raw HMAC-SHA256 from a copy of an HMAC keyed once, as the verifier keeps one (this
//!   saves hashing the key pads, two SHA-256 blocks per call). Printed for information, so the part of the
//!   margin that comes from that cache can be seen.
//!
//! Each competitor is measured in alternating batches with `raw` (so load drift hits both alike); the
//! figures are medians.
//!
//! Target: authenticate / raw <= 1.15.

mod common;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use commerce_ports::Secret;
use commerce_ports::webhook::{WebhookErrorKind, WebhookRequest, WebhookVerifier};
use commerce_stripe::{SIGNATURE_HEADER, StripeWebhookVerifier, sign};
use common::{Report, fmt_secs, per_iter_pair};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

const SECRET: &str = "whsec_bench_0123456789abcdef0123456789abcdef";
const TIMESTAMP: i64 = 1_700_000_000;
const TARGET_BODY_LEN: usize = 2048;
/// Wall time of one measured batch of a competitor.
const BATCH: Duration = Duration::from_millis(40);
/// Alternating batches per competitor (the median is taken).
const BATCHES: usize = 15;

/// A `payment_intent.succeeded` event shaped like Stripe's, padded in `metadata` to exactly 2 KiB.
fn event_body() -> Vec<u8> {
    let build = |pad: &str| {
        format!(
            r#"{{"id":"evt_3OabcdEFGH1234567890abcd","object":"event","api_version":"2023-10-16","created":{TIMESTAMP},"data":{{"object":{{"id":"pi_3OabcdEFGH1234567890abcd","object":"payment_intent","amount":4250,"amount_capturable":0,"amount_received":4250,"application":null,"capture_method":"manual","client_secret":"pi_3OabcdEFGH1234567890abcd_secret_ZYXWVUTSRQ","confirmation_method":"automatic","created":{TIMESTAMP},"currency":"eur","customer":"cus_PQRSTUVWXYZ012","description":"Order 2024-000123","latest_charge":"ch_3OabcdEFGH1234567890abcd","livemode":false,"metadata":{{"order":"2024-000123","tenant":"acme","channel":"web","note":"{pad}"}},"payment_method":"pm_1OabcdEFGH1234567890abcd","payment_method_types":["card"],"receipt_email":"customer@example.com","shipping":{{"address":{{"city":"Berlin","country":"DE","line1":"Example Street 1","line2":null,"postal_code":"10115","state":null}},"name":"Jane Doe","phone":null}},"status":"succeeded","transfer_group":null}}}},"livemode":false,"pending_webhooks":1,"request":{{"id":"req_abcdEFGH123456","idempotency_key":"capture-2024-000123"}},"type":"payment_intent.succeeded"}}"#
        )
    };
    let base = build("").len();
    let pad = "x".repeat(TARGET_BODY_LEN.saturating_sub(base));
    build(&pad).into_bytes()
}

fn request(secret: &Secret, body: Vec<u8>) -> WebhookRequest {
    let header = sign(secret, TIMESTAMP, &body);
    WebhookRequest::new(
        vec![
            ("Content-Type".to_owned(), "application/json; charset=utf-8".to_owned()),
            ("User-Agent".to_owned(), "Stripe/1.0 (+https://stripe.com/docs/webhooks)".to_owned()),
            (SIGNATURE_HEADER.to_owned(), header),
        ],
        body,
    )
}

fn main() -> ExitCode {
    let mut report = Report::new("webhook", "Stripe webhook verification of a ~2 KiB signed event vs raw HMAC-SHA256");
    let secret = Secret::new(SECRET);
    let verifier = StripeWebhookVerifier::new(secret.clone());
    let now = OffsetDateTime::from_unix_timestamp(TIMESTAMP + 1).expect("timestamp");

    let body = event_body();
    assert_eq!(body.len(), TARGET_BODY_LEN, "the event is padded to exactly 2 KiB");
    let full = request(&secret, body.clone());

    // Sanity: the request authenticates and parses into the event; a changed body does not authenticate.
    verifier.authenticate(&full, now).expect("the signed event authenticates");
    let events = verifier.verify(&full, now).expect("the signed event verifies");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "payment_intent.succeeded");
    assert_eq!(events[0].provider_reference.as_deref(), Some("pi_3OabcdEFGH1234567890abcd"));
    let mut tampered = full.clone();
    tampered.body[10] ^= 1;
    let kind = verifier.authenticate(&tampered, now).err().map(|e| e.kind);
    assert_eq!(kind, Some(WebhookErrorKind::NoValidSignature), "a changed body must not authenticate");

    let signed: Vec<u8> = [format!("{TIMESTAMP}.").as_bytes(), &body[..]].concat();
    let mut expected = [0u8; 32];
    {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
        mac.update(&signed);
        expected.copy_from_slice(&mac.finalize().into_bytes());
    }

    let mut raw = |n: u64| -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            let mut mac = Hmac::<Sha256>::new_from_slice(black_box(SECRET.as_bytes())).expect("hmac key");
            mac.update(black_box(&signed));
            let tag = mac.finalize().into_bytes();
            assert!(black_box(tag.as_slice() == expected.as_slice()));
        }
        start.elapsed()
    };
    let mut authenticate = |n: u64| -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            let result = verifier.authenticate(black_box(&full), now);
            assert!(black_box(result).is_ok());
        }
        start.elapsed()
    };
    let mut verify = |n: u64| -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            let events = verifier.verify(black_box(&full), now);
            assert!(black_box(events).is_ok());
        }
        start.elapsed()
    };
    let (t_auth, t_raw) = per_iter_pair(BATCH, BATCHES, &mut authenticate, &mut raw);
    let (t_verify, t_raw_2) = per_iter_pair(BATCH, BATCHES, &mut verify, &mut raw);
    let keyed = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
    let mut raw_keyed = |n: u64| -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            let mut mac = black_box(&keyed).clone();
            mac.update(black_box(&signed));
            let tag = mac.finalize().into_bytes();
            assert!(black_box(tag.as_slice() == expected.as_slice()));
        }
        start.elapsed()
    };
    let (t_auth_2, t_raw_keyed) = per_iter_pair(BATCH, BATCHES, &mut authenticate, &mut raw_keyed);

    report.figure("body size", &format!("{} B", body.len()));
    report.figure("raw HMAC-SHA256 over \"{t}.{body}\" + tag compare", &fmt_secs(t_raw));
    report.figure("authenticate (header + HMAC + compare + tolerance)", &fmt_secs(t_auth));
    report.figure("verify (authenticate + typed event parse)", &fmt_secs(t_verify));
    report.figure("raw, measured alongside verify", &fmt_secs(t_raw_2));
    report.figure("raw from a pre-keyed HMAC (information)", &fmt_secs(t_raw_keyed));
    report.figure("event parse share (verify - authenticate)", &fmt_secs(t_verify - t_auth));
    let ratio = t_auth / t_raw;
    report.at_most("ratio authenticate / raw", ratio, &format!("{ratio:.2}x"), 1.15, "1.15x");
    let verify_ratio = t_verify / t_raw_2;
    report.figure("ratio verify / raw (information)", &format!("{verify_ratio:.2}x"));
    let keyed_ratio = t_auth_2 / t_raw_keyed;
    report.figure("ratio authenticate / raw pre-keyed (information)", &format!("{keyed_ratio:.2}x"));
    report.finish()
}
