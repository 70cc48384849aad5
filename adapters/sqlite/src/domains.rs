//! Custom-domain claims and hostname mappings.

use std::sync::Arc;

use async_trait::async_trait;
use commerce_ports::stores::{ClaimStatus, DomainClaim, DomainClaimStore, DomainMapping};
use commerce_ports::{ChannelId, ErrorKind, StoreError, TenantId};
use rusqlite::types::ToSql;
use rusqlite::{OptionalExtension, Row, params, params_from_iter};
use time::OffsetDateTime;

use crate::backend::{Database, immediate};
use crate::error::SqlContext;
use crate::mapping::{RowSource, enum_to_sql, limit_to_sql, time_to_sql, u64_to_sql};

/// [`DomainClaimStore`] on tables `domain_claims` (the current claim of each hostname) and
/// `domain_mappings`.
#[derive(Debug, Clone)]
pub(crate) struct SqliteDomainClaimStore {
    db: Arc<Database>,
}

impl SqliteDomainClaimStore {
    pub(crate) fn new(db: Arc<Database>) -> SqliteDomainClaimStore {
        SqliteDomainClaimStore { db }
    }
}

const CLAIM_COLUMNS: &str =
    "hostname, tenant, channel, token, status, attempts, next_check_at, last_failure, version, created_at, updated_at";

/// A claim as column values.
#[derive(Debug)]
struct ClaimValues {
    hostname: String,
    tenant: String,
    channel: String,
    token: String,
    status: String,
    attempts: i64,
    next_check_at: i64,
    last_failure: Option<String>,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

impl ClaimValues {
    /// The values as `?1` to `?11` of the claim statements, so the upsert and the update bind alike.
    fn columns(&self) -> [&dyn ToSql; 11] {
        [
            &self.hostname,
            &self.tenant,
            &self.channel,
            &self.token,
            &self.status,
            &self.attempts,
            &self.next_check_at,
            &self.last_failure,
            &self.version,
            &self.created_at,
            &self.updated_at,
        ]
    }

    fn new(op: &'static str, claim: DomainClaim) -> Result<ClaimValues, StoreError> {
        Ok(ClaimValues {
            status: enum_to_sql(op, "status", &claim.status)?,
            attempts: i64::from(claim.attempts),
            next_check_at: time_to_sql(op, "next_check_at", claim.next_check_at)?,
            version: u64_to_sql(op, "version", claim.version)?,
            created_at: time_to_sql(op, "created_at", claim.created_at)?,
            updated_at: time_to_sql(op, "updated_at", claim.updated_at)?,
            hostname: claim.hostname,
            tenant: claim.tenant.to_string(),
            channel: claim.channel.to_string(),
            token: claim.token,
            last_failure: claim.last_failure,
        })
    }

    fn read(row: &Row<'_>) -> rusqlite::Result<ClaimValues> {
        Ok(ClaimValues {
            hostname: row.get(0)?,
            tenant: row.get(1)?,
            channel: row.get(2)?,
            token: row.get(3)?,
            status: row.get(4)?,
            attempts: row.get(5)?,
            next_check_at: row.get(6)?,
            last_failure: row.get(7)?,
            version: row.get(8)?,
            created_at: row.get(9)?,
            updated_at: row.get(10)?,
        })
    }

