//! The connection pool, the statement helpers every store uses, and [`PostgresStores`], the public handle.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use std::time::Instant;

use commerce_ports::StoreError;
use commerce_ports::stores::{PaymentLedger, StoreSet};
use deadpool_postgres::{
    GenericClient, Hook, HookError, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::config::{PostgresOptions, PostgresUrl};
use crate::error::{Ctx, Phase};
use crate::schema;
use crate::{domains, hardware, offline_queue, payments, replication};

/// What every store of one [`PostgresStores`] shares: the pool, the schema and the timeouts.
pub(crate) struct Db {
    pool: Pool,
    url: PostgresUrl,
    schema: String,
    quoted_schema: String,
    pool_size: usize,
    operation_timeout: Duration,
    discard: Discard,
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db")
            .field("server", &format_args!("{}", self.url))
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// A pooled connection for one operation. Dropping it returns the connection to the pool, but if an operation
/// under its [`Ctx`] timed out the connection is marked, and the pool discards it (closing it) instead of
/// handing it out again, since a statement may still be running on it.
pub(crate) struct Lease<'a> {
    object: Object,
    ctx: &'a Ctx,
    discard: &'a Discard,
}

impl std::ops::Deref for Lease<'_> {
    type Target = Object;
    fn deref(&self) -> &Object {
        &self.object
    }
}

impl std::ops::DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Object {
        &mut self.object
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if self.ctx.has_timed_out() {
            self.discard.mark(Object::metrics(&self.object).created);
        }
    }
}

/// Connections (known by their creation instant) to discard instead of recycling.
#[derive(Debug, Default, Clone)]
pub(crate) struct Discard(Arc<Mutex<HashSet<Instant>>>);

impl Discard {
    fn mark(&self, created: Instant) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).insert(created);
    }

    /// Whether the connection created at `created` is marked (unmarking it).
    fn take(&self, created: Instant) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).remove(&created)
    }
}

/// One parameter of a statement.
pub(crate) type SqlParam<'a> = &'a (dyn ToSql + Sync);

/// The parameters of one statement.
pub(crate) type Params<'a> = &'a [SqlParam<'a>];

impl Db {
    /// `template` with `{s}` replaced by the quoted schema.
    pub(crate) fn sql(&self, template: &str) -> String {
        template.replace("{s}", &self.quoted_schema)
    }

    /// A pooled connection; waiting is bounded by the connect timeout and sends nothing. If an operation under
    /// `ctx` runs out of time, the connection is closed when the lease is dropped instead of being recycled.
    pub(crate) async fn client<'a>(&'a self, ctx: &'a Ctx) -> Result<Lease<'a>, StoreError> {
        let object = self.pool.get().await.map_err(|e| ctx.pool(e))?;
        Ok(Lease { object, ctx, discard: &self.discard })
    }

    /// Runs `work` within the operation timeout; running out is mapped according to `phase`.
    pub(crate) async fn timed<T>(
        &self,
        ctx: &Ctx,
        phase: Phase,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        tokio::time::timeout(self.operation_timeout, work).await.unwrap_or_else(|_| {
            // The statement may still be running (or its answer on the way): the connection must not serve
            // another operation.
            ctx.mark_timed_out();
            Err(ctx.timeout(phase, self.operation_timeout))
        })
    }

    /// Runs one statement on a pooled connection within the operation timeout, returning its rows.
    pub(crate) async fn rows(
        &self,
        ctx: &Ctx,
        phase: Phase,
        step: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client(ctx).await?;
        self.timed(ctx, phase, query(ctx, &*client, phase, step, sql, params)).await
    }

    /// Like [`Db::rows`], for at most one row.
    pub(crate) async fn row_opt(
        &self,
        ctx: &Ctx,
        phase: Phase,
        step: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StoreError> {
        let client = self.client(ctx).await?;
        self.timed(ctx, phase, query_opt(ctx, &*client, phase, step, sql, params)).await
    }

    /// Like [`Db::rows`], returning the number of rows affected.
    pub(crate) async fn affected(
        &self,
        ctx: &Ctx,
        phase: Phase,
        step: &str,
        sql: &str,
        params: Params<'_>,
    ) -> Result<u64, StoreError> {
        let client = self.client(ctx).await?;
        self.timed(ctx, phase, execute(ctx, &*client, phase, step, sql, params)).await
    }

    /// Starts a transaction (READ COMMITTED: every statement sees what committed before it started, and
    /// conditional updates re-check their condition on the latest row version).
    pub(crate) async fn begin<'c>(&self, ctx: &Ctx, client: &'c mut Object) -> Result<Transaction<'c>, StoreError> {
        self.timed(ctx, Phase::Uncommitted, async {
            // Explicit, not the server's default: the contracts' atomicity arguments (advisory locks, conditional
            // updates re-checked on the latest row) hold under READ COMMITTED, not under a snapshot taken earlier.
            client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
                .start()
                .await
                .map_err(|e| ctx.pg(Phase::Uncommitted, "starting a transaction", e))
        })
        .await
    }

    /// Commits; a lost answer leaves the outcome unknown.
    pub(crate) async fn commit(&self, ctx: &Ctx, tx: Transaction<'_>) -> Result<(), StoreError> {
        self.timed(ctx, Phase::Commit, async { tx.commit().await.map_err(|e| ctx.pg(Phase::Commit, "committing", e)) })
            .await
    }

    /// The schema's name (unquoted).
    pub(crate) fn schema(&self) -> &str {
        &self.schema
    }
}

