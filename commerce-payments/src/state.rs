//! The payment intent state machine, as pure functions.
//!
//! ```text
//! RequiresAuthorization ──authorize──▶ Authorized ──capture (partial)──▶ PartiallyCaptured ──capture──┐
//!        │                              │  │                                   │                    ▼
//!        │ declined / refused           │  └──capture (full or final)─────────────────────────▶ Captured
//!        ▼                              ▼                                                          │ refund
//!      Failed                         Voided                       Refunded ◀──refund── PartiallyRefunded
//!
//! any non-terminal state ──provider outcome unknown──▶ OutcomeUnknown ──answer / reconcile──▶ next state
//!
//! Authorized (nothing captured) ──increment (new total > authorized)──▶ Authorized (authorized = amount = new total)
//! ```
//!
//! Two kinds of functions:
//! - **admission** ([`admit_authorize`], [`admit_modification`], [`resolve`], [`check_supported`]) decides,
//!   before any provider call, whether an operation fits the intent: amounts positive and in the intent's
//!   currency, a capture at most authorized minus captured and never after a final capture or a void, a refund
//!   at most captured minus refunded, a void only before any capture ("refund instead"), an increment only
//!   before any capture and to a new total above what is authorized.
//! - **application** ([`apply_authorization`], [`apply_modification`], [`apply_unknown`], [`apply_refusal`],
//!   [`apply_snapshot`], ...) computes the next intent and its [`IntentEvent`] once the provider answered. They
//!   return `Ok(None)` when the answer is already reflected, so they can be re-applied safely after an
//!   optimistic-concurrency conflict. Every [`Transition`] bumps `version` by one, gives its event
//!   `sequence == version`, never lowers an amount and never leaves a terminal state
//!   ([`check_transition`] enforces it).
//!
//! # Unknown outcomes
//! When the provider's answer is unknown the intent becomes `OutcomeUnknown` with its amounts unchanged, and
//! the event records a [`PendingOperation`]: which call (operation, provider idempotency key, parameter
//! fingerprint), the amount, and the status before it. While it is pending, only that same call (a retry with
//! the same key, which the provider replays) or a reconciliation may move the intent on; amounts are applied
//! once, when the answer is known. Every event that applies a provider's answer records the call it applied,
//! so a late retry of an already applied call is recognised ([`Admission::AlreadyApplied`]) instead of being
//! counted twice.
//!
//! # Increments
//! An increment (incremental authorization) raises the authorization of an `Authorized` intent with nothing
//! captured to a new total; once confirmed, `authorized` becomes the larger of ours and the provider's and
//! `amount` the new total, so captures may take up to it. A certain refusal is recorded and leaves the
//! authorization as it was ([`apply_increment_refusal`]). An unknown outcome is pending like any other call,
//! with the new total as its amount, and settles:
//! - by a retry with the same key: the provider replays its answer, applied once;
//! - by a reconciliation ([`apply_snapshot`]): a provider authorized amount of at least the new total means
//!   it took effect; one still below it (the old amount) means it did not, and the intent returns to
//!   `Authorized` with its old amounts; a retry with the same key then sends the increment again (the provider
//!   replays whatever it decided);
//! - by a webhook `Authorized` event whose amount is at least the new total; an event with the old amount (or
//!   none) neither settles it nor lowers anything.
//!
//! These records travel as JSON in the event's `data` field, which stores persist verbatim; `detail` stays
//! text for people ([`event_text`]).
//!
//! # Webhooks
//! [`apply_webhook`] applies a provider's notification as a join (amounts only grow, the status follows from
//! them), idempotently by event id; the rules are in [`webhook`].

use std::fmt;

use commerce_ports::payment::{
    CaptureMethod, GatewayCapabilities, ModificationResult, ModificationStatus, PaymentMethodRef, PaymentSnapshot,
    ProviderPaymentStatus,
};
use commerce_ports::stores::{IntentEvent, IntentStatus, PaymentIntent};
use commerce_ports::{ErrorKind, Money, RetryClass};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::PaymentsError;

/// An operation of the payments domain, as named in events, errors and idempotency records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// The intent was created (the first event).
    Create,
    /// Authorize (and, with automatic capture, capture).
    Authorize,
    /// Capture (part of) the authorization.
    Capture,
    /// Refund (part of) the captured amount.
    Refund,
    /// Cancel the authorization before any capture.
    Void,
    /// Raise the authorized amount before any capture (incremental authorization).
    Increment,
    /// Settle the intent from the provider's view.
    Reconcile,
    /// Read an intent.
    Get,
    /// Read an intent's history.
    History,
    /// Apply a provider's webhook notification.
    Webhook,
}

impl Operation {
    /// The snake_case name (`"capture"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "create",
            Operation::Authorize => "authorize",
            Operation::Capture => "capture",
            Operation::Refund => "refund",
            Operation::Void => "void",
            Operation::Increment => "increment",
            Operation::Reconcile => "reconcile",
            Operation::Get => "get",
            Operation::History => "history",
            Operation::Webhook => "webhook",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One provider call as the domain identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProviderCall {
    /// The operation.
    pub operation: Operation,
    /// The idempotency key sent to the provider; every retry of the call sends the same one.
    pub provider_key: String,
    /// SHA-256 (hex) of the caller's parameters, to tell a retry from another use of the key.
    pub fingerprint: String,
}

impl ProviderCall {
    /// A call.
    pub fn new(operation: Operation, provider_key: impl Into<String>, fingerprint: impl Into<String>) -> ProviderCall {
        ProviderCall { operation, provider_key: provider_key.into(), fingerprint: fingerprint.into() }
    }

    fn same_request(&self, other: &ProviderCall) -> bool {
        self.operation == other.operation && self.fingerprint == other.fingerprint
    }
}

/// A provider call whose outcome is not known yet, recorded in the event that made the intent
/// `OutcomeUnknown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PendingOperation {
    /// The call; a retry must send the same provider key.
    pub call: ProviderCall,
    /// The amount sent (authorize, capture, refund; for an increment, the new total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Money>,
    /// For a capture: whether it was final.
    #[serde(default)]
    pub final_capture: bool,
    /// The intent's status before the call; a refusal returns the intent to it.
    pub prior_status: IntentStatus,
    /// When the call may first have reached the provider, if earlier than the event that records it: the first
    /// claim of a key taken over from a holder whose call left no record.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
}

/// The authorization request's parameters that the intent does not hold, recorded in the `create` event so a
/// reconciliation can re-send the same request with the same provider key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthorizeParams {
    /// The authorization call.
    pub call: ProviderCall,
    /// The payment method.
    pub payment_method: PaymentMethodRef,
    /// Manual or automatic capture.
    pub capture_method: CaptureMethod,
}

impl AuthorizeParams {
    /// Parameters.
    pub fn new(call: ProviderCall, payment_method: PaymentMethodRef, capture_method: CaptureMethod) -> AuthorizeParams {
        AuthorizeParams { call, payment_method, capture_method }
    }
}

