//! In-memory implementations of every store port. Each operation runs under one lock, which gives the
//! atomicity the contracts ask for; a database implementation gets it from transactions instead.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use commerce_ports::replication::{Change, Stream};
use commerce_ports::stores::{
    ClaimStatus, DomainClaim, DomainClaimStore, DomainMapping, IdempotencyBegin, IdempotencyClaim, IdempotencyRecord,
    IdempotencyStore, IntentCursor, IntentEvent, IntentSnapshot, IntentStatus, IntentUpdate, KeyResolution,
    LedgerClaim, Pairing, PairingStore, PaymentIntent, PaymentIntentStore, PaymentLedger, PrintJob, PrintJobStatus,
    PrintJobStore, ReplicationStore, StoreSet, WebhookEventStore, check_ledger_create, check_ledger_update,
};
use commerce_ports::{DeviceId, ErrorKind, IdempotencyKey, IntentId, RegisterId, StoreError, TenantId};
use time::OffsetDateTime;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn err(kind: ErrorKind, operation: &'static str, message: impl Into<String>) -> StoreError {
    StoreError::new(kind, operation, message)
}

// ---------------------------------------------------------------------------------------------------------

type Records = HashMap<(TenantId, IdempotencyKey), IdempotencyRecord>;

/// In-memory [`IdempotencyStore`].
#[derive(Debug, Default)]
pub struct MemoryIdempotencyStore {
    records: Mutex<Records>,
}

/// `begin` on the records, under their lock.
fn begin_in(
    records: &mut Records,
    tenant: &TenantId,
    key: &IdempotencyKey,
    claim: IdempotencyClaim,
) -> IdempotencyBegin {
    let id = (tenant.clone(), key.clone());
    match records.get_mut(&id) {
        None => {
            records.insert(id, IdempotencyRecord::started(claim));
            IdempotencyBegin::Started { recovered: false }
        }
        Some(existing) => {
            if existing.operation != claim.operation || existing.fingerprint != claim.fingerprint {
                return IdempotencyBegin::Conflict { operation: existing.operation.clone() };
            }
            if let Some(response) = &existing.response {
                return IdempotencyBegin::Completed(response.clone());
            }
            if existing.lease_until <= claim.now {
                existing.lease_until = claim.lease_until;
                return IdempotencyBegin::Started { recovered: true };
            }
            IdempotencyBegin::InProgress
        }
    }
}

#[async_trait]
impl IdempotencyStore for MemoryIdempotencyStore {
    async fn begin(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        claim: IdempotencyClaim,
    ) -> Result<IdempotencyBegin, StoreError> {
        Ok(begin_in(&mut lock(&self.records), tenant, key, claim))
    }

    async fn complete(&self, tenant: &TenantId, key: &IdempotencyKey, response: Vec<u8>) -> Result<(), StoreError> {
        let mut records = lock(&self.records);
        let record = records
            .get_mut(&(tenant.clone(), key.clone()))
            .ok_or_else(|| err(ErrorKind::NotFound, "complete", format!("no idempotency record for key `{key}`")))?;
        if record.response.is_some() {
            return Err(err(
                ErrorKind::InvalidState,
                "complete",
                format!("key `{key}` is already completed; its first response stands"),
            ));
        }
        record.response = Some(response);
        Ok(())
    }

