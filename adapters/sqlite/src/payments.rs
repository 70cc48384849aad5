//! Idempotency records, payment intents with their events, and processed webhook ids.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::stores::{
    IdempotencyBegin, IdempotencyClaim, IdempotencyRecord, IdempotencyStore, IntentCursor, IntentEvent, IntentSnapshot,
    IntentStatus, IntentUpdate, KeyResolution, LedgerClaim, PaymentIntent, PaymentIntentStore, PaymentLedger,
    WebhookEventStore, check_ledger_create, check_ledger_update,
};
use commerce_ports::{ChannelId, ErrorKind, IdempotencyKey, IntentId, Money, StoreError, TenantId, TenderKind};
use rusqlite::types::ToSql;
use rusqlite::{OptionalExtension, Row, params, params_from_iter};
use time::OffsetDateTime;

use crate::backend::{Database, immediate};
use crate::error::{SqlContext, is_unique_violation, sql_error, unstorable};
use crate::mapping::{RowSource, enum_to_sql, limit_to_sql, time_to_sql, u64_to_sql};

// ---------------------------------------------------------------------------------------------------------
// Idempotency

/// [`IdempotencyStore`] on table `idempotency_records`, keyed by (tenant, key).
#[derive(Debug, Clone)]
pub(crate) struct SqliteIdempotencyStore {
    db: Arc<Database>,
}

impl SqliteIdempotencyStore {
    pub(crate) fn new(db: Arc<Database>) -> SqliteIdempotencyStore {
        SqliteIdempotencyStore { db }
    }
}

fn idempotency_row_key(tenant: &str, key: &str) -> String {
    format!("(tenant `{tenant}`, key `{key}`)")
}

#[async_trait]
impl IdempotencyStore for SqliteIdempotencyStore {
    async fn begin(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        claim: IdempotencyClaim,
    ) -> Result<IdempotencyBegin, StoreError> {
        const OP: &str = "begin";
        let now = time_to_sql(OP, "claim.now", claim.now)?;
        let lease_until = time_to_sql(OP, "claim.lease_until", claim.lease_until)?;
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                let outcome = begin_in(&tx, OP, &tenant, &key, &claim, now, lease_until)?;
                tx.commit()
                    .context(OP, || format!("committing idempotency record {}", idempotency_row_key(&tenant, &key)))?;
                Ok(outcome)
            })
            .await
    }

    async fn complete(&self, tenant: &TenantId, key: &IdempotencyKey, response: Vec<u8>) -> Result<(), StoreError> {
        const OP: &str = "complete";
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                complete_in(&tx, OP, &tenant, &key, &response)?;
                tx.commit().context(OP, || format!("committing the response of {}", idempotency_row_key(&tenant, &key)))
            })
            .await
    }

    async fn release(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<(), StoreError> {
        const OP: &str = "release";
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                release_in(&tx, OP, &tenant, &key)?;
                tx.commit().context(OP, || format!("committing the release of {}", idempotency_row_key(&tenant, &key)))
            })
            .await
    }

    async fn get(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, StoreError> {
        const OP: &str = "get";
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.db
            .run(OP, move |conn| {
                let row_key = idempotency_row_key(&tenant, &key);
                let row = conn
                    .prepare_cached(
                        "SELECT operation, fingerprint, response, lease_until, claimed_at FROM idempotency_records
                         WHERE tenant = ?1 AND key = ?2",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![tenant, key], |r| {
                            Ok((
                                r.get::<_, String>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, Option<Vec<u8>>>(2)?,
                                r.get::<_, i64>(3)?,
                                r.get::<_, Option<i64>>(4)?,
                            ))
                        })
                    })
                    .optional()
                    .context(OP, || format!("reading idempotency record {row_key}"))?;
                let Some((operation, fingerprint, response, lease_until, claimed_at)) = row else {
                    return Ok(None);
                };
                let source = RowSource { operation: OP, table: "idempotency_records", key: &row_key };
                let lease_until = source.time("lease_until", lease_until)?;
                let claimed_at = claimed_at.map(|at| source.time("claimed_at", at)).transpose()?;
                let mut record = IdempotencyRecord::stored(operation, fingerprint, lease_until, claimed_at);
                record.response = response;
                Ok(Some(record))
            })
            .await
    }

    async fn renew(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        held_until: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const OP: &str = "renew";
        // Converted as `begin` (and the ledger's claim) convert `claim.lease_until` when they write it, so the
        // holder's `held_until` matches what was stored exactly.
        let held_until = time_to_sql(OP, "held_until", held_until)?;
        let until = time_to_sql(OP, "until", until)?;
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                let renewed = tx
                    .prepare_cached(
                        "UPDATE idempotency_records SET lease_until = ?3
                         WHERE tenant = ?1 AND key = ?2 AND response IS NULL AND lease_until = ?4",
                    )
                    .and_then(|mut s| s.execute(params![tenant, key, until, held_until]))
                    .context(OP, || format!("renewing the lease of {}", idempotency_row_key(&tenant, &key)))?;
                tx.commit()
                    .context(OP, || format!("committing the renewal of {}", idempotency_row_key(&tenant, &key)))?;
                Ok(renewed == 1)
            })
            .await
    }
}

