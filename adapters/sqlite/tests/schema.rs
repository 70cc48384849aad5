//! Durability across reopening, migrations, and what happens with files this build does not expect.

mod common;

use commerce_ports::peripherals::ReceiptDocument;
use commerce_ports::stores::{
    IdempotencyBegin, IdempotencyClaim, IntentEvent, IntentStatus, Pairing, PaymentIntent, PrintJob,
};
use commerce_ports::{
    ChannelId, Currency, DeviceId, ErrorKind, IdempotencyKey, IntentId, Money, RegisterId, TenantId, TenderKind,
};
use commerce_sqlite::{SCHEMA_VERSION, SqliteStores};
use rusqlite::Connection;
use time::{Duration, OffsetDateTime};

use common::TempDb;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")
}

fn intent(tenant: &TenantId, id: &str) -> PaymentIntent {
    PaymentIntent::new(
        IntentId::new(id).expect("id"),
        tenant.clone(),
        ChannelId::new("web").expect("channel"),
        TenderKind::CardPresent,
        Money::from_minor(1_234, Currency::KWD),
        "memory",
        "order-1",
        now(),
    )
}

#[tokio::test]
async fn data_survives_closing_and_reopening() {
    let db = TempDb::new("reopen");
    let tenant = TenantId::new("acme").expect("tenant");
    let key = IdempotencyKey::new("k-1").expect("key");
    let printer = DeviceId::new("printer-1").expect("device");
    let client = RegisterId::new("till-1").expect("register");
    let created = intent(&tenant, "pi_1");
    let mut authorized = created.clone();
    authorized.version = 2;
    authorized.status = IntentStatus::Authorized;
    authorized.authorized = authorized.amount;
    authorized.provider_reference = Some("psp-1".to_owned());
    authorized.updated_at = now() + Duration::seconds(3);
    let data = r#"{"applied":{"provider_key":"k-1","fingerprint":"f"}}"#;
    let event = IntentEvent::new(2, authorized.updated_at, "authorize", IntentStatus::Authorized)
        .with_amount(authorized.amount)
        .with_detail("approved \u{2014} code 00")
        .with_data(data);
    let job =
        PrintJob::new(key.clone(), client.clone(), printer.clone(), ReceiptDocument::new().title("Hi").cut(), now());

    {
        let stores = SqliteStores::open(db.path()).await.expect("open");
        let set = stores.store_set();
        let claim = IdempotencyClaim::new("authorize", "f", now(), now() + Duration::minutes(1));
        set.idempotency.begin(&tenant, &key, claim).await.expect("begin");
        set.idempotency.complete(&tenant, &key, b"{\"ok\":true}".to_vec()).await.expect("complete");
        set.intents
            .create(created.clone(), IntentEvent::new(1, now(), "create", IntentStatus::RequiresAuthorization))
            .await
            .expect("create");
        set.intents.update(authorized.clone(), 1, event.clone()).await.expect("update");
        assert!(
            set.webhooks
                .record(&TenantId::new("acme").expect("tenant"), "stripe", "evt_1", now())
                .await
                .expect("record")
        );
        set.print_jobs.enqueue(job.clone()).await.expect("enqueue");
        set.pairings.put(Pairing::new(client.clone(), "hash-1", vec![printer.clone()], now())).await.expect("put");
    }

    let stores = SqliteStores::open(db.path()).await.expect("reopen");
    assert_eq!(stores.applied_migrations(), &[] as &[u32], "an up-to-date file was migrated again");
    let set = stores.store_set();
    let replay = set
        .idempotency
        .begin(&tenant, &key, IdempotencyClaim::new("authorize", "f", now(), now() + Duration::minutes(1)))
        .await
        .expect("begin");
    assert_eq!(replay, IdempotencyBegin::Completed(b"{\"ok\":true}".to_vec()));
    assert_eq!(set.intents.get(&tenant, &created.id).await.expect("get"), authorized);
    let events = set.intents.events(&tenant, &created.id).await.expect("events");
    assert_eq!(events.len(), 2);
    assert_eq!(events.get(1), Some(&event), "the event (detail and data) must come back verbatim");
    assert!(set.webhooks.contains(&TenantId::new("acme").expect("tenant"), "stripe", "evt_1").await.expect("contains"));
    assert!(
        !set.webhooks
            .record(&TenantId::new("acme").expect("tenant"), "stripe", "evt_1", now())
            .await
            .expect("record again")
    );
    assert_eq!(set.print_jobs.next(&printer).await.expect("next"), Some(job));
    let pairing = set.pairings.by_token_hash("hash-1").await.expect("by hash").expect("pairing");
    assert_eq!(pairing.devices, vec![printer]);
}

