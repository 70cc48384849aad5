//! Applying a provider's webhook notification to an intent, as a pure function.
//!
//! Notifications arrive late, twice, or out of order, so application is a *join*: every amount becomes the
//! larger of ours and what the event implies, and the status is derived from the amounts. Nothing ever moves
//! backwards, and applying the same set of events in any order (with redeliveries) ends in the same intent.
//!
//! - `Authorized` (amount, default the intent's amount): authorized grows to it. It settles a pending
//!   increment when its amount is at least the increment's new total (the amount then becomes the new total);
//!   an event with the old amount, or none, does not settle it (ignored while it is pending) and never lowers
//!   anything.
//! - `Captured` (the provider's cumulative captured amount, Stripe's `amount_received`): captured grows to
//!   it and the capture is closed (Stripe's `payment_intent.succeeded`); a capture before any authorization
//!   is known implies the authorization of the intent's amount.
//! - `Refunded` (the provider's cumulative refunded amount, Stripe's `charge.refunded`): refunded grows to
//!   it, and captured at least to it. A captured amount inferred from a refund is not *confirmed*: the intent
//!   stays `PartiallyRefunded` (not the terminal `Refunded`) until a capture confirms it, so a late capture
//!   notification can still raise it. An event carrying one refund's amount (`refund.created`) is
//!   under-counted by the maximum rule until the cumulative one or a reconciliation arrives; it is never
//!   over-counted.
//! - `Voided` before any capture voids the intent; after a capture it is a conflict, recorded in the history
//!   without any change.
//! - `AuthorizationFailed` fails an intent still waiting for its authorization; `CaptureFailed` and
//!   `RefundFailed` return an intent whose capture or refund outcome is unknown to its prior status.
//!
//! An event whose `success` is false counts as the failure of its kind. Every change is recorded by an event
//! with operation `webhook` whose detail names the event id; the same id is never applied twice
//! ([`applied_webhook`]). A pending call (decision 007) is settled like a reconciliation would settle it when
//! the event shows its effect, and recorded as applied; an event that does not settle it is ignored while the
//! call is pending (a reconciliation settles the intent from the provider's whole view).

use commerce_ports::stores::{IntentEvent, IntentStatus, PaymentIntent};
use commerce_ports::webhook::{PaymentEventKind, WebhookEvent};
use commerce_ports::{ErrorKind, Money};
use time::OffsetDateTime;

use super::{
    EventParts, EventTag, Operation, PendingOperation, Transition, error, no_pending_record, pending_operation, tag_of,
    transition, with_status,
};
use crate::error::PaymentsError;

const OP: Operation = Operation::Webhook;

/// What a webhook event does to an intent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookOutcome {
    /// The history already records this event id: nothing to do (a redelivery).
    AlreadyApplied,
    /// Store this transition: the event changes the intent (or settles its pending call).
    Apply(Transition),
    /// The event contradicts the intent (a void after a capture, an amount above the intent's); store this
    /// transition, which records the conflict in the history and changes nothing else.
    Conflict(Transition),
    /// Nothing to change: the intent already reflects the event, is terminal, or waits for another call's
    /// outcome. The text says which.
    Ignored(String),
}

/// Whether the history records the webhook event `event_id`.
pub fn applied_webhook(history: &[IntentEvent], event_id: &str) -> bool {
    history.iter().filter_map(tag_of).any(|t| t.webhook.as_deref() == Some(event_id))
}

/// Whether a capture is confirmed: by an operation of ours or a reconciliation that left the intent captured,
/// or by a capture notification. A captured amount inferred from a refund notification is not.
fn capture_confirmed(history: &[IntentEvent]) -> bool {
    history.iter().any(|e| {
        let captured_status = matches!(
            e.status,
            IntentStatus::PartiallyCaptured
                | IntentStatus::Captured
                | IntentStatus::PartiallyRefunded
                | IntentStatus::Refunded
        );
        if e.operation == Operation::Webhook.as_str() {
            tag_of(e).is_some_and(|t| t.capture_confirmed)
        } else {
            captured_status
        }
    })
}

