//! Authorize + capture through [`Payments`] on the in-memory stores with an instant gateway
//! ([`MemoryGateway`]), on a current-thread tokio runtime, with fresh idempotency keys every iteration.
//!
//! One iteration is an authorization followed by a full capture of a new payment; the figure per
//! operation is the pair's time divided by two. Target: <= 10 us per operation.

mod common;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use commerce_payments::{NewPayment, Payments};
use commerce_ports::payment::TenderKind;
use commerce_ports::stores::IntentStatus;
use commerce_ports::{ChannelId, Currency, IdempotencyKey, Money, SystemClock, TenantId};
use commerce_testkit::memory::{MemoryGateway, memory_store_set};
use common::{Report, fmt_secs, per_iter};

fn main() -> ExitCode {
    let mut report = Report::new("domain", "authorize + capture through Payments, memory stores, MemoryGateway");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let stores = memory_store_set();
    let payments = Payments::from_stores(&stores, Arc::new(SystemClock));
    let gateway = MemoryGateway::new();
    let tenant = TenantId::new("acme").expect("tenant");
    let channel = ChannelId::new("web").expect("channel");
    let mut next = 0u64;

    let mut run = |n: u64| -> Duration {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                next += 1;
                let payment = NewPayment::new(
                    tenant.clone(),
                    channel.clone(),
                    TenderKind::Card,
                    Money::from_minor(4250, Currency::EUR),
                    "pm_card_visa",
                    format!("order-{next}"),
                );
                let auth_key = IdempotencyKey::new(format!("auth-{next}")).expect("key");
                let intent = payments.authorize(&gateway, "memory", payment, &auth_key).await.expect("authorize");
                let cap_key = IdempotencyKey::new(format!("cap-{next}")).expect("key");
                let captured =
                    payments.capture(&gateway, &tenant, &intent.id, None, true, &cap_key).await.expect("capture");
                assert_eq!(captured.status, IntentStatus::Captured);
            }
            start.elapsed()
        })
    };
    let pair = per_iter(&mut run);
    let per_op = pair / 2.0;
    report.figure("authorize + capture pair", &fmt_secs(pair));
    report.figure("operations per second (one thread)", &format!("{:.0}", 1.0 / per_op));
    report.at_most("per operation (pair / 2)", per_op, &fmt_secs(per_op), 10e-6, "10 us");
    report.note(&format!("{next} payments authorized and captured in this run (warm-up and calibration included)"));
    report.finish()
}
