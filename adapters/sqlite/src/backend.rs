//! The database handle: a small pool of connections, used in place or from `spawn_blocking` (see
//! [`Execution`]), and [`SqliteStores`].

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use commerce_ports::stores::{PaymentLedger, StoreSet};
use commerce_ports::{ErrorKind, StoreError};
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::config::{Execution, Location, SqliteConfig};
use crate::devices::{SqlitePairingStore, SqlitePrintJobStore};
use crate::domains::SqliteDomainClaimStore;
use crate::error::{SqlContext, is_busy, sql_error};
use crate::offline_queue::SqliteOfflineQueueStore;
use crate::payments::{SqliteIdempotencyStore, SqlitePaymentIntentStore, SqlitePaymentLedger, SqliteWebhookEventStore};
use crate::replication::SqliteReplicationStore;
use crate::schema;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A pool of open connections to one database. Every call takes one connection on a thread that may block
/// (see [`Execution`]) and gives it back afterwards, also when the call panicked.
pub(crate) struct Database {
    label: String,
    size: usize,
    execution: Execution,
    idle: Mutex<Vec<Connection>>,
    returned: Condvar,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database").field("database", &self.label).field("connections", &self.size).finish()
    }
}

/// A connection taken from the pool; dropping it gives it back. `conn` is `None` only inside `drop`.
struct Checkout<'a> {
    db: &'a Database,
    conn: Option<Connection>,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            // A dropped `Transaction` rolls back, but ignores a failing rollback; never hand the next caller
            // a connection that is still inside a transaction.
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            // A ledger claim relaxes `synchronous` for its own commit and restores it; should that restore not
            // have run (an error, a panic), the next caller still gets a connection whose commits are FULL.
            let _ = set_full_sync(&conn);
            lock(&self.db.idle).push(conn);
            self.db.returned.notify_one();
        }
    }
}

impl Database {
    /// Opens `config.pool_size()` connections (one for an in-memory database), configures each and brings
    /// the schema up to date. Blocking. Returns the migrations this open applied.
    fn open_blocking(config: &SqliteConfig) -> Result<(Database, Vec<u32>), StoreError> {
        let label = config.label();
        let size = match config.location() {
            Location::Memory => 1,
            Location::File(_) => config.pool_size().max(1),
        };
        let mut first = open_connection(config, &label)?;
        let applied = schema::migrate(&mut first, &label)?;
        let mut idle = Vec::with_capacity(size);
        idle.push(first);
        for _ in 1..size {
            idle.push(open_connection(config, &label)?);
        }
        let execution = config.execution();
        Ok((Database { label, size, execution, idle: Mutex::new(idle), returned: Condvar::new() }, applied))
    }

    fn checkout(&self) -> Checkout<'_> {
        let mut idle = lock(&self.idle);
        loop {
            if let Some(conn) = idle.pop() {
                return Checkout { db: self, conn: Some(conn) };
            }
            idle = self.returned.wait(idle).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Runs `work` with a connection: on tokio's blocking pool, or in place on a multi-thread runtime when
    /// configured so ([`Execution::InPlace`]).
    pub(crate) async fn run<T, F>(self: &Arc<Self>, operation: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.execution == Execution::InPlace && multi_thread_runtime() {
            // `block_in_place` moves this worker's other tasks to another thread, then runs `work` here: no
            // hand-off to another thread and back, which costs as much as a short transaction.
            return tokio::task::block_in_place(|| self.with_connection(operation, work));
        }
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || db.with_connection(operation, work)).await.map_err(|e| {
            StoreError::new(ErrorKind::Unexpected, operation, format!("the SQLite call on {} failed: {e}", self.label))
        })?
    }

    /// Runs `work` with a connection from the pool, on this thread (blocking).
    fn with_connection<T>(
        &self,
        operation: &'static str,
        work: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut checkout = self.checkout();
        match checkout.conn.as_mut() {
            Some(conn) => work(conn),
            None => Err(StoreError::new(ErrorKind::Unexpected, operation, "the connection pool gave no connection")),
        }
    }
}

/// Whether the current runtime is a multi-thread one, where `tokio::task::block_in_place` runs (on its workers
/// and in its `block_on`; not inside a `LocalSet`, see [`Execution::InPlace`]); on a current-thread runtime it
/// would panic.
fn multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

fn open_connection(config: &SqliteConfig, label: &str) -> Result<Connection, StoreError> {
    const OP: &str = "open";
    let conn = match config.location() {
        Location::Memory => Connection::open_in_memory(),
        Location::File(path) => Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ),
    }
    .context(OP, || format!("opening {label}"))?;
    conn.busy_timeout(config.busy_timeout()).context(OP, || format!("setting busy_timeout on {label}"))?;
    conn.pragma_update(None, "foreign_keys", true).context(OP, || format!("turning foreign keys on in {label}"))?;
    // The query planner stability guarantee: a cached statement keeps its plan whatever its parameters. Without
    // it SQLite re-prepares a statement such as `... WHERE tenant = ?1 AND intent_id = ?2 ORDER BY sequence` on
    // every new binding (the bundled build has STAT4), which cost a quarter of a claim's time.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .context(OP, || format!("enabling the query planner stability guarantee on {label}"))?;
    if let Location::File(_) = config.location() {
        let mode = switch_to_wal(&conn, config, label)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::new(
                ErrorKind::Configuration,
                OP,
                format!("{label} stays in journal mode `{mode}`; WAL is required (is it on a network file system?)"),
            ));
        }
        // WAL with synchronous=FULL: a commit is on disk before the call returns, as the contracts ask.
        conn.pragma_update(None, "synchronous", "FULL").context(OP, || format!("setting synchronous on {label}"))?;
        // Overwrite what a write removes from a page (an offline payment's card data once it settles,
        // decision 014) where that costs no extra I/O.
        conn.pragma_update(None, "secure_delete", "FAST")
            .context(OP, || format!("setting secure_delete on {label}"))?;
    }
    Ok(conn)
}

