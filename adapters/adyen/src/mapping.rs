//! Checkout shapes <-> port types: request bodies of `/payments` and the modifications, the payment response
//! (`resultCode`) -> [`PaymentSnapshot`] or a decline, modification responses -> [`ModificationResult`], and
//! idempotency keys within Adyen's 64 characters.
//!
//! Only the fields the port needs are read; anything else is ignored.

use std::collections::BTreeMap;

use commerce_ports::payment::{
    AuthorizeRequest, CaptureMethod, ModificationResult, ModificationStatus, PaymentSnapshot, ProviderPaymentStatus,
};
use commerce_ports::{Currency, DeclineDetails, ErrorKind, IdempotencyKey, Money, PaymentError};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The longest `Idempotency-Key` Adyen accepts.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 64;

/// The key sent to Adyen: the caller's key when it fits, otherwise `sha256-` and the first 57 hex digits of its
/// SHA-256 (64 characters, stable, so retries of one call keep one key).
pub(crate) fn wire_key(key: &IdempotencyKey) -> String {
    let key = key.as_str();
    if key.len() <= MAX_IDEMPOTENCY_KEY_LEN {
        return key.to_owned();
    }
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    let prefix = "sha256-";
    let take = MAX_IDEMPOTENCY_KEY_LEN.saturating_sub(prefix.len());
    format!("{prefix}{}", digest.get(..take).unwrap_or(&digest))
}

/// `{"currency":"EUR","value":1250}`: Adyen takes minor units with the ISO 4217 exponent.
///
/// # Errors
/// `InvalidRequest` when the amount is not positive.
pub(crate) fn wire_amount(operation: &'static str, amount: Money) -> Result<Value, PaymentError> {
    if !amount.is_positive() {
        return Err(PaymentError::invalid(operation, format!("amount must be positive, got {amount}")));
    }
    Ok(json!({ "currency": amount.currency().code(), "value": amount.minor() }))
}

/// The `paymentMethod` object for a [`PaymentMethodRef`](commerce_ports::payment::PaymentMethodRef):
///
/// - a JSON object (what Adyen's Web/Drop-in components produce as `state.data.paymentMethod`, for example
///   `{"type":"scheme","encryptedCardNumber":...}`) is sent verbatim;
/// - any other text is a stored payment method (token) of the shopper: `{"type":"scheme",
///   "storedPaymentMethodId": text}`. Test names such as `pm_card_visa` travel the same way (the simulator
///   honours them).
pub(crate) fn payment_method(operation: &'static str, reference: &str) -> Result<(Value, bool), PaymentError> {
    let trimmed = reference.trim();
    if trimmed.is_empty() {
        return Err(PaymentError::invalid(operation, "payment_method must not be empty"));
    }
    if trimmed.starts_with('{') {
        let value: Value = serde_json::from_str(trimmed).map_err(|e| {
            PaymentError::invalid(operation, format!("payment_method looks like JSON but does not parse: {e}"))
        })?;
        if value.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(PaymentError::invalid(operation, "payment_method JSON has no `type`"));
        }
        return Ok((value, false));
    }
    Ok((json!({ "type": "scheme", "storedPaymentMethodId": trimmed }), true))
}

/// The `/payments` body. Manual capture is `additionalData.manualCapture = "true"`; automatic capture sends
/// `captureDelayHours: 0`, so an account configured with delayed capture still captures at once.
pub(crate) fn payment_body(
    operation: &'static str,
    request: &AuthorizeRequest,
    merchant_account: &str,
) -> Result<Value, PaymentError> {
    let amount = wire_amount(operation, request.amount)?;
    let (method, stored) = payment_method(operation, &request.payment_method.0)?;
    let mut body = json!({
        "amount": amount,
        "reference": request.reference,
        "paymentMethod": method,
        "merchantAccount": merchant_account,
    });
    let mut additional = Map::new();
    match request.capture_method {
        CaptureMethod::Manual => {
            additional.insert("manualCapture".to_owned(), json!("true"));
        }
        _ => body["captureDelayHours"] = json!(0),
    }
    if stored {
        // A stored method is a card-on-file payment the shopper is not present for.
        body["shopperInteraction"] = json!("ContAuth");
        body["recurringProcessingModel"] = json!("CardOnFile");
    }
    if let Some(shopper) = request.metadata.get("shopper_reference") {
        body["shopperReference"] = json!(shopper);
    }
    let metadata: BTreeMap<&String, &String> =
        request.metadata.iter().filter(|(k, _)| k.as_str() != "shopper_reference").collect();
    if !metadata.is_empty() {
        body["metadata"] = json!(metadata);
    }
    if !additional.is_empty() {
        body["additionalData"] = Value::Object(additional);
    }
    Ok(body)
}

