//! [`StripeWebhookFactory`]: builds a [`StripeWebhookVerifier`] from configuration.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use commerce_ports::factory::{
    Adapter, AdapterFactory, BuildError, ParamSpec, ParamType, ParamValue, Params, PortKind,
};

use crate::webhook::{DEFAULT_TOLERANCE, StripeWebhookVerifier};

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