/// [`IdempotencyStore::begin`] inside the caller's write transaction.
fn begin_in(
    tx: &rusqlite::Connection,
    op: &'static str,
    tenant: &str,
    key: &str,
    claim: &IdempotencyClaim,
    now: i64,
    lease_until: i64,
) -> Result<IdempotencyBegin, StoreError> {
    let row_key = idempotency_row_key(tenant, key);
    let inserted = tx
        .prepare_cached(
            "INSERT INTO idempotency_records (tenant, key, operation, fingerprint, response, lease_until, claimed_at)
             VALUES (?1, ?2, ?3, ?4, NULL, ?5, ?6) ON CONFLICT (tenant, key) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![tenant, key, claim.operation, claim.fingerprint, lease_until, now]))
        .context(op, || format!("inserting idempotency record {row_key}"))?;
    if inserted == 1 {
        return Ok(IdempotencyBegin::Started { recovered: false });
    }
    let (operation, fingerprint, response, held_until) =
        select_record(tx, &tenant, &key).context(op, || format!("reading idempotency record {row_key}"))?;
    Ok(if operation != claim.operation || fingerprint != claim.fingerprint {
        IdempotencyBegin::Conflict { operation }
    } else if let Some(response) = response {
        IdempotencyBegin::Completed(response)
    } else if held_until <= now {
        // Conditional on the lease still being the expired one: a takeover cannot clobber a lease another
        // caller renewed, even without the transaction.
        let taken = tx
            .prepare_cached(
                "UPDATE idempotency_records SET lease_until = ?3
                 WHERE tenant = ?1 AND key = ?2 AND response IS NULL AND lease_until <= ?4",
            )
            .and_then(|mut s| s.execute(params![tenant, key, lease_until, now]))
            .context(op, || format!("taking over the expired lease of {row_key}"))?;
        if taken == 1 { IdempotencyBegin::Started { recovered: true } } else { IdempotencyBegin::InProgress }
    } else {
        IdempotencyBegin::InProgress
    })
}

/// [`IdempotencyStore::complete`] inside the caller's write transaction.
fn complete_in(
    tx: &rusqlite::Connection,
    op: &'static str,
    tenant: &str,
    key: &str,
    response: &[u8],
) -> Result<(), StoreError> {
    let completed = tx
        .prepare_cached(
            "UPDATE idempotency_records SET response = ?3 WHERE tenant = ?1 AND key = ?2 AND response IS NULL",
        )
        .and_then(|mut s| s.execute(params![tenant, key, response]))
        .context(op, || format!("storing the response of {}", idempotency_row_key(tenant, key)))?;
    if completed == 0 {
        return Err(if record_exists(tx, op, tenant, key)? {
            StoreError::new(
                ErrorKind::InvalidState,
                op,
                format!("key `{key}` is already completed; its first response stands"),
            )
        } else {
            StoreError::new(ErrorKind::NotFound, op, format!("no idempotency record for key `{key}`"))
        });
    }
    Ok(())
}

/// [`IdempotencyStore::release`] inside the caller's write transaction.
fn release_in(tx: &rusqlite::Connection, op: &'static str, tenant: &str, key: &str) -> Result<(), StoreError> {
    release_held(tx, op, tenant, key, false)
}

/// Deletes an uncompleted record; with `must_exist`, a missing record is `NotFound` (a ledger commit resolves a
/// key it holds, so a missing one means another caller released it).
fn release_held(
    tx: &rusqlite::Connection,
    op: &'static str,
    tenant: &str,
    key: &str,
    must_exist: bool,
) -> Result<(), StoreError> {
    let deleted = tx
        .prepare_cached("DELETE FROM idempotency_records WHERE tenant = ?1 AND key = ?2 AND response IS NULL")
        .and_then(|mut s| s.execute(params![tenant, key]))
        .context(op, || format!("deleting idempotency record {}", idempotency_row_key(tenant, key)))?;
    if deleted == 0 {
        if record_exists(tx, op, tenant, key)? {
            return Err(StoreError::new(
                ErrorKind::InvalidState,
                op,
                format!("key `{key}` is completed and cannot be released"),
            ));
        }
        if must_exist {
            return Err(StoreError::new(ErrorKind::NotFound, op, format!("no idempotency record for key `{key}`")));
        }
    }
    Ok(())
}

fn record_exists(conn: &rusqlite::Connection, op: &'static str, tenant: &str, key: &str) -> Result<bool, StoreError> {
    conn.prepare_cached("SELECT 1 FROM idempotency_records WHERE tenant = ?1 AND key = ?2")
        .and_then(|mut s| s.exists(params![tenant, key]))
        .context(op, || format!("looking up idempotency record {}", idempotency_row_key(tenant, key)))
}

