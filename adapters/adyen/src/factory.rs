//! [`AdyenWebhookFactory`]: builds an [`AdyenWebhookVerifier`] from configuration.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::factory::{Adapter, AdapterFactory, BuildError, ParamSpec, Params, PortKind};

use crate::webhook::AdyenWebhookVerifier;

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
    use commerce_ports::factory::{ParamValue, Requirement};

    use super::*;

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
