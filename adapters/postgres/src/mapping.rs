//! Port types <-> columns: unsigned counters as `BIGINT`, money as minor units plus a currency code, enums
//! by their serde names, identifiers re-validated on the way out. A row that does not parse is an
//! `Unexpected` error naming the table, the row's key and the column; it never panics.

use std::fmt::Display;

use commerce_ports::{Currency, ErrorKind, IdError, Money, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

/// Reads the columns of one row of `table`, naming the row by its key columns when something is wrong.
pub(crate) struct RowReader<'a> {
    op: &'static str,
    row: &'a Row,
    table: &'static str,
    key_columns: &'static [&'static str],
}

impl<'a> RowReader<'a> {
    /// A reader of `row`, which comes from `table` and is identified by `key_columns`.
    pub(crate) fn new(
        op: &'static str,
        row: &'a Row,
        table: &'static str,
        key_columns: &'static [&'static str],
    ) -> RowReader<'a> {
        RowReader { op, row, table, key_columns }
    }

    /// The error for a column that does not parse.
    pub(crate) fn bad(&self, column: &str, problem: impl Display) -> StoreError {
        let key: Vec<String> = self
            .key_columns
            .iter()
            .map(|c| match self.row.try_get::<_, Option<String>>(*c) {
                Ok(Some(v)) => format!("{c} `{v}`"),
                _ => format!("{c} ?"),
            })
            .collect();
        StoreError::new(
            ErrorKind::Unexpected,
            self.op,
            format!("row of `{}` ({}): column `{column}` {problem}", self.table, key.join(", ")),
        )
    }

    /// A column as its driver type.
    pub(crate) fn get<T: FromSql<'a>>(&self, column: &str) -> Result<T, StoreError> {
        self.row.try_get(column).map_err(|e| {
            let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
            self.bad(column, format!("cannot be read ({e}{cause})"))
        })
    }

    /// A validated identifier.
    pub(crate) fn id<T>(
        &self,
        column: &str,
        parse: impl FnOnce(String) -> Result<T, IdError>,
    ) -> Result<T, StoreError> {
        let text: String = self.get(column)?;
        parse(text).map_err(|e| self.bad(column, format!("is not a valid identifier: {e}")))
    }

    /// A `TEXT[]` of validated identifiers.
    pub(crate) fn ids<T>(
        &self,
        column: &str,
        parse: impl Fn(String) -> Result<T, IdError>,
    ) -> Result<Vec<T>, StoreError> {
        let texts: Vec<String> = self.get(column)?;
        texts
            .into_iter()
            .map(|t| parse(t).map_err(|e| self.bad(column, format!("holds an invalid identifier: {e}"))))
            .collect()
    }

    /// A non-negative `BIGINT` as `u64`.
    pub(crate) fn u64(&self, column: &str) -> Result<u64, StoreError> {
        let value: i64 = self.get(column)?;
        u64::try_from(value).map_err(|_| self.bad(column, format!("is {value}, below zero")))
    }

    /// A `BIGINT` that must fit a `u32`.
    pub(crate) fn u32(&self, column: &str) -> Result<u32, StoreError> {
        let value: i64 = self.get(column)?;
        u32::try_from(value).map_err(|_| self.bad(column, format!("is {value}, outside 0..=4294967295")))
    }

    /// A currency code.
    pub(crate) fn currency(&self, column: &str) -> Result<Currency, StoreError> {
        let code: String = self.get(column)?;
        Currency::from_code(&code).map_err(|e| self.bad(column, format!("is not a known currency: {e}")))
    }

    /// Money from a minor-units column and a currency.
    pub(crate) fn money(&self, minor_column: &str, currency: Currency) -> Result<Money, StoreError> {
        Ok(Money::from_minor(self.get(minor_column)?, currency))
    }

    /// Optional money from a minor-units column and a currency column, both set or both null.
    pub(crate) fn optional_money(
        &self,
        minor_column: &str,
        currency_column: &str,
    ) -> Result<Option<Money>, StoreError> {
        let minor: Option<i64> = self.get(minor_column)?;
        let code: Option<String> = self.get(currency_column)?;
        match (minor, code) {
            (None, None) => Ok(None),
            (Some(minor), Some(_)) => Ok(Some(Money::from_minor(minor, self.currency(currency_column)?))),
            _ => Err(self.bad(minor_column, format!("and `{currency_column}` must both be set or both be null"))),
        }
    }

    /// An enum stored by its serde name (`requires_authorization`, `card-present`).
    pub(crate) fn name<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        let text: String = self.get(column)?;
        serde_json::from_value(serde_json::Value::String(text.clone()))
            .map_err(|_| self.bad(column, format!("holds `{text}`, which this version does not know")))
    }

    /// A JSON document.
    pub(crate) fn json<T: DeserializeOwned>(&self, column: &str) -> Result<T, StoreError> {
        let value: serde_json::Value = self.get(column)?;
        serde_json::from_value(value).map_err(|e| self.bad(column, format!("is not a valid document: {e}")))
    }
}

/// The serde name of an enum value (what [`RowReader::name`] reads back).
pub(crate) fn name_of<T: Serialize + std::fmt::Debug>(op: &'static str, value: &T) -> Result<String, StoreError> {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => Ok(name),
        _ => Err(StoreError::new(ErrorKind::Unexpected, op, format!("{value:?} has no plain name to store"))),
    }
}

/// A counter as `BIGINT`; values above `i64::MAX` are refused, naming the field.
pub(crate) fn to_bigint(op: &'static str, field: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::invalid(op, format!("`{field}` is {value}, above {}", i64::MAX)))
}

/// A document as JSON for a `JSONB` column.
pub(crate) fn to_json<T: Serialize>(op: &'static str, field: &str, value: &T) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(value).map_err(|e| StoreError::invalid(op, format!("`{field}` cannot be stored as JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use commerce_ports::TenderKind;
    use commerce_ports::replication::Direction;
    use commerce_ports::stores::{ClaimStatus, IntentStatus};

    use super::*;

    #[test]
    fn enums_are_stored_by_their_serde_names() {
        assert_eq!(name_of("t", &IntentStatus::RequiresAuthorization).unwrap(), "requires_authorization");
        assert_eq!(name_of("t", &ClaimStatus::Pending).unwrap(), "pending");
        assert_eq!(name_of("t", &Direction::Up).unwrap(), "up");
        assert_eq!(name_of("t", &TenderKind::CardPresent).unwrap(), "card-present");
    }

    #[test]
    fn counters_above_bigint_are_refused() {
        assert_eq!(to_bigint("t", "version", 7).unwrap(), 7);
        let e = to_bigint("update", "version", u64::MAX).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
        assert!(e.message().contains("`version`"));
    }
}