// ---------------------------------------------------------------------------------------------------------
// Payment intents

/// [`PaymentIntentStore`] on tables `payment_intents` and `intent_events`.
#[derive(Debug, Clone)]
pub(crate) struct SqlitePaymentIntentStore {
    db: Arc<Database>,
}

impl SqlitePaymentIntentStore {
    pub(crate) fn new(db: Arc<Database>) -> SqlitePaymentIntentStore {
        SqlitePaymentIntentStore { db }
    }
}

const INTENT_COLUMNS: &str = "tenant, id, channel, tender, status, currency, amount_minor, authorized_minor, \
     captured_minor, refunded_minor, provider, provider_reference, reference, version, created_at, updated_at";

/// The stored columns of one idempotency record: operation, fingerprint, response, lease_until.
type StoredRecord = (String, String, Option<Vec<u8>>, i64);

/// Reads one idempotency record (`QueryReturnedNoRows` when there is none).
fn select_record(conn: &rusqlite::Connection, tenant: &dyn ToSql, key: &dyn ToSql) -> rusqlite::Result<StoredRecord> {
    conn.prepare_cached(
        "SELECT operation, fingerprint, response, lease_until FROM idempotency_records WHERE tenant = ?1 AND key = ?2",
    )
    .and_then(|mut s| s.query_row(params![tenant, key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))))
}

/// A payment intent as column values, checked before any SQL runs.
#[derive(Debug)]
struct IntentValues {
    tenant: String,
    id: String,
    channel: String,
    tender: String,
    status: String,
    currency: String,
    amount: i64,
    authorized: i64,
    captured: i64,
    refunded: i64,
    provider: String,
    provider_reference: Option<String>,
    reference: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl IntentValues {
    fn new(op: &'static str, intent: &PaymentIntent) -> Result<IntentValues, StoreError> {
        let currency = intent.amount.currency();
        for (field, money) in
            [("authorized", intent.authorized), ("captured", intent.captured), ("refunded", intent.refunded)]
        {
            if money.currency() != currency {
                return Err(unstorable(
                    op,
                    field,
                    format!("{money} is not in the intent's currency {}", currency.code()),
                ));
            }
        }
        Ok(IntentValues {
            tenant: intent.tenant.to_string(),
            id: intent.id.to_string(),
            channel: intent.channel.to_string(),
            tender: enum_to_sql(op, "tender", &intent.tender)?,
            status: enum_to_sql(op, "status", &intent.status)?,
            currency: currency.code().to_owned(),
            amount: intent.amount.minor(),
            authorized: intent.authorized.minor(),
            captured: intent.captured.minor(),
            refunded: intent.refunded.minor(),
            provider: intent.provider.clone(),
            provider_reference: intent.provider_reference.clone(),
            reference: intent.reference.clone(),
            version: u64_to_sql(op, "version", intent.version)?,
            created_at: time_to_sql(op, "created_at", intent.created_at)?,
            updated_at: time_to_sql(op, "updated_at", intent.updated_at)?,
        })
    }

    /// The values in the order of `INTENT_COLUMNS` (`?1` to `?16`), so the insert and the update bind alike.
    fn columns(&self) -> [&dyn ToSql; 16] {
        [
            &self.tenant,
            &self.id,
            &self.channel,
            &self.tender,
            &self.status,
            &self.currency,
            &self.amount,
            &self.authorized,
            &self.captured,
            &self.refunded,
            &self.provider,
            &self.provider_reference,
            &self.reference,
            &self.version,
            &self.created_at,
            &self.updated_at,
        ]
    }

    fn row_key(&self) -> String {
        format!("(tenant `{}`, id `{}`)", self.tenant, self.id)
    }
}

/// An intent event as column values.
#[derive(Debug)]
struct EventValues {
    sequence: i64,
    at: i64,
    operation: String,
    status: String,
    amount_minor: Option<i64>,
    amount_currency: Option<String>,
    provider_reference: Option<String>,
    detail: Option<String>,
    data: Option<String>,
}

impl EventValues {
    fn new(op: &'static str, event: IntentEvent) -> Result<EventValues, StoreError> {
        Ok(EventValues {
            sequence: u64_to_sql(op, "event.sequence", event.sequence)?,
            at: time_to_sql(op, "event.at", event.at)?,
            status: enum_to_sql(op, "event.status", &event.status)?,
            operation: event.operation,
            amount_minor: event.amount.map(|m| m.minor()),
            amount_currency: event.amount.map(|m| m.currency().code().to_owned()),
            provider_reference: event.provider_reference,
            detail: event.detail,
            data: event.data,
        })
    }

