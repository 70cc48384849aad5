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
/// 7. the body is a Stripe event with string `id` and `type` (`MalformedPayload`), read by a typed parse
///    that borrows from the body and keeps only the fields the [`WebhookEvent`] needs.
///
/// [`authenticate`](WebhookVerifier::authenticate) runs steps 1 to 6 and allocates nothing when they pass;
/// [`verify`](WebhookVerifier::verify) runs all seven.
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
    /// HMAC-SHA256 already keyed with the secret (the key's inner and outer pads are hashed once, here, not
    /// on every delivery); cloned per delivery. `None` only if HMAC refused the key, which it never does.
    keyed: Option<KeyedMac>,
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
            keyed: HmacSha256::new_from_slice(signing_secret.expose().as_bytes()).ok().map(KeyedMac),
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

    /// Steps 1 to 6 of the verification order: everything but parsing the event. Allocates nothing on
    /// success: the header entries are walked in place (twice: once to validate them and find `t`, once to
    /// compare every `v1`), each `v1` is decoded into a stack array, and one HMAC (a copy of the pre-keyed
    /// one) is fed `t`, `.` and the body.
    fn check(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<(), WebhookError> {
        if self.secret.is_empty() {
            return Err(WebhookError::new(WebhookErrorKind::InvalidSecret, "the Stripe signing secret is empty"));
        }
        if request.body.len() > self.max_body_bytes {
            return Err(WebhookError::new(
                WebhookErrorKind::PayloadTooLarge,
                format!("body of {} bytes exceeds the limit of {} bytes", request.body.len(), self.max_body_bytes),
            ));
        }
        let header = SignatureHeader::parse(signature_entries(request))?;

        // The signed string uses `t` exactly as sent (`t=0153...` signs "0153..."), not a re-formatted number.
        let Some(KeyedMac(keyed)) = &self.keyed else {
            return Err(WebhookError::new(
                WebhookErrorKind::InvalidSecret,
                "the Stripe signing secret cannot key HMAC-SHA256",
            ));
        };
        let mut mac = keyed.clone();
        mac.update(header.raw_timestamp.as_bytes());
        mac.update(b".");
        mac.update(&request.body);
        let expected: [u8; TAG_LEN] = mac.finalize().into_bytes().into();
        // Every candidate is compared (no early exit), so timing does not tell which entry matched.
        let mut matched = false;
        for candidate in v1_values(signature_entries(request)) {
            let ok = decode_tag(candidate.as_bytes()).is_some_and(|decoded| constant_time_eq(&decoded, &expected));
            matched |= ok;
        }
        if !matched {
            let message = if header.v1_count == 0 {
                format!("`{SIGNATURE_HEADER}` has no `v1` signature (other schemes do not count)")
            } else {
                format!("none of the {} `v1` signature(s) matches the body", header.v1_count)
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

    /// Steps 1 to 7: [`authenticate`](WebhookVerifier::authenticate), then the typed event parse.
    fn verify(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<Vec<WebhookEvent>, WebhookError> {
        self.check(request, now)?;
        Ok(vec![event::parse(&request.body)?])
    }

    /// Steps 1 to 6: never `MalformedPayload`, since the body is not read as JSON.
    fn authenticate(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<(), WebhookError> {
        self.check(request, now)
    }

    fn ack(&self) -> WebhookAck {
        WebhookAck::new(200, "application/json", &b"{\"received\":true}"[..])
    }
}

/// The value of each byte as a hex digit (either case), or `INVALID_HEX`.
const HEX_VALUES: [u8; 256] = {
    let mut table = [INVALID_HEX; 256];
    let (mut index, mut byte) = (0usize, 0u8);
    loop {
        table[index] = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => INVALID_HEX,
        };
        if byte == u8::MAX {
            break table;
        }
        index += 1;
        byte += 1;
    }
};

/// Marks a byte that is not a hex digit in [`HEX_VALUES`] (any value with a high nibble works).
const INVALID_HEX: u8 = 0xF0;

/// A hex-encoded HMAC-SHA256 tag decoded into a stack array; `None` unless `hex` is exactly 64 hex digits.
/// Branch-free over the digits (a table lookup per digit); the candidate comes from the request, so this is
/// about speed, not secrecy.
fn decode_tag(hex: &[u8]) -> Option<[u8; TAG_LEN]> {
    if hex.len() != 2 * TAG_LEN {
        return None;
    }
    let mut tag = [0u8; TAG_LEN];
    let mut invalid = 0u8;
    for (byte, pair) in tag.iter_mut().zip(hex.chunks_exact(2)) {
        let (high, low) = (HEX_VALUES[usize::from(pair[0])], HEX_VALUES[usize::from(pair[1])]);
        invalid |= high | low;
        *byte = (high << 4) | low;
    }
    (invalid & INVALID_HEX == 0).then_some(tag)
}

/// An HMAC-SHA256 keyed with the signing secret. Its `Debug` shows nothing of the key.
#[derive(Clone)]
struct KeyedMac(HmacSha256);

impl std::fmt::Debug for KeyedMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedMac(HMAC-SHA256, key redacted)")
    }
}

/// The entries of every non-empty `Stripe-Signature` header, split at commas: the same entries as the
/// headers joined into one comma-separated list (HTTP list semantics), without building that list.
fn signature_entries(request: &WebhookRequest) -> impl Iterator<Item = &str> {
    request.header_values(SIGNATURE_HEADER).map(str::trim).filter(|v| !v.is_empty()).flat_map(|v| v.split(','))
}

/// The value of every `v1` entry, in order, trimmed. Only meaningful for entries that
/// [`SignatureHeader::parse`] accepted.
fn v1_values<'a>(entries: impl Iterator<Item = &'a str>) -> impl Iterator<Item = &'a str> {
    entries.filter_map(|entry| entry.split_once('=')).filter(|(key, _)| key.trim() == SCHEME_V1).map(|(_, v)| v.trim())
}

