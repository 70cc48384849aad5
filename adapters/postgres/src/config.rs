//! Configuration: the connection URL (whose password never appears in `Debug` or `Display`), the options of
//! a connection pool, and the adapter factory the runtime wiring uses.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use commerce_ports::factory::{
    Adapter, AdapterFactory, BuildError, ParamSpec, ParamType, ParamValue, Params, PortKind,
};
use commerce_ports::{ErrorKind, StoreError};
use tokio_postgres::config::{Host, SslMode};

use crate::client::PostgresStores;

/// The schema used when none is configured.
pub const DEFAULT_SCHEMA: &str = "commerce";

/// The pool size used when none is configured.
pub const DEFAULT_POOL_SIZE: usize = 8;

/// The largest pool size accepted (PostgreSQL's default `max_connections` is 100, shared by every instance).
pub const MAX_POOL_SIZE: usize = 256;

const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of a [`PostgresStores`] pool. The connection itself (host, user, password, database, `sslmode`)
/// is in the URL.
///
/// ```
/// use std::time::Duration;
/// use commerce_postgres::PostgresOptions;
///
/// let options = PostgresOptions::new().with_schema("shop_a").with_pool_size(16).with_connect_timeout(Duration::from_secs(5));
/// assert_eq!(options.schema, "shop_a");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The schema holding every table (created on connect). Lower-case letters, digits and `_`, starting with
    /// a letter or `_`, at most 63 characters. Default `commerce`.
    pub schema: String,
    /// The most connections this instance opens. Default 8.
    pub pool_size: usize,
    /// How long opening a connection, or waiting for a free one, may take. Default 10 s.
    pub connect_timeout: Duration,
    /// How long one store operation may take once it has a connection. A read or an uncommitted transaction
    /// that runs out of time is `Unavailable` (nothing was written); a write whose statement or `COMMIT` was
    /// sent is `OutcomeUnknown`. Default 30 s.
    pub operation_timeout: Duration,
}

impl PostgresOptions {
    /// The defaults: schema `commerce`, 8 connections, 10 s to connect, 30 s per operation.
    pub fn new() -> PostgresOptions {
        PostgresOptions {
            schema: DEFAULT_SCHEMA.to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
        }
    }

    /// Sets the schema.
    pub fn with_schema(mut self, schema: impl Into<String>) -> PostgresOptions {
        self.schema = schema.into();
        self
    }

    /// Sets the pool size.
    pub fn with_pool_size(mut self, pool_size: usize) -> PostgresOptions {
        self.pool_size = pool_size;
        self
    }

    /// Sets the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> PostgresOptions {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the per-operation timeout.
    pub fn with_operation_timeout(mut self, timeout: Duration) -> PostgresOptions {
        self.operation_timeout = timeout;
        self
    }

    /// Checks every option, naming the one at fault.
    pub(crate) fn check(&self) -> Result<(), ConfigProblem> {
        check_schema(&self.schema).map_err(|message| ConfigProblem { param: "schema", message })?;
        if self.pool_size == 0 || self.pool_size > MAX_POOL_SIZE {
            return Err(ConfigProblem {
                param: "pool_size",
                message: format!("must be between 1 and {MAX_POOL_SIZE}, got {}", self.pool_size),
            });
        }
        if self.connect_timeout.is_zero() {
            return Err(ConfigProblem { param: "connect_timeout", message: "must be longer than zero".to_owned() });
        }
        if self.operation_timeout.is_zero() {
            return Err(ConfigProblem { param: "operation_timeout", message: "must be longer than zero".to_owned() });
        }
        Ok(())
    }
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions::new()
    }
}

/// A configuration value that was refused, named as the factory parameter or option it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigProblem {
    pub(crate) param: &'static str,
    pub(crate) message: String,
}

impl ConfigProblem {
    pub(crate) fn into_store_error(self, operation: &'static str) -> StoreError {
        StoreError::new(ErrorKind::Configuration, operation, format!("`{}` {}", self.param, self.message))
    }

    fn into_build_error(self) -> BuildError {
        BuildError::param(self.param, self.message)
    }
}

