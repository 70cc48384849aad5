//! Applying a provider's webhook notification to an intent, as a pure function.
//!
//! Notifications arrive late, twice, or out of order, so application is a *join*: every amount becomes the
//! larger of ours and what the event implies, and the status is derived from the amounts. Nothing ever moves
//! backwards, and applying the same set of amount events (`Authorized`, `Captured`, `Refunded`) in any order
//! (with redeliveries) ends in the same intent. A void or a cancel-or-refund reads the intent as it stands,
//! so where it falls among the captures matters (see those kinds below).
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
//! - `CanceledOrRefunded` (Adyen's `CANCEL_OR_REFUND`) is decided from the intent's own state, never from the
//!   event: the provider's word on which it did is not signed, and its amount may be the original payment's.
//!   On an intent with a positive captured amount it is a refund of everything captured and not yet refunded
//!   (refunded grows to captured; captured is never raised from the event's amount, which is only checked
//!   for its currency and fit); it settles a pending refund when refunded grows by at least the refund's
//!   amount, and the status is derived as for `Refunded`. On an intent with nothing captured it is a
//!   `Voided`, settling a pending void or authorization the same way. (Like `Voided`, it is read against the
//!   intent as it stands: a capture whose notification is still to come is not seen.)
//! - `AuthorizationFailed` fails an intent still waiting for its authorization; `CaptureFailed` and
//!   `RefundFailed` return an intent whose capture or refund outcome is unknown to its prior status.
//!
//! An event whose `success` is false counts as the failure of its kind; a failed `Voided` or
//! `CanceledOrRefunded` changed nothing and is ignored (it refuses no pending call: none of ours asks for a
//! cancel-or-refund, and a failed cancellation is not known to answer our void). Every change is recorded by
//! an event with operation `webhook` whose detail names the event id; the same id is never applied twice
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
        // A failed cancellation changed nothing. It does not refuse a pending void or refund either: it is
        // not known to be that call's answer (our calls never ask for a cancel-or-refund).
        (PaymentEventKind::Voided | PaymentEventKind::CanceledOrRefunded, false) => PaymentEventKind::Other,
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

    // A cancel-or-refund refunds what is captured, if anything is; otherwise it voids (module docs).
    let refunds_captured = kind == PaymentEventKind::CanceledOrRefunded && base.captured.is_positive();

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
        PaymentEventKind::CanceledOrRefunded if refunds_captured => {
            // Everything captured and not yet refunded; the event's amount (perhaps the original payment's,
            // above a partial capture) neither sets refunded nor raises captured.
            next.refunded = larger(base.refunded, base.captured);
            settled = pending.as_ref().is_some_and(|p| {
                p.call.operation == Operation::Refund && grew_by(base.refunded, next.refunded, p.amount)
            });
        }
        PaymentEventKind::Voided | PaymentEventKind::CanceledOrRefunded => {
            // A cancel-or-refund reaches this arm only when nothing is captured.
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
        _ if !event.success => {
            return Ok(WebhookOutcome::Ignored(format!(
                "`{}` reports a failed `{}`, which changes nothing",
                event.event_id, event.event_type
            )));
        }
        _ => {
            return Ok(WebhookOutcome::Ignored(format!(
                "event type `{}` has no meaning for a payment",
                event.event_type
            )));
        }
    }
    // Kinds that move money (and derive the status from the amounts).
    let moves_money = refunds_captured
        || matches!(kind, PaymentEventKind::Authorized | PaymentEventKind::Captured | PaymentEventKind::Refunded);

    if intent.provider_reference.is_none() && event.provider_reference.is_none() && moves_money {
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
    if moves_money {
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
    // A cancel-or-refund records what it refunded, not the event's amount (the original payment's).
    let amount = if refunds_captured { next.refunded.checked_sub(base.refunded).ok() } else { amount };
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
    use commerce_ports::payment::{
        ModificationResult, ModificationStatus, PaymentMethodRef, PaymentSnapshot, ProviderPaymentStatus, TenderKind,
    };
    use commerce_ports::{ChannelId, Currency, IntentId, TenantId};
    use time::macros::datetime;

    use super::*;
    use crate::state::{
        AuthorizeParams, Modification, ProviderCall, applied_call, apply_authorization, apply_modification,
        apply_unknown, creation,
    };

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

        /// Our call `key` of `modification`, answered `status` by the provider (Adyen answers `Pending`).
        fn modify(&mut self, key: &str, modification: &Modification, status: ModificationStatus) {
            let c = call(modification.operation(), key);
            let amount = modification.amount().unwrap_or(eur(0));
            let result = ModificationResult::new(format!("mod_{key}"), status, amount);
            let t = apply_modification(&self.intent, &self.history, &c, modification, &result, T0);
            self.push(t.expect("ok").expect("change"));
        }

        /// Authorized 100.00, `amount` captured by a capture of ours (final or not).
        fn captured(amount: i64, final_capture: bool) -> Rec {
            let mut rec = Rec::authorized();
            let capture = Modification::Capture { amount: eur(amount), final_capture };
            rec.modify("cap", &capture, ModificationStatus::Succeeded);
            rec
        }

        fn amounts(&self) -> (IntentStatus, Money, Money, Money) {
            (self.intent.status, self.intent.authorized, self.intent.captured, self.intent.refunded)
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
        let t = apply_unknown(&rec.intent, &rec.history, &capture, Some(eur(10_000)), true, "timeout", None, T0);
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

    /// A CANCEL_OR_REFUND as the Adyen adapter reports it: the amount is the original payment's.
    fn cancel_or_refund(id: &str, amount: Option<i64>) -> WebhookEvent {
        let mut e = event(id, PaymentEventKind::CanceledOrRefunded, amount);
        e.provider = "adyen".to_owned();
        e.event_type = "CANCEL_OR_REFUND".to_owned();
        e
    }

    #[test]
    fn a_cancel_or_refund_voids_an_uncaptured_intent_whatever_amount_it_carries() {
        for amount in [None, Some(0), Some(1), Some(4_000), Some(10_000)] {
            let mut rec = Rec::authorized();
            let outcome = rec.apply(&cancel_or_refund("cor_1", amount));
            assert!(matches!(outcome, WebhookOutcome::Apply(_)), "{amount:?}: {outcome:?}");
            assert_eq!(rec.amounts(), (IntentStatus::Voided, eur(10_000), eur(0), eur(0)), "{amount:?}");
            assert_eq!(rec.apply(&cancel_or_refund("cor_1", amount)), WebhookOutcome::AlreadyApplied);
        }
        // The amount is still checked: one the intent cannot hold is a conflict, and nothing changes.
        let mut rec = Rec::authorized();
        assert!(matches!(rec.apply(&cancel_or_refund("cor_big", Some(10_001))), WebhookOutcome::Conflict(_)));
        assert_eq!(rec.amounts(), (IntentStatus::Authorized, eur(10_000), eur(0), eur(0)));
        let mut usd = cancel_or_refund("cor_usd", None);
        usd.amount = Some(Money::from_minor(10_000, Currency::USD));
        assert!(matches!(rec.apply(&usd), WebhookOutcome::Conflict(_)));
        assert_eq!(rec.amounts(), (IntentStatus::Authorized, eur(10_000), eur(0), eur(0)));
    }

    #[test]
    fn a_cancel_or_refund_refunds_exactly_what_a_partial_capture_took() {
        for (final_capture, status) in [(false, IntentStatus::PartiallyCaptured), (true, IntentStatus::Captured)] {
            let mut rec = Rec::captured(6_000, final_capture);
            assert_eq!(rec.amounts(), (status, eur(10_000), eur(6_000), eur(0)));
            // The event carries the original payment's 100.00: neither captured nor refunded follow it.
            assert!(matches!(rec.apply(&cancel_or_refund("cor_1", Some(10_000))), WebhookOutcome::Apply(_)));
            assert_eq!(rec.amounts(), (IntentStatus::Refunded, eur(10_000), eur(6_000), eur(6_000)), "{status:?}");
            assert_eq!(rec.history.last().and_then(|e| e.amount), Some(eur(6_000)), "what it refunded is recorded");
            assert!(matches!(rec.apply(&cancel_or_refund("cor_2", None)), WebhookOutcome::Ignored(_)));
        }
    }

    #[test]
    fn a_cancel_or_refund_refunds_the_rest_of_a_partly_refunded_capture() {
        let mut rec = Rec::captured(10_000, true);
        rec.modify("ref", &Modification::Refund { amount: eur(2_500) }, ModificationStatus::Succeeded);
        assert_eq!(rec.amounts(), (IntentStatus::PartiallyRefunded, eur(10_000), eur(10_000), eur(2_500)));
        assert!(matches!(rec.apply(&cancel_or_refund("cor_1", None)), WebhookOutcome::Apply(_)));
        assert_eq!(rec.amounts(), (IntentStatus::Refunded, eur(10_000), eur(10_000), eur(10_000)));
    }

    #[test]
    fn a_cancel_or_refund_after_a_notified_capture_refunds_it() {
        let mut rec = Rec::authorized();
        assert!(matches!(
            rec.apply(&event("evt_c", PaymentEventKind::Captured, Some(7_000))),
            WebhookOutcome::Apply(_)
        ));
        assert!(matches!(rec.apply(&cancel_or_refund("cor_1", Some(10_000))), WebhookOutcome::Apply(_)));
        assert_eq!(rec.amounts(), (IntentStatus::Refunded, eur(10_000), eur(7_000), eur(7_000)));
    }

    #[test]
    fn a_cancel_or_refund_closes_the_intent_only_once_its_capture_is_confirmed() {
        // A refund notification inferred 30.00 captured, unconfirmed: nothing is left to refund, and the intent
        // stays open for a capture notification that may still raise it.
        let mut inferred = Rec::authorized();
        let refund = event("evt_r", PaymentEventKind::Refunded, Some(3_000));
        assert!(matches!(inferred.apply(&refund), WebhookOutcome::Apply(_)));
        assert_eq!(inferred.amounts(), (IntentStatus::PartiallyRefunded, eur(10_000), eur(3_000), eur(3_000)));
        assert!(matches!(inferred.apply(&cancel_or_refund("cor_1", Some(10_000))), WebhookOutcome::Ignored(_)));
        assert_eq!(inferred.amounts(), (IntentStatus::PartiallyRefunded, eur(10_000), eur(3_000), eur(3_000)));

        // A capture notification confirms 30.00 of which 10.00 is refunded: the rest is refunded, and closes it.
        let mut confirmed = Rec::authorized();
        let refund = event("evt_r", PaymentEventKind::Refunded, Some(1_000));
        assert!(matches!(confirmed.apply(&refund), WebhookOutcome::Apply(_)));
        let capture = event("evt_c", PaymentEventKind::Captured, Some(3_000));
        assert!(matches!(confirmed.apply(&capture), WebhookOutcome::Apply(_)));
        assert!(matches!(confirmed.apply(&cancel_or_refund("cor_1", Some(10_000))), WebhookOutcome::Apply(_)));
        assert_eq!(confirmed.amounts(), (IntentStatus::Refunded, eur(10_000), eur(3_000), eur(3_000)));
    }

    #[test]
    fn a_cancel_or_refund_settles_a_pending_void_by_voiding() {
        let mut rec = Rec::authorized();
        rec.modify("void", &Modification::Void, ModificationStatus::Pending);
        assert_eq!(rec.intent.status, IntentStatus::OutcomeUnknown);
        assert!(matches!(rec.apply(&cancel_or_refund("cor_1", Some(10_000))), WebhookOutcome::Apply(_)));
        assert_eq!(rec.amounts(), (IntentStatus::Voided, eur(10_000), eur(0), eur(0)));
        assert!(applied_call(&rec.history, "void").is_some(), "the pending void took effect");
    }

    #[test]
    fn a_cancel_or_refund_settles_a_pending_refund_by_refunding_everything_captured() {
        let mut rec = Rec::captured(8_000, true);
        rec.modify("ref", &Modification::Refund { amount: eur(3_000) }, ModificationStatus::Pending);
        assert_eq!(rec.amounts(), (IntentStatus::OutcomeUnknown, eur(10_000), eur(8_000), eur(0)));
        assert!(matches!(rec.apply(&cancel_or_refund("cor_1", Some(10_000))), WebhookOutcome::Apply(_)));
        assert_eq!(rec.amounts(), (IntentStatus::Refunded, eur(10_000), eur(8_000), eur(8_000)));
        assert!(applied_call(&rec.history, "ref").is_some(), "the pending refund took effect");
    }

    #[test]
    fn a_cancel_or_refund_does_not_settle_a_pending_capture() {
        // Nothing captured yet: it would void, which says nothing about the capture.
        let mut rec = Rec::authorized();
        rec.modify(
            "cap",
            &Modification::Capture { amount: eur(5_000), final_capture: false },
            ModificationStatus::Pending,
        );
        let before = rec.intent.clone();
        assert!(matches!(rec.apply(&cancel_or_refund("cor_1", None)), WebhookOutcome::Ignored(_)));
        assert_eq!(rec.intent, before);

        // Something captured: it would refund, which says nothing about the second capture either.
        let mut rec = Rec::captured(4_000, false);
        rec.modify(
            "cap2",
            &Modification::Capture { amount: eur(2_000), final_capture: false },
            ModificationStatus::Pending,
        );
        let before = rec.intent.clone();
        assert!(matches!(rec.apply(&cancel_or_refund("cor_1", None)), WebhookOutcome::Ignored(_)));
        assert_eq!(rec.intent, before);
    }

    #[test]
    fn a_failed_cancellation_changes_nothing_and_refuses_no_pending_call() {
        for kind in [PaymentEventKind::CanceledOrRefunded, PaymentEventKind::Voided] {
            let mut rec = Rec::authorized();
            let mut failed = event("evt_fail", kind.clone(), Some(10_000));
            failed.success = false;
            assert!(matches!(rec.apply(&failed), WebhookOutcome::Ignored(_)), "{kind:?}");
            assert_eq!(rec.amounts(), (IntentStatus::Authorized, eur(10_000), eur(0), eur(0)), "{kind:?}");

            let mut rec = Rec::captured(10_000, true);
            rec.modify("ref", &Modification::Refund { amount: eur(3_000) }, ModificationStatus::Pending);
            let before = rec.intent.clone();
            assert!(matches!(rec.apply(&failed), WebhookOutcome::Ignored(_)), "{kind:?}");
            assert_eq!(rec.intent, before, "{kind:?}: the refund stays pending");
        }
    }
}
