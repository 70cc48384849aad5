//! Idempotency records, payment intents with their events, and processed webhook ids.
//!
//! - `IdempotencyStore::begin` is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` statement: the insert
//!   claims a new key; the conditional update takes over an expired, uncompleted lease with the same
//!   operation and fingerprint. PostgreSQL locks the conflicting row and re-checks the condition on its
//!   latest version, so of many concurrent callers (on any number of instances) exactly one gets `Started`.
//! - Intents are written in a transaction with their event; `update` is `UPDATE ... WHERE version = $n`.
//! - Webhook ids are `INSERT ... ON CONFLICT DO NOTHING`; the affected-row count says whether it was new.
//! - The payment ledger (`PgPaymentLedger`) does each of its two calls in one statement with data-modifying
//!   CTEs: the claim (key, intent creation, intent read) and the commit (intent update or creation, events,
//!   key resolution). See its documentation.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::stores::{
    IdempotencyBegin, IdempotencyClaim, IdempotencyRecord, IdempotencyStore, IntentCursor, IntentEvent, IntentSnapshot,
    IntentStatus, IntentUpdate, KeyResolution, LedgerClaim, PaymentIntent, PaymentIntentStore, PaymentLedger,
    WebhookEventStore, check_ledger_create, check_ledger_update,
};
use commerce_ports::{ChannelId, ErrorKind, IdempotencyKey, IntentId, Money, StoreError, TenantId};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::client::{Db, SqlParam, execute, query, query_opt};
use crate::error::{Ctx, Phase};
use crate::mapping::{RowReader, name_of, to_bigint};

/// How often `begin` re-reads a key that vanished (released) between its claim and its read.
const BEGIN_ATTEMPTS: usize = 3;

fn key_subject(tenant: &TenantId, key: &IdempotencyKey) -> String {
    format!("idempotency key `{key}` of tenant `{tenant}`")
}

/// [`IdempotencyStore`] on PostgreSQL.
#[derive(Debug)]
pub(crate) struct PgIdempotencyStore {
    db: Arc<Db>,
}

impl PgIdempotencyStore {
    pub(crate) fn new(db: Arc<Db>) -> PgIdempotencyStore {
        PgIdempotencyStore { db }
    }
}

#[async_trait]
impl IdempotencyStore for PgIdempotencyStore {
    async fn begin(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        claim: IdempotencyClaim,
    ) -> Result<IdempotencyBegin, StoreError> {
        let ctx = Ctx::new("begin", key_subject(tenant, key));
        let client = self.db.client(&ctx).await?;
        let claim_sql = self.db.sql(
            "INSERT INTO {s}.idempotency_records AS r (tenant, key, operation, fingerprint, lease_until, claimed_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (tenant, key) DO UPDATE
                 SET lease_until = EXCLUDED.lease_until, takeovers = r.takeovers + 1
                 WHERE r.response IS NULL AND r.lease_until <= $6
                   AND r.operation = EXCLUDED.operation AND r.fingerprint = EXCLUDED.fingerprint
             RETURNING takeovers",
        );
        let read_sql = self
            .db
            .sql("SELECT operation, fingerprint, response FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2");
        let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
        self.db
            .timed(&ctx, Phase::Autocommit, async {
                for _ in 0..BEGIN_ATTEMPTS {
                    let claimed = query_opt(
                        &ctx,
                        &*client,
                        Phase::Autocommit,
                        "claiming in idempotency_records",
                        &claim_sql,
                        &[&tenant_s, &key_s, &claim.operation, &claim.fingerprint, &claim.lease_until, &claim.now],
                    )
                    .await?;
                    if let Some(row) = claimed {
                        let takeovers: i64 =
                            RowReader::new(ctx.op, &row, "idempotency_records", &[]).get("takeovers")?;
                        return Ok(IdempotencyBegin::Started { recovered: takeovers > 0 });
                    }
                    let existing = query_opt(
                        &ctx,
                        &*client,
                        Phase::Read,
                        "reading idempotency_records",
                        &read_sql,
                        &[&tenant_s, &key_s],
                    )
                    .await?;
                    let Some(row) = existing else {
                        continue; // Released in between: claim again.
                    };
                    let r = RowReader::new(ctx.op, &row, "idempotency_records", &["tenant", "key"]);
                    return existing_answer(&claim, &r, ["operation", "fingerprint", "response"]);
                }
                Err(released_too_often(&ctx))
            })
            .await
    }

    async fn complete(&self, tenant: &TenantId, key: &IdempotencyKey, response: Vec<u8>) -> Result<(), StoreError> {
        let ctx = Ctx::new("complete", key_subject(tenant, key));
        complete_key(&self.db, &ctx, tenant, key, &response).await
    }

