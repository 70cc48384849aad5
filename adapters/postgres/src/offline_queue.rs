//! The offline store-and-forward queue on table `offline_payments`.
//!
//! - `enqueue` is one transaction that first takes a transaction-scoped advisory lock of the terminal
//!   (class `cpoq`, key a hash of schema, tenant and terminal), then reads the key, counts the pending rows
//!   and inserts. Every enqueue of one terminal, from any pool or instance, takes the same lock, and the lock
//!   is released only at commit, so the count a transaction sees includes every entry committed before it:
//!   concurrent enqueues never exceed the bound. (A hash collision of two terminals only makes them wait for
//!   each other.)
//! - Marks and attempts are single `UPDATE ... WHERE status = 'pending'` statements; when no row changed the
//!   stored row is read and compared, so of two racing marks the second either agrees or is `InvalidState`.
//! - Card data is a `TEXT` column written and read verbatim while the row is pending; messages never include
//!   it. A mark erases it (sets it to `''`) in the same `UPDATE` that settles the row (PCI DSS: no sensitive
//!   authentication data after authorization). The column stays `NOT NULL`. Rows settled by a release before
//!   that (decision 014) kept their card data; migration 3 erases it.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::offline_queue::{
    Enqueued, OfflineEntry, OfflineQueueStore, OfflineStatus, check_new_entry, entry_subject, replay_or_conflict,
    settled_again,
};
use commerce_ports::terminal::{OfflineCardRead, TerminalPaymentRequest};
use commerce_ports::{ChannelId, ErrorKind, IdempotencyKey, Money, RegisterId, StoreError, TenantId};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::client::{Db, SqlParam, execute, query, query_opt};
use crate::error::{Ctx, Phase};
use crate::mapping::{RowReader, name_of};

const COLUMNS: &str = "tenant, terminal_id, key, channel, register, reference, amount_minor, currency, scheme, \
     entry_mode, masked_pan, card_data, accepted_at, status, provider_reference, decline_reason, attempts, \
     last_error, settled_at";

/// The first key of the per-terminal enqueue lock (ASCII `cpoq`).
const LOCK_CLASS: i32 = 0x6370_6f71;

/// The second key of the enqueue lock: FNV-1a of schema, tenant and terminal, separated by NUL bytes.
fn lock_key(schema: &str, tenant: &str, terminal_id: &str) -> i32 {
    let bytes = schema.bytes().chain([0]).chain(tenant.bytes()).chain([0]).chain(terminal_id.bytes());
    let hash = bytes.fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    i32::from_be_bytes(hash.to_be_bytes())
}

fn entry_from_row(op: &'static str, row: &Row) -> Result<OfflineEntry, StoreError> {
    let r = RowReader::new(op, row, "offline_payments", &["tenant", "terminal_id", "key"]);
    let name: String = r.get("status")?;
    let status = OfflineStatus::from_parts(&name, r.get("provider_reference")?, r.get("decline_reason")?)
        .ok_or_else(|| r.bad("status", format!("holds `{name}`, which is not a consistent status")))?;
    let currency = r.currency("currency")?;
    let payment = TerminalPaymentRequest::new(
        r.get::<String>("terminal_id")?,
        r.id("register", RegisterId::new)?,
        Money::from_minor(r.get("amount_minor")?, currency),
        r.get::<String>("reference")?,
        r.id("key", IdempotencyKey::new)?,
    );
    let mut card = OfflineCardRead::new(r.get("scheme")?, r.name("entry_mode")?, r.get::<String>("card_data")?);
    card.masked_pan = r.get("masked_pan")?;
    let mut entry = OfflineEntry::new(
        r.id("tenant", TenantId::new)?,
        r.id("channel", ChannelId::new)?,
        payment,
        card,
        r.get("accepted_at")?,
    );
    entry.status = status;
    entry.attempts = r.u32("attempts")?;
    entry.last_error = r.get("last_error")?;
    entry.settled_at = r.get("settled_at")?;
    Ok(entry)
}

/// [`OfflineQueueStore`] on PostgreSQL.
#[derive(Debug)]
pub(crate) struct PgOfflineQueueStore {
    db: Arc<Db>,
}

impl PgOfflineQueueStore {
    pub(crate) fn new(db: Arc<Db>) -> PgOfflineQueueStore {
        PgOfflineQueueStore { db }
    }

    fn select_one(&self) -> String {
        self.db.sql(&format!(
            "SELECT {COLUMNS} FROM {{s}}.offline_payments WHERE tenant = $1 AND terminal_id = $2 AND key = $3"
        ))
    }