/// The event's meaning, with `success: false` read as the failure of its kind.
fn effective_kind(event: &WebhookEvent) -> PaymentEventKind {
    match (&event.kind, event.success) {
        (PaymentEventKind::Authorized, false) => PaymentEventKind::AuthorizationFailed,
        (PaymentEventKind::Captured, false) => PaymentEventKind::CaptureFailed,
        (PaymentEventKind::Refunded, false) => PaymentEventKind::RefundFailed,
        (kind, _) => kind.clone(),
    }
}

fn larger(a: Money, b: Money) -> Money {
    if b.minor() > a.minor() { b } else { a }
}

/// Whether `after` exceeds `before` by at least `by`.
fn grew_by(before: Money, after: Money, by: Option<Money>) -> bool {
    by.is_some_and(|b| after.minor().saturating_sub(before.minor()) >= b.minor())
}

fn describe(pending: &PendingOperation) -> String {
    match pending.amount {
        Some(amount) => format!("{} of {amount}", pending.call.operation),
        None => pending.call.operation.to_string(),
    }
}

/// Applies a verified webhook event to the intent it concerns (see the [module docs](self)).
///
/// Pure and idempotent: an event id the history records gives [`WebhookOutcome::AlreadyApplied`].
///
/// # Errors
/// `Unexpected` when the intent is `OutcomeUnknown` without a pending record, or the transition would break
/// an invariant.
pub fn apply_webhook(
    intent: &PaymentIntent,
    history: &[IntentEvent],
    event: &WebhookEvent,
    now: OffsetDateTime,
) -> Result<WebhookOutcome, PaymentsError> {
    if applied_webhook(history, &event.event_id) {
        return Ok(WebhookOutcome::AlreadyApplied);
    }
    if intent.status.is_terminal() {
        return Ok(WebhookOutcome::Ignored(format!(
            "intent `{}` is {}, a terminal state",
            intent.id,
            intent.status.as_str()
        )));
    }
    let pending = pending_operation(intent, history);
    if intent.status == IntentStatus::OutcomeUnknown && pending.is_none() {
        return Err(no_pending_record(OP, intent));
    }
    let base_status = pending.as_ref().map_or(intent.status, |p| p.prior_status);
    let base = with_status(intent, base_status);
    let kind = effective_kind(event);
    let currency = intent.amount.currency();

    // An amount the intent cannot hold is a conflict, whatever the kind. A pending increment may hold its new
    // total.
    let increment = pending.as_ref().filter(|p| p.call.operation == Operation::Increment).and_then(|p| p.amount);
    let limit = increment.map_or(intent.amount, |total| larger(intent.amount, total));
    let amount = match event.amount {
        Some(a) if a.currency() != currency || a.minor() < 0 || a.minor() > limit.minor() => {
            let why = format!("its amount {a} does not fit the intent of {}", intent.amount);
            return conflict(intent, event, pending.as_ref(), &why, now);
        }
        other => other,
    };

    let mut next = base.clone();
    let mut confirmed = capture_confirmed(history);
    let mut settled = false;
    let mut refused = false;
    match kind {
        PaymentEventKind::Authorized => {
            next.authorized = larger(base.authorized, amount.unwrap_or(intent.amount));
            settled = pending.as_ref().is_some_and(|p| match p.call.operation {
                Operation::Authorize => true,
                Operation::Increment => amount.zip(p.amount).is_some_and(|(a, total)| a.minor() >= total.minor()),
                _ => false,
            });
            if let Some(total) = increment.filter(|_| settled) {
                next.amount = larger(next.amount, total);
            }
        }
        PaymentEventKind::Captured => {
            let fallback = if base.authorized.is_positive() { base.authorized } else { intent.amount };
            let captured = amount.unwrap_or(fallback);
            if !captured.is_positive() {
                return Ok(WebhookOutcome::Ignored("the capture notification carries no amount".to_owned()));
            }
            next.captured = larger(base.captured, captured);
            confirmed = true;
            settled = pending.as_ref().is_some_and(|p| match p.call.operation {
                Operation::Authorize => true,
                Operation::Capture => grew_by(base.captured, next.captured, p.amount),
                _ => false,
            });
        }
        PaymentEventKind::Refunded => {
            let Some(refunded) = amount.filter(Money::is_positive) else {
                return Ok(WebhookOutcome::Ignored("the refund notification carries no amount".to_owned()));
            };
            next.refunded = larger(base.refunded, refunded);
            next.captured = larger(base.captured, next.refunded);
            settled = pending.as_ref().is_some_and(|p| match p.call.operation {
                Operation::Authorize => true,
                Operation::Refund => grew_by(base.refunded, next.refunded, p.amount),
                _ => false,
            });
        }
        PaymentEventKind::Voided => {
            if base.captured.is_positive() {
                let why = format!("the provider reports a void, but {} is captured", base.captured);
                return conflict(intent, event, pending.as_ref(), &why, now);
            }
            settled =
                pending.as_ref().is_some_and(|p| matches!(p.call.operation, Operation::Authorize | Operation::Void));
            if pending.is_none() || settled {
                next.status = IntentStatus::Voided;
            }
        }
        PaymentEventKind::AuthorizationFailed => {
            let awaiting = base_status == IntentStatus::RequiresAuthorization && !base.authorized.is_positive();
            if awaiting {
                next.status = IntentStatus::Failed;
                settled = pending.as_ref().is_some_and(|p| p.call.operation == Operation::Authorize);
            }
        }
        PaymentEventKind::CaptureFailed | PaymentEventKind::RefundFailed => {
            let op = if kind == PaymentEventKind::CaptureFailed { Operation::Capture } else { Operation::Refund };
            refused = pending.as_ref().is_some_and(|p| p.call.operation == op);
        }
        _ => {
            return Ok(WebhookOutcome::Ignored(format!(
                "event type `{}` has no meaning for a payment",
                event.event_type
            )));
        }
    }

    if intent.provider_reference.is_none()
        && event.provider_reference.is_none()
        && matches!(kind, PaymentEventKind::Authorized | PaymentEventKind::Captured | PaymentEventKind::Refunded)
    {
        // Money at the provider that no later call could name: applying it would leave an intent that can be
        // neither captured, refunded nor reconciled. Reconciliation (or a retry with the key) gets the
        // reference from the provider.
        return Ok(WebhookOutcome::Ignored(format!(
            "`{}` ({}) names no provider payment and intent `{}` has none yet; reconcile it",
            event.event_id, event.event_type, intent.id
        )));
    }
    if let Some(p) = &pending
        && !settled
        && !refused
    {
        return Ok(WebhookOutcome::Ignored(format!(
            "the outcome of the pending {} on intent `{}` is unknown and this event does not settle it; reconcile",
            describe(p),
            intent.id
        )));
    }
    if matches!(kind, PaymentEventKind::Authorized | PaymentEventKind::Captured | PaymentEventKind::Refunded) {
        if next.captured.is_positive() && !base.authorized.is_positive() {
            next.authorized = larger(intent.amount, next.captured);
        }
        next.authorized = larger(next.authorized, next.captured);
        next.status = derived_status(&next, base_status, kind == PaymentEventKind::Captured, confirmed);
    }
    if pending.is_none() && next == *intent {
        return Ok(WebhookOutcome::Ignored(format!(
            "intent `{}` already reflects `{}` ({})",
            intent.id, event.event_id, event.event_type
        )));
    }
    if next.provider_reference.is_none() {
        next.provider_reference.clone_from(&event.provider_reference);
    }

    let mut text = format!(
        "webhook {} ({}): {}, authorized {}, captured {}, refunded {}",
        event.event_id,
        event.event_type,
        next.status.as_str(),
        next.authorized,
        next.captured,
        next.refunded
    );
    let mut tag = EventTag {
        webhook: Some(event.event_id.clone()),
        capture_confirmed: kind == PaymentEventKind::Captured,
        ..EventTag::default()
    };
    if let Some(p) = &pending {
        if settled {
            text.push_str(&format!("; the pending {} took effect", describe(p)));
            tag.applied = Some(p.call.clone());
        } else {
            text.push_str(&format!("; the pending {} was refused", describe(p)));
        }
    }
    let parts = EventParts { operation: OP, amount, provider_reference: event.provider_reference.clone(), text, tag };
    transition(intent, next, now, parts).map(WebhookOutcome::Apply)
}

