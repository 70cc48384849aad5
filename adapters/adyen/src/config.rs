//! [`AdyenConfig`] and [`RetryPolicy`]: how the gateway and the terminal reach Adyen.

use std::time::Duration;

use commerce_ports::{ErrorKind, PaymentError, Secret};
use url::Url;

/// Adyen's Checkout test endpoint (without the version; the adapter appends [`API_VERSION`]). Live accounts use
/// `https://{PREFIX}-checkout-live.adyenpayments.com/checkout`, with the account's live URL prefix.
pub const DEFAULT_BASE_URL: &str = "https://checkout-test.adyen.com";

/// Adyen's cloud Terminal API test endpoint (`/sync` is appended). Live: `https://terminal-api-live.adyen.com`.
pub const DEFAULT_TERMINAL_BASE_URL: &str = "https://terminal-api-test.adyen.com";

/// The Checkout API version every path starts with.
pub const API_VERSION: &str = "v71";

/// Default time to establish a connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time for a whole Checkout request. A timeout after sending is an unknown outcome, retried with the
/// same idempotency key.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Default time for a synchronous Terminal API call: the shopper has to present a card and maybe enter a PIN,
/// and Adyen's cloud sync calls answer within about 150 seconds.
pub const DEFAULT_TERMINAL_TIMEOUT: Duration = Duration::from_secs(150);

/// The `SaleID` the terminal adapter puts into every `MessageHeader` unless configured.
pub const DEFAULT_SALE_ID: &str = "commerce";

pub use commerce_ports::RetryPolicy;

/// Everything the adapters need to reach Adyen. `Debug` never shows the API key.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AdyenConfig {
    /// The API key (`X-API-Key`) of a web service user with the Checkout (and Terminal API) roles.
    pub api_key: Secret,
    /// The merchant account payments are booked on (`merchantAccount`). Empty in a terminal-only
    /// configuration ([`AdyenConfig::for_terminal`]); the gateway refuses that.
    pub merchant_account: String,
    /// Checkout base URL without the version: [`DEFAULT_BASE_URL`], a live prefix URL, or a simulator.
    pub base_url: Url,
    /// Terminal API base URL: [`DEFAULT_TERMINAL_BASE_URL`] or a simulator.
    pub terminal_base_url: Url,
    /// Time to establish a connection.
    pub connect_timeout: Duration,
    /// Time for a whole Checkout request.
    pub request_timeout: Duration,
    /// Time for a whole Terminal API call (a shopper is at the terminal).
    pub terminal_timeout: Duration,
    /// Retries of Checkout calls.
    pub retry: RetryPolicy,
    /// The `SaleID` of Terminal API messages (identifies this point-of-sale system to the terminal).
    pub sale_id: String,
    /// The terminal (`POIID`) a terminal adapter drives when a request names none.
    pub poi_id: Option<String>,
}

fn config_error(message: impl Into<String>) -> PaymentError {
    PaymentError::new(ErrorKind::Configuration, "configure", message)
}

