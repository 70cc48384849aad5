//! Small in-memory fakes of the non-payment ports: a fixed-rate tax engine, a flat-rate carrier, a virtual
//! receipt printer and cash drawer, a card-present terminal and a replication transport. Each keeps its
//! port's contract (idempotency, precise errors), so they are fit for host applications' tests.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use commerce_ports::peripherals::{
    Align, CashDrawer, PrinterCapabilities, PrinterStatus, ReceiptDocument, ReceiptElement, ReceiptPrinter, Symbology,
};
use commerce_ports::replication::{Change, PublishReceipt, ReplicationTransport, Stream};
use commerce_ports::shipping::{
    AddressVerification, BuyLabelRequest, CarrierCapabilities, Label, Rate, ShipmentRequest, ShippingCarrier,
    TrackingInfo, TrackingStatus,
};
use commerce_ports::tax::{
    JurisdictionTax, TaxCalculator, TaxCapabilities, TaxDocument, TaxDocumentStatus, TaxDocumentType, TaxLine,
    TaxRefundRequest, TaxRefundScope, TaxRequest, VoidReason,
};
use commerce_ports::terminal::{
    EntryMode, OfflineCapability, OfflineCardRead, OfflineForwardRequest, PaymentTerminal, TerminalCapabilities,
    TerminalPaymentRequest, TerminalPaymentResult, TerminalRefundRequest,
};
use commerce_ports::{
    Address, DeclineDetails, ErrorKind, IdempotencyKey, Money, PeripheralError, ReplicationError, ShippingError,
    TaxError, TerminalError,
};
use rust_decimal::{Decimal, RoundingStrategy};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------------------

/// A tax engine with one rate for every line, rounding each line half away from zero.
#[derive(Debug)]
pub struct FixedRateTax {
    rate: Decimal,
    jurisdiction: String,
    documents: Mutex<HashMap<String, TaxDocument>>,
    refund_keys: Mutex<HashMap<IdempotencyKey, String>>,
}

impl FixedRateTax {
    /// An engine charging `rate` (e.g. `0.20`) in `jurisdiction`.
    pub fn new(rate: Decimal, jurisdiction: impl Into<String>) -> FixedRateTax {
        FixedRateTax {
            rate,
            jurisdiction: jurisdiction.into(),
            documents: Mutex::new(HashMap::new()),
            refund_keys: Mutex::new(HashMap::new()),
        }
    }

    fn compute(&self, request: &TaxRequest) -> Result<TaxDocument, TaxError> {
        const OP: &str = "quote";
        let first =
            request.lines.first().ok_or_else(|| TaxError::invalid(OP, "a tax request needs at least one line"))?;
        let currency = first.unit_price.currency();
        let money = |e: commerce_ports::MoneyError| TaxError::invalid(OP, e.to_string());
        let mut lines = Vec::with_capacity(request.lines.len());
        for line in &request.lines {
            if line.unit_price.currency() != currency {
                return Err(TaxError::invalid(
                    OP,
                    format!("line {} is in {}, the document in {currency}", line.number, line.unit_price.currency()),
                ));
            }
            let taxable = line.extended().map_err(money)?;
            let tax_value = taxable
                .to_decimal()
                .checked_mul(self.rate)
                .ok_or_else(|| TaxError::invalid(OP, format!("tax on line {} does not fit", line.number)))?
                .round_dp_with_strategy(u32::from(currency.exponent()), RoundingStrategy::MidpointAwayFromZero);
            let tax = Money::from_decimal(tax_value, currency).map_err(money)?;
            let detail = JurisdictionTax::new(self.jurisdiction.clone(), "Country", self.rate, tax, taxable);
            lines.push(TaxLine::new(line.number, taxable, tax, vec![detail]));
        }
        let total_amount = Money::sum(currency, lines.iter().map(|l| l.taxable)).map_err(money)?;
        let total_tax = Money::sum(currency, lines.iter().map(|l| l.tax)).map_err(money)?;
        let status = match request.document_type {
            TaxDocumentType::Estimate => TaxDocumentStatus::Temporary,
            _ => TaxDocumentStatus::Saved,
        };
        Ok(TaxDocument::new(request.code.clone(), status, total_amount, total_tax, lines))
    }
}

#[async_trait]
impl TaxCalculator for FixedRateTax {
    fn capabilities(&self) -> TaxCapabilities {
        let mut caps = TaxCapabilities::default();
        caps.commit = true;
        caps.void = true;
        caps.refund = true;
        caps.rounds_per_line = true;
        caps
    }

    async fn quote(&self, request: TaxRequest) -> Result<TaxDocument, TaxError> {
        let document = self.compute(&request)?;
        if request.document_type == TaxDocumentType::Sale {
            let mut docs = lock(&self.documents);
            if let Some(existing) = docs.get(&request.code)
                && existing.status == TaxDocumentStatus::Committed
            {
                return Err(TaxError::new(
                    ErrorKind::InvalidState,
                    "quote",
                    format!("document `{}` is committed; refund or void it instead of adjusting", request.code),
                ));
            }
            docs.insert(request.code.clone(), document.clone());
        }
        Ok(document)
    }

