//! The webhook port: verify a provider's signature and parse its events.
//!
//! Verification is synchronous CPU work, so this port is a plain trait.

use std::fmt::{self, Debug};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::forward::forward_port;
use crate::money::Money;

/// An incoming webhook request as any HTTP server sees it.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookRequest {
    /// Header names and values in arrival order (names compared case-insensitively).
    pub headers: Vec<(String, String)>,
    /// The raw body, byte for byte as received (signatures cover these exact bytes).
    pub body: Vec<u8>,
}

impl WebhookRequest {
    /// A request.
    pub fn new(headers: Vec<(String, String)>, body: impl Into<Vec<u8>>) -> WebhookRequest {
        WebhookRequest { headers, body: body.into() }
    }

    /// Every value of a header, case-insensitively.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl Debug for WebhookRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Signature headers are not secret, but bodies may hold personal data: print sizes, not content.
        f.debug_struct("WebhookRequest")
            .field("headers", &self.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Why a webhook was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WebhookErrorKind {
    /// The signature header (or field) is missing or empty.
    MissingSignature,
    /// The signature header cannot be parsed.
    MalformedSignatureHeader,
    /// No signature matches.
    NoValidSignature,
    /// The signed timestamp is outside the tolerance.
    TimestampOutsideTolerance,
    /// The configured secret is unusable (e.g. an HMAC key that is not hex).
    InvalidSecret,
    /// The body is not the provider's event format.
    MalformedPayload,
    /// The body is larger than allowed.
    PayloadTooLarge,
}

impl WebhookErrorKind {
    /// The stable snake_case name (`missing_signature`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookErrorKind::MissingSignature => "missing_signature",
            WebhookErrorKind::MalformedSignatureHeader => "malformed_signature_header",
            WebhookErrorKind::NoValidSignature => "no_valid_signature",
            WebhookErrorKind::TimestampOutsideTolerance => "timestamp_outside_tolerance",
            WebhookErrorKind::InvalidSecret => "invalid_secret",
            WebhookErrorKind::MalformedPayload => "malformed_payload",
            WebhookErrorKind::PayloadTooLarge => "payload_too_large",
        }
    }
}

/// A rejected webhook. The message names what was wrong but never contains the secret or a computed
/// signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("webhook rejected ({}): {message}", kind.as_str())]
pub struct WebhookError {
    /// Why.
    pub kind: WebhookErrorKind,
    /// Details.
    pub message: String,
}

impl WebhookError {
    /// An error.
    pub fn new(kind: WebhookErrorKind, message: impl Into<String>) -> WebhookError {
        WebhookError { kind, message: message.into() }
    }
}

/// What a webhook event means for a payment, in port vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PaymentEventKind {
    /// Authorized.
    Authorized,
    /// Authorization refused or failed.
    AuthorizationFailed,
    /// Captured (amount in the event).
    Captured,
    /// A capture failed.
    CaptureFailed,
    /// Refunded (amount in the event).
    Refunded,
    /// A refund failed.
    RefundFailed,
    /// Voided / canceled.
    Voided,
    /// The provider canceled the authorization if nothing was captured, or refunded what was captured
    /// (Adyen `CANCEL_OR_REFUND`). Which of the two happened is for the receiver to decide from its own
    /// state: the provider's statement of it (Adyen `additionalData["modification.action"]`) is not covered
    /// by the signature, so it is not carried here, and neither is it to be trusted. The event's amount may
    /// be the original payment's rather than what was captured.
    CanceledOrRefunded,
    /// Anything else; the raw type is in [`WebhookEvent::event_type`].
    Other,
}

/// One verified event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookEvent {
    /// The provider's name (`stripe`, `adyen`).
    pub provider: String,
    /// A provider-unique event id, the deduplication key.
    pub event_id: String,
    /// The provider's event type (`payment_intent.succeeded`, `CAPTURE`).
    pub event_type: String,
    /// The meaning for a payment.
    pub kind: PaymentEventKind,
    /// The payment's provider reference, if the event concerns one.
    pub provider_reference: Option<String>,
    /// The merchant's reference of the payment ([`PaymentIntent::reference`](crate::stores::PaymentIntent::reference)),
    /// if the event carries one (Stripe `metadata[reference]`, Adyen `merchantReference`). Lets an event be
    /// matched to an intent whose provider reference is not known yet (an authorization with an unknown
    /// outcome).
    #[serde(default)]
    pub merchant_reference: Option<String>,
    /// The amount, if the event carries one.
    pub amount: Option<Money>,
    /// Whether the provider reports success (Adyen `success`).
    pub success: bool,
    /// When the provider says it happened.
    #[serde(with = "time::serde::rfc3339::option")]
    pub occurred_at: Option<OffsetDateTime>,
}

