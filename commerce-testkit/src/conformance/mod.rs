//! Conformance suites: one `pub async fn` per behaviour of a port contract, each taking the port as a trait
//! object and a fixture, and returning [`Outcome`]. `run_all` picks the behaviours the adapter's declared
//! capabilities call for and returns a [`Report`] listing what passed, what was skipped (and why) and what
//! failed (and how).
//!
//! Run them against your own adapter from an ordinary test:
//!
//! ```no_run
//! # async fn demo() {
//! use commerce_testkit::conformance::{self, gateway::GatewayFixture};
//! use commerce_testkit::memory::MemoryGateway;
//! use commerce_ports::{Currency, TenderKind};
//!
//! let gateway = MemoryGateway::new(); // your adapter here
//! let report = conformance::gateway::run_all(&gateway, &GatewayFixture::new(Currency::EUR, TenderKind::Card)).await;
//! report.assert_passed();
//! # }
//! ```

pub mod gateway;
pub mod offline_queue;
pub mod stores;

use std::fmt;

/// A behaviour that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The behaviour (the suite function's name).
    pub behaviour: &'static str,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.behaviour, self.message)
    }
}

/// The outcome of one behaviour.
pub type Outcome = Result<(), Failure>;

/// What a suite run found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Behaviours that held.
    pub passed: Vec<&'static str>,
    /// Behaviours not run, with the reason (a capability the adapter does not declare).
    pub skipped: Vec<(&'static str, &'static str)>,
    /// Behaviours that failed.
    pub failed: Vec<Failure>,
}

impl Report {
    /// Records an outcome.
    pub fn record(&mut self, behaviour: &'static str, outcome: Outcome) {
        match outcome {
            Ok(()) => self.passed.push(behaviour),
            Err(f) => self.failed.push(f),
        }
    }

    /// Records a skipped behaviour.
    pub fn skip(&mut self, behaviour: &'static str, reason: &'static str) {
        self.skipped.push((behaviour, reason));
    }

    /// Appends another report.
    pub fn merge(&mut self, other: Report) {
        self.passed.extend(other.passed);
        self.skipped.extend(other.skipped);
        self.failed.extend(other.failed);
    }

    /// True when nothing failed and something ran.
    pub fn is_success(&self) -> bool {
        self.failed.is_empty() && !self.passed.is_empty()
    }

    /// Panics with every failure listed unless the run succeeded. For use in tests.
    ///
    /// # Panics
    /// When a behaviour failed or none ran.
    #[track_caller]
    pub fn assert_passed(&self) {
        assert!(self.is_success(), "conformance failed:\n{self}");
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} passed, {} failed, {} skipped", self.passed.len(), self.failed.len(), self.skipped.len())?;
        for failure in &self.failed {
            writeln!(f, "  FAILED {failure}")?;
        }
        for (behaviour, reason) in &self.skipped {
            writeln!(f, "  skipped {behaviour}: {reason}")?;
        }
        Ok(())
    }
}

/// Fails the behaviour with a message unless the condition holds.
macro_rules! ensure {
    ($behaviour:expr, $cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::conformance::Failure { behaviour: $behaviour, message: format!($($fmt)+) });
        }
    };
}
pub(crate) use ensure;

/// Unwraps a result or fails the behaviour, saying which step failed.
pub(crate) fn step<T, E: fmt::Display>(
    behaviour: &'static str,
    what: &str,
    result: Result<T, E>,
) -> Result<T, Failure> {
    result.map_err(|e| Failure { behaviour, message: format!("{what} failed: {e}") })
}