    async fn commit(&self, code: &str) -> Result<TaxDocument, TaxError> {
        let mut docs = lock(&self.documents);
        let doc = docs
            .get_mut(code)
            .ok_or_else(|| TaxError::new(ErrorKind::NotFound, "commit", format!("no document `{code}`")))?;
        if doc.status == TaxDocumentStatus::Cancelled {
            return Err(TaxError::new(ErrorKind::InvalidState, "commit", format!("document `{code}` is voided")));
        }
        doc.status = TaxDocumentStatus::Committed;
        Ok(doc.clone())
    }

    async fn void(&self, code: &str, _reason: VoidReason) -> Result<TaxDocument, TaxError> {
        let mut docs = lock(&self.documents);
        let doc = docs
            .get_mut(code)
            .ok_or_else(|| TaxError::new(ErrorKind::NotFound, "void", format!("no document `{code}`")))?;
        doc.status = TaxDocumentStatus::Cancelled;
        Ok(doc.clone())
    }

    async fn refund(&self, request: TaxRefundRequest) -> Result<TaxDocument, TaxError> {
        const OP: &str = "refund";
        let mut docs = lock(&self.documents);
        if let Some(existing) = docs.get(&request.refund_code) {
            // The same refund again (same key) replays; anything else under that code is a collision.
            if lock(&self.refund_keys).get(&request.idempotency_key) == Some(&request.refund_code) {
                return Ok(existing.clone());
            }
            return Err(TaxError::new(
                ErrorKind::AlreadyExists,
                OP,
                format!("document `{}` already exists; choose another refund code", request.refund_code),
            ));
        }
        let original = docs.get(&request.original_code).ok_or_else(|| {
            TaxError::new(ErrorKind::NotFound, OP, format!("no document `{}`", request.original_code))
        })?;
        if original.status != TaxDocumentStatus::Committed {
            return Err(TaxError::new(
                ErrorKind::InvalidState,
                OP,
                format!("document `{}` is not committed", request.original_code),
            ));
        }
        let currency = original.total_amount.currency();
        let money = |e: commerce_ports::MoneyError| TaxError::invalid(OP, e.to_string());
        let mut lines: Vec<TaxLine> = match &request.scope {
            TaxRefundScope::Full => original.lines.clone(),
            TaxRefundScope::Lines(numbers) => {
                for n in numbers {
                    if !original.lines.iter().any(|l| l.number == *n) {
                        return Err(TaxError::invalid(
                            OP,
                            format!("line {n} is not on document `{}`", request.original_code),
                        ));
                    }
                }
                original.lines.iter().filter(|l| numbers.contains(&l.number)).cloned().collect()
            }
            _ => return Err(TaxError::unsupported("percentage refund")),
        };
        for line in &mut lines {
            line.taxable = line.taxable.checked_neg().map_err(money)?;
            line.tax = line.tax.checked_neg().map_err(money)?;
            for d in &mut line.details {
                d.tax = d.tax.checked_neg().map_err(money)?;
                d.taxable = d.taxable.checked_neg().map_err(money)?;
            }
        }
        let total_amount = Money::sum(currency, lines.iter().map(|l| l.taxable)).map_err(money)?;
        let total_tax = Money::sum(currency, lines.iter().map(|l| l.tax)).map_err(money)?;
        let doc =
            TaxDocument::new(request.refund_code.clone(), TaxDocumentStatus::Committed, total_amount, total_tax, lines);
        docs.insert(request.refund_code.clone(), doc.clone());
        lock(&self.refund_keys).insert(request.idempotency_key, request.refund_code);
        Ok(doc)
    }
}

// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct CarrierState {
    shipments: HashMap<String, Rate>,
    /// Live labels by shipment.
    labels: HashMap<String, Label>,
    /// Every purchase by key: (shipment, rate) and the label bought, kept after a void so a retried purchase
    /// replays instead of buying again.
    keys: HashMap<IdempotencyKey, (String, String, Label)>,
}

/// A carrier with one flat rate per shipment; labels are bought at most once.
#[derive(Debug)]
pub struct FlatRateCarrier {
    carrier: String,
    service: String,
    price: Money,
    next: AtomicU64,
    state: Mutex<CarrierState>,
}

impl FlatRateCarrier {
    /// A carrier named `carrier` offering `service` at `price`.
    pub fn new(carrier: impl Into<String>, service: impl Into<String>, price: Money) -> FlatRateCarrier {
        FlatRateCarrier {
            carrier: carrier.into(),
            service: service.into(),
            price,
            next: AtomicU64::new(1),
            state: Mutex::new(CarrierState::default()),
        }
    }
}

fn missing_address_fields(address: &Address) -> Vec<String> {
    let mut missing = Vec::new();
    for (field, value) in [
        ("line1", &address.line1),
        ("city", &address.city),
        ("postal_code", &address.postal_code),
        ("country", &address.country),
    ] {
        if value.trim().is_empty() {
            missing.push(field.to_owned());
        }
    }
    missing
}

