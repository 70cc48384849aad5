//! Conformance suite of the [`OfflineQueueStore`] port. Each behaviour uses its own tenant made from the
//! fixture's run id, so the suite can run against a shared database repeatedly.

use futures_util::future::join_all;
use time::{Duration, OffsetDateTime};

use commerce_ports::offline_queue::{Enqueued, OfflineEntry, OfflineQueueStore, OfflineStatus};
use commerce_ports::terminal::{EntryMode, OfflineCardRead, TerminalPaymentRequest};
use commerce_ports::{ChannelId, Currency, ErrorKind, IdempotencyKey, Money, RegisterId, StoreError, TenantId};

use super::stores::StoreFixture;
use super::{Failure, Outcome, Report, ensure, step};

fn tenant(fx: &StoreFixture, b: &'static str, which: &str) -> Result<TenantId, Failure> {
    let initials: String = b.split('_').filter_map(|w| w.chars().next()).collect();
    step(b, "tenant id", TenantId::new(format!("{}-{initials}-{which}", fx.run_id)))
}

fn key(b: &'static str, name: &str) -> Result<IdempotencyKey, Failure> {
    step(b, "idempotency key", IdempotencyKey::new(format!("offline-{name}")))
}

/// An entry of `terminal` with key `name`, 12.50 EUR, read by chip.
fn entry(
    b: &'static str,
    tenant: &TenantId,
    terminal: &str,
    name: &str,
    at: OffsetDateTime,
) -> Result<OfflineEntry, Failure> {
    let payment = TerminalPaymentRequest::new(
        terminal,
        step(b, "register id", RegisterId::new("till-1"))?,
        Money::from_minor(1_250, Currency::EUR),
        format!("sale-{name}"),
        key(b, name)?,
    );
    let mut card = OfflineCardRead::new(Some("visa".to_owned()), EntryMode::Chip, format!("enc:{name}:9f26a1b2"));
    card.masked_pan = Some("**** 4242".to_owned());
    Ok(OfflineEntry::new(tenant.clone(), step(b, "channel id", ChannelId::new("shop-1"))?, payment, card, at))
}

fn expect_kind<T: std::fmt::Debug>(
    b: &'static str,
    what: &str,
    result: Result<T, StoreError>,
    kind: ErrorKind,
) -> Result<StoreError, Failure> {
    match result {
        Ok(v) => Err(Failure { behaviour: b, message: format!("{what} succeeded ({v:?}); expected {kind}") }),
        Err(e) if e.kind() == kind => Ok(e),
        Err(e) => {
            Err(Failure { behaviour: b, message: format!("{what} failed with {} ({e}); expected {kind}", e.kind()) })
        }
    }
}

fn queued(b: &'static str, what: &str, result: Result<Enqueued, StoreError>) -> Result<u32, Failure> {
    match step(b, what, result)? {
        Enqueued::Queued { pending, .. } => Ok(pending),
        other => Err(Failure { behaviour: b, message: format!("{what} gave {other:?}; expected it queued") }),
    }
}

fn keys(entries: &[OfflineEntry]) -> Vec<String> {
    entries.iter().map(|e| e.key().as_str().to_owned()).collect()
}

