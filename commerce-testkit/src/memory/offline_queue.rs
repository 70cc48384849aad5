//! In-memory [`OfflineQueueStore`]: every operation runs under one lock, which makes the bounded enqueue
//! atomic. Entries are kept in a map with their queueing order, so "oldest first" breaks ties the way the
//! database stores do. Settling an entry erases its card data under the same lock that changes its status.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use commerce_ports::offline_queue::{
    Enqueued, OfflineEntry, OfflineQueueStore, OfflineStatus, check_new_entry, entry_subject, replay_or_conflict,
    settled_again,
};
use commerce_ports::{ErrorKind, IdempotencyKey, StoreError, TenantId};
use time::OffsetDateTime;

type EntryKey = (TenantId, String, IdempotencyKey);

#[derive(Debug, Default)]
struct Queue {
    /// Each entry with its queueing sequence.
    entries: HashMap<EntryKey, (u64, OfflineEntry)>,
    next: u64,
}

/// In-memory [`OfflineQueueStore`].
#[derive(Debug, Default)]
pub struct MemoryOfflineQueueStore {
    queue: Mutex<Queue>,
}

impl MemoryOfflineQueueStore {
    /// An empty queue.
    pub fn new() -> MemoryOfflineQueueStore {
        MemoryOfflineQueueStore::default()
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn pending_of(queue: &Queue, tenant: &TenantId, terminal_id: &str) -> usize {
    queue
        .entries
        .iter()
        .filter(|((t, term, _), (_, e))| t == tenant && term == terminal_id && e.status.is_pending())
        .count()
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Queue {
    /// Settles a pending entry with `status`, erasing its card data, or checks a settled one has the same
    /// result.
    fn settle(
        &mut self,
        op: &'static str,
        id: EntryKey,
        status: OfflineStatus,
        at: OffsetDateTime,
    ) -> Result<OfflineEntry, StoreError> {
        let what = entry_subject(id.0.as_str(), &id.1, id.2.as_str());
        let (_, entry) =
            self.entries.get_mut(&id).ok_or_else(|| StoreError::new(ErrorKind::NotFound, op, format!("no {what}")))?;
        if entry.status.is_pending() {
            entry.status = status;
            entry.settled_at = Some(at);
            // Sensitive authentication data is not kept once the payment is settled (PCI DSS).
            entry.card.card_data = String::new();
            return Ok(entry.clone());
        }
        settled_again(op, entry.clone(), &status)
    }
}

#[async_trait]
impl OfflineQueueStore for MemoryOfflineQueueStore {
    async fn enqueue(&self, entry: OfflineEntry, max_count: u32) -> Result<Enqueued, StoreError> {
        const OP: &str = "enqueue";
        check_new_entry(&entry)?;
        let mut queue = self.lock();
        let id = (entry.tenant.clone(), entry.terminal_id().to_owned(), entry.key().clone());
        if let Some((_, stored)) = queue.entries.get(&id) {
            return replay_or_conflict(stored.clone(), &entry);
        }
        let pending = pending_of(&queue, &entry.tenant, entry.terminal_id());
        if pending >= usize::try_from(max_count).unwrap_or(usize::MAX) {
            return Err(StoreError::new(
                ErrorKind::InvalidState,
                OP,
                format!("the offline queue of terminal `{}` is full: {pending} pending of at most {max_count}", id.1),
            ));
        }
        let seq = queue.next;
        queue.next += 1;
        queue.entries.insert(id, (seq, entry.clone()));
        Ok(Enqueued::Queued { entry, pending: count(pending + 1) })
    }

    async fn get(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<OfflineEntry>, StoreError> {
        let id = (tenant.clone(), terminal_id.to_owned(), key.clone());
        Ok(self.lock().entries.get(&id).map(|(_, e)| e.clone()))
    }

    async fn pending(&self, tenant: &TenantId, terminal_id: &str, limit: u32) -> Result<Vec<OfflineEntry>, StoreError> {
        let queue = self.lock();
        let mut found: Vec<&(u64, OfflineEntry)> = queue
            .entries
            .iter()
            .filter(|((t, term, _), (_, e))| t == tenant && term == terminal_id && e.status.is_pending())
            .map(|(_, v)| v)
            .collect();
        found.sort_by_key(|(seq, e)| (e.accepted_at, *seq));
        Ok(found.into_iter().take(usize::try_from(limit).unwrap_or(usize::MAX)).map(|(_, e)| e.clone()).collect())
    }

    async fn pending_count(&self, tenant: &TenantId, terminal_id: &str) -> Result<u32, StoreError> {
        Ok(count(pending_of(&self.lock(), tenant, terminal_id)))
    }

    async fn mark_forwarded(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        provider_reference: &str,
        at: OffsetDateTime,
    ) -> Result<OfflineEntry, StoreError> {
        let id = (tenant.clone(), terminal_id.to_owned(), key.clone());
        let status = OfflineStatus::Forwarded { provider_reference: provider_reference.to_owned() };
        self.lock().settle("mark_forwarded", id, status, at)
    }

    async fn mark_declined(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<OfflineEntry, StoreError> {
        let id = (tenant.clone(), terminal_id.to_owned(), key.clone());
        self.lock().settle("mark_declined", id, OfflineStatus::Declined { reason: reason.to_owned() }, at)
    }

    async fn record_attempt(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        error: &str,
    ) -> Result<OfflineEntry, StoreError> {
        const OP: &str = "record_attempt";
        let what = entry_subject(tenant.as_str(), terminal_id, key.as_str());
        let mut queue = self.lock();
        let (_, entry) = queue
            .entries
            .get_mut(&(tenant.clone(), terminal_id.to_owned(), key.clone()))
            .ok_or_else(|| StoreError::new(ErrorKind::NotFound, OP, format!("no {what}")))?;
        if !entry.status.is_pending() {
            return Err(StoreError::new(
                ErrorKind::InvalidState,
                OP,
                format!("{what} is already {}; no attempt is counted", entry.status.as_str()),
            ));
        }
        entry.attempts = entry.attempts.saturating_add(1);
        entry.last_error = Some(error.to_owned());
        Ok(entry.clone())
    }
}
