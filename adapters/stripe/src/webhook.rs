//! `Stripe-Signature` verification: the [`WebhookVerifier`] port for Stripe, and [`sign`] for simulators.
//!
//! Scheme (Stripe's webhook docs): the header is `t=<unix seconds>,v1=<hex>[,v1=<hex>...][,v0=<hex>]`; every
//! `v1` is the lowercase hex HMAC-SHA256 of `"{t}.{raw body}"` keyed with the UTF-8 bytes of the endpoint's
//! signing secret, `whsec_` prefix included. While a secret is being rolled, Stripe sends one `v1` per live
//! secret, so every `v1` entry is kept and any match passes. `v0` (test-mode SHA-1 scheme) never counts.

use std::time::Duration;

use commerce_ports::webhook::{
    WebhookAck, WebhookError, WebhookErrorKind, WebhookEvent, WebhookRequest, WebhookVerifier,
};
use commerce_ports::{Secret, constant_time_eq};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::mapping;

/// The provider name, as in [`WebhookEvent::provider`].
pub const PROVIDER: &str = "stripe";

/// The header that carries the timestamp and signatures (matched case-insensitively).
pub const SIGNATURE_HEADER: &str = "Stripe-Signature";

/// Default largest accepted distance between the signed timestamp and `now`: 300 s, Stripe's own default.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Default largest accepted body: 256 KiB. Stripe events are a few KiB; anything near this is not Stripe.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// The only signature scheme that counts.
const SCHEME_V1: &str = "v1";

/// Length in bytes of an HMAC-SHA256 tag.
const TAG_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// Verifies Stripe webhook deliveries and parses their event.
///
/// # Verification order
/// Each step runs only when the previous one passed, and each failure has its own
/// [`WebhookErrorKind`]:
///
/// 1. the signing secret is not empty (`InvalidSecret`: an empty key would let anyone sign);
/// 2. the body is at most [`with_max_body_bytes`](Self::with_max_body_bytes) bytes (`PayloadTooLarge`),
///    before anything is hashed or parsed;
/// 3. a non-empty `Stripe-Signature` header is present (`MissingSignature`);
/// 4. the header parses: `key=value` entries, exactly one all-digit `t` (`MalformedSignatureHeader`);
/// 5. some `v1` entry equals the HMAC of `"{t}.{body}"`, compared in constant time (`NoValidSignature`);
/// 6. `|now - t|` is within the tolerance (`TimestampOutsideTolerance`);
/// 7. the body is a Stripe event with string `id` and `type` (`MalformedPayload`).
///
/// The timestamp is judged only after a signature matched: before that it is an unauthenticated number, and
/// answering "stale" to a forged delivery would tell a sender that its guess at the format was right and
/// only the clock was off. Reporting the tolerance failure only for authentic deliveries also makes it a
/// precise diagnosis (a replay or a skewed clock) rather than noise from forgeries. The payload is parsed
/// last so that nothing unauthenticated is interpreted.
///
/// Several `Stripe-Signature` headers are read as one comma-joined list (HTTP list semantics).
#[derive(Debug, Clone)]
pub struct StripeWebhookVerifier {
    secret: Secret,
    tolerance: Duration,
    max_body_bytes: usize,
}

