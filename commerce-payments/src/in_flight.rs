//! The authorizations a [`Payments`](crate::Payments) service (and its clones) is running, by tenant,
//! provider and merchant reference.
//!
//! An authorization's intent is written once, by the commit after the provider answered (decision 012), so
//! while the provider call runs no intent exists to apply a webhook to. A provider may send the payment's
//! notification before the commit (Adyen notifies asynchronously and fast; a slow commit widens the window),
//! and an event that matches no intent would otherwise be acknowledged as belonging to an unknown payment and
//! never applied: for a pending answer (an asynchronous payment method), the notification is the only place
//! the final result arrives. The [`WebhookIngestor`](crate::WebhookIngestor) asks this registry and answers
//! 503 instead, so the provider delivers again once the intent is stored.
//!
//! An authorization whose outcome was not stored (the store failed after the provider answered, nothing
//! certain happened, or the caller went away) stays registered for [`LINGER`] after it ends, measured on the
//! monotonic clock: the provider's redeliveries keep being answered 503 until a retry with the same key stores
//! the intent, for up to that long. Once the intent exists the registry plays no part (the event finds the
//! intent first). See decision 015.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use commerce_ports::TenantId;

/// How long an authorization whose outcome was not stored stays registered: as long as the webhook ingestor
/// holds back events for an unknown authorization by default ([`DEFAULT_UNKNOWN_HOLD`](crate::DEFAULT_UNKNOWN_HOLD)).
pub(crate) const LINGER: Duration = Duration::from_secs(3600);

/// (tenant, provider, merchant reference) of an authorization.
type Key = (TenantId, String, String);

#[derive(Debug)]
struct Entry {
    /// Calls under way with this key.
    running: u32,
    /// When the last one ended, until when the key stays registered.
    until: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// When lingering keys may be dropped, in the order they were queued (which is their order: every linger
    /// is [`LINGER`]).
    expiries: VecDeque<(Instant, Key)>,
}

impl State {
    /// Drops the keys whose linger ended (and that no call took up again).
    fn purge(&mut self, now: Instant) {
        while let Some((at, _)) = self.expiries.front() {
            if *at > now {
                break;
            }
            let Some((_, key)) = self.expiries.pop_front() else { break };
            if self.entries.get(&key).is_some_and(|e| e.running == 0 && e.until.is_some_and(|u| u <= now)) {
                self.entries.remove(&key);
            }
        }
    }
}

/// The registry of authorizations under way or recently ended.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    state: Mutex<State>,
}

impl InFlight {
    /// Registers an authorization until the returned guard is dropped (also when the call is cancelled), and
    /// for `linger` after that.
    pub(crate) fn enter(
        self: &Arc<InFlight>,
        tenant: &TenantId,
        provider: &str,
        reference: &str,
        linger: Duration,
    ) -> InFlightGuard {
        let key = (tenant.clone(), provider.to_owned(), reference.to_owned());
        let mut state = self.lock();
        state.purge(Instant::now());
        let entry = state.entries.entry(key.clone()).or_insert(Entry { running: 0, until: None });
        entry.running += 1;
        InFlightGuard { registry: Arc::clone(self), key, linger }
    }

    /// Whether an authorization of `tenant` on `provider` with merchant reference `reference` is under way or
    /// ended less than its linger ago.
    pub(crate) fn holds(&self, tenant: &TenantId, provider: &str, reference: &str) -> bool {
        let now = Instant::now();
        let mut state = self.lock();
        state.purge(now);
        let key = (tenant.clone(), provider.to_owned(), reference.to_owned());
        state.entries.get(&key).is_some_and(|e| e.running > 0 || e.until.is_some_and(|u| u > now))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }
}

/// Keeps an authorization registered in [`InFlight`] while it lives, and for its linger after unless
/// [`disarm`](InFlightGuard::disarm)ed (its outcome was stored, or nothing happened).
#[derive(Debug)]
pub(crate) struct InFlightGuard {
    registry: Arc<InFlight>,
    key: Key,
    linger: Duration,
}

