//! Terminal API (nexo) shapes <-> port types: `SaleToPOIRequest` bodies, `SaleToPOIResponse` answers, and
//! amounts as exact decimals in major units.
//!
//! `RequestedAmount` and `AuthorizedAmount` are JSON numbers in major units (`10.05` for 1005 EUR cents). They
//! are written and read as raw JSON number text, never through `f64`: 1005 cents go out as `10.05`, 1234 fils
//! as `1.234`, 1 yen as `1`, and an answer's `10.05` comes back as exactly 1005 cents.

use std::str::FromStr;

use commerce_ports::terminal::{EntryMode, TerminalPaymentResult};
use commerce_ports::{Currency, DeclineDetails, ErrorKind, Money, TerminalError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// An amount in major units as raw JSON number text: `Money::to_decimal` of 1005 EUR cents is `10.05`.
///
/// # Errors
/// `InvalidRequest` when the amount is not positive.
pub(crate) fn major_units(operation: &'static str, amount: Money) -> Result<Box<RawValue>, TerminalError> {
    if !amount.is_positive() {
        return Err(TerminalError::invalid(operation, format!("amount must be positive, got {amount}")));
    }
    RawValue::from_string(amount.to_decimal().to_string())
        .map_err(|e| TerminalError::new(ErrorKind::Unexpected, operation, format!("amount {amount}: {e}")))
}

/// Reads a raw JSON number in major units of `currency` back into minor units, exactly.
pub(crate) fn from_major_units(raw: &RawValue, currency: Currency) -> Result<Money, String> {
    let text = raw.get().trim();
    let value = Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .map_err(|e| format!("amount `{text}` is not a decimal number: {e}"))?;
    Money::from_decimal(value, currency).map_err(|e| format!("amount `{text}` {currency}: {e}"))
}

/// `MessageHeader` of a request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MessageHeader<'a> {
    pub(crate) protocol_version: &'static str,
    pub(crate) message_class: &'static str,
    pub(crate) message_category: &'static str,
    pub(crate) message_type: &'static str,
    #[serde(rename = "ServiceID")]
    pub(crate) service_id: &'a str,
    #[serde(rename = "SaleID")]
    pub(crate) sale_id: &'a str,
    #[serde(rename = "POIID")]
    pub(crate) poi_id: &'a str,
}

impl<'a> MessageHeader<'a> {
    pub(crate) fn new(category: &'static str, service_id: &'a str, sale_id: &'a str, poi_id: &'a str) -> Self {
        MessageHeader {
            protocol_version: "3.0",
            message_class: "Service",
            message_category: category,
            message_type: "Request",
            service_id,
            sale_id,
            poi_id,
        }
    }
}

/// `{"TransactionID": ..., "TimeStamp": ...}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TransactionIdentification<'a> {
    #[serde(rename = "TransactionID")]
    pub(crate) transaction_id: &'a str,
    pub(crate) time_stamp: &'a str,
}

/// `{"MessageCategory": "Payment", "SaleID": ..., "ServiceID": ...}`: the request a status or abort is about.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct MessageReference<'a> {
    pub(crate) message_category: &'static str,
    #[serde(rename = "SaleID")]
    pub(crate) sale_id: &'a str,
    #[serde(rename = "ServiceID")]
    pub(crate) service_id: &'a str,
    #[serde(rename = "POIID", skip_serializing_if = "Option::is_none")]
    pub(crate) poi_id: Option<&'a str>,
}

/// The body of a request: `{"SaleToPOIRequest": {"MessageHeader": ..., "<Kind>Request": ...}}`.
#[derive(Debug, Serialize)]
pub(crate) struct Envelope<'a> {
    #[serde(rename = "SaleToPOIRequest")]
    pub(crate) request: Message<'a>,
}

/// A request message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Message<'a> {
    pub(crate) message_header: MessageHeader<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) payment_request: Option<PaymentRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reversal_request: Option<ReversalRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) transaction_status_request: Option<TransactionStatusRequest<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) abort_request: Option<AbortRequest<'a>>,
}

