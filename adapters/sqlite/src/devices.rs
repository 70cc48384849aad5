//! Print jobs and pairings of the hardware gateway.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::stores::{Pairing, PairingStore, PrintJob, PrintJobStatus, PrintJobStore};
use commerce_ports::{DeviceId, ErrorKind, IdempotencyKey, RegisterId, StoreError};
use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;
use time::OffsetDateTime;

use crate::backend::{Database, immediate};
use crate::error::{SqlContext, is_unique_violation, sql_error, unstorable};
use crate::mapping::{RowSource, json_to_sql, time_to_sql};

// ---------------------------------------------------------------------------------------------------------
// Print jobs

/// [`PrintJobStore`] on table `print_jobs`, keyed by the job's idempotency key.
#[derive(Debug, Clone)]
pub(crate) struct SqlitePrintJobStore {
    db: Arc<Database>,
}

impl SqlitePrintJobStore {
    pub(crate) fn new(db: Arc<Database>) -> SqlitePrintJobStore {
        SqlitePrintJobStore { db }
    }
}

const JOB_COLUMNS: &str = "key, register, printer, document, status, failure, attempts, created_at";

/// A status as its name (`queued`, `failed`) and, for `Failed`, the reason.
fn status_to_sql(op: &'static str, status: &PrintJobStatus) -> Result<(String, Option<String>), StoreError> {
    match serde_json::to_value(status) {
        Ok(Value::String(name)) => Ok((name, None)),
        Ok(Value::Object(map)) => match map.into_iter().next() {
            Some((name, Value::String(reason))) => Ok((name, Some(reason))),
            _ => Err(unstorable(op, "status", format!("{status:?} has no name and reason"))),
        },
        Ok(other) => Err(unstorable(op, "status", format!("{status:?} serializes as {other}"))),
        Err(e) => Err(unstorable(op, "status", e)),
    }
}

/// A print job as column values.
#[derive(Debug)]
struct JobValues {
    key: String,
    register: String,
    printer: String,
    document: String,
    status: String,
    failure: Option<String>,
    attempts: i64,
    created_at: i64,
}

impl JobValues {
    fn new(op: &'static str, job: &PrintJob) -> Result<JobValues, StoreError> {
        let (status, failure) = status_to_sql(op, &job.status)?;
        Ok(JobValues {
            key: job.key.to_string(),
            register: job.register.to_string(),
            printer: job.printer.to_string(),
            document: json_to_sql(op, "document", &job.document)?,
            status,
            failure,
            attempts: i64::from(job.attempts),
            created_at: time_to_sql(op, "created_at", job.created_at)?,
        })
    }

    fn read(row: &Row<'_>) -> rusqlite::Result<JobValues> {
        Ok(JobValues {
            key: row.get(0)?,
            register: row.get(1)?,
            printer: row.get(2)?,
            document: row.get(3)?,
            status: row.get(4)?,
            failure: row.get(5)?,
            attempts: row.get(6)?,
            created_at: row.get(7)?,
        })
    }

    fn into_job(self, op: &'static str) -> Result<PrintJob, StoreError> {
        let row_key = format!("(key `{}`)", self.key);
        let source = RowSource { operation: op, table: "print_jobs", key: &row_key };
        let status_value = match self.failure {
            None => Value::String(self.status.clone()),
            Some(reason) => Value::Object([(self.status.clone(), Value::String(reason))].into_iter().collect()),
        };
        let status: PrintJobStatus = serde_json::from_value(status_value)
            .map_err(|e| source.bad("status", format!("holds `{}`, which is not a known value: {e}", self.status)))?;
        let mut job = PrintJob::new(
            source.parse("key", self.key.clone(), IdempotencyKey::new)?,
            source.parse("register", self.register, RegisterId::new)?,
            source.parse("printer", self.printer, DeviceId::new)?,
            source.json("document", &self.document)?,
            source.time("created_at", self.created_at)?,
        );
        job.status = status;
        job.attempts = source.small_unsigned("attempts", self.attempts)?;
        Ok(job)
    }
}