/// Prepares (cached per connection) and runs a statement, returning its rows.
pub(crate) async fn query<C: GenericClient>(
    ctx: &Ctx,
    client: &C,
    phase: Phase,
    step: &str,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(|e| ctx.pg(Phase::Read, step, e))?;
    client.query(&statement, params).await.map_err(|e| ctx.pg(phase, step, e))
}

/// Like [`query`], for at most one row.
pub(crate) async fn query_opt<C: GenericClient>(
    ctx: &Ctx,
    client: &C,
    phase: Phase,
    step: &str,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(|e| ctx.pg(Phase::Read, step, e))?;
    client.query_opt(&statement, params).await.map_err(|e| ctx.pg(phase, step, e))
}

/// Like [`query`], returning the number of rows affected.
pub(crate) async fn execute<C: GenericClient>(
    ctx: &Ctx,
    client: &C,
    phase: Phase,
    step: &str,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(|e| ctx.pg(Phase::Read, step, e))?;
    client.execute(&statement, params).await.map_err(|e| ctx.pg(phase, step, e))
}

// ---------------------------------------------------------------------------------------------------------

/// Every store port on one PostgreSQL schema, for several service instances sharing state.
///
/// Each instance holds its own pool; all concurrency control is in the database (unique keys,
/// `INSERT ... ON CONFLICT`, conditional updates, transactions), so any number of instances may share a
/// schema. Cloning is cheap and shares the pool. `Debug` shows the server without its password.
#[derive(Clone)]
pub struct PostgresStores {
    db: Arc<Db>,
    applied: Arc<[u32]>,
}