/// What verification needs from the `Stripe-Signature` entries, besides the `v1` values themselves
/// (walked again with [`v1_values`], so no list of them is built).
#[derive(Debug, PartialEq, Eq)]
struct SignatureHeader<'a> {
    timestamp: i64,
    /// `t` exactly as it appears in the header (digits only): the text that was signed.
    raw_timestamp: &'a str,
    /// How many `v1` entries there are.
    v1_count: usize,
}

impl<'a> SignatureHeader<'a> {
    /// Validates every entry (`key=value`, non-empty key, exactly one all-digit `t`) and finds `t`.
    /// `MissingSignature` when there is no entry at all.
    fn parse(entries: impl Iterator<Item = &'a str>) -> Result<SignatureHeader<'a>, WebhookError> {
        let malformed = |message: String| WebhookError::new(WebhookErrorKind::MalformedSignatureHeader, message);
        let mut timestamp = None;
        let mut v1_count = 0usize;
        let mut seen = 0usize;
        for entry in entries {
            seen += 1;
            let Some((key, val)) = entry.trim().split_once('=') else {
                return Err(malformed(format!("entry {seen} is not `key=value`")));
            };
            let (key, val) = (key.trim(), val.trim());
            match key {
                "" => return Err(malformed(format!("entry {seen} has an empty key"))),
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
                SCHEME_V1 => v1_count += 1,
                // `v0` and schemes Stripe may add later are not verified here.
                _ => {}
            }
        }
        if seen == 0 {
            return Err(WebhookError::new(
                WebhookErrorKind::MissingSignature,
                format!("no `{SIGNATURE_HEADER}` header, or only empty ones"),
            ));
        }
        let Some((timestamp, raw_timestamp)) = timestamp else {
            return Err(malformed("no `t` (timestamp) entry".to_owned()));
        };
        Ok(SignatureHeader { timestamp, raw_timestamp, v1_count })
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

/// The typed parse of a verified body into its [`WebhookEvent`].
///
/// One pass over the body that keeps only the fields the event needs, borrowing text from the body (a
/// string is copied only when it has escapes) and skipping everything else without building a
/// `serde_json::Value` tree. The result is exactly that of [`mapping::parse_event`], the general parser:
///
/// - fields are read with `Value`'s lenient meaning (a field of another JSON type than expected counts as
///   absent; for duplicate keys the last one wins);
/// - skipped values are still fully checked (string escapes and UTF-8, number ranges, the nesting limit),
///   as `Value` does; `serde::de::IgnoredAny` is not used because it skips strings without checking them,
///   and would accept bodies `Value` refuses;
/// - a body this pass cannot turn into an event (not JSON, not an object, no `id` or `type`) goes to
///   [`mapping::parse_event`], which words the `MalformedPayload` error.
///
/// [`mapping::parse_event`]: crate::mapping::parse_event
mod event {
    use std::borrow::Cow;
    use std::fmt;
    use std::marker::PhantomData;

    use commerce_ports::webhook::{PaymentEventKind, WebhookError, WebhookEvent};
    use commerce_ports::{Currency, Money};
    use serde::Deserialize;
    use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
    use time::OffsetDateTime;

    use super::PROVIDER;
    use crate::mapping;

    /// Parses a verified body into its event.
    pub(super) fn parse(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
        match typed(body) {
            Some(event) => Ok(event),
            None => mapping::parse_event(body),
        }
    }

    /// The typed pass alone: `None` for a body that is not an event.
    pub(super) fn typed(body: &[u8]) -> Option<WebhookEvent> {
        let ObjectOr(fields) = serde_json::from_slice::<ObjectOr<EventFields<'_>>>(body).ok()?;
        fields?.into_event()
    }

    /// The meaning of the scalar visitor methods for visitors that keep only objects or only some scalars.
    macro_rules! other_scalars {
        ($value:expr) => {
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok($value)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok($value)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok($value)
            }
        };
    }

    /// Any JSON value, checked and dropped.
    struct Skip;

    impl<'de> Deserialize<'de> for Skip {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Skip, D::Error> {
            deserializer.deserialize_any(SkipVisitor)
        }
    }

    struct SkipVisitor;

    impl<'de> Visitor<'de> for SkipVisitor {
        type Value = Skip;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        other_scalars!(Skip);
        fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
            Ok(Skip)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
            Ok(Skip)
        }
        fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
            Ok(Skip)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
            while seq.next_element::<Skip>()?.is_some() {}
            Ok(Skip)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
            while map.next_entry::<Skip, Skip>()?.is_some() {}
            Ok(Skip)
        }
    }

