//! [`AdyenTerminal`]: the [`PaymentTerminal`] port on Adyen's cloud Terminal API (synchronous `/sync`).
//!
//! `status` trusts a found payment only when the answer is for the asked sale: a repeated `PaymentResponse`
//! whose `SaleTransactionID.TransactionID` is missing or another sale reference, or a repeated message of
//! another `ServiceID`, is `Unexpected` (the asked sale's outcome is unknown), never that sale's outcome.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use commerce_ports::terminal::{
    OfflineCardRead, OfflineForwardRequest, PaymentTerminal, TerminalCapabilities, TerminalPaymentRequest,
    TerminalPaymentResult, TerminalRefundRequest,
};
use commerce_ports::{ErrorKind, IdempotencyKey, PaymentError, TerminalError};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::client::AdyenClient;
use crate::config::AdyenConfig;
use crate::nexo::{
    AbortRequest, AmountsReq, AnswerEnvelope, Message, MessageHeader, MessageReference, OriginalPoiTransaction,
    PaymentRequest, PaymentTransaction, ResponseMessage, ReversalRequest, SaleData, TransactionIdentification,
    TransactionStatusRequest, TransactionStatusResponse, failure, from_major_units, major_units,
};

/// A [`PaymentTerminal`] on Adyen's cloud Terminal API, synchronous mode.
///
/// Each call is one `SaleToPOIRequest` POSTed to `/sync` (`X-API-Key`): payments (`PaymentRequest`), referenced
/// refunds (`ReversalRequest`), `status` (`TransactionStatusRequest`) and `abort` (`AbortRequest`). A payment's
/// `ServiceID` is derived from the sale reference, so `status` and `abort` can name it from the reference alone.
/// Two references can derive the same `ServiceID` (it keeps about 36 bits of a hash), so `status` accepts a found
/// payment only when its answer is for the asked sale: the repeated message's `ServiceID`, when named, is the one
/// asked for, and the repeated `PaymentResponse`'s `SaleTransactionID.TransactionID` is the sale reference asked
/// for; any other answer is `Unexpected` (the outcome of the asked sale is unknown), never a found payment, a
/// decline or `NotFound`.
/// Adyen terminals store and forward offline payments by themselves; this adapter declares no offline
/// capability and answers `read_offline` / `forward_offline` with `Unsupported`.
#[derive(Clone)]
pub struct AdyenTerminal {
    client: AdyenClient,
    sale_id: String,
    poi_id: Option<String>,
    terminal_url: String,
    counter: Arc<AtomicU64>,
}

impl fmt::Debug for AdyenTerminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdyenTerminal")
            .field("terminal_base_url", &self.terminal_url)
            .field("sale_id", &self.sale_id)
            .field("poi_id", &self.poi_id)
            .finish_non_exhaustive()
    }
}

/// The `ServiceID` of the payment with sale reference `reference`: `P` and nine hex digits of
/// SHA-256(`SaleID:reference`), at most 10 characters as Adyen requires.
pub fn payment_service_id(sale_id: &str, reference: &str) -> String {
    let digest = hex::encode(Sha256::digest(format!("{sale_id}:{reference}").as_bytes()));
    format!("P{}", digest.get(..9).unwrap_or("000000000"))
}

/// `error` as a failed status lookup (`Unexpected`, saying nothing about the payment) when its kind is one of
/// `kinds`, which would otherwise be read as the payment's own answer.
fn lookup_failed(error: TerminalError, kinds: &[ErrorKind]) -> TerminalError {
    if kinds.contains(&error.kind()) {
        TerminalError::new(ErrorKind::Unexpected, "status", format!("the status lookup failed: {}", error.message()))
    } else {
        error
    }
}

/// The `ServiceID` of a refund: `R` and 9 hex digits of a SHA-256 over the `SaleID` and the refund's
/// idempotency key, so every retry of one refund sends the same `ServiceID`.
pub fn refund_service_id(sale_id: &str, key: &IdempotencyKey) -> String {
    let digest = hex::encode(Sha256::digest(format!("{sale_id}:refund:{key}").as_bytes()));
    format!("R{}", digest.get(..9).unwrap_or("000000000"))
}

