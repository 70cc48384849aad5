//! Conformance suites of the store ports. Each behaviour uses fresh, unique keys (a run id), so the suites
//! can run against a shared database repeatedly.

use futures_util::future::join_all;
use time::{Duration, OffsetDateTime};

use commerce_ports::peripherals::ReceiptDocument;
use commerce_ports::replication::{Change, Direction, Stream};
use commerce_ports::stores::{
    ClaimStatus, DomainClaim, DomainClaimStore, DomainMapping, IdempotencyBegin, IdempotencyClaim, IdempotencyStore,
    IntentCursor, IntentEvent, IntentStatus, IntentUpdate, KeyResolution, Pairing, PairingStore, PaymentIntent,
    PaymentIntentStore, PaymentLedger, PrintJob, PrintJobStatus, PrintJobStore, ReplicationStore, StoreSet,
    WebhookEventStore,
};
use commerce_ports::{
    ChannelId, Currency, DatasetId, DeviceId, ErrorKind, IdempotencyKey, IntentId, Money, RegisterId, StoreError,
    StoreId, TenantId, TenderKind,
};

use super::{Failure, Outcome, Report, ensure, step};

/// Fixture of the store suites: a run id that makes every key unique, and a base time.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StoreFixture {
    /// Prefix of every key, unique per run.
    pub run_id: String,
    /// The time the suites use as "now" (whole seconds, so databases with second or microsecond precision
    /// give back the same value).
    pub now: OffsetDateTime,
}

impl StoreFixture {
    /// A fixture with a run id and "now" from the current time.
    pub fn new() -> StoreFixture {
        static FIXTURES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let exact = OffsetDateTime::now_utc();
        let now = exact.replace_nanosecond(0).unwrap_or(exact);
        // Unique per process, per fixture and in time, so fixtures made in the same second never collide.
        let n = FIXTURES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        StoreFixture { run_id: format!("r{}p{}n{n}", exact.unix_timestamp_nanos(), std::process::id()), now }
    }

    fn id(&self, behaviour: &'static str, what: &str) -> String {
        // Identifiers allow 64 characters; keep the behaviour's initials, not its whole name.
        let initials: String = behaviour.split('_').filter_map(|w| w.chars().next()).collect();
        format!("{}-{initials}-{what}", self.run_id)
    }

    fn tenant(&self, b: &'static str) -> Result<TenantId, Failure> {
        step(b, "tenant id", TenantId::new(self.id(b, "t")))
    }

    fn key(&self, b: &'static str, what: &str) -> Result<IdempotencyKey, Failure> {
        step(b, "idempotency key", IdempotencyKey::new(self.id(b, what)))
    }
}

impl Default for StoreFixture {
    fn default() -> Self {
        StoreFixture::new()
    }
}

