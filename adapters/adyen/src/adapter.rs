//! [`AdyenGateway`]: the [`PaymentGateway`] port on Adyen's Checkout API.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use commerce_ports::payment::{
    AuthorizeRequest, CaptureRequest, GatewayCapabilities, IncrementRequest, ModificationResult, PaymentGateway,
    PaymentMethodRef, PaymentSnapshot, RefundRequest, TenderKind, TokenizeRequest, VoidRequest,
};
use commerce_ports::{ErrorKind, Money, PaymentError};
use serde_json::{Value, json};

use crate::client::AdyenClient;
use crate::config::AdyenConfig;
use crate::mapping::{
    MAX_IDEMPOTENCY_KEY_LEN, ModificationResponseDto, PaymentResponseDto, payment_body, wire_amount, wire_key,
};

/// A [`PaymentGateway`] on Adyen's Checkout API (v71).
///
/// Authorizations are `POST /payments`; captures, refunds and voids are modifications that Adyen answers with
/// `status: "received"`, so they return [`ModificationStatus::Pending`](commerce_ports::payment::ModificationStatus)
/// and settle by notification. Adyen Checkout has no payment lookup: [`retrieve`](PaymentGateway::retrieve) is
/// `Unsupported`. See the crate docs for the wire details and the error mapping.
#[derive(Clone)]
pub struct AdyenGateway {
    client: AdyenClient,
    merchant_account: String,
    base_url: String,
    /// Authorized amounts by pspReference, so a void (Adyen's `/cancels` carries no amount) can report the
    /// amount it releases. Process-local and bounded; unknown references report zero.
    authorized: Arc<Mutex<HashMap<String, Money>>>,
}

/// Most authorized amounts remembered for voids before the memory is cleared.
const REMEMBERED_AUTHORIZATIONS: usize = 10_000;

/// One modification call.
struct Modification<'a> {
    operation: &'static str,
    reference: &'a str,
    endpoint: &'static str,
    /// The wire `amount` object, already validated (none for cancels).
    amount: Option<Value>,
    fallback: Money,
    key: &'a commerce_ports::IdempotencyKey,
    extra: Option<(&'static str, String)>,
}

impl fmt::Debug for AdyenGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdyenGateway")
            .field("base_url", &self.base_url)
            .field("merchant_account", &self.merchant_account)
            .finish_non_exhaustive()
    }
}

