//! Offline (store-and-forward) acceptance of card-present payments.
//!
//! [`OfflinePolicy`] is built from the terminal's [`OfflineCapability`]; [`OfflinePolicy::check`] accepts a
//! payment only when every rule holds and otherwise names the first rule it breaks ([`OfflineRule`]):
//! refunds are never taken offline; magnetic stripe, keyed entry and QR wallets never (whatever the
//! capability lists), other entry modes only when listed; the scheme must be listed (case-insensitively); the
//! amount must be positive, in the policy's currency, at most `max_amount` and at most the floor limit; and
//! the queue must hold fewer than `max_count` payments. The merchant carries the risk of declines found when
//! the queue is forwarded.
//!
//! [`StoreAndForward`] runs the whole flow over a durable [`OfflineQueueStore`]:
//! [`accept`](StoreAndForward::accept) reads the card with [`PaymentTerminal::read_offline`], checks the
//! policy and queues the payment with the bound `max_count` (the store enforces it atomically, so two
//! registers racing for the last place never both get it); [`forward`](StoreAndForward::forward) submits the
//! pending payments with [`PaymentTerminal::forward_offline`] once the link is back and records each result.
//! There is no offline refund path at all.
use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use commerce_ports::offline_queue::{Enqueued, OfflineEntry, OfflineQueueStore};
use commerce_ports::terminal::{
    EntryMode, OfflineCapability, OfflineForwardRequest, PaymentTerminal, TerminalPaymentRequest,
};
use commerce_ports::{ChannelId, Clock, ErrorKind, IdempotencyKey, Money, StoreError, TenantId, TerminalError};

/// A card-present payment a terminal is about to accept offline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OfflinePayment {
    /// The amount.
    pub amount: Money,
    /// The card scheme (`visa`), when the terminal read it.
    pub scheme: Option<String>,
    /// How the card was read.
    pub entry_mode: EntryMode,
    /// True for a refund.
    pub is_refund: bool,
}

impl OfflinePayment {
    /// A payment (not a refund).
    pub fn new(amount: Money, scheme: Option<String>, entry_mode: EntryMode) -> OfflinePayment {
        OfflinePayment { amount, scheme, entry_mode, is_refund: false }
    }

    /// Marks it as a refund.
    pub fn refund(mut self) -> OfflinePayment {
        self.is_refund = true;
        self
    }
}

/// The rule an offline payment breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OfflineRule {
    /// The terminal does not accept payments offline at all.
    NotOfflineCapable,
    /// Refunds are never accepted offline.
    Refund,
    /// The entry mode is not accepted offline.
    EntryMode,
    /// The scheme is unknown or not accepted offline.
    Scheme,
    /// The amount is not positive or not in the policy's currency.
    Amount,
    /// The amount is above the largest offline payment.
    MaxAmount,
    /// The amount is above the floor limit.
    FloorLimit,
    /// The queue already holds the most offline payments allowed.
    MaxCount,
}

impl OfflineRule {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            OfflineRule::NotOfflineCapable => "not_offline_capable",
            OfflineRule::Refund => "refund",
            OfflineRule::EntryMode => "entry_mode",
            OfflineRule::Scheme => "scheme",
            OfflineRule::Amount => "amount",
            OfflineRule::MaxAmount => "max_amount",
            OfflineRule::FloorLimit => "floor_limit",
            OfflineRule::MaxCount => "max_count",
        }
    }
}

/// Why an offline payment is refused: the rule and a message naming the values.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OfflineRefusal {
    /// The rule broken.
    pub rule: OfflineRule,
    /// What was wrong ("12.00 EUR is above the floor limit of 10.00 EUR").
    pub message: String,
}

impl fmt::Display for OfflineRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused offline ({}): {}", self.rule.as_str(), self.message)
    }
}

impl std::error::Error for OfflineRefusal {}

/// The entry modes never accepted offline, whatever a capability lists.
pub const NEVER_OFFLINE: [EntryMode; 3] = [EntryMode::Magstripe, EntryMode::Keyed, EntryMode::QrWallet];

