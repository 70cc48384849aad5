//! The schema, as embedded migrations run when a database is opened.
//!
//! Each migration has a version; applied versions are recorded in `schema_migrations`. Opening runs, in one
//! `BEGIN IMMEDIATE` transaction, every migration newer than the file's version, so two processes opening
//! one new file cannot both migrate it. A file whose version is newer than [`SCHEMA_VERSION`] (written by
//! a later release) is refused rather than used with a schema this build does not know.
//!
//! Tables are `STRICT` (SQLite checks column types on write), so a value of the wrong type cannot be stored
//! by accident. Migrations are append-only: a released migration is never edited, a change is a new one.

use commerce_ports::{ErrorKind, StoreError};
use rusqlite::{Connection, TransactionBehavior};
use time::OffsetDateTime;

use crate::error::SqlContext;
use crate::mapping::time_to_sql;

/// The newest schema version this build of the crate knows (and creates).
pub const SCHEMA_VERSION: u32 = 5;

/// One embedded migration.
#[derive(Debug)]
struct Migration {
    version: u32,
    name: &'static str,
    sql: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "initial schema", sql: V1_INITIAL },
    Migration { version: 2, name: "offline payment queue", sql: V2_OFFLINE_QUEUE },
    Migration { version: 3, name: "append-friendly payment tables", sql: V3_APPEND_FRIENDLY },
    Migration { version: 4, name: "erase settled offline card data", sql: V4_ERASE_SETTLED_CARD_DATA },
    Migration { version: 5, name: "first claim time of idempotency keys", sql: V5_KEY_CLAIMED_AT },
];

const TRACKING: &str = "
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT;
";