/// Sets `journal_mode = WAL` and returns the mode SQLite reports. Changing the mode of a new file needs a
/// lock that SQLite does not wait for with the busy handler, so two connections opening one new file at once
/// can see `SQLITE_BUSY`: that is retried here until the busy timeout has passed.
fn switch_to_wal(conn: &Connection, config: &SqliteConfig, label: &str) -> Result<String, StoreError> {
    let deadline = Instant::now() + config.busy_timeout();
    let mut pause = Duration::from_millis(1);
    loop {
        match conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get::<_, String>(0)) {
            Ok(mode) => return Ok(mode),
            Err(e) if is_busy(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(sql_error("open", format!("switching {label} to WAL"), e)),
        }
    }
}

/// `PRAGMA synchronous = FULL` through the statement cache (it runs on every return to the pool).
fn set_full_sync(conn: &Connection) -> rusqlite::Result<usize> {
    conn.prepare_cached("PRAGMA synchronous = FULL").and_then(|mut s| s.execute([]))
}

/// Starts a `BEGIN IMMEDIATE` transaction: it takes the write lock at once (waiting up to `busy_timeout`), so
/// a read-then-write inside it cannot be interleaved with another writer, in this process or another.
pub(crate) fn immediate<'c>(conn: &'c mut Connection, operation: &'static str) -> Result<Transaction<'c>, StoreError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate).context(operation, || "starting a write transaction")
}

/// Every store port backed by one SQLite database.
///
/// Cloning is cheap and shares the connections. Opening the same file from several `SqliteStores` (or
/// processes) is safe: every contract's atomicity comes from SQLite transactions and constraints, not from
/// locks in this process.
#[derive(Debug, Clone)]
pub struct SqliteStores {
    db: Arc<Database>,
    applied: Arc<[u32]>,
}

impl SqliteStores {
    /// Opens (creating if needed) the database file at `path` with default settings and migrates it.
    ///
    /// # Errors
    /// `Configuration` when the file cannot be opened (missing directory, not a database, read-only) or has
    /// a newer schema than this build knows; `Unavailable` when it stays locked past the busy timeout.
    pub async fn open(path: impl AsRef<Path>) -> Result<SqliteStores, StoreError> {
        SqliteStores::open_with(SqliteConfig::file(path.as_ref())).await
    }

    /// A fresh private in-memory database (one connection), for tests and demos.
    ///
    /// # Errors
    /// As [`open`](SqliteStores::open); in practice only when SQLite cannot allocate.
    pub async fn open_in_memory() -> Result<SqliteStores, StoreError> {
        SqliteStores::open_with(SqliteConfig::in_memory()).await
    }

    /// Opens a database as configured.
    ///
    /// # Errors
    /// As [`open`](SqliteStores::open).
    pub async fn open_with(config: SqliteConfig) -> Result<SqliteStores, StoreError> {
        let (db, applied) =
            tokio::task::spawn_blocking(move || Database::open_blocking(&config)).await.map_err(|e| {
                StoreError::new(ErrorKind::Unexpected, "open", format!("opening the database failed: {e}"))
            })??;
        Ok(SqliteStores { db: Arc::new(db), applied: applied.into() })
    }

    /// The migrations this open applied, oldest first (empty when the file was up to date).
    pub fn applied_migrations(&self) -> &[u32] {
        &self.applied
    }

    /// Every store port, sharing this database.
    pub fn store_set(&self) -> StoreSet {
        StoreSet::new(
            Arc::new(SqliteIdempotencyStore::new(Arc::clone(&self.db))),
            Arc::new(SqlitePaymentIntentStore::new(Arc::clone(&self.db))),
            Arc::new(SqliteWebhookEventStore::new(Arc::clone(&self.db))),
            Arc::new(SqliteDomainClaimStore::new(Arc::clone(&self.db))),
            Arc::new(SqliteReplicationStore::new(Arc::clone(&self.db))),
            Arc::new(SqlitePrintJobStore::new(Arc::clone(&self.db))),
            Arc::new(SqlitePairingStore::new(Arc::clone(&self.db))),
            Arc::new(SqliteOfflineQueueStore::new(Arc::clone(&self.db))),
        )
        .with_ledger(self.ledger())
    }

    /// The payment ledger: intents and idempotency records written together, one transaction per call (what
    /// [`store_set`](SqliteStores::store_set) puts in [`StoreSet::ledger`]).
    pub fn ledger(&self) -> Arc<dyn PaymentLedger> {
        Arc::new(SqlitePaymentLedger::new(Arc::clone(&self.db)))
    }
}
