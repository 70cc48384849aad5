//! Store fault wrappers, for tests of what a service does when a store fails at the worst moment.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use commerce_ports::stores::{
    IdempotencyClaim, IntentEvent, IntentUpdate, KeyResolution, LedgerClaim, PaymentIntent, PaymentLedger,
};
use commerce_ports::{ErrorKind, IdempotencyKey, IntentId, StoreError, TenantId};

/// A [`PaymentLedger`] over another whose next commits fail with `Unavailable` before reaching it, as a
/// database outage after the provider answered would: nothing of a failed commit is written.
#[derive(Debug)]
pub struct FailingLedger {
    inner: Arc<dyn PaymentLedger>,
    failing_commits: AtomicU32,
}

impl FailingLedger {
    /// A ledger that passes every call to `inner` until told to fail.
    pub fn new(inner: Arc<dyn PaymentLedger>) -> FailingLedger {
        FailingLedger { inner, failing_commits: AtomicU32::new(0) }
    }

    /// Makes the next `n` commits fail.
    pub fn fail_next_commits(&self, n: u32) {
        self.failing_commits.store(n, Ordering::SeqCst);
    }
}

#[async_trait]
impl PaymentLedger for FailingLedger {
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        claim: IdempotencyClaim,
        intent: &IntentId,
        create: Option<(PaymentIntent, IntentEvent)>,
    ) -> Result<LedgerClaim, StoreError> {
        self.inner.claim(tenant, key, claim, intent, create).await
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        update: Option<IntentUpdate>,
        resolution: KeyResolution,
    ) -> Result<(), StoreError> {
        let failing = self.failing_commits.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if failing.is_ok() {
            return Err(StoreError::new(ErrorKind::Unavailable, "commit", "database unavailable (injected)"));
        }
        self.inner.commit(tenant, key, update, resolution).await
    }
}
