//! Factories: [`AdyenGatewayFactory`] builds an [`AdyenGateway`], [`AdyenTerminalFactory`] an
//! [`AdyenTerminal`] and [`AdyenWebhookFactory`] an [`AdyenWebhookVerifier`] from configuration.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use commerce_ports::factory::{
    Adapter, AdapterFactory, BuildError, ParamSpec, ParamType, ParamValue, Params, PortKind,
};

use crate::adapter::AdyenGateway;
use crate::config::{
    AdyenConfig, DEFAULT_BASE_URL, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SALE_ID, DEFAULT_TERMINAL_BASE_URL,
    DEFAULT_TERMINAL_TIMEOUT, RetryPolicy,
};
use crate::terminal::AdyenTerminal;
use crate::webhook::AdyenWebhookVerifier;

/// Default retries after the first attempt.
const DEFAULT_MAX_RETRIES: i64 = 2;

fn millis(duration: Duration, fallback: i64) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(fallback)
}

fn max_retries() -> ParamSpec {
    ParamSpec::with_default(
        "max_retries",
        ParamType::Integer,
        ParamValue::Integer(DEFAULT_MAX_RETRIES),
        "retries after the first attempt: Checkout calls always with the same idempotency key, Terminal API calls \
         only when nothing was sent",
    )
}

/// The gateway's parameters.
fn gateway_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::secret("api_key", "the API key (`X-API-Key`) of an Adyen web service user"),
        ParamSpec::required("merchant_account", ParamType::String, "the Adyen merchant account (`merchantAccount`)"),
        ParamSpec::with_default(
            "base_url",
            ParamType::Url,
            ParamValue::Text(DEFAULT_BASE_URL.to_owned()),
            "the Checkout API base URL without `/v71` (live: `https://{PREFIX}-checkout-live.adyenpayments.com/checkout`)",
        ),
        ParamSpec::with_default(
            "timeout_ms",
            ParamType::Integer,
            ParamValue::Integer(millis(DEFAULT_REQUEST_TIMEOUT, 30_000)),
            "whole-request timeout of Checkout calls in milliseconds; a timeout after sending is an unknown outcome",
        ),
        max_retries(),
    ]
}

/// The terminal's parameters.
fn terminal_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::secret("api_key", "the API key (`X-API-Key`) of an Adyen web service user with Terminal API access"),
        ParamSpec::optional(
            "poi_id",
            ParamType::String,
            "the terminal (`POIID`, e.g. `V400m-324688179`) this binding drives when a request names none",
        ),
        ParamSpec::with_default(
            "terminal_base_url",
            ParamType::Url,
            ParamValue::Text(DEFAULT_TERMINAL_BASE_URL.to_owned()),
            "the cloud Terminal API base URL (`/sync` is appended; live: `https://terminal-api-live.adyen.com`)",
        ),
        ParamSpec::with_default(
            "terminal_timeout_ms",
            ParamType::Integer,
            ParamValue::Integer(millis(DEFAULT_TERMINAL_TIMEOUT, 150_000)),
            "whole-call timeout of Terminal API calls in milliseconds (the shopper is at the terminal)",
        ),
        max_retries(),
        ParamSpec::with_default(
            "sale_id",
            ParamType::String,
            ParamValue::Text(DEFAULT_SALE_ID.to_owned()),
            "the Terminal API `SaleID` of this point-of-sale system",
        ),
    ]
}

fn positive_ms(params: &Params, name: &'static str) -> Result<Option<Duration>, BuildError> {
    match params.integer(name)? {
        None => Ok(None),
        Some(ms) => u64::try_from(ms)
            .ok()
            .filter(|ms| *ms > 0)
            .map(|ms| Some(Duration::from_millis(ms)))
            .ok_or_else(|| BuildError::param(name, format!("{ms} is not a positive number of milliseconds"))),
    }
}

