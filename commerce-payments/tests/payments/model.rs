//! Random sequences of operations, faults, replays, reconciliations and webhooks against a simple model of
//! what the provider did and what the intent should show.
//!
//! Webhooks describe the provider's view of the payment after some real provider call of the run (the
//! latest, or any earlier one: stale and out-of-order deliveries), sometimes twice in a row (a redelivery
//! with the same event id), carrying the provider reference, the merchant reference, or both.

use std::collections::{HashMap, HashSet, VecDeque};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use super::webhook_model::{self as wh, Facet, Refs, View};
use super::*;

#[derive(Debug, Clone, Copy)]
enum Cmd {
    Authorize,
    Capture { amount: Option<i64>, final_capture: bool },
    Refund(i64),
    Void,
    Increment(i64),
}

#[derive(Debug, Clone)]
enum Step {
    /// A new operation with a new key.
    Do(Cmd),
    /// The operation of an earlier key again, with that key.
    Replay(Index),
    /// The last operation again, with its key (a client retrying after an error).
    RetryLast,
    /// A fault for the next real provider call: a timeout after processing (true) or a 503 (false).
    Fault(bool),
    Reconcile,
    /// A provider event describing the provider's view after some real provider call, one of the facets of
    /// that view, delivered once or twice.
    Webhook {
        view: Pick,
        facet: Index,
        refs: Refs,
        twice: bool,
    },
}

/// Which of the provider's views an event describes.
#[derive(Debug, Clone, Copy)]
enum Pick {
    /// The current one.
    Latest,
    /// The one before the latest call (stale by one call: the most telling while a call is pending).
    Previous,
    /// Any one so far.
    Any(Index),
}

impl Pick {
    fn index(self, len: usize) -> usize {
        match self {
            Pick::Latest => len - 1,
            Pick::Previous => len.saturating_sub(2),
            Pick::Any(i) => i.index(len),
        }
    }
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![3 => Just(Pick::Latest), 2 => Just(Pick::Previous), 2 => any::<Index>().prop_map(Pick::Any)]
}

fn refs() -> impl Strategy<Value = Refs> {
    prop_oneof![3 => Just(Refs::Provider), 2 => Just(Refs::Both), 1 => Just(Refs::Merchant)]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (proptest::option::weighted(0.8, 0i64..=12_000), any::<bool>())
            .prop_map(|(amount, final_capture)| Step::Do(Cmd::Capture { amount, final_capture })),
        3 => (0i64..=8_000).prop_map(|a| Step::Do(Cmd::Refund(a))),
        1 => Just(Step::Do(Cmd::Void)),
        2 => (0i64..=15_000).prop_map(|t| Step::Do(Cmd::Increment(t))),
        3 => any::<Index>().prop_map(Step::Replay),
        3 => Just(Step::RetryLast),
        4 => any::<bool>().prop_map(Step::Fault),
        2 => Just(Step::Reconcile),
        6 => (pick(), any::<Index>(), refs(), proptest::bool::weighted(0.25))
            .prop_map(|(view, facet, refs, twice)| Step::Webhook { view, facet, refs, twice }),
    ]
}

/// Amounts and status in the domain's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Books {
    status: IntentStatus,
    authorized: i64,
    captured: i64,
    refunded: i64,
}

impl Books {
    fn of(intent: &PaymentIntent) -> Books {
        Books {
            status: intent.status,
            authorized: intent.authorized.minor(),
            captured: intent.captured.minor(),
            refunded: intent.refunded.minor(),
        }
    }

