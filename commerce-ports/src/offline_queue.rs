//! The offline (store-and-forward) queue port: card-present payments a terminal accepted while it could not
//! reach its provider, held durably until they are forwarded.
//!
//! An entry is keyed by (tenant, terminal id, idempotency key) and holds the original
//! [`TerminalPaymentRequest`] (terminal, register, amount, sale reference, key), the [`OfflineCardRead`]
//! (whose encrypted card data a store persists verbatim while the entry is pending, and which `Debug`
//! redacts), the sales channel, when it was accepted, and its [`OfflineStatus`].
//!
//! Settling an entry (forwarded or declined) erases its card data in the same atomic write: sensitive
//! authentication data must not be kept after authorization, even encrypted (PCI DSS), and only pending
//! entries are ever forwarded. The settled entry keeps everything else, card scheme, entry mode and masked PAN
//! included, and [`OfflineCardRead::is_erased`] tells it apart. Entries are otherwise never deleted: a
//! forwarded or declined entry stays as the audit record of what was taken offline (archiving settled entries
//! is an operator's job outside this port; nothing in it removes a row).

use std::fmt::Debug;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{ErrorKind, StoreError};
use crate::forward::forward_port;
use crate::ids::{ChannelId, IdempotencyKey, RegisterId, TenantId};
use crate::terminal::{OfflineCardRead, TerminalPaymentRequest};

/// Where an offline payment stands.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OfflineStatus {
    /// Accepted offline, not yet settled with the provider. Counts against the terminal's `max_count`.
    Pending,
    /// The provider approved it when it was forwarded.
    Forwarded {
        /// The provider's reference of the payment.
        provider_reference: String,
    },
    /// The provider declined it when it was forwarded; the merchant carries the loss.
    Declined {
        /// The decline as the provider gave it (code and message; never card data).
        reason: String,
    },
}

impl OfflineStatus {
    /// The snake_case name (`pending`, `forwarded`, `declined`).
    pub fn as_str(&self) -> &'static str {
        self.to_parts().0
    }

    /// True while the entry waits to be forwarded.
    pub fn is_pending(&self) -> bool {
        matches!(self, OfflineStatus::Pending)
    }

    /// The status as a store keeps it: its name ([`as_str`](OfflineStatus::as_str)), the provider reference of
    /// a forwarded entry and the reason of a declined one. [`from_parts`](OfflineStatus::from_parts) reads it
    /// back.
    pub fn to_parts(&self) -> (&'static str, Option<&str>, Option<&str>) {
        match self {
            OfflineStatus::Pending => ("pending", None, None),
            OfflineStatus::Forwarded { provider_reference } => ("forwarded", Some(provider_reference), None),
            OfflineStatus::Declined { reason } => ("declined", None, Some(reason)),
        }
    }

    /// The status from what [`to_parts`](OfflineStatus::to_parts) gave; `None` when the parts do not make one
    /// (an unknown name, a forwarded status without a reference, a reason on a pending one).
    pub fn from_parts(
        name: &str,
        provider_reference: Option<String>,
        decline_reason: Option<String>,
    ) -> Option<OfflineStatus> {
        match (name, provider_reference, decline_reason) {
            ("pending", None, None) => Some(OfflineStatus::Pending),
            ("forwarded", Some(provider_reference), None) => Some(OfflineStatus::Forwarded { provider_reference }),
            ("declined", None, Some(reason)) => Some(OfflineStatus::Declined { reason }),
            _ => None,
        }
    }
}

