//! RFC 3339 timestamps for serde, written by hand for UTC (`2025-01-01T12:00:00.5Z`) and by `time` otherwise.
//!
//! Intents and their events are serialized on every payment operation (the stored outcome of an idempotency
//! key), where `time`'s general formatter was a twentieth of the operation. The text is exactly what
//! `time::serde::rfc3339` writes (the fraction without trailing zeros, `Z` for UTC); reading is `time`'s.
//! Use it as `#[serde(with = "crate::rfc3339")]`.

use serde::{Deserializer, Serializer};
use time::OffsetDateTime;

/// Serializes like `time::serde::rfc3339::serialize`.
///
/// # Errors
/// As `time`'s: a year outside 0..=9999 or an offset with seconds cannot be written.
pub fn serialize<S: Serializer>(at: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 30];
    match utc_into(at, &mut buf) {
        Some(text) => s.serialize_str(text),
        None => time::serde::rfc3339::serialize(at, s),
    }
}

/// Deserializes like `time::serde::rfc3339::deserialize`.
///
/// # Errors
/// Text that is not an RFC 3339 timestamp.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
    time::serde::rfc3339::deserialize(d)
}

/// Writes a UTC timestamp with a year in 0..=9999 into `buf` (`YYYY-MM-DDTHH:MM:SS[.fraction]Z`, at most 30
/// bytes); `None` for any other, which `time` writes instead.
fn utc_into<'b>(at: &OffsetDateTime, buf: &'b mut [u8; 30]) -> Option<&'b str> {
    if !at.offset().is_utc() || !(0..=9999).contains(&at.year()) {
        return None;
    }
    fn two(buf: &mut [u8], at: usize, value: u8) {
        buf[at] = b'0' + value / 10;
        buf[at + 1] = b'0' + value % 10;
    }
    let year = u16::try_from(at.year()).ok()?;
    let [hi, lo] = [year / 100, year % 100].map(|part| u8::try_from(part).unwrap_or(0));
    two(buf, 0, hi);
    two(buf, 2, lo);
    buf[4] = b'-';
    two(buf, 5, u8::from(at.month()));
    buf[7] = b'-';
    two(buf, 8, at.day());
    buf[10] = b'T';
    two(buf, 11, at.hour());
    buf[13] = b':';
    two(buf, 14, at.minute());
    buf[16] = b':';
    two(buf, 17, at.second());
    let mut len = 19;
    let mut nanos = at.nanosecond();
    if nanos != 0 {
        buf[len] = b'.';
        len += 1;
        let mut digits = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            digits -= 1;
        }
        for i in (0..digits).rev() {
            buf[len + i] = b'0' + u8::try_from(nanos % 10).unwrap_or(0);
            nanos /= 10;
        }
        len += digits;
    }
    buf[len] = b'Z';
    std::str::from_utf8(&buf[..=len]).ok()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::format_description::well_known::Rfc3339;
    use time::macros::datetime;
    use time::{Duration, UtcOffset};

    use super::*;

    fn ours(at: OffsetDateTime) -> Option<String> {
        utc_into(&at, &mut [0u8; 30]).map(str::to_owned)
    }

    #[test]
    fn writes_what_time_writes() {
        for at in [
            datetime!(2025-01-01 12:00 UTC),
            datetime!(2025-01-01 12:00:00.5 UTC),
            datetime!(2025-01-01 12:00:00.123456 UTC),
            datetime!(2025-01-01 12:00:00.000000001 UTC),
            datetime!(2025-01-01 12:00:00.100000010 UTC),
            datetime!(0001-01-01 00:00 UTC),
            datetime!(0000-01-01 00:00 UTC),
            datetime!(9999-12-31 23:59:59.999999999 UTC),
            OffsetDateTime::UNIX_EPOCH,
        ] {
            assert_eq!(ours(at), at.format(&Rfc3339).ok(), "{at}");
        }
        // Another offset, or a year time cannot write as RFC 3339: left to time.
        assert_eq!(ours(datetime!(2025-01-01 12:00:00.1 +01:30)), None);
        assert_eq!(ours(datetime!(-0001-01-01 00:00 UTC)), None);
    }

    #[test]
    fn serde_round_trips_and_matches_time() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct Ours(#[serde(with = "crate::rfc3339")] OffsetDateTime);
        #[derive(serde::Serialize)]
        struct Theirs(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);
        for at in [datetime!(2025-06-30 23:59:59.25 UTC), datetime!(2025-06-30 23:59:59.25 -07:00)] {
            let text = serde_json::to_string(&Ours(at)).ok();
            assert_eq!(text, serde_json::to_string(&Theirs(at)).ok());
            let back: Option<Ours> = text.and_then(|t| serde_json::from_str(&t).ok());
            assert_eq!(back, Some(Ours(at)));
        }
    }

    proptest! {
        #[test]
        fn any_utc_instant_is_written_as_time_writes_it(seconds in 0i64..253_402_300_799, nanos in 0u32..1_000_000_000) {
            let at = OffsetDateTime::UNIX_EPOCH + Duration::seconds(seconds) + Duration::nanoseconds(i64::from(nanos));
            prop_assert_eq!(ours(at), at.format(&Rfc3339).ok());
            let shifted = at.to_offset(UtcOffset::from_hms(5, 30, 0).unwrap_or(UtcOffset::UTC));
            prop_assert_eq!(ours(shifted), None);
        }
    }
}