/// An `amount` in a response.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AmountDto {
    currency: String,
    value: i64,
}

impl AmountDto {
    fn money(&self) -> Option<Money> {
        Currency::from_code(&self.currency).ok().map(|c| Money::from_minor(self.value, c))
    }
}

/// The `/payments` response fields the port needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PaymentResponseDto {
    psp_reference: Option<String>,
    result_code: Option<String>,
    refusal_reason: Option<String>,
    refusal_reason_code: Option<String>,
    amount: Option<AmountDto>,
    #[serde(default)]
    additional_data: Map<String, Value>,
}

impl PaymentResponseDto {
    /// The port meaning of the answer to `request`.
    ///
    /// | resultCode | result |
    /// | --- | --- |
    /// | `Authorised`, `Success` | `Authorized` (manual capture) / `Captured` (automatic) |
    /// | `PartiallyAuthorised` | `Authorized` with the partial `amount` |
    /// | `Pending`, `Received` | `Pending` |
    /// | `RedirectShopper`, `ChallengeShopper`, `IdentifyShopper`, `PresentToShopper`, `AuthenticationFinished`, `AuthenticationNotRequired` | `RequiresAction` |
    /// | `Cancelled` | `Voided` |
    /// | `Refused` | `Declined` error with `refusalReasonCode` as decline code |
    /// | `Error` | `Unexpected` error naming `refusalReason` |
    /// | anything else, or no `pspReference` | `Unexpected` (the caller turns it into `OutcomeUnknown`) |
    pub(crate) fn snapshot(
        self,
        operation: &'static str,
        request: &AuthorizeRequest,
    ) -> Result<PaymentSnapshot, PaymentError> {
        let result_code = self.result_code.clone().unwrap_or_default();
        let reason = self.refusal_reason.clone().unwrap_or_else(|| "no refusalReason given".to_owned());
        match result_code.as_str() {
            "Refused" => {
                let mut decline = DeclineDetails::default();
                decline.decline_code = self.refusal_reason_code.clone().or_else(|| self.refusal_reason.clone());
                decline.advice_code = self.text("merchantAdviceCode");
                decline.network_decline_code = self.text("refusalReasonRaw");
                let mut error =
                    PaymentError::new(ErrorKind::Declined, operation, format!("Adyen refused the payment: {reason}"))
                        .with_decline(decline)
                        .with_provider_code("Refused");
                if let Some(psp) = &self.psp_reference {
                    error = error.with_source(RefusedPayment(psp.clone()));
                }
                return Err(error);
            }
            "Error" => {
                return Err(PaymentError::new(
                    ErrorKind::Unexpected,
                    operation,
                    format!("Adyen reported an error while processing the payment: {reason}"),
                )
                .with_retry(commerce_ports::RetryClass::Permanent)
                .with_provider_code("Error"));
            }
            _ => {}
        }
        let status = match result_code.as_str() {
            "Authorised" | "Success" => match request.capture_method {
                CaptureMethod::Manual => ProviderPaymentStatus::Authorized,
                _ => ProviderPaymentStatus::Captured,
            },
            "PartiallyAuthorised" => ProviderPaymentStatus::Authorized,
            "Pending" | "Received" => ProviderPaymentStatus::Pending,
            "RedirectShopper"
            | "ChallengeShopper"
            | "IdentifyShopper"
            | "PresentToShopper"
            | "AuthenticationFinished"
            | "AuthenticationNotRequired" => ProviderPaymentStatus::RequiresAction,
            "Cancelled" => ProviderPaymentStatus::Voided,
            other => {
                return Err(PaymentError::new(
                    ErrorKind::Unexpected,
                    operation,
                    format!("Adyen answered an unknown resultCode `{other}`"),
                ));
            }
        };
        let psp = self.psp_reference.clone().filter(|p| !p.is_empty()).ok_or_else(|| {
            PaymentError::new(
                ErrorKind::Unexpected,
                operation,
                format!("resultCode {result_code} without pspReference"),
            )
        })?;
        let authorized = match (&self.amount, status) {
            (Some(amount), ProviderPaymentStatus::Authorized) if result_code == "PartiallyAuthorised" => {
                amount.money().filter(|m| m.currency() == request.amount.currency()).ok_or_else(|| {
                    PaymentError::new(ErrorKind::Unexpected, operation, "partial authorisation in another currency")
                })?
            }
            _ => request.amount,
        };
        let mut snapshot = PaymentSnapshot::authorized(psp, status, authorized);
        if status == ProviderPaymentStatus::Captured {
            snapshot.captured = authorized;
        }
        Ok(snapshot)
    }

