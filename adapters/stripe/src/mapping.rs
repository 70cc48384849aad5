//! Provider shapes <-> port types: Stripe event JSON -> [`WebhookEvent`] for webhooks; for the gateway,
//! Stripe's form encoding of nested parameters, amounts and currencies on the wire, and PaymentIntent /
//! Refund objects -> [`PaymentSnapshot`] / [`ModificationResult`].
//!
//! Only the fields the port needs are read; everything else is ignored, so new Stripe fields and API
//! versions do not break parsing.

use commerce_ports::payment::{ModificationResult, ModificationStatus, PaymentSnapshot, ProviderPaymentStatus};
use commerce_ports::webhook::{PaymentEventKind, WebhookError, WebhookErrorKind, WebhookEvent};
use commerce_ports::{Currency, ErrorKind, Money, PaymentError};
use serde::Deserialize;
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
        // The gateway sends the merchant's reference as `metadata[reference]`; it finds the intent when the
        // provider reference is not known yet (an authorization whose outcome was unknown).
        parsed.merchant_reference = object
            .get("metadata")
            .and_then(|m| m.get("reference"))
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
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

// ---------------------------------------------------------------------------------------------------------
// Gateway: form encoding, money on the wire, PaymentIntent / Refund DTOs -> port types.
// ---------------------------------------------------------------------------------------------------------

/// Currencies Stripe takes in whole units (no minor unit): amounts are sent as they are.
const ZERO_DECIMAL: [&str; 16] =
    ["BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"];

/// Currencies Stripe takes with three decimals; the amount must be a multiple of 10 (the last digit 0).
const THREE_DECIMAL: [&str; 5] = ["BHD", "JOD", "KWD", "OMR", "TND"];

/// Currencies whose Stripe representation differs from ISO 4217's exponent (ISK and HUF are sent with two
/// decimals by Stripe although ISO gives ISK none; TWD and UGX have further payout rules). Refused rather
/// than converted, so an amount is never silently scaled.
const SPECIAL: [&str; 3] = ["ISK", "HUF", "TWD"];

/// The exponent Stripe uses for a currency (Stripe's "zero-decimal" and "three-decimal" lists; 2 otherwise).
pub(crate) fn stripe_exponent(code: &str) -> u8 {
    if ZERO_DECIMAL.contains(&code) {
        0
    } else if THREE_DECIMAL.contains(&code) {
        3
    } else {
        2
    }
}

/// An amount on the wire: Stripe's integer in the currency's smallest unit and the lower-case code.
///
/// # Errors
/// `InvalidRequest` when the amount is not positive, the currency's exponent differs from Stripe's, or a
/// three-decimal amount does not end in 0.
pub(crate) fn wire_amount(operation: &'static str, amount: Money) -> Result<(i64, String), PaymentError> {
    if !amount.is_positive() {
        return Err(PaymentError::invalid(operation, format!("amount must be positive, got {amount}")));
    }
    let currency = amount.currency();
    let code = currency.code();
    if SPECIAL.contains(&code) || stripe_exponent(code) != currency.exponent() {
        return Err(PaymentError::invalid(
            operation,
            format!(
                "currency {code} has {} decimals in ISO 4217 but Stripe expects {}; it is not supported by this adapter",
                currency.exponent(),
                stripe_exponent(code)
            ),
        ));
    }
    if THREE_DECIMAL.contains(&code) && amount.minor() % 10 != 0 {
        return Err(PaymentError::invalid(
            operation,
            format!("amount {amount}: Stripe requires {code} amounts in multiples of 10 minor units"),
        ));
    }
    Ok((amount.minor(), code.to_ascii_lowercase()))
}

/// A currency read from the wire (`eur` -> EUR), checked against Stripe's exponent.
pub(crate) fn wire_currency(code: &str) -> Result<Currency, String> {
    let upper = code.to_ascii_uppercase();
    let currency = Currency::from_code(&upper).map_err(|e| format!("currency `{code}`: {e}"))?;
    if stripe_exponent(&upper) != currency.exponent() {
        return Err(format!("currency `{code}` has an exponent this adapter does not map"));
    }
    Ok(currency)
}

/// Form parameters in Stripe's encoding of nested values: objects as `a[b][c]=v`, arrays as `k[0]=v`,
/// booleans as `true`/`false`, nulls omitted.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Form(Vec<(String, String)>);

impl Form {
    pub(crate) fn new() -> Form {
        Form::default()
    }

    /// Adds a (possibly nested) value under `key`.
    pub(crate) fn add(mut self, key: &str, value: &Value) -> Form {
        flatten(key.to_owned(), value, &mut self.0);
        self
    }

    /// Adds a text value.
    pub(crate) fn text(self, key: &str, value: impl Into<String>) -> Form {
        self.add(key, &Value::String(value.into()))
    }

    /// The `application/x-www-form-urlencoded` body.
    pub(crate) fn encode(&self) -> String {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            serializer.append_pair(k, v);
        }
        serializer.finish()
    }
}

