//! Peripheral ports: receipt printer, cash drawer, scanner, line display, scale.
//!
//! The device model follows UnifiedPOS: a device is claimed by one register at a time (scanners always,
//! printers and drawers only while in use), reports a [`DeviceState`], and fails with precise reasons
//! (cover open, paper out, offline).

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::PeripheralError;
use crate::forward::forward_port;
use crate::ids::IdempotencyKey;

/// State of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceState {
    /// Not reachable.
    Offline,
    /// Ready.
    Idle,
    /// Working.
    Busy,
    /// In an error state (see [`PrinterStatus`]).
    Error,
}

/// Text alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Align {
    /// Left.
    Left,
    /// Centre.
    Center,
    /// Right.
    Right,
}

/// Barcode symbologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Symbology {
    /// EAN-13.
    Ean13,
    /// EAN-8.
    Ean8,
    /// UPC-A.
    UpcA,
    /// Code 128.
    Code128,
    /// Code 39.
    Code39,
    /// QR code.
    Qr,
    /// Data Matrix.
    DataMatrix,
}

/// One element of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
#[non_exhaustive]
pub enum ReceiptElement {
    /// A line of text.
    Text {
        /// The text (Unicode; the adapter picks the code page).
        text: String,
        /// Alignment.
        align: Align,
        /// Bold.
        bold: bool,
        /// Double width and height.
        large: bool,
    },
    /// Two columns: left text and right text on one line (item and price).
    Columns {
        /// Left.
        left: String,
        /// Right.
        right: String,
    },
    /// A barcode.
    Barcode {
        /// Symbology.
        symbology: Symbology,
        /// Data.
        data: String,
    },
    /// Feed blank lines.
    Feed {
        /// Lines.
        lines: u8,
    },
    /// Cut the paper.
    Cut,
}

/// A document to print.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReceiptDocument {
    /// Elements in order.
    pub elements: Vec<ReceiptElement>,
}

impl ReceiptDocument {
    /// An empty document.
    pub fn new() -> ReceiptDocument {
        ReceiptDocument::default()
    }

    /// Adds a left-aligned line.
    pub fn line(mut self, text: impl Into<String>) -> ReceiptDocument {
        self.elements.push(ReceiptElement::Text { text: text.into(), align: Align::Left, bold: false, large: false });
        self
    }

    /// Adds a centred bold title.
    pub fn title(mut self, text: impl Into<String>) -> ReceiptDocument {
        self.elements.push(ReceiptElement::Text { text: text.into(), align: Align::Center, bold: true, large: true });
        self
    }

    /// Adds a two-column line.
    pub fn columns(mut self, left: impl Into<String>, right: impl Into<String>) -> ReceiptDocument {
        self.elements.push(ReceiptElement::Columns { left: left.into(), right: right.into() });
        self
    }

    /// Adds a cut.
    pub fn cut(mut self) -> ReceiptDocument {
        self.elements.push(ReceiptElement::Cut);
        self
    }
}

/// What a printer reports (ESC/POS DLE EOT, in port vocabulary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PrinterStatus {
    /// Not reachable.
    pub offline: bool,
    /// Cover open.
    pub cover_open: bool,
    /// Paper out.
    pub paper_out: bool,
    /// Paper near its end.
    pub paper_near_end: bool,
    /// Another error (cutter jam, overheating).
    pub error: bool,
}

impl PrinterStatus {
    /// True when a print can be attempted.
    pub fn can_print(&self) -> bool {
        !(self.offline || self.cover_open || self.paper_out || self.error)
    }
}

/// What a printer supports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PrinterCapabilities {
    /// Characters per line in the normal font.
    pub columns: u8,
    /// Has a cutter.
    pub cutter: bool,
    /// Barcode symbologies printable.
    pub barcodes: Vec<Symbology>,
    /// Reports status (bidirectional link).
    pub status: bool,
}

impl PrinterCapabilities {
    /// A printer of `columns` characters with a cutter and a status channel, printing no barcodes.
    pub fn new(columns: u8) -> PrinterCapabilities {
        PrinterCapabilities { columns, cutter: true, barcodes: Vec::new(), status: true }
    }
}

