//! Stripe failures -> [`PaymentError`].
//!
//! The client produces a [`StripeFailure`] per attempt; [`to_payment_error`] turns the last one into the
//! port's error once retries are over, knowing whether an earlier attempt may have been processed.

use std::time::Duration;

use commerce_ports::{DeclineDetails, ErrorKind, PaymentError, RetryClass};
use serde::Deserialize;
use serde_json::Value;

/// The `error` object of Stripe's error JSON (`{"error": {...}}`). Unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub(crate) struct ApiError {
    /// `api_error`, `card_error`, `idempotency_error`, `invalid_request_error`.
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) code: Option<String>,
    pub(crate) decline_code: Option<String>,
    pub(crate) message: Option<String>,
    pub(crate) param: Option<String>,
    pub(crate) advice_code: Option<String>,
    pub(crate) network_decline_code: Option<String>,
    /// The payment intent the error is about, when Stripe includes it.
    pub(crate) payment_intent: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ApiError,
}

impl ApiError {
    /// Parses an error body; a body that is not Stripe's error JSON gives an empty error (the status decides).
    pub(crate) fn parse(body: &[u8]) -> ApiError {
        serde_json::from_slice::<ErrorEnvelope>(body).map(|e| e.error).unwrap_or_default()
    }

    fn intent_status(&self) -> Option<&str> {
        self.payment_intent.as_ref().and_then(|pi| pi.get("status")).and_then(Value::as_str)
    }
}

/// What went wrong in one attempt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StripeFailure {
    /// Stripe (or something in front of it) answered with an error status.
    #[error("Stripe answered HTTP {status}")]
    Api {
        status: u16,
        error: ApiError,
        retry_after: Option<Duration>,
        /// The `Stripe-Should-Retry` header.
        should_retry: Option<bool>,
    },
    /// No connection could be made: the request certainly was not sent.
    #[error("could not connect to Stripe")]
    Connect(#[source] reqwest::Error),
    /// The request may have been sent, and no complete answer came back (timeout, reset).
    #[error("no complete answer from Stripe after the request was sent")]
    AfterSend(#[source] reqwest::Error),
    /// A 2xx answer whose body could not be read as the expected object.
    #[error("Stripe answered HTTP {status} with a body that is not the expected JSON: {detail}")]
    Malformed { status: u16, detail: String },
}

impl StripeFailure {
    /// Whether another attempt with the same key may help.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            StripeFailure::Api { status, should_retry, .. } => {
                should_retry.unwrap_or(matches!(status, 409 | 424 | 429 | 500..=504))
            }
            StripeFailure::Connect(_) | StripeFailure::AfterSend(_) | StripeFailure::Malformed { .. } => true,
        }
    }

    /// Whether Stripe may have acted on this attempt although we have no answer.
    pub(crate) fn may_have_been_processed(&self) -> bool {
        matches!(self, StripeFailure::AfterSend(_) | StripeFailure::Malformed { .. })
    }

    /// Whether this is a server-side (5xx) answer whose effect is indeterminate: Stripe says the result of a
    /// 500 is unknown (and stores it under the key), and a 502/504 from a proxy says nothing about whether
    /// Stripe acted. Only a 503 with `Stripe-Should-Retry: false` states that nothing was processed.
    pub(crate) fn is_indeterminate_server_error(&self) -> bool {
        match self {
            StripeFailure::Api { status, should_retry, .. } => {
                (500..=599).contains(status) && !(*status == 503 && *should_retry == Some(false))
            }
            _ => false,
        }
    }

    /// The provider's hint on when to retry.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            StripeFailure::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The port error for the last failure of a call.
