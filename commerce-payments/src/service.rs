//! [`Payments`]: the payment intent service. It runs every mutating operation under an idempotency key,
//! calls the gateway it is given, and records the answer through the [state machine](crate::state).

use std::fmt;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use commerce_ports::payment::{
    Attempt, AuthorizeRequest, CaptureMethod, CaptureRequest, GatewayCapabilities, IncrementRequest,
    ModificationResult, PaymentGateway, PaymentMethodRef, PaymentSnapshot, RefundRequest, TenderKind, VoidRequest,
};
use commerce_ports::stores::{
    IdempotencyBegin, IdempotencyClaim, IdempotencyStore, IntentEvent, IntentSnapshot, IntentStatus, IntentUpdate,
    KeyResolution, PaymentIntent, PaymentIntentStore, PaymentLedger, SplitLedger, StoreSet, read_snapshot,
};
use commerce_ports::{
    ChannelId, Clock, ErrorKind, IdempotencyKey, IntentId, Money, PaymentError, RetryClass, TenantId,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{PaymentsError, StoredError};
use crate::in_flight::{InFlight, LINGER};
use crate::state::{self, Admission, AuthorizeParams, Command, Modification, Operation, ProviderCall, Transition};

/// The shortest provider idempotency key this crate derives; a gateway accepting fewer characters is
/// misconfigured.
pub const MIN_DERIVED_KEY_LEN: usize = 16;

/// A payment to authorize.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewPayment {
    /// The tenant.
    pub tenant: TenantId,
    /// The sales channel.
    pub channel: ChannelId,
    /// The tender kind.
    pub tender: TenderKind,
    /// The amount; positive.
    pub amount: Money,
    /// The payment method (a token, a saved method, a test name such as `pm_card_visa`).
    pub payment_method: PaymentMethodRef,
    /// The merchant's reference (order number).
    pub reference: String,
    /// Manual (the default: capture later) or automatic capture.
    pub capture_method: CaptureMethod,
}

impl NewPayment {
    /// A manual-capture payment.
    pub fn new(
        tenant: TenantId,
        channel: ChannelId,
        tender: TenderKind,
        amount: Money,
        payment_method: impl Into<String>,
        reference: impl Into<String>,
    ) -> NewPayment {
        NewPayment {
            tenant,
            channel,
            tender,
            amount,
            payment_method: PaymentMethodRef(payment_method.into()),
            reference: reference.into(),
            capture_method: CaptureMethod::Manual,
        }
    }

    /// Sets the capture method.
    pub fn with_capture_method(mut self, capture_method: CaptureMethod) -> NewPayment {
        self.capture_method = capture_method;
        self
    }
}

/// The payment intent service. Cheap to clone (one `Arc` inside); clones share the stores.
///
/// Every mutating operation takes the gateway explicitly (`&dyn PaymentGateway`), so one service serves every
/// binding of every tenant and channel, and an [`IdempotencyKey`] chosen by the caller, one per operation.
///
/// # Idempotency
/// The key is claimed in the [`IdempotencyStore`] with a fingerprint of the operation and its parameters
/// (SHA-256 of canonical JSON). A completed key returns its stored outcome, success or failure (validation
/// failures included), without calling the provider; a running one gives `InProgress`; the same key with
/// another operation or other parameters gives `IdempotencyConflict` naming the first operation. Outcomes are
/// stored as `{"ok": <intent>}` or `{"err": {"kind": ..., "message": ..., ...}}`.
///
/// The provider receives the caller's key when it fits the gateway's `max_idempotency_key_len`, otherwise a
/// stable key derived from tenant and key ([`provider_key`]); every retry sends the same one.
///
/// # Unknown outcomes
/// When the gateway answers `OutcomeUnknown`, the intent is stored as `OutcomeUnknown` with its amounts
/// unchanged and the pending call recorded in its event; the key is *released* (not completed), and the caller
/// gets an error of kind `OutcomeUnknown` (retry class `SameKeyOnly`). A retry with the same key sends the same
/// request with the same provider key; the provider replays its first answer, which is then applied, once.
/// [`reconcile`](Payments::reconcile) settles the intent from the provider's view instead; a later retry
/// of the settled call is recognised from the history and returns the intent without a provider call.
/// While an outcome is unknown, other operations on the intent are refused (`InvalidState`, retryable).
///
/// Answers that say nothing happened (`Unavailable`, `Timeout`, `RateLimited`, `InProgress`, `Conflict`)
/// release the key and return the error with its retry class. Certain answers (declined, invalid request,
/// invalid state, ...) are stored as the key's outcome; a refused authorization fails the intent, a refused
/// capture, refund or void leaves it unchanged, and a refused increment is recorded in the history and leaves
/// the authorization as it was.
#[derive(Clone)]
pub struct Payments {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    intents: Arc<dyn PaymentIntentStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    ledger: Arc<dyn PaymentLedger>,
    clock: Arc<dyn Clock>,
    lease: Duration,
    /// How often a key is renewed while its operation runs (zero: never).
    renew_every: Duration,
    /// The authorizations under way (or recently ended) in this service and its clones, for the webhook
    /// ingestor.
    in_flight: Arc<InFlight>,
}

impl fmt::Debug for Payments {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Payments")
            .field("intents", &self.inner.intents)
            .field("idempotency", &self.inner.idempotency)
            .field("ledger", &self.inner.ledger)
            .field("clock", &self.inner.clock)
            .field("lease", &self.inner.lease)
            .field("renew_every", &self.inner.renew_every)
            .finish()
    }
}

/// What claiming the idempotency key gave.
enum Claim {
    /// The caller holds the key; the intent, if it is stored; `recovered` when an earlier holder's lease
    /// expired without an outcome (its call may have reached the provider).
    Proceed {
        snapshot: Option<IntentSnapshot>,
        recovered: bool,
        /// The lease the key was claimed with.
        lease: Lease,
        /// When the key was first claimed, for a key taken over (`recovered`), when the store says: the
        /// earliest time the earlier holder's call may have reached the provider.
        first_claimed: Option<OffsetDateTime>,
    },
    Replay(Result<PaymentIntent, PaymentsError>),
}

/// How an operation ends for its idempotency key.
enum Outcome {
    /// Certain: store it as the key's outcome.
    Done(Result<PaymentIntent, PaymentsError>),
    /// Nothing certain happened, or the answer is unknown (and recorded): give the key back so a retry runs
    /// again ([`Payments::give_back`]: released, or handed over when it was taken over).
    Release(PaymentsError),
    /// The key was resolved (completed or released) together with the intent's update.
    Resolved(Result<PaymentIntent, PaymentsError>),
    /// The provider may have acted and its answer was not recorded: keep the key's record and end its lease
    /// now, so the next caller takes it over as a resend ([`Attempt::Resend`]) dated from the key's first claim
    /// for the provider's replay window; a released key would make it a first attempt.
    Hold(PaymentsError),
}

/// The lease a caller holds on its key.
#[derive(Clone, Copy)]
struct Lease {
    /// Its end, as claimed or last renewed (what a renewal or a hand-over must find).
    until: OffsetDateTime,
    /// The end a renewal still under way when the operation ended asked for (it may have been stored).
    renewing_to: Option<OffsetDateTime>,
    /// Taken over from a holder whose call may have reached the provider: the record is never deleted (that
    /// would lose its first claim, and make the next caller's request a first attempt); where the key would
    /// be given back, it is handed over instead.
    recovered: bool,
}

/// What a caller holding a key knows of earlier attempts under it.
#[derive(Clone, Copy)]
struct Earlier {
    /// An earlier attempt may have reached the provider (a stored intent, or a key taken over).
    maybe_sent: bool,
    /// When the key was first claimed, for a key taken over ([`Claim::Proceed`]).
    first_claimed: Option<OffsetDateTime>,
}

/// How [`Payments::persist`] resolves the idempotency key together with the intent's update.
#[derive(Clone, Copy)]
enum Resolve<'a> {
    /// Complete the key with the updated intent.
    Ok,
    /// Complete the key with this error.
    Err(&'a PaymentsError),
    /// Release the key.
    Release,
}