    /// The model's rules: the books after `cmd`, or the kind of error it must fail with.
    fn after(self, total: i64, cmd: Cmd) -> Result<Books, ErrorKind> {
        use IntentStatus as S;
        let mut b = self;
        match cmd {
            Cmd::Authorize => {
                if b.status != S::RequiresAuthorization {
                    return Err(ErrorKind::Unexpected);
                }
                b.status = S::Authorized;
                b.authorized = total;
            }
            Cmd::Capture { amount, final_capture } => {
                if !matches!(b.status, S::Authorized | S::PartiallyCaptured) {
                    return Err(ErrorKind::InvalidState);
                }
                let rest = b.authorized - b.captured;
                let a = amount.unwrap_or(rest);
                if a <= 0 || a > rest {
                    return Err(ErrorKind::InvalidRequest);
                }
                b.captured += a;
                b.status = if final_capture || b.captured == b.authorized { S::Captured } else { S::PartiallyCaptured };
            }
            Cmd::Refund(a) => {
                if !matches!(b.status, S::Captured | S::PartiallyRefunded) {
                    return Err(ErrorKind::InvalidState);
                }
                if a <= 0 || a > b.captured - b.refunded {
                    return Err(ErrorKind::InvalidRequest);
                }
                b.refunded += a;
                b.status = if b.refunded == b.captured { S::Refunded } else { S::PartiallyRefunded };
            }
            Cmd::Void => {
                if b.status != S::Authorized {
                    return Err(ErrorKind::InvalidState);
                }
                b.status = S::Voided;
            }
            Cmd::Increment(t) => {
                if b.status != S::Authorized || b.captured > 0 {
                    return Err(ErrorKind::InvalidState);
                }
                if t <= b.authorized {
                    return Err(ErrorKind::InvalidRequest);
                }
                b.authorized = t;
            }
        }
        Ok(b)
    }
}

type Stored = Result<PaymentIntent, (ErrorKind, String)>;

fn stored(r: &Result<PaymentIntent, PaymentsError>) -> Stored {
    r.as_ref().cloned().map_err(|e| (e.kind(), e.message().to_owned()))
}

struct Model {
    total: i64,
    /// What the intent shows (its amounts while an outcome is unknown).
    recorded: Books,
    /// What the provider did.
    truth: Books,
    /// The key whose outcome is unknown.
    pending: Option<String>,
    /// Its operation.
    pending_cmd: Option<Cmd>,
    /// Keys whose pending call a reconciliation settled; their retry returns the intent as it is.
    settled: HashSet<String>,
    /// Keys with a completed outcome.
    outcomes: HashMap<String, Stored>,
    faults: VecDeque<bool>,
    calls: u64,
    /// The provider's view after each real provider call, once the provider knows the payment.
    views: Vec<View>,
    /// The payment's provider reference, once the provider processed the authorization.
    reference: Option<String>,
    /// Event ids the ingestor recorded.
    delivered: HashSet<String>,
}

impl Model {
    fn settle(&mut self, k: String) {
        self.recorded = self.truth;
        self.pending = None;
        self.pending_cmd = None;
        self.settled.insert(k);
    }
}

fn view_of(b: Books) -> View {
    View { status: b.status, authorized: b.authorized, captured: b.captured, refunded: b.refunded }
}

fn fail(message: impl Into<String>) -> TestCaseError {
    TestCaseError::fail(message.into())
}

/// After a real provider call: learns the payment's provider reference, checks the provider did exactly what
/// the model says was asked of it (no capture or refund applied twice, nothing lost) and records its view.
async fn observe(fx: &Fx, m: &mut Model, id: &IntentId) -> Result<(), TestCaseError> {
    if m.truth.status == IntentStatus::RequiresAuthorization {
        return Ok(());
    }
    if m.reference.is_none() {
        m.reference = match fx.get(id).await.provider_reference {
            Some(r) => Some(r),
            None => Some(wh::provider_reference_of(fx, "auth", m.total).await.map_err(fail)?),
        };
    }
    let reference = m.reference.clone().ok_or_else(|| fail("a provider reference"))?;
    let snapshot = fx.gateway.retrieve(&reference).await.map_err(|e| fail(e.to_string()))?;
    prop_assert_eq!(
        (snapshot.authorized.minor(), snapshot.captured.minor(), snapshot.refunded.minor()),
        (m.truth.authorized, m.truth.captured, m.truth.refunded),
        "the provider did exactly what was asked of it, once"
    );
    m.views.push(view_of(m.truth));
    Ok(())
}

