//! [`PaymentsError`], the one error type of the payments domain.
//!
//! It has the shape of the port errors (decision 002): a [`ErrorKind`] callers branch on, a [`RetryClass`],
//! the [`Operation`] that failed, the intent concerned, a message naming what was wrong, and, when the
//! failure came from the provider, its code and decline details. Errors of the gateway and of the stores are
//! converted with private helpers that keep the original as the [`source`](std::error::Error::source).

use std::fmt;
use std::time::Duration;

use commerce_ports::{BoxError, DeclineDetails, ErrorKind, IntentId, MoneyError, PaymentError, RetryClass, StoreError};
use serde::{Deserialize, Serialize};

use crate::state::Operation;

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    retry: RetryClass,
    operation: Operation,
    intent: Option<IntentId>,
    message: String,
    provider_code: Option<String>,
    decline: Option<DeclineDetails>,
    retry_after: Option<Duration>,
    source: Option<BoxError>,
}

/// Why a payments operation failed.
///
/// Branch on [`kind`](PaymentsError::kind) and [`retry`](PaymentsError::retry), never on the message:
/// - [`ErrorKind::OutcomeUnknown`] (retry class [`RetryClass::SameKeyOnly`]): the provider may or may not have
///   acted. The intent is recorded as `OutcomeUnknown`; retry with the *same* idempotency key or call
///   [`Payments::reconcile`](crate::Payments::reconcile). It is never a plain failure.
/// - [`ErrorKind::InProgress`]: another request with the same key is running; retry later with the same key.
/// - [`ErrorKind::IdempotencyConflict`]: the key was first used for another operation or other parameters;
///   the message names the first operation.
/// - `InvalidRequest` / `InvalidState`: the operation does not fit the intent (amount, currency, state); the
///   message names the amounts, e.g. "capture of 30.00 EUR exceeds the capturable 20.00 EUR".
/// - `Declined` and other provider answers carry the provider's code and [`DeclineDetails`].
pub struct PaymentsError(Box<Inner>);

impl PaymentsError {
    /// An error of `kind` in `operation`, with the kind's default retry class.
    pub fn new(kind: ErrorKind, operation: Operation, message: impl Into<String>) -> PaymentsError {
        PaymentsError(Box::new(Inner {
            kind,
            retry: kind.default_retry(),
            operation,
            intent: None,
            message: message.into(),
            provider_code: None,
            decline: None,
            retry_after: None,
            source: None,
        }))
    }

    /// Names the intent concerned.
    pub fn with_intent(mut self, intent: IntentId) -> PaymentsError {
        self.0.intent = Some(intent);
        self
    }

    /// Overrides the retry class derived from the kind.
    pub fn with_retry(mut self, retry: RetryClass) -> PaymentsError {
        self.0.retry = retry;
        self
    }

    /// Attaches the provider's error code.
    pub fn with_provider_code(mut self, code: impl Into<String>) -> PaymentsError {
        self.0.provider_code = Some(code.into());
        self
    }

    /// Attaches decline details.
    pub fn with_decline(mut self, decline: DeclineDetails) -> PaymentsError {
        self.0.decline = Some(decline);
        self
    }

    /// Attaches the underlying error.
    pub fn with_source(mut self, source: impl Into<BoxError>) -> PaymentsError {
        self.0.source = Some(source.into());
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// Whether, and how, retrying can help.
    pub fn retry(&self) -> RetryClass {
        self.0.retry
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        self.0.operation
    }

    /// The intent concerned, if any.
    pub fn intent(&self) -> Option<&IntentId> {
        self.0.intent.as_ref()
    }

    /// The message, naming what was wrong.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The provider's error code, when the provider answered.
    pub fn provider_code(&self) -> Option<&str> {
        self.0.provider_code.as_deref()
    }

    /// Decline details, when the provider declined.
    pub fn decline(&self) -> Option<&DeclineDetails> {
        self.0.decline.as_ref()
    }

    /// How long the provider asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.0.retry_after
    }

    /// True when the outcome is unknown: retry with the same key or reconcile.
    pub fn is_outcome_unknown(&self) -> bool {
        self.0.kind == ErrorKind::OutcomeUnknown
    }

    /// Converts a gateway error, keeping kind, retry class, code, decline details and retry hint.
    pub(crate) fn from_gateway(operation: Operation, intent: Option<&IntentId>, error: PaymentError) -> PaymentsError {
        let mut e = PaymentsError::new(error.kind(), operation, format!("gateway: {}", error.message()))
            .with_retry(error.retry());
        e.0.intent = intent.cloned();
        e.0.provider_code = error.provider_code().map(str::to_owned);
        e.0.decline = error.decline().cloned();
        e.0.retry_after = error.retry_after();
        e.with_source(error)
    }

