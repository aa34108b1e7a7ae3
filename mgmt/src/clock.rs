//! Converts the workers' TSC ticks to wall-clock time. The data path timestamps flows in
//! ticks (cheap, monotonic); operators and logs want seconds and dates.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

#[derive(Clone, Copy)]
pub struct Clock {
    pub ticks_per_sec: u64,
    now_ticks: fn() -> u64,
    t0: u64,
    wall0: SystemTime,
}

impl Clock {
    pub fn new(ticks_per_sec: u64, now_ticks: fn() -> u64) -> Clock {
        Clock {
            ticks_per_sec: ticks_per_sec.max(1),
            now_ticks,
            t0: now_ticks(),
            wall0: SystemTime::now(),
        }
    }

    pub fn now_ticks(&self) -> u64 {
        (self.now_ticks)()
    }

    /// Wall time of a tick value.
    pub fn wall(&self, ticks: u64) -> SystemTime {
        let d = |t: u64| {
            Duration::from_nanos((t as u128 * 1_000_000_000 / self.ticks_per_sec as u128) as u64)
        };
        if ticks >= self.t0 {
            self.wall0 + d(ticks - self.t0)
        } else {
            self.wall0 - d(self.t0 - ticks)
        }
    }

    pub fn secs(&self, ticks: u64) -> f64 {
        ticks as f64 / self.ticks_per_sec as f64
    }

    pub fn ticks(&self, secs: u64) -> u64 {
        secs.saturating_mul(self.ticks_per_sec)
    }
}

pub fn unix_secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Suricata's EVE timestamp: `2021-11-08T18:20:43.324542+0000`.
pub fn eve_timestamp(t: SystemTime) -> String {
    utc(t, EVE)
}

/// RFC 3339 in UTC with milliseconds, for operation records and the audit log.
pub fn rfc3339(t: SystemTime) -> String {
    utc(t, RFC3339_MILLIS)
}

/// EVE timestamps for a stream of nearby instants (a flush of a million flows logs two
/// million records within seconds): the date and time of day come from `time` once per
/// second, only the microseconds are written per call. Same text as [`eve_timestamp`].
/// A few seconds are kept, searched in full: a flow record's start and end alternate
/// between them, and the starts of a table's flows spread over the seconds they were
/// created in (a cache indexed by the second modulo its size thrashed when two of them
/// collided).
#[derive(Debug, Default)]
pub struct EveStamps {
    /// `(second, "2021-11-08T18:20:43")`.
    seconds: [Option<(u64, String)>; EVE_STAMP_SECONDS],
    /// The slot the next new second replaces (round robin).
    next: usize,
}

/// Seconds an [`EveStamps`] keeps.
const EVE_STAMP_SECONDS: usize = 8;

impl EveStamps {
    pub fn format(&mut self, t: SystemTime) -> String {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if second >= LAST_EVE_SECOND {
            return eve_timestamp(t); // clamped to year 9999 there
        }
        let prefix = self.prefix(second);
        // `.{:06}` by itoa and a zero pad: this runs twice per logged flow.
        let mut micros = itoa::Buffer::new();
        let micros = micros.format(since.subsec_micros());
        let pad = "000000".get(micros.len()..).unwrap_or("");
        [prefix, ".", pad, micros, "+0000"].concat()
    }

    /// `second`'s date and time of day, formatted once while it is kept.
    fn prefix(&mut self, second: u64) -> &str {
        let kept = self
            .seconds
            .iter()
            .position(|c| c.as_ref().is_some_and(|(s, _)| *s == second));
        let at = kept.unwrap_or_else(|| {
            let at = self.next % EVE_STAMP_SECONDS;
            self.next = at + 1;
            let prefix = utc(UNIX_EPOCH + Duration::from_secs(second), EVE_SECONDS);
            self.seconds[at] = Some((second, prefix));
            at
        });
        self.seconds[at].as_ref().map_or("", |(_, p)| p.as_str())
    }
}

/// 10000-01-01T00:00:00Z: later instants clamp (see `sigv4::utc`).
const LAST_EVE_SECOND: u64 = 253_402_300_800;

const EVE_SECONDS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
const EVE: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]+0000");
const RFC3339_MILLIS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

fn utc(t: SystemTime, layout: &[BorrowedFormatItem<'_>]) -> String {
    sigv4::utc(t).format(layout).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_eve_and_rfc3339() {
        let t = UNIX_EPOCH + Duration::from_micros(1_636_395_643_324_542);
        assert_eq!(eve_timestamp(t), "2021-11-08T18:20:43.324542+0000");
        assert_eq!(rfc3339(t), "2021-11-08T18:20:43.324Z");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        // A stored record may carry any time: clamped to the calendar, never a panic.
        let far = UNIX_EPOCH + Duration::from_micros(u64::MAX);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
        assert_eq!(eve_timestamp(far), "9999-12-31T23:59:59.999999+0000");
    }

    #[test]
    fn cached_eve_stamps_equal_eve_timestamp() {
        let mut stamps = EveStamps::default();
        let base = UNIX_EPOCH + Duration::from_micros(1_636_395_643_999_990);
        // Within a second, across the boundary, back in time, and the clamped ends.
        let mut instants: Vec<SystemTime> = (0..40)
            .map(|i| base + Duration::from_micros(i * 7))
            .chain([base - Duration::from_secs(86_400), base, UNIX_EPOCH])
            // Two seconds 4 apart, alternating (they shared a place in the old cache).
            .chain((0..6).map(|i| base + Duration::from_secs(4 * (i % 2))))
            // More seconds than are kept, revisited out of order.
            .chain((0..60).map(|i| base + Duration::from_secs(i * 7 % 19)))
            .collect();
        instants.push(UNIX_EPOCH - Duration::from_secs(5));
        instants.push(UNIX_EPOCH + Duration::from_micros(u64::MAX));
        instants.push(UNIX_EPOCH + Duration::from_secs(LAST_EVE_SECOND - 1));
        instants.push(UNIX_EPOCH + Duration::from_micros(5));
        for t in instants {
            assert_eq!(stamps.format(t), eve_timestamp(t), "{t:?}");
        }
    }

    fn fake_ticks() -> u64 {
        5_000
    }

    #[test]
    fn ticks_map_to_wall_time() {
        let c = Clock::new(1000, fake_ticks);
        let w = c.wall(6_000);
        assert_eq!(w.duration_since(c.wall0).unwrap(), Duration::from_secs(1));
        assert_eq!(c.ticks(3), 3000);
    }
}
