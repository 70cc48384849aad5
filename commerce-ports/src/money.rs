//! Money in integer minor units with an ISO 4217 currency.
//!
//! An amount is an `i64` count of the currency's minor unit (cents for EUR, yen for JPY, fils for KWD).
//! Arithmetic is checked: adding two currencies, overflowing, or losing a minor unit is an error, never a
//! silent wrap or rounding. Parsing and display use the form `"12.34 EUR"` with exactly the currency's number
//! of decimals on display.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An ISO 4217 currency: its alphabetic code and the exponent of its minor unit.
///
/// Only currencies in the built-in table are accepted, so an exponent is never guessed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// ISO 4217 currencies known to this crate: code and minor-unit exponent.
///
/// The list covers every active currency whose exponent is not 2 and the commonly traded 2-decimal ones.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("GNF", 0),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("LYD", 3),
    ("MAD", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYI", 0),
    ("UYW", 4),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    ("ZAR", 2),
];

impl Currency {
    /// Euro (exponent 2).
    pub const EUR: Currency = Currency { code: *b"EUR", exponent: 2 };
    /// US dollar (exponent 2).
    pub const USD: Currency = Currency { code: *b"USD", exponent: 2 };
    /// Pound sterling (exponent 2).
    pub const GBP: Currency = Currency { code: *b"GBP", exponent: 2 };
    /// Japanese yen (exponent 0).
    pub const JPY: Currency = Currency { code: *b"JPY", exponent: 0 };
    /// Kuwaiti dinar (exponent 3).
    pub const KWD: Currency = Currency { code: *b"KWD", exponent: 3 };