/// A terminal holds at most `max_count` pending entries: one more is refused with `InvalidState`, naming
/// the bound; settling an entry makes room; `max_count` 0 refuses everything.
pub async fn offline_queue_bound_is_enforced(store: &dyn OfflineQueueStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "offline_queue_bound_is_enforced";
    let t = tenant(fx, B, "t")?;
    let now = fx.now;
    ensure!(B, step(B, "pending_count", store.pending_count(&t, "ped-1").await)? == 0, "a new queue is not empty");
    let first = queued(B, "first enqueue", store.enqueue(entry(B, &t, "ped-1", "a", now)?, 2).await)?;
    let second = queued(B, "second enqueue", store.enqueue(entry(B, &t, "ped-1", "b", now)?, 2).await)?;
    ensure!(B, (first, second) == (1, 2), "pending after each enqueue were {first} and {second}; expected 1 and 2");
    let full = expect_kind(
        B,
        "third enqueue",
        store.enqueue(entry(B, &t, "ped-1", "c", now)?, 2).await,
        ErrorKind::InvalidState,
    )?;
    ensure!(B, full.message().contains('2'), "the refusal does not name the bound: {full}");
    ensure!(B, step(B, "pending_count", store.pending_count(&t, "ped-1").await)? == 2, "the refused entry counted");
    ensure!(B, step(B, "get", store.get(&t, "ped-1", &key(B, "c")?).await)?.is_none(), "the refused entry was stored");
    step(B, "mark_forwarded", store.mark_forwarded(&t, "ped-1", &key(B, "a")?, "psp-a", now).await)?;
    let again = queued(B, "enqueue after forwarding", store.enqueue(entry(B, &t, "ped-1", "c", now)?, 2).await)?;
    ensure!(B, again == 2, "pending after forwarding one and queueing another is {again}; expected 2");
    expect_kind(
        B,
        "enqueue with max_count 0",
        store.enqueue(entry(B, &t, "ped-2", "z", now)?, 0).await,
        ErrorKind::InvalidState,
    )?;
    Ok(())
}

/// Of many concurrent enqueues of different payments on one terminal, exactly `max_count` are queued and the
/// rest refused with `InvalidState`.
pub async fn offline_queue_concurrent_enqueues_respect_the_bound(
    store: &dyn OfflineQueueStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "offline_queue_concurrent_enqueues_respect_the_bound";
    let t = tenant(fx, B, "t")?;
    let entries: Vec<OfflineEntry> =
        (0..24).map(|n| entry(B, &t, "ped-1", &format!("c{n}"), fx.now)).collect::<Result<_, _>>()?;
    let results = join_all(entries.into_iter().map(|e| store.enqueue(e, 5))).await;
    let (mut ok, mut full) = (0, 0);
    for r in results {
        match r {
            Ok(Enqueued::Queued { pending, .. }) => {
                ensure!(B, pending <= 5, "an enqueue reported {pending} pending, above the bound of 5");
                ok += 1;
            }
            Err(e) if e.kind() == ErrorKind::InvalidState => full += 1,
            other => return Err(Failure { behaviour: B, message: format!("a concurrent enqueue gave {other:?}") }),
        }
    }
    ensure!(
        B,
        (ok, full) == (5, 19),
        "{ok} of 24 concurrent enqueues were queued and {full} refused; expected 5 and 19"
    );
    let count = step(B, "pending_count", store.pending_count(&t, "ped-1").await)?;
    ensure!(B, count == 5, "{count} entries are pending after concurrent enqueues bounded at 5");
    let listed = step(B, "pending", store.pending(&t, "ped-1", 100).await)?;
    ensure!(B, listed.len() == 5, "pending lists {} entries; expected 5", listed.len());
    Ok(())
}