    fn text(&self, key: &str) -> Option<String> {
        self.additional_data.get(key).and_then(Value::as_str).map(str::to_owned)
    }
}

/// The pspReference of a refused payment, kept as the source of a decline.
#[derive(Debug, thiserror::Error)]
#[error("refused payment pspReference {0}")]
pub(crate) struct RefusedPayment(String);

/// The answer to a modification (`/captures`, `/refunds`, `/cancels`, `/reversals`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ModificationResponseDto {
    psp_reference: Option<String>,
    status: Option<String>,
    amount: Option<AmountDto>,
}

impl ModificationResponseDto {
    /// `status: "received"` -> [`ModificationStatus::Pending`] with the modification's own pspReference; the
    /// outcome arrives by notification (CAPTURE, REFUND, CANCELLATION, ...). `fallback` is the amount asked
    /// for, used when the answer carries none (cancels).
    pub(crate) fn result(self, operation: &'static str, fallback: Money) -> Result<ModificationResult, PaymentError> {
        let status = self.status.unwrap_or_default();
        if status != "received" {
            return Err(PaymentError::new(
                ErrorKind::Unexpected,
                operation,
                format!("Adyen answered the {operation} with status `{status}` instead of `received`"),
            ));
        }
        let psp = self.psp_reference.filter(|p| !p.is_empty()).ok_or_else(|| {
            PaymentError::new(ErrorKind::Unexpected, operation, "modification answer without pspReference")
        })?;
        let amount = match self.amount {
            Some(amount) => amount.money().ok_or_else(|| {
                PaymentError::new(ErrorKind::Unexpected, operation, "modification amount in an unknown currency")
            })?,
            None => fallback,
        };
        Ok(ModificationResult::new(psp, ModificationStatus::Pending, amount))
    }
}

#[cfg(test)]
mod tests {
    use commerce_ports::TenderKind;

    use super::*;

    fn request(capture: CaptureMethod) -> AuthorizeRequest {
        let key = IdempotencyKey::new("k1").unwrap_or_else(|e| panic!("{e}"));
        AuthorizeRequest::new(Money::from_minor(1_250, Currency::EUR), TenderKind::Card, "pm_card_visa", "order-1", key)
            .with_capture_method(capture)
    }