/// Builds the configuration (the merchant account is required for the gateway only); messages name the
/// parameter and never the key.
fn config(params: &Params, gateway: bool) -> Result<AdyenConfig, BuildError> {
    let key = params.secret("api_key")?;
    if key.is_empty() {
        return Err(BuildError::param("api_key", "is empty"));
    }
    let mut config = if gateway {
        let merchant = params.require_text("merchant_account")?;
        AdyenConfig::new(key.clone(), merchant)
            .map_err(|e| BuildError::param("merchant_account", e.message().to_owned()))?
    } else {
        AdyenConfig::for_terminal(key.clone()).map_err(|e| BuildError::param("api_key", e.message().to_owned()))?
    };
    if let Some(poi_id) = params.text("poi_id")? {
        config = config.with_poi_id(poi_id).map_err(|e| BuildError::param("poi_id", e.message().to_owned()))?;
    }
    if let Some(url) = params.text("base_url")? {
        config = config.with_base_url(url).map_err(|e| BuildError::param("base_url", e.message().to_owned()))?;
    }
    if let Some(url) = params.text("terminal_base_url")? {
        config = config
            .with_terminal_base_url(url)
            .map_err(|e| BuildError::param("terminal_base_url", e.message().to_owned()))?;
    }
    if let Some(request) = positive_ms(params, "timeout_ms")? {
        let connect = config.connect_timeout.min(request);
        config = config.with_timeouts(connect, request);
    }
    if let Some(timeout) = positive_ms(params, "terminal_timeout_ms")? {
        config = config.with_terminal_timeout(timeout);
    }
    if let Some(retries) = params.integer("max_retries")? {
        let retries = u32::try_from(retries)
            .ok()
            .filter(|r| *r <= 10)
            .ok_or_else(|| BuildError::param("max_retries", format!("{retries} is not between 0 and 10")))?;
        config = config.with_retry(RetryPolicy::with_max_retries(retries));
    }
    if let Some(sale_id) = params.text("sale_id")? {
        config = config.with_sale_id(sale_id).map_err(|e| BuildError::param("sale_id", e.message().to_owned()))?;
    }
    Ok(config)
}

/// Builds [`AdyenGateway`]s (`payment-gateway` / `adyen`).
///
/// Parameters: `api_key` (required, from a secret source), `merchant_account` (required), `base_url` (default
/// `https://checkout-test.adyen.com`), `timeout_ms` (default 30000) and `max_retries` (default 2).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct AdyenGatewayFactory;

impl AdyenGatewayFactory {
    /// The adapter name in configuration files.
    pub const NAME: &'static str = "adyen";

    /// A factory.
    pub fn new() -> AdyenGatewayFactory {
        AdyenGatewayFactory
    }
}

#[async_trait]
impl AdapterFactory for AdyenGatewayFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn port(&self) -> PortKind {
        PortKind::PaymentGateway
    }

    fn description(&self) -> &'static str {
        "Adyen Checkout v71: authorisations, asynchronous captures, refunds and cancels settled by notification"
    }

    fn params(&self) -> Vec<ParamSpec> {
        gateway_params()
    }

    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let gateway =
            AdyenGateway::new(config(&params, true)?).map_err(|e| BuildError::other(e.message().to_owned()))?;
        Ok(Adapter::PaymentGateway(Arc::new(gateway)))
    }
}

/// Builds [`AdyenTerminal`]s (`payment-terminal` / `adyen`): the cloud Terminal API in synchronous mode.
///
/// Parameters: `api_key` (required, from a secret source), `poi_id` (optional: the terminal used when a request
/// names none), `terminal_base_url` (default `https://terminal-api-test.adyen.com`), `terminal_timeout_ms`
/// (default 150000), `max_retries` (default 2; only connection failures are retried) and `sale_id` (default
/// `commerce`).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct AdyenTerminalFactory;

impl AdyenTerminalFactory {
    /// The adapter name in configuration files.
    pub const NAME: &'static str = "adyen";

    /// A factory.
    pub fn new() -> AdyenTerminalFactory {
        AdyenTerminalFactory
    }
}

