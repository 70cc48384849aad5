//! A gift-card ledger as a payment gateway: what a downstream team writes to plug its own payment
//! provider into the commerce crates.
//!
//! The adapter implements [`PaymentGateway`] for the `gift-card` tender. It holds funds on authorization,
//! deducts them on capture and credits them back on refund or void. It declares what it supports (one
//! capture per payment, partial and multiple refunds, no tokenization, no incremental authorization) and
//! the conformance suite checks exactly that; see `tests/conformance.rs`.
//!
//! Payment methods are gift card numbers. For the demo, `gc_funded` holds 1,000,000.00 and `gc_empty`
//! holds nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use commerce_ports::factory::{
    Adapter, AdapterFactory, BuildError, ParamSpec, ParamType, ParamValue, Params, PortKind,
};
use commerce_ports::payment::{
    AuthorizeRequest, CaptureMethod, CaptureRequest, GatewayCapabilities, IncrementRequest, ModificationResult,
    ModificationStatus, PaymentGateway, PaymentMethodRef, PaymentSnapshot, ProviderPaymentStatus, RefundRequest,
    TenderKind, TokenizeRequest, VoidRequest,
};
use commerce_ports::{Currency, DeclineDetails, ErrorKind, Money, PaymentError};

#[derive(Debug, Clone)]
struct Hold {
    card: String,
    snapshot: PaymentSnapshot,
}

/// A failure as stored under its key, with everything a replay must give back.
#[derive(Debug, Clone)]
struct StoredFailure {
    kind: ErrorKind,
    message: String,
    decline: Option<DeclineDetails>,
}

/// What an idempotency key was first used for, and its stored outcome (JSON, or the failure).
#[derive(Debug)]
struct KeyRecord {
    operation: String,
    request: String,
    outcome: Result<String, StoredFailure>,
}

#[derive(Debug, Default)]
struct Ledger {
    balances: HashMap<String, Money>,
    holds: HashMap<String, Hold>,
    keys: HashMap<String, KeyRecord>,
    next: u64,
}

/// A gift-card ledger gateway.
#[derive(Debug)]
pub struct GiftCardGateway {
    currency: Currency,
    ledger: Mutex<Ledger>,
}

fn err(kind: ErrorKind, operation: &'static str, message: impl Into<String>) -> PaymentError {
    PaymentError::new(kind, operation, message)
}

impl GiftCardGateway {
    /// A ledger in `currency` with the two demo cards.
    pub fn new(currency: Currency) -> GiftCardGateway {
        let mut ledger = Ledger::default();
        ledger.balances.insert("gc_funded".to_owned(), Money::from_minor(100_000_000, currency));
        ledger.balances.insert("gc_empty".to_owned(), Money::zero(currency));
        GiftCardGateway { currency, ledger: Mutex::new(ledger) }
    }

    /// The balance of a card.
    pub fn balance(&self, card: &str) -> Option<Money> {
        self.lock().balances.get(card).copied()
    }

