//! Adyen notification verification: the [`WebhookVerifier`] port for Adyen.

use commerce_ports::Secret;
use commerce_ports::webhook::{
    WebhookAck, WebhookError, WebhookErrorKind, WebhookEvent, WebhookRequest, WebhookVerifier,
};
use time::OffsetDateTime;

use crate::notification::{self, SignatureField};
use crate::signature::HmacKey;

/// The provider name, as in [`WebhookEvent::provider`].
pub const PROVIDER: &str = "adyen";

/// Default largest accepted body: 1 MiB. A notification batch is a few KiB per item.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Longest `pspReference` quoted in an error message; longer ones are cut (they come from the body).
const QUOTED_REFERENCE_CHARS: usize = 64;

/// Verifies Adyen notification batches (HMAC per item) and parses their events.
///
/// # Verification order
/// 1. the body is at most [`with_max_body_bytes`](Self::with_max_body_bytes) bytes (`PayloadTooLarge`),
///    before anything is parsed or hashed;
/// 2. the body is `{"notificationItems":[{"NotificationRequestItem":{...}}, ...]}` with at least one item
///    (`MalformedPayload`): Adyen's signatures sit inside the items, so the JSON must be read first;
/// 3. every item, in order, has a non-empty `additionalData.hmacSignature` (`MissingSignature`) that
///    matches its signed fields in constant time (`NoValidSignature`); the first bad item rejects the
///    whole batch, and the message names its index and `pspReference`;
/// 4. only then is each item turned into an event (`MalformedPayload` when `pspReference`, `eventCode` or
///    a `"true"`/`"false"` `success` is missing).
///
/// Adyen signs no timestamp, so there is no tolerance check; deduplicate by
/// [`WebhookEvent::event_id`] (`{pspReference}:{eventCode}:{success}`) to absorb Adyen's retries.
#[derive(Debug, Clone)]
pub struct AdyenWebhookVerifier {
    key: HmacKey,
    max_body_bytes: usize,
}

impl AdyenWebhookVerifier {
    /// A verifier keyed with the HMAC key of the webhook, as the hex string Adyen's Customer Area shows.
    ///
    /// # Errors
    /// `InvalidSecret` when the key is empty or not hexadecimal (the message does not repeat it).
    pub fn new(hmac_key_hex: Secret) -> Result<AdyenWebhookVerifier, WebhookError> {
        Ok(AdyenWebhookVerifier { key: HmacKey::from_hex(&hmac_key_hex)?, max_body_bytes: DEFAULT_MAX_BODY_BYTES })
    }

    /// Sets the largest accepted body in bytes (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> AdyenWebhookVerifier {
        self.max_body_bytes = max_body_bytes;
        self
    }

    /// The configured body limit in bytes.
    pub fn max_body_bytes(&self) -> usize {
        self.max_body_bytes
    }
}

impl WebhookVerifier for AdyenWebhookVerifier {
    fn provider(&self) -> &'static str {
        PROVIDER
    }

    fn verify(&self, request: &WebhookRequest, _now: OffsetDateTime) -> Result<Vec<WebhookEvent>, WebhookError> {
        let notification = self.authenticated(request)?;
        notification.items.iter().enumerate().map(|(index, envelope)| envelope.item.to_event(index)).collect()
    }

    /// Steps 1 to 3 of the verification order: the batch is read (the signatures sit in its items) and
    /// every item's HMAC is checked, but no event is built.
    fn authenticate(&self, request: &WebhookRequest, _now: OffsetDateTime) -> Result<(), WebhookError> {
        self.authenticated(request).map(drop)
    }

    fn ack(&self) -> WebhookAck {
        WebhookAck::new(200, "text/plain", &b"[accepted]"[..])
    }
}

impl AdyenWebhookVerifier {
    /// Steps 1 to 3 of the verification order; the parsed batch once every item's HMAC matched.
    fn authenticated(&self, request: &WebhookRequest) -> Result<notification::Notification, WebhookError> {
        if request.body.len() > self.max_body_bytes {
            return Err(WebhookError::new(
                WebhookErrorKind::PayloadTooLarge,
                format!("body of {} bytes exceeds the limit of {} bytes", request.body.len(), self.max_body_bytes),
            ));
        }
        let notification = notification::parse_notification(&request.body)?;
        for (index, envelope) in notification.items.iter().enumerate() {
            let item = &envelope.item;
            let which = || format!("notificationItems[{index}] (pspReference {})", quoted(item.psp_reference()));
            match item.signature() {
                SignatureField::Missing => {
                    return Err(WebhookError::new(
                        WebhookErrorKind::MissingSignature,
                        format!("{} has no additionalData.hmacSignature; the batch is rejected", which()),
                    ));
                }
                SignatureField::NotText => {
                    return Err(WebhookError::new(
                        WebhookErrorKind::MalformedPayload,
                        format!("{}: additionalData.hmacSignature is not a string", which()),
                    ));
                }
                SignatureField::Present(signature) => {
                    if !item.with_signed_fields(|fields| self.key.matches(fields, signature)) {
                        return Err(WebhookError::new(
                            WebhookErrorKind::NoValidSignature,
                            format!("{}: hmacSignature does not match; the batch is rejected", which()),
                        ));
                    }
                }
            }
        }
        Ok(notification)
    }
}

/// A body-supplied reference for a message: escaped and cut to a bounded length.
fn quoted(reference: &str) -> String {
    let mut chars = reference.chars();
    let head: String = chars.by_ref().take(QUOTED_REFERENCE_CHARS).collect();
    if chars.next().is_some() { format!("{head:?}...") } else { format!("{head:?}") }
}

/// The `pspReference` of an event this crate produced: the part of
/// [`event_id`](WebhookEvent::event_id) (`{pspReference}:{eventCode}:{success}`) before the event code.
/// `None` for events of other providers.
///
/// ```
/// use commerce_ports::webhook::{PaymentEventKind, WebhookEvent};
///
/// let event = WebhookEvent::new("adyen", "8835511210681242:CAPTURE:true", "CAPTURE", PaymentEventKind::Captured);
/// assert_eq!(commerce_adyen::psp_reference(&event), Some("8835511210681242"));
/// ```
pub fn psp_reference(event: &WebhookEvent) -> Option<&str> {
    if event.provider != PROVIDER {
        return None;
    }
    let mut parts = event.event_id.rsplitn(3, ':');
    let (_success, _code, psp) = (parts.next()?, parts.next()?, parts.next()?);
    Some(psp).filter(|p| !p.is_empty())
}

#[cfg(test)]
mod tests {
    use commerce_ports::webhook::PaymentEventKind;

    use super::*;

    #[test]
    fn quoted_references_are_escaped_and_bounded() {
        assert_eq!(quoted("PSP1"), "\"PSP1\"");
        assert_eq!(quoted("a\nb"), "\"a\\nb\"");
        let long = quoted(&"x".repeat(1000));
        assert!(long.len() < 80 && long.ends_with("..."), "{long}");
    }

    #[test]
    fn psp_reference_only_for_adyen_events() {
        let other = WebhookEvent::new("stripe", "a:b:c", "x", PaymentEventKind::Other);
        assert_eq!(psp_reference(&other), None);
        let odd = WebhookEvent::new("adyen", "nocolons", "x", PaymentEventKind::Other);
        assert_eq!(psp_reference(&odd), None);
    }
}