    /// Looks a currency up by its ISO 4217 alphabetic code (upper case, three letters).
    ///
    /// # Errors
    /// [`MoneyError::UnknownCurrency`] when the code is not in the table.
    pub fn from_code(code: &str) -> Result<Currency, MoneyError> {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(c, e)| {
                let b = c.as_bytes();
                Currency { code: [b[0], b[1], b[2]], exponent: *e }
            })
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))
    }

    /// The three-letter code, e.g. `"EUR"`.
    pub fn code(&self) -> &str {
        // The table holds ASCII only, so this cannot fail; fall back to a marker rather than panic.
        std::str::from_utf8(&self.code).unwrap_or("???")
    }

    /// Number of decimals of the minor unit (JPY 0, EUR 2, KWD 3).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Every currency this crate knows.
    pub fn all() -> impl Iterator<Item = Currency> {
        CURRENCIES.iter().filter_map(|(c, _)| Currency::from_code(c).ok())
    }

    /// `10^exponent`: minor units per major unit.
    pub fn minor_per_major(&self) -> i64 {
        10i64.pow(u32::from(self.exponent))
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::from_code(s)
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Currency::from_code(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a money value or operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The code is not an ISO 4217 currency known to this crate.
    #[error("unknown currency code `{0}`")]
    UnknownCurrency(String),
    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch {
        /// Currency of the left operand.
        left: Currency,
        /// Currency of the right operand.
        right: Currency,
    },
    /// The result does not fit in an `i64` of minor units.
    #[error("amount overflow in {0}")]
    Overflow(&'static str),
    /// The text is not of the form `"12.34 EUR"`.
    #[error("malformed amount `{input}`: {reason}")]
    Malformed {
        /// The text that was given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// More decimals than the currency has minor units, e.g. `"1.5 JPY"` or `"1.234 EUR"`.
    #[error("amount `{input}` has {decimals} decimals but {currency} has {exponent}")]
    TooPrecise {
        /// The text that was given.
        input: String,
        /// Decimals in the text.
        decimals: usize,
        /// The currency.
        currency: Currency,
        /// The currency's exponent.
        exponent: u8,
    },
    /// Allocation was asked with no parts or with weights that sum to zero.
    #[error("cannot allocate over weights that sum to zero")]
    ZeroWeights,
    /// An amount had to be positive (or non-negative) and was not.
    #[error("amount must be {expected}, got {amount}")]
    Sign {
        /// What was expected, e.g. "positive".
        expected: &'static str,
        /// The amount that was given.
        amount: Money,
    },
}

/// An amount of money: integer minor units and a currency.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    minor: i64,
    currency: Currency,
}

impl Money {
    /// An amount from minor units, e.g. `Money::from_minor(1234, Currency::EUR)` is 12.34 EUR.
    pub const fn from_minor(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Money {
        Money { minor: 0, currency }
    }

    /// The amount in minor units.
    pub const fn minor(&self) -> i64 {
        self.minor
    }

    /// The currency.
    pub const fn currency(&self) -> Currency {
        self.currency
    }

    /// True when the amount is zero.
    pub const fn is_zero(&self) -> bool {
        self.minor == 0
    }

    /// True when the amount is above zero.
    pub const fn is_positive(&self) -> bool {
        self.minor > 0
    }

    /// True when the amount is below zero.
    pub const fn is_negative(&self) -> bool {
        self.minor < 0
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch { left: self.currency, right: other.currency })
        }
    }

    /// `self + other`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let minor = self.minor.checked_add(other.minor).ok_or(MoneyError::Overflow("addition"))?;
        Ok(Money { minor, currency: self.currency })
    }

    /// `self - other`.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn checked_sub(self, other: Money) -> Result<Money, MoneyError> {
        self.same_currency(&other)?;
        let minor = self.minor.checked_sub(other.minor).ok_or(MoneyError::Overflow("subtraction"))?;
        Ok(Money { minor, currency: self.currency })
    }

    /// `self * factor` (a quantity, for example).
    ///
    /// # Errors
    /// [`MoneyError::Overflow`].
    pub fn checked_mul(self, factor: i64) -> Result<Money, MoneyError> {
        let minor = self.minor.checked_mul(factor).ok_or(MoneyError::Overflow("multiplication"))?;
        Ok(Money { minor, currency: self.currency })
    }

    /// `-self`.
    ///
    /// # Errors
    /// [`MoneyError::Overflow`] for `i64::MIN` minor units.
    pub fn checked_neg(self) -> Result<Money, MoneyError> {
        let minor = self.minor.checked_neg().ok_or(MoneyError::Overflow("negation"))?;
        Ok(Money { minor, currency: self.currency })
    }

    /// Sums amounts that must all be in `currency` (an empty iterator gives zero).
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`] or [`MoneyError::Overflow`].
    pub fn sum<I: IntoIterator<Item = Money>>(currency: Currency, items: I) -> Result<Money, MoneyError> {
        items.into_iter().try_fold(Money::zero(currency), Money::checked_add)
    }

    /// Compares two amounts of the same currency.
    ///
    /// # Errors
    /// [`MoneyError::CurrencyMismatch`].
    pub fn checked_cmp(&self, other: &Money) -> Result<std::cmp::Ordering, MoneyError> {
        self.same_currency(other)?;
        Ok(self.minor.cmp(&other.minor))
    }

    /// Fails unless the amount is above zero; the error carries the offending amount.
    ///
    /// # Errors
    /// [`MoneyError::Sign`].
    pub fn ensure_positive(self) -> Result<Money, MoneyError> {
        if self.is_positive() { Ok(self) } else { Err(MoneyError::Sign { expected: "positive", amount: self }) }
    }

    /// Splits the amount into parts proportional to `weights` without losing or inventing a minor unit.
    ///
    /// Parts are rounded toward zero and the remaining minor units go, one each, to the parts with the
    /// largest remainders (ties to the earlier part). The parts always sum to `self`.
    ///
    /// # Errors
    /// [`MoneyError::ZeroWeights`] when `weights` is empty or sums to zero.
    pub fn allocate(self, weights: &[u32]) -> Result<Vec<Money>, MoneyError> {
        let total: u128 = weights.iter().map(|w| u128::from(*w)).sum();
        if total == 0 {
            return Err(MoneyError::ZeroWeights);
        }
        let negative = self.minor < 0;
        let whole = u128::from(self.minor.unsigned_abs());
        let mut parts: Vec<u128> = Vec::with_capacity(weights.len());
        let mut remainders: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
        for (i, w) in weights.iter().enumerate() {
            let scaled = whole * u128::from(*w);
            parts.push(scaled / total);
            remainders.push((scaled % total, i));
        }
        let given: u128 = parts.iter().sum();
        let mut left = whole - given;
        // Largest remainder first; among equals the earlier index first.
        remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        for (_, i) in remainders {
            if left == 0 {
                break;
            }
            if let Some(p) = parts.get_mut(i) {
                *p += 1;
                left -= 1;
            }
        }
        parts
            .into_iter()
            .map(|p| {
                // Each part is at most |self|, which came from an i64, so these conversions hold.
                let abs = i64::try_from(p).map_err(|_| MoneyError::Overflow("allocation"))?;
                let minor = if negative { abs.checked_neg().ok_or(MoneyError::Overflow("allocation"))? } else { abs };
                Ok(Money { minor, currency: self.currency })
            })
            .collect()
    }

    /// Parses `"12.34 EUR"`, `"-0.50 USD"`, `"1500 JPY"`. Fewer decimals than the currency's are padded
    /// (`"12.3 EUR"` is 12.30 EUR); more are refused rather than rounded.
    ///
    /// # Errors
    /// [`MoneyError::Malformed`], [`MoneyError::UnknownCurrency`], [`MoneyError::TooPrecise`] or
    /// [`MoneyError::Overflow`].
    pub fn parse(input: &str) -> Result<Money, MoneyError> {
        let malformed = |reason| MoneyError::Malformed { input: input.to_owned(), reason };
        let (number, code) = input.trim().split_once(' ').ok_or_else(|| malformed("expected `<amount> <CURRENCY>`"))?;
        let currency = Currency::from_code(code.trim())?;
        let (negative, digits) = match number.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, number),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => {
                if f.is_empty() {
                    return Err(malformed("nothing after the decimal point"));
                }
                (i, f)
            }
            None => (digits, ""),
        };
        if int_part.is_empty() {
            return Err(malformed("no digits before the decimal point"));
        }
        if !int_part.bytes().all(|b| b.is_ascii_digit()) || !frac_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("only digits, one optional `.` and a leading `-` are allowed"));
        }
        let exponent = usize::from(currency.exponent);
        if frac_part.len() > exponent {
            return Err(MoneyError::TooPrecise {
                input: input.to_owned(),
                decimals: frac_part.len(),
                currency,
                exponent: currency.exponent,
            });
        }
        let overflow = || MoneyError::Overflow("parsing");
        // Accumulate in i128 so that i64::MIN (whose magnitude exceeds i64::MAX) parses back.
        let mut magnitude: i128 = 0;
        for b in int_part.bytes().chain(frac_part.bytes()) {
            magnitude =
                magnitude.checked_mul(10).and_then(|m| m.checked_add(i128::from(b - b'0'))).ok_or_else(overflow)?;
            if magnitude > i128::from(i64::MAX) + 1 {
                return Err(overflow());
            }
        }
        for _ in frac_part.len()..exponent {
            magnitude = magnitude.checked_mul(10).ok_or_else(overflow)?;
        }
        let signed = if negative { -magnitude } else { magnitude };
        let minor = i64::try_from(signed).map_err(|_| overflow())?;
        Ok(Money { minor, currency })
    }

    /// The amount in major units as an exact decimal (`12.34` for 1234 EUR cents).
    pub fn to_decimal(&self) -> rust_decimal::Decimal {
        rust_decimal::Decimal::new(self.minor, u32::from(self.currency.exponent))
    }

    /// An amount from an exact decimal in major units.
    ///
    /// # Errors
    /// [`MoneyError::TooPrecise`] when the value has more decimals than the currency,
    /// [`MoneyError::Overflow`] when it does not fit.
    pub fn from_decimal(value: rust_decimal::Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let normalized = value.normalize();
        if normalized.scale() > u32::from(currency.exponent) {
            return Err(MoneyError::TooPrecise {
                input: value.to_string(),
                decimals: usize::try_from(normalized.scale()).unwrap_or(usize::MAX),
                currency,
                exponent: currency.exponent,
            });
        }
        let mut scaled = normalized;
        scaled.rescale(u32::from(currency.exponent));
        let minor = i64::try_from(scaled.mantissa()).map_err(|_| MoneyError::Overflow("from decimal"))?;
        Ok(Money { minor, currency })
    }
}

impl Money {
    /// Writes the display form (`-12.34 EUR`) into `buf` and returns it, without the formatting machinery
    /// (money is formatted on every stored outcome and event); `None` for an exponent above 18, which no
    /// currency has.
    fn format_into(self, buf: &mut [u8; 64]) -> Option<&str> {
        let exponent = usize::from(self.currency.exponent);
        if exponent > 18 {
            return None;
        }
        // Digits of |minor| from the right, then the sign, in the first part of the buffer.
        let mut digits = [0u8; 20];
        let mut n = self.minor.unsigned_abs();
        let mut len = 0;
        loop {
            digits[19 - len] = b'0' + u8::try_from(n % 10).unwrap_or(0);
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        // At least exponent + 1 digits, so there is a units digit before the point.
        while len < exponent + 1 {
            digits[19 - len] = b'0';
            len += 1;
        }
        let mut at = 0;
        if self.minor < 0 {
            buf[0] = b'-';
            at = 1;
        }
        let whole = len - exponent;
        buf[at..at + whole].copy_from_slice(&digits[20 - len..20 - exponent]);
        at += whole;
        if exponent > 0 {
            buf[at] = b'.';
            at += 1;
            buf[at..at + exponent].copy_from_slice(&digits[20 - exponent..]);
            at += exponent;
        }
        buf[at] = b' ';
        buf[at + 1..at + 4].copy_from_slice(&self.currency.code);
        std::str::from_utf8(&buf[..at + 4]).ok()
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.format_into(&mut [0u8; 64]) {
            return f.write_str(text);
        }
        // More decimals than any currency has: pad the digits and place the point by hand.
        let exponent = usize::from(self.currency.exponent);
        let sign = if self.minor < 0 { "-" } else { "" };
        let digits = format!("{:0>width$}", self.minor.unsigned_abs(), width = exponent + 1);
        let (whole, fraction) = digits.split_at(digits.len() - exponent);
        write!(f, "{sign}{whole}.{fraction} {}", self.currency)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse(s)
    }
}

/// Serialized as the display string, `"12.34 EUR"`, so a JSON or TOML document can never lose the currency
/// or the exponent.
impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.format_into(&mut [0u8; 64]) {
            Some(text) => s.serialize_str(text),
            None => s.collect_str(self),
        }
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Money::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn displays_with_the_currency_exponent() {
        assert_eq!(Money::from_minor(1234, Currency::EUR).to_string(), "12.34 EUR");
        assert_eq!(Money::from_minor(1500, Currency::JPY).to_string(), "1500 JPY");
        assert_eq!(Money::from_minor(1, Currency::KWD).to_string(), "0.001 KWD");
        assert_eq!(Money::from_minor(-5, Currency::USD).to_string(), "-0.05 USD");
        assert_eq!(Money::from_minor(i64::MIN, Currency::EUR).to_string(), "-92233720368547758.08 EUR");
    }

    /// The display form by the textbook formula, to check the hand-written formatter against.
    fn reference(m: Money) -> String {
        let exponent = u32::from(m.currency().exponent());
        let sign = if m.minor() < 0 { "-" } else { "" };
        let abs = u128::from(m.minor().unsigned_abs());
        if exponent == 0 {
            return format!("{sign}{abs} {}", m.currency().code());
        }
        let unit = 10u128.pow(exponent);
        let width = usize::try_from(exponent).unwrap_or(0);
        format!("{sign}{}.{:0width$} {}", abs / unit, abs % unit, m.currency().code())
    }

    #[test]
    fn display_and_serialization_agree_with_the_formula_for_every_currency() {
        let edges = [0, 1, -1, 9, 10, 99, 100, 101, -999, 1_000, 123_456_789, i64::MAX, i64::MIN, i64::MIN + 1];
        for currency in Currency::all() {
            for minor in edges {
                let m = Money::from_minor(minor, currency);
                assert_eq!(m.to_string(), reference(m), "{minor} {}", currency.code());
                assert_eq!(serde_json::to_string(&m).ok(), Some(format!("\"{}\"", reference(m))));
                assert_eq!(Money::parse(&m.to_string()), Ok(m), "round trip");
            }
        }
    }

    #[test]
    fn parses_and_pads_decimals() {
        assert_eq!(Money::parse("12.34 EUR"), Ok(Money::from_minor(1234, Currency::EUR)));
        assert_eq!(Money::parse("12.3 EUR"), Ok(Money::from_minor(1230, Currency::EUR)));
        assert_eq!(Money::parse("1500 JPY"), Ok(Money::from_minor(1500, Currency::JPY)));
        assert_eq!(Money::parse("-1.234 KWD"), Ok(Money::from_minor(-1234, Currency::KWD)));
    }

    #[test]
    fn refuses_bad_text_precisely() {
        assert!(matches!(Money::parse("1.5 JPY"), Err(MoneyError::TooPrecise { decimals: 1, .. })));
        assert!(matches!(Money::parse("1.234 EUR"), Err(MoneyError::TooPrecise { decimals: 3, .. })));
        assert_eq!(Money::parse("12 XYZ"), Err(MoneyError::UnknownCurrency("XYZ".into())));
        assert!(matches!(Money::parse("12EUR"), Err(MoneyError::Malformed { .. })));
        assert!(matches!(Money::parse("1,00 EUR"), Err(MoneyError::Malformed { .. })));
        assert!(matches!(Money::parse(".5 EUR"), Err(MoneyError::Malformed { .. })));
        assert!(matches!(Money::parse("5. EUR"), Err(MoneyError::Malformed { .. })));
        assert!(matches!(Money::parse("+5 EUR"), Err(MoneyError::Malformed { .. })));
        assert!(matches!(Money::parse("99999999999999999999 EUR"), Err(MoneyError::Overflow(_))));
        assert!(matches!(Money::parse("92233720368547758.08 EUR"), Err(MoneyError::Overflow(_))));
        assert!(matches!(Money::parse("9999999999999999999999999999999999999999 EUR"), Err(MoneyError::Overflow(_))));
    }

    #[test]
    fn extremes_round_trip() {
        for minor in [i64::MIN, i64::MIN + 1, i64::MAX, 0, -1] {
            for currency in [Currency::EUR, Currency::JPY, Currency::KWD] {
                let m = Money::from_minor(minor, currency);
                assert_eq!(Money::parse(&m.to_string()), Ok(m), "{m}");
            }
        }
    }

    #[test]
    fn arithmetic_is_checked() {
        let eur = Money::from_minor(100, Currency::EUR);
        let usd = Money::from_minor(100, Currency::USD);
        assert!(matches!(eur.checked_add(usd), Err(MoneyError::CurrencyMismatch { .. })));
        assert!(matches!(eur.checked_sub(usd), Err(MoneyError::CurrencyMismatch { .. })));
        assert!(matches!(
            Money::from_minor(i64::MAX, Currency::EUR).checked_add(Money::from_minor(1, Currency::EUR)),
            Err(MoneyError::Overflow(_))
        ));
        assert!(matches!(Money::from_minor(i64::MIN, Currency::EUR).checked_neg(), Err(MoneyError::Overflow(_))));
        assert_eq!(eur.checked_mul(3), Ok(Money::from_minor(300, Currency::EUR)));
    }

    #[test]
    fn allocation_spreads_the_remainder() {
        let parts = Money::from_minor(100, Currency::EUR).allocate(&[1, 1, 1]).unwrap_or_default();
        assert_eq!(parts.iter().map(Money::minor).collect::<Vec<_>>(), vec![34, 33, 33]);
        let parts = Money::from_minor(-100, Currency::EUR).allocate(&[1, 1, 1]).unwrap_or_default();
        assert_eq!(parts.iter().map(Money::minor).collect::<Vec<_>>(), vec![-34, -33, -33]);
        assert_eq!(Money::from_minor(5, Currency::EUR).allocate(&[0, 0]), Err(MoneyError::ZeroWeights));
        assert_eq!(Money::from_minor(5, Currency::EUR).allocate(&[]), Err(MoneyError::ZeroWeights));
    }

    #[test]
    fn decimal_round_trip_is_exact() {
        let m = Money::from_minor(1234, Currency::KWD);
        assert_eq!(m.to_decimal().to_string(), "1.234");
        assert_eq!(Money::from_decimal(m.to_decimal(), Currency::KWD), Ok(m));
        assert!(matches!(
            Money::from_decimal(rust_decimal::Decimal::new(15, 1), Currency::JPY),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert_eq!(
            Money::from_decimal(rust_decimal::Decimal::new(1500, 2), Currency::JPY),
            Ok(Money::from_minor(15, Currency::JPY))
        );
    }

    #[test]
    fn serde_uses_the_display_form() {
        let m = Money::from_minor(1234, Currency::EUR);
        assert_eq!(serde_json::to_string(&m).ok().as_deref(), Some("\"12.34 EUR\""));
        assert_eq!(serde_json::from_str::<Money>("\"1500 JPY\"").ok(), Some(Money::from_minor(1500, Currency::JPY)));
        assert!(serde_json::from_str::<Money>("\"1.5 JPY\"").is_err());
    }

    fn any_currency() -> impl Strategy<Value = Currency> {
        proptest::sample::select(Currency::all().collect::<Vec<_>>())
    }

    proptest! {
        #[test]
        fn display_agrees_with_the_formula(minor in any::<i64>(), pick in 0usize..64) {
            let currencies: Vec<Currency> = Currency::all().collect();
            let currency = currencies[pick % currencies.len()];
            let m = Money::from_minor(minor, currency);
            prop_assert_eq!(m.to_string(), reference(m));
        }

        #[test]
        fn parse_display_round_trip(
            minor in prop_oneof![any::<i64>(), Just(i64::MIN), Just(i64::MAX), -1000i64..1000],
            currency in any_currency(),
        ) {
            let m = Money::from_minor(minor, currency);
            prop_assert_eq!(Money::parse(&m.to_string()), Ok(m));
        }

        #[test]
        fn allocation_sums_to_the_whole(
            minor in any::<i64>(),
            currency in any_currency(),
            weights in proptest::collection::vec(0u32..1000, 1..12),
        ) {
            let m = Money::from_minor(minor, currency);
            match m.allocate(&weights) {
                Ok(parts) => {
                    prop_assert_eq!(parts.len(), weights.len());
                    prop_assert_eq!(Money::sum(currency, parts.iter().copied()), Ok(m));
                    for (p, w) in parts.iter().zip(&weights) {
                        prop_assert_eq!(p.currency(), currency);
                        if *w == 0 { prop_assert_eq!(p.minor(), 0); }
                        // No part strays more than one minor unit from its exact share.
                        let exact = i128::from(minor) * i128::from(*w);
                        let total: i128 = weights.iter().map(|w| i128::from(*w)).sum();
                        let diff = i128::from(p.minor()) * total - exact;
                        prop_assert!(diff.abs() < total);
                    }
                }
                Err(e) => {
                    prop_assert_eq!(e, MoneyError::ZeroWeights);
                    prop_assert!(weights.iter().all(|w| *w == 0));
                }
            }
        }

        #[test]
        fn mixed_currencies_never_produce_a_result(
            a in any::<i64>(), b in any::<i64>(), ca in any_currency(), cb in any_currency(),
        ) {
            prop_assume!(ca != cb);
            let x = Money::from_minor(a, ca);
            let y = Money::from_minor(b, cb);
            let mismatch = |r: Result<Money, MoneyError>| matches!(r, Err(MoneyError::CurrencyMismatch { .. }));
            prop_assert!(mismatch(x.checked_add(y)));
            prop_assert!(mismatch(x.checked_sub(y)));
            prop_assert!(x.checked_cmp(&y).is_err());
            prop_assert!(mismatch(Money::sum(ca, [x, y])));
        }

        #[test]
        fn checked_add_matches_i128(a in any::<i64>(), b in any::<i64>()) {
            let r = Money::from_minor(a, Currency::EUR).checked_add(Money::from_minor(b, Currency::EUR));
            let exact = i128::from(a) + i128::from(b);
            match i64::try_from(exact) {
                Ok(v) => prop_assert_eq!(r, Ok(Money::from_minor(v, Currency::EUR))),
                Err(_) => prop_assert!(matches!(r, Err(MoneyError::Overflow(_)))),
            }
        }
    }
}