/// The key an operation holds, and how to resolve it.
#[derive(Clone, Copy)]
struct HeldKey<'a> {
    tenant: &'a TenantId,
    key: &'a IdempotencyKey,
    resolve: Resolve<'a>,
    /// The intent's first event while the intent is not stored yet: the commit that resolves the key creates it
    /// ([`IntentUpdate::creating`]; an authorization, decision 012).
    created: Option<&'a IntentEvent>,
}

impl Outcome {
    /// Admission errors that can change by themselves (another call pending) or that concern another use of
    /// the key are not stored: storing them would poison the key for its rightful retry.
    fn rejected(error: PaymentsError) -> Outcome {
        if error.kind() == ErrorKind::IdempotencyConflict
            || matches!(error.retry(), RetryClass::Retryable | RetryClass::SameKeyOnly)
        {
            Outcome::Release(error)
        } else {
            Outcome::Done(Err(error))
        }
    }
}

/// What became of a provider's answer.
enum Settlement {
    /// Recorded (the intent may still be `OutcomeUnknown` when the provider reports it pending).
    Applied(PaymentIntent),
    /// A certain refusal, recorded.
    Refused { intent: PaymentIntent, error: PaymentsError },
    /// Unknown (recorded as such) or nothing happened: a retry with the same key must run again.
    Unsettled(PaymentsError),
    /// The provider may have acted and its answer is not recorded: the key is kept ([`Outcome::Hold`]), so the
    /// next caller's request is a resend, dated from the key's first claim.
    Unrecorded(PaymentsError),
}

impl Settlement {
    /// The outcome for the key; `resolved` when the key was resolved with the intent's update.
    fn into_outcome(self, resolved: bool) -> Outcome {
        match (self, resolved) {
            (Settlement::Applied(intent), true) => Outcome::Resolved(Ok(intent)),
            (Settlement::Refused { error, .. } | Settlement::Unsettled(error), true) => Outcome::Resolved(Err(error)),
            (Settlement::Applied(intent), false) => Outcome::Done(Ok(intent)),
            (Settlement::Refused { error, .. }, false) => Outcome::Done(Err(error)),
            (Settlement::Unsettled(error), false) => Outcome::Release(error),
            (Settlement::Unrecorded(error), _) => Outcome::Hold(error),
        }
    }
}

/// A key's stored outcome, as read back.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredOutcome {
    Ok(PaymentIntent),
    Err(StoredError),
}

/// [`StoredOutcome`] as written, borrowing the intent (the same JSON).
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum StoredOutcomeRef<'a> {
    Ok(&'a PaymentIntent),
    Err(StoredError),
}

/// The bytes stored as a key's outcome.
fn encode_outcome(result: Result<&PaymentIntent, &PaymentsError>) -> serde_json::Result<Vec<u8>> {
    serde_json::to_vec(&match result {
        Ok(intent) => StoredOutcomeRef::Ok(intent),
        Err(error) => StoredOutcomeRef::Err(error.to_stored()),
    })
}

#[derive(Serialize)]
struct Fingerprinted<'a, T: Serialize> {
    operation: Operation,
    params: &'a T,
}

#[derive(Serialize)]
struct AuthorizeParamsFingerprint<'a> {
    provider: &'a str,
    channel: &'a ChannelId,
    tender: &'a TenderKind,
    amount: Money,
    payment_method: &'a PaymentMethodRef,
    reference: &'a str,
    capture_method: CaptureMethod,
}

#[derive(Serialize)]
struct ModificationParamsFingerprint<'a> {
    intent: &'a IntentId,
    command: Command,
}

/// A provider's answer to a modification: captures, refunds and voids answer a [`ModificationResult`], an
/// increment the payment's snapshot after it.
enum Answer {
    Modified(ModificationResult),
    Incremented(PaymentSnapshot),
}

/// How certain a gateway error is.
enum Certainty {
    Unknown,
    NothingHappened,
    Certain,
}

fn certainty(kind: ErrorKind) -> Certainty {
    match kind {
        ErrorKind::OutcomeUnknown => Certainty::Unknown,
        ErrorKind::RateLimited
        | ErrorKind::Unavailable
        | ErrorKind::Timeout
        | ErrorKind::InProgress
        | ErrorKind::Conflict => Certainty::NothingHappened,
        _ => Certainty::Certain,
    }
}

/// Whether a provider's refusal of a call that may have reached it before (a resend: the key was taken over,
/// or the intent records the call as unknown) settles that call. Only the provider's verdict on the payment
/// does: a decline, and a "never saw it" from a gateway that looks payments up instead of replaying keys (a
/// terminal). Anything else describes the request as sent now, not the earlier attempt: credentials,
/// configuration, an unsupported or invalid request (a provider keeps no answer for a request that failed its
/// validation, and a gateway bound since may refuse what the first one took), a state the payment reached
/// meanwhile, a resource another account does not know.
fn settles_resend(kind: ErrorKind, caps: &GatewayCapabilities) -> bool {
    kind == ErrorKind::Declined || (kind == ErrorKind::NotFound && caps.resend_unsafe)
}

/// A gateway error for a call: on a resend, a certain refusal that does not settle it ([`settles_resend`])
/// becomes `OutcomeUnknown` (the earlier attempt may have acted), so the intent records or keeps the call as
/// unknown instead of a refusal.
fn resend_error(error: PaymentsError, resend: bool, caps: &GatewayCapabilities) -> PaymentsError {
    if !resend || !matches!(certainty(error.kind()), Certainty::Certain) || settles_resend(error.kind(), caps) {
        return error;
    }
    let mut unknown = PaymentsError::new(
        ErrorKind::OutcomeUnknown,
        error.operation(),
        format!(
            "the provider refused this resend ({}: {}), which says nothing about the earlier attempt: its outcome \
             stays unknown; fix the cause and retry with the same key, or settle it (`reconcile_from`)",
            error.kind().as_str(),
            error.message()
        ),
    );
    if let Some(intent) = error.intent() {
        unknown = unknown.with_intent(intent.clone());
    }
    unknown.with_source(error)
}

