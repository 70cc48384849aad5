//! Offline (store-and-forward) acceptance of card-present payments: the policy check a host runs before a
//! terminal whose link is down accepts a payment.
//!
//! [`OfflinePolicy`] is built from the terminal's [`OfflineCapability`]; [`OfflinePolicy::check`] accepts a
//! payment only when every rule holds and otherwise names the first rule it breaks ([`OfflineRule`]):
//! refunds are never taken offline; magnetic stripe, keyed entry and QR wallets never (whatever the
//! capability lists), other entry modes only when listed; the scheme must be listed (case-insensitively); the
//! amount must be positive, in the policy's currency, at most `max_amount` and at most the floor limit; and
//! the queue must hold fewer than `max_count` payments. The merchant carries the risk of declines found when
//! the queue is forwarded.
//!
//! The durable queue and its forwarding are not here: no store port fits them (see the README).

use std::fmt;

use commerce_ports::Money;
use commerce_ports::terminal::{EntryMode, OfflineCapability};

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