/// The same key with the same content replays (whatever the queue's fill and the entry's status, keeping the
/// first `accepted_at`); with other content it is an `IdempotencyConflict` that names the field but never
/// the card data.
pub async fn offline_queue_replays_and_conflicts(store: &dyn OfflineQueueStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "offline_queue_replays_and_conflicts";
    let t = tenant(fx, B, "t")?;
    let first = entry(B, &t, "ped-1", "r", fx.now)?;
    queued(B, "enqueue", store.enqueue(first.clone(), 1).await)?;
    // A retry of the same payment later, when the queue is full (it holds this very entry).
    let retry = entry(B, &t, "ped-1", "r", fx.now + Duration::seconds(30))?;
    match step(B, "replay", store.enqueue(retry.clone(), 1).await)? {
        Enqueued::Replayed { entry } => {
            ensure!(B, entry == first, "the replay returned {entry:?}, not the stored entry {first:?}");
        }
        other => return Err(Failure { behaviour: B, message: format!("the replay gave {other:?}") }),
    }
    let mut other_amount = first.clone();
    other_amount.payment.amount = Money::from_minor(9_999, Currency::EUR);
    let e = expect_kind(B, "other amount", store.enqueue(other_amount, 10).await, ErrorKind::IdempotencyConflict)?;
    ensure!(B, e.message().contains("amount"), "the conflict does not name the amount: {e}");
    let mut other_card = first.clone();
    other_card.card.card_data = "enc:SECRET-CARD-DATA".to_owned();
    let e = expect_kind(B, "other card data", store.enqueue(other_card, 10).await, ErrorKind::IdempotencyConflict)?;
    let shown = format!("{e} {e:?}");
    ensure!(
        B,
        !shown.contains("SECRET-CARD-DATA") && !shown.contains("9f26a1b2"),
        "the error shows card data: {shown}"
    );
    let stored = step(B, "get", store.get(&t, "ped-1", first.key()).await)?;
    ensure!(B, stored.as_ref() == Some(&first), "a refused enqueue changed the entry: {stored:?}");
    step(B, "mark_forwarded", store.mark_forwarded(&t, "ped-1", first.key(), "psp-r", fx.now).await)?;
    match step(B, "replay after forwarding", store.enqueue(retry, 1).await)? {
        Enqueued::Replayed { entry } => ensure!(
            B,
            entry.status == OfflineStatus::Forwarded { provider_reference: "psp-r".to_owned() },
            "the replay after forwarding shows status {:?}",
            entry.status
        ),
        other => return Err(Failure { behaviour: B, message: format!("the replay after forwarding gave {other:?}") }),
    }
    let count = step(B, "pending_count", store.pending_count(&t, "ped-1").await)?;
    ensure!(B, count == 0, "a replay of a forwarded entry made it pending again ({count} pending)");
    let mut settled = entry(B, &t, "ped-1", "s", fx.now)?;
    settled.attempts = 1;
    expect_kind(B, "enqueue with attempts", store.enqueue(settled, 10).await, ErrorKind::InvalidRequest)?;
    Ok(())
}

/// `pending` lists a terminal's pending entries oldest first (ties in queueing order), honours `limit`, and
/// leaves out settled entries.
pub async fn offline_queue_pending_is_oldest_first(store: &dyn OfflineQueueStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "offline_queue_pending_is_oldest_first";
    let t = tenant(fx, B, "t")?;
    let at = |s: i64| fx.now + Duration::seconds(s);
    for (name, offset) in [("p3", 3), ("p1", 1), ("p2a", 2), ("p2b", 2), ("p0", 0), ("p4", 4)] {
        queued(B, "enqueue", store.enqueue(entry(B, &t, "ped-1", name, at(offset))?, 100).await)?;
    }
    step(B, "mark_declined", store.mark_declined(&t, "ped-1", &key(B, "p1")?, "05 do not honour", at(10)).await)?;
    let all = keys(&step(B, "pending", store.pending(&t, "ped-1", 100).await)?);
    let expected = ["offline-p0", "offline-p2a", "offline-p2b", "offline-p3", "offline-p4"];
    ensure!(B, all == expected, "pending gave {all:?}; expected {expected:?}");
    let two = keys(&step(B, "pending with limit", store.pending(&t, "ped-1", 2).await)?);
    ensure!(B, two == expected[..2], "pending with limit 2 gave {two:?}");
    let none = step(B, "pending with limit 0", store.pending(&t, "ped-1", 0).await)?;
    ensure!(B, none.is_empty(), "pending with limit 0 gave {} entries", none.len());
    Ok(())
}