impl AdyenGateway {
    /// A gateway for `config`.
    ///
    /// # Errors
    /// `Configuration` when the merchant account is empty or the HTTP client cannot be built.
    pub fn new(config: AdyenConfig) -> Result<AdyenGateway, PaymentError> {
        if config.merchant_account.trim().is_empty() {
            return Err(PaymentError::new(
                ErrorKind::Configuration,
                "configure",
                "the gateway needs a merchant account (`merchant_account`)",
            ));
        }
        Ok(AdyenGateway {
            client: AdyenClient::new(&config)?,
            merchant_account: config.merchant_account,
            base_url: config.base_url.to_string(),
            authorized: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn remember(&self, snapshot: &PaymentSnapshot) {
        let mut map = self.authorized.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= REMEMBERED_AUTHORIZATIONS {
            map.clear();
        }
        map.insert(snapshot.provider_reference.clone(), snapshot.authorized);
    }

    fn remembered(&self, reference: &str) -> Option<Money> {
        self.authorized.lock().unwrap_or_else(PoisonError::into_inner).get(reference).copied()
    }

    /// POSTs a modification of `reference` with `amount` (none for cancels).
    async fn modify(&self, m: Modification<'_>) -> Result<ModificationResult, PaymentError> {
        let Modification { operation, reference, endpoint, amount, fallback, key, extra } = m;
        if reference.trim().is_empty() {
            return Err(PaymentError::invalid(operation, "provider_reference must not be empty"));
        }
        let wire = wire_key(key);
        let mut body = json!({ "merchantAccount": self.merchant_account, "reference": wire });
        if let Some(amount) = amount {
            body["amount"] = amount;
        }
        if let Some((field, value)) = extra {
            body[field] = json!(value);
        }
        let answer: ModificationResponseDto =
            self.client.checkout(operation, &["payments", reference, endpoint], &body, &wire).await?;
        after_action(operation, answer.result(operation, fallback))
    }
}

/// Maps the answer to a call that Adyen accepted (2xx). The action happened, so an answer this adapter cannot
/// read is `OutcomeUnknown` (retry with the same key, or wait for the notification), never `Unexpected`.
fn after_action<T>(operation: &'static str, mapped: Result<T, PaymentError>) -> Result<T, PaymentError> {
    mapped.map_err(|error| {
        if error.kind() == ErrorKind::Unexpected && error.provider_code() != Some("Error") {
            PaymentError::new(
                ErrorKind::OutcomeUnknown,
                operation,
                "Adyen accepted the request but its answer could not be mapped; retry with the same idempotency \
                 key or wait for the notification",
            )
            .with_source(error)
        } else {
            error
        }
    })
}

#[async_trait]
impl PaymentGateway for AdyenGateway {
    fn capabilities(&self) -> GatewayCapabilities {
        let mut caps = GatewayCapabilities::none();
        caps.manual_capture = true;
        caps.partial_capture = true;
        caps.multiple_captures = true;
        caps.partial_refund = true;
        caps.multiple_refunds = true;
        caps.incremental_authorization = false;
        caps.void = true;
        caps.tokenize = false;
        caps.asynchronous_modifications = true;
        caps.retrieve = false;
        caps.max_idempotency_key_len = MAX_IDEMPOTENCY_KEY_LEN;
        // The provider replays a key's first answer for at least this long (PROVIDERS.md).
        caps.replay_window = Some(std::time::Duration::from_secs(7 * 24 * 60 * 60));
        caps.tenders = vec![TenderKind::Card, TenderKind::Wallet];
        caps
    }

    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError> {
        const OP: &str = "authorize";
        if !self.capabilities().tenders.contains(&request.tender) {
            return Err(PaymentError::new(
                ErrorKind::Unsupported,
                OP,
                format!("tender `{}` is not supported by the Adyen Checkout gateway", request.tender),
            ));
        }
        let body = payment_body(OP, &request, &self.merchant_account)?;
        let answer: PaymentResponseDto =
            self.client.checkout(OP, &["payments"], &body, &wire_key(&request.idempotency_key)).await?;
        let snapshot = after_action(OP, answer.snapshot(OP, &request))?;
        self.remember(&snapshot);
        Ok(snapshot)
    }

    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "capture";
        let amount = wire_amount(OP, request.amount)?;
        self.modify(Modification {
            operation: OP,
            reference: &request.provider_reference,
            endpoint: "captures",
            amount: Some(amount),
            fallback: request.amount,
            key: &request.idempotency_key,
            extra: None,
        })
        .await
    }

    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "refund";
        let amount = wire_amount(OP, request.amount)?;
        let reason = request.reason.clone().filter(|r| {
            // Adyen's merchantRefundReason takes a fixed list; other text is not sent.
            matches!(r.as_str(), "FRAUD" | "CUSTOMER REQUEST" | "RETURN" | "DUPLICATE" | "OTHER")
        });
        self.modify(Modification {
            operation: OP,
            reference: &request.provider_reference,
            endpoint: "refunds",
            amount: Some(amount),
            fallback: request.amount,
            key: &request.idempotency_key,
            extra: reason.map(|r| ("merchantRefundReason", r)),
        })
        .await
    }

    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "void";
        // `/cancels` carries no amount: report the authorization the caller states (the payments service always
        // does), else the one this process saw, else zero.
        let fallback = request
            .authorized
            .or_else(|| self.remembered(&request.provider_reference))
            .unwrap_or_else(|| Money::zero(commerce_ports::Currency::EUR));
        self.modify(Modification {
            operation: OP,
            reference: &request.provider_reference,
            endpoint: "cancels",
            amount: None,
            fallback,
            key: &request.idempotency_key,
            extra: None,
        })
        .await
    }

    async fn increment_authorization(&self, _request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError> {
        // Adyen's `/amountUpdates` needs an eligible account and payment method; not declared, not offered.
        Err(PaymentError::unsupported("increment_authorization"))
    }

    async fn retrieve(&self, _provider_reference: &str) -> Result<PaymentSnapshot, PaymentError> {
        Err(PaymentError::new(
            ErrorKind::Unsupported,
            "retrieve",
            "Adyen Checkout has no payment lookup: outcomes of authorisations and modifications arrive by \
             notification (AUTHORISATION, CAPTURE, REFUND, CANCELLATION, ...); reconcile from the notifications, \
             or retry the call with the same idempotency key",
        ))
    }

    async fn tokenize(&self, _request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError> {
        // Raw card data must not pass through this process (PCI scope): use Adyen's Web/Drop-in components.
        Err(PaymentError::unsupported("tokenize"))
    }
}
