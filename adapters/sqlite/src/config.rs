//! Settings of a SQLite database and the adapter factory that builds one from configuration.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use commerce_ports::factory::{
    Adapter, AdapterFactory, BuildError, ParamSpec, ParamType, ParamValue, Params, PortKind,
};

use crate::backend::SqliteStores;

/// How long a connection waits for another writer's lock before giving up with `Unavailable`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per file database.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// SQLite counts its busy timeout in milliseconds in a C `int`.
const MAX_BUSY_TIMEOUT_MS: u64 = 2_147_483_647;

/// The path that means "a private in-memory database" in configuration.
pub const IN_MEMORY_PATH: &str = ":memory:";

/// Where the adapter runs its (blocking) SQLite calls.
///
/// Each store call is one short transaction (tens to a few hundred microseconds, most of it the commit's
/// `fsync`). Handing it to another thread and waking the caller again costs about as much as the call itself
/// on small machines; [`Execution::InPlace`] saves that where the host allows it (decision 012).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Execution {
    /// On tokio's blocking pool (`spawn_blocking`): one thread hand-off each way per call. Works in every
    /// tokio context, and a timeout around a store call fires on time.
    #[default]
    BlockingPool,
    /// On a multi-thread runtime, on the calling thread through `tokio::task::block_in_place` (tokio hands the
    /// worker's other tasks to another thread for the duration); on a current-thread runtime, on the blocking
    /// pool as [`Execution::BlockingPool`]. Only for hosts that know where their store calls run:
    /// - tokio panics on `block_in_place` inside a `LocalSet` (also on a multi-thread runtime) and in a
    ///   current-thread runtime that entered a multi-thread runtime's handle;
    /// - a call waiting for another writer's lock blocks its thread up to the busy timeout, and a
    ///   `tokio::time::timeout` (or `select!`) around it cannot end it sooner.
    InPlace,
}

impl Execution {
    /// The configuration spelling: `blocking_pool` or `in_place`.
    pub fn as_str(self) -> &'static str {
        match self {
            Execution::BlockingPool => "blocking_pool",
            Execution::InPlace => "in_place",
        }
    }

    fn parse(text: &str) -> Option<Execution> {
        match text {
            "blocking_pool" => Some(Execution::BlockingPool),
            "in_place" => Some(Execution::InPlace),
            _ => None,
        }
    }
}

/// Where a database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A file (created if missing; its directory must exist).
    File(PathBuf),
    /// A private in-memory database, gone when the last clone of its [`SqliteStores`] is dropped.
    Memory,
}

/// Settings of a SQLite database.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteConfig {
    location: Location,
    busy_timeout: Duration,
    pool_size: usize,
    execution: Execution,
}

impl SqliteConfig {
    /// A database file at `path` (created if missing; its directory must exist).
    pub fn file(path: impl Into<PathBuf>) -> SqliteConfig {
        SqliteConfig {
            location: Location::File(path.into()),
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            pool_size: DEFAULT_POOL_SIZE,
            execution: Execution::BlockingPool,
        }
    }

    /// A private in-memory database. It has one connection (several would each see their own empty
    /// database), so calls on it run one at a time.
    pub fn in_memory() -> SqliteConfig {
        SqliteConfig {
            location: Location::Memory,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            pool_size: 1,
            execution: Execution::BlockingPool,
        }
    }

    /// How long to wait for another writer's lock (default [`DEFAULT_BUSY_TIMEOUT`]); at most about 24 days,
    /// longer values are cut to that.
    pub fn with_busy_timeout(mut self, timeout: Duration) -> SqliteConfig {
        self.busy_timeout = timeout.min(Duration::from_millis(MAX_BUSY_TIMEOUT_MS));
        self
    }

    /// How many connections a file database keeps open (default [`DEFAULT_POOL_SIZE`], at least 1). Reads
    /// run in parallel on them; writes still take SQLite's one write lock in turn. Ignored in memory.
    pub fn with_pool_size(mut self, size: usize) -> SqliteConfig {
        self.pool_size = size.max(1);
        self
    }

