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
//! by charging again. So this gateway asks the terminal for its record of the sale before every payment, and
//! asks it to pay only when the terminal says it never saw the sale (`NotFound`). Checking every time, not only
//! when the domain says the request may have been sent before ([`Attempt::Resend`]), also covers an
//! earlier attempt the domain could not know of (a key claimed before a store kept its first claim, a record
//! lost with a store). When the
//! lookup fails, nothing is paid: the answer is `OutcomeUnknown` if the request may have been sent before,
//! otherwise `Unavailable` (nothing happened; retry).
//!
//! The terminal's sale reference is the request's idempotency key (stable across retries of one intent and
//! unique per intent), not the merchant's reference: an order paid in two attempts has one merchant reference,
//! and `status` must find this attempt, not the other.
//!
//! A refund cannot be looked up: one that may have been sent before ([`RefundRequest::resend`]) is not sent
//! again but answered `OutcomeUnknown`, and a refund the terminal rejects as malformed or already used is
//! `OutcomeUnknown` too (it may be the rejection of a refund sent again), never a certain refusal that would
//! record a refund that happened as refused.
//!
//! Within one process, a second request for a sale whose lookup or payment is running (a retry racing
//! `reconcile`, which takes no idempotency key) is answered `InProgress`, whichever gateway for the terminal
//! it comes through, so the two cannot both find nothing and both pay. A call that is cancelled (its future
//! dropped: a client gone, a timeout around it) leaves the terminal prompting the customer, and the terminal
//! may not know the sale yet; the sale then stays held for [`TerminalGateway::cancelled_hold`]
//! ([`DEFAULT_CANCELLED_HOLD`] unless set), long enough for the terminal's own timeout, and a request for it
//! in that time is `OutcomeUnknown` (the card may be charged; the intent records it, and the retry after the
//! hold is a resend that reads the terminal's record) instead of a lookup that finds nothing and a second
//! payment. A payment the terminal rejects because
//! it has seen the sale reference is answered from the terminal's record of it (another process's payment of
//! the same sale), never as a refusal. A reconciliation ([`Attempt::Reconcile`]) never asks the
//! terminal to pay: a sale it never saw charged nothing and is `NotFound`, which fails the intent.
//!
//! A terminal keeps its records for a limited time ([`TerminalGateway::record_window`], [`DEFAULT_RECORD_WINDOW`]
//! unless set): a lookup after that could find nothing for a sale that was paid, and paying would charge the
//! card twice. The gateway declares the window as its [`GatewayCapabilities::replay_window`], so a sale whose
//! outcome has been unknown for longer is not looked up or paid again by a retry or a reconciliation; it is
//! left to an operator ([`Payments::reconcile_from`](crate::Payments::reconcile_from)).
//!
//! Keep the sale's key held while the customer is at the terminal: set the [`Payments`](crate::Payments) lease
//! above the terminal's timeout, or renew a shorter one while the call runs
//! ([`Payments::with_lease_renewal`](crate::Payments::with_lease_renewal)). A caller taking over a sale's key
//! meanwhile would find it in progress at best.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use commerce_ports::payment::{
    Attempt, AuthorizeRequest, CaptureMethod, CaptureRequest, GatewayCapabilities, IncrementRequest,
    ModificationResult, ModificationStatus, PaymentGateway, PaymentMethodRef, PaymentSnapshot, ProviderPaymentStatus,
    RefundRequest, TenderKind, TokenizeRequest, VoidRequest,
};
use commerce_ports::terminal::{PaymentTerminal, TerminalPaymentRequest, TerminalPaymentResult, TerminalRefundRequest};
use commerce_ports::{ErrorKind, IdempotencyKey, Money, PaymentError, RegisterId, TenantId, TerminalError};

use crate::PaymentsError;

/// The longest idempotency key (and so terminal sale reference) this gateway passes on; longer keys are
/// replaced by a stable derived one ([`provider_key`](crate::provider_key)).
pub const TERMINAL_MAX_KEY_LEN: usize = 64;

/// How long a sale whose call was cancelled stays held by default (module docs): a terminal waits up to about
/// two minutes for a card and the customer's PIN, and then for its host, before it gives up.
pub const DEFAULT_CANCELLED_HOLD: Duration = Duration::from_secs(150);