impl InFlightGuard {
    /// Ends the registration without a linger: the authorization's outcome is stored (or certain and
    /// nothing reached the provider), so no event waits for it.
    pub(crate) fn disarm(mut self) {
        self.linger = Duration::ZERO;
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let now = Instant::now();
        let until = now.checked_add(self.linger).unwrap_or(now);
        let mut state = self.registry.lock();
        if let Some(entry) = state.entries.get_mut(&self.key) {
            entry.running = entry.running.saturating_sub(1);
            if entry.running == 0 {
                if self.linger.is_zero() && entry.until.is_none_or(|u| u <= now) {
                    state.entries.remove(&self.key);
                } else {
                    let until = entry.until.map_or(until, |u| u.max(until));
                    entry.until = Some(until);
                    state.expiries.push_back((until, self.key.clone()));
                }
            }
        }
        state.purge(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Long enough that no test machine takes it between two statements.
    const LONG: Duration = Duration::from_secs(600);
    /// Short enough that a sleep of [`PAST`] always outlasts it.
    const SHORT: Duration = Duration::from_millis(1);
    const PAST: Duration = Duration::from_millis(30);

    #[test]
    fn an_authorization_is_held_while_it_runs_and_for_its_linger() {
        let registry = Arc::new(InFlight::default());
        let acme = TenantId::new("acme").expect("tenant");
        let other = TenantId::new("other").expect("tenant");
        assert!(!registry.holds(&acme, "adyen", "order-1"));
        let first = registry.enter(&acme, "adyen", "order-1", LONG);
        let second = registry.enter(&acme, "adyen", "order-1", LONG);
        assert!(registry.holds(&acme, "adyen", "order-1"));
        assert!(!registry.holds(&acme, "adyen", "order-2"), "another reference");
        assert!(!registry.holds(&acme, "stripe", "order-1"), "another provider");
        assert!(!registry.holds(&other, "adyen", "order-1"), "another tenant");
        drop(first);
        assert!(registry.holds(&acme, "adyen", "order-1"), "one of two still runs");
        drop(second);
        assert!(registry.holds(&acme, "adyen", "order-1"), "held for the linger after the last one ended");

        let brief = registry.enter(&acme, "adyen", "order-3", SHORT);
        drop(brief);
        std::thread::sleep(PAST);
        assert!(!registry.holds(&acme, "adyen", "order-3"), "released once the linger ended");
        // (Its entry goes when the expiries queued before it have passed: every linger but this test's is
        // `LINGER`, so expiries are queued in order.)
        assert!(registry.len() <= 2);
    }

    #[test]
    fn a_disarmed_authorization_leaves_at_once() {
        let registry = Arc::new(InFlight::default());
        let acme = TenantId::new("acme").expect("tenant");
        let guard = registry.enter(&acme, "adyen", "order-1", LONG);
        assert!(registry.holds(&acme, "adyen", "order-1"));
        guard.disarm();
        assert!(!registry.holds(&acme, "adyen", "order-1"));
        assert_eq!(registry.len(), 0);
        // A disarmed call does not cut short another's linger.
        drop(registry.enter(&acme, "adyen", "order-2", LONG));
        registry.enter(&acme, "adyen", "order-2", LONG).disarm();
        assert!(registry.holds(&acme, "adyen", "order-2"), "the first call's linger stands");
    }

    #[test]
    fn a_key_taken_up_again_during_its_linger_is_not_dropped_by_the_old_expiry() {
        let registry = Arc::new(InFlight::default());
        let acme = TenantId::new("acme").expect("tenant");
        drop(registry.enter(&acme, "adyen", "order-1", SHORT));
        let again = registry.enter(&acme, "adyen", "order-1", SHORT);
        std::thread::sleep(PAST);
        assert!(registry.holds(&acme, "adyen", "order-1"), "running again: the first linger's expiry is stale");
        drop(again);
        std::thread::sleep(PAST);
        assert!(!registry.holds(&acme, "adyen", "order-1"));
        assert_eq!(registry.len(), 0);
    }
}
