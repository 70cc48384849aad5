//! The offline store-and-forward queue on table `offline_payments`.
//!
//! - `enqueue` runs in one `BEGIN IMMEDIATE` transaction: it reads the key, counts the terminal's pending
//!   rows and inserts, holding the database's write lock throughout, so concurrent enqueues from any number of
//!   connections or processes never exceed the bound.
//! - Marks and attempts are conditional on the row being pending; a settled row is compared, never changed.
//!   Triggers refuse deleting a row and changing a settled result.
//! - Card data is a `TEXT` column written and read verbatim while the row is pending; messages never include
//!   it. A mark erases it (sets it to `''`) in the same `UPDATE` that settles the row (PCI DSS: no sensitive
//!   authentication data after authorization). The column stays `NOT NULL`. Rows settled by a release before
//!   that (decision 014) kept their card data; migration 4 erases it.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::offline_queue::{
    Enqueued, OfflineEntry, OfflineQueueStore, OfflineStatus, check_new_entry, entry_subject, replay_or_conflict,
    settled_again,
};
use commerce_ports::terminal::{EntryMode, OfflineCardRead, TerminalPaymentRequest};
use commerce_ports::{ChannelId, ErrorKind, IdempotencyKey, Money, RegisterId, StoreError, TenantId};
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use crate::backend::{Database, immediate};
use crate::error::SqlContext;
use crate::mapping::{RowSource, enum_to_sql, limit_to_sql, time_to_sql};

const TABLE: &str = "offline_payments";

const COLUMNS: &str = "tenant, terminal_id, key, channel, register, reference, amount_minor, currency, scheme, \
     entry_mode, masked_pan, card_data, accepted_at, status, provider_reference, decline_reason, attempts, \
     last_error, settled_at";

/// [`OfflineQueueStore`] on table `offline_payments`, keyed by (tenant, terminal id, key).
#[derive(Debug, Clone)]
pub(crate) struct SqliteOfflineQueueStore {
    db: Arc<Database>,
}

impl SqliteOfflineQueueStore {
    pub(crate) fn new(db: Arc<Database>) -> SqliteOfflineQueueStore {
        SqliteOfflineQueueStore { db }
    }
}

/// An entry as column values, in [`COLUMNS`] order. No `Debug`: it holds the card data.
struct Values {
    tenant: String,
    terminal_id: String,
    key: String,
    channel: String,
    register: String,
    reference: String,
    amount_minor: i64,
    currency: String,
    scheme: Option<String>,
    entry_mode: String,
    masked_pan: Option<String>,
    card_data: String,
    accepted_at: i64,
    status: String,
    provider_reference: Option<String>,
    decline_reason: Option<String>,
    attempts: i64,
    last_error: Option<String>,
    settled_at: Option<i64>,
}

impl Values {
    fn new(op: &'static str, e: &OfflineEntry) -> Result<Values, StoreError> {
        let (status, provider_reference, decline_reason) = e.status.to_parts();
        Ok(Values {
            tenant: e.tenant.to_string(),
            terminal_id: e.payment.terminal_id.clone(),
            key: e.payment.idempotency_key.to_string(),
            channel: e.channel.to_string(),
            register: e.payment.register.to_string(),
            reference: e.payment.reference.clone(),
            amount_minor: e.payment.amount.minor(),
            currency: e.payment.amount.currency().code().to_owned(),
            scheme: e.card.scheme.clone(),
            entry_mode: enum_to_sql(op, "entry_mode", &e.card.entry_mode)?,
            masked_pan: e.card.masked_pan.clone(),
            card_data: e.card.card_data.clone(),
            accepted_at: time_to_sql(op, "accepted_at", e.accepted_at)?,
            status: status.to_owned(),
            provider_reference: provider_reference.map(str::to_owned),
            decline_reason: decline_reason.map(str::to_owned),
            attempts: i64::from(e.attempts),
            last_error: e.last_error.clone(),
            settled_at: e.settled_at.map(|at| time_to_sql(op, "settled_at", at)).transpose()?,
        })
    }

    fn read(row: &Row<'_>) -> rusqlite::Result<Values> {
        Ok(Values {
            tenant: row.get(0)?,
            terminal_id: row.get(1)?,
            key: row.get(2)?,
            channel: row.get(3)?,
            register: row.get(4)?,
            reference: row.get(5)?,
            amount_minor: row.get(6)?,
            currency: row.get(7)?,
            scheme: row.get(8)?,
            entry_mode: row.get(9)?,
            masked_pan: row.get(10)?,
            card_data: row.get(11)?,
            accepted_at: row.get(12)?,
            status: row.get(13)?,
            provider_reference: row.get(14)?,
            decline_reason: row.get(15)?,
            attempts: row.get(16)?,
            last_error: row.get(17)?,
            settled_at: row.get(18)?,
        })
    }

