//! Authorize + capture through [`Payments`] on [`PostgresStores`] against raw single-statement round
//! trips with `tokio-postgres`, at the same concurrency, in the same run. Runs only when
//! `COMMERCE_TEST_POSTGRES_URL` is set; otherwise prints `skipped: COMMERCE_TEST_POSTGRES_URL is not set`.
//!
//! - Payments: [`TASKS`] concurrent tasks on a multi-thread runtime, each authorizing and capturing new
//!   payments in a loop, over one `PostgresStores` (pool of [`TASKS`] connections) on a unique schema, with
//!   its ledger (`PostgresStores::ledger`: one statement to claim, one to commit, per operation);
//!   [`MemoryGateway`] is the instant provider. Each `authorize` and each `capture` counts as one operation.
//!   Before timing, one payment is authorized, captured, refunded and replayed as a check. After the
//!   warm-up the Payments tables are analyzed once (see the comment there; `COMMERCE_BENCH_POSTGRES_COLD`
//!   skips it).
//! - Raw op: one `INSERT ... ON CONFLICT (id) DO UPDATE` statement of one new ~600-byte row (autocommit),
//!   prepared once, on [`TASKS`] connections of its own, one per task, in a second unique schema.
//!
//! Each side runs for a fixed wall time after a warm-up, in alternating rounds; the figure is the median
//! rate over the rounds. Both schemas are dropped afterwards. Target: Payments ops/s >= 0.5 x raw ops/s.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use commerce_payments::Payments;
use commerce_ports::{ChannelId, SystemClock, TenantId};
use commerce_postgres::{PostgresOptions, PostgresStores};
use commerce_testkit::memory::MemoryGateway;
use common::{Report, authorize_capture, fmt_secs, median, unique_name};
use tokio_postgres::{Client, NoTls};

const URL_VAR: &str = "COMMERCE_TEST_POSTGRES_URL";
/// Set (to anything) to skip the `ANALYZE` after the warm-up and measure the cold-start plans.
const COLD_VAR: &str = "COMMERCE_BENCH_POSTGRES_COLD";
const TASKS: usize = 8;
const ROUNDS: usize = 3;
const ROUND: Duration = Duration::from_millis(1000);
const WARMUP: Duration = Duration::from_millis(500);

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("raw connection");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// Runs `TASKS` copies of `op` for `length` and returns the operations completed per second.
/// `op(task, n)` performs the task's `n`-th iteration and returns how many operations it counted.
async fn rate<F, Fut>(length: Duration, op: Arc<F>) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = u64> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + length;
    let mut handles = Vec::with_capacity(TASKS);
    for task in 0..TASKS {
        let (op, done) = (Arc::clone(&op), Arc::clone(&done));
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < deadline {
                n += 1;
                done.fetch_add(op(task, n).await, Ordering::Relaxed);
            }
        }));
    }
    for handle in handles {
        handle.await.expect("bench task");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// Checks the ledger-backed service once before timing it: authorize, capture, refund, and a replay of each
/// key (same answer, no second provider call).
async fn preflight(payments: &Payments, gateway: &MemoryGateway, tenant: &TenantId, channel: &ChannelId) {
    use commerce_payments::NewPayment;
    use commerce_ports::payment::TenderKind;
    use commerce_ports::stores::IntentStatus;
    use commerce_ports::{Currency, IdempotencyKey, Money};
    let key = |k: &str| IdempotencyKey::new(k).expect("key");
    let new = || {
        NewPayment::new(
            tenant.clone(),
            channel.clone(),
            TenderKind::Card,
            Money::from_minor(4250, Currency::EUR),
            "pm_card_visa",
            "order-preflight",
        )
    };
    let authorized = payments.authorize(gateway, "memory", new(), &key("pre-auth")).await.expect("authorize");
    let captured =
        payments.capture(gateway, tenant, &authorized.id, None, true, &key("pre-cap")).await.expect("capture");
    assert_eq!(captured.status, IntentStatus::Captured);
    let refund = Money::from_minor(1000, Currency::EUR);
    let refunded = payments.refund(gateway, tenant, &authorized.id, refund, &key("pre-ref")).await.expect("refund");
    assert_eq!(refunded.refunded, refund);
    let replayed = payments.authorize(gateway, "memory", new(), &key("pre-auth")).await.expect("replay authorize");
    assert_eq!(replayed, authorized, "a replay answers the stored outcome");
    let replayed = payments.refund(gateway, tenant, &authorized.id, refund, &key("pre-ref")).await.expect("replay");
    assert_eq!(replayed, refunded);
    let history = payments.history(tenant, &authorized.id).await.expect("history");
    assert_eq!(history.last().map(|e| e.sequence), Some(refunded.version));
    // (Stored timestamps have microseconds; compare what the operations changed.)
    let stored = payments.get(tenant, &authorized.id).await.expect("get");
    assert_eq!((stored.version, stored.status, stored.refunded), (refunded.version, refunded.status, refund));
}

async fn drop_schema(url: &str, schema: &str) {
    let client = connect(url).await;
    if let Err(e) = client.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE")).await {
        eprintln!("could not drop schema {schema}: {e}");
    }
}

