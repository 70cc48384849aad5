//! Embedded migrations, run on connect inside one transaction that holds a transaction-scoped advisory lock
//! per schema, so two instances starting together never both run one: the second waits, then finds it
//! applied. Applied versions are recorded in `<schema>.schema_migrations`; a database at a version newer than
//! this build knows is refused with a `Configuration` error naming both versions.
//!
//! Tables (all in the configured schema):
//!
//! | table                    | key                                   | what                                  |
//! |--------------------------|---------------------------------------|---------------------------------------|
//! | `idempotency_records`    | tenant, key                           | claims, leases, stored responses      |
//! | `payment_intents`        | tenant, id                            | intents; money as minor units + currency |
//! | `intent_events`          | tenant, intent_id, sequence           | append-only history (`data` verbatim) |
//! | `webhook_events`         | tenant, provider, event_id            | processed webhook ids, per tenant     |
//! | `domain_claims`          | hostname                              | one current claim per hostname        |
//! | `domain_mappings`        | hostname                              | verified hostname -> tenant, channel  |
//! | `replication_outbox`     | stream, sequence                      | pending changes (payload `BYTEA`)     |
//! | `replication_outbox_ids` | stream, change_id                     | every change id ever appended (dedupe) |
//! | `replication_inbox_ids`  | stream, change_id                     | every change id received (dedupe)     |
//! | `replication_checkpoints`| stream                                | inbox checkpoint                      |
//! | `print_jobs`             | key                                   | durable print queue (document `JSONB`) |
//! | `pairings`               | client; unique token_hash             | hardware gateway pairings             |
//! | `offline_payments`       | tenant, terminal_id, key              | offline store-and-forward queue (v2)  |
//!
//! A stream is (channel, store, dataset, direction). Version 3 changes no table: it erases the card data of
//! offline entries settled by a release before decision 014. Version 4 adds `idempotency_records.claimed_at`,
//! the first claim's time, which a takeover keeps (null for keys claimed before it).

use commerce_ports::{ErrorKind, StoreError};
use deadpool_postgres::Object;

use crate::error::{Ctx, Phase};

/// One embedded migration. `{s}` in its SQL stands for the quoted schema name.
#[derive(Debug)]
struct Migration {
    version: i32,
    name: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Never edit an entry that has shipped; add a new one.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "store ports", sql: V1_STORES },
    Migration { version: 2, name: "offline payment queue", sql: V2_OFFLINE_QUEUE },
    Migration { version: 3, name: "erase settled offline card data", sql: V3_ERASE_SETTLED_CARD_DATA },
    Migration { version: 4, name: "first claim time of idempotency keys", sql: V4_KEY_CLAIMED_AT },
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = 4;

/// The first key of the advisory lock that serializes migrations (ASCII `cpgm`); the second is a hash of the
/// schema name, so instances on different schemas do not wait for each other.
const LOCK_CLASS: i32 = 0x6370_676d;

const V1_STORES: &str = r#"
CREATE TABLE {s}.idempotency_records (
    tenant       TEXT        NOT NULL,
    key          TEXT        NOT NULL,
    operation    TEXT        NOT NULL,
    fingerprint  TEXT        NOT NULL,
    response     BYTEA,
    lease_until  TIMESTAMPTZ NOT NULL,
    takeovers    BIGINT      NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, key)
);

CREATE TABLE {s}.payment_intents (
    tenant             TEXT        NOT NULL,
    id                 TEXT        NOT NULL,
    channel            TEXT        NOT NULL,
    tender             TEXT        NOT NULL,
    status             TEXT        NOT NULL,
    currency           TEXT        NOT NULL,
    amount_minor       BIGINT      NOT NULL,
    authorized_minor   BIGINT      NOT NULL,
    captured_minor     BIGINT      NOT NULL,
    refunded_minor     BIGINT      NOT NULL,
    provider           TEXT        NOT NULL,
    provider_reference TEXT,
    reference          TEXT        NOT NULL,
    version            BIGINT      NOT NULL CHECK (version >= 1),
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX payment_intents_by_provider_reference
    ON {s}.payment_intents (tenant, provider, provider_reference) WHERE provider_reference IS NOT NULL;
CREATE INDEX payment_intents_by_reference ON {s}.payment_intents (tenant, reference, created_at, id);
CREATE INDEX payment_intents_by_status ON {s}.payment_intents (tenant, status, updated_at, id);

CREATE TABLE {s}.intent_events (
    tenant             TEXT        NOT NULL,
    intent_id          TEXT        NOT NULL,
    sequence           BIGINT      NOT NULL CHECK (sequence >= 1),
    at                 TIMESTAMPTZ NOT NULL,
    operation          TEXT        NOT NULL,
    status             TEXT        NOT NULL,
    amount_minor       BIGINT,
    amount_currency    TEXT,
    provider_reference TEXT,
    detail             TEXT,
    data               TEXT,
    PRIMARY KEY (tenant, intent_id, sequence),
    FOREIGN KEY (tenant, intent_id) REFERENCES {s}.payment_intents (tenant, id),
    CHECK ((amount_minor IS NULL) = (amount_currency IS NULL))
);

CREATE TABLE {s}.webhook_events (
    tenant      TEXT        NOT NULL,
    provider    TEXT        NOT NULL,
    event_id    TEXT        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant, provider, event_id)
);

