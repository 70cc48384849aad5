//! Offline store-and-forward: accepting card-present payments within the terminal's policy into a durable
//! queue, refusing the rest precisely, and forwarding them once the link is back.

use std::sync::Arc;

use commerce_payments::offline::{OfflineRule, StoreAndForward};
use commerce_payments::{OfflineAcceptance, OfflineError};
use commerce_ports::offline_queue::{OfflineQueueStore, OfflineStatus};
use commerce_ports::terminal::{EntryMode, OfflineCapability, TerminalPaymentRequest};
use commerce_ports::{ChannelId, Currency, ErrorKind, IdempotencyKey, ManualClock, Money, RegisterId, TenantId};
use commerce_sqlite::SqliteStores;
use commerce_testkit::memory::{MemoryOfflineQueueStore, MemoryTerminal};
use time::OffsetDateTime;

fn eur(minor: i64) -> Money {
    Money::from_minor(minor, Currency::EUR)
}

fn capability(max_count: u32) -> OfflineCapability {
    let mut cap = OfflineCapability::new(
        vec!["visa".to_owned(), "mastercard".to_owned()],
        vec![EntryMode::Chip, EntryMode::Contactless, EntryMode::Magstripe],
        eur(5_000),
        max_count,
    );
    cap.floor_limit = Some(eur(3_000));
    cap
}

fn tenant() -> TenantId {
    TenantId::new("acme").expect("tenant")
}

fn channel() -> ChannelId {
    ChannelId::new("shop-1").expect("channel")
}

fn request(n: u32, minor: i64) -> TerminalPaymentRequest {
    TerminalPaymentRequest::new(
        "ped-1",
        RegisterId::new("till-1").expect("register"),
        eur(minor),
        format!("S-{n}"),
        IdempotencyKey::new(format!("sale-{n}")).expect("key"),
    )
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time")))
}

fn service(queue: Arc<dyn OfflineQueueStore>) -> StoreAndForward {
    StoreAndForward::new(queue, clock())
}

fn memory() -> (StoreAndForward, Arc<MemoryOfflineQueueStore>) {
    let queue = Arc::new(MemoryOfflineQueueStore::new());
    (service(queue.clone()), queue)
}

async fn accept(
    saf: &StoreAndForward,
    t: &MemoryTerminal,
    n: u32,
    minor: i64,
) -> Result<OfflineAcceptance, OfflineError> {
    saf.accept(t, &tenant(), &channel(), request(n, minor)).await
}

