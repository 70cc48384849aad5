//! Store ports: where domain state lives (idempotency records, payment intents and their events, processed
//! webhook ids, domain claims and mappings, replication outbox/inbox/checkpoints, print jobs, pairings).
//!
//! Implementations: in-memory (testkit), SQLite (embedded default), PostgreSQL (shared by several service
//! instances). Concurrency safety is part of each contract (conditional writes, unique keys), so a
//! database implementation gets it from constraints and transactions, not from in-process locks.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::forward::forward_port;
use crate::ids::{ChannelId, DeviceId, IdempotencyKey, IntentId, RegisterId, TenantId};
use crate::money::Money;
use crate::offline_queue::OfflineQueueStore;
use crate::payment::TenderKind;
use crate::peripherals::ReceiptDocument;
use crate::replication::{Change, Stream};

// ---------------------------------------------------------------------------------------------------------
// Idempotency

/// What [`IdempotencyStore::begin`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum IdempotencyBegin {
    /// No record existed (or an expired lease was taken over): the caller owns the key until `lease_until`
    /// and must `complete` or `release` it.
    Started {
        /// True when an earlier holder's lease expired and this caller took over; the earlier call's outcome
        /// is unknown, so the caller must reuse the same provider key.
        recovered: bool,
    },
    /// The operation finished before; here is its stored response (success or failure).
    Completed(Vec<u8>),
    /// Another caller holds the key and its lease has not expired.
    InProgress,
    /// The key was used with other parameters or for another operation.
    Conflict {
        /// The operation the key was first used for.
        operation: String,
    },
}

/// What a caller asks of [`IdempotencyStore::begin`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IdempotencyClaim {
    /// The operation (`authorize`, `capture`, ...).
    pub operation: String,
    /// A digest of the request parameters.
    pub fingerprint: String,
    /// The caller's current time; a holder whose lease ended at or before it has expired.
    #[serde(with = "time::serde::rfc3339")]
    pub now: OffsetDateTime,
    /// Until when the caller will own the key if it gets it.
    #[serde(with = "time::serde::rfc3339")]
    pub lease_until: OffsetDateTime,
}

impl IdempotencyClaim {
    /// A claim.
    pub fn new(
        operation: impl Into<String>,
        fingerprint: impl Into<String>,
        now: OffsetDateTime,
        lease_until: OffsetDateTime,
    ) -> IdempotencyClaim {
        IdempotencyClaim { operation: operation.into(), fingerprint: fingerprint.into(), now, lease_until }
    }
}

/// An idempotency record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IdempotencyRecord {
    /// The operation (`authorize`, `capture`, ...).
    pub operation: String,
    /// A digest of the request parameters.
    pub fingerprint: String,
    /// The stored response, once completed.
    pub response: Option<Vec<u8>>,
    /// Until when the current holder owns the key (meaningful while `response` is `None`).
    #[serde(with = "time::serde::rfc3339")]
    pub lease_until: OffsetDateTime,
    /// When the key was first claimed (the `now` of the claim that created the record), kept when an expired
    /// lease is taken over or renewed: the earliest time a call under the key may have reached the provider.
    /// `None` for a record a store wrote before it kept this.
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub claimed_at: Option<OffsetDateTime>,
}

impl IdempotencyRecord {
    /// A record, uncompleted, for a claim: first claimed at the claim's `now`.
    pub fn started(claim: IdempotencyClaim) -> IdempotencyRecord {
        let claimed_at = Some(claim.now);
        IdempotencyRecord::stored(claim.operation, claim.fingerprint, claim.lease_until, claimed_at)
    }

    /// A record as a store read it back, uncompleted (set `response` for a completed one); `claimed_at` is
    /// `None` when the store does not know when the key was first claimed.
    pub fn stored(
        operation: impl Into<String>,
        fingerprint: impl Into<String>,
        lease_until: OffsetDateTime,
        claimed_at: Option<OffsetDateTime>,
    ) -> IdempotencyRecord {
        IdempotencyRecord {
            operation: operation.into(),
            fingerprint: fingerprint.into(),
            response: None,
            lease_until,
            claimed_at,
        }
    }
}

/// Idempotency records, keyed by (tenant, key).
///
/// # Contract
/// - `begin` is atomic: of many concurrent callers with one key, exactly one gets `Started`; the others get
///   `InProgress` (or `Completed` once the first completes).
/// - Same key, same operation and fingerprint after completion: `Completed` with the first response.
///   Different operation or fingerprint: `Conflict`, whatever the state.
/// - A lease that ended at or before the claim's `now` without completion is taken over
///   (`Started { recovered: true }`) and gets the new caller's `lease_until`.
/// - The record keeps the `now` of the claim that created it ([`IdempotencyRecord::claimed_at`]) through
///   takeovers and renewals; `get` shows it. A released key's next claim creates a new record.
/// - `complete` stores the response durably before returning; completing a completed key is `InvalidState`
///   and the first response stands.
/// - `release` deletes an uncompleted record. Callers release only when the operation certainly did not
///   happen, or when its outcome is unknown and every retry will re-send the same provider idempotency key
///   (the provider then replays instead of acting twice).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait IdempotencyStore: Send + Sync + Debug + 'static {
    /// Claims a key for an operation.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn begin(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        claim: IdempotencyClaim,
    ) -> Result<IdempotencyBegin, StoreError>;

    /// Stores the response of a started operation.
    ///
    /// # Errors
    /// `NotFound` when no record exists; `Unavailable`.
    async fn complete(&self, tenant: &TenantId, key: &IdempotencyKey, response: Vec<u8>) -> Result<(), StoreError>;

    /// Deletes an uncompleted record.
    ///
    /// # Errors
    /// `InvalidState` when the record is completed; `Unavailable`.
    async fn release(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<(), StoreError>;

    /// Reads a record.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn get(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Moves the lease end of an uncompleted record its holder still holds: later, for an operation that lasts
    /// longer than its lease (a customer at a card terminal, a slow provider); or to now, to hand the key over
    /// at once while keeping the record (a holder whose call may have reached the provider and whose answer
    /// could not be stored: the next caller takes it over as `recovered`, with the first claim's time). Only if
    /// the record's lease ends at `held_until` (the `lease_until` the holder claimed it with or last renewed it
    /// to, compared at the store's precision, as stored), sets it to `until` and answers `true`. Answers `false` and changes
    /// nothing when there is no record, it is completed, or its lease ends at another time (another caller
    /// took it over after it expired). Atomic with `begin`: a claim sees the lease before or after, never
    /// half-renewed.
    ///
    /// The default answers `Unsupported`: the store never extends a lease, which then runs its course.
    ///
    /// # Errors
    /// `Unsupported` (the default); `Unavailable`.
    async fn renew(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        held_until: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let _ = (tenant, key, held_until, until);
        Err(StoreError::new(crate::ErrorKind::Unsupported, "renew", "this idempotency store does not renew leases"))
    }
}