async fn run(fx: &Fx, id: &IntentId, k: &str, cmd: Cmd, total: i64) -> Result<PaymentIntent, PaymentsError> {
    match cmd {
        Cmd::Authorize => fx.authorize(k, total).await,
        Cmd::Capture { amount, final_capture } => fx.capture(id, k, amount, final_capture).await,
        Cmd::Refund(a) => fx.refund(id, k, a).await,
        Cmd::Void => fx.void(id, k).await,
        Cmd::Increment(t) => fx.payments.increment_authorization(&*fx.gateway, &tenant(), id, eur(t), &key(k)).await,
    }
}

fn err_kind(r: &Result<PaymentIntent, PaymentsError>) -> Option<ErrorKind> {
    r.as_ref().err().map(PaymentsError::kind)
}

/// Runs `cmd` with key `k` and checks the answer against the model.
async fn operation(fx: &Fx, m: &mut Model, id: &IntentId, k: &str, cmd: Cmd) -> Result<(), TestCaseError> {
    let before = fx.get(id).await;
    let r = run(fx, id, k, cmd, m.total).await;
    let after = fx.get(id).await;
    if let Some(expected) = m.outcomes.get(k) {
        prop_assert_eq!(&stored(&r), expected, "a completed key replays its outcome");
        prop_assert_eq!(&after, &before, "a replay changes nothing");
        return Ok(());
    }
    if m.settled.remove(k) {
        prop_assert_eq!(r.as_ref().ok(), Some(&before), "a settled call's retry returns the intent as it is");
        m.outcomes.insert(k.to_owned(), stored(&r));
        return Ok(());
    }
    if let Some(pending) = m.pending.clone() {
        if pending == k {
            let got = r.as_ref().map(Books::of).map_err(PaymentsError::kind);
            prop_assert_eq!(got, Ok(m.truth), "the retry applies the provider's answer once");
            m.recorded = m.truth;
            m.pending = None;
            m.pending_cmd = None;
            m.outcomes.insert(k.to_owned(), stored(&r));
        } else {
            let e = r.as_ref().err();
            prop_assert_eq!(e.map(|e| (e.kind(), e.retry())), Some((ErrorKind::InvalidState, RetryClass::Retryable)));
            prop_assert_eq!(&after, &before);
        }
        return Ok(());
    }
    match m.recorded.after(m.total, cmd) {
        Err(kind) => {
            prop_assert_eq!(err_kind(&r), Some(kind), "validation failure for {:?} on {:?}", cmd, m.recorded);
            prop_assert_eq!(&after, &before);
            m.outcomes.insert(k.to_owned(), stored(&r));
        }
        Ok(next) => {
            m.calls += 1;
            match m.faults.pop_front() {
                None => {
                    prop_assert_eq!(r.as_ref().map(Books::of).map_err(PaymentsError::kind), Ok(next));
                    m.recorded = next;
                    m.truth = next;
                    m.outcomes.insert(k.to_owned(), stored(&r));
                }
                Some(false) => {
                    prop_assert_eq!(err_kind(&r), Some(ErrorKind::Unavailable));
                    prop_assert_eq!(Books::of(&after), m.recorded, "nothing recorded as done");
                }
                Some(true) => {
                    prop_assert_eq!(err_kind(&r), Some(ErrorKind::OutcomeUnknown));
                    prop_assert_eq!(after.status, IntentStatus::OutcomeUnknown);
                    m.truth = next;
                    m.pending = Some(k.to_owned());
                    m.pending_cmd = Some(cmd);
                }
            }
            observe(fx, m, id).await?;
        }
    }
    Ok(())
}

async fn reconcile(fx: &Fx, m: &mut Model, id: &IntentId) -> Result<(), TestCaseError> {
    let before = fx.get(id).await;
    let r = fx.reconcile(id).await;
    match m.pending.take() {
        Some(k) => {
            prop_assert_eq!(
                r.as_ref().map(Books::of).map_err(PaymentsError::kind),
                Ok(m.truth),
                "reconciled from the provider"
            );
            m.settle(k);
        }
        None => prop_assert_eq!(r.as_ref().ok(), Some(&before), "nothing to reconcile"),
    }
    Ok(())
}