/// The status the amounts say, the way every producer derives it.
fn derived_status(
    next: &PaymentIntent,
    base_status: IntentStatus,
    capture_event: bool,
    confirmed: bool,
) -> IntentStatus {
    let closed = capture_event
        || matches!(base_status, IntentStatus::Captured | IntentStatus::PartiallyRefunded | IntentStatus::Refunded);
    if next.refunded.is_positive() {
        if next.refunded == next.captured && confirmed {
            IntentStatus::Refunded
        } else {
            IntentStatus::PartiallyRefunded
        }
    } else if next.captured.is_positive() {
        if closed || next.captured == next.authorized {
            IntentStatus::Captured
        } else {
            IntentStatus::PartiallyCaptured
        }
    } else if next.authorized.is_positive() {
        IntentStatus::Authorized
    } else {
        base_status
    }
}

/// Records a contradicting event in the history without changing the intent (its pending call, if any,
/// stays pending).
fn conflict(
    intent: &PaymentIntent,
    event: &WebhookEvent,
    pending: Option<&PendingOperation>,
    why: &str,
    now: OffsetDateTime,
) -> Result<WebhookOutcome, PaymentsError> {
    let tag = EventTag { webhook: Some(event.event_id.clone()), pending: pending.cloned(), ..EventTag::default() };
    let parts = EventParts {
        operation: OP,
        amount: event.amount,
        provider_reference: event.provider_reference.clone(),
        text: format!("webhook {} ({}) ignored, conflict: {why}", event.event_id, event.event_type),
        tag,
    };
    if intent.status.is_terminal() {
        return Err(error(ErrorKind::Unexpected, OP, intent, "a terminal intent cannot record a conflict"));
    }
    transition(intent, intent.clone(), now, parts).map(WebhookOutcome::Conflict)
}