/// What a terminal may accept offline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflinePolicy {
    capability: OfflineCapability,
}

impl From<&OfflineCapability> for OfflinePolicy {
    fn from(capability: &OfflineCapability) -> OfflinePolicy {
        OfflinePolicy { capability: capability.clone() }
    }
}

impl OfflinePolicy {
    /// The capability the policy applies.
    pub fn capability(&self) -> &OfflineCapability {
        &self.capability
    }

    /// Accepts `payment` offline when the queue holds `queued` payments, or names the first rule it breaks.
    ///
    /// # Errors
    /// An [`OfflineRefusal`] naming the rule: refund, entry mode, scheme, amount (not positive or another
    /// currency), max amount, floor limit, max count.
    pub fn check(&self, payment: &OfflinePayment, queued: u32) -> Result<(), OfflineRefusal> {
        let cap = &self.capability;
        let refuse = |rule: OfflineRule, message: String| Err(OfflineRefusal { rule, message });
        if payment.is_refund {
            return refuse(OfflineRule::Refund, "refunds are never accepted offline".to_owned());
        }
        let mode = payment.entry_mode;
        if NEVER_OFFLINE.contains(&mode) || !cap.entry_modes.contains(&mode) {
            let allowed: Vec<String> =
                cap.entry_modes.iter().filter(|m| !NEVER_OFFLINE.contains(m)).map(|m| name(*m)).collect();
            return refuse(
                OfflineRule::EntryMode,
                format!("entry mode {} is not accepted offline (accepted: {})", name(mode), list(&allowed)),
            );
        }
        let scheme = payment.scheme.as_deref().unwrap_or("");
        if scheme.is_empty() || !cap.schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme)) {
            let shown = if scheme.is_empty() { "unknown".to_owned() } else { format!("`{scheme}`") };
            return refuse(
                OfflineRule::Scheme,
                format!("scheme {shown} is not accepted offline (accepted: {})", list(&cap.schemes)),
            );
        }
        let amount = payment.amount;
        if amount.currency() != cap.max_amount.currency() || !amount.is_positive() {
            return refuse(
                OfflineRule::Amount,
                format!("amount {amount} must be positive and in {}", cap.max_amount.currency()),
            );
        }
        if amount.minor() > cap.max_amount.minor() {
            return refuse(
                OfflineRule::MaxAmount,
                format!("{amount} is above the largest offline payment of {}", cap.max_amount),
            );
        }
        if let Some(floor) = cap.floor_limit
            && (floor.currency() != amount.currency() || amount.minor() > floor.minor())
        {
            return refuse(OfflineRule::FloorLimit, format!("{amount} is above the floor limit of {floor}"));
        }
        if queued >= cap.max_count {
            return refuse(
                OfflineRule::MaxCount,
                format!("the offline queue holds {queued} payments; at most {} are allowed", cap.max_count),
            );
        }
        Ok(())
    }
}

fn name(mode: EntryMode) -> String {
    match mode {
        EntryMode::QrWallet => "qr_wallet".to_owned(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

// ---------------------------------------------------------------------------------------------------------
// Store and forward

/// Why [`StoreAndForward`] could not accept or forward.
#[derive(Debug)]
#[non_exhaustive]
pub enum OfflineError {
    /// The payment is outside the terminal's offline policy (or the terminal has none, or its queue is
    /// full); nothing was queued.
    Refused(OfflineRefusal),
    /// The terminal failed to read the card (`Timeout`: no card presented, `Unavailable`, ...); nothing was
    /// queued.
    Terminal(TerminalError),
    /// The queue failed. `IdempotencyConflict`: the key was used for another offline payment.
    Store(StoreError),
    /// Another [`StoreAndForward::forward`] of the same terminal is running in this service.
    ForwardInProgress {
        /// The terminal.
        terminal_id: String,
    },
}

impl OfflineError {
    /// The refusal, when the payment was refused by a policy rule.
    pub fn refusal(&self) -> Option<&OfflineRefusal> {
        match self {
            OfflineError::Refused(r) => Some(r),
            _ => None,
        }
    }

    /// The rule broken, when the payment was refused.
    pub fn rule(&self) -> Option<OfflineRule> {
        self.refusal().map(|r| r.rule)
    }
}

impl fmt::Display for OfflineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OfflineError::Refused(r) => r.fmt(f),
            OfflineError::Terminal(e) => write!(f, "offline card read failed: {e}"),
            OfflineError::Store(e) => write!(f, "offline queue failed: {e}"),
            OfflineError::ForwardInProgress { terminal_id } => {
                write!(f, "the offline queue of terminal `{terminal_id}` is already being forwarded")
            }
        }
    }
}

