//! The payment gateway port: authorize, capture, refund, void, retrieve and tokenize card-not-present and
//! wallet payments.

use std::collections::BTreeMap;
use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::PaymentError;
use crate::forward::forward_port;
use crate::ids::IdempotencyKey;
use crate::money::Money;
use crate::secret::Secret;

/// A kind of tender a channel can accept. A channel binds each tender kind to at most one gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TenderKind {
    /// A card not present (web, app, phone).
    Card,
    /// A card presented at a terminal.
    CardPresent,
    /// A wallet (Apple Pay, Google Pay, PayPal, ...).
    Wallet,
    /// A gift card.
    GiftCard,
    /// Cash.
    Cash,
    /// A bank transfer or direct debit.
    BankTransfer,
}

impl TenderKind {
    /// Every tender kind.
    pub const ALL: [TenderKind; 6] = [
        TenderKind::Card,
        TenderKind::CardPresent,
        TenderKind::Wallet,
        TenderKind::GiftCard,
        TenderKind::Cash,
        TenderKind::BankTransfer,
    ];

    /// The kebab-case name used in configuration (`card`, `card-present`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            TenderKind::Card => "card",
            TenderKind::CardPresent => "card-present",
            TenderKind::Wallet => "wallet",
            TenderKind::GiftCard => "gift-card",
            TenderKind::Cash => "cash",
            TenderKind::BankTransfer => "bank-transfer",
        }
    }

    /// Parses a configuration name.
    pub fn parse(name: &str) -> Option<TenderKind> {
        TenderKind::ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl std::fmt::Display for TenderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When funds are captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CaptureMethod {
    /// Authorize now, capture later (explicit `capture`).
    Manual,
    /// Capture together with the authorization.
    Automatic,
}

/// What the gateway supports. Operations outside it return [`ErrorKind::Unsupported`](crate::ErrorKind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GatewayCapabilities {
    /// Authorize now, capture later.
    pub manual_capture: bool,
    /// Capture less than authorized.
    pub partial_capture: bool,
    /// Several captures against one authorization.
    pub multiple_captures: bool,
    /// Refund less than captured.
    pub partial_refund: bool,
    /// Several refunds against one payment.
    pub multiple_refunds: bool,
    /// Raise the authorized amount after authorization.
    pub incremental_authorization: bool,
    /// Cancel an authorization before capture.
    pub void: bool,
    /// Turn payment method data into a reusable token.
    pub tokenize: bool,
    /// Captures, refunds and voids are answered "received" and settle later by webhook.
    pub asynchronous_modifications: bool,
    /// [`PaymentGateway::retrieve`] reads the provider's current view of a payment. Providers without a
    /// lookup API (Adyen Checkout) settle by webhook only; their `retrieve` is `Unsupported`.
    pub retrieve: bool,
    /// Sending a modification again under its idempotency key may act twice: the provider does not replay by
    /// key (a card terminal). The domain then keeps a key whose refusal could not be recorded, as it keeps
    /// every key after the provider may have acted and the answer could not be recorded: the next caller's
    /// request is marked as a resend ([`RefundRequest::resend`]). Absent in serialized capabilities of earlier
    /// releases: false.
    #[serde(default)]
    pub resend_unsafe: bool,
    /// How long the provider replays a key's first answer (Stripe: at least 24 h; Adyen: at least 7 days);
    /// for a terminal, how long it keeps its records of sales; `None` when it does not expire. After it, a
    /// request sent again under the same key may be processed as new, so the domain does not resend a call
    /// that may have reached the provider longer ago (counted from the key's first claim): it stays unknown,
    /// for `retrieve` or an operator.
    /// Absent in serialized capabilities of earlier releases: `None`.
    #[serde(default)]
    pub replay_window: Option<std::time::Duration>,
    /// The longest idempotency key the provider accepts; the adapter derives a stable shorter one if needed.
    pub max_idempotency_key_len: usize,
    /// Tender kinds this gateway can process.
    pub tenders: Vec<TenderKind>,
}

impl GatewayCapabilities {
    /// Nothing supported; set fields to declare support.
    pub fn none() -> GatewayCapabilities {
        GatewayCapabilities {
            manual_capture: false,
            partial_capture: false,
            multiple_captures: false,
            partial_refund: false,
            multiple_refunds: false,
            incremental_authorization: false,
            void: false,
            tokenize: false,
            asynchronous_modifications: false,
            retrieve: false,
            resend_unsafe: false,
            replay_window: None,
            max_idempotency_key_len: IdempotencyKey::MAX_LEN,
            tenders: Vec::new(),
        }
    }