    fn into_entry(self, op: &'static str) -> Result<OfflineEntry, StoreError> {
        let row_key = format!("(tenant `{}`, terminal `{}`, key `{}`)", self.tenant, self.terminal_id, self.key);
        let source = RowSource { operation: op, table: TABLE, key: &row_key };
        let status =
            OfflineStatus::from_parts(&self.status, self.provider_reference, self.decline_reason).ok_or_else(|| {
                source.bad("status", format!("holds `{}`, which is not a consistent status", self.status))
            })?;
        let currency = source.currency("currency", &self.currency)?;
        let entry_mode: EntryMode = source.enum_value("entry_mode", self.entry_mode)?;
        let payment = TerminalPaymentRequest::new(
            self.terminal_id,
            source.parse("register", self.register, RegisterId::new)?,
            Money::from_minor(self.amount_minor, currency),
            self.reference,
            source.parse("key", self.key, IdempotencyKey::new)?,
        );
        let mut card = OfflineCardRead::new(self.scheme, entry_mode, self.card_data);
        card.masked_pan = self.masked_pan;
        let mut entry = OfflineEntry::new(
            source.parse("tenant", self.tenant, TenantId::new)?,
            source.parse("channel", self.channel, ChannelId::new)?,
            payment,
            card,
            source.time("accepted_at", self.accepted_at)?,
        );
        entry.status = status;
        entry.attempts = source.small_unsigned("attempts", self.attempts)?;
        entry.last_error = self.last_error;
        entry.settled_at = self.settled_at.map(|at| source.time("settled_at", at)).transpose()?;
        Ok(entry)
    }
}

fn read_entry(
    conn: &Connection,
    op: &'static str,
    tenant: &str,
    terminal_id: &str,
    key: &str,
) -> Result<Option<OfflineEntry>, StoreError> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM {TABLE} WHERE tenant = ?1 AND terminal_id = ?2 AND key = ?3"))
        .and_then(|mut s| s.query_row(params![tenant, terminal_id, key], Values::read).optional())
        .context(op, || format!("reading {}", entry_subject(tenant, terminal_id, key)))?
        .map(|v| v.into_entry(op))
        .transpose()
}

fn count_pending(conn: &Connection, op: &'static str, tenant: &str, terminal_id: &str) -> Result<i64, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT COUNT(*) FROM {TABLE} WHERE tenant = ?1 AND terminal_id = ?2 AND status = 'pending'"
    ))
    .and_then(|mut s| s.query_row(params![tenant, terminal_id], |r| r.get(0)))
    .context(op, || format!("counting the pending offline payments of terminal `{terminal_id}` (tenant `{tenant}`)"))
}

fn as_count(n: i64) -> u32 {
    u32::try_from(n.max(0)).unwrap_or(u32::MAX)
}

impl SqliteOfflineQueueStore {
    /// Settles a pending entry with `status` at `at`, erasing its card data in the same statement, or compares
    /// a settled one with it.
    async fn settle(
        &self,
        op: &'static str,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        status: OfflineStatus,
        at: OffsetDateTime,
    ) -> Result<OfflineEntry, StoreError> {
        let at = time_to_sql(op, "at", at)?;
        let (tenant, terminal_id, key) = (tenant.to_string(), terminal_id.to_owned(), key.to_string());
        self.db
            .run(op, move |conn| {
                let what = entry_subject(&tenant, &terminal_id, &key);
                let tx = immediate(conn, op)?;
                let stored = read_entry(&tx, op, &tenant, &terminal_id, &key)?
                    .ok_or_else(|| StoreError::new(ErrorKind::NotFound, op, format!("no {what}")))?;
                if !stored.status.is_pending() {
                    return settled_again(op, stored, &status);
                }
                let (name, provider_reference, decline_reason) = status.to_parts();
                tx.prepare_cached(&format!(
                    "UPDATE {TABLE}
                     SET status = ?4, provider_reference = ?5, decline_reason = ?6, settled_at = ?7, card_data = ''
                     WHERE tenant = ?1 AND terminal_id = ?2 AND key = ?3 AND status = 'pending'"
                ))
                .and_then(|mut s| {
                    s.execute(params![tenant, terminal_id, key, name, provider_reference, decline_reason, at])
                })
                .context(op, || format!("settling {what}"))?;
                let settled = read_entry(&tx, op, &tenant, &terminal_id, &key)?.ok_or_else(|| {
                    StoreError::new(ErrorKind::Unexpected, op, format!("{what} vanished while being settled"))
                })?;
                tx.commit().context(op, || format!("committing the settlement of {what}"))?;
                Ok(settled)
            })
            .await
    }
}