impl std::error::Error for OfflineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OfflineError::Refused(r) => Some(r),
            OfflineError::Terminal(e) => Some(e),
            OfflineError::Store(e) => Some(e),
            OfflineError::ForwardInProgress { .. } => None,
        }
    }
}

/// A payment accepted offline.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OfflineAcceptance {
    /// The queued entry (`Debug` redacts its card data).
    pub entry: OfflineEntry,
    /// True when the key had been accepted before: nothing new was read or queued.
    pub replayed: bool,
    /// The terminal's pending payments after this one (for a replay, as it stands now).
    pub pending: u32,
}

/// One payment handled by [`StoreAndForward::forward`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardedItem {
    /// The payment's idempotency key.
    pub key: IdempotencyKey,
    /// The sale reference.
    pub reference: String,
    /// The amount.
    pub amount: Money,
    /// Forwarded: the provider reference. Declined: the decline. Still pending: the failure.
    pub detail: String,
}

/// What one [`StoreAndForward::forward`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardReport {
    /// Approved by the provider and marked forwarded.
    pub forwarded: Vec<ForwardedItem>,
    /// Declined by the provider and marked declined: the merchant carries these losses.
    pub declined: Vec<ForwardedItem>,
    /// Still pending, to be forwarded again (with the same key) by a later run: the outcome was unknown, the
    /// provider failed, or recording the result failed.
    pub still_pending: Vec<ForwardedItem>,
    /// Set when the run stopped early because the link is down (nothing was sent for the rest).
    pub stopped: Option<String>,
}

impl ForwardReport {
    /// The merchant's losses: the declined amounts, per currency.
    pub fn declined_amounts(&self) -> Vec<Money> {
        let mut totals: Vec<Money> = Vec::new();
        for item in &self.declined {
            match totals.iter_mut().find(|m| m.currency() == item.amount.currency()) {
                Some(total) => *total = total.checked_add(item.amount).unwrap_or(*total),
                None => totals.push(item.amount),
            }
        }
        totals
    }
}

/// The store-and-forward service: accepts card-present payments offline within a terminal's policy into a
/// durable [`OfflineQueueStore`], and forwards them when the link is back.
///
/// # Double charges
/// Every forwarding attempt of an entry sends the payment's own idempotency key, so the provider charges a
/// key at most once: an entry whose outcome was unknown is simply forwarded again by a later run, and two
/// runs forwarding one entry at once (two instances, say) get the same answer and record the same result
/// (the store's marks are idempotent). Within one service, runs of the same terminal do not overlap: a second
/// concurrent [`forward`](StoreAndForward::forward) fails with [`OfflineError::ForwardInProgress`].
#[derive(Debug)]
pub struct StoreAndForward {
    queue: Arc<dyn OfflineQueueStore>,
    clock: Arc<dyn Clock>,
    forwarding: Mutex<HashSet<(TenantId, String)>>,
}

/// Releases a terminal's forwarding slot when a run ends (also when it is cancelled).
struct ForwardSlot<'a> {
    set: &'a Mutex<HashSet<(TenantId, String)>>,
    id: (TenantId, String),
}

impl Drop for ForwardSlot<'_> {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.id);
    }
}

impl StoreAndForward {
    /// A service over a queue and a clock.
    pub fn new(queue: Arc<dyn OfflineQueueStore>, clock: Arc<dyn Clock>) -> StoreAndForward {
        StoreAndForward { queue, clock, forwarding: Mutex::new(HashSet::new()) }
    }