impl<'a> Message<'a> {
    pub(crate) fn new(header: MessageHeader<'a>) -> Message<'a> {
        Message {
            message_header: header,
            payment_request: None,
            reversal_request: None,
            transaction_status_request: None,
            abort_request: None,
        }
    }

    pub(crate) fn into_json(self) -> Result<String, serde_json::Error> {
        serde_json::to_string(&Envelope { request: self })
    }
}

/// `PaymentRequest`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PaymentRequest<'a> {
    pub(crate) sale_data: SaleData<'a>,
    pub(crate) payment_transaction: PaymentTransaction<'a>,
}

/// `SaleData`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct SaleData<'a> {
    #[serde(rename = "SaleTransactionID")]
    pub(crate) sale_transaction_id: TransactionIdentification<'a>,
    #[serde(rename = "SaleReferenceID")]
    pub(crate) sale_reference_id: &'a str,
}

/// `PaymentTransaction`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PaymentTransaction<'a> {
    pub(crate) amounts_req: AmountsReq<'a>,
}

/// `AmountsReq`: currency and the amount in major units as a JSON number.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AmountsReq<'a> {
    pub(crate) currency: &'a str,
    pub(crate) requested_amount: &'a RawValue,
}

/// `ReversalRequest`: a referenced refund of an earlier payment.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReversalRequest<'a> {
    #[serde(rename = "OriginalPOITransaction")]
    pub(crate) original_poi_transaction: OriginalPoiTransaction<'a>,
    pub(crate) reversal_reason: &'static str,
    pub(crate) reversed_amount: &'a RawValue,
}

/// `OriginalPOITransaction`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct OriginalPoiTransaction<'a> {
    #[serde(rename = "POITransactionID")]
    pub(crate) poi_transaction_id: TransactionIdentification<'a>,
}

/// `TransactionStatusRequest`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TransactionStatusRequest<'a> {
    pub(crate) message_reference: MessageReference<'a>,
    pub(crate) receipt_reprint_flag: bool,
    pub(crate) document_qualifier: [&'static str; 1],
}

/// `AbortRequest`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AbortRequest<'a> {
    pub(crate) message_reference: MessageReference<'a>,
    pub(crate) abort_reason: &'static str,
}

// ------------------------------------------------------------------------------------------------------------
// Answers
// ------------------------------------------------------------------------------------------------------------

/// `{"SaleToPOIResponse": {...}}`, or `{"SaleToPOIRequest": {"EventNotification": ...}}` when the terminal side
/// rejected the message.
#[derive(Debug, Deserialize)]
pub(crate) struct AnswerEnvelope {
    #[serde(rename = "SaleToPOIResponse")]
    pub(crate) response: Option<ResponseMessage>,
    #[serde(rename = "SaleToPOIRequest")]
    pub(crate) event: Option<EventMessage>,
}

/// A response message; only the body the request asked for is read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ResponseMessage {
    pub(crate) payment_response: Option<PaymentResponse>,
    pub(crate) reversal_response: Option<ReversalResponse>,
    pub(crate) transaction_status_response: Option<TransactionStatusResponse>,
}

/// `{"EventNotification": {"EventToNotify": "Reject", "EventDetails": "message=..."}}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EventMessage {
    pub(crate) event_notification: Option<EventNotification>,
}

/// An event notification.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct EventNotification {
    pub(crate) event_to_notify: Option<String>,
    pub(crate) event_details: Option<String>,
}

/// `Response`: `Result` (`Success`, `Failure`, `Partial`), `ErrorCondition`, `AdditionalResponse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ResponseStatus {
    pub(crate) result: String,
    pub(crate) error_condition: Option<String>,
    pub(crate) additional_response: Option<String>,
}

/// `POIData`.
#[derive(Debug, Deserialize)]
pub(crate) struct PoiData {
    #[serde(rename = "POITransactionID")]
    pub(crate) poi_transaction_id: Option<TransactionId>,
}

/// A `TransactionID`.
#[derive(Debug, Deserialize)]
pub(crate) struct TransactionId {
    #[serde(rename = "TransactionID")]
    pub(crate) transaction_id: Option<String>,
}

/// `PaymentResponse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PaymentResponse {
    pub(crate) response: ResponseStatus,
    /// The sale the answer is about: its `SaleTransactionID.TransactionID` echoes the request's sale reference.
    pub(crate) sale_data: Option<SaleDataResp>,
    #[serde(rename = "POIData")]
    pub(crate) poi_data: Option<PoiData>,
    pub(crate) payment_result: Option<PaymentResult>,
}