forward_port!(IdempotencyStore {
    async fn begin(&self, tenant: &TenantId, key: &IdempotencyKey, claim: IdempotencyClaim) -> Result<IdempotencyBegin, StoreError>;
    async fn complete(&self, tenant: &TenantId, key: &IdempotencyKey, response: Vec<u8>) -> Result<(), StoreError>;
    async fn release(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<(), StoreError>;
    async fn get(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, StoreError>;
    async fn renew(&self, tenant: &TenantId, key: &IdempotencyKey, held_until: OffsetDateTime, until: OffsetDateTime) -> Result<bool, StoreError>;
});

// ---------------------------------------------------------------------------------------------------------
// Payment intents

/// Status of a payment intent. The state machine lives in the payments domain; this is its vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum IntentStatus {
    /// Created, not yet authorized.
    RequiresAuthorization,
    /// Authorized, nothing captured.
    Authorized,
    /// Part of the authorization captured; more captures possible.
    PartiallyCaptured,
    /// Captured (fully, or finally).
    Captured,
    /// Part of the captured amount refunded.
    PartiallyRefunded,
    /// Everything captured was refunded.
    Refunded,
    /// Canceled before capture.
    Voided,
    /// Declined or failed.
    Failed,
    /// A call's outcome is unknown; a reconciler will settle it.
    OutcomeUnknown,
}

impl IntentStatus {
    /// True for states no operation leaves.
    pub fn is_terminal(self) -> bool {
        matches!(self, IntentStatus::Refunded | IntentStatus::Voided | IntentStatus::Failed)
    }

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            IntentStatus::RequiresAuthorization => "requires_authorization",
            IntentStatus::Authorized => "authorized",
            IntentStatus::PartiallyCaptured => "partially_captured",
            IntentStatus::Captured => "captured",
            IntentStatus::PartiallyRefunded => "partially_refunded",
            IntentStatus::Refunded => "refunded",
            IntentStatus::Voided => "voided",
            IntentStatus::Failed => "failed",
            IntentStatus::OutcomeUnknown => "outcome_unknown",
        }
    }
}

/// A payment intent as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PaymentIntent {
    /// The intent's id.
    pub id: IntentId,
    /// Tenant.
    pub tenant: TenantId,
    /// Sales channel.
    pub channel: ChannelId,
    /// Tender kind.
    pub tender: TenderKind,
    /// Status.
    pub status: IntentStatus,
    /// The amount asked for.
    pub amount: Money,
    /// Authorized so far.
    pub authorized: Money,
    /// Captured so far.
    pub captured: Money,
    /// Refunded so far.
    pub refunded: Money,
    /// The gateway binding's adapter name (`stripe`, `memory`).
    pub provider: String,
    /// The provider's reference, once known.
    pub provider_reference: Option<String>,
    /// The merchant's reference (order number).
    pub reference: String,
    /// Optimistic-concurrency version; starts at 1 and grows by one per update.
    pub version: u64,
    /// Created.
    #[serde(with = "crate::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "crate::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl PaymentIntent {
    /// A new intent in `RequiresAuthorization`, version 1.
    #[allow(clippy::too_many_arguments, reason = "every argument is a required field of the record")]
    pub fn new(
        id: IntentId,
        tenant: TenantId,
        channel: ChannelId,
        tender: TenderKind,
        amount: Money,
        provider: impl Into<String>,
        reference: impl Into<String>,
        now: OffsetDateTime,
    ) -> PaymentIntent {
        let zero = Money::zero(amount.currency());
        PaymentIntent {
            id,
            tenant,
            channel,
            tender,
            status: IntentStatus::RequiresAuthorization,
            amount,
            authorized: zero,
            captured: zero,
            refunded: zero,
            provider: provider.into(),
            provider_reference: None,
            reference: reference.into(),
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

/// One entry of an intent's append-only history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IntentEvent {
    /// 1-based position in the intent's history (equal to the intent version it produced).
    pub sequence: u64,
    /// When.
    #[serde(with = "crate::rfc3339")]
    pub at: OffsetDateTime,
    /// The operation (`create`, `authorize`, `capture`, `refund`, `void`, `webhook`, `reconcile`).
    pub operation: String,
    /// Status after the event.
    pub status: IntentStatus,
    /// The amount concerned, if any.
    pub amount: Option<Money>,
    /// The provider's reference of the payment or modification.
    pub provider_reference: Option<String>,
    /// Free text for people (decline reason, webhook id).
    pub detail: Option<String>,
    /// A machine-readable record owned by the domain crate that wrote the event (JSON: the call a pending
    /// outcome waits for, the call an answer applied). Stores persist it verbatim and never interpret it.
    pub data: Option<String>,
}

impl IntentEvent {
    /// An event.
    pub fn new(sequence: u64, at: OffsetDateTime, operation: impl Into<String>, status: IntentStatus) -> IntentEvent {
        IntentEvent {
            sequence,
            at,
            operation: operation.into(),
            status,
            amount: None,
            provider_reference: None,
            detail: None,
            data: None,
        }
    }

    /// Sets the amount.
    pub fn with_amount(mut self, amount: Money) -> IntentEvent {
        self.amount = Some(amount);
        self
    }

    /// Sets the provider reference.
    pub fn with_provider_reference(mut self, reference: impl Into<String>) -> IntentEvent {
        self.provider_reference = Some(reference.into());
        self
    }

    /// Sets the detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> IntentEvent {
        self.detail = Some(detail.into());
        self
    }

    /// Sets the machine-readable record.
    pub fn with_data(mut self, data: impl Into<String>) -> IntentEvent {
        self.data = Some(data.into());
        self
    }
}

