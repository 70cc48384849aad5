//! An in-memory payment gateway that keeps the port's contract: idempotency (replay, conflict), amount
//! checks, state rules, Stripe's test payment method names, and optional injected faults.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use commerce_ports::payment::{
    AuthorizeRequest, CaptureMethod, CaptureRequest, GatewayCapabilities, IncrementRequest, ModificationResult,
    ModificationStatus, PaymentGateway, PaymentMethodData, PaymentMethodRef, PaymentSnapshot, ProviderPaymentStatus,
    RefundRequest, TenderKind, TokenizeRequest, VoidRequest,
};
use commerce_ports::{DeclineDetails, ErrorKind, IdempotencyKey, Money, PaymentError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A fault to inject into the next provider call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GatewayFault {
    /// The call is processed, but the caller gets `OutcomeUnknown` (a timeout after sending).
    TimeoutAfterProcessing,
    /// The call is not processed and the caller gets `Unavailable` (a 503 before processing).
    Unavailable,
}

#[derive(Debug, Clone)]
struct Payment {
    snapshot: PaymentSnapshot,
    /// No capture may follow (a final capture happened, or the payment was voided).
    closed_for_capture: bool,
}

#[derive(Debug, Clone)]
enum StoredOutcome {
    /// The answer as JSON text (one allocation, read back only on a replay).
    Ok(String),
    Err {
        kind: ErrorKind,
        message: String,
        code: Option<String>,
        decline: Option<DeclineDetails>,
    },
}

#[derive(Debug, Clone)]
struct IdempotencyEntry {
    operation: &'static str,
    fingerprint: String,
    outcome: StoredOutcome,
}

#[derive(Debug, Default)]
struct State {
    payments: HashMap<String, Payment>,
    keys: HashMap<String, IdempotencyEntry>,
    faults: VecDeque<GatewayFault>,
}

/// An in-memory [`PaymentGateway`].
///
/// Payment method names follow Stripe's test names: `pm_card_visa` (and any other non-empty name) is
/// approved, `pm_card_chargeDeclined` is declined (`card_declined` / `generic_decline`),
/// `pm_card_chargeDeclinedInsufficientFunds` is declined with `insufficient_funds`.
#[derive(Debug)]
pub struct MemoryGateway {
    capabilities: GatewayCapabilities,
    state: Mutex<State>,
    provider_calls: AtomicU64,
    prefix: String,
    /// Keyed hasher for fingerprinting secrets (card numbers) without keeping them.
    hasher: RandomState,
}

/// References are unique across every gateway of the process, like a real provider's ids, so two bindings
/// never hand out the same reference.
static NEXT_REFERENCE: AtomicU64 = AtomicU64::new(1);

impl Default for MemoryGateway {
    fn default() -> Self {
        MemoryGateway::new()
    }
}

fn err(kind: ErrorKind, operation: &'static str, message: impl Into<String>) -> PaymentError {
    PaymentError::new(kind, operation, message)
}

impl MemoryGateway {
    /// A gateway supporting every operation for card, wallet, gift card and bank transfer tenders.
    pub fn new() -> MemoryGateway {
        MemoryGateway::with_capabilities(GatewayCapabilities::full(vec![
            TenderKind::Card,
            TenderKind::Wallet,
            TenderKind::GiftCard,
            TenderKind::BankTransfer,
        ]))
    }

    /// A gateway with the given capabilities (operations outside them fail with `Unsupported`).
    pub fn with_capabilities(capabilities: GatewayCapabilities) -> MemoryGateway {
        MemoryGateway {
            capabilities,
            state: Mutex::new(State::default()),
            provider_calls: AtomicU64::new(0),
            prefix: "mem".to_owned(),
            hasher: RandomState::new(),
        }
    }

    /// Sets the prefix of provider references (`mem_pay_1`), to tell several gateways apart.
    pub fn with_reference_prefix(mut self, prefix: impl Into<String>) -> MemoryGateway {
        self.prefix = prefix.into();
        self
    }

    /// The prefix of the provider references this gateway hands out.
    pub fn reference_prefix(&self) -> &str {
        &self.prefix
    }

    /// Queues a fault for a coming provider call (replays of stored outcomes are not provider calls).
    pub fn inject(&self, fault: GatewayFault) {
        self.lock().faults.push_back(fault);
    }

    /// How many calls actually reached the "provider" (replays excluded).
    pub fn provider_calls(&self) -> u64 {
        self.provider_calls.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn new_reference(&self, what: &str) -> String {
        format!("{}_{what}_{}", self.prefix, NEXT_REFERENCE.fetch_add(1, Ordering::SeqCst))
    }

    /// Runs `op` under idempotency `key`: a replay returns the stored outcome, a mismatch is a conflict.
    fn idempotent<T, F>(
        &self,
        operation: &'static str,
        key: &IdempotencyKey,
        request: &impl Serialize,
        op: F,
    ) -> Result<T, PaymentError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(&mut State) -> Result<T, PaymentError>,
    {
        let fingerprint = serde_json::to_string(request)
            .map_err(|e| err(ErrorKind::Unexpected, operation, format!("cannot fingerprint request: {e}")))?;
        self.idempotent_with(operation, key, fingerprint, op)
    }

    fn idempotent_with<T, F>(
        &self,
        operation: &'static str,
        key: &IdempotencyKey,
        fingerprint: String,
        op: F,
    ) -> Result<T, PaymentError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(&mut State) -> Result<T, PaymentError>,
    {
        let mut state = self.lock();
        if let Some(entry) = state.keys.get(key.as_str()) {
            if entry.operation != operation || entry.fingerprint != fingerprint {
                return Err(err(
                    ErrorKind::IdempotencyConflict,
                    operation,
                    format!("idempotency key `{key}` was first used for `{}` with other parameters", entry.operation),
                ));
            }
            return replay(operation, &entry.outcome);
        }
        self.provider_calls.fetch_add(1, Ordering::SeqCst);
        let fault = state.faults.pop_front();
        if fault == Some(GatewayFault::Unavailable) {
            // Not processed, and not recorded: a retry with the same key really runs.
            return Err(err(ErrorKind::Unavailable, operation, "injected fault: provider answered 503"));
        }
        let result = op(&mut state);
        let outcome = match &result {
            Ok(value) => StoredOutcome::Ok(
                serde_json::to_string(value)
                    .map_err(|e| err(ErrorKind::Unexpected, operation, format!("cannot store outcome: {e}")))?,
            ),
            Err(e) => StoredOutcome::Err {
                kind: e.kind(),
                message: e.message().to_owned(),
                code: e.provider_code().map(str::to_owned),
                decline: e.decline().cloned(),
            },
        };
        state.keys.insert(key.as_str().to_owned(), IdempotencyEntry { operation, fingerprint, outcome });
        if fault == Some(GatewayFault::TimeoutAfterProcessing) {
            return Err(err(
                ErrorKind::OutcomeUnknown,
                operation,
                "injected fault: timed out after the request was sent",
            ));
        }
        result
    }

    fn payment<'a>(
        state: &'a mut State,
        operation: &'static str,
        reference: &str,
    ) -> Result<&'a mut Payment, PaymentError> {
        state
            .payments
            .get_mut(reference)
            .ok_or_else(|| err(ErrorKind::NotFound, operation, format!("no payment `{reference}`")))
    }
}