    /// A JSON value of which only integers (in `i64`) and strings are kept, as `Value::as_i64` and
    /// `Value::as_str` see it; anything else is [`Scalar::Other`], which is also the meaning of "absent".
    #[derive(Debug, Default)]
    enum Scalar<'a> {
        Int(i64),
        Text(Cow<'a, str>),
        #[default]
        Other,
    }

    impl<'a> Scalar<'a> {
        fn as_i64(&self) -> Option<i64> {
            match self {
                Scalar::Int(n) => Some(*n),
                _ => None,
            }
        }

        fn as_str(&self) -> Option<&str> {
            match self {
                Scalar::Text(text) => Some(text),
                _ => None,
            }
        }

        /// The text when it is not empty.
        fn non_empty(&self) -> Option<&str> {
            self.as_str().filter(|s| !s.is_empty())
        }
    }

    impl<'de> Deserialize<'de> for Scalar<'de> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalar<'de>, D::Error> {
            ScalarSeed { id_of_object: false }.deserialize(deserializer)
        }
    }

    /// Reads a [`Scalar`]; with `id_of_object`, an object stands for its `id` field (an expanded reference,
    /// as `payment_intent` may be).
    #[derive(Clone, Copy)]
    struct ScalarSeed {
        id_of_object: bool,
    }

    impl<'de> DeserializeSeed<'de> for ScalarSeed {
        type Value = Scalar<'de>;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Scalar<'de>, D::Error> {
            deserializer.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for ScalarSeed {
        type Value = Scalar<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        other_scalars!(Scalar::Other);
        fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
            Ok(Scalar::Int(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
            Ok(i64::try_from(v).map_or(Scalar::Other, Scalar::Int))
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
            Ok(Scalar::Text(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
            Ok(Scalar::Text(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
            Ok(Scalar::Text(Cow::Owned(v)))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'de>, A::Error> {
            SkipVisitor.visit_seq(seq).map(|_| Scalar::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'de>, A::Error> {
            if self.id_of_object {
                Ok(ObjectVisitor::<IdFields<'de>>(PhantomData).visit_map(map)?.map(|f| f.id).unwrap_or_default())
            } else {
                SkipVisitor.visit_map(map).map(|_| Scalar::Other)
            }
        }
    }

    /// A JSON object read field by field: the fields named in [`NAMES`](Fields::NAMES) are read, every
    /// other value is skipped, and a repeated field keeps its last value.
    trait Fields<'de>: Default {
        const NAMES: &'static [&'static str];

        /// Reads the value of field `NAMES[index]`.
        fn read<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error>;
    }

    /// `Some` for a JSON object, read as `T`; `None` for any other value (still checked).
    struct ObjectOr<T>(Option<T>);

    impl<'de, T: Fields<'de>> Deserialize<'de> for ObjectOr<T> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ObjectOr<T>, D::Error> {
            deserializer.deserialize_any(ObjectVisitor::<T>(PhantomData)).map(ObjectOr)
        }
    }

    struct ObjectVisitor<T>(PhantomData<T>);

    impl<'de, T: Fields<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        other_scalars!(None);
        fn visit_i64<E>(self, _: i64) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_str<E>(self, _: &str) -> Result<Option<T>, E> {
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<T>, A::Error> {
            SkipVisitor.visit_seq(seq).map(|_| None)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
            let mut fields = T::default();
            while let Some(name) = map.next_key_seed(FieldName(T::NAMES))? {
                match name {
                    Some(index) => fields.read(index, &mut map)?,
                    None => {
                        map.next_value::<Skip>()?;
                    }
                }
            }
            Ok(Some(fields))
        }
    }

    /// A key, as its index in a list of field names (`None` for other keys); nothing is copied.
    #[derive(Clone, Copy)]
    struct FieldName(&'static [&'static str]);

    impl<'de> DeserializeSeed<'de> for FieldName {
        type Value = Option<usize>;

        fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<usize>, D::Error> {
            deserializer.deserialize_str(self)
        }
    }

    impl<'de> Visitor<'de> for FieldName {
        type Value = Option<usize>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object key")
        }
        fn visit_str<E>(self, v: &str) -> Result<Option<usize>, E> {
            Ok(self.0.iter().position(|name| *name == v))
        }
    }

    /// The top level of an event.
    #[derive(Default)]
    struct EventFields<'a> {
        id: Scalar<'a>,
        event_type: Scalar<'a>,
        created: Scalar<'a>,
        object: Option<ObjectFields<'a>>,
    }

    impl<'de> Fields<'de> for EventFields<'de> {
        const NAMES: &'static [&'static str] = &["id", "type", "created", "data"];

        fn read<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
            match index {
                0 => self.id = map.next_value()?,
                1 => self.event_type = map.next_value()?,
                2 => self.created = map.next_value()?,
                _ => self.object = map.next_value::<ObjectOr<DataFields<'de>>>()?.0.and_then(|data| data.object),
            }
            Ok(())
        }
    }

    /// `data`: only its `object`.
    #[derive(Default)]
    struct DataFields<'a> {
        object: Option<ObjectFields<'a>>,
    }

    impl<'de> Fields<'de> for DataFields<'de> {
        const NAMES: &'static [&'static str] = &["object"];

        fn read<A: MapAccess<'de>>(&mut self, _index: usize, map: &mut A) -> Result<(), A::Error> {
            self.object = map.next_value::<ObjectOr<ObjectFields<'de>>>()?.0;
            Ok(())
        }
    }

    /// `data.object`: a payment intent, charge, refund or anything else. The amount fields are `None` when
    /// absent and `Some` (of whatever they hold) when present, since a present one is never replaced by
    /// `amount`.
    #[derive(Default)]
    struct ObjectFields<'a> {
        object: Scalar<'a>,
        id: Scalar<'a>,
        payment_intent: Scalar<'a>,
        status: Scalar<'a>,
        currency: Scalar<'a>,
        amount: Option<Scalar<'a>>,
        amount_capturable: Option<Scalar<'a>>,
        amount_received: Option<Scalar<'a>>,
        amount_refunded: Option<Scalar<'a>>,
        reference: Scalar<'a>,
    }

    impl<'de> Fields<'de> for ObjectFields<'de> {
        const NAMES: &'static [&'static str] = &[
            "object",
            "id",
            "payment_intent",
            "status",
            "currency",
            "amount",
            "amount_capturable",
            "amount_received",
            "amount_refunded",
            "metadata",
        ];

        fn read<A: MapAccess<'de>>(&mut self, index: usize, map: &mut A) -> Result<(), A::Error> {
            match index {
                0 => self.object = map.next_value()?,
                1 => self.id = map.next_value()?,
                2 => self.payment_intent = map.next_value_seed(ScalarSeed { id_of_object: true })?,
                3 => self.status = map.next_value()?,
                4 => self.currency = map.next_value()?,
                5 => self.amount = Some(map.next_value()?),
                6 => self.amount_capturable = Some(map.next_value()?),
                7 => self.amount_received = Some(map.next_value()?),
                8 => self.amount_refunded = Some(map.next_value()?),
                _ => {
                    let metadata = map.next_value::<ObjectOr<ReferenceFields<'de>>>()?.0;
                    self.reference = metadata.map(|m| m.reference).unwrap_or_default();
                }
            }
            Ok(())
        }
    }

    /// `metadata`: only `reference`.
    #[derive(Default)]
    struct ReferenceFields<'a> {
        reference: Scalar<'a>,
    }

    impl<'de> Fields<'de> for ReferenceFields<'de> {
        const NAMES: &'static [&'static str] = &["reference"];

        fn read<A: MapAccess<'de>>(&mut self, _index: usize, map: &mut A) -> Result<(), A::Error> {
            self.reference = map.next_value()?;
            Ok(())
        }
    }

    /// An expanded object standing for its id: only `id`.
    #[derive(Default)]
    struct IdFields<'a> {
        id: Scalar<'a>,
    }

    impl<'de> Fields<'de> for IdFields<'de> {
        const NAMES: &'static [&'static str] = &["id"];

        fn read<A: MapAccess<'de>>(&mut self, _index: usize, map: &mut A) -> Result<(), A::Error> {
            self.id = map.next_value()?;
            Ok(())
        }
    }

    impl EventFields<'_> {
        /// The event; `None` without a non-empty string `id` and `type`.
        fn into_event(self) -> Option<WebhookEvent> {
            let id = self.id.non_empty()?;
            let event_type = self.event_type.non_empty()?;
            let object = self.object.as_ref();
            let kind = kind(event_type, object);
            let mut event = WebhookEvent::new(PROVIDER, id, event_type, kind.clone());
            event.success = !matches!(
                kind,
                PaymentEventKind::AuthorizationFailed
                    | PaymentEventKind::CaptureFailed
                    | PaymentEventKind::RefundFailed
            );
            event.occurred_at = self.created.as_i64().and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
            if let Some(object) = object {
                event.provider_reference = object.provider_reference().map(str::to_owned);
                event.amount = object.amount_for(event_type);
                event.merchant_reference = object.reference.non_empty().map(str::to_owned);
            }
            Some(event)
        }
    }

    /// The port meaning of an event type (as in [`mapping`]): `refund.created` counts as a refund only when
    /// the refund already succeeded.
    fn kind(event_type: &str, object: Option<&ObjectFields<'_>>) -> PaymentEventKind {
        match event_type {
            "payment_intent.amount_capturable_updated" => PaymentEventKind::Authorized,
            "payment_intent.succeeded" => PaymentEventKind::Captured,
            "payment_intent.payment_failed" => PaymentEventKind::AuthorizationFailed,
            "payment_intent.canceled" => PaymentEventKind::Voided,
            "charge.refunded" => PaymentEventKind::Refunded,
            "refund.created" if object.and_then(|o| o.status.as_str()) == Some("succeeded") => {
                PaymentEventKind::Refunded
            }
            "refund.failed" => PaymentEventKind::RefundFailed,
            _ => PaymentEventKind::Other,
        }
    }

    impl ObjectFields<'_> {
        /// The PaymentIntent id: the object's own id for a payment intent, its `payment_intent` for a
        /// charge or a refund.
        fn provider_reference(&self) -> Option<&str> {
            match self.object.as_str()? {
                "payment_intent" => self.id.non_empty(),
                "charge" | "refund" => self.payment_intent.non_empty(),
                _ => None,
            }
        }

        /// The amount the event is about (see [`mapping`] for which field each event type uses).
        fn amount_for(&self, event_type: &str) -> Option<Money> {
            let specific = match (self.object.as_str()?, event_type) {
                ("payment_intent", "payment_intent.amount_capturable_updated") => &self.amount_capturable,
                ("payment_intent", "payment_intent.succeeded") => &self.amount_received,
                ("charge", "charge.refunded") => &self.amount_refunded,
                ("payment_intent" | "charge" | "refund", _) => &self.amount,
                _ => return None,
            };
            let minor = specific.as_ref().or(self.amount.as_ref()).and_then(Scalar::as_i64)?;
            let code = self.currency.as_str()?;
            let currency = match code.as_bytes() {
                &[a, b, c] => {
                    let upper = [a.to_ascii_uppercase(), b.to_ascii_uppercase(), c.to_ascii_uppercase()];
                    Currency::from_code(std::str::from_utf8(&upper).ok()?).ok()?
                }
                _ => Currency::from_code(&code.to_ascii_uppercase()).ok()?,
            };
            Some(Money::from_minor(minor, currency))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: &str) -> Result<SignatureHeader<'_>, WebhookError> {
        SignatureHeader::parse(value.split(','))
    }

    #[test]
    fn header_counts_every_v1_and_the_values_come_in_order_without_other_schemes() {
        let value = "t=12, v1=aa ,v0=bb,v1=cc,v9=dd";
        assert_eq!(parse(value).ok(), Some(SignatureHeader { timestamp: 12, raw_timestamp: "12", v1_count: 2 }));
        assert_eq!(v1_values(value.split(',')).collect::<Vec<_>>(), ["aa", "cc"]);
    }

    #[test]
    fn the_raw_timestamp_text_is_kept() {
        assert_eq!(parse("t=0012,v1=aa").ok().map(|h| (h.timestamp, h.raw_timestamp)), Some((12, "0012")));
    }

    #[test]
    fn header_rejects_ambiguous_or_odd_timestamps() {
        for value in ["t=1,t=1,v1=aa", "t=-5,v1=aa", "t=+5,v1=aa", "t=,v1=aa", "t=99999999999999999999,v1=aa", "v1=aa"]
        {
            let kind = parse(value).err().map(|e| e.kind);
            assert_eq!(kind, Some(WebhookErrorKind::MalformedSignatureHeader), "{value}");
        }
    }

    #[test]
    fn header_rejects_entries_without_key_or_equals_sign() {
        for value in ["t=1,v1", "t=1,=aa", "t=1,v1=aa,", "t=1,,v1=aa", "garbage"] {
            let kind = parse(value).err().map(|e| e.kind);
            assert_eq!(kind, Some(WebhookErrorKind::MalformedSignatureHeader), "{value}");
        }
    }

    #[test]
    fn no_entry_at_all_is_a_missing_signature() {
        let kind = SignatureHeader::parse(std::iter::empty()).err().map(|e| e.kind);
        assert_eq!(kind, Some(WebhookErrorKind::MissingSignature));
    }

    #[test]
    fn tags_decode_from_64_hex_digits_of_either_case_only() {
        let tag: Vec<u8> = (0u8..32).map(|i| i.wrapping_mul(37)).collect();
        let lower = hex::encode(&tag);
        assert_eq!(decode_tag(lower.as_bytes()).map(Vec::from), Some(tag.clone()));
        assert_eq!(decode_tag(lower.to_ascii_uppercase().as_bytes()).map(Vec::from), Some(tag));
        for bad in
            [&lower[..62], &format!("{lower}00"), &format!("g{}", &lower[1..]), &format!("{} ", &lower[..63]), ""]
        {
            assert_eq!(decode_tag(bad.as_bytes()), None, "{bad}");
        }
        // Every byte that is not a hex digit is refused in either position of a pair.
        for b in 0u8..=255 {
            let mut text = lower.clone().into_bytes();
            text[0] = b;
            text[41] = b;
            assert_eq!(decode_tag(&text).is_some(), b.is_ascii_hexdigit(), "byte {b}");
        }
    }

    #[test]
    fn a_value_may_contain_an_equals_sign() {
        assert_eq!(v1_values("t=1,v1=a=b".split(',')).collect::<Vec<_>>(), ["a=b"]);
        assert_eq!(parse("t=1,v1=a=b").ok().map(|h| h.v1_count), Some(1));
    }

    #[test]
    fn several_headers_read_as_one_list_and_empty_ones_are_ignored() {
        let request = WebhookRequest::new(
            vec![
                ("stripe-signature".to_owned(), "  ".to_owned()),
                ("Stripe-Signature".to_owned(), "t=5, v1=aa".to_owned()),
                ("X-Other".to_owned(), "v1=zz".to_owned()),
                ("STRIPE-SIGNATURE".to_owned(), "v1=bb".to_owned()),
            ],
            Vec::new(),
        );
        assert_eq!(signature_entries(&request).collect::<Vec<_>>(), ["t=5", " v1=aa", "v1=bb"]);
        assert_eq!(v1_values(signature_entries(&request)).collect::<Vec<_>>(), ["aa", "bb"]);
    }

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn signed(secret: &Secret, t: i64, body: &[u8]) -> WebhookRequest {
        WebhookRequest::new(vec![(SIGNATURE_HEADER.to_owned(), sign(secret, t, body))], body.to_vec())
    }

    #[test]
    fn authenticate_is_verify_without_the_parse() {
        let secret = Secret::new("whsec_unit");
        let verifier = StripeWebhookVerifier::new(secret.clone()).with_max_body_bytes(64);
        let event = br#"{"id":"evt_1","type":"payment_intent.canceled"}"#;
        let not_json = b"this is signed but not an event";
        let cases = [
            (signed(&secret, 100, event), 100, None, None),
            (signed(&secret, 100, not_json), 100, None, Some(WebhookErrorKind::MalformedPayload)),
            (signed(&secret, 100, event), 401, Some(WebhookErrorKind::TimestampOutsideTolerance), None),
            (signed(&Secret::new("whsec_other"), 100, event), 100, Some(WebhookErrorKind::NoValidSignature), None),
            (WebhookRequest::new(Vec::new(), event.to_vec()), 100, Some(WebhookErrorKind::MissingSignature), None),
            (signed(&secret, 100, &[b' '; 65]), 100, Some(WebhookErrorKind::PayloadTooLarge), None),
        ];
        for (request, now, auth_error, parse_error) in cases {
            let authenticated = verifier.authenticate(&request, at(now));
            let verified = verifier.verify(&request, at(now));
            assert_eq!(authenticated.clone().err().map(|e| e.kind), auth_error, "{request:?}");
            match authenticated {
                Err(e) => assert_eq!(verified.err(), Some(e), "verify fails with the same error"),
                Ok(()) => assert_eq!(verified.err().map(|e| e.kind), parse_error, "{request:?}"),
            }
        }
        let empty = StripeWebhookVerifier::new(Secret::new(""));
        let kind = empty.authenticate(&signed(&Secret::new(""), 100, event), at(100)).err().map(|e| e.kind);
        assert_eq!(kind, Some(WebhookErrorKind::InvalidSecret));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let verifier = StripeWebhookVerifier::new(Secret::new("whsec_do_not_print_me"));
        let debug = format!("{verifier:?}");
        assert!(!debug.contains("do_not_print_me"), "{debug}");
    }

    /// Bodies on which the typed parse must give exactly what the general (`Value`) parser gives.
    fn differential_bodies() -> Vec<String> {
        let mut bodies: Vec<String> = [
            // The shapes Stripe sends.
            r#"{"id":"evt_1","object":"event","type":"payment_intent.amount_capturable_updated","created":1700000000,"livemode":false,"data":{"object":{"id":"pi_1","object":"payment_intent","amount":1000,"amount_capturable":1000,"amount_received":0,"currency":"eur","metadata":{"reference":"order-1"}}}}"#,
            r#"{"id":"evt_2","type":"payment_intent.succeeded","created":1,"data":{"object":{"id":"pi_1","object":"payment_intent","amount":1000,"amount_received":600,"currency":"jpy"}}}"#,
            r#"{"id":"evt_3","type":"payment_intent.payment_failed","data":{"object":{"id":"pi_1","object":"payment_intent","amount":5,"currency":"EUR","last_payment_error":{"code":"card_declined"}}}}"#,
            r#"{"id":"evt_4","type":"payment_intent.canceled","data":{"object":{"id":"pi_1","object":"payment_intent","amount":5,"currency":"usd","metadata":{}}}}"#,
            r#"{"id":"evt_5","type":"charge.refunded","data":{"object":{"id":"ch_1","object":"charge","amount":900,"amount_refunded":300,"currency":"eur","payment_intent":"pi_9"}}}"#,
            r#"{"id":"evt_6","type":"refund.created","data":{"object":{"id":"re_1","object":"refund","amount":300,"currency":"eur","status":"succeeded","payment_intent":{"id":"pi_8","object":"payment_intent"}}}}"#,
            r#"{"id":"evt_7","type":"refund.created","data":{"object":{"id":"re_1","object":"refund","amount":300,"currency":"eur","status":"pending","payment_intent":"pi_8"}}}"#,
            r#"{"id":"evt_8","type":"refund.failed","data":{"object":{"object":"refund","amount":3,"currency":"eur","payment_intent":null}}}"#,
            r#"{"id":"evt_9","type":"customer.created","data":{"object":{"id":"cus_1","object":"customer"}}}"#,
            // Lenient field types, absent and null fields, duplicates (the last wins), escapes.
            r#"{"id":"evt_a","type":"payment_intent.succeeded","created":"yesterday","data":{"object":{"id":"pi_1","object":"payment_intent","amount":700,"currency":"eur"}}}"#,
            r#"{"id":"evt_b","type":"payment_intent.succeeded","created":-5,"data":{"object":{"id":"pi_1","object":"payment_intent","amount":700,"amount_received":null,"currency":"eur"}}}"#,
            r#"{"id":"evt_c","type":"payment_intent.succeeded","created":1.5,"data":{"object":{"id":"pi_1","object":"payment_intent","amount":700,"amount_received":7.5,"currency":"eur"}}}"#,
            r#"{"id":"evt_d","type":"charge.refunded","data":{"object":{"object":"charge","amount":18446744073709551615,"currency":"eur","payment_intent":7}}}"#,
            r#"{"id":"evt_e","id":"evt_e2","type":"x","type":"payment_intent.canceled","data":{"object":{"object":"payment_intent","id":"pi_1"}},"data":[1]}"#,
            r#"{"id":"evt_f","type":"payment_intent.canceled","data":{"object":{"object":"payment_intent","id":"pi_1"},"object":"text"}}"#,
            r#"{"id":"ev\u0074_g\n","type":"payment_intent.succ\u0065eded","data":{"obj\u0065ct":{"object":"payment_intent","id":"pi_\"1","amount":1,"currency":"e\u0075r","metadata":{"reference":"a\/b"}}}}"#,
            r#"{"id":"evt_h","type":"payment_intent.succeeded","data":{"object":{"object":"payment_intent","id":"","amount":1,"currency":"xyz","metadata":{"reference":""}}}}"#,
            r#"{"id":"evt_i","type":"payment_intent.succeeded","data":{"object":{"object":"payment_intent","id":"pi_1","amount":1,"currency":"euro","metadata":"reference"}}}"#,
            r#"{"id":"evt_j","type":"payment_intent.succeeded","data":"none"}"#,
            r#"{"id":"evt_k","type":"payment_intent.succeeded"}"#,
            r#"  {"type":"payment_intent.succeeded","id":"evt_l","extra":[{"a":[true,false,null,-0,1e3]}],"data":{"object":{"object":"refund","payment_intent":{"id":5}}}}  "#,
            r#"{"id":"evt_m","type":"payment_intent.succeeded","data":{"object":{"object":"payment_intent","id":"pi_1","amount":1,"currency":"eur","metadata":{"reference":"r","reference":null}}}}"#,
            r#"{"id":"evt_n","type":"payment_intent.amount_capturable_updated","data":{"object":{"object":"payment_intent","id":"pi_1","amount_capturable":"5","amount":9,"currency":"eur"}}}"#,
            // Not events: the general parser words the error.
            r#"{"id":"","type":"payment_intent.succeeded"}"#,
            r#"{"id":"evt_1","type":7}"#,
            r#"{"type":"payment_intent.succeeded"}"#,
            r#"["evt_1","payment_intent.succeeded"]"#,
            r#""evt_1""#,
            r#"{"id":"evt_1","type":"x"} trailing"#,
            r#"{"id":"evt_1","type":"x","#,
            r#"{"id":"evt_1","type":"x","note":"\ud800"}"#,
            r#"{"id":"evt_1","type":"x","note":"\q"}"#,
            r#"{"id":"evt_1","type":"x","big":1e400}"#,
            r#"{"id":"evt_1","type":"x","n":01}"#,
            "",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        // Nesting at and beyond serde_json's limit, inside a skipped field.
        for depth in [100, 127, 128, 200] {
            bodies.push(format!(r#"{{"id":"evt_1","type":"x","deep":{}{}}}"#, "[".repeat(depth), "]".repeat(depth)));
        }
        bodies
    }

    #[test]
    fn the_typed_parse_agrees_with_the_general_parser() {
        for body in differential_bodies() {
            let typed = event::parse(body.as_bytes());
            let general = crate::mapping::parse_event(body.as_bytes());
            assert_eq!(typed, general, "{body}");
            // Events come from the typed pass itself, not from the general parser behind it.
            assert_eq!(event::typed(body.as_bytes()), general.ok(), "{body}");
        }
    }

    #[test]
    fn the_typed_parse_rejects_bodies_the_general_parser_rejects_even_in_skipped_parts() {
        let mut invalid_utf8 = br#"{"id":"evt_1","type":"x","note":"#.to_vec();
        invalid_utf8.extend_from_slice(&[b'"', 0xff, 0xfe, b'"', b'}']);
        for body in [
            invalid_utf8,
            br#"{"id":"evt_1","type":"x","note":"\ud800"}"#.to_vec(),
            br#"{"id":"evt_1","type":"x","big":1e400}"#.to_vec(),
            format!(r#"{{"id":"evt_1","type":"x","deep":{}{}}}"#, "[".repeat(200), "]".repeat(200)).into_bytes(),
        ] {
            let kind = event::parse(&body).err().map(|e| e.kind);
            assert_eq!(kind, Some(WebhookErrorKind::MalformedPayload), "{}", String::from_utf8_lossy(&body));
        }
    }

    #[test]
    fn the_typed_parse_reads_what_the_event_needs() {
        let body = br#"{"id":"evt_5","type":"charge.refunded","created":1700000000,"data":{"object":{"id":"ch_1","object":"charge","amount":900,"amount_refunded":300,"currency":"eur","payment_intent":"pi_9","metadata":{"reference":"order-9"}}}}"#;
        let event = event::parse(body).ok();
        let summary = event.as_ref().map(|e| {
            (
                e.event_id.as_str(),
                e.kind.clone(),
                e.provider_reference.as_deref(),
                e.merchant_reference.as_deref(),
                e.amount,
                e.occurred_at.map(OffsetDateTime::unix_timestamp),
            )
        });
        assert_eq!(
            summary,
            Some((
                "evt_5",
                commerce_ports::webhook::PaymentEventKind::Refunded,
                Some("pi_9"),
                Some("order-9"),
                Some(commerce_ports::Money::from_minor(300, commerce_ports::Currency::EUR)),
                Some(1_700_000_000)
            ))
        );
    }
}