/// How long a terminal's record of a sale is trusted by default (module docs): a day. Terminals and their
/// providers keep sale records for a limited time that not every provider states; set
/// [`TerminalGateway::with_record_window`] to what yours guarantees.
pub const DEFAULT_RECORD_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// One card terminal, at one register, as a [`PaymentGateway`] for card-present sales (module docs).
///
/// # Contract
/// - `authorize` takes tender `CardPresent` with automatic capture only, and this terminal's id as the payment
///   method; it reads the terminal's record of the sale first and pays only when the terminal never saw it;
///   it answers a `Captured` snapshot of the approved amount (a partial approval is captured as approved), or
///   `Pending` when the terminal approved offline and forwards the payment itself.
/// - An approval in another currency, of nothing, or above the requested amount is `OutcomeUnknown` (the
///   card may be charged; settle it by hand), never a refusal. A failed lookup is `OutcomeUnknown` on a resend
///   and `Unavailable` otherwise; a payment rejected for a sale reference the terminal has seen is answered
///   from its record; a reconciliation ([`Attempt::Reconcile`]) never pays, and a sale the terminal
///   never saw is then `NotFound`.
/// - `refund` goes through the terminal when it supports refunds; one marked as a resend is not sent again
///   (`OutcomeUnknown`). `capture`, `void`, `increment_authorization`, `retrieve` and `tokenize` are
///   `Unsupported` (a sale is captured at once; reversing it is a refund).
/// - Its capabilities declare [`record_window`](TerminalGateway::record_window) as the replay window: a sale
///   unknown for longer is not looked up or paid again by the domain.
/// - Terminal errors keep their kind, retry class, decline details and provider code, except as above.
pub struct TerminalGateway {
    terminal: Arc<dyn PaymentTerminal>,
    terminal_id: String,
    register: RegisterId,
    cancelled_hold: Duration,
    record_window: Duration,
}

/// Where a sale in [`running`] stands.
#[derive(Debug, Clone, Copy)]
enum Held {
    /// Between its lookup and the terminal's answer.
    Running,
    /// Its call was cancelled; the terminal may still be prompting until then.
    CancelledUntil(Instant),
}

/// (terminal id, sale reference) of the sales between their lookup and the terminal's answer in this process,
/// whichever `TerminalGateway` runs them, and of those whose call was cancelled within their hold: a second
/// request for one of them (a retry racing `reconcile`) is answered `InProgress` (running) or `OutcomeUnknown`
/// (cancelled) instead of looking up and paying too.
fn running() -> &'static Mutex<HashMap<(String, String), Held>> {
    static RUNNING: OnceLock<Mutex<HashMap<(String, String), Held>>> = OnceLock::new();
    RUNNING.get_or_init(Mutex::default)
}

/// A sale (terminal id, sale reference) registered in [`running`]: [`finish`](Running::finish) removes it;
/// dropped unfinished after the terminal was asked to pay (the call was cancelled), it stays held for `hold`.
struct Running {
    entry: (String, String),
    hold: Duration,
    /// The terminal was asked to pay: a cancellation now may leave the customer at the terminal.
    paying: bool,
    finished: bool,
}

impl Running {
    /// The terminal answered (or the call ended without reaching it): the sale is free again.
    fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = running().lock().unwrap_or_else(PoisonError::into_inner);
        if self.paying && !self.finished && !self.hold.is_zero() {
            // A hold too long to add to now is as good as for ever (a day is past any terminal's timeout).
            let now = Instant::now();
            let until = now.checked_add(self.hold).or_else(|| now.checked_add(Duration::from_secs(86_400)));
            if let Some(until) = until {
                running.insert(self.entry.clone(), Held::CancelledUntil(until));
                return;
            }
        }
        running.remove(&self.entry);
    }
}

impl fmt::Debug for TerminalGateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TerminalGateway")
            .field("terminal", &self.terminal)
            .field("terminal_id", &self.terminal_id)
            .field("register", &self.register)
            .field("cancelled_hold", &self.cancelled_hold)
            .field("record_window", &self.record_window)
            .finish()
    }
}

impl TerminalGateway {
    /// The terminal `terminal_id` (Adyen POIID, Stripe reader id) behind `terminal`, at `register`.
    pub fn new(terminal: Arc<dyn PaymentTerminal>, terminal_id: impl Into<String>, register: RegisterId) -> Self {
        TerminalGateway {
            terminal,
            terminal_id: terminal_id.into(),
            register,
            cancelled_hold: DEFAULT_CANCELLED_HOLD,
            record_window: DEFAULT_RECORD_WINDOW,
        }
    }

    /// Trusts the terminal's record of a sale for `window` instead of [`DEFAULT_RECORD_WINDOW`] (module docs):
    /// set it to how long the terminal's provider answers status requests, never longer.
    #[must_use]
    pub fn with_record_window(mut self, window: Duration) -> Self {
        self.record_window = window;
        self
    }

    /// How long the terminal's record of a sale is trusted.
    pub fn record_window(&self) -> Duration {
        self.record_window
    }