#[async_trait]
impl ShippingCarrier for FlatRateCarrier {
    fn capabilities(&self) -> CarrierCapabilities {
        let mut caps = CarrierCapabilities::default();
        caps.void_label = true;
        caps.tracking = true;
        caps.address_verification = true;
        caps
    }

    async fn rates(&self, request: ShipmentRequest) -> Result<Vec<Rate>, ShippingError> {
        for (which, address) in [("to", &request.to), ("from", &request.from)] {
            if let Some(field) = missing_address_fields(address).first() {
                return Err(ShippingError::invalid("rates", format!("{which}.{field} must not be empty")));
            }
        }
        if request.parcel.weight_grams == 0 {
            return Err(ShippingError::invalid("rates", "parcel.weight_grams must be positive"));
        }
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let mut rate =
            Rate::new(format!("shp_{n}"), format!("rate_{n}"), self.carrier.clone(), self.service.clone(), self.price);
        rate.delivery_days = Some(2);
        lock(&self.state).shipments.insert(rate.shipment_id.clone(), rate.clone());
        Ok(vec![rate])
    }

    async fn buy_label(&self, request: BuyLabelRequest) -> Result<Label, ShippingError> {
        const OP: &str = "buy_label";
        let mut state = lock(&self.state);
        if let Some((shipment, rate, label)) = state.keys.get(&request.idempotency_key) {
            if shipment != &request.shipment_id || rate != &request.rate_id {
                return Err(ShippingError::new(
                    ErrorKind::IdempotencyConflict,
                    OP,
                    format!("key `{}` was used for shipment `{shipment}` rate `{rate}`", request.idempotency_key),
                ));
            }
            return Ok(label.clone());
        }
        let rate = state.shipments.get(&request.shipment_id).ok_or_else(|| {
            ShippingError::new(ErrorKind::NotFound, OP, format!("no shipment `{}`", request.shipment_id))
        })?;
        if rate.rate_id != request.rate_id {
            return Err(ShippingError::new(
                ErrorKind::NotFound,
                OP,
                format!("no rate `{}` on this shipment", request.rate_id),
            ));
        }
        if let Some(existing) = state.labels.get(&request.shipment_id) {
            return Err(ShippingError::new(
                ErrorKind::AlreadyExists,
                OP,
                format!("shipment `{}` already has label {}", request.shipment_id, existing.tracking_code),
            )
            .with_provider_code("SHIPMENT.POSTAGE.EXISTS"));
        }
        let label = Label::new(
            request.shipment_id.clone(),
            format!("FLAT{:010}", self.next.fetch_add(1, Ordering::SeqCst)),
            format!("memory://labels/{}.pdf", request.shipment_id),
            "PDF",
            rate.price,
        );
        state.labels.insert(request.shipment_id.clone(), label.clone());
        state.keys.insert(request.idempotency_key, (request.shipment_id, request.rate_id, label.clone()));
        Ok(label)
    }

    async fn void_label(&self, shipment_id: &str) -> Result<(), ShippingError> {
        lock(&self.state).labels.remove(shipment_id).map(|_| ()).ok_or_else(|| {
            ShippingError::new(ErrorKind::NotFound, "void_label", format!("shipment `{shipment_id}` has no label"))
        })
    }

    async fn track(&self, tracking_code: &str) -> Result<TrackingInfo, ShippingError> {
        let state = lock(&self.state);
        if state.labels.values().any(|l| l.tracking_code == tracking_code) {
            Ok(TrackingInfo::new(tracking_code, TrackingStatus::PreTransit, Vec::new()))
        } else {
            Err(ShippingError::new(ErrorKind::NotFound, "track", format!("unknown tracking code `{tracking_code}`")))
        }
    }