/// Marks settle a pending entry once: the same mark again is a no-op returning the first result; another
/// result is `InvalidState`; unknown keys are `NotFound`; attempts are counted on pending entries only; and
/// settled entries stay readable.
pub async fn offline_queue_marks_settle_once(store: &dyn OfflineQueueStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "offline_queue_marks_settle_once";
    let t = tenant(fx, B, "t")?;
    let (k1, k2, k3) = (key(B, "m1")?, key(B, "m2")?, key(B, "m3")?);
    for name in ["m1", "m2", "m3"] {
        queued(B, "enqueue", store.enqueue(entry(B, &t, "ped-1", name, fx.now)?, 10).await)?;
    }
    step(B, "record_attempt", store.record_attempt(&t, "ped-1", &k1, "unavailable: link down").await)?;
    let tried =
        step(B, "record_attempt again", store.record_attempt(&t, "ped-1", &k1, "outcome_unknown: no answer").await)?;
    ensure!(B, tried.attempts == 2, "two recorded attempts gave {}", tried.attempts);
    ensure!(
        B,
        tried.last_error.as_deref() == Some("outcome_unknown: no answer"),
        "last error is {:?}",
        tried.last_error
    );
    ensure!(B, tried.status.is_pending(), "recording an attempt settled the entry: {:?}", tried.status);

    let settled_at = fx.now + Duration::seconds(60);
    let forwarded = step(B, "mark_forwarded", store.mark_forwarded(&t, "ped-1", &k1, "psp-1", settled_at).await)?;
    let expected = OfflineStatus::Forwarded { provider_reference: "psp-1".to_owned() };
    ensure!(B, forwarded.status == expected, "mark_forwarded gave status {:?}", forwarded.status);
    ensure!(B, forwarded.settled_at == Some(settled_at), "settled_at is {:?}", forwarded.settled_at);
    ensure!(B, forwarded.attempts == 2, "mark_forwarded changed the attempts to {}", forwarded.attempts);
    let later = settled_at + Duration::seconds(60);
    let again = step(B, "mark_forwarded again", store.mark_forwarded(&t, "ped-1", &k1, "psp-1", later).await)?;
    ensure!(B, again == forwarded, "marking forwarded twice changed the entry: {again:?}");
    expect_kind(
        B,
        "mark_forwarded with another reference",
        store.mark_forwarded(&t, "ped-1", &k1, "psp-other", later).await,
        ErrorKind::InvalidState,
    )?;
    expect_kind(
        B,
        "mark_declined after forwarding",
        store.mark_declined(&t, "ped-1", &k1, "05", later).await,
        ErrorKind::InvalidState,
    )?;
    expect_kind(
        B,
        "record_attempt after forwarding",
        store.record_attempt(&t, "ped-1", &k1, "x").await,
        ErrorKind::InvalidState,
    )?;

    let declined =
        step(B, "mark_declined", store.mark_declined(&t, "ped-1", &k2, "51 insufficient funds", settled_at).await)?;
    ensure!(
        B,
        declined.status == OfflineStatus::Declined { reason: "51 insufficient funds".to_owned() },
        "mark_declined gave {:?}",
        declined.status
    );
    let again =
        step(B, "mark_declined again", store.mark_declined(&t, "ped-1", &k2, "51 insufficient funds", later).await)?;
    ensure!(B, again == declined, "declining twice changed the entry: {again:?}");
    expect_kind(
        B,
        "mark_declined with another reason",
        store.mark_declined(&t, "ped-1", &k2, "05", later).await,
        ErrorKind::InvalidState,
    )?;
    expect_kind(
        B,
        "mark_forwarded after declining",
        store.mark_forwarded(&t, "ped-1", &k2, "psp-2", later).await,
        ErrorKind::InvalidState,
    )?;

    let missing = key(B, "missing")?;
    expect_kind(
        B,
        "mark_forwarded of an unknown key",
        store.mark_forwarded(&t, "ped-1", &missing, "p", later).await,
        ErrorKind::NotFound,
    )?;
    expect_kind(
        B,
        "mark_declined of an unknown key",
        store.mark_declined(&t, "ped-1", &missing, "r", later).await,
        ErrorKind::NotFound,
    )?;
    expect_kind(
        B,
        "record_attempt of an unknown key",
        store.record_attempt(&t, "ped-1", &missing, "e").await,
        ErrorKind::NotFound,
    )?;

    let remaining = keys(&step(B, "pending", store.pending(&t, "ped-1", 10).await)?);
    ensure!(B, remaining == [k3.as_str()], "pending after settling two of three is {remaining:?}");
    let kept = step(B, "get forwarded", store.get(&t, "ped-1", &k1).await)?;
    ensure!(B, kept.as_ref() == Some(&forwarded), "the forwarded entry reads back as {kept:?}");
    let kept = step(B, "get declined", store.get(&t, "ped-1", &k2).await)?;
    ensure!(B, kept.as_ref() == Some(&declined), "the declined entry reads back as {kept:?}");
    Ok(())
}