CREATE TABLE {s}.domain_claims (
    hostname      TEXT        PRIMARY KEY,
    tenant        TEXT        NOT NULL,
    channel       TEXT        NOT NULL,
    token         TEXT        NOT NULL,
    status        TEXT        NOT NULL,
    attempts      BIGINT      NOT NULL CHECK (attempts >= 0),
    next_check_at TIMESTAMPTZ NOT NULL,
    last_failure  TEXT,
    version       BIGINT      NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
CREATE INDEX domain_claims_due ON {s}.domain_claims (next_check_at, hostname) WHERE status = 'pending';

CREATE TABLE {s}.domain_mappings (
    hostname TEXT PRIMARY KEY,
    tenant   TEXT NOT NULL,
    channel  TEXT NOT NULL
);

CREATE TABLE {s}.replication_outbox (
    channel        TEXT        NOT NULL,
    store          TEXT        NOT NULL,
    dataset        TEXT        NOT NULL,
    direction      TEXT        NOT NULL,
    sequence       BIGINT      NOT NULL,
    change_id      TEXT        NOT NULL,
    change_dataset TEXT        NOT NULL,
    key            TEXT        NOT NULL,
    payload        BYTEA,
    at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (channel, store, dataset, direction, sequence)
);

CREATE TABLE {s}.replication_outbox_ids (
    channel   TEXT NOT NULL,
    store     TEXT NOT NULL,
    dataset   TEXT NOT NULL,
    direction TEXT NOT NULL,
    change_id TEXT NOT NULL,
    PRIMARY KEY (channel, store, dataset, direction, change_id)
);

CREATE TABLE {s}.replication_inbox_ids (
    channel   TEXT NOT NULL,
    store     TEXT NOT NULL,
    dataset   TEXT NOT NULL,
    direction TEXT NOT NULL,
    change_id TEXT NOT NULL,
    PRIMARY KEY (channel, store, dataset, direction, change_id)
);

CREATE TABLE {s}.replication_checkpoints (
    channel    TEXT   NOT NULL,
    store      TEXT   NOT NULL,
    dataset    TEXT   NOT NULL,
    direction  TEXT   NOT NULL,
    checkpoint BIGINT NOT NULL CHECK (checkpoint >= 0),
    PRIMARY KEY (channel, store, dataset, direction)
);

CREATE TABLE {s}.print_jobs (
    key        TEXT        PRIMARY KEY,
    register   TEXT        NOT NULL,
    printer    TEXT        NOT NULL,
    document   JSONB       NOT NULL,
    status     TEXT        NOT NULL,
    failure    TEXT,
    attempts   BIGINT      NOT NULL CHECK (attempts >= 0),
    created_at TIMESTAMPTZ NOT NULL,
    CHECK ((status = 'failed') = (failure IS NOT NULL))
);
CREATE INDEX print_jobs_queued ON {s}.print_jobs (printer, created_at, key) WHERE status = 'queued';

CREATE TABLE {s}.pairings (
    client     TEXT        PRIMARY KEY,
    token_hash TEXT        NOT NULL,
    devices    TEXT[]      NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    revoked_at TIMESTAMPTZ,
    CONSTRAINT pairings_token_hash_key UNIQUE (token_hash)
);
"#;

/// Version 2: the offline store-and-forward queue. `seq` orders entries accepted at the same instant; rows
/// are never deleted (the audit record), and the checks keep a status and its details consistent.
const V2_OFFLINE_QUEUE: &str = r#"
CREATE TABLE {s}.offline_payments (
    seq                BIGINT      GENERATED ALWAYS AS IDENTITY,
    tenant             TEXT        NOT NULL,
    terminal_id        TEXT        NOT NULL,
    key                TEXT        NOT NULL,
    channel            TEXT        NOT NULL,
    register           TEXT        NOT NULL,
    reference          TEXT        NOT NULL,
    amount_minor       BIGINT      NOT NULL,
    currency           TEXT        NOT NULL,
    scheme             TEXT,
    entry_mode         TEXT        NOT NULL,
    masked_pan         TEXT,
    card_data          TEXT        NOT NULL,
    accepted_at        TIMESTAMPTZ NOT NULL,
    status             TEXT        NOT NULL CHECK (status IN ('pending', 'forwarded', 'declined')),
    provider_reference TEXT,
    decline_reason     TEXT,
    attempts           BIGINT      NOT NULL CHECK (attempts >= 0),
    last_error         TEXT,
    settled_at         TIMESTAMPTZ,
    PRIMARY KEY (tenant, terminal_id, key),
    CHECK ((status = 'forwarded') = (provider_reference IS NOT NULL)),
    CHECK ((status = 'declined') = (decline_reason IS NOT NULL)),
    CHECK ((status = 'pending') = (settled_at IS NULL))
);
CREATE INDEX offline_payments_pending
    ON {s}.offline_payments (tenant, terminal_id, accepted_at, seq) WHERE status = 'pending';
"#;

/// Version 3: erases the card data of offline entries settled by a release before decision 014, which left it
/// in place (since then a mark erases it in the statement that settles the entry). No table changes: `''` is
/// erased.
const V3_ERASE_SETTLED_CARD_DATA: &str = r#"
UPDATE {s}.offline_payments SET card_data = '' WHERE status <> 'pending' AND card_data <> '';
"#;

/// Version 4: the time a key was first claimed, which takeovers keep, so a call under a key taken over long
/// after its holder died is not sent again past the provider's replay window (decision 007). Keys claimed
/// before it have none; they are handled as before.
const V4_KEY_CLAIMED_AT: &str = r#"
ALTER TABLE {s}.idempotency_records ADD COLUMN IF NOT EXISTS claimed_at TIMESTAMPTZ;
"#;

/// A schema name as a quoted SQL identifier (the name is already checked to be `[a-z_][a-z0-9_]*`).
pub(crate) fn quote(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

/// A stable 32-bit hash (FNV-1a) of the schema name, the second key of the migration lock.
fn lock_key(schema: &str) -> i32 {
    let hash = schema.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    i32::from_be_bytes(hash.to_be_bytes())
}

/// Brings `schema` up to [`SCHEMA_VERSION`]; returns the versions this call applied (empty when another
/// instance had applied them).
pub(crate) async fn migrate(client: &mut Object, schema: &str) -> Result<Vec<u32>, StoreError> {
    let ctx = Ctx::new("connect", format!("migrating schema `{schema}`"));
    let q = quote(schema);
    let tx = client.transaction().await.map_err(|e| ctx.pg(Phase::Uncommitted, "starting a transaction", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1, $2)", &[&LOCK_CLASS, &lock_key(schema)])
        .await
        .map_err(|e| ctx.pg(Phase::Uncommitted, "taking the migration lock", e))?;
    let exists = tx
        .query_opt("SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1", &[&schema])
        .await
        .map_err(|e| ctx.pg(Phase::Uncommitted, "looking up the schema", e))?
        .is_some();
    if !exists {
        tx.batch_execute(&format!("CREATE SCHEMA {q}"))
            .await
            .map_err(|e| ctx.pg(Phase::Uncommitted, "creating the schema", e))?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {q}.schema_migrations (
             version    INTEGER     PRIMARY KEY,
             name       TEXT        NOT NULL,
             applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
         )"
    ))
    .await
    .map_err(|e| ctx.pg(Phase::Uncommitted, "creating schema_migrations", e))?;
    let row = tx
        .query_one(&format!("SELECT coalesce(max(version), 0) FROM {q}.schema_migrations"), &[])
        .await
        .map_err(|e| ctx.pg(Phase::Uncommitted, "reading schema_migrations", e))?;
    let current: i32 = row.try_get(0).map_err(|e| ctx.pg(Phase::Uncommitted, "reading schema_migrations", e))?;
    let known = i32::try_from(SCHEMA_VERSION).unwrap_or(i32::MAX);
    if current > known {
        return Err(ctx.err(
            ErrorKind::Configuration,
            format!(
                "the database is at schema version {current}, newer than the latest this build of \
                 commerce-postgres knows ({SCHEMA_VERSION}); upgrade the service or use another schema"
            ),
        ));
    }
    let mut applied = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        let step = format!("applying migration {} ({})", m.version, m.name);
        tx.batch_execute(&m.sql.replace("{s}", &q)).await.map_err(|e| ctx.pg(Phase::Uncommitted, &step, e))?;
        tx.execute(
            &format!("INSERT INTO {q}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[&m.version, &m.name],
        )
        .await
        .map_err(|e| ctx.pg(Phase::Uncommitted, &step, e))?;
        applied.push(u32::try_from(m.version).unwrap_or(0));
    }
    tx.commit().await.map_err(|e| ctx.pg(Phase::Commit, "committing the migrations", e))?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_ordered_and_end_at_the_schema_version() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert_eq!(versions.last().copied(), i32::try_from(SCHEMA_VERSION).ok());
        assert!(MIGRATIONS.iter().all(|m| !m.sql.contains("commerce.")), "migrations must use {{s}}");
    }

    #[test]
    fn lock_keys_are_stable_and_differ_per_schema() {
        assert_eq!(lock_key("commerce"), lock_key("commerce"));
        assert_ne!(lock_key("commerce"), lock_key("commerce_test"));
        assert_eq!(quote("commerce"), "\"commerce\"");
    }
}