    /// Everything supported, synchronously, for the given tenders.
    pub fn full(tenders: Vec<TenderKind>) -> GatewayCapabilities {
        GatewayCapabilities {
            manual_capture: true,
            partial_capture: true,
            multiple_captures: true,
            partial_refund: true,
            multiple_refunds: true,
            incremental_authorization: true,
            void: true,
            tokenize: true,
            asynchronous_modifications: false,
            retrieve: true,
            resend_unsafe: false,
            replay_window: None,
            max_idempotency_key_len: IdempotencyKey::MAX_LEN,
            tenders,
        }
    }
}

/// A reference to a payment method the provider knows (a token, a saved method, a test name such as
/// `pm_card_visa`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PaymentMethodRef(pub String);

/// Request to authorize (and, with [`CaptureMethod::Automatic`], capture) a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthorizeRequest {
    /// Amount to authorize; positive.
    pub amount: Money,
    /// The tender kind.
    pub tender: TenderKind,
    /// The payment method.
    pub payment_method: PaymentMethodRef,
    /// Manual or automatic capture.
    pub capture_method: CaptureMethod,
    /// The merchant's reference (order number); shown to the provider.
    pub reference: String,
    /// Makes the call safe to retry.
    pub idempotency_key: IdempotencyKey,
    /// Free-form metadata passed to the provider.
    pub metadata: BTreeMap<String, String>,
    /// Which attempt this is: the first, one that may have reached the provider before under the same key, or
    /// a reconciliation's. A hint about this attempt, not a parameter of the payment: it is not serialized, so
    /// fingerprints and replays ignore it.
    #[serde(skip)]
    pub attempt: Attempt,
}

/// Which attempt at an authorization a request is ([`AuthorizeRequest::attempt`]).
///
/// Providers that replay by idempotency key may treat every attempt alike. An adapter over one that does not
/// (a card terminal, which would ask the customer again) must look an earlier attempt up before acting on a
/// [`Resend`](Attempt::Resend), and must never start anything new on a [`Reconcile`](Attempt::Reconcile).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Attempt {
    /// Nothing under this key is known to have reached the provider.
    #[default]
    First,
    /// The request may have reached the provider before under the same key without its answer being recorded:
    /// a retry after an unknown outcome, or a caller that took over an expired lease.
    Resend,
    /// A reconciliation sends it: the caller wants to know what the provider has, and nobody is there to act
    /// on anything new (providers that replay by key answer the first attempt or process it now, which is just
    /// as safe). It may have been sent before, too.
    Reconcile,
}

impl AuthorizeRequest {
    /// A manual-capture authorization.
    pub fn new(
        amount: Money,
        tender: TenderKind,
        payment_method: impl Into<String>,
        reference: impl Into<String>,
        idempotency_key: IdempotencyKey,
    ) -> AuthorizeRequest {
        AuthorizeRequest {
            amount,
            tender,
            payment_method: PaymentMethodRef(payment_method.into()),
            capture_method: CaptureMethod::Manual,
            reference: reference.into(),
            idempotency_key,
            metadata: BTreeMap::new(),
            attempt: Attempt::First,
        }
    }

    /// Sets the capture method.
    pub fn with_capture_method(mut self, method: CaptureMethod) -> AuthorizeRequest {
        self.capture_method = method;
        self
    }

    /// Sets which attempt this is ([`attempt`](AuthorizeRequest::attempt)).
    pub fn with_attempt(mut self, attempt: Attempt) -> AuthorizeRequest {
        self.attempt = attempt;
        self
    }
}

/// The provider's view of a payment's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProviderPaymentStatus {
    /// Authorized, not captured.
    Authorized,
    /// Fully or partially captured (see the amounts).
    Captured,
    /// The provider has it but has not decided (processing, received).
    Pending,
    /// The customer must act (3-D Secure, redirect).
    RequiresAction,
    /// Canceled before capture.
    Voided,
    /// Refused.
    Declined,
    /// Failed for another reason.
    Failed,
}

/// A payment as the provider reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PaymentSnapshot {
    /// The provider's reference (Stripe PaymentIntent id, Adyen pspReference).
    pub provider_reference: String,
    /// Status.
    pub status: ProviderPaymentStatus,
    /// Authorized amount.
    pub authorized: Money,
    /// Captured so far.
    pub captured: Money,
    /// Refunded so far.
    pub refunded: Money,
}

impl PaymentSnapshot {
    /// A snapshot with nothing captured or refunded.
    pub fn authorized(
        provider_reference: impl Into<String>,
        status: ProviderPaymentStatus,
        authorized: Money,
    ) -> PaymentSnapshot {
        let zero = Money::zero(authorized.currency());
        PaymentSnapshot {
            provider_reference: provider_reference.into(),
            status,
            authorized,
            captured: zero,
            refunded: zero,
        }
    }
}