/// Version 1: every store port.
const V1_INITIAL: &str = "
CREATE TABLE idempotency_records (
    tenant      TEXT NOT NULL,
    key         TEXT NOT NULL,
    operation   TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response    BLOB,
    lease_until INTEGER NOT NULL,
    PRIMARY KEY (tenant, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE payment_intents (
    tenant             TEXT NOT NULL,
    id                 TEXT NOT NULL,
    channel            TEXT NOT NULL,
    tender             TEXT NOT NULL,
    status             TEXT NOT NULL,
    currency           TEXT NOT NULL,
    amount_minor       INTEGER NOT NULL,
    authorized_minor   INTEGER NOT NULL,
    captured_minor     INTEGER NOT NULL,
    refunded_minor     INTEGER NOT NULL,
    provider           TEXT NOT NULL,
    provider_reference TEXT,
    reference          TEXT NOT NULL,
    version            INTEGER NOT NULL CHECK (version >= 1),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT, WITHOUT ROWID;

CREATE INDEX payment_intents_by_provider_reference
    ON payment_intents (tenant, provider, provider_reference);
CREATE INDEX payment_intents_by_reference
    ON payment_intents (tenant, reference, created_at, id);
CREATE INDEX payment_intents_by_status
    ON payment_intents (tenant, status, updated_at, id);

CREATE TABLE intent_events (
    tenant             TEXT NOT NULL,
    intent_id          TEXT NOT NULL,
    sequence           INTEGER NOT NULL CHECK (sequence >= 1),
    at                 INTEGER NOT NULL,
    operation          TEXT NOT NULL,
    status             TEXT NOT NULL,
    amount_minor       INTEGER,
    amount_currency    TEXT,
    provider_reference TEXT,
    detail             TEXT,
    data               TEXT,
    PRIMARY KEY (tenant, intent_id, sequence),
    FOREIGN KEY (tenant, intent_id) REFERENCES payment_intents (tenant, id),
    CHECK ((amount_minor IS NULL) = (amount_currency IS NULL))
) STRICT, WITHOUT ROWID;

CREATE TRIGGER intent_events_are_never_updated BEFORE UPDATE ON intent_events
BEGIN
    SELECT RAISE(ABORT, 'intent events are append-only');
END;
CREATE TRIGGER intent_events_are_never_deleted BEFORE DELETE ON intent_events
BEGIN
    SELECT RAISE(ABORT, 'intent events are append-only');
END;

CREATE TABLE webhook_events (
    tenant      TEXT NOT NULL,
    provider    TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, provider, event_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE domain_claims (
    hostname      TEXT PRIMARY KEY NOT NULL,
    tenant        TEXT NOT NULL,
    channel       TEXT NOT NULL,
    token         TEXT NOT NULL,
    status        TEXT NOT NULL,
    attempts      INTEGER NOT NULL CHECK (attempts >= 0),
    next_check_at INTEGER NOT NULL,
    last_failure  TEXT,
    version       INTEGER NOT NULL CHECK (version >= 1),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX domain_claims_due ON domain_claims (status, next_check_at, hostname);

CREATE TABLE domain_mappings (
    hostname TEXT PRIMARY KEY NOT NULL,
    tenant   TEXT NOT NULL,
    channel  TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE replication_outbox (
    channel        TEXT NOT NULL,
    store          TEXT NOT NULL,
    dataset        TEXT NOT NULL,
    direction      TEXT NOT NULL,
    sequence       INTEGER NOT NULL,
    change_id      TEXT NOT NULL,
    change_dataset TEXT NOT NULL,
    row_key        TEXT NOT NULL,
    payload        BLOB,
    at             INTEGER NOT NULL,
    PRIMARY KEY (channel, store, dataset, direction, sequence)
) STRICT, WITHOUT ROWID;

CREATE TABLE replication_outbox_ids (
    channel   TEXT NOT NULL,
    store     TEXT NOT NULL,
    dataset   TEXT NOT NULL,
    direction TEXT NOT NULL,
    change_id TEXT NOT NULL,
    PRIMARY KEY (channel, store, dataset, direction, change_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE replication_inbox_ids (
    channel   TEXT NOT NULL,
    store     TEXT NOT NULL,
    dataset   TEXT NOT NULL,
    direction TEXT NOT NULL,
    change_id TEXT NOT NULL,
    PRIMARY KEY (channel, store, dataset, direction, change_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE replication_checkpoints (
    channel    TEXT NOT NULL,
    store      TEXT NOT NULL,
    dataset    TEXT NOT NULL,
    direction  TEXT NOT NULL,
    checkpoint INTEGER NOT NULL CHECK (checkpoint >= 0),
    PRIMARY KEY (channel, store, dataset, direction)
) STRICT, WITHOUT ROWID;

-- Keeps its rowid: among jobs queued at the same instant, the first inserted prints first.
CREATE TABLE print_jobs (
    key        TEXT PRIMARY KEY NOT NULL,
    register   TEXT NOT NULL,
    printer    TEXT NOT NULL,
    document   TEXT NOT NULL,
    status     TEXT NOT NULL,
    failure    TEXT,
    attempts   INTEGER NOT NULL CHECK (attempts >= 0),
    created_at INTEGER NOT NULL,
    CHECK ((status = 'failed') = (failure IS NOT NULL))
) STRICT;

CREATE INDEX print_jobs_queue ON print_jobs (printer, status, created_at);

CREATE TABLE pairings (
    client     TEXT PRIMARY KEY NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    devices    TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT, WITHOUT ROWID;
";

/// Version 2: the offline store-and-forward queue. Keeps its rowid: among entries accepted at the same
/// instant, the first queued is forwarded first. Rows are never deleted (the audit record of what was taken
/// offline), and a settled entry's result never changes.
const V2_OFFLINE_QUEUE: &str = "
CREATE TABLE offline_payments (
    tenant             TEXT NOT NULL,
    terminal_id        TEXT NOT NULL,
    key                TEXT NOT NULL,
    channel            TEXT NOT NULL,
    register           TEXT NOT NULL,
    reference          TEXT NOT NULL,
    amount_minor       INTEGER NOT NULL,
    currency           TEXT NOT NULL,
    scheme             TEXT,
    entry_mode         TEXT NOT NULL,
    masked_pan         TEXT,
    card_data          TEXT NOT NULL,
    accepted_at        INTEGER NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'forwarded', 'declined')),
    provider_reference TEXT,
    decline_reason     TEXT,
    attempts           INTEGER NOT NULL CHECK (attempts >= 0),
    last_error         TEXT,
    settled_at         INTEGER,
    UNIQUE (tenant, terminal_id, key),
    CHECK ((status = 'forwarded') = (provider_reference IS NOT NULL)),
    CHECK ((status = 'declined') = (decline_reason IS NOT NULL)),
    CHECK ((status = 'pending') = (settled_at IS NULL))
) STRICT;

CREATE INDEX offline_payments_pending ON offline_payments (tenant, terminal_id, status, accepted_at);

CREATE TRIGGER offline_payments_are_never_deleted BEFORE DELETE ON offline_payments
BEGIN
    SELECT RAISE(ABORT, 'offline payments are kept for audit');
END;
CREATE TRIGGER offline_payments_settle_once BEFORE UPDATE OF status ON offline_payments
WHEN OLD.status <> 'pending' AND NEW.status <> OLD.status
BEGIN
    SELECT RAISE(ABORT, 'a settled offline payment keeps its result');
END;
";

/// Version 3: fewer pages written per payment operation (decision 012).
///
/// - `intent_events` keeps a rowid, so a new event is appended at the end of the table instead of landing at
///   the random place of its intent among wide rows, which split pages three at a time; its key becomes a
///   unique index of narrow entries. (The same for `idempotency_records` measured no gain: the benchmark's
///   keys already arrive in order, and a random key's index entry costs what the split saved.)
/// - The status index covers only `outcome_unknown`, the status reconciliation lists, so the other
///   transitions do not move an index entry; `list_by_status` for another status reads the tenant's intents.
const V3_APPEND_FRIENDLY: &str = "
CREATE TABLE intent_events_v3 (
    tenant             TEXT NOT NULL,
    intent_id          TEXT NOT NULL,
    sequence           INTEGER NOT NULL CHECK (sequence >= 1),
    at                 INTEGER NOT NULL,
    operation          TEXT NOT NULL,
    status             TEXT NOT NULL,
    amount_minor       INTEGER,
    amount_currency    TEXT,
    provider_reference TEXT,
    detail             TEXT,
    data               TEXT,
    FOREIGN KEY (tenant, intent_id) REFERENCES payment_intents (tenant, id),
    CHECK ((amount_minor IS NULL) = (amount_currency IS NULL))
) STRICT;
INSERT INTO intent_events_v3 (tenant, intent_id, sequence, at, operation, status, amount_minor, amount_currency,
    provider_reference, detail, data)
SELECT tenant, intent_id, sequence, at, operation, status, amount_minor, amount_currency, provider_reference,
    detail, data
FROM intent_events ORDER BY tenant, intent_id, sequence;
DROP TABLE intent_events;
ALTER TABLE intent_events_v3 RENAME TO intent_events;
CREATE UNIQUE INDEX intent_events_key ON intent_events (tenant, intent_id, sequence);
CREATE TRIGGER intent_events_are_never_updated BEFORE UPDATE ON intent_events
BEGIN
    SELECT RAISE(ABORT, 'intent events are append-only');
END;
CREATE TRIGGER intent_events_are_never_deleted BEFORE DELETE ON intent_events
BEGIN
    SELECT RAISE(ABORT, 'intent events are append-only');
END;

DROP INDEX IF EXISTS payment_intents_by_status;
CREATE INDEX IF NOT EXISTS payment_intents_outcome_unknown ON payment_intents (tenant, updated_at, id)
    WHERE status = 'outcome_unknown';
";

/// Version 4: erases the card data of offline entries settled by a release before decision 014, which left it
/// in place (since then a mark erases it in the statement that settles the entry). No table changes: `''` is
/// erased. The settle-once trigger watches `status` only, so it lets this through.
const V4_ERASE_SETTLED_CARD_DATA: &str = "
UPDATE offline_payments SET card_data = '' WHERE status <> 'pending' AND card_data <> '';
";

/// Version 5: the time a key was first claimed (nanoseconds since the epoch), which takeovers keep, so a call
/// under a key taken over long after its holder died is not sent again past the provider's replay window
/// (decision 007). Keys claimed before it have none; they are handled as before.
const V5_KEY_CLAIMED_AT: &str = "
ALTER TABLE idempotency_records ADD COLUMN claimed_at INTEGER;
";

/// Brings the database up to [`SCHEMA_VERSION`]; returns the versions it applied (none when the file was
/// up to date). `label` names the database in messages.
///
/// # Errors
/// `Configuration` when the file's schema is newer than this build knows; SQLite failures as mapped by
/// [`crate::error`].
pub(crate) fn migrate(conn: &mut Connection, label: &str) -> Result<Vec<u32>, StoreError> {
    const OP: &str = "open";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(OP, || format!("starting the migration transaction on {label}"))?;
    tx.execute_batch(TRACKING).context(OP, || format!("creating `schema_migrations` in {label}"))?;
    let current: Option<i64> = tx
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |row| row.get(0))
        .context(OP, || format!("reading the schema version of {label}"))?;
    let current = current.unwrap_or(0);
    if current > i64::from(SCHEMA_VERSION) {
        return Err(StoreError::new(
            ErrorKind::Configuration,
            OP,
            format!(
                "{label} has schema version {current}, newer than version {SCHEMA_VERSION}, the newest this build \
                 of commerce-sqlite knows; it was written by a later release: upgrade, or open another file"
            ),
        ));
    }
    let now = time_to_sql(OP, "applied_at", OffsetDateTime::now_utc())?;
    let mut applied = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| i64::from(m.version) > current) {
        tx.execute_batch(migration.sql)
            .context(OP, || format!("applying migration {} ({}) to {label}", migration.version, migration.name))?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
            rusqlite::params![i64::from(migration.version), migration.name, now],
        )
        .context(OP, || format!("recording migration {} in {label}", migration.version))?;
        applied.push(migration.version);
    }
    tx.commit().context(OP, || format!("committing the migrations of {label}"))?;
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_consecutive_and_end_at_schema_version() {
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        let expected: Vec<u32> = (1..=SCHEMA_VERSION).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn version_3_keeps_events_and_their_guards_and_indexes_unknown_intents() -> Result<(), StoreError> {
        let mut conn = Connection::open_in_memory().context("test", || "opening")?;
        conn.execute_batch("PRAGMA foreign_keys = ON").context("test", || "foreign keys")?;
        // A version 2 database with an intent, its events and a key.
        conn.execute_batch(TRACKING).context("test", || "tracking")?;
        for m in MIGRATIONS.iter().filter(|m| m.version <= 2) {
            conn.execute_batch(m.sql).context("test", || format!("migration {}", m.version))?;
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, 0)",
                rusqlite::params![m.version, m.name],
            )
            .context("test", || "recording")?;
        }
        conn.execute_batch(
            "INSERT INTO payment_intents VALUES ('acme', 'pi_1', 'web', 'card', 'outcome_unknown', 'EUR', 500, 0, 0,
                 0, 'memory', NULL, 'order-1', 2, 1, 2);
             INSERT INTO intent_events (tenant, intent_id, sequence, at, operation, status)
                 VALUES ('acme', 'pi_1', 2, 2, 'authorize', 'outcome_unknown'),
                        ('acme', 'pi_1', 1, 1, 'create', 'requires_authorization');
             INSERT INTO idempotency_records VALUES ('acme', 'k', 'authorize', 'f', NULL, 9);",
        )
        .context("test", || "version 2 rows")?;
        assert_eq!(migrate(&mut conn, "test database")?, vec![3, 4, 5]);

        let events: Vec<(i64, String)> = conn
            .prepare("SELECT sequence, operation FROM intent_events WHERE tenant = 'acme' AND intent_id = 'pi_1' ORDER BY sequence")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .context("test", || "events")?;
        assert_eq!(events, vec![(1, "create".to_owned()), (2, "authorize".to_owned())]);
        let keys: i64 = conn
            .query_row("SELECT count(*) FROM idempotency_records WHERE key = 'k'", [], |r| r.get(0))
            .context("test", || "keys")?;
        assert_eq!(keys, 1);
        // The guards came back with the rebuilt table: no update, no delete, no second event 2.
        for sql in [
            "UPDATE intent_events SET detail = 'x' WHERE intent_id = 'pi_1'",
            "DELETE FROM intent_events WHERE intent_id = 'pi_1'",
            "INSERT INTO intent_events (tenant, intent_id, sequence, at, operation, status)
                 VALUES ('acme', 'pi_1', 2, 3, 'capture', 'captured')",
            "INSERT INTO intent_events (tenant, intent_id, sequence, at, operation, status)
                 VALUES ('acme', 'pi_missing', 1, 3, 'create', 'requires_authorization')",
        ] {
            assert!(conn.execute_batch(sql).is_err(), "{sql} must be refused");
        }
        // The reconciler's listing reads the partial index; the history read uses the events' key.
        let plan = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> Result<String, StoreError> {
            let rows: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .and_then(|mut s| s.query_map(params, |r| r.get::<_, String>(3))?.collect())
                .context("test", || "plan")?;
            Ok(rows.join("; "))
        };
        let unknown = plan(
            "SELECT id FROM payment_intents WHERE tenant = ?1 AND status = 'outcome_unknown' AND status = ?2
             ORDER BY updated_at, id LIMIT 10",
            &[&"ignored", &"outcome_unknown"],
        )?;
        assert!(unknown.contains("payment_intents_outcome_unknown"), "{unknown}");
        let history = plan(
            "SELECT * FROM intent_events WHERE tenant = ?1 AND intent_id = ?2 ORDER BY sequence",
            &[&"acme", &"pi_1"],
        )?;
        assert!(history.contains("intent_events_key") && !history.contains("TEMP B-TREE"), "{history}");
        Ok(())
    }

    #[test]
    fn migrating_twice_applies_once() -> Result<(), StoreError> {
        let mut conn = Connection::open_in_memory().context("test", || "opening")?;
        assert_eq!(migrate(&mut conn, "test database")?, vec![1, 2, 3, 4, 5]);
        assert_eq!(migrate(&mut conn, "test database")?, Vec::<u32>::new());
        Ok(())
    }
}