impl PostgresStores {
    /// Connects, creates the schema if needed and runs the embedded migrations.
    ///
    /// `url` is a connection string (`postgres://user:password@host:5432/database`, or the `key=value` form);
    /// see [`PostgresUrl`] for TLS.
    ///
    /// # Errors
    /// `Configuration` (bad URL or option, or a schema newer than this build), `Authentication`,
    /// `Unavailable` (server unreachable); messages never contain the password.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<PostgresStores, StoreError> {
        PostgresStores::connect_url(PostgresUrl::parse(url)?, options).await
    }

    /// Like [`connect`](PostgresStores::connect), with a parsed URL.
    ///
    /// # Errors
    /// As [`connect`](PostgresStores::connect).
    pub async fn connect_url(url: PostgresUrl, options: PostgresOptions) -> Result<PostgresStores, StoreError> {
        options.check().map_err(|p| p.into_store_error("connect"))?;
        let mut config = url.config().clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        if config.get_application_name().is_none() {
            config.application_name("commerce-postgres");
        }
        // The server ends what the client stops waiting for: a statement running past the operation timeout is
        // cancelled, and a session left idle inside a transaction is closed. (A connection whose operation timed
        // out is also discarded, see `Lease`.)
        // Slightly later than the client's own timeout, so the client's answer (outcome unknown, connection
        // discarded) is deterministic and the server's cancellation only cleans up after it.
        let margin = (options.operation_timeout / 10).max(Duration::from_millis(100));
        let timeout_ms = options.operation_timeout.saturating_add(margin).as_millis().max(1);
        let session = format!("-c statement_timeout={timeout_ms} -c idle_in_transaction_session_timeout={timeout_ms}");
        let session = match config.get_options() {
            Some(existing) if !existing.trim().is_empty() => format!("{existing} {session}"),
            _ => session,
        };
        config.options(session);
        // `Fast` recycling only checks that the connection is open: a connection whose operation timed out never
        // gets back to the pool (see `Lease`), so nothing can still be running on a recycled one.
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let ctx = Ctx::new("connect", format!("schema `{}` on {url}", options.schema));
        let discard = Discard::default();
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .pre_recycle(Hook::sync_fn({
                let discard = discard.clone();
                move |_, metrics| {
                    if discard.take(metrics.created) {
                        Err(HookError::message("an operation on this connection timed out"))
                    } else {
                        Ok(())
                    }
                }
            }))
            .build()
            .map_err(|e| ctx.err(commerce_ports::ErrorKind::Configuration, format!("building the pool: {e}")))?;
        let db = Db {
            pool,
            url,
            quoted_schema: schema::quote(&options.schema),
            schema: options.schema,
            pool_size: options.pool_size,
            operation_timeout: options.operation_timeout,
            discard,
        };
        let mut client = db.client(&ctx).await?;
        let applied = tokio::time::timeout(db.operation_timeout, schema::migrate(&mut client, &db.schema))
            .await
            .map_err(|_| {
                ctx.mark_timed_out();
                ctx.err(
                    commerce_ports::ErrorKind::Unavailable,
                    format!(
                        "the migrations did not finish within {:?}; connecting again is safe",
                        db.operation_timeout
                    ),
                )
            })??;
        drop(client);
        Ok(PostgresStores { db: Arc::new(db), applied: applied.into() })
    }

    /// Every store port, sharing this pool.
    pub fn store_set(&self) -> StoreSet {
        StoreSet::new(
            Arc::new(payments::PgIdempotencyStore::new(Arc::clone(&self.db))),
            Arc::new(payments::PgPaymentIntentStore::new(Arc::clone(&self.db))),
            Arc::new(payments::PgWebhookEventStore::new(Arc::clone(&self.db))),
            Arc::new(domains::PgDomainClaimStore::new(Arc::clone(&self.db))),
            Arc::new(replication::PgReplicationStore::new(Arc::clone(&self.db))),
            Arc::new(hardware::PgPrintJobStore::new(Arc::clone(&self.db))),
            Arc::new(hardware::PgPairingStore::new(Arc::clone(&self.db))),
            Arc::new(offline_queue::PgOfflineQueueStore::new(Arc::clone(&self.db))),
        )
        .with_ledger(self.ledger())
    }

    /// The payment ledger: intents and idempotency records written together, one statement (one round trip,
    /// one transaction) per call on the usual paths (for `Payments::with_ledger`).
    pub fn ledger(&self) -> Arc<dyn PaymentLedger> {
        Arc::new(payments::PgPaymentLedger::new(Arc::clone(&self.db)))
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        self.db.schema()
    }

    /// The server, without its password.
    pub fn url(&self) -> &PostgresUrl {
        &self.db.url
    }

    /// The migration versions this instance applied when it connected; empty when the schema was already
    /// current (another instance, or an earlier start, applied them).
    pub fn applied_migrations(&self) -> &[u32] {
        &self.applied
    }

    /// Closes the pool: idle connections are dropped and later operations fail with `Unavailable`.
    pub fn close(&self) {
        self.db.pool.close();
    }
}

impl fmt::Debug for PostgresStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStores")
            .field("server", &format_args!("{}", self.db.url))
            .field("schema", &self.db.schema)
            .field("pool_size", &self.db.pool_size)
            .field("schema_version", &schema::SCHEMA_VERSION)
            .finish()
    }
}