    async fn release(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<(), StoreError> {
        let mut records = lock(&self.records);
        let id = (tenant.clone(), key.clone());
        match records.get(&id) {
            Some(r) if r.response.is_some() => {
                Err(err(ErrorKind::InvalidState, "release", format!("key `{key}` is completed and cannot be released")))
            }
            _ => {
                records.remove(&id);
                Ok(())
            }
        }
    }

    async fn get(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(lock(&self.records).get(&(tenant.clone(), key.clone())).cloned())
    }

    async fn renew(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        held_until: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        // The same records `MemoryLedger::claim` claims into, under the same lock as `begin`: a takeover sees
        // the lease before or after the renewal. The record's `lease_until` is all the lease state there is.
        let mut records = lock(&self.records);
        match records.get_mut(&(tenant.clone(), key.clone())) {
            Some(record) if record.response.is_none() && record.lease_until == held_until => {
                record.lease_until = until;
                Ok(true)
            }
            _ => Ok(false),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Intents {
    intents: HashMap<(TenantId, IntentId), PaymentIntent>,
    events: HashMap<(TenantId, IntentId), Vec<IntentEvent>>,
}

/// In-memory [`PaymentIntentStore`].
#[derive(Debug, Default)]
pub struct MemoryPaymentIntentStore {
    inner: Mutex<Intents>,
}

#[async_trait]
impl PaymentIntentStore for MemoryPaymentIntentStore {
    async fn create(&self, intent: PaymentIntent, event: IntentEvent) -> Result<(), StoreError> {
        if intent.version != 1 || event.sequence != 1 {
            return Err(StoreError::invalid(
                "create",
                format!(
                    "a new intent has version 1 and event sequence 1, got {} and {}",
                    intent.version, event.sequence
                ),
            ));
        }
        let mut inner = lock(&self.inner);
        let id = (intent.tenant.clone(), intent.id.clone());
        if inner.intents.contains_key(&id) {
            return Err(err(ErrorKind::AlreadyExists, "create", format!("intent `{}` already exists", intent.id)));
        }
        inner.events.insert(id.clone(), vec![event]);
        inner.intents.insert(id, intent);
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &IntentId) -> Result<PaymentIntent, StoreError> {
        lock(&self.inner)
            .intents
            .get(&(tenant.clone(), id.clone()))
            .cloned()
            .ok_or_else(|| err(ErrorKind::NotFound, "get", format!("no intent `{id}` for tenant `{tenant}`")))
    }

    async fn update(&self, intent: PaymentIntent, expected_version: u64, event: IntentEvent) -> Result<(), StoreError> {
        let next = expected_version.checked_add(1).ok_or_else(|| StoreError::invalid("update", "version overflow"))?;
        if intent.version != next || event.sequence != next {
            return Err(StoreError::invalid(
                "update",
                format!(
                    "updating from version {expected_version} needs intent version and event sequence {next}, got {} and {}",
                    intent.version, event.sequence
                ),
            ));
        }
        let mut inner = lock(&self.inner);
        let id = (intent.tenant.clone(), intent.id.clone());
        let stored = inner
            .intents
            .get(&id)
            .ok_or_else(|| err(ErrorKind::NotFound, "update", format!("no intent `{}`", intent.id)))?;
        if stored.version != expected_version {
            return Err(err(
                ErrorKind::Conflict,
                "update",
                format!("intent `{}` is at version {}, not {expected_version}", intent.id, stored.version),
            ));
        }
        inner.events.entry(id.clone()).or_default().push(event);
        inner.intents.insert(id, intent);
        Ok(())
    }

    async fn events(&self, tenant: &TenantId, id: &IntentId) -> Result<Vec<IntentEvent>, StoreError> {
        lock(&self.inner)
            .events
            .get(&(tenant.clone(), id.clone()))
            .cloned()
            .ok_or_else(|| err(ErrorKind::NotFound, "events", format!("no intent `{id}` for tenant `{tenant}`")))
    }

    async fn find_by_provider_reference(
        &self,
        tenant: &TenantId,
        provider: &str,
        reference: &str,
    ) -> Result<Option<PaymentIntent>, StoreError> {
        Ok(lock(&self.inner)
            .intents
            .values()
            .find(|i| {
                &i.tenant == tenant && i.provider == provider && i.provider_reference.as_deref() == Some(reference)
            })
            .cloned())
    }

    async fn find_by_reference(&self, tenant: &TenantId, reference: &str) -> Result<Vec<PaymentIntent>, StoreError> {
        let inner = lock(&self.inner);
        let mut found: Vec<PaymentIntent> =
            inner.intents.values().filter(|i| &i.tenant == tenant && i.reference == reference).cloned().collect();
        found.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(found)
    }

    async fn list_by_status(
        &self,
        tenant: &TenantId,
        status: IntentStatus,
        limit: u32,
    ) -> Result<Vec<PaymentIntent>, StoreError> {
        Ok(page_by_status(&lock(&self.inner), tenant, status, None, limit))
    }

    async fn list_by_status_after(
        &self,
        tenant: &TenantId,
        status: IntentStatus,
        after: Option<IntentCursor>,
        limit: u32,
    ) -> Result<Vec<PaymentIntent>, StoreError> {
        Ok(page_by_status(&lock(&self.inner), tenant, status, after.as_ref(), limit))
    }
}

/// The listing order of [`PaymentIntentStore::list_by_status`]: update time, then id (as strings).
fn listing_order(a: &PaymentIntent, b: &PaymentIntent) -> Ordering {
    a.updated_at.cmp(&b.updated_at).then_with(|| a.id.as_str().cmp(b.id.as_str()))
}

/// The tenant's intents in `status` after `after` (all without it), in listing order, at most `limit`. Only the
/// page is sorted and cloned: the first `limit` matches are selected in linear time.
fn page_by_status(
    inner: &Intents,
    tenant: &TenantId,
    status: IntentStatus,
    after: Option<&IntentCursor>,
    limit: u32,
) -> Vec<PaymentIntent> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if limit == 0 {
        return Vec::new();
    }
    let mut found: Vec<&PaymentIntent> = inner
        .intents
        .values()
        .filter(|i| &i.tenant == tenant && i.status == status && after.is_none_or(|c| c.precedes(i)))
        .collect();
    if found.len() > limit {
        found.select_nth_unstable_by(limit - 1, |a, b| listing_order(a, b));
        found.truncate(limit);
    }
    found.sort_unstable_by(|a, b| listing_order(a, b));
    found.into_iter().cloned().collect()
}

// ---------------------------------------------------------------------------------------------------------

/// In-memory [`PaymentLedger`] over a [`MemoryIdempotencyStore`] and a [`MemoryPaymentIntentStore`]: each call
/// runs under both stores' locks (keys first, then intents), so a claim or a commit is one atomic step, as
/// in the database ledgers, and costs one call instead of the [`SplitLedger`](commerce_ports::stores::SplitLedger)'s
/// several. [`memory_store_set`] uses it.
#[derive(Debug, Clone)]
pub struct MemoryLedger {
    idempotency: Arc<MemoryIdempotencyStore>,
    intents: Arc<MemoryPaymentIntentStore>,
}

impl MemoryLedger {
    /// A ledger over these stores (the ones the service's other calls use).
    pub fn new(idempotency: Arc<MemoryIdempotencyStore>, intents: Arc<MemoryPaymentIntentStore>) -> MemoryLedger {
        MemoryLedger { idempotency, intents }
    }
}

#[async_trait]
impl PaymentLedger for MemoryLedger {
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        claim: IdempotencyClaim,
        intent: &IntentId,
        create: Option<(PaymentIntent, IntentEvent)>,
    ) -> Result<LedgerClaim, StoreError> {
        check_ledger_create(tenant, intent, create.as_ref())?;
        let mut records = lock(&self.idempotency.records);
        let begin = begin_in(&mut records, tenant, key, claim);
        if !matches!(begin, IdempotencyBegin::Started { .. }) {
            return Ok(LedgerClaim::new(begin, None));
        }
        let mut inner = lock(&self.intents.inner);
        let id = (tenant.clone(), intent.clone());
        let snapshot = match (inner.intents.get(&id), create) {
            (Some(stored), _) => {
                Some(IntentSnapshot::new(stored.clone(), inner.events.get(&id).cloned().unwrap_or_default()))
            }
            (None, Some((new, event))) => {
                inner.events.insert(id.clone(), vec![event.clone()]);
                inner.intents.insert(id, new.clone());
                Some(IntentSnapshot::new(new, vec![event]))
            }
            (None, None) => None,
        };
        Ok(LedgerClaim::new(begin, snapshot))
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        update: Option<IntentUpdate>,
        resolution: KeyResolution,
    ) -> Result<(), StoreError> {
        check_ledger_update(tenant, update.as_ref())?;
        if !matches!(resolution, KeyResolution::Complete(_) | KeyResolution::Release) {
            return Err(err(ErrorKind::Unsupported, "commit", format!("unknown key resolution {resolution:?}")));
        }
        if let Some(u) = &update {
            let next =
                u.expected_version.checked_add(1).ok_or_else(|| StoreError::invalid("commit", "version overflow"))?;
            if u.intent.version != next || u.event.sequence != next {
                return Err(StoreError::invalid(
                    "commit",
                    format!(
                        "updating from version {} needs intent version and event sequence {next}, got {} and {}",
                        u.expected_version, u.intent.version, u.event.sequence
                    ),
                ));
            }
        }
        let mut records = lock(&self.idempotency.records);
        let record_id = (tenant.clone(), key.clone());
        match records.get(&record_id) {
            None => return Err(err(ErrorKind::NotFound, "commit", format!("no idempotency record for key `{key}`"))),
            Some(record) if record.response.is_some() => {
                return Err(err(
                    ErrorKind::InvalidState,
                    "commit",
                    format!("key `{key}` is already completed; its first response stands"),
                ));
            }
            Some(_) => {}
        }
        if let Some(IntentUpdate { intent, expected_version, event, created, .. }) = update {
            let mut inner = lock(&self.intents.inner);
            let id = (intent.tenant.clone(), intent.id.clone());
            let history = match created {
                Some((_, first)) => {
                    if inner.intents.contains_key(&id) {
                        return Err(err(
                            ErrorKind::AlreadyExists,
                            "commit",
                            format!("intent `{}` already exists", intent.id),
                        ));
                    }
                    vec![first, event]
                }
                None => {
                    let stored = inner
                        .intents
                        .get(&id)
                        .ok_or_else(|| err(ErrorKind::NotFound, "commit", format!("no intent `{}`", intent.id)))?;
                    if stored.version != expected_version {
                        return Err(err(
                            ErrorKind::Conflict,
                            "commit",
                            format!("intent `{}` is at version {}, not {expected_version}", intent.id, stored.version),
                        ));
                    }
                    let mut history = inner.events.remove(&id).unwrap_or_default();
                    history.push(event);
                    history
                }
            };
            inner.events.insert(id.clone(), history);
            inner.intents.insert(id, intent);
        }
        match resolution {
            KeyResolution::Complete(response) => {
                if let Some(record) = records.get_mut(&record_id) {
                    record.response = Some(response);
                }
            }
            KeyResolution::Release => {
                records.remove(&record_id);
            }
            // Refused above, before anything changed.
            _ => {}
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------

/// In-memory [`WebhookEventStore`], keyed by (tenant, provider, event id).
#[derive(Debug, Default)]
pub struct MemoryWebhookEventStore {
    seen: Mutex<HashSet<(TenantId, String, String)>>,
}

#[async_trait]
impl WebhookEventStore for MemoryWebhookEventStore {
    async fn record(
        &self,
        tenant: &TenantId,
        provider: &str,
        event_id: &str,
        _received_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(lock(&self.seen).insert((tenant.clone(), provider.to_owned(), event_id.to_owned())))
    }

    async fn contains(&self, tenant: &TenantId, provider: &str, event_id: &str) -> Result<bool, StoreError> {
        Ok(lock(&self.seen).contains(&(tenant.clone(), provider.to_owned(), event_id.to_owned())))
    }
}

// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Domains {
    claims: HashMap<String, DomainClaim>,
    mappings: HashMap<String, DomainMapping>,
}

/// In-memory [`DomainClaimStore`].
#[derive(Debug, Default)]
pub struct MemoryDomainClaimStore {
    inner: Mutex<Domains>,
}

fn is_live(status: ClaimStatus) -> bool {
    matches!(status, ClaimStatus::Pending | ClaimStatus::Verified)
}

#[async_trait]
impl DomainClaimStore for MemoryDomainClaimStore {
    async fn create(&self, claim: DomainClaim) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        if let Some(existing) = inner.claims.get(&claim.hostname)
            && is_live(existing.status)
        {
            return Err(err(
                ErrorKind::AlreadyExists,
                "create",
                format!("hostname `{}` already has a live claim by tenant `{}`", claim.hostname, existing.tenant),
            ));
        }
        inner.claims.insert(claim.hostname.clone(), claim);
        Ok(())
    }

    async fn get(&self, hostname: &str) -> Result<Option<DomainClaim>, StoreError> {
        Ok(lock(&self.inner).claims.get(hostname).cloned())
    }

    async fn update(&self, claim: DomainClaim, expected_version: u64) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        let stored = inner
            .claims
            .get(&claim.hostname)
            .ok_or_else(|| err(ErrorKind::NotFound, "update", format!("no claim for `{}`", claim.hostname)))?;
        if stored.version != expected_version {
            return Err(err(
                ErrorKind::Conflict,
                "update",
                format!("claim `{}` is at version {}, not {expected_version}", claim.hostname, stored.version),
            ));
        }
        if claim.version != expected_version.saturating_add(1) {
            return Err(StoreError::invalid(
                "update",
                format!("new version must be {}", expected_version.saturating_add(1)),
            ));
        }
        inner.claims.insert(claim.hostname.clone(), claim);
        Ok(())
    }

    async fn due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<DomainClaim>, StoreError> {
        let inner = lock(&self.inner);
        let mut due: Vec<DomainClaim> = inner
            .claims
            .values()
            .filter(|c| c.status == ClaimStatus::Pending && c.next_check_at <= now)
            .cloned()
            .collect();
        due.sort_by(|a, b| a.next_check_at.cmp(&b.next_check_at).then_with(|| a.hostname.cmp(&b.hostname)));
        due.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(due)
    }

    async fn put_mapping(&self, mapping: DomainMapping) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        if let Some(existing) = inner.mappings.get(&mapping.hostname)
            && existing.tenant != mapping.tenant
        {
            return Err(err(
                ErrorKind::AlreadyExists,
                "put_mapping",
                format!("hostname `{}` is mapped to tenant `{}`", mapping.hostname, existing.tenant),
            ));
        }
        inner.mappings.insert(mapping.hostname.clone(), mapping);
        Ok(())
    }

    async fn mapping(&self, hostname: &str) -> Result<Option<DomainMapping>, StoreError> {
        Ok(lock(&self.inner).mappings.get(hostname).cloned())
    }

    async fn remove_mapping(&self, hostname: &str) -> Result<(), StoreError> {
        lock(&self.inner).mappings.remove(hostname);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------

#[derive(Debug, Default)]
struct Replication {
    outbox: HashMap<Stream, BTreeMap<u64, Change>>,
    outbox_ids: HashMap<Stream, HashSet<String>>,
    inbox_ids: HashMap<Stream, HashSet<String>>,
    checkpoints: HashMap<Stream, u64>,
}

/// In-memory [`ReplicationStore`].
#[derive(Debug, Default)]
pub struct MemoryReplicationStore {
    inner: Mutex<Replication>,
}

#[async_trait]
impl ReplicationStore for MemoryReplicationStore {
    async fn outbox_append(&self, stream: &Stream, changes: Vec<Change>) -> Result<(), StoreError> {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let ids = inner.outbox_ids.entry(stream.clone()).or_default();
        let outbox = inner.outbox.entry(stream.clone()).or_default();
        // Check the whole batch before changing anything: a new change may not take a sequence that another
        // change holds (pending, or earlier in this batch).
        let mut taken: BTreeMap<u64, &str> = BTreeMap::new();
        for change in changes.iter().filter(|c| !ids.contains(&c.change_id)) {
            let holder =
                outbox.get(&change.sequence).map(|c| c.change_id.as_str()).or(taken.get(&change.sequence).copied());
            if let Some(holder) = holder
                && holder != change.change_id
            {
                return Err(StoreError::invalid(
                    "outbox_append",
                    format!(
                        "change `{}` wants sequence {}, which change `{holder}` holds; nothing was appended",
                        change.change_id, change.sequence
                    ),
                ));
            }
            taken.insert(change.sequence, &change.change_id);
        }
        for change in changes {
            if ids.insert(change.change_id.clone()) {
                outbox.insert(change.sequence, change);
            }
        }
        Ok(())
    }

    async fn outbox_pending(&self, stream: &Stream, limit: u32) -> Result<Vec<Change>, StoreError> {
        let inner = lock(&self.inner);
        Ok(inner
            .outbox
            .get(stream)
            .map(|o| o.values().take(usize::try_from(limit).unwrap_or(usize::MAX)).cloned().collect())
            .unwrap_or_default())
    }

    async fn outbox_ack(&self, stream: &Stream, sequence: u64) -> Result<(), StoreError> {
        let mut inner = lock(&self.inner);
        if let Some(outbox) = inner.outbox.get_mut(stream) {
            outbox.retain(|s, _| *s > sequence);
        }
        Ok(())
    }

    async fn checkpoint(&self, stream: &Stream) -> Result<u64, StoreError> {
        Ok(lock(&self.inner).checkpoints.get(stream).copied().unwrap_or(0))
    }

    async fn inbox_commit(
        &self,
        stream: &Stream,
        expected_checkpoint: u64,
        new_checkpoint: u64,
        changes: Vec<Change>,
    ) -> Result<Vec<Change>, StoreError> {
        if new_checkpoint < expected_checkpoint {
            return Err(StoreError::invalid(
                "inbox_commit",
                format!("new checkpoint {new_checkpoint} is behind the expected {expected_checkpoint}"),
            ));
        }
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let current = inner.checkpoints.get(stream).copied().unwrap_or(0);
        if current != expected_checkpoint {
            return Err(err(
                ErrorKind::Conflict,
                "inbox_commit",
                format!("checkpoint is {current}, not {expected_checkpoint}"),
            ));
        }
        let ids = inner.inbox_ids.entry(stream.clone()).or_default();
        let fresh: Vec<Change> = changes.into_iter().filter(|c| ids.insert(c.change_id.clone())).collect();
        inner.checkpoints.insert(stream.clone(), new_checkpoint);
        Ok(fresh)
    }
}

// ---------------------------------------------------------------------------------------------------------

/// In-memory [`PrintJobStore`].
#[derive(Debug, Default)]
pub struct MemoryPrintJobStore {
    jobs: Mutex<Vec<PrintJob>>,
}

#[async_trait]
impl PrintJobStore for MemoryPrintJobStore {
    async fn enqueue(&self, job: PrintJob) -> Result<PrintJob, StoreError> {
        let mut jobs = lock(&self.jobs);
        if let Some(existing) = jobs.iter().find(|j| j.key == job.key) {
            return Ok(existing.clone());
        }
        jobs.push(job.clone());
        Ok(job)
    }

    async fn next(&self, printer: &DeviceId) -> Result<Option<PrintJob>, StoreError> {
        let jobs = lock(&self.jobs);
        Ok(jobs
            .iter()
            .filter(|j| &j.printer == printer && j.status == PrintJobStatus::Queued)
            .min_by(|a, b| a.created_at.cmp(&b.created_at))
            .cloned())
    }

    async fn set_status(&self, key: &IdempotencyKey, status: PrintJobStatus) -> Result<PrintJob, StoreError> {
        let mut jobs = lock(&self.jobs);
        let job = jobs
            .iter_mut()
            .find(|j| &j.key == key)
            .ok_or_else(|| err(ErrorKind::NotFound, "set_status", format!("no print job `{key}`")))?;
        if status == PrintJobStatus::Printing {
            job.attempts = job.attempts.saturating_add(1);
        }
        job.status = status;
        Ok(job.clone())
    }
}

// ---------------------------------------------------------------------------------------------------------

/// In-memory [`PairingStore`].
#[derive(Debug, Default)]
pub struct MemoryPairingStore {
    pairings: Mutex<HashMap<RegisterId, Pairing>>,
}

#[async_trait]
impl PairingStore for MemoryPairingStore {
    async fn put(&self, pairing: Pairing) -> Result<(), StoreError> {
        let mut pairings = lock(&self.pairings);
        if let Some(other) =
            pairings.values().find(|p| p.token_hash == pairing.token_hash && p.client != pairing.client)
        {
            return Err(err(
                ErrorKind::AlreadyExists,
                "put",
                format!("token hash already belongs to client `{}`", other.client),
            ));
        }
        pairings.insert(pairing.client.clone(), pairing);
        Ok(())
    }

    async fn by_token_hash(&self, token_hash: &str) -> Result<Option<Pairing>, StoreError> {
        Ok(lock(&self.pairings).values().find(|p| p.token_hash == token_hash && p.revoked_at.is_none()).cloned())
    }

    async fn revoke(&self, client: &RegisterId, at: OffsetDateTime) -> Result<(), StoreError> {
        let mut pairings = lock(&self.pairings);
        let pairing = pairings
            .get_mut(client)
            .ok_or_else(|| err(ErrorKind::NotFound, "revoke", format!("client `{client}` is not paired")))?;
        pairing.revoked_at = Some(at);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------

/// Every in-memory store, as a [`StoreSet`].
pub fn memory_store_set() -> StoreSet {
    let idempotency = Arc::new(MemoryIdempotencyStore::default());
    let intents = Arc::new(MemoryPaymentIntentStore::default());
    let ledger = Arc::new(MemoryLedger::new(idempotency.clone(), intents.clone()));
    StoreSet::new(
        idempotency,
        intents,
        Arc::new(MemoryWebhookEventStore::default()),
        Arc::new(MemoryDomainClaimStore::default()),
        Arc::new(MemoryReplicationStore::default()),
        Arc::new(MemoryPrintJobStore::default()),
        Arc::new(MemoryPairingStore::default()),
        Arc::new(super::offline_queue::MemoryOfflineQueueStore::default()),
    )
    .with_ledger(ledger)
}
