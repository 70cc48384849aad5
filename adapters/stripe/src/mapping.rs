//! Stripe event JSON -> [`WebhookEvent`].
//!
//! Only the fields the port needs are read; everything else in the event is ignored, so new Stripe fields
//! and API versions do not break parsing.

use commerce_ports::webhook::{PaymentEventKind, WebhookError, WebhookErrorKind, WebhookEvent};
use commerce_ports::{Currency, Money};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::webhook::PROVIDER;

type Object = Map<String, Value>;

/// Parses a verified body into its event.
///
/// Messages name the missing field or the JSON position, never body content (bodies can hold personal data).
pub(crate) fn parse_event(body: &[u8]) -> Result<WebhookEvent, WebhookError> {
    let malformed = |message: String| WebhookError::new(WebhookErrorKind::MalformedPayload, message);
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        malformed(format!("body is not JSON (line {}, column {}): {:?}", e.line(), e.column(), e.classify()))
    })?;
    let Value::Object(event) = value else {
        return Err(malformed("body is not a JSON object, so not a Stripe event".to_owned()));
    };
    let id = required_text(&event, "id").ok_or_else(|| malformed("Stripe event has no string `id`".to_owned()))?;
    let event_type =
        required_text(&event, "type").ok_or_else(|| malformed("Stripe event has no string `type`".to_owned()))?;
    let object = event.get("data").and_then(|d| d.get("object")).and_then(Value::as_object);

    let kind = kind(event_type, object);
    let mut parsed = WebhookEvent::new(PROVIDER, id, event_type, kind.clone());
    parsed.success = !matches!(
        kind,
        PaymentEventKind::AuthorizationFailed | PaymentEventKind::CaptureFailed | PaymentEventKind::RefundFailed
    );
    parsed.occurred_at =
        event.get("created").and_then(Value::as_i64).and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok());
    if let Some(object) = object {
        parsed.provider_reference = provider_reference(object);
        parsed.amount = amount(event_type, object);
    }
    Ok(parsed)
}

/// A non-empty string field.
fn required_text<'a>(object: &'a Object, field: &str) -> Option<&'a str> {
    object.get(field).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The `object` discriminator of a Stripe API object (`payment_intent`, `charge`, `refund`, ...).
fn object_type(object: &Object) -> Option<&str> {
    object.get("object").and_then(Value::as_str)
}

/// The port meaning of an event type. `refund.created` counts as a refund only when the refund already
/// succeeded (card refunds usually do; others start `pending` and finish with later events).
fn kind(event_type: &str, object: Option<&Object>) -> PaymentEventKind {
    match event_type {
        "payment_intent.amount_capturable_updated" => PaymentEventKind::Authorized,
        "payment_intent.succeeded" => PaymentEventKind::Captured,
        "payment_intent.payment_failed" => PaymentEventKind::AuthorizationFailed,
        "payment_intent.canceled" => PaymentEventKind::Voided,
        "charge.refunded" => PaymentEventKind::Refunded,
        "refund.created" if object.and_then(|o| o.get("status")).and_then(Value::as_str) == Some("succeeded") => {
            PaymentEventKind::Refunded
        }
        "refund.failed" => PaymentEventKind::RefundFailed,
        _ => PaymentEventKind::Other,
    }
}