fn expect_store_kind<T: std::fmt::Debug>(
    b: &'static str,
    what: &str,
    result: Result<T, StoreError>,
    kind: ErrorKind,
) -> Outcome {
    match result {
        Ok(v) => Err(Failure { behaviour: b, message: format!("{what} succeeded ({v:?}); expected {kind}") }),
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => {
            Err(Failure { behaviour: b, message: format!("{what} failed with {} ({e}); expected {kind}", e.kind()) })
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Idempotency

fn claim(fx: &StoreFixture, operation: &str, fingerprint: &str, lease: Duration) -> IdempotencyClaim {
    IdempotencyClaim::new(operation, fingerprint, fx.now, fx.now + lease)
}

/// Begin, complete, then replay: the stored response comes back.
pub async fn idempotency_completes_and_replays(store: &dyn IdempotencyStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "idempotency_completes_and_replays";
    let (tenant, key) = (fx.tenant(B)?, fx.key(B, "k")?);
    let first = step(B, "begin", store.begin(&tenant, &key, claim(fx, "capture", "f1", Duration::minutes(1))).await)?;
    ensure!(B, first == IdempotencyBegin::Started { recovered: false }, "first begin gave {first:?}");
    let second =
        step(B, "second begin", store.begin(&tenant, &key, claim(fx, "capture", "f1", Duration::minutes(1))).await)?;
    ensure!(B, second == IdempotencyBegin::InProgress, "begin while held gave {second:?}");
    step(B, "complete", store.complete(&tenant, &key, b"{\"ok\":1}".to_vec()).await)?;
    let replay = step(B, "replay", store.begin(&tenant, &key, claim(fx, "capture", "f1", Duration::minutes(1))).await)?;
    ensure!(B, replay == IdempotencyBegin::Completed(b"{\"ok\":1}".to_vec()), "replay gave {replay:?}");
    let record = step(B, "get", store.get(&tenant, &key).await)?;
    ensure!(
        B,
        record.and_then(|r| r.response).as_deref() == Some(&b"{\"ok\":1}"[..]),
        "get does not show the response"
    );
    Ok(())
}

/// Another fingerprint or operation with the same key is a conflict, before and after completion.
pub async fn idempotency_conflicts_on_other_parameters(store: &dyn IdempotencyStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "idempotency_conflicts_on_other_parameters";
    let (tenant, key) = (fx.tenant(B)?, fx.key(B, "k")?);
    step(B, "begin", store.begin(&tenant, &key, claim(fx, "refund", "f1", Duration::minutes(1))).await)?;
    let other_fp = step(
        B,
        "begin other fingerprint",
        store.begin(&tenant, &key, claim(fx, "refund", "f2", Duration::minutes(1))).await,
    )?;
    ensure!(B, matches!(other_fp, IdempotencyBegin::Conflict { .. }), "other fingerprint gave {other_fp:?}");
    step(B, "complete", store.complete(&tenant, &key, b"r".to_vec()).await)?;
    let other_op = step(
        B,
        "begin other operation",
        store.begin(&tenant, &key, claim(fx, "void", "f1", Duration::minutes(1))).await,
    )?;
    ensure!(
        B,
        other_op == IdempotencyBegin::Conflict { operation: "refund".to_owned() },
        "other operation gave {other_op:?}"
    );
    Ok(())
}

/// Keys are scoped per tenant.
pub async fn idempotency_keys_are_per_tenant(store: &dyn IdempotencyStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "idempotency_keys_are_per_tenant";
    let key = fx.key(B, "k")?;
    let a = step(B, "tenant id", TenantId::new(fx.id(B, "a")))?;
    let b = step(B, "tenant id", TenantId::new(fx.id(B, "b")))?;
    step(B, "begin a", store.begin(&a, &key, claim(fx, "capture", "f", Duration::minutes(1))).await)?;
    let other = step(B, "begin b", store.begin(&b, &key, claim(fx, "capture", "g", Duration::minutes(1))).await)?;
    ensure!(B, other == IdempotencyBegin::Started { recovered: false }, "another tenant's key interfered: {other:?}");
    Ok(())
}

/// An expired lease is taken over and reported as recovered.
pub async fn idempotency_expired_lease_is_recovered(store: &dyn IdempotencyStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "idempotency_expired_lease_is_recovered";
    let (tenant, key) = (fx.tenant(B)?, fx.key(B, "k")?);
    step(B, "begin", store.begin(&tenant, &key, claim(fx, "capture", "f", Duration::seconds(30))).await)?;
    let later = IdempotencyClaim::new("capture", "f", fx.now + Duration::seconds(31), fx.now + Duration::seconds(91));
    let taken = step(B, "begin after expiry", store.begin(&tenant, &key, later).await)?;
    ensure!(B, taken == IdempotencyBegin::Started { recovered: true }, "begin after the lease expired gave {taken:?}");
    let again = IdempotencyClaim::new("capture", "f", fx.now + Duration::seconds(32), fx.now + Duration::seconds(92));
    let held = step(B, "begin during the new lease", store.begin(&tenant, &key, again).await)?;
    ensure!(B, held == IdempotencyBegin::InProgress, "the recovered lease was not kept: {held:?}");
    Ok(())
}

/// Releasing an uncompleted key lets the next caller start; a completed key cannot be released.
pub async fn idempotency_release(store: &dyn IdempotencyStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "idempotency_release";
    let (tenant, key) = (fx.tenant(B)?, fx.key(B, "k")?);
    step(B, "begin", store.begin(&tenant, &key, claim(fx, "void", "f", Duration::minutes(1))).await)?;
    step(B, "release", store.release(&tenant, &key).await)?;
    let again =
        step(B, "begin after release", store.begin(&tenant, &key, claim(fx, "void", "f", Duration::minutes(1))).await)?;
    ensure!(B, again == IdempotencyBegin::Started { recovered: false }, "begin after release gave {again:?}");
    step(B, "complete", store.complete(&tenant, &key, b"done".to_vec()).await)?;
    expect_store_kind(B, "release of a completed key", store.release(&tenant, &key).await, ErrorKind::InvalidState)?;
    expect_store_kind(
        B,
        "second complete",
        store.complete(&tenant, &key, b"other".to_vec()).await,
        ErrorKind::InvalidState,
    )?;
    let replay = step(B, "replay", store.begin(&tenant, &key, claim(fx, "void", "f", Duration::minutes(1))).await)?;
    ensure!(B, replay == IdempotencyBegin::Completed(b"done".to_vec()), "the first response did not stand: {replay:?}");
    let missing = fx.key(B, "missing")?;
    expect_store_kind(
        B,
        "complete of an unknown key",
        store.complete(&tenant, &missing, Vec::new()).await,
        ErrorKind::NotFound,
    )
}

/// Of many concurrent callers with one key exactly one starts.
pub async fn idempotency_concurrent_begin_starts_once(store: &dyn IdempotencyStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "idempotency_concurrent_begin_starts_once";
    let (tenant, key) = (fx.tenant(B)?, fx.key(B, "k")?);
    let attempts = (0..32).map(|_| store.begin(&tenant, &key, claim(fx, "authorize", "f", Duration::minutes(1))));
    let results = join_all(attempts).await;
    let mut started = 0;
    for r in results {
        match step(B, "concurrent begin", r)? {
            IdempotencyBegin::Started { .. } => started += 1,
            IdempotencyBegin::InProgress => {}
            other => return Err(Failure { behaviour: B, message: format!("concurrent begin gave {other:?}") }),
        }
    }
    ensure!(B, started == 1, "{started} of 32 concurrent callers started the operation");
    Ok(())
}

/// The lease end `get` shows for a key (`None`: no record, or completed).
async fn held_lease(
    store: &dyn IdempotencyStore,
    b: &'static str,
    tenant: &TenantId,
    key: &IdempotencyKey,
) -> Result<Option<OffsetDateTime>, Failure> {
    let record = step(b, "get", store.get(tenant, key).await)?;
    Ok(record.filter(|r| r.response.is_none()).map(|r| r.lease_until))
}

/// `renew` extends the lease of a key its holder still holds, and only then: a renewed lease is not taken over
/// before its new end; a holder whose key was taken over, a completed, unknown or released key get `false`
/// and nothing changes; the lease a holder claimed with (sub-microsecond nanoseconds included) is the one
/// `renew` finds.
pub async fn idempotency_renew(store: &dyn IdempotencyStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "idempotency_renew";
    // Its initials are those of `idempotency_release`: keys of its own keep the two apart.
    let tenant = fx.tenant(B)?;
    let at = |seconds: i64| fx.now + Duration::seconds(seconds);
    let claim_at = |now: i64, until: i64| IdempotencyClaim::new("capture", "f", at(now), at(until));

    // Renewed before it ends, the lease outlives its first end.
    let key = fx.key(B, "renew-k")?;
    let first = step(B, "begin", store.begin(&tenant, &key, claim_at(0, 30)).await)?;
    ensure!(B, first == IdempotencyBegin::Started { recovered: false }, "first begin gave {first:?}");
    let renewed = step(B, "renew by the holder", store.renew(&tenant, &key, at(30), at(90)).await)?;
    ensure!(B, renewed, "renewing the holder's lease (held until +30 s) answered false");
    let lease = held_lease(store, B, &tenant, &key).await?;
    ensure!(B, lease == Some(at(90)), "after the renewal `get` shows the lease {lease:?}, not +90 s");
    let between = step(B, "begin after the first end", store.begin(&tenant, &key, claim_at(60, 120)).await)?;
    ensure!(
        B,
        between == IdempotencyBegin::InProgress,
        "begin at +60 s (after the claimed lease, before the renewed one) gave {between:?}"
    );
    let after = step(B, "begin after the renewed end", store.begin(&tenant, &key, claim_at(91, 151)).await)?;
    ensure!(
        B,
        after == IdempotencyBegin::Started { recovered: true },
        "begin at +91 s (after the renewed lease) gave {after:?}"
    );

    // Taken over: the first holder's renewal finds another lease and changes nothing; the new holder's works.
    let stale = step(B, "renew by the former holder", store.renew(&tenant, &key, at(90), at(300)).await)?;
    ensure!(B, !stale, "the former holder renewed a lease taken over by another caller");
    let kept = held_lease(store, B, &tenant, &key).await?;
    ensure!(B, kept == Some(at(151)), "a refused renewal changed the lease: `get` shows {kept:?}, not +151 s");
    let current = step(B, "renew by the new holder", store.renew(&tenant, &key, at(151), at(211)).await)?;
    ensure!(B, current, "renewing the new holder's lease (held until +151 s) answered false");
    let held = step(B, "begin during the renewed takeover", store.begin(&tenant, &key, claim_at(180, 240)).await)?;
    ensure!(B, held == IdempotencyBegin::InProgress, "begin at +180 s (before +211 s) gave {held:?}");

    // Completed: nothing to renew, the response stands.
    let done = fx.key(B, "renew-done")?;
    step(B, "begin (completed key)", store.begin(&tenant, &done, claim_at(0, 30)).await)?;
    step(B, "complete", store.complete(&tenant, &done, b"done".to_vec()).await)?;
    let completed = step(B, "renew of a completed key", store.renew(&tenant, &done, at(30), at(90)).await)?;
    ensure!(B, !completed, "renewing a completed key answered true");
    let record = step(B, "get (completed key)", store.get(&tenant, &done).await)?;
    ensure!(
        B,
        record.and_then(|r| r.response).as_deref() == Some(&b"done"[..]),
        "the response of a completed key did not stand a renewal"
    );
    let replay = step(B, "replay", store.begin(&tenant, &done, claim_at(120, 180)).await)?;
    ensure!(B, replay == IdempotencyBegin::Completed(b"done".to_vec()), "replay after a renewal gave {replay:?}");

    // Unknown and released: nothing to renew, and nothing is created.
    let unknown = fx.key(B, "renew-unknown")?;
    let missing = step(B, "renew of an unknown key", store.renew(&tenant, &unknown, at(30), at(90)).await)?;
    ensure!(B, !missing, "renewing an unknown key answered true");
    ensure!(B, step(B, "get (unknown key)", store.get(&tenant, &unknown).await)?.is_none(), "renew created a record");
    let released = fx.key(B, "renew-released")?;
    step(B, "begin (released key)", store.begin(&tenant, &released, claim_at(0, 30)).await)?;
    step(B, "release", store.release(&tenant, &released).await)?;
    let gone = step(B, "renew of a released key", store.renew(&tenant, &released, at(30), at(90)).await)?;
    ensure!(B, !gone, "renewing a released key answered true");
    ensure!(
        B,
        step(B, "get (released key)", store.get(&tenant, &released).await)?.is_none(),
        "renew brought a released record back"
    );

    // Handed over: a holder ends its lease now; the next caller takes the key over at once, as a recovery, and
    // the record keeps its first claim.
    let handed = fx.key(B, "renew-handed")?;
    step(B, "begin (handed-over key)", store.begin(&tenant, &handed, claim_at(0, 30)).await)?;
    let ended = step(B, "renew to now", store.renew(&tenant, &handed, at(30), at(5)).await)?;
    ensure!(B, ended, "ending the holder's lease at +5 s (before its end at +30 s) answered false");
    let taken = step(B, "begin after the hand-over", store.begin(&tenant, &handed, claim_at(5, 35)).await)?;
    ensure!(
        B,
        taken == IdempotencyBegin::Started { recovered: true },
        "begin at +5 s after a hand-over gave {taken:?}"
    );
    let first = step(B, "get (handed-over key)", store.get(&tenant, &handed).await)?.and_then(|r| r.claimed_at);
    ensure!(B, first == Some(at(0)), "a hand-over and takeover changed claimed_at to {first:?}, not +0 s");

    // The very lease the holder claimed with, at whatever precision the store keeps.
    let precise = fx.key(B, "renew-nanos")?;
    let lease_until = at(30) + Duration::nanoseconds(123_456_789);
    let claim = IdempotencyClaim::new("capture", "f", fx.now, lease_until);
    step(B, "begin (sub-microsecond lease)", store.begin(&tenant, &precise, claim).await)?;
    let wrong = step(B, "renew with another lease", store.renew(&tenant, &precise, at(31), at(90)).await)?;
    ensure!(B, !wrong, "renewing with a lease end one second off the claimed one answered true");
    let exact = step(B, "renew with the claimed lease", store.renew(&tenant, &precise, lease_until, at(90)).await)?;
    ensure!(B, exact, "renewing with the exact `lease_until` claimed (+30.123456789 s) answered false");
    let held = step(B, "begin after the claimed end", store.begin(&tenant, &precise, claim_at(60, 120)).await)?;
    ensure!(B, held == IdempotencyBegin::InProgress, "begin at +60 s after renewing to +90 s gave {held:?}");
    Ok(())
}

/// A key claimed through the [`PaymentLedger`] is the same record [`IdempotencyStore::renew`] extends, found
/// with the very `lease_until` of the claim (sub-microsecond nanoseconds included).
pub async fn idempotency_renew_after_ledger_claim(
    ledger: &dyn PaymentLedger,
    store: &dyn IdempotencyStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "idempotency_renew_after_ledger_claim";
    let created = intent(fx, B, "i1")?;
    let (tenant, id) = (created.tenant.clone(), created.id.clone());
    let key = fx.key(B, "k")?;
    let at = |seconds: i64| fx.now + Duration::seconds(seconds);
    let lease_until = at(30) + Duration::nanoseconds(987_654_321);
    let claim = IdempotencyClaim::new("authorize", "fp-1", fx.now, lease_until);
    let claimed = step(B, "claim", ledger.claim(&tenant, &key, claim, &id, Some((created, first_event(fx)))).await)?;
    ensure!(B, matches!(claimed.begin, IdempotencyBegin::Started { .. }), "claim gave {:?}", claimed.begin);
    let renewed = step(B, "renew", store.renew(&tenant, &key, lease_until, at(90)).await)?;
    ensure!(B, renewed, "renewing with the exact `lease_until` of the ledger claim answered false");
    let later = IdempotencyClaim::new("authorize", "fp-1", at(60), at(120));
    let again = step(B, "claim after the claimed end", ledger.claim(&tenant, &key, later, &id, None).await)?;
    ensure!(
        B,
        again.begin == IdempotencyBegin::InProgress,
        "claim at +60 s after renewing to +90 s gave {:?}",
        again.begin
    );
    ensure!(B, again.intent.is_none(), "a claim in progress returned the intent");
    let after = IdempotencyClaim::new("authorize", "fp-1", at(91), at(151));
    let taken = step(B, "claim after the renewed end", ledger.claim(&tenant, &key, after, &id, None).await)?;
    ensure!(
        B,
        taken.begin == IdempotencyBegin::Started { recovered: true },
        "claim at +91 s (after the renewed lease) gave {:?}",
        taken.begin
    );
    let stale = step(B, "renew by the former holder", store.renew(&tenant, &key, at(90), at(300)).await)?;
    ensure!(B, !stale, "the former holder renewed a lease the ledger gave another caller");
    step(B, "complete", ledger.commit(&tenant, &key, None, KeyResolution::Complete(b"ok".to_vec())).await)?;
    let completed = step(B, "renew of the completed key", store.renew(&tenant, &key, at(151), at(300)).await)?;
    ensure!(B, !completed, "renewing a key the ledger completed answered true");
    Ok(())
}

/// The first claim's time `get` shows for a key (`None` when there is no record or the store does not say).
async fn first_claim(
    store: &dyn IdempotencyStore,
    b: &'static str,
    tenant: &TenantId,
    key: &IdempotencyKey,
) -> Result<Option<OffsetDateTime>, Failure> {
    Ok(step(b, "get", store.get(tenant, key).await)?.and_then(|r| r.claimed_at))
}

/// `get` shows when a key was first claimed (`claimed_at`, the claim's `now`) and keeps it when an expired
/// lease is taken over, however often; a released key's next claim is a new first claim.
pub async fn idempotency_first_claim_is_kept(store: &dyn IdempotencyStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "idempotency_first_claim_is_kept";
    let tenant = fx.tenant(B)?;
    let at = |seconds: i64| fx.now + Duration::seconds(seconds);
    let claim_at = |now: i64, until: i64| IdempotencyClaim::new("refund", "f", at(now), at(until));
    let key = fx.key(B, "k")?;
    step(B, "begin", store.begin(&tenant, &key, claim_at(0, 30)).await)?;
    let first = first_claim(store, B, &tenant, &key).await?;
    ensure!(B, first == Some(at(0)), "after a claim at +0 s `get` shows claimed_at {first:?}");
    for (now, until) in [(31, 61), (100, 130)] {
        let taken = step(B, "begin after expiry", store.begin(&tenant, &key, claim_at(now, until)).await)?;
        ensure!(B, taken == IdempotencyBegin::Started { recovered: true }, "begin at +{now} s gave {taken:?}");
        let kept = first_claim(store, B, &tenant, &key).await?;
        ensure!(B, kept == Some(at(0)), "a takeover at +{now} s changed claimed_at to {kept:?}, not +0 s");
    }
    step(B, "release", store.release(&tenant, &key).await)?;
    step(B, "begin after release", store.begin(&tenant, &key, claim_at(200, 230)).await)?;
    let fresh = first_claim(store, B, &tenant, &key).await?;
    ensure!(B, fresh == Some(at(200)), "the claim at +200 s after a release shows claimed_at {fresh:?}");
    Ok(())
}

/// A key claimed through the [`PaymentLedger`] shows its first claim's time in [`IdempotencyStore::get`], kept
/// when the ledger gives the expired lease to another caller.
pub async fn idempotency_first_claim_after_ledger_claim(
    ledger: &dyn PaymentLedger,
    store: &dyn IdempotencyStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "idempotency_first_claim_after_ledger_claim";
    let created = intent(fx, B, "i1")?;
    let (tenant, id) = (created.tenant.clone(), created.id.clone());
    let key = fx.key(B, "k")?;
    let at = |seconds: i64| fx.now + Duration::seconds(seconds);
    let claim = IdempotencyClaim::new("authorize", "fp-1", at(0), at(30));
    step(B, "claim", ledger.claim(&tenant, &key, claim, &id, Some((created, first_event(fx)))).await)?;
    let first = first_claim(store, B, &tenant, &key).await?;
    ensure!(B, first == Some(at(0)), "after a ledger claim at +0 s `get` shows claimed_at {first:?}");
    let later = IdempotencyClaim::new("authorize", "fp-1", at(31), at(61));
    let taken = step(B, "claim after expiry", ledger.claim(&tenant, &key, later, &id, None).await)?;
    ensure!(B, taken.begin == IdempotencyBegin::Started { recovered: true }, "claim at +31 s gave {:?}", taken.begin);
    let kept = first_claim(store, B, &tenant, &key).await?;
    ensure!(B, kept == Some(at(0)), "the ledger's takeover at +31 s changed claimed_at to {kept:?}, not +0 s");
    Ok(())
}

/// Runs the idempotency store behaviours.
pub async fn run_idempotency(store: &dyn IdempotencyStore, fx: &StoreFixture) -> Report {
    let mut r = Report::default();
    r.record("idempotency_completes_and_replays", idempotency_completes_and_replays(store, fx).await);
    r.record("idempotency_conflicts_on_other_parameters", idempotency_conflicts_on_other_parameters(store, fx).await);
    r.record("idempotency_keys_are_per_tenant", idempotency_keys_are_per_tenant(store, fx).await);
    r.record("idempotency_expired_lease_is_recovered", idempotency_expired_lease_is_recovered(store, fx).await);
    r.record("idempotency_release", idempotency_release(store, fx).await);
    r.record("idempotency_concurrent_begin_starts_once", idempotency_concurrent_begin_starts_once(store, fx).await);
    r.record("idempotency_first_claim_is_kept", idempotency_first_claim_is_kept(store, fx).await);
    if renews(store, fx).await {
        r.record("idempotency_renew", idempotency_renew(store, fx).await);
    } else {
        r.skip("idempotency_renew", "the store does not renew leases (the port's default: `Unsupported`)");
    }
    r
}

/// Whether the store implements [`IdempotencyStore::renew`] (the port's default answers `Unsupported`): asked
/// for a key nobody holds, which a store that renews answers `false`.
async fn renews(store: &dyn IdempotencyStore, fx: &StoreFixture) -> bool {
    const B: &str = "idempotency_renew_probe";
    let (Ok(tenant), Ok(key)) = (fx.tenant(B), fx.key(B, "nobody-holds")) else { return true };
    !matches!(store.renew(&tenant, &key, fx.now, fx.now).await, Err(e) if e.kind() == ErrorKind::Unsupported)
}

// ---------------------------------------------------------------------------------------------------------
// Payment intents

fn intent(fx: &StoreFixture, b: &'static str, name: &str) -> Result<PaymentIntent, Failure> {
    Ok(PaymentIntent::new(
        step(b, "intent id", IntentId::new(fx.id(b, name)))?,
        fx.tenant(b)?,
        step(b, "channel id", ChannelId::new("web"))?,
        TenderKind::Card,
        Money::from_minor(10_000, Currency::EUR),
        "memory",
        format!("order-{name}"),
        fx.now,
    ))
}

fn next(mut i: PaymentIntent, status: IntentStatus, fx: &StoreFixture) -> (PaymentIntent, IntentEvent) {
    i.version += 1;
    i.status = status;
    i.updated_at = fx.now + Duration::seconds(i64::try_from(i.version).unwrap_or(0));
    let event = IntentEvent::new(i.version, i.updated_at, status.as_str(), status);
    (i, event)
}

/// Create, read back, update with the right version; the history grows in order.
pub async fn intents_round_trip_and_history(store: &dyn PaymentIntentStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "intents_round_trip_and_history";
    let created = intent(fx, B, "i1")?;
    let first = IntentEvent::new(1, fx.now, "create", IntentStatus::RequiresAuthorization);
    step(B, "create", store.create(created.clone(), first).await)?;
    let read = step(B, "get", store.get(&created.tenant, &created.id).await)?;
    ensure!(B, read == created, "read back {read:?}, stored {created:?}");
    let (mut authorized, event) = next(created.clone(), IntentStatus::Authorized, fx);
    authorized.authorized = authorized.amount;
    authorized.provider_reference = Some(fx.id(B, "psp"));
    let event = event
        .with_amount(authorized.amount)
        .with_provider_reference(fx.id(B, "psp"))
        .with_detail("authorized")
        .with_data(r#"{"applied":{"provider_key":"k-1"}}"#);
    step(B, "update", store.update(authorized.clone(), 1, event.clone()).await)?;
    let read = step(B, "get after update", store.get(&created.tenant, &created.id).await)?;
    ensure!(B, read == authorized, "after update read {read:?}");
    let history = step(B, "events", store.events(&created.tenant, &created.id).await)?;
    ensure!(B, history.len() == 2, "history has {} events, expected 2", history.len());
    ensure!(
        B,
        history.iter().map(|e| e.sequence).collect::<Vec<_>>() == vec![1, 2],
        "history out of order: {history:?}"
    );
    ensure!(B, history.get(1) == Some(&event), "second event differs: {:?}", history.get(1));
    let tenant = &created.tenant;
    let found = step(
        B,
        "find by provider reference",
        store.find_by_provider_reference(tenant, "memory", &fx.id(B, "psp")).await,
    )?;
    ensure!(B, found.as_ref().map(|i| &i.id) == Some(&created.id), "find by provider reference gave {found:?}");
    let none =
        step(B, "find unknown reference", store.find_by_provider_reference(tenant, "memory", &fx.id(B, "nope")).await)?;
    ensure!(B, none.is_none(), "an unknown reference found {none:?}");
    let other = step(B, "tenant id", TenantId::new(fx.id(B, "other")))?;
    let leaked = step(
        B,
        "find from another tenant",
        store.find_by_provider_reference(&other, "memory", &fx.id(B, "psp")).await,
    )?;
    ensure!(B, leaked.is_none(), "another tenant found this tenant's intent: {leaked:?}");
    Ok(())
}

/// A stale version is a conflict and changes nothing; a duplicate id already exists; unknown ids are not found.
pub async fn intents_refuse_stale_and_duplicate_writes(store: &dyn PaymentIntentStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "intents_refuse_stale_and_duplicate_writes";
    let created = intent(fx, B, "i1")?;
    let first = IntentEvent::new(1, fx.now, "create", IntentStatus::RequiresAuthorization);
    step(B, "create", store.create(created.clone(), first.clone()).await)?;
    expect_store_kind(B, "second create", store.create(created.clone(), first).await, ErrorKind::AlreadyExists)?;
    let (v2, e2) = next(created.clone(), IntentStatus::Authorized, fx);
    step(B, "update to v2", store.update(v2.clone(), 1, e2).await)?;
    let (stale, stale_event) = next(created.clone(), IntentStatus::Voided, fx);
    expect_store_kind(
        B,
        "update from a stale version",
        store.update(stale, 1, stale_event).await,
        ErrorKind::Conflict,
    )?;
    let read = step(B, "get", store.get(&created.tenant, &created.id).await)?;
    ensure!(B, read == v2, "a refused update changed the intent: {read:?}");
    let history = step(B, "events", store.events(&created.tenant, &created.id).await)?;
    ensure!(B, history.len() == 2, "a refused update appended an event: {history:?}");
    let unknown = step(B, "intent id", IntentId::new(fx.id(B, "missing")))?;
    expect_store_kind(B, "get of an unknown intent", store.get(&created.tenant, &unknown).await, ErrorKind::NotFound)?;
    Ok(())
}

/// Concurrent updates from one version: exactly one wins.
pub async fn intents_concurrent_updates_one_wins(store: &dyn PaymentIntentStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "intents_concurrent_updates_one_wins";
    let created = intent(fx, B, "i1")?;
    step(
        B,
        "create",
        store.create(created.clone(), IntentEvent::new(1, fx.now, "create", IntentStatus::RequiresAuthorization)).await,
    )?;
    let writes = (0..16).map(|n| {
        let (mut i, e) = next(created.clone(), IntentStatus::Authorized, fx);
        i.reference = format!("writer-{n}");
        store.update(i, 1, e)
    });
    let results = join_all(writes).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    ensure!(B, wins == 1, "{wins} of 16 concurrent updates from version 1 succeeded");
    for r in results {
        if let Err(e) = r {
            ensure!(B, e.kind() == ErrorKind::Conflict, "a losing update failed with {} instead of conflict", e.kind());
        }
    }
    let history = step(B, "events", store.events(&created.tenant, &created.id).await)?;
    ensure!(B, history.len() == 2, "history has {} events after one winning update", history.len());
    Ok(())
}

/// Intents in a status are listed oldest update first, within the limit and the tenant.
pub async fn intents_list_by_status(store: &dyn PaymentIntentStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "intents_list_by_status";
    let mut expected = Vec::new();
    for (n, name) in ["a", "b", "c"].iter().enumerate() {
        let mut i = intent(fx, B, name)?;
        i.status = IntentStatus::OutcomeUnknown;
        i.updated_at = fx.now + Duration::seconds(10 - i64::try_from(n).unwrap_or(0));
        step(
            B,
            "create",
            store.create(i.clone(), IntentEvent::new(1, fx.now, "create", IntentStatus::OutcomeUnknown)).await,
        )?;
        expected.push(i.id.clone());
    }
    expected.reverse();
    let tenant = fx.tenant(B)?;
    let listed = step(B, "list", store.list_by_status(&tenant, IntentStatus::OutcomeUnknown, 2).await)?;
    let ids: Vec<IntentId> = listed.into_iter().map(|i| i.id).collect();
    ensure!(B, ids == expected[..2], "listed {ids:?}, expected the two oldest {:?}", &expected[..2]);
    let none = step(B, "list other status", store.list_by_status(&tenant, IntentStatus::Captured, 10).await)?;
    ensure!(B, none.is_empty(), "listing captured intents found {none:?}");
    Ok(())
}

/// Pages through the tenant's intents in `status` with `limit`, from `first`, each page following the last
/// intent of the one before, until a page is short; answers the pages' ids. Every page is checked to hold at
/// most `limit` intents, all of the tenant and in the status.
async fn page_through(
    store: &dyn PaymentIntentStore,
    b: &'static str,
    tenant: &TenantId,
    status: IntentStatus,
    limit: u32,
    first: Option<IntentCursor>,
) -> Result<Vec<Vec<IntentId>>, Failure> {
    let size = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut pages = Vec::new();
    let mut cursor = first;
    // A store that ignores the cursor would page forever.
    for _ in 0..64 {
        let page = step(b, "list a page", store.list_by_status_after(tenant, status, cursor.clone(), limit).await)?;
        ensure!(b, page.len() <= size, "a page of at most {limit} held {} intents: {page:?}", page.len());
        ensure!(
            b,
            page.iter().all(|i| &i.tenant == tenant && i.status == status),
            "a page of tenant `{tenant}`'s {} intents held others: {page:?}",
            status.as_str()
        );
        let done = page.len() < size;
        if let Some(last) = page.last() {
            cursor = Some(IntentCursor::after(last));
        }
        pages.push(page.into_iter().map(|i| i.id).collect());
        if done {
            return Ok(pages);
        }
    }
    Err(Failure { behaviour: b, message: format!("paging with limit {limit} did not end after 64 pages") })
}

/// Paging through a status with `list_by_status_after` (following [`IntentCursor::after`] the last intent of
/// each page) lists every intent of the tenant in the status once, in (update time, id) order, the order of
/// `list_by_status`: intents updated at the same instant are in id order, also when a page ends between them.
/// Other tenants' intents and other statuses never show; an intent that leaves the status while paging (even
/// the one the cursor was taken from) is simply not listed. A limit of 0 is an empty page.
pub async fn intents_list_by_status_after(store: &dyn PaymentIntentStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "intents_list_by_status_after";
    const UNKNOWN: IntentStatus = IntentStatus::OutcomeUnknown;
    let tenant = fx.tenant(B)?;
    let ids = |names: &[&str]| -> Result<Vec<IntentId>, Failure> {
        names.iter().map(|name| step(B, "intent id", IntentId::new(fx.id(B, name)))).collect()
    };
    // (name, seconds after now), created in an order unlike the listing's. `x` and `y` are updated at the same
    // instant (listed by id, `x` first) and the first page of two ends between them.
    let layout = [("c", 6), ("y", 2), ("a", 3), ("e", 1), ("x", 2), ("d", 4), ("b", 5), ("f", 7)];
    let mut created = Vec::new();
    for (name, seconds) in layout {
        let mut i = intent(fx, B, name)?;
        i.status = UNKNOWN;
        i.updated_at = fx.now + Duration::seconds(seconds);
        step(B, "create", store.create(i.clone(), IntentEvent::new(1, fx.now, "create", UNKNOWN)).await)?;
        created.push(i);
    }
    // At the tied instant: an intent of the tenant in another status, and one of another tenant in the status
    // whose id would sort between `x` and `y`.
    let mut other_status = intent(fx, B, "w")?;
    other_status.status = IntentStatus::Authorized;
    other_status.updated_at = fx.now + Duration::seconds(2);
    let event = IntentEvent::new(1, fx.now, "create", IntentStatus::Authorized);
    step(B, "create in another status", store.create(other_status.clone(), event).await)?;
    let other_tenant = step(B, "tenant id", TenantId::new(fx.id(B, "other")))?;
    let mut foreign = intent(fx, B, "xo")?;
    foreign.tenant = other_tenant.clone();
    foreign.status = UNKNOWN;
    foreign.updated_at = fx.now + Duration::seconds(2);
    step(
        B,
        "create for another tenant",
        store.create(foreign.clone(), IntentEvent::new(1, fx.now, "create", UNKNOWN)).await,
    )?;

    let all = ids(&["e", "x", "y", "a", "d", "b", "c", "f"])?;
    let listed = step(B, "list_by_status", store.list_by_status(&tenant, UNKNOWN, 1000).await)?;
    let listed: Vec<IntentId> = listed.into_iter().map(|i| i.id).collect();
    ensure!(B, listed == all, "list_by_status listed {listed:?}, expected {all:?} in (updated_at, id) order");
    let pages = page_through(store, B, &tenant, UNKNOWN, 2, None).await?;
    let paged: Vec<IntentId> = pages.concat();
    ensure!(B, paged == all, "paging by 2 listed {paged:?} in pages {pages:?}, expected {all:?}");
    ensure!(B, pages.len() == 5 && pages.last().is_some_and(Vec::is_empty), "paging 8 intents by 2 gave {pages:?}");

    // The first page, then `x` (the intent its cursor comes from) and `c` (not listed yet) leave the status.
    let first = step(B, "first page", store.list_by_status_after(&tenant, UNKNOWN, None, 2).await)?;
    let first_ids: Vec<IntentId> = first.iter().map(|i| i.id.clone()).collect();
    ensure!(B, first_ids == all[..2], "the first page listed {first_ids:?}, expected {:?}", &all[..2]);
    let cursor = first.last().map(IntentCursor::after);
    for name in ["x", "c"] {
        let Some(moving) = created.iter().find(|i| i.id.as_str() == fx.id(B, name)) else {
            return Err(Failure { behaviour: B, message: format!("intent `{name}` was not created") });
        };
        let (moved, event) = next(moving.clone(), IntentStatus::Captured, fx);
        step(B, "update out of the status", store.update(moved, 1, event).await)?;
    }
    let rest = page_through(store, B, &tenant, UNKNOWN, 2, cursor.clone()).await?;
    let expected_rest = ids(&["y", "a", "d", "b", "f"])?;
    let paged: Vec<IntentId> = rest.concat();
    ensure!(
        B,
        paged == expected_rest,
        "after the first page and two intents leaving the status, paging listed {paged:?} in pages {rest:?}, \
         expected {expected_rest:?}"
    );
    ensure!(B, rest.last().is_some_and(|p| p.len() == 1), "the last page is not the short one: {rest:?}");

    // The listing now, whole and by other page sizes, agrees with `list_by_status`.
    let now_listed = ids(&["e", "y", "a", "d", "b", "f"])?;
    let listed = step(B, "list_by_status again", store.list_by_status(&tenant, UNKNOWN, 1000).await)?;
    let listed: Vec<IntentId> = listed.into_iter().map(|i| i.id).collect();
    ensure!(B, listed == now_listed, "list_by_status listed {listed:?}, expected {now_listed:?}");
    for limit in [1, 3, 1000, u32::MAX] {
        let paged = page_through(store, B, &tenant, UNKNOWN, limit, None).await?.concat();
        ensure!(B, paged == now_listed, "paging by {limit} listed {paged:?}, expected {now_listed:?}");
    }

    // Edges: no room, nothing after the last, other tenants and statuses.
    let empty = step(B, "list with limit 0", store.list_by_status_after(&tenant, UNKNOWN, None, 0).await)?;
    ensure!(B, empty.is_empty(), "a limit of 0 listed {empty:?}");
    let empty = step(B, "list after with limit 0", store.list_by_status_after(&tenant, UNKNOWN, cursor, 0).await)?;
    ensure!(B, empty.is_empty(), "a limit of 0 after a cursor listed {empty:?}");
    let last_id = step(B, "intent id", IntentId::new(fx.id(B, "f")))?;
    let last = step(B, "get the last intent", store.get(&tenant, &last_id).await)?;
    let beyond = step(
        B,
        "list after the last",
        store.list_by_status_after(&tenant, UNKNOWN, Some(IntentCursor::after(&last)), 10).await,
    )?;
    ensure!(B, beyond.is_empty(), "the page after the last intent listed {beyond:?}");
    let foreign_listed = page_through(store, B, &other_tenant, UNKNOWN, 2, None).await?.concat();
    ensure!(B, foreign_listed == [foreign.id.clone()], "the other tenant's listing is {foreign_listed:?}");
    let authorized = page_through(store, B, &tenant, IntentStatus::Authorized, 2, None).await?.concat();
    ensure!(B, authorized == [other_status.id.clone()], "the tenant's authorized intents are listed as {authorized:?}");
    Ok(())
}

/// Intents are found by merchant reference within the tenant, every match oldest first.
pub async fn intents_find_by_reference(store: &dyn PaymentIntentStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "intents_find_by_reference";
    let reference = fx.id(B, "order");
    let mut expected = Vec::new();
    // Created newest first, so an insertion-ordered answer is caught.
    for (n, name) in ["b", "a"].iter().enumerate() {
        let mut i = intent(fx, B, name)?;
        i.reference.clone_from(&reference);
        i.created_at = fx.now + Duration::seconds(10 - i64::try_from(n).unwrap_or(0));
        i.updated_at = i.created_at;
        step(
            B,
            "create",
            store.create(i.clone(), IntentEvent::new(1, fx.now, "create", IntentStatus::RequiresAuthorization)).await,
        )?;
        expected.push(i.id.clone());
    }
    expected.reverse();
    let unrelated = intent(fx, B, "c")?;
    step(
        B,
        "create unrelated",
        store.create(unrelated, IntentEvent::new(1, fx.now, "create", IntentStatus::RequiresAuthorization)).await,
    )?;
    let tenant = fx.tenant(B)?;
    let found = step(B, "find by reference", store.find_by_reference(&tenant, &reference).await)?;
    let ids: Vec<IntentId> = found.into_iter().map(|i| i.id).collect();
    ensure!(B, ids == expected, "found {ids:?}, expected {expected:?} (oldest first)");
    let none = step(B, "find unknown reference", store.find_by_reference(&tenant, &fx.id(B, "nope")).await)?;
    ensure!(B, none.is_empty(), "an unknown reference found {none:?}");
    let other = step(B, "tenant id", TenantId::new(fx.id(B, "other")))?;
    let leaked = step(B, "find from another tenant", store.find_by_reference(&other, &reference).await)?;
    ensure!(B, leaked.is_empty(), "another tenant found this tenant's intents: {leaked:?}");
    Ok(())
}

/// Runs the payment intent store behaviours.
pub async fn run_intents(store: &dyn PaymentIntentStore, fx: &StoreFixture) -> Report {
    let mut r = Report::default();
    r.record("intents_round_trip_and_history", intents_round_trip_and_history(store, fx).await);
    r.record("intents_refuse_stale_and_duplicate_writes", intents_refuse_stale_and_duplicate_writes(store, fx).await);
    r.record("intents_concurrent_updates_one_wins", intents_concurrent_updates_one_wins(store, fx).await);
    r.record("intents_list_by_status", intents_list_by_status(store, fx).await);
    r.record("intents_list_by_status_after", intents_list_by_status_after(store, fx).await);
    r.record("intents_find_by_reference", intents_find_by_reference(store, fx).await);
    r
}

// ---------------------------------------------------------------------------------------------------------
// Webhook ids

/// A webhook id is new once per tenant; concurrent records of one id give exactly one `true`; the same
/// (provider, event id) is new for another tenant and for another provider.
pub async fn webhooks_deduplicate(store: &dyn WebhookEventStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "webhooks_deduplicate";
    let id = fx.id(B, "evt");
    let tenant = fx.tenant(B)?;
    let other = step(B, "tenant id", TenantId::new(fx.id(B, "other")))?;
    ensure!(
        B,
        !step(B, "contains", store.contains(&tenant, "stripe", &id).await)?,
        "an unrecorded id is reported as seen"
    );
    let results = join_all((0..16).map(|_| store.record(&tenant, "stripe", &id, fx.now))).await;
    let mut fresh = 0;
    for r in results {
        if step(B, "record", r)? {
            fresh += 1;
        }
    }
    ensure!(B, fresh == 1, "{fresh} of 16 concurrent records of one id were new");
    ensure!(B, step(B, "contains", store.contains(&tenant, "stripe", &id).await)?, "a recorded id is not found");
    ensure!(
        B,
        !step(B, "contains for another tenant", store.contains(&other, "stripe", &id).await)?,
        "one tenant's recorded id is reported as seen for another tenant"
    );
    ensure!(
        B,
        step(B, "record other tenant", store.record(&other, "stripe", &id, fx.now).await)?,
        "ids are not scoped per tenant: another tenant's record of the same id was not new"
    );
    ensure!(
        B,
        step(B, "contains for the other tenant", store.contains(&other, "stripe", &id).await)?,
        "the other tenant's recorded id is not found"
    );
    ensure!(
        B,
        step(B, "record other provider", store.record(&tenant, "adyen", &id, fx.now).await)?,
        "ids are not scoped per provider"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Domain claims

/// One live claim per hostname; versioned updates; released claims can be replaced; due claims in order.
pub async fn domains_claims_and_mappings(store: &dyn DomainClaimStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "domains_claims_and_mappings";
    let host = format!("{}.shop.example", fx.id(B, "h").to_lowercase());
    let tenant = fx.tenant(B)?;
    let channel = step(B, "channel id", ChannelId::new("web"))?;
    let claim = DomainClaim::new(&host, tenant.clone(), channel.clone(), "tok", fx.now);
    step(B, "create", store.create(claim.clone()).await)?;
    let other_tenant = step(B, "tenant id", TenantId::new(fx.id(B, "other")))?;
    let rival = DomainClaim::new(&host, other_tenant.clone(), channel.clone(), "tok2", fx.now);
    expect_store_kind(B, "a second live claim", store.create(rival.clone()).await, ErrorKind::AlreadyExists)?;
    let due = step(B, "due", store.due(fx.now, 1000).await)?;
    ensure!(B, due.iter().any(|c| c.hostname == host), "a pending claim due now is not listed as due");
    let not_yet = step(B, "due earlier", store.due(fx.now - Duration::seconds(1), 1000).await)?;
    ensure!(B, !not_yet.iter().any(|c| c.hostname == host), "a claim is due before its time");
    let mut released = claim.clone();
    released.status = ClaimStatus::Released;
    released.version = 2;
    expect_store_kind(B, "stale update", store.update(released.clone(), 7).await, ErrorKind::Conflict)?;
    step(B, "update", store.update(released, 1).await)?;
    step(B, "claim after release", store.create(rival).await)?;
    let current = step(B, "get", store.get(&host).await)?;
    ensure!(
        B,
        current.map(|c| c.tenant) == Some(other_tenant.clone()),
        "the new claim did not replace the released one"
    );
    step(B, "put mapping", store.put_mapping(DomainMapping::new(&host, other_tenant.clone(), channel.clone())).await)?;
    expect_store_kind(
        B,
        "mapping to another tenant",
        store.put_mapping(DomainMapping::new(&host, tenant, channel)).await,
        ErrorKind::AlreadyExists,
    )?;
    let mapping = step(B, "mapping", store.mapping(&host).await)?;
    ensure!(B, mapping.map(|m| m.tenant) == Some(other_tenant), "mapping does not name its tenant");
    step(B, "remove mapping", store.remove_mapping(&host).await)?;
    step(B, "remove absent mapping", store.remove_mapping(&host).await)?;
    ensure!(B, step(B, "mapping", store.mapping(&host).await)?.is_none(), "a removed mapping is still there");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Replication

fn stream(fx: &StoreFixture, b: &'static str) -> Result<Stream, Failure> {
    Ok(Stream::new(
        step(b, "channel id", ChannelId::new("store"))?,
        step(b, "store id", StoreId::new(fx.id(b, "s")))?,
        step(b, "dataset id", DatasetId::new("orders"))?,
        Direction::Up,
    ))
}

fn change(fx: &StoreFixture, b: &'static str, sequence: u64) -> Result<Change, Failure> {
    Ok(Change::new(
        step(b, "dataset id", DatasetId::new("orders"))?,
        sequence,
        fx.id(b, &format!("c{sequence}")),
        format!("order-{sequence}"),
        Some(format!("{{\"n\":{sequence}}}").into_bytes()),
        fx.now,
    ))
}

/// The outbox keeps order, ignores duplicates and drops what was acknowledged.
pub async fn replication_outbox(store: &dyn ReplicationStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "replication_outbox";
    let s = stream(fx, B)?;
    step(B, "append", store.outbox_append(&s, vec![change(fx, B, 2)?, change(fx, B, 1)?]).await)?;
    step(B, "append duplicate", store.outbox_append(&s, vec![change(fx, B, 2)?, change(fx, B, 3)?]).await)?;
    let pending = step(B, "pending", store.outbox_pending(&s, 10).await)?;
    let seqs: Vec<u64> = pending.iter().map(|c| c.sequence).collect();
    ensure!(B, seqs == vec![1, 2, 3], "pending sequences {seqs:?}, expected [1, 2, 3]");
    ensure!(B, pending.first() == Some(&change(fx, B, 1)?), "a change came back altered");
    let mut rival = change(fx, B, 3)?;
    rival.change_id = fx.id(B, "rival");
    let batch = vec![change(fx, B, 4)?, rival];
    expect_store_kind(
        B,
        "a new change taking a held sequence",
        store.outbox_append(&s, batch).await,
        ErrorKind::InvalidRequest,
    )?;
    let pending = step(B, "pending after a refused append", store.outbox_pending(&s, 10).await)?;
    ensure!(
        B,
        pending.iter().map(|c| c.sequence).collect::<Vec<_>>() == vec![1, 2, 3],
        "a refused batch was half-applied: {pending:?}"
    );
    step(B, "ack", store.outbox_ack(&s, 2).await)?;
    let pending = step(B, "pending after ack", store.outbox_pending(&s, 10).await)?;
    ensure!(B, pending.iter().map(|c| c.sequence).collect::<Vec<_>>() == vec![3], "after ack of 2: {pending:?}");
    Ok(())
}

/// The inbox advances the checkpoint only from the expected one and filters duplicates.
pub async fn replication_inbox_checkpoint(store: &dyn ReplicationStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "replication_inbox_checkpoint";
    let s = stream(fx, B)?;
    ensure!(B, step(B, "checkpoint", store.checkpoint(&s).await)? == 0, "a new stream's checkpoint is not 0");
    let fresh = step(B, "commit", store.inbox_commit(&s, 0, 2, vec![change(fx, B, 1)?, change(fx, B, 2)?]).await)?;
    ensure!(B, fresh.len() == 2, "first commit returned {} new changes", fresh.len());
    expect_store_kind(
        B,
        "commit from a stale checkpoint",
        store.inbox_commit(&s, 0, 3, vec![change(fx, B, 3)?]).await,
        ErrorKind::Conflict,
    )?;
    ensure!(B, step(B, "checkpoint", store.checkpoint(&s).await)? == 2, "a refused commit moved the checkpoint");
    let fresh = step(
        B,
        "commit with a duplicate",
        store.inbox_commit(&s, 2, 3, vec![change(fx, B, 2)?, change(fx, B, 3)?]).await,
    )?;
    ensure!(B, fresh.iter().map(|c| c.sequence).collect::<Vec<_>>() == vec![3], "duplicate not filtered: {fresh:?}");
    expect_store_kind(
        B,
        "commit moving backwards",
        store.inbox_commit(&s, 3, 1, Vec::new()).await,
        ErrorKind::InvalidRequest,
    )?;
    ensure!(B, step(B, "checkpoint", store.checkpoint(&s).await)? == 3, "checkpoint is not 3");
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------
// Print jobs and pairings

/// Jobs are queued once per key, served oldest first per printer, and count attempts.
pub async fn print_jobs_queue(store: &dyn PrintJobStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "print_jobs_queue";
    let printer = step(B, "device id", DeviceId::new(fx.id(B, "p")))?;
    let register = step(B, "register id", RegisterId::new("till-1"))?;
    let doc = ReceiptDocument::new().line("hello").cut();
    let first = PrintJob::new(fx.key(B, "j1")?, register.clone(), printer.clone(), doc.clone(), fx.now);
    let second =
        PrintJob::new(fx.key(B, "j2")?, register.clone(), printer.clone(), doc.clone(), fx.now + Duration::seconds(1));
    step(B, "enqueue", store.enqueue(second.clone()).await)?;
    step(B, "enqueue", store.enqueue(first.clone()).await)?;
    let mut changed = first.clone();
    changed.document = ReceiptDocument::new().line("other");
    let again = step(B, "enqueue same key", store.enqueue(changed).await)?;
    ensure!(B, again == first, "enqueueing an existing key changed the job: {again:?}");
    let next = step(B, "next", store.next(&printer).await)?;
    ensure!(B, next.as_ref().map(|j| &j.key) == Some(&first.key), "next is {next:?}, expected the oldest");
    let printing = step(B, "set printing", store.set_status(&first.key, PrintJobStatus::Printing).await)?;
    ensure!(B, printing.attempts == 1, "attempts after one Printing: {}", printing.attempts);
    step(B, "set printed", store.set_status(&first.key, PrintJobStatus::Printed).await)?;
    let next = step(B, "next", store.next(&printer).await)?;
    ensure!(B, next.as_ref().map(|j| &j.key) == Some(&second.key), "next after printing is {next:?}");
    expect_store_kind(
        B,
        "status of an unknown job",
        store.set_status(&fx.key(B, "missing")?, PrintJobStatus::Printed).await,
        ErrorKind::NotFound,
    )
}

/// Pairings are found by token hash until revoked; a hash belongs to one client.
pub async fn pairings_lifecycle(store: &dyn PairingStore, fx: &StoreFixture) -> Outcome {
    const B: &str = "pairings_lifecycle";
    let client = step(B, "register id", RegisterId::new(fx.id(B, "c")))?;
    let hash = fx.id(B, "hash");
    step(B, "put", store.put(Pairing::new(client.clone(), &hash, Vec::new(), fx.now)).await)?;
    let found = step(B, "by hash", store.by_token_hash(&hash).await)?;
    ensure!(B, found.map(|p| p.client) == Some(client.clone()), "pairing not found by its token hash");
    let other = step(B, "register id", RegisterId::new(fx.id(B, "d")))?;
    expect_store_kind(
        B,
        "another client with the same hash",
        store.put(Pairing::new(other, &hash, Vec::new(), fx.now)).await,
        ErrorKind::AlreadyExists,
    )?;
    let rotated = fx.id(B, "hash2");
    step(B, "re-pair", store.put(Pairing::new(client.clone(), &rotated, Vec::new(), fx.now)).await)?;
    ensure!(
        B,
        step(B, "old hash", store.by_token_hash(&hash).await)?.is_none(),
        "the old token still works after re-pairing"
    );
    step(B, "revoke", store.revoke(&client, fx.now).await)?;
    ensure!(
        B,
        step(B, "by hash", store.by_token_hash(&rotated).await)?.is_none(),
        "a revoked pairing is still returned"
    );
    let unknown = step(B, "register id", RegisterId::new(fx.id(B, "x")))?;
    expect_store_kind(B, "revoke of an unknown client", store.revoke(&unknown, fx.now).await, ErrorKind::NotFound)
}

// ---------------------------------------------------------------------------------------------------------
// Payment ledger

fn claim_now(fx: &StoreFixture, operation: &str) -> IdempotencyClaim {
    IdempotencyClaim::new(operation, "fp-1", fx.now, fx.now + Duration::seconds(30))
}

fn first_event(fx: &StoreFixture) -> IntentEvent {
    IntentEvent::new(1, fx.now, "create", IntentStatus::RequiresAuthorization)
}

/// A claim that starts creates the intent with its event and returns it; a claim that does not start
/// (in progress, completed, conflicting) creates nothing and returns no intent.
pub async fn ledger_claim_creates_only_when_started(
    ledger: &dyn PaymentLedger,
    intents: &dyn PaymentIntentStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "ledger_claim_creates_only_when_started";
    let created = intent(fx, B, "i1")?;
    let (tenant, id) = (created.tenant.clone(), created.id.clone());
    let key = fx.key(B, "k1")?;
    let create = Some((created.clone(), first_event(fx)));
    let claimed = step(B, "claim", ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, create).await)?;
    ensure!(B, matches!(claimed.begin, IdempotencyBegin::Started { .. }), "first claim gave {:?}", claimed.begin);
    let snapshot = claimed.intent.ok_or_else(|| Failure { behaviour: B, message: "no intent returned".into() })?;
    ensure!(B, snapshot.intent == created, "claim returned {:?}", snapshot.intent);
    ensure!(B, snapshot.history == vec![first_event(fx)], "claim returned history {:?}", snapshot.history);
    ensure!(B, step(B, "get", intents.get(&tenant, &id).await)? == created, "the created intent is not stored");
    // A second claim while the first holds the key: in progress, nothing returned.
    let other = intent(fx, B, "i2")?;
    let again = step(
        B,
        "second claim",
        ledger
            .claim(&tenant, &key, claim_now(fx, "authorize"), &other.id, Some((other.clone(), first_event(fx))))
            .await,
    )?;
    ensure!(B, again.begin == IdempotencyBegin::InProgress, "second claim gave {:?}", again.begin);
    ensure!(B, again.intent.is_none(), "a claim that did not start returned an intent");
    expect_store_kind(
        B,
        "get of the intent a refused claim offered",
        intents.get(&tenant, &other.id).await,
        ErrorKind::NotFound,
    )?;
    // Another operation with the same key: conflict, nothing created.
    let conflict =
        step(B, "conflicting claim", ledger.claim(&tenant, &key, claim_now(fx, "capture"), &id, None).await)?;
    ensure!(
        B,
        matches!(conflict.begin, IdempotencyBegin::Conflict { .. }),
        "conflicting claim gave {:?}",
        conflict.begin
    );
    // A claim without `create` on an unknown intent starts and returns no intent.
    let missing = step(B, "intent id", IntentId::new(fx.id(B, "missing")))?;
    let key2 = fx.key(B, "k2")?;
    let bare = step(
        B,
        "claim of a missing intent",
        ledger.claim(&tenant, &key2, claim_now(fx, "capture"), &missing, None).await,
    )?;
    ensure!(B, matches!(bare.begin, IdempotencyBegin::Started { .. }) && bare.intent.is_none(), "gave {bare:?}");
    // A creation that is not version 1 with event 1 is refused before the key is claimed.
    let mut later = intent(fx, B, "i3")?;
    later.version = 2;
    let key3 = fx.key(B, "k3")?;
    expect_store_kind(
        B,
        "claim creating a version-2 intent",
        ledger
            .claim(&tenant, &key3, claim_now(fx, "authorize"), &later.id, Some((later.clone(), first_event(fx))))
            .await,
        ErrorKind::InvalidRequest,
    )?;
    let retried = step(
        B,
        "claim after the refusal",
        ledger.claim(&tenant, &key3, claim_now(fx, "authorize"), &later.id, None).await,
    )?;
    ensure!(
        B,
        matches!(retried.begin, IdempotencyBegin::Started { .. }),
        "the refused claim held the key: {retried:?}"
    );
    Ok(())
}

/// A commit applies the update and completes the key together; the next claim replays the response.
pub async fn ledger_commit_applies_and_completes(
    ledger: &dyn PaymentLedger,
    intents: &dyn PaymentIntentStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "ledger_commit_applies_and_completes";
    let created = intent(fx, B, "i1")?;
    let (tenant, id) = (created.tenant.clone(), created.id.clone());
    let key = fx.key(B, "k1")?;
    let create = Some((created.clone(), first_event(fx)));
    step(B, "claim", ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, create).await)?;
    let (authorized, event) = next(created.clone(), IntentStatus::Authorized, fx);
    let update = IntentUpdate::new(authorized.clone(), 1, event.clone());
    let response = b"{\"ok\":1}".to_vec();
    step(B, "commit", ledger.commit(&tenant, &key, Some(update), KeyResolution::Complete(response.clone())).await)?;
    ensure!(B, step(B, "get", intents.get(&tenant, &id).await)? == authorized, "the update is not stored");
    ensure!(B, step(B, "events", intents.events(&tenant, &id).await)?.len() == 2, "the event is not appended");
    let replay = step(B, "claim again", ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, None).await)?;
    ensure!(B, replay.begin == IdempotencyBegin::Completed(response), "the claim after commit gave {:?}", replay.begin);
    ensure!(B, replay.intent.is_none(), "a completed claim returned an intent");
    // Released keys run again.
    let key2 = fx.key(B, "k2")?;
    step(B, "claim k2", ledger.claim(&tenant, &key2, claim_now(fx, "capture"), &id, None).await)?;
    step(B, "release k2", ledger.commit(&tenant, &key2, None, KeyResolution::Release).await)?;
    let rerun = step(B, "claim k2 again", ledger.claim(&tenant, &key2, claim_now(fx, "capture"), &id, None).await)?;
    ensure!(
        B,
        matches!(rerun.begin, IdempotencyBegin::Started { recovered: false }),
        "after release: {:?}",
        rerun.begin
    );
    let snapshot = rerun.intent.ok_or_else(|| Failure { behaviour: B, message: "no intent returned".into() })?;
    ensure!(B, snapshot.intent == authorized && snapshot.history.len() == 2, "claim read {snapshot:?}");
    Ok(())
}

/// A stale version changes neither the intent nor the key; a completed key changes neither either.
pub async fn ledger_commit_is_all_or_nothing(
    ledger: &dyn PaymentLedger,
    intents: &dyn PaymentIntentStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "ledger_commit_is_all_or_nothing";
    let created = intent(fx, B, "i1")?;
    let (tenant, id) = (created.tenant.clone(), created.id.clone());
    let key = fx.key(B, "k1")?;
    step(
        B,
        "claim",
        ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, Some((created.clone(), first_event(fx)))).await,
    )?;
    let (v2, e2) = next(created.clone(), IntentStatus::Authorized, fx);
    step(B, "plain update", intents.update(v2.clone(), 1, e2).await)?;
    let (stale, stale_event) = next(created.clone(), IntentStatus::Voided, fx);
    expect_store_kind(
        B,
        "commit from a stale version",
        ledger
            .commit(
                &tenant,
                &key,
                Some(IntentUpdate::new(stale, 1, stale_event)),
                KeyResolution::Complete(b"x".to_vec()),
            )
            .await,
        ErrorKind::Conflict,
    )?;
    let held = step(
        B,
        "claim after the refused commit",
        ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, None).await,
    )?;
    ensure!(B, held.begin == IdempotencyBegin::InProgress, "a refused commit resolved the key: {:?}", held.begin);
    ensure!(B, step(B, "get", intents.get(&tenant, &id).await)? == v2, "a refused commit changed the intent");
    // Complete the key, then try to commit again under it: refused, intent unchanged.
    step(B, "complete", ledger.commit(&tenant, &key, None, KeyResolution::Complete(b"first".to_vec())).await)?;
    let (v3, e3) = next(v2.clone(), IntentStatus::Captured, fx);
    expect_store_kind(
        B,
        "commit under a completed key",
        ledger
            .commit(&tenant, &key, Some(IntentUpdate::new(v3, 2, e3)), KeyResolution::Complete(b"second".to_vec()))
            .await,
        ErrorKind::InvalidState,
    )?;
    ensure!(
        B,
        step(B, "get", intents.get(&tenant, &id).await)? == v2,
        "a commit under a completed key changed the intent"
    );
    let replay = step(B, "claim", ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, None).await)?;
    ensure!(
        B,
        replay.begin == IdempotencyBegin::Completed(b"first".to_vec()),
        "the first response did not stand: {:?}",
        replay.begin
    );
    Ok(())
}

/// A commit whose key is gone (released by another caller) or whose update belongs to another tenant changes
/// nothing.
pub async fn ledger_commit_refuses_a_missing_key_or_another_tenant(
    ledger: &dyn PaymentLedger,
    intents: &dyn PaymentIntentStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "ledger_commit_refuses_a_missing_key_or_another_tenant";
    let created = intent(fx, B, "i1")?;
    let (tenant, id) = (created.tenant.clone(), created.id.clone());
    let key = fx.key(B, "k1")?;
    let create = Some((created.clone(), first_event(fx)));
    step(B, "claim", ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, create).await)?;
    step(B, "release", ledger.commit(&tenant, &key, None, KeyResolution::Release).await)?;
    let (v2, e2) = next(created.clone(), IntentStatus::OutcomeUnknown, fx);
    expect_store_kind(
        B,
        "commit with an update under a released key",
        ledger.commit(&tenant, &key, Some(IntentUpdate::new(v2.clone(), 1, e2.clone())), KeyResolution::Release).await,
        ErrorKind::NotFound,
    )?;
    ensure!(B, step(B, "get", intents.get(&tenant, &id).await)? == created, "a refused commit changed the intent");
    let other = step(B, "tenant id", TenantId::new(fx.id(B, "other")))?;
    let key2 = fx.key(B, "k2")?;
    step(B, "claim k2", ledger.claim(&other, &key2, claim_now(fx, "capture"), &id, None).await)?;
    expect_store_kind(
        B,
        "commit of another tenant's intent",
        ledger.commit(&other, &key2, Some(IntentUpdate::new(v2, 1, e2)), KeyResolution::Complete(b"x".to_vec())).await,
        ErrorKind::InvalidRequest,
    )?;
    ensure!(
        B,
        step(B, "get", intents.get(&tenant, &id).await)? == created,
        "another tenant's commit changed the intent"
    );
    Ok(())
}

/// A commit can create the intent together with its first update (an operation that records its intent
/// only with its outcome): the intent is stored at version 2 with both events, and the key is resolved.
pub async fn ledger_commit_creates_with_the_outcome(
    ledger: &dyn PaymentLedger,
    intents: &dyn PaymentIntentStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "ledger_commit_creates_with_the_outcome";
    let created = intent(fx, B, "i1")?;
    let (tenant, id) = (created.tenant.clone(), created.id.clone());
    let key = fx.key(B, "k1")?;
    let claimed = step(B, "claim", ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, None).await)?;
    ensure!(B, matches!(claimed.begin, IdempotencyBegin::Started { .. }), "claim gave {:?}", claimed.begin);
    ensure!(B, claimed.intent.is_none(), "a claim of an absent intent returned {:?}", claimed.intent);
    let (authorized, event) = next(created.clone(), IntentStatus::Authorized, fx);
    let update = IntentUpdate::creating(created.clone(), first_event(fx), authorized.clone(), event.clone());
    let response = b"{\"created\":1}".to_vec();
    step(B, "commit", ledger.commit(&tenant, &key, Some(update), KeyResolution::Complete(response.clone())).await)?;
    let stored = step(B, "get", intents.get(&tenant, &id).await)?;
    ensure!(B, stored == authorized, "stored {stored:?}, committed {authorized:?}");
    let history = step(B, "events", intents.events(&tenant, &id).await)?;
    ensure!(B, history == vec![first_event(fx), event.clone()], "history {history:?}");
    let replay = step(B, "claim again", ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, None).await)?;
    ensure!(B, replay.begin == IdempotencyBegin::Completed(response), "the claim after commit gave {:?}", replay.begin);
    // With a release: the intent is created and the key given back.
    let created2 = intent(fx, B, "i2")?;
    let key2 = fx.key(B, "k2")?;
    step(B, "claim k2", ledger.claim(&tenant, &key2, claim_now(fx, "authorize"), &created2.id, None).await)?;
    let (pending, pending_event) = next(created2.clone(), IntentStatus::OutcomeUnknown, fx);
    let update = IntentUpdate::creating(created2.clone(), first_event(fx), pending.clone(), pending_event);
    step(B, "commit k2 with release", ledger.commit(&tenant, &key2, Some(update), KeyResolution::Release).await)?;
    ensure!(
        B,
        step(B, "get i2", intents.get(&tenant, &created2.id).await)? == pending,
        "the released commit did not store the intent"
    );
    let rerun =
        step(B, "claim k2 again", ledger.claim(&tenant, &key2, claim_now(fx, "authorize"), &created2.id, None).await)?;
    ensure!(B, matches!(rerun.begin, IdempotencyBegin::Started { .. }), "after release: {:?}", rerun.begin);
    let snapshot = rerun.intent.ok_or_else(|| Failure { behaviour: B, message: "no intent returned".into() })?;
    ensure!(B, snapshot.intent == pending && snapshot.history.len() == 2, "claim read {snapshot:?}");
    Ok(())
}