/// A payment accepted offline, as the queue holds it.
///
/// `Debug` shows everything but the card data (see [`OfflineCardRead`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OfflineEntry {
    /// Tenant.
    pub tenant: TenantId,
    /// Sales channel (the store) the register belongs to.
    pub channel: ChannelId,
    /// The payment as requested: terminal, register, amount, sale reference and idempotency key (reused for
    /// every forwarding attempt).
    pub payment: TerminalPaymentRequest,
    /// The card read taken offline; its card data is forwarded verbatim while the entry is pending, and erased
    /// (empty, see [`OfflineCardRead::is_erased`]) once it is settled.
    pub card: OfflineCardRead,
    /// When the terminal accepted it.
    #[serde(with = "time::serde::rfc3339")]
    pub accepted_at: OffsetDateTime,
    /// Status.
    pub status: OfflineStatus,
    /// Forwarding attempts recorded with [`OfflineQueueStore::record_attempt`].
    pub attempts: u32,
    /// The last recorded forwarding failure (kind and message; never card data).
    pub last_error: Option<String>,
    /// When it was forwarded or declined.
    #[serde(with = "time::serde::rfc3339::option")]
    pub settled_at: Option<OffsetDateTime>,
}

impl OfflineEntry {
    /// A new pending entry with no attempts.
    pub fn new(
        tenant: TenantId,
        channel: ChannelId,
        payment: TerminalPaymentRequest,
        card: OfflineCardRead,
        accepted_at: OffsetDateTime,
    ) -> OfflineEntry {
        OfflineEntry {
            tenant,
            channel,
            payment,
            card,
            accepted_at,
            status: OfflineStatus::Pending,
            attempts: 0,
            last_error: None,
            settled_at: None,
        }
    }

    /// The terminal that accepted it.
    pub fn terminal_id(&self) -> &str {
        &self.payment.terminal_id
    }

    /// The register that took it.
    pub fn register(&self) -> &RegisterId {
        &self.payment.register
    }

    /// Its idempotency key, the last part of its identity.
    pub fn key(&self) -> &IdempotencyKey {
        &self.payment.idempotency_key
    }

    /// True when `other` carries the same payment: same tenant, channel, payment request and card read
    /// (card data included, unless either side's is erased: a settled entry no longer holds it, so its scheme,
    /// entry mode and masked PAN are compared but not its card data). Status, attempts and times are not
    /// compared: they are the queue's, not the caller's. This is what [`OfflineQueueStore::enqueue`] treats as
    /// a replay.
    pub fn same_content(&self, other: &OfflineEntry) -> bool {
        self.tenant == other.tenant
            && self.channel == other.channel
            && self.payment == other.payment
            && self.card.scheme == other.card.scheme
            && self.card.entry_mode == other.card.entry_mode
            && self.card.masked_pan == other.card.masked_pan
            && self.same_card_data(other)
    }

    /// Card data agrees, or cannot be compared because either side's is erased.
    fn same_card_data(&self, other: &OfflineEntry) -> bool {
        self.card.is_erased() || other.card.is_erased() || self.card.card_data == other.card.card_data
    }

    /// The parts of the content that differ from `other`'s, by name (`amount`, `card data`), for conflict
    /// messages; never the values of card data. Agrees with [`same_content`](OfflineEntry::same_content):
    /// `card data` is not listed when either side's is erased.
    pub fn content_differences(&self, other: &OfflineEntry) -> Vec<&'static str> {
        let (a, b) = (&self.payment, &other.payment);
        let checks = [
            ("tenant", self.tenant == other.tenant),
            ("channel", self.channel == other.channel),
            ("terminal", a.terminal_id == b.terminal_id),
            ("register", a.register == b.register),
            ("amount", a.amount == b.amount),
            ("reference", a.reference == b.reference),
            ("scheme", self.card.scheme == other.card.scheme),
            ("entry mode", self.card.entry_mode == other.card.entry_mode),
            ("masked pan", self.card.masked_pan == other.card.masked_pan),
            ("card data", self.same_card_data(other)),
        ];
        checks.into_iter().filter(|(_, same)| !same).map(|(name, _)| name).collect()
    }
}