/// Checks that a status answer is for the asked sale: `reference`, looked up with `ServiceID` `service_id`.
/// `repeated_service_id` is the repeated message's `MessageHeader.ServiceID` and `answered` the repeated
/// `PaymentResponse`'s `SaleTransactionID.TransactionID`, when the answer carries them.
///
/// # Errors
/// `Unexpected` when the repeated message names another `ServiceID`, or the repeated payment names another sale
/// or none: the answer is about some other sale, so the outcome of `reference` is unknown.
fn check_repeated_sale(
    reference: &str,
    service_id: &str,
    repeated_service_id: Option<&str>,
    answered: Option<&str>,
) -> Result<(), TerminalError> {
    let answered_sale = || match answered {
        Some(answered) => format!("sale reference `{answered}`"),
        None => "no sale reference (no SaleData.SaleTransactionID.TransactionID)".to_owned(),
    };
    let what = match (repeated_service_id, answered) {
        (Some(repeated), _) if repeated != service_id => {
            format!("the repeated message of ServiceID {repeated}, with {}", answered_sale())
        }
        (_, Some(answered)) if answered == reference => return Ok(()),
        _ => format!("a repeated payment with {}", answered_sale()),
    };
    Err(TerminalError::new(
        ErrorKind::Unexpected,
        "status",
        format!(
            "the status lookup of sale reference `{reference}` (ServiceID {service_id}) was answered with {what}: \
             that answer is not about the asked sale, so the outcome of sale `{reference}` is unknown and must be \
             checked in Adyen's records (Customer Area transactions, AUTHORISATION notifications)"
        ),
    ))
}

/// The outcome of sale `reference` from the answer to its status lookup with `ServiceID` `service_id`.
///
/// Only the terminal's own `NotFound` says it never saw the sale (then paying is safe), and only the repeated
/// payment's own decline is the sale's: a failed lookup is not a decline, and an unknown or not-found answer
/// inside a repeated response is not "never saw it". A repeated payment is read only once
/// [`check_repeated_sale`] has shown it is the asked sale's, so another sale's approval or decline is never
/// reported as this sale's.
fn status_result(
    response: TransactionStatusResponse,
    reference: &str,
    service_id: &str,
) -> Result<TerminalPaymentResult, TerminalError> {
    const OP: &str = "status";
    if response.response.result != "Success" {
        return Err(lookup_failed(failure(OP, &response.response), &[ErrorKind::Declined]));
    }
    let repeated = response
        .repeated_message_response
        .ok_or_else(|| TerminalError::new(ErrorKind::Unexpected, OP, "status without the repeated PaymentResponse"))?;
    let repeated_service_id = repeated.service_id().map(str::to_owned);
    let payment = repeated
        .repeated_response_message_body
        .and_then(|b| b.payment_response)
        .ok_or_else(|| TerminalError::new(ErrorKind::Unexpected, OP, "status without the repeated PaymentResponse"))?;
    check_repeated_sale(reference, service_id, repeated_service_id.as_deref(), payment.sale_transaction_id())?;
    // The amount of the original request is unknown here; the answer's AuthorizedAmount is required.
    payment.result(OP, None).map_err(|e| lookup_failed(e, &[ErrorKind::OutcomeUnknown, ErrorKind::NotFound]))
}