/// A receipt printer.
///
/// # Contract
/// - `print` with the same idempotency key prints once (a retried job does not print a second receipt).
/// - A printer that cannot print (cover open, paper out, offline) fails with `Unavailable` and a message
///   naming the reason; the caller keeps the job queued.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ReceiptPrinter: Send + Sync + Debug + 'static {
    /// What the printer supports.
    fn capabilities(&self) -> PrinterCapabilities;

    /// Prints a document.
    ///
    /// # Errors
    /// `Unavailable` (offline, cover open, paper out), `OutcomeUnknown` (link dropped mid-job),
    /// `InvalidRequest` (a barcode the printer cannot print, data invalid for the symbology).
    async fn print(&self, document: ReceiptDocument, idempotency_key: IdempotencyKey) -> Result<(), PeripheralError>;

    /// The printer's status.
    ///
    /// # Errors
    /// `Unavailable`, `Unsupported` without a status channel.
    async fn status(&self) -> Result<PrinterStatus, PeripheralError>;
}

forward_port!(ReceiptPrinter {
    fn capabilities(&self) -> PrinterCapabilities;
    async fn print(&self, document: ReceiptDocument, idempotency_key: IdempotencyKey) -> Result<(), PeripheralError>;
    async fn status(&self) -> Result<PrinterStatus, PeripheralError>;
});

/// A cash drawer (usually driven through a printer's kick-out port).
///
/// # Contract
/// - `open` pulses the drawer; it reports `Unavailable` when the drawer (or its printer) is offline.
/// - `is_open` is `Unsupported` when the drawer has no sensor.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait CashDrawer: Send + Sync + Debug + 'static {
    /// Opens the drawer.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn open(&self) -> Result<(), PeripheralError>;

    /// Whether the drawer is open.
    ///
    /// # Errors
    /// `Unavailable`, `Unsupported`.
    async fn is_open(&self) -> Result<bool, PeripheralError>;
}

forward_port!(CashDrawer {
    async fn open(&self) -> Result<(), PeripheralError>;
    async fn is_open(&self) -> Result<bool, PeripheralError>;
});

/// One scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ScanData {
    /// The decoded data.
    pub data: String,
    /// The symbology, when the scanner reports it.
    pub symbology: Option<Symbology>,
}

impl ScanData {
    /// A scan.
    pub fn new(data: impl Into<String>, symbology: Option<Symbology>) -> ScanData {
        ScanData { data: data.into(), symbology }
    }
}

/// A barcode scanner, exclusive to one register.
///
/// # Contract
/// - `next_scan` waits up to the scanner's poll interval and returns `None` when nothing was scanned.
/// - Scans are delivered once, in order.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Scanner: Send + Sync + Debug + 'static {
    /// The next scan, if any.
    ///
    /// # Errors
    /// `Unavailable`; `InProgress` when another register holds the claim.
    async fn next_scan(&self) -> Result<Option<ScanData>, PeripheralError>;
}

forward_port!(Scanner {
    async fn next_scan(&self) -> Result<Option<ScanData>, PeripheralError>;
});

/// A customer-facing line display.
///
/// # Contract
/// - `show` replaces the whole display; lines longer than the display are truncated, never wrapped.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait LineDisplay: Send + Sync + Debug + 'static {
    /// Shows lines.
    ///
    /// # Errors
    /// `Unavailable`; `InvalidRequest` for more lines than the display has.
    async fn show(&self, lines: Vec<String>) -> Result<(), PeripheralError>;
}

forward_port!(LineDisplay {
    async fn show(&self, lines: Vec<String>) -> Result<(), PeripheralError>;
});

/// A scale reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WeightReading {
    /// Stable weight in grams.
    Stable(u32),
    /// Still moving.
    Unstable,
    /// Over capacity.
    Overweight,
    /// Below zero (tare error).
    UnderZero,
}

/// A scale.
///
/// # Contract
/// - Only a `Stable` reading may be used for a sale.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Scale: Send + Sync + Debug + 'static {
    /// Reads the weight.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn read(&self) -> Result<WeightReading, PeripheralError>;
}

forward_port!(Scale {
    async fn read(&self) -> Result<WeightReading, PeripheralError>;
});