/// Whether an event of `facet` describing `view` shows the effect of the pending `cmd` (the provider's view
/// after the call is `truth`): then it settles the call like a reconciliation.
fn settles(cmd: Cmd, facet: Facet, view: View, truth: Books) -> bool {
    match (cmd, facet) {
        (Cmd::Authorize, Facet::Authorized | Facet::Captured | Facet::Refunded) => true,
        (Cmd::Capture { .. }, Facet::Captured) => view.captured >= truth.captured,
        (Cmd::Refund(_), Facet::Refunded) => view.refunded >= truth.refunded,
        (Cmd::Void, Facet::Voided) => true,
        (Cmd::Increment(_), Facet::Authorized) => view.authorized >= truth.authorized,
        _ => false,
    }
}

/// Delivers one event (with id `event_id`) and checks the ingestor's answer and the intent against the model.
async fn delivery(
    fx: &Fx,
    ingestor: &commerce_payments::WebhookIngestor,
    m: &mut Model,
    id: &IntentId,
    (event_id, facet, view, refs): (&str, Facet, View, Refs),
    body: &[u8],
) -> Result<(), TestCaseError> {
    let before = fx.get(id).await;
    let r = wh::deliver(ingestor, body).await;
    let after = fx.get(id).await;
    let what = format!("event `{event_id}` ({facet:?} of {view:?}, {refs:?}) on {:?}", Books::of(&before));
    if m.delivered.contains(event_id) {
        prop_assert_eq!(r.ok(), Some(wh::one("duplicates")), "a redelivered {} is a duplicate", what);
        prop_assert_eq!(&after, &before, "a duplicate changes nothing");
        return Ok(());
    }
    let has_reference = before.provider_reference.is_some();
    let found = match refs {
        Refs::Provider => has_reference,
        Refs::Both => true,
        Refs::Merchant => !has_reference,
    };
    if !found {
        prop_assert_eq!(&after, &before, "{} matches no intent and changes nothing", what);
        if before.status == IntentStatus::OutcomeUnknown && !has_reference {
            // It may be the unknown authorization's: not recorded, delivered again later.
            prop_assert_eq!(r.err().map(|e| e.status()), Some(503), "{} while the authorization is unknown", what);
        } else {
            prop_assert_eq!(r.ok(), Some(wh::one("unknown_payments")), "{} matches no intent", what);
            m.delivered.insert(event_id.to_owned());
        }
        return Ok(());
    }
    m.delivered.insert(event_id.to_owned());
    // Money the event names by merchant reference only, for an intent without a provider reference, cannot be
    // applied: no later call could name the payment (reconcile gets the reference instead).
    let unnamed_money =
        refs == Refs::Merchant && matches!(facet, Facet::Authorized | Facet::Captured | Facet::Refunded);
    match (m.pending.clone(), m.pending_cmd) {
        (Some(k), Some(cmd)) if settles(cmd, facet, view, m.truth) && !unnamed_money => {
            prop_assert_eq!(r.ok(), Some(wh::one("applied")), "{} settles the pending {:?}", what, cmd);
            m.settle(k);
            prop_assert_eq!(Books::of(&after), m.truth, "{} settles the intent to the provider's view", what);
            prop_assert_eq!(&after.provider_reference, &m.reference, "the intent knows its provider reference");
        }
        _ => {
            prop_assert_eq!(r.ok(), Some(wh::one("ignored")), "{} has nothing to change", what);
            prop_assert_eq!(&after, &before, "an ignored event changes nothing");
        }
    }
    Ok(())
}

/// A `Step::Webhook`.
async fn webhook(
    fx: &Fx,
    ingestor: &commerce_payments::WebhookIngestor,
    m: &mut Model,
    id: &IntentId,
    (view, facet, refs, twice): (Pick, Index, Refs, bool),
) -> Result<(), TestCaseError> {
    if m.views.is_empty() {
        return Ok(()); // The provider knows no payment yet: no events.
    }
    let v = view.index(m.views.len());
    let view = m.views[v];
    let facets = view.facets();
    let facet = facets[facet.index(facets.len())];
    let reference = m.reference.clone().ok_or_else(|| fail("a provider reference once the provider has a view"))?;
    let event_id = format!("evt_{v}_{facet:?}_{refs:?}");
    let body = wh::body(&event_id, facet, view, m.total, &reference, refs);
    for _ in 0..if twice { 2 } else { 1 } {
        delivery(fx, ingestor, m, id, (&event_id, facet, view, refs), &body).await?;
    }
    Ok(())
}