    async fn verify_address(&self, address: Address) -> Result<AddressVerification, ShippingError> {
        let missing = missing_address_fields(&address);
        if missing.is_empty() {
            Ok(AddressVerification::Verified(address))
        } else {
            Ok(AddressVerification::Undeliverable(
                missing.into_iter().map(|f| format!("E.ADDRESS.MISSING.{f}")).collect(),
            ))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------

/// A receipt printer that keeps what it printed, renders it as text, and can be put into error states.
#[derive(Debug)]
pub struct VirtualPrinter {
    columns: u8,
    status: Mutex<PrinterStatus>,
    printed: Mutex<Vec<(IdempotencyKey, ReceiptDocument)>>,
}

impl VirtualPrinter {
    /// A printer with `columns` characters per line.
    pub fn new(columns: u8) -> VirtualPrinter {
        VirtualPrinter { columns, status: Mutex::new(PrinterStatus::default()), printed: Mutex::new(Vec::new()) }
    }

    /// Sets the status (cover open, paper out, ...) the printer reports.
    pub fn set_status(&self, status: PrinterStatus) {
        *lock(&self.status) = status;
    }

    /// Documents printed so far, oldest first.
    pub fn printed(&self) -> Vec<ReceiptDocument> {
        lock(&self.printed).iter().map(|(_, d)| d.clone()).collect()
    }

    /// Renders a document as the printer would lay it out, one string per printed line.
    pub fn render(&self, document: &ReceiptDocument) -> Vec<String> {
        render_receipt(document, usize::from(self.columns))
    }
}

/// Lays out a receipt document as text lines `columns` wide (bold and large are not shown; a cut is a
/// dashed line).
pub fn render_receipt(document: &ReceiptDocument, columns: usize) -> Vec<String> {
    let mut out = Vec::new();
    for element in &document.elements {
        match element {
            ReceiptElement::Text { text, align, .. } => {
                let text: String = text.chars().take(columns).collect();
                let pad = columns.saturating_sub(text.chars().count());
                out.push(match align {
                    Align::Left => text,
                    Align::Center => format!("{}{text}", " ".repeat(pad / 2)),
                    _ => format!("{}{text}", " ".repeat(pad)),
                });
            }
            ReceiptElement::Columns { left, right } => {
                let right_len = right.chars().count();
                let left: String = left.chars().take(columns.saturating_sub(right_len + 1)).collect();
                let pad = columns.saturating_sub(left.chars().count() + right_len);
                out.push(format!("{left}{}{right}", " ".repeat(pad)));
            }
            ReceiptElement::Barcode { data, .. } => out.push(format!("[barcode {data}]")),
            ReceiptElement::Feed { lines } => out.extend(std::iter::repeat_n(String::new(), usize::from(*lines))),
            ReceiptElement::Cut => out.push("-".repeat(columns)),
            _ => out.push("[unsupported element]".to_owned()),
        }
    }
    out
}

#[async_trait]
impl ReceiptPrinter for VirtualPrinter {
    fn capabilities(&self) -> PrinterCapabilities {
        let mut caps = PrinterCapabilities::new(self.columns);
        caps.barcodes = vec![Symbology::Ean13, Symbology::Code128, Symbology::Qr];
        caps
    }

    async fn print(&self, document: ReceiptDocument, idempotency_key: IdempotencyKey) -> Result<(), PeripheralError> {
        let status = *lock(&self.status);
        let reason = if status.offline {
            Some("printer is offline")
        } else if status.cover_open {
            Some("cover is open")
        } else if status.paper_out {
            Some("paper is out")
        } else if status.error {
            Some("printer reports an error")
        } else {
            None
        };
        if let Some(reason) = reason {
            return Err(PeripheralError::new(ErrorKind::Unavailable, "print", reason));
        }
        let printable = self.capabilities().barcodes;
        for element in &document.elements {
            if let ReceiptElement::Barcode { symbology, .. } = element
                && !printable.contains(symbology)
            {
                return Err(PeripheralError::invalid(
                    "print",
                    format!("this printer cannot print {symbology:?} barcodes; it prints {printable:?}"),
                ));
            }
        }
        let mut printed = lock(&self.printed);
        if printed.iter().any(|(k, _)| k == &idempotency_key) {
            return Ok(());
        }
        printed.push((idempotency_key, document));
        Ok(())
    }

    async fn status(&self) -> Result<PrinterStatus, PeripheralError> {
        Ok(*lock(&self.status))
    }
}

/// A cash drawer that opens when pulsed and closes when told.
#[derive(Debug, Default)]
pub struct VirtualDrawer {
    open: AtomicBool,
    opened: AtomicU64,
}

impl VirtualDrawer {
    /// A closed drawer.
    pub fn new() -> VirtualDrawer {
        VirtualDrawer::default()
    }

    /// Closes the drawer (the cashier pushed it shut).
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
    }

    /// How many times it was opened.
    pub fn times_opened(&self) -> u64 {
        self.opened.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CashDrawer for VirtualDrawer {
    async fn open(&self) -> Result<(), PeripheralError> {
        self.open.store(true, Ordering::SeqCst);
        self.opened.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn is_open(&self) -> Result<bool, PeripheralError> {
        Ok(self.open.load(Ordering::SeqCst))
    }
}

// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct TerminalState {
    by_reference: HashMap<String, (IdempotencyKey, TerminalPaymentResult)>,
    /// Refunds by key: the payment refunded, the amount, and the result.
    refunds: HashMap<IdempotencyKey, (String, Money, TerminalPaymentResult)>,
    /// Refunded so far, by the payment's provider reference.
    refunded: HashMap<String, Money>,
    decline_next: bool,
    /// Payments that charge the card but whose answer is lost (`OutcomeUnknown`).
    lose_pay_answers: u32,
    /// Refunds that are made but whose answer is lost (`OutcomeUnknown`).
    lose_refund_answers: u32,
    /// The error the next `status` answers instead of looking.
    fail_next_status: Option<ErrorKind>,
    /// Calls of `pay`, `refund` and `status` that reached the terminal.
    pay_calls: u32,
    refund_calls: u32,
    status_calls: u32,
    offline: OfflineState,
}

/// The offline side of [`MemoryTerminal`]: its knobs and what the provider has charged.
#[derive(Debug, Default)]
struct OfflineState {
    capability: Option<OfflineCapability>,
    link_down: bool,
    /// The scheme and entry mode the next card reads show.
    card: Option<(Option<String>, EntryMode)>,
    /// Keys whose forwarding the provider declines.
    decline_on_forward: HashSet<IdempotencyKey>,
    /// Forwards that reach the provider (and are charged) but whose answer is lost.
    lose_answers: u32,
    /// Charges made by forwarding, by key: the payment, card data and the result (one charge per key).
    charged: HashMap<IdempotencyKey, (TerminalPaymentRequest, String, TerminalPaymentResult)>,
    /// Forwarding calls that reached the provider (replays included).
    forward_calls: u32,
    reads: u32,
}

/// A card-present terminal that approves chip payments (or declines the next one when told).
#[derive(Debug, Default)]
pub struct MemoryTerminal {
    next: AtomicU64,
    state: Mutex<TerminalState>,
}

impl MemoryTerminal {
    /// A terminal.
    pub fn new() -> MemoryTerminal {
        MemoryTerminal::default()
    }

    /// Makes the next payment decline.
    pub fn decline_next(&self) {
        lock(&self.state).decline_next = true;
    }

    /// Makes the next `n` payments charge the card but lose the answer (`OutcomeUnknown`, as when the terminal
    /// stops answering after the card was presented); [`status`](PaymentTerminal::status) knows them.
    pub fn lose_pay_answers(&self, n: u32) {
        lock(&self.state).lose_pay_answers = n;
    }

    /// Makes the next `n` refunds go through but lose the answer (`OutcomeUnknown`).
    pub fn lose_refund_answers(&self, n: u32) {
        lock(&self.state).lose_refund_answers = n;
    }

    /// Makes the next `status` fail with `kind` (a lookup that failed; it says nothing about the payment).
    pub fn fail_next_status(&self, kind: ErrorKind) {
        lock(&self.state).fail_next_status = Some(kind);
    }

    /// How many `pay` calls reached the terminal (each asks the customer for a card).
    pub fn pay_calls(&self) -> u32 {
        lock(&self.state).pay_calls
    }

    /// How many `refund` calls reached the terminal.
    pub fn refund_calls(&self) -> u32 {
        lock(&self.state).refund_calls
    }

    /// How many `status` calls reached the terminal.
    pub fn status_calls(&self) -> u32 {
        lock(&self.state).status_calls
    }

    /// A terminal that accepts offline as `capability` describes. Card reads show `visa` by chip until
    /// [`set_card`](MemoryTerminal::set_card) says otherwise.
    pub fn with_offline(capability: OfflineCapability) -> MemoryTerminal {
        let terminal = MemoryTerminal::default();
        lock(&terminal.state).offline.capability = Some(capability);
        terminal
    }

    /// Takes the provider link down (forwarding fails with `Unavailable`, nothing sent) or brings it back.
    pub fn set_link_down(&self, down: bool) {
        lock(&self.state).offline.link_down = down;
    }

    /// Makes the following offline card reads show this scheme and entry mode.
    pub fn set_card(&self, scheme: Option<&str>, entry_mode: EntryMode) {
        lock(&self.state).offline.card = Some((scheme.map(str::to_owned), entry_mode));
    }

    /// Makes the provider decline the forwarding of the payment with this key.
    pub fn decline_on_forward(&self, key: &IdempotencyKey) {
        lock(&self.state).offline.decline_on_forward.insert(key.clone());
    }

    /// Makes the next `n` forwards reach the provider (which charges) but lose the answer (`OutcomeUnknown`).
    pub fn lose_forward_answers(&self, n: u32) {
        lock(&self.state).offline.lose_answers = n;
    }

    /// How many payments the provider charged by forwarding (each key at most once).
    pub fn offline_charges(&self) -> usize {
        lock(&self.state).offline.charged.len()
    }

    /// How many forwarding calls reached the provider, replays included.
    pub fn forward_calls(&self) -> u32 {
        lock(&self.state).offline.forward_calls
    }

    /// How many cards were read offline.
    pub fn offline_reads(&self) -> u32 {
        lock(&self.state).offline.reads
    }
}

#[async_trait]
impl PaymentTerminal for MemoryTerminal {
    fn capabilities(&self) -> TerminalCapabilities {
        let mut caps = TerminalCapabilities::default();
        caps.refunds = true;
        caps.offline = lock(&self.state).offline.capability.clone();
        caps
    }

    async fn pay(&self, request: TerminalPaymentRequest) -> Result<TerminalPaymentResult, TerminalError> {
        const OP: &str = "pay";
        if !request.amount.is_positive() {
            return Err(TerminalError::invalid(OP, format!("amount must be positive, got {}", request.amount)));
        }
        let mut state = lock(&self.state);
        state.pay_calls += 1;
        if let Some((key, result)) = state.by_reference.get(&request.reference) {
            if key == &request.idempotency_key && result.amount == request.amount {
                return Ok(result.clone());
            }
            return Err(TerminalError::new(
                ErrorKind::IdempotencyConflict,
                OP,
                format!("sale reference `{}` was already used for another payment", request.reference),
            ));
        }
        if std::mem::take(&mut state.decline_next) {
            return Err(TerminalError::new(ErrorKind::Declined, OP, "card declined at the terminal")
                .with_decline(DeclineDetails::with_code("05")));
        }
        let mut result =
            TerminalPaymentResult::new(format!("term_{}", self.next.fetch_add(1, Ordering::SeqCst)), request.amount);
        result.scheme = Some("visa".to_owned());
        result.entry_mode = Some(EntryMode::Chip);
        result.masked_pan = Some("**** 0119".to_owned());
        state.by_reference.insert(request.reference, (request.idempotency_key, result.clone()));
        if state.lose_pay_answers > 0 {
            state.lose_pay_answers -= 1;
            return Err(TerminalError::new(
                ErrorKind::OutcomeUnknown,
                OP,
                "the terminal stopped answering after the card was presented; resolve with status",
            ));
        }
        Ok(result)
    }

    async fn refund(&self, request: TerminalRefundRequest) -> Result<TerminalPaymentResult, TerminalError> {
        const OP: &str = "refund";
        if !request.amount.is_positive() {
            return Err(TerminalError::invalid(OP, format!("amount must be positive, got {}", request.amount)));
        }
        let mut state = lock(&self.state);
        state.refund_calls += 1;
        if let Some((payment, amount, done)) = state.refunds.get(&request.idempotency_key) {
            if payment != &request.provider_reference || amount != &request.amount {
                return Err(TerminalError::new(
                    ErrorKind::IdempotencyConflict,
                    OP,
                    format!("key `{}` was used for a refund of {amount} on `{payment}`", request.idempotency_key),
                ));
            }
            return Ok(done.clone());
        }
        let original = state
            .by_reference
            .values()
            .find(|(_, r)| r.provider_reference == request.provider_reference)
            .map(|(_, r)| r.clone())
            .ok_or_else(|| {
                TerminalError::new(ErrorKind::NotFound, OP, format!("no payment `{}`", request.provider_reference))
            })?;
        let already =
            state.refunded.get(&request.provider_reference).copied().unwrap_or(Money::zero(original.amount.currency()));
        let refundable = original.amount.checked_sub(already).map_err(|e| TerminalError::invalid(OP, e.to_string()))?;
        if request.amount.currency() != refundable.currency() || request.amount.minor() > refundable.minor() {
            return Err(TerminalError::invalid(
                OP,
                format!("refund {} exceeds the refundable {refundable}", request.amount),
            ));
        }
        let mut result = original;
        result.provider_reference = format!("term_{}", self.next.fetch_add(1, Ordering::SeqCst));
        result.amount = request.amount;
        let total = already.checked_add(request.amount).map_err(|e| TerminalError::invalid(OP, e.to_string()))?;
        state.refunded.insert(request.provider_reference.clone(), total);
        state.refunds.insert(request.idempotency_key, (request.provider_reference, request.amount, result.clone()));
        if state.lose_refund_answers > 0 {
            state.lose_refund_answers -= 1;
            return Err(TerminalError::new(ErrorKind::OutcomeUnknown, OP, "the terminal stopped answering"));
        }
        Ok(result)
    }

    async fn abort(&self, _terminal_id: &str, _reference: &str) -> Result<(), TerminalError> {
        Err(TerminalError::unsupported("abort"))
    }

    async fn status(&self, _terminal_id: &str, reference: &str) -> Result<TerminalPaymentResult, TerminalError> {
        let mut state = lock(&self.state);
        state.status_calls += 1;
        if let Some(kind) = state.fail_next_status.take() {
            return Err(TerminalError::new(kind, "status", "the status lookup failed"));
        }
        state.by_reference.get(reference).map(|(_, r)| r.clone()).ok_or_else(|| {
            TerminalError::new(ErrorKind::NotFound, "status", format!("the terminal never saw `{reference}`"))
        })
    }

    async fn read_offline(&self, request: &TerminalPaymentRequest) -> Result<OfflineCardRead, TerminalError> {
        const OP: &str = "read_offline";
        let mut state = lock(&self.state);
        let offline = &mut state.offline;
        if offline.capability.is_none() {
            return Err(TerminalError::unsupported(OP));
        }
        if !request.amount.is_positive() {
            return Err(TerminalError::invalid(OP, format!("amount must be positive, got {}", request.amount)));
        }
        offline.reads += 1;
        let (scheme, entry_mode) = offline.card.clone().unwrap_or((Some("visa".to_owned()), EntryMode::Chip));
        // The terminal's "encrypted" blob: opaque, and different for every read.
        let blob = format!("emv1:{}:{}:{:08x}", request.terminal_id, request.idempotency_key, offline.reads);
        let mut card = OfflineCardRead::new(scheme, entry_mode, blob);
        card.masked_pan = Some("**** 0119".to_owned());
        Ok(card)
    }

    async fn forward_offline(&self, request: OfflineForwardRequest) -> Result<TerminalPaymentResult, TerminalError> {
        const OP: &str = "forward_offline";
        let mut state = lock(&self.state);
        let offline = &mut state.offline;
        if offline.capability.is_none() {
            return Err(TerminalError::unsupported(OP));
        }
        if offline.link_down {
            return Err(TerminalError::new(
                ErrorKind::Unavailable,
                OP,
                "the provider cannot be reached; nothing was sent",
            ));
        }
        offline.forward_calls += 1;
        let key = request.payment.idempotency_key.clone();
        if offline.decline_on_forward.contains(&key) {
            return Err(TerminalError::new(ErrorKind::Declined, OP, "declined by the issuer when forwarded")
                .with_decline(DeclineDetails::with_code("51")));
        }
        let result = match offline.charged.get(&key) {
            Some((payment, card_data, result)) => {
                if payment != &request.payment || card_data != &request.card.card_data {
                    return Err(TerminalError::new(
                        ErrorKind::IdempotencyConflict,
                        OP,
                        format!("key `{key}` was forwarded before with another payment"),
                    ));
                }
                result.clone()
            }
            None => {
                let mut result = TerminalPaymentResult::new(
                    format!("term_{}", self.next.fetch_add(1, Ordering::SeqCst)),
                    request.payment.amount,
                );
                result.scheme = request.card.scheme.clone();
                result.entry_mode = Some(request.card.entry_mode);
                result.masked_pan = request.card.masked_pan.clone();
                result.offline = true;
                offline.charged.insert(key, (request.payment, request.card.card_data, result.clone()));
                result
            }
        };
        if offline.lose_answers > 0 {
            offline.lose_answers -= 1;
            return Err(TerminalError::new(
                ErrorKind::OutcomeUnknown,
                OP,
                "the provider's answer was lost; forward again with the same key",
            ));
        }
        Ok(result)
    }
}

// ---------------------------------------------------------------------------------------------------------

/// A replication transport that stores batches in memory, per stream, deduplicating by change id.
#[derive(Debug, Default)]
pub struct MemoryTransport {
    streams: Mutex<HashMap<Stream, BTreeMap<u64, Change>>>,
}

impl MemoryTransport {
    /// An empty transport.
    pub fn new() -> MemoryTransport {
        MemoryTransport::default()
    }
}

#[async_trait]
impl ReplicationTransport for MemoryTransport {
    async fn publish(&self, stream: Stream, changes: Vec<Change>) -> Result<PublishReceipt, ReplicationError> {
        let mut streams = lock(&self.streams);
        let log = streams.entry(stream).or_default();
        // Check the whole batch first: a batch is stored whole or not at all.
        let mut fresh: BTreeMap<u64, Change> = BTreeMap::new();
        let mut duplicates = 0u32;
        for change in changes {
            let known = log.values().chain(fresh.values()).any(|c| c.change_id == change.change_id);
            if known {
                duplicates = duplicates.saturating_add(1);
                continue;
            }
            if log.contains_key(&change.sequence) || fresh.contains_key(&change.sequence) {
                return Err(ReplicationError::invalid(
                    "publish",
                    format!("sequence {} already holds another change; nothing was stored", change.sequence),
                ));
            }
            fresh.insert(change.sequence, change);
        }
        log.append(&mut fresh);
        let durable_up_to = log.keys().next_back().copied().unwrap_or(0);
        Ok(PublishReceipt::new(durable_up_to, duplicates))
    }

    async fn fetch(&self, stream: Stream, after: u64, limit: u32) -> Result<Vec<Change>, ReplicationError> {
        let streams = lock(&self.streams);
        Ok(streams
            .get(&stream)
            .map(|log| {
                log.range(after.saturating_add(1)..)
                    .take(usize::try_from(limit).unwrap_or(usize::MAX))
                    .map(|(_, c)| c.clone())
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commerce_ports::peripherals::Symbology;
    use commerce_ports::shipping::Parcel;
    use commerce_ports::{Currency, DatasetId, RegisterId};

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::EUR)
    }

    fn key(k: &str) -> IdempotencyKey {
        IdempotencyKey::new(k).expect("key")
    }

    #[tokio::test]
    async fn terminal_refunds_stay_within_the_payment_and_keys_conflict() {
        let t = MemoryTerminal::new();
        let register = RegisterId::new("till").expect("id");
        let paid =
            t.pay(TerminalPaymentRequest::new("ped", register, eur(1_000), "S-1", key("p"))).await.expect("paid");
        let refund = |amount, k| TerminalRefundRequest::new("ped", paid.provider_reference.clone(), amount, key(k));
        t.refund(refund(eur(600), "r1")).await.expect("first refund");
        let over = t.refund(refund(eur(600), "r2")).await.expect_err("over-refund");
        assert_eq!(over.kind(), ErrorKind::InvalidRequest);
        let conflict = t.refund(refund(eur(100), "r1")).await.expect_err("same key, other amount");
        assert_eq!(conflict.kind(), ErrorKind::IdempotencyConflict);
        t.refund(refund(eur(600), "r1")).await.expect("replay");
        t.refund(refund(eur(400), "r3")).await.expect("the rest");
    }

    #[tokio::test]
    async fn a_refund_code_cannot_overwrite_a_document() {
        use commerce_ports::tax::{TaxRefundRequest, TaxRefundScope};
        use commerce_ports::{Address, ChannelId, LineItem};
        let tax = FixedRateTax::new(Decimal::new(20, 2), "X");
        let request = TaxRequest::new(
            "O-1",
            TaxDocumentType::Sale,
            ChannelId::new("web").expect("id"),
            Address::default(),
            Address::default(),
            vec![LineItem::new(1, "a", "A", 1, eur(1_000))],
            key("t"),
        );
        tax.quote(request).await.expect("quote");
        tax.commit("O-1").await.expect("commit");
        let onto_original = TaxRefundRequest::new("O-1", "O-1", TaxRefundScope::Full, key("r"));
        assert_eq!(tax.refund(onto_original).await.map_err(|e| e.kind()).err(), Some(ErrorKind::AlreadyExists));
        let refund = TaxRefundRequest::new("O-1", "O-1-R", TaxRefundScope::Full, key("r2"));
        let first = tax.refund(refund.clone()).await.expect("refund");
        assert_eq!(tax.refund(refund).await.expect("replay"), first);
        let other_key = TaxRefundRequest::new("O-1", "O-1-R", TaxRefundScope::Full, key("r3"));
        assert_eq!(tax.refund(other_key).await.map_err(|e| e.kind()).err(), Some(ErrorKind::AlreadyExists));
    }

    #[tokio::test]
    async fn huge_amounts_are_an_error_not_a_panic() {
        use commerce_ports::{Address, ChannelId, LineItem};
        let tax = FixedRateTax::new(Decimal::MAX, "X");
        let request = TaxRequest::new(
            "O-1",
            TaxDocumentType::Estimate,
            ChannelId::new("web").expect("id"),
            Address::default(),
            Address::default(),
            vec![LineItem::new(1, "a", "A", 1, eur(i64::MAX))],
            key("t"),
        );
        assert_eq!(tax.quote(request).await.map_err(|e| e.kind()).err(), Some(ErrorKind::InvalidRequest));
    }

    #[tokio::test]
    async fn a_label_key_replays_even_after_a_void_and_conflicts_on_another_rate() {
        let carrier = FlatRateCarrier::new("DHL", "Paket", eur(490));
        let to = Address::new("a", "b", "c", "DE");
        let rates =
            carrier.rates(ShipmentRequest::new(to.clone(), to, Parcel::new(100, 1, 1, 1), "O")).await.expect("rates");
        let rate = rates.first().expect("a rate");
        let buy = BuyLabelRequest::new(&rate.shipment_id, &rate.rate_id, key("l"));
        let label = carrier.buy_label(buy.clone()).await.expect("label");
        carrier.void_label(&rate.shipment_id).await.expect("void");
        assert_eq!(carrier.buy_label(buy).await.expect("replay"), label, "a retried purchase must not buy again");
        let other = BuyLabelRequest::new(&rate.shipment_id, "rate_other", key("l"));
        assert_eq!(carrier.buy_label(other).await.map_err(|e| e.kind()).err(), Some(ErrorKind::IdempotencyConflict));
    }

    #[tokio::test]
    async fn the_printer_refuses_symbologies_it_lacks() {
        let printer = VirtualPrinter::new(42);
        let mut doc = ReceiptDocument::new();
        doc.elements.push(ReceiptElement::Barcode { symbology: Symbology::DataMatrix, data: "x".into() });
        let e = printer.print(doc, key("p")).await.expect_err("data matrix");
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert!(printer.printed().is_empty());
    }

    #[tokio::test]
    async fn a_clashing_batch_is_not_half_published() {
        use commerce_ports::replication::Direction;
        use commerce_ports::{ChannelId, StoreId};
        let t = MemoryTransport::new();
        let stream = Stream::new(
            ChannelId::new("s").expect("id"),
            StoreId::new("s").expect("id"),
            DatasetId::new("orders").expect("id"),
            Direction::Up,
        );
        let change = |seq, id: &str| {
            Change::new(DatasetId::new("orders").expect("id"), seq, id, "k", None, time::OffsetDateTime::UNIX_EPOCH)
        };
        t.publish(stream.clone(), vec![change(1, "a")]).await.expect("first");
        let clash = t.publish(stream.clone(), vec![change(2, "b"), change(1, "c")]).await;
        assert!(clash.is_err());
        assert_eq!(
            t.fetch(stream.clone(), 0, 10).await.expect("fetch").len(),
            1,
            "nothing of the refused batch is stored"
        );
        let receipt = t.publish(stream.clone(), vec![change(1, "a"), change(2, "b")]).await.expect("retry");
        assert_eq!((receipt.durable_up_to, receipt.duplicates), (2, 1));
    }
}
