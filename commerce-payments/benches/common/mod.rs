//! A tiny timing and reporting helper shared by the bench binaries (no criterion, to keep the build light).
//!
//! [`per_iter`] calibrates a batch size so one batch takes about [`BATCH`], warms up, then times
//! [`BATCHES`] batches and returns the median time per iteration. [`Report`] prints figures and targets in
//! one fixed format and decides the process's exit code.

#![allow(dead_code, unreachable_pub, reason = "each bench binary uses a different subset")]

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Wall time one measured batch aims for.
pub const BATCH: Duration = Duration::from_millis(40);
/// How many measured batches the median is taken over.
pub const BATCHES: usize = 7;
/// How long warm-up runs before measuring.
pub const WARMUP: Duration = Duration::from_millis(200);

/// The median of `values` (sorted in place).
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

/// How many iterations make a batch of about `target` wall time, doubling from 1. `run(n)` runs `n`
/// iterations and returns how long they took.
pub fn calibrate(target: Duration, run: &mut dyn FnMut(u64) -> Duration) -> u64 {
    let mut n = 1u64;
    loop {
        let took = run(n);
        if took >= target / 2 || n >= 1 << 30 {
            // Scale linearly to the target from the last measurement.
            let wanted = target.as_nanos() * u128::from(n) / took.as_nanos().max(1);
            return u64::try_from(wanted).unwrap_or(u64::MAX).clamp(1, 1 << 32);
        }
        n *= 2;
    }
}

/// Median seconds per iteration of `run`: a short first warm-up, calibration, warm-up for [`WARMUP`], then
/// [`BATCHES`] batches.
pub fn per_iter(run: &mut dyn FnMut(u64) -> Duration) -> f64 {
    timed_batch(WARMUP / 4, run);
    let n = calibrate(BATCH, run);
    let start = Instant::now();
    while start.elapsed() < WARMUP {
        run(n);
    }
    let mut samples: Vec<f64> = (0..BATCHES).map(|_| run(n).as_secs_f64() / n as f64).collect();
    median(&mut samples)
}

/// Runs `run` in growing chunks until at least `length` has passed; returns seconds per iteration. Suits
/// slow, I/O-bound iterations whose first calls may be far slower than the rest.
pub fn timed_batch(length: Duration, run: &mut dyn FnMut(u64) -> Duration) -> f64 {
    let (mut took, mut count, mut chunk) = (Duration::ZERO, 0u64, 1u64);
    while took < length {
        took += run(chunk);
        count += chunk;
        chunk = (chunk * 2).min(256);
    }
    took.as_secs_f64() / count as f64
}

/// Like [`per_iter`] for two competitors, with time-based batches of about `length` ([`timed_batch`]),
/// alternating the two so drift (other load, disk caches) hits both alike. One batch of each is a warm-up.
/// Returns `(a, b)` in median seconds per iteration.
pub fn per_iter_pair(
    length: Duration,
    batches: usize,
    a: &mut dyn FnMut(u64) -> Duration,
    b: &mut dyn FnMut(u64) -> Duration,
) -> (f64, f64) {
    timed_batch(length, a);
    timed_batch(length, b);
    let (mut sa, mut sb) = (Vec::with_capacity(batches), Vec::with_capacity(batches));
    for _ in 0..batches {
        sa.push(timed_batch(length, a));
        sb.push(timed_batch(length, b));
    }
    (median(&mut sa), median(&mut sb))
}

/// How many CPUs this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// The 1-minute load average, for judging how quiet the machine was (`?` where unavailable).
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// A duration in seconds, printed with a readable unit.
pub fn fmt_secs(s: f64) -> String {
    if s < 1e-6 {
        format!("{:.1} ns", s * 1e9)
    } else if s < 1e-3 {
        format!("{:.2} us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.3} s")
    }
}