    async fn release(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<(), StoreError> {
        let ctx = Ctx::new("release", key_subject(tenant, key));
        release_key(&self.db, &ctx, tenant, key).await
    }

    async fn get(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, StoreError> {
        let ctx = Ctx::new("get", key_subject(tenant, key));
        let sql = self.db.sql(
            "SELECT tenant, key, operation, fingerprint, response, lease_until, claimed_at
             FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2",
        );
        let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
        let row = self.db.row_opt(&ctx, Phase::Read, "reading idempotency_records", &sql, &[&tenant_s, &key_s]).await?;
        let Some(row) = row else { return Ok(None) };
        let r = RowReader::new(ctx.op, &row, "idempotency_records", &["tenant", "key"]);
        let mut record = IdempotencyRecord::stored(
            r.get::<String>("operation")?,
            r.get::<String>("fingerprint")?,
            r.get("lease_until")?,
            r.get("claimed_at")?,
        );
        record.response = r.get("response")?;
        Ok(Some(record))
    }

    /// One conditional `UPDATE`. `held_until` is bound as `begin` (and the ledger's claim) bind
    /// `claim.lease_until`, so it is truncated to the microseconds of `TIMESTAMPTZ` exactly as the stored lease
    /// was; the row lock makes it atomic with a concurrent takeover, which re-checks its condition after it.
    async fn renew(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        held_until: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let ctx = Ctx::new("renew", key_subject(tenant, key));
        let sql = self.db.sql(
            "UPDATE {s}.idempotency_records SET lease_until = $3
             WHERE tenant = $1 AND key = $2 AND response IS NULL AND lease_until = $4",
        );
        let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
        let n = self
            .db
            .affected(
                &ctx,
                Phase::Autocommit,
                "updating idempotency_records",
                &sql,
                &[&tenant_s, &key_s, &until, &held_until],
            )
            .await?;
        Ok(n == 1)
    }
}

/// `begin`'s answer for a key it could not claim, from the record it read afterwards (`columns`: the names
/// of its operation, fingerprint and response in `r`).
fn existing_answer(
    claim: &IdempotencyClaim,
    r: &RowReader<'_>,
    columns: [&str; 3],
) -> Result<IdempotencyBegin, StoreError> {
    let [operation, fingerprint, response] = columns;
    let operation: String = r.get(operation)?;
    let fingerprint: String = r.get(fingerprint)?;
    if operation != claim.operation || fingerprint != claim.fingerprint {
        return Ok(IdempotencyBegin::Conflict { operation });
    }
    Ok(match r.get::<Option<Vec<u8>>>(response)? {
        Some(response) => IdempotencyBegin::Completed(response),
        None => IdempotencyBegin::InProgress,
    })
}

/// The error when a key kept vanishing between a failed claim and the read that follows it.
fn released_too_often(ctx: &Ctx) -> StoreError {
    ctx.err(
        ErrorKind::Conflict,
        format!("the record was released and claimed again {BEGIN_ATTEMPTS} times during this call"),
    )
}

/// Stores a key's response: one conditional `UPDATE`, plus a read on failure to tell why.
async fn complete_key(
    db: &Db,
    ctx: &Ctx,
    tenant: &TenantId,
    key: &IdempotencyKey,
    response: &[u8],
) -> Result<(), StoreError> {
    let client = db.client(ctx).await?;
    let update = db.sql(
        "UPDATE {s}.idempotency_records SET response = $3
         WHERE tenant = $1 AND key = $2 AND response IS NULL",
    );
    let exists = db.sql("SELECT 1 FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2");
    let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
    db.timed(ctx, Phase::Autocommit, async {
        let params: [SqlParam<'_>; 3] = [&tenant_s, &key_s, &response];
        let n = execute(ctx, &*client, Phase::Autocommit, "updating idempotency_records", &update, &params).await?;
        if n == 1 {
            return Ok(());
        }
        let found = query_opt(ctx, &*client, Phase::Read, "reading idempotency_records", &exists, &params[..2]).await?;
        Err(match found {
            Some(_) => ctx.err(ErrorKind::InvalidState, "is already completed; its first response stands"),
            None => ctx.err(ErrorKind::NotFound, "has no idempotency record"),
        })
    })
    .await
}

/// Deletes a key's uncompleted record (nothing to delete is fine); a completed one is `InvalidState`.
async fn release_key(db: &Db, ctx: &Ctx, tenant: &TenantId, key: &IdempotencyKey) -> Result<(), StoreError> {
    let client = db.client(ctx).await?;
    let delete = db.sql("DELETE FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2 AND response IS NULL");
    let completed =
        db.sql("SELECT 1 FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2 AND response IS NOT NULL");
    let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
    db.timed(ctx, Phase::Autocommit, async {
        let params: [SqlParam<'_>; 2] = [&tenant_s, &key_s];
        let n =
            execute(ctx, &*client, Phase::Autocommit, "deleting from idempotency_records", &delete, &params).await?;
        if n == 0
            && query_opt(ctx, &*client, Phase::Read, "reading idempotency_records", &completed, &params)
                .await?
                .is_some()
        {
            return Err(ctx.err(ErrorKind::InvalidState, "is completed and cannot be released"));
        }
        Ok(())
    })
    .await
}

// ---------------------------------------------------------------------------------------------------------

const INTENT_COLUMNS: &str = "tenant, id, channel, tender, status, currency, amount_minor, authorized_minor, \
     captured_minor, refunded_minor, provider, provider_reference, reference, version, created_at, updated_at";

const EVENT_COLUMNS: &str = "tenant, intent_id, sequence, at, operation, status, amount_minor, amount_currency, \
     provider_reference, detail, data";

fn intent_subject(tenant: &TenantId, id: &IntentId) -> String {
    format!("intent `{id}` of tenant `{tenant}`")
}

/// An intent's columns, checked: one currency for every amount, counters within `BIGINT`.
struct IntentRow<'a> {
    intent: &'a PaymentIntent,
    tenant: &'a str,
    id: &'a str,
    channel: &'a str,
    tender: String,
    status: String,
    currency: String,
    amounts: [i64; 4],
    version: i64,
}

impl<'a> IntentRow<'a> {
    fn new(ctx: &Ctx, intent: &'a PaymentIntent) -> Result<IntentRow<'a>, StoreError> {
        let currency = intent.amount.currency();
        for (field, money) in
            [("authorized", intent.authorized), ("captured", intent.captured), ("refunded", intent.refunded)]
        {
            if money.currency() != currency {
                return Err(ctx.err(
                    ErrorKind::InvalidRequest,
                    format!("`{field}` is in {}, but the intent's amount is in {currency}", money.currency()),
                ));
            }
        }
        Ok(IntentRow {
            intent,
            tenant: intent.tenant.as_str(),
            id: intent.id.as_str(),
            channel: intent.channel.as_str(),
            tender: name_of(ctx.op, &intent.tender)?,
            status: name_of(ctx.op, &intent.status)?,
            currency: intent.amount.currency().code().to_owned(),
            amounts: [
                intent.amount.minor(),
                intent.authorized.minor(),
                intent.captured.minor(),
                intent.refunded.minor(),
            ],
            version: to_bigint(ctx.op, "version", intent.version)?,
        })
    }

    /// The columns in [`INTENT_COLUMNS`] order ($1..$16).
    fn params(&self) -> [SqlParam<'_>; 16] {
        let i = self.intent;
        [
            &self.tenant,
            &self.id,
            &self.channel,
            &self.tender,
            &self.status,
            &self.currency,
            &self.amounts[0],
            &self.amounts[1],
            &self.amounts[2],
            &self.amounts[3],
            &i.provider,
            &i.provider_reference,
            &i.reference,
            &self.version,
            &i.created_at,
            &i.updated_at,
        ]
    }
}

/// An event's columns, in [`EVENT_COLUMNS`] order after tenant and intent id ($3..$11).
struct EventRow<'a> {
    event: &'a IntentEvent,
    sequence: i64,
    status: String,
    amount_minor: Option<i64>,
    amount_currency: Option<String>,
}

impl<'a> EventRow<'a> {
    fn new(ctx: &Ctx, event: &'a IntentEvent) -> Result<EventRow<'a>, StoreError> {
        Ok(EventRow {
            event,
            sequence: to_bigint(ctx.op, "sequence", event.sequence)?,
            status: name_of(ctx.op, &event.status)?,
            amount_minor: event.amount.as_ref().map(Money::minor),
            amount_currency: event.amount.as_ref().map(|m| m.currency().code().to_owned()),
        })
    }

    async fn insert(
        &self,
        ctx: &Ctx,
        tx: &deadpool_postgres::Transaction<'_>,
        sql: &str,
        tenant: &str,
        intent_id: &str,
    ) -> Result<(), StoreError> {
        let mut params: Vec<SqlParam<'_>> = vec![&tenant, &intent_id];
        params.extend(self.params());
        execute(ctx, tx, Phase::Uncommitted, "inserting into intent_events", sql, &params).await.map(drop)
    }

    /// The columns after tenant and intent id, in [`EVENT_COLUMNS`] order (sequence .. data).
    fn params(&self) -> [SqlParam<'_>; 9] {
        let e = self.event;
        [
            &self.sequence,
            &e.at,
            &e.operation,
            &self.status,
            &self.amount_minor,
            &self.amount_currency,
            &e.provider_reference,
            &e.detail,
            &e.data,
        ]
    }
}

/// Where an event's columns are in a row: under their own names, or, in the ledger's read that joins them
/// with the intent's, under `event_` names where the two clash.
#[derive(Clone, Copy)]
struct EventNames {
    status: &'static str,
    amount_minor: &'static str,
    provider_reference: &'static str,
}

const EVENT_OWN_NAMES: EventNames =
    EventNames { status: "status", amount_minor: "amount_minor", provider_reference: "provider_reference" };

const EVENT_JOINED_NAMES: EventNames = EventNames {
    status: "event_status",
    amount_minor: "event_amount_minor",
    provider_reference: "event_provider_reference",
};

fn intent_from_row(op: &'static str, row: &Row) -> Result<PaymentIntent, StoreError> {
    let r = RowReader::new(op, row, "payment_intents", &["tenant", "id"]);
    let currency = r.currency("currency")?;
    let mut intent = PaymentIntent::new(
        r.id("id", IntentId::new)?,
        r.id("tenant", TenantId::new)?,
        r.id("channel", ChannelId::new)?,
        r.name("tender")?,
        r.money("amount_minor", currency)?,
        r.get::<String>("provider")?,
        r.get::<String>("reference")?,
        r.get("created_at")?,
    );
    intent.status = r.name("status")?;
    intent.authorized = r.money("authorized_minor", currency)?;
    intent.captured = r.money("captured_minor", currency)?;
    intent.refunded = r.money("refunded_minor", currency)?;
    intent.provider_reference = r.get("provider_reference")?;
    intent.version = r.u64("version")?;
    intent.updated_at = r.get("updated_at")?;
    Ok(intent)
}

fn event_from_row(op: &'static str, row: &Row, names: EventNames) -> Result<IntentEvent, StoreError> {
    let r = RowReader::new(op, row, "intent_events", &["tenant", "intent_id"]);
    let mut event =
        IntentEvent::new(r.u64("sequence")?, r.get("at")?, r.get::<String>("operation")?, r.name(names.status)?);
    event.amount = r.optional_money(names.amount_minor, "amount_currency")?;
    event.provider_reference = r.get(names.provider_reference)?;
    event.detail = r.get("detail")?;
    event.data = r.get("data")?;
    Ok(event)
}

/// [`PaymentIntentStore`] on PostgreSQL.
#[derive(Debug)]
pub(crate) struct PgPaymentIntentStore {
    db: Arc<Db>,
}

impl PgPaymentIntentStore {
    pub(crate) fn new(db: Arc<Db>) -> PgPaymentIntentStore {
        PgPaymentIntentStore { db }
    }

    fn insert_event_sql(&self) -> String {
        self.db.sql(&format!(
            "INSERT INTO {{s}}.intent_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        ))
    }

    async fn list(
        &self,
        ctx: &Ctx,
        step: &str,
        sql: &str,
        params: &[SqlParam<'_>],
    ) -> Result<Vec<PaymentIntent>, StoreError> {
        let rows = self.db.rows(ctx, Phase::Read, step, sql, params).await?;
        rows.iter().map(|row| intent_from_row(ctx.op, row)).collect()
    }
}

#[async_trait]
impl PaymentIntentStore for PgPaymentIntentStore {
    async fn create(&self, intent: PaymentIntent, event: IntentEvent) -> Result<(), StoreError> {
        let ctx = Ctx::new("create", intent_subject(&intent.tenant, &intent.id));
        if intent.version != 1 || event.sequence != 1 {
            return Err(ctx.err(
                ErrorKind::InvalidRequest,
                format!(
                    "a new intent has version 1 and event sequence 1, got {} and {}",
                    intent.version, event.sequence
                ),
            ));
        }
        let row = IntentRow::new(&ctx, &intent)?;
        let event_row = EventRow::new(&ctx, &event)?;
        let insert = self.db.sql(&format!(
            "INSERT INTO {{s}}.payment_intents ({INTENT_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             ON CONFLICT (tenant, id) DO NOTHING"
        ));
        let insert_event = self.insert_event_sql();
        let mut client = self.db.client(&ctx).await?;
        let tx = self.db.begin(&ctx, &mut client).await?;
        self.db
            .timed(&ctx, Phase::Uncommitted, async {
                let n =
                    execute(&ctx, &tx, Phase::Uncommitted, "inserting into payment_intents", &insert, &row.params())
                        .await?;
                if n == 0 {
                    return Err(ctx.err(ErrorKind::AlreadyExists, "already exists"));
                }
                event_row.insert(&ctx, &tx, &insert_event, row.tenant, row.id).await
            })
            .await?;
        self.db.commit(&ctx, tx).await
    }

    async fn get(&self, tenant: &TenantId, id: &IntentId) -> Result<PaymentIntent, StoreError> {
        let ctx = Ctx::new("get", intent_subject(tenant, id));
        let sql =
            self.db.sql(&format!("SELECT {INTENT_COLUMNS} FROM {{s}}.payment_intents WHERE tenant = $1 AND id = $2"));
        let (tenant_s, id_s) = (tenant.as_str(), id.as_str());
        let row = self.db.row_opt(&ctx, Phase::Read, "reading payment_intents", &sql, &[&tenant_s, &id_s]).await?;
        match row {
            Some(row) => intent_from_row(ctx.op, &row),
            None => Err(ctx.err(ErrorKind::NotFound, "does not exist")),
        }
    }

    async fn update(&self, intent: PaymentIntent, expected_version: u64, event: IntentEvent) -> Result<(), StoreError> {
        let ctx = Ctx::new("update", intent_subject(&intent.tenant, &intent.id));
        let next =
            expected_version.checked_add(1).ok_or_else(|| ctx.err(ErrorKind::InvalidRequest, "version overflow"))?;
        if intent.version != next || event.sequence != next {
            return Err(ctx.err(
                ErrorKind::InvalidRequest,
                format!(
                    "updating from version {expected_version} needs intent version and event sequence {next}, got {} and {}",
                    intent.version, event.sequence
                ),
            ));
        }
        let row = IntentRow::new(&ctx, &intent)?;
        let event_row = EventRow::new(&ctx, &event)?;
        let expected = to_bigint(ctx.op, "expected_version", expected_version)?;
        let update = self.db.sql(
            "UPDATE {s}.payment_intents SET channel = $3, tender = $4, status = $5, currency = $6,
                 amount_minor = $7, authorized_minor = $8, captured_minor = $9, refunded_minor = $10,
                 provider = $11, provider_reference = $12, reference = $13, version = $14,
                 created_at = $15, updated_at = $16
             WHERE tenant = $1 AND id = $2 AND version = $17",
        );
        let current = self.db.sql("SELECT version FROM {s}.payment_intents WHERE tenant = $1 AND id = $2");
        let insert_event = self.insert_event_sql();
        let mut client = self.db.client(&ctx).await?;
        let tx = self.db.begin(&ctx, &mut client).await?;
        self.db
            .timed(&ctx, Phase::Uncommitted, async {
                let columns = row.params();
                let mut params: Vec<SqlParam<'_>> = columns.to_vec();
                params.push(&expected);
                let n = execute(&ctx, &tx, Phase::Uncommitted, "updating payment_intents", &update, &params).await?;
                if n == 0 {
                    let found =
                        query_opt(&ctx, &tx, Phase::Uncommitted, "reading payment_intents", &current, &params[..2])
                            .await?;
                    return Err(match found {
                        None => ctx.err(ErrorKind::NotFound, "does not exist"),
                        Some(found) => {
                            let version = RowReader::new(ctx.op, &found, "payment_intents", &[]).u64("version")?;
                            ctx.err(ErrorKind::Conflict, format!("is at version {version}, not {expected_version}"))
                        }
                    });
                }
                event_row.insert(&ctx, &tx, &insert_event, row.tenant, row.id).await
            })
            .await?;
        self.db.commit(&ctx, tx).await
    }

    async fn events(&self, tenant: &TenantId, id: &IntentId) -> Result<Vec<IntentEvent>, StoreError> {
        let ctx = Ctx::new("events", intent_subject(tenant, id));
        let sql = self.db.sql(&format!(
            "SELECT {EVENT_COLUMNS} FROM {{s}}.intent_events WHERE tenant = $1 AND intent_id = $2 ORDER BY sequence"
        ));
        let (tenant_s, id_s) = (tenant.as_str(), id.as_str());
        let rows = self.db.rows(&ctx, Phase::Read, "reading intent_events", &sql, &[&tenant_s, &id_s]).await?;
        if rows.is_empty() {
            // Every intent is created with its first event, so no events means no intent.
            return Err(ctx.err(ErrorKind::NotFound, "does not exist"));
        }
        rows.iter().map(|row| event_from_row(ctx.op, row, EVENT_OWN_NAMES)).collect()
    }

    async fn find_by_provider_reference(
        &self,
        tenant: &TenantId,
        provider: &str,
        reference: &str,
    ) -> Result<Option<PaymentIntent>, StoreError> {
        let ctx = Ctx::new(
            "find_by_provider_reference",
            format!("provider reference `{reference}` of `{provider}` for tenant `{tenant}`"),
        );
        let sql = self.db.sql(&format!(
            "SELECT {INTENT_COLUMNS} FROM {{s}}.payment_intents
             WHERE tenant = $1 AND provider = $2 AND provider_reference = $3
             ORDER BY created_at, id LIMIT 1"
        ));
        let tenant_s = tenant.as_str();
        let found = self.list(&ctx, "reading payment_intents", &sql, &[&tenant_s, &provider, &reference]).await?;
        Ok(found.into_iter().next())
    }

    async fn find_by_reference(&self, tenant: &TenantId, reference: &str) -> Result<Vec<PaymentIntent>, StoreError> {
        let ctx = Ctx::new("find_by_reference", format!("reference `{reference}` for tenant `{tenant}`"));
        let sql = self.db.sql(&format!(
            "SELECT {INTENT_COLUMNS} FROM {{s}}.payment_intents
             WHERE tenant = $1 AND reference = $2 ORDER BY created_at, id"
        ));
        let tenant_s = tenant.as_str();
        self.list(&ctx, "reading payment_intents", &sql, &[&tenant_s, &reference]).await
    }

    async fn list_by_status(
        &self,
        tenant: &TenantId,
        status: IntentStatus,
        limit: u32,
    ) -> Result<Vec<PaymentIntent>, StoreError> {
        let ctx = Ctx::new("list_by_status", format!("{} intents of tenant `{tenant}`", status.as_str()));
        let sql = self.db.sql(&format!(
            "SELECT {INTENT_COLUMNS} FROM {{s}}.payment_intents
             WHERE tenant = $1 AND status = $2 ORDER BY updated_at, id LIMIT $3"
        ));
        let (tenant_s, status_s, limit) = (tenant.as_str(), name_of(ctx.op, &status)?, i64::from(limit));
        self.list(&ctx, "reading payment_intents", &sql, &[&tenant_s, &status_s, &limit]).await
    }

    async fn list_by_status_after(
        &self,
        tenant: &TenantId,
        status: IntentStatus,
        after: Option<IntentCursor>,
        limit: u32,
    ) -> Result<Vec<PaymentIntent>, StoreError> {
        let subject = match &after {
            Some(cursor) => format!("{} intents of tenant `{tenant}` after intent `{}`", status.as_str(), cursor.id),
            None => format!("{} intents of tenant `{tenant}`", status.as_str()),
        };
        let ctx = Ctx::new("list_by_status_after", subject);
        if limit == 0 {
            return Ok(Vec::new());
        }
        let Some(after) = after else {
            return self.list_by_status(tenant, status, limit).await;
        };
        let (tenant_s, status_s, limit) = (tenant.as_str(), name_of(ctx.op, &status)?, i64::from(limit));
        // A range of `payment_intents_by_status` (tenant, status, updated_at, id). The cursor's time is bound
        // as `updated_at` is written (the same `TIMESTAMPTZ` conversion, to microseconds), so a cursor made from
        // a listed intent compares equal to its row.
        let sql = self.db.sql(&format!(
            "SELECT {INTENT_COLUMNS} FROM {{s}}.payment_intents
             WHERE tenant = $1 AND status = $2 AND (updated_at, id) > ($3, $4)
             ORDER BY updated_at, id LIMIT $5"
        ));
        let after_id = after.id.as_str();
        let params: [SqlParam<'_>; 5] = [&tenant_s, &status_s, &after.updated_at, &after_id, &limit];
        self.list(&ctx, "reading payment_intents", &sql, &params).await
    }
}

// ---------------------------------------------------------------------------------------------------------
// Payment ledger

/// [`PaymentLedger`] on the idempotency and intent tables: one statement (and one round trip) per call on
/// the usual paths.
///
/// - `claim` is one statement: `begin`'s `INSERT ... ON CONFLICT DO UPDATE ... WHERE` as a data-modifying
///   CTE; when `create` is given, the intent (`INSERT ... SELECT ... WHERE EXISTS (claim) ON CONFLICT DO
///   NOTHING`) and its first event inserted from it, so claim and creation commit together or not at all;
///   and, only if the key was claimed, a read of the intent joined with its events. It also evaluates
///   `set_config('synchronous_commit', 'off', true)`, so its implicit transaction commits without waiting
///   for the WAL flush: the port allows a claim to become durable with the next commit, and the operation's
///   `commit` (a synchronous commit on the same server, whose WAL comes after the claim's) flushes it.
///
///   The read sees the statement's snapshot: an intent this statement created is answered from `create`
///   itself; an older one as of the statement's start (a change committed concurrently is caught by the
///   version check of `commit`, like any later change). Only when the key was not claimed (its record is then
///   read afterwards for `begin`'s answer, claiming again if it was released in between), or when `create`
///   found an intent the snapshot does not show, a second statement reads again.
/// - `commit` with an update is one statement: it locks the uncompleted key row (`FOR UPDATE`), updates
///   the intent only if that lock was taken and the version matches, appends the event from the updated
///   row, and resolves the key only if the intent was updated, answering the three counts. Under READ
///   COMMITTED a concurrent change of the key or the intent makes the lock or the update re-check its
///   condition on the latest row version, so a stale version or a key completed meanwhile changes
///   nothing. Errors are told apart by a read afterwards, only on those paths. Without an update it is
///   `complete` or `release`.
/// - `commit` with an update that creates the intent ([`IntentUpdate::created`]) is one statement too: it
///   locks the uncompleted key row, inserts the intent with its final (version 2) values only if that lock
///   was taken (`INSERT ... SELECT ... WHERE EXISTS (lock) ON CONFLICT DO NOTHING RETURNING`), inserts both
///   events from the inserted row, and resolves the key only if the intent was inserted. An intent that
///   exists already (even one committed after the statement's snapshot: the conflict check sees it) inserts
///   nothing, so nothing changes and the answer is `AlreadyExists`. The created version 1 is not stored as a
///   row version; it is checked against the update (same immutable fields) and its event is stored.
///
/// Locks are taken in one order, key row then intent row, and no other statement holds an intent row while
/// waiting for a key row, so ledger calls, `begin`/`complete`/`release` and `PaymentIntentStore::update`
/// cannot deadlock one another.
#[derive(Debug)]
pub(crate) struct PgPaymentLedger {
    db: Arc<Db>,
    claim_sql: String,
    claim_create_sql: String,
    read_sql: String,
    commit_complete_sql: String,
    commit_release_sql: String,
    commit_create_complete_sql: String,
    commit_create_release_sql: String,
    key_state_sql: String,
    version_sql: String,
    release_sql: String,
}

/// The key claim shared by both claim statements ($1 tenant, $2 key, $3 operation, $4 fingerprint,
/// $5 lease_until, $6 now; $7 is the intent id).
const CLAIM_CTE: &str = "claim AS (
    INSERT INTO {s}.idempotency_records AS r (tenant, key, operation, fingerprint, lease_until, claimed_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (tenant, key) DO UPDATE
        SET lease_until = EXCLUDED.lease_until, takeovers = r.takeovers + 1
        WHERE r.response IS NULL AND r.lease_until <= $6
          AND r.operation = EXCLUDED.operation AND r.fingerprint = EXCLUDED.fingerprint
    RETURNING takeovers
)";

/// The intent's and its events' columns in one row; event columns that clash with the intent's are
/// renamed (see [`EVENT_JOINED_NAMES`]).
const JOINED_COLUMNS: &str = "i.tenant, i.id, i.channel, i.tender, i.status, i.currency, i.amount_minor,
    i.authorized_minor, i.captured_minor, i.refunded_minor, i.provider, i.provider_reference, i.reference,
    i.version, i.created_at, i.updated_at,
    e.intent_id, e.sequence, e.at, e.operation, e.status AS event_status, e.amount_minor AS event_amount_minor,
    e.amount_currency, e.provider_reference AS event_provider_reference, e.detail, e.data";

/// The claim statement's answer, after the CTEs (`{created}`: how many intents it created): one row per
/// event of the intent, or one row with null intent columns; `takeovers` null when the key was not claimed.
/// `set_config` is an output column, so it is evaluated; the intent is read only if the key was claimed.
const CLAIM_SELECT: &str = "SELECT one.sync, (SELECT takeovers FROM claim) AS takeovers, {created} AS created,
    {joined}
FROM (SELECT set_config('synchronous_commit', 'off', true) AS sync) AS one
LEFT JOIN {s}.payment_intents i ON i.tenant = $1 AND i.id = $7 AND EXISTS (SELECT 1 FROM claim)
LEFT JOIN {s}.intent_events e ON e.tenant = i.tenant AND e.intent_id = i.id
ORDER BY e.sequence";

/// The `{resolve}` statement of a commit: complete (`response = $tenant+2`) or release the uncompleted key
/// row (`tenant = $tenant`, `key = $tenant+1`), only when the CTE `after` produced a row.
fn resolve_key(complete: bool, tenant: u32, after: &str) -> String {
    let (key, response) = (tenant + 1, tenant + 2);
    let target = format!(
        "WHERE tenant = ${tenant} AND key = ${key} AND response IS NULL AND EXISTS (SELECT 1 FROM {after})
             RETURNING 1"
    );
    if complete {
        format!("UPDATE {{s}}.idempotency_records SET response = ${response}\n             {target}")
    } else {
        format!("DELETE FROM {{s}}.idempotency_records\n             {target}")
    }
}

/// Commit with an update: $1..$16 the intent's columns ([`INTENT_COLUMNS`] order), $17 the expected
/// version, $18..$26 the event's columns after tenant and intent id, $27 the key's tenant, $28 the key;
/// `{resolve}` is the statement that resolves the key (only `WHERE ... AND EXISTS (SELECT 1 FROM u)`).
/// `guard` makes the statement fail (and roll back) should the intent ever be updated without the key
/// being resolved, which the key row's lock rules out.
const COMMIT_TEMPLATE: &str = "WITH k0 AS (
    SELECT 1 FROM {s}.idempotency_records
    WHERE tenant = $27 AND key = $28 AND response IS NULL
    FOR UPDATE
),
u AS (
    UPDATE {s}.payment_intents SET channel = $3, tender = $4, status = $5, currency = $6,
        amount_minor = $7, authorized_minor = $8, captured_minor = $9, refunded_minor = $10,
        provider = $11, provider_reference = $12, reference = $13, version = $14,
        created_at = $15, updated_at = $16
    WHERE tenant = $1 AND id = $2 AND version = $17 AND EXISTS (SELECT 1 FROM k0)
    RETURNING tenant, id
),
e AS (
    INSERT INTO {s}.intent_events (tenant, intent_id, sequence, at, operation, status, amount_minor,
        amount_currency, provider_reference, detail, data)
    SELECT u.tenant, u.id, $18::bigint, $19::timestamptz, $20::text, $21::text, $22::bigint, $23::text,
        $24::text, $25::text, $26::text
    FROM u
),
k AS ({resolve}),
n AS (
    SELECT (SELECT count(*) FROM k0) AS locked, (SELECT count(*) FROM u) AS updated,
        (SELECT count(*) FROM k) AS resolved
)
SELECT locked, updated, resolved,
    CAST(CASE WHEN updated = resolved THEN NULL
        ELSE 'commit: intent updated but key not resolved; rolled back' END AS integer) AS guard
FROM n";

/// Commit that creates the intent with its update: $1..$16 the intent's final columns ([`INTENT_COLUMNS`]
/// order, version 2), $17..$25 the first event's columns after tenant and intent id (sequence 1),
/// $26..$34 the second event's (sequence 2), $35 the key's tenant, $36 the key; `{resolve}` is the statement
/// that resolves the key (only `WHERE ... AND EXISTS (SELECT 1 FROM c)`). The intent is inserted only if the
/// key row was locked, and `ON CONFLICT DO NOTHING` leaves an existing one alone: then `c` is empty, so
/// neither event is inserted nor the key resolved, and the statement changes nothing. `guard` makes the
/// statement fail (and roll back) should the intent ever be created without both events or without the key
/// being resolved.
const COMMIT_CREATE_TEMPLATE: &str = "WITH k0 AS (
    SELECT 1 FROM {s}.idempotency_records
    WHERE tenant = $35 AND key = $36 AND response IS NULL
    FOR UPDATE
),
c AS (
    INSERT INTO {s}.payment_intents ({intent_columns})
    SELECT $1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::bigint, $8::bigint, $9::bigint,
        $10::bigint, $11::text, $12::text, $13::text, $14::bigint, $15::timestamptz, $16::timestamptz
    WHERE EXISTS (SELECT 1 FROM k0)
    ON CONFLICT (tenant, id) DO NOTHING
    RETURNING tenant, id
),
e AS (
    INSERT INTO {s}.intent_events ({event_columns})
    SELECT c.tenant, c.id, $17::bigint, $18::timestamptz, $19::text, $20::text, $21::bigint, $22::text,
        $23::text, $24::text, $25::text
    FROM c
    UNION ALL
    SELECT c.tenant, c.id, $26::bigint, $27::timestamptz, $28::text, $29::text, $30::bigint, $31::text,
        $32::text, $33::text, $34::text
    FROM c
    RETURNING 1
),
k AS ({resolve}),
n AS (
    SELECT (SELECT count(*) FROM k0) AS locked, (SELECT count(*) FROM c) AS created,
        (SELECT count(*) FROM e) AS inserted, (SELECT count(*) FROM k) AS resolved
)
SELECT locked, created, resolved,
    CAST(CASE WHEN created = resolved AND inserted = 2 * created THEN NULL
        ELSE 'commit: intent created but events or key resolution missing; rolled back' END AS integer) AS guard
FROM n";

impl PgPaymentLedger {
    pub(crate) fn new(db: Arc<Db>) -> PgPaymentLedger {
        let select = |created: &str| CLAIM_SELECT.replace("{created}", created).replace("{joined}", JOINED_COLUMNS);
        let claim_sql = db.sql(&format!("WITH {CLAIM_CTE} {}", select("0::bigint")));
        // $8..$21 the intent's columns after tenant and id, $22..$30 the event's after tenant and intent id.
        let claim_create_sql = db.sql(&format!(
            "WITH {CLAIM_CTE},
             created AS (
                 INSERT INTO {{s}}.payment_intents ({INTENT_COLUMNS})
                 SELECT $1, $7::text, $8::text, $9::text, $10::text, $11::text, $12::bigint, $13::bigint,
                     $14::bigint, $15::bigint, $16::text, $17::text, $18::text, $19::bigint, $20::timestamptz,
                     $21::timestamptz
                 WHERE EXISTS (SELECT 1 FROM claim)
                 ON CONFLICT (tenant, id) DO NOTHING
                 RETURNING tenant, id
             ),
             first_event AS (
                 INSERT INTO {{s}}.intent_events ({EVENT_COLUMNS})
                 SELECT c.tenant, c.id, $22::bigint, $23::timestamptz, $24::text, $25::text, $26::bigint,
                     $27::text, $28::text, $29::text, $30::text
                 FROM created c
             )
             {}",
            select("(SELECT count(*) FROM created)")
        ));
        let read_sql = db.sql(&format!(
            "SELECT r.key IS NOT NULL AS key_found, r.operation AS key_operation,
                 r.fingerprint AS key_fingerprint, r.response AS key_response, {JOINED_COLUMNS}
             FROM (SELECT 1) AS one
             LEFT JOIN {{s}}.idempotency_records r ON r.tenant = $1 AND r.key = $2
             LEFT JOIN {{s}}.payment_intents i ON i.tenant = $1 AND i.id = $3
             LEFT JOIN {{s}}.intent_events e ON e.tenant = i.tenant AND e.intent_id = i.id
             ORDER BY e.sequence"
        ));
        let commit_complete_sql = db.sql(&COMMIT_TEMPLATE.replace("{resolve}", &resolve_key(true, 27, "u")));
        let commit_release_sql = db.sql(&COMMIT_TEMPLATE.replace("{resolve}", &resolve_key(false, 27, "u")));
        let create_template = COMMIT_CREATE_TEMPLATE
            .replace("{intent_columns}", INTENT_COLUMNS)
            .replace("{event_columns}", EVENT_COLUMNS);
        let commit_create_complete_sql = db.sql(&create_template.replace("{resolve}", &resolve_key(true, 35, "c")));
        let commit_create_release_sql = db.sql(&create_template.replace("{resolve}", &resolve_key(false, 35, "c")));
        let key_state_sql = db.sql(
            "SELECT response IS NOT NULL AS completed FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2",
        );
        let version_sql = db.sql("SELECT version FROM {s}.payment_intents WHERE tenant = $1 AND id = $2");
        let release_sql =
            db.sql("DELETE FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2 AND response IS NULL");
        PgPaymentLedger {
            db,
            claim_sql,
            claim_create_sql,
            read_sql,
            commit_complete_sql,
            commit_release_sql,
            commit_create_complete_sql,
            commit_create_release_sql,
            key_state_sql,
            version_sql,
            release_sql,
        }
    }
}

/// The intent and its events from a joined read (intent columns null: no such intent, or not read).
fn snapshot_from_rows(op: &'static str, rows: &[Row]) -> Result<Option<IntentSnapshot>, StoreError> {
    let Some(first) = rows.first() else { return Ok(None) };
    if RowReader::new(op, first, "payment_intents", &[]).get::<Option<String>>("id")?.is_none() {
        return Ok(None);
    }
    let intent = intent_from_row(op, first)?;
    let mut history = Vec::with_capacity(rows.len());
    for row in rows {
        if RowReader::new(op, row, "intent_events", &[]).get::<Option<i64>>("sequence")?.is_some() {
            history.push(event_from_row(op, row, EVENT_JOINED_NAMES)?);
        }
    }
    Ok(Some(IntentSnapshot::new(intent, history)))
}

#[async_trait]
impl PaymentLedger for PgPaymentLedger {
    async fn claim(
        &self,
        tenant: &TenantId,
        key: &IdempotencyKey,
        claim: IdempotencyClaim,
        intent: &IntentId,
        create: Option<(PaymentIntent, IntentEvent)>,
    ) -> Result<LedgerClaim, StoreError> {
        let ctx = Ctx::new("claim", key_subject(tenant, key));
        check_ledger_create(tenant, intent, create.as_ref())?;
        let created = match &create {
            Some((new, event)) => Some((IntentRow::new(&ctx, new)?, EventRow::new(&ctx, event)?)),
            None => None,
        };
        let (tenant_s, key_s, id_s) = (tenant.as_str(), key.as_str(), intent.as_str());
        let mut claim_params: Vec<SqlParam<'_>> =
            vec![&tenant_s, &key_s, &claim.operation, &claim.fingerprint, &claim.lease_until, &claim.now, &id_s];
        let claim_sql = match &created {
            Some((row, event)) => {
                claim_params.extend_from_slice(&row.params()[2..]);
                claim_params.extend(event.params());
                &self.claim_create_sql
            }
            None => &self.claim_sql,
        };
        let read_params: [SqlParam<'_>; 3] = [&tenant_s, &key_s, &id_s];
        let client = self.db.client(&ctx).await?;
        self.db
            .timed(&ctx, Phase::Autocommit, async {
                for _ in 0..BEGIN_ATTEMPTS {
                    let rows = query(
                        &ctx,
                        &*client,
                        Phase::Autocommit,
                        "claiming in idempotency_records",
                        claim_sql,
                        &claim_params,
                    )
                    .await?;
                    let first =
                        rows.first().ok_or_else(|| ctx.err(ErrorKind::Unexpected, "the claim answered no row"))?;
                    let r = RowReader::new(ctx.op, first, "idempotency_records", &[]);
                    let (takeovers, created_n): (Option<i64>, i64) = (r.get("takeovers")?, r.get("created")?);
                    if let Some(takeovers) = takeovers {
                        let begin = IdempotencyBegin::Started { recovered: takeovers > 0 };
                        if created_n > 0
                            && let Some((new, event)) = &create
                        {
                            return Ok(LedgerClaim::new(
                                begin,
                                Some(IntentSnapshot::new(new.clone(), vec![event.clone()])),
                            ));
                        }
                        let mut snapshot = snapshot_from_rows(ctx.op, &rows);
                        if matches!(snapshot, Ok(None)) && create.is_some() {
                            // `create` met an intent committed after this statement's snapshot: read it now.
                            snapshot = query(
                                &ctx,
                                &*client,
                                Phase::Read,
                                "reading payment_intents",
                                &self.read_sql,
                                &read_params,
                            )
                            .await
                            .and_then(|rows| snapshot_from_rows(ctx.op, &rows));
                        }
                        return match snapshot {
                            Ok(snapshot) => Ok(LedgerClaim::new(begin, snapshot)),
                            Err(e) => {
                                // Nothing happened under the key yet: give it back so a retry can run (if this
                                // fails too, the lease expires).
                                let _ = execute(
                                    &ctx,
                                    &*client,
                                    Phase::Autocommit,
                                    "releasing in idempotency_records",
                                    &self.release_sql,
                                    &read_params[..2],
                                )
                                .await;
                                Err(e)
                            }
                        };
                    }
                    let rows =
                        query(&ctx, &*client, Phase::Read, "reading idempotency_records", &self.read_sql, &read_params)
                            .await?;
                    let Some(row) = rows.first() else { continue };
                    let r = RowReader::new(ctx.op, row, "idempotency_records", &[]);
                    if !r.get::<bool>("key_found")? {
                        continue; // Released in between: claim again.
                    }
                    let begin = existing_answer(&claim, &r, ["key_operation", "key_fingerprint", "key_response"])?;
                    return Ok(LedgerClaim::new(begin, None));
                }
                Err(released_too_often(&ctx))
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
        let ctx = Ctx::new("commit", key_subject(tenant, key));
        check_ledger_update(tenant, update.as_ref())?;
        let Some(IntentUpdate { intent, expected_version, event, created, .. }) = update else {
            return match resolution {
                KeyResolution::Complete(response) => complete_key(&self.db, &ctx, tenant, key, &response).await,
                KeyResolution::Release => release_key(&self.db, &ctx, tenant, key).await,
                other => Err(ctx.err(ErrorKind::Unsupported, format!("unknown key resolution {other:?}"))),
            };
        };
        let intent_ctx = Ctx::new("commit", intent_subject(&intent.tenant, &intent.id));
        let next = expected_version
            .checked_add(1)
            .ok_or_else(|| intent_ctx.err(ErrorKind::InvalidRequest, "version overflow"))?;
        if intent.version != next || event.sequence != next {
            return Err(intent_ctx.err(
                ErrorKind::InvalidRequest,
                format!(
                    "updating from version {expected_version} needs intent version and event sequence {next}, got {} and {}",
                    intent.version, event.sequence
                ),
            ));
        }
        let row = IntentRow::new(&intent_ctx, &intent)?;
        let event_row = EventRow::new(&intent_ctx, &event)?;
        let first_row = match &created {
            // `check_ledger_update` checked the creation against the update; only its event is stored.
            Some((_, first)) => Some(EventRow::new(&intent_ctx, first)?),
            None => None,
        };
        let expected = to_bigint(ctx.op, "expected_version", expected_version)?;
        let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
        let mut params: Vec<SqlParam<'_>> = row.params().to_vec();
        match &first_row {
            // The creation inserts the final intent; `expected` (1) is implied.
            Some(first_row) => params.extend(first_row.params()),
            None => params.push(&expected),
        }
        params.extend(event_row.params());
        params.push(&tenant_s);
        params.push(&key_s);
        let creating = first_row.is_some();
        let sql = match (&resolution, creating) {
            (KeyResolution::Complete(response), _) => {
                params.push(response);
                if creating { &self.commit_create_complete_sql } else { &self.commit_complete_sql }
            }
            (KeyResolution::Release, true) => &self.commit_create_release_sql,
            (KeyResolution::Release, false) => &self.commit_release_sql,
            (other, _) => return Err(ctx.err(ErrorKind::Unsupported, format!("unknown key resolution {other:?}"))),
        };
        // The second count: intents updated, or (creating) inserted.
        let written = if creating { "created" } else { "updated" };
        let client = self.db.client(&ctx).await?;
        self.db
            .timed(&ctx, Phase::Autocommit, async {
                let counts = query(&ctx, &*client, Phase::Autocommit, "committing intent and key", sql, &params)
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(|| ctx.err(ErrorKind::Unexpected, "the commit statement answered no row"))?;
                let r = RowReader::new(ctx.op, &counts, "payment_intents", &[]);
                let (locked, updated, resolved): (i64, i64, i64) =
                    (r.get("locked")?, r.get(written)?, r.get("resolved")?);
                match (locked, updated, resolved) {
                    (1, 1, 1) => Ok(()),
                    (0, _, _) => {
                        let found = query_opt(
                            &ctx,
                            &*client,
                            Phase::Read,
                            "reading idempotency_records",
                            &self.key_state_sql,
                            &[&tenant_s, &key_s],
                        )
                        .await?;
                        let completed = match found {
                            Some(row) => RowReader::new(ctx.op, &row, "idempotency_records", &[]).get("completed")?,
                            None => false,
                        };
                        Err(if completed {
                            ctx.err(ErrorKind::InvalidState, "is already completed; its first response stands")
                        } else {
                            ctx.err(ErrorKind::NotFound, "has no uncompleted idempotency record")
                        })
                    }
                    // The key row was locked but the intent is there already: nothing was written.
                    (1, 0, 0) if creating => Err(intent_ctx.err(ErrorKind::AlreadyExists, "exists already")),
                    (1, 0, 0) => {
                        let found = query_opt(
                            &intent_ctx,
                            &*client,
                            Phase::Read,
                            "reading payment_intents",
                            &self.version_sql,
                            &params[..2],
                        )
                        .await?;
                        Err(match found {
                            None => intent_ctx.err(ErrorKind::NotFound, "does not exist"),
                            Some(found) => {
                                let version = RowReader::new(ctx.op, &found, "payment_intents", &[]).u64("version")?;
                                intent_ctx.err(
                                    ErrorKind::Conflict,
                                    format!("is at version {version}, not {expected_version}"),
                                )
                            }
                        })
                    }
                    other => Err(ctx.err(ErrorKind::Unexpected, format!("the commit statement counted {other:?}"))),
                }
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------------------

/// [`WebhookEventStore`] on PostgreSQL.
#[derive(Debug)]
pub(crate) struct PgWebhookEventStore {
    db: Arc<Db>,
}

impl PgWebhookEventStore {
    pub(crate) fn new(db: Arc<Db>) -> PgWebhookEventStore {
        PgWebhookEventStore { db }
    }
}

#[async_trait]
impl WebhookEventStore for PgWebhookEventStore {
    async fn record(
        &self,
        tenant: &TenantId,
        provider: &str,
        event_id: &str,
        received_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let ctx = Ctx::new("record", format!("webhook event `{event_id}` of `{provider}` for tenant `{tenant}`"));
        let sql = self.db.sql(
            "INSERT INTO {s}.webhook_events (tenant, provider, event_id, received_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, provider, event_id) DO NOTHING",
        );
        let tenant = tenant.as_str();
        let n = self
            .db
            .affected(
                &ctx,
                Phase::Autocommit,
                "inserting into webhook_events",
                &sql,
                &[&tenant, &provider, &event_id, &received_at],
            )
            .await?;
        Ok(n == 1)
    }

    async fn contains(&self, tenant: &TenantId, provider: &str, event_id: &str) -> Result<bool, StoreError> {
        let ctx = Ctx::new("contains", format!("webhook event `{event_id}` of `{provider}` for tenant `{tenant}`"));
        let sql = self.db.sql("SELECT 1 FROM {s}.webhook_events WHERE tenant = $1 AND provider = $2 AND event_id = $3");
        let tenant = tenant.as_str();
        let found = self
            .db
            .row_opt(&ctx, Phase::Read, "reading webhook_events", &sql, &[&tenant, &provider, &event_id])
            .await?;
        Ok(found.is_some())
    }
}