    /// The queue.
    pub fn queue(&self) -> &Arc<dyn OfflineQueueStore> {
        &self.queue
    }

    /// Accepts a card-present payment offline on `terminal`, or refuses it naming the rule.
    ///
    /// Refuses at once when the terminal has no offline capability or its queue is full; otherwise reads the
    /// card ([`PaymentTerminal::read_offline`]), checks [`OfflinePolicy`] with the queue's pending count, and
    /// queues the payment bounded by `max_count` (a race for the last place is refused as
    /// [`OfflineRule::MaxCount`]). Accepting a key again with the same request replays the first acceptance
    /// without reading a card. There is no refund path: refunds are never taken offline.
    ///
    /// # Errors
    /// [`OfflineError::Refused`] naming the rule; [`OfflineError::Terminal`] when the card read failed;
    /// [`OfflineError::Store`] (`IdempotencyConflict` when the key holds another payment).
    pub async fn accept(
        &self,
        terminal: &dyn PaymentTerminal,
        tenant: &TenantId,
        channel: &ChannelId,
        request: TerminalPaymentRequest,
    ) -> Result<OfflineAcceptance, OfflineError> {
        let Some(capability) = terminal.capabilities().offline else {
            return Err(OfflineError::Refused(OfflineRefusal {
                rule: OfflineRule::NotOfflineCapable,
                message: format!("terminal `{}` does not accept payments offline", request.terminal_id),
            }));
        };
        let policy = OfflinePolicy::from(&capability);
        let terminal_id = request.terminal_id.clone();
        if let Some(stored) =
            self.queue.get(tenant, &terminal_id, &request.idempotency_key).await.map_err(OfflineError::Store)?
        {
            if stored.payment == request && &stored.channel == channel {
                let pending = self.queue.pending_count(tenant, &terminal_id).await.map_err(OfflineError::Store)?;
                return Ok(OfflineAcceptance { entry: stored, replayed: true, pending });
            }
            return Err(OfflineError::Store(StoreError::new(
                ErrorKind::IdempotencyConflict,
                "accept",
                format!(
                    "key `{}` of terminal `{terminal_id}` was accepted offline for another payment",
                    request.idempotency_key
                ),
            )));
        }
        let queued = self.queue.pending_count(tenant, &terminal_id).await.map_err(OfflineError::Store)?;
        if queued >= capability.max_count {
            // Do not make the customer present a card that could not be queued.
            return Err(OfflineError::Refused(full(queued, capability.max_count)));
        }
        let card = terminal.read_offline(&request).await.map_err(OfflineError::Terminal)?;
        let payment = OfflinePayment::new(request.amount, card.scheme.clone(), card.entry_mode);
        policy.check(&payment, queued).map_err(OfflineError::Refused)?;
        let entry = OfflineEntry::new(tenant.clone(), channel.clone(), request, card, self.clock.now());
        match self.queue.enqueue(entry, capability.max_count).await {
            Ok(Enqueued::Queued { entry, pending }) => Ok(OfflineAcceptance { entry, replayed: false, pending }),
            Ok(other) => {
                let entry = other.entry().clone();
                let pending = self.queue.pending_count(tenant, &terminal_id).await.map_err(OfflineError::Store)?;
                Ok(OfflineAcceptance { entry, replayed: true, pending })
            }
            // Another register took the last place between the check and the enqueue.
            Err(e) if e.kind() == ErrorKind::InvalidState => {
                Err(OfflineError::Refused(full(capability.max_count, capability.max_count)))
            }
            Err(e) => Err(OfflineError::Store(e)),
        }
    }