/// The invariants that hold after every step, whatever happened.
fn invariants(
    prev: Option<&PaymentIntent>,
    intent: &PaymentIntent,
    history: &[IntentEvent],
) -> Result<(), TestCaseError> {
    prop_assert!(intent.captured.minor() <= intent.authorized.minor(), "captured <= authorized: {:?}", intent);
    prop_assert!(intent.refunded.minor() <= intent.captured.minor(), "refunded <= captured: {:?}", intent);
    // Nothing is ever declined here: an intent whose outcome is unknown must never be reported as failed.
    prop_assert_ne!(intent.status, IntentStatus::Failed, "never failed: {:?}", intent);
    prop_assert_eq!(u64::try_from(history.len()).ok(), Some(intent.version), "version == history length");
    for (i, e) in history.iter().enumerate() {
        prop_assert_eq!(u64::try_from(i + 1).ok(), Some(e.sequence), "sequences 1..=n");
    }
    prop_assert_eq!(history.last().map(|e| e.status), Some(intent.status));
    if let Some(prev) = prev {
        prop_assert!(intent.authorized.minor() >= prev.authorized.minor(), "authorized never decreases");
        prop_assert!(intent.captured.minor() >= prev.captured.minor(), "captured never decreases");
        prop_assert!(intent.refunded.minor() >= prev.refunded.minor(), "refunded never decreases");
        prop_assert!(intent.version >= prev.version);
        if prev.status.is_terminal() {
            prop_assert_eq!(intent, prev, "terminal stays terminal");
        }
    }
    Ok(())
}

/// The intent's amounts never exceed the provider's, and the provider did exactly what the model asked of it.
async fn against_the_provider(fx: &Fx, m: &Model, intent: &PaymentIntent) -> Result<(), TestCaseError> {
    let Some(reference) = &m.reference else {
        return Ok(());
    };
    let view = fx.gateway.retrieve(reference).await.map_err(|e| fail(e.to_string()))?;
    prop_assert_eq!(
        (view.authorized.minor(), view.captured.minor(), view.refunded.minor()),
        (m.truth.authorized, m.truth.captured, m.truth.refunded),
        "the provider never did more (or less) than asked: no double capture or refund"
    );
    prop_assert!(
        intent.authorized.minor() <= view.authorized.minor()
            && intent.captured.minor() <= view.captured.minor()
            && intent.refunded.minor() <= view.refunded.minor(),
        "the intent never shows more than the provider: {:?} vs {:?}",
        intent,
        view
    );
    Ok(())
}