fn read_job(conn: &rusqlite::Connection, op: &'static str, key: &str) -> Result<Option<PrintJob>, StoreError> {
    conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM print_jobs WHERE key = ?1"))
        .and_then(|mut s| s.query_row(params![key], JobValues::read).optional())
        .context(op, || format!("reading print job `{key}`"))?
        .map(|v| v.into_job(op))
        .transpose()
}

#[async_trait]
impl PrintJobStore for SqlitePrintJobStore {
    async fn enqueue(&self, job: PrintJob) -> Result<PrintJob, StoreError> {
        const OP: &str = "enqueue";
        let v = JobValues::new(OP, &job)?;
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                let inserted = tx
                    .prepare_cached(&format!(
                        "INSERT INTO print_jobs ({JOB_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                         ON CONFLICT (key) DO NOTHING"
                    ))
                    .and_then(|mut s| {
                        s.execute(params![
                            v.key,
                            v.register,
                            v.printer,
                            v.document,
                            v.status,
                            v.failure,
                            v.attempts,
                            v.created_at
                        ])
                    })
                    .context(OP, || format!("queueing print job `{}`", v.key))?;
                let stored = if inserted == 1 {
                    job
                } else {
                    read_job(&tx, OP, &v.key)?.ok_or_else(|| {
                        StoreError::new(
                            ErrorKind::Unexpected,
                            OP,
                            format!("print job `{}` vanished while queued", v.key),
                        )
                    })?
                };
                tx.commit().context(OP, || format!("committing print job `{}`", v.key))?;
                Ok(stored)
            })
            .await
    }

    async fn next(&self, printer: &DeviceId) -> Result<Option<PrintJob>, StoreError> {
        const OP: &str = "next";
        let printer = printer.to_string();
        let (queued, _) = status_to_sql(OP, &PrintJobStatus::Queued)?;
        self.db
            .run(OP, move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM print_jobs WHERE printer = ?1 AND status = ?2
                     ORDER BY created_at, rowid LIMIT 1"
                ))
                .and_then(|mut s| s.query_row(params![printer, queued], JobValues::read).optional())
                .context(OP, || format!("reading the next job of printer `{printer}`"))?
                .map(|v| v.into_job(OP))
                .transpose()
            })
            .await
    }

    async fn set_status(&self, key: &IdempotencyKey, status: PrintJobStatus) -> Result<PrintJob, StoreError> {
        const OP: &str = "set_status";
        let key = key.to_string();
        let attempt = i64::from(status == PrintJobStatus::Printing);
        let (status, failure) = status_to_sql(OP, &status)?;
        self.db
            .run(OP, move |conn| {
                // One statement: the attempt is counted atomically, even with several writers.
                conn.prepare_cached(&format!(
                    "UPDATE print_jobs SET status = ?2, failure = ?3, attempts = MIN(attempts + ?4, {})
                     WHERE key = ?1 RETURNING {JOB_COLUMNS}",
                    u32::MAX
                ))
                .and_then(|mut s| s.query_row(params![key, status, failure, attempt], JobValues::read).optional())
                .context(OP, || format!("setting the status of print job `{key}`"))?
                .map(|v| v.into_job(OP))
                .transpose()?
                .ok_or_else(|| StoreError::new(ErrorKind::NotFound, OP, format!("no print job `{key}`")))
            })
            .await
    }
}

// ---------------------------------------------------------------------------------------------------------
// Pairings

/// [`PairingStore`] on table `pairings`, keyed by client, with a unique token hash.
#[derive(Debug, Clone)]
pub(crate) struct SqlitePairingStore {
    db: Arc<Database>,
}

impl SqlitePairingStore {
    pub(crate) fn new(db: Arc<Database>) -> SqlitePairingStore {
        SqlitePairingStore { db }
    }
}