/// A name no other run uses: `<prefix>_<pid>_<nanos>`.
pub fn unique_name(prefix: &str) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// Collects figures and target checks, prints them, and gives the exit code.
#[derive(Debug)]
pub struct Report {
    bench: &'static str,
    failed: Vec<String>,
}

impl Report {
    /// A report for the bench `bench`; prints its header.
    pub fn new(bench: &'static str, what: &str) -> Report {
        println!("== {bench}: {what} (load average {} at start, {} cores)", load_average(), cores());
        Report { bench, failed: Vec::new() }
    }

    /// A plain figure.
    pub fn figure(&self, label: &str, value: &str) {
        println!("  {label:<58} {value:>14}");
    }

    /// A note line.
    pub fn note(&self, text: &str) {
        println!("  - {text}");
    }

    /// A figure checked against an upper bound.
    pub fn at_most(&mut self, label: &str, value: f64, shown: &str, limit: f64, limit_shown: &str) {
        self.check(label, value <= limit, shown, &format!("<= {limit_shown}"));
    }

    /// A figure checked against a lower bound.
    pub fn at_least(&mut self, label: &str, value: f64, shown: &str, limit: f64, limit_shown: &str) {
        self.check(label, value >= limit, shown, &format!(">= {limit_shown}"));
    }

    /// A figure checked against an upper bound for information only: printed with its verdict, but it
    /// does not decide the exit code.
    pub fn info_at_most(&self, label: &str, value: f64, shown: &str, limit: f64, limit_shown: &str) {
        let verdict = if value <= limit { "PASS (info)" } else { "FAIL (info)" };
        println!("  {label:<58} {shown:>14}   target {:<12} {verdict}", format!("<= {limit_shown}"));
    }

    /// A count checked for an exact value.
    pub fn equals(&mut self, label: &str, value: u64, expected: u64) {
        self.check(label, value == expected, &value.to_string(), &format!("== {expected}"));
    }

    fn check(&mut self, label: &str, pass: bool, shown: &str, target: &str) {
        let verdict = if pass { "PASS" } else { "FAIL" };
        println!("  {label:<58} {shown:>14}   target {target:<12} {verdict}");
        if !pass {
            self.failed.push(label.to_owned());
        }
    }

    /// Prints the summary; the exit code is success when every target passed, failure otherwise. Return it
    /// from `main` so destructors (temporary files, schemas) still run.
    pub fn finish(self) -> ExitCode {
        println!("  (load average {} at the end)", load_average());
        if self.failed.is_empty() {
            println!("== {}: all targets PASS", self.bench);
            return ExitCode::SUCCESS;
        }
        println!("== {}: {} target(s) FAIL: {}", self.bench, self.failed.len(), self.failed.join("; "));
        ExitCode::FAILURE
    }
}

/// Authorizes and fully captures one new payment with fresh keys `auth-{tag}` and `cap-{tag}`; panics on
/// any failure (a benchmark of failing calls would measure nothing useful).
pub async fn authorize_capture(
    payments: &commerce_payments::Payments,
    gateway: &dyn commerce_ports::payment::PaymentGateway,
    tenant: &commerce_ports::TenantId,
    channel: &commerce_ports::ChannelId,
    tag: &str,
) {
    use commerce_ports::{Currency, IdempotencyKey, Money};
    let payment = commerce_payments::NewPayment::new(
        tenant.clone(),
        channel.clone(),
        commerce_ports::payment::TenderKind::Card,
        Money::from_minor(4250, Currency::EUR),
        "pm_card_visa",
        format!("order-{tag}"),
    );
    let auth_key = IdempotencyKey::new(format!("auth-{tag}")).expect("key");
    let intent = payments.authorize(gateway, "memory", payment, &auth_key).await.expect("authorize");
    let cap_key = IdempotencyKey::new(format!("cap-{tag}")).expect("key");
    let captured = payments.capture(gateway, tenant, &intent.id, None, true, &cap_key).await.expect("capture");
    assert_eq!(captured.status, commerce_ports::stores::IntentStatus::Captured);
}