#[async_trait]
impl OfflineQueueStore for SqliteOfflineQueueStore {
    async fn enqueue(&self, entry: OfflineEntry, max_count: u32) -> Result<Enqueued, StoreError> {
        const OP: &str = "enqueue";
        let v = Values::new(OP, &entry)?;
        check_new_entry(&entry)?;
        self.db
            .run(OP, move |conn| {
                let what = entry_subject(&v.tenant, &v.terminal_id, &v.key);
                // The write lock is held from here to the commit: the count and the insert are one step.
                let tx = immediate(conn, OP)?;
                if let Some(stored) = read_entry(&tx, OP, &v.tenant, &v.terminal_id, &v.key)? {
                    return replay_or_conflict(stored, &entry);
                }
                let pending = count_pending(&tx, OP, &v.tenant, &v.terminal_id)?;
                if pending >= i64::from(max_count) {
                    return Err(StoreError::new(
                        ErrorKind::InvalidState,
                        OP,
                        format!(
                            "the offline queue of terminal `{}` is full: {pending} pending of at most {max_count}",
                            v.terminal_id
                        ),
                    ));
                }
                tx.prepare_cached(&format!(
                    "INSERT INTO {TABLE} ({COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)"
                ))
                .and_then(|mut s| {
                    s.execute(params![
                        v.tenant,
                        v.terminal_id,
                        v.key,
                        v.channel,
                        v.register,
                        v.reference,
                        v.amount_minor,
                        v.currency,
                        v.scheme,
                        v.entry_mode,
                        v.masked_pan,
                        v.card_data,
                        v.accepted_at,
                        v.status,
                        v.provider_reference,
                        v.decline_reason,
                        v.attempts,
                        v.last_error,
                        v.settled_at
                    ])
                })
                .context(OP, || format!("queueing {what}"))?;
                tx.commit().context(OP, || format!("committing {what}"))?;
                Ok(Enqueued::Queued { entry, pending: as_count(pending.saturating_add(1)) })
            })
            .await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<OfflineEntry>, StoreError> {
        const OP: &str = "get";
        let (tenant, terminal_id, key) = (tenant.to_string(), terminal_id.to_owned(), key.to_string());
        self.db.run(OP, move |conn| read_entry(conn, OP, &tenant, &terminal_id, &key)).await
    }

    async fn pending(&self, tenant: &TenantId, terminal_id: &str, limit: u32) -> Result<Vec<OfflineEntry>, StoreError> {
        const OP: &str = "pending";
        let (tenant, terminal_id) = (tenant.to_string(), terminal_id.to_owned());
        self.db
            .run(OP, move |conn| {
                let rows = conn
                    .prepare_cached(&format!(
                        "SELECT {COLUMNS} FROM {TABLE} WHERE tenant = ?1 AND terminal_id = ?2 AND status = 'pending'
                         ORDER BY accepted_at, rowid LIMIT ?3"
                    ))
                    .and_then(|mut s| {
                        s.query_map(params![tenant, terminal_id, limit_to_sql(limit)], Values::read)?
                            .collect::<rusqlite::Result<Vec<Values>>>()
                    })
                    .context(OP, || {
                        format!("listing the pending offline payments of terminal `{terminal_id}` (tenant `{tenant}`)")
                    })?;
                rows.into_iter().map(|v| v.into_entry(OP)).collect()
            })
            .await
    }

    async fn pending_count(&self, tenant: &TenantId, terminal_id: &str) -> Result<u32, StoreError> {
        const OP: &str = "pending_count";
        let (tenant, terminal_id) = (tenant.to_string(), terminal_id.to_owned());
        self.db.run(OP, move |conn| count_pending(conn, OP, &tenant, &terminal_id).map(as_count)).await
    }

    async fn mark_forwarded(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        provider_reference: &str,
        at: OffsetDateTime,
    ) -> Result<OfflineEntry, StoreError> {
        let status = OfflineStatus::Forwarded { provider_reference: provider_reference.to_owned() };
        self.settle("mark_forwarded", tenant, terminal_id, key, status, at).await
    }

    async fn mark_declined(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        reason: &str,
        at: OffsetDateTime,
    ) -> Result<OfflineEntry, StoreError> {
        let status = OfflineStatus::Declined { reason: reason.to_owned() };
        self.settle("mark_declined", tenant, terminal_id, key, status, at).await
    }

    async fn record_attempt(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        error: &str,
    ) -> Result<OfflineEntry, StoreError> {
        const OP: &str = "record_attempt";
        let (tenant, terminal_id, key, error) =
            (tenant.to_string(), terminal_id.to_owned(), key.to_string(), error.to_owned());
        self.db
            .run(OP, move |conn| {
                let what = entry_subject(&tenant, &terminal_id, &key);
                // One statement: the attempt is counted atomically, and only while the entry is pending.
                let updated = conn
                    .prepare_cached(&format!(
                        "UPDATE {TABLE} SET attempts = MIN(attempts + 1, {}), last_error = ?4
                         WHERE tenant = ?1 AND terminal_id = ?2 AND key = ?3 AND status = 'pending'
                         RETURNING {COLUMNS}",
                        u32::MAX
                    ))
                    .and_then(|mut s| s.query_row(params![tenant, terminal_id, key, error], Values::read).optional())
                    .context(OP, || format!("counting an attempt of {what}"))?;
                if let Some(v) = updated {
                    return v.into_entry(OP);
                }
                match read_entry(conn, OP, &tenant, &terminal_id, &key)? {
                    None => Err(StoreError::new(ErrorKind::NotFound, OP, format!("no {what}"))),
                    Some(stored) => Err(StoreError::new(
                        ErrorKind::InvalidState,
                        OP,
                        format!("{what} is already {}; no attempt is counted", stored.status.as_str()),
                    )),
                }
            })
            .await
    }
}