    /// Converts a store error, keeping its kind and retry class.
    pub(crate) fn from_store(operation: Operation, intent: Option<&IntentId>, error: StoreError) -> PaymentsError {
        let mut e = PaymentsError::new(error.kind(), operation, format!("store: {}", error.message()))
            .with_retry(error.retry());
        e.0.intent = intent.cloned();
        e.with_source(error)
    }

    /// Converts a money error (mixed currencies, overflow) into `InvalidRequest`.
    pub(crate) fn from_money(operation: Operation, intent: Option<&IntentId>, error: MoneyError) -> PaymentsError {
        let mut e = PaymentsError::new(ErrorKind::InvalidRequest, operation, error.to_string());
        e.0.intent = intent.cloned();
        e.with_source(error)
    }

    /// The form kept in the idempotency store (the source is not kept).
    pub(crate) fn to_stored(&self) -> StoredError {
        StoredError {
            kind: self.0.kind,
            retry: self.0.retry,
            operation: self.0.operation,
            intent: self.0.intent.clone(),
            message: self.0.message.clone(),
            provider_code: self.0.provider_code.clone(),
            decline: self.0.decline.clone(),
        }
    }
}

/// An error as stored with an idempotency record: `{"kind": "...", "message": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredError {
    kind: ErrorKind,
    retry: RetryClass,
    operation: Operation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    intent: Option<IntentId>,
    message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    decline: Option<DeclineDetails>,
}

impl From<StoredError> for PaymentsError {
    fn from(stored: StoredError) -> PaymentsError {
        PaymentsError(Box::new(Inner {
            kind: stored.kind,
            retry: stored.retry,
            operation: stored.operation,
            intent: stored.intent,
            message: stored.message,
            provider_code: stored.provider_code,
            decline: stored.decline,
            retry_after: None,
            source: None,
        }))
    }
}

impl fmt::Debug for PaymentsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.0;
        f.debug_struct("PaymentsError")
            .field("kind", &i.kind)
            .field("retry", &i.retry)
            .field("operation", &i.operation)
            .field("intent", &i.intent)
            .field("message", &i.message)
            .field("provider_code", &i.provider_code)
            .field("decline", &i.decline)
            .field("source", &i.source)
            .finish()
    }
}

impl fmt::Display for PaymentsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.0;
        write!(f, "payments {}", i.operation)?;
        if let Some(intent) = &i.intent {
            write!(f, " of intent `{intent}`")?;
        }
        write!(f, " failed ({}): {}", i.kind, i.message)?;
        if let Some(code) = &i.provider_code {
            write!(f, " [provider code {code}]")?;
        }
        Ok(())
    }
}

impl std::error::Error for PaymentsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_operation_intent_kind_and_code() {
        let id = IntentId::new("pi_1").expect("id");
        let e = PaymentsError::new(ErrorKind::Declined, Operation::Authorize, "card declined")
            .with_intent(id)
            .with_provider_code("card_declined");
        assert_eq!(
            e.to_string(),
            "payments authorize of intent `pi_1` failed (declined): card declined [provider code card_declined]"
        );
        assert_eq!(e.retry(), RetryClass::Declined);
    }

    #[test]
    fn gateway_errors_keep_kind_retry_code_decline_and_source() {
        let gw = PaymentError::new(ErrorKind::Declined, "authorize", "Your card was declined.")
            .with_provider_code("card_declined")
            .with_decline(DeclineDetails::with_code("insufficient_funds"))
            .with_retry(RetryClass::Permanent);
        let e = PaymentsError::from_gateway(Operation::Authorize, None, gw);
        assert_eq!(e.kind(), ErrorKind::Declined);
        assert_eq!(e.retry(), RetryClass::Permanent);
        assert_eq!(e.provider_code(), Some("card_declined"));
        assert_eq!(e.decline().and_then(|d| d.decline_code.as_deref()), Some("insufficient_funds"));
        assert!(e.message().contains("Your card was declined."));
        assert!(std::error::Error::source(&e).is_some());
    }

    #[test]
    fn stored_form_round_trips_without_the_source() {
        let e = PaymentsError::new(
            ErrorKind::InvalidRequest,
            Operation::Capture,
            "capture of 30.00 EUR exceeds the capturable 20.00 EUR",
        )
        .with_intent(IntentId::new("pi_2").expect("id"))
        .with_source(std::io::Error::other("x"));
        let json = serde_json::to_string(&e.to_stored()).expect("json");
        assert!(json.contains(r#""kind":"invalid_request""#), "{json}");
        let back = PaymentsError::from(serde_json::from_str::<StoredError>(&json).expect("parse"));
        assert_eq!(back.to_stored(), e.to_stored());
        assert!(std::error::Error::source(&back).is_none());
    }
}
