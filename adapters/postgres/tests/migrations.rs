//! Migrations: concurrent starts migrate once; a newer schema is refused precisely.

mod common;

use commerce_ports::ErrorKind;
use commerce_postgres::{PostgresOptions, PostgresStores, SCHEMA_VERSION};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_starting_together_migrate_a_fresh_schema_once() {
    common::on_fresh_schema("two_instances_starting_together_migrate_a_fresh_schema_once", |url, schema| async move {
        let connect = || {
            let (url, options) = (url.clone(), PostgresOptions::new().with_schema(schema.clone()));
            async move { PostgresStores::connect(&url, options).await }
        };
        let (a, b) = tokio::join!(tokio::spawn(connect()), tokio::spawn(connect()));
        let (a, b) = (a.unwrap().expect("first instance"), b.unwrap().expect("second instance"));
        let mut applied = [a.applied_migrations().to_vec(), b.applied_migrations().to_vec()];
        applied.sort();
        let all: Vec<u32> = (1..=SCHEMA_VERSION).collect();
        assert_eq!(applied, [Vec::new(), all], "exactly one instance applies the migrations");
        let raw = common::raw(&url).await;
        let rows = raw
            .query(&format!("SELECT version FROM \"{schema}\".schema_migrations ORDER BY version"), &[])
            .await
            .unwrap();
        let versions: Vec<i32> = rows.iter().map(|r| r.get(0)).collect();
        assert_eq!(versions.len(), usize::try_from(SCHEMA_VERSION).unwrap(), "{versions:?}");
        // A later start finds nothing to do.
        let c = common::instance(&url, &schema).await;
        assert!(c.applied_migrations().is_empty());
        assert_eq!(c.schema(), schema);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schema_newer_than_this_build_is_refused() {
    common::on_fresh_schema("a_schema_newer_than_this_build_is_refused", |url, schema| async move {
        drop(common::instance(&url, &schema).await);
        let newer = SCHEMA_VERSION + 1;
        let raw = common::raw(&url).await;
        raw.execute(
            &format!("INSERT INTO \"{schema}\".schema_migrations (version, name) VALUES ($1, 'from the future')"),
            &[&i32::try_from(newer).unwrap()],
        )
        .await
        .unwrap();
        let e = PostgresStores::connect(&url, PostgresOptions::new().with_schema(schema.clone())).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        let message = e.to_string();
        assert!(message.contains(&format!("schema version {newer}")), "{message}");
        assert!(message.contains(&format!("({SCHEMA_VERSION})")), "{message}");
        assert!(message.contains(&schema), "{message}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_claimed_before_version_4_has_no_first_claim_time_and_is_taken_over_as_before() {
    let test = "a_key_claimed_before_version_4_has_no_first_claim_time_and_is_taken_over_as_before";
    common::on_fresh_schema(test, |url, schema| async move {
        use commerce_ports::stores::{IdempotencyBegin, IdempotencyClaim};
        use commerce_ports::{IdempotencyKey, TenantId};
        use time::macros::datetime;
        let stores = common::instance(&url, &schema).await;
        // A key a build before version 4 claimed (its lease ended long ago): no `claimed_at`.
        let raw = common::raw(&url).await;
        raw.execute(
            &format!(
                "INSERT INTO \"{schema}\".idempotency_records (tenant, key, operation, fingerprint, lease_until)
                 VALUES ('acme', 'old', 'capture', 'f', '2026-11-01T00:00:00Z')"
            ),
            &[],
        )
        .await
        .unwrap();
        let (tenant, key) = (TenantId::new("acme").unwrap(), IdempotencyKey::new("old").unwrap());
        let idempotency = stores.store_set().idempotency;
        let record = idempotency.get(&tenant, &key).await.expect("get").expect("record");
        assert_eq!(record.claimed_at, None, "{record:?}");
        let now = datetime!(2026-11-24 10:00 UTC);
        let claim = IdempotencyClaim::new("capture", "f", now, now + time::Duration::minutes(1));
        let taken = idempotency.begin(&tenant, &key, claim).await.expect("begin");
        assert_eq!(taken, IdempotencyBegin::Started { recovered: true });
        let record = idempotency.get(&tenant, &key).await.expect("get").expect("record");
        assert_eq!(record.claimed_at, None, "a takeover does not invent a first claim");
    })
    .await;
}
