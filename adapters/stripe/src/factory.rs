//! Factories: [`StripeGatewayFactory`] builds a [`StripeGateway`] and [`StripeWebhookFactory`] a
//! [`StripeWebhookVerifier`] from configuration.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use commerce_ports::factory::{
    Adapter, AdapterFactory, BuildError, ParamSpec, ParamType, ParamValue, Params, PortKind,
};

use crate::adapter::StripeGateway;
use crate::config::{DEFAULT_BASE_URL, DEFAULT_REQUEST_TIMEOUT, RetryPolicy, StripeConfig};
use crate::webhook::{DEFAULT_TOLERANCE, StripeWebhookVerifier};

/// Builds [`StripeGateway`]s (`payment-gateway` / `stripe`).
///
/// Parameters: `api_key` (required, from a secret source), `base_url` (default `https://api.stripe.com`),
/// `timeout_ms` (whole-request timeout, default 30000) and `max_retries` (retries after the first attempt,
/// default 2).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct StripeGatewayFactory;

impl StripeGatewayFactory {
    /// The adapter name in configuration files.
    pub const NAME: &'static str = "stripe";

    /// A factory.
    pub fn new() -> StripeGatewayFactory {
        StripeGatewayFactory
    }
}

/// Default retries after the first attempt.
const DEFAULT_MAX_RETRIES: i64 = 2;

#[async_trait]
impl AdapterFactory for StripeGatewayFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn port(&self) -> PortKind {
        PortKind::PaymentGateway
    }

    fn description(&self) -> &'static str {
        "Stripe PaymentIntents: manual or automatic capture, partial capture, refunds, voids"
    }

    fn params(&self) -> Vec<ParamSpec> {
        let timeout_ms = i64::try_from(DEFAULT_REQUEST_TIMEOUT.as_millis()).unwrap_or(30_000);
        vec![
            ParamSpec::secret("api_key", "the secret API key (`sk_live_...`, `sk_test_...` or a restricted `rk_...`)"),
            ParamSpec::with_default(
                "base_url",
                ParamType::Url,
                ParamValue::Text(DEFAULT_BASE_URL.to_owned()),
                "the Stripe API base URL (a simulator or proxy in tests)",
            ),
            ParamSpec::with_default(
                "timeout_ms",
                ParamType::Integer,
                ParamValue::Integer(timeout_ms),
                "whole-request timeout in milliseconds; a timeout after sending is an unknown outcome",
            ),
            ParamSpec::with_default(
                "max_retries",
                ParamType::Integer,
                ParamValue::Integer(DEFAULT_MAX_RETRIES),
                "retries after the first attempt, always with the same idempotency key",
            ),
        ]
    }

    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let key = params.secret("api_key")?;
        if key.is_empty() {
            return Err(BuildError::param("api_key", "is empty"));
        }
        let mut config =
            StripeConfig::new(key.clone()).map_err(|e| BuildError::param("api_key", e.message().to_owned()))?;
        if let Some(url) = params.text("base_url")? {
            config = config.with_base_url(url).map_err(|e| BuildError::param("base_url", e.message().to_owned()))?;
        }
        if let Some(ms) = params.integer("timeout_ms")? {
            let ms = u64::try_from(ms).ok().filter(|ms| *ms > 0).ok_or_else(|| {
                BuildError::param("timeout_ms", format!("{ms} is not a positive number of milliseconds"))
            })?;
            let request = Duration::from_millis(ms);
            let connect = config.connect_timeout.min(request);
            config = config.with_timeouts(connect, request);
        }
        if let Some(retries) = params.integer("max_retries")? {
            let retries = u32::try_from(retries)
                .ok()
                .filter(|r| *r <= 10)
                .ok_or_else(|| BuildError::param("max_retries", format!("{retries} is not between 0 and 10")))?;
            config = config.with_retry(RetryPolicy::with_max_retries(retries));
        }
        let gateway = StripeGateway::new(config).map_err(|e| BuildError::other(e.message().to_owned()))?;
        Ok(Adapter::PaymentGateway(Arc::new(gateway)))
    }
}

/// Builds [`StripeWebhookVerifier`]s (`webhook-verifier` / `stripe`).
///
/// Parameters: `signing_secret` (required, from a secret source: the endpoint's `whsec_...` secret) and
/// `tolerance_secs` (default 300).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct StripeWebhookFactory;

impl StripeWebhookFactory {
    /// The adapter name in configuration files.
    pub const NAME: &'static str = "stripe";

    /// A factory.
    pub fn new() -> StripeWebhookFactory {
        StripeWebhookFactory
    }
}

#[async_trait]
impl AdapterFactory for StripeWebhookFactory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn port(&self) -> PortKind {
        PortKind::WebhookVerifier
    }

    fn description(&self) -> &'static str {
        "verifies Stripe-Signature headers (HMAC-SHA256, v1) and parses Stripe events"
    }

    fn params(&self) -> Vec<ParamSpec> {
        let default_secs = i64::try_from(DEFAULT_TOLERANCE.as_secs()).unwrap_or(300);
        vec![
            ParamSpec::secret("signing_secret", "the webhook endpoint's signing secret (`whsec_...`)"),
            ParamSpec::with_default(
                "tolerance_secs",
                ParamType::Integer,
                ParamValue::Integer(default_secs),
                "largest accepted distance in seconds between the signed timestamp and now",
            ),
        ]
    }

    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let secret = params.secret("signing_secret")?;
        if secret.is_empty() {
            return Err(BuildError::param("signing_secret", "is empty"));
        }
        let mut verifier = StripeWebhookVerifier::new(secret.clone());
        if let Some(secs) = params.integer("tolerance_secs")? {
            let secs = u64::try_from(secs)
                .map_err(|_| BuildError::param("tolerance_secs", format!("{secs} is negative; give seconds >= 0")))?;
            verifier = verifier.with_tolerance(Duration::from_secs(secs));
        }
        Ok(Adapter::WebhookVerifier(Arc::new(verifier)))
    }
}