    fn insert(&self, conn: &rusqlite::Connection, op: &'static str, intent: &IntentValues) -> Result<(), StoreError> {
        conn.prepare_cached(
            "INSERT INTO intent_events (tenant, intent_id, sequence, at, operation, status, amount_minor,
                 amount_currency, provider_reference, detail, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )
        .and_then(|mut s| {
            s.execute(params![
                intent.tenant,
                intent.id,
                self.sequence,
                self.at,
                self.operation,
                self.status,
                self.amount_minor,
                self.amount_currency,
                self.provider_reference,
                self.detail,
                self.data
            ])
        })
        .map(drop)
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::new(
                    ErrorKind::Conflict,
                    op,
                    format!("intent {} already has an event with sequence {}", intent.row_key(), self.sequence),
                )
                .with_source(e)
            } else {
                sql_error(op, format!("appending event {} of intent {}", self.sequence, intent.row_key()), e)
            }
        })
    }
}

fn read_intent(row: &Row<'_>) -> rusqlite::Result<IntentValues> {
    Ok(IntentValues {
        tenant: row.get(0)?,
        id: row.get(1)?,
        channel: row.get(2)?,
        tender: row.get(3)?,
        status: row.get(4)?,
        currency: row.get(5)?,
        amount: row.get(6)?,
        authorized: row.get(7)?,
        captured: row.get(8)?,
        refunded: row.get(9)?,
        provider: row.get(10)?,
        provider_reference: row.get(11)?,
        reference: row.get(12)?,
        version: row.get(13)?,
        created_at: row.get(14)?,
        updated_at: row.get(15)?,
    })
}

fn intent_from_row(op: &'static str, v: IntentValues) -> Result<PaymentIntent, StoreError> {
    let row_key = v.row_key();
    let source = RowSource { operation: op, table: "payment_intents", key: &row_key };
    let currency = source.currency("currency", &v.currency)?;
    let mut intent = PaymentIntent::new(
        source.parse("id", v.id, IntentId::new)?,
        source.parse("tenant", v.tenant, TenantId::new)?,
        source.parse("channel", v.channel, ChannelId::new)?,
        source.enum_value::<TenderKind>("tender", v.tender)?,
        Money::from_minor(v.amount, currency),
        v.provider,
        v.reference,
        source.time("created_at", v.created_at)?,
    );
    intent.status = source.enum_value("status", v.status)?;
    intent.authorized = Money::from_minor(v.authorized, currency);
    intent.captured = Money::from_minor(v.captured, currency);
    intent.refunded = Money::from_minor(v.refunded, currency);
    intent.provider_reference = v.provider_reference;
    intent.version = source.unsigned("version", v.version)?;
    intent.updated_at = source.time("updated_at", v.updated_at)?;
    Ok(intent)
}

fn read_event(row: &Row<'_>) -> rusqlite::Result<EventValues> {
    Ok(EventValues {
        sequence: row.get(0)?,
        at: row.get(1)?,
        operation: row.get(2)?,
        status: row.get(3)?,
        amount_minor: row.get(4)?,
        amount_currency: row.get(5)?,
        provider_reference: row.get(6)?,
        detail: row.get(7)?,
        data: row.get(8)?,
    })
}

fn event_from_row(op: &'static str, intent_key: &str, v: EventValues) -> Result<IntentEvent, StoreError> {
    let row_key = format!("{intent_key} sequence {}", v.sequence);
    let source = RowSource { operation: op, table: "intent_events", key: &row_key };
    let status: IntentStatus = source.enum_value("status", v.status)?;
    let mut event =
        IntentEvent::new(source.unsigned("sequence", v.sequence)?, source.time("at", v.at)?, v.operation, status);
    event.amount = match (v.amount_minor, v.amount_currency) {
        (Some(minor), Some(code)) => Some(Money::from_minor(minor, source.currency("amount_currency", &code)?)),
        (None, None) => None,
        _ => return Err(source.bad("amount_minor", "and `amount_currency` are not both set or both empty")),
    };
    event.provider_reference = v.provider_reference;
    event.detail = v.detail;
    event.data = v.data;
    Ok(event)
}

fn intent_version(
    conn: &rusqlite::Connection,
    op: &'static str,
    intent: &IntentValues,
) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT version FROM payment_intents WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row(params![intent.tenant, intent.id], |r| r.get(0)).optional())
        .context(op, || format!("reading the version of intent {}", intent.row_key()))
}

/// Checks a new intent and its first event and turns them into column values.
fn create_values(
    op: &'static str,
    intent: &PaymentIntent,
    event: IntentEvent,
) -> Result<(IntentValues, EventValues), StoreError> {
    if intent.version != 1 || event.sequence != 1 {
        return Err(StoreError::invalid(
            op,
            format!("a new intent has version 1 and event sequence 1, got {} and {}", intent.version, event.sequence),
        ));
    }
    Ok((IntentValues::new(op, intent)?, EventValues::new(op, event)?))
}

