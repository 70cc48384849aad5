//! The authorizations this process is running right now, by tenant, provider and merchant reference.
//!
//! An authorization's intent is written once, by the commit after the provider answered (decision 012), so
//! while the provider call runs no intent exists to apply a webhook to. A provider may send the payment's
//! notification before the commit (Adyen notifies asynchronously and fast; a slow commit widens the window),
//! and an event that matches no intent would otherwise be acknowledged as belonging to an unknown payment and
//! never applied: for a pending answer (an asynchronous payment method), the notification is the only place
//! the final result arrives. The [`WebhookIngestor`](crate::WebhookIngestor) asks this registry and answers
//! 503 instead, so the provider delivers again once the intent is stored.
//!
//! The registry is per process: a webhook that reaches another instance than the one authorizing is not
//! held back (see decision 015).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use commerce_ports::TenantId;

/// (tenant, provider, merchant reference) of a running authorization.
type Key = (TenantId, String, String);

/// The running authorizations (a count per key: one reference may be authorized by several keys at once).
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    running: Mutex<HashMap<Key, u32>>,
}

impl InFlight {
    /// Registers an authorization until the returned guard is dropped (also when the call is cancelled).
    pub(crate) fn enter(self: &Arc<InFlight>, tenant: &TenantId, provider: &str, reference: &str) -> InFlightGuard {
        let key = (tenant.clone(), provider.to_owned(), reference.to_owned());
        *self.lock().entry(key.clone()).or_insert(0) += 1;
        InFlightGuard { registry: Arc::clone(self), key }
    }

    /// The merchant reference of a running authorization of `tenant` on `provider`: the one given, or, when
    /// the event carries none, any.
    pub(crate) fn running(&self, tenant: &TenantId, provider: &str, reference: Option<&str>) -> Option<String> {
        let running = self.lock();
        match reference {
            Some(reference) => {
                let key = (tenant.clone(), provider.to_owned(), reference.to_owned());
                running.contains_key(&key).then(|| reference.to_owned())
            }
            None => running.keys().find(|(t, p, _)| t == tenant && p == provider).map(|(_, _, r)| r.clone()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, u32>> {
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps an authorization registered in [`InFlight`] while it lives.
#[derive(Debug)]
pub(crate) struct InFlightGuard {
    registry: Arc<InFlight>,
    key: Key,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut running = self.registry.lock();
        if let Some(count) = running.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                running.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_authorization_is_running_until_its_guard_drops() {
        let registry = Arc::new(InFlight::default());
        let acme = TenantId::new("acme").expect("tenant");
        let other = TenantId::new("other").expect("tenant");
        assert_eq!(registry.running(&acme, "adyen", None), None);
        let first = registry.enter(&acme, "adyen", "order-1");
        let second = registry.enter(&acme, "adyen", "order-1");
        assert_eq!(registry.running(&acme, "adyen", Some("order-1")), Some("order-1".to_owned()));
        assert_eq!(registry.running(&acme, "adyen", None), Some("order-1".to_owned()));
        assert_eq!(registry.running(&acme, "adyen", Some("order-2")), None);
        assert_eq!(registry.running(&acme, "stripe", None), None, "another provider");
        assert_eq!(registry.running(&other, "adyen", Some("order-1")), None, "another tenant");
        drop(first);
        assert!(registry.running(&acme, "adyen", Some("order-1")).is_some(), "one of two still runs");
        drop(second);
        assert_eq!(registry.running(&acme, "adyen", Some("order-1")), None);
        assert!(registry.lock().is_empty(), "nothing is left behind");
    }
}