#[async_trait]
impl AdapterFactory for AdyenTerminalFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn port(&self) -> PortKind {
        PortKind::PaymentTerminal
    }

    fn description(&self) -> &'static str {
        "Adyen cloud Terminal API (sync): card-present payments, referenced refunds, status and abort"
    }

    fn params(&self) -> Vec<ParamSpec> {
        terminal_params()
    }

    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let terminal =
            AdyenTerminal::new(config(&params, false)?).map_err(|e| BuildError::other(e.message().to_owned()))?;
        Ok(Adapter::PaymentTerminal(Arc::new(terminal)))
    }
}

/// Builds [`AdyenWebhookVerifier`]s (`webhook-verifier` / `adyen`).
///
/// Parameter: `hmac_key` (required, from a secret source: the webhook's HMAC key in hex).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct AdyenWebhookFactory;

impl AdyenWebhookFactory {
    /// The adapter name in configuration files.
    pub const NAME: &'static str = "adyen";

    /// A factory.
    pub fn new() -> AdyenWebhookFactory {
        AdyenWebhookFactory
    }
}

#[async_trait]
impl AdapterFactory for AdyenWebhookFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn port(&self) -> PortKind {
        PortKind::WebhookVerifier
    }

    fn description(&self) -> &'static str {
        "verifies Adyen notification HMAC signatures (every item of a batch) and parses the events"
    }

    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::secret("hmac_key", "the webhook's HMAC key as shown by Adyen (hexadecimal)")]
    }

    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let key = params.secret("hmac_key")?;
        let verifier = AdyenWebhookVerifier::new(key.clone()).map_err(|e| BuildError::param("hmac_key", e.message))?;
        Ok(Adapter::WebhookVerifier(Arc::new(verifier)))
    }
}

#[cfg(test)]
mod tests {
    use commerce_ports::Secret;
    use commerce_ports::factory::Requirement;

    use super::*;

    fn gateway_build_params() -> Params {
        Params::new()
            .with("api_key", ParamValue::Secret(Secret::new("AQE_test_secret")))
            .with("merchant_account", ParamValue::Text("ShopCOM".into()))
            .with("base_url", ParamValue::Text("http://127.0.0.1:9".into()))
    }

    fn terminal_build_params() -> Params {
        Params::new()
            .with("api_key", ParamValue::Secret(Secret::new("AQE_test_secret")))
            .with("poi_id", ParamValue::Text("P400-123".into()))
            .with("terminal_base_url", ParamValue::Text("http://127.0.0.1:9".into()))
    }

    #[test]
    fn gateway_and_terminal_factories_declare_their_parameters() {
        let names =
            |factory: &dyn AdapterFactory| -> Vec<&'static str> { factory.params().iter().map(|p| p.name).collect() };
        assert_eq!(
            names(&AdyenGatewayFactory::new()),
            ["api_key", "merchant_account", "base_url", "timeout_ms", "max_retries"]
        );
        assert_eq!(
            names(&AdyenTerminalFactory::new()),
            ["api_key", "poi_id", "terminal_base_url", "terminal_timeout_ms", "max_retries", "sale_id"]
        );
        for factory in [&AdyenGatewayFactory::new() as &dyn AdapterFactory, &AdyenTerminalFactory::new()] {
            assert_eq!(factory.name(), "adyen");
            let params = factory.params();
            assert!(
                params.iter().any(|p| p.name == "api_key" && p.sensitive && p.requirement == Requirement::Required)
            );
            assert_eq!(params.iter().filter(|p| p.sensitive).count(), 1);
        }
        let gateway = AdyenGatewayFactory::new().params();
        assert!(gateway.iter().any(|p| p.name == "merchant_account" && p.requirement == Requirement::Required));
        assert!(gateway.iter().any(|p| p.name == "base_url"
            && p.requirement == Requirement::Default(ParamValue::Text("https://checkout-test.adyen.com".into()))));
        let terminal = AdyenTerminalFactory::new().params();
        assert!(terminal.iter().any(|p| p.name == "poi_id" && p.requirement == Requirement::Optional));
        assert!(terminal.iter().any(|p| p.name == "terminal_base_url" && p.kind == ParamType::Url));
        assert_eq!(AdyenGatewayFactory::new().port(), PortKind::PaymentGateway);
        assert_eq!(AdyenTerminalFactory::new().port(), PortKind::PaymentTerminal);
    }