/// Checks an update's versions and turns it into column values (the expected version as stored).
fn update_values(
    op: &'static str,
    intent: &PaymentIntent,
    expected_version: u64,
    event: IntentEvent,
) -> Result<(IntentValues, i64, EventValues), StoreError> {
    let next = expected_version.checked_add(1).ok_or_else(|| StoreError::invalid(op, "version overflow"))?;
    if intent.version != next || event.sequence != next {
        return Err(StoreError::invalid(
            op,
            format!(
                "updating from version {expected_version} needs intent version and event sequence {next}, got {} and {}",
                intent.version, event.sequence
            ),
        ));
    }
    Ok((
        IntentValues::new(op, intent)?,
        u64_to_sql(op, "expected_version", expected_version)?,
        EventValues::new(op, event)?,
    ))
}

/// Inserts a new intent and its first event inside the caller's write transaction; false (and nothing
/// written) when the intent exists.
fn insert_intent_in(
    tx: &rusqlite::Connection,
    op: &'static str,
    v: &IntentValues,
    event: &EventValues,
) -> Result<bool, StoreError> {
    let inserted = tx
        .prepare_cached(&format!(
            "INSERT INTO payment_intents ({INTENT_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
             ON CONFLICT (tenant, id) DO NOTHING"
        ))
        .and_then(|mut s| s.execute(params_from_iter(v.columns())))
        .context(op, || format!("inserting intent {}", v.row_key()))?;
    if inserted == 0 {
        return Ok(false);
    }
    event.insert(tx, op, v)?;
    Ok(true)
}

/// [`PaymentIntentStore::create`] inside the caller's write transaction: an existing intent is `AlreadyExists`.
fn create_in(
    tx: &rusqlite::Connection,
    op: &'static str,
    v: &IntentValues,
    event: &EventValues,
) -> Result<(), StoreError> {
    if insert_intent_in(tx, op, v, event)? {
        Ok(())
    } else {
        Err(StoreError::new(
            ErrorKind::AlreadyExists,
            op,
            format!("intent `{}` already exists for tenant `{}`", v.id, v.tenant),
        ))
    }
}

/// [`PaymentIntentStore::update`] inside the caller's write transaction.
fn update_in(
    tx: &rusqlite::Connection,
    op: &'static str,
    v: &IntentValues,
    expected: i64,
    event: &EventValues,
) -> Result<(), StoreError> {
    let params = || params_from_iter(v.columns().into_iter().chain([&expected as &dyn ToSql]));
    // SQLite rewrites every index that has a column in the SET list, changed or not. Most updates change only
    // the status, the amounts, the version and `updated_at`, so they are tried first without the columns of the
    // reference indexes (matching them in the WHERE instead); an update that changes any other column (the
    // provider reference once known) replaces the whole row in the second statement.
    let updated = tx
        .prepare_cached(
            "UPDATE payment_intents SET status = ?5, amount_minor = ?7, authorized_minor = ?8,
                 captured_minor = ?9, refunded_minor = ?10, version = ?14, updated_at = ?16
             WHERE tenant = ?1 AND id = ?2 AND version = ?17 AND channel = ?3 AND tender = ?4
                 AND currency = ?6 AND provider = ?11 AND provider_reference IS ?12 AND reference = ?13
                 AND created_at = ?15",
        )
        .and_then(|mut s| s.execute(params()))
        .context(op, || format!("updating intent {}", v.row_key()))?;
    let updated = if updated == 1 {
        updated
    } else {
        tx.prepare_cached(
            "UPDATE payment_intents SET channel = ?3, tender = ?4, status = ?5, currency = ?6,
                 amount_minor = ?7, authorized_minor = ?8, captured_minor = ?9, refunded_minor = ?10,
                 provider = ?11, provider_reference = ?12, reference = ?13, version = ?14,
                 created_at = ?15, updated_at = ?16
             WHERE tenant = ?1 AND id = ?2 AND version = ?17",
        )
        .and_then(|mut s| s.execute(params()))
        .context(op, || format!("updating intent {}", v.row_key()))?
    };
    if updated == 0 {
        return Err(match intent_version(tx, op, v)? {
            Some(stored) => StoreError::new(
                ErrorKind::Conflict,
                op,
                format!("intent `{}` is at version {stored}, not {expected}", v.id),
            ),
            None => StoreError::new(ErrorKind::NotFound, op, format!("no intent `{}` for tenant `{}`", v.id, v.tenant)),
        });
    }
    event.insert(tx, op, v)
}

/// Reads an intent's row, if any.
fn select_intent(
    conn: &rusqlite::Connection,
    op: &'static str,
    tenant: &str,
    id: &str,
) -> Result<Option<IntentValues>, StoreError> {
    conn.prepare_cached(&format!("SELECT {INTENT_COLUMNS} FROM payment_intents WHERE tenant = ?1 AND id = ?2"))
        .and_then(|mut s| s.query_row(params![tenant, id], read_intent).optional())
        .context(op, || format!("reading intent (tenant `{tenant}`, id `{id}`)"))
}

