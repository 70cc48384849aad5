//! The hardware gateway's state: durable print jobs and register pairings.
//!
//! - `enqueue` is `INSERT ... ON CONFLICT (key) DO NOTHING`; when the key exists the stored job is returned
//!   unchanged. A job's status is a name plus, for `failed`, its reason; its document is `JSONB`.
//! - `put` upserts a client's pairing; the unique `token_hash` constraint refuses a hash that belongs to
//!   another client (revoked pairings keep theirs), whatever the race.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::stores::{Pairing, PairingStore, PrintJob, PrintJobStatus, PrintJobStore};
use commerce_ports::{DeviceId, ErrorKind, IdempotencyKey, RegisterId, StoreError};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::client::{Db, execute, query_opt};
use crate::error::{Ctx, Phase, violated_constraint};
use crate::mapping::{RowReader, to_json};

const JOB_COLUMNS: &str = "key, register, printer, document, status, failure, attempts, created_at";

/// A status as its stored name and failure reason.
fn status_columns(ctx: &Ctx, status: &PrintJobStatus) -> Result<(&'static str, Option<String>), StoreError> {
    match status {
        PrintJobStatus::Queued => Ok(("queued", None)),
        PrintJobStatus::Printing => Ok(("printing", None)),
        PrintJobStatus::Printed => Ok(("printed", None)),
        PrintJobStatus::Failed(reason) => Ok(("failed", Some(reason.clone()))),
        other => Err(ctx.err(ErrorKind::InvalidRequest, format!("print job status {other:?} cannot be stored yet"))),
    }
}

fn job_from_row(op: &'static str, row: &Row) -> Result<PrintJob, StoreError> {
    let r = RowReader::new(op, row, "print_jobs", &["key"]);
    let created_at: OffsetDateTime = r.get("created_at")?;
    let mut job = PrintJob::new(
        r.id("key", IdempotencyKey::new)?,
        r.id("register", RegisterId::new)?,
        r.id("printer", DeviceId::new)?,
        r.json("document")?,
        created_at,
    );
    let status: String = r.get("status")?;
    let failure: Option<String> = r.get("failure")?;
    job.status = match (status.as_str(), failure) {
        ("queued", None) => PrintJobStatus::Queued,
        ("printing", None) => PrintJobStatus::Printing,
        ("printed", None) => PrintJobStatus::Printed,
        ("failed", Some(reason)) => PrintJobStatus::Failed(reason),
        (other, failure) => {
            return Err(r.bad(
                "status",
                format!("holds `{other}` with failure {failure:?}, which is not a status this version knows"),
            ));
        }
    };
    job.attempts = r.u32("attempts")?;
    Ok(job)
}

/// [`PrintJobStore`] on PostgreSQL.
#[derive(Debug)]
pub(crate) struct PgPrintJobStore {
    db: Arc<Db>,
}

impl PgPrintJobStore {
    pub(crate) fn new(db: Arc<Db>) -> PgPrintJobStore {
        PgPrintJobStore { db }
    }
}

#[async_trait]
impl PrintJobStore for PgPrintJobStore {
    async fn enqueue(&self, job: PrintJob) -> Result<PrintJob, StoreError> {
        let ctx = Ctx::new("enqueue", format!("print job `{}`", job.key));
        let (status, failure) = status_columns(&ctx, &job.status)?;
        let document = to_json(ctx.op, "document", &job.document)?;
        let attempts = i64::from(job.attempts);
        let (key, register, printer) = (job.key.as_str(), job.register.as_str(), job.printer.as_str());
        let insert = self.db.sql(&format!(
            "INSERT INTO {{s}}.print_jobs ({JOB_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (key) DO NOTHING"
        ));
        let read = self.db.sql(&format!("SELECT {JOB_COLUMNS} FROM {{s}}.print_jobs WHERE key = $1"));
        let client = self.db.client(&ctx).await?;
        let existing = self
            .db
            .timed(&ctx, Phase::Autocommit, async {
                let n = execute(
                    &ctx,
                    &*client,
                    Phase::Autocommit,
                    "inserting into print_jobs",
                    &insert,
                    &[&key, &register, &printer, &document, &status, &failure, &attempts, &job.created_at],
                )
                .await?;
                if n == 1 {
                    return Ok(None);
                }
                query_opt(&ctx, &*client, Phase::Read, "reading print_jobs", &read, &[&key]).await
            })
            .await?;
        match existing {
            None => Ok(job),
            Some(row) => job_from_row(ctx.op, &row),
        }
    }

    async fn next(&self, printer: &DeviceId) -> Result<Option<PrintJob>, StoreError> {
        let ctx = Ctx::new("next", format!("queued print jobs of printer `{printer}`"));
        let sql = self.db.sql(&format!(
            "SELECT {JOB_COLUMNS} FROM {{s}}.print_jobs
             WHERE printer = $1 AND status = 'queued' ORDER BY created_at, key LIMIT 1"
        ));
        let printer = printer.as_str();
        let row = self.db.row_opt(&ctx, Phase::Read, "reading print_jobs", &sql, &[&printer]).await?;
        row.map(|row| job_from_row(ctx.op, &row)).transpose()
    }