fn config_error(error: PaymentError) -> TerminalError {
    TerminalError::new(ErrorKind::Configuration, "configure", error.message().to_owned())
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

impl AdyenTerminal {
    /// A terminal adapter for `config` (its `terminal_base_url`, `terminal_timeout` and `sale_id`).
    ///
    /// # Errors
    /// `Configuration` when the HTTP client cannot be built.
    pub fn new(config: AdyenConfig) -> Result<AdyenTerminal, TerminalError> {
        let client = AdyenClient::new(&config).map_err(config_error)?;
        let seed = OffsetDateTime::now_utc().unix_timestamp_nanos();
        let seed = u64::try_from(seed.rem_euclid(1_000_000_000)).unwrap_or(0);
        Ok(AdyenTerminal {
            client,
            sale_id: config.sale_id,
            poi_id: config.poi_id,
            terminal_url: config.terminal_base_url.to_string(),
            counter: Arc::new(AtomicU64::new(seed)),
        })
    }

    /// The request's terminal, else the configured `poi_id`.
    fn terminal<'a>(&'a self, operation: &'static str, requested: &'a str) -> Result<&'a str, TerminalError> {
        match (requested.trim(), self.poi_id.as_deref()) {
            ("", Some(configured)) => Ok(configured),
            ("", None) => Err(TerminalError::invalid(operation, "terminal_id is empty and no `poi_id` is configured")),
            _ => Ok(requested),
        }
    }

    /// A fresh `ServiceID` for a message that is not a payment: a letter and nine digits.
    fn service_id(&self, prefix: char) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) % 1_000_000_000;
        format!("{prefix}{n:09}")
    }

    async fn send(
        &self,
        operation: &'static str,
        message: Message<'_>,
        mutating: bool,
    ) -> Result<Option<ResponseMessage>, TerminalError> {
        let body = message
            .into_json()
            .map_err(|e| TerminalError::new(ErrorKind::Unexpected, operation, format!("cannot encode: {e}")))?;
        let bytes = self.client.sync(operation, body, mutating).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.as_ref() == b"ok" {
            return Ok(None);
        }
        let lost = |detail: String| {
            let kind = if mutating { ErrorKind::OutcomeUnknown } else { ErrorKind::Unexpected };
            TerminalError::new(kind, operation, format!("the terminal's answer could not be read: {detail}"))
        };
        let envelope: AnswerEnvelope = serde_json::from_slice(&bytes)
            .map_err(|e| lost(format!("line {}, column {}: {:?}", e.line(), e.column(), e.classify())))?;
        if let Some(event) = envelope.event.and_then(|e| e.event_notification) {
            let details = event.event_details.unwrap_or_default();
            let reason = url::form_urlencoded::parse(details.as_bytes())
                .find(|(k, _)| k == "message")
                .map(|(_, v)| v.into_owned())
                .unwrap_or(details);
            return Err(TerminalError::new(
                ErrorKind::InvalidRequest,
                operation,
                format!("the terminal rejected the message ({}): {reason}", event.event_to_notify.unwrap_or_default()),
            ));
        }
        envelope.response.map(Some).ok_or_else(|| lost("no SaleToPOIResponse".to_owned()))
    }
}

#[async_trait]
impl PaymentTerminal for AdyenTerminal {
    fn capabilities(&self) -> TerminalCapabilities {
        let mut caps = TerminalCapabilities::default();
        caps.refunds = true;
        caps.abort = true;
        caps.offline = None;
        caps
    }

    async fn pay(&self, request: TerminalPaymentRequest) -> Result<TerminalPaymentResult, TerminalError> {
        const OP: &str = "pay";
        if request.reference.trim().is_empty() {
            return Err(TerminalError::invalid(OP, "reference must not be empty"));
        }
        let poi_id = self.terminal(OP, &request.terminal_id)?;
        let amount = major_units(OP, request.amount)?;
        let service_id = payment_service_id(&self.sale_id, &request.reference);
        let currency = request.amount.currency();
        let time_stamp = now();
        let mut message = Message::new(MessageHeader::new("Payment", &service_id, &self.sale_id, poi_id));
        message.payment_request = Some(PaymentRequest {
            sale_data: SaleData {
                sale_transaction_id: TransactionIdentification {
                    transaction_id: &request.reference,
                    time_stamp: &time_stamp,
                },
                sale_reference_id: request.register.as_str(),
            },
            payment_transaction: PaymentTransaction {
                amounts_req: AmountsReq { currency: currency.code(), requested_amount: &amount },
            },
        });
        let answer = self.send(OP, message, true).await?;
        let response = answer.and_then(|a| a.payment_response).ok_or_else(|| {
            TerminalError::new(
                ErrorKind::OutcomeUnknown,
                OP,
                "the answer holds no PaymentResponse; resolve with status",
            )
        })?;
        // The direct answer to this request; if it names another sale, it says nothing about this one.
        if let Some(answered) = response.sale_transaction_id().filter(|answered| *answered != request.reference) {
            return Err(TerminalError::new(
                ErrorKind::OutcomeUnknown,
                OP,
                format!(
                    "the payment of sale reference `{}` (ServiceID {service_id}) was answered with the payment of \
                     sale reference `{answered}`; resolve with status",
                    request.reference
                ),
            ));
        }
        response.result(OP, Some(request.amount))
    }