///
/// `mutating` is true for POSTs; `maybe_processed` when any attempt may have been acted on; `attempts` how
/// many were made. A transient last failure after a possibly processed attempt of a mutating call is
/// `OutcomeUnknown` (retry with the same key), never a plain failure; so is a mutating call whose last answer
/// is an indeterminate 5xx (see [`StripeFailure::is_indeterminate_server_error`]).
pub(crate) fn to_payment_error(
    operation: &'static str,
    failure: StripeFailure,
    mutating: bool,
    maybe_processed: bool,
    attempts: u32,
) -> PaymentError {
    let unknown = mutating && maybe_processed && failure.is_retryable();
    if unknown {
        return PaymentError::new(
            ErrorKind::OutcomeUnknown,
            operation,
            format!(
                "Stripe may have processed the request but no answer arrived after {attempts} attempt(s) ({failure}); \
                 retry with the same idempotency key or reconcile with retrieve"
            ),
        )
        .with_source(failure);
    }
    if mutating && failure.is_indeterminate_server_error() {
        let code = match &failure {
            StripeFailure::Api { error, .. } => error.code.clone().or_else(|| error.kind.clone()),
            _ => None,
        };
        let error = PaymentError::new(
            ErrorKind::OutcomeUnknown,
            operation,
            format!(
                "the result is indeterminate after {attempts} attempt(s) ({failure}); retry with the same \
                 idempotency key or reconcile with retrieve"
            ),
        )
        .with_source(failure);
        return match code {
            Some(code) => error.with_provider_code(code),
            None => error,
        };
    }
    let exhausted = attempts > 1 && failure.is_retryable();
    let error = match failure {
        StripeFailure::Api { status, error, retry_after, .. } => from_api(operation, status, &error, retry_after),
        StripeFailure::Connect(source) => {
            PaymentError::new(ErrorKind::Unavailable, operation, "could not connect to Stripe; nothing was sent")
                .with_source(source)
        }
        StripeFailure::AfterSend(source) => PaymentError::new(
            ErrorKind::Unavailable,
            operation,
            format!("no complete answer from Stripe after {attempts} attempt(s)"),
        )
        .with_source(source),
        StripeFailure::Malformed { status, detail } => PaymentError::new(
            ErrorKind::Unexpected,
            operation,
            format!("Stripe answered HTTP {status} with a body that is not the expected JSON: {detail}"),
        ),
    };
    if exhausted && error.retry() == RetryClass::Retryable { error.with_retry(RetryClass::Exhausted) } else { error }
}