fn flatten(key: String, value: &Value, out: &mut Vec<(String, String)>) {
    match value {
        Value::Null => {}
        Value::Bool(b) => out.push((key, b.to_string())),
        Value::Number(n) => out.push((key, n.to_string())),
        Value::String(s) => out.push((key, s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten(format!("{key}[{i}]"), item, out);
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                flatten(format!("{key}[{k}]"), v, out);
            }
        }
    }
}

/// A PaymentIntent as Stripe returns it (only the fields the adapter reads).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct PaymentIntentDto {
    pub(crate) id: String,
    pub(crate) amount: i64,
    #[serde(default)]
    pub(crate) amount_received: i64,
    pub(crate) currency: String,
    pub(crate) status: String,
    #[serde(default)]
    pub(crate) latest_charge: Option<ChargeRef>,
    #[serde(default)]
    pub(crate) last_payment_error: Option<Value>,
}

/// `latest_charge`: an id, or the charge when expanded (`expand[]=latest_charge`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum ChargeRef {
    Id(String),
    Expanded(ChargeDto),
}

/// A Charge (only the fields the adapter reads).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ChargeDto {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) amount_refunded: i64,
}

/// A Refund (only the fields the adapter reads).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RefundDto {
    pub(crate) id: String,
    pub(crate) amount: i64,
    pub(crate) currency: String,
    pub(crate) status: String,
}

impl PaymentIntentDto {
    /// The id of the latest charge, expanded or not.
    pub(crate) fn charge_id(&self) -> Option<&str> {
        match &self.latest_charge {
            Some(ChargeRef::Id(id)) => Some(id),
            Some(ChargeRef::Expanded(charge)) => Some(&charge.id),
            None => None,
        }
    }

    /// The payment intent's currency.
    pub(crate) fn money_currency(&self, operation: &'static str) -> Result<Currency, PaymentError> {
        wire_currency(&self.currency).map_err(|m| PaymentError::new(ErrorKind::Unexpected, operation, m))
    }

    /// The port's view: status, authorized (`amount`), captured (`amount_received`) and refunded (the
    /// expanded charge's `amount_refunded`; zero when the charge is not expanded).
    pub(crate) fn snapshot(&self, operation: &'static str) -> Result<PaymentSnapshot, PaymentError> {
        let currency = self.money_currency(operation)?;
        let status = match self.status.as_str() {
            "requires_capture" => ProviderPaymentStatus::Authorized,
            "succeeded" => ProviderPaymentStatus::Captured,
            "canceled" => ProviderPaymentStatus::Voided,
            "requires_action" => ProviderPaymentStatus::RequiresAction,
            "processing" | "requires_confirmation" => ProviderPaymentStatus::Pending,
            "requires_payment_method" if self.last_payment_error.as_ref().is_some_and(|e| !e.is_null()) => {
                ProviderPaymentStatus::Declined
            }
            "requires_payment_method" => ProviderPaymentStatus::Pending,
            other => {
                return Err(PaymentError::new(
                    ErrorKind::Unexpected,
                    operation,
                    format!("payment intent `{}` has a status this adapter does not know: `{other}`", self.id),
                ));
            }
        };
        let refunded = match &self.latest_charge {
            Some(ChargeRef::Expanded(charge)) => charge.amount_refunded,
            _ => 0,
        };
        let mut snapshot =
            PaymentSnapshot::authorized(self.id.clone(), status, Money::from_minor(self.amount, currency));
        snapshot.captured = Money::from_minor(self.amount_received, currency);
        snapshot.refunded = Money::from_minor(refunded, currency);
        Ok(snapshot)
    }
}

impl RefundDto {
    /// The port's view of a refund: `succeeded` is done, `pending` / `requires_action` settle later, `failed`
    /// and `canceled` are declines of the refund.
    pub(crate) fn result(&self, operation: &'static str) -> Result<ModificationResult, PaymentError> {
        let currency =
            wire_currency(&self.currency).map_err(|m| PaymentError::new(ErrorKind::Unexpected, operation, m))?;
        let status = match self.status.as_str() {
            "succeeded" => ModificationStatus::Succeeded,
            "pending" | "requires_action" => ModificationStatus::Pending,
            other @ ("failed" | "canceled") => {
                return Err(PaymentError::new(
                    ErrorKind::Declined,
                    operation,
                    format!("refund `{}` ended with status `{other}`", self.id),
                )
                .with_provider_code(format!("refund_{other}")));
            }
            other => {
                return Err(PaymentError::new(
                    ErrorKind::Unexpected,
                    operation,
                    format!("refund `{}` has a status this adapter does not know: `{other}`", self.id),
                ));
            }
        };
        Ok(ModificationResult::new(self.id.clone(), status, Money::from_minor(self.amount, currency)))
    }
}