    async fn refund(&self, request: TerminalRefundRequest) -> Result<TerminalPaymentResult, TerminalError> {
        const OP: &str = "refund";
        if request.provider_reference.trim().is_empty() {
            return Err(TerminalError::invalid(OP, "provider_reference must not be empty"));
        }
        let amount = major_units(OP, request.amount)?;
        let poi_id = self.terminal(OP, &request.terminal_id)?;
        // Derived from the key: a retry with the same key re-sends the same ServiceID, which the terminal refuses
        // as already used instead of refunding twice.
        let service_id = refund_service_id(&self.sale_id, &request.idempotency_key);
        let time_stamp = now();
        let mut message = Message::new(MessageHeader::new("Reversal", &service_id, &self.sale_id, poi_id));
        message.reversal_request = Some(ReversalRequest {
            original_poi_transaction: OriginalPoiTransaction {
                poi_transaction_id: TransactionIdentification {
                    transaction_id: &request.provider_reference,
                    time_stamp: &time_stamp,
                },
            },
            reversal_reason: "MerchantCancel",
            reversed_amount: &amount,
        });
        let answer = self.send(OP, message, true).await.map_err(|e| {
            if e.kind() == ErrorKind::OutcomeUnknown {
                TerminalError::new(
                    ErrorKind::OutcomeUnknown,
                    OP,
                    format!(
                        "{}; `status` finds payments, not refunds: the REFUND notification or Adyen's transaction list \
                         tells whether refund {service_id} happened, and a retry with the same key re-sends that \
                         ServiceID, which the terminal refuses instead of refunding twice",
                        e.message()
                    ),
                )
            } else {
                e
            }
        })?;
        let response = answer
            .and_then(|a| a.reversal_response)
            .ok_or_else(|| TerminalError::new(ErrorKind::OutcomeUnknown, OP, "the answer holds no ReversalResponse"))?;
        if response.response.result != "Success" {
            return Err(failure(OP, &response.response));
        }
        let reference = response
            .poi_data
            .and_then(|d| d.poi_transaction_id)
            .and_then(|t| t.transaction_id)
            .unwrap_or_else(|| request.provider_reference.clone());
        let refunded = match response.reversed_amount.as_deref() {
            Some(raw) => from_major_units(raw, request.amount.currency())
                .map_err(|e| TerminalError::new(ErrorKind::OutcomeUnknown, OP, format!("ReversedAmount: {e}")))?,
            None => request.amount,
        };
        Ok(TerminalPaymentResult::new(reference, refunded))
    }

    async fn abort(&self, terminal_id: &str, reference: &str) -> Result<(), TerminalError> {
        const OP: &str = "abort";
        let terminal_id = self.terminal(OP, terminal_id)?;
        let target = payment_service_id(&self.sale_id, reference);
        let service_id = self.service_id('A');
        let mut message = Message::new(MessageHeader::new("Abort", &service_id, &self.sale_id, terminal_id));
        message.abort_request = Some(AbortRequest {
            message_reference: MessageReference {
                message_category: "Payment",
                sale_id: &self.sale_id,
                service_id: &target,
                poi_id: Some(terminal_id),
            },
            abort_reason: "MerchantAbort",
        });
        // Adyen accepts an abort without saying whether anything was in progress.
        self.send(OP, message, false).await.map(|_| ())
    }