    /// Holds a sale whose call was cancelled for `hold` instead of [`DEFAULT_CANCELLED_HOLD`] (module docs):
    /// set it to the terminal's own timeout for a card and its host. Zero frees the sale at once, which lets
    /// a retry pay while the customer may still be at the terminal; use it only where calls are never
    /// cancelled.
    #[must_use]
    pub fn with_cancelled_hold(mut self, hold: Duration) -> Self {
        self.cancelled_hold = hold;
        self
    }

    /// How long a sale whose call was cancelled stays held.
    pub fn cancelled_hold(&self) -> Duration {
        self.cancelled_hold
    }

    /// The terminal's id.
    pub fn terminal_id(&self) -> &str {
        &self.terminal_id
    }

    /// Registers the sale `reference` as running in this process; `InProgress` when it already is, and
    /// `OutcomeUnknown` (with the time left as its retry hint) while a cancelled call's hold lasts.
    fn enter(&self, reference: &str) -> Result<Running, PaymentError> {
        let entry = (self.terminal_id.clone(), reference.to_owned());
        let now = Instant::now();
        let mut running = running().lock().unwrap_or_else(PoisonError::into_inner);
        running.retain(|_, held| !matches!(held, Held::CancelledUntil(until) if *until <= now));
        match running.get(&entry) {
            None => {}
            Some(Held::Running) => {
                return Err(PaymentError::new(
                    ErrorKind::InProgress,
                    "authorize",
                    format!(
                        "sale `{reference}` is already being looked up or paid at terminal `{}`; retry later with \
                         the same key",
                        self.terminal_id
                    ),
                ));
            }
            // The card may be charged by now: unknown, so that the intent records it and every retry is a resend
            // (a refusal here would let a later first attempt say it charged nothing).
            Some(Held::CancelledUntil(until)) => {
                let left = until.saturating_duration_since(now);
                return Err(unknown(
                    "authorize",
                    format!(
                        "sale `{reference}` was being paid at terminal `{}` by a call that was cancelled; the \
                         customer may still be at the terminal and the card may be charged: retry with the same key \
                         in {} s, when its record can be read",
                        self.terminal_id,
                        left.as_secs().max(1)
                    ),
                )
                .with_retry_after(left));
            }
        }
        running.insert(entry.clone(), Held::Running);
        Ok(Running { entry, hold: self.cancelled_hold, paying: false, finished: false })
    }

