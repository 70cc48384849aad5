//! The HTTP client: `X-API-Key` authentication, idempotency keys and retries.
//!
//! Every Checkout call is a POST carrying the caller's `Idempotency-Key`, and every retry reuses that key, so
//! Adyen acts at most once and replays its first answer. A call is retried on connection failures, on 409
//! (the key is in flight), 429 and 500-504, and when no complete answer arrived after the request may have
//! been sent (timeout, reset, unreadable 2xx). When such an ambiguous attempt happened, or the last answer is
//! a 5xx, and no definitive answer followed, the call fails with `OutcomeUnknown`.
//!
//! Terminal API calls (`/sync`) have no idempotency key: they are retried only when nothing was sent.

use std::time::Duration;

use bytes::Bytes;
use commerce_ports::{ErrorKind, PaymentError, Secret, TerminalError};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::{API_VERSION, AdyenConfig, RetryPolicy};
use crate::error::{ApiError, AttemptFailure, to_payment_error, to_terminal_error};

/// An Adyen API client. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub(crate) struct AdyenClient {
    http: reqwest::Client,
    base_url: Url,
    terminal_url: Url,
    api_key: Secret,
    retry: RetryPolicy,
    terminal_timeout: Duration,
}

fn configuration(message: String) -> PaymentError {
    PaymentError::new(ErrorKind::Configuration, "configure", message)
}

/// `base` + the path segments, each percent-encoded (references come from callers).
fn join(base: &Url, segments: &[&str]) -> Option<Url> {
    let mut url = base.clone();
    url.path_segments_mut().ok()?.pop_if_empty().extend(segments);
    Some(url)
}

impl AdyenClient {
    /// A client for `config`.
    pub(crate) fn new(config: &AdyenConfig) -> Result<AdyenClient, PaymentError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("commerce-adyen/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| configuration(format!("cannot build the HTTP client: {e}")))?;
        let terminal_url = join(&config.terminal_base_url, &["sync"])
            .ok_or_else(|| configuration("terminal_base_url cannot take a path".to_owned()))?;
        Ok(AdyenClient {
            http,
            base_url: config.base_url.clone(),
            terminal_url,
            api_key: config.api_key.clone(),
            retry: config.retry,
            terminal_timeout: config.terminal_timeout,
        })
    }

    /// POSTs `body` to `/v71/<segments>` under `idempotency_key`, retrying with the same key.
    pub(crate) async fn checkout<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        segments: &[&str],
        body: &serde_json::Value,
        idempotency_key: &str,
    ) -> Result<T, PaymentError> {
        let mut path = vec![API_VERSION];
        path.extend_from_slice(segments);
        let url = join(&self.base_url, &path)
            .ok_or_else(|| PaymentError::new(ErrorKind::Configuration, operation, "base_url cannot take a path"))?;
        let body = body.to_string();
        let mut maybe_processed = false;
        let mut attempts: u32 = 0;
        loop {
            attempts = attempts.saturating_add(1);
            let outcome = self.attempt(url.clone(), body.clone(), Some(idempotency_key), None).await;
            let failure = match outcome.and_then(|bytes| parse::<T>(&bytes)) {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            maybe_processed |= failure.may_have_been_processed();
            if !failure.is_retryable() || attempts >= self.retry.max_attempts {
                return Err(to_payment_error(operation, failure, maybe_processed, attempts));
            }
            tokio::time::sleep(self.retry.backoff(attempts, failure.hint())).await;
        }
    }

    /// POSTs a `SaleToPOIRequest` to `/sync` and returns the raw answer (amounts in it are read exactly).
    /// Retried only when the connection could not be made (nothing was sent).
    pub(crate) async fn sync(
        &self,
        operation: &'static str,
        body: String,
        mutating: bool,
    ) -> Result<Bytes, TerminalError> {
        let mut attempts: u32 = 0;
        loop {
            attempts = attempts.saturating_add(1);
            match self.attempt(self.terminal_url.clone(), body.clone(), None, Some(self.terminal_timeout)).await {
                Ok(bytes) => return Ok(bytes),
                Err(failure @ AttemptFailure::Connect(_)) if attempts < self.retry.max_attempts => {
                    tokio::time::sleep(self.retry.backoff(attempts, failure.hint())).await;
                }
                Err(failure) => return Err(to_terminal_error(operation, failure, mutating)),
            }
        }
    }

    async fn attempt(
        &self,
        url: Url,
        body: String,
        idempotency_key: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Bytes, AttemptFailure> {
        let mut request = self
            .http
            .post(url)
            .header("X-API-Key", self.api_key.expose())
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        let response = request.send().await.map_err(classify)?;
        let status = response.status();
        // Read from the headers before the body consumes the response.
        let retry_after = retry_after(status, response.headers());
        let bytes = response.bytes().await.map_err(AttemptFailure::AfterSend)?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(AttemptFailure::Api { status: status.as_u16(), error: ApiError::parse(&bytes), retry_after })
    }
}

/// Reads a 2xx body as `T`; an unreadable one is [`AttemptFailure::Malformed`] (Adyen acted).
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AttemptFailure> {
    serde_json::from_slice(bytes).map_err(|e| AttemptFailure::Malformed {
        status: 200,
        detail: format!("line {}, column {}: {:?}", e.line(), e.column(), e.classify()),
    })
}

/// A connection that was never made is certainly not processed; anything later may have been.
fn classify(error: reqwest::Error) -> AttemptFailure {
    if error.is_connect() { AttemptFailure::Connect(error) } else { AttemptFailure::AfterSend(error) }
}

/// `Retry-After` in seconds for 429 and 5xx (HTTP dates are ignored).
fn retry_after(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
        return None;
    }
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_versioned_and_percent_encoded_under_the_base() {
        let base = Url::parse("http://127.0.0.1:9/checkout/").ok();
        let url = base.and_then(|b| join(&b, &[API_VERSION, "payments", "psp 1/../x", "captures"]));
        assert_eq!(
            url.map(String::from).as_deref(),
            Some("http://127.0.0.1:9/checkout/v71/payments/psp%201%2F..%2Fx/captures")
        );
    }

    #[test]
    fn retry_after_only_for_429_and_5xx() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, reqwest::header::HeaderValue::from_static("3"));
        assert_eq!(retry_after(StatusCode::TOO_MANY_REQUESTS, &headers), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(StatusCode::UNPROCESSABLE_ENTITY, &headers), None);
    }
}