/// A capture, refund, void or increment as the caller asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    /// Capture `amount` (`None`: everything still capturable).
    Capture {
        /// The amount, or `None` for all that remains.
        amount: Option<Money>,
        /// No further capture will follow; the rest of the authorization is released.
        final_capture: bool,
    },
    /// Refund `amount`.
    Refund {
        /// The amount.
        amount: Money,
    },
    /// Cancel the authorization.
    Void,
    /// Raise the authorization to `new_total` (incremental authorization).
    Increment {
        /// The new total authorized amount (not the increment).
        new_total: Money,
    },
}

impl Command {
    /// The operation.
    pub fn operation(&self) -> Operation {
        match self {
            Command::Capture { .. } => Operation::Capture,
            Command::Refund { .. } => Operation::Refund,
            Command::Void => Operation::Void,
            Command::Increment { .. } => Operation::Increment,
        }
    }
}

/// A [`Command`] validated against an intent, with its amount resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Modification {
    /// Capture `amount`.
    Capture {
        /// The amount, positive and at most what remains capturable.
        amount: Money,
        /// No further capture will follow.
        final_capture: bool,
    },
    /// Refund `amount`.
    Refund {
        /// The amount, positive and at most what remains refundable.
        amount: Money,
    },
    /// Cancel the authorization.
    Void,
    /// Raise the authorization to `new_total`.
    Increment {
        /// The new total, in the intent's currency and above what is authorized.
        new_total: Money,
    },
}

impl Modification {
    /// The operation.
    pub fn operation(&self) -> Operation {
        match self {
            Modification::Capture { .. } => Operation::Capture,
            Modification::Refund { .. } => Operation::Refund,
            Modification::Void => Operation::Void,
            Modification::Increment { .. } => Operation::Increment,
        }
    }

    /// The amount concerned (none for a void; the new total for an increment).
    pub fn amount(&self) -> Option<Money> {
        match self {
            Modification::Capture { amount, .. } | Modification::Refund { amount } => Some(*amount),
            Modification::Increment { new_total } => Some(*new_total),
            Modification::Void => None,
        }
    }

    /// True for a final capture.
    pub fn final_capture(&self) -> bool {
        matches!(self, Modification::Capture { final_capture: true, .. })
    }
}

/// What admission decided.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission<T> {
    /// Send this to the provider.
    Send(T),
    /// The call was applied before (the history records its answer): return the intent as it is, without
    /// calling the provider.
    AlreadyApplied,
}

/// The next state of an intent and the event that records the change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Transition {
    /// The intent after the change (`version` one higher).
    pub intent: PaymentIntent,
    /// The event to append (`sequence == intent.version`).
    pub event: IntentEvent,
}

// ---------------------------------------------------------------------------------------------------------
// Event records

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct EventTag {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    applied: Option<ProviderCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<PendingOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    authorize: Option<AuthorizeParams>,
    /// The provider's event id, on events written by a webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    webhook: Option<String>,
    /// A webhook confirmed the captured amount (a capture notification, not one inferred from a refund).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    capture_confirmed: bool,
}

/// Writes the human text to `detail` and the record, if any, as JSON to `data`.
fn with_record(event: IntentEvent, text: &str, tag: &EventTag) -> Result<IntentEvent, PaymentsError> {
    let event = event.with_detail(text);
    if *tag == EventTag::default() {
        return Ok(event);
    }
    let json = serde_json::to_string(tag).map_err(|e| {
        PaymentsError::new(ErrorKind::Unexpected, Operation::Create, format!("cannot encode the event record: {e}"))
    })?;
    Ok(event.with_data(json))
}

fn tag_of(event: &IntentEvent) -> Option<EventTag> {
    serde_json::from_str(event.data.as_deref()?).ok()
}

/// The human-readable text of an event.
pub fn event_text(event: &IntentEvent) -> Option<&str> {
    event.detail.as_deref()
}

/// The pending call of an `OutcomeUnknown` intent: the record in the event that produced its current version.
/// `None` for any other status.
pub fn pending_operation(intent: &PaymentIntent, history: &[IntentEvent]) -> Option<PendingOperation> {
    if intent.status != IntentStatus::OutcomeUnknown {
        return None;
    }
    history.iter().rev().find(|e| e.sequence == intent.version).and_then(tag_of).and_then(|t| t.pending)
}

/// Since when the pending call of an `OutcomeUnknown` intent may have been at the provider: the earlier of
/// the event that recorded it and the time the record gives ([`PendingOperation::since`]). `None` when the
/// intent's outcome is known.
pub fn unknown_since(intent: &PaymentIntent, history: &[IntentEvent]) -> Option<OffsetDateTime> {
    if intent.status != IntentStatus::OutcomeUnknown {
        return None;
    }
    let event = history.iter().rev().find(|e| e.sequence == intent.version)?;
    let since = tag_of(event).and_then(|t| t.pending).and_then(|p| p.since);
    Some(since.map_or(event.at, |since| since.min(event.at)))
}

/// The authorization parameters recorded by the intent's `create` event.
pub fn authorize_params(history: &[IntentEvent]) -> Option<AuthorizeParams> {
    history.first().and_then(tag_of).and_then(|t| t.authorize)
}

