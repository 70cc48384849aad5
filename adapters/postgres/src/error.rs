//! How driver, pool and timeout failures become [`StoreError`]s.
//!
//! | failure                                             | kind                                      |
//! |-----------------------------------------------------|-------------------------------------------|
//! | `23505` unique_violation                            | `AlreadyExists`                           |
//! | `40001` serialization_failure, `40P01` deadlock, `55P03` lock_not_available | `Conflict` (retryable) |
//! | `40003` statement_completion_unknown                | `OutcomeUnknown`                          |
//! | class `08` connection, `53` resources, `57` operator intervention (incl. `57014` canceled) | `Unavailable` |
//! | class `28` authorization                            | `Authentication`                          |
//! | `3D000` no such database, `42501` privilege, `3F000`/`42P01`/`42703` schema objects missing | `Configuration` |
//! | class `22` data, other class `23` integrity         | `InvalidRequest`                          |
//! | any other server error                              | `Unexpected`                              |
//! | connection lost or no answer, nothing committed yet | `Unavailable`                             |
//! | connection lost or no answer after an autocommit write or a `COMMIT` was sent | `OutcomeUnknown`  |
//!
//! A server error always means the statement (and its transaction) did not take effect, so only failures
//! without a server answer can leave an outcome unknown. Messages name the operation's subject (table and
//! key) and never contain the connection string.

use std::fmt::Display;
use std::time::Duration;

use commerce_ports::{ErrorKind, StoreError};
use deadpool_postgres::{PoolError, TimeoutType};

/// Where in an operation a failure happened; decides whether a lost answer leaves the outcome unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading or preparing: nothing is written.
    Read,
    /// Inside an explicit transaction before `COMMIT` was sent: a failure rolls everything back.
    Uncommitted,
    /// A single-statement write in autocommit mode: once sent, it may have committed.
    Autocommit,
    /// The `COMMIT` of an explicit transaction.
    Commit,
}

impl Phase {
    fn may_have_committed(self) -> bool {
        matches!(self, Phase::Autocommit | Phase::Commit)
    }
}