/// Payment intents and their history.
///
/// # Contract
/// - `create` stores an intent (version 1) and its first event atomically; an existing id is
///   `AlreadyExists`.
/// - `update` replaces the intent and appends an event atomically, only if the stored version equals
///   `expected_version`; the new intent's version must be `expected_version + 1` and the event's sequence
///   must equal it. A stale version is `Conflict` and changes nothing.
/// - Events are never changed or deleted.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PaymentIntentStore: Send + Sync + Debug + 'static {
    /// Stores a new intent with its first event.
    ///
    /// # Errors
    /// `AlreadyExists`, `InvalidRequest` (version or sequence not 1), `Unavailable`.
    async fn create(&self, intent: PaymentIntent, event: IntentEvent) -> Result<(), StoreError>;

    /// Reads an intent.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`.
    async fn get(&self, tenant: &TenantId, id: &IntentId) -> Result<PaymentIntent, StoreError>;

    /// Replaces an intent if its version is `expected_version`, appending `event`.
    ///
    /// # Errors
    /// `Conflict` (stale version), `NotFound`, `InvalidRequest` (versions or sequence inconsistent),
    /// `Unavailable`.
    async fn update(&self, intent: PaymentIntent, expected_version: u64, event: IntentEvent) -> Result<(), StoreError>;

    /// The intent's history, oldest first.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`.
    async fn events(&self, tenant: &TenantId, id: &IntentId) -> Result<Vec<IntentEvent>, StoreError>;

    /// The tenant's intent a provider reference belongs to (for webhooks, which arrive per tenant).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn find_by_provider_reference(
        &self,
        tenant: &TenantId,
        provider: &str,
        reference: &str,
    ) -> Result<Option<PaymentIntent>, StoreError>;

    /// The tenant's intents with this merchant reference ([`PaymentIntent::reference`]), oldest first
    /// (created, then id). References are not unique, so every match is returned; for webhooks of payments
    /// whose provider reference is not known yet.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn find_by_reference(&self, tenant: &TenantId, reference: &str) -> Result<Vec<PaymentIntent>, StoreError>;

    /// Intents of a tenant in `status`, oldest update first (for reconciliation), at most `limit`. Intents
    /// updated at the same instant are in id order ([`IntentCursor`]).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn list_by_status(
        &self,
        tenant: &TenantId,
        status: IntentStatus,
        limit: u32,
    ) -> Result<Vec<PaymentIntent>, StoreError>;

    /// The page of [`list_by_status`](PaymentIntentStore::list_by_status) that follows `after` (the cursor
    /// of the last intent of the previous page; `None` for the first page): intents of the tenant in `status`
    /// whose (update time, id) comes after the cursor's, in that order, at most `limit`. Paging this way
    /// reaches every such intent, however many stay in the status (a reconciler that cannot settle some still
    /// reaches the rest).
    ///
    /// The default reads every intent in the status, sorts them and skips to the cursor (every page reads them
    /// all: a pass over `n` intents in pages of `p` reads about `n * n / p` rows); the crate's stores override
    /// it with a keyset read.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn list_by_status_after(
        &self,
        tenant: &TenantId,
        status: IntentStatus,
        after: Option<IntentCursor>,
        limit: u32,
    ) -> Result<Vec<PaymentIntent>, StoreError> {
        let mut all = self.list_by_status(tenant, status, u32::MAX).await?;
        // Sorted here: a store written before this method promised "oldest update first" only, not the order of
        // ties, and a page that ended inside a tie must not skip or repeat its other intents.
        all.sort_by(|a, b| (a.updated_at, a.id.as_str()).cmp(&(b.updated_at, b.id.as_str())));
        let take = usize::try_from(limit).unwrap_or(usize::MAX);
        Ok(all.into_iter().filter(|i| after.as_ref().is_none_or(|c| c.precedes(i))).take(take).collect())
    }
}

/// Where a page of [`PaymentIntentStore::list_by_status_after`] ends: the update time and id of its last
/// intent. Intents are listed by (update time, id), ids in the store's order of text (byte order in the
/// memory and SQLite stores; the database's collation in PostgreSQL): paging is complete and never repeats
/// within one store, whichever order that is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IntentCursor {
    /// The last listed intent's update time.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// The last listed intent's id.
    pub id: IntentId,
}

impl IntentCursor {
    /// A cursor from a stored position (a host keeping where its last pass stopped).
    pub fn new(updated_at: OffsetDateTime, id: IntentId) -> IntentCursor {
        IntentCursor { updated_at, id }
    }

    /// The cursor just past `intent`.
    pub fn after(intent: &PaymentIntent) -> IntentCursor {
        IntentCursor { updated_at: intent.updated_at, id: intent.id.clone() }
    }

