//! The tax calculator port: a tax document's lifecycle (quote, commit, void, refund).

use std::fmt::Debug;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::TaxError;
use crate::forward::forward_port;
use crate::ids::{Address, ChannelId, IdempotencyKey, LineItem};
use crate::money::Money;

/// What the engine supports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaxCapabilities {
    /// Documents can be recorded and committed (an estimate-only engine cannot).
    pub commit: bool,
    /// Committed documents can be voided.
    pub void: bool,
    /// Refund documents can be created.
    pub refund: bool,
    /// Rounding is per line (AvaTax's default) rather than per document.
    pub rounds_per_line: bool,
}

/// Whether a quote is an estimate or a recorded sale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaxDocumentType {
    /// An estimate, not recorded (AvaTax SalesOrder).
    Estimate,
    /// A recorded sale (AvaTax SalesInvoice).
    Sale,
}

/// Request to compute tax on a cart or order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaxRequest {
    /// The document code (order number); the engine keys recorded documents by it.
    pub code: String,
    /// Estimate or sale.
    pub document_type: TaxDocumentType,
    /// The sales channel (engines may be bound per channel).
    pub channel: ChannelId,
    /// Where goods ship from (or the store's address).
    pub ship_from: Address,
    /// Where goods ship to (the store's address for in-store sales).
    pub ship_to: Address,
    /// The lines.
    pub lines: Vec<LineItem>,
    /// Makes a recorded document safe to retry (create-or-adjust).
    pub idempotency_key: IdempotencyKey,
}

/// Status of a tax document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaxDocumentStatus {
    /// An estimate, not recorded.
    Temporary,
    /// Recorded, not committed.
    Saved,
    /// Committed (reported).
    Committed,
    /// Voided.
    Cancelled,
}

/// Tax of one jurisdiction on one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JurisdictionTax {
    /// Jurisdiction name (`CALIFORNIA`, `DE`).
    pub name: String,
    /// Kind (`State`, `County`, `Country`, ...).
    pub kind: String,
    /// The rate as a decimal fraction (`0.0725`).
    pub rate: Decimal,
    /// Tax amount.
    pub tax: Money,
    /// Taxable amount.
    pub taxable: Money,
}

impl JurisdictionTax {
    /// A jurisdiction's tax.
    pub fn new(
        name: impl Into<String>,
        kind: impl Into<String>,
        rate: Decimal,
        tax: Money,
        taxable: Money,
    ) -> JurisdictionTax {
        JurisdictionTax { name: name.into(), kind: kind.into(), rate, tax, taxable }
    }
}

/// Tax of one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaxLine {
    /// The line number of the request.
    pub number: u32,
    /// Taxable amount.
    pub taxable: Money,
    /// Tax amount.
    pub tax: Money,
    /// Per-jurisdiction details.
    pub details: Vec<JurisdictionTax>,
}

impl TaxLine {
    /// A line.
    pub fn new(number: u32, taxable: Money, tax: Money, details: Vec<JurisdictionTax>) -> TaxLine {
        TaxLine { number, taxable, tax, details }
    }
}

/// A computed tax document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaxDocument {
    /// The document code.
    pub code: String,
    /// Status.
    pub status: TaxDocumentStatus,
    /// Sum of line amounts (without tax).
    pub total_amount: Money,
    /// Total tax.
    pub total_tax: Money,
    /// Lines.
    pub lines: Vec<TaxLine>,
    /// True when this came from a fallback (the engine was down) and must be reconciled later.
    pub provisional: bool,
}

impl TaxDocument {
    /// A document (not provisional).
    pub fn new(
        code: impl Into<String>,
        status: TaxDocumentStatus,
        total_amount: Money,
        total_tax: Money,
        lines: Vec<TaxLine>,
    ) -> TaxDocument {
        TaxDocument { code: code.into(), status, total_amount, total_tax, lines, provisional: false }
    }
}