    fn into_claim(self, op: &'static str) -> Result<DomainClaim, StoreError> {
        let row_key = format!("(hostname `{}`)", self.hostname);
        let source = RowSource { operation: op, table: "domain_claims", key: &row_key };
        let mut claim = DomainClaim::new(
            self.hostname,
            source.parse("tenant", self.tenant, TenantId::new)?,
            source.parse("channel", self.channel, ChannelId::new)?,
            self.token,
            source.time("created_at", self.created_at)?,
        );
        claim.status = source.enum_value("status", self.status)?;
        claim.attempts = source.small_unsigned("attempts", self.attempts)?;
        claim.next_check_at = source.time("next_check_at", self.next_check_at)?;
        claim.last_failure = self.last_failure;
        claim.version = source.unsigned("version", self.version)?;
        claim.updated_at = source.time("updated_at", self.updated_at)?;
        Ok(claim)
    }
}

fn read_claim(
    conn: &rusqlite::Connection,
    op: &'static str,
    hostname: &str,
) -> Result<Option<DomainClaim>, StoreError> {
    conn.prepare_cached(&format!("SELECT {CLAIM_COLUMNS} FROM domain_claims WHERE hostname = ?1"))
        .and_then(|mut s| s.query_row(params![hostname], ClaimValues::read).optional())
        .context(op, || format!("reading the claim of `{hostname}`"))?
        .map(|v| v.into_claim(op))
        .transpose()
}

/// Names of the statuses that hold a hostname.
fn live_statuses(op: &'static str) -> Result<(String, String), StoreError> {
    Ok((enum_to_sql(op, "status", &ClaimStatus::Pending)?, enum_to_sql(op, "status", &ClaimStatus::Verified)?))
}

#[async_trait]
impl DomainClaimStore for SqliteDomainClaimStore {
    async fn create(&self, claim: DomainClaim) -> Result<(), StoreError> {
        const OP: &str = "create";
        let v = ClaimValues::new(OP, claim)?;
        let (pending, verified) = live_statuses(OP)?;
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                // One statement: inserts, or replaces a released or expired claim; a live claim stays.
                let written = tx
                    .prepare_cached(&format!(
                        "INSERT INTO domain_claims ({CLAIM_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                         ON CONFLICT (hostname) DO UPDATE SET tenant = excluded.tenant, channel = excluded.channel,
                             token = excluded.token, status = excluded.status, attempts = excluded.attempts,
                             next_check_at = excluded.next_check_at, last_failure = excluded.last_failure,
                             version = excluded.version, created_at = excluded.created_at,
                             updated_at = excluded.updated_at
                         WHERE domain_claims.status NOT IN (?12, ?13)"
                    ))
                    .and_then(|mut s| {
                        s.execute(params_from_iter(v.columns().into_iter().chain([&pending as &dyn ToSql, &verified])))
                    })
                    .context(OP, || format!("storing the claim of `{}`", v.hostname))?;
                if written == 0 {
                    let holder = read_claim(&tx, OP, &v.hostname)?.map(|c| c.tenant.to_string()).unwrap_or_default();
                    return Err(StoreError::new(
                        ErrorKind::AlreadyExists,
                        OP,
                        format!("hostname `{}` already has a live claim by tenant `{holder}`", v.hostname),
                    ));
                }
                tx.commit().context(OP, || format!("committing the claim of `{}`", v.hostname))
            })
            .await
    }

    async fn get(&self, hostname: &str) -> Result<Option<DomainClaim>, StoreError> {
        const OP: &str = "get";
        let hostname = hostname.to_owned();
        self.db.run(OP, move |conn| read_claim(conn, OP, &hostname)).await
    }

    async fn update(&self, claim: DomainClaim, expected_version: u64) -> Result<(), StoreError> {
        const OP: &str = "update";
        let next = expected_version.checked_add(1).ok_or_else(|| StoreError::invalid(OP, "version overflow"))?;
        let new_version = claim.version;
        let v = ClaimValues::new(OP, claim)?;
        let expected = u64_to_sql(OP, "expected_version", expected_version)?;
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                // A wrong new version is never written; it is reported after NotFound and Conflict, which
                // say more.
                let updated = if new_version == next {
                    tx.prepare_cached(
                        "UPDATE domain_claims SET tenant = ?2, channel = ?3, token = ?4, status = ?5, attempts = ?6,
                             next_check_at = ?7, last_failure = ?8, version = ?9, created_at = ?10, updated_at = ?11
                         WHERE hostname = ?1 AND version = ?12",
                    )
                    .and_then(|mut s| {
                        s.execute(params_from_iter(v.columns().into_iter().chain([&expected as &dyn ToSql])))
                    })
                    .context(OP, || format!("updating the claim of `{}`", v.hostname))?
                } else {
                    0
                };
                if updated == 0 {
                    let stored = tx
                        .prepare_cached("SELECT version FROM domain_claims WHERE hostname = ?1")
                        .and_then(|mut s| s.query_row(params![v.hostname], |r| r.get::<_, i64>(0)).optional())
                        .context(OP, || format!("reading the version of the claim of `{}`", v.hostname))?;
                    return Err(match stored {
                        None => StoreError::new(ErrorKind::NotFound, OP, format!("no claim for `{}`", v.hostname)),
                        Some(stored) if stored != expected => StoreError::new(
                            ErrorKind::Conflict,
                            OP,
                            format!("claim `{}` is at version {stored}, not {expected}", v.hostname),
                        ),
                        Some(_) => StoreError::invalid(OP, format!("new version must be {next}, got {new_version}")),
                    });
                }
                tx.commit().context(OP, || format!("committing the claim of `{}`", v.hostname))
            })
            .await
    }

    async fn due(&self, now: OffsetDateTime, limit: u32) -> Result<Vec<DomainClaim>, StoreError> {
        const OP: &str = "due";
        let now = time_to_sql(OP, "now", now)?;
        let pending = enum_to_sql(OP, "status", &ClaimStatus::Pending)?;
        let limit = limit_to_sql(limit);
        self.db
            .run(OP, move |conn| {
                conn.prepare_cached(&format!(
                    "SELECT {CLAIM_COLUMNS} FROM domain_claims WHERE status = ?1 AND next_check_at <= ?2
                     ORDER BY next_check_at, hostname LIMIT ?3"
                ))
                .and_then(|mut s| {
                    s.query_map(params![pending, now, limit], ClaimValues::read)?.collect::<Result<Vec<_>, _>>()
                })
                .context(OP, || "listing claims due for a check")?
                .into_iter()
                .map(|v| v.into_claim(OP))
                .collect()
            })
            .await
    }

    async fn put_mapping(&self, mapping: DomainMapping) -> Result<(), StoreError> {
        const OP: &str = "put_mapping";
        let (hostname, tenant, channel) = (mapping.hostname, mapping.tenant.to_string(), mapping.channel.to_string());
        self.db
            .run(OP, move |conn| {
                let tx = immediate(conn, OP)?;
                // One statement: creates, or re-points the same tenant's mapping; another tenant's stays.
                let written = tx
                    .prepare_cached(
                        "INSERT INTO domain_mappings (hostname, tenant, channel) VALUES (?1, ?2, ?3)
                         ON CONFLICT (hostname) DO UPDATE SET channel = excluded.channel
                         WHERE domain_mappings.tenant = excluded.tenant",
                    )
                    .and_then(|mut s| s.execute(params![hostname, tenant, channel]))
                    .context(OP, || format!("storing the mapping of `{hostname}`"))?;
                if written == 0 {
                    let holder: Option<String> = tx
                        .prepare_cached("SELECT tenant FROM domain_mappings WHERE hostname = ?1")
                        .and_then(|mut s| s.query_row(params![hostname], |r| r.get(0)).optional())
                        .context(OP, || format!("reading the mapping of `{hostname}`"))?;
                    return Err(StoreError::new(
                        ErrorKind::AlreadyExists,
                        OP,
                        format!("hostname `{hostname}` is mapped to tenant `{}`", holder.unwrap_or_default()),
                    ));
                }
                tx.commit().context(OP, || format!("committing the mapping of `{hostname}`"))
            })
            .await
    }

    async fn mapping(&self, hostname: &str) -> Result<Option<DomainMapping>, StoreError> {
        const OP: &str = "mapping";
        let hostname = hostname.to_owned();
        self.db
            .run(OP, move |conn| {
                let row: Option<(String, String)> = conn
                    .prepare_cached("SELECT tenant, channel FROM domain_mappings WHERE hostname = ?1")
                    .and_then(|mut s| s.query_row(params![hostname], |r| Ok((r.get(0)?, r.get(1)?))).optional())
                    .context(OP, || format!("reading the mapping of `{hostname}`"))?;
                let Some((tenant, channel)) = row else { return Ok(None) };
                let row_key = format!("(hostname `{hostname}`)");
                let source = RowSource { operation: OP, table: "domain_mappings", key: &row_key };
                let tenant = source.parse("tenant", tenant, TenantId::new)?;
                let channel = source.parse("channel", channel, ChannelId::new)?;
                Ok(Some(DomainMapping::new(hostname.clone(), tenant, channel)))
            })
            .await
    }

    async fn remove_mapping(&self, hostname: &str) -> Result<(), StoreError> {
        const OP: &str = "remove_mapping";
        let hostname = hostname.to_owned();
        self.db
            .run(OP, move |conn| {
                conn.prepare_cached("DELETE FROM domain_mappings WHERE hostname = ?1")
                    .and_then(|mut s| s.execute(params![hostname]))
                    .map(drop)
                    .context(OP, || format!("removing the mapping of `{hostname}`"))
            })
            .await
    }
}