    /// Whether `intent` comes after this cursor in byte order of ids (the default `list_by_status_after`'s).
    pub fn precedes(&self, intent: &PaymentIntent) -> bool {
        (intent.updated_at, intent.id.as_str()) > (self.updated_at, self.id.as_str())
    }
}

forward_port!(PaymentIntentStore {
    async fn create(&self, intent: PaymentIntent, event: IntentEvent) -> Result<(), StoreError>;
    async fn get(&self, tenant: &TenantId, id: &IntentId) -> Result<PaymentIntent, StoreError>;
    async fn update(&self, intent: PaymentIntent, expected_version: u64, event: IntentEvent) -> Result<(), StoreError>;
    async fn events(&self, tenant: &TenantId, id: &IntentId) -> Result<Vec<IntentEvent>, StoreError>;
    async fn find_by_provider_reference(&self, tenant: &TenantId, provider: &str, reference: &str) -> Result<Option<PaymentIntent>, StoreError>;
    async fn find_by_reference(&self, tenant: &TenantId, reference: &str) -> Result<Vec<PaymentIntent>, StoreError>;
    async fn list_by_status(&self, tenant: &TenantId, status: IntentStatus, limit: u32) -> Result<Vec<PaymentIntent>, StoreError>;
    async fn list_by_status_after(&self, tenant: &TenantId, status: IntentStatus, after: Option<IntentCursor>, limit: u32) -> Result<Vec<PaymentIntent>, StoreError>;
});

// ---------------------------------------------------------------------------------------------------------
// Payment ledger: the two store calls of one payment operation

/// An intent and its whole history, read together (the last event's sequence is the intent's version).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntentSnapshot {
    /// The intent.
    pub intent: PaymentIntent,
    /// Its events, oldest first.
    pub history: Vec<IntentEvent>,
}

impl IntentSnapshot {
    /// A snapshot.
    pub fn new(intent: PaymentIntent, history: Vec<IntentEvent>) -> IntentSnapshot {
        IntentSnapshot { intent, history }
    }
}

/// Reads an intent and its history consistently (the last event's sequence is the intent's version), over
/// separate `get` and `events` calls: retried when a write lands in between, at most three times.
///
/// # Errors
/// The store's (`NotFound` when there is no such intent); `Conflict` ("kept changing while it was read") when
/// every attempt raced a write.
pub async fn read_snapshot(
    store: &dyn PaymentIntentStore,
    operation: &'static str,
    tenant: &TenantId,
    id: &IntentId,
) -> Result<IntentSnapshot, StoreError> {
    for _ in 0..3 {
        let intent = store.get(tenant, id).await?;
        let history = store.events(tenant, id).await?;
        if history.last().map(|e| e.sequence) == Some(intent.version) {
            return Ok(IntentSnapshot::new(intent, history));
        }
    }
    Err(StoreError::new(
        crate::ErrorKind::Conflict,
        operation,
        format!("intent `{id}` kept changing while it was read"),
    ))
}

/// What [`PaymentLedger::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LedgerClaim {
    /// The idempotency answer, as [`IdempotencyStore::begin`] gives it.
    pub begin: IdempotencyBegin,
    /// The intent (created by this claim if asked and absent), only when `begin` is `Started` and the intent
    /// exists.
    pub intent: Option<IntentSnapshot>,
}

impl LedgerClaim {
    /// A claim answer.
    pub fn new(begin: IdempotencyBegin, intent: Option<IntentSnapshot>) -> LedgerClaim {
        LedgerClaim { begin, intent }
    }
}

/// An intent change for [`PaymentLedger::commit`], with the meaning of [`PaymentIntentStore::update`]; or,
/// with [`created`](IntentUpdate::created), the creation of an intent together with its first update.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IntentUpdate {
    /// The new intent (version `expected_version + 1`).
    pub intent: PaymentIntent,
    /// The version it replaces.
    pub expected_version: u64,
    /// The event it appends (sequence `expected_version + 1`).
    pub event: IntentEvent,
    /// When the intent is not stored yet: the intent as created (version 1) and its first event (sequence 1).
    /// The commit then creates it with [`PaymentIntentStore::create`]'s rules (an existing intent is
    /// `AlreadyExists` and changes nothing) and applies the update on top, so `expected_version` is 1.
    pub created: Option<(PaymentIntent, IntentEvent)>,
}

impl IntentUpdate {
    /// An update of a stored intent.
    pub fn new(intent: PaymentIntent, expected_version: u64, event: IntentEvent) -> IntentUpdate {
        IntentUpdate { intent, expected_version, event, created: None }
    }

    /// The creation of an intent (`created`, version 1, with its first event) and its update to `intent`
    /// (version 2, with `event`), in one commit: an operation that records its intent only with its outcome.
    pub fn creating(
        created: PaymentIntent,
        first: IntentEvent,
        intent: PaymentIntent,
        event: IntentEvent,
    ) -> IntentUpdate {
        IntentUpdate { intent, expected_version: 1, event, created: Some((created, first)) }
    }
}

/// What [`PaymentLedger::commit`] does with the idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyResolution {
    /// Store this response as the key's outcome ([`IdempotencyStore::complete`]).
    Complete(Vec<u8>),
    /// Delete the uncompleted record so a retry runs again ([`IdempotencyStore::release`]).
    Release,
}