/// Reads an intent's events, oldest first.
fn select_events(
    conn: &rusqlite::Connection,
    op: &'static str,
    tenant: &str,
    id: &str,
) -> Result<Vec<IntentEvent>, StoreError> {
    let intent_key = format!("(tenant `{tenant}`, intent `{id}`)");
    let rows = conn
        .prepare_cached(
            "SELECT sequence, at, operation, status, amount_minor, amount_currency, provider_reference, detail, data
             FROM intent_events WHERE tenant = ?1 AND intent_id = ?2 ORDER BY sequence",
        )
        .and_then(|mut s| s.query_map(params![tenant, id], read_event)?.collect::<Result<Vec<_>, _>>())
        .context(op, || format!("reading the events of intent {intent_key}"))?;
    rows.into_iter().map(|v| event_from_row(op, &intent_key, v)).collect()
}

#[async_trait]
impl PaymentIntentStore for SqlitePaymentIntentStore {
    async fn create(&self, intent: PaymentIntent, event: IntentEvent) -> Result<(), StoreError> {
        const OP: &str = "create";
        let (values, event) = create_values(OP, &intent, event)?;
        self.db
            .run(OP, move |conn| {
                let v = &values;
                let tx = immediate(conn, OP)?;
                create_in(&tx, OP, v, &event)?;
                tx.commit().context(OP, || format!("committing intent {}", v.row_key()))
            })
            .await
    }

    async fn get(&self, tenant: &TenantId, id: &IntentId) -> Result<PaymentIntent, StoreError> {
        const OP: &str = "get";
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.db
            .run(OP, move |conn| {
                let row = select_intent(conn, OP, &tenant, &id)?;
                match row {
                    Some(v) => intent_from_row(OP, v),
                    None => {
                        Err(StoreError::new(ErrorKind::NotFound, OP, format!("no intent `{id}` for tenant `{tenant}`")))
                    }
                }
            })
            .await
    }

    async fn update(&self, intent: PaymentIntent, expected_version: u64, event: IntentEvent) -> Result<(), StoreError> {
        const OP: &str = "update";
        let (values, expected, event) = update_values(OP, &intent, expected_version, event)?;
        self.db
            .run(OP, move |conn| {
                let v = &values;
                let tx = immediate(conn, OP)?;
                update_in(&tx, OP, v, expected, &event)?;
                tx.commit().context(OP, || format!("committing the update of intent {}", v.row_key()))
            })
            .await
    }

    async fn events(&self, tenant: &TenantId, id: &IntentId) -> Result<Vec<IntentEvent>, StoreError> {
        const OP: &str = "events";
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.db
            .run(OP, move |conn| {
                let events = select_events(conn, OP, &tenant, &id)?;
                if events.is_empty() {
                    return Err(StoreError::new(
                        ErrorKind::NotFound,
                        OP,
                        format!("no intent `{id}` for tenant `{tenant}`"),
                    ));
                }
                Ok(events)
            })
            .await
    }

    async fn find_by_provider_reference(
        &self,
        tenant: &TenantId,
        provider: &str,
        reference: &str,
    ) -> Result<Option<PaymentIntent>, StoreError> {
        const OP: &str = "find_by_provider_reference";
        let (tenant, provider, reference) = (tenant.to_string(), provider.to_owned(), reference.to_owned());
        self.db
            .run(OP, move |conn| {
                let row = conn
                    .prepare_cached(&format!(
                        "SELECT {INTENT_COLUMNS} FROM payment_intents
                         WHERE tenant = ?1 AND provider = ?2 AND provider_reference = ?3
                         ORDER BY created_at, id LIMIT 1"
                    ))
                    .and_then(|mut s| s.query_row(params![tenant, provider, reference], read_intent).optional())
                    .context(OP, || {
                        format!("looking up the intent of tenant `{tenant}` with {provider} reference `{reference}`")
                    })?;
                row.map(|v| intent_from_row(OP, v)).transpose()
            })
            .await
    }

    async fn find_by_reference(&self, tenant: &TenantId, reference: &str) -> Result<Vec<PaymentIntent>, StoreError> {
        const OP: &str = "find_by_reference";
        let (tenant, reference) = (tenant.to_string(), reference.to_owned());
        self.db
            .run(OP, move |conn| {
                let rows = conn
                    .prepare_cached(&format!(
                        "SELECT {INTENT_COLUMNS} FROM payment_intents WHERE tenant = ?1 AND reference = ?2
                         ORDER BY created_at, id"
                    ))
                    .and_then(|mut s| {
                        s.query_map(params![tenant, reference], read_intent)?.collect::<Result<Vec<_>, _>>()
                    })
                    .context(OP, || {
                        format!("looking up the intents of tenant `{tenant}` with reference `{reference}`")
                    })?;
                rows.into_iter().map(|v| intent_from_row(OP, v)).collect()
            })
            .await
    }

    async fn list_by_status(
        &self,
        tenant: &TenantId,
        status: IntentStatus,
        limit: u32,
    ) -> Result<Vec<PaymentIntent>, StoreError> {
        list_by_status_in(&self.db, "list_by_status", tenant, status, None, limit).await
    }

