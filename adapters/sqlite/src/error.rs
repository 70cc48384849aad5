//! Mapping of SQLite failures onto [`StoreError`] kinds.
//!
//! | SQLite                                   | kind            | retry      |
//! |------------------------------------------|-----------------|------------|
//! | `SQLITE_BUSY`, `SQLITE_LOCKED`           | `Unavailable`   | retryable  |
//! | `SQLITE_IOERR`, `SQLITE_FULL`, interrupt | `Unavailable`   | retryable  |
//! | unique / primary key constraint          | `AlreadyExists` | permanent  |
//! | other constraints (check, foreign key)   | `InvalidRequest`| permanent  |
//! | `SQLITE_CANTOPEN`, `SQLITE_NOTADB`, ...  | `Configuration` | permanent  |
//! | `SQLITE_CORRUPT` and everything else     | `Unexpected`    | permanent  |
//!
//! Operations that the contract gives another meaning to (a unique key that means "stale version", say)
//! check affected rows or catch the constraint themselves and report the contract's kind.

use std::fmt::Display;

use commerce_ports::{ErrorKind, StoreError};
use rusqlite::ErrorCode;
use rusqlite::ffi;

/// The [`ErrorKind`] a SQLite failure maps to.
pub(crate) fn kind_of(error: &rusqlite::Error) -> ErrorKind {
    let rusqlite::Error::SqliteFailure(failure, _) = error else {
        // Conversion failures, wrong column types, misuse of the API: a bug or bad stored data.
        return ErrorKind::Unexpected;
    };
    match failure.code {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => ErrorKind::Unavailable,
        ErrorCode::SystemIoFailure
        | ErrorCode::DiskFull
        | ErrorCode::OperationInterrupted
        | ErrorCode::OutOfMemory
        | ErrorCode::FileLockingProtocolFailed => ErrorKind::Unavailable,
        ErrorCode::ConstraintViolation => {
            if is_unique_violation(error) {
                ErrorKind::AlreadyExists
            } else {
                ErrorKind::InvalidRequest
            }
        }
        ErrorCode::CannotOpen
        | ErrorCode::NotADatabase
        | ErrorCode::ReadOnly
        | ErrorCode::PermissionDenied
        | ErrorCode::NoLargeFileSupport => ErrorKind::Configuration,
        _ => ErrorKind::Unexpected,
    }
}

/// True when the error is a violated unique or primary key constraint.
pub(crate) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(failure, _)
            if failure.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                || failure.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// A [`StoreError`] for a failed SQLite call: the mapped kind, the operation, what was being done, and the
/// SQLite error as the source.
pub(crate) fn sql_error(operation: &'static str, what: impl Display, error: rusqlite::Error) -> StoreError {
    let kind = kind_of(&error);
    let hint = match kind {
        ErrorKind::Unavailable if is_busy(&error) => {
            " (another connection held the write lock longer than busy_timeout; retry)"
        }
        ErrorKind::Unexpected if is_corrupt(&error) => " (the database file is damaged; restore it from a backup)",
        _ => "",
    };
    StoreError::new(kind, operation, format!("{what}: {error}{hint}")).with_source(error)
}

/// True for `SQLITE_BUSY` and `SQLITE_LOCKED` (and their extended codes).
pub(crate) fn is_busy(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn is_corrupt(error: &rusqlite::Error) -> bool {
    matches!(error.sqlite_error_code(), Some(ErrorCode::DatabaseCorrupt))
}

/// Attaches the operation and what was being done to a SQLite result.
pub(crate) trait SqlContext<T> {
    /// Maps the error with [`sql_error`]; `what` is only evaluated on failure.
    fn context<D: Display>(self, operation: &'static str, what: impl FnOnce() -> D) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn context<D: Display>(self, operation: &'static str, what: impl FnOnce() -> D) -> Result<T, StoreError> {
        self.map_err(|e| sql_error(operation, what(), e))
    }
}

/// A stored row that does not parse: `Unexpected`, naming the table, the row's key and the column.
pub(crate) fn bad_row(
    operation: &'static str,
    table: &str,
    key: &str,
    column: &str,
    problem: impl Display,
) -> StoreError {
    StoreError::new(
        ErrorKind::Unexpected,
        operation,
        format!("table `{table}`, row {key}: column `{column}` {problem}"),
    )
}

/// A value the caller passed that cannot be stored: `InvalidRequest`, naming the field.
pub(crate) fn unstorable(operation: &'static str, field: &str, problem: impl Display) -> StoreError {
    StoreError::invalid(operation, format!("`{field}` cannot be stored: {problem}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use commerce_ports::RetryClass;

    fn failure(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    #[test]
    fn busy_and_locked_are_retryable_unavailable() {
        for code in [ffi::SQLITE_BUSY, ffi::SQLITE_LOCKED, ffi::SQLITE_BUSY_SNAPSHOT] {
            let e = sql_error("begin", "inserting", failure(code));
            assert_eq!(e.kind(), ErrorKind::Unavailable, "code {code}");
            assert_eq!(e.retry(), RetryClass::Retryable);
            assert!(e.message().contains("busy_timeout"), "{}", e.message());
        }
    }

    #[test]
    fn constraints_map_by_their_extended_code() {
        assert_eq!(kind_of(&failure(ffi::SQLITE_CONSTRAINT_UNIQUE)), ErrorKind::AlreadyExists);
        assert_eq!(kind_of(&failure(ffi::SQLITE_CONSTRAINT_PRIMARYKEY)), ErrorKind::AlreadyExists);
        assert_eq!(kind_of(&failure(ffi::SQLITE_CONSTRAINT_CHECK)), ErrorKind::InvalidRequest);
        assert_eq!(kind_of(&failure(ffi::SQLITE_CONSTRAINT_FOREIGNKEY)), ErrorKind::InvalidRequest);
    }

    #[test]
    fn corruption_is_unexpected_and_says_so() {
        let e = sql_error("get", "reading table `pairings`", failure(ffi::SQLITE_CORRUPT));
        assert_eq!(e.kind(), ErrorKind::Unexpected);
        assert_eq!(e.operation(), "get");
        assert!(e.message().starts_with("reading table `pairings`"), "{}", e.message());
        assert!(e.message().contains("damaged"), "{}", e.message());
    }

    #[test]
    fn opening_problems_are_configuration() {
        assert_eq!(kind_of(&failure(ffi::SQLITE_CANTOPEN)), ErrorKind::Configuration);
        assert_eq!(kind_of(&failure(ffi::SQLITE_NOTADB)), ErrorKind::Configuration);
        assert_eq!(kind_of(&rusqlite::Error::QueryReturnedNoRows), ErrorKind::Unexpected);
    }
}
