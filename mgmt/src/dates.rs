//! The SigV4 basic ISO-8601 timestamp (`20150830T123600Z`), which no date crate in use
//! formats directly (HTTP dates are `httpdate`'s). Always UTC; instants before the Unix
//! epoch clamp to it (no such clock is meaningful here).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC calendar instant with one-second resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: the (year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // Both casts are of values bounded by construction (1..=31 and 1..=12).
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Civil {
    fn from_system_time(t: SystemTime) -> Civil {
        let secs = unix_seconds(t);
        let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
        let rem = secs.rem_euclid(86_400) as u32;
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }

    /// `None` when any field is out of range, so that e.g. `20150231` is refused.
    fn to_system_time(self) -> Option<SystemTime> {
        let valid = (1970..=9999).contains(&self.year)
            && (1..=12).contains(&self.month)
            && (1..=days_in_month(self.year, self.month)).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60;
        if !valid {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
    }
}

/// Parses exactly `n` ASCII digits.
fn digits(s: &str, n: usize) -> Option<u32> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `YYYYMMDDTHHMMSSZ`, the SigV4 `X-Amz-Date` format.
pub fn amz_timestamp(t: SystemTime) -> String {
    let c = Civil::from_system_time(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Parses the SigV4 `X-Amz-Date` format; `None` unless it is exactly `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_timestamp(s: &str) -> Option<SystemTime> {
    if s.len() != 16 || !s.is_ascii() || s.as_bytes()[8] != b'T' || s.as_bytes()[15] != b'Z' {
        return None;
    }
    Civil {
        year: i64::from(digits(s.get(0..4)?, 4)?),
        month: digits(s.get(4..6)?, 2)?,
        day: digits(s.get(6..8)?, 2)?,
        hour: digits(s.get(9..11)?, 2)?,
        minute: digits(s.get(11..13)?, 2)?,
        second: digits(s.get(13..15)?, 2)?,
    }
    .to_system_time()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn formats_known_instants() {
        // 2015-08-30T12:36:00Z is the SigV4 test-suite instant.
        assert_eq!(amz_timestamp(at(1_440_938_160)), "20150830T123600Z");
        assert_eq!(amz_timestamp(at(0)), "19700101T000000Z");
        assert_eq!(amz_timestamp(at(951_782_400)), "20000229T000000Z");
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