/// What [`OfflineQueueStore::enqueue`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Enqueued {
    /// The entry was queued.
    Queued {
        /// The entry as stored.
        entry: OfflineEntry,
        /// Pending entries of the terminal, this one included.
        pending: u32,
    },
    /// An entry with the same key and content was already queued (or has since settled): nothing changed.
    Replayed {
        /// The entry as stored (the first `accepted_at` stands; its status may have moved on).
        entry: OfflineEntry,
    },
}

impl Enqueued {
    /// The stored entry.
    pub fn entry(&self) -> &OfflineEntry {
        match self {
            Enqueued::Queued { entry, .. } | Enqueued::Replayed { entry } => entry,
        }
    }

    /// True for a replay.
    pub fn is_replay(&self) -> bool {
        matches!(self, Enqueued::Replayed { .. })
    }
}

/// The durable store-and-forward queue of card-present payments accepted offline.
///
/// # Contract
/// - Entries are keyed by (tenant, terminal id, idempotency key). Tenants never see each other's entries, and
///   terminals each have their own queue and bound.
/// - `enqueue` is durable before it returns, and atomic with its bound: it queues the entry only if the
///   terminal holds fewer than `max_count` pending entries, so concurrent enqueues (from any number of
///   processes sharing the database) never leave more than `max_count` pending. A full queue is refused
///   with `InvalidState` (permanent: only forwarding frees room), the message naming the count and the bound;
///   `max_count` 0 refuses every new entry.
/// - A new entry must be pending with no attempts and carry card data: otherwise `enqueue` is
///   `InvalidRequest` (for empty card data the message names "card data", never a value) and nothing is
///   stored.
/// - An existing key is checked before the bound: with the same content ([`OfflineEntry::same_content`])
///   `enqueue` answers [`Enqueued::Replayed`] with the stored entry, whatever its status and however full the
///   queue; with other content it fails with `IdempotencyConflict`, naming the fields that differ, never
///   their card data. Nothing is changed in either case. A settled entry's card data is erased, so replaying
///   its original content compares everything but the card data and answers `Replayed` with the stored,
///   erased entry.
/// - `pending` lists a terminal's pending entries oldest first (accepted_at, then the order they were
///   queued); `pending_count` counts them.
/// - `mark_forwarded` and `mark_declined` settle a pending entry (setting `settled_at`) and, in the same
///   atomic write, erase its card data: the stored and the returned entry's `card.card_data` is the empty
///   string ([`OfflineCardRead::is_erased`]); scheme, entry mode and masked PAN stay. Marking a settled entry
///   again with the same result is a no-op that returns it unchanged, already erased (so two forwarders
///   racing on one entry both succeed); with another result it is `InvalidState` and the first result stands.
/// - `record_attempt` counts a forwarding attempt of a pending entry and keeps the failure; a settled entry
///   is `InvalidState`.
/// - Nothing is ever deleted: settled entries stay as the audit record (with their card data erased).
/// - Card data of a pending entry is stored and returned verbatim; card data never appears in errors.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait OfflineQueueStore: Send + Sync + Debug + 'static {
    /// Queues a pending entry if the terminal holds fewer than `max_count` pending entries.
    ///
    /// # Errors
    /// `InvalidState` (the queue is full), `IdempotencyConflict` (the key holds another payment),
    /// `InvalidRequest` (the entry is not pending with no attempts, its card data is empty, or a value cannot
    /// be stored), `Unavailable`.
    async fn enqueue(&self, entry: OfflineEntry, max_count: u32) -> Result<Enqueued, StoreError>;

    /// Reads one entry.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn get(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<OfflineEntry>, StoreError>;

    /// A terminal's pending entries, oldest first, at most `limit`.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn pending(&self, tenant: &TenantId, terminal_id: &str, limit: u32) -> Result<Vec<OfflineEntry>, StoreError>;

    /// How many entries of a terminal are pending.
    ///
    /// # Errors
    /// `Unavailable`.
    async fn pending_count(&self, tenant: &TenantId, terminal_id: &str) -> Result<u32, StoreError>;

    /// Records that the provider approved a pending entry, erasing its card data in the same write.
    ///
    /// # Errors
    /// `NotFound`; `InvalidState` when it was settled with another result; `Unavailable`.
    async fn mark_forwarded(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        provider_reference: &str,
        at: OffsetDateTime,
    ) -> Result<OfflineEntry, StoreError>;

    /// Records that the provider declined a pending entry, erasing its card data in the same write.
    ///
    /// # Errors
    /// `NotFound`; `InvalidState` when it was settled with another result; `Unavailable`.
    async fn mark_declined(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<OfflineEntry, StoreError>;

    /// Counts a forwarding attempt of a pending entry that did not settle it, keeping `error`.
    ///
    /// # Errors
    /// `NotFound`; `InvalidState` when the entry is settled; `Unavailable`.
    async fn record_attempt(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        error: &str,
    ) -> Result<OfflineEntry, StoreError>;
}