/// A commit that creates an intent which exists already is `AlreadyExists` and changes nothing: neither the
/// intent, nor its history, nor the key (still held).
pub async fn ledger_commit_creation_refuses_an_existing_intent(
    ledger: &dyn PaymentLedger,
    intents: &dyn PaymentIntentStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "ledger_commit_creation_refuses_an_existing_intent";
    let created = intent(fx, B, "i1")?;
    let (tenant, id) = (created.tenant.clone(), created.id.clone());
    let (key1, key2) = (fx.key(B, "k1")?, fx.key(B, "k2")?);
    let create = Some((created.clone(), first_event(fx)));
    step(B, "claim k1", ledger.claim(&tenant, &key1, claim_now(fx, "authorize"), &id, create).await)?;
    let claimed = step(B, "claim k2", ledger.claim(&tenant, &key2, claim_now(fx, "authorize"), &id, None).await)?;
    ensure!(B, matches!(claimed.begin, IdempotencyBegin::Started { .. }), "claim k2 gave {:?}", claimed.begin);
    let (authorized, event) = next(created.clone(), IntentStatus::Authorized, fx);
    let update = IntentUpdate::creating(created.clone(), first_event(fx), authorized, event);
    for resolution in [KeyResolution::Complete(b"x".to_vec()), KeyResolution::Release] {
        expect_store_kind(
            B,
            "commit creating an existing intent",
            ledger.commit(&tenant, &key2, Some(update.clone()), resolution).await,
            ErrorKind::AlreadyExists,
        )?;
        ensure!(
            B,
            step(B, "get", intents.get(&tenant, &id).await)? == created,
            "a refused creation changed the intent"
        );
        let history = step(B, "events", intents.events(&tenant, &id).await)?;
        ensure!(B, history == vec![first_event(fx)], "a refused creation changed the history: {history:?}");
    }
    let held = step(B, "claim k2 again", ledger.claim(&tenant, &key2, claim_now(fx, "authorize"), &id, None).await)?;
    ensure!(B, held.begin == IdempotencyBegin::InProgress, "a refused creation resolved the key: {:?}", held.begin);
    step(B, "release k2", ledger.commit(&tenant, &key2, None, KeyResolution::Release).await)?;
    let rerun =
        step(B, "claim k2 after release", ledger.claim(&tenant, &key2, claim_now(fx, "authorize"), &id, None).await)?;
    ensure!(B, matches!(rerun.begin, IdempotencyBegin::Started { .. }), "after release: {:?}", rerun.begin);
    // The key is checked first, as for every commit: a completed key is `InvalidState` even though the intent
    // exists too, and a missing key `NotFound`.
    step(B, "complete k2", ledger.commit(&tenant, &key2, None, KeyResolution::Complete(b"k2".to_vec())).await)?;
    expect_store_kind(
        B,
        "commit creating an existing intent under a completed key",
        ledger.commit(&tenant, &key2, Some(update.clone()), KeyResolution::Complete(b"y".to_vec())).await,
        ErrorKind::InvalidState,
    )?;
    let missing = fx.key(B, "never-claimed")?;
    expect_store_kind(
        B,
        "commit creating an existing intent under a key never claimed",
        ledger.commit(&tenant, &missing, Some(update), KeyResolution::Release).await,
        ErrorKind::NotFound,
    )?;
    Ok(())
}

