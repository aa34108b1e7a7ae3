//! The SigV4 basic ISO-8601 timestamp (`20150830T123600Z`), formatted and parsed by the
//! `time` crate. Always UTC; instants before the Unix epoch clamp to it (no such clock is
//! meaningful here).

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

const AMZ_DATE: &[BorrowedFormatItem<'_>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");

/// `YYYYMMDDTHHMMSSZ`, the SigV4 `X-Amz-Date` format.
pub fn amz_timestamp(t: SystemTime) -> String {
    utc(t).format(AMZ_DATE).unwrap_or_default()
}

/// `t` as a UTC date, clamped to 1970..=9999 (`OffsetDateTime::from(SystemTime)` would
/// panic past 9999, and a stored record may carry any time).
pub fn utc(t: SystemTime) -> OffsetDateTime {
    let since_epoch = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    i128::try_from(since_epoch.as_nanos())
        .ok()
        .and_then(|n| OffsetDateTime::from_unix_timestamp_nanos(n).ok())
        .unwrap_or(PrimitiveDateTime::MAX.assume_utc())
}

/// Parses the SigV4 `X-Amz-Date` format; `None` unless it is exactly `YYYYMMDDTHHMMSSZ`
/// naming a real instant from 1970 on (so that e.g. `20150231` is refused).
pub fn parse_amz_timestamp(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let t = PrimitiveDateTime::parse(s, AMZ_DATE).ok()?.assume_utc();
    (t.year() >= 1970).then(|| t.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn formats_known_instants() {
        // 2015-08-30T12:36:00Z is the SigV4 test-suite instant.
        assert_eq!(amz_timestamp(at(1_440_938_160)), "20150830T123600Z");
        assert_eq!(amz_timestamp(at(0)), "19700101T000000Z");
        assert_eq!(amz_timestamp(at(951_782_400)), "20000229T000000Z");
        // Beyond the calendar's range: clamped, never a panic.
        let far = UNIX_EPOCH + Duration::from_secs(1 << 40); // year ~36,800
        assert_eq!(amz_timestamp(far), "99991231T235959Z");
    }

    #[test]
    fn parses_known_instants_and_refuses_impossible_dates() {
        assert_eq!(
            parse_amz_timestamp("20150830T123600Z"),
            Some(at(1_440_938_160))
        );
        for bad in [
            "20150231T000000Z",
            "20150830T246000Z",
            "20150830 123600Z",
            "2015083T123600Z",
        ] {
            assert_eq!(parse_amz_timestamp(bad), None, "{bad}");
        }
        assert_eq!(parse_amz_timestamp("2015083０T12360Z"), None);
    }

    proptest! {
        #[test]
        fn timestamps_round_trip(secs in 0u64..253_402_300_799) {
            prop_assert_eq!(parse_amz_timestamp(&amz_timestamp(at(secs))), Some(at(secs)));
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = parse_amz_timestamp(&s);
        }
    }
}
