//! [`StripeConfig`] and [`RetryPolicy`]: how the gateway reaches Stripe.

use std::time::Duration;

use commerce_ports::{ErrorKind, PaymentError, Secret};
use url::Url;

/// Stripe's production API.
pub const DEFAULT_BASE_URL: &str = "https://api.stripe.com";

/// The API version every request pins in the `Stripe-Version` header, so an account's default version
/// (changed in the Dashboard) cannot change the shapes this adapter reads.
pub const API_VERSION: &str = "2024-06-20";

/// Default time to establish a connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time for a whole request, from sending to the last byte of the answer. Stripe's own clients use
/// 80 s; a checkout cannot wait that long, and a timeout is an unknown outcome that is retried with the same
/// idempotency key anyway.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub use commerce_ports::RetryPolicy;

/// Everything the gateway needs to reach Stripe. `Debug` never shows the API key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StripeConfig {
    /// The secret API key (`sk_test_...`, `sk_live_...` or a restricted `rk_...` key).
    pub api_key: Secret,
    /// Where the API lives: [`DEFAULT_BASE_URL`], or a simulator.
    pub base_url: Url,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole request.
    pub request_timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
}

fn config_error(message: String) -> PaymentError {
    PaymentError::new(ErrorKind::Configuration, "configure", message)
}

impl StripeConfig {
    /// A configuration for Stripe's production API with default timeouts and retries.
    ///
    /// # Errors
    /// `Configuration` when the key is empty.
    pub fn new(api_key: Secret) -> Result<StripeConfig, PaymentError> {
        if api_key.is_empty() {
            return Err(config_error("the Stripe API key (`api_key`) is empty".to_owned()));
        }
        let base_url = Url::parse(DEFAULT_BASE_URL).map_err(|e| config_error(format!("default base URL: {e}")))?;
        Ok(StripeConfig {
            api_key,
            base_url,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
        })
    }

    /// A configuration from `STRIPE_SECRET_KEY` (and `STRIPE_BASE_URL` when set).
    ///
    /// # Errors
    /// `Configuration` when the key is missing or empty, or the URL invalid.
    pub fn from_env() -> Result<StripeConfig, PaymentError> {
        let key =
            std::env::var("STRIPE_SECRET_KEY").map_err(|_| config_error("STRIPE_SECRET_KEY is not set".to_owned()))?;
        let config = StripeConfig::new(Secret::new(key))?;
        match std::env::var("STRIPE_BASE_URL") {
            Ok(url) => config.with_base_url(&url),
            Err(_) => Ok(config),
        }
    }

    /// Points the gateway at another base URL (a simulator, a proxy). Only `http` and `https` URLs, without
    /// credentials: the API key is the only credential sent, and userinfo (`https://user:pass@host`) would
    /// end up in logs and error messages wherever the URL is shown.
    ///
    /// # Errors
    /// `Configuration` when the URL does not parse, has another scheme, or carries a username or password.
    /// The message never repeats the URL (it may hold credentials).
    pub fn with_base_url(mut self, base_url: &str) -> Result<StripeConfig, PaymentError> {
        let url = Url::parse(base_url).map_err(|e| config_error(format!("base_url is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(config_error("base_url must be an http or https URL".to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(config_error(
                "base_url must not contain a username or password (userinfo before `@`); the API key is the only \
                 credential, give it as `api_key`"
                    .to_owned(),
            ));
        }
        self.base_url = url;
        Ok(self)
    }

    /// Sets the connect and whole-request timeouts.
    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> StripeConfig {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> StripeConfig {
        self.retry = retry;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key_and_urls_are_checked() {
        let config = StripeConfig::new(Secret::new("sk_test_very_secret"));
        let Ok(config) = config else { panic!("a key is enough") };
        assert!(!format!("{config:?}").contains("very_secret"));
        assert_eq!(config.base_url.as_str(), "https://api.stripe.com/");
        assert!(config.clone().with_base_url("ftp://example.com").is_err());
        assert!(config.clone().with_base_url("not a url").is_err());
        assert!(config.clone().with_base_url("http://127.0.0.1:1234").is_ok());
        for url in
            ["https://user:hunter2@api.example.com", "https://user@api.example.com", "https://:hunter2@h.example"]
        {
            let err = config.clone().with_base_url(url).err();
            assert_eq!(err.as_ref().map(|e| e.kind()), Some(ErrorKind::Configuration), "{url}");
            let text = format!("{err:?} {}", err.as_ref().map(ToString::to_string).unwrap_or_default());
            assert!(text.contains("username or password"), "{text}");
            assert!(!text.contains("hunter2") && !text.contains("user@") && !text.contains("example"), "{text}");
        }
        assert_eq!(StripeConfig::new(Secret::new("")).err().map(|e| e.kind()), Some(ErrorKind::Configuration));
    }
}
