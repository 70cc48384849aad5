//! [`StripeGateway`]: the [`PaymentGateway`] port on Stripe PaymentIntents.

use std::fmt;

use async_trait::async_trait;
use commerce_ports::payment::{
    AuthorizeRequest, CaptureMethod, CaptureRequest, GatewayCapabilities, IncrementRequest, ModificationResult,
    ModificationStatus, PaymentGateway, PaymentMethodRef, PaymentSnapshot, RefundRequest, TenderKind, TokenizeRequest,
    VoidRequest,
};
use commerce_ports::{ErrorKind, Money, PaymentError};
use serde_json::{Value, json};

use crate::client::StripeClient;
use crate::config::StripeConfig;
use crate::mapping::{Form, PaymentIntentDto, RefundDto, wire_amount};

/// The longest `Idempotency-Key` Stripe accepts.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// Refund reasons Stripe accepts in `reason`; any other text goes to `metadata[reason]`.
const REFUND_REASONS: [&str; 3] = ["duplicate", "fraudulent", "requested_by_customer"];

/// A [`PaymentGateway`] on Stripe's PaymentIntents API.
///
/// Authorizations create and confirm a PaymentIntent (`capture_method=manual` or `automatic`); captures,
/// voids (cancel) and refunds act on it, with the caller's idempotency key. See the crate docs for the
/// capabilities and the retry rules.
#[derive(Clone)]
pub struct StripeGateway {
    client: StripeClient,
    base_url: String,
}

impl fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeGateway").field("base_url", &self.base_url).finish_non_exhaustive()
    }
}

impl StripeGateway {
    /// A gateway for `config`.
    ///
    /// # Errors
    /// `Configuration` when the HTTP client cannot be built.
    pub fn new(config: StripeConfig) -> Result<StripeGateway, PaymentError> {
        Ok(StripeGateway { client: StripeClient::new(&config)?, base_url: config.base_url.to_string() })
    }

    /// The payment intent `reference`, with its latest charge expanded (for refunded amounts).
    async fn intent(&self, operation: &'static str, reference: &str) -> Result<PaymentIntentDto, PaymentError> {
        if reference.is_empty() {
            return Err(PaymentError::invalid(operation, "provider_reference must not be empty"));
        }
        self.client.get(operation, &["v1", "payment_intents", reference], &[("expand[]", "latest_charge")]).await
    }

    /// Refuses `amount` unless it is positive and in the payment's currency. Stripe's capture and refund
    /// endpoints take no currency, so the adapter reads the intent first (a GET, always safe).
    async fn check_currency(
        &self,
        operation: &'static str,
        reference: &str,
        amount: Money,
    ) -> Result<(i64, PaymentIntentDto), PaymentError> {
        let (minor, currency) = wire_amount(operation, amount)?;
        let intent = self.intent(operation, reference).await?;
        if intent.currency != currency {
            return Err(PaymentError::invalid(
                operation,
                format!(
                    "amount {amount} is not in the currency of payment intent `{reference}` ({})",
                    intent.currency.to_ascii_uppercase()
                ),
            ));
        }
        Ok((minor, intent))
    }
}