/// The call with this provider key whose answer an event of the history applied, if any.
pub fn applied_call(history: &[IntentEvent], provider_key: &str) -> Option<ProviderCall> {
    // An event whose data does not contain the key cannot have applied its call: skip parsing it. (Only for
    // keys JSON writes verbatim; a key with `"` or `\` is escaped in the data, so every event is parsed.)
    let verbatim = !provider_key.contains(['"', '\\']);
    history
        .iter()
        .filter(|e| !verbatim || e.data.as_deref().is_some_and(|data| data.contains(provider_key)))
        .filter_map(tag_of)
        .filter_map(|t| t.applied)
        .find(|c| c.provider_key == provider_key)
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

fn error(kind: ErrorKind, operation: Operation, intent: &PaymentIntent, message: impl Into<String>) -> PaymentsError {
    PaymentsError::new(kind, operation, message).with_intent(intent.id.clone())
}

fn conflict(operation: Operation, first: Operation, intent: &PaymentIntent) -> PaymentsError {
    error(
        ErrorKind::IdempotencyConflict,
        operation,
        intent,
        format!("the idempotency key was first used for `{first}` on intent `{}` with other parameters", intent.id),
    )
}

fn pending_error(operation: Operation, intent: &PaymentIntent, pending: &PendingOperation) -> PaymentsError {
    let what = match pending.amount {
        Some(amount) => format!("{} of {amount}", pending.call.operation),
        None => pending.call.operation.to_string(),
    };
    error(
        ErrorKind::InvalidState,
        operation,
        intent,
        format!(
            "the outcome of the {what} on intent `{}` is unknown; retry that operation with its idempotency key or \
             reconcile the intent first",
            intent.id
        ),
    )
    .with_retry(RetryClass::Retryable)
}

fn add(operation: Operation, intent: &PaymentIntent, a: Money, b: Money) -> Result<Money, PaymentsError> {
    a.checked_add(b).map_err(|e| PaymentsError::from_money(operation, Some(&intent.id), e))
}

fn sub(operation: Operation, intent: &PaymentIntent, a: Money, b: Money) -> Result<Money, PaymentsError> {
    a.checked_sub(b).map_err(|e| PaymentsError::from_money(operation, Some(&intent.id), e))
}

fn check_amount(operation: Operation, intent: &PaymentIntent, amount: Money) -> Result<(), PaymentsError> {
    if amount.currency() != intent.amount.currency() {
        return Err(error(
            ErrorKind::InvalidRequest,
            operation,
            intent,
            format!("{operation} amount {amount} is not in the intent's currency {}", intent.amount.currency()),
        ));
    }
    if !amount.is_positive() {
        return Err(error(
            ErrorKind::InvalidRequest,
            operation,
            intent,
            format!("{operation} amount must be positive, got {amount}"),
        ));
    }
    Ok(())
}

fn with_status(intent: &PaymentIntent, status: IntentStatus) -> PaymentIntent {
    let mut view = intent.clone();
    view.status = status;
    view
}

fn unknown_error(operation: Operation, intent: &PaymentIntent) -> PaymentsError {
    error(
        ErrorKind::InvalidState,
        operation,
        intent,
        format!(
            "the outcome of an earlier operation on intent `{}` is unknown; retry it with its idempotency key or \
             reconcile the intent first",
            intent.id
        ),
    )
    .with_retry(RetryClass::Retryable)
}

fn no_pending_record(operation: Operation, intent: &PaymentIntent) -> PaymentsError {
    error(
        ErrorKind::Unexpected,
        operation,
        intent,
        format!("intent `{}` is outcome_unknown but its latest event records no pending operation", intent.id),
    )
}

// ---------------------------------------------------------------------------------------------------------
// Validation

/// Validates a capture against the intent and resolves its amount (`None`: all that remains capturable).
///
/// # Errors
/// - `InvalidState` unless the intent is `Authorized` or `PartiallyCaptured` (not yet authorized, after a final
///   capture, after a void, failed, or with an unknown outcome pending).
/// - `InvalidRequest` when the amount is not in the intent's currency, not positive, or exceeds
///   authorized minus captured ("capture of 30.00 EUR exceeds the capturable 20.00 EUR").
pub fn validate_capture(intent: &PaymentIntent, amount: Option<Money>) -> Result<Money, PaymentsError> {
    const OP: Operation = Operation::Capture;
    let id = &intent.id;
    match intent.status {
        IntentStatus::Authorized | IntentStatus::PartiallyCaptured => {}
        IntentStatus::RequiresAuthorization => {
            return Err(error(ErrorKind::InvalidState, OP, intent, format!("intent `{id}` is not authorized yet")));
        }
        IntentStatus::Captured | IntentStatus::PartiallyRefunded | IntentStatus::Refunded => {
            return Err(error(
                ErrorKind::InvalidState,
                OP,
                intent,
                format!(
                    "intent `{id}` is already captured (status {}); no capture may follow a final capture",
                    intent.status.as_str()
                ),
            ));
        }
        IntentStatus::Voided => {
            return Err(error(
                ErrorKind::InvalidState,
                OP,
                intent,
                format!("intent `{id}` was voided; it cannot be captured"),
            ));
        }
        IntentStatus::Failed => {
            return Err(error(
                ErrorKind::InvalidState,
                OP,
                intent,
                format!("intent `{id}` failed; it cannot be captured"),
            ));
        }
        IntentStatus::OutcomeUnknown => return Err(unknown_error(OP, intent)),
        other => {
            return Err(error(
                ErrorKind::InvalidState,
                OP,
                intent,
                format!("intent `{id}` is {}; it cannot be captured", other.as_str()),
            ));
        }
    }
    let capturable = sub(OP, intent, intent.authorized, intent.captured)?;
    let amount = match amount {
        Some(amount) => amount,
        None => capturable,
    };
    check_amount(OP, intent, amount)?;
    if amount.minor() > capturable.minor() {
        return Err(error(
            ErrorKind::InvalidRequest,
            OP,
            intent,
            format!("capture of {amount} exceeds the capturable {capturable}"),
        ));
    }
    Ok(amount)
}

/// Validates a refund against the intent.
///
/// # Errors
/// - `InvalidState` unless the intent is `Captured` or `PartiallyRefunded`: nothing captured ("void it
///   instead"), partially captured and still capturable ("make a final capture before refunding"), fully
///   refunded, voided, failed, or with an unknown outcome pending.
/// - `InvalidRequest` when the amount is not in the intent's currency, not positive, or exceeds captured
///   minus refunded ("refund of 30.00 EUR exceeds the refundable 20.00 EUR").
pub fn validate_refund(intent: &PaymentIntent, amount: Money) -> Result<(), PaymentsError> {
    const OP: Operation = Operation::Refund;
    let id = &intent.id;
    let state_error = |message: String| Err(error(ErrorKind::InvalidState, OP, intent, message));
    match intent.status {
        IntentStatus::Captured | IntentStatus::PartiallyRefunded => {}
        IntentStatus::RequiresAuthorization | IntentStatus::Authorized => {
            return state_error(format!("intent `{id}` has nothing captured; void it instead"));
        }
        IntentStatus::PartiallyCaptured => {
            return state_error(format!(
                "intent `{id}` is partially captured and may still be captured; make a final capture before refunding"
            ));
        }
        IntentStatus::Refunded => return state_error(format!("intent `{id}` is already fully refunded")),
        IntentStatus::Voided => return state_error(format!("intent `{id}` was voided; there is nothing to refund")),
        IntentStatus::Failed => return state_error(format!("intent `{id}` failed; there is nothing to refund")),
        IntentStatus::OutcomeUnknown => return Err(unknown_error(OP, intent)),
        other => return state_error(format!("intent `{id}` is {}; it cannot be refunded", other.as_str())),
    }
    check_amount(OP, intent, amount)?;
    let refundable = sub(OP, intent, intent.captured, intent.refunded)?;
    if amount.minor() > refundable.minor() {
        return Err(error(
            ErrorKind::InvalidRequest,
            OP,
            intent,
            format!("refund of {amount} exceeds the refundable {refundable}"),
        ));
    }
    Ok(())
}

/// Validates a void against the intent.
///
/// # Errors
/// `InvalidState` unless the intent is `Authorized`: once anything is captured the message says "refund
/// instead"; also before authorization, when already voided, failed, or with an unknown outcome pending.
pub fn validate_void(intent: &PaymentIntent) -> Result<(), PaymentsError> {
    const OP: Operation = Operation::Void;
    let id = &intent.id;
    let state_error = |message: String| Err(error(ErrorKind::InvalidState, OP, intent, message));
    match intent.status {
        IntentStatus::Authorized => Ok(()),
        IntentStatus::PartiallyCaptured
        | IntentStatus::Captured
        | IntentStatus::PartiallyRefunded
        | IntentStatus::Refunded => state_error(format!(
            "intent `{id}` has {} captured and can no longer be voided; refund instead",
            intent.captured
        )),
        IntentStatus::RequiresAuthorization => {
            state_error(format!("intent `{id}` is not authorized yet; there is nothing to void"))
        }
        IntentStatus::Voided => state_error(format!("intent `{id}` is already voided")),
        IntentStatus::Failed => state_error(format!("intent `{id}` failed; there is nothing to void")),
        IntentStatus::OutcomeUnknown => Err(unknown_error(OP, intent)),
        other => state_error(format!("intent `{id}` is {}; it cannot be voided", other.as_str())),
    }
}

/// Validates an increment of the authorization to `new_total` against the intent.
///
/// # Errors
/// - `InvalidState` unless the intent is `Authorized` with nothing captured: once anything is captured the
///   message says an authorization can be incremented only before the first capture; also before
///   authorization, when voided, failed, or with an unknown outcome pending.
/// - `InvalidRequest` when `new_total` is not in the intent's currency or does not exceed the authorized
///   amount ("new total 50.00 EUR must exceed the authorized 80.00 EUR").
pub fn validate_increment(intent: &PaymentIntent, new_total: Money) -> Result<(), PaymentsError> {
    const OP: Operation = Operation::Increment;
    let id = &intent.id;
    let state_error = |message: String| Err(error(ErrorKind::InvalidState, OP, intent, message));
    let after_capture = || {
        state_error(format!(
            "intent `{id}` has {} captured; an authorization can be incremented only before the first capture",
            intent.captured
        ))
    };
    match intent.status {
        IntentStatus::Authorized if intent.captured.is_positive() => return after_capture(),
        IntentStatus::Authorized => {}
        IntentStatus::PartiallyCaptured
        | IntentStatus::Captured
        | IntentStatus::PartiallyRefunded
        | IntentStatus::Refunded => return after_capture(),
        IntentStatus::RequiresAuthorization => {
            return state_error(format!("intent `{id}` is not authorized yet; there is nothing to increment"));
        }
        IntentStatus::Voided => return state_error(format!("intent `{id}` was voided; it cannot be incremented")),
        IntentStatus::Failed => return state_error(format!("intent `{id}` failed; it cannot be incremented")),
        IntentStatus::OutcomeUnknown => return Err(unknown_error(OP, intent)),
        other => return state_error(format!("intent `{id}` is {}; it cannot be incremented", other.as_str())),
    }
    let authorized = intent.authorized;
    if new_total.currency() != authorized.currency() {
        return Err(error(
            ErrorKind::InvalidRequest,
            OP,
            intent,
            format!(
                "new total {new_total} is not in the intent's currency {} (authorized {authorized})",
                authorized.currency()
            ),
        ));
    }
    if new_total.minor() <= authorized.minor() {
        return Err(error(
            ErrorKind::InvalidRequest,
            OP,
            intent,
            format!("new total {new_total} must exceed the authorized {authorized}"),
        ));
    }
    Ok(())
}

/// Validates a command against the intent and resolves it.
///
/// # Errors
/// Those of [`validate_capture`], [`validate_refund`], [`validate_void`] and [`validate_increment`].
pub fn resolve(intent: &PaymentIntent, command: Command) -> Result<Modification, PaymentsError> {
    match command {
        Command::Increment { new_total } => {
            validate_increment(intent, new_total).map(|()| Modification::Increment { new_total })
        }
        Command::Capture { amount, final_capture } => {
            validate_capture(intent, amount).map(|amount| Modification::Capture { amount, final_capture })
        }
        Command::Refund { amount } => validate_refund(intent, amount).map(|()| Modification::Refund { amount }),
        Command::Void => validate_void(intent).map(|()| Modification::Void),
    }
}

/// Checks a modification against what the gateway supports, so an unsupported one never reaches it.
///
/// # Errors
/// `Unsupported` naming the missing capability (partial or multiple captures or refunds, void, incremental
/// authorization).
pub fn check_supported(
    intent: &PaymentIntent,
    modification: &Modification,
    capabilities: &GatewayCapabilities,
) -> Result<(), PaymentsError> {
    let op = modification.operation();
    let unsupported = |what: &str| {
        Err(error(
            ErrorKind::Unsupported,
            op,
            intent,
            format!("the gateway of intent `{}` does not support {what}", intent.id),
        ))
    };
    match *modification {
        Modification::Capture { amount, .. } => {
            if intent.captured.is_positive() && !capabilities.multiple_captures {
                return unsupported("multiple captures");
            }
            let capturable = sub(op, intent, intent.authorized, intent.captured)?;
            if amount.minor() < capturable.minor() && !capabilities.partial_capture {
                return unsupported("partial capture");
            }
        }
        Modification::Refund { amount } => {
            if intent.refunded.is_positive() && !capabilities.multiple_refunds {
                return unsupported("multiple refunds");
            }
            let refundable = sub(op, intent, intent.captured, intent.refunded)?;
            if amount.minor() < refundable.minor() && !capabilities.partial_refund {
                return unsupported("partial refund");
            }
        }
        Modification::Void => {
            if !capabilities.void {
                return unsupported("void");
            }
        }
        Modification::Increment { .. } => {
            if !capabilities.incremental_authorization {
                return unsupported("incremental authorization");
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Admission

/// Decides what to do with an authorization retried on an existing intent (the intent id is derived from the
/// idempotency key, so a retry lands here). Returns the call to send: the recorded one, so a retry always
/// sends the provider key of the first attempt.
///
/// # Errors
/// `IdempotencyConflict` when the key was first used with other parameters; `Unexpected` when the intent has
/// no recorded authorization parameters.
pub fn admit_authorize(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    call: &ProviderCall,
) -> Result<Admission<ProviderCall>, PaymentsError> {
    const OP: Operation = Operation::Authorize;
    let Some(params) = authorize_params(history) else {
        return Err(error(
            ErrorKind::Unexpected,
            OP,
            intent,
            format!("intent `{}` has no recorded authorization parameters", intent.id),
        ));
    };
    let recorded = params.call;
    if !recorded.same_request(call) {
        return Err(conflict(OP, recorded.operation, intent));
    }
    if applied_call(history, &recorded.provider_key).is_some() {
        return Ok(Admission::AlreadyApplied);
    }
    match intent.status {
        IntentStatus::RequiresAuthorization => Ok(Admission::Send(recorded)),
        IntentStatus::OutcomeUnknown => match pending_operation(intent, history) {
            Some(p) if p.call == recorded => Ok(Admission::Send(recorded)),
            Some(p) => Err(pending_error(OP, intent, &p)),
            None => Err(no_pending_record(OP, intent)),
        },
        // The authorization's answer is reflected in the intent already.
        _ => Ok(Admission::AlreadyApplied),
    }
}

/// Decides what to do with a capture, refund, void or increment before any provider call.
///
/// - The call was applied before (a retry after its answer was recorded, e.g. by a reconciliation):
///   [`Admission::AlreadyApplied`].
/// - The intent is `OutcomeUnknown` and this is the pending call (same provider key and parameters): validated
///   against the intent as it was before the call (its amounts have not moved) and sent again.
/// - Otherwise validated with [`resolve`].
///
/// # Errors
/// Those of [`resolve`]; `IdempotencyConflict` when the provider key was used for another operation or other
/// parameters; `InvalidState` (retryable) while another operation's outcome is unknown.
pub fn admit_modification(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    call: &ProviderCall,
    command: Command,
) -> Result<Admission<Modification>, PaymentsError> {
    let op = call.operation;
    if let Some(applied) = applied_call(history, &call.provider_key) {
        return if applied.same_request(call) {
            Ok(Admission::AlreadyApplied)
        } else {
            Err(conflict(op, applied.operation, intent))
        };
    }
    if intent.status != IntentStatus::OutcomeUnknown {
        return resolve(intent, command).map(Admission::Send);
    }
    let Some(pending) = pending_operation(intent, history) else {
        return Err(no_pending_record(op, intent));
    };
    if pending.call.provider_key != call.provider_key {
        return Err(pending_error(op, intent, &pending));
    }
    if !pending.call.same_request(call) {
        return Err(conflict(op, pending.call.operation, intent));
    }
    let modification = resolve(&with_status(intent, pending.prior_status), command)?;
    if modification.amount() != pending.amount || modification.final_capture() != pending.final_capture {
        return Err(error(
            ErrorKind::Unexpected,
            op,
            intent,
            format!("the retried {op} on intent `{}` resolves differently from the pending one", intent.id),
        ));
    }
    Ok(Admission::Send(modification))
}

// ---------------------------------------------------------------------------------------------------------
// Application

/// Checks the invariants of a transition from `prev` to `next`: same identity and currency, version one higher,
/// amounts never decreasing, captured at most authorized, refunded at most captured, terminal states final.
///
/// # Errors
/// `Unexpected` naming the broken invariant (a bug, or a provider answer that contradicts the intent).
pub fn check_transition(prev: &PaymentIntent, next: &PaymentIntent, operation: Operation) -> Result<(), PaymentsError> {
    let fail = |message: String| {
        Err(error(ErrorKind::Unexpected, operation, prev, format!("{operation} would break an invariant: {message}")))
    };
    if prev.id != next.id || prev.tenant != next.tenant {
        return fail("the intent's identity changed".to_owned());
    }
    if prev.version.checked_add(1) != Some(next.version) {
        return fail(format!("version {} does not follow {}", next.version, prev.version));
    }
    if prev.status.is_terminal() {
        return fail(format!("intent `{}` is {}, a terminal state", prev.id, prev.status.as_str()));
    }
    let currency = prev.amount.currency();
    for (name, before, after) in [
        ("authorized", prev.authorized, next.authorized),
        ("captured", prev.captured, next.captured),
        ("refunded", prev.refunded, next.refunded),
    ] {
        if after.currency() != currency {
            return fail(format!("{name} {after} is not in the intent's currency {currency}"));
        }
        if after.minor() < before.minor() {
            return fail(format!("{name} would decrease from {before} to {after}"));
        }
    }
    if next.captured.minor() > next.authorized.minor() {
        return fail(format!("captured {} exceeds authorized {}", next.captured, next.authorized));
    }
    if next.refunded.minor() > next.captured.minor() {
        return fail(format!("refunded {} exceeds captured {}", next.refunded, next.captured));
    }
    Ok(())
}

struct EventParts {
    operation: Operation,
    amount: Option<Money>,
    provider_reference: Option<String>,
    text: String,
    tag: EventTag,
}

fn transition(
    prev: &PaymentIntent,
    mut next: PaymentIntent,
    now: OffsetDateTime,
    parts: EventParts,
) -> Result<Transition, PaymentsError> {
    next.version = prev
        .version
        .checked_add(1)
        .ok_or_else(|| error(ErrorKind::Unexpected, parts.operation, prev, "version overflow"))?;
    next.updated_at = now;
    check_transition(prev, &next, parts.operation)?;
    let event = IntentEvent::new(next.version, now, parts.operation.as_str(), next.status);
    let mut event = with_record(event, &parts.text, &parts.tag)?;
    if let Some(amount) = parts.amount {
        event = event.with_amount(amount);
    }
    if let Some(reference) = parts.provider_reference {
        event = event.with_provider_reference(reference);
    }
    Ok(Transition { intent: next, event })
}

/// The first event of a new intent (`create`, version 1), recording the authorization parameters.
///
/// # Errors
/// `Unexpected` if the record cannot be encoded.
pub fn creation(intent: PaymentIntent, params: AuthorizeParams) -> Result<Transition, PaymentsError> {
    let text = format!("created for {} ({}, reference {})", intent.amount, intent.tender, intent.reference);
    let tag = EventTag { authorize: Some(params), ..EventTag::default() };
    let event = IntentEvent::new(intent.version, intent.created_at, Operation::Create.as_str(), intent.status)
        .with_amount(intent.amount);
    let event = with_record(event, &text, &tag)?;
    Ok(Transition { intent, event })
}

/// Whether the intent is waiting for the answer to this authorization call.
fn awaits_authorization(intent: &PaymentIntent, history: &[IntentEvent], call: &ProviderCall) -> bool {
    match intent.status {
        IntentStatus::RequiresAuthorization => true,
        IntentStatus::OutcomeUnknown => pending_operation(intent, history).is_some_and(|p| p.call == *call),
        _ => false,
    }
}

/// Applies the provider's answer to an authorization: `Authorized`, `Captured` (automatic capture), `Failed`
/// (declined), or `OutcomeUnknown` while the provider reports it pending.
///
/// # Errors
/// `Unexpected` when the snapshot contradicts the intent (other currency, more than asked, unknown status).
pub fn apply_authorization(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    call: &ProviderCall,
    snapshot: &PaymentSnapshot,
    now: OffsetDateTime,
) -> Result<Option<Transition>, PaymentsError> {
    const OP: Operation = Operation::Authorize;
    if applied_call(history, &call.provider_key).is_some() || !awaits_authorization(intent, history, call) {
        return Ok(None);
    }
    let mut next = intent.clone();
    next.provider_reference = Some(snapshot.provider_reference.clone());
    let applied = EventTag { applied: Some(call.clone()), ..EventTag::default() };
    let (text, tag) = match snapshot.status {
        ProviderPaymentStatus::Authorized | ProviderPaymentStatus::Captured => {
            if snapshot.authorized.currency() != intent.amount.currency()
                || !snapshot.authorized.is_positive()
                || snapshot.authorized.minor() > intent.amount.minor()
            {
                return Err(error(
                    ErrorKind::Unexpected,
                    OP,
                    intent,
                    format!("the provider authorized {} for an intent of {}", snapshot.authorized, intent.amount),
                ));
            }
            next.authorized = snapshot.authorized;
            next.captured = snapshot.captured;
            next.refunded = snapshot.refunded;
            next.status = if !next.captured.is_positive() {
                IntentStatus::Authorized
            } else if next.captured == next.authorized {
                IntentStatus::Captured
            } else {
                IntentStatus::PartiallyCaptured
            };
            let text = if next.captured.is_positive() {
                format!("authorized {} and captured {}", next.authorized, next.captured)
            } else {
                format!("authorized {}", next.authorized)
            };
            (text, applied)
        }
        ProviderPaymentStatus::Pending | ProviderPaymentStatus::RequiresAction => {
            if intent.status == IntentStatus::OutcomeUnknown && intent.provider_reference.is_some() {
                return Ok(None);
            }
            next.status = IntentStatus::OutcomeUnknown;
            let pending = PendingOperation {
                call: call.clone(),
                amount: Some(intent.amount),
                final_capture: false,
                prior_status: IntentStatus::RequiresAuthorization,
                since: None,
            };
            (
                format!("authorization pending at the provider ({:?}); awaiting its outcome", snapshot.status),
                EventTag { pending: Some(pending), ..EventTag::default() },
            )
        }
        ProviderPaymentStatus::Declined | ProviderPaymentStatus::Failed | ProviderPaymentStatus::Voided => {
            next.status = IntentStatus::Failed;
            (format!("the provider reports the authorization {:?}", snapshot.status), applied)
        }
        other => {
            return Err(error(ErrorKind::Unexpected, OP, intent, format!("unknown provider status {other:?}")));
        }
    };
    let parts = EventParts {
        operation: OP,
        amount: Some(intent.amount),
        provider_reference: Some(snapshot.provider_reference.clone()),
        text,
        tag,
    };
    transition(intent, next, now, parts).map(Some)
}

/// Applies a certain refusal of an authorization (declined, invalid, unsupported, ...): the intent fails.
///
/// # Errors
/// `Unexpected` only if the transition would break an invariant.
pub fn apply_authorization_refused(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    call: &ProviderCall,
    refusal: &PaymentsError,
    now: OffsetDateTime,
) -> Result<Option<Transition>, PaymentsError> {
    if applied_call(history, &call.provider_key).is_some() || !awaits_authorization(intent, history, call) {
        return Ok(None);
    }
    let mut next = intent.clone();
    next.status = IntentStatus::Failed;
    let mut text = format!("authorization refused ({}): {}", refusal.kind(), refusal.message());
    if let Some(code) = refusal.decline().and_then(|d| d.decline_code.as_deref()) {
        text.push_str(&format!(" (decline code {code})"));
    }
    let parts = EventParts {
        operation: Operation::Authorize,
        amount: Some(intent.amount),
        provider_reference: None,
        text,
        tag: EventTag { applied: Some(call.clone()), ..EventTag::default() },
    };
    transition(intent, next, now, parts).map(Some)
}

/// Applies the provider's confirmation of a capture, refund, void or increment.
///
/// A final capture of less than authorized leaves the intent `Captured` (the rest is released). A
/// confirmation of a call that was pending takes the intent out of `OutcomeUnknown`; amounts are added here,
/// once. An answer with [`ModificationStatus::Pending`] (asynchronous providers) leaves the intent
/// `OutcomeUnknown` with the call pending, until a reconciliation (or, later, a webhook) settles it. A
/// confirmed increment raises `authorized` and `amount` to its new total (the provider's own view of it goes
/// through [`apply_increment`]).
///
/// # Errors
/// `InvalidState`/`InvalidRequest` when the intent moved concurrently so that the confirmed modification no
/// longer fits; `InvalidState` (retryable) when another call's outcome is unknown; `Unexpected` for an
/// unknown provider status.
pub fn apply_modification(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    call: &ProviderCall,
    modification: &Modification,
    result: &ModificationResult,
    now: OffsetDateTime,
) -> Result<Option<Transition>, PaymentsError> {
    modification_transition(intent, history, call, modification, result, None, now)
}

/// Applies the provider's answer to an increment: the snapshot of the payment after it.
///
/// `authorized` becomes the larger of the intent's and the snapshot's (never smaller than before), `amount`
/// becomes `new_total`, and the status stays `Authorized`; the event records the new total and the applied
/// call, so a late retry with the same key is recognised. A snapshot the provider still reports pending
/// leaves the intent `OutcomeUnknown` with the call pending, like an asynchronous capture.
///
/// # Errors
/// Those of [`apply_modification`]; `Unexpected` when the snapshot belongs to another payment, is in
/// another currency, or authorizes more than `new_total`.
pub fn apply_increment(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    call: &ProviderCall,
    new_total: Money,
    snapshot: &PaymentSnapshot,
    now: OffsetDateTime,
) -> Result<Option<Transition>, PaymentsError> {
    const OP: Operation = Operation::Increment;
    if let Some(reference) = &intent.provider_reference
        && *reference != snapshot.provider_reference
    {
        return Err(error(
            ErrorKind::Unexpected,
            OP,
            intent,
            format!(
                "snapshot of `{}` does not belong to intent `{}` (`{reference}`)",
                snapshot.provider_reference, intent.id
            ),
        ));
    }
    if snapshot.authorized.currency() != new_total.currency() || snapshot.authorized.minor() > new_total.minor() {
        return Err(error(
            ErrorKind::Unexpected,
            OP,
            intent,
            format!("the provider authorized {} for an increment to {new_total}", snapshot.authorized),
        ));
    }
    let status = match snapshot.status {
        ProviderPaymentStatus::Pending | ProviderPaymentStatus::RequiresAction => ModificationStatus::Pending,
        _ => ModificationStatus::Succeeded,
    };
    let result = ModificationResult::new(snapshot.provider_reference.clone(), status, new_total);
    let modification = Modification::Increment { new_total };
    modification_transition(intent, history, call, &modification, &result, Some(snapshot.authorized), now)
}

/// [`apply_modification`]; `provider_authorized` is what the provider reports authorized after an increment
/// (`None`: the new total).
fn modification_transition(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    call: &ProviderCall,
    modification: &Modification,
    result: &ModificationResult,
    provider_authorized: Option<Money>,
    now: OffsetDateTime,
) -> Result<Option<Transition>, PaymentsError> {
    let op = modification.operation();
    if applied_call(history, &call.provider_key).is_some() {
        return Ok(None);
    }
    let pending = pending_operation(intent, history);
    let base = match &pending {
        Some(p) if p.call == *call => with_status(intent, p.prior_status),
        Some(p) => return Err(pending_error(op, intent, p)),
        None if intent.status == IntentStatus::OutcomeUnknown => return Err(no_pending_record(op, intent)),
        None => intent.clone(),
    };
    let command = match *modification {
        Modification::Capture { amount, final_capture } => Command::Capture { amount: Some(amount), final_capture },
        Modification::Refund { amount } => Command::Refund { amount },
        Modification::Void => Command::Void,
        Modification::Increment { new_total } => Command::Increment { new_total },
    };
    resolve(&base, command)?;
    let amount = modification.amount();
    match result.status {
        ModificationStatus::Succeeded => {}
        ModificationStatus::Pending => {
            if pending.is_some() {
                return Ok(None);
            }
            let mut next = intent.clone();
            next.status = IntentStatus::OutcomeUnknown;
            let record = PendingOperation {
                call: call.clone(),
                amount,
                final_capture: modification.final_capture(),
                prior_status: intent.status,
                since: None,
            };
            let parts = EventParts {
                operation: op,
                amount,
                provider_reference: Some(result.provider_reference.clone()),
                text: format!("{op} accepted by the provider; awaiting its outcome"),
                tag: EventTag { pending: Some(record), ..EventTag::default() },
            };
            return transition(intent, next, now, parts).map(Some);
        }
        other => {
            return Err(error(ErrorKind::Unexpected, op, intent, format!("unknown modification status {other:?}")));
        }
    }
    let mut next = base;
    let text = match *modification {
        Modification::Capture { amount, final_capture } => {
            next.captured = add(op, intent, next.captured, amount)?;
            let full = next.captured == next.authorized;
            next.status = if final_capture || full { IntentStatus::Captured } else { IntentStatus::PartiallyCaptured };
            if final_capture && !full {
                let released = sub(op, intent, next.authorized, next.captured)?;
                format!("captured {amount} (final; {released} released)")
            } else {
                format!("captured {amount}")
            }
        }
        Modification::Refund { amount } => {
            next.refunded = add(op, intent, next.refunded, amount)?;
            next.status =
                if next.refunded == next.captured { IntentStatus::Refunded } else { IntentStatus::PartiallyRefunded };
            format!("refunded {amount}")
        }
        Modification::Void => {
            next.status = IntentStatus::Voided;
            format!("voided; {} released", next.authorized)
        }
        Modification::Increment { new_total } => {
            let previous = next.authorized;
            let reported = provider_authorized.unwrap_or(new_total);
            if reported.minor() > next.authorized.minor() {
                next.authorized = reported;
            }
            next.amount = new_total;
            next.status = IntentStatus::Authorized;
            if next.authorized.minor() < new_total.minor() {
                format!(
                    "authorization incremented to {new_total}; the provider reports {} authorized (was {previous})",
                    next.authorized
                )
            } else {
                format!("authorization incremented from {previous} to {}", next.authorized)
            }
        }
    };
    let parts = EventParts {
        operation: op,
        amount,
        provider_reference: Some(result.provider_reference.clone()),
        text,
        tag: EventTag { applied: Some(call.clone()), ..EventTag::default() },
    };
    transition(intent, next, now, parts).map(Some)
}

/// Applies a certain refusal of a capture, refund, void or increment. The intent is unchanged (`Ok(None)`),
/// unless the refused call was pending: then the intent returns to its status before the call (amounts as
/// they were). [`apply_increment_refusal`] also records a refusal that was not pending.
///
/// # Errors
/// `Unexpected` only if the transition would break an invariant.
pub fn apply_refusal(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    call: &ProviderCall,
    refusal: &PaymentsError,
    now: OffsetDateTime,
) -> Result<Option<Transition>, PaymentsError> {
    let Some(pending) = pending_operation(intent, history).filter(|p| p.call == *call) else {
        return Ok(None);
    };
    let next = with_status(intent, pending.prior_status);
    let parts = EventParts {
        operation: call.operation,
        amount: pending.amount,
        provider_reference: None,
        text: format!("{} refused by the provider ({}): {}", call.operation, refusal.kind(), refusal.message()),
        tag: EventTag::default(),
    };
    transition(intent, next, now, parts).map(Some)
}

/// Applies a certain refusal of an increment to `new_total` (declined, invalid, ...). The authorization
/// stays as it was, its original amount still capturable, and the refusal is recorded in the history: by
/// [`apply_refusal`] when the increment was pending (the intent returns to its prior status), otherwise by an
/// `increment` event that changes nothing else. Nothing is recorded on a terminal intent or while another
/// call's outcome is unknown (`Ok(None)`).
///
/// # Errors
/// `Unexpected` only if the transition would break an invariant.
pub fn apply_increment_refusal(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    call: &ProviderCall,
    new_total: Money,
    refusal: &PaymentsError,
    now: OffsetDateTime,
) -> Result<Option<Transition>, PaymentsError> {
    if intent.status == IntentStatus::OutcomeUnknown {
        return apply_refusal(intent, history, call, refusal, now);
    }
    if intent.status.is_terminal() {
        return Ok(None);
    }
    let mut text =
        format!("increment to {new_total} refused by the provider ({}): {}", refusal.kind(), refusal.message());
    if let Some(code) = refusal.decline().and_then(|d| d.decline_code.as_deref()) {
        text.push_str(&format!(" (decline code {code})"));
    }
    text.push_str(&format!("; {} stays authorized", intent.authorized));
    let parts = EventParts {
        operation: Operation::Increment,
        amount: Some(new_total),
        provider_reference: None,
        text,
        tag: EventTag::default(),
    };
    transition(intent, intent.clone(), now, parts).map(Some)
}

/// Records that the outcome of `call` is unknown: the intent becomes `OutcomeUnknown` with its amounts as they
/// were, and the event records the pending call (operation, `amount`, detail "outcome unknown: ...", and
/// `since`, when the call may have reached the provider before now: see [`PendingOperation::since`]).
/// `Ok(None)` when that call is already pending or already applied.
///
/// # Errors
/// `InvalidState` (retryable) when another call is pending; `Unexpected` on a terminal intent.
#[expect(clippy::too_many_arguments, reason = "the parts of one pending call")]
pub fn apply_unknown(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    call: &ProviderCall,
    amount: Option<Money>,
    final_capture: bool,
    message: &str,
    since: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Result<Option<Transition>, PaymentsError> {
    let op = call.operation;
    if applied_call(history, &call.provider_key).is_some() {
        return Ok(None);
    }
    if intent.status == IntentStatus::OutcomeUnknown {
        return match pending_operation(intent, history) {
            Some(p) if p.call == *call => Ok(None),
            Some(p) => Err(pending_error(op, intent, &p)),
            None => Err(no_pending_record(op, intent)),
        };
    }
    let mut next = intent.clone();
    next.status = IntentStatus::OutcomeUnknown;
    let since = since.filter(|since| *since < now);
    let record = PendingOperation { call: call.clone(), amount, final_capture, prior_status: intent.status, since };
    let parts = EventParts {
        operation: op,
        amount,
        provider_reference: None,
        text: format!("outcome unknown: {message}"),
        tag: EventTag { pending: Some(record), ..EventTag::default() },
    };
    transition(intent, next, now, parts).map(Some)
}

/// Settles the intent from the provider's view (reconciliation), never moving an amount backwards.
///
/// Amounts become the larger of the intent's and the provider's. A pending call counts as applied when the
/// provider shows its effect (the captured or refunded amount grew by at least the pending amount, the payment
/// is voided, the authorization exists, the authorized amount reached an increment's new total); the event
/// then records it as applied, so a later retry with its key is recognised. If the provider does not show it,
/// the intent returns to its prior status and a retry with the same key sends the call again (the provider
/// replays whatever it decided).
///
/// A pending increment that took effect raises `amount` to its new total and `authorized` to the provider's;
/// one the provider still shows at the old authorized amount did not take effect: the intent returns to
/// `Authorized` with its old amounts (the original authorization stays capturable). An intent's `amount` is
/// never left below what the provider reports authorized. While the provider itself
/// reports the payment pending, an `OutcomeUnknown` intent stays as it is. `Ok(None)` when nothing changes.
///
/// # Errors
/// `Unexpected` when the snapshot belongs to another payment, is in another currency, or would break an
/// invariant (captured above authorized, ...).
pub fn apply_snapshot(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    snapshot: &PaymentSnapshot,
    now: OffsetDateTime,
) -> Result<Option<Transition>, PaymentsError> {
    const OP: Operation = Operation::Reconcile;
    if intent.status.is_terminal() {
        return Ok(None);
    }
    if let Some(reference) = &intent.provider_reference
        && *reference != snapshot.provider_reference
    {
        return Err(error(
            ErrorKind::Unexpected,
            OP,
            intent,
            format!(
                "snapshot of `{}` does not belong to intent `{}` (`{reference}`)",
                snapshot.provider_reference, intent.id
            ),
        ));
    }
    let pending = pending_operation(intent, history);
    if intent.status == IntentStatus::OutcomeUnknown && pending.is_none() {
        return Err(no_pending_record(OP, intent));
    }
    let provider_undecided =
        matches!(snapshot.status, ProviderPaymentStatus::Pending | ProviderPaymentStatus::RequiresAction);
    if provider_undecided && pending.is_some() {
        return Ok(None);
    }
    let max = |ours: Money, theirs: Money| -> Result<Money, PaymentsError> {
        if theirs.currency() != ours.currency() {
            return Err(error(
                ErrorKind::Unexpected,
                OP,
                intent,
                format!("provider amount {theirs} is not in the intent's currency {}", ours.currency()),
            ));
        }
        Ok(if theirs.minor() > ours.minor() { theirs } else { ours })
    };
    let mut next = intent.clone();
    next.provider_reference = Some(snapshot.provider_reference.clone());
    next.authorized = max(intent.authorized, snapshot.authorized)?;
    next.captured = max(intent.captured, snapshot.captured)?;
    next.refunded = max(intent.refunded, snapshot.refunded)?;

    let grew_by = |ours: Money, now_: Money, by: Option<Money>| {
        by.is_some_and(|b| now_.minor().saturating_sub(ours.minor()) >= b.minor())
    };
    let pending_applied = pending.as_ref().is_some_and(|p| match p.call.operation {
        Operation::Authorize => matches!(
            snapshot.status,
            ProviderPaymentStatus::Authorized
                | ProviderPaymentStatus::Captured
                | ProviderPaymentStatus::Declined
                | ProviderPaymentStatus::Failed
        ),
        Operation::Capture => grew_by(intent.captured, next.captured, p.amount),
        Operation::Refund => grew_by(intent.refunded, next.refunded, p.amount),
        Operation::Void => snapshot.status == ProviderPaymentStatus::Voided,
        Operation::Increment => p.amount.is_some_and(|total| next.authorized.minor() >= total.minor()),
        _ => false,
    });
    if let Some(total) =
        pending.as_ref().filter(|p| pending_applied && p.call.operation == Operation::Increment).and_then(|p| p.amount)
    {
        next.amount = max(next.amount, total)?;
    }
    // An increment made at the provider raises the amount too (the intent's amount is never below what is
    // authorized).
    next.amount = max(next.amount, next.authorized)?;
    let base_status = pending.as_ref().map_or(intent.status, |p| p.prior_status);
    let capture_closed = matches!(base_status, IntentStatus::Captured | IntentStatus::PartiallyRefunded)
        || pending
            .as_ref()
            .is_some_and(|p| pending_applied && p.call.operation == Operation::Capture && p.final_capture);
    next.status = if snapshot.status == ProviderPaymentStatus::Voided && !next.captured.is_positive() {
        IntentStatus::Voided
    } else if matches!(snapshot.status, ProviderPaymentStatus::Declined | ProviderPaymentStatus::Failed)
        && !next.authorized.is_positive()
    {
        IntentStatus::Failed
    } else if next.refunded.is_positive() {
        if next.refunded == next.captured { IntentStatus::Refunded } else { IntentStatus::PartiallyRefunded }
    } else if next.captured.is_positive() {
        if capture_closed || next.captured == next.authorized {
            IntentStatus::Captured
        } else {
            IntentStatus::PartiallyCaptured
        }
    } else if next.authorized.is_positive() {
        IntentStatus::Authorized
    } else if provider_undecided {
        intent.status
    } else {
        base_status
    };
    if pending.is_none() && next == *intent {
        return Ok(None);
    }
    let mut text = format!(
        "reconciled with the provider ({:?}): authorized {}, captured {}, refunded {}",
        snapshot.status, next.authorized, next.captured, next.refunded
    );
    let mut tag = EventTag::default();
    if let Some(p) = &pending {
        let what = match p.amount {
            Some(amount) => format!("{} of {amount}", p.call.operation),
            None => p.call.operation.to_string(),
        };
        if pending_applied {
            text.push_str(&format!("; the pending {what} took effect"));
            tag.applied = Some(p.call.clone());
        } else {
            text.push_str(&format!("; the pending {what} did not take effect"));
        }
    }
    let parts = EventParts {
        operation: OP,
        amount: None,
        provider_reference: Some(snapshot.provider_reference.clone()),
        text,
        tag,
    };
    transition(intent, next, now, parts).map(Some)
}

pub mod webhook;

pub use webhook::{WebhookOutcome, applied_webhook, apply_webhook};

#[cfg(test)]
mod tests;
