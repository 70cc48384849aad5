//! [`TerminalGateway`]: a card terminal seen as a [`PaymentGateway`], so card-present sales are payment
//! intents like any other (decision 016).
//!
//! A sale at the terminal authorizes and captures at once: [`Payments::authorize`](crate::Payments::authorize)
//! with tender [`TenderKind::CardPresent`] and [`CaptureMethod::Automatic`] through this gateway stores an
//! intent that is `Captured` (or `Failed` when the card is declined), under the caller's idempotency key, with
//! the history, replays and webhook matching every intent has. Refunds go back through the terminal
//! ([`Payments::refund`](crate::Payments::refund)).
//!
//! A terminal does not replay by idempotency key: paying again asks the customer again. The contract of
//! [`PaymentTerminal`] is that an unknown outcome is resolved with [`status`](PaymentTerminal::status), never
//! by charging again. So when the domain says the request may have been sent before
//! ([`AuthorizeRequest::resend`]: a retry after an unknown outcome, a reconciliation, a caller taking over an
//! expired lease), this gateway first asks the terminal for the earlier attempt and answers with it; only a
//! terminal that never saw the sale (`NotFound`) is asked to pay.
//!
//! The terminal's sale reference is the request's idempotency key (stable across retries of one intent and
//! unique per intent), not the merchant's reference: an order paid in two attempts has one merchant reference,
//! and `status` must find this attempt, not the other.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::payment::{
    AuthorizeRequest, CaptureMethod, CaptureRequest, GatewayCapabilities, IncrementRequest, ModificationResult,
    ModificationStatus, PaymentGateway, PaymentMethodRef, PaymentSnapshot, ProviderPaymentStatus, RefundRequest,
    TenderKind, TokenizeRequest, VoidRequest,
};
use commerce_ports::terminal::{PaymentTerminal, TerminalPaymentRequest, TerminalPaymentResult, TerminalRefundRequest};
use commerce_ports::{ErrorKind, Money, PaymentError, RegisterId, TerminalError};

/// The longest idempotency key (and so terminal sale reference) this gateway passes on; longer keys are
/// replaced by a stable derived one ([`provider_key`](crate::provider_key)).
pub const TERMINAL_MAX_KEY_LEN: usize = 64;

/// One card terminal, at one register, as a [`PaymentGateway`] for card-present sales (module docs).
///
/// # Contract
/// - `authorize` takes tender `CardPresent` with automatic capture only, and a payment method that is empty or
///   this terminal's id; it answers a `Captured` snapshot of the approved amount (a partial approval is
///   captured as approved), or `Pending` when the terminal approved offline and forwards the payment itself.
/// - With [`AuthorizeRequest::resend`], the terminal's record of the sale is read first; the terminal is asked
///   to pay only when it never saw the sale.
/// - `refund` goes through the terminal when it supports refunds; `capture`, `void`, `increment_authorization`,
///   `retrieve` and `tokenize` are `Unsupported` (a sale is captured at once; reversing it is a refund).
/// - Terminal errors keep their kind, retry class, decline details and provider code.
pub struct TerminalGateway {
    terminal: Arc<dyn PaymentTerminal>,
    terminal_id: String,
    register: RegisterId,
}

impl fmt::Debug for TerminalGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminalGateway")
            .field("terminal", &self.terminal)
            .field("terminal_id", &self.terminal_id)
            .field("register", &self.register)
            .finish()
    }
}

impl TerminalGateway {
    /// The terminal `terminal_id` (Adyen POIID, Stripe reader id) behind `terminal`, at `register`.
    pub fn new(terminal: Arc<dyn PaymentTerminal>, terminal_id: impl Into<String>, register: RegisterId) -> Self {
        TerminalGateway { terminal, terminal_id: terminal_id.into(), register }
    }

    /// The terminal's id.
    pub fn terminal_id(&self) -> &str {
        &self.terminal_id
    }
}

/// A terminal's error as the gateway's, keeping what a caller decides on.
fn from_terminal(operation: &'static str, error: TerminalError) -> PaymentError {
    let mut mapped =
        PaymentError::new(error.kind(), operation, format!("terminal: {}", error.message())).with_retry(error.retry());
    if let Some(code) = error.provider_code() {
        mapped = mapped.with_provider_code(code);
    }
    if let Some(decline) = error.decline() {
        mapped = mapped.with_decline(decline.clone());
    }
    if let Some(after) = error.retry_after() {
        mapped = mapped.with_retry_after(after);
    }
    mapped
}