/// Maps the answer to a mutating call that Stripe accepted (2xx). The action happened, so an answer this
/// adapter cannot read (unknown status, unmapped currency) is `OutcomeUnknown` (retry with the same key or
/// reconcile with `retrieve`), never `Unexpected`; the mapping error is kept as the source. Other errors
/// (a refund Stripe reports as failed) pass through.
fn after_action<T>(operation: &'static str, mapped: Result<T, PaymentError>) -> Result<T, PaymentError> {
    mapped.map_err(|error| {
        if error.kind() == ErrorKind::Unexpected {
            PaymentError::new(
                ErrorKind::OutcomeUnknown,
                operation,
                "Stripe accepted the request but its answer could not be mapped; retry with the same \
                 idempotency key or reconcile with retrieve",
            )
            .with_source(error)
        } else {
            error
        }
    })
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    fn capabilities(&self) -> GatewayCapabilities {
        let mut caps = GatewayCapabilities::none();
        caps.manual_capture = true;
        caps.partial_capture = true;
        caps.multiple_captures = false;
        caps.partial_refund = true;
        caps.multiple_refunds = true;
        caps.incremental_authorization = false;
        caps.void = true;
        caps.tokenize = false;
        caps.asynchronous_modifications = false;
        caps.retrieve = true;
        caps.max_idempotency_key_len = MAX_IDEMPOTENCY_KEY_LEN;
        // The provider replays a key's first answer for at least this long (PROVIDERS.md).
        caps.replay_window = Some(std::time::Duration::from_secs(24 * 60 * 60));
        caps.tenders = vec![TenderKind::Card, TenderKind::Wallet];
        caps
    }

    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError> {
        const OP: &str = "authorize";
        let (amount, currency) = wire_amount(OP, request.amount)?;
        if !self.capabilities().tenders.contains(&request.tender) {
            return Err(PaymentError::new(
                ErrorKind::Unsupported,
                OP,
                format!("tender `{}` is not supported by the Stripe gateway", request.tender),
            ));
        }
        if request.payment_method.0.is_empty() {
            return Err(PaymentError::invalid(OP, "payment_method must not be empty"));
        }
        let capture_method = match request.capture_method {
            CaptureMethod::Manual => "manual",
            _ => "automatic",
        };
        let mut metadata: serde_json::Map<String, Value> =
            request.metadata.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        if !request.reference.is_empty() {
            metadata.insert("reference".to_owned(), Value::String(request.reference.clone()));
        }
        let form = Form::new()
            .add("amount", &json!(amount))
            .text("currency", currency)
            .text("payment_method", request.payment_method.0.clone())
            .add("payment_method_types", &json!(["card"]))
            .text("capture_method", capture_method)
            .add("confirm", &json!(true))
            .text("description", request.reference.clone())
            .add("metadata", &Value::Object(metadata));
        // IdempotencyKey::MAX_LEN is 255, Stripe's limit, so every caller's key is sent as it is.
        let intent: PaymentIntentDto =
            self.client.post(OP, &["v1", "payment_intents"], &form, request.idempotency_key.as_str()).await?;
        after_action(OP, intent.snapshot(OP))
    }

    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "capture";
        let (amount, _) = self.check_currency(OP, &request.provider_reference, request.amount).await?;
        // Every Stripe capture is final without multicapture: the rest of the authorization is released,
        // whatever `final_capture` says. A second capture answers Unsupported (see error.rs).
        let form = Form::new().add("amount_to_capture", &json!(amount));
        let intent: PaymentIntentDto = self
            .client
            .post(
                OP,
                &["v1", "payment_intents", &request.provider_reference, "capture"],
                &form,
                request.idempotency_key.as_str(),
            )
            .await?;
        let currency = after_action(OP, intent.money_currency(OP))?;
        let reference = intent.charge_id().unwrap_or(&intent.id).to_owned();
        Ok(ModificationResult::new(
            reference,
            ModificationStatus::Succeeded,
            Money::from_minor(intent.amount_received, currency),
        ))
    }

    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "refund";
        let (amount, _) = self.check_currency(OP, &request.provider_reference, request.amount).await?;
        let mut form =
            Form::new().text("payment_intent", request.provider_reference.clone()).add("amount", &json!(amount));
        match request.reason.as_deref() {
            Some(reason) if REFUND_REASONS.contains(&reason) => form = form.text("reason", reason),
            Some(reason) => form = form.add("metadata", &json!({ "reason": reason })),
            None => {}
        }
        let refund: RefundDto =
            self.client.post(OP, &["v1", "refunds"], &form, request.idempotency_key.as_str()).await?;
        after_action(OP, refund.result(OP))
    }

    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "void";
        if request.provider_reference.is_empty() {
            return Err(PaymentError::invalid(OP, "provider_reference must not be empty"));
        }
        let intent: PaymentIntentDto = self
            .client
            .post(
                OP,
                &["v1", "payment_intents", &request.provider_reference, "cancel"],
                &Form::new(),
                request.idempotency_key.as_str(),
            )
            .await?;
        let currency = after_action(OP, intent.money_currency(OP))?;
        Ok(ModificationResult::new(
            intent.id,
            ModificationStatus::Succeeded,
            Money::from_minor(intent.amount, currency),
        ))
    }

    async fn increment_authorization(&self, _request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError> {
        // Stripe's incremental authorization needs an eligible card and account; not declared, not offered.
        Err(PaymentError::unsupported("increment_authorization"))
    }

    async fn retrieve(&self, provider_reference: &str) -> Result<PaymentSnapshot, PaymentError> {
        const OP: &str = "retrieve";
        self.intent(OP, provider_reference).await?.snapshot(OP)
    }

    async fn tokenize(&self, _request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError> {
        // Raw card data must not pass through this process (PCI scope): tokenize with Stripe.js / Elements.
        Err(PaymentError::unsupported("tokenize"))
    }
}