    /// Where SQLite calls run (default [`Execution::BlockingPool`]).
    pub fn with_execution(mut self, execution: Execution) -> SqliteConfig {
        self.execution = execution;
        self
    }

    /// Where SQLite calls run.
    pub fn execution(&self) -> Execution {
        self.execution
    }

    /// The file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        match &self.location {
            Location::File(path) => Some(path),
            Location::Memory => None,
        }
    }

    /// The busy timeout.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The number of connections.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    pub(crate) fn location(&self) -> &Location {
        &self.location
    }

    /// The database as messages name it.
    pub(crate) fn label(&self) -> String {
        match &self.location {
            Location::File(path) => format!("SQLite database `{}`", path.display()),
            Location::Memory => "in-memory SQLite database".to_owned(),
        }
    }
}

/// Builds [`SqliteStores`] from configuration: adapter `sqlite` of port `store`.
///
/// Parameters: `path` (string, required: the database file, or `:memory:`), `busy_timeout_ms` (integer,
/// default 5000), `execution` (string, `blocking_pool` or `in_place`, default `blocking_pool`: see
/// [`Execution`]).
#[derive(Debug, Default, Clone, Copy)]
#[non_exhaustive]
pub struct SqliteStoreFactory;

impl SqliteStoreFactory {
    /// A factory.
    pub fn new() -> SqliteStoreFactory {
        SqliteStoreFactory
    }

    /// Checks parameters and turns them into settings, without touching the file system.
    ///
    /// # Errors
    /// [`BuildError`] naming `path`, `busy_timeout_ms` or `execution`.
    pub fn config(params: &Params) -> Result<SqliteConfig, BuildError> {
        let path = params.require_text("path")?;
        if path.trim().is_empty() {
            return Err(BuildError::param("path", "must name a database file (or `:memory:`)"));
        }
        let config = if path == IN_MEMORY_PATH { SqliteConfig::in_memory() } else { SqliteConfig::file(path) };
        let timeout_ms = params.integer("busy_timeout_ms")?.unwrap_or(5_000);
        let timeout_ms = u64::try_from(timeout_ms).ok().filter(|ms| *ms <= MAX_BUSY_TIMEOUT_MS).ok_or_else(|| {
            BuildError::param("busy_timeout_ms", format!("{timeout_ms} is outside 0..={MAX_BUSY_TIMEOUT_MS}"))
        })?;
        let execution = match params.text("execution")? {
            None => Execution::BlockingPool,
            Some(text) => Execution::parse(text).ok_or_else(|| {
                BuildError::param("execution", format!("`{text}` is not one of `blocking_pool`, `in_place`"))
            })?,
        };
        Ok(config.with_busy_timeout(Duration::from_millis(timeout_ms)).with_execution(execution))
    }
}

#[async_trait]
impl AdapterFactory for SqliteStoreFactory {
    fn name(&self) -> &'static str {
        "sqlite"
    }

    fn port(&self) -> PortKind {
        PortKind::Store
    }

    fn description(&self) -> &'static str {
        "every store in one embedded SQLite database file (WAL, migrated on open)"
    }

    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::required("path", ParamType::String, "the database file (created if missing), or `:memory:`"),
            ParamSpec::with_default(
                "busy_timeout_ms",
                ParamType::Integer,
                ParamValue::Integer(5_000),
                "milliseconds to wait for another writer's lock before failing with `unavailable`",
            ),
            ParamSpec::with_default(
                "execution",
                ParamType::String,
                ParamValue::Text(Execution::BlockingPool.as_str().to_owned()),
                "where SQLite calls run: `blocking_pool`, or `in_place` on a multi-thread runtime (never in a LocalSet)",
            ),
        ]
    }

    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let config = SqliteStoreFactory::config(&params)?;
        if let Some(path) = config.path() {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !dir.is_dir() {
                return Err(BuildError::param(
                    "path",
                    format!("directory `{}` of `{}` does not exist", dir.display(), path.display()),
                ));
            }
        }
        let stores = SqliteStores::open_with(config).await.map_err(|e| BuildError::param("path", e.to_string()))?;
        Ok(Adapter::Store(stores.store_set()))
    }
}
