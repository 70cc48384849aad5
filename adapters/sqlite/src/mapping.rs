//! How port values become SQLite values and back.
//!
//! - Times are `INTEGER` unix nanoseconds (UTC). They sort correctly in SQL, which RFC 3339 text with
//!   varying offsets and fractions would not; the range is 1677-09-21 to 2262-04-11.
//! - Money is an `INTEGER` count of minor units plus a `TEXT` ISO 4217 code.
//! - Counters and versions (`u64`, `u32`) are `INTEGER`; values above `i64::MAX` are refused, never wrapped.
//! - Enums are their serde names (`requires_authorization`, `card-present`), read back through serde, so a
//!   variant added to a port is stored without a change here.
//! - Documents (receipts, device lists) are JSON text; payloads and responses are `BLOB`s.
//!
//! Writing a value that cannot be stored is `InvalidRequest` naming the field; reading a value that does
//! not parse is `Unexpected` naming the table, the row's key and the column.

use std::fmt::Display;

use commerce_ports::{Currency, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::error::{bad_row, unstorable};

/// A time as unix nanoseconds.
pub(crate) fn time_to_sql(operation: &'static str, field: &str, at: OffsetDateTime) -> Result<i64, StoreError> {
    i64::try_from(at.unix_timestamp_nanos())
        .map_err(|_| unstorable(operation, field, format!("{at} is outside 1677-09-21..2262-04-11")))
}

/// A `u64` (version, sequence, checkpoint) as `INTEGER`.
pub(crate) fn u64_to_sql(operation: &'static str, field: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| unstorable(operation, field, format!("{value} is larger than {}", i64::MAX)))
}

/// A `u32` limit as a SQL `LIMIT`.
pub(crate) fn limit_to_sql(limit: u32) -> i64 {
    i64::from(limit)
}

/// An enum's serde name (`pending`, `outcome_unknown`).
pub(crate) fn enum_to_sql<T: Serialize + std::fmt::Debug>(
    operation: &'static str,
    field: &str,
    value: &T,
) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        Ok(other) => Err(unstorable(operation, field, format!("{value:?} has no plain name (serialized as {other})"))),
        Err(e) => Err(unstorable(operation, field, e)),
    }
}

/// A value as JSON text.
pub(crate) fn json_to_sql<T: Serialize>(operation: &'static str, field: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| unstorable(operation, field, e))
}

/// Where a row came from, for messages about values that do not parse.
#[derive(Debug)]
pub(crate) struct RowSource<'a> {
    /// The operation reading it.
    pub(crate) operation: &'static str,
    /// The table.
    pub(crate) table: &'static str,
    /// The row's key, described (`(tenant `t`, id `i`)`).
    pub(crate) key: &'a str,
}

impl RowSource<'_> {
    /// An `Unexpected` error about one column of this row.
    pub(crate) fn bad(&self, column: &str, problem: impl Display) -> StoreError {
        bad_row(self.operation, self.table, self.key, column, problem)
    }

    /// A text column parsed by `parse` (an id constructor, say).
    pub(crate) fn parse<T, E: Display>(
        &self,
        column: &str,
        value: String,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Result<T, StoreError> {
        let shown = value.clone();
        parse(value).map_err(|e| self.bad(column, format!("holds `{shown}`, which does not parse: {e}")))
    }

    /// A time column.
    pub(crate) fn time(&self, column: &str, nanos: i64) -> Result<OffsetDateTime, StoreError> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
            .map_err(|e| self.bad(column, format!("holds {nanos}, not a time in unix nanoseconds: {e}")))
    }

    /// A `u64` column.
    pub(crate) fn unsigned(&self, column: &str, value: i64) -> Result<u64, StoreError> {
        u64::try_from(value).map_err(|_| self.bad(column, format!("holds {value}, which is negative")))
    }

    /// A `u32` column.
    pub(crate) fn small_unsigned(&self, column: &str, value: i64) -> Result<u32, StoreError> {
        u32::try_from(value).map_err(|_| self.bad(column, format!("holds {value}, outside 0..={}", u32::MAX)))
    }

    /// A currency column.
    pub(crate) fn currency(&self, column: &str, code: &str) -> Result<Currency, StoreError> {
        Currency::from_code(code).map_err(|e| self.bad(column, format!("holds `{code}`, not a known currency: {e}")))
    }

    /// An enum stored by its serde name.
    pub(crate) fn enum_value<T: DeserializeOwned>(&self, column: &str, name: String) -> Result<T, StoreError> {
        let shown = name.clone();
        serde_json::from_value(serde_json::Value::String(name))
            .map_err(|e| self.bad(column, format!("holds `{shown}`, which is not a known value: {e}")))
    }

    /// A JSON text column.
    pub(crate) fn json<T: DeserializeOwned>(&self, column: &str, text: &str) -> Result<T, StoreError> {
        serde_json::from_str(text).map_err(|e| self.bad(column, format!("does not hold the expected JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commerce_ports::ErrorKind;
    use commerce_ports::TenderKind;
    use commerce_ports::stores::{ClaimStatus, IntentStatus};

    const SOURCE: RowSource<'static> = RowSource { operation: "get", table: "payment_intents", key: "(id `i`)" };

    #[test]
    fn times_round_trip_through_nanoseconds() {
        let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).ok();
        let at = at.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let stored = time_to_sql("create", "created_at", at);
        assert_eq!(stored.as_ref().ok().copied().map(|n| SOURCE.time("created_at", n).ok()), Some(Some(at)));
    }

    #[test]
    fn times_beyond_the_range_are_refused_naming_the_field() {
        let far = OffsetDateTime::UNIX_EPOCH + time::Duration::days(365 * 400);
        let e = time_to_sql("create", "updated_at", far).err();
        assert_eq!(e.as_ref().map(StoreError::kind), Some(ErrorKind::InvalidRequest));
        assert!(e.is_some_and(|e| e.message().contains("`updated_at`")));
    }

    #[test]
    fn enums_use_their_serde_names() {
        assert_eq!(enum_to_sql("x", "status", &IntentStatus::OutcomeUnknown).ok().as_deref(), Some("outcome_unknown"));
        assert_eq!(enum_to_sql("x", "tender", &TenderKind::CardPresent).ok().as_deref(), Some("card-present"));
        assert_eq!(SOURCE.enum_value::<ClaimStatus>("status", "verified".to_owned()).ok(), Some(ClaimStatus::Verified));
    }

    #[test]
    fn bad_values_name_table_row_and_column() {
        let e = SOURCE.enum_value::<IntentStatus>("status", "sideways".to_owned()).err();
        let message = e.as_ref().map(|e| e.message().to_owned()).unwrap_or_default();
        assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::Unexpected));
        assert!(message.contains("`payment_intents`") && message.contains("(id `i`)"), "{message}");
        assert!(message.contains("`status`") && message.contains("sideways"), "{message}");
        assert!(SOURCE.unsigned("version", -1).is_err());
        assert!(SOURCE.small_unsigned("attempts", i64::from(u32::MAX) + 1).is_err());
        assert!(SOURCE.currency("currency", "XXY").is_err());
    }
}