/// Tenants and terminals are isolated: the same key lives independently under each, each terminal has its own
/// bound, and reads and marks only touch their own entries.
pub async fn offline_queue_isolates_tenants_and_terminals(store: &dyn OfflineQueueStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "offline_queue_isolates_tenants_and_terminals";
    let (a, b) = (tenant(fx, B, "a")?, tenant(fx, B, "b")?);
    let k = key(B, "same")?;
    queued(B, "enqueue a/ped-1", store.enqueue(entry(B, &a, "ped-1", "same", fx.now)?, 1).await)?;
    // Same key, different content, other terminal and other tenant: not a conflict, and not over the bound.
    let mut on_other_terminal = entry(B, &a, "ped-2", "same", fx.now)?;
    on_other_terminal.payment.amount = Money::from_minor(700, Currency::EUR);
    queued(B, "enqueue a/ped-2", store.enqueue(on_other_terminal, 1).await)?;
    let mut of_other_tenant = entry(B, &b, "ped-1", "same", fx.now)?;
    of_other_tenant.card.card_data = "enc:tenant-b".to_owned();
    queued(B, "enqueue b/ped-1", store.enqueue(of_other_tenant.clone(), 1).await)?;
    expect_kind(
        B,
        "enqueue a second entry on a/ped-1",
        store.enqueue(entry(B, &a, "ped-1", "more", fx.now)?, 1).await,
        ErrorKind::InvalidState,
    )?;

    for (t, term) in [(&a, "ped-1"), (&a, "ped-2"), (&b, "ped-1")] {
        let n = step(B, "pending_count", store.pending_count(t, term).await)?;
        ensure!(B, n == 1, "tenant `{t}` terminal `{term}` has {n} pending; expected 1");
    }
    ensure!(B, step(B, "pending_count", store.pending_count(&b, "ped-2").await)? == 0, "b/ped-2 sees other entries");
    let listed = step(B, "pending b/ped-1", store.pending(&b, "ped-1", 10).await)?;
    ensure!(B, listed == [of_other_tenant.clone()], "tenant b lists {listed:?}");
    step(B, "mark_forwarded a/ped-1", store.mark_forwarded(&a, "ped-1", &k, "psp-a1", fx.now).await)?;
    let other = step(B, "get b/ped-1", store.get(&b, "ped-1", &k).await)?;
    ensure!(B, other.is_some_and(|e| e.status.is_pending()), "marking tenant a's entry settled tenant b's");
    let other = step(B, "get a/ped-2", store.get(&a, "ped-2", &k).await)?;
    ensure!(B, other.is_some_and(|e| e.status.is_pending()), "marking terminal ped-1's entry settled ped-2's");
    expect_kind(
        B,
        "mark of a key under another terminal",
        store.mark_forwarded(&b, "ped-9", &k, "p", fx.now).await,
        ErrorKind::NotFound,
    )?;
    Ok(())
}

