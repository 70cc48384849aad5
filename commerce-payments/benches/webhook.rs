//! Stripe webhook verification of a ~2 KiB signed event, against raw HMAC-SHA256 over the same signed
//! bytes.
//!
//! - `verify`: [`StripeWebhookVerifier::verify`] on a full request: header lookup and parsing, HMAC of
//!   `"{t}.{body}"`, hex decode and constant-time compare, tolerance check, and parsing the event JSON.
//! - `raw`: HMAC-SHA256 (the `hmac` and `sha2` crates) over the pre-built `"{t}.{body}"` bytes, and a
//!   comparison of the tag with the expected one.
//! - `signature only`: `verify` on a request of the same size whose body is signed correctly but is not
//!   JSON from its first byte, so everything but the event parse runs (and it ends with a cheap
//!   `MalformedPayload` error). Printed for information; the target is on the full `verify`.
//!
//! Target: verify / raw <= 1.15.

mod common;

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use commerce_ports::Secret;
use commerce_ports::webhook::{WebhookErrorKind, WebhookRequest, WebhookVerifier};
use commerce_stripe::{SIGNATURE_HEADER, StripeWebhookVerifier, sign};
use common::{Report, fmt_secs, per_iter};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

const SECRET: &str = "whsec_bench_0123456789abcdef0123456789abcdef";
const TIMESTAMP: i64 = 1_700_000_000;
const TARGET_BODY_LEN: usize = 2048;

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
    let full = request(&secret, body.clone());
    let mut not_json = body.clone();
    not_json[0] = b'X';
    let sig_only = request(&secret, not_json);

    // Sanity: the full request verifies and parses; the other passes the signature and fails only the parse.
    let events = verifier.verify(&full, now).expect("the signed event verifies");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "payment_intent.succeeded");
    let kind = verifier.verify(&sig_only, now).err().map(|e| e.kind);
    assert_eq!(kind, Some(WebhookErrorKind::MalformedPayload), "only the payload parse may fail");

    let signed: Vec<u8> = [format!("{TIMESTAMP}.").as_bytes(), &body[..]].concat();
    let mut expected = [0u8; 32];
    {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("hmac key");
        mac.update(&signed);
        expected.copy_from_slice(&mac.finalize().into_bytes());
    }

    let t_verify = per_iter(&mut |n| {
        let start = Instant::now();
        for _ in 0..n {
            let events = verifier.verify(black_box(&full), now);
            assert!(black_box(events).is_ok());
        }
        start.elapsed()
    });
    let t_raw = per_iter(&mut |n| -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            let mut mac = Hmac::<Sha256>::new_from_slice(black_box(SECRET.as_bytes())).expect("hmac key");
            mac.update(black_box(&signed));
            let tag = mac.finalize().into_bytes();
            assert!(black_box(tag.as_slice() == expected.as_slice()));
        }
        start.elapsed()
    });
    let t_sig = per_iter(&mut |n| {
        let start = Instant::now();
        for _ in 0..n {
            let result = verifier.verify(black_box(&sig_only), now);
            assert!(black_box(result).is_err());
        }
        start.elapsed()
    });

    report.figure("body size", &format!("{} B", body.len()));
    report.figure("verify (header + HMAC + tolerance + event JSON parse)", &fmt_secs(t_verify));
    report.figure("verify, signature only (body fails JSON at byte 0)", &fmt_secs(t_sig));
    report.figure("raw HMAC-SHA256 over \"{t}.{body}\" + tag compare", &fmt_secs(t_raw));
    report.figure("event JSON parse share (verify - signature only)", &fmt_secs(t_verify - t_sig));
    let ratio = t_verify / t_raw;
    report.at_most("ratio verify / raw", ratio, &format!("{ratio:.2}x"), 1.15, "1.15x");
    let sig_ratio = t_sig / t_raw;
    report.info_at_most("ratio signature-only verify / raw", sig_ratio, &format!("{sig_ratio:.2}x"), 1.15, "1.15x");
    report.finish()
}