/// Whether a modification is done or will settle later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModificationStatus {
    /// Done.
    Succeeded,
    /// Accepted; the outcome arrives later by webhook or [`PaymentGateway::retrieve`].
    Pending,
}

/// Request to capture an authorized payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CaptureRequest {
    /// The provider's payment reference.
    pub provider_reference: String,
    /// Amount to capture; positive, at most what remains capturable.
    pub amount: Money,
    /// True when no further capture will follow (the rest of the authorization is released).
    pub final_capture: bool,
    /// Makes the call safe to retry.
    pub idempotency_key: IdempotencyKey,
}

impl CaptureRequest {
    /// A final capture of `amount`.
    pub fn new(
        provider_reference: impl Into<String>,
        amount: Money,
        idempotency_key: IdempotencyKey,
    ) -> CaptureRequest {
        CaptureRequest { provider_reference: provider_reference.into(), amount, final_capture: true, idempotency_key }
    }

    /// Marks the capture as not final (more captures may follow).
    pub fn partial(mut self) -> CaptureRequest {
        self.final_capture = false;
        self
    }
}

/// Request to refund a captured payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RefundRequest {
    /// The provider's payment reference.
    pub provider_reference: String,
    /// Amount to refund; positive, at most captured minus refunded.
    pub amount: Money,
    /// Why, for the provider's records.
    pub reason: Option<String>,
    /// Makes the call safe to retry.
    pub idempotency_key: IdempotencyKey,
    /// True when this refund may have reached the provider before under the same key without its answer
    /// being recorded (see [`Attempt::Resend`]); not serialized.
    #[serde(skip)]
    pub resend: bool,
}

impl RefundRequest {
    /// Marks the refund as possibly sent before under its key ([`resend`](RefundRequest::resend)).
    pub fn with_resend(mut self, resend: bool) -> RefundRequest {
        self.resend = resend;
        self
    }

    /// A refund of `amount`.
    pub fn new(provider_reference: impl Into<String>, amount: Money, idempotency_key: IdempotencyKey) -> RefundRequest {
        RefundRequest {
            provider_reference: provider_reference.into(),
            amount,
            reason: None,
            idempotency_key,
            resend: false,
        }
    }
}

/// Request to cancel an authorization before capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VoidRequest {
    /// The provider's payment reference.
    pub provider_reference: String,
    /// Makes the call safe to retry.
    pub idempotency_key: IdempotencyKey,
    /// The amount the caller knows to be authorized (the intent's), when it knows it. Providers whose
    /// cancellation answers carry no amount (Adyen's `/cancels`) report it as the released amount; it is not
    /// sent to the provider, which always releases the whole authorization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorized: Option<Money>,
}

impl VoidRequest {
    /// A void.
    pub fn new(provider_reference: impl Into<String>, idempotency_key: IdempotencyKey) -> VoidRequest {
        VoidRequest { provider_reference: provider_reference.into(), idempotency_key, authorized: None }
    }

    /// The same void, stating the authorized amount it releases (see [`VoidRequest::authorized`]).
    pub fn with_authorized(mut self, authorized: Money) -> VoidRequest {
        self.authorized = Some(authorized);
        self
    }
}

/// Request to raise the authorized amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IncrementRequest {
    /// The provider's payment reference.
    pub provider_reference: String,
    /// The new total authorized amount (not the increment).
    pub new_total: Money,
    /// Makes the call safe to retry.
    pub idempotency_key: IdempotencyKey,
}

impl IncrementRequest {
    /// A request to raise the authorization to `new_total`.
    pub fn new(
        provider_reference: impl Into<String>,
        new_total: Money,
        idempotency_key: IdempotencyKey,
    ) -> IncrementRequest {
        IncrementRequest { provider_reference: provider_reference.into(), new_total, idempotency_key }
    }
}

/// Outcome of a capture, refund or void.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModificationResult {
    /// The provider's reference of the modification (capture id, refund id), or of the payment.
    pub provider_reference: String,
    /// Done or pending.
    pub status: ModificationStatus,
    /// The amount the modification concerns.
    pub amount: Money,
}

impl ModificationResult {
    /// A result.
    pub fn new(provider_reference: impl Into<String>, status: ModificationStatus, amount: Money) -> ModificationResult {
        ModificationResult { provider_reference: provider_reference.into(), status, amount }
    }
}