/// Checks a schema name: `[a-z_][a-z0-9_]*`, at most 63 bytes (PostgreSQL's identifier limit), not `pg_*`.
fn check_schema(schema: &str) -> Result<(), String> {
    let Some(first) = schema.bytes().next() else {
        return Err("must not be empty".to_owned());
    };
    if schema.len() > 63 {
        return Err(format!("`{schema}` is {} characters long; PostgreSQL allows at most 63", schema.len()));
    }
    if !(first.is_ascii_lowercase() || first == b'_') {
        return Err(format!("`{schema}` must start with a lower-case letter or `_`"));
    }
    if let Some(position) = schema.bytes().position(|b| !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')) {
        return Err(format!(
            "`{schema}` has a character that is not allowed at position {position}; allowed: a-z 0-9 _"
        ));
    }
    if schema.starts_with("pg_") || schema == "information_schema" {
        return Err(format!("`{schema}` is reserved by PostgreSQL"));
    }
    Ok(())
}

/// A PostgreSQL connection string (`postgres://user:password@host:port/database?sslmode=disable`, or the
/// `key=value` form). Its `Debug` and `Display` never show the password; they print `***` in its place.
///
/// TLS: this build connects without TLS. `sslmode=disable` and `sslmode=prefer` (the default, which then
/// uses plain TCP) are accepted; `sslmode=require` is refused with a `Configuration` error rather than
/// silently connecting in the clear.
#[derive(Clone)]
pub struct PostgresUrl {
    config: tokio_postgres::Config,
}

impl PostgresUrl {
    /// Parses a connection string.
    ///
    /// # Errors
    /// `Configuration` naming `url` and what is wrong with it (never its password).
    pub fn parse(url: &str) -> Result<PostgresUrl, StoreError> {
        PostgresUrl::parse_checked(url).map_err(|p| p.into_store_error("connect"))
    }

    pub(crate) fn parse_checked(url: &str) -> Result<PostgresUrl, ConfigProblem> {
        let problem = |message: String| ConfigProblem { param: "url", message };
        let config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
            // The parser's own messages name options, not values; anything else is reported without detail
            // so no fragment of the password can end up in the message.
            let cause = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
            let detail = if cause.starts_with("invalid value for option") || cause.starts_with("unknown option") {
                format!(" ({cause})")
            } else {
                String::new()
            };
            problem(format!("is not a valid PostgreSQL connection string{detail}"))
        })?;
        if config.get_hosts().is_empty() {
            return Err(problem("names no host".to_owned()));
        }
        if config.get_user().is_none_or(str::is_empty) {
            return Err(problem("names no user".to_owned()));
        }
        if config.get_ssl_mode() == SslMode::Require {
            return Err(problem(
                "asks for sslmode=require, but this build connects without TLS; use sslmode=disable (or prefer) \
                 on a trusted network"
                    .to_owned(),
            ));
        }
        Ok(PostgresUrl { config })
    }

    /// The parsed configuration handed to the driver.
    pub(crate) fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.write_str("postgres://")?;
        if let Some(user) = c.get_user() {
            f.write_str(user)?;
            if c.get_password().is_some() {
                f.write_str(":***")?;
            }
            f.write_str("@")?;
        }
        let ports = c.get_ports();
        for (i, host) in c.get_hosts().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match host {
                Host::Tcp(name) => f.write_str(name)?,
                #[cfg(unix)]
                Host::Unix(path) => write!(f, "{}", path.display())?,
            }
            if let Some(port) = ports.get(i).or(ports.first()) {
                write!(f, ":{port}")?;
            }
        }
        if let Some(db) = c.get_dbname() {
            write!(f, "/{db}")?;
        }
        if c.get_ssl_mode() == SslMode::Disable {
            f.write_str("?sslmode=disable")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

// ---------------------------------------------------------------------------------------------------------

/// The factory of the `postgres` store adapter: every store port on one PostgreSQL schema.
///
/// Parameters: `url` (sensitive, required: the connection string, given as a secret reference), `schema`
/// (default `commerce`) and `pool_size` (default 8). Building connects and runs the migrations.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct PostgresStoreFactory;

impl PostgresStoreFactory {
    /// The factory.
    pub fn new() -> PostgresStoreFactory {
        PostgresStoreFactory
    }

    /// Turns parameters into a connection string and options, naming the parameter at fault.
    fn options(params: &Params) -> Result<(PostgresUrl, PostgresOptions), BuildError> {
        let url =
            PostgresUrl::parse_checked(params.secret("url")?.expose()).map_err(ConfigProblem::into_build_error)?;
        let mut options = PostgresOptions::new();
        if let Some(schema) = params.text("schema")? {
            options.schema = schema.to_owned();
        }
        if let Some(size) = params.integer("pool_size")? {
            options.pool_size = usize::try_from(size).map_err(|_| {
                BuildError::param("pool_size", format!("must be between 1 and {MAX_POOL_SIZE}, got {size}"))
            })?;
        }
        options.check().map_err(ConfigProblem::into_build_error)?;
        Ok((url, options))
    }
}

#[async_trait]
impl AdapterFactory for PostgresStoreFactory {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn port(&self) -> PortKind {
        PortKind::Store
    }

    fn description(&self) -> &'static str {
        "every store port on PostgreSQL, shared by several service instances"
    }

    fn params(&self) -> Vec<ParamSpec> {
        vec![
            ParamSpec::secret(
                "url",
                "PostgreSQL connection string (postgres://user:password@host:5432/database); holds the password",
            ),
            ParamSpec::with_default(
                "schema",
                ParamType::String,
                ParamValue::Text(DEFAULT_SCHEMA.to_owned()),
                "schema holding the tables; created and migrated on start",
            ),
            ParamSpec::with_default(
                "pool_size",
                ParamType::Integer,
                ParamValue::Integer(8),
                "most connections this instance opens",
            ),
        ]
    }

    async fn build(&self, params: Params) -> Result<Adapter, BuildError> {
        let (url, options) = PostgresStoreFactory::options(&params)?;
        let stores = PostgresStores::connect_url(url, options).await.map_err(|e| BuildError::other(e.to_string()))?;
        Ok(Adapter::Store(stores.store_set()))
    }
}