fn replay<T: DeserializeOwned>(operation: &'static str, outcome: &StoredOutcome) -> Result<T, PaymentError> {
    match outcome {
        StoredOutcome::Ok(value) => serde_json::from_str(value)
            .map_err(|e| err(ErrorKind::Unexpected, operation, format!("stored outcome unreadable: {e}"))),
        StoredOutcome::Err { kind, message, code, decline } => {
            let mut e = err(*kind, operation, message.clone());
            if let Some(code) = code {
                e = e.with_provider_code(code.clone());
            }
            if let Some(decline) = decline {
                e = e.with_decline(decline.clone());
            }
            Err(e)
        }
    }
}

fn check_amount(operation: &'static str, amount: Money, payment_currency: Option<Money>) -> Result<(), PaymentError> {
    if !amount.is_positive() {
        return Err(PaymentError::invalid(operation, format!("amount must be positive, got {amount}")));
    }
    if let Some(reference) = payment_currency
        && reference.currency() != amount.currency()
    {
        return Err(PaymentError::invalid(
            operation,
            format!("amount {amount} is not in the payment's currency {}", reference.currency()),
        ));
    }
    Ok(())
}

fn money_err(operation: &'static str) -> impl Fn(commerce_ports::MoneyError) -> PaymentError {
    move |e| err(ErrorKind::InvalidRequest, operation, e.to_string())
}

