//! The store conformance suite of `commerce-testkit` against PostgreSQL.

mod common;

use commerce_testkit::conformance::stores::{StoreFixture, run_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_conformance_suite_passes() {
    common::on_fresh_schema("store_conformance_suite_passes", |url, schema| async move {
        let stores = common::instance(&url, &schema).await;
        run_all(&stores.store_set(), &StoreFixture::new()).await.assert_passed();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn store_conformance_suite_passes_repeatedly_across_instances_on_one_schema() {
    common::on_fresh_schema(
        "store_conformance_suite_passes_repeatedly_across_instances_on_one_schema",
        |url, schema| async move {
            let first = common::instance(&url, &schema).await;
            run_all(&first.store_set(), &StoreFixture::new()).await.assert_passed();
            // A second instance (its own pool) on the same tables, with a new run id. `StoreFixture::new` takes
            // its run id from the current second, so a fixture made in the same second needs a suffix.
            let second = common::instance(&url, &schema).await;
            assert!(second.applied_migrations().is_empty(), "the second instance migrated again");
            let mut fixture = StoreFixture::new();
            fixture.run_id.push('b');
            run_all(&second.store_set(), &fixture).await.assert_passed();
        },
    )
    .await;
}
