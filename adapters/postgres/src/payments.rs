//! Idempotency records, payment intents with their events, and processed webhook ids.
//!
//! - `IdempotencyStore::begin` is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE` statement: the insert
//!   claims a new key; the conditional update takes over an expired, uncompleted lease with the same
//!   operation and fingerprint. PostgreSQL locks the conflicting row and re-checks the condition on its
//!   latest version, so of many concurrent callers (on any number of instances) exactly one gets `Started`.
//! - Intents are written in a transaction with their event; `update` is `UPDATE ... WHERE version = $n`.
//! - Webhook ids are `INSERT ... ON CONFLICT DO NOTHING`; the affected-row count says whether it was new.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::stores::{
    IdempotencyBegin, IdempotencyClaim, IdempotencyRecord, IdempotencyStore, IntentEvent, IntentStatus, PaymentIntent,
    PaymentIntentStore, WebhookEventStore,
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
            "INSERT INTO {s}.idempotency_records AS r (tenant, key, operation, fingerprint, lease_until)
             VALUES ($1, $2, $3, $4, $5)
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
                    let operation: String = r.get("operation")?;
                    let fingerprint: String = r.get("fingerprint")?;
                    if operation != claim.operation || fingerprint != claim.fingerprint {
                        return Ok(IdempotencyBegin::Conflict { operation });
                    }
                    return Ok(match r.get::<Option<Vec<u8>>>("response")? {
                        Some(response) => IdempotencyBegin::Completed(response),
                        None => IdempotencyBegin::InProgress,
                    });
                }
                Err(ctx.err(
                    ErrorKind::Conflict,
                    format!("the record was released and claimed again {BEGIN_ATTEMPTS} times during this call"),
                ))
            })
            .await
    }

    async fn complete(&self, tenant: &TenantId, key: &IdempotencyKey, response: Vec<u8>) -> Result<(), StoreError> {
        let ctx = Ctx::new("complete", key_subject(tenant, key));
        let client = self.db.client(&ctx).await?;
        let update = self.db.sql(
            "UPDATE {s}.idempotency_records SET response = $3
             WHERE tenant = $1 AND key = $2 AND response IS NULL",
        );
        let exists = self.db.sql("SELECT 1 FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2");
        let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
        self.db
            .timed(&ctx, Phase::Autocommit, async {
                let params: [SqlParam<'_>; 3] = [&tenant_s, &key_s, &response];
                let n = execute(&ctx, &*client, Phase::Autocommit, "updating idempotency_records", &update, &params)
                    .await?;
                if n == 1 {
                    return Ok(());
                }
                let found =
                    query_opt(&ctx, &*client, Phase::Read, "reading idempotency_records", &exists, &params[..2])
                        .await?;
                Err(match found {
                    Some(_) => ctx.err(ErrorKind::InvalidState, "is already completed; its first response stands"),
                    None => ctx.err(ErrorKind::NotFound, "has no idempotency record"),
                })
            })
            .await
    }

    async fn release(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<(), StoreError> {
        let ctx = Ctx::new("release", key_subject(tenant, key));
        let client = self.db.client(&ctx).await?;
        let delete =
            self.db.sql("DELETE FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2 AND response IS NULL");
        let completed = self
            .db
            .sql("SELECT 1 FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2 AND response IS NOT NULL");
        let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
        self.db
            .timed(&ctx, Phase::Autocommit, async {
                let params: [SqlParam<'_>; 2] = [&tenant_s, &key_s];
                let n =
                    execute(&ctx, &*client, Phase::Autocommit, "deleting from idempotency_records", &delete, &params)
                        .await?;
                if n == 0
                    && query_opt(&ctx, &*client, Phase::Read, "reading idempotency_records", &completed, &params)
                        .await?
                        .is_some()
                {
                    return Err(ctx.err(ErrorKind::InvalidState, "is completed and cannot be released"));
                }
                Ok(())
            })
            .await
    }

    async fn get(&self, tenant: &TenantId, key: &IdempotencyKey) -> Result<Option<IdempotencyRecord>, StoreError> {
        let ctx = Ctx::new("get", key_subject(tenant, key));
        let client = self.db.client(&ctx).await?;
        let sql = self.db.sql(
            "SELECT tenant, key, operation, fingerprint, response, lease_until
             FROM {s}.idempotency_records WHERE tenant = $1 AND key = $2",
        );
        let (tenant_s, key_s) = (tenant.as_str(), key.as_str());
        let row = self
            .db
            .timed(
                &ctx,
                Phase::Read,
                query_opt(&ctx, &*client, Phase::Read, "reading idempotency_records", &sql, &[&tenant_s, &key_s]),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let r = RowReader::new(ctx.op, &row, "idempotency_records", &["tenant", "key"]);
        let lease_until: OffsetDateTime = r.get("lease_until")?;
        let mut record = IdempotencyRecord::started(IdempotencyClaim::new(
            r.get::<String>("operation")?,
            r.get::<String>("fingerprint")?,
            lease_until,
            lease_until,
        ));
        record.response = r.get("response")?;
        Ok(Some(record))
    }
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
        let e = self.event;
        let params: [SqlParam<'_>; 11] = [
            &tenant,
            &intent_id,
            &self.sequence,
            &e.at,
            &e.operation,
            &self.status,
            &self.amount_minor,
            &self.amount_currency,
            &e.provider_reference,
            &e.detail,
            &e.data,
        ];
        execute(ctx, tx, Phase::Uncommitted, "inserting into intent_events", sql, &params).await.map(drop)
    }
}

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

fn event_from_row(op: &'static str, row: &Row) -> Result<IntentEvent, StoreError> {
    let r = RowReader::new(op, row, "intent_events", &["tenant", "intent_id"]);
    let mut event =
        IntentEvent::new(r.u64("sequence")?, r.get("at")?, r.get::<String>("operation")?, r.name("status")?);
    event.amount = r.optional_money("amount_minor", "amount_currency")?;
    event.provider_reference = r.get("provider_reference")?;
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
        let client = self.db.client(ctx).await?;
        let rows = self.db.timed(ctx, Phase::Read, query(ctx, &*client, Phase::Read, step, sql, params)).await?;
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
        let client = self.db.client(&ctx).await?;
        let (tenant_s, id_s) = (tenant.as_str(), id.as_str());
        let row = self
            .db
            .timed(
                &ctx,
                Phase::Read,
                query_opt(&ctx, &*client, Phase::Read, "reading payment_intents", &sql, &[&tenant_s, &id_s]),
            )
            .await?;
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
        let client = self.db.client(&ctx).await?;
        let (tenant_s, id_s) = (tenant.as_str(), id.as_str());
        let rows = self
            .db
            .timed(
                &ctx,
                Phase::Read,
                query(&ctx, &*client, Phase::Read, "reading intent_events", &sql, &[&tenant_s, &id_s]),
            )
            .await?;
        if rows.is_empty() {
            // Every intent is created with its first event, so no events means no intent.
            return Err(ctx.err(ErrorKind::NotFound, "does not exist"));
        }
        rows.iter().map(|row| event_from_row(ctx.op, row)).collect()
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
        let client = self.db.client(&ctx).await?;
        let n = self
            .db
            .timed(
                &ctx,
                Phase::Autocommit,
                execute(
                    &ctx,
                    &*client,
                    Phase::Autocommit,
                    "inserting into webhook_events",
                    &sql,
                    &[&tenant, &provider, &event_id, &received_at],
                ),
            )
            .await?;
        Ok(n == 1)
    }

    async fn contains(&self, tenant: &TenantId, provider: &str, event_id: &str) -> Result<bool, StoreError> {
        let ctx = Ctx::new("contains", format!("webhook event `{event_id}` of `{provider}` for tenant `{tenant}`"));
        let sql = self.db.sql("SELECT 1 FROM {s}.webhook_events WHERE tenant = $1 AND provider = $2 AND event_id = $3");
        let tenant = tenant.as_str();
        let client = self.db.client(&ctx).await?;
        let found = self
            .db
            .timed(
                &ctx,
                Phase::Read,
                query_opt(
                    &ctx,
                    &*client,
                    Phase::Read,
                    "reading webhook_events",
                    &sql,
                    &[&tenant, &provider, &event_id],
                ),
            )
            .await?;
        Ok(found.is_some())
    }
}
