//! Domain claims and hostname mappings.
//!
//! - `create` is one `INSERT ... ON CONFLICT (hostname) DO UPDATE ... WHERE` the stored claim is not live
//!   (neither pending nor verified): a new hostname is inserted, a released or expired claim is replaced,
//!   and a live one is left alone (`AlreadyExists`). Concurrent creates of one hostname serialize on its row.
//! - `update` is `UPDATE ... WHERE version = $n`; no affected row means `NotFound` or `Conflict`.
//! - `put_mapping` upserts only when the stored mapping (if any) names the same tenant.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::stores::{ClaimStatus, DomainClaim, DomainClaimStore, DomainMapping};
use commerce_ports::{ChannelId, ErrorKind, StoreError, TenantId};
use time::OffsetDateTime;
use tokio_postgres::Row;

use crate::client::{Db, SqlParam, execute, query_opt};
use crate::error::{Ctx, Phase};
use crate::mapping::{RowReader, name_of, to_bigint};

const CLAIM_COLUMNS: &str =
    "hostname, tenant, channel, token, status, attempts, next_check_at, last_failure, version, created_at, updated_at";

/// A claim's columns in [`CLAIM_COLUMNS`] order ($1..$11).
struct ClaimRow<'a> {
    claim: &'a DomainClaim,
    tenant: &'a str,
    channel: &'a str,
    status: String,
    attempts: i64,
    version: i64,
}

