//! The adapter factory, and secrets: the connection password never shows in `Debug` or in errors.

mod common;

use std::time::Duration;

use commerce_ports::factory::{Adapter, AdapterFactory, ParamValue, Params, PortKind};
use commerce_ports::{ErrorKind, Secret};
use commerce_postgres::{PostgresOptions, PostgresStoreFactory, PostgresStores};
use time::OffsetDateTime;

const PASSWORD: &str = "Hunter2-very-secret-pw";

/// The test URL with [`PASSWORD`] as its password (the test server trusts local connections, so any password
/// is accepted), or the URL's own password when it already has one.
fn url_with_password(url: &str) -> (String, String) {
    let config: tokio_postgres::Config = url.parse().expect("test URL parses");
    if let Some(pw) = config.get_password() {
        return (url.to_owned(), String::from_utf8_lossy(pw).into_owned());
    }
    for scheme in ["postgres://", "postgresql://"] {
        if let Some((user, rest)) = url.strip_prefix(scheme).and_then(|rest| rest.split_once('@')) {
            return (format!("{scheme}{user}:{PASSWORD}@{rest}"), PASSWORD.to_owned());
        }
    }
    (format!("{url} password={PASSWORD}"), PASSWORD.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_builds_every_store_from_a_url_secret() {
    common::on_fresh_schema("factory_builds_every_store_from_a_url_secret", |url, schema| async move {
        let (url, password) = url_with_password(&url);
        let factory = PostgresStoreFactory::new();
        assert_eq!((factory.name(), factory.port()), ("postgres", PortKind::Store));
        let specs = factory.params();
        assert!(specs.iter().any(|p| p.name == "url" && p.sensitive));
        let params = Params::new()
            .with("url", ParamValue::Secret(Secret::new(url.clone())))
            .with("schema", ParamValue::Text(schema.clone()))
            .with("pool_size", ParamValue::Integer(2));
        let adapter = factory.build(params).await.expect("build");
        let shown = format!("{adapter:?}");
        assert!(!shown.contains(&password), "the password shows in {shown}");
        let Adapter::Store(set) = adapter else { panic!("not a store adapter") };
        assert!(
            set.webhooks
                .record(
                    &commerce_ports::TenantId::new("acme").unwrap(),
                    "stripe",
                    "evt_factory",
                    OffsetDateTime::now_utc()
                )
                .await
                .unwrap()
        );
        assert!(
            set.webhooks
                .contains(&commerce_ports::TenantId::new("acme").unwrap(), "stripe", "evt_factory")
                .await
                .unwrap()
        );

        let stores = PostgresStores::connect(&url, PostgresOptions::new().with_schema(schema.clone())).await.unwrap();
        for shown in [format!("{stores:?}"), format!("{:?}", stores.store_set()), stores.url().to_string()] {
            assert!(!shown.contains(&password), "the password shows in {shown}");
            assert!(shown.contains("***"), "the redaction is not visible in {shown}");
        }
    })
    .await;
}

/// Needs no server: nothing listens on port 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_errors_never_show_the_password() {
    let url = format!("postgres://shop:{PASSWORD}@127.0.0.1:1/orders");
    let options = PostgresOptions::new().with_connect_timeout(Duration::from_secs(2));
    let e = PostgresStores::connect(&url, options).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    for shown in [format!("{e:?}"), e.to_string()] {
        assert!(!shown.contains(PASSWORD), "the password shows in {shown}");
    }
    assert!(e.to_string().contains("127.0.0.1:1"), "the server is not named: {e}");

    let params = Params::new().with("url", ParamValue::Secret(Secret::new(url)));
    let e = PostgresStoreFactory::new().build(params).await.unwrap_err();
    for shown in [format!("{e:?}"), e.to_string()] {
        assert!(!shown.contains(PASSWORD), "the password shows in {shown}");
    }

    let e = PostgresStores::connect(
        &format!("postgres://shop:{PASSWORD}@127.0.0.1:1/orders?sslmode=require"),
        PostgresOptions::new(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(!format!("{e:?}").contains(PASSWORD));
}