    /// Settles a pending entry, erasing its card data in the same statement, or compares a settled one with
    /// `status`.
    async fn settle(
        &self,
        op: &'static str,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
        status: OfflineStatus,
        at: OffsetDateTime,
    ) -> Result<OfflineEntry, StoreError> {
        let ctx = Ctx::new(op, entry_subject(tenant.as_str(), terminal_id, key.as_str()));
        let (name, provider_reference, decline_reason) = status.to_parts();
        let update = self.db.sql(&format!(
            "UPDATE {{s}}.offline_payments
             SET status = $4, provider_reference = $5, decline_reason = $6, settled_at = $7, card_data = ''
             WHERE tenant = $1 AND terminal_id = $2 AND key = $3 AND status = 'pending'
             RETURNING {COLUMNS}"
        ));
        let read = self.select_one();
        let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
        let client = self.db.client(&ctx).await?;
        let (updated, stored) = self
            .db
            .timed(&ctx, Phase::Autocommit, async {
                let params: [SqlParam<'_>; 7] =
                    [&tenant_s, &terminal_id, &key_s, &name, &provider_reference, &decline_reason, &at];
                let updated =
                    query_opt(&ctx, &*client, Phase::Autocommit, "updating offline_payments", &update, &params).await?;
                if updated.is_some() {
                    return Ok((updated, None));
                }
                let stored =
                    query_opt(&ctx, &*client, Phase::Read, "reading offline_payments", &read, &params[..3]).await?;
                Ok((None, stored))
            })
            .await?;
        if let Some(row) = updated {
            return entry_from_row(op, &row);
        }
        let stored = stored.ok_or_else(|| ctx.err(ErrorKind::NotFound, "does not exist"))?;
        settled_again(op, entry_from_row(op, &stored)?, &status)
    }
}

#[async_trait]
impl OfflineQueueStore for PgOfflineQueueStore {
    async fn enqueue(&self, entry: OfflineEntry, max_count: u32) -> Result<Enqueued, StoreError> {
        let (tenant, terminal_id, key) = (entry.tenant.as_str(), entry.terminal_id(), entry.key().as_str());
        let ctx = Ctx::new("enqueue", entry_subject(tenant, terminal_id, key));
        check_new_entry(&entry)?;
        let (status, provider_reference, decline_reason) = entry.status.to_parts();
        let entry_mode = name_of(ctx.op, &entry.card.entry_mode)?;
        let (channel, register) = (entry.channel.as_str(), entry.payment.register.as_str());
        let amount_minor = entry.payment.amount.minor();
        let currency = entry.payment.amount.currency().code().to_owned();
        let attempts = i64::from(entry.attempts);
        let lock = lock_key(self.db.schema(), tenant, terminal_id);
        let read = self.select_one();
        let count = self.db.sql(
            "SELECT count(*) FROM {s}.offline_payments WHERE tenant = $1 AND terminal_id = $2 AND status = 'pending'",
        );
        let insert = self.db.sql(&format!(
            "INSERT INTO {{s}}.offline_payments ({COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)
             RETURNING {COLUMNS}"
        ));
        let mut client = self.db.client(&ctx).await?;
        let tx = self.db.begin(&ctx, &mut client).await?;
        let outcome = self
            .db
            .timed(&ctx, Phase::Uncommitted, async {
                execute(
                    &ctx,
                    &tx,
                    Phase::Uncommitted,
                    "taking the terminal's enqueue lock",
                    "SELECT pg_advisory_xact_lock($1, $2)",
                    &[&LOCK_CLASS, &lock],
                )
                .await?;
                let key_params: [SqlParam<'_>; 3] = [&tenant, &terminal_id, &key];
                if let Some(row) =
                    query_opt(&ctx, &tx, Phase::Uncommitted, "reading offline_payments", &read, &key_params).await?
                {
                    return replay_or_conflict(entry_from_row(ctx.op, &row)?, &entry);
                }
                let rows =
                    query(&ctx, &tx, Phase::Uncommitted, "counting offline_payments", &count, &key_params[..2]).await?;
                let pending: i64 = match rows.first() {
                    Some(row) => RowReader::new(ctx.op, row, "offline_payments", &[]).get("count")?,
                    None => 0,
                };
                if pending >= i64::from(max_count) {
                    return Err(ctx.err(
                        ErrorKind::InvalidState,
                        format!("the terminal's offline queue is full: {pending} pending of at most {max_count}"),
                    ));
                }
                let params: [SqlParam<'_>; 19] = [
                    &tenant,
                    &terminal_id,
                    &key,
                    &channel,
                    &register,
                    &entry.payment.reference,
                    &amount_minor,
                    &currency,
                    &entry.card.scheme,
                    &entry_mode,
                    &entry.card.masked_pan,
                    &entry.card.card_data,
                    &entry.accepted_at,
                    &status,
                    &provider_reference,
                    &decline_reason,
                    &attempts,
                    &entry.last_error,
                    &entry.settled_at,
                ];
                let row = query_opt(&ctx, &tx, Phase::Uncommitted, "inserting into offline_payments", &insert, &params)
                    .await?
                    .ok_or_else(|| ctx.err(ErrorKind::Unexpected, "the insert returned no row"))?;
                let stored = entry_from_row(ctx.op, &row)?;
                Ok(Enqueued::Queued {
                    entry: stored,
                    pending: u32::try_from(pending.saturating_add(1)).unwrap_or(u32::MAX),
                })
            })
            .await;
        match outcome {
            Ok(queued @ Enqueued::Queued { .. }) => {
                self.db.commit(&ctx, tx).await?;
                Ok(queued)
            }
            // Nothing was written: dropping the transaction rolls it back and releases the lock.
            other => other,
        }
    }

    async fn get(
        &self,
        tenant: &TenantId,
        terminal_id: &str,
        key: &IdempotencyKey,
    ) -> Result<Option<OfflineEntry>, StoreError> {
        let ctx = Ctx::new("get", entry_subject(tenant.as_str(), terminal_id, key.as_str()));
        let sql = self.select_one();
        let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
        let row = self
            .db
            .row_opt(&ctx, Phase::Read, "reading offline_payments", &sql, &[&tenant_s, &terminal_id, &key_s])
            .await?;
        row.map(|row| entry_from_row(ctx.op, &row)).transpose()
    }

    async fn pending(&self, tenant: &TenantId, terminal_id: &str, limit: u32) -> Result<Vec<OfflineEntry>, StoreError> {
        let ctx =
            Ctx::new("pending", format!("pending offline payments of terminal `{terminal_id}` (tenant `{tenant}`)"));
        let sql = self.db.sql(&format!(
            "SELECT {COLUMNS} FROM {{s}}.offline_payments
             WHERE tenant = $1 AND terminal_id = $2 AND status = 'pending'
             ORDER BY accepted_at, seq LIMIT $3"
        ));
        let (tenant_s, limit) = (tenant.as_str(), i64::from(limit));
        let rows = self
            .db
            .rows(&ctx, Phase::Read, "reading offline_payments", &sql, &[&tenant_s, &terminal_id, &limit])
            .await?;
        rows.iter().map(|row| entry_from_row(ctx.op, row)).collect()
    }

    async fn pending_count(&self, tenant: &TenantId, terminal_id: &str) -> Result<u32, StoreError> {
        let ctx = Ctx::new(
            "pending_count",
            format!("pending offline payments of terminal `{terminal_id}` (tenant `{tenant}`)"),
        );
        let sql = self.db.sql(
            "SELECT count(*) FROM {s}.offline_payments WHERE tenant = $1 AND terminal_id = $2 AND status = 'pending'",
        );
        let tenant_s = tenant.as_str();
        let rows =
            self.db.rows(&ctx, Phase::Read, "counting offline_payments", &sql, &[&tenant_s, &terminal_id]).await?;
        let n: i64 = match rows.first() {
            Some(row) => RowReader::new(ctx.op, row, "offline_payments", &[]).get("count")?,
            None => 0,
        };
        Ok(u32::try_from(n.max(0)).unwrap_or(u32::MAX))
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
        let ctx = Ctx::new("record_attempt", entry_subject(tenant.as_str(), terminal_id, key.as_str()));
        let update = self.db.sql(&format!(
            "UPDATE {{s}}.offline_payments SET attempts = LEAST(attempts + 1, 4294967295), last_error = $4
             WHERE tenant = $1 AND terminal_id = $2 AND key = $3 AND status = 'pending'
             RETURNING {COLUMNS}"
        ));
        let read = self.select_one();
        let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
        let client = self.db.client(&ctx).await?;
        let (updated, stored) = self
            .db
            .timed(&ctx, Phase::Autocommit, async {
                let params: [SqlParam<'_>; 4] = [&tenant_s, &terminal_id, &key_s, &error];
                let updated =
                    query_opt(&ctx, &*client, Phase::Autocommit, "updating offline_payments", &update, &params).await?;
                if updated.is_some() {
                    return Ok((updated, None));
                }
                let stored =
                    query_opt(&ctx, &*client, Phase::Read, "reading offline_payments", &read, &params[..3]).await?;
                Ok((None, stored))
            })
            .await?;
        if let Some(row) = updated {
            return entry_from_row(ctx.op, &row);
        }
        match stored {
            None => Err(ctx.err(ErrorKind::NotFound, "does not exist")),
            Some(row) => {
                let stored = entry_from_row(ctx.op, &row)?;
                Err(ctx.err(
                    ErrorKind::InvalidState,
                    format!("is already {}; no attempt is counted", stored.status.as_str()),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_separate_schemas_tenants_and_terminals() {
        let base = lock_key("commerce", "acme", "ped-1");
        assert_eq!(base, lock_key("commerce", "acme", "ped-1"));
        assert_ne!(base, lock_key("commerce", "acme", "ped-2"));
        assert_ne!(base, lock_key("commerce", "acme2", "ped-1"));
        assert_ne!(base, lock_key("other", "acme", "ped-1"));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(lock_key("s", "ab", "c"), lock_key("s", "a", "bc"));
    }
}