/// The error for a call that may have reached the provider longer ago than the provider replays answers by
/// key ([`GatewayCapabilities::replay_window`]): sending it again could be processed as a new request and act
/// twice, so it is not sent. The call is the intent's unknown one ([`state::unknown_since`]), or one under a
/// key taken over from a holder whose call left no record (`first_claimed`, the key's first claim). `None`
/// when neither is that old.
fn beyond_replay(
    caps: &GatewayCapabilities,
    intent: &PaymentIntent,
    history: &[IntentEvent],
    first_claimed: Option<OffsetDateTime>,
    now: OffsetDateTime,
    kind: ErrorKind,
    op: Operation,
) -> Option<PaymentsError> {
    let window = caps.replay_window?;
    let since = match (state::unknown_since(intent, history), first_claimed) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    let end = time::Duration::try_from(window).ok().and_then(|w| since.checked_add(w))?;
    (end <= now).then(|| {
        PaymentsError::new(
            kind,
            op,
            format!(
                "the {} of intent `{}` may have reached the provider at {since} and its outcome is unknown, longer \
                 ago than the provider replays answers by key ({} s): sent again it could be processed as new and \
                 act twice, so it is not sent; settle it from the provider's records (`reconcile` where the \
                 provider can be asked by reference, or `reconcile_from`)",
                state::pending_operation(intent, history).map_or(op, |p| p.call.operation),
                intent.id,
                window.as_secs()
            ),
        )
        .with_intent(intent.id.clone())
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut text = String::with_capacity(2 * digest.len());
    for byte in digest {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    text
}

fn fingerprint<T: Serialize>(operation: Operation, params: &T) -> Result<String, PaymentsError> {
    let json = serde_json::to_vec(&Fingerprinted { operation, params }).map_err(|e| {
        PaymentsError::new(ErrorKind::Unexpected, operation, format!("cannot fingerprint the request: {e}"))
    })?;
    Ok(sha256_hex(&json))
}

/// The intent id of the authorization made with `key` for `tenant`: `pi_` and the first 24 hex digits of a
/// SHA-256 over both, so a retry with the same key lands on the same intent.
///
/// # Errors
/// None in practice (the id is always valid); `Unexpected` otherwise.
pub fn intent_id_for(tenant: &TenantId, key: &IdempotencyKey) -> Result<IntentId, PaymentsError> {
    let digest = sha256_hex(format!("commerce-payments/intent\n{tenant}\n{key}").as_bytes());
    let short = digest.get(..24).unwrap_or(&digest);
    IntentId::new(format!("pi_{short}"))
        .map_err(|e| PaymentsError::new(ErrorKind::Unexpected, Operation::Authorize, format!("derived intent id: {e}")))
}

/// The idempotency key sent to the provider for the caller's `key`: the key itself when it has at most
/// `max_len` characters, otherwise the hex SHA-256 of tenant and key, truncated to `max_len` (stable, so every
/// retry sends the same one). Keys are per operation already, so so is the derived key.
///
/// # Errors
/// `Configuration` when `max_len` is below [`MIN_DERIVED_KEY_LEN`] and the key does not fit.
pub fn provider_key(tenant: &TenantId, key: &IdempotencyKey, max_len: usize) -> Result<IdempotencyKey, PaymentsError> {
    if key.as_str().len() <= max_len {
        return Ok(key.clone());
    }
    if max_len < MIN_DERIVED_KEY_LEN {
        return Err(PaymentsError::new(
            ErrorKind::Configuration,
            Operation::Authorize,
            format!(
                "the gateway accepts idempotency keys of at most {max_len} characters; key `{key}` does not fit and a \
                 derived key needs at least {MIN_DERIVED_KEY_LEN}"
            ),
        ));
    }
    let digest = sha256_hex(format!("commerce-payments/provider-key\n{tenant}\n{key}").as_bytes());
    let short = digest.get(..max_len).unwrap_or(&digest);
    IdempotencyKey::new(short).map_err(|e| {
        PaymentsError::new(ErrorKind::Unexpected, Operation::Authorize, format!("derived provider key: {e}"))
    })
}

/// When a lease of `lease` taken at `now` ends (the end of time when that cannot be represented).
fn lease_end(now: OffsetDateTime, lease: Duration) -> OffsetDateTime {
    time::Duration::try_from(lease)
        .ok()
        .and_then(|lease| now.checked_add(lease))
        .unwrap_or(OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT))
}

fn key_of(call: &ProviderCall, intent: &IntentId) -> Result<IdempotencyKey, PaymentsError> {
    IdempotencyKey::new(call.provider_key.clone()).map_err(|e| {
        PaymentsError::new(ErrorKind::Unexpected, call.operation, format!("recorded provider key: {e}"))
            .with_intent(intent.clone())
    })
}

/// The outcome of a modification the provider refused whose refusal was not recorded: the key is given back
/// for a retry, unless sending again may act twice ([`Outcome::Hold`]; a terminal may not have refused the
/// call it is asked about).
fn unrecorded_refusal(caps: &GatewayCapabilities, error: PaymentsError) -> Outcome {
    if caps.resend_unsafe { Outcome::Hold(error) } else { Outcome::Release(error) }
}

fn recording_failed(operation: Operation, intent: &IntentId, error: PaymentsError) -> PaymentsError {
    PaymentsError::new(
        error.kind(),
        operation,
        format!(
            "the provider answered but recording its answer failed: {}; retry with the same idempotency key",
            error.message()
        ),
    )
    .with_intent(intent.clone())
    .with_retry(RetryClass::SameKeyOnly)
    .with_source(error)
}

fn validate_new_payment(provider: &str, payment: &NewPayment, caps: &GatewayCapabilities) -> Result<(), PaymentsError> {
    const OP: Operation = Operation::Authorize;
    let invalid = |message: String| Err(PaymentsError::new(ErrorKind::InvalidRequest, OP, message));
    if !payment.amount.is_positive() {
        return invalid(format!("authorize amount must be positive, got {}", payment.amount));
    }
    if provider.is_empty() {
        return invalid("the provider name must not be empty".to_owned());
    }
    if payment.payment_method.0.is_empty() {
        return invalid("payment_method must not be empty".to_owned());
    }
    if !caps.tenders.contains(&payment.tender) {
        return Err(PaymentsError::new(
            ErrorKind::Unsupported,
            OP,
            format!("the gateway `{provider}` does not accept tender `{}`", payment.tender),
        ));
    }
    if payment.capture_method == CaptureMethod::Manual && !caps.manual_capture {
        return Err(PaymentsError::new(
            ErrorKind::Unsupported,
            OP,
            format!("the gateway `{provider}` does not support manual capture"),
        ));
    }
    Ok(())
}

impl Payments {
    /// The intent store (for the reconciler's listing).
    pub(crate) fn intent_store(&self) -> &dyn PaymentIntentStore {
        self.inner.intents.as_ref()
    }

    /// How long a caller owns an idempotency key before another may take it over: 30 s.
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

    /// A service over these stores and clock, with the default lease.
    pub fn new(
        intents: Arc<dyn PaymentIntentStore>,
        idempotency: Arc<dyn IdempotencyStore>,
        clock: Arc<dyn Clock>,
    ) -> Payments {
        let ledger: Arc<dyn PaymentLedger> = Arc::new(SplitLedger::new(intents.clone(), idempotency.clone()));
        let in_flight = Arc::default();
        Payments {
            inner: Arc::new(Inner {
                intents,
                idempotency,
                ledger,
                clock,
                lease: Payments::DEFAULT_LEASE,
                renew_every: Duration::ZERO,
                in_flight,
            }),
        }
    }

    /// A service over the intent and idempotency stores of a [`StoreSet`].
    pub fn from_stores(stores: &StoreSet, clock: Arc<dyn Clock>) -> Payments {
        Payments::new(stores.intents.clone(), stores.idempotency.clone(), clock).with_ledger(stores.ledger.clone())
    }

    /// Sets the idempotency lease: how long a caller owns a key; after it, a caller with the same key takes
    /// over (and sends the same provider key). Make it longer than the slowest provider call.
    pub fn with_lease(self, lease: Duration) -> Payments {
        Payments { inner: Arc::new(Inner { lease, ..(*self.inner).clone() }) }
    }

    /// Renews the key's lease every `every` while an operation holds it (its provider call and the recording
    /// of the answer), so the lease can be short and a call may last longer than it: a customer at a card
    /// terminal, a slow provider. Each renewal sets the lease to end one lease from now, and only if the key is
    /// still this caller's ([`IdempotencyStore::renew`]); once the key was taken over or resolved, or the store
    /// cannot renew (`Unsupported`), renewals stop and the lease runs its course. A failed renewal is tried
    /// again at the next tick. Pick `every` well below the lease (a third of it); zero (the default) never
    /// renews.
    ///
    /// Renewals wait on tokio's timer: turn this on only inside a tokio runtime with time enabled
    /// (`#[tokio::main]`, `Runtime::new()`, or a builder with `enable_time`/`enable_all`, as the HTTP adapters'
    /// timeouts need anyway); tokio panics on a timer in a runtime built without time. Outside any tokio
    /// runtime, operations run without renewing. The interval is real time, while lease ends come from the
    /// service's clock; `every` at or above the lease renews only after the lease has ended (and only if nobody
    /// took the key over meanwhile). A store that does not renew (the port's default, e.g. a wrapper that
    /// forwards only the older methods) makes renewals stop silently: check that yours implements
    /// [`IdempotencyStore::renew`] (its conformance behaviour is skipped when it does not).
    pub fn with_lease_renewal(self, every: Duration) -> Payments {
        Payments { inner: Arc::new(Inner { renew_every: every, ..(*self.inner).clone() }) }
    }

    /// How often a held key's lease is renewed (zero: never).
    pub fn lease_renewal(&self) -> Duration {
        self.inner.renew_every
    }

    /// Uses `ledger` for the two store calls of every operation (claim, then commit). It must work on the
    /// same intents and idempotency records as the service's stores: pass the ledger of the same database
    /// (`SqliteStores::ledger`, `PostgresStores::ledger`), which makes each call one transaction. Without
    /// it the service composes its two stores ([`SplitLedger`]).
    pub fn with_ledger(self, ledger: Arc<dyn PaymentLedger>) -> Payments {
        Payments { inner: Arc::new(Inner { ledger, ..(*self.inner).clone() }) }
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.inner.lease
    }

    /// The authorizations under way in this service and its clones.
    pub(crate) fn in_flight(&self) -> &Arc<InFlight> {
        &self.inner.in_flight
    }

    /// The intent store.
    pub(crate) fn intents(&self) -> &Arc<dyn PaymentIntentStore> {
        &self.inner.intents
    }

    /// The clock.
    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Authorizes a payment (capturing it too with [`CaptureMethod::Automatic`]) and returns the intent.
    ///
    /// The intent's id is [`intent_id_for`]`(tenant, key)`; `provider` (the binding's adapter name) is stored
    /// on it. The intent is stored once, with the provider's answer, in the same store call that resolves the
    /// key: it is not readable while the provider call runs (decision 012).
    ///
    /// # Errors
    /// `InvalidRequest` (non-positive amount, empty payment method), `Unsupported` (tender or manual capture
    /// not supported by the gateway), `Declined` (the intent is `Failed`), `OutcomeUnknown` (the intent is
    /// `OutcomeUnknown`; retry with the same key or reconcile), `InProgress`, `IdempotencyConflict`, and the
    /// gateway's transient kinds (`Unavailable`, `Timeout`, `RateLimited`) after which a retry runs again.
    pub async fn authorize(
        &self,
        gateway: &dyn PaymentGateway,
        provider: &str,
        payment: NewPayment,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, PaymentsError> {
        const OP: Operation = Operation::Authorize;
        let params = AuthorizeParamsFingerprint {
            provider,
            channel: &payment.channel,
            tender: &payment.tender,
            amount: payment.amount,
            payment_method: &payment.payment_method,
            reference: &payment.reference,
            capture_method: payment.capture_method,
        };
        let fingerprint = fingerprint(OP, &params)?;
        let tenant = payment.tenant.clone();
        let id = intent_id_for(&tenant, key)?;
        let caps = gateway.capabilities();
        let prepared = validate_new_payment(provider, &payment, &caps)
            .and_then(|()| provider_key(&tenant, key, caps.max_idempotency_key_len))
            .and_then(|pk| {
                let call = ProviderCall::new(OP, pk.as_str(), fingerprint.clone());
                let intent = PaymentIntent::new(
                    id.clone(),
                    tenant.clone(),
                    payment.channel.clone(),
                    payment.tender,
                    payment.amount,
                    provider,
                    payment.reference.clone(),
                    self.inner.clock.now(),
                );
                let params = AuthorizeParams::new(call.clone(), payment.payment_method.clone(), payment.capture_method);
                let Transition { intent, event } = state::creation(intent, params)?;
                Ok((call, (intent, event)))
            });
        let (call, create) = match prepared {
            Ok((call, create)) => (call, create),
            Err(invalid) => {
                // Refused before anything was created or sent; the refusal is the key's stored outcome.
                return match self.claim(&tenant, key, OP, &fingerprint, &id).await? {
                    Claim::Replay(result) => result,
                    // An intent under this key (an earlier attempt, perhaps unknown): this refusal is about the
                    // request as sent now (a gateway that cannot take it), not the payment; the key stays free
                    // for a retry through the right gateway.
                    Claim::Proceed { snapshot: Some(_), lease, .. } => {
                        self.finish(&tenant, key, Outcome::Release(invalid), lease).await
                    }
                    // Taken over from a caller whose attempt left no intent: it may have reached the provider, so
                    // the key is kept (the next caller is told it may be a resend) instead of storing this
                    // refusal as the payment's outcome.
                    Claim::Proceed { snapshot: None, recovered: true, lease, .. } => {
                        self.finish(&tenant, key, Outcome::Hold(invalid), lease).await
                    }
                    Claim::Proceed { snapshot: None, lease, .. } => {
                        self.finish(&tenant, key, Outcome::Done(Err(invalid)), lease).await
                    }
                };
            }
        };
        // The intent is written once, with the provider's answer (decision 012): an intent that exists already
        // (an earlier use of the key whose record is gone) is worked on as stored.
        // A stored intent (an earlier attempt whose outcome is unknown) or an expired lease means the request
        // may have reached the provider already: the gateway is told so (`Attempt::Resend`).
        let (snapshot, created, resend, lease, first_claimed) =
            match self.claim(&tenant, key, OP, &fingerprint, &id).await? {
                Claim::Replay(result) => return result,
                Claim::Proceed { snapshot: Some(snapshot), lease, first_claimed, .. } => {
                    (snapshot, None, true, lease, first_claimed)
                }
                Claim::Proceed { snapshot: None, recovered, lease, first_claimed } => {
                    let (intent, event) = create;
                    (IntentSnapshot::new(intent, vec![event.clone()]), Some(event), recovered, lease, first_claimed)
                }
            };
        // Until the outcome is stored, a webhook for this payment finds no intent: the ingestor asks for a
        // redelivery instead of dropping it. If the outcome is not stored (the store failed, nothing certain
        // happened, or this call is cancelled), the registration lingers, so the provider's notifications wait
        // for a retry with the key to store it (see `in_flight`).
        let running = self.inner.in_flight.enter(&tenant, provider, &payment.reference, LINGER);
        let earlier = Earlier { maybe_sent: resend, first_claimed };
        // Boxed: the operation's future is large (kilobytes), and moving it by value costs more than the box
        // (`cargo bench --bench domain`).
        let claimed = Box::pin(self.authorize_claimed(gateway, &caps, &payment, key, snapshot, created, call, earlier));
        let (outcome, lease) = self.renewing(&tenant, key, lease, claimed).await;
        let stored = !matches!(outcome, Outcome::Release(_) | Outcome::Hold(_));
        let result = self.finish(&tenant, key, outcome, lease).await;
        if stored {
            running.disarm();
        }
        result
    }

    /// Captures `amount` (`None`: all that remains capturable) of an authorized intent. With `final_capture`
    /// no capture may follow and the intent becomes `Captured` even below the authorized amount.
    ///
    /// # Errors
    /// `NotFound`; `InvalidState` (not authorized, after a final capture or a void, another outcome unknown);
    /// `InvalidRequest` ("capture of 30.00 EUR exceeds the capturable 20.00 EUR", other currency, not
    /// positive); `Unsupported`; `OutcomeUnknown`; `InProgress`; `IdempotencyConflict`; the provider's refusals
    /// and transient kinds.
    pub async fn capture(
        &self,
        gateway: &dyn PaymentGateway,
        tenant: &TenantId,
        intent: &IntentId,
        amount: Option<Money>,
        final_capture: bool,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, PaymentsError> {
        self.modify(gateway, tenant, intent, Command::Capture { amount, final_capture }, key).await
    }

    /// Refunds `amount` of a captured intent (after its final capture).
    ///
    /// # Errors
    /// As [`capture`](Payments::capture), with "refund of 30.00 EUR exceeds the refundable 20.00 EUR" and
    /// `InvalidState` before a capture ("void it instead").
    pub async fn refund(
        &self,
        gateway: &dyn PaymentGateway,
        tenant: &TenantId,
        intent: &IntentId,
        amount: Money,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, PaymentsError> {
        self.modify(gateway, tenant, intent, Command::Refund { amount }, key).await
    }

    /// Cancels an authorization before any capture.
    ///
    /// # Errors
    /// As [`capture`](Payments::capture); `InvalidState` once anything is captured ("refund instead").
    pub async fn void(
        &self,
        gateway: &dyn PaymentGateway,
        tenant: &TenantId,
        intent: &IntentId,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, PaymentsError> {
        self.modify(gateway, tenant, intent, Command::Void, key).await
    }

    /// Raises the authorization of an `Authorized` intent with nothing captured to `new_total` (incremental
    /// authorization; the new total, not the increment). On success `authorized` becomes the larger of the
    /// intent's and the provider's, `amount` becomes `new_total`, and captures may take up to it. A refusal
    /// (e.g. `Declined`) is recorded in the history and leaves the authorization as it was, its original amount
    /// still capturable. An unknown outcome settles like a capture's: a retry with the same key, or
    /// [`reconcile`](Payments::reconcile) (the provider's authorized amount says whether it took effect).
    ///
    /// # Errors
    /// `NotFound`; `InvalidState` (not authorized, anything captured: "an authorization can be incremented
    /// only before the first capture", voided, another outcome unknown); `InvalidRequest` ("new total 50.00 EUR
    /// must exceed the authorized 80.00 EUR", other currency); `Unsupported` (the gateway has no
    /// `incremental_authorization`; the provider is not called); `Declined`; `OutcomeUnknown`; `InProgress`;
    /// `IdempotencyConflict`; the provider's other refusals and transient kinds.
    pub async fn increment_authorization(
        &self,
        gateway: &dyn PaymentGateway,
        tenant: &TenantId,
        intent: &IntentId,
        new_total: Money,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, PaymentsError> {
        self.modify(gateway, tenant, intent, Command::Increment { new_total }, key).await
    }

    /// Reads an intent.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`.
    pub async fn get(&self, tenant: &TenantId, intent: &IntentId) -> Result<PaymentIntent, PaymentsError> {
        self.inner
            .intents
            .get(tenant, intent)
            .await
            .map_err(|e| PaymentsError::from_store(Operation::Get, Some(intent), e))
    }

    /// An intent's history, oldest first; event `n` produced version `n`. See [`state::event_text`] for the
    /// human-readable part of an event's detail.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`.
    pub async fn history(&self, tenant: &TenantId, intent: &IntentId) -> Result<Vec<IntentEvent>, PaymentsError> {
        self.inner
            .intents
            .events(tenant, intent)
            .await
            .map_err(|e| PaymentsError::from_store(Operation::History, Some(intent), e))
    }

    /// Settles an intent from the provider's view, never moving an amount backwards
    /// ([`state::apply_snapshot`]).
    ///
    /// - With a provider reference: `gateway.retrieve(reference)`; amounts become the larger of ours and the
    ///   provider's; a pending call counts as applied when the provider shows its effect, and the history
    ///   records it so a later retry with its key does not apply it again.
    /// - An `OutcomeUnknown` authorization has no provider reference yet: reconcile re-sends the recorded
    ///   authorization request with the same provider key, which the provider answers by replaying its first
    ///   answer (or, if it never received the request, by processing it now, which is just as safe).
    /// - Terminal intents and intents without anything at the provider are returned unchanged, with no call.
    ///
    /// Reconcile does not use an idempotency key; it is safe to run at any time and concurrently with a retry
    /// (optimistic versions and the recorded calls keep amounts from being applied twice).
    ///
    /// # Errors
    /// `NotFound`; the gateway's errors (`OutcomeUnknown` again, transient kinds; the intent stays as it was);
    /// `Unexpected` when the provider's view contradicts the intent. Re-sending an unknown authorization, only
    /// a decline (or a terminal's "never saw it", `NotFound`) fails the intent; any other refusal
    /// (`Unsupported`, `InvalidRequest`, `Configuration`, `Authentication`, ...) is returned and nothing is
    /// written, since it may come from a gateway that cannot tell whether the card was charged.
    pub async fn reconcile(
        &self,
        gateway: &dyn PaymentGateway,
        tenant: &TenantId,
        intent: &IntentId,
    ) -> Result<PaymentIntent, PaymentsError> {
        const OP: Operation = Operation::Reconcile;
        let (current, history) = self.load(OP, tenant, intent).await?;
        if current.status.is_terminal() {
            return Ok(current);
        }
        let Some(reference) = current.provider_reference.clone() else {
            let pending =
                state::pending_operation(&current, &history).filter(|p| p.call.operation == Operation::Authorize);
            let (Some(pending), Some(params)) = (pending, state::authorize_params(&history)) else {
                return Ok(current);
            };
            let (caps, now) = (gateway.capabilities(), self.inner.clock.now());
            if let Some(e) = beyond_replay(&caps, &current, &history, None, now, ErrorKind::InvalidState, OP) {
                return Err(e);
            }
            let request = AuthorizeRequest::new(
                current.amount,
                current.tender,
                params.payment_method.0.clone(),
                current.reference.clone(),
                key_of(&pending.call, intent)?,
            )
            .with_capture_method(params.capture_method)
            .with_attempt(Attempt::Reconcile);
            let answer = match gateway.authorize(request).await {
                // Only the provider's refusal of the payment itself settles it as failed: a request the gateway
                // cannot take (another provider bound since, a misconfiguration) says nothing about a card that
                // may have been charged, so it is reported and nothing is written.
                Err(e) if matches!(certainty(e.kind()), Certainty::Certain) && !settles_resend(e.kind(), &caps) => {
                    return Err(PaymentsError::from_gateway(OP, Some(intent), e));
                }
                answer => answer,
            };
            let answer = answer.map_err(|e| (e, None));
            return match self.settle_authorization(current, history, None, &pending.call, answer, None, None).await.0 {
                Settlement::Applied(intent) | Settlement::Refused { intent, .. } => Ok(intent),
                Settlement::Unsettled(error) | Settlement::Unrecorded(error) => Err(error),
            };
        };
        let snapshot =
            gateway.retrieve(&reference).await.map_err(|e| PaymentsError::from_gateway(OP, Some(intent), e))?;
        self.persist(OP, current, history, None, |i, h, now| state::apply_snapshot(i, h, &snapshot, now)).await
    }

    /// Settles an intent from a view of the provider's payment obtained elsewhere: an operator reading the
    /// provider's dashboard or a settlement report, for a provider (a card terminal) that cannot be asked, or
    /// an outcome `reconcile` cannot reach (an unknown terminal refund). Applied as
    /// [`reconcile`](Payments::reconcile) applies a retrieved view ([`state::apply_snapshot`]): amounts never move
    /// backwards, a pending call counts as applied when the view shows its effect and otherwise returns the
    /// intent to its prior status; the history records it. Terminal intents are returned unchanged.
    ///
    /// # Errors
    /// `NotFound`; `Unexpected` when the view names another payment than the intent's, is in another currency,
    /// or would break an invariant.
    pub async fn reconcile_from(
        &self,
        tenant: &TenantId,
        intent: &IntentId,
        view: &PaymentSnapshot,
    ) -> Result<PaymentIntent, PaymentsError> {
        const OP: Operation = Operation::Reconcile;
        let (current, history) = self.load(OP, tenant, intent).await?;
        if current.status.is_terminal() {
            return Ok(current);
        }
        self.persist(OP, current, history, None, |i, h, now| state::apply_snapshot(i, h, view, now)).await
    }

    // -----------------------------------------------------------------------------------------------------

    #[expect(clippy::too_many_arguments, reason = "the parts of one claimed authorization")]
    async fn authorize_claimed(
        &self,
        gateway: &dyn PaymentGateway,
        caps: &GatewayCapabilities,
        payment: &NewPayment,
        key: &IdempotencyKey,
        snapshot: IntentSnapshot,
        created: Option<IntentEvent>,
        call: ProviderCall,
        earlier: Earlier,
    ) -> Outcome {
        const OP: Operation = Operation::Authorize;
        let IntentSnapshot { intent, history, .. } = snapshot;
        let id = intent.id.clone();
        let call = match state::admit_authorize(&intent, &history, &call) {
            Ok(Admission::Send(call)) => call,
            Ok(Admission::AlreadyApplied) => return Outcome::Done(Ok(intent)),
            Err(e) => return Outcome::rejected(e),
        };
        let now = self.inner.clock.now();
        let Earlier { maybe_sent: resend, first_claimed } = earlier;
        if let Some(e) = beyond_replay(caps, &intent, &history, first_claimed, now, ErrorKind::OutcomeUnknown, OP) {
            let held = HeldKey { tenant: &payment.tenant, key, resolve: Resolve::Release, created: created.as_ref() };
            let pending = (Some(intent.amount), false);
            return self.not_resent(OP, intent, history, held, &call, pending, first_claimed, e).await;
        }
        let provider_key = match key_of(&call, &id) {
            Ok(k) => k,
            Err(e) => return Outcome::Done(Err(e)),
        };
        let request = AuthorizeRequest::new(
            intent.amount,
            intent.tender,
            payment.payment_method.0.clone(),
            intent.reference.clone(),
            provider_key,
        )
        .with_capture_method(payment.capture_method)
        .with_attempt(if resend { Attempt::Resend } else { Attempt::First });
        // A refusal of a resend that says nothing about the earlier attempt leaves the outcome unknown.
        let answer = gateway.authorize(request).await.map_err(|e| (e, resend.then_some(caps)));
        let tenant = payment.tenant.clone();
        let key = Some((&tenant, key));
        let (settlement, resolved) =
            self.settle_authorization(intent, history, created.as_ref(), &call, answer, key, first_claimed).await;
        settlement.into_outcome(resolved)
    }

    /// The outcome of `call`, not sent because it may have reached the provider longer ago than the provider
    /// replays answers by key (`error`, from [`beyond_replay`]). An intent that records the call as unknown
    /// already gives the key back. Otherwise the call comes from a key taken over from a holder whose call left
    /// no record: the intent (created, if it is not stored yet) records it as unknown since the key's first
    /// claim, with `pending` (amount, final capture), in the store call that gives the key back, so retries and
    /// the reconciler's pass find it.
    #[expect(clippy::too_many_arguments, reason = "the parts of one call that is not sent")]
    async fn not_resent(
        &self,
        op: Operation,
        intent: PaymentIntent,
        history: Vec<IntentEvent>,
        held: HeldKey<'_>,
        call: &ProviderCall,
        pending: (Option<Money>, bool),
        first_claimed: Option<OffsetDateTime>,
        error: PaymentsError,
    ) -> Outcome {
        if state::unknown_since(&intent, &history).is_some() {
            return Outcome::Release(error);
        }
        let (message, (amount, final_capture)) = (error.message().to_owned(), pending);
        let recorded = self
            .persist(op, intent, history, Some(held), |i, h, now| {
                state::apply_unknown(i, h, call, amount, final_capture, &message, first_claimed, now)
            })
            .await;
        match recorded {
            Ok(_) => Outcome::Resolved(Err(error)),
            Err(_) => Outcome::Hold(error),
        }
    }

    /// Records an authorization's answer; with `key`, resolves the key in the same store call and says so.
    /// `created` is the first event of an intent not stored yet (with `key` only): the intent is then created
    /// with the answer. `since`: when the call may first have reached the provider, if before this attempt.
    #[expect(clippy::too_many_arguments, reason = "the parts of one authorization's answer")]
    async fn settle_authorization(
        &self,
        intent: PaymentIntent,
        history: Vec<IntentEvent>,
        created: Option<&IntentEvent>,
        call: &ProviderCall,
        answer: Result<PaymentSnapshot, (PaymentError, Option<&GatewayCapabilities>)>,
        key: Option<(&TenantId, &IdempotencyKey)>,
        since: Option<OffsetDateTime>,
    ) -> (Settlement, bool) {
        const OP: Operation = Operation::Authorize;
        let id = intent.id.clone();
        let amount = intent.amount;
        let held = |resolve| key.map(|(tenant, key)| HeldKey { tenant, key, resolve, created });
        match answer {
            Ok(snapshot) => {
                match self
                    .persist(OP, intent, history, held(Resolve::Ok), |i, h, now| {
                        state::apply_authorization(i, h, call, &snapshot, now)
                    })
                    .await
                {
                    Ok(intent) => (Settlement::Applied(intent), key.is_some()),
                    Err(e) => (Settlement::Unrecorded(recording_failed(OP, &id, e)), false),
                }
            }
            Err((answer, resend)) => {
                let error = PaymentsError::from_gateway(OP, Some(&id), answer);
                let error = match resend {
                    Some(caps) => resend_error(error, true, caps),
                    None => error,
                };
                match certainty(error.kind()) {
                    Certainty::Unknown => {
                        let message = error.message().to_owned();
                        // Whether or not this is recorded, the outcome is unknown to the caller.
                        let recorded = self
                            .persist(OP, intent, history, held(Resolve::Release), |i, h, now| {
                                state::apply_unknown(i, h, call, Some(amount), false, &message, since, now)
                            })
                            .await
                            .is_ok();
                        let error = error.with_retry(RetryClass::SameKeyOnly);
                        match (recorded, key.is_some()) {
                            (true, resolved) => (Settlement::Unsettled(error), resolved),
                            (false, _) => (Settlement::Unrecorded(error), false),
                        }
                    }
                    Certainty::NothingHappened => (Settlement::Unsettled(error), false),
                    Certainty::Certain => {
                        match self
                            .persist(OP, intent, history, held(Resolve::Err(&error)), |i, h, now| {
                                state::apply_authorization_refused(i, h, call, &error, now)
                            })
                            .await
                        {
                            Ok(intent) => (Settlement::Refused { intent, error }, key.is_some()),
                            Err(e) => (Settlement::Unsettled(recording_failed(OP, &id, e)), false),
                        }
                    }
                }
            }
        }
    }

    async fn modify(
        &self,
        gateway: &dyn PaymentGateway,
        tenant: &TenantId,
        intent: &IntentId,
        command: Command,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, PaymentsError> {
        let op = command.operation();
        let fingerprint = fingerprint(op, &ModificationParamsFingerprint { intent, command })?;
        let (snapshot, earlier, lease) = match self.claim(tenant, key, op, &fingerprint, intent).await? {
            Claim::Replay(result) => return result,
            Claim::Proceed { snapshot, recovered, lease, first_claimed } => {
                (snapshot, Earlier { maybe_sent: recovered, first_claimed }, lease)
            }
        };
        let claimed =
            Box::pin(self.modify_claimed(gateway, tenant, intent, snapshot, command, key, fingerprint, earlier));
        let (outcome, lease) = self.renewing(tenant, key, lease, claimed).await;
        self.finish(tenant, key, outcome, lease).await
    }

    #[expect(clippy::too_many_arguments, reason = "the parts of one claimed operation")]
    async fn modify_claimed(
        &self,
        gateway: &dyn PaymentGateway,
        tenant: &TenantId,
        id: &IntentId,
        snapshot: Option<IntentSnapshot>,
        command: Command,
        key: &IdempotencyKey,
        fingerprint: String,
        earlier: Earlier,
    ) -> Outcome {
        let op = command.operation();
        let caps = gateway.capabilities();
        let held = |resolve| Some(HeldKey { tenant, key, resolve, created: None });
        let call = match provider_key(tenant, key, caps.max_idempotency_key_len) {
            Ok(pk) => ProviderCall::new(op, pk.as_str(), fingerprint),
            Err(e) => return Outcome::Done(Err(PaymentsError::new(e.kind(), op, e.message()).with_intent(id.clone()))),
        };
        let Some(IntentSnapshot { intent, history, .. }) = snapshot else {
            return Outcome::Done(Err(PaymentsError::new(
                ErrorKind::NotFound,
                op,
                format!("no intent `{id}` for tenant `{tenant}`"),
            )
            .with_intent(id.clone())));
        };
        // Admitted while the intent's outcome is unknown means this call is that pending one, sent again.
        let resend = earlier.maybe_sent || intent.status == IntentStatus::OutcomeUnknown;
        let modification = match state::admit_modification(&intent, &history, &call, command) {
            Ok(Admission::Send(m)) => m,
            Ok(Admission::AlreadyApplied) => return Outcome::Done(Ok(intent)),
            Err(e) => return Outcome::rejected(e),
        };
        let (amount, final_capture) = (modification.amount(), modification.final_capture());
        let first_claimed = earlier.first_claimed;
        let now = self.inner.clock.now();
        if let Some(e) = beyond_replay(&caps, &intent, &history, first_claimed, now, ErrorKind::OutcomeUnknown, op) {
            let held = HeldKey { tenant, key, resolve: Resolve::Release, created: None };
            return self.not_resent(op, intent, history, held, &call, (amount, final_capture), first_claimed, e).await;
        }
        if let Err(e) = state::check_supported(&intent, &modification, &caps) {
            // A pending call refused before sending (a gateway that cannot take it) leaves the key free for a
            // retry through the right one: the intent records the call as unknown. A key taken over from a caller
            // whose call left no record keeps this refusal, and with it the knowledge that the call may have
            // been sent (a later request under the key is then a replay, never sent again).
            return if intent.status == IntentStatus::OutcomeUnknown {
                Outcome::Release(e)
            } else {
                Outcome::Done(Err(e))
            };
        }
        let prepared = key_of(&call, id).and_then(|k| match &intent.provider_reference {
            Some(reference) => Ok((k, reference.clone())),
            None => {
                Err(PaymentsError::new(ErrorKind::Unexpected, op, format!("intent `{id}` has no provider reference"))
                    .with_intent(id.clone()))
            }
        });
        let (provider_key, reference) = match prepared {
            Ok(x) => x,
            Err(e) => return Outcome::Done(Err(e)),
        };
        let answer = match modification {
            Modification::Capture { amount, final_capture } => {
                let request = CaptureRequest::new(reference, amount, provider_key);
                gateway.capture(if final_capture { request } else { request.partial() }).await.map(Answer::Modified)
            }
            Modification::Refund { amount } => {
                let request = RefundRequest::new(reference, amount, provider_key).with_resend(resend);
                gateway.refund(request).await.map(Answer::Modified)
            }
            Modification::Void => gateway
                .void(VoidRequest::new(reference, provider_key).with_authorized(intent.authorized))
                .await
                .map(Answer::Modified),
            Modification::Increment { new_total } => gateway
                .increment_authorization(IncrementRequest::new(reference, new_total, provider_key))
                .await
                .map(Answer::Incremented),
        };
        let result = match answer {
            Ok(result) => result,
            Err(answer) => {
                let error = resend_error(PaymentsError::from_gateway(op, Some(id), answer), resend, &caps);
                return match certainty(error.kind()) {
                    Certainty::Unknown => {
                        let message = error.message().to_owned();
                        let error = error.with_retry(RetryClass::SameKeyOnly);
                        // Whether or not this is recorded, the outcome is unknown to the caller.
                        match self
                            .persist(op, intent, history, held(Resolve::Release), |i, h, now| {
                                state::apply_unknown(i, h, &call, amount, final_capture, &message, first_claimed, now)
                            })
                            .await
                        {
                            Ok(_) => Outcome::Resolved(Err(error)),
                            Err(_) => Outcome::Hold(error),
                        }
                    }
                    Certainty::NothingHappened => Outcome::Release(error),
                    Certainty::Certain => {
                        match self
                            .persist(op, intent, history, held(Resolve::Err(&error)), |i, h, now| match modification {
                                Modification::Increment { new_total } => {
                                    state::apply_increment_refusal(i, h, &call, new_total, &error, now)
                                }
                                _ => state::apply_refusal(i, h, &call, &error, now),
                            })
                            .await
                        {
                            Ok(_) => Outcome::Resolved(Err(error)),
                            Err(e) => unrecorded_refusal(&caps, recording_failed(op, id, e)),
                        }
                    }
                };
            }
        };
        match self
            .persist(op, intent, history, held(Resolve::Ok), |i, h, now| match (&result, modification) {
                (Answer::Incremented(snapshot), Modification::Increment { new_total }) => {
                    state::apply_increment(i, h, &call, new_total, snapshot, now)
                }
                (Answer::Incremented(_), _) => Err(PaymentsError::new(
                    ErrorKind::Unexpected,
                    op,
                    "the provider answered a payment snapshot to a modification other than an increment",
                )
                .with_intent(i.id.clone())),
                (Answer::Modified(result), _) => state::apply_modification(i, h, &call, &modification, result, now),
            })
            .await
        {
            Ok(intent) => Outcome::Resolved(Ok(intent)),
            Err(e) => Outcome::Hold(recording_failed(op, id, e)),
        }
    }

    // -----------------------------------------------------------------------------------------------------
    // Stores

    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        op: Operation,
        fingerprint: &str,
        intent: &IntentId,
    ) -> Result<Claim, PaymentsError> {
        let now = self.inner.clock.now();
        let lease_until = lease_end(now, self.inner.lease);
        let claim = IdempotencyClaim::new(op.as_str(), fingerprint, now, lease_until);
        let claimed = self
            .inner
            .ledger
            .claim(tenant, key, claim, intent, None)
            .await
            .map_err(|e| PaymentsError::from_store(op, None, e))?;
        match claimed.begin {
            IdempotencyBegin::Started { recovered } => {
                let lease = Lease { until: lease_until, renewing_to: None, recovered };
                let first_claimed = if recovered {
                    // Rare (a holder died mid-call): one read for the replay window. Unreadable, the call is not
                    // sent, and the key is handed over for the next caller to take over again.
                    match self.inner.idempotency.get(tenant, key).await {
                        Ok(record) => record.and_then(|r| r.claimed_at),
                        Err(e) => {
                            self.hand_over(tenant, key, lease).await;
                            let error = PaymentsError::from_store(op, Some(intent), e);
                            return Err(error.with_retry(RetryClass::SameKeyOnly));
                        }
                    }
                } else {
                    None
                };
                Ok(Claim::Proceed { snapshot: claimed.intent, recovered, lease, first_claimed })
            }
            IdempotencyBegin::Completed(bytes) => Ok(Claim::Replay(decode_outcome(op, &bytes))),
            IdempotencyBegin::InProgress => Err(PaymentsError::new(
                ErrorKind::InProgress,
                op,
                format!("another request with idempotency key `{key}` is still running; retry later with the same key"),
            )),
            IdempotencyBegin::Conflict { operation } => Err(PaymentsError::new(
                ErrorKind::IdempotencyConflict,
                op,
                format!("idempotency key `{key}` was first used for `{operation}` with other parameters"),
            )),
            other => {
                Err(PaymentsError::new(ErrorKind::Unexpected, op, format!("unknown idempotency answer {other:?}")))
            }
        }
    }

    /// Runs `work` (an operation holding `key` under `lease`) while renewing the lease every
    /// [`with_lease_renewal`](Payments::with_lease_renewal) interval, until the work ends or a renewal finds
    /// the key no longer this caller's. Returns the work's output and the lease as last claimed or renewed.
    async fn renewing<T>(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        lease: Lease,
        work: impl Future<Output = T>,
    ) -> (T, Lease) {
        let every = self.inner.renew_every;
        if every.is_zero() || tokio::runtime::Handle::try_current().is_err() {
            return (work.await, lease);
        }
        let latest = std::sync::Mutex::new(lease);
        let set = |update: &dyn Fn(&mut Lease)| update(&mut latest.lock().unwrap_or_else(PoisonError::into_inner));
        let renewals = async {
            let mut held = lease.until;
            loop {
                tokio::time::sleep(every).await;
                let until = lease_end(self.inner.clock.now(), self.inner.lease);
                if until <= held {
                    continue; // Nothing to extend (a clock that has not moved).
                }
                set(&|l| l.renewing_to = Some(until));
                let renewed = self.inner.idempotency.renew(tenant, key, held, until).await;
                set(&|l| l.renewing_to = None);
                match renewed {
                    Ok(true) => {
                        held = until;
                        set(&|l| l.until = until);
                    }
                    // Taken over or resolved, or a store that cannot renew: the lease runs its course.
                    Ok(false) => break,
                    Err(e) if e.kind() == ErrorKind::Unsupported => break,
                    // Perhaps transient: the lease still holds until `held`; try again at the next tick.
                    Err(_) => {}
                }
            }
            std::future::pending::<T>().await
        };
        tokio::pin!(work);
        let out = tokio::select! {
            biased;
            out = &mut work => out,
            out = renewals => out,
        };
        let lease = *latest.lock().unwrap_or_else(PoisonError::into_inner);
        (out, lease)
    }

    /// Resolves the key as `outcome` says, under the caller's `lease`.
    async fn finish(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        outcome: Outcome,
        lease: Lease,
    ) -> Result<PaymentIntent, PaymentsError> {
        match outcome {
            Outcome::Done(result) => {
                let completed = match encode_outcome(result.as_ref()) {
                    Ok(bytes) => self.inner.idempotency.complete(tenant, key, bytes).await.is_ok(),
                    Err(_) => false,
                };
                if !completed {
                    // The intent is durable; a retry recovers the outcome from its history.
                    self.give_back(tenant, key, lease).await;
                }
                result
            }
            Outcome::Release(error) if lease.recovered => {
                self.hand_over(tenant, key, lease).await;
                // Nothing happened this time; the earlier holder's call may have: retry with this key only.
                Err(match error.retry() {
                    RetryClass::Retryable => error.with_retry(RetryClass::SameKeyOnly),
                    _ => error,
                })
            }
            Outcome::Release(error) => {
                self.give_back(tenant, key, lease).await;
                Err(error)
            }
            Outcome::Resolved(result) => result,
            Outcome::Hold(error) => {
                self.hand_over(tenant, key, lease).await;
                Err(error)
            }
        }
    }

    /// Gives the key back for a retry: released, or handed over when it was taken over ([`Lease::recovered`]).
    /// Nothing is done once the caller's lease has run out: another caller may hold the key by then, and a
    /// release would delete its record (the next caller takes the key over instead). If the release fails,
    /// the lease runs out likewise.
    async fn give_back(&self, tenant: &TenantId, key: &IdempotencyKey, lease: Lease) {
        if lease.recovered {
            self.hand_over(tenant, key, lease).await;
        } else if self.inner.clock.now() < lease.until {
            let _ = self.inner.idempotency.release(tenant, key).await;
        }
    }

    /// Keeps the key's record, with its first claim, and ends its lease now, so the next caller takes the key
    /// over at once, as a resend ([`Outcome::Hold`]). Nothing is done once the caller's lease has run out (the
    /// key may be another caller's; the next one takes it over anyway); if the store cannot renew, or fails,
    /// the lease runs out instead. While the lease is the caller's, a renewal that was under way when the
    /// operation ended may have been stored: its end is tried too.
    async fn hand_over(&self, tenant: &TenantId, key: &IdempotencyKey, lease: Lease) {
        let now = self.inner.clock.now();
        if now >= lease.until {
            return;
        }
        for held in std::iter::once(lease.until).chain(lease.renewing_to) {
            if matches!(self.inner.idempotency.renew(tenant, key, held, now).await, Ok(true)) {
                return;
            }
        }
    }

    /// Reads an intent and its history, consistently (the last event is the intent's version).
    async fn load(
        &self,
        op: Operation,
        tenant: &TenantId,
        id: &IntentId,
    ) -> Result<(PaymentIntent, Vec<IntentEvent>), PaymentsError> {
        let snapshot = read_snapshot(self.inner.intents.as_ref(), op.as_str(), tenant, id)
            .await
            .map_err(|e| PaymentsError::from_store(op, Some(id), e))?;
        Ok((snapshot.intent, snapshot.history))
    }

    /// Applies a transition and stores it; on a version conflict reloads and re-applies once (the state
    /// functions recognise an answer that is already reflected).
    ///
    /// With `held`, the idempotency key is resolved in the same store call as the update (or alone when the
    /// transition changes nothing); the key is then resolved exactly when this returns `Ok`. When the held key
    /// carries `created`, `intent` (version 1) is not stored yet: the commit creates it together with the
    /// transition, and an intent that exists already is reloaded and the transition re-applied to it.
    async fn persist<F>(
        &self,
        op: Operation,
        intent: PaymentIntent,
        history: Vec<IntentEvent>,
        held: Option<HeldKey<'_>>,
        apply: F,
    ) -> Result<PaymentIntent, PaymentsError>
    where
        F: Fn(&PaymentIntent, &[IntentEvent], OffsetDateTime) -> Result<Option<Transition>, PaymentsError>
            + Send
            + Sync,
    {
        let (tenant, id) = (intent.tenant.clone(), intent.id.clone());
        let (mut intent, mut history) = (intent, history);
        let mut creating = held.and_then(|h| h.created);
        let mut reloaded = false;
        loop {
            let transition = apply(&intent, &history, self.inner.clock.now())?;
            let written = match (held, transition) {
                (None, None) => return Ok(intent),
                (None, Some(Transition { intent: next, event })) => {
                    self.inner.intents.update(next.clone(), intent.version, event).await.map(|()| next)
                }
                (Some(held), transition) => {
                    let (next, update) = match (transition, creating) {
                        (Some(Transition { intent: next, event }), None) => {
                            let update = IntentUpdate::new(next.clone(), intent.version, event);
                            (next, Some(update))
                        }
                        (Some(Transition { intent: next, event }), Some(first)) => {
                            let update = IntentUpdate::creating(intent.clone(), first.clone(), next.clone(), event);
                            (next, Some(update))
                        }
                        (None, None) => (intent.clone(), None),
                        (None, Some(_)) => {
                            return Err(PaymentsError::new(
                                ErrorKind::Unexpected,
                                op,
                                format!("the answer changes nothing for intent `{id}`, which is not stored yet"),
                            )
                            .with_intent(id.clone()));
                        }
                    };
                    let resolution = resolution(op, &next, held.resolve)?;
                    self.inner.ledger.commit(held.tenant, held.key, update, resolution).await.map(|()| next)
                }
            };
            match written {
                Ok(next) => return Ok(next),
                Err(e)
                    if (e.kind() == ErrorKind::Conflict
                        || (creating.is_some() && e.kind() == ErrorKind::AlreadyExists))
                        && !reloaded =>
                {
                    reloaded = true;
                    creating = None;
                    (intent, history) = self.load(op, &tenant, &id).await?;
                }
                Err(e) => return Err(PaymentsError::from_store(op, Some(&id), e)),
            }
        }
    }
}

/// The key's resolution for a persisted intent.
fn resolution(op: Operation, intent: &PaymentIntent, resolve: Resolve<'_>) -> Result<KeyResolution, PaymentsError> {
    let stored = match resolve {
        Resolve::Release => return Ok(KeyResolution::Release),
        Resolve::Ok => encode_outcome(Ok(intent)),
        Resolve::Err(error) => encode_outcome(Err(error)),
    };
    stored.map(KeyResolution::Complete).map_err(|e| {
        PaymentsError::new(ErrorKind::Unexpected, op, format!("cannot encode the outcome: {e}"))
            .with_intent(intent.id.clone())
    })
}

/// Reads an idempotency record's stored outcome (its `response`) as written by [`Payments`]: the intent the
/// operation `op` returned, or the error it failed with.
///
/// # Errors
/// The stored error; `Unexpected` when the bytes are not a stored outcome.
pub fn decode_outcome(op: Operation, bytes: &[u8]) -> Result<PaymentIntent, PaymentsError> {
    match serde_json::from_slice::<StoredOutcome>(bytes) {
        Ok(StoredOutcome::Ok(intent)) => Ok(intent),
        Ok(StoredOutcome::Err(stored)) => Err(PaymentsError::from(stored)),
        Err(e) => Err(PaymentsError::new(
            ErrorKind::Unexpected,
            op,
            format!("the stored outcome of this key is unreadable: {e}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use commerce_ports::payment::TenderKind;
    use commerce_ports::{ChannelId, Currency, IntentId, Money, TenantId};
    use time::macros::datetime;

    use super::*;

    #[test]
    fn stored_outcomes_keep_their_form_and_read_back() {
        let intent = PaymentIntent::new(
            IntentId::new("pi_1").expect("id"),
            TenantId::new("acme").expect("tenant"),
            ChannelId::new("web").expect("channel"),
            TenderKind::Card,
            Money::from_minor(500, Currency::EUR),
            "memory",
            "order-1",
            datetime!(2025-01-01 12:00 UTC),
        );
        let ok = encode_outcome(Ok(&intent)).expect("encode");
        assert!(ok.starts_with(br#"{"ok":{"#), "{}", String::from_utf8_lossy(&ok));
        assert_eq!(decode_outcome(Operation::Authorize, &ok).expect("decode"), intent);
        let error = PaymentsError::new(ErrorKind::Declined, Operation::Authorize, "card declined");
        let err = encode_outcome(Err(&error)).expect("encode");
        assert!(err.starts_with(br#"{"err":{"#), "{}", String::from_utf8_lossy(&err));
        let read = decode_outcome(Operation::Authorize, &err).expect_err("stored error");
        assert_eq!((read.kind(), read.message()), (ErrorKind::Declined, "card declined"));
    }
}