/// A creation for another intent than its update, or not at version 1, is refused before anything changes.
pub async fn ledger_commit_creation_checks_its_shape(
    ledger: &dyn PaymentLedger,
    intents: &dyn PaymentIntentStore,
    fx: &StoreFixture,
) -> Outcome {
    const B: &str = "ledger_commit_creation_checks_its_shape";
    let created = intent(fx, B, "i1")?;
    let other = intent(fx, B, "i2")?;
    let (tenant, id) = (created.tenant.clone(), created.id.clone());
    let key = fx.key(B, "k1")?;
    step(B, "claim", ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, None).await)?;
    let (authorized, event) = next(created.clone(), IntentStatus::Authorized, fx);
    let mut version_2 = created.clone();
    version_2.version = 2;
    let mut second_event = first_event(fx);
    second_event.sequence = 2;
    let mut other_reference = created.clone();
    other_reference.reference = format!("{}-elsewhere", created.reference);
    let cases = [
        (
            "a creation whose merchant reference the update changes",
            IntentUpdate::creating(other_reference, first_event(fx), authorized.clone(), event.clone()),
        ),
        (
            "a creation of another intent",
            IntentUpdate::creating(other.clone(), first_event(fx), authorized.clone(), event.clone()),
        ),
        (
            "a creation at version 2",
            IntentUpdate::creating(version_2, first_event(fx), authorized.clone(), event.clone()),
        ),
        (
            "a creation with event 2",
            IntentUpdate::creating(created.clone(), second_event, authorized.clone(), event.clone()),
        ),
    ];
    for (what, update) in cases {
        expect_store_kind(
            B,
            &format!("commit of {what}"),
            ledger.commit(&tenant, &key, Some(update), KeyResolution::Complete(b"x".to_vec())).await,
            ErrorKind::InvalidRequest,
        )?;
        expect_store_kind(B, &format!("get after {what}"), intents.get(&tenant, &id).await, ErrorKind::NotFound)?;
        expect_store_kind(
            B,
            &format!("get of the other intent after {what}"),
            intents.get(&tenant, &other.id).await,
            ErrorKind::NotFound,
        )?;
    }
    let held = step(B, "claim again", ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, None).await)?;
    ensure!(B, held.begin == IdempotencyBegin::InProgress, "a refused creation resolved the key: {:?}", held.begin);
    Ok(())
}