impl WebhookEvent {
    /// An event.
    pub fn new(
        provider: impl Into<String>,
        event_id: impl Into<String>,
        event_type: impl Into<String>,
        kind: PaymentEventKind,
    ) -> WebhookEvent {
        WebhookEvent {
            provider: provider.into(),
            event_id: event_id.into(),
            event_type: event_type.into(),
            kind,
            provider_reference: None,
            merchant_reference: None,
            amount: None,
            success: true,
            occurred_at: None,
        }
    }
}

impl WebhookEvent {
    /// Sets the provider reference.
    pub fn with_provider_reference(mut self, reference: impl Into<String>) -> WebhookEvent {
        self.provider_reference = Some(reference.into());
        self
    }

    /// Sets the merchant reference.
    pub fn with_merchant_reference(mut self, reference: impl Into<String>) -> WebhookEvent {
        self.merchant_reference = Some(reference.into());
        self
    }

    /// Sets the amount.
    pub fn with_amount(mut self, amount: Money) -> WebhookEvent {
        self.amount = Some(amount);
        self
    }
}

/// The response a provider expects once events are durably recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebhookAck {
    /// HTTP status.
    pub status: u16,
    /// Content type of `body`.
    pub content_type: &'static str,
    /// Body (Adyen expects `[accepted]`).
    pub body: Vec<u8>,
}

impl WebhookAck {
    /// An acknowledgement.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> WebhookAck {
        WebhookAck { status, content_type, body: body.into() }
    }
}

/// Verifies and parses a provider's webhooks.
///
/// # Contract
/// - `verify` checks the signature over the exact signed bytes with a constant-time comparison before it
///   interprets or returns anything (a provider whose signatures sit inside the body, like Adyen's, reads
///   the JSON only to find them); every distinct failure has its own [`WebhookErrorKind`].
/// - [`authenticate`](WebhookVerifier::authenticate) is `verify` without building the events: the same
///   checks in the same order with the same errors. `verify` fails whenever `authenticate` does, with the
///   same error; when `authenticate` passes, `verify` can still fail, but only with `MalformedPayload`.
/// - `now` is passed in (tests pin it); timestamps outside the tolerance are rejected.
/// - A batch (Adyen) is accepted only when every item verifies; one bad item rejects the batch.
/// - Bodies over the verifier's size limit are rejected with `PayloadTooLarge` before hashing.
/// - Acknowledge ([`ack`](WebhookVerifier::ack)) only after the events are durably recorded.
#[cfg_attr(feature = "mock", mockall::automock)]
pub trait WebhookVerifier: Send + Sync + Debug + 'static {
    /// The provider's name, as in [`WebhookEvent::provider`].
    fn provider(&self) -> &'static str;

    /// Verifies the signature(s) and parses the events.
    ///
    /// # Errors
    /// A [`WebhookError`] whose kind says exactly what was wrong.
    fn verify(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<Vec<WebhookEvent>, WebhookError>;

    /// Only authenticates: the size limit, the signature(s) and the timestamp tolerance, without building
    /// events (for a caller that needs to know a delivery is the provider's before queueing it, and for
    /// measuring the cost of authentication alone).
    ///
    /// A provider whose signatures sit inside the body (Adyen) reads the JSON to find them, so it can also
    /// answer `MalformedPayload` here; one whose signature covers the raw bytes (Stripe) never does.
    ///
    /// # Errors
    /// The [`WebhookError`] that [`verify`](WebhookVerifier::verify) would return for the same request and
    /// `now`, unless that error is about the events themselves.
    fn authenticate(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<(), WebhookError>;

    /// The acknowledgement the provider expects.
    fn ack(&self) -> WebhookAck;
}

forward_port!(WebhookVerifier {
    fn provider(&self) -> &'static str;
    fn verify(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<Vec<WebhookEvent>, WebhookError>;
    fn authenticate(&self, request: &WebhookRequest, now: OffsetDateTime) -> Result<(), WebhookError>;
    fn ack(&self) -> WebhookAck;
});