fn main() -> ExitCode {
    let url = match std::env::var(URL_VAR) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            println!("== postgres: skipped: {URL_VAR} is not set");
            return ExitCode::SUCCESS;
        }
    };
    let mut report = Report::new("postgres", "Payments on PostgresStores vs raw tokio-postgres upserts, 8 tasks");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let schema = unique_name("commerce_bench");
    let raw_schema = format!("{schema}_raw");
    let (task_url, task_schema, task_raw_schema) = (url.clone(), schema.clone(), raw_schema.clone());
    // The body runs as a task so that a panic in it still lets the schemas be dropped below.
    let body = rt.spawn(async move {
        let (url, schema, raw_schema) = (task_url, task_schema, task_raw_schema);
        let stores = PostgresStores::connect(&url, PostgresOptions::new().with_schema(&schema).with_pool_size(TASKS))
            .await
            .expect("connect PostgresStores");
        let payments = Payments::from_stores(&stores.store_set(), Arc::new(SystemClock)).with_ledger(stores.ledger());
        let gateway = Arc::new(MemoryGateway::new());
        let tenant = TenantId::new("acme").expect("tenant");
        let channel = ChannelId::new("web").expect("channel");
        preflight(&payments, &gateway, &tenant, &channel).await;
        let round = Arc::new(AtomicU64::new(0));
        let pay = {
            let round = Arc::clone(&round);
            Arc::new(move |task: usize, n: u64| {
                let (payments, gateway, tenant, channel) =
                    (payments.clone(), Arc::clone(&gateway), tenant.clone(), channel.clone());
                let tag = format!("{}-{task}-{n}", round.load(Ordering::Relaxed));
                async move {
                    authorize_capture(&payments, &*gateway, &tenant, &channel, &tag).await;
                    2
                }
            })
        };

        let setup = connect(&url).await;
        setup
            .batch_execute(&format!(
                "CREATE SCHEMA \"{raw_schema}\"; CREATE TABLE \"{raw_schema}\".raw_rows \
                 (id TEXT PRIMARY KEY, version BIGINT NOT NULL, body TEXT NOT NULL)"
            ))
            .await
            .expect("create raw schema");
        let sql = format!(
            "INSERT INTO \"{raw_schema}\".raw_rows (id, version, body) VALUES ($1, 1, $2) \
             ON CONFLICT (id) DO UPDATE SET version = raw_rows.version + 1, body = EXCLUDED.body"
        );
        let mut clients = Vec::with_capacity(TASKS);
        for _ in 0..TASKS {
            let client = connect(&url).await;
            let statement = client.prepare(&sql).await.expect("prepare");
            clients.push(Arc::new((client, statement)));
        }
        let clients = Arc::new(clients);
        let body = Arc::new("x".repeat(600));
        let raw = {
            let round = Arc::clone(&round);
            Arc::new(move |task: usize, n: u64| {
                let (clients, body) = (Arc::clone(&clients), Arc::clone(&body));
                let id = format!("row-{}-{task}-{n}", round.load(Ordering::Relaxed));
                async move {
                    let pair = &clients[task];
                    let written = pair.0.execute(&pair.1, &[&id, &*body]).await.expect("upsert");
                    assert_eq!(written, 1);
                    1
                }
            })
        };

        round.store(1_000, Ordering::Relaxed);
        rate(WARMUP, Arc::clone(&pay)).await;
        // The schema is seconds old and its tables were nearly empty when each pooled connection cached its
        // plans (and its foreign-key check plans): on a table that small the planner finds a secondary index
        // leading with `tenant` as cheap as the primary key for `tenant = $1 AND id = $2`, and with one
        // tenant that plan scans every intent once the table has grown. Autovacuum's ANALYZE replaces those
        // plans in production (within `autovacuum_naptime`), but not within a benchmark this short, so it runs
        // here, once, after the warm-up (the raw side has only a primary key and no such choice).
        if std::env::var_os(COLD_VAR).is_none() {
            setup
                .batch_execute(&format!(
                    "ANALYZE \"{schema}\".payment_intents, \"{schema}\".intent_events, \
                     \"{schema}\".idempotency_records"
                ))
                .await
                .expect("analyze");
        }
        rate(WARMUP, Arc::clone(&raw)).await;
        let (mut pay_rates, mut raw_rates) = (Vec::new(), Vec::new());
        for r in 0..ROUNDS {
            round.store(u64::try_from(r).unwrap_or(0), Ordering::Relaxed);
            pay_rates.push(rate(ROUND, Arc::clone(&pay)).await);
            raw_rates.push(rate(ROUND, Arc::clone(&raw)).await);
        }
        stores.close();
        (median(&mut pay_rates), median(&mut raw_rates))
    });
    let outcome = rt.block_on(body);
    rt.block_on(async {
        drop_schema(&url, &schema).await;
        drop_schema(&url, &raw_schema).await;
    });

    let (pay_rate, raw_rate) = outcome.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    report.figure("concurrent tasks (both sides)", &TASKS.to_string());
    report.figure("Payments operations per second", &format!("{pay_rate:.0}"));
    report.figure("Payments mean time per operation per task", &fmt_secs(TASKS as f64 / pay_rate));
    report.figure("raw upserts per second", &format!("{raw_rate:.0}"));
    report.figure("raw mean time per upsert per task", &fmt_secs(TASKS as f64 / raw_rate));
    let ratio = pay_rate / raw_rate;
    report.at_least("ratio Payments ops/s / raw ops/s", ratio, &format!("{ratio:.2}x"), 0.5, "0.50x");
    report.note(if std::env::var_os(COLD_VAR).is_some() {
        "cold plans: no ANALYZE after the warm-up (COMMERCE_BENCH_POSTGRES_COLD set)"
    } else {
        "the Payments tables were analyzed once after the warm-up (set COMMERCE_BENCH_POSTGRES_COLD to skip it)"
    });
    report.note(&format!("schemas {schema} and {raw_schema} dropped"));
    report.finish()
}