#[async_trait]
impl PaymentGateway for MemoryGateway {
    fn capabilities(&self) -> GatewayCapabilities {
        self.capabilities.clone()
    }

    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError> {
        const OP: &str = "authorize";
        check_amount(OP, request.amount, None)?;
        if !self.capabilities.tenders.contains(&request.tender) {
            return Err(err(
                ErrorKind::Unsupported,
                OP,
                format!("tender `{}` is not supported by this gateway", request.tender),
            ));
        }
        if request.capture_method == CaptureMethod::Manual && !self.capabilities.manual_capture {
            return Err(PaymentError::unsupported_feature(OP, "manual capture"));
        }
        if request.payment_method.0.is_empty() {
            return Err(PaymentError::invalid(OP, "payment_method must not be empty"));
        }
        let key = request.idempotency_key.clone();
        let reference = self.new_reference("pay");
        self.idempotent(OP, &key, &request, |state| {
            let decline = match request.payment_method.0.as_str() {
                "pm_card_chargeDeclined" => Some("generic_decline"),
                "pm_card_chargeDeclinedInsufficientFunds" => Some("insufficient_funds"),
                _ => None,
            };
            if let Some(code) = decline {
                return Err(err(ErrorKind::Declined, OP, "Your card was declined.")
                    .with_provider_code("card_declined")
                    .with_decline(DeclineDetails::with_code(code)));
            }
            let mut snapshot =
                PaymentSnapshot::authorized(reference.clone(), ProviderPaymentStatus::Authorized, request.amount);
            let mut closed = false;
            if request.capture_method == CaptureMethod::Automatic {
                snapshot.captured = request.amount;
                snapshot.status = ProviderPaymentStatus::Captured;
                closed = true;
            }
            state
                .payments
                .insert(reference.clone(), Payment { snapshot: snapshot.clone(), closed_for_capture: closed });
            Ok(snapshot)
        })
    }

    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "capture";
        check_amount(OP, request.amount, None)?;
        let caps = self.capabilities.clone();
        let capture_ref = self.new_reference("cap");
        self.idempotent(OP, &request.idempotency_key.clone(), &request, |state| {
            let payment = Self::payment(state, OP, &request.provider_reference)?;
            let snap = &mut payment.snapshot;
            check_amount(OP, request.amount, Some(snap.authorized))?;
            if snap.status == ProviderPaymentStatus::Voided {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    format!("payment `{}` was voided", snap.provider_reference),
                ));
            }
            if payment.closed_for_capture {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    format!("payment `{}` is already fully captured", snap.provider_reference),
                ));
            }
            if snap.captured.is_positive() && !caps.multiple_captures {
                return Err(PaymentError::unsupported_feature(OP, "multiple captures"));
            }
            let remaining = snap.authorized.checked_sub(snap.captured).map_err(money_err(OP))?;
            if request.amount.minor() > remaining.minor() {
                return Err(PaymentError::invalid(
                    OP,
                    format!("amount {} exceeds the capturable {remaining}", request.amount),
                ));
            }
            if request.amount != remaining && !caps.partial_capture {
                return Err(PaymentError::unsupported_feature(OP, "partial capture"));
            }
            snap.captured = snap.captured.checked_add(request.amount).map_err(money_err(OP))?;
            snap.status = ProviderPaymentStatus::Captured;
            payment.closed_for_capture = request.final_capture || snap.captured == snap.authorized;
            Ok(ModificationResult::new(capture_ref, ModificationStatus::Succeeded, request.amount))
        })
    }

    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "refund";
        check_amount(OP, request.amount, None)?;
        let caps = self.capabilities.clone();
        let refund_ref = self.new_reference("ref");
        self.idempotent(OP, &request.idempotency_key.clone(), &request, |state| {
            let payment = Self::payment(state, OP, &request.provider_reference)?;
            let snap = &mut payment.snapshot;
            check_amount(OP, request.amount, Some(snap.authorized))?;
            if !snap.captured.is_positive() {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    format!("payment `{}` has nothing captured; void it instead", snap.provider_reference),
                ));
            }
            if snap.refunded.is_positive() && !caps.multiple_refunds {
                return Err(PaymentError::unsupported_feature(OP, "multiple refunds"));
            }
            let refundable = snap.captured.checked_sub(snap.refunded).map_err(money_err(OP))?;
            if request.amount.minor() > refundable.minor() {
                return Err(PaymentError::invalid(
                    OP,
                    format!("amount {} exceeds the refundable {refundable}", request.amount),
                ));
            }
            if request.amount != refundable && !caps.partial_refund {
                return Err(PaymentError::unsupported_feature(OP, "partial refund"));
            }
            snap.refunded = snap.refunded.checked_add(request.amount).map_err(money_err(OP))?;
            Ok(ModificationResult::new(refund_ref, ModificationStatus::Succeeded, request.amount))
        })
    }

    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "void";
        if !self.capabilities.void {
            return Err(PaymentError::unsupported(OP));
        }
        // Fingerprinted on what a provider sees: `authorized` is the caller's own figure, never sent.
        self.idempotent(OP, &request.idempotency_key.clone(), &request.provider_reference, |state| {
            let payment = Self::payment(state, OP, &request.provider_reference)?;
            let snap = &mut payment.snapshot;
            if snap.captured.is_positive() {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    format!("payment `{}` is already captured; refund it instead", snap.provider_reference),
                ));
            }
            if snap.status == ProviderPaymentStatus::Voided {
                return Err(err(
                    ErrorKind::InvalidState,
                    OP,
                    format!("payment `{}` is already voided", snap.provider_reference),
                ));
            }
            snap.status = ProviderPaymentStatus::Voided;
            payment.closed_for_capture = true;
            Ok(ModificationResult::new(snap.provider_reference.clone(), ModificationStatus::Succeeded, snap.authorized))
        })
    }

    async fn increment_authorization(&self, request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError> {
        const OP: &str = "increment_authorization";
        if !self.capabilities.incremental_authorization {
            return Err(PaymentError::unsupported(OP));
        }
        check_amount(OP, request.new_total, None)?;
        self.idempotent(OP, &request.idempotency_key.clone(), &request, |state| {
            let payment = Self::payment(state, OP, &request.provider_reference)?;
            let snap = &mut payment.snapshot;
            check_amount(OP, request.new_total, Some(snap.authorized))?;
            if snap.status != ProviderPaymentStatus::Authorized {
                return Err(err(ErrorKind::InvalidState, OP, "only an uncaptured authorization can be incremented"));
            }
            if request.new_total.minor() <= snap.authorized.minor() {
                return Err(PaymentError::invalid(
                    OP,
                    format!("new total {} must exceed the authorized {}", request.new_total, snap.authorized),
                ));
            }
            snap.authorized = request.new_total;
            Ok(snap.clone())
        })
    }

    async fn retrieve(&self, provider_reference: &str) -> Result<PaymentSnapshot, PaymentError> {
        if !self.capabilities.retrieve {
            return Err(PaymentError::unsupported("retrieve"));
        }
        let mut state = self.lock();
        Self::payment(&mut state, "retrieve", provider_reference).map(|p| p.snapshot.clone())
    }

    async fn tokenize(&self, request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError> {
        const OP: &str = "tokenize";
        if !self.capabilities.tokenize {
            return Err(PaymentError::unsupported(OP));
        }
        match &request.data {
            PaymentMethodData::Card { number, exp_month, .. } => {
                let digits = number.expose();
                if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) || !luhn(digits) {
                    // Never echo the number.
                    return Err(PaymentError::invalid(OP, "card number is not a valid card number"));
                }
                if !(1..=12).contains(exp_month) {
                    return Err(PaymentError::invalid(OP, format!("exp_month {exp_month} is not a month")));
                }
            }
            _ => return Err(PaymentError::unsupported_feature(OP, "this payment method type")),
        }
        // `Secret` serializes redacted, so fingerprint the card explicitly, through a keyed hash: a different
        // card under the same key is a conflict, and no card number is kept.
        let fingerprint = match &request.data {
            PaymentMethodData::Card { number, exp_month, exp_year, cvc } => format!(
                "card:{:x}:{exp_month}:{exp_year}:{:x}",
                self.hasher.hash_one(number.expose()),
                self.hasher.hash_one(cvc.expose())
            ),
            _ => String::new(),
        };
        let token = self.new_reference("pm");
        self.idempotent_with(OP, &request.idempotency_key.clone(), fingerprint, |_| Ok(PaymentMethodRef(token)))
    }
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

#[cfg(test)]
mod tests {
    use super::*;
    use commerce_ports::{Currency, Secret};

    fn key(s: &str) -> IdempotencyKey {
        IdempotencyKey::new(s).expect("valid key")
    }

    #[tokio::test]
    async fn injected_timeout_processes_and_reports_unknown_then_replays() {
        let gw = MemoryGateway::new();
        gw.inject(GatewayFault::TimeoutAfterProcessing);
        let req = AuthorizeRequest::new(
            Money::from_minor(500, Currency::EUR),
            TenderKind::Card,
            "pm_card_visa",
            "o-1",
            key("k1"),
        );
        let first = gw.authorize(req.clone()).await;
        assert!(first.as_ref().is_err_and(PaymentError::is_outcome_unknown));
        let second = gw.authorize(req).await.expect("replayed");
        assert_eq!(second.status, ProviderPaymentStatus::Authorized);
        assert_eq!(gw.provider_calls(), 1);
    }

    #[tokio::test]
    async fn injected_unavailable_is_not_recorded() {
        let gw = MemoryGateway::new();
        gw.inject(GatewayFault::Unavailable);
        let req = AuthorizeRequest::new(
            Money::from_minor(500, Currency::EUR),
            TenderKind::Card,
            "pm_card_visa",
            "o-1",
            key("k1"),
        );
        assert_eq!(gw.authorize(req.clone()).await.map_err(|e| e.kind()).err(), Some(ErrorKind::Unavailable));
        assert!(gw.authorize(req).await.is_ok());
        assert_eq!(gw.provider_calls(), 2);
    }

    #[tokio::test]
    async fn tokenize_checks_luhn_without_echoing_the_number() {
        let gw = MemoryGateway::new();
        let bad = TokenizeRequest::new(
            PaymentMethodData::Card {
                number: Secret::new("4242424242424241"),
                exp_month: 12,
                exp_year: 2030,
                cvc: Secret::new("123"),
            },
            key("t1"),
        );
        let e = gw.tokenize(bad).await.expect_err("bad luhn");
        assert!(!e.to_string().contains("424242"));
        let good = TokenizeRequest::new(
            PaymentMethodData::Card {
                number: Secret::new("4242424242424242"),
                exp_month: 12,
                exp_year: 2030,
                cvc: Secret::new("123"),
            },
            key("t2"),
        );
        assert!(gw.tokenize(good).await.is_ok());
        let other_card = TokenizeRequest::new(
            PaymentMethodData::Card {
                number: Secret::new("5555555555554444"),
                exp_month: 12,
                exp_year: 2030,
                cvc: Secret::new("123"),
            },
            key("t2"),
        );
        let e = gw.tokenize(other_card).await.expect_err("another card under the same key");
        assert_eq!(e.kind(), ErrorKind::IdempotencyConflict);
    }

    #[test]
    fn references_are_unique_across_gateways() {
        let a = MemoryGateway::new();
        let b = MemoryGateway::new();
        assert_ne!(a.new_reference("pay"), b.new_reference("pay"));
    }
}