/// The operation and the subject it concerns, for error messages.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub(crate) op: &'static str,
    subject: String,
    /// Set when an operation under this context ran out of time: its connection is then discarded rather
    /// than returned to the pool (see [`Lease`](crate::client::Lease)).
    timed_out: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Ctx {
    /// A context: `op` is the port method (`begin`, `update`), `subject` names what it works on
    /// (`idempotency key `k` of tenant `t``).
    pub(crate) fn new(op: &'static str, subject: impl Into<String>) -> Ctx {
        Ctx { op, subject: subject.into(), timed_out: std::sync::Arc::default() }
    }

    /// Marks that an operation under this context ran out of time.
    pub(crate) fn mark_timed_out(&self) {
        self.timed_out.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether an operation under this context ran out of time.
    pub(crate) fn has_timed_out(&self) -> bool {
        self.timed_out.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// An error of `kind` about the subject.
    pub(crate) fn err(&self, kind: ErrorKind, message: impl Display) -> StoreError {
        StoreError::new(kind, self.op, format!("{}: {message}", self.subject))
    }

    /// Maps a driver error of one step (`inserting into idempotency_records`).
    pub(crate) fn pg(&self, phase: Phase, step: &str, e: tokio_postgres::Error) -> StoreError {
        let (kind, note) = classify(phase, &e);
        self.err(kind, format!("{step}: {}{note}", describe(&e))).with_source(e)
    }

    /// Maps a failure to get a pooled connection (nothing was sent).
    pub(crate) fn pool(&self, e: PoolError) -> StoreError {
        match e {
            PoolError::Backend(e) => self.pg(Phase::Read, "connecting", e),
            PoolError::Timeout(TimeoutType::Wait) => {
                self.err(ErrorKind::Unavailable, "no pooled connection became free within the connect timeout")
            }
            PoolError::Timeout(TimeoutType::Create) => {
                self.err(ErrorKind::Unavailable, "connecting to the server took longer than the connect timeout")
            }
            PoolError::Timeout(TimeoutType::Recycle) => {
                self.err(ErrorKind::Unavailable, "checking a pooled connection took longer than the connect timeout")
            }
            PoolError::Closed => self.err(ErrorKind::Unavailable, "the connection pool is closed"),
            PoolError::NoRuntimeSpecified => {
                self.err(ErrorKind::Configuration, "the connection pool has no async runtime")
            }
            PoolError::PostCreateHook(e) => self.err(ErrorKind::Unavailable, format!("setting up a connection: {e}")),
        }
    }

    /// Maps running out of `operation_timeout` in `phase`.
    pub(crate) fn timeout(&self, phase: Phase, after: Duration) -> StoreError {
        if phase.may_have_committed() {
            self.err(
                ErrorKind::OutcomeUnknown,
                format!("no answer within {after:?} after the write was sent; it may or may not have been applied"),
            )
        } else {
            self.err(ErrorKind::Unavailable, format!("no answer within {after:?}; nothing was written"))
        }
    }
}

/// The kind of a driver error, and a note for the message.
fn classify(phase: Phase, e: &tokio_postgres::Error) -> (ErrorKind, &'static str) {
    let Some(db) = e.as_db_error() else {
        let text = e.to_string();
        if text.starts_with("error serializing parameter") || text.starts_with("expected ") {
            // Refused by the driver before anything was sent.
            return (ErrorKind::InvalidRequest, "");
        }
        return match phase {
            Phase::Autocommit | Phase::Commit => {
                (ErrorKind::OutcomeUnknown, " (the answer was lost; the write may or may not have been applied)")
            }
            Phase::Uncommitted => (ErrorKind::Unavailable, " (the transaction was rolled back; nothing was written)"),
            Phase::Read => (ErrorKind::Unavailable, ""),
        };
    };
    let code = db.code().code();
    let kind = match code {
        "23505" => ErrorKind::AlreadyExists,
        "40001" | "40P01" | "55P03" => ErrorKind::Conflict,
        "40003" => ErrorKind::OutcomeUnknown,
        "3D000" | "42501" | "3F000" | "42P01" | "42703" => ErrorKind::Configuration,
        _ => match code.get(..2) {
            Some("08" | "53" | "57") => ErrorKind::Unavailable,
            Some("28") => ErrorKind::Authentication,
            Some("22" | "23") => ErrorKind::InvalidRequest,
            _ => ErrorKind::Unexpected,
        },
    };
    let note = match kind {
        ErrorKind::Conflict => " (a concurrent writer won; retry)",
        ErrorKind::Configuration if code != "3D000" && code != "42501" => {
            " (is the schema migrated, or did a newer version of commerce-postgres change it?)"
        }
        _ => "",
    };
    (kind, note)
}

/// A driver error as text: the server's message, code, detail and constraint, or the error and its causes.
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(": ");
            text.push_str(detail);
        }
        if let Some(constraint) = db.constraint() {
            text.push_str(&format!(" [constraint {constraint}]"));
        }
        return text;
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The constraint a unique violation hit, if the error is one.
pub(crate) fn violated_constraint(e: &tokio_postgres::Error) -> Option<&str> {
    e.as_db_error().filter(|db| db.code().code() == "23505").and_then(|db| db.constraint())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_answer_is_unknown_only_once_a_write_may_have_committed() {
        let ctx = Ctx::new("record", "webhook `evt_1` of `stripe`");
        let read = ctx.timeout(Phase::Read, Duration::from_secs(1));
        assert_eq!(read.kind(), ErrorKind::Unavailable);
        assert_eq!(ctx.timeout(Phase::Uncommitted, Duration::from_secs(1)).kind(), ErrorKind::Unavailable);
        let write = ctx.timeout(Phase::Autocommit, Duration::from_secs(1));
        assert_eq!(write.kind(), ErrorKind::OutcomeUnknown);
        assert_eq!(ctx.timeout(Phase::Commit, Duration::from_secs(1)).kind(), ErrorKind::OutcomeUnknown);
        assert!(write.message().starts_with("webhook `evt_1` of `stripe`: "), "{write}");
        assert_eq!(write.operation(), "record");
    }

    #[test]
    fn pool_failures_are_unavailable() {
        let ctx = Ctx::new("get", "x");
        assert_eq!(ctx.pool(PoolError::Timeout(TimeoutType::Wait)).kind(), ErrorKind::Unavailable);
        assert_eq!(ctx.pool(PoolError::Closed).kind(), ErrorKind::Unavailable);
        assert_eq!(ctx.pool(PoolError::NoRuntimeSpecified).kind(), ErrorKind::Configuration);
    }
}