impl StripeWebhookVerifier {
    /// A verifier for the endpoint whose signing secret (`whsec_...`) is `signing_secret`, with the default
    /// tolerance ([`DEFAULT_TOLERANCE`]) and body limit ([`DEFAULT_MAX_BODY_BYTES`]).
    ///
    /// An empty secret is accepted here so that construction cannot fail, but every
    /// [`verify`](WebhookVerifier::verify) then answers `InvalidSecret`.
    pub fn new(signing_secret: Secret) -> StripeWebhookVerifier {
        StripeWebhookVerifier {
            secret: signing_secret,
            tolerance: DEFAULT_TOLERANCE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// Sets the largest accepted distance, in either direction, between the signed timestamp and `now`
    /// (whole seconds count; zero demands the same second).
    pub fn with_tolerance(mut self, tolerance: Duration) -> StripeWebhookVerifier {
        self.tolerance = tolerance;
        self
    }

    /// Sets the largest accepted body in bytes.
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> StripeWebhookVerifier {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// The configured tolerance.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// The configured body limit in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }

    /// Steps 1 to 6 of the verification order: everything but parsing the event.
    fn authenticate(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<(), WebhookError> {
        if self.secret.is_empty() {
            return Err(WebhookError::new(WebhookErrorKind::InvalidSecret, "the Stripe signing secret is empty"));
        }
        if request.body.len() > self.max_body_bytes {
            return Err(WebhookError::new(
                WebhookErrorKind::PayloadTooLarge,
                format!("body of {} bytes exceeds the limit of {} bytes", request.body.len(), self.max_body_bytes),
            ));
        }
        let values: Vec<&str> =
            request.header_values(SIGNATURE_HEADER).map(str::trim).filter(|v| !v.is_empty()).collect();
        if values.is_empty() {
            return Err(WebhookError::new(
                WebhookErrorKind::MissingSignature,
                format!("no `{SIGNATURE_HEADER}` header, or only empty ones"),
            ));
        }
        let joined = values.join(",");
        let header = SignatureHeader::parse(&joined)?;

        // The signed string uses `t` exactly as sent (`t=0153...` signs "0153..."), not a re-formatted number.
        let Some(expected) = tag(&self.secret, header.raw_timestamp, &request.body) else {
            return Err(WebhookError::new(
                WebhookErrorKind::InvalidSecret,
                "the Stripe signing secret cannot key HMAC-SHA256",
            ));
        };
        // Every candidate is compared (no early exit), so timing does not tell which entry matched.
        let mut matched = false;
        for candidate in &header.v1 {
            let mut decoded = [0u8; TAG_LEN];
            let ok = hex::decode_to_slice(candidate, &mut decoded).is_ok() && constant_time_eq(&decoded, &expected);
            matched |= ok;
        }
        if !matched {
            let message = if header.v1.is_empty() {
                format!("`{SIGNATURE_HEADER}` has no `v1` signature (other schemes do not count)")
            } else {
                format!("none of the {} `v1` signature(s) matches the body", header.v1.len())
            };
            return Err(WebhookError::new(WebhookErrorKind::NoValidSignature, message));
        }

        let age = i128::from(now.unix_timestamp()) - i128::from(header.timestamp);
        let tolerance = i128::from(self.tolerance.as_secs());
        if age.abs() > tolerance {
            let when = if age > 0 { format!("{age} s before now") } else { format!("{} s after now", -age) };
            return Err(WebhookError::new(
                WebhookErrorKind::TimestampOutsideTolerance,
                format!("signed timestamp {} is {when}; the tolerance is {tolerance} s", header.timestamp),
            ));
        }
        Ok(())
    }
}

impl WebhookVerifier for StripeWebhookVerifier {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn verify(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<Vec<WebhookEvent>, WebhookError> {
        self.authenticate(request, now)?;
        Ok(vec![mapping::parse_event(&request.body)?])
    }

    fn ack(&self) -> WebhookAck {
        WebhookAck::new(200, "application/json", &b"{\"received\":true}"[..])
    }
}

/// The parts of a `Stripe-Signature` header that verification uses.
#[derive(Debug)]
struct SignatureHeader<'a> {
    timestamp: i64,
    /// `t` exactly as it appears in the header (digits only): the text that was signed.
    raw_timestamp: &'a str,
    /// Every `v1` value, in header order, undecoded.
    v1: Vec<&'a str>,
}

impl<'a> SignatureHeader<'a> {
    fn parse(value: &'a str) -> Result<SignatureHeader<'a>, WebhookError> {
        let malformed = |message: String| WebhookError::new(WebhookErrorKind::MalformedSignatureHeader, message);
        let mut timestamp = None;
        let mut v1 = Vec::new();
        for (index, entry) in value.split(',').map(str::trim).enumerate() {
            let position = index + 1;
            let Some((key, val)) = entry.split_once('=') else {
                return Err(malformed(format!("entry {position} is not `key=value`")));
            };
            let (key, val) = (key.trim(), val.trim());
            match key {
                "" => return Err(malformed(format!("entry {position} has an empty key"))),
                "t" => {
                    if timestamp.is_some() {
                        return Err(malformed("more than one `t` entry".to_owned()));
                    }
                    let parsed = if !val.is_empty() && val.bytes().all(|b| b.is_ascii_digit()) {
                        val.parse::<i64>().ok()
                    } else {
                        None
                    };
                    let Some(t) = parsed else {
                        return Err(malformed("`t` is not a unix timestamp in whole seconds".to_owned()));
                    };
                    timestamp = Some((t, val));
                }
                SCHEME_V1 => v1.push(val),
                // `v0` and schemes Stripe may add later are not verified here.
                _ => {}
            }
        }
        let Some((timestamp, raw_timestamp)) = timestamp else {
            return Err(malformed("no `t` (timestamp) entry".to_owned()));
        };
        Ok(SignatureHeader { timestamp, raw_timestamp, v1 })
    }
}

/// The HMAC-SHA256 tag of `"{timestamp}.{body}"`, `timestamp` being the header's `t` text as sent; `None`
/// only if the key were refused, which HMAC never does (keys of any length are valid).
fn tag(secret: &Secret, timestamp: &str, body: &[u8]) -> Option<[u8; TAG_LEN]> {
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes()).ok()?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac.finalize().into_bytes().into())
}

/// A `Stripe-Signature` header value (`t=<timestamp>,v1=<hex>`) for `body`, as Stripe would send it.
///
/// For simulators and tests: a loopback Stripe signs its deliveries with this, and tests build valid
/// requests with it. Verification accepts the result when `timestamp` is within the tolerance of `now`.
///
/// ```
/// use commerce_ports::Secret;
///
/// let header = commerce_stripe::sign(&Secret::new("whsec_test"), 1_700_000_000, br#"{"id":"evt_1"}"#);
/// assert!(header.starts_with("t=1700000000,v1="));
/// ```
pub fn sign(secret: &Secret, timestamp: i64, body: &[u8]) -> String {
    match tag(secret, &timestamp.to_string(), body) {
        Some(tag) => format!("t={timestamp},{SCHEME_V1}={}", hex::encode(tag)),
        // Unreachable (HMAC accepts any key); a header without `v1` can never verify, so this fails safe.
        None => format!("t={timestamp}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_keeps_every_v1_in_order_and_ignores_other_schemes() {
        let header = SignatureHeader::parse("t=12, v1=aa ,v0=bb,v1=cc,v9=dd").ok();
        let header = header.as_ref().map(|h| (h.timestamp, h.v1.clone()));
        assert_eq!(header, Some((12, vec!["aa", "cc"])));
    }

    #[test]
    fn the_raw_timestamp_text_is_kept() {
        let header = SignatureHeader::parse("t=0012,v1=aa").ok();
        assert_eq!(header.map(|h| (h.timestamp, h.raw_timestamp)), Some((12, "0012")));
    }

    #[test]
    fn header_rejects_ambiguous_or_odd_timestamps() {
        for value in ["t=1,t=1,v1=aa", "t=-5,v1=aa", "t=+5,v1=aa", "t=,v1=aa", "t=99999999999999999999,v1=aa"] {
            let kind = SignatureHeader::parse(value).err().map(|e| e.kind);
            assert_eq!(kind, Some(WebhookErrorKind::MalformedSignatureHeader), "{value}");
        }
    }

    #[test]
    fn header_rejects_entries_without_key_or_equals_sign() {
        for value in ["t=1,v1", "t=1,=aa", "t=1,v1=aa,", "t=1,,v1=aa", "garbage"] {
            let kind = SignatureHeader::parse(value).err().map(|e| e.kind);
            assert_eq!(kind, Some(WebhookErrorKind::MalformedSignatureHeader), "{value}");
        }
    }

    #[test]
    fn a_value_may_contain_an_equals_sign() {
        let header = SignatureHeader::parse("t=1,v1=a=b").ok();
        assert_eq!(header.map(|h| h.v1), Some(vec!["a=b"]));
    }
}
