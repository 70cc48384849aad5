//! Adyen failures -> [`PaymentError`] / [`TerminalError`].
//!
//! The client produces an [`AttemptFailure`] per attempt; [`to_payment_error`] turns the last one into the
//! port's error once retries are over, knowing whether an earlier attempt may have been processed.

use std::time::Duration;

use commerce_ports::{ErrorKind, PaymentError, RetryClass, TerminalError};
use serde::Deserialize;

/// The idempotency error code Adyen answers while a request with the same key is in flight (HTTP 409) and,
/// in the simulator, for a key reused with another body (HTTP 422). See `docs.md`.
pub(crate) const IDEMPOTENCY_ERROR_CODE: &str = "704";

/// Adyen's error JSON (`{"status":422,"errorCode":"167","message":"...","errorType":"validation",
/// "pspReference":"..."}`). Unknown fields are ignored; a body that is not this shape gives an empty error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ApiError {
    pub(crate) error_code: Option<String>,
    pub(crate) message: Option<String>,
    /// `validation`, `security`, `configuration`, `internal`.
    pub(crate) error_type: Option<String>,
    pub(crate) psp_reference: Option<String>,
}

impl ApiError {
    pub(crate) fn parse(body: &[u8]) -> ApiError {
        serde_json::from_slice(body).unwrap_or_default()
    }
}

