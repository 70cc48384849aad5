//! Shared helpers of the service tests: the gate on `COMMERCE_TEST_POSTGRES_URL`, a unique schema per test,
//! and dropping it afterwards (also when the test fails).

#![allow(dead_code, unreachable_pub, reason = "each test binary uses a different subset")]

use std::future::Future;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use commerce_postgres::{PostgresOptions, PostgresStores};

/// The variable that enables the service tests.
pub const URL_VAR: &str = "COMMERCE_TEST_POSTGRES_URL";

/// The test server's URL, or `None` after printing the skip line.
pub fn url(test: &str) -> Option<String> {
    match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            // Straight to the process's stderr, past the test harness's output capture, so the skip shows.
            let line = format!("skipped: {URL_VAR} is not set ({test})\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            None
        }
    }
}

/// A schema name no other test or run uses: `commerce_test_<pid>_<nanos>_<n>`.
pub fn unique_schema() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("commerce_test_{}_{nanos}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// A raw connection for checks the ports do not offer.
pub async fn raw(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("raw connection");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Drops a test schema; best effort.
pub async fn drop_schema(url: &str, schema: &str) {
    let Ok((client, connection)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await else {
        eprintln!("could not connect to drop schema {schema}");
        return;
    };
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    if let Err(e) = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await {
        eprintln!("could not drop schema {schema}: {e}");
    }
    drop(client);
    let _ = task.await;
}

/// Runs `body(url, schema)` on a fresh schema when the server is configured, then drops the schema, and
/// re-raises the body's panic if it failed.
pub async fn on_fresh_schema<F, Fut>(test: &str, body: F)
where
    F: FnOnce(String, String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = url(test) else { return };
    let schema = unique_schema();
    let outcome = tokio::spawn(body(url.clone(), schema.clone())).await;
    drop_schema(&url, &schema).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Connects one instance to `schema`.
pub async fn instance(url: &str, schema: &str) -> PostgresStores {
    PostgresStores::connect(url, PostgresOptions::new().with_schema(schema)).await.expect("connect")
}