/// Maps one Stripe error answer. The provider code (`code`, else `type`) is kept.
pub(crate) fn from_api(
    operation: &'static str,
    status: u16,
    error: &ApiError,
    retry_after: Option<Duration>,
) -> PaymentError {
    let code = error.code.as_deref();
    let message = error.message.clone().unwrap_or_else(|| format!("HTTP {status} without a Stripe error body"));
    let with_param = |text: String| match &error.param {
        Some(param) if !param.is_empty() => format!("{text} (parameter `{param}`)"),
        _ => text,
    };
    let mapped = match (status, error.kind.as_deref(), code) {
        // Stripe's 401 message repeats part of the key: never pass it on.
        (401, _, _) => PaymentError::new(
            ErrorKind::Authentication,
            operation,
            "Stripe refused the API key (HTTP 401); check the `api_key` parameter",
        ),
        (403, _, _) => PaymentError::new(
            ErrorKind::Authentication,
            operation,
            "the API key lacks the permission for this call (HTTP 403)",
        ),
        (_, Some("card_error"), _) | (402, _, _) => {
            let mut decline = DeclineDetails::default();
            decline.decline_code = error.decline_code.clone().or_else(|| error.code.clone());
            decline.network_decline_code = error.network_decline_code.clone();
            decline.advice_code = error.advice_code.clone();
            PaymentError::new(ErrorKind::Declined, operation, message).with_decline(decline)
        }
        (_, Some("idempotency_error"), _) => PaymentError::new(ErrorKind::IdempotencyConflict, operation, message),
        (_, _, Some("idempotency_key_in_use")) => PaymentError::new(
            ErrorKind::InProgress,
            operation,
            "another request with this idempotency key is still running at Stripe; retry later with the same key",
        ),
        (429, _, _) | (_, _, Some("rate_limit")) => {
            let e = PaymentError::new(ErrorKind::RateLimited, operation, message);
            match retry_after {
                Some(after) => e.with_retry_after(after),
                None => e,
            }
        }
        (_, _, Some("resource_missing")) | (404, _, _) => {
            PaymentError::new(ErrorKind::NotFound, operation, with_param(message))
        }
        (_, _, Some("payment_intent_unexpected_state"))
            if operation == "capture" && error.intent_status() == Some("succeeded") =>
        {
            PaymentError::unsupported_feature(operation, "multiple captures (the payment intent is already captured)")
        }
        (_, _, Some("payment_intent_unexpected_state" | "charge_already_captured"))
            if operation == "void" && error.intent_status().is_none_or(|s| s == "succeeded") =>
        {
            PaymentError::new(
                ErrorKind::InvalidState,
                operation,
                format!("{message} The payment is already captured: refund it instead of voiding it."),
            )
        }
        (
            _,
            _,
            Some(
                "payment_intent_unexpected_state"
                | "charge_already_captured"
                | "charge_already_refunded"
                | "capture_charge_authorization_expired"
                | "charge_expired_for_capture",
            ),
        ) => PaymentError::new(ErrorKind::InvalidState, operation, message),
        (500..=599, _, _) | (_, Some("api_error"), _) => PaymentError::new(
            ErrorKind::Unavailable,
            operation,
            format!("Stripe is unavailable (HTTP {status}): {message}"),
        ),
        (400, _, _) | (_, Some("invalid_request_error"), _) => {
            PaymentError::new(ErrorKind::InvalidRequest, operation, with_param(message))
        }
        _ => PaymentError::new(ErrorKind::Unexpected, operation, format!("Stripe answered HTTP {status}: {message}")),
    };
    match code.or(error.kind.as_deref()) {
        Some(code) => mapped.with_provider_code(code),
        None => mapped,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn api(status: u16, body: Value) -> PaymentError {
        from_api("capture", status, &ApiError::parse(body.to_string().as_bytes()), None)
    }

    #[test]
    fn card_errors_are_declines_with_every_detail() {
        let e = api(
            402,
            json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds",
                   "message": "Your card has insufficient funds.", "advice_code": "try_again_later",
                   "network_decline_code": "51"}}),
        );
        assert_eq!((e.kind(), e.provider_code()), (ErrorKind::Declined, Some("card_declined")));
        let decline = e.decline().cloned().unwrap_or_default();
        assert_eq!(decline.decline_code.as_deref(), Some("insufficient_funds"));
        assert_eq!(decline.advice_code.as_deref(), Some("try_again_later"));
        assert_eq!(decline.network_decline_code.as_deref(), Some("51"));
        assert_eq!(e.retry(), RetryClass::Declined);
    }

    #[test]
    fn invalid_requests_name_the_parameter() {
        let e = api(
            400,
            json!({"error": {"type": "invalid_request_error", "code": "amount_too_large",
                   "param": "amount_to_capture", "message": "too large"}}),
        );
        assert_eq!((e.kind(), e.provider_code()), (ErrorKind::InvalidRequest, Some("amount_too_large")));
        assert!(e.message().contains("`amount_to_capture`"), "{e}");
    }

    #[test]
    fn state_errors_are_invalid_state_and_a_void_after_capture_says_refund() {
        for code in ["payment_intent_unexpected_state", "charge_already_captured", "charge_already_refunded"] {
            let body = json!({"error": {"type": "invalid_request_error", "code": code, "message": "no"}});
            let e = from_api("refund", 400, &ApiError::parse(body.to_string().as_bytes()), None);
            assert_eq!((e.kind(), e.provider_code()), (ErrorKind::InvalidState, Some(code)));
        }
        let body = json!({"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                          "message": "You cannot cancel this PaymentIntent.", "payment_intent": {"status": "succeeded"}}});
        let e = from_api("void", 400, &ApiError::parse(body.to_string().as_bytes()), None);
        assert_eq!(e.kind(), ErrorKind::InvalidState);
        assert!(e.message().contains("refund"), "{e}");
    }

    #[test]
    fn a_second_capture_is_an_unsupported_feature() {
        let e = api(
            400,
            json!({"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                   "message": "x", "payment_intent": {"status": "succeeded"}}}),
        );
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        let canceled = api(
            400,
            json!({"error": {"type": "invalid_request_error", "code": "payment_intent_unexpected_state",
                   "message": "x", "payment_intent": {"status": "canceled"}}}),
        );
        assert_eq!(canceled.kind(), ErrorKind::InvalidState);
    }

    #[test]
    fn idempotency_auth_rate_limit_not_found_and_server_errors() {
        let conflict = api(400, json!({"error": {"type": "idempotency_error", "message": "Keys for ..."}}));
        assert_eq!(
            (conflict.kind(), conflict.provider_code()),
            (ErrorKind::IdempotencyConflict, Some("idempotency_error"))
        );
        let in_use = api(
            409,
            json!({"error": {"type": "invalid_request_error", "code": "idempotency_key_in_use", "message": "m"}}),
        );
        assert_eq!(in_use.kind(), ErrorKind::InProgress);
        let auth = api(
            401,
            json!({"error": {"type": "invalid_request_error", "message": "Invalid API Key provided: sk_test_****cret"}}),
        );
        assert_eq!(auth.kind(), ErrorKind::Authentication);
        assert!(!auth.to_string().contains("sk_test"), "{auth}");
        let limited = from_api(
            "capture",
            429,
            &ApiError::parse(br#"{"error":{"type":"invalid_request_error","code":"rate_limit","message":"slow"}}"#),
            Some(Duration::from_secs(2)),
        );
        assert_eq!((limited.kind(), limited.retry_after()), (ErrorKind::RateLimited, Some(Duration::from_secs(2))));
        let missing = api(
            404,
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "param": "intent", "message": "No such payment_intent: 'x'"}}),
        );
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        let down = api(503, json!({"error": {"type": "api_error", "message": "down"}}));
        assert_eq!((down.kind(), down.retry()), (ErrorKind::Unavailable, RetryClass::Retryable));
        let html = from_api("capture", 502, &ApiError::parse(b"<html>bad gateway</html>"), None);
        assert_eq!(html.kind(), ErrorKind::Unavailable);
    }

    #[test]
    fn a_final_5xx_on_a_post_is_outcome_unknown_unless_a_503_says_not_processed() {
        let failure = |status, should_retry| StripeFailure::Api {
            status,
            error: ApiError::parse(br#"{"error":{"type":"api_error","message":"boom"}}"#),
            retry_after: None,
            should_retry,
        };
        for (status, should_retry) in
            [(500, None), (500, Some(false)), (502, None), (504, None), (503, None), (503, Some(true)), (505, None)]
        {
            let e = to_payment_error("capture", failure(status, should_retry), true, false, 3);
            assert_eq!(
                (e.kind(), e.retry(), e.provider_code()),
                (ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly, Some("api_error")),
                "{status} {should_retry:?}"
            );
            assert!(std::error::Error::source(&e).is_some());
            let single = to_payment_error("capture", failure(status, should_retry), true, false, 1);
            assert_eq!(single.kind(), ErrorKind::OutcomeUnknown, "{status} {should_retry:?}");
            let read = to_payment_error("retrieve", failure(status, should_retry), false, false, 1);
            assert_eq!(read.kind(), ErrorKind::Unavailable, "{status} {should_retry:?}");
        }
        let not_processed = to_payment_error("capture", failure(503, Some(false)), true, false, 1);
        assert_eq!((not_processed.kind(), not_processed.retry()), (ErrorKind::Unavailable, RetryClass::Retryable));
    }

    #[test]
    fn retry_rules_follow_status_and_should_retry_header() {
        let failure = |status, should_retry| StripeFailure::Api {
            status,
            error: ApiError::default(),
            retry_after: None,
            should_retry,
        };
        for status in [409, 424, 429, 500, 502, 503, 504] {
            assert!(failure(status, None).is_retryable(), "{status}");
        }
        for status in [400, 401, 402, 404, 505] {
            assert!(!failure(status, None).is_retryable(), "{status}");
        }
        assert!(!failure(503, Some(false)).is_retryable());
        assert!(failure(400, Some(true)).is_retryable());
        let exhausted = to_payment_error("retrieve", failure(503, None), false, false, 3);
        assert_eq!((exhausted.kind(), exhausted.retry()), (ErrorKind::Unavailable, RetryClass::Exhausted));
        let unknown = to_payment_error("capture", failure(503, None), true, true, 3);
        assert_eq!(unknown.kind(), ErrorKind::OutcomeUnknown);
        let read =
            to_payment_error("retrieve", StripeFailure::Malformed { status: 200, detail: "x".into() }, false, true, 1);
        assert_eq!(read.kind(), ErrorKind::Unexpected);
    }
}