/// The PaymentIntent id: the object's own id for a payment intent, its `payment_intent` field (an id, or
/// an expanded object with an `id`) for a charge or a refund.
fn provider_reference(object: &Object) -> Option<String> {
    let reference = match object_type(object)? {
        "payment_intent" => object.get("id"),
        "charge" | "refund" => match object.get("payment_intent")? {
            Value::Object(expanded) => expanded.get("id"),
            other => Some(other),
        },
        _ => None,
    }?;
    reference.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The amount the event is about, in minor units with the object's currency.
///
/// - payment intent: `amount_capturable` for `amount_capturable_updated`, `amount_received` for
///   `succeeded`, otherwise `amount` (also the fallback when the specific field is absent);
/// - charge: `amount_refunded` (cumulative) for `charge.refunded`, otherwise `amount`;
/// - refund: `amount`.
///
/// Other objects carry no payment amount. An unknown currency or a non-integer amount gives `None` rather
/// than an error: the event is authentic and its id and kind are still useful.
fn amount(event_type: &str, object: &Object) -> Option<Money> {
    let field = match (object_type(object)?, event_type) {
        ("payment_intent", "payment_intent.amount_capturable_updated") => "amount_capturable",
        ("payment_intent", "payment_intent.succeeded") => "amount_received",
        ("charge", "charge.refunded") => "amount_refunded",
        ("payment_intent" | "charge" | "refund", _) => "amount",
        _ => return None,
    };
    let minor = object.get(field).or_else(|| object.get("amount")).and_then(Value::as_i64)?;
    let currency = object.get("currency").and_then(Value::as_str)?;
    let currency = Currency::from_code(&currency.to_ascii_uppercase()).ok()?;
    Some(Money::from_minor(minor, currency))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(event_type: &str, object: Value) -> WebhookEvent {
        let body = json!({ "id": "evt_1", "type": event_type, "created": 1_700_000_000, "data": { "object": object } });
        match parse_event(body.to_string().as_bytes()) {
            Ok(event) => event,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn payment_intent_events_map_kind_reference_and_amount() {
        let pi = json!({ "object": "payment_intent", "id": "pi_1", "amount": 1000, "amount_capturable": 900,
                         "amount_received": 800, "currency": "eur" });
        let cases = [
            ("payment_intent.amount_capturable_updated", PaymentEventKind::Authorized, 900, true),
            ("payment_intent.succeeded", PaymentEventKind::Captured, 800, true),
            ("payment_intent.payment_failed", PaymentEventKind::AuthorizationFailed, 1000, false),
            ("payment_intent.canceled", PaymentEventKind::Voided, 1000, true),
            ("payment_intent.created", PaymentEventKind::Other, 1000, true),
        ];
        for (event_type, kind, minor, success) in cases {
            let e = event(event_type, pi.clone());
            assert_eq!(e.kind, kind, "{event_type}");
            assert_eq!(e.success, success, "{event_type}");
            assert_eq!(e.provider_reference.as_deref(), Some("pi_1"));
            assert_eq!(e.amount, Some(Money::from_minor(minor, Currency::EUR)), "{event_type}");
            assert_eq!(e.occurred_at.map(OffsetDateTime::unix_timestamp), Some(1_700_000_000));
            assert_eq!(
                (e.provider.as_str(), e.event_id.as_str(), e.event_type.as_str()),
                ("stripe", "evt_1", event_type)
            );
        }
    }

    #[test]
    fn refunds_and_charges_point_at_their_payment_intent() {
        let refund = |status: &str| {
            json!({ "object": "refund", "id": "re_1", "amount": 250, "currency": "jpy", "status": status,
                    "payment_intent": "pi_9" })
        };
        let created = event("refund.created", refund("succeeded"));
        assert_eq!(created.kind, PaymentEventKind::Refunded);
        assert_eq!(created.provider_reference.as_deref(), Some("pi_9"));
        assert_eq!(created.amount, Some(Money::from_minor(250, Currency::JPY)));
        assert_eq!(event("refund.created", refund("pending")).kind, PaymentEventKind::Other);
        let failed = event("refund.failed", refund("failed"));
        assert_eq!((failed.kind, failed.success), (PaymentEventKind::RefundFailed, false));

        let charge = json!({ "object": "charge", "id": "ch_1", "amount": 1000, "amount_refunded": 300,
                             "currency": "usd", "payment_intent": { "id": "pi_7", "object": "payment_intent" } });
        let refunded = event("charge.refunded", charge);
        assert_eq!(refunded.kind, PaymentEventKind::Refunded);
        assert_eq!(refunded.provider_reference.as_deref(), Some("pi_7"));
        assert_eq!(refunded.amount, Some(Money::from_minor(300, Currency::USD)));
    }

    #[test]
    fn unknown_currency_or_unrelated_object_gives_no_amount() {
        let pi = json!({ "object": "payment_intent", "id": "pi_1", "amount": 10, "currency": "xyz" });
        assert_eq!(event("payment_intent.succeeded", pi).amount, None);
        let item = json!({ "object": "invoiceitem", "id": "ii_1", "amount": 10, "currency": "usd" });
        let e = event("invoiceitem.created", item);
        assert_eq!((e.amount, e.provider_reference, e.kind), (None, None, PaymentEventKind::Other));
    }

    #[test]
    fn an_event_needs_string_id_and_type() {
        for body in
            [&b"not json"[..], b"[1]", br#"{"type":"x"}"#, br#"{"id":"evt","type":5}"#, br#"{"id":"","type":"x"}"#]
        {
            let kind = parse_event(body).err().map(|e| e.kind);
            assert_eq!(kind, Some(WebhookErrorKind::MalformedPayload), "{}", String::from_utf8_lossy(body));
        }
        let minimal = parse_event(br#"{"id":"evt_1","type":"ping"}"#).ok();
        assert_eq!(minimal.map(|e| (e.kind, e.occurred_at)), Some((PaymentEventKind::Other, None)));
    }

    #[test]
    fn parse_errors_do_not_echo_the_body() {
        let message =
            parse_event(br#"{"id": "evt_1", "type": "x", "email": "jane@example.com"#).err().map(|e| e.message);
        assert!(message.as_deref().is_some_and(|m| !m.contains("jane")), "{message:?}");
    }
}
