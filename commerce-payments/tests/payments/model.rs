//! Random sequences of operations, faults, replays and reconciliations against a simple model of what the
//! provider did and what the intent should show.

use std::collections::{HashMap, HashSet, VecDeque};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

use super::*;

#[derive(Debug, Clone, Copy)]
enum Cmd {
    Authorize,
    Capture { amount: Option<i64>, final_capture: bool },
    Refund(i64),
    Void,
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
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (proptest::option::weighted(0.8, 0i64..=12_000), any::<bool>())
            .prop_map(|(amount, final_capture)| Step::Do(Cmd::Capture { amount, final_capture })),
        3 => (0i64..=8_000).prop_map(|a| Step::Do(Cmd::Refund(a))),
        1 => Just(Step::Do(Cmd::Void)),
        3 => any::<Index>().prop_map(Step::Replay),
        3 => Just(Step::RetryLast),
        3 => any::<bool>().prop_map(Step::Fault),
        2 => Just(Step::Reconcile),
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
    /// Keys whose pending call a reconciliation settled; their retry returns the intent as it is.
    settled: HashSet<String>,
    /// Keys with a completed outcome.
    outcomes: HashMap<String, Stored>,
    faults: VecDeque<bool>,
    calls: u64,
}

async fn run(fx: &Fx, id: &IntentId, k: &str, cmd: Cmd, total: i64) -> Result<PaymentIntent, PaymentsError> {
    match cmd {
        Cmd::Authorize => fx.authorize(k, total).await,
        Cmd::Capture { amount, final_capture } => fx.capture(id, k, amount, final_capture).await,
        Cmd::Refund(a) => fx.refund(id, k, a).await,
        Cmd::Void => fx.void(id, k).await,
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
                }
            }
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
            m.recorded = m.truth;
            m.settled.insert(k);
        }
        None => prop_assert_eq!(r.as_ref().ok(), Some(&before), "nothing to reconcile"),
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

async fn scenario(total: i64, fault_first: Option<bool>, steps: Vec<Step>) -> Result<(), TestCaseError> {
    let fx = Fx::new();
    let id = id_for("auth");
    let start = Books { status: IntentStatus::RequiresAuthorization, authorized: 0, captured: 0, refunded: 0 };
    let mut m = Model {
        total,
        recorded: start,
        truth: start,
        pending: None,
        settled: HashSet::new(),
        outcomes: HashMap::new(),
        faults: VecDeque::new(),
        calls: 0,
    };
    if let Some(f) = fault_first {
        fx.gateway.inject(if f { GatewayFault::TimeoutAfterProcessing } else { GatewayFault::Unavailable });
        m.faults.push_back(f);
    }
    // The first authorization creates the intent even when it fails.
    let mut keys: Vec<(String, Cmd)> = vec![("auth".to_owned(), Cmd::Authorize)];
    let first = run(&fx, &id, "auth", Cmd::Authorize, total).await;
    m.calls += 1;
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
        }
    }
    let mut prev = fx.get(&id).await;
    invariants(None, &prev, &fx.history(&id).await)?;

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
        }
        let intent = fx.get(&id).await;
        invariants(Some(&prev), &intent, &fx.history(&id).await)?;
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
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

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
