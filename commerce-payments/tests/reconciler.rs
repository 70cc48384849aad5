//! The reconciler's pass ([`Payments::reconcile_unknown`]) over the in-memory stores, gateway and terminal.

mod common;

use common::{card, eur, key, tenant};
use std::sync::Arc;

use commerce_payments::{Payments, ReconcileReport, TerminalGateway, intent_id_for};
use commerce_ports::payment::{PaymentGateway, TenderKind};
use commerce_ports::stores::{IntentStatus, PaymentIntent};
use commerce_ports::{ErrorKind, IntentId, ManualClock, RegisterId};
use commerce_testkit::memory::{GatewayFault, MemoryGateway, MemoryTerminal, memory_store_set};
use time::macros::datetime;

const TERMINAL: &str = "V400m-1";

struct Fx {
    payments: Payments,
    clock: Arc<ManualClock>,
    gateway: Arc<MemoryGateway>,
    terminal: Arc<MemoryTerminal>,
    till: Arc<TerminalGateway>,
}

impl Fx {
    fn new() -> Fx {
        let clock = Arc::new(ManualClock::new(datetime!(2026-11-24 09:00 UTC)));
        let payments = Payments::from_stores(&memory_store_set(), clock.clone());
        let terminal = Arc::new(MemoryTerminal::new());
        let till =
            Arc::new(TerminalGateway::new(terminal.clone(), TERMINAL, RegisterId::new("till-1").expect("register")));
        Fx { payments, clock, gateway: Arc::new(MemoryGateway::new()), terminal, till }
    }

    /// The host's binding: card-present intents through the till's terminal, `memory` ones through the gateway,
    /// nothing else.
    fn gateway_for(&self) -> impl Fn(&PaymentIntent) -> Option<Arc<dyn PaymentGateway>> + Send + Sync + use<> {
        let (gateway, till) = (self.gateway.clone(), self.till.clone());
        move |intent: &PaymentIntent| -> Option<Arc<dyn PaymentGateway>> {
            match (intent.provider.as_str(), intent.tender) {
                ("memory", TenderKind::CardPresent) => Some(till.clone()),
                ("memory", _) => Some(gateway.clone()),
                _ => None,
            }
        }
    }

    /// An authorization whose outcome is unknown (the provider processed it), a minute after the previous.
    async fn unknown_authorization(&self, k: &str, minor: i64) -> IntentId {
        self.clock.advance(time::Duration::minutes(1));
        self.gateway.inject(GatewayFault::TimeoutAfterProcessing);
        let error = self.payments.authorize(&*self.gateway, "memory", card(minor, k), &key(k)).await;
        assert_eq!(error.expect_err("unknown").kind(), ErrorKind::OutcomeUnknown);
        intent_id_for(&tenant(), &key(k)).expect("id")
    }

    async fn status(&self, id: &IntentId) -> IntentStatus {
        self.payments.get(&tenant(), id).await.expect("intent").status
    }

    async fn pass(&self, limit: u32, after: Option<commerce_ports::stores::IntentCursor>) -> ReconcileReport {
        self.payments.reconcile_unknown(&tenant(), self.gateway_for(), limit, after).await.expect("pass")
    }
}

fn ids(intents: &[PaymentIntent]) -> Vec<IntentId> {
    intents.iter().map(|i| i.id.clone()).collect()
}

fn firsts<E>(pairs: &[(IntentId, E)]) -> Vec<IntentId> {
    pairs.iter().map(|(id, _)| id.clone()).collect()
}

#[tokio::test]
async fn a_pass_settles_every_unknown_outcome_from_the_provider_once() {
    let fx = Fx::new();
    let a = fx.unknown_authorization("a", 1_000).await;
    let b = fx.unknown_authorization("b", 2_000).await;
    // A capture whose outcome is unknown, on an authorized intent.
    fx.clock.advance(time::Duration::minutes(1));
    let c = fx.payments.authorize(&*fx.gateway, "memory", card(3_000, "c"), &key("c")).await.expect("c").id;
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let capture = fx.payments.capture(&*fx.gateway, &tenant(), &c, None, true, &key("c-cap")).await;
    assert_eq!(capture.expect_err("unknown").kind(), ErrorKind::OutcomeUnknown);
    // An intent that is not unknown is not touched.
    let d = fx.payments.authorize(&*fx.gateway, "memory", card(4_000, "d"), &key("d")).await.expect("d").id;
    let calls = fx.gateway.provider_calls();

    let report = fx.pass(10, None).await;
    assert_eq!(report.examined, 3);
    assert_eq!(ids(&report.settled), vec![a.clone(), b.clone(), c.clone()], "oldest first");
    assert!(report.all_settled() && report.next.is_none(), "{report:?}");
    assert_eq!(
        [fx.status(&a).await, fx.status(&b).await, fx.status(&c).await, fx.status(&d).await],
        [IntentStatus::Authorized, IntentStatus::Authorized, IntentStatus::Captured, IntentStatus::Authorized]
    );
    let captured = fx.payments.get(&tenant(), &c).await.expect("c").captured;
    assert_eq!(captured, eur(3_000), "captured once");
    assert_eq!(fx.gateway.provider_calls(), calls, "re-sent authorizations were replays; nothing acted twice");
    // Nothing is left: the next pass examines nothing.
    let again = fx.pass(10, None).await;
    assert_eq!((again.examined, again.settled.len()), (0, 0));
}