/// Raw payment method data to tokenize. Card numbers and security codes are [`Secret`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum PaymentMethodData {
    /// A card.
    Card {
        /// The primary account number.
        number: Secret,
        /// Expiry month, 1-12.
        exp_month: u8,
        /// Expiry year, four digits.
        exp_year: u16,
        /// The security code.
        cvc: Secret,
    },
}

/// Request to tokenize payment method data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TokenizeRequest {
    /// The data.
    pub data: PaymentMethodData,
    /// Makes the call safe to retry.
    pub idempotency_key: IdempotencyKey,
}

impl TokenizeRequest {
    /// A request.
    pub fn new(data: PaymentMethodData, idempotency_key: IdempotencyKey) -> TokenizeRequest {
        TokenizeRequest { data, idempotency_key }
    }
}

/// A payment gateway (Stripe, Adyen, an in-memory fake, a downstream team's PSP).
///
/// # Contract
/// - Every mutating call carries an [`IdempotencyKey`]. The same key with the same request returns the first
///   outcome (success or failure) without acting twice; the same key with a different request fails with
///   [`ErrorKind::IdempotencyConflict`](crate::ErrorKind::IdempotencyConflict). Adapters pass the key to the
///   provider, deriving a stable shorter one when the provider's limit is lower.
/// - When the outcome is not known (timeout or reset after the request was sent) the call fails with
///   [`ErrorKind::OutcomeUnknown`](crate::ErrorKind::OutcomeUnknown), never with a plain failure. The caller
///   reconciles with [`retrieve`](PaymentGateway::retrieve) or retries with the same key.
/// - A declined payment is an error of kind `Declined` with [`DeclineDetails`](crate::DeclineDetails).
/// - Amounts are checked before any provider call as far as the adapter can (positive, a valid currency);
///   checks that need the payment's state (within what remains: capture at most authorized minus captured,
///   refund at most captured minus refunded, the payment's currency) fail with `InvalidRequest` whether the
///   adapter or the provider makes them, and nothing changes.
/// - Operations outside [`capabilities`](PaymentGateway::capabilities) fail with `Unsupported`; none
///   pretends to succeed.
/// - With `asynchronous_modifications`, captures, refunds and voids may answer [`ModificationStatus::Pending`];
///   their outcome arrives by webhook or `retrieve`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PaymentGateway: Send + Sync + Debug + 'static {
    /// What this gateway supports.
    fn capabilities(&self) -> GatewayCapabilities;

    /// Authorizes a payment (and captures it with [`CaptureMethod::Automatic`]).
    ///
    /// # Errors
    /// `Declined`, `InvalidRequest` (non-positive amount, unknown payment method), `OutcomeUnknown`,
    /// `IdempotencyConflict`, `Unavailable`, `RateLimited`, `Authentication`.
    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError>;

    /// Captures (part of) an authorization.
    ///
    /// # Errors
    /// `InvalidRequest` when the amount exceeds what remains, `InvalidState` after a void or a final
    /// capture, `NotFound`, `Unsupported` for partial/multiple captures the gateway lacks, and the transport
    /// kinds of `authorize`.
    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError>;

    /// Refunds (part of) a captured payment.
    ///
    /// # Errors
    /// `InvalidRequest` when the amount exceeds captured minus refunded, `InvalidState` before capture,
    /// `NotFound`, and the transport kinds.
    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError>;

    /// Cancels an authorization before capture.
    ///
    /// # Errors
    /// `InvalidState` once captured (refund instead; the message says so), `NotFound`, transport kinds.
    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError>;

    /// Raises the authorized amount.
    ///
    /// # Errors
    /// `Unsupported` unless `incremental_authorization`; `Declined`; `InvalidState`; transport kinds.
    async fn increment_authorization(&self, request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError>;

    /// The provider's current view of a payment, for reconciliation.
    ///
    /// # Errors
    /// `NotFound`, transport kinds.
    async fn retrieve(&self, provider_reference: &str) -> Result<PaymentSnapshot, PaymentError>;

    /// Turns payment method data into a reusable reference.
    ///
    /// # Errors
    /// `Unsupported` unless `tokenize`; `InvalidRequest` naming the bad field; transport kinds.
    async fn tokenize(&self, request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError>;
}

forward_port!(PaymentGateway {
    fn capabilities(&self) -> GatewayCapabilities;
    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError>;
    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError>;
    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError>;
    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError>;
    async fn increment_authorization(&self, request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError>;
    async fn retrieve(&self, provider_reference: &str) -> Result<PaymentSnapshot, PaymentError>;
    async fn tokenize(&self, request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError>;
});

/// A shared payment gateway.
pub type DynPaymentGateway = dyn PaymentGateway;
