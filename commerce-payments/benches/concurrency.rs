//! 1,000 concurrent `authorize` requests with one idempotency key through [`Payments`] (memory stores),
//! with a provider that takes 20 ms per authorization ([`SlowGateway`] around [`MemoryGateway`]).
//!
//! First one request with a fresh key is timed (median of a few). Then two rounds, each with its own key:
//!
//! 1. *first answer*: 1,000 tasks call `authorize` once each. The first claims the key and calls the
//!    provider; callers that arrive while it is in flight get `InProgress` at once, callers that arrive
//!    after it completed get the stored result. Timed until all 1,000 have an answer (of either kind).
//! 2. *until the result*: the same, but a caller that gets `InProgress` retries with the same key every
//!    2 ms until it gets the stored result. Timed until all 1,000 hold the intent.
//!
//! Checked in each round: exactly one provider call, and every successful answer is the same intent.
//! Targets: each round's wall time <= 3 x the single request's time.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use commerce_payments::{NewPayment, Payments};
use commerce_ports::payment::{
    AuthorizeRequest, CaptureRequest, GatewayCapabilities, IncrementRequest, ModificationResult, PaymentGateway,
    PaymentMethodRef, PaymentSnapshot, RefundRequest, TenderKind, TokenizeRequest, VoidRequest,
};
use commerce_ports::{ChannelId, Currency, ErrorKind, IdempotencyKey, Money, PaymentError, SystemClock, TenantId};
use commerce_testkit::memory::{MemoryGateway, memory_store_set};
use common::{Report, fmt_secs, median};

const CALLERS: usize = 1_000;
const PROVIDER_LATENCY: Duration = Duration::from_millis(20);
const RETRY_PAUSE: Duration = Duration::from_millis(2);

/// A [`MemoryGateway`] whose `authorize` takes [`PROVIDER_LATENCY`], like a call to a real provider.
#[derive(Debug)]
struct SlowGateway(MemoryGateway);

#[async_trait]
impl PaymentGateway for SlowGateway {
    fn capabilities(&self) -> GatewayCapabilities {
        self.0.capabilities()
    }
    async fn authorize(&self, request: AuthorizeRequest) -> Result<PaymentSnapshot, PaymentError> {
        tokio::time::sleep(PROVIDER_LATENCY).await;
        self.0.authorize(request).await
    }
    async fn capture(&self, request: CaptureRequest) -> Result<ModificationResult, PaymentError> {
        self.0.capture(request).await
    }
    async fn refund(&self, request: RefundRequest) -> Result<ModificationResult, PaymentError> {
        self.0.refund(request).await
    }
    async fn void(&self, request: VoidRequest) -> Result<ModificationResult, PaymentError> {
        self.0.void(request).await
    }
    async fn increment_authorization(&self, request: IncrementRequest) -> Result<PaymentSnapshot, PaymentError> {
        self.0.increment_authorization(request).await
    }
    async fn retrieve(&self, provider_reference: &str) -> Result<PaymentSnapshot, PaymentError> {
        self.0.retrieve(provider_reference).await
    }
    async fn tokenize(&self, request: TokenizeRequest) -> Result<PaymentMethodRef, PaymentError> {
        self.0.tokenize(request).await
    }
}

fn payment() -> NewPayment {
    NewPayment::new(
        TenantId::new("acme").expect("tenant"),
        ChannelId::new("web").expect("channel"),
        TenderKind::Card,
        Money::from_minor(4250, Currency::EUR),
        "pm_card_visa",
        "order-1",
    )
}

/// What one caller ended with.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    /// Answers with the intent (the caller that ran it, and callers given the stored result).
    ok: usize,
    /// `InProgress` answers (round 1: final answers; round 2: answers that were retried).
    in_progress: usize,
    /// Anything else.
    other: usize,
    /// Callers that got `InProgress` at least once.
    waited: usize,
}