forward_port!(OfflineQueueStore {
    async fn enqueue(&self, entry: OfflineEntry, max_count: u32) -> Result<Enqueued, StoreError>;
    async fn get(&self, tenant: &TenantId, terminal_id: &str, key: &IdempotencyKey) -> Result<Option<OfflineEntry>, StoreError>;
    async fn pending(&self, tenant: &TenantId, terminal_id: &str, limit: u32) -> Result<Vec<OfflineEntry>, StoreError>;
    async fn pending_count(&self, tenant: &TenantId, terminal_id: &str) -> Result<u32, StoreError>;
    async fn mark_forwarded(&self, tenant: &TenantId, terminal_id: &str, key: &IdempotencyKey, provider_reference: &str, at: OffsetDateTime) -> Result<OfflineEntry, StoreError>;
    async fn mark_declined(&self, tenant: &TenantId, terminal_id: &str, key: &IdempotencyKey, reason: &str, at: OffsetDateTime) -> Result<OfflineEntry, StoreError>;
    async fn record_attempt(&self, tenant: &TenantId, terminal_id: &str, key: &IdempotencyKey, error: &str) -> Result<OfflineEntry, StoreError>;
});

/// How the stores name an entry in their messages: "offline payment `key` of terminal `terminal_id` (tenant
/// `tenant`)".
pub fn entry_subject(tenant: &str, terminal_id: &str, key: &str) -> String {
    format!("offline payment `{key}` of terminal `{terminal_id}` (tenant `{tenant}`)")
}

fn subject_of(entry: &OfflineEntry) -> String {
    entry_subject(entry.tenant.as_str(), entry.terminal_id(), entry.key().as_str())
}

/// Checks that [`OfflineQueueStore::enqueue`] may queue `entry`: it is pending, with no attempts and no
/// settlement time, and carries card data (every store refuses anything else before touching anything).
///
/// # Errors
/// `InvalidRequest` (operation `enqueue`) naming the entry and what is wrong, never the card data.
pub fn check_new_entry(entry: &OfflineEntry) -> Result<(), StoreError> {
    let problem = if !entry.status.is_pending() || entry.attempts != 0 || entry.settled_at.is_some() {
        "a new entry must be pending with no attempts"
    } else if entry.card.is_erased() {
        "a new entry must carry card data"
    } else {
        return Ok(());
    };
    Err(StoreError::invalid("enqueue", format!("{}: {problem}", subject_of(entry))))
}

/// What [`OfflineQueueStore::enqueue`] answers when the key of `entry` already holds `stored`:
/// [`Enqueued::Replayed`] with `stored` when it has the same content ([`OfflineEntry::same_content`]).
///
/// # Errors
/// `IdempotencyConflict` (operation `enqueue`) naming the fields that differ, never their card data.
pub fn replay_or_conflict(stored: OfflineEntry, entry: &OfflineEntry) -> Result<Enqueued, StoreError> {
    if stored.same_content(entry) {
        return Ok(Enqueued::Replayed { entry: stored });
    }
    Err(StoreError::new(
        ErrorKind::IdempotencyConflict,
        "enqueue",
        format!(
            "{} holds another payment (differs in {})",
            subject_of(entry),
            stored.content_differences(entry).join(", ")
        ),
    ))
}