/// The intent's view of a sale the terminal approved.
fn sale(
    operation: &'static str,
    requested: Money,
    result: TerminalPaymentResult,
) -> Result<PaymentSnapshot, PaymentError> {
    if result.amount.currency() != requested.currency() || !result.amount.is_positive() {
        return Err(PaymentError::new(
            ErrorKind::Unexpected,
            operation,
            format!("the terminal approved {} for a sale of {requested}", result.amount),
        ));
    }
    if result.offline {
        // The terminal keeps the payment and forwards it itself; the provider's notification settles it.
        return Ok(PaymentSnapshot::authorized(
            result.provider_reference,
            ProviderPaymentStatus::Pending,
            result.amount,
        ));
    }
    let mut snapshot =
        PaymentSnapshot::authorized(result.provider_reference, ProviderPaymentStatus::Captured, result.amount);
    snapshot.captured = result.amount;
    Ok(snapshot)
}

#[async_trait]
impl PaymentGateway for TerminalGateway {
    fn capabilities(&self) -> GatewayCapabilities {
        let refunds = self.terminal.capabilities().refunds;
        let mut caps = GatewayCapabilities::none();
        caps.partial_refund = refunds;
        caps.multiple_refunds = refunds;
        caps.max_idempotency_key_len = TERMINAL_MAX_KEY_LEN;
        caps.tenders = vec![TenderKind::CardPresent];
        caps
    }

    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError> {
        const OP: &str = "authorize";
        if request.tender != TenderKind::CardPresent {
            return Err(PaymentError::new(
                ErrorKind::Unsupported,
                OP,
                format!("a terminal takes card-present payments, not `{}`", request.tender),
            ));
        }
        if request.capture_method != CaptureMethod::Automatic {
            return Err(PaymentError::unsupported_feature(OP, "manual capture (a terminal sale captures at once)"));
        }
        let PaymentMethodRef(method) = &request.payment_method;
        if !method.is_empty() && *method != self.terminal_id {
            return Err(PaymentError::invalid(
                OP,
                format!("payment method `{method}` names another terminal than this gateway's `{}`", self.terminal_id),
            ));
        }
        let reference = request.idempotency_key.as_str();
        if request.resend {
            // The earlier attempt may have charged the card: its record answers, never a second charge.
            match self.terminal.status(&self.terminal_id, reference).await {
                Ok(result) => return sale(OP, request.amount, result),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(from_terminal(OP, e)),
            }
        }
        let pay = TerminalPaymentRequest::new(
            self.terminal_id.clone(),
            self.register.clone(),
            request.amount,
            reference,
            request.idempotency_key.clone(),
        );
        let result = self.terminal.pay(pay).await.map_err(|e| from_terminal(OP, e))?;
        sale(OP, request.amount, result)
    }

    async fn capture(&self, _request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        Err(PaymentError::unsupported_feature("capture", "capture (a terminal sale captures at once)"))
    }

    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "refund";
        if !self.terminal.capabilities().refunds {
            return Err(PaymentError::unsupported_feature(OP, "refunds at this terminal"));
        }
        let refund = TerminalRefundRequest::new(
            self.terminal_id.clone(),
            request.provider_reference,
            request.amount,
            request.idempotency_key,
        );
        let result = self.terminal.refund(refund).await.map_err(|e| from_terminal(OP, e))?;
        Ok(ModificationResult::new(result.provider_reference, ModificationStatus::Succeeded, result.amount))
    }

    async fn void(&self, _request: VoidRequest) -> Result<ModificationResult, PaymentError> {
        Err(PaymentError::unsupported_feature("void", "void (a terminal sale is captured; refund it)"))
    }

    async fn increment_authorization(&self, _request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError> {
        Err(PaymentError::unsupported_feature("increment_authorization", "incremental authorization"))
    }

    async fn retrieve(&self, _provider_reference: &str) -> Result<PaymentSnapshot, PaymentError> {
        Err(PaymentError::unsupported_feature("retrieve", "retrieve (a terminal looks sales up by reference)"))
    }

    async fn tokenize(&self, _request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError> {
        Err(PaymentError::unsupported("tokenize"))
    }
}