    /// Looks the payment of sale `reference` up by its derived `ServiceID` (`TransactionStatusRequest`).
    ///
    /// `NotFound` only when the terminal says it never saw that `ServiceID`. A repeated payment is this sale's
    /// outcome only when its `SaleTransactionID.TransactionID` is `reference` and the repeated message's
    /// `ServiceID` (when named) is the one asked for; otherwise (a `ServiceID` collision of two references, or an
    /// answer for another message) the answer is `Unexpected` and the sale's outcome must be checked in Adyen's
    /// records. This check comes before the repeated result is read, so another sale's decline is not reported
    /// as this sale's either.
    async fn status(&self, terminal_id: &str, reference: &str) -> Result<TerminalPaymentResult, TerminalError> {
        const OP: &str = "status";
        let terminal_id = self.terminal(OP, terminal_id)?;
        let target = payment_service_id(&self.sale_id, reference);
        let service_id = self.service_id('S');
        let mut message =
            Message::new(MessageHeader::new("TransactionStatus", &service_id, &self.sale_id, terminal_id));
        message.transaction_status_request = Some(TransactionStatusRequest {
            message_reference: MessageReference {
                message_category: "Payment",
                sale_id: &self.sale_id,
                service_id: &target,
                poi_id: None,
            },
            receipt_reprint_flag: true,
            document_qualifier: ["CashierReceipt"],
        });
        // Only the terminal's own `NotFound` says it never saw the sale (then paying is safe), and only the
        // repeated payment's own decline is the sale's: an HTTP 404 is the endpoint's, a failed lookup is not a
        // decline, an unknown or not-found answer inside a repeated response is not "never saw it", and a
        // repeated payment of another sale (a ServiceID collision, or an answer for another message) is
        // `Unexpected`, checked before its result is read (see `status_result`).
        let answer = self.send(OP, message, false).await.map_err(|e| lookup_failed(e, &[ErrorKind::NotFound]))?;
        let response = answer.and_then(|a| a.transaction_status_response).ok_or_else(|| {
            TerminalError::new(ErrorKind::Unexpected, OP, "the answer holds no TransactionStatusResponse")
        })?;
        status_result(response, reference, &target)
    }

    async fn read_offline(&self, _request: &TerminalPaymentRequest) -> Result<OfflineCardRead, TerminalError> {
        Err(offline_unsupported("read_offline"))
    }

    async fn forward_offline(&self, _request: OfflineForwardRequest) -> Result<TerminalPaymentResult, TerminalError> {
        Err(offline_unsupported("forward_offline"))
    }
}

fn offline_unsupported(operation: &'static str) -> TerminalError {
    TerminalError::new(
        ErrorKind::Unsupported,
        operation,
        "Adyen terminals store and forward offline payments by themselves (configured in the Customer Area); the \
         point of sale neither reads cards offline nor forwards them",
    )
}

#[cfg(test)]
mod tests {
    use commerce_ports::{Currency, Money};
    use serde_json::{Value, json};

    use super::*;
    use crate::nexo::AnswerEnvelope;

    const SERVICE_ID: &str = "P0123abcde";

    /// A repeated `PaymentResponse` of sale `sale` (no `SaleData` when `None`), approved or declined.
    fn repeated_payment(sale: Option<&str>, approved: bool) -> Value {
        let mut payment = if approved {
            json!({ "Response": { "Result": "Success" },
                "POIData": { "POITransactionID": { "TransactionID": "SIM1.881", "TimeStamp": "t" } },
                "PaymentResult": { "AmountsResp": { "Currency": "EUR", "AuthorizedAmount": 10.05 } } })
        } else {
            json!({ "Response": { "Result": "Failure", "ErrorCondition": "Refusal",
                "AdditionalResponse": "message=DECLINED&refusalReason=05" },
                "POIData": { "POITransactionID": { "TransactionID": "SIM1.881", "TimeStamp": "t" } } })
        };
        if let Some(sale) = sale {
            payment["SaleData"] = json!({ "SaleTransactionID": { "TransactionID": sale, "TimeStamp": "t" } });
        }
        payment
    }

    /// The outcome `status_result` reads for sale `order-1` (asked with [`SERVICE_ID`]) from a canned
    /// `SaleToPOIResponse` whose repeated message has `ServiceID` `repeated_service_id` and body `payment`.
    fn status_of(repeated_service_id: Option<&str>, payment: Value) -> Result<TerminalPaymentResult, TerminalError> {
        let mut header = json!({ "MessageCategory": "Payment", "SaleID": "commerce" });
        if let Some(id) = repeated_service_id {
            header["ServiceID"] = json!(id);
        }
        let body = json!({ "SaleToPOIResponse": {
            "MessageHeader": { "MessageCategory": "TransactionStatus", "MessageType": "Response",
                "ServiceID": "S000000001", "SaleID": "commerce", "POIID": "V400m-1" },
            "TransactionStatusResponse": { "Response": { "Result": "Success" },
                "RepeatedMessageResponse": { "MessageHeader": header,
                    "RepeatedResponseMessageBody": { "PaymentResponse": payment } } } } });
        let envelope: AnswerEnvelope = serde_json::from_str(&body.to_string()).unwrap_or_else(|e| panic!("{e}"));
        let response = envelope
            .response
            .and_then(|r| r.transaction_status_response)
            .unwrap_or_else(|| panic!("no TransactionStatusResponse"));
        status_result(response, "order-1", SERVICE_ID)
    }