#[cfg(test)]
mod tests {
    use commerce_ports::Secret;
    use commerce_ports::factory::Requirement;

    use super::*;

    #[test]
    fn gateway_factory_declares_its_parameters() {
        let factory = StripeGatewayFactory::new();
        assert_eq!((factory.name(), factory.port()), ("stripe", PortKind::PaymentGateway));
        let params = factory.params();
        let find = |name: &str| params.iter().find(|p| p.name == name).cloned();
        assert!(find("api_key").is_some_and(|p| p.sensitive && p.requirement == Requirement::Required));
        assert!(find("base_url").is_some_and(|p| p.kind == ParamType::Url
            && p.requirement == Requirement::Default(ParamValue::Text("https://api.stripe.com".into()))));
        assert!(find("timeout_ms").is_some_and(|p| p.requirement == Requirement::Default(ParamValue::Integer(30_000))));
        assert!(find("max_retries").is_some_and(|p| p.requirement == Requirement::Default(ParamValue::Integer(2))));
    }

    #[tokio::test]
    async fn gateway_factory_builds_and_names_bad_parameters() {
        let key = || ParamValue::Secret(Secret::new("sk_test_x"));
        let built = StripeGatewayFactory::new()
            .build(Params::new().with("api_key", key()).with("base_url", ParamValue::Text("http://127.0.0.1:9".into())))
            .await;
        assert!(matches!(&built, Ok(Adapter::PaymentGateway(g)) if g.capabilities().manual_capture), "{built:?}");
        let cases = [
            (Params::new(), "api_key"),
            (Params::new().with("api_key", ParamValue::Text("sk_test_x".into())), "api_key"),
            (Params::new().with("api_key", key()).with("base_url", ParamValue::Text("ftp://x".into())), "base_url"),
            (Params::new().with("api_key", key()).with("timeout_ms", ParamValue::Integer(0)), "timeout_ms"),
            (Params::new().with("api_key", key()).with("max_retries", ParamValue::Integer(-1)), "max_retries"),
        ];
        for (params, param) in cases {
            let err = StripeGatewayFactory::new().build(params).await.err();
            assert_eq!(err.as_ref().and_then(|e| e.param.clone()), Some(param.to_owned()), "{err:?}");
            assert!(!format!("{err:?}").contains("sk_test_x"));
        }
        let with_userinfo = Params::new()
            .with("api_key", key())
            .with("base_url", ParamValue::Text("https://admin:hunter2@proxy.example".into()));
        let err = StripeGatewayFactory::new().build(with_userinfo).await.err();
        assert_eq!(err.as_ref().and_then(|e| e.param.clone()), Some("base_url".to_owned()), "{err:?}");
        let text = format!("{err:?} {}", err.as_ref().map(ToString::to_string).unwrap_or_default());
        assert!(text.contains("username or password"), "{text}");
        assert!(!text.contains("hunter2") && !text.contains("admin") && !text.contains("proxy.example"), "{text}");
    }

    #[test]
    fn declares_a_sensitive_secret_and_a_defaulted_tolerance() {
        let factory = StripeWebhookFactory::new();
        assert_eq!((factory.name(), factory.port()), ("stripe", PortKind::WebhookVerifier));
        let params = factory.params();
        let secret = params.iter().find(|p| p.name == "signing_secret");
        assert!(secret.is_some_and(|p| p.sensitive && p.requirement == Requirement::Required));
        let tolerance = params.iter().find(|p| p.name == "tolerance_secs");
        assert!(tolerance.is_some_and(|p| {
            !p.sensitive
                && p.kind == ParamType::Integer
                && p.requirement == Requirement::Default(ParamValue::Integer(300))
        }));
    }

    #[tokio::test]
    async fn builds_a_webhook_verifier() {
        let params = Params::new()
            .with("signing_secret", ParamValue::Secret(Secret::new("whsec_x")))
            .with("tolerance_secs", ParamValue::Integer(60));
        let built = StripeWebhookFactory::new().build(params).await;
        assert!(matches!(&built, Ok(Adapter::WebhookVerifier(v)) if v.provider() == "stripe"), "{built:?}");
    }

    #[tokio::test]
    async fn refuses_missing_empty_or_literal_secrets_and_negative_tolerance() {
        let cases = [
            (Params::new(), "signing_secret"),
            (Params::new().with("signing_secret", ParamValue::Secret(Secret::new(""))), "signing_secret"),
            (Params::new().with("signing_secret", ParamValue::Text("whsec_x".to_owned())), "signing_secret"),
            (
                Params::new()
                    .with("signing_secret", ParamValue::Secret(Secret::new("whsec_x")))
                    .with("tolerance_secs", ParamValue::Integer(-1)),
                "tolerance_secs",
            ),
        ];
        for (params, param) in cases {
            let err = StripeWebhookFactory::new().build(params).await.err();
            assert_eq!(err.and_then(|e| e.param), Some(param.to_owned()));
        }
    }
}