fn read_pairing(op: &'static str, row: (String, String, String, i64, Option<i64>)) -> Result<Pairing, StoreError> {
    let (client, token_hash, devices, created_at, revoked_at) = row;
    let row_key = format!("(client `{client}`)");
    let source = RowSource { operation: op, table: "pairings", key: &row_key };
    let mut pairing = Pairing::new(
        source.parse("client", client.clone(), RegisterId::new)?,
        token_hash,
        source.json::<Vec<DeviceId>>("devices", &devices)?,
        source.time("created_at", created_at)?,
    );
    pairing.revoked_at = revoked_at.map(|at| source.time("revoked_at", at)).transpose()?;
    Ok(pairing)
}

#[async_trait]
impl PairingStore for SqlitePairingStore {
    async fn put(&self, pairing: Pairing) -> Result<(), StoreError> {
        const OP: &str = "put";
        let devices = json_to_sql(OP, "devices", &pairing.devices)?;
        let created_at = time_to_sql(OP, "created_at", pairing.created_at)?;
        let revoked_at = pairing.revoked_at.map(|at| time_to_sql(OP, "revoked_at", at)).transpose()?;
        let (client, token_hash) = (pairing.client.to_string(), pairing.token_hash);
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                let written = tx
                    .prepare_cached(
                        "INSERT INTO pairings (client, token_hash, devices, created_at, revoked_at)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (client) DO UPDATE SET token_hash = excluded.token_hash,
                             devices = excluded.devices, created_at = excluded.created_at,
                             revoked_at = excluded.revoked_at",
                    )
                    .and_then(|mut s| s.execute(params![client, token_hash, devices, created_at, revoked_at]));
                match written {
                    Ok(_) => {}
                    Err(e) if is_unique_violation(&e) => {
                        // The token hash belongs to another client (the client itself was upserted).
                        let other: Option<String> = tx
                            .prepare_cached("SELECT client FROM pairings WHERE token_hash = ?1")
                            .and_then(|mut s| s.query_row(params![token_hash], |r| r.get(0)).optional())
                            .context(OP, || "looking up the holder of a token hash")?;
                        return Err(StoreError::new(
                            ErrorKind::AlreadyExists,
                            OP,
                            format!("token hash already belongs to client `{}`", other.unwrap_or_default()),
                        )
                        .with_source(e));
                    }
                    Err(e) => return Err(sql_error(OP, format!("storing the pairing of client `{client}`"), e)),
                }
                tx.commit().context(OP, || format!("committing the pairing of client `{client}`"))
            })
            .await
    }

    async fn by_token_hash(&self, token_hash: &str) -> Result<Option<Pairing>, StoreError> {
        const OP: &str = "by_token_hash";
        let token_hash = token_hash.to_owned();
        self.db
            .run(OP, move |conn| {
                conn.prepare_cached(
                    "SELECT client, token_hash, devices, created_at, revoked_at FROM pairings
                     WHERE token_hash = ?1 AND revoked_at IS NULL",
                )
                .and_then(|mut s| {
                    s.query_row(params![token_hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
                        .optional()
                })
                // The hash is a credential's digest: the message does not repeat it.
                .context(OP, || "looking up a pairing by token hash")?
                .map(|row| read_pairing(OP, row))
                .transpose()
            })
            .await
    }

    async fn revoke(&self, client: &RegisterId, at: OffsetDateTime) -> Result<(), StoreError> {
        const OP: &str = "revoke";
        let at = time_to_sql(OP, "at", at)?;
        let client = client.to_string();
        self.db
            .run(OP, move |conn| {
                let revoked = conn
                    .prepare_cached("UPDATE pairings SET revoked_at = ?2 WHERE client = ?1")
                    .and_then(|mut s| s.execute(params![client, at]))
                    .context(OP, || format!("revoking the pairing of client `{client}`"))?;
                if revoked == 0 {
                    return Err(StoreError::new(ErrorKind::NotFound, OP, format!("client `{client}` is not paired")));
                }
                Ok(())
            })
            .await
    }
}