/// Runs `CALLERS` concurrent authorizations with `key`; with `retry`, `InProgress` is retried until the
/// stored result comes. Returns the wall time, the tally, and the provider calls made.
async fn round(payments: &Payments, gateway: &Arc<SlowGateway>, key: &str, retry: bool) -> (Duration, Tally, u64) {
    let key = IdempotencyKey::new(key).expect("key");
    let calls_before = gateway.0.provider_calls();
    let start = Instant::now();
    let mut handles = Vec::with_capacity(CALLERS);
    for _ in 0..CALLERS {
        let (payments, gateway, key) = (payments.clone(), Arc::clone(gateway), key.clone());
        handles.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                match payments.authorize(&*gateway, "memory", payment(), &key).await {
                    Ok(intent) => {
                        tally.ok += 1;
                        return (tally, Some(intent.id));
                    }
                    Err(e) if e.kind() == ErrorKind::InProgress => {
                        tally.waited = 1;
                        tally.in_progress += 1;
                        if !retry {
                            return (tally, None);
                        }
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                    Err(_) => {
                        tally.other += 1;
                        return (tally, None);
                    }
                }
            }
        }));
    }
    let mut total = Tally::default();
    let mut ids = Vec::new();
    for handle in handles {
        let (tally, id) = handle.await.expect("caller task");
        total.ok += tally.ok;
        total.in_progress += tally.in_progress;
        total.other += tally.other;
        total.waited += tally.waited;
        ids.extend(id);
    }
    let elapsed = start.elapsed();
    ids.dedup();
    assert!(ids.len() <= 1, "callers got different intents: {ids:?}");
    (elapsed, total, gateway.0.provider_calls() - calls_before)
}

fn main() -> ExitCode {
    let mut report = Report::new("concurrency", "1,000 concurrent authorizations with one key, 20 ms provider");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let payments = Payments::from_stores(&memory_store_set(), Arc::new(SystemClock));
    let gateway = Arc::new(SlowGateway(MemoryGateway::new()));

    let (single, first, until) = rt.block_on(async {
        let mut singles = Vec::new();
        for i in 0..5 {
            let key = IdempotencyKey::new(format!("single-{i}")).expect("key");
            let start = Instant::now();
            payments.authorize(&*gateway, "memory", payment(), &key).await.expect("single authorize");
            singles.push(start.elapsed().as_secs_f64());
        }
        let single = median(&mut singles);
        let first = round(&payments, &gateway, "one-key-first-answer", false).await;
        let until = round(&payments, &gateway, "one-key-until-result", true).await;
        (single, first, until)
    });

    report.figure("provider latency injected into authorize", &fmt_secs(PROVIDER_LATENCY.as_secs_f64()));
    report.figure("single request, fresh key (median of 5)", &fmt_secs(single));
    for (name, (elapsed, tally, calls)) in [("first answer", first), ("until the result", until)] {
        report.figure(&format!("[{name}] callers ending with the intent"), &tally.ok.to_string());
        report.figure(
            &format!("[{name}]   of them without any InProgress first"),
            &(tally.ok - tally.ok.min(tally.waited)).to_string(),
        );
        report.figure(&format!("[{name}] callers that got InProgress (at least once)"), &tally.waited.to_string());
        report.figure(&format!("[{name}] InProgress answers in total"), &tally.in_progress.to_string());
        report.figure(&format!("[{name}] other errors"), &tally.other.to_string());
        report.equals(&format!("[{name}] provider calls"), calls, 1);
        let secs = elapsed.as_secs_f64();
        report.figure(&format!("[{name}] wall time, all {CALLERS} answered"), &fmt_secs(secs));
        let ratio = secs / single;
        report.at_most(&format!("[{name}] wall time / single request"), ratio, &format!("{ratio:.2}x"), 3.0, "3.00x");
    }
    assert_eq!(first.1.other + until.1.other, 0, "unexpected errors");
    assert_eq!(first.2, 1, "exactly one provider call (first answer)");
    assert_eq!(until.2, 1, "exactly one provider call (until the result)");
    report.finish()
}
