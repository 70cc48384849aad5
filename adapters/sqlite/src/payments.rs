//! Idempotency records, payment intents with their events, and processed webhook ids.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::stores::{
    IdempotencyBegin, IdempotencyClaim, IdempotencyRecord, IdempotencyStore, IntentEvent, IntentStatus, PaymentIntent,
    PaymentIntentStore, WebhookEventStore,
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
                let row_key = idempotency_row_key(&tenant, &key);
                let tx = immediate(conn, OP)?;
                let inserted = tx
                    .prepare_cached(
                        "INSERT INTO idempotency_records (tenant, key, operation, fingerprint, response, lease_until)
                         VALUES (?1, ?2, ?3, ?4, NULL, ?5) ON CONFLICT (tenant, key) DO NOTHING",
                    )
                    .and_then(|mut s| s.execute(params![tenant, key, claim.operation, claim.fingerprint, lease_until]))
                    .context(OP, || format!("inserting idempotency record {row_key}"))?;
                let outcome = if inserted == 1 {
                    IdempotencyBegin::Started { recovered: false }
                } else {
                    let (operation, fingerprint, response, held_until) = select_record(&tx, &tenant, &key)
                        .context(OP, || format!("reading idempotency record {row_key}"))?;
                    if operation != claim.operation || fingerprint != claim.fingerprint {
                        IdempotencyBegin::Conflict { operation }
                    } else if let Some(response) = response {
                        IdempotencyBegin::Completed(response)
                    } else if held_until <= now {
                        // Conditional on the lease still being the expired one: a takeover cannot clobber a
                        // lease another caller renewed, even without the transaction.
                        let taken = tx
                            .prepare_cached(
                                "UPDATE idempotency_records SET lease_until = ?3
                                 WHERE tenant = ?1 AND key = ?2 AND response IS NULL AND lease_until <= ?4",
                            )
                            .and_then(|mut s| s.execute(params![tenant, key, lease_until, now]))
                            .context(OP, || format!("taking over the expired lease of {row_key}"))?;
                        if taken == 1 {
                            IdempotencyBegin::Started { recovered: true }
                        } else {
                            IdempotencyBegin::InProgress
                        }
                    } else {
                        IdempotencyBegin::InProgress
                    }
                };
                tx.commit().context(OP, || format!("committing idempotency record {row_key}"))?;
                Ok(outcome)
            })
            .await
    }

    async fn complete(&self, tenant: &TenantId, key: &IdempotencyKey, response: Vec<u8>) -> Result<(), StoreError> {
        const OP: &str = "complete";
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.db
            .run(OP, move |conn| {
                let row_key = idempotency_row_key(&tenant, &key);
                let tx = immediate(conn, OP)?;
                let completed = tx
                    .prepare_cached(
                        "UPDATE idempotency_records SET response = ?3
                         WHERE tenant = ?1 AND key = ?2 AND response IS NULL",
                    )
                    .and_then(|mut s| s.execute(params![tenant, key, response]))
                    .context(OP, || format!("storing the response of {row_key}"))?;
                if completed == 0 {
                    let exists = record_exists(&tx, OP, &tenant, &key)?;
                    return Err(if exists {
                        StoreError::new(
                            ErrorKind::InvalidState,
                            OP,
                            format!("key `{key}` is already completed; its first response stands"),
                        )
                    } else {
                        StoreError::new(ErrorKind::NotFound, OP, format!("no idempotency record for key `{key}`"))
                    });
                }
                tx.commit().context(OP, || format!("committing the response of {row_key}"))
            })
            .await
    }

    async fn release(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<(), StoreError> {
        const OP: &str = "release";
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.db
            .run(OP, move |conn| {
                let row_key = idempotency_row_key(&tenant, &key);
                let tx = immediate(conn, OP)?;
                let deleted = tx
                    .prepare_cached(
                        "DELETE FROM idempotency_records WHERE tenant = ?1 AND key = ?2 AND response IS NULL",
                    )
                    .and_then(|mut s| s.execute(params![tenant, key]))
                    .context(OP, || format!("deleting idempotency record {row_key}"))?;
                if deleted == 0 && record_exists(&tx, OP, &tenant, &key)? {
                    return Err(StoreError::new(
                        ErrorKind::InvalidState,
                        OP,
                        format!("key `{key}` is completed and cannot be released"),
                    ));
                }
                tx.commit().context(OP, || format!("committing the release of {row_key}"))
            })
            .await
    }

    async fn get(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, StoreError> {
        const OP: &str = "get";
        let (tenant, key) = (tenant.to_string(), key.to_string());
        self.db
            .run(OP, move |conn| {
                let row_key = idempotency_row_key(&tenant, &key);
                let row = select_record(conn, &tenant, &key)
                    .optional()
                    .context(OP, || format!("reading idempotency record {row_key}"))?;
                let Some((operation, fingerprint, response, lease_until)) = row else {
                    return Ok(None);
                };
                let source = RowSource { operation: OP, table: "idempotency_records", key: &row_key };
                let lease_until = source.time("lease_until", lease_until)?;
                let mut record =
                    IdempotencyRecord::started(IdempotencyClaim::new(operation, fingerprint, lease_until, lease_until));
                record.response = response;
                Ok(Some(record))
            })
            .await
    }
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

#[async_trait]
impl PaymentIntentStore for SqlitePaymentIntentStore {
    async fn create(&self, intent: PaymentIntent, event: IntentEvent) -> Result<(), StoreError> {
        const OP: &str = "create";
        if intent.version != 1 || event.sequence != 1 {
            return Err(StoreError::invalid(
                OP,
                format!(
                    "a new intent has version 1 and event sequence 1, got {} and {}",
                    intent.version, event.sequence
                ),
            ));
        }
        let values = IntentValues::new(OP, &intent)?;
        let event = EventValues::new(OP, event)?;
        self.db
            .run(OP, move |conn| {
                let v = &values;
                let tx = immediate(conn, OP)?;
                let inserted = tx
                    .prepare_cached(&format!(
                        "INSERT INTO payment_intents ({INTENT_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                         ON CONFLICT (tenant, id) DO NOTHING"
                    ))
                    .and_then(|mut s| s.execute(params_from_iter(v.columns())))
                    .context(OP, || format!("inserting intent {}", v.row_key()))?;
                if inserted == 0 {
                    return Err(StoreError::new(
                        ErrorKind::AlreadyExists,
                        OP,
                        format!("intent `{}` already exists for tenant `{}`", v.id, v.tenant),
                    ));
                }
                event.insert(&tx, OP, v)?;
                tx.commit().context(OP, || format!("committing intent {}", v.row_key()))
            })
            .await
    }

    async fn get(&self, tenant: &TenantId, id: &IntentId) -> Result<PaymentIntent, StoreError> {
        const OP: &str = "get";
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.db
            .run(OP, move |conn| {
                let row = conn
                    .prepare_cached(&format!(
                        "SELECT {INTENT_COLUMNS} FROM payment_intents WHERE tenant = ?1 AND id = ?2"
                    ))
                    .and_then(|mut s| s.query_row(params![tenant, id], read_intent).optional())
                    .context(OP, || format!("reading intent (tenant `{tenant}`, id `{id}`)"))?;
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
        let next = expected_version.checked_add(1).ok_or_else(|| StoreError::invalid(OP, "version overflow"))?;
        if intent.version != next || event.sequence != next {
            return Err(StoreError::invalid(
                OP,
                format!(
                    "updating from version {expected_version} needs intent version and event sequence {next}, got {} and {}",
                    intent.version, event.sequence
                ),
            ));
        }
        let values = IntentValues::new(OP, &intent)?;
        let expected = u64_to_sql(OP, "expected_version", expected_version)?;
        let event = EventValues::new(OP, event)?;
        self.db
            .run(OP, move |conn| {
                let v = &values;
                let tx = immediate(conn, OP)?;
                let updated = tx
                    .prepare_cached(
                        "UPDATE payment_intents SET channel = ?3, tender = ?4, status = ?5, currency = ?6,
                             amount_minor = ?7, authorized_minor = ?8, captured_minor = ?9, refunded_minor = ?10,
                             provider = ?11, provider_reference = ?12, reference = ?13, version = ?14,
                             created_at = ?15, updated_at = ?16
                         WHERE tenant = ?1 AND id = ?2 AND version = ?17",
                    )
                    .and_then(|mut s| {
                        s.execute(params_from_iter(v.columns().into_iter().chain([&expected as &dyn ToSql])))
                    })
                    .context(OP, || format!("updating intent {}", v.row_key()))?;
                if updated == 0 {
                    return Err(match intent_version(&tx, OP, v)? {
                        Some(stored) => StoreError::new(
                            ErrorKind::Conflict,
                            OP,
                            format!("intent `{}` is at version {stored}, not {expected}", v.id),
                        ),
                        None => StoreError::new(
                            ErrorKind::NotFound,
                            OP,
                            format!("no intent `{}` for tenant `{}`", v.id, v.tenant),
                        ),
                    });
                }
                event.insert(&tx, OP, v)?;
                tx.commit().context(OP, || format!("committing the update of intent {}", v.row_key()))
            })
            .await
    }

    async fn events(&self, tenant: &TenantId, id: &IntentId) -> Result<Vec<IntentEvent>, StoreError> {
        const OP: &str = "events";
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.db
            .run(OP, move |conn| {
                let intent_key = format!("(tenant `{tenant}`, intent `{id}`)");
                let rows = conn
                    .prepare_cached(
                        "SELECT sequence, at, operation, status, amount_minor, amount_currency, provider_reference,
                             detail, data
                         FROM intent_events WHERE tenant = ?1 AND intent_id = ?2 ORDER BY sequence",
                    )
                    .and_then(|mut s| s.query_map(params![tenant, id], read_event)?.collect::<Result<Vec<_>, _>>())
                    .context(OP, || format!("reading the events of intent {intent_key}"))?;
                if rows.is_empty() {
                    return Err(StoreError::new(
                        ErrorKind::NotFound,
                        OP,
                        format!("no intent `{id}` for tenant `{tenant}`"),
                    ));
                }
                rows.into_iter().map(|v| event_from_row(OP, &intent_key, v)).collect()
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
        const OP: &str = "list_by_status";
        let tenant = tenant.to_string();
        let status = enum_to_sql(OP, "status", &status)?;
        let limit = limit_to_sql(limit);
        self.db
            .run(OP, move |conn| {
                let rows = conn
                    .prepare_cached(&format!(
                        "SELECT {INTENT_COLUMNS} FROM payment_intents WHERE tenant = ?1 AND status = ?2
                         ORDER BY updated_at, id LIMIT ?3"
                    ))
                    .and_then(|mut s| {
                        s.query_map(params![tenant, status, limit], read_intent)?.collect::<Result<Vec<_>, _>>()
                    })
                    .context(OP, || format!("listing `{status}` intents of tenant `{tenant}`"))?;
                rows.into_iter().map(|v| intent_from_row(OP, v)).collect()
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