    /// The sale reference the terminal knows the sale of `tenant`'s idempotency key `key` by (for
    /// [`PaymentTerminal::status`], a receipt's card details): the provider key
    /// ([`provider_key`](crate::provider_key)) within [`TERMINAL_MAX_KEY_LEN`].
    ///
    /// # Errors
    /// As [`provider_key`](crate::provider_key).
    pub fn sale_reference(tenant: &TenantId, key: &IdempotencyKey) -> Result<IdempotencyKey, PaymentsError> {
        crate::provider_key(tenant, key, TERMINAL_MAX_KEY_LEN)
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

/// An error saying the card may have been charged and nobody knows for sure (retry class `SameKeyOnly`, the
/// kind's default).
fn unknown(operation: &'static str, message: String) -> PaymentError {
    PaymentError::new(ErrorKind::OutcomeUnknown, operation, message)
}

/// The intent's view of a sale the terminal approved.
fn sale(
    operation: &'static str,
    reference: &str,
    requested: Money,
    result: TerminalPaymentResult,
) -> Result<PaymentSnapshot, PaymentError> {
    let approved = result.amount;
    if approved.currency() != requested.currency() || !approved.is_positive() || approved.minor() > requested.minor() {
        return Err(unknown(
            operation,
            format!(
                "the terminal approved {approved} for sale `{reference}` of {requested} ({}); the card may be \
                 charged: settle it by hand (`Payments::reconcile_from`)",
                result.provider_reference
            ),
        ));
    }
    if result.offline {
        // The terminal keeps the payment and forwards it itself.
        return Ok(PaymentSnapshot::authorized(result.provider_reference, ProviderPaymentStatus::Pending, approved));
    }
    let mut snapshot =
        PaymentSnapshot::authorized(result.provider_reference, ProviderPaymentStatus::Captured, approved);
    snapshot.captured = approved;
    Ok(snapshot)
}

impl TerminalGateway {
    /// The sale of `request` at the terminal, between [`enter`](TerminalGateway::enter) and
    /// [`Running::finish`]: its record first, then (only if it never saw the sale) a payment, marking `running`
    /// as paying just before asking the terminal to pay.
    async fn sale_at_terminal(
        &self,
        request: &AuthorizeRequest,
        running: &mut Running,
    ) -> Result<PaymentSnapshot, PaymentError> {
        const OP: &str = "authorize";
        let reference = request.idempotency_key.as_str();
        // The terminal's record first: an earlier attempt may have charged the card (module docs).
        match self.terminal.status(&self.terminal_id, reference).await {
            Ok(result) => return sale(OP, reference, request.amount, result),
            // A reconciliation never prompts anyone: the sale the terminal never saw charged nothing.
            Err(e) if e.kind() == ErrorKind::NotFound && request.attempt == Attempt::Reconcile => {
                return Err(PaymentError::new(
                    ErrorKind::NotFound,
                    OP,
                    format!("terminal `{}` never saw sale `{reference}`: nothing was charged", self.terminal_id),
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) if e.kind() == ErrorKind::Declined => return Err(from_terminal(OP, e)),
            Err(e) if request.attempt != Attempt::First => {
                return Err(unknown(
                    OP,
                    format!(
                        "looking up the earlier attempt of sale `{reference}` at terminal `{}` failed ({}: {}); \
                         it may have charged the card: retry with the same key",
                        self.terminal_id,
                        e.kind().as_str(),
                        e.message()
                    ),
                ));
            }
            Err(e) => {
                return Err(PaymentError::new(
                    ErrorKind::Unavailable,
                    OP,
                    format!(
                        "could not look sale `{reference}` up at terminal `{}` before paying ({}: {}); this \
                         attempt charged nothing",
                        self.terminal_id,
                        e.kind().as_str(),
                        e.message()
                    ),
                ));
            }
        }
        let pay = TerminalPaymentRequest::new(
            self.terminal_id.clone(),
            self.register.clone(),
            request.amount,
            reference,
            request.idempotency_key.clone(),
        );
        running.paying = true;
        match self.terminal.pay(pay).await {
            Ok(result) => sale(OP, reference, request.amount, result),
            // A terminal rejects a sale reference it has seen; that sale may be another caller's payment of this
            // very sale, just made: its record answers, and without one the outcome is unknown.
            Err(e) if matches!(e.kind(), ErrorKind::InvalidRequest | ErrorKind::IdempotencyConflict) => {
                match self.terminal.status(&self.terminal_id, reference).await {
                    Ok(result) => sale(OP, reference, request.amount, result),
                    Err(lookup) if lookup.kind() == ErrorKind::NotFound => Err(from_terminal(OP, e)),
                    Err(lookup) => Err(unknown(
                        OP,
                        format!(
                            "terminal `{}` rejected sale `{reference}` ({}) and its record could not be read ({}: \
                             {}); it may have been paid: retry with the same key",
                            self.terminal_id,
                            e.message(),
                            lookup.kind().as_str(),
                            lookup.message()
                        ),
                    )),
                }
            }
            Err(e) => Err(from_terminal(OP, e)),
        }
    }
}

#[async_trait]
impl PaymentGateway for TerminalGateway {
    fn capabilities(&self) -> GatewayCapabilities {
        let refunds = self.terminal.capabilities().refunds;
        let mut caps = GatewayCapabilities::none();
        caps.partial_refund = refunds;
        caps.multiple_refunds = refunds;
        caps.resend_unsafe = true;
        caps.replay_window = Some(self.record_window);
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
        let mut running = self.enter(request.idempotency_key.as_str())?;
        let answer = self.sale_at_terminal(&request, &mut running).await;
        running.finish();
        answer
    }

    async fn capture(&self, _request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        Err(PaymentError::unsupported_feature("capture", "capture (a terminal sale captures at once)"))
    }

    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "refund";
        if !self.terminal.capabilities().refunds {
            return Err(PaymentError::unsupported_feature(OP, "refunds at this terminal"));
        }
        let what = format!("refund of {} on `{}`", request.amount, request.provider_reference);
        if request.resend {
            return Err(unknown(
                OP,
                format!(
                    "the {what} may have reached terminal `{}` before, and a terminal refund cannot be looked up: \
                     it is not sent again; check the provider's records and settle it by hand (`Payments::reconcile_from`)",
                    self.terminal_id
                ),
            ));
        }
        let refund = TerminalRefundRequest::new(
            self.terminal_id.clone(),
            request.provider_reference,
            request.amount,
            request.idempotency_key,
        );
        match self.terminal.refund(refund).await {
            Ok(result) => {
                Ok(ModificationResult::new(result.provider_reference, ModificationStatus::Succeeded, result.amount))
            }
            // A refund sent again is rejected as malformed or already used; the first may have gone through.
            Err(e) if matches!(e.kind(), ErrorKind::InvalidRequest | ErrorKind::IdempotencyConflict) => Err(unknown(
                OP,
                format!(
                    "terminal `{}` rejected the {what} ({}: {}); an earlier attempt may have refunded it: check \
                     the provider's records",
                    self.terminal_id,
                    e.kind().as_str(),
                    e.message()
                ),
            )),
            Err(e) => Err(from_terminal(OP, e)),
        }
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