    async fn list_by_status_after(
        &self,
        tenant: &TenantId,
        status: IntentStatus,
        after: Option<IntentCursor>,
        limit: u32,
    ) -> Result<Vec<PaymentIntent>, StoreError> {
        list_by_status_in(&self.db, "list_by_status_after", tenant, status, after, limit).await
    }
}

/// The statement of a listing by status: `?1` tenant, `?2` status, `?3` limit and, with `after`, `?4` and `?5`
/// the cursor's update time and id.
///
/// The status index is partial (schema version 3): only `outcome_unknown` has one, on (tenant, updated_at, id),
/// and SQLite uses a partial index only for a query that names its status literally (`indexed`). The cursor is
/// a row-value comparison, which SQLite turns into a range of that index, so a page reads only its own rows.
fn list_by_status_sql(indexed: bool, after: bool) -> String {
    let status = if indexed { "status = 'outcome_unknown' AND status = ?2" } else { "status = ?2" };
    let after = if after { " AND (updated_at, id) > (?4, ?5)" } else { "" };
    format!(
        "SELECT {INTENT_COLUMNS} FROM payment_intents WHERE tenant = ?1 AND {status}{after}
         ORDER BY updated_at, id LIMIT ?3"
    )
}

/// [`PaymentIntentStore::list_by_status`] (without `after`) and [`PaymentIntentStore::list_by_status_after`].
/// The cursor's time is converted as `updated_at` is stored (unix nanoseconds), so a cursor made from a listed
/// intent compares equal to its row.
async fn list_by_status_in(
    db: &Arc<Database>,
    op: &'static str,
    tenant: &TenantId,
    status: IntentStatus,
    after: Option<IntentCursor>,
    limit: u32,
) -> Result<Vec<PaymentIntent>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let tenant = tenant.to_string();
    let indexed = status == IntentStatus::OutcomeUnknown;
    let status = enum_to_sql(op, "status", &status)?;
    let after = match after {
        Some(cursor) => Some((time_to_sql(op, "after.updated_at", cursor.updated_at)?, cursor.id.to_string())),
        None => None,
    };
    let limit = limit_to_sql(limit);
    db.run(op, move |conn| {
        let sql = list_by_status_sql(indexed, after.is_some());
        let rows = conn
            .prepare_cached(&sql)
            .and_then(|mut s| match &after {
                Some((at, id)) => {
                    s.query_map(params![tenant, status, limit, at, id], read_intent)?.collect::<Result<Vec<_>, _>>()
                }
                None => s.query_map(params![tenant, status, limit], read_intent)?.collect::<Result<Vec<_>, _>>(),
            })
            .context(op, || match &after {
                Some((_, id)) => format!("listing `{status}` intents of tenant `{tenant}` after intent `{id}`"),
                None => format!("listing `{status}` intents of tenant `{tenant}`"),
            })?;
        rows.into_iter().map(|v| intent_from_row(op, v)).collect()
    })
    .await
}

// ---------------------------------------------------------------------------------------------------------
// Payment ledger

/// [`PaymentLedger`] on the idempotency and intent tables: each call is one write transaction.
///
/// The claim's transaction commits with `synchronous = NORMAL`: atomic and safe against a crash of the
/// process, but its WAL frames reach the disk with the next `synchronous = FULL` commit (the operation's
/// `commit`, which is FULL like every other write) instead of with their own fsync. The port allows it (a
/// lost claim is a retry that re-sends the same provider key), and it halves the fsyncs of an operation.
#[derive(Debug, Clone)]
pub(crate) struct SqlitePaymentLedger {
    db: Arc<Database>,
}

impl SqlitePaymentLedger {
    pub(crate) fn new(db: Arc<Database>) -> SqlitePaymentLedger {
        SqlitePaymentLedger { db }
    }
}

/// Runs `work` in a write transaction committed with `synchronous = NORMAL`. The pool restores `FULL` when the
/// connection is given back (`Checkout::drop`), right after this returns, also after an error or a panic.
fn with_relaxed_sync<T>(
    conn: &mut rusqlite::Connection,
    op: &'static str,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.prepare_cached("PRAGMA synchronous = NORMAL")
        .and_then(|mut s| s.execute([]))
        .context(op, || "relaxing synchronous for a claim")?;
    let tx = immediate(conn, op)?;
    let value = work(&tx)?;
    tx.commit().context(op, || "committing a claim")?;
    Ok(value)
}

