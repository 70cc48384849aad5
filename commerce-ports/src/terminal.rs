//! The payment terminal port: card-present (EFT) payments, with an explicit description of what the
//! terminal may accept offline.

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::TerminalError;
use crate::forward::forward_port;
use crate::ids::{IdempotencyKey, RegisterId};
use crate::money::Money;

/// How a card was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EntryMode {
    /// Chip (EMV contact).
    Chip,
    /// Contactless (EMV contactless, NFC wallets).
    Contactless,
    /// Magnetic stripe.
    Magstripe,
    /// Keyed by hand.
    Keyed,
    /// A QR-code wallet.
    QrWallet,
}

/// What a terminal may accept while it cannot reach its provider (store-and-forward).
///
/// Providers allow little offline: chip and contactless on major schemes, no magstripe or QR wallets, no
/// refunds, with per-payment and count limits. The merchant carries the risk of declines found on forwarding.
/// Refunds are never accepted offline, so there is no field to allow them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OfflineCapability {
    /// Card schemes accepted offline (e.g. `visa`, `mastercard`).
    pub schemes: Vec<String>,
    /// Entry modes accepted offline.
    pub entry_modes: Vec<EntryMode>,
    /// Largest single offline payment.
    pub max_amount: Money,
    /// Most offline payments held before the terminal refuses more.
    pub max_count: u32,
    /// Payments above this need online authorization even when online is impossible (chip floor limit).
    pub floor_limit: Option<Money>,
}

impl OfflineCapability {
    /// An offline policy; refunds are never allowed offline.
    pub fn new(
        schemes: Vec<String>,
        entry_modes: Vec<EntryMode>,
        max_amount: Money,
        max_count: u32,
    ) -> OfflineCapability {
        OfflineCapability { schemes, entry_modes, max_amount, max_count, floor_limit: None }
    }
}

/// What a terminal supports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TerminalCapabilities {
    /// Card-present refunds (referenced or unreferenced).
    pub refunds: bool,
    /// Cancel a payment in progress on the terminal.
    pub abort: bool,
    /// Offline acceptance, if any. `None` means the terminal never accepts offline.
    pub offline: Option<OfflineCapability>,
}

/// Request for a card-present payment on a terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TerminalPaymentRequest {
    /// The terminal's id at the provider (Adyen POIID, Stripe reader id).
    pub terminal_id: String,
    /// The register taking the payment.
    pub register: RegisterId,
    /// Amount; positive.
    pub amount: Money,
    /// The sale's transaction reference; [`status`](PaymentTerminal::status) finds the payment by it.
    pub reference: String,
    /// The caller's key for the payment. A terminal does not replay by key (paying again asks the customer
    /// again): a payment whose outcome is unknown is resolved with `status`, never by sending it again.
    pub idempotency_key: IdempotencyKey,
}

impl TerminalPaymentRequest {
    /// A request.
    pub fn new(
        terminal_id: impl Into<String>,
        register: RegisterId,
        amount: Money,
        reference: impl Into<String>,
        idempotency_key: IdempotencyKey,
    ) -> TerminalPaymentRequest {
        TerminalPaymentRequest {
            terminal_id: terminal_id.into(),
            register,
            amount,
            reference: reference.into(),
            idempotency_key,
        }
    }
}

/// Outcome of a card-present payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TerminalPaymentResult {
    /// The provider's reference (Adyen pspReference).
    pub provider_reference: String,
    /// Amount approved.
    pub amount: Money,
    /// Card scheme, when known.
    pub scheme: Option<String>,
    /// How the card was read.
    pub entry_mode: Option<EntryMode>,
    /// Last four digits of the card, for the receipt.
    pub masked_pan: Option<String>,
    /// True when it was approved offline and still has to be forwarded.
    pub offline: bool,
}

impl TerminalPaymentResult {
    /// An online approval with no card details.
    pub fn new(provider_reference: impl Into<String>, amount: Money) -> TerminalPaymentResult {
        TerminalPaymentResult {
            provider_reference: provider_reference.into(),
            amount,
            scheme: None,
            entry_mode: None,
            masked_pan: None,
            offline: false,
        }
    }
}