/// What marking `stored`, an entry that is no longer pending, with `status` answers
/// ([`OfflineQueueStore::mark_forwarded`], [`mark_declined`](OfflineQueueStore::mark_declined)): `stored`,
/// unchanged, when it was settled with that very result (two forwarders racing on one entry both succeed).
///
/// # Errors
/// `InvalidState` (operation `op`) when it was settled with another result, which stands.
pub fn settled_again(
    op: &'static str,
    stored: OfflineEntry,
    status: &OfflineStatus,
) -> Result<OfflineEntry, StoreError> {
    if &stored.status == status {
        return Ok(stored);
    }
    Err(StoreError::new(
        ErrorKind::InvalidState,
        op,
        format!("{} is already {}; the first result stands", subject_of(&stored), stored.status.as_str()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::{Currency, Money};
    use crate::terminal::EntryMode;

    fn entry(card_data: &str) -> OfflineEntry {
        let payment = TerminalPaymentRequest::new(
            "ped-1",
            RegisterId::new("till-1").expect("register"),
            Money::from_minor(1_250, Currency::EUR),
            "S-1",
            IdempotencyKey::new("k-1").expect("key"),
        );
        let card = OfflineCardRead::new(Some("visa".to_owned()), EntryMode::Chip, card_data);
        OfflineEntry::new(
            TenantId::new("acme").expect("tenant"),
            ChannelId::new("shop").expect("channel"),
            payment,
            card,
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn debug_never_shows_card_data() {
        let e = entry("SECRET-BLOB-123");
        let shown = format!("{e:?} {:?}", Enqueued::Replayed { entry: e.clone() });
        assert!(!shown.contains("SECRET-BLOB-123"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn content_ignores_queue_fields_and_names_differences_without_values() {
        let a = entry("blob-a");
        let mut later = a.clone();
        later.accepted_at = OffsetDateTime::UNIX_EPOCH + time::Duration::hours(1);
        later.attempts = 3;
        assert!(a.same_content(&later));
        let other = entry("blob-b");
        assert!(!a.same_content(&other));
        assert_eq!(a.content_differences(&other), vec!["card data"]);
        assert_eq!(a.key().as_str(), "k-1");
        assert_eq!(a.terminal_id(), "ped-1");
        assert_eq!(OfflineStatus::Declined { reason: "05".to_owned() }.as_str(), "declined");
    }

    #[test]
    fn erased_card_data_is_not_compared_but_the_rest_of_the_content_is() {
        let original = entry("blob-a");
        let mut settled = original.clone();
        settled.card.card_data.clear();
        settled.status = OfflineStatus::Forwarded { provider_reference: "psp-1".to_owned() };
        assert!(settled.card.is_erased());
        assert!(!original.card.is_erased());
        // Either side erased: card data is not compared, in both directions.
        assert!(settled.same_content(&original));
        assert!(original.same_content(&settled));
        assert!(settled.content_differences(&original).is_empty());
        assert!(original.content_differences(&settled).is_empty());
        // Everything else still is.
        let mut other_amount = original.clone();
        other_amount.payment.amount = Money::from_minor(9_999, Currency::EUR);
        assert!(!settled.same_content(&other_amount));
        assert_eq!(settled.content_differences(&other_amount), vec!["amount"]);
        let mut other_card = original.clone();
        other_card.card.scheme = Some("mastercard".to_owned());
        other_card.card.entry_mode = EntryMode::Contactless;
        other_card.card.masked_pan = Some("**** 4444".to_owned());
        assert!(!settled.same_content(&other_card));
        assert_eq!(other_card.content_differences(&settled), vec!["scheme", "entry mode", "masked pan"]);
    }

    #[test]
    fn statuses_round_trip_through_their_parts_and_inconsistent_parts_are_none() {
        let statuses = [
            OfflineStatus::Pending,
            OfflineStatus::Forwarded { provider_reference: "psp-1".to_owned() },
            OfflineStatus::Declined { reason: "05".to_owned() },
        ];
        for status in statuses {
            let (name, reference, reason) = status.to_parts();
            assert_eq!(name, status.as_str());
            let back = OfflineStatus::from_parts(name, reference.map(str::to_owned), reason.map(str::to_owned));
            assert_eq!(back, Some(status));
        }
        let some = || Some("x".to_owned());
        assert_eq!(OfflineStatus::from_parts("forwarded", None, None), None);
        assert_eq!(OfflineStatus::from_parts("declined", some(), None), None);
        assert_eq!(OfflineStatus::from_parts("pending", None, some()), None);
        assert_eq!(OfflineStatus::from_parts("sideways", None, None), None);
    }

    #[test]
    fn the_shared_checks_name_the_entry_and_never_its_card_data() {
        let new = entry("SECRET-1");
        assert!(check_new_entry(&new).is_ok());
        let mut settled = new.clone();
        settled.status = OfflineStatus::Forwarded { provider_reference: "psp-1".to_owned() };
        let mut tried = new.clone();
        tried.attempts = 1;
        let mut dated = new.clone();
        dated.settled_at = Some(OffsetDateTime::UNIX_EPOCH);
        for refused in [&settled, &tried, &dated, &entry("")] {
            let e = check_new_entry(refused).expect_err("refused");
            assert_eq!((e.kind(), e.operation()), (ErrorKind::InvalidRequest, "enqueue"));
            assert!(e.message().starts_with("offline payment `k-1` of terminal `ped-1` (tenant `acme`): "), "{e}");
        }
        assert!(check_new_entry(&entry("")).expect_err("erased").message().contains("card data"));

        assert!(replay_or_conflict(settled.clone(), &new).expect("replay").is_replay());
        let e = replay_or_conflict(new.clone(), &entry("SECRET-2")).expect_err("conflict");
        assert_eq!(e.kind(), ErrorKind::IdempotencyConflict);
        assert!(e.message().ends_with("holds another payment (differs in card data)"), "{e}");
        assert!(!e.message().contains("SECRET"), "{e}");

        let forwarded = settled.status.clone();
        assert_eq!(settled_again("mark_forwarded", settled.clone(), &forwarded).expect("same result"), settled);
        let declined = OfflineStatus::Declined { reason: "05".to_owned() };
        let e = settled_again("mark_declined", settled, &declined).expect_err("another result");
        assert_eq!((e.kind(), e.operation()), (ErrorKind::InvalidState, "mark_declined"));
        assert!(e.message().ends_with("is already forwarded; the first result stands"), "{e}");
    }

    #[test]
    fn same_content_and_content_differences_agree() {
        let base = entry("blob-a");
        let mut variants = vec![base.clone(), entry("blob-b"), entry("")];
        let mut amount = base.clone();
        amount.payment.amount = Money::from_minor(1, Currency::EUR);
        variants.push(amount);
        let mut erased_amount = entry("");
        erased_amount.payment.amount = Money::from_minor(1, Currency::EUR);
        variants.push(erased_amount);
        let mut pan = base.clone();
        pan.card.masked_pan = Some("**** 1111".to_owned());
        variants.push(pan);
        for a in &variants {
            for b in &variants {
                let differences = a.content_differences(b);
                assert_eq!(a.same_content(b), differences.is_empty(), "{a:?} vs {b:?}: {differences:?}");
                assert_eq!(a.same_content(b), b.same_content(a), "{a:?} vs {b:?}");
            }
        }
        assert_eq!(base.content_differences(&entry("blob-b")), vec!["card data"]);
        assert!(base.content_differences(&entry("")).is_empty());
    }
}