/// Why a document is voided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VoidReason {
    /// Unspecified.
    Unspecified,
    /// Posting failed.
    PostFailed,
    /// The document was deleted.
    DocDeleted,
    /// The document was voided.
    DocVoided,
    /// An adjustment was cancelled.
    AdjustmentCancelled,
}

/// How much of a document a refund covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TaxRefundScope {
    /// All of it.
    Full,
    /// These line numbers.
    Lines(Vec<u32>),
    /// A percentage of every line.
    Percentage(Decimal),
}

impl TaxRequest {
    /// A request.
    pub fn new(
        code: impl Into<String>,
        document_type: TaxDocumentType,
        channel: ChannelId,
        ship_from: Address,
        ship_to: Address,
        lines: Vec<LineItem>,
        idempotency_key: IdempotencyKey,
    ) -> TaxRequest {
        TaxRequest { code: code.into(), document_type, channel, ship_from, ship_to, lines, idempotency_key }
    }
}

/// Request to refund a committed document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaxRefundRequest {
    /// The original document's code.
    pub original_code: String,
    /// The refund document's code.
    pub refund_code: String,
    /// What to refund.
    pub scope: TaxRefundScope,
    /// Makes the call safe to retry.
    pub idempotency_key: IdempotencyKey,
}

impl TaxRefundRequest {
    /// A request.
    pub fn new(
        original_code: impl Into<String>,
        refund_code: impl Into<String>,
        scope: TaxRefundScope,
        idempotency_key: IdempotencyKey,
    ) -> TaxRefundRequest {
        TaxRefundRequest {
            original_code: original_code.into(),
            refund_code: refund_code.into(),
            scope,
            idempotency_key,
        }
    }
}

/// A tax engine (Avalara, a fixed-rate table, a downstream team's engine).
///
/// # Contract
/// - `quote` with [`TaxDocumentType::Estimate`] records nothing; with `Sale` it records (create-or-adjust
///   semantics: a retry with the same code adjusts, never duplicates).
/// - Amounts are rounded half away from zero; per line when `rounds_per_line`.
/// - `commit`, `void` and `refund` on an unknown code fail with `NotFound`; operations outside the
///   capabilities fail with `Unsupported`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait TaxCalculator: Send + Sync + Debug + 'static {
    /// What this engine supports.
    fn capabilities(&self) -> TaxCapabilities;

    /// Computes tax (and records the document for [`TaxDocumentType::Sale`]).
    ///
    /// # Errors
    /// `InvalidRequest` naming the bad line or address field; `OutcomeUnknown`; transport kinds.
    async fn quote(&self, request: TaxRequest) -> Result<TaxDocument, TaxError>;

    /// Commits a recorded document.
    ///
    /// # Errors
    /// `NotFound`; `InvalidState` for a voided document; `Unsupported`.
    async fn commit(&self, code: &str) -> Result<TaxDocument, TaxError>;

    /// Voids a document.
    ///
    /// # Errors
    /// `NotFound`; `Unsupported`.
    async fn void(&self, code: &str, reason: VoidReason) -> Result<TaxDocument, TaxError>;

    /// Creates a refund document against a committed one.
    ///
    /// # Errors
    /// `NotFound`; `InvalidState` when the original is not committed; `Unsupported`.
    async fn refund(&self, request: TaxRefundRequest) -> Result<TaxDocument, TaxError>;
}

forward_port!(TaxCalculator {
    fn capabilities(&self) -> TaxCapabilities;
    async fn quote(&self, request: TaxRequest) -> Result<TaxDocument, TaxError>;
    async fn commit(&self, code: &str) -> Result<TaxDocument, TaxError>;
    async fn void(&self, code: &str, reason: VoidReason) -> Result<TaxDocument, TaxError>;
    async fn refund(&self, request: TaxRefundRequest) -> Result<TaxDocument, TaxError>;
});