/// Payment intents and idempotency records together: the store side of one payment operation in two calls,
/// one before the provider call ([`claim`](PaymentLedger::claim)) and one after
/// ([`commit`](PaymentLedger::commit)). A database that holds both implements it with one transaction per
/// call; [`SplitLedger`] composes any two separate stores (without the atomicity).
///
/// # Contract
/// - `claim` is [`IdempotencyStore::begin`]; only when it gives `Started`, it also reads the intent `intent`
///   with its history, and when `create` is given and the intent does not exist, first creates it with
///   [`PaymentIntentStore::create`]'s rules. It is atomic: the claim and the creation happen together or not
///   at all. It need not be durable by itself: it must be durable no later than the next `commit` of the
///   same store returns. (A claim lost to a power failure before that is a retry that starts over; every
///   retry re-sends the same provider idempotency key, so the provider replays instead of acting twice.)
/// - `commit` applies `update` as [`PaymentIntentStore::update`] and resolves the key, atomically and
///   durably: a stale version is `Conflict` and changes nothing, neither the intent nor the key; resolving a
///   key that is completed already is `InvalidState` and changes nothing. An update with
///   [`created`](IntentUpdate::created) first creates the intent as [`PaymentIntentStore::create`] does, in the
///   same atomic step: an intent that exists already is `AlreadyExists` and changes nothing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PaymentLedger: Send + Sync + Debug + 'static {
    /// Claims `key` and reads (or creates) the intent the operation works on.
    ///
    /// # Errors
    /// `InvalidRequest` (a `create` whose version or sequence is not 1, or for another intent id);
    /// `Unavailable`.
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        claim: IdempotencyClaim,
        intent: &IntentId,
        create: Option<(PaymentIntent, IntentEvent)>,
    ) -> Result<LedgerClaim, StoreError>;

    /// Applies `update` (if any; creating the intent first when it says so) and resolves `key`.
    ///
    /// # Errors
    /// `Conflict` (stale version), `NotFound` (no such intent or key), `AlreadyExists` (an intent to create
    /// exists), `InvalidState` (key completed), `InvalidRequest` (versions or sequence inconsistent, another
    /// tenant, a creation for another intent), `Unavailable`.
    async fn commit(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        update: Option<IntentUpdate>,
        resolution: KeyResolution,
    ) -> Result<(), StoreError>;
}

forward_port!(PaymentLedger {
    async fn claim(&self, tenant: &TenantId, key: &IdempotencyKey, claim: IdempotencyClaim, intent: &IntentId, create: Option<(PaymentIntent, IntentEvent)>) -> Result<LedgerClaim, StoreError>;
    async fn commit(&self, tenant: &TenantId, key: &IdempotencyKey, update: Option<IntentUpdate>, resolution: KeyResolution) -> Result<(), StoreError>;
});

/// Checks a [`PaymentLedger::claim`]'s `create` against the claimed tenant and intent, and that it is version 1
/// with event 1 (every ledger refuses a mismatch before touching anything).
///
/// # Errors
/// `InvalidRequest` naming what does not match.
pub fn check_ledger_create(
    tenant: &TenantId,
    intent: &IntentId,
    create: Option<&(PaymentIntent, IntentEvent)>,
) -> Result<(), StoreError> {
    match create {
        Some((new, _)) if &new.id != intent || &new.tenant != tenant => Err(StoreError::invalid(
            "claim",
            format!("`create` is for intent `{}` of tenant `{}`, not `{intent}` of `{tenant}`", new.id, new.tenant),
        )),
        Some((new, event)) if new.version != 1 || event.sequence != 1 => Err(StoreError::invalid(
            "claim",
            format!("a new intent has version 1 and event sequence 1, got {} and {}", new.version, event.sequence),
        )),
        _ => Ok(()),
    }
}

/// Checks that a [`PaymentLedger::commit`]'s update is for the key's tenant and, when it creates the intent,
/// that the creation is version 1 of the same intent with event 1, agreeing with the update on the fields no
/// update changes (channel, tender, currency, provider, reference, creation time), and the update its
/// version 2 (every ledger refuses a mismatch before touching anything).
///
/// # Errors
/// `InvalidRequest` naming what does not match.
pub fn check_ledger_update(tenant: &TenantId, update: Option<&IntentUpdate>) -> Result<(), StoreError> {
    let Some(u) = update else { return Ok(()) };
    if &u.intent.tenant != tenant {
        return Err(StoreError::invalid(
            "commit",
            format!(
                "the update is for intent `{}` of tenant `{}`, the key is tenant `{tenant}`'s",
                u.intent.id, u.intent.tenant
            ),
        ));
    }
    if let Some((created, first)) = &u.created {
        if created.id != u.intent.id || created.tenant != u.intent.tenant {
            return Err(StoreError::invalid(
                "commit",
                format!(
                    "the creation is for intent `{}` of tenant `{}`, the update for `{}` of `{}`",
                    created.id, created.tenant, u.intent.id, u.intent.tenant
                ),
            ));
        }
        let differs: Vec<&str> = [
            ("channel", created.channel != u.intent.channel),
            ("tender", created.tender != u.intent.tender),
            ("currency", created.amount.currency() != u.intent.amount.currency()),
            ("provider", created.provider != u.intent.provider),
            ("reference", created.reference != u.intent.reference),
            ("created_at", created.created_at != u.intent.created_at),
        ]
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect();
        if !differs.is_empty() {
            return Err(StoreError::invalid(
                "commit",
                format!(
                    "the created intent `{}` and its update differ in `{}`, which no update changes",
                    u.intent.id,
                    differs.join("`, `")
                ),
            ));
        }
        if created.version != 1 || first.sequence != 1 || u.expected_version != 1 {
            return Err(StoreError::invalid(
                "commit",
                format!(
                    "a creation is version 1 with event 1, updated from version 1; got version {}, event {} and \
                     expected version {}",
                    created.version, first.sequence, u.expected_version
                ),
            ));
        }
    }
    Ok(())
}

/// A [`PaymentLedger`] over two separate stores, one call after the other. Each step keeps its own store's
/// guarantees, but `commit` is not atomic: if the key's resolution fails after the intent update, the key
/// stays leased until its lease ends (the intent's history then tells a retry what happened). Use a store's
/// own ledger when it has one.
#[derive(Debug, Clone)]
pub struct SplitLedger {
    intents: Arc<dyn PaymentIntentStore>,
    idempotency: Arc<dyn IdempotencyStore>,
}