impl<'a> ClaimRow<'a> {
    fn new(ctx: &Ctx, claim: &'a DomainClaim) -> Result<ClaimRow<'a>, StoreError> {
        Ok(ClaimRow {
            claim,
            tenant: claim.tenant.as_str(),
            channel: claim.channel.as_str(),
            status: name_of(ctx.op, &claim.status)?,
            attempts: i64::from(claim.attempts),
            version: to_bigint(ctx.op, "version", claim.version)?,
        })
    }

    fn params(&self) -> [SqlParam<'_>; 11] {
        let c = self.claim;
        [
            &c.hostname,
            &self.tenant,
            &self.channel,
            &c.token,
            &self.status,
            &self.attempts,
            &c.next_check_at,
            &c.last_failure,
            &self.version,
            &c.created_at,
            &c.updated_at,
        ]
    }
}

fn claim_from_row(op: &'static str, row: &Row) -> Result<DomainClaim, StoreError> {
    let r = RowReader::new(op, row, "domain_claims", &["hostname"]);
    let created_at: OffsetDateTime = r.get("created_at")?;
    let mut claim = DomainClaim::new(
        r.get::<String>("hostname")?,
        r.id("tenant", TenantId::new)?,
        r.id("channel", ChannelId::new)?,
        r.get::<String>("token")?,
        created_at,
    );
    claim.status = r.name("status")?;
    claim.attempts = r.u32("attempts")?;
    claim.next_check_at = r.get("next_check_at")?;
    claim.last_failure = r.get("last_failure")?;
    claim.version = r.u64("version")?;
    claim.updated_at = r.get("updated_at")?;
    Ok(claim)
}

fn mapping_from_row(op: &'static str, row: &Row) -> Result<DomainMapping, StoreError> {
    let r = RowReader::new(op, row, "domain_mappings", &["hostname"]);
    Ok(DomainMapping::new(
        r.get::<String>("hostname")?,
        r.id("tenant", TenantId::new)?,
        r.id("channel", ChannelId::new)?,
    ))
}

/// [`DomainClaimStore`] on PostgreSQL.
#[derive(Debug)]
pub(crate) struct PgDomainClaimStore {
    db: Arc<Db>,
}

impl PgDomainClaimStore {
    pub(crate) fn new(db: Arc<Db>) -> PgDomainClaimStore {
        PgDomainClaimStore { db }
    }
}

#[async_trait]
impl DomainClaimStore for PgDomainClaimStore {
    async fn create(&self, claim: DomainClaim) -> Result<(), StoreError> {
        let ctx = Ctx::new("create", format!("claim on hostname `{}`", claim.hostname));
        let row = ClaimRow::new(&ctx, &claim)?;
        let (pending, verified) = (name_of(ctx.op, &ClaimStatus::Pending)?, name_of(ctx.op, &ClaimStatus::Verified)?);
        let insert = self.db.sql(&format!(
            "INSERT INTO {{s}}.domain_claims AS c ({CLAIM_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (hostname) DO UPDATE SET
                 tenant = EXCLUDED.tenant, channel = EXCLUDED.channel, token = EXCLUDED.token,
                 status = EXCLUDED.status, attempts = EXCLUDED.attempts, next_check_at = EXCLUDED.next_check_at,
                 last_failure = EXCLUDED.last_failure, version = EXCLUDED.version,
                 created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at
             WHERE c.status <> $12 AND c.status <> $13"
        ));
        let holder = self.db.sql("SELECT tenant FROM {s}.domain_claims WHERE hostname = $1");
        let client = self.db.client(&ctx).await?;
        self.db
            .timed(&ctx, Phase::Autocommit, async {
                let mut params: Vec<SqlParam<'_>> = row.params().to_vec();
                params.extend([&pending as SqlParam<'_>, &verified]);
                let n = execute(&ctx, &*client, Phase::Autocommit, "upserting domain_claims", &insert, &params).await?;
                if n == 1 {
                    return Ok(());
                }
                let found =
                    query_opt(&ctx, &*client, Phase::Read, "reading domain_claims", &holder, &[&claim.hostname])
                        .await?;
                let tenant = match &found {
                    Some(found) => {
                        RowReader::new(ctx.op, found, "domain_claims", &["hostname"]).get::<String>("tenant")?
                    }
                    None => "?".to_owned(),
                };
                Err(ctx.err(
                    ErrorKind::AlreadyExists,
                    format!("the hostname already has a live claim by tenant `{tenant}`"),
                ))
            })
            .await
    }

    async fn get(&self, hostname: &str) -> Result<Option<DomainClaim>, StoreError> {
        let ctx = Ctx::new("get", format!("claim on hostname `{hostname}`"));
        let sql = self.db.sql(&format!("SELECT {CLAIM_COLUMNS} FROM {{s}}.domain_claims WHERE hostname = $1"));
        let row = self.db.row_opt(&ctx, Phase::Read, "reading domain_claims", &sql, &[&hostname]).await?;
        row.map(|row| claim_from_row(ctx.op, &row)).transpose()
    }

    async fn update(&self, claim: DomainClaim, expected_version: u64) -> Result<(), StoreError> {
        let ctx = Ctx::new("update", format!("claim on hostname `{}`", claim.hostname));
        let row = ClaimRow::new(&ctx, &claim)?;
        let expected = to_bigint(ctx.op, "expected_version", expected_version)?;
        let valid_version = expected_version.checked_add(1) == Some(claim.version);
        let update = self.db.sql(
            "UPDATE {s}.domain_claims SET tenant = $2, channel = $3, token = $4, status = $5, attempts = $6,
                 next_check_at = $7, last_failure = $8, version = $9, created_at = $10, updated_at = $11
             WHERE hostname = $1 AND version = $12",
        );
        let current = self.db.sql("SELECT version FROM {s}.domain_claims WHERE hostname = $1");
        let client = self.db.client(&ctx).await?;
        self.db
            .timed(&ctx, Phase::Autocommit, async {
                if valid_version {
                    let mut params: Vec<SqlParam<'_>> = row.params().to_vec();
                    params.push(&expected);
                    let n =
                        execute(&ctx, &*client, Phase::Autocommit, "updating domain_claims", &update, &params).await?;
                    if n == 1 {
                        return Ok(());
                    }
                }
                let found =
                    query_opt(&ctx, &*client, Phase::Read, "reading domain_claims", &current, &[&claim.hostname])
                        .await?;
                let Some(found) = found else {
                    return Err(ctx.err(ErrorKind::NotFound, "does not exist"));
                };
                let version = RowReader::new(ctx.op, &found, "domain_claims", &["hostname"]).u64("version")?;
                if version != expected_version {
                    return Err(
                        ctx.err(ErrorKind::Conflict, format!("is at version {version}, not {expected_version}"))
                    );
                }
                Err(ctx.err(
                    ErrorKind::InvalidRequest,
                    format!(
                        "updating from version {expected_version} needs version {}, got {}",
                        expected_version.saturating_add(1),
                        claim.version
                    ),
                ))
            })
            .await
    }

    async fn due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<DomainClaim>, StoreError> {
        let ctx = Ctx::new("due", format!("pending claims due at {now}"));
        let sql = self.db.sql(&format!(
            "SELECT {CLAIM_COLUMNS} FROM {{s}}.domain_claims
             WHERE status = $1 AND next_check_at <= $2 ORDER BY next_check_at, hostname LIMIT $3"
        ));
        let (pending, limit) = (name_of(ctx.op, &ClaimStatus::Pending)?, i64::from(limit));
        let rows = self.db.rows(&ctx, Phase::Read, "reading domain_claims", &sql, &[&pending, &now, &limit]).await?;
        rows.iter().map(|row| claim_from_row(ctx.op, row)).collect()
    }

    async fn put_mapping(&self, mapping: DomainMapping) -> Result<(), StoreError> {
        let ctx = Ctx::new("put_mapping", format!("mapping of hostname `{}`", mapping.hostname));
        let upsert = self.db.sql(
            "INSERT INTO {s}.domain_mappings AS m (hostname, tenant, channel) VALUES ($1, $2, $3)
             ON CONFLICT (hostname) DO UPDATE SET channel = EXCLUDED.channel WHERE m.tenant = EXCLUDED.tenant",
        );
        let holder = self.db.sql("SELECT tenant FROM {s}.domain_mappings WHERE hostname = $1");
        let (tenant, channel) = (mapping.tenant.as_str(), mapping.channel.as_str());
        let client = self.db.client(&ctx).await?;
        self.db
            .timed(&ctx, Phase::Autocommit, async {
                let n = execute(
                    &ctx,
                    &*client,
                    Phase::Autocommit,
                    "upserting domain_mappings",
                    &upsert,
                    &[&mapping.hostname, &tenant, &channel],
                )
                .await?;
                if n == 1 {
                    return Ok(());
                }
                let found =
                    query_opt(&ctx, &*client, Phase::Read, "reading domain_mappings", &holder, &[&mapping.hostname])
                        .await?;
                Err(match found {
                    Some(found) => {
                        let other =
                            RowReader::new(ctx.op, &found, "domain_mappings", &["hostname"]).get::<String>("tenant")?;
                        ctx.err(ErrorKind::AlreadyExists, format!("the hostname is mapped to tenant `{other}`"))
                    }
                    None => ctx.err(ErrorKind::Conflict, "the mapping was removed concurrently; retry"),
                })
            })
            .await
    }

    async fn mapping(&self, hostname: &str) -> Result<Option<DomainMapping>, StoreError> {
        let ctx = Ctx::new("mapping", format!("mapping of hostname `{hostname}`"));
        let sql = self.db.sql("SELECT hostname, tenant, channel FROM {s}.domain_mappings WHERE hostname = $1");
        let row = self.db.row_opt(&ctx, Phase::Read, "reading domain_mappings", &sql, &[&hostname]).await?;
        row.map(|row| mapping_from_row(ctx.op, &row)).transpose()
    }

    async fn remove_mapping(&self, hostname: &str) -> Result<(), StoreError> {
        let ctx = Ctx::new("remove_mapping", format!("mapping of hostname `{hostname}`"));
        let sql = self.db.sql("DELETE FROM {s}.domain_mappings WHERE hostname = $1");
        self.db.affected(&ctx, Phase::Autocommit, "deleting from domain_mappings", &sql, &[&hostname]).await.map(drop)
    }
}