    fn lock(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `op` once per idempotency key; a replay returns the stored outcome, a mismatch conflicts.
    fn once<T>(
        &self,
        operation: &'static str,
        key: &str,
        request: String,
        op: impl FnOnce(&mut Ledger) -> Result<T, PaymentError>,
    ) -> Result<T, PaymentError>
    where
        T: serde::Serialize + serde::de::DeserializeOwned,
    {
        let mut ledger = self.lock();
        if let Some(KeyRecord { operation: op_name, request: stored_request, outcome }) = ledger.keys.get(key) {
            if op_name != operation || stored_request != &request {
                return Err(err(
                    ErrorKind::IdempotencyConflict,
                    operation,
                    format!("key `{key}` was used for another request"),
                ));
            }
            return match outcome {
                Ok(json) => {
                    serde_json::from_str(json).map_err(|e| err(ErrorKind::Unexpected, operation, e.to_string()))
                }
                Err(failure) => {
                    let e = err(failure.kind, operation, failure.message.clone());
                    Err(match &failure.decline {
                        Some(d) => e.with_decline(d.clone()),
                        None => e,
                    })
                }
            };
        }
        let result = op(&mut ledger);
        let stored = match &result {
            Ok(v) => Ok(serde_json::to_string(v).map_err(|e| err(ErrorKind::Unexpected, operation, e.to_string()))?),
            Err(e) => {
                Err(StoredFailure { kind: e.kind(), message: e.message().to_owned(), decline: e.decline().cloned() })
            }
        };
        ledger.keys.insert(key.to_owned(), KeyRecord { operation: operation.to_owned(), request, outcome: stored });
        result
    }

    fn check(&self, operation: &'static str, amount: Money) -> Result<(), PaymentError> {
        if amount.currency() != self.currency {
            return Err(PaymentError::invalid(
                operation,
                format!("this ledger keeps {}, not {}", self.currency, amount.currency()),
            ));
        }
        if !amount.is_positive() {
            return Err(PaymentError::invalid(operation, format!("amount must be positive, got {amount}")));
        }
        Ok(())
    }
}

fn fingerprint<T: serde::Serialize>(operation: &'static str, request: &T) -> Result<String, PaymentError> {
    serde_json::to_string(request).map_err(|e| err(ErrorKind::Unexpected, operation, e.to_string()))
}

#[async_trait]
impl PaymentGateway for GiftCardGateway {
    fn capabilities(&self) -> GatewayCapabilities {
        let mut caps = GatewayCapabilities::none();
        caps.manual_capture = true;
        caps.partial_capture = true;
        caps.partial_refund = true;
        caps.multiple_refunds = true;
        caps.void = true;
        caps.retrieve = true;
        caps.max_idempotency_key_len = 255;
        caps.tenders = vec![TenderKind::GiftCard];
        caps
    }

    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError> {
        const OP: &str = "authorize";
        self.check(OP, request.amount)?;
        let fp = fingerprint(OP, &request)?;
        self.once(OP, request.idempotency_key.as_str(), fp, |ledger| {
            let card = request.payment_method.0.clone();
            let balance = *ledger
                .balances
                .get(&card)
                .ok_or_else(|| PaymentError::invalid(OP, format!("unknown gift card `{card}`")))?;
            if balance.minor() < request.amount.minor() {
                return Err(err(
                    ErrorKind::Declined,
                    OP,
                    format!("gift card balance {balance} is below {}", request.amount),
                )
                .with_decline(DeclineDetails::with_code("insufficient_funds")));
            }
            let remaining =
                balance.checked_sub(request.amount).map_err(|e| PaymentError::invalid(OP, e.to_string()))?;
            ledger.balances.insert(card.clone(), remaining);
            ledger.next += 1;
            let reference = format!("gc_hold_{}", ledger.next);
            let mut snapshot =
                PaymentSnapshot::authorized(&reference, ProviderPaymentStatus::Authorized, request.amount);
            if request.capture_method == CaptureMethod::Automatic {
                snapshot.captured = request.amount;
                snapshot.status = ProviderPaymentStatus::Captured;
            }
            ledger.holds.insert(reference, Hold { card, snapshot: snapshot.clone() });
            Ok(snapshot)
        })
    }

    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "capture";
        self.check(OP, request.amount)?;
        let fp = fingerprint(OP, &request)?;
        self.once(OP, request.idempotency_key.as_str(), fp, |ledger| {
            let hold = ledger
                .holds
                .get_mut(&request.provider_reference)
                .ok_or_else(|| err(ErrorKind::NotFound, OP, format!("no hold `{}`", request.provider_reference)))?;
            let snap = &mut hold.snapshot;
            match snap.status {
                ProviderPaymentStatus::Voided => return Err(err(ErrorKind::InvalidState, OP, "the hold was voided")),
                // One capture per hold: a second one is a feature this ledger lacks (see capabilities).
                ProviderPaymentStatus::Captured => {
                    return Err(PaymentError::unsupported_feature(OP, "multiple captures"));
                }
                _ => {}
            }
            if request.amount.minor() > snap.authorized.minor() {
                return Err(PaymentError::invalid(
                    OP,
                    format!("{} exceeds the hold of {}", request.amount, snap.authorized),
                ));
            }
            // One capture per hold: release what is not captured back to the card.
            let released =
                snap.authorized.checked_sub(request.amount).map_err(|e| PaymentError::invalid(OP, e.to_string()))?;
            snap.captured = request.amount;
            snap.status = ProviderPaymentStatus::Captured;
            let card = hold.card.clone();
            if let Some(balance) = ledger.balances.get_mut(&card) {
                *balance = balance.checked_add(released).map_err(|e| PaymentError::invalid(OP, e.to_string()))?;
            }
            Ok(ModificationResult::new(
                request.provider_reference.clone(),
                ModificationStatus::Succeeded,
                request.amount,
            ))
        })
    }

    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "refund";
        self.check(OP, request.amount)?;
        let fp = fingerprint(OP, &request)?;
        self.once(OP, request.idempotency_key.as_str(), fp, |ledger| {
            let hold = ledger
                .holds
                .get_mut(&request.provider_reference)
                .ok_or_else(|| err(ErrorKind::NotFound, OP, format!("no hold `{}`", request.provider_reference)))?;
            let snap = &mut hold.snapshot;
            if !snap.captured.is_positive() {
                return Err(err(ErrorKind::InvalidState, OP, "nothing was captured; void the hold instead"));
            }
            let refundable =
                snap.captured.checked_sub(snap.refunded).map_err(|e| PaymentError::invalid(OP, e.to_string()))?;
            if request.amount.minor() > refundable.minor() {
                return Err(PaymentError::invalid(
                    OP,
                    format!("{} exceeds the refundable {refundable}", request.amount),
                ));
            }
            snap.refunded =
                snap.refunded.checked_add(request.amount).map_err(|e| PaymentError::invalid(OP, e.to_string()))?;
            let card = hold.card.clone();
            if let Some(balance) = ledger.balances.get_mut(&card) {
                *balance = balance.checked_add(request.amount).map_err(|e| PaymentError::invalid(OP, e.to_string()))?;
            }
            ledger.next += 1;
            Ok(ModificationResult::new(
                format!("gc_refund_{}", ledger.next),
                ModificationStatus::Succeeded,
                request.amount,
            ))
        })
    }

    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError> {
        const OP: &str = "void";
        let fp = fingerprint(OP, &request)?;
        self.once(OP, request.idempotency_key.as_str(), fp, |ledger| {
            let hold = ledger
                .holds
                .get_mut(&request.provider_reference)
                .ok_or_else(|| err(ErrorKind::NotFound, OP, format!("no hold `{}`", request.provider_reference)))?;
            if hold.snapshot.captured.is_positive() {
                return Err(err(ErrorKind::InvalidState, OP, "the hold was captured; refund it instead"));
            }
            if hold.snapshot.status == ProviderPaymentStatus::Voided {
                return Err(err(ErrorKind::InvalidState, OP, "the hold is already voided"));
            }
            hold.snapshot.status = ProviderPaymentStatus::Voided;
            let (card, amount) = (hold.card.clone(), hold.snapshot.authorized);
            if let Some(balance) = ledger.balances.get_mut(&card) {
                *balance = balance.checked_add(amount).map_err(|e| PaymentError::invalid(OP, e.to_string()))?;
            }
            Ok(ModificationResult::new(request.provider_reference.clone(), ModificationStatus::Succeeded, amount))
        })
    }

    async fn increment_authorization(&self, _request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError> {
        Err(PaymentError::unsupported("increment_authorization"))
    }

    async fn retrieve(&self, provider_reference: &str) -> Result<PaymentSnapshot, PaymentError> {
        self.lock()
            .holds
            .get(provider_reference)
            .map(|h| h.snapshot.clone())
            .ok_or_else(|| err(ErrorKind::NotFound, "retrieve", format!("no hold `{provider_reference}`")))
    }

    async fn tokenize(&self, _request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError> {
        Err(PaymentError::unsupported("tokenize"))
    }
}

/// The factory that lets a configuration file bind this adapter: `adapter = "gift-card-ledger"`.
#[derive(Debug, Default)]
pub struct GiftCardFactory;

#[async_trait]
impl AdapterFactory for GiftCardFactory {
    fn name(&self) -> &'static str {
        "gift-card-ledger"
    }
    fn port(&self) -> PortKind {
        PortKind::PaymentGateway
    }
    fn description(&self) -> &'static str {
        "the merchant's own gift-card ledger"
    }
    fn params(&self) -> Vec<ParamSpec> {
        vec![ParamSpec::with_default(
            "currency",
            ParamType::String,
            ParamValue::Text("EUR".to_owned()),
            "currency of the ledger",
        )]
    }
    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let code = params.text("currency")?.unwrap_or("EUR");
        let currency = Currency::from_code(code).map_err(|e| BuildError::param("currency", e.to_string()))?;
        Ok(Adapter::PaymentGateway(Arc::new(GiftCardGateway::new(currency))))
    }
}
