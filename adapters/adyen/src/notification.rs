//! Adyen notification JSON (DTOs) and its mapping to [`WebhookEvent`]s.
//!
//! Only the fields the signature or the port needs are read; anything else in a notification is ignored.
//! What an event means is decided from signed fields only (`eventCode`, `success`): `additionalData`, apart
//! from the signature itself, is not covered by the HMAC and is never read.

use commerce_ports::webhook::{PaymentEventKind, WebhookError, WebhookErrorKind, WebhookEvent};
use commerce_ports::{Currency, Money};
use serde::Deserialize;
use serde_json::{Map, Number, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::signature::SignedFields;
use crate::webhook::PROVIDER;

/// `{"live": "...", "notificationItems": [{"NotificationRequestItem": {...}}]}`.
#[derive(Debug, Deserialize)]
pub(crate) struct Notification {
    #[serde(rename = "notificationItems")]
    pub(crate) items: Vec<ItemEnvelope>,
}

/// One element of `notificationItems`.
#[derive(Debug, Deserialize)]
pub(crate) struct ItemEnvelope {
    #[serde(rename = "NotificationRequestItem")]
    pub(crate) item: NotificationItem,
}

/// A `NotificationRequestItem`: every field is optional on the wire; what an event needs is checked after
/// the signature verified.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NotificationItem {
    psp_reference: Option<String>,
    original_reference: Option<String>,
    merchant_account_code: Option<String>,
    merchant_reference: Option<String>,
    amount: Option<AmountDto>,
    event_code: Option<String>,
    success: Option<Flag>,
    event_date: Option<String>,
    additional_data: Option<Map<String, Value>>,
}

#[derive(Debug, Deserialize)]
struct AmountDto {
    value: Option<Number>,
    currency: Option<String>,
}

/// `success` is a string (`"true"`) on the wire; a JSON boolean is accepted too.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Flag {
    Text(String),
    Bool(bool),
}

/// Where the signature of an item stands, before any HMAC is computed.
#[derive(Debug)]
pub(crate) enum SignatureField<'a> {
    /// `additionalData.hmacSignature` is absent, null or empty.
    Missing,
    /// It is there but not a string.
    NotText,
    /// The Base64 signature.
    Present(&'a str),
}

/// Parses a body into a notification. Messages give the JSON position, never body content.
pub(crate) fn parse_notification(body: &[u8]) -> Result<Notification, WebhookError> {
    let notification: Notification = serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_data() { "is not an Adyen notification" } else { "is not JSON" };
        WebhookError::new(
            WebhookErrorKind::MalformedPayload,
            format!(
                "body {what} (line {}, column {}; expected {{\"notificationItems\":[{{\"NotificationRequestItem\":{{...}}}}]}})",
                e.line(),
                e.column()
            ),
        )
    })?;
    if notification.items.is_empty() {
        return Err(WebhookError::new(WebhookErrorKind::MalformedPayload, "`notificationItems` is empty"));
    }
    Ok(notification)
}

impl NotificationItem {
    /// `pspReference`, or `""`.
    pub(crate) fn psp_reference(&self) -> &str {
        self.psp_reference.as_deref().unwrap_or("")
    }

    /// The signed text of `success`.
    fn success_text(&self) -> &str {
        match &self.success {
            Some(Flag::Text(text)) => text,
            Some(Flag::Bool(true)) => "true",
            Some(Flag::Bool(false)) => "false",
            None => "",
        }
    }