    /// Forwards up to `limit` pending payments of a terminal, oldest first, and records each result: approved
    /// → forwarded; declined → declined (reported; the merchant carries the loss); outcome unknown or any
    /// other failure → stays pending with the attempt recorded, for the next run (which sends the same key).
    /// A link failure (`Unavailable`, `Timeout`: nothing was sent) stops the run.
    ///
    /// # Errors
    /// [`OfflineError::ForwardInProgress`] when this service is already forwarding the terminal;
    /// [`OfflineError::Store`] when the pending entries cannot be listed.
    pub async fn forward(
        &self,
        terminal: &dyn PaymentTerminal,
        tenant: &TenantId,
        terminal_id: &str,
        limit: u32,
    ) -> Result<ForwardReport, OfflineError> {
        let id = (tenant.clone(), terminal_id.to_owned());
        if !self.forwarding.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone()) {
            return Err(OfflineError::ForwardInProgress { terminal_id: terminal_id.to_owned() });
        }
        let _slot = ForwardSlot { set: &self.forwarding, id };
        let pending = self.queue.pending(tenant, terminal_id, limit).await.map_err(OfflineError::Store)?;
        let mut report = ForwardReport::default();
        for entry in pending {
            let item = |detail: String| ForwardedItem {
                key: entry.key().clone(),
                reference: entry.payment.reference.clone(),
                amount: entry.payment.amount,
                detail,
            };
            let request = OfflineForwardRequest::new(
                entry.payment.clone(),
                entry.card.clone(),
                entry.accepted_at.unix_timestamp(),
            );
            match terminal.forward_offline(request).await {
                Ok(result) => {
                    let marked = self
                        .queue
                        .mark_forwarded(tenant, terminal_id, entry.key(), &result.provider_reference, self.clock.now())
                        .await;
                    match marked {
                        Ok(_) => report.forwarded.push(item(result.provider_reference)),
                        Err(e) => report.still_pending.push(item(format!(
                            "approved as `{}` but not recorded ({e}); the next run forwards it again with the \
                             same key",
                            result.provider_reference
                        ))),
                    }
                }
                Err(e) if e.kind() == ErrorKind::Declined => {
                    let reason = match e.decline().and_then(|d| d.decline_code.as_deref()) {
                        Some(code) => format!("{code}: {}", e.message()),
                        None => e.message().to_owned(),
                    };
                    match self.queue.mark_declined(tenant, terminal_id, entry.key(), &reason, self.clock.now()).await {
                        Ok(_) => report.declined.push(item(reason)),
                        Err(store) => {
                            report.still_pending.push(item(format!("declined ({reason}) but not recorded ({store})")))
                        }
                    }
                }
                Err(e) => {
                    let failure = format!("{}: {}", e.kind(), e.message());
                    // Best effort: the entry stays pending whether or not the attempt is counted.
                    let _ = self.queue.record_attempt(tenant, terminal_id, entry.key(), &failure).await;
                    let link_down = matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::Timeout);
                    report.still_pending.push(item(failure.clone()));
                    if link_down {
                        report.stopped = Some(failure);
                        break;
                    }
                }
            }
        }
        Ok(report)
    }
}

fn full(queued: u32, max_count: u32) -> OfflineRefusal {
    OfflineRefusal {
        rule: OfflineRule::MaxCount,
        message: format!("the offline queue holds {queued} payments; at most {max_count} are allowed"),
    }
}

#[cfg(test)]
mod tests {
    use commerce_ports::Currency;
    use proptest::prelude::*;

    use super::*;

    fn eur(minor: i64) -> Money {
        Money::from_minor(minor, Currency::EUR)
    }

    fn policy(floor: Option<i64>) -> OfflinePolicy {
        let mut cap = OfflineCapability::new(
            vec!["visa".to_owned(), "mastercard".to_owned()],
            vec![EntryMode::Chip, EntryMode::Contactless, EntryMode::Magstripe],
            eur(5_000),
            3,
        );
        cap.floor_limit = floor.map(eur);
        OfflinePolicy::from(&cap)
    }

    fn visa(minor: i64, mode: EntryMode) -> OfflinePayment {
        OfflinePayment::new(eur(minor), Some("VISA".to_owned()), mode)
    }

    fn rule(r: Result<(), OfflineRefusal>) -> Option<OfflineRule> {
        r.err().map(|e| e.rule)
    }