fn refused_rule(result: Result<OfflineAcceptance, OfflineError>) -> (OfflineRule, String) {
    match result {
        Err(OfflineError::Refused(r)) => (r.rule, r.message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_payment_within_the_policy_is_queued() {
    let (saf, queue) = memory();
    let terminal = MemoryTerminal::with_offline(capability(3));
    terminal.set_link_down(true);
    let accepted = accept(&saf, &terminal, 1, 1_250).await.expect("accepted");
    assert!(!accepted.replayed);
    assert_eq!(accepted.pending, 1);
    assert_eq!(accepted.entry.status, OfflineStatus::Pending);
    assert_eq!(accepted.entry.payment, request(1, 1_250));
    assert_eq!(accepted.entry.card.scheme.as_deref(), Some("visa"));
    let stored = queue.get(&tenant(), "ped-1", accepted.entry.key()).await.expect("get").expect("queued");
    assert_eq!(stored, accepted.entry);
    assert!(!stored.card.card_data.is_empty());
    let shown = format!("{accepted:?}");
    assert!(!shown.contains(&stored.card.card_data), "Debug shows card data: {shown}");
    assert_eq!(terminal.offline_charges(), 0, "nothing is charged before forwarding");
}

#[tokio::test]
async fn each_refusal_names_its_rule_and_queues_nothing() {
    let (saf, queue) = memory();

    let plain = MemoryTerminal::new();
    let (rule, message) = refused_rule(accept(&saf, &plain, 1, 1_000).await);
    assert_eq!(rule, OfflineRule::NotOfflineCapable);
    assert!(message.contains("ped-1"), "{message}");

    let terminal = MemoryTerminal::with_offline(capability(3));
    terminal.set_card(Some("amex"), EntryMode::Chip);
    let (rule, message) = refused_rule(accept(&saf, &terminal, 2, 1_000).await);
    assert_eq!(rule, OfflineRule::Scheme);
    assert_eq!(message, "scheme `amex` is not accepted offline (accepted: visa, mastercard)");

    terminal.set_card(None, EntryMode::Chip);
    assert_eq!(refused_rule(accept(&saf, &terminal, 3, 1_000).await).0, OfflineRule::Scheme);

    // Listed in the capability, but magnetic stripe is never accepted offline; keyed entry is not listed.
    for mode in [EntryMode::Magstripe, EntryMode::Keyed, EntryMode::QrWallet] {
        terminal.set_card(Some("visa"), mode);
        let (rule, message) = refused_rule(accept(&saf, &terminal, 4, 1_000).await);
        assert_eq!(rule, OfflineRule::EntryMode, "{mode:?}");
        assert!(message.contains("accepted: chip, contactless"), "{message}");
    }

    terminal.set_card(Some("Mastercard"), EntryMode::Contactless);
    let (rule, message) = refused_rule(accept(&saf, &terminal, 5, 5_001).await);
    assert_eq!(rule, OfflineRule::MaxAmount);
    assert_eq!(message, "50.01 EUR is above the largest offline payment of 50.00 EUR");

    let (rule, message) = refused_rule(accept(&saf, &terminal, 6, 3_001).await);
    assert_eq!(rule, OfflineRule::FloorLimit);
    assert_eq!(message, "30.01 EUR is above the floor limit of 30.00 EUR");

    let usd = TerminalPaymentRequest::new(
        "ped-1",
        RegisterId::new("till-1").expect("register"),
        Money::from_minor(1_000, Currency::USD),
        "S-7",
        IdempotencyKey::new("sale-7").expect("key"),
    );
    let refused = saf.accept(&terminal, &tenant(), &channel(), usd).await;
    assert_eq!(refused_rule(refused).0, OfflineRule::Amount);

    assert_eq!(queue.pending_count(&tenant(), "ped-1").await.expect("count"), 0, "a refused payment was queued");
    // At the boundaries the payment is accepted.
    accept(&saf, &terminal, 8, 3_000).await.expect("exactly the floor limit");
}

#[tokio::test]
async fn the_queue_is_full_at_max_count_and_no_card_is_read_then() {
    let (saf, _queue) = memory();
    let terminal = MemoryTerminal::with_offline(capability(2));
    accept(&saf, &terminal, 1, 1_000).await.expect("first");
    let second = accept(&saf, &terminal, 2, 1_000).await.expect("second");
    assert_eq!(second.pending, 2);
    let reads = terminal.offline_reads();
    let (rule, message) = refused_rule(accept(&saf, &terminal, 3, 1_000).await);
    assert_eq!(rule, OfflineRule::MaxCount);
    assert_eq!(message, "the offline queue holds 2 payments; at most 2 are allowed");
    assert_eq!(terminal.offline_reads(), reads, "the customer was asked for a card that could not be queued");
    // The queue is per terminal.
    let mut other = request(4, 1_000);
    other.terminal_id = "ped-2".to_owned();
    saf.accept(&terminal, &tenant(), &channel(), other).await.expect("another terminal has room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_racing_for_the_last_places_never_exceed_max_count() {
    let (saf, queue) = memory();
    let saf = Arc::new(saf);
    let terminal = Arc::new(MemoryTerminal::with_offline(capability(4)));
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let (saf, terminal) = (Arc::clone(&saf), Arc::clone(&terminal));
            tokio::spawn(async move { saf.accept(terminal.as_ref(), &tenant(), &channel(), request(n, 500)).await })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(_) => accepted += 1,
            Err(e) => assert_eq!(e.rule(), Some(OfflineRule::MaxCount), "{e}"),
        }
    }
    assert_eq!(accepted, 4);
    assert_eq!(queue.pending_count(&tenant(), "ped-1").await.expect("count"), 4);
}

#[tokio::test]
async fn accepting_a_key_again_replays_and_another_payment_on_it_conflicts() {
    let (saf, _queue) = memory();
    let terminal = MemoryTerminal::with_offline(capability(1));
    let first = accept(&saf, &terminal, 1, 1_000).await.expect("accepted");
    let reads = terminal.offline_reads();
    let again = accept(&saf, &terminal, 1, 1_000).await.expect("replayed, although the queue is full");
    assert!(again.replayed);
    assert_eq!(again.entry, first.entry);
    assert_eq!(terminal.offline_reads(), reads, "a replay read the card again");
    match accept(&saf, &terminal, 1, 1_100).await {
        Err(OfflineError::Store(e)) => assert_eq!(e.kind(), ErrorKind::IdempotencyConflict, "{e}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn forwarding_waits_for_the_link_then_marks_each_payment_forwarded() {
    let (saf, queue) = memory();
    let terminal = MemoryTerminal::with_offline(capability(3));
    terminal.set_link_down(true);
    for n in 1..=3 {
        accept(&saf, &terminal, n, 1_000 + i64::from(n)).await.expect("accepted");
    }
    let down = saf.forward(&terminal, &tenant(), "ped-1", 10).await.expect("forward run");
    assert!(down.forwarded.is_empty());
    assert_eq!(down.still_pending.len(), 1, "the run stops at the first link failure: {down:?}");
    assert!(down.stopped.as_deref().is_some_and(|s| s.starts_with("unavailable")), "{down:?}");
    assert_eq!(queue.pending_count(&tenant(), "ped-1").await.expect("count"), 3);
    assert_eq!(terminal.offline_charges(), 0);

    terminal.set_link_down(false);
    let report = saf.forward(&terminal, &tenant(), "ped-1", 10).await.expect("forward run");
    let refs: Vec<&str> = report.forwarded.iter().map(|i| i.reference.as_str()).collect();
    assert_eq!(refs, ["S-1", "S-2", "S-3"], "oldest first: {report:?}");
    assert!(report.declined.is_empty() && report.still_pending.is_empty() && report.stopped.is_none());
    assert_eq!(terminal.offline_charges(), 3);
    assert_eq!(queue.pending_count(&tenant(), "ped-1").await.expect("count"), 0);
    let first = queue.get(&tenant(), "ped-1", &request(1, 0).idempotency_key).await.expect("get").expect("kept");
    assert_eq!(first.status, OfflineStatus::Forwarded { provider_reference: report.forwarded[0].detail.clone() });
    assert_eq!(first.attempts, 1, "the failed attempt while the link was down is counted");
    // Forwarding frees room in the queue.
    accept(&saf, &terminal, 9, 1_000).await.expect("room again");
    let nothing = saf.forward(&terminal, &tenant(), "ped-2", 10).await.expect("empty terminal");
    assert_eq!(nothing, Default::default());
}

#[tokio::test]
async fn a_decline_on_forwarding_is_marked_and_reported_as_the_merchants_loss() {
    let (saf, queue) = memory();
    let terminal = MemoryTerminal::with_offline(capability(3));
    accept(&saf, &terminal, 1, 1_000).await.expect("accepted");
    let declined = accept(&saf, &terminal, 2, 2_500).await.expect("accepted");
    terminal.decline_on_forward(declined.entry.key());
    let report = saf.forward(&terminal, &tenant(), "ped-1", 10).await.expect("forward run");
    assert_eq!(report.forwarded.len(), 1);
    assert_eq!(report.declined.len(), 1);
    assert_eq!(report.declined[0].reference, "S-2");
    assert!(report.declined[0].detail.starts_with("51: "), "{report:?}");
    assert_eq!(report.declined_amounts(), vec![eur(2_500)]);
    let stored = queue.get(&tenant(), "ped-1", declined.entry.key()).await.expect("get").expect("kept");
    assert!(matches!(stored.status, OfflineStatus::Declined { ref reason } if reason.starts_with("51")));
    assert!(stored.settled_at.is_some());
    // A declined payment is settled: it is not forwarded again.
    let again = saf.forward(&terminal, &tenant(), "ped-1", 10).await.expect("forward run");
    assert_eq!(again, Default::default());
}

#[tokio::test]
async fn an_unknown_outcome_stays_pending_and_forwarding_again_charges_once() {
    let (saf, queue) = memory();
    let terminal = MemoryTerminal::with_offline(capability(3));
    let accepted = accept(&saf, &terminal, 1, 1_000).await.expect("accepted");
    terminal.lose_forward_answers(1);
    let first = saf.forward(&terminal, &tenant(), "ped-1", 10).await.expect("forward run");
    assert!(first.forwarded.is_empty());
    assert_eq!(first.still_pending.len(), 1);
    assert!(first.still_pending[0].detail.starts_with("outcome_unknown"), "{first:?}");
    assert!(first.stopped.is_none(), "an unknown outcome is not a link failure");
    let stored = queue.get(&tenant(), "ped-1", accepted.entry.key()).await.expect("get").expect("kept");
    assert!(stored.status.is_pending());
    assert_eq!(stored.attempts, 1);
    assert_eq!(terminal.offline_charges(), 1, "the provider charged although the answer was lost");

    let second = saf.forward(&terminal, &tenant(), "ped-1", 10).await.expect("forward run");
    assert_eq!(second.forwarded.len(), 1);
    assert_eq!(terminal.forward_calls(), 2, "forwarded twice");
    assert_eq!(terminal.offline_charges(), 1, "the same key charged once");
    let stored = queue.get(&tenant(), "ped-1", accepted.entry.key()).await.expect("get").expect("kept");
    assert_eq!(stored.status, OfflineStatus::Forwarded { provider_reference: second.forwarded[0].detail.clone() });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_accepted_on_sqlite_survive_a_restart_and_are_forwarded_from_the_reopened_store() {
    let path = std::env::temp_dir().join(format!(
        "commerce-payments-offline-{}-{}.db",
        std::process::id(),
        OffsetDateTime::now_utc().unix_timestamp_nanos()
    ));
    let terminal = MemoryTerminal::with_offline(capability(3));
    terminal.set_link_down(true);
    let mut accepted = Vec::new();
    {
        let stores = SqliteStores::open(&path).await.expect("open");
        let saf = service(stores.store_set().offline_queue);
        for n in 1..=2 {
            accepted.push(accept(&saf, &terminal, n, 1_500).await.expect("accepted"));
        }
        let down = saf.forward(&terminal, &tenant(), "ped-1", 10).await.expect("forward run");
        assert!(down.stopped.is_some());
    }
    let reopened = SqliteStores::open(&path).await.expect("reopen");
    let queue = reopened.store_set().offline_queue;
    let pending = queue.pending(&tenant(), "ped-1", 10).await.expect("pending");
    let before: Vec<_> = accepted.iter().map(|a| a.entry.clone()).collect();
    assert_eq!(pending.len(), 2);
    for (stored, original) in pending.iter().zip(&before) {
        assert!(stored.same_content(original), "the reopened queue holds another payment");
        assert_eq!(stored.card.card_data, original.card.card_data, "card data changed on disk");
    }
    assert_eq!(pending[0].attempts, 1);
    terminal.set_link_down(false);
    let saf = service(queue.clone());
    let report = saf.forward(&terminal, &tenant(), "ped-1", 10).await.expect("forward run");
    assert_eq!(report.forwarded.len(), 2, "{report:?}");
    assert_eq!(terminal.offline_charges(), 2);
    assert_eq!(queue.pending_count(&tenant(), "ped-1").await.expect("count"), 0);
    drop((saf, queue, reopened));
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.clone().into_os_string();
        file.push(suffix);
        let _ = std::fs::remove_file(file);
    }
}