#[cfg(test)]
mod tests {
    use commerce_ports::Secret;

    use super::*;

    #[test]
    fn display_and_debug_hide_the_password() {
        let url = PostgresUrl::parse("postgres://shop:s3cr3t-pw@db.internal:6543/orders?sslmode=disable").unwrap();
        assert_eq!(url.to_string(), "postgres://shop:***@db.internal:6543/orders?sslmode=disable");
        assert!(!format!("{url:?}").contains("s3cr3t"));
        let kv = PostgresUrl::parse("host=localhost user=shop password='s3cr3t pw' dbname=orders").unwrap();
        assert_eq!(kv.to_string(), "postgres://shop:***@localhost/orders");
        let none = PostgresUrl::parse("postgres://shop@localhost/orders").unwrap();
        assert_eq!(none.to_string(), "postgres://shop@localhost:5432/orders");
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for bad in ["postgres://shop:pa%ZZss@", "host=x user=shop password='unterminated", "postgres://:pw@h/db"] {
            let e = PostgresUrl::parse(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Configuration, "{bad}: {e}");
            assert!(e.message().contains("`url`"), "{e}");
            assert!(!e.to_string().contains("pw") && !e.to_string().contains("unterminated"), "{e}");
        }
        let e = PostgresUrl::parse("postgres://shop@h/db?sslmode=require").unwrap_err();
        assert!(e.message().contains("sslmode=require"), "{e}");
        let e = PostgresUrl::parse("postgres://shop@h/db?port=abc").unwrap_err();
        assert!(e.message().contains("option `port`"), "{e}");
    }

    #[test]
    fn schema_names_are_checked() {
        for ok in ["commerce", "_x", "shop_2", "a"] {
            assert!(check_schema(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Commerce", "1abc", "a-b", "a\"b", "pg_catalog", &"x".repeat(64)] {
            assert!(check_schema(bad).is_err(), "{bad}");
        }
        let e = PostgresOptions::new().with_schema("Bad").check().unwrap_err();
        assert_eq!(e.param, "schema");
        let e = PostgresOptions::new().with_pool_size(0).check().unwrap_err();
        assert_eq!(e.param, "pool_size");
    }

    #[test]
    fn factory_declares_its_parameters_and_names_the_one_at_fault() {
        let f = PostgresStoreFactory::new();
        assert_eq!((f.name(), f.port()), ("postgres", PortKind::Store));
        let params = f.params();
        let url = params.iter().find(|p| p.name == "url").unwrap();
        assert!(url.sensitive);
        let base = Params::new().with("url", ParamValue::Secret(Secret::new("postgres://u:pw@h/db")));
        let e = PostgresStoreFactory::options(&base.clone().with("pool_size", ParamValue::Integer(-1))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("pool_size"));
        let e = PostgresStoreFactory::options(&base.clone().with("schema", ParamValue::Text("X".into()))).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("schema"));
        let e = PostgresStoreFactory::options(&Params::new().with("url", ParamValue::Secret(Secret::new("nope://"))))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("url"));
        let (url, options) = PostgresStoreFactory::options(&base).unwrap();
        assert_eq!(options, PostgresOptions::new());
        assert!(!format!("{url:?}").contains("pw"));
    }
}