/// Concurrent claims of one key: exactly one starts (and one intent is created).
pub async fn ledger_concurrent_claims_start_once(ledger: &dyn PaymentLedger, fx: &StoreFixture) -> Outcome {
    const B: &str = "ledger_concurrent_claims_start_once";
    let created = intent(fx, B, "i1")?;
    let (tenant, id) = (created.tenant.clone(), created.id.clone());
    let key = fx.key(B, "k1")?;
    let claims = (0..8).map(|_| {
        ledger.claim(&tenant, &key, claim_now(fx, "authorize"), &id, Some((created.clone(), first_event(fx))))
    });
    let results = join_all(claims).await;
    let mut started = 0;
    for result in results {
        let claimed = step(B, "claim", result)?;
        match claimed.begin {
            IdempotencyBegin::Started { .. } => started += 1,
            IdempotencyBegin::InProgress => {}
            other => return Err(Failure { behaviour: B, message: format!("a concurrent claim gave {other:?}") }),
        }
    }
    ensure!(B, started == 1, "{started} concurrent claims started");
    Ok(())
}

/// Runs the ledger suite over a store set's ledger and intents.
pub async fn run_ledger(stores: &StoreSet, fx: &StoreFixture) -> Report {
    let (ledger, intents) = (stores.ledger.as_ref(), stores.intents.as_ref());
    let mut r = Report::default();
    r.record(
        "ledger_claim_creates_only_when_started",
        ledger_claim_creates_only_when_started(ledger, intents, fx).await,
    );
    r.record("ledger_commit_applies_and_completes", ledger_commit_applies_and_completes(ledger, intents, fx).await);
    r.record("ledger_commit_is_all_or_nothing", ledger_commit_is_all_or_nothing(ledger, intents, fx).await);
    r.record(
        "ledger_commit_refuses_a_missing_key_or_another_tenant",
        ledger_commit_refuses_a_missing_key_or_another_tenant(ledger, intents, fx).await,
    );
    r.record(
        "ledger_commit_creates_with_the_outcome",
        ledger_commit_creates_with_the_outcome(ledger, intents, fx).await,
    );
    r.record(
        "ledger_commit_creation_refuses_an_existing_intent",
        ledger_commit_creation_refuses_an_existing_intent(ledger, intents, fx).await,
    );
    r.record(
        "ledger_commit_creation_checks_its_shape",
        ledger_commit_creation_checks_its_shape(ledger, intents, fx).await,
    );
    r.record("ledger_concurrent_claims_start_once", ledger_concurrent_claims_start_once(ledger, fx).await);
    r
}