/// Parses an `http`/`https` base URL without userinfo. Messages never repeat the URL (it may hold credentials).
fn base_url(name: &str, value: &str) -> Result<Url, PaymentError> {
    let url = Url::parse(value).map_err(|e| config_error(format!("{name} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
        return Err(config_error(format!("{name} must be an http or https URL")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(config_error(format!(
            "{name} must not contain a username or password (userinfo before `@`); the API key is the only \
             credential, give it as `api_key`"
        )));
    }
    Ok(url)
}

impl AdyenConfig {
    /// A configuration for Adyen's test endpoints with default timeouts and retries.
    ///
    /// # Errors
    /// `Configuration` when the key or the merchant account is empty.
    pub fn new(api_key: Secret, merchant_account: impl Into<String>) -> Result<AdyenConfig, PaymentError> {
        let merchant_account = merchant_account.into();
        if api_key.is_empty() {
            return Err(config_error("the Adyen API key (`api_key`) is empty"));
        }
        if merchant_account.trim().is_empty() {
            return Err(config_error("the merchant account (`merchant_account`) is empty"));
        }
        let mut config = AdyenConfig::for_terminal(api_key)?;
        config.merchant_account = merchant_account;
        Ok(config)
    }

    /// A configuration for the Terminal API only (no merchant account: terminal messages do not carry one).
    ///
    /// # Errors
    /// `Configuration` when the key is empty.
    pub fn for_terminal(api_key: Secret) -> Result<AdyenConfig, PaymentError> {
        if api_key.is_empty() {
            return Err(config_error("the Adyen API key (`api_key`) is empty"));
        }
        Ok(AdyenConfig {
            api_key,
            merchant_account: String::new(),
            base_url: base_url("base_url", DEFAULT_BASE_URL)?,
            terminal_base_url: base_url("terminal_base_url", DEFAULT_TERMINAL_BASE_URL)?,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            terminal_timeout: DEFAULT_TERMINAL_TIMEOUT,
            retry: RetryPolicy::default(),
            sale_id: DEFAULT_SALE_ID.to_owned(),
            poi_id: None,
        })
    }

    /// Points Checkout calls at another base URL (without the `/v71`). Only `http` and `https` URLs without
    /// credentials.
    ///
    /// # Errors
    /// `Configuration` when the URL does not parse, has another scheme, or carries a username or password.
    pub fn with_base_url(mut self, url: &str) -> Result<AdyenConfig, PaymentError> {
        self.base_url = base_url("base_url", url)?;
        Ok(self)
    }

    /// Points Terminal API calls at another base URL (`/sync` is appended).
    ///
    /// # Errors
    /// As [`with_base_url`](AdyenConfig::with_base_url).
    pub fn with_terminal_base_url(mut self, url: &str) -> Result<AdyenConfig, PaymentError> {
        self.terminal_base_url = base_url("terminal_base_url", url)?;
        Ok(self)
    }

    /// Sets the connect and whole-request timeouts of Checkout calls.
    pub fn with_timeouts(mut self, connect: Duration, request: Duration) -> AdyenConfig {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// Sets the whole-call timeout of Terminal API calls.
    pub fn with_terminal_timeout(mut self, timeout: Duration) -> AdyenConfig {
        self.terminal_timeout = timeout;
        self
    }

    /// Sets the retry policy of Checkout calls.
    pub fn with_retry(mut self, retry: RetryPolicy) -> AdyenConfig {
        self.retry = retry;
        self
    }

    /// Sets the Terminal API `SaleID`.
    ///
    /// # Errors
    /// `Configuration` when it is empty.
    pub fn with_sale_id(mut self, sale_id: impl Into<String>) -> Result<AdyenConfig, PaymentError> {
        let sale_id = sale_id.into();
        if sale_id.trim().is_empty() {
            return Err(config_error("sale_id must not be empty"));
        }
        self.sale_id = sale_id;
        Ok(self)
    }

    /// Sets the terminal (`POIID`) used when a payment request names none.
    ///
    /// # Errors
    /// `Configuration` when it is empty.
    pub fn with_poi_id(mut self, poi_id: impl Into<String>) -> Result<AdyenConfig, PaymentError> {
        let poi_id = poi_id.into();
        if poi_id.trim().is_empty() {
            return Err(config_error("poi_id must not be empty"));
        }
        self.poi_id = Some(poi_id);
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_key_and_urls_are_checked() {
        let Ok(config) = AdyenConfig::new(Secret::new("AQE_very_secret"), "ShopCOM") else { panic!("valid") };
        assert!(!format!("{config:?}").contains("very_secret"));
        assert_eq!(config.base_url.as_str(), "https://checkout-test.adyen.com/");
        assert!(config.clone().with_base_url("ftp://example.com").is_err());
        assert!(config.clone().with_terminal_base_url("not a url").is_err());
        assert!(config.clone().with_base_url("http://127.0.0.1:1234").is_ok());
        let err = config.clone().with_base_url("https://user:hunter2@proxy.example").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("username or password") && !text.contains("hunter2"), "{text}");
        assert!(AdyenConfig::new(Secret::new(""), "ShopCOM").is_err());
        assert!(AdyenConfig::new(Secret::new("k"), " ").is_err());
        assert!(config.clone().with_sale_id("").is_err());
        assert!(config.with_poi_id(" ").is_err());
        let terminal = AdyenConfig::for_terminal(Secret::new("k")).ok();
        assert_eq!(terminal.map(|c| c.merchant_account), Some(String::new()));
    }
}