/// Request for a card-present refund.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TerminalRefundRequest {
    /// The terminal.
    pub terminal_id: String,
    /// The original payment's provider reference.
    pub provider_reference: String,
    /// Amount; positive.
    pub amount: Money,
    /// The caller's key for the refund; a retry sends the same one. Whether the terminal deduplicates by it is
    /// the adapter's to say (Adyen rejects a reused one): a refund whose outcome is unknown is not to be sent
    /// again blindly.
    pub idempotency_key: IdempotencyKey,
}

impl TerminalRefundRequest {
    /// A request.
    pub fn new(
        terminal_id: impl Into<String>,
        provider_reference: impl Into<String>,
        amount: Money,
        idempotency_key: IdempotencyKey,
    ) -> TerminalRefundRequest {
        TerminalRefundRequest {
            terminal_id: terminal_id.into(),
            provider_reference: provider_reference.into(),
            amount,
            idempotency_key,
        }
    }
}

/// A card read while the provider could not be reached: what the store-and-forward queue holds until it can
/// be forwarded. The card data is the terminal's own encrypted blob, opaque to everyone but the provider.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OfflineCardRead {
    /// Card scheme (`visa`, `mastercard`), when the terminal could tell.
    pub scheme: Option<String>,
    /// How the card was read.
    pub entry_mode: EntryMode,
    /// Last four digits, for the receipt.
    pub masked_pan: Option<String>,
    /// The terminal's encrypted card data, forwarded verbatim; never logged or shown. Never empty in a card
    /// read the terminal returns. The offline queue erases it (makes it the empty string) when the payment is
    /// settled: sensitive authentication data is not kept after authorization, even encrypted (PCI DSS). See
    /// [`is_erased`](OfflineCardRead::is_erased).
    pub card_data: String,
}

impl OfflineCardRead {
    /// A card read.
    pub fn new(scheme: Option<String>, entry_mode: EntryMode, card_data: impl Into<String>) -> OfflineCardRead {
        OfflineCardRead { scheme, entry_mode, masked_pan: None, card_data: card_data.into() }
    }

    /// True when the card data has been erased (it is empty), as it is once the offline queue has settled the
    /// payment ([`OfflineQueueStore::mark_forwarded`], [`OfflineQueueStore::mark_declined`]). Scheme, entry
    /// mode and masked PAN are kept: they are not sensitive, and receipts and the audit record need them.
    ///
    /// [`OfflineQueueStore::mark_forwarded`]: crate::offline_queue::OfflineQueueStore::mark_forwarded
    /// [`OfflineQueueStore::mark_declined`]: crate::offline_queue::OfflineQueueStore::mark_declined
    pub fn is_erased(&self) -> bool {
        self.card_data.is_empty()
    }
}

impl Debug for OfflineCardRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineCardRead")
            .field("scheme", &self.scheme)
            .field("entry_mode", &self.entry_mode)
            .field("masked_pan", &self.masked_pan)
            .field("card_data", &"<redacted>")
            .finish()
    }
}

/// A payment accepted offline, submitted to the provider once the link is back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OfflineForwardRequest {
    /// The original payment request (its idempotency key is reused for every forwarding attempt).
    pub payment: TerminalPaymentRequest,
    /// The card read taken offline.
    pub card: OfflineCardRead,
    /// When the payment was accepted offline (unix seconds).
    pub accepted_at: i64,
}

impl OfflineForwardRequest {
    /// A forwarding request.
    pub fn new(payment: TerminalPaymentRequest, card: OfflineCardRead, accepted_at: i64) -> OfflineForwardRequest {
        OfflineForwardRequest { payment, card, accepted_at }
    }
}

