//! The store conformance suite of `commerce-testkit`, on a file and in memory.

mod common;

use commerce_sqlite::SqliteStores;
use commerce_testkit::conformance::stores::{StoreFixture, run_all, run_idempotency, run_intents};

use common::TempDb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_database_passes_the_store_suite() {
    let db = TempDb::new("conformance");
    let stores = SqliteStores::open(db.path()).await.expect("open");
    let report = run_all(&stores.store_set(), &StoreFixture::new()).await;
    println!("{report}");
    report.assert_passed();
    assert!(report.skipped.is_empty(), "nothing may be skipped: {report}");
}

#[tokio::test]
async fn in_memory_database_passes_the_store_suite() {
    let stores = SqliteStores::open_in_memory().await.expect("open");
    run_all(&stores.store_set(), &StoreFixture::new()).await.assert_passed();
}

#[tokio::test]
async fn the_suite_passes_again_on_a_reopened_file() {
    let db = TempDb::new("conformance-again");
    let first = SqliteStores::open(db.path()).await.expect("open");
    run_all(&first.store_set(), &StoreFixture::new()).await.assert_passed();
    drop(first);
    let again = SqliteStores::open(db.path()).await.expect("reopen");
    // A second run id: the suite's keys are unique per run, so earlier rows do not interfere.
    let mut fixture = StoreFixture::new();
    fixture.run_id.push_str("again");
    run_all(&again.store_set(), &fixture).await.assert_passed();
}

#[tokio::test]
async fn stores_pass_through_boxed_and_shared_trait_objects() {
    let stores = SqliteStores::open_in_memory().await.expect("open");
    let set = stores.store_set();
    let fixture = StoreFixture::new();
    let boxed: Box<dyn commerce_ports::IdempotencyStore> = Box::new(set.idempotency.clone());
    run_idempotency(&boxed, &fixture).await.assert_passed();
    let mut other = StoreFixture::new();
    other.run_id.push_str("arc");
    run_intents(&set.intents, &other).await.assert_passed();
}