/// `SaleData` of an answer; only `SaleTransactionID` is read.
#[derive(Debug, Deserialize)]
pub(crate) struct SaleDataResp {
    #[serde(rename = "SaleTransactionID")]
    pub(crate) sale_transaction_id: Option<TransactionId>,
}

/// `PaymentResult`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PaymentResult {
    pub(crate) amounts_resp: Option<AmountsResp>,
    pub(crate) payment_instrument_data: Option<PaymentInstrumentData>,
    pub(crate) payment_acquirer_data: Option<PaymentAcquirerData>,
}

/// `AmountsResp`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct AmountsResp {
    pub(crate) currency: Option<String>,
    pub(crate) authorized_amount: Option<Box<RawValue>>,
}

/// `PaymentInstrumentData`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PaymentInstrumentData {
    pub(crate) card_data: Option<CardData>,
}

/// `CardData`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct CardData {
    pub(crate) payment_brand: Option<String>,
    pub(crate) masked_pan: Option<String>,
    #[serde(default)]
    pub(crate) entry_mode: Vec<String>,
}

/// `PaymentAcquirerData`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PaymentAcquirerData {
    #[serde(rename = "AcquirerTransactionID")]
    pub(crate) acquirer_transaction_id: Option<TransactionId>,
}

/// `ReversalResponse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ReversalResponse {
    pub(crate) response: ResponseStatus,
    #[serde(rename = "POIData")]
    pub(crate) poi_data: Option<PoiData>,
    pub(crate) reversed_amount: Option<Box<RawValue>>,
}

/// `TransactionStatusResponse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct TransactionStatusResponse {
    pub(crate) response: ResponseStatus,
    pub(crate) repeated_message_response: Option<RepeatedMessageResponse>,
}

/// `RepeatedMessageResponse`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RepeatedMessageResponse {
    /// The header of the repeated message: its `ServiceID` names the request it answered.
    pub(crate) message_header: Option<RepeatedHeader>,
    pub(crate) repeated_response_message_body: Option<RepeatedBody>,
}

/// `MessageHeader` of a repeated message; only `ServiceID` is read.
#[derive(Debug, Deserialize)]
pub(crate) struct RepeatedHeader {
    #[serde(rename = "ServiceID")]
    pub(crate) service_id: Option<String>,
}

impl RepeatedMessageResponse {
    /// The `MessageHeader.ServiceID` of the repeated message, when the answer names one.
    pub(crate) fn service_id(&self) -> Option<&str> {
        self.message_header.as_ref().and_then(|h| h.service_id.as_deref())
    }
}

/// `RepeatedResponseMessageBody`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RepeatedBody {
    pub(crate) payment_response: Option<PaymentResponse>,
}

/// A value of `AdditionalResponse` (URL-encoded `key=value&...`).
pub(crate) fn additional(status: &ResponseStatus, key: &str) -> Option<String> {
    let text = status.additional_response.as_deref()?;
    url::form_urlencoded::parse(text.as_bytes()).find(|(k, _)| k == key).map(|(_, v)| v.into_owned())
}