/// A card-present payment terminal.
///
/// # Contract
/// - A payment either completes, is declined (`Declined`), or its outcome is unknown (`OutcomeUnknown`, for
///   example when the terminal stopped answering after the card was presented); unknown outcomes are
///   resolved with [`status`](PaymentTerminal::status) using the same reference, never by charging again.
/// - [`capabilities`](PaymentTerminal::capabilities)`.offline` describes offline acceptance exactly; a
///   terminal without it never approves offline.
/// - Refunds are never taken offline.
/// - Offline acceptance is two steps: [`read_offline`](PaymentTerminal::read_offline) reads the card without
///   contacting the provider (the caller then applies its offline policy and queues the payment durably, or
///   refuses it), and [`forward_offline`](PaymentTerminal::forward_offline) submits a queued payment once
///   the link is back, with the payment's own idempotency key, so forwarding twice charges once. A terminal
///   whose `capabilities().offline` is `None` answers both with `Unsupported`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PaymentTerminal: Send + Sync + Debug + 'static {
    /// What this terminal supports.
    fn capabilities(&self) -> TerminalCapabilities;

    /// Takes a card-present payment.
    ///
    /// # Errors
    /// `Declined`, `OutcomeUnknown`, `Timeout` (nothing was sent), `Unavailable`, `InProgress` (the terminal
    /// is busy), `InvalidRequest`.
    async fn pay(&self, request: TerminalPaymentRequest) -> Result<TerminalPaymentResult, TerminalError>;

    /// Refunds a card-present payment.
    ///
    /// # Errors
    /// `Unsupported` unless `refunds`; `Declined`; `OutcomeUnknown`; transport kinds.
    async fn refund(&self, request: TerminalRefundRequest) -> Result<TerminalPaymentResult, TerminalError>;

    /// Aborts the transaction in progress on a terminal.
    ///
    /// # Errors
    /// `Unsupported` unless `abort`; `NotFound` when nothing is in progress.
    async fn abort(&self, terminal_id: &str, reference: &str) -> Result<(), TerminalError>;

    /// The outcome of an earlier payment, by its sale reference.
    ///
    /// # Errors
    /// `NotFound` only when the terminal itself says it never saw the sale (it is then safe to pay with the
    /// same key); `Declined` only when the earlier payment was declined. Any other error means the lookup
    /// failed and says nothing about the payment (an adapter must not report an HTTP 404 or a failed lookup as
    /// `NotFound` or `Declined`).
    async fn status(&self, terminal_id: &str, reference: &str) -> Result<TerminalPaymentResult, TerminalError>;

    /// Reads a card for an offline payment, without contacting the provider.
    ///
    /// # Errors
    /// `Unsupported` unless `offline`; `Timeout` (no card presented); `Unavailable` (terminal unreachable);
    /// `InvalidRequest`.
    async fn read_offline(&self, request: &TerminalPaymentRequest) -> Result<OfflineCardRead, TerminalError>;

    /// Submits a payment accepted offline to the provider.
    ///
    /// # Errors
    /// `Unsupported` unless `offline`; `Declined` (the merchant carries the loss); `OutcomeUnknown` (forward
    /// again with the same request); `Unavailable`, `Timeout` (nothing was sent).
    async fn forward_offline(&self, request: OfflineForwardRequest) -> Result<TerminalPaymentResult, TerminalError>;
}

forward_port!(PaymentTerminal {
    fn capabilities(&self) -> TerminalCapabilities;
    async fn pay(&self, request: TerminalPaymentRequest) -> Result<TerminalPaymentResult, TerminalError>;
    async fn refund(&self, request: TerminalRefundRequest) -> Result<TerminalPaymentResult, TerminalError>;
    async fn abort(&self, terminal_id: &str, reference: &str) -> Result<(), TerminalError>;
    async fn status(&self, terminal_id: &str, reference: &str) -> Result<TerminalPaymentResult, TerminalError>;
    async fn read_offline(&self, request: &TerminalPaymentRequest) -> Result<OfflineCardRead, TerminalError>;
    async fn forward_offline(&self, request: OfflineForwardRequest) -> Result<TerminalPaymentResult, TerminalError>;
});