#[tokio::test]
async fn migrations_run_once_and_are_recorded() {
    let db = TempDb::new("migrations");
    let first = SqliteStores::open(db.path()).await.expect("open");
    assert_eq!(first.applied_migrations(), &[1, 2, 3, 4, 5]);
    let second = SqliteStores::open(db.path()).await.expect("open again while the first is open");
    assert_eq!(second.applied_migrations(), &[] as &[u32]);
    drop((first, second));
    let third = SqliteStores::open(db.path()).await.expect("reopen");
    assert_eq!(third.applied_migrations(), &[] as &[u32]);

    let conn = Connection::open(db.path()).expect("inspect");
    let rows: Vec<(i64, String)> = conn
        .prepare("SELECT version, name FROM schema_migrations ORDER BY version")
        .expect("prepare")
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        rows,
        vec![
            (1, "initial schema".to_owned()),
            (2, "offline payment queue".to_owned()),
            (3, "append-friendly payment tables".to_owned()),
            (4, "erase settled offline card data".to_owned()),
            (5, "first claim time of idempotency keys".to_owned())
        ]
    );
    assert_eq!(SCHEMA_VERSION, 5);
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).expect("journal mode");
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn a_newer_schema_is_refused_precisely() {
    let db = TempDb::new("newer");
    drop(SqliteStores::open(db.path()).await.expect("open"));
    let conn = Connection::open(db.path()).expect("inspect");
    conn.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (7, 'from the future', 0)", [])
        .expect("insert");
    drop(conn);

    let error = SqliteStores::open(db.path()).await.expect_err("a newer schema must be refused");
    assert_eq!(error.kind(), ErrorKind::Configuration);
    assert_eq!(error.operation(), "open");
    let message = error.message();
    assert!(message.contains("schema version 7"), "{message}");
    assert!(message.contains(&format!("version {SCHEMA_VERSION}")), "{message}");
    assert!(message.contains(&db.path().display().to_string()), "{message}");
}

#[tokio::test]
async fn a_row_that_does_not_parse_is_unexpected_naming_table_key_and_column() {
    let db = TempDb::new("bad-row");
    let tenant = TenantId::new("acme").expect("tenant");
    let created = intent(&tenant, "pi_bad");
    {
        let stores = SqliteStores::open(db.path()).await.expect("open");
        let set = stores.store_set();
        set.intents
            .create(created.clone(), IntentEvent::new(1, now(), "create", IntentStatus::RequiresAuthorization))
            .await
            .expect("create");
    }
    let conn = Connection::open(db.path()).expect("inspect");
    conn.execute("UPDATE payment_intents SET status = 'sideways' WHERE id = 'pi_bad'", []).expect("damage");
    drop(conn);

    let stores = SqliteStores::open(db.path()).await.expect("reopen");
    let error = stores.store_set().intents.get(&tenant, &created.id).await.expect_err("a bad status must not parse");
    assert_eq!(error.kind(), ErrorKind::Unexpected);
    let message = error.message();
    assert!(message.contains("`payment_intents`"), "{message}");
    assert!(message.contains("pi_bad") && message.contains("acme"), "{message}");
    assert!(message.contains("`status`") && message.contains("sideways"), "{message}");
}

#[tokio::test]
async fn events_are_append_only_in_the_database() {
    let db = TempDb::new("append-only");
    let tenant = TenantId::new("acme").expect("tenant");
    {
        let stores = SqliteStores::open(db.path()).await.expect("open");
        stores
            .store_set()
            .intents
            .create(intent(&tenant, "pi_1"), IntentEvent::new(1, now(), "create", IntentStatus::RequiresAuthorization))
            .await
            .expect("create");
    }
    let conn = Connection::open(db.path()).expect("inspect");
    assert!(conn.execute("UPDATE intent_events SET detail = 'rewritten'", []).is_err());
    assert!(conn.execute("DELETE FROM intent_events", []).is_err());
}

#[tokio::test]
async fn an_intent_with_amounts_in_two_currencies_is_refused() {
    let stores = SqliteStores::open_in_memory().await.expect("open");
    let tenant = TenantId::new("acme").expect("tenant");
    let mut mixed = intent(&tenant, "pi_mixed");
    mixed.captured = Money::zero(Currency::EUR);
    let error = stores
        .store_set()
        .intents
        .create(mixed, IntentEvent::new(1, now(), "create", IntentStatus::RequiresAuthorization))
        .await
        .expect_err("mixed currencies");
    assert_eq!(error.kind(), ErrorKind::InvalidRequest);
    assert!(error.message().contains("`captured`"), "{}", error.message());
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_configuration_error() {
    let db = TempDb::new("not-a-db");
    std::fs::write(db.path(), b"this is not a SQLite database, just some text that is long enough").expect("write");
    let error = SqliteStores::open(db.path()).await.expect_err("not a database");
    assert_eq!(error.kind(), ErrorKind::Configuration, "{error}");
    assert!(error.message().contains(&db.path().display().to_string()), "{error}");
}