    async fn set_status(&self, key: &IdempotencyKey, status: PrintJobStatus) -> Result<PrintJob, StoreError> {
        let ctx = Ctx::new("set_status", format!("print job `{key}`"));
        let (name, failure) = status_columns(&ctx, &status)?;
        let attempt = i64::from(status == PrintJobStatus::Printing);
        let sql = self.db.sql(&format!(
            "UPDATE {{s}}.print_jobs SET status = $2, failure = $3, attempts = LEAST(attempts + $4, 4294967295)
             WHERE key = $1 RETURNING {JOB_COLUMNS}"
        ));
        let key_s = key.as_str();
        let row = self
            .db
            .row_opt(&ctx, Phase::Autocommit, "updating print_jobs", &sql, &[&key_s, &name, &failure, &attempt])
            .await?;
        match row {
            Some(row) => job_from_row(ctx.op, &row),
            None => Err(ctx.err(ErrorKind::NotFound, "does not exist")),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------

const PAIRING_COLUMNS: &str = "client, token_hash, devices, created_at, revoked_at";

fn pairing_from_row(op: &'static str, row: &Row) -> Result<Pairing, StoreError> {
    let r = RowReader::new(op, row, "pairings", &["client"]);
    let created_at: OffsetDateTime = r.get("created_at")?;
    let mut pairing = Pairing::new(
        r.id("client", RegisterId::new)?,
        r.get::<String>("token_hash")?,
        r.ids("devices", DeviceId::new)?,
        created_at,
    );
    pairing.revoked_at = r.get("revoked_at")?;
    Ok(pairing)
}

/// [`PairingStore`] on PostgreSQL.
#[derive(Debug)]
pub(crate) struct PgPairingStore {
    db: Arc<Db>,
}

impl PgPairingStore {
    pub(crate) fn new(db: Arc<Db>) -> PgPairingStore {
        PgPairingStore { db }
    }
}

#[async_trait]
impl PairingStore for PgPairingStore {
    async fn put(&self, pairing: Pairing) -> Result<(), StoreError> {
        let ctx = Ctx::new("put", format!("pairing of client `{}`", pairing.client));
        let upsert = self.db.sql(&format!(
            "INSERT INTO {{s}}.pairings ({PAIRING_COLUMNS}) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (client) DO UPDATE SET token_hash = EXCLUDED.token_hash, devices = EXCLUDED.devices,
                 created_at = EXCLUDED.created_at, revoked_at = EXCLUDED.revoked_at"
        ));
        let holder = self.db.sql("SELECT client FROM {s}.pairings WHERE token_hash = $1");
        let client_s = pairing.client.as_str();
        let devices: Vec<&str> = pairing.devices.iter().map(DeviceId::as_str).collect();
        let client = self.db.client(&ctx).await?;
        self.db
            .timed(&ctx, Phase::Autocommit, async {
                let result = execute(
                    &ctx,
                    &*client,
                    Phase::Autocommit,
                    "upserting pairings",
                    &upsert,
                    &[&client_s, &pairing.token_hash, &devices, &pairing.created_at, &pairing.revoked_at],
                )
                .await;
                let Err(e) = result else { return Ok(()) };
                let token_taken = std::error::Error::source(&e)
                    .and_then(|s| s.downcast_ref::<tokio_postgres::Error>())
                    .and_then(violated_constraint)
                    == Some("pairings_token_hash_key");
                if !token_taken {
                    return Err(e);
                }
                let found =
                    query_opt(&ctx, &*client, Phase::Read, "reading pairings", &holder, &[&pairing.token_hash]).await?;
                let other = match &found {
                    Some(row) => RowReader::new(ctx.op, row, "pairings", &["client"]).get::<String>("client")?,
                    None => "?".to_owned(),
                };
                Err(ctx.err(ErrorKind::AlreadyExists, format!("the token hash already belongs to client `{other}`")))
            })
            .await
    }

    async fn by_token_hash(&self, token_hash: &str) -> Result<Option<Pairing>, StoreError> {
        let ctx = Ctx::new("by_token_hash", "active pairing by token hash");
        let sql = self
            .db
            .sql(&format!("SELECT {PAIRING_COLUMNS} FROM {{s}}.pairings WHERE token_hash = $1 AND revoked_at IS NULL"));
        let row = self.db.row_opt(&ctx, Phase::Read, "reading pairings", &sql, &[&token_hash]).await?;
        row.map(|row| pairing_from_row(ctx.op, &row)).transpose()
    }

    async fn revoke(&self, client_id: &RegisterId, at: OffsetDateTime) -> Result<(), StoreError> {
        let ctx = Ctx::new("revoke", format!("pairing of client `{client_id}`"));
        let sql = self.db.sql("UPDATE {s}.pairings SET revoked_at = $2 WHERE client = $1");
        let client_s = client_id.as_str();
        let n = self.db.affected(&ctx, Phase::Autocommit, "updating pairings", &sql, &[&client_s, &at]).await?;
        if n == 0 {
            return Err(ctx.err(ErrorKind::NotFound, "the client is not paired"));
        }
        Ok(())
    }
}