/// Card data of a pending entry (and the other card-read fields) come back exactly as stored, whatever their
/// bytes (empty card data is refused: see [`offline_queue_refuses_new_entries_without_card_data`]).
pub async fn offline_queue_card_data_round_trips(store: &dyn OfflineQueueStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "offline_queue_card_data_round_trips";
    let t = tenant(fx, B, "t")?;
    let long: String =
        (0..6_000).map(|n| char::from(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef0123456789+/="[n % 45])).collect();
    let blobs = [
        long,
        "  leading and trailing spaces  ".to_owned(),
        "line\nbreaks\r\nand\ttabs".to_owned(),
        "quotes ' \" ; -- DROP TABLE x; \\ backslash".to_owned(),
        "unicode: ü € 漢字 🙂".to_owned(),
        " ".to_owned(),
    ];
    for (n, blob) in blobs.iter().enumerate() {
        let mut e = entry(B, &t, "ped-1", &format!("d{n}"), fx.now)?;
        e.card.card_data = blob.clone();
        if n % 2 == 1 {
            e.card.masked_pan = None;
            e.card.scheme = None;
            e.card.entry_mode = EntryMode::Contactless;
        }
        queued(B, "enqueue", store.enqueue(e.clone(), 100).await)?;
        let read = step(B, "get", store.get(&t, "ped-1", e.key()).await)?;
        ensure!(B, read.as_ref() == Some(&e), "entry {n} reads back differently: {read:?}");
        let read = read.map(|r| r.card.card_data).unwrap_or_default();
        ensure!(B, &read == blob, "card data {n} changed: {} bytes stored, {} read", blob.len(), read.len());
    }
    let listed = step(B, "pending", store.pending(&t, "ped-1", 100).await)?;
    let datas: Vec<&str> = listed.iter().map(|e| e.card.card_data.as_str()).collect();
    let expected: Vec<&str> = blobs.iter().map(String::as_str).collect();
    ensure!(B, datas == expected, "pending returns card data differently (or out of order)");
    Ok(())
}

/// The card read of `settled` is `original`'s with its card data erased: scheme, entry mode and masked PAN
/// unchanged, and the rest of the content too.
fn erased_but_otherwise_kept(
    b: &'static str,
    what: &str,
    settled: &OfflineEntry,
    original: &OfflineEntry,
) -> Result<(), Failure> {
    ensure!(b, settled.card.is_erased(), "{what}: the card data of a settled entry was not erased");
    ensure!(
        b,
        settled.card.scheme == original.card.scheme
            && settled.card.entry_mode == original.card.entry_mode
            && settled.card.masked_pan == original.card.masked_pan,
        "{what}: erasing changed the rest of the card read: {:?}, was {:?}",
        settled.card,
        original.card
    );
    ensure!(
        b,
        settled.tenant == original.tenant
            && settled.channel == original.channel
            && settled.payment == original.payment
            && settled.accepted_at == original.accepted_at,
        "{what}: settling changed the payment: {settled:?}, was {original:?}"
    );
    Ok(())
}

/// `mark_forwarded` and `mark_declined` erase the card data of the entry they settle, in the returned entry
/// and in the stored one (scheme, entry mode and masked PAN stay); marking again returns the erased entry
/// unchanged; pending entries keep their card data verbatim.
pub async fn offline_queue_settling_erases_card_data(store: &dyn OfflineQueueStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "offline_queue_settling_erases_card_data";
    let t = tenant(fx, B, "t")?;
    let (forwarded_e, declined_e, pending_e) = (
        entry(B, &t, "ped-1", "ef", fx.now)?,
        entry(B, &t, "ped-1", "ed", fx.now)?,
        entry(B, &t, "ped-1", "ep", fx.now)?,
    );
    for e in [&forwarded_e, &declined_e, &pending_e] {
        queued(B, "enqueue", store.enqueue(e.clone(), 10).await)?;
    }
    step(B, "record_attempt", store.record_attempt(&t, "ped-1", forwarded_e.key(), "unavailable: link down").await)?;
    let at = fx.now + Duration::seconds(60);

    let forwarded = step(B, "mark_forwarded", store.mark_forwarded(&t, "ped-1", forwarded_e.key(), "psp-e", at).await)?;
    erased_but_otherwise_kept(B, "the entry mark_forwarded returned", &forwarded, &forwarded_e)?;
    ensure!(B, forwarded.attempts == 1, "erasing changed the attempts to {}", forwarded.attempts);
    let read = step(B, "get forwarded", store.get(&t, "ped-1", forwarded_e.key()).await)?;
    ensure!(B, read.as_ref() == Some(&forwarded), "the forwarded entry reads back as {read:?}, not {forwarded:?}");
    let again = step(
        B,
        "mark_forwarded again",
        store.mark_forwarded(&t, "ped-1", forwarded_e.key(), "psp-e", at + Duration::seconds(5)).await,
    )?;
    ensure!(B, again == forwarded, "marking forwarded again gave {again:?}, not the erased entry {forwarded:?}");

    let declined = step(B, "mark_declined", store.mark_declined(&t, "ped-1", declined_e.key(), "05", at).await)?;
    erased_but_otherwise_kept(B, "the entry mark_declined returned", &declined, &declined_e)?;
    let read = step(B, "get declined", store.get(&t, "ped-1", declined_e.key()).await)?;
    ensure!(B, read.as_ref() == Some(&declined), "the declined entry reads back as {read:?}, not {declined:?}");
    let again = step(
        B,
        "mark_declined again",
        store.mark_declined(&t, "ped-1", declined_e.key(), "05", at + Duration::seconds(5)).await,
    )?;
    ensure!(B, again == declined, "declining again gave {again:?}, not the erased entry {declined:?}");
    let e = expect_kind(
        B,
        "mark_forwarded after declining",
        store.mark_forwarded(&t, "ped-1", declined_e.key(), "psp-x", at).await,
        ErrorKind::InvalidState,
    )?;
    ensure!(B, !format!("{e} {e:?}").contains("9f26a1b2"), "the error shows card data: {e}");
    // A conflict on the pending entry, whose card data is still stored, names neither blob.
    let mut other = pending_e.clone();
    other.payment.amount = Money::from_minor(1_251, Currency::EUR);
    other.card.card_data = "enc:other:77c3e5d0".to_owned();
    let e = expect_kind(
        B,
        "enqueue of other content under the pending key",
        store.enqueue(other, 10).await,
        ErrorKind::IdempotencyConflict,
    )?;
    let shown = format!("{e} {e:?}");
    ensure!(B, !shown.contains("9f26a1b2") && !shown.contains("77c3e5d0"), "the conflict shows card data: {e}");

    let read = step(B, "get pending", store.get(&t, "ped-1", pending_e.key()).await)?;
    ensure!(B, read.as_ref() == Some(&pending_e), "the pending entry reads back as {read:?}");
    ensure!(
        B,
        read.is_some_and(|r| !r.card.is_erased() && r.card.card_data == pending_e.card.card_data),
        "settling other entries changed a pending entry's card data"
    );
    let listed = step(B, "pending", store.pending(&t, "ped-1", 10).await)?;
    ensure!(B, listed == [pending_e.clone()], "pending lists {listed:?}; expected the untouched pending entry");
    Ok(())
}

/// An `enqueue` replay of a settled key with its original content (card data included) answers `Replayed`
/// with the stored, erased entry and changes nothing; other content of a settled key still conflicts, without
/// naming card data.
pub async fn offline_queue_settled_replays_answer_the_erased_entry(
    store: &dyn OfflineQueueStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "offline_queue_settled_replays_answer_the_erased_entry";
    let t = tenant(fx, B, "t")?;
    let (forwarded_e, declined_e) = (entry(B, &t, "ped-1", "sf", fx.now)?, entry(B, &t, "ped-1", "sd", fx.now)?);
    for e in [&forwarded_e, &declined_e] {
        queued(B, "enqueue", store.enqueue(e.clone(), 10).await)?;
    }
    let at = fx.now + Duration::seconds(60);
    let forwarded = step(B, "mark_forwarded", store.mark_forwarded(&t, "ped-1", forwarded_e.key(), "psp-s", at).await)?;
    let declined = step(B, "mark_declined", store.mark_declined(&t, "ped-1", declined_e.key(), "51", at).await)?;

    for (original, settled) in [(&forwarded_e, &forwarded), (&declined_e, &declined)] {
        let mut retry = original.clone();
        retry.accepted_at = fx.now + Duration::seconds(90);
        // max_count 0: a replay is answered before the bound is looked at.
        match step(B, "replay of a settled key", store.enqueue(retry, 0).await)? {
            Enqueued::Replayed { entry } => {
                ensure!(B, entry == *settled, "the replay returned {entry:?}, not the stored erased entry {settled:?}");
                ensure!(B, entry.card.is_erased(), "the replay returned card data of a settled entry");
            }
            other => {
                return Err(Failure {
                    behaviour: B,
                    message: format!("the replay of settled key `{}` gave {other:?}", original.key()),
                });
            }
        }
        let mut other_amount = original.clone();
        other_amount.payment.amount = Money::from_minor(9_999, Currency::EUR);
        let e = expect_kind(
            B,
            "other amount on a settled key",
            store.enqueue(other_amount, 10).await,
            ErrorKind::IdempotencyConflict,
        )?;
        let shown = format!("{e} {e:?}");
        ensure!(B, e.message().contains("amount"), "the conflict does not name the amount: {e}");
        ensure!(B, !e.message().contains("card data"), "the conflict names erased card data as a difference: {e}");
        ensure!(B, !shown.contains("9f26a1b2"), "the error shows card data: {shown}");
        let read = step(B, "get", store.get(&t, "ped-1", original.key()).await)?;
        ensure!(B, read.as_ref() == Some(settled), "a replay or a conflict changed the settled entry: {read:?}");
    }
    let count = step(B, "pending_count", store.pending_count(&t, "ped-1").await)?;
    ensure!(B, count == 0, "replays of settled entries made {count} pending");
    let listed = step(B, "pending", store.pending(&t, "ped-1", 10).await)?;
    ensure!(B, listed.is_empty(), "replays of settled entries are listed as pending: {listed:?}");
    Ok(())
}

/// A new entry must carry card data: `enqueue` with empty card data is `InvalidRequest`, naming the card data
/// but no value, and stores nothing.
pub async fn offline_queue_refuses_new_entries_without_card_data(
    store: &dyn OfflineQueueStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "offline_queue_refuses_new_entries_without_card_data";
    let t = tenant(fx, B, "t")?;
    let mut empty = entry(B, &t, "ped-1", "nc", fx.now)?;
    empty.card.card_data = String::new();
    let e =
        expect_kind(B, "enqueue without card data", store.enqueue(empty.clone(), 10).await, ErrorKind::InvalidRequest)?;
    ensure!(B, e.message().contains("card data"), "the refusal does not name the card data: {e}");
    let read = step(B, "get", store.get(&t, "ped-1", empty.key()).await)?;
    ensure!(B, read.is_none(), "an entry without card data was stored: {read:?}");
    let count = step(B, "pending_count", store.pending_count(&t, "ped-1").await)?;
    ensure!(B, count == 0, "an entry without card data counts as pending ({count})");
    // The same payment with its card data is then queued normally.
    let pending = queued(B, "enqueue with card data", store.enqueue(entry(B, &t, "ped-1", "nc", fx.now)?, 10).await)?;
    ensure!(B, pending == 1, "pending after queueing the payment with its card data is {pending}; expected 1");
    Ok(())
}

/// Runs every behaviour of the offline queue.
pub async fn run_all(store: &dyn OfflineQueueStore, fx: &StoreFixture) -> Report {
    let mut r = Report::default();
    r.record("offline_queue_bound_is_enforced", offline_queue_bound_is_enforced(store, fx).await);
    r.record(
        "offline_queue_concurrent_enqueues_respect_the_bound",
        offline_queue_concurrent_enqueues_respect_the_bound(store, fx).await,
    );
    r.record("offline_queue_replays_and_conflicts", offline_queue_replays_and_conflicts(store, fx).await);
    r.record("offline_queue_pending_is_oldest_first", offline_queue_pending_is_oldest_first(store, fx).await);
    r.record("offline_queue_marks_settle_once", offline_queue_marks_settle_once(store, fx).await);
    r.record(
        "offline_queue_isolates_tenants_and_terminals",
        offline_queue_isolates_tenants_and_terminals(store, fx).await,
    );
    r.record("offline_queue_card_data_round_trips", offline_queue_card_data_round_trips(store, fx).await);
    r.record("offline_queue_settling_erases_card_data", offline_queue_settling_erases_card_data(store, fx).await);
    r.record(
        "offline_queue_settled_replays_answer_the_erased_entry",
        offline_queue_settled_replays_answer_the_erased_entry(store, fx).await,
    );
    r.record(
        "offline_queue_refuses_new_entries_without_card_data",
        offline_queue_refuses_new_entries_without_card_data(store, fx).await,
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryOfflineQueueStore;

    #[tokio::test]
    async fn the_memory_queue_passes() {
        let report = run_all(&MemoryOfflineQueueStore::new(), &StoreFixture::new()).await;
        report.assert_passed();
        assert_eq!(report.passed.len(), 10, "{report}");
    }
}