impl SplitLedger {
    /// A ledger over these stores.
    pub fn new(intents: Arc<dyn PaymentIntentStore>, idempotency: Arc<dyn IdempotencyStore>) -> SplitLedger {
        SplitLedger { intents, idempotency }
    }

    async fn read(&self, tenant: &TenantId, id: &IntentId) -> Result<Option<IntentSnapshot>, StoreError> {
        match read_snapshot(self.intents.as_ref(), "claim", tenant, id).await {
            Ok(snapshot) => Ok(Some(snapshot)),
            Err(e) if e.kind() == crate::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl PaymentLedger for SplitLedger {
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        claim: IdempotencyClaim,
        intent: &IntentId,
        create: Option<(PaymentIntent, IntentEvent)>,
    ) -> Result<LedgerClaim, StoreError> {
        check_ledger_create(tenant, intent, create.as_ref())?;
        let begin = self.idempotency.begin(tenant, key, claim).await?;
        if !matches!(begin, IdempotencyBegin::Started { .. }) {
            return Ok(LedgerClaim::new(begin, None));
        }
        let snapshot = match (self.read(tenant, intent).await, create) {
            (Ok(None), Some((new, event))) => match self.intents.create(new.clone(), event.clone()).await {
                Ok(()) => Ok(Some(IntentSnapshot::new(new, vec![event]))),
                Err(e) if e.kind() == crate::ErrorKind::AlreadyExists => self.read(tenant, intent).await,
                Err(e) => Err(e),
            },
            (other, _) => other,
        };
        match snapshot {
            Ok(intent) => Ok(LedgerClaim::new(begin, intent)),
            Err(e) => {
                // Nothing happened under the key: give it back so a retry can run.
                let _ = self.idempotency.release(tenant, key).await;
                Err(e)
            }
        }
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        update: Option<IntentUpdate>,
        resolution: KeyResolution,
    ) -> Result<(), StoreError> {
        check_ledger_update(tenant, update.as_ref())?;
        // Refuse a key that cannot be resolved before touching the intent (the atomic ledgers refuse both).
        match self.idempotency.get(tenant, key).await? {
            None => {
                return Err(StoreError::new(
                    crate::ErrorKind::NotFound,
                    "commit",
                    format!("no idempotency record for key `{key}`"),
                ));
            }
            Some(record) if record.response.is_some() => {
                return Err(StoreError::new(
                    crate::ErrorKind::InvalidState,
                    "commit",
                    format!("key `{key}` is already completed; its first response stands"),
                ));
            }
            Some(_) => {}
        }
        if let Some(IntentUpdate { intent, expected_version, event, created }) = update {
            if let Some((created, first)) = created {
                self.intents.create(created, first).await?;
            }
            self.intents.update(intent, expected_version, event).await?;
        }
        match resolution {
            KeyResolution::Complete(response) => self.idempotency.complete(tenant, key, response).await,
            KeyResolution::Release => self.idempotency.release(tenant, key).await,
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Processed webhooks

/// Ids of processed webhook events, per tenant.
///
/// # Contract
/// - Ids are scoped by tenant: the key is (tenant, provider, event id). Tenants sharing a provider account
///   receive the same event ids, and one tenant recording an id must not make it a duplicate for another.
/// - `record` is atomic and durable before it returns: of concurrent calls with one (tenant, provider,
///   event id), exactly one gets `true`.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait WebhookEventStore: Send + Sync + Debug + 'static {
    /// Records a tenant's event id; `true` when it was new for this tenant.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn record(
        &self,
        tenant: &TenantId,
        provider: &str,
        event_id: &str,
        received_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Whether the tenant recorded an event id.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn contains(&self, tenant: &TenantId, provider: &str, event_id: &str) -> Result<bool, StoreError>;
}

forward_port!(WebhookEventStore {
    async fn record(&self, tenant: &TenantId, provider: &str, event_id: &str, received_at: OffsetDateTime) -> Result<bool, StoreError>;
    async fn contains(&self, tenant: &TenantId, provider: &str, event_id: &str) -> Result<bool, StoreError>;
});

// ---------------------------------------------------------------------------------------------------------
// Domain claims and mappings

/// Status of a custom-domain claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClaimStatus {
    /// Waiting for DNS to verify.
    Pending,
    /// Verified; the hostname is mapped.
    Verified,
    /// Gave up after the verification window.
    Expired,
    /// Released by the tenant (a transfer cooldown may apply).
    Released,
}

/// A tenant's claim on a hostname.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DomainClaim {
    /// The hostname (lower case, IDNA A-label form).
    pub hostname: String,
    /// The claiming tenant.
    pub tenant: TenantId,
    /// The storefront channel.
    pub channel: ChannelId,
    /// The verification token expected in DNS.
    pub token: String,
    /// Status.
    pub status: ClaimStatus,
    /// Checks so far.
    pub attempts: u32,
    /// When to check next.
    #[serde(with = "time::serde::rfc3339")]
    pub next_check_at: OffsetDateTime,
    /// Last failure reason, machine-readable.
    pub last_failure: Option<String>,
    /// Optimistic-concurrency version.
    pub version: u64,
    /// Created.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last changed.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl DomainClaim {
    /// A new pending claim, version 1, due for a check at `now`.
    pub fn new(
        hostname: impl Into<String>,
        tenant: TenantId,
        channel: ChannelId,
        token: impl Into<String>,
        now: OffsetDateTime,
    ) -> DomainClaim {
        DomainClaim {
            hostname: hostname.into(),
            tenant,
            channel,
            token: token.into(),
            status: ClaimStatus::Pending,
            attempts: 0,
            next_check_at: now,
            last_failure: None,
            version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

/// A verified hostname routed to a tenant's channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DomainMapping {
    /// The hostname.
    pub hostname: String,
    /// Tenant.
    pub tenant: TenantId,
    /// Channel.
    pub channel: ChannelId,
}

impl DomainMapping {
    /// A mapping.
    pub fn new(hostname: impl Into<String>, tenant: TenantId, channel: ChannelId) -> DomainMapping {
        DomainMapping { hostname: hostname.into(), tenant, channel }
    }
}

/// Domain claims and hostname mappings.
///
/// # Contract
/// - At most one live claim (pending or verified) per hostname: `create` fails with `AlreadyExists` when one
///   exists, naming the hostname. A released or expired claim is replaced by a new one.
/// - `update` is conditional on `expected_version` like [`PaymentIntentStore::update`].
/// - `due` returns pending claims whose `next_check_at` is at or before `now`, earliest first.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait DomainClaimStore: Send + Sync + Debug + 'static {
    /// Stores a new claim.
    ///
    /// # Errors
    /// `AlreadyExists`, `Unavailable`.
    async fn create(&self, claim: DomainClaim) -> Result<(), StoreError>;

    /// Reads the current claim of a hostname.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn get(&self, hostname: &str) -> Result<Option<DomainClaim>, StoreError>;

    /// Replaces a claim if its version matches.
    ///
    /// # Errors
    /// `Conflict`, `NotFound`, `Unavailable`.
    async fn update(&self, claim: DomainClaim, expected_version: u64) -> Result<(), StoreError>;

    /// Pending claims due for a check.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<DomainClaim>, StoreError>;

    /// Creates or replaces a mapping.
    ///
    /// # Errors
    /// `AlreadyExists` when the hostname is mapped to another tenant; `Unavailable`.
    async fn put_mapping(&self, mapping: DomainMapping) -> Result<(), StoreError>;

    /// The mapping of a hostname.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn mapping(&self, hostname: &str) -> Result<Option<DomainMapping>, StoreError>;

    /// Removes a mapping (absent is fine).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn remove_mapping(&self, hostname: &str) -> Result<(), StoreError>;
}

forward_port!(DomainClaimStore {
    async fn create(&self, claim: DomainClaim) -> Result<(), StoreError>;
    async fn get(&self, hostname: &str) -> Result<Option<DomainClaim>, StoreError>;
    async fn update(&self, claim: DomainClaim, expected_version: u64) -> Result<(), StoreError>;
    async fn due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<DomainClaim>, StoreError>;
    async fn put_mapping(&self, mapping: DomainMapping) -> Result<(), StoreError>;
    async fn mapping(&self, hostname: &str) -> Result<Option<DomainMapping>, StoreError>;
    async fn remove_mapping(&self, hostname: &str) -> Result<(), StoreError>;
});

// ---------------------------------------------------------------------------------------------------------
// Replication state

/// Outbox, inbox and checkpoints of replication streams.
///
/// # Contract
/// - `outbox_append` is durable before it returns and assigns nothing: changes keep their sequence.
///   Appending a `change_id` already in the outbox is ignored.
/// - `outbox_pending` returns unacknowledged changes in sequence order; `outbox_ack` drops those up to a
///   sequence.
/// - `inbox_commit` records the batch's change ids and advances the checkpoint in one atomic step, only if
///   the stored checkpoint equals `expected_checkpoint` (otherwise `Conflict`, nothing applied); it returns
///   the changes that were new (duplicates removed).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait ReplicationStore: Send + Sync + Debug + 'static {
    /// Appends to a stream's outbox.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn outbox_append(&self, stream: &Stream, changes: Vec<Change>) -> Result<(), StoreError>;

    /// Unacknowledged changes, in order, at most `limit`.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn outbox_pending(&self, stream: &Stream, limit: u32) -> Result<Vec<Change>, StoreError>;

    /// Drops outbox entries up to and including `sequence`.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn outbox_ack(&self, stream: &Stream, sequence: u64) -> Result<(), StoreError>;

    /// The stream's checkpoint (0 when none).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn checkpoint(&self, stream: &Stream) -> Result<u64, StoreError>;

    /// Records received changes and advances the checkpoint atomically.
    ///
    /// # Errors
    /// `Conflict` (checkpoint moved), `InvalidRequest` (new checkpoint behind the expected one),
    /// `Unavailable`.
    async fn inbox_commit(
        &self,
        stream: &Stream,
        expected_checkpoint: u64,
        new_checkpoint: u64,
        changes: Vec<Change>,
    ) -> Result<Vec<Change>, StoreError>;
}

forward_port!(ReplicationStore {
    async fn outbox_append(&self, stream: &Stream, changes: Vec<Change>) -> Result<(), StoreError>;
    async fn outbox_pending(&self, stream: &Stream, limit: u32) -> Result<Vec<Change>, StoreError>;
    async fn outbox_ack(&self, stream: &Stream, sequence: u64) -> Result<(), StoreError>;
    async fn checkpoint(&self, stream: &Stream) -> Result<u64, StoreError>;
    async fn inbox_commit(&self, stream: &Stream, expected_checkpoint: u64, new_checkpoint: u64, changes: Vec<Change>) -> Result<Vec<Change>, StoreError>;
});

// ---------------------------------------------------------------------------------------------------------
// Print jobs

/// Status of a print job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PrintJobStatus {
    /// Waiting.
    Queued,
    /// Sent to the printer.
    Printing,
    /// Printed.
    Printed,
    /// Failed; the reason is kept.
    Failed(String),
}

/// A durable print job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PrintJob {
    /// The job's idempotency key (one job per key).
    pub key: IdempotencyKey,
    /// The register that asked.
    pub register: RegisterId,
    /// The printer.
    pub printer: DeviceId,
    /// What to print.
    pub document: ReceiptDocument,
    /// Status.
    pub status: PrintJobStatus,
    /// Attempts so far.
    pub attempts: u32,
    /// Queued at.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl PrintJob {
    /// A queued job.
    pub fn new(
        key: IdempotencyKey,
        register: RegisterId,
        printer: DeviceId,
        document: ReceiptDocument,
        now: OffsetDateTime,
    ) -> PrintJob {
        PrintJob { key, register, printer, document, status: PrintJobStatus::Queued, attempts: 0, created_at: now }
    }
}