/// What went wrong in one attempt.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttemptFailure {
    /// Adyen (or something in front of it) answered with an error status.
    #[error("Adyen answered HTTP {status}")]
    Api { status: u16, error: ApiError, retry_after: Option<Duration> },
    /// No connection could be made: the request certainly was not sent.
    #[error("could not connect to Adyen")]
    Connect(#[source] reqwest::Error),
    /// The request may have been sent and no complete answer came back (timeout, reset).
    #[error("no complete answer from Adyen after the request was sent")]
    AfterSend(#[source] reqwest::Error),
    /// A 2xx answer whose body is not the expected JSON.
    #[error("Adyen answered HTTP {status} with a body that is not the expected JSON: {detail}")]
    Malformed { status: u16, detail: String },
}

impl AttemptFailure {
    /// Whether another attempt with the same key may help.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            AttemptFailure::Api { status, .. } => matches!(status, 409 | 429 | 500..=504),
            AttemptFailure::Connect(_) | AttemptFailure::AfterSend(_) | AttemptFailure::Malformed { .. } => true,
        }
    }

    /// Whether Adyen may have acted on this attempt although we have no usable answer: a timeout or reset after
    /// sending, an unreadable 2xx, and any 5xx (Adyen does not say whether a request that failed with a 5xx was
    /// processed, and a 502/504 from a proxy says nothing at all).
    pub(crate) fn may_have_been_processed(&self) -> bool {
        match self {
            AttemptFailure::Api { status, .. } => (500..=599).contains(status),
            AttemptFailure::AfterSend(_) | AttemptFailure::Malformed { .. } => true,
            AttemptFailure::Connect(_) => false,
        }
    }

    /// The provider's hint on when to retry.
    pub(crate) fn hint(&self) -> Option<Duration> {
        match self {
            AttemptFailure::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The port error for the last failure of a Checkout call (every Checkout call is a POST).
///
/// When any attempt may have been processed and the last failure is not a definitive answer, the outcome is
/// unknown: `OutcomeUnknown` with retry class `SameKeyOnly`, never a plain failure.
pub(crate) fn to_payment_error(
    operation: &'static str,
    failure: AttemptFailure,
    maybe_processed: bool,
    attempts: u32,
) -> PaymentError {
    let definitive = matches!(&failure, AttemptFailure::Api { status, .. } if !(500..=599).contains(status));
    if maybe_processed && !definitive {
        let code = match &failure {
            AttemptFailure::Api { error, .. } => error.error_code.clone(),
            _ => None,
        };
        let error = PaymentError::new(
            ErrorKind::OutcomeUnknown,
            operation,
            format!(
                "Adyen may have processed the request but no usable answer arrived after {attempts} attempt(s) \
                 ({failure}); retry with the same idempotency key, or wait for the notification"
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
        AttemptFailure::Api { status, error, retry_after } => from_api(operation, status, &error, retry_after),
        AttemptFailure::Connect(source) => {
            PaymentError::new(ErrorKind::Unavailable, operation, "could not connect to Adyen; nothing was sent")
                .with_source(source)
        }
        AttemptFailure::AfterSend(source) => PaymentError::new(
            ErrorKind::Unavailable,
            operation,
            format!("no complete answer from Adyen after {attempts} attempt(s)"),
        )
        .with_source(source),
        AttemptFailure::Malformed { status, detail } => PaymentError::new(
            ErrorKind::Unexpected,
            operation,
            format!("Adyen answered HTTP {status} with a body that is not the expected JSON: {detail}"),
        ),
    };
    if exhausted && error.retry() == RetryClass::Retryable { error.with_retry(RetryClass::Exhausted) } else { error }
}

/// The port meaning of one Adyen error answer: a kind and a message. Shared by the gateway and the terminal.
pub(crate) fn classify(status: u16, error: &ApiError) -> (ErrorKind, String) {
    let message = error.message.clone().unwrap_or_else(|| format!("HTTP {status} without an Adyen error body"));
    let code = error.error_code.as_deref();
    match (status, code) {
        // Never pass Adyen's authentication message on: it may describe the credential.
        (401, _) => (ErrorKind::Authentication, "Adyen refused the API key (HTTP 401); check `api_key`".to_owned()),
        (403, _) => (
            ErrorKind::Authentication,
            "the API key lacks the role or the merchant account access for this call (HTTP 403)".to_owned(),
        ),
        (409, _) => (
            ErrorKind::InProgress,
            format!(
                "another request with this idempotency key is still being processed at Adyen ({message}); retry \
                 later with the same key"
            ),
        ),
        (422, Some(IDEMPOTENCY_ERROR_CODE)) => (
            ErrorKind::IdempotencyConflict,
            format!("the idempotency key was used before for another request ({message})"),
        ),
        (429, _) => (ErrorKind::RateLimited, message),
        (404, _) => (ErrorKind::NotFound, message),
        (500..=599, _) => (ErrorKind::Unavailable, format!("Adyen is unavailable (HTTP {status}): {message}")),
        (400 | 422, _) => (ErrorKind::InvalidRequest, message),
        _ => (ErrorKind::Unexpected, format!("Adyen answered HTTP {status}: {message}")),
    }
}

/// Maps one Checkout error answer; the `errorCode` is kept as the provider code.
pub(crate) fn from_api(
    operation: &'static str,
    status: u16,
    error: &ApiError,
    retry_after: Option<Duration>,
) -> PaymentError {
    let (kind, message) = classify(status, error);
    let mut mapped = PaymentError::new(kind, operation, message);
    if let (ErrorKind::RateLimited, Some(after)) = (kind, retry_after) {
        mapped = mapped.with_retry_after(after);
    }
    match &error.error_code {
        Some(code) => mapped.with_provider_code(code.clone()),
        None => mapped,
    }
}

/// The port error for a failed Terminal API call. `mutating` is true for payments and reversals: after
/// sending, their outcome is unknown (resolve with `status`), for status and abort a lost answer is only
/// unavailability.
pub(crate) fn to_terminal_error(operation: &'static str, failure: AttemptFailure, mutating: bool) -> TerminalError {
    if mutating && failure.may_have_been_processed() {
        return TerminalError::new(
            ErrorKind::OutcomeUnknown,
            operation,
            format!(
                "the terminal may have taken the {operation} but no usable answer arrived ({failure}); resolve it with \
                 `status` and the same reference, never by charging again"
            ),
        )
        .with_source(failure);
    }
    match failure {
        AttemptFailure::Api { status, error, .. } => {
            let (kind, message) = classify(status, &error);
            let mapped = TerminalError::new(kind, operation, message);
            match error.error_code {
                Some(code) => mapped.with_provider_code(code),
                None => mapped,
            }
        }
        AttemptFailure::Connect(source) => {
            TerminalError::new(ErrorKind::Unavailable, operation, "could not connect to Adyen; nothing was sent")
                .with_source(source)
        }
        AttemptFailure::AfterSend(source) => {
            TerminalError::new(ErrorKind::Unavailable, operation, "no complete answer from Adyen").with_source(source)
        }
        AttemptFailure::Malformed { status, detail } => TerminalError::new(
            ErrorKind::Unexpected,
            operation,
            format!("Adyen answered HTTP {status} with a body that is not the expected JSON: {detail}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn api(status: u16, body: serde_json::Value) -> PaymentError {
        from_api("capture", status, &ApiError::parse(body.to_string().as_bytes()), None)
    }

    #[test]
    fn error_answers_map_to_kinds_with_codes() {
        let cases = [
            (
                401,
                json!({"status":401,"errorCode":"000","message":"HTTP Status Response - Unauthorized","errorType":"security"}),
                ErrorKind::Authentication,
            ),
            (
                403,
                json!({"status":403,"errorCode":"010","message":"Not allowed","errorType":"security"}),
                ErrorKind::Authentication,
            ),
            (
                422,
                json!({"status":422,"errorCode":"137","message":"Invalid amount specified","errorType":"validation"}),
                ErrorKind::InvalidRequest,
            ),
            (
                400,
                json!({"status":400,"errorCode":"702","message":"Structure error","errorType":"validation"}),
                ErrorKind::InvalidRequest,
            ),
            (
                409,
                json!({"status":409,"errorCode":"704","message":"request already processed or in progress","errorType":"validation"}),
                ErrorKind::InProgress,
            ),
            (
                422,
                json!({"status":422,"errorCode":"704","message":"request already processed or in progress","errorType":"validation"}),
                ErrorKind::IdempotencyConflict,
            ),
            (
                429,
                json!({"status":429,"errorCode":"429","message":"Too many requests","errorType":"security"}),
                ErrorKind::RateLimited,
            ),
            (
                404,
                json!({"status":404,"errorCode":"000","message":"not found","errorType":"validation"}),
                ErrorKind::NotFound,
            ),
            (
                500,
                json!({"status":500,"errorCode":"905","message":"Payment details are not supported","errorType":"configuration"}),
                ErrorKind::Unavailable,
            ),
            (302, json!({}), ErrorKind::Unexpected),
        ];
        for (status, body, kind) in cases {
            let code = body.get("errorCode").and_then(|c| c.as_str()).map(str::to_owned);
            let e = api(status, body);
            assert_eq!((e.kind(), e.provider_code().map(str::to_owned)), (kind, code), "{status}");
        }
        let auth = api(401, json!({"message": "key AQE_secret is wrong"}));
        assert!(!auth.to_string().contains("AQE_secret"), "{auth}");
        assert_eq!(api(422, json!({"errorCode":"137"})).retry(), RetryClass::Permanent);
        assert_eq!(api(409, json!({"errorCode":"704"})).retry(), RetryClass::Retryable);
    }

    #[test]
    fn a_final_5xx_or_an_ambiguous_failure_is_outcome_unknown() {
        let failure = |status| AttemptFailure::Api {
            status,
            error: ApiError::parse(br#"{"status":500,"errorCode":"901","message":"boom","errorType":"internal"}"#),
            retry_after: None,
        };
        for status in [500, 502, 503, 504] {
            let f = failure(status);
            let processed = f.may_have_been_processed();
            let e = to_payment_error("capture", f, processed, 3);
            assert_eq!((e.kind(), e.retry()), (ErrorKind::OutcomeUnknown, RetryClass::SameKeyOnly), "{status}");
            assert_eq!(e.provider_code(), Some("901"));
        }
        let malformed = AttemptFailure::Malformed { status: 200, detail: "eof".into() };
        let e = to_payment_error("authorize", malformed, true, 1);
        assert_eq!(e.kind(), ErrorKind::OutcomeUnknown);
        // A definitive 4xx after an ambiguous attempt is the answer that counts.
        let e = to_payment_error(
            "capture",
            AttemptFailure::Api { status: 422, error: ApiError::default(), retry_after: None },
            true,
            2,
        );
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        let limited = to_payment_error(
            "capture",
            AttemptFailure::Api { status: 429, error: ApiError::default(), retry_after: Some(Duration::from_secs(2)) },
            false,
            3,
        );
        assert_eq!((limited.kind(), limited.retry()), (ErrorKind::RateLimited, RetryClass::Exhausted));
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(2)));
    }

    #[test]
    fn retry_rules_follow_the_status() {
        let failure = |status| AttemptFailure::Api { status, error: ApiError::default(), retry_after: None };
        for status in [409, 429, 500, 502, 503, 504] {
            assert!(failure(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 422, 505] {
            assert!(!failure(status).is_retryable(), "{status}");
        }
    }

    #[test]
    fn terminal_errors_after_sending_are_outcome_unknown_only_for_payments() {
        let f = || AttemptFailure::Malformed { status: 200, detail: "x".into() };
        assert_eq!(to_terminal_error("pay", f(), true).kind(), ErrorKind::OutcomeUnknown);
        assert_eq!(to_terminal_error("status", f(), false).kind(), ErrorKind::Unexpected);
        let auth = AttemptFailure::Api { status: 401, error: ApiError::default(), retry_after: None };
        assert_eq!(to_terminal_error("pay", auth, true).kind(), ErrorKind::Authentication);
    }
}
