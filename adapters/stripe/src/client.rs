//! The HTTP client: authentication, the pinned API version, idempotency keys, retries.
//!
//! Every POST carries the caller's `Idempotency-Key`, and every retry of it reuses that key, so Stripe acts at
//! most once and replays its first answer. GETs carry no key. A call is retried on connection failures, on
//! 409, 424, 429 and 500-504 (unless `Stripe-Should-Retry: false`; `true` forces a retry), and when no
//! complete answer arrived after the request may have been sent (timeout, reset, unreadable body). When such
//! an ambiguous attempt happened and the retries run out without a definitive answer, a POST fails with
//! `OutcomeUnknown`; so does a POST whose last answer is a 5xx (the result of a 500 is indeterminate, a
//! 502/504 from a proxy says nothing), except a 503 with `Stripe-Should-Retry: false` (not processed).

use std::time::Duration;

use commerce_ports::{ErrorKind, PaymentError, Secret};
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use crate::config::{API_VERSION, RetryPolicy, StripeConfig};
use crate::error::{ApiError, StripeFailure, to_payment_error};
use crate::mapping::Form;

/// The `Stripe-Should-Retry` header.
const SHOULD_RETRY: &str = "stripe-should-retry";

/// A Stripe API client. `Debug` never shows the key.
#[derive(Debug, Clone)]
pub(crate) struct StripeClient {
    http: reqwest::Client,
    base_url: Url,
    api_key: Secret,
    retry: RetryPolicy,
}

impl StripeClient {
    /// A client for `config`.
    pub(crate) fn new(config: &StripeConfig) -> Result<StripeClient, PaymentError> {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .user_agent(concat!("commerce-stripe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                PaymentError::new(ErrorKind::Configuration, "configure", "cannot build the HTTP client").with_source(e)
            })?;
        Ok(StripeClient {
            http,
            base_url: config.base_url.clone(),
            api_key: config.api_key.clone(),
            retry: config.retry,
        })
    }

    /// `base_url` + the path segments, each percent-encoded (ids come from callers).
    fn url(&self, operation: &'static str, segments: &[&str]) -> Result<Url, PaymentError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|()| PaymentError::new(ErrorKind::Configuration, operation, "base_url cannot take a path"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// GET `segments` with `query`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        segments: &[&str],
        query: &[(&str, &str)],
    ) -> Result<T, PaymentError> {
        let mut url = self.url(operation, segments)?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        self.execute(operation, Method::GET, url, None, None).await
    }

    /// POST `form` to `segments` under `idempotency_key`.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        segments: &[&str],
        form: &Form,
        idempotency_key: &str,
    ) -> Result<T, PaymentError> {
        let url = self.url(operation, segments)?;
        self.execute(operation, Method::POST, url, Some(form.encode()), Some(idempotency_key)).await
    }

    async fn execute<T: DeserializeOwned>(
        &self,
        operation: &'static str,
        method: Method,
        url: Url,
        body: Option<String>,
        idempotency_key: Option<&str>,
    ) -> Result<T, PaymentError> {
        let mutating = method == Method::POST;
        let mut maybe_processed = false;
        let mut attempts: u32 = 0;
        loop {
            attempts = attempts.saturating_add(1);
            let failure = match self.attempt(method.clone(), url.clone(), body.clone(), idempotency_key).await {
                Ok(value) => return Ok(value),
                Err(failure) => failure,
            };
            maybe_processed |= failure.may_have_been_processed();
            if !failure.is_retryable() || attempts >= self.retry.max_attempts {
                return Err(to_payment_error(operation, failure, mutating, maybe_processed, attempts));
            }
            tokio::time::sleep(self.retry.backoff(attempts, failure.retry_after())).await;
        }
    }

    async fn attempt<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<String>,
        idempotency_key: Option<&str>,
    ) -> Result<T, StripeFailure> {
        let mut request =
            self.http.request(method, url).bearer_auth(self.api_key.expose()).header("Stripe-Version", API_VERSION);
        if let Some(key) = idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
        }
        let response = request.send().await.map_err(classify)?;
        let status = response.status();
        // Read from the headers before the body consumes the response.
        let retry_after = retry_after(status, response.headers());
        let should_retry = response.headers().get(SHOULD_RETRY).and_then(|v| v.to_str().ok()).and_then(|v| match v {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        });
        let bytes = response.bytes().await.map_err(StripeFailure::AfterSend)?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| StripeFailure::Malformed {
                status: status.as_u16(),
                detail: format!("line {}, column {}: {:?}", e.line(), e.column(), e.classify()),
            });
        }
        Err(StripeFailure::Api { status: status.as_u16(), error: ApiError::parse(&bytes), retry_after, should_retry })
    }
}

/// A connection that was never made is certainly not processed; anything later may have been.
fn classify(error: reqwest::Error) -> StripeFailure {
    if error.is_connect() { StripeFailure::Connect(error) } else { StripeFailure::AfterSend(error) }
}

/// `Retry-After` in seconds (Stripe sends seconds; HTTP dates are ignored).
fn retry_after(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && !status.is_server_error() {
        return None;
    }
    headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_is_read_in_seconds_for_429_and_5xx_only() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3"));
        assert_eq!(retry_after(StatusCode::TOO_MANY_REQUESTS, &headers), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers), Some(Duration::from_secs(3)));
        assert_eq!(retry_after(StatusCode::BAD_REQUEST, &headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(StatusCode::TOO_MANY_REQUESTS, &headers), None);
    }

    #[test]
    fn paths_are_percent_encoded_under_the_base() {
        let config =
            StripeConfig::new(Secret::new("sk_test_x")).and_then(|c| c.with_base_url("http://127.0.0.1:9/prefix/"));
        let client = config.and_then(|c| StripeClient::new(&c));
        let url = client.and_then(|c| c.url("retrieve", &["v1", "payment_intents", "pi 1/../x"]));
        assert_eq!(
            url.ok().map(String::from).as_deref(),
            Some("http://127.0.0.1:9/prefix/v1/payment_intents/pi%201%2F..%2Fx")
        );
    }
}