/// Durable print jobs.
///
/// # Contract
/// - `enqueue` is durable before it returns; enqueueing an existing key returns the existing job unchanged.
/// - `next` returns the oldest queued job of a printer.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PrintJobStore: Send + Sync + Debug + 'static {
    /// Queues a job (or returns the existing one with the same key).
    ///
    /// # Errors
    /// `Unavailable`.
    async fn enqueue(&self, job: PrintJob) -> Result<PrintJob, StoreError>;

    /// The oldest queued job of a printer.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn next(&self, printer: &DeviceId) -> Result<Option<PrintJob>, StoreError>;

    /// Sets a job's status (and counts an attempt when it becomes `Printing`).
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`.
    async fn set_status(&self, key: &IdempotencyKey, status: PrintJobStatus) -> Result<PrintJob, StoreError>;
}

forward_port!(PrintJobStore {
    async fn enqueue(&self, job: PrintJob) -> Result<PrintJob, StoreError>;
    async fn next(&self, printer: &DeviceId) -> Result<Option<PrintJob>, StoreError>;
    async fn set_status(&self, key: &IdempotencyKey, status: PrintJobStatus) -> Result<PrintJob, StoreError>;
});

// ---------------------------------------------------------------------------------------------------------
// Pairings

/// A paired client of the hardware gateway (a register app).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Pairing {
    /// The paired client (a register).
    pub client: RegisterId,
    /// SHA-256 of the client's bearer token, hex; the token itself is never stored.
    pub token_hash: String,
    /// Devices the client may use.
    pub devices: Vec<DeviceId>,
    /// Paired at.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Revoked at, if revoked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl Pairing {
    /// An active pairing.
    pub fn new(
        client: RegisterId,
        token_hash: impl Into<String>,
        devices: Vec<DeviceId>,
        now: OffsetDateTime,
    ) -> Pairing {
        Pairing { client, token_hash: token_hash.into(), devices, created_at: now, revoked_at: None }
    }
}

/// Pairings of the hardware gateway.
///
/// # Contract
/// - `put` replaces the client's pairing (re-pairing rotates the token); the token hash is unique.
/// - `by_token_hash` never returns a revoked pairing.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait PairingStore: Send + Sync + Debug + 'static {
    /// Creates or replaces a client's pairing.
    ///
    /// # Errors
    /// `AlreadyExists` when the token hash belongs to another client; `Unavailable`.
    async fn put(&self, pairing: Pairing) -> Result<(), StoreError>;

    /// The active pairing with this token hash.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn by_token_hash(&self, token_hash: &str) -> Result<Option<Pairing>, StoreError>;

    /// Revokes a client's pairing.
    ///
    /// # Errors
    /// `NotFound`, `Unavailable`.
    async fn revoke(&self, client: &RegisterId, at: OffsetDateTime) -> Result<(), StoreError>;
}

forward_port!(PairingStore {
    async fn put(&self, pairing: Pairing) -> Result<(), StoreError>;
    async fn by_token_hash(&self, token_hash: &str) -> Result<Option<Pairing>, StoreError>;
    async fn revoke(&self, client: &RegisterId, at: OffsetDateTime) -> Result<(), StoreError>;
});

// ---------------------------------------------------------------------------------------------------------

/// Every store port of one backend, as a store factory builds it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreSet {
    /// Idempotency records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Payment intents and events.
    pub intents: Arc<dyn PaymentIntentStore>,
    /// Processed webhook ids.
    pub webhooks: Arc<dyn WebhookEventStore>,
    /// Domain claims and mappings.
    pub domains: Arc<dyn DomainClaimStore>,
    /// Replication outbox/inbox/checkpoints.
    pub replication: Arc<dyn ReplicationStore>,
    /// Print jobs.
    pub print_jobs: Arc<dyn PrintJobStore>,
    /// Pairings.
    pub pairings: Arc<dyn PairingStore>,
    /// The offline store-and-forward queue of card-present payments.
    pub offline_queue: Arc<dyn OfflineQueueStore>,
    /// Intents and idempotency records written together: the backend's own ledger (one transaction per
    /// call) when it has one, otherwise a [`SplitLedger`] over `intents` and `idempotency`.
    pub ledger: Arc<dyn PaymentLedger>,
}

impl StoreSet {
    /// A set from its parts.
    #[allow(clippy::too_many_arguments, reason = "one argument per store port of the set")]
    pub fn new(
        idempotency: Arc<dyn IdempotencyStore>,
        intents: Arc<dyn PaymentIntentStore>,
        webhooks: Arc<dyn WebhookEventStore>,
        domains: Arc<dyn DomainClaimStore>,
        replication: Arc<dyn ReplicationStore>,
        print_jobs: Arc<dyn PrintJobStore>,
        pairings: Arc<dyn PairingStore>,
        offline_queue: Arc<dyn OfflineQueueStore>,
    ) -> StoreSet {
        let ledger = Arc::new(SplitLedger::new(intents.clone(), idempotency.clone()));
        StoreSet { idempotency, intents, webhooks, domains, replication, print_jobs, pairings, offline_queue, ledger }
    }

    /// Replaces the [`SplitLedger`] with the backend's own ledger over the same intents and idempotency records.
    pub fn with_ledger(mut self, ledger: Arc<dyn PaymentLedger>) -> StoreSet {
        self.ledger = ledger;
        self
    }
}