#[async_trait]
impl PaymentLedger for SqlitePaymentLedger {
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        claim: IdempotencyClaim,
        intent: &IntentId,
        create: Option<(PaymentIntent, IntentEvent)>,
    ) -> Result<LedgerClaim, StoreError> {
        const OP: &str = "claim";
        let now = time_to_sql(OP, "claim.now", claim.now)?;
        let lease_until = time_to_sql(OP, "claim.lease_until", claim.lease_until)?;
        check_ledger_create(tenant, intent, create.as_ref())?;
        let create = match create {
            Some((new, event)) => {
                Some((create_values(OP, &new, event.clone())?, IntentSnapshot::new(new, vec![event])))
            }
            None => None,
        };
        let (tenant, key, id) = (tenant.to_string(), key.to_string(), intent.to_string());
        self.db
            .run(OP, move |conn| {
                with_relaxed_sync(conn, OP, |tx| {
                    let begin = begin_in(tx, OP, &tenant, &key, &claim, now, lease_until)?;
                    if !matches!(begin, IdempotencyBegin::Started { .. }) {
                        return Ok(LedgerClaim::new(begin, None));
                    }
                    // A creation is answered as given, without reading back what was just written.
                    if let Some(((values, event), created)) = create
                        && insert_intent_in(tx, OP, &values, &event)?
                    {
                        return Ok(LedgerClaim::new(begin, Some(created)));
                    }
                    let Some(row) = select_intent(tx, OP, &tenant, &id)? else {
                        return Ok(LedgerClaim::new(begin, None));
                    };
                    let snapshot = IntentSnapshot::new(intent_from_row(OP, row)?, select_events(tx, OP, &tenant, &id)?);
                    Ok(LedgerClaim::new(begin, Some(snapshot)))
                })
            })
            .await
    }

    async fn commit(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        update: Option<IntentUpdate>,
        resolution: KeyResolution,
    ) -> Result<(), StoreError> {
        const OP: &str = "commit";
        check_ledger_update(tenant, update.as_ref())?;
        let update = match update {
            Some(IntentUpdate { intent, expected_version, event, created, .. }) => {
                // A creation with its first update is the final row with both events: `update` replaces every
                // column, so creating version 1 and replacing it would store the same, with more pages written.
                // `check_ledger_update` checked the creation's version and sequence.
                let first = match created {
                    Some((_, first)) => Some(EventValues::new(OP, first)?),
                    None => None,
                };
                Some((update_values(OP, &intent, expected_version, event)?, first))
            }
            None => None,
        };
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                // The key first, as the other ledgers: a missing or completed key is `NotFound` or `InvalidState`
                // whatever the intent's state; a failing intent write then rolls the resolution back.
                match &resolution {
                    KeyResolution::Complete(response) => complete_in(&tx, OP, &tenant, &key, response)?,
                    KeyResolution::Release => release_held(&tx, OP, &tenant, &key, true)?,
                    other => {
                        return Err(StoreError::new(
                            ErrorKind::Unsupported,
                            OP,
                            format!("unknown key resolution {other:?}"),
                        ));
                    }
                }
                match &update {
                    Some(((values, _, event), Some(first))) => {
                        create_in(&tx, OP, values, first)?;
                        event.insert(&tx, OP, values)?;
                    }
                    Some(((values, expected, event), None)) => update_in(&tx, OP, values, *expected, event)?,
                    None => {}
                }
                tx.commit().context(OP, || format!("committing {}", idempotency_row_key(&tenant, &key)))
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------------------
// Webhook ids

/// [`WebhookEventStore`] on table `webhook_events`, keyed by (tenant, provider, event id).
#[derive(Debug, Clone)]
pub(crate) struct SqliteWebhookEventStore {
    db: Arc<Database>,
}

impl SqliteWebhookEventStore {
    pub(crate) fn new(db: Arc<Database>) -> SqliteWebhookEventStore {
        SqliteWebhookEventStore { db }
    }
}

#[async_trait]
impl WebhookEventStore for SqliteWebhookEventStore {
    async fn record(
        &self,
        tenant: &TenantId,
        provider: &str,
        event_id: &str,
        received_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        const OP: &str = "record";
        let received_at = time_to_sql(OP, "received_at", received_at)?;
        let (tenant, provider, event_id) = (tenant.to_string(), provider.to_owned(), event_id.to_owned());
        self.db
            .run(OP, move |conn| {
                // One statement, atomic on its own: of concurrent inserts of one id, one changes a row.
                let inserted = conn
                    .prepare_cached(
                        "INSERT INTO webhook_events (tenant, provider, event_id, received_at) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (tenant, provider, event_id) DO NOTHING",
                    )
                    .and_then(|mut s| s.execute(params![tenant, provider, event_id, received_at]))
                    .context(OP, || format!("recording {provider} webhook event `{event_id}` of tenant `{tenant}`"))?;
                Ok(inserted == 1)
            })
            .await
    }

    async fn contains(&self, tenant: &TenantId, provider: &str, event_id: &str) -> Result<bool, StoreError> {
        const OP: &str = "contains";
        let (tenant, provider, event_id) = (tenant.to_string(), provider.to_owned(), event_id.to_owned());
        self.db
            .run(OP, move |conn| {
                conn.prepare_cached(
                    "SELECT 1 FROM webhook_events WHERE tenant = ?1 AND provider = ?2 AND event_id = ?3",
                )
                .and_then(|mut s| s.exists(params![tenant, provider, event_id]))
                .context(OP, || format!("looking up {provider} webhook event `{event_id}` of tenant `{tenant}`"))
            })
            .await
    }
}