    fn unexpected(result: Result<TerminalPaymentResult, TerminalError>) -> TerminalError {
        match result {
            Ok(found) => panic!("another sale's answer was accepted: {found:?}"),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Unexpected, "{e}");
                assert!(e.decline().is_none(), "{e}");
                assert!(e.message().contains("`order-1`") && e.message().contains(SERVICE_ID), "{e}");
                assert!(e.message().contains("unknown") && e.message().contains("Adyen's records"), "{e}");
                e
            }
        }
    }

    #[test]
    fn a_status_answer_for_the_asked_sale_is_its_outcome() {
        let found = status_of(Some(SERVICE_ID), repeated_payment(Some("order-1"), true));
        let found = found.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (found.provider_reference.as_str(), found.amount),
            ("SIM1.881", Money::from_minor(1_005, Currency::EUR))
        );
        // A repeated message that names no ServiceID is still checked by its sale reference.
        assert!(status_of(None, repeated_payment(Some("order-1"), true)).is_ok());
        // The asked sale's own decline stays a decline.
        let declined = status_of(Some(SERVICE_ID), repeated_payment(Some("order-1"), false)).err();
        assert_eq!(declined.map(|e| e.kind()), Some(ErrorKind::Declined));
    }

    #[test]
    fn a_status_answer_for_another_sale_reference_is_unexpected() {
        let e = unexpected(status_of(Some(SERVICE_ID), repeated_payment(Some("order-2"), true)));
        assert!(e.message().contains("sale reference `order-2`"), "{e}");
        unexpected(status_of(None, repeated_payment(Some("order-2"), true)));
        unexpected(status_of(Some(SERVICE_ID), repeated_payment(Some(""), true)));
    }

    #[test]
    fn a_status_answer_for_another_service_id_is_unexpected() {
        let e = unexpected(status_of(Some("P999999999"), repeated_payment(Some("order-1"), true)));
        assert!(e.message().contains("ServiceID P999999999"), "{e}");
    }

    #[test]
    fn a_status_answer_naming_no_sale_is_unexpected() {
        let e = unexpected(status_of(Some(SERVICE_ID), repeated_payment(None, true)));
        assert!(e.message().contains("no sale reference"), "{e}");
        let mut no_id = repeated_payment(None, true);
        no_id["SaleData"] = json!({ "SaleTransactionID": { "TimeStamp": "t" } });
        unexpected(status_of(Some(SERVICE_ID), no_id));
    }

    #[test]
    fn another_sales_decline_is_unexpected_not_declined() {
        let e = unexpected(status_of(Some(SERVICE_ID), repeated_payment(Some("order-2"), false)));
        assert_eq!(e.provider_code(), None, "{e}");
        unexpected(status_of(Some("P999999999"), repeated_payment(Some("order-1"), false)));
        unexpected(status_of(Some(SERVICE_ID), repeated_payment(None, false)));
    }

    #[test]
    fn repeated_sale_checks_are_pure() {
        assert!(check_repeated_sale("a", "P1", Some("P1"), Some("a")).is_ok());
        assert!(check_repeated_sale("a", "P1", None, Some("a")).is_ok());
        for (repeated, answered) in [(Some("P2"), Some("a")), (Some("P1"), Some("b")), (None, None), (Some("P2"), None)]
        {
            let kind = check_repeated_sale("a", "P1", repeated, answered).err().map(|e| e.kind());
            assert_eq!(kind, Some(ErrorKind::Unexpected), "{repeated:?} {answered:?}");
        }
    }

    #[test]
    fn payment_service_ids_are_stable_short_and_distinct() {
        let a = payment_service_id("commerce", "order-1");
        assert_eq!(a.len(), 10);
        assert_eq!(a, payment_service_id("commerce", "order-1"));
        assert_ne!(a, payment_service_id("commerce", "order-2"));
        assert_ne!(a, payment_service_id("other", "order-1"));
    }
}