    /// `additionalData.hmacSignature`.
    pub(crate) fn signature(&self) -> SignatureField<'_> {
        match self.additional_data.as_ref().and_then(|d| d.get("hmacSignature")) {
            None | Some(Value::Null) => SignatureField::Missing,
            Some(Value::String(s)) if s.is_empty() => SignatureField::Missing,
            Some(Value::String(s)) => SignatureField::Present(s),
            Some(_) => SignatureField::NotText,
        }
    }

    /// Calls `f` with the item's signed fields (`amount.value` needs a temporary string).
    pub(crate) fn with_signed_fields<R>(&self, f: impl FnOnce(&SignedFields<'_>) -> R) -> R {
        let amount_value = self.amount.as_ref().and_then(|a| a.value.as_ref()).map(Number::to_string);
        let fields = SignedFields {
            psp_reference: self.psp_reference(),
            original_reference: self.original_reference.as_deref().unwrap_or(""),
            merchant_account_code: self.merchant_account_code.as_deref().unwrap_or(""),
            merchant_reference: self.merchant_reference.as_deref().unwrap_or(""),
            amount_value: amount_value.as_deref().unwrap_or(""),
            amount_currency: self.amount.as_ref().and_then(|a| a.currency.as_deref()).unwrap_or(""),
            event_code: self.event_code.as_deref().unwrap_or(""),
            success: self.success_text(),
        };
        f(&fields)
    }

    /// The port event of a verified item; `index` names the item in messages.
    pub(crate) fn to_event(&self, index: usize) -> Result<WebhookEvent, WebhookError> {
        let malformed = |what: &str| {
            WebhookError::new(WebhookErrorKind::MalformedPayload, format!("notificationItems[{index}]: {what}"))
        };
        let psp_reference = self.psp_reference();
        if psp_reference.is_empty() {
            return Err(malformed("no `pspReference`"));
        }
        let event_code = self.event_code.as_deref().unwrap_or("");
        if event_code.is_empty() {
            return Err(malformed("no `eventCode`"));
        }
        let success = match self.success_text() {
            "true" => true,
            "false" => false,
            _ => return Err(malformed("`success` is not \"true\" or \"false\"")),
        };

        let event_id = format!("{psp_reference}:{event_code}:{success}");
        let mut event = WebhookEvent::new(PROVIDER, event_id, event_code, Self::kind(event_code, success));
        event.success = success;
        event.provider_reference =
            Some(self.original_reference.as_deref().filter(|r| !r.is_empty()).unwrap_or(psp_reference).to_owned());
        event.amount = self.amount.as_ref().and_then(|a| {
            let minor = a.value.as_ref()?.as_i64()?;
            let currency = Currency::from_code(&a.currency.as_deref()?.to_ascii_uppercase()).ok()?;
            Some(Money::from_minor(minor, currency))
        });
        event.occurred_at = self.event_date.as_deref().and_then(|d| OffsetDateTime::parse(d, &Rfc3339).ok());
        event.merchant_reference = self.merchant_reference.as_deref().filter(|r| !r.is_empty()).map(str::to_owned);
        Ok(event)
    }

    /// The port meaning of an event code and its `success`.
    ///
    /// Only signed fields decide it: `CANCEL_OR_REFUND` is [`PaymentEventKind::CanceledOrRefunded`] whatever
    /// `additionalData["modification.action"]` says, because `additionalData` is outside the HMAC and anyone
    /// replaying a signed notification could rewrite it; the receiver tells a cancel from a refund by what it
    /// has captured.
    fn kind(event_code: &str, success: bool) -> PaymentEventKind {
        match (event_code, success) {
            ("AUTHORISATION", true) => PaymentEventKind::Authorized,
            ("AUTHORISATION", false) => PaymentEventKind::AuthorizationFailed,
            ("CAPTURE", true) => PaymentEventKind::Captured,
            // Adyen reports a capture the acquirer refused as CAPTURE with success "false".
            ("CAPTURE", false) | ("CAPTURE_FAILED", _) => PaymentEventKind::CaptureFailed,
            ("REFUND", true) => PaymentEventKind::Refunded,
            ("REFUND", false) | ("REFUND_FAILED", _) => PaymentEventKind::RefundFailed,
            ("CANCELLATION", true) => PaymentEventKind::Voided,
            ("CANCEL_OR_REFUND", true) => PaymentEventKind::CanceledOrRefunded,
            // A failed cancellation or cancel-or-refund changed nothing, like any unknown code.
            _ => PaymentEventKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn item(value: Value) -> NotificationItem {
        match serde_json::from_value(value) {
            Ok(item) => item,
            Err(e) => panic!("{e}"),
        }
    }

    fn event(value: Value) -> Result<WebhookEvent, WebhookError> {
        item(value).to_event(0)
    }

    #[test]
    fn maps_an_authorisation() {
        let e = event(json!({
            "pspReference": "PSP1", "merchantReference": "order-1", "eventCode": "AUTHORISATION",
            "success": "true", "amount": { "value": 1250, "currency": "EUR" },
            "eventDate": "2024-05-01T10:00:00+02:00"
        }));
        let e = e.ok();
        assert_eq!(
            e.as_ref().map(|e| (e.event_id.as_str(), e.event_type.as_str())),
            Some(("PSP1:AUTHORISATION:true", "AUTHORISATION"))
        );
        assert_eq!(e.as_ref().map(|e| e.kind.clone()), Some(PaymentEventKind::Authorized));
        assert_eq!(e.as_ref().and_then(|e| e.provider_reference.clone()).as_deref(), Some("PSP1"));
        assert_eq!(e.as_ref().and_then(|e| e.merchant_reference.clone()).as_deref(), Some("order-1"));
        assert_eq!(e.as_ref().and_then(|e| e.amount), Some(Money::from_minor(1250, Currency::EUR)));
        assert_eq!(e.as_ref().and_then(|e| e.occurred_at).map(OffsetDateTime::unix_timestamp), Some(1_714_550_400));
    }

    #[test]
    fn modifications_point_at_the_original_payment() {
        let e = event(
            json!({ "pspReference": "MOD1", "originalReference": "PSP1", "eventCode": "CAPTURE", "success": "true" }),
        );
        assert_eq!(e.ok().and_then(|e| e.provider_reference).as_deref(), Some("PSP1"));
    }

    #[test]
    fn kinds_follow_event_code_and_success() {
        let cases = [
            ("AUTHORISATION", "false", None, PaymentEventKind::AuthorizationFailed),
            ("CAPTURE", "true", None, PaymentEventKind::Captured),
            ("CAPTURE", "false", None, PaymentEventKind::CaptureFailed),
            ("CAPTURE_FAILED", "true", None, PaymentEventKind::CaptureFailed),
            ("REFUND", "true", None, PaymentEventKind::Refunded),
            ("REFUND", "false", None, PaymentEventKind::RefundFailed),
            ("REFUND_FAILED", "true", None, PaymentEventKind::RefundFailed),
            ("CANCELLATION", "true", None, PaymentEventKind::Voided),
            ("CANCELLATION", "false", None, PaymentEventKind::Other),
            // `modification.action` is not signed: it never decides the kind.
            ("CANCEL_OR_REFUND", "true", None, PaymentEventKind::CanceledOrRefunded),
            ("CANCEL_OR_REFUND", "true", Some("cancel"), PaymentEventKind::CanceledOrRefunded),
            ("CANCEL_OR_REFUND", "true", Some("refund"), PaymentEventKind::CanceledOrRefunded),
            ("CANCEL_OR_REFUND", "false", None, PaymentEventKind::Other),
            ("CANCEL_OR_REFUND", "false", Some("refund"), PaymentEventKind::Other),
            ("REPORT_AVAILABLE", "true", None, PaymentEventKind::Other),
        ];
        for (code, success, action, kind) in cases {
            let mut value = json!({ "pspReference": "P", "eventCode": code, "success": success });
            if let Some(action) = action {
                value["additionalData"] = json!({ "modification.action": action });
            }
            assert_eq!(event(value).ok().map(|e| e.kind), Some(kind), "{code} {success} {action:?}");
        }
    }

    #[test]
    fn a_cancel_or_refund_event_does_not_depend_on_its_unsigned_action() {
        let with_action = |action: Option<&str>| {
            let mut value = json!({
                "pspReference": "MOD1", "originalReference": "PSP1", "merchantReference": "order-1",
                "eventCode": "CANCEL_OR_REFUND", "success": "true", "amount": { "value": 10_000, "currency": "EUR" },
                "additionalData": { "hmacSignature": "c2lnbmF0dXJl" }
            });
            if let Some(action) = action {
                value["additionalData"]["modification.action"] = json!(action);
            }
            event(value).ok()
        };
        let plain = with_action(None);
        assert_eq!(plain.as_ref().map(|e| e.kind.clone()), Some(PaymentEventKind::CanceledOrRefunded));
        assert_eq!(plain.as_ref().and_then(|e| e.amount), Some(Money::from_minor(10_000, Currency::EUR)));
        for action in ["cancel", "refund", "capture", ""] {
            assert_eq!(with_action(Some(action)), plain, "modification.action {action:?}");
        }
    }

    #[test]
    fn unknown_currency_and_odd_dates_are_left_out() {
        let e = event(json!({ "pspReference": "P", "eventCode": "REFUND", "success": "true",
                              "amount": { "value": 5, "currency": "XYZ" }, "eventDate": "yesterday" }));
        assert_eq!(e.ok().map(|e| (e.amount, e.occurred_at)), Some((None, None)));
    }

    #[test]
    fn an_event_needs_psp_reference_event_code_and_a_boolean_success() {
        for value in [
            json!({ "eventCode": "CAPTURE", "success": "true" }),
            json!({ "pspReference": "P", "success": "true" }),
            json!({ "pspReference": "P", "eventCode": "CAPTURE" }),
            json!({ "pspReference": "P", "eventCode": "CAPTURE", "success": "yes" }),
        ] {
            let kind = event(value.clone()).err().map(|e| e.kind);
            assert_eq!(kind, Some(WebhookErrorKind::MalformedPayload), "{value}");
        }
    }

    #[test]
    fn signed_fields_take_amount_as_text_and_success_as_sent() {
        let it = item(json!({ "pspReference": "P", "amount": { "value": 0, "currency": "EUR" }, "success": true }));
        assert_eq!(it.with_signed_fields(|f| f.signing_string()), "P::::0:EUR::true");
    }

    #[test]
    fn shape_errors_are_malformed_payload() {
        for body in [
            &b"nope"[..],
            b"{}",
            br#"{"notificationItems":[]}"#,
            br#"{"notificationItems":[{"Other":{}}]}"#,
            br#"{"notificationItems":[{"NotificationRequestItem":{"pspReference":5}}]}"#,
        ] {
            let kind = parse_notification(body).err().map(|e| e.kind);
            assert_eq!(kind, Some(WebhookErrorKind::MalformedPayload), "{}", String::from_utf8_lossy(body));
        }
    }
}