#[tokio::test]
async fn what_cannot_be_settled_is_reported_and_passes_still_reach_the_rest() {
    let fx = Fx::new();
    // The oldest: a provider the host binds no gateway for.
    fx.clock.advance(time::Duration::minutes(1));
    fx.gateway.inject(GatewayFault::TimeoutAfterProcessing);
    let other = fx.payments.authorize(&*fx.gateway, "legacy-psp", card(500, "o"), &key("o")).await;
    assert_eq!(other.expect_err("unknown").kind(), ErrorKind::OutcomeUnknown);
    let o = intent_id_for(&tenant(), &key("o")).expect("id");
    let a = fx.unknown_authorization("a", 1_000).await;
    let b = fx.unknown_authorization("b", 2_000).await;

    // One at a time, each pass continuing where the last stopped.
    let first = fx.pass(1, None).await;
    assert_eq!((first.examined, firsts(&first.needs_operator)), (1, vec![o.clone()]));
    let (_, error) = &first.needs_operator[0];
    assert_eq!(error.kind(), ErrorKind::Configuration);
    assert!(error.message().contains("legacy-psp") && error.message().contains("reconcile_from"), "{error}");
    // The provider is down for the next one: it stays unknown, to be tried again.
    let down = Arc::new(MemoryGateway::new());
    down.inject(GatewayFault::Unavailable);
    let to_down = move |_: &PaymentIntent| -> Option<Arc<dyn PaymentGateway>> { Some(down.clone()) };
    let second = fx.payments.reconcile_unknown(&tenant(), to_down, 1, first.next.clone()).await.expect("pass");
    assert_eq!(firsts(&second.retry_later), vec![a.clone()]);
    assert_eq!(second.retry_later[0].1.kind(), ErrorKind::Unavailable);
    assert_eq!(fx.status(&a).await, IntentStatus::OutcomeUnknown);
    let third = fx.pass(1, second.next.clone()).await;
    assert_eq!(ids(&third.settled), vec![b.clone()]);
    // The end of the listing: the next pass starts from the oldest again and settles what it now can.
    let fourth = fx.pass(1, third.next.clone()).await;
    assert_eq!((fourth.examined, fourth.next.clone()), (0, None));
    let fifth = fx.pass(10, None).await;
    assert_eq!((firsts(&fifth.needs_operator), ids(&fifth.settled)), (vec![o.clone()], vec![a.clone()]));
    assert_eq!(fifth.next, None);
    assert!(!fifth.all_settled());
    // A limit of zero examines nothing and keeps the cursor.
    let none = fx.pass(0, third.next.clone()).await;
    assert_eq!((none.examined, none.next), (0, third.next));
}

#[tokio::test]
async fn card_present_sales_are_looked_up_at_the_terminal_and_their_refunds_need_an_operator() {
    let fx = Fx::new();
    let sale = |minor: i64, reference: &str| common::card_present(minor, TERMINAL, reference);
    // A sale whose answer was lost after the card was charged.
    fx.terminal.lose_pay_answers(1);
    let lost = fx.payments.authorize(&*fx.till, "memory", sale(4_890, "S-1"), &key("S-1:pay")).await;
    assert_eq!(lost.expect_err("unknown").kind(), ErrorKind::OutcomeUnknown);
    let s1 = intent_id_for(&tenant(), &key("S-1:pay")).expect("id");
    // A sale refunded at the terminal, whose refund answer was lost.
    fx.clock.advance(time::Duration::minutes(1));
    let s2 = fx.payments.authorize(&*fx.till, "memory", sale(1_000, "S-2"), &key("S-2:pay")).await.expect("sold").id;
    fx.terminal.lose_refund_answers(1);
    let refund = fx.payments.refund(&*fx.till, &tenant(), &s2, eur(1_000), &key("S-2:ref")).await;
    assert_eq!(refund.expect_err("unknown").kind(), ErrorKind::OutcomeUnknown);

    let report = fx.pass(10, None).await;
    assert_eq!(ids(&report.settled), vec![s1.clone()]);
    assert_eq!(fx.status(&s1).await, IntentStatus::Captured);
    assert_eq!(fx.terminal.pay_calls(), 2, "the lost sale was found at the terminal, not paid again");
    assert_eq!(firsts(&report.needs_operator), vec![s2.clone()]);
    assert_eq!(report.needs_operator[0].1.kind(), ErrorKind::Unsupported, "{:?}", report.needs_operator[0].1);
    assert_eq!(fx.terminal.refund_calls(), 1, "the refund was not sent again");
}

#[tokio::test]
async fn a_gateway_that_cannot_take_the_request_fails_nothing() {
    let fx = Fx::new();
    let a = fx.unknown_authorization("a", 1_000).await;
    // Bound by mistake to the till: a terminal takes no card-not-present payments and says `Unsupported`.
    let till = fx.till.clone();
    let wrong = move |_: &PaymentIntent| -> Option<Arc<dyn PaymentGateway>> { Some(till.clone()) };
    let report = fx.payments.reconcile_unknown(&tenant(), wrong, 10, None).await.expect("pass");
    assert_eq!(firsts(&report.needs_operator), vec![a.clone()]);
    assert_eq!(report.needs_operator[0].1.kind(), ErrorKind::Unsupported);
    assert_eq!(fx.status(&a).await, IntentStatus::OutcomeUnknown, "not failed: the card may be charged");
    let direct = fx.payments.reconcile(&*fx.till, &tenant(), &a).await.expect_err("refused");
    assert_eq!(direct.kind(), ErrorKind::Unsupported);
    assert_eq!(fx.status(&a).await, IntentStatus::OutcomeUnknown);
    // The right gateway settles it.
    assert_eq!(ids(&fx.pass(10, None).await.settled), vec![a]);
}