async fn scenario(total: i64, fault_first: Option<bool>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let fx = Fx::new();
    let id = id_for("auth");
    let start = Books { status: IntentStatus::RequiresAuthorization, authorized: 0, captured: 0, refunded: 0 };
    let mut m = Model {
        total,
        recorded: start,
        truth: start,
        pending: None,
        pending_cmd: None,
        settled: HashSet::new(),
        outcomes: HashMap::new(),
        faults: VecDeque::new(),
        calls: 0,
        views: Vec::new(),
        reference: None,
        delivered: HashSet::new(),
    };
    let ingestor = wh::ingestor(&fx);
    if let Some(f) = fault_first {
        fx.gateway.inject(if f { GatewayFault::TimeoutAfterProcessing } else { GatewayFault::Unavailable });
        m.faults.push_back(f);
    }
    // The first authorization stores the intent with the provider's answer; when nothing happened
    // (unavailable) nothing is stored, and the caller's retry with the same key authorizes.
    let mut keys: Vec<(String, Cmd)> = vec![("auth".to_owned(), Cmd::Authorize)];
    let mut first = run(&fx, &id, "auth", Cmd::Authorize, total).await;
    m.calls += 1;
    if m.faults.front() == Some(&false) {
        m.faults.pop_front();
        prop_assert_eq!(err_kind(&first), Some(ErrorKind::Unavailable));
        prop_assert_eq!(
            fx.payments.get(&tenant(), &id).await.err().map(|e| e.kind()),
            Some(ErrorKind::NotFound),
            "nothing is stored when nothing happened"
        );
        first = run(&fx, &id, "auth", Cmd::Authorize, total).await;
        m.calls += 1;
    }
    match m.faults.pop_front() {
        None => {
            prop_assert!(first.is_ok());
            m.recorded = start.after(total, Cmd::Authorize).map_err(|k| TestCaseError::fail(format!("{k}")))?;
            m.truth = m.recorded;
            m.outcomes.insert("auth".to_owned(), stored(&first));
        }
        Some(false) => prop_assert_eq!(err_kind(&first), Some(ErrorKind::Unavailable)),
        Some(true) => {
            prop_assert_eq!(err_kind(&first), Some(ErrorKind::OutcomeUnknown));
            m.truth = start.after(total, Cmd::Authorize).map_err(|k| TestCaseError::fail(format!("{k}")))?;
            m.pending = Some("auth".to_owned());
            m.pending_cmd = Some(Cmd::Authorize);
        }
    }
    observe(&fx, &mut m, &id).await?;
    let mut prev = fx.get(&id).await;
    invariants(None, &prev, &fx.history(&id).await)?;
    against_the_provider(&fx, &m, &prev).await?;

    for (i, s) in steps.into_iter().enumerate() {
        match s {
            Step::Do(cmd) => {
                let k = format!("k{i}");
                keys.push((k.clone(), cmd));
                operation(&fx, &mut m, &id, &k, cmd).await?;
            }
            Step::Replay(index) => {
                let (k, cmd) = keys[index.index(keys.len())].clone();
                operation(&fx, &mut m, &id, &k, cmd).await?;
            }
            Step::RetryLast => {
                let (k, cmd) = keys[keys.len() - 1].clone();
                operation(&fx, &mut m, &id, &k, cmd).await?;
            }
            Step::Fault(f) => {
                fx.gateway.inject(if f { GatewayFault::TimeoutAfterProcessing } else { GatewayFault::Unavailable });
                m.faults.push_back(f);
            }
            Step::Reconcile => reconcile(&fx, &mut m, &id).await?,
            Step::Webhook { view, facet, refs, twice } => {
                webhook(&fx, &ingestor, &mut m, &id, (view, facet, refs, twice)).await?;
            }
        }
        let intent = fx.get(&id).await;
        invariants(Some(&prev), &intent, &fx.history(&id).await)?;
        against_the_provider(&fx, &m, &intent).await?;
        if prev.status == IntentStatus::OutcomeUnknown && intent.status != IntentStatus::OutcomeUnknown {
            prop_assert_eq!(Books::of(&intent), m.truth, "a settled intent matches the provider");
        }
        if m.pending.is_some() {
            prop_assert_eq!(intent.status, IntentStatus::OutcomeUnknown);
            prop_assert_eq!(
                (intent.authorized.minor(), intent.captured.minor(), intent.refunded.minor()),
                (m.recorded.authorized, m.recorded.captured, m.recorded.refunded)
            );
        } else {
            prop_assert_eq!(Books::of(&intent), m.recorded);
        }
        prop_assert_eq!(fx.calls(), m.calls, "provider calls: only real ones, never a replay");
        prev = intent;
    }

    // Settle whatever is unknown; then the books equal the provider's.
    reconcile(&fx, &mut m, &id).await?;
    let intent = fx.get(&id).await;
    invariants(Some(&prev), &intent, &fx.history(&id).await)?;
    against_the_provider(&fx, &m, &intent).await?;
    prop_assert_eq!(Books::of(&intent), m.truth);
    if let Some(reference) = &intent.provider_reference {
        let view = fx.gateway.retrieve(reference).await.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(
            (view.authorized, view.captured, view.refunded),
            (intent.authorized, intent.captured, intent.refunded),
            "no double capture, nothing lost"
        );
    } else {
        prop_assert_eq!(intent.status, IntentStatus::RequiresAuthorization);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_keep_the_books_right(
        total in 1_000i64..=10_000,
        fault_first in proptest::option::weighted(0.3, any::<bool>()),
        steps in proptest::collection::vec(step(), 1..30),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
        runtime.block_on(scenario(total, fault_first, steps))?;
    }
}