    #[test]
    fn each_rule_is_named() {
        let p = policy(Some(3_000));
        assert_eq!(p.check(&visa(1_000, EntryMode::Chip), 0), Ok(()));
        assert_eq!(rule(p.check(&visa(1_000, EntryMode::Chip).refund(), 0)), Some(OfflineRule::Refund));
        for mode in NEVER_OFFLINE {
            assert_eq!(rule(p.check(&visa(1_000, mode), 0)), Some(OfflineRule::EntryMode), "{mode:?}");
        }
        let amex = OfflinePayment::new(eur(1_000), Some("amex".to_owned()), EntryMode::Chip);
        let e = p.check(&amex, 0).err();
        assert_eq!(
            e.map(|e| e.message),
            Some("scheme `amex` is not accepted offline (accepted: visa, mastercard)".to_owned())
        );
        let unknown = OfflinePayment::new(eur(1_000), None, EntryMode::Chip);
        assert_eq!(rule(p.check(&unknown, 0)), Some(OfflineRule::Scheme));
        assert_eq!(rule(p.check(&visa(0, EntryMode::Chip), 0)), Some(OfflineRule::Amount));
        let usd = OfflinePayment::new(Money::from_minor(100, Currency::USD), Some("visa".to_owned()), EntryMode::Chip);
        assert_eq!(rule(p.check(&usd, 0)), Some(OfflineRule::Amount));
        assert_eq!(rule(policy(None).check(&visa(5_001, EntryMode::Chip), 0)), Some(OfflineRule::MaxAmount));
        let e = p.check(&visa(3_001, EntryMode::Contactless), 0).err();
        assert_eq!(e.map(|e| e.message), Some("30.01 EUR is above the floor limit of 30.00 EUR".to_owned()));
        assert_eq!(rule(p.check(&visa(1_000, EntryMode::Chip), 3)), Some(OfflineRule::MaxCount));
        assert_eq!(p.check(&visa(1_000, EntryMode::Chip), 2), Ok(()));
    }

    fn entry_mode() -> impl Strategy<Value = EntryMode> {
        prop_oneof![
            Just(EntryMode::Chip),
            Just(EntryMode::Contactless),
            Just(EntryMode::Magstripe),
            Just(EntryMode::Keyed),
            Just(EntryMode::QrWallet),
        ]
    }

    proptest! {
        #[test]
        fn anything_accepted_satisfies_every_rule(
            minor in -100i64..10_000,
            usd in any::<bool>(),
            scheme in prop_oneof![Just(None), Just(Some("visa")), Just(Some("Mastercard")), Just(Some("amex"))],
            mode in entry_mode(),
            is_refund in any::<bool>(),
            queued in 0u32..6,
            floor in proptest::option::of(0i64..8_000),
            max_count in 0u32..5,
            modes in proptest::collection::vec(entry_mode(), 0..5),
        ) {
            let mut cap = OfflineCapability::new(vec!["visa".to_owned(), "mastercard".to_owned()], modes, eur(5_000), max_count);
            cap.floor_limit = floor.map(eur);
            let policy = OfflinePolicy::from(&cap);
            let currency = if usd { Currency::USD } else { Currency::EUR };
            let mut payment = OfflinePayment::new(Money::from_minor(minor, currency), scheme.map(str::to_owned), mode);
            payment.is_refund = is_refund;
            if policy.check(&payment, queued).is_ok() {
                prop_assert!(!payment.is_refund);
                prop_assert!(!NEVER_OFFLINE.contains(&payment.entry_mode));
                prop_assert!(cap.entry_modes.contains(&payment.entry_mode));
                let s = payment.scheme.clone().unwrap_or_default();
                prop_assert!(cap.schemes.iter().any(|c| c.eq_ignore_ascii_case(&s)));
                prop_assert!(payment.amount.is_positive());
                prop_assert_eq!(payment.amount.currency(), cap.max_amount.currency());
                prop_assert!(payment.amount.minor() <= cap.max_amount.minor());
                if let Some(f) = cap.floor_limit {
                    prop_assert!(payment.amount.minor() <= f.minor());
                }
                prop_assert!(queued < cap.max_count);
            }
        }
    }
}