/// Runs every store suite over a [`StoreSet`].
pub async fn run_all(stores: &StoreSet, fx: &StoreFixture) -> Report {
    let mut r = run_idempotency(stores.idempotency.as_ref(), fx).await;
    r.merge(run_intents(stores.intents.as_ref(), fx).await);
    r.record("webhooks_deduplicate", webhooks_deduplicate(stores.webhooks.as_ref(), fx).await);
    r.record("domains_claims_and_mappings", domains_claims_and_mappings(stores.domains.as_ref(), fx).await);
    r.record("replication_outbox", replication_outbox(stores.replication.as_ref(), fx).await);
    r.record("replication_inbox_checkpoint", replication_inbox_checkpoint(stores.replication.as_ref(), fx).await);
    r.record("print_jobs_queue", print_jobs_queue(stores.print_jobs.as_ref(), fx).await);
    r.record("pairings_lifecycle", pairings_lifecycle(stores.pairings.as_ref(), fx).await);
    r.merge(super::offline_queue::run_all(stores.offline_queue.as_ref(), fx).await);
    r.merge(run_ledger(stores, fx).await);
    // Here rather than in `run_ledger`: they need the idempotency store next to the ledger.
    r.record(
        "idempotency_first_claim_after_ledger_claim",
        idempotency_first_claim_after_ledger_claim(stores.ledger.as_ref(), stores.idempotency.as_ref(), fx).await,
    );
    if renews(stores.idempotency.as_ref(), fx).await {
        r.record(
            "idempotency_renew_after_ledger_claim",
            idempotency_renew_after_ledger_claim(stores.ledger.as_ref(), stores.idempotency.as_ref(), fx).await,
        );
    } else {
        r.skip("idempotency_renew_after_ledger_claim", "the store does not renew leases (the port's default)");
    }
    r
}