#[cfg(test)]
mod gateway_tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nested_values_use_brackets_and_indices() {
        let form = Form::new()
            .text("amount", "1000")
            .add("metadata", &json!({"order": "A&B 1", "z": "1"}))
            .add("payment_method_types", &json!(["card", "link"]))
            .add("deep", &json!({"a": {"b": [true, null, 3]}}));
        assert_eq!(
            form.encode(),
            "amount=1000&metadata%5Border%5D=A%26B+1&metadata%5Bz%5D=1&payment_method_types%5B0%5D=card\
             &payment_method_types%5B1%5D=link&deep%5Ba%5D%5Bb%5D%5B0%5D=true&deep%5Ba%5D%5Bb%5D%5B2%5D=3"
        );
        assert_eq!(Form::new().encode(), "");
    }

    #[test]
    fn amounts_are_minor_units_with_lower_case_currencies() {
        assert_eq!(wire_amount("authorize", Money::from_minor(1234, Currency::EUR)).ok(), Some((1234, "eur".into())));
        assert_eq!(wire_amount("authorize", Money::from_minor(500, Currency::JPY)).ok(), Some((500, "jpy".into())));
        assert_eq!(wire_amount("authorize", Money::from_minor(1230, Currency::KWD)).ok(), Some((1230, "kwd".into())));
        for bad in [
            Money::from_minor(0, Currency::EUR),
            Money::from_minor(-1, Currency::EUR),
            Money::from_minor(1235, Currency::KWD),
        ] {
            let kind = wire_amount("authorize", bad).err().map(|e| e.kind());
            assert_eq!(kind, Some(ErrorKind::InvalidRequest), "{bad}");
        }
        if let Ok(isk) = Currency::from_code("ISK") {
            assert!(wire_amount("authorize", Money::from_minor(100, isk)).is_err());
        }
        assert_eq!(wire_currency("jpy"), Ok(Currency::JPY));
        assert!(wire_currency("xyz").is_err());
    }

    fn intent(value: Value) -> PaymentIntentDto {
        match serde_json::from_value(value) {
            Ok(dto) => dto,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn statuses_and_amounts_map_onto_snapshots() {
        let cases = [
            ("requires_capture", ProviderPaymentStatus::Authorized),
            ("succeeded", ProviderPaymentStatus::Captured),
            ("canceled", ProviderPaymentStatus::Voided),
            ("processing", ProviderPaymentStatus::Pending),
            ("requires_action", ProviderPaymentStatus::RequiresAction),
            ("requires_payment_method", ProviderPaymentStatus::Pending),
        ];
        for (status, expected) in cases {
            let dto = intent(json!({"id": "pi_1", "amount": 1000, "amount_received": 600, "currency": "eur",
                                    "status": status, "latest_charge": {"id": "ch_1", "amount_refunded": 250}}));
            let snap = dto.snapshot("retrieve").ok();
            assert_eq!(snap.as_ref().map(|s| s.status), Some(expected), "{status}");
            assert_eq!(
                snap.as_ref().map(|s| (s.authorized.minor(), s.captured.minor(), s.refunded.minor())),
                Some((1000, 600, 250))
            );
            assert_eq!(dto.charge_id(), Some("ch_1"));
        }
        let declined =
            intent(json!({"id": "pi_1", "amount": 1, "currency": "usd", "status": "requires_payment_method",
                                     "last_payment_error": {"code": "card_declined"}, "latest_charge": "ch_9"}));
        assert_eq!(declined.snapshot("retrieve").ok().map(|s| s.status), Some(ProviderPaymentStatus::Declined));
        assert_eq!(declined.charge_id(), Some("ch_9"));
        let odd = intent(json!({"id": "pi_1", "amount": 1, "currency": "usd", "status": "teleported"}));
        assert_eq!(odd.snapshot("retrieve").err().map(|e| e.kind()), Some(ErrorKind::Unexpected));
    }

    #[test]
    fn refund_statuses_map_onto_results() {
        let refund = |status: &str| -> RefundDto {
            match serde_json::from_value(json!({"id": "re_1", "amount": 300, "currency": "jpy", "status": status})) {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(refund("succeeded").result("refund").ok().map(|r| r.status), Some(ModificationStatus::Succeeded));
        assert_eq!(
            refund("pending").result("refund").ok().map(|r| (r.status, r.amount)),
            Some((ModificationStatus::Pending, Money::from_minor(300, Currency::JPY)))
        );
        assert_eq!(refund("failed").result("refund").err().map(|e| e.kind()), Some(ErrorKind::Declined));
        assert_eq!(refund("canceled").result("refund").err().map(|e| e.kind()), Some(ErrorKind::Declined));
        assert_eq!(refund("mystery").result("refund").err().map(|e| e.kind()), Some(ErrorKind::Unexpected));
    }
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
    fn the_merchant_reference_comes_from_the_metadata_the_gateway_sends() {
        let pi = json!({ "object": "payment_intent", "id": "pi_1", "amount": 100, "currency": "eur",
                         "metadata": { "reference": "W-1001" } });
        assert_eq!(event("payment_intent.succeeded", pi).merchant_reference.as_deref(), Some("W-1001"));
        let bare = json!({ "object": "payment_intent", "id": "pi_2", "amount": 100, "currency": "eur" });
        assert_eq!(event("payment_intent.succeeded", bare).merchant_reference, None);
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
