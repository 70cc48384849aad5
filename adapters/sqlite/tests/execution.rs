//! Where SQLite calls run (`Execution`): on the blocking pool (the default), or in place on a multi-thread
//! runtime when configured so (on the blocking pool on a current-thread runtime); every store contract holds
//! either way, and the default works inside a `LocalSet`.

mod common;

use commerce_sqlite::{Execution, SqliteConfig, SqliteStores};
use commerce_testkit::conformance::stores::{StoreFixture, run_all};

use common::TempDb;

async fn conformance(name: &str, execution: Execution) {
    let db = TempDb::new(name);
    let stores = SqliteStores::open_with(SqliteConfig::file(db.path()).with_execution(execution)).await.expect("open");
    run_all(&stores.store_set(), &StoreFixture::new()).await.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_on_a_multi_thread_runtime_passes_the_store_suite() {
    conformance("execution-in-place-mt", Execution::InPlace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_pool_on_a_multi_thread_runtime_passes_the_store_suite() {
    conformance("execution-pool-mt", Execution::BlockingPool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_from_a_spawned_task_and_from_block_on_in_a_blocking_thread() {
    let db = TempDb::new("execution-contexts");
    let config = SqliteConfig::file(db.path()).with_execution(Execution::InPlace);
    let stores = SqliteStores::open_with(config).await.expect("open");
    // A task on a worker: the call runs in place (`block_in_place`).
    let set = stores.store_set();
    let spawned = tokio::spawn(async move { run_all(&set, &StoreFixture::new()).await });
    spawned.await.expect("spawned task").assert_passed();
    // Synchronous code bridging into the runtime from a blocking thread (`Handle::block_on`).
    let handle = tokio::runtime::Handle::current();
    let set = stores.store_set();
    let bridged = tokio::task::spawn_blocking(move || handle.block_on(run_all(&set, &StoreFixture::new())));
    bridged.await.expect("blocking thread").assert_passed();
}

#[test]
fn in_place_on_a_current_thread_runtime_uses_the_blocking_pool_and_never_panics() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(conformance("execution-in-place-ct", Execution::InPlace));
}

#[test]
fn the_default_works_inside_a_local_set_on_a_multi_thread_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    let report = rt.block_on(local.run_until(async {
        let db = TempDb::new("execution-local-set");
        let stores = SqliteStores::open(db.path()).await.expect("open");
        let set = stores.store_set();
        let spawned = tokio::task::spawn_local(async move { run_all(&set, &StoreFixture::new()).await });
        spawned.await.expect("local task")
    }));
    report.assert_passed();
}