    #[tokio::test]
    async fn builds_a_gateway_and_a_terminal() {
        let built = AdyenGatewayFactory::new().build(gateway_build_params()).await;
        assert!(
            matches!(&built, Ok(Adapter::PaymentGateway(g)) if g.capabilities().asynchronous_modifications
                && !g.capabilities().retrieve && g.capabilities().max_idempotency_key_len == 64),
            "{built:?}"
        );
        let built = AdyenTerminalFactory::new().build(terminal_build_params()).await;
        assert!(matches!(&built, Ok(Adapter::PaymentTerminal(t)) if t.capabilities().offline.is_none()), "{built:?}");
        assert!(format!("{built:?}").contains("P400-123") && !format!("{built:?}").contains("AQE_test_secret"));
    }

    #[tokio::test]
    async fn names_bad_parameters_without_showing_the_key() {
        let key = || ParamValue::Secret(Secret::new("AQE_test_secret"));
        let gateway_cases = [
            (Params::new(), "api_key"),
            (gateway_build_params().with("api_key", ParamValue::Text("AQE_test_secret".into())), "api_key"),
            (Params::new().with("api_key", key()), "merchant_account"),
            (gateway_build_params().with("base_url", ParamValue::Text("ftp://x".into())), "base_url"),
            (gateway_build_params().with("base_url", ParamValue::Text("https://u:p@x".into())), "base_url"),
            (gateway_build_params().with("timeout_ms", ParamValue::Integer(0)), "timeout_ms"),
            (gateway_build_params().with("max_retries", ParamValue::Integer(11)), "max_retries"),
        ];
        let terminal_cases = [
            (Params::new(), "api_key"),
            (terminal_build_params().with("poi_id", ParamValue::Text(" ".into())), "poi_id"),
            (
                terminal_build_params().with("terminal_base_url", ParamValue::Text("https://u:p@x".into())),
                "terminal_base_url",
            ),
            (terminal_build_params().with("terminal_timeout_ms", ParamValue::Integer(-5)), "terminal_timeout_ms"),
            (terminal_build_params().with("sale_id", ParamValue::Text(" ".into())), "sale_id"),
        ];
        for (factory, cases) in [
            (&AdyenGatewayFactory::new() as &dyn AdapterFactory, gateway_cases.to_vec()),
            (&AdyenTerminalFactory::new(), terminal_cases.to_vec()),
        ] {
            for (params, param) in cases {
                let err = factory.build(params).await.err();
                assert_eq!(err.as_ref().and_then(|e| e.param.clone()), Some(param.to_owned()), "{err:?}");
                assert!(!format!("{err:?}").contains("AQE_test_secret"));
            }
        }
        // The terminal needs no merchant account.
        assert!(AdyenTerminalFactory::new().build(Params::new().with("api_key", key())).await.is_ok());
    }

    #[test]
    fn declares_a_sensitive_required_key() {
        let factory = AdyenWebhookFactory::new();
        assert_eq!((factory.name(), factory.port()), ("adyen", PortKind::WebhookVerifier));
        let params = factory.params();
        assert_eq!(params.len(), 1);
        assert!(params[0].name == "hmac_key" && params[0].sensitive && params[0].requirement == Requirement::Required);
    }

    #[tokio::test]
    async fn builds_a_webhook_verifier() {
        let params = Params::new().with("hmac_key", ParamValue::Secret(Secret::new("00ff")));
        let built = AdyenWebhookFactory::new().build(params).await;
        assert!(matches!(&built, Ok(Adapter::WebhookVerifier(v)) if v.provider() == "adyen"), "{built:?}");
    }

    #[tokio::test]
    async fn refuses_missing_literal_or_non_hex_keys() {
        for params in [
            Params::new(),
            Params::new().with("hmac_key", ParamValue::Text("00ff".to_owned())),
            Params::new().with("hmac_key", ParamValue::Secret(Secret::new("not-hex"))),
        ] {
            let err = AdyenWebhookFactory::new().build(params).await.err();
            assert_eq!(err.and_then(|e| e.param).as_deref(), Some("hmac_key"));
        }
    }
}
