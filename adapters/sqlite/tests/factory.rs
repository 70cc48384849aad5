//! `SqliteStoreFactory`: adapter `sqlite` of port `store`.

mod common;

use commerce_ports::factory::{Adapter, AdapterFactory, ParamType, ParamValue, Params, PortKind, Requirement};
use commerce_sqlite::{Execution, SqliteStoreFactory};
use time::OffsetDateTime;

use common::TempDb;

#[test]
fn the_factory_describes_itself() {
    let factory = SqliteStoreFactory::new();
    assert_eq!(factory.name(), "sqlite");
    assert_eq!(factory.port(), PortKind::Store);
    let params = factory.params();
    let path = params.iter().find(|p| p.name == "path").expect("path");
    assert_eq!((path.kind, &path.requirement, path.sensitive), (ParamType::String, &Requirement::Required, false));
    let timeout = params.iter().find(|p| p.name == "busy_timeout_ms").expect("busy_timeout_ms");
    assert_eq!(timeout.kind, ParamType::Integer);
    assert_eq!(timeout.requirement, Requirement::Default(ParamValue::Integer(5_000)));
    let execution = params.iter().find(|p| p.name == "execution").expect("execution");
    assert_eq!(execution.kind, ParamType::String);
    assert_eq!(execution.requirement, Requirement::Default(ParamValue::Text("blocking_pool".to_owned())));
    assert_eq!(params.len(), 3);
}

#[test]
fn execution_is_blocking_pool_or_in_place_and_anything_else_is_named() {
    let with = |value: &str| {
        SqliteStoreFactory::config(
            &Params::new()
                .with("path", ParamValue::Text("x.sqlite".into()))
                .with("execution", ParamValue::Text(value.into())),
        )
    };
    assert_eq!(with("in_place").expect("in_place").execution(), Execution::InPlace);
    assert_eq!(with("blocking_pool").expect("blocking_pool").execution(), Execution::BlockingPool);
    let default = SqliteStoreFactory::config(&Params::new().with("path", ParamValue::Text("x.sqlite".into())));
    assert_eq!(default.expect("default").execution(), Execution::BlockingPool);
    let error = with("auto").expect_err("unknown").to_string();
    assert!(error.contains("execution") && error.contains("`auto`") && error.contains("in_place"), "{error}");
}

#[tokio::test]
async fn the_factory_builds_stores_on_a_file() {
    let db = TempDb::new("factory");
    let params = Params::new()
        .with("path", ParamValue::Text(db.path().display().to_string()))
        .with("busy_timeout_ms", ParamValue::Integer(2_000));
    let adapter = SqliteStoreFactory::new().build(params).await.expect("build");
    assert_eq!(adapter.port(), PortKind::Store);
    let Adapter::Store(set) = adapter else { panic!("not a store set") };
    assert!(
        set.webhooks
            .record(
                &commerce_ports::TenantId::new("acme").expect("tenant"),
                "stripe",
                "evt_f",
                OffsetDateTime::now_utc()
            )
            .await
            .expect("record")
    );
    assert!(db.path().exists(), "the database file was not created");
}

#[tokio::test]
async fn the_factory_builds_an_in_memory_database() {
    let params = Params::new().with("path", ParamValue::Text(":memory:".to_owned()));
    let adapter = SqliteStoreFactory::new().build(params).await.expect("build");
    assert_eq!(adapter.port(), PortKind::Store);
}

#[tokio::test]
async fn a_path_in_a_missing_directory_is_refused_naming_path() {
    let dir = std::env::temp_dir().join(format!("commerce-sqlite-missing-{}", std::process::id()));
    let file = dir.join("nested").join("commerce.db");
    let params = Params::new().with("path", ParamValue::Text(file.display().to_string()));
    let error = SqliteStoreFactory::new().build(params).await.expect_err("a missing directory must be refused");
    assert_eq!(error.param.as_deref(), Some("path"));
    assert!(error.message.contains("does not exist"), "{error}");
    assert!(!file.exists());
}

#[tokio::test]
async fn bad_parameters_are_refused_naming_them() {
    let missing = SqliteStoreFactory::new().build(Params::new()).await.expect_err("path is required");
    assert_eq!(missing.param.as_deref(), Some("path"));
    let empty = Params::new().with("path", ParamValue::Text("  ".to_owned()));
    assert_eq!(SqliteStoreFactory::new().build(empty).await.expect_err("empty").param.as_deref(), Some("path"));
    let negative = Params::new()
        .with("path", ParamValue::Text(":memory:".to_owned()))
        .with("busy_timeout_ms", ParamValue::Integer(-1));
    let error = SqliteStoreFactory::new().build(negative).await.expect_err("negative timeout");
    assert_eq!(error.param.as_deref(), Some("busy_timeout_ms"));
    let wrong_type = Params::new().with("path", ParamValue::Integer(3));
    assert_eq!(SqliteStoreFactory::new().build(wrong_type).await.expect_err("type").param.as_deref(), Some("path"));
}