#[cfg(test)]
mod tests {
    use commerce_ports::payment::{PaymentMethodRef, PaymentSnapshot, ProviderPaymentStatus, TenderKind};
    use commerce_ports::{ChannelId, Currency, IntentId, TenantId};
    use time::macros::datetime;

    use super::*;
    use crate::state::{AuthorizeParams, ProviderCall, apply_authorization, apply_unknown, creation};

    const T0: OffsetDateTime = datetime!(2025-01-01 12:00 UTC);

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::EUR)
    }

    fn call(operation: Operation, key: &str) -> ProviderCall {
        ProviderCall::new(operation, key, format!("fp-{key}"))
    }

    struct Rec {
        intent: PaymentIntent,
        history: Vec<IntentEvent>,
    }

    impl Rec {
        fn new() -> Rec {
            let intent = PaymentIntent::new(
                IntentId::new("pi_test").expect("id"),
                TenantId::new("acme").expect("tenant"),
                ChannelId::new("web").expect("channel"),
                TenderKind::Card,
                eur(10_000),
                "stripe",
                "order-1",
                T0,
            );
            let params = AuthorizeParams::new(
                call(Operation::Authorize, "auth"),
                PaymentMethodRef("pm_card_visa".into()),
                commerce_ports::payment::CaptureMethod::Manual,
            );
            let Transition { intent, event } = creation(intent, params).expect("record");
            Rec { intent, history: vec![event] }
        }

        fn push(&mut self, t: Transition) {
            self.intent = t.intent;
            self.history.push(t.event);
        }

        fn authorized() -> Rec {
            let mut rec = Rec::new();
            let snap = PaymentSnapshot::authorized("pi_ref", ProviderPaymentStatus::Authorized, eur(10_000));
            let t = apply_authorization(&rec.intent, &rec.history, &call(Operation::Authorize, "auth"), &snap, T0);
            rec.push(t.expect("ok").expect("change"));
            rec
        }

        fn apply(&mut self, event: &WebhookEvent) -> WebhookOutcome {
            let outcome = apply_webhook(&self.intent, &self.history, event, T0).expect("applies");
            if let WebhookOutcome::Apply(t) | WebhookOutcome::Conflict(t) = &outcome {
                self.push(t.clone());
            }
            outcome
        }
    }

    fn event(id: &str, kind: PaymentEventKind, amount: Option<i64>) -> WebhookEvent {
        let mut e = WebhookEvent::new("stripe", id, "test.event", kind);
        e.provider_reference = Some("pi_ref".to_owned());
        e.amount = amount.map(eur);
        e
    }

    #[test]
    fn the_same_event_id_is_applied_once() {
        let mut rec = Rec::authorized();
        let e = event("evt_1", PaymentEventKind::Captured, Some(4_000));
        assert!(matches!(rec.apply(&e), WebhookOutcome::Apply(_)));
        assert_eq!((rec.intent.status, rec.intent.captured), (IntentStatus::Captured, eur(4_000)));
        assert_eq!(rec.apply(&e), WebhookOutcome::AlreadyApplied);
        assert_eq!(rec.history.last().map(|e| e.operation.as_str()), Some("webhook"));
    }

    #[test]
    fn amounts_the_intent_cannot_hold_are_conflicts() {
        let mut rec = Rec::authorized();
        let version = rec.intent.version;
        let e = event("evt_big", PaymentEventKind::Captured, Some(10_001));
        assert!(matches!(rec.apply(&e), WebhookOutcome::Conflict(_)));
        assert_eq!((rec.intent.version, rec.intent.captured), (version + 1, eur(0)));
        assert_eq!(rec.intent.status, IntentStatus::Authorized);
    }

    #[test]
    fn a_failed_authorization_fails_only_an_intent_awaiting_it() {
        let mut rec = Rec::new();
        let failed = event("evt_f", PaymentEventKind::AuthorizationFailed, None);
        assert!(matches!(rec.apply(&failed), WebhookOutcome::Apply(_)));
        assert_eq!(rec.intent.status, IntentStatus::Failed);
        assert!(matches!(rec.apply(&event("evt_c", PaymentEventKind::Captured, None)), WebhookOutcome::Ignored(_)));

        let mut rec = Rec::authorized();
        assert!(matches!(rec.apply(&failed), WebhookOutcome::Ignored(_)));
        assert_eq!(rec.intent.status, IntentStatus::Authorized);
    }

    #[test]
    fn a_failed_capture_returns_a_pending_capture_to_its_prior_status() {
        let mut rec = Rec::authorized();
        let capture = call(Operation::Capture, "cap");
        let t = apply_unknown(&rec.intent, &rec.history, &capture, Some(eur(10_000)), true, "timeout", T0);
        rec.push(t.expect("ok").expect("change"));
        assert_eq!(rec.intent.status, IntentStatus::OutcomeUnknown);
        let mut failed = event("evt_cf", PaymentEventKind::Captured, Some(10_000));
        failed.success = false;
        assert!(matches!(rec.apply(&failed), WebhookOutcome::Apply(_)));
        assert_eq!((rec.intent.status, rec.intent.captured), (IntentStatus::Authorized, eur(0)));
    }

    #[test]
    fn a_refund_before_its_capture_does_not_close_the_intent() {
        let mut rec = Rec::authorized();
        assert!(matches!(
            rec.apply(&event("evt_r", PaymentEventKind::Refunded, Some(3_000))),
            WebhookOutcome::Apply(_)
        ));
        assert_eq!(
            (rec.intent.status, rec.intent.captured, rec.intent.refunded),
            (IntentStatus::PartiallyRefunded, eur(3_000), eur(3_000))
        );
        assert!(matches!(
            rec.apply(&event("evt_c", PaymentEventKind::Captured, Some(6_000))),
            WebhookOutcome::Apply(_)
        ));
        assert_eq!((rec.intent.status, rec.intent.captured), (IntentStatus::PartiallyRefunded, eur(6_000)));
        assert!(matches!(
            rec.apply(&event("evt_r2", PaymentEventKind::Refunded, Some(6_000))),
            WebhookOutcome::Apply(_)
        ));
        assert_eq!(rec.intent.status, IntentStatus::Refunded);
        let other = event("evt_x", PaymentEventKind::Other, None);
        assert!(matches!(rec.apply(&other), WebhookOutcome::Ignored(_)));
    }
}