/// The port error for a `Failure` result.
///
/// | ErrorCondition | kind |
/// | --- | --- |
/// | `Refusal`, `Cancel`, `Aborted`, `WrongPIN`, `InvalidCard`, `PaymentRestriction` and unknown ones | `Declined` |
/// | `Busy`, `InProgress` | `InProgress` |
/// | `NotFound` | `NotFound` |
/// | `MessageFormat`, `NotAllowed` | `InvalidRequest` |
/// | `UnavailableService`, `UnavailableDevice`, `UnreachableHost`, `DeviceOut`, `LoggedOut` | `Unavailable` |
pub(crate) fn failure(operation: &'static str, status: &ResponseStatus) -> TerminalError {
    let condition = status.error_condition.clone().unwrap_or_else(|| "Unknown".to_owned());
    let message = additional(status, "message").unwrap_or_else(|| format!("the terminal answered {condition}"));
    let kind = match condition.as_str() {
        "Busy" | "InProgress" => ErrorKind::InProgress,
        "NotFound" => ErrorKind::NotFound,
        "MessageFormat" | "NotAllowed" => ErrorKind::InvalidRequest,
        "UnavailableService" | "UnavailableDevice" | "UnreachableHost" | "DeviceOut" | "LoggedOut" => {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Declined,
    };
    let mut error =
        TerminalError::new(kind, operation, format!("{condition}: {message}")).with_provider_code(&condition);
    if kind == ErrorKind::Declined {
        let mut decline = DeclineDetails::default();
        decline.decline_code = additional(status, "refusalReason").or(Some(condition));
        error = error.with_decline(decline);
    }
    error
}

fn entry_mode(modes: &[String]) -> Option<EntryMode> {
    modes.iter().find_map(|mode| match mode.as_str() {
        "ICC" => Some(EntryMode::Chip),
        "Contactless" | "Tapped" => Some(EntryMode::Contactless),
        "MagStripe" => Some(EntryMode::Magstripe),
        "Keyed" | "Manual" => Some(EntryMode::Keyed),
        "Scanned" | "Mobile" => Some(EntryMode::QrWallet),
        _ => None,
    })
}

impl PaymentResponse {
    /// The `SaleData.SaleTransactionID.TransactionID` of the answer (the sale reference it is about), when it
    /// carries a non-empty one.
    pub(crate) fn sale_transaction_id(&self) -> Option<&str> {
        self.sale_data
            .as_ref()
            .and_then(|d| d.sale_transaction_id.as_ref())
            .and_then(|t| t.transaction_id.as_deref())
            .filter(|id| !id.is_empty())
    }

    /// An approved (`Success` or `Partial`) payment -> its result; a `Failure` -> the mapped error.
    /// `requested` is the amount asked for, when known (not for `status`); an answer without `AuthorizedAmount`
    /// reports it.
    pub(crate) fn result(
        self,
        operation: &'static str,
        requested: Option<Money>,
    ) -> Result<TerminalPaymentResult, TerminalError> {
        let unexpected = |message: String| TerminalError::new(ErrorKind::OutcomeUnknown, operation, message);
        match self.response.result.as_str() {
            "Success" | "Partial" => {}
            "Failure" => return Err(failure(operation, &self.response)),
            other => return Err(unexpected(format!("the terminal answered an unknown Result `{other}`"))),
        }
        let result = self.payment_result;
        let reference = self
            .poi_data
            .and_then(|d| d.poi_transaction_id)
            .and_then(|t| t.transaction_id)
            .or_else(|| {
                result
                    .as_ref()
                    .and_then(|r| r.payment_acquirer_data.as_ref())
                    .and_then(|a| a.acquirer_transaction_id.as_ref())
                    .and_then(|t| t.transaction_id.clone())
            })
            .filter(|r| !r.is_empty())
            .ok_or_else(|| unexpected("an approved payment without a POITransactionID".to_owned()))?;
        let amounts = result.as_ref().and_then(|r| r.amounts_resp.as_ref());
        let amount = match amounts.and_then(|a| a.authorized_amount.as_deref()) {
            Some(raw) => {
                let currency = match (amounts.and_then(|a| a.currency.as_deref()), requested) {
                    (Some(code), _) => {
                        Currency::from_code(code).map_err(|e| unexpected(format!("AmountsResp: {e}")))?
                    }
                    (None, Some(requested)) => requested.currency(),
                    (None, None) => return Err(unexpected("AmountsResp without Currency".to_owned())),
                };
                from_major_units(raw, currency).map_err(|e| unexpected(format!("AuthorizedAmount: {e}")))?
            }
            None => requested.ok_or_else(|| unexpected("AmountsResp without AuthorizedAmount".to_owned()))?,
        };
        let mut mapped = TerminalPaymentResult::new(reference, amount);
        if let Some(card) = result.and_then(|r| r.payment_instrument_data).and_then(|p| p.card_data) {
            mapped.scheme = card.payment_brand.clone();
            mapped.masked_pan = card.masked_pan.clone();
            mapped.entry_mode = entry_mode(&card.entry_mode);
        }
        Ok(mapped)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn major_units_are_exact_for_every_exponent() {
        let cases = [
            (Money::from_minor(1, Currency::JPY), "1"),
            (Money::from_minor(1_005, Currency::EUR), "10.05"),
            (Money::from_minor(1_000, Currency::EUR), "10.00"),
            (Money::from_minor(1, Currency::EUR), "0.01"),
            (Money::from_minor(1_234, Currency::KWD), "1.234"),
            (Money::from_minor(i64::MAX, Currency::EUR), "92233720368547758.07"),
            (Money::from_minor(123_456_789_012_345, Currency::JPY), "123456789012345"),
        ];
        for (money, text) in cases {
            let raw = major_units("pay", money).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(raw.get(), text);
            assert_eq!(from_major_units(&raw, money.currency()), Ok(money), "{text}");
        }
        assert!(major_units("pay", Money::zero(Currency::EUR)).is_err());
        let raw = |t: &str| RawValue::from_string(t.to_owned()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_major_units(&raw("10.050"), Currency::EUR), Ok(Money::from_minor(1_005, Currency::EUR)));
        assert_eq!(from_major_units(&raw("1.2e1"), Currency::EUR), Ok(Money::from_minor(1_200, Currency::EUR)));
        assert!(from_major_units(&raw("10.005"), Currency::EUR).is_err(), "more decimals than EUR has");
        assert!(from_major_units(&raw("0.5"), Currency::JPY).is_err());
    }

    #[test]
    fn requests_serialize_amounts_as_json_numbers() {
        let amount = major_units("pay", Money::from_minor(1_005, Currency::EUR)).unwrap_or_else(|e| panic!("{e}"));
        let mut message = Message::new(MessageHeader::new("Payment", "P123456789", "commerce", "V400m-1"));
        message.payment_request = Some(PaymentRequest {
            sale_data: SaleData {
                sale_transaction_id: TransactionIdentification { transaction_id: "order-1", time_stamp: "t" },
                sale_reference_id: "reg-1",
            },
            payment_transaction: PaymentTransaction {
                amounts_req: AmountsReq { currency: "EUR", requested_amount: &amount },
            },
        });
        let text = message.into_json().unwrap_or_default();
        assert!(text.contains(r#""RequestedAmount":10.05"#), "{text}");
        assert!(text.contains(r#""ProtocolVersion":"3.0""#) && text.contains(r#""POIID":"V400m-1""#), "{text}");
        assert!(!text.contains("ReversalRequest"), "{text}");
    }

    #[test]
    fn payment_responses_map_card_details_and_exact_amounts() {
        let body = json!({"Response": {"Result": "Success"},
            "POIData": {"POITransactionID": {"TransactionID": "tx.8835", "TimeStamp": "t"}},
            "PaymentResult": {"AmountsResp": {"Currency": "KWD", "AuthorizedAmount": 1.234},
                "PaymentInstrumentData": {"CardData": {"PaymentBrand": "mc", "MaskedPan": "541333 **** 9999", "EntryMode": ["Tapped"]}}}});
        let response: PaymentResponse = serde_json::from_str(&body.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let result =
            response.result("pay", Some(Money::from_minor(1_234, Currency::KWD))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(result.provider_reference, "tx.8835");
        assert_eq!(result.amount, Money::from_minor(1_234, Currency::KWD));
        assert_eq!((result.scheme.as_deref(), result.entry_mode), (Some("mc"), Some(EntryMode::Contactless)));
        assert_eq!(result.masked_pan.as_deref(), Some("541333 **** 9999"));
    }

    #[test]
    fn failures_map_error_conditions() {
        let status = |condition: &str| ResponseStatus {
            result: "Failure".into(),
            error_condition: Some(condition.into()),
            additional_response: Some("message=Declined%20online&refusalReason=05".into()),
        };
        let declined = failure("pay", &status("Refusal"));
        assert_eq!((declined.kind(), declined.provider_code()), (ErrorKind::Declined, Some("Refusal")));
        assert_eq!(declined.decline().and_then(|d| d.decline_code.as_deref()), Some("05"));
        assert!(declined.message().contains("Declined online"), "{declined}");
        for (condition, kind) in [
            ("Busy", ErrorKind::InProgress),
            ("NotFound", ErrorKind::NotFound),
            ("MessageFormat", ErrorKind::InvalidRequest),
            ("UnreachableHost", ErrorKind::Unavailable),
            ("Aborted", ErrorKind::Declined),
            ("Cancel", ErrorKind::Declined),
        ] {
            assert_eq!(failure("pay", &status(condition)).kind(), kind, "{condition}");
        }
    }
}
