//! Authorize + capture through [`Payments`] on [`SqliteStores`] (a temporary file) against raw
//! single-row upsert transactions with `rusqlite` on a second temporary file, in the same run.
//!
//! - Payments: one task at a time, spawned on a two-worker multi-thread runtime (tokio's default flavor),
//!   [`MemoryGateway`] as the instant provider; each `authorize` and each `capture` counts as one operation.
//!   Measured twice, each against raw in its own alternation: with the adapter's calls in place
//!   (`Execution::InPlace`, the target) and on tokio's blocking pool (`Execution::BlockingPool`, the default;
//!   for information).
//! - Raw op: `BEGIN IMMEDIATE; INSERT ... ON CONFLICT(id) DO UPDATE ...; COMMIT` of one new ~600-byte row,
//!   called directly on one connection (no thread hop), with the adapter's settings: WAL,
//!   `synchronous = FULL`, `foreign_keys = ON`, a 5 s busy timeout.
//!
//! Batches of the two alternate so drift hits both. Target: Payments ops/s >= 0.5 x raw ops/s.

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use commerce_payments::Payments;
use commerce_ports::{ChannelId, SystemClock, TenantId};
use commerce_sqlite::{Execution, SqliteConfig, SqliteStores};
use commerce_testkit::memory::MemoryGateway;
use common::{Report, authorize_capture, fmt_secs, per_iter_pair, unique_name};
use rusqlite::{Connection, TransactionBehavior, params};

/// Removes a database file and its WAL companions when dropped.
struct TempDb(PathBuf);

impl Drop for TempDb {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(Path::new(&path));
        }
    }
}

fn raw_connection(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open raw database");
    conn.busy_timeout(Duration::from_secs(5)).expect("busy_timeout");
    conn.pragma_update(None, "foreign_keys", true).expect("foreign_keys");
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0)).expect("journal_mode");
    assert!(mode.eq_ignore_ascii_case("wal"), "raw database is in journal mode {mode}");
    conn.pragma_update(None, "synchronous", "FULL").expect("synchronous");
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS raw_rows (id TEXT PRIMARY KEY, version INTEGER NOT NULL, body TEXT NOT NULL)",
    )
    .expect("create table");
    conn
}

fn main() -> ExitCode {
    let mut report = Report::new("sqlite", "Payments on SqliteStores vs raw rusqlite upsert transactions");
    let dir = std::env::temp_dir();
    let raw_db = TempDb(dir.join(format!("{}.sqlite", unique_name("commerce_bench_raw"))));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let gateway = Arc::new(MemoryGateway::new());
    let tenant = TenantId::new("acme").expect("tenant");
    let channel = ChannelId::new("web").expect("channel");

    let mut raw = raw_connection(&raw_db.0);
    let body = "x".repeat(600);
    let mut next_raw = 0u64;
    let mut upsert = |n: u64| -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            next_raw += 1;
            let tx = raw.transaction_with_behavior(TransactionBehavior::Immediate).expect("begin");
            tx.prepare_cached(
                "INSERT INTO raw_rows (id, version, body) VALUES (?1, 1, ?2) \
                 ON CONFLICT(id) DO UPDATE SET version = raw_rows.version + 1, body = excluded.body",
            )
            .and_then(|mut st| st.execute(params![format!("row-{next_raw}"), body]))
            .expect("upsert");
            tx.commit().expect("commit");
        }
        start.elapsed()
    };

    report.figure("temp directory", &dir.display().to_string());
    let mut ratios = Vec::new();
    for execution in [Execution::InPlace, Execution::BlockingPool] {
        let adapter_db =
            TempDb(dir.join(format!("{}.sqlite", unique_name(&format!("commerce_bench_{}", execution.as_str())))));
        let config = SqliteConfig::file(&adapter_db.0).with_execution(execution);
        let stores = rt.block_on(SqliteStores::open_with(config)).expect("open SqliteStores");
        let payments = Payments::from_stores(&stores.store_set(), Arc::new(SystemClock));
        let mut next_pay = 0u64;
        let mut pay = |n: u64| -> Duration {
            let (payments, gateway, tenant, channel) =
                (payments.clone(), Arc::clone(&gateway), tenant.clone(), channel.clone());
            let first = next_pay;
            next_pay += n;
            let batch = rt.spawn(async move {
                let start = Instant::now();
                for i in 1..=n {
                    authorize_capture(&payments, gateway.as_ref(), &tenant, &channel, &(first + i).to_string()).await;
                }
                start.elapsed()
            });
            rt.block_on(batch).expect("the Payments batch panicked")
        };
        let (pair, raw_op) = per_iter_pair(Duration::from_millis(200), 5, &mut pay, &mut upsert);
        drop(stores);
        let pay_op = pair / 2.0;
        let (pay_rate, raw_rate) = (1.0 / pay_op, 1.0 / raw_op);
        let mode = execution.as_str();
        report.figure(&format!("[{mode}] Payments authorize + capture pair"), &fmt_secs(pair));
        report.figure(&format!("[{mode}] Payments per operation (pair / 2)"), &fmt_secs(pay_op));
        report.figure(&format!("[{mode}] Payments operations per second"), &format!("{pay_rate:.0}"));
        report.figure(&format!("[{mode}] raw upsert transaction (one row, one commit)"), &fmt_secs(raw_op));
        report.figure(&format!("[{mode}] raw operations per second"), &format!("{raw_rate:.0}"));
        report.note(&format!("[{mode}] {next_pay} payments written"));
        ratios.push((execution, pay_rate / raw_rate));
    }
    for (execution, ratio) in ratios {
        let name = format!("[{}] ratio Payments ops/s / raw ops/s", execution.as_str());
        if execution == Execution::InPlace {
            report.at_least(&name, ratio, &format!("{ratio:.2}x"), 0.5, "0.50x");
        } else {
            report.figure(&format!("{name} (the default; no target)"), &format!("{ratio:.2}x"));
        }
    }
    report.note(&format!("{next_raw} raw rows written in this run"));
    report.finish()
}