    fn response(body: Value) -> PaymentResponseDto {
        serde_json::from_value(body).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn result_codes_map_to_statuses() {
        let table = [
            ("Authorised", CaptureMethod::Manual, ProviderPaymentStatus::Authorized),
            ("Authorised", CaptureMethod::Automatic, ProviderPaymentStatus::Captured),
            ("Success", CaptureMethod::Manual, ProviderPaymentStatus::Authorized),
            ("Pending", CaptureMethod::Manual, ProviderPaymentStatus::Pending),
            ("Received", CaptureMethod::Automatic, ProviderPaymentStatus::Pending),
            ("RedirectShopper", CaptureMethod::Manual, ProviderPaymentStatus::RequiresAction),
            ("ChallengeShopper", CaptureMethod::Manual, ProviderPaymentStatus::RequiresAction),
            ("IdentifyShopper", CaptureMethod::Manual, ProviderPaymentStatus::RequiresAction),
            ("PresentToShopper", CaptureMethod::Manual, ProviderPaymentStatus::RequiresAction),
            ("AuthenticationFinished", CaptureMethod::Manual, ProviderPaymentStatus::RequiresAction),
            ("AuthenticationNotRequired", CaptureMethod::Manual, ProviderPaymentStatus::RequiresAction),
            ("Cancelled", CaptureMethod::Manual, ProviderPaymentStatus::Voided),
        ];
        for (code, capture, status) in table {
            let snapshot =
                response(json!({"pspReference": "PSP1", "resultCode": code})).snapshot("authorize", &request(capture));
            let snapshot = snapshot.unwrap_or_else(|e| panic!("{code}: {e}"));
            assert_eq!((snapshot.status, snapshot.provider_reference.as_str()), (status, "PSP1"), "{code}");
            let captured = if status == ProviderPaymentStatus::Captured { 1_250 } else { 0 };
            assert_eq!(snapshot.captured.minor(), captured, "{code}");
        }
    }

    #[test]
    fn partial_authorisation_keeps_the_authorised_amount() {
        let body = json!({"pspReference": "P", "resultCode": "PartiallyAuthorised", "amount": {"currency": "EUR", "value": 1000}});
        let snapshot = response(body).snapshot("authorize", &request(CaptureMethod::Manual)).ok();
        assert_eq!(
            snapshot.map(|s| (s.status, s.authorized.minor())),
            Some((ProviderPaymentStatus::Authorized, 1_000))
        );
    }

    #[test]
    fn refusals_are_declines_with_details_and_errors_are_errors() {
        let body = json!({"pspReference": "P", "resultCode": "Refused", "refusalReason": "Not enough balance",
                          "refusalReasonCode": "12", "additionalData": {"refusalReasonRaw": "51 : Insufficient funds",
                          "merchantAdviceCode": "01"}});
        let Err(e) = response(body).snapshot("authorize", &request(CaptureMethod::Manual)) else { panic!("refused") };
        assert_eq!((e.kind(), e.provider_code()), (ErrorKind::Declined, Some("Refused")));
        assert!(e.message().contains("Not enough balance"), "{e}");
        let decline = e.decline().cloned().unwrap_or_default();
        assert_eq!(decline.decline_code.as_deref(), Some("12"));
        assert_eq!(decline.network_decline_code.as_deref(), Some("51 : Insufficient funds"));
        assert_eq!(decline.advice_code.as_deref(), Some("01"));
        let error = response(json!({"resultCode": "Error", "refusalReason": "Acquirer Error"}))
            .snapshot("authorize", &request(CaptureMethod::Manual));
        assert!(
            matches!(&error, Err(e) if e.kind() == ErrorKind::Unexpected && e.message().contains("Acquirer Error"))
        );
        for body in [json!({"pspReference": "P", "resultCode": "Mystery"}), json!({"resultCode": "Authorised"})] {
            let e = response(body).snapshot("authorize", &request(CaptureMethod::Manual)).err();
            assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::Unexpected));
        }
    }

    #[test]
    fn bodies_carry_capture_mode_and_payment_method() {
        let manual = payment_body("authorize", &request(CaptureMethod::Manual), "ShopCOM").unwrap_or_default();
        assert_eq!(manual["additionalData"]["manualCapture"], "true");
        assert_eq!(manual["amount"], json!({"currency": "EUR", "value": 1250}));
        assert_eq!(manual["paymentMethod"], json!({"type": "scheme", "storedPaymentMethodId": "pm_card_visa"}));
        assert_eq!(manual["merchantAccount"], "ShopCOM");
        let auto = payment_body("authorize", &request(CaptureMethod::Automatic), "ShopCOM").unwrap_or_default();
        assert_eq!((auto["captureDelayHours"].clone(), auto.get("additionalData").is_none()), (json!(0), true));
        let (json_method, stored) =
            payment_method("authorize", r#"{"type":"scheme","encryptedCardNumber":"x"}"#).unwrap_or_default();
        assert_eq!((json_method["encryptedCardNumber"].clone(), stored), (json!("x"), false));
        assert!(payment_method("authorize", "{not json").is_err());
        assert!(payment_method("authorize", "{}").is_err());
        assert!(payment_method("authorize", " ").is_err());
        let zero = Money::zero(Currency::EUR);
        assert_eq!(wire_amount("capture", zero).err().map(|e| e.kind()), Some(ErrorKind::InvalidRequest));
    }

    #[test]
    fn long_keys_are_shortened_stably_to_64() {
        let long = IdempotencyKey::new("k".repeat(200)).unwrap_or_else(|e| panic!("{e}"));
        let short = wire_key(&long);
        assert_eq!(short.len(), 64);
        assert_eq!(short, wire_key(&long));
        let other = IdempotencyKey::new(format!("{}x", "k".repeat(199))).unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(short, wire_key(&other));
        let exact = IdempotencyKey::new("a".repeat(64)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(wire_key(&exact), "a".repeat(64));
    }

    #[test]
    fn modification_answers_are_pending() {
        let dto: ModificationResponseDto = serde_json::from_value(json!({"pspReference": "M1", "status": "received",
            "paymentPspReference": "P1", "amount": {"currency": "EUR", "value": 500}}))
        .unwrap_or_else(|e| panic!("{e}"));
        let result = dto.result("capture", Money::from_minor(1, Currency::EUR)).ok();
        assert_eq!(
            result,
            Some(ModificationResult::new("M1", ModificationStatus::Pending, Money::from_minor(500, Currency::EUR)))
        );
        let odd: ModificationResponseDto =
            serde_json::from_value(json!({"pspReference": "M1", "status": "done"})).unwrap_or_else(|e| panic!("{e}"));
        assert!(odd.result("void", Money::from_minor(1, Currency::EUR)).is_err());
    }
}
