//! What bounds the RSTs a worker generates for `reject`: a per-worker token bucket, and
//! which sides of a rejected flow are told.
//!
//! Every generated RST costs a token; tokens refill at a configured rate up to a burst.
//! With the tombstone a rejected flow leaves in the shard (one RST pair per flow, then
//! silence for a few seconds), the bucket is what keeps a flood of *distinct* spoofed
//! flows from turning the appliance into a RST cannon.

/// Where the RSTs of a rejected midstream packet go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectRst {
    /// Back to the packet's sender only (what AWS Network Firewall does).
    Sender,
    /// Back to the sender and onward to the receiver, so both ends learn at once that
    /// the connection is gone.
    Both,
}

/// A token bucket over TSC ticks: `rate` tokens a second, at most `burst` banked.
/// Integer arithmetic only; tokens are kept in "token-ticks" (tokens × ticks/s).
#[derive(Clone, Copy, Debug)]
pub struct RstBudget {
    /// Banked token-ticks.
    banked: u64,
    cap: u64,
    rate: u64,
    /// Token-ticks one RST costs (= ticks per second).
    cost: u64,
    last: u64,
}

impl RstBudget {
    /// A full bucket of `burst` tokens refilled at `rate` per second; `rate == 0`
    /// disables the limit.
    pub fn new(rate: u32, burst: u32, ticks_per_sec: u64) -> RstBudget {
        let cost = ticks_per_sec.max(1);
        let cap = u64::from(burst.max(1)).saturating_mul(cost);
        RstBudget {
            banked: cap,
            cap,
            rate: u64::from(rate),
            cost,
            last: 0,
        }
    }

    /// Takes `n` tokens at `now` if the bucket holds them.
    #[inline]
    pub fn take(&mut self, n: u64, now: u64) -> bool {
        if self.rate == 0 {
            return true;
        }
        let elapsed = now.saturating_sub(self.last);
        self.last = self.last.max(now);
        self.banked = self
            .banked
            .saturating_add(elapsed.saturating_mul(self.rate))
            .min(self.cap);
        let need = n.saturating_mul(self.cost);
        if self.banked >= need {
            self.banked -= need;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let hz = 1000;
        let mut b = RstBudget::new(10, 4, hz);
        assert!((0..4).all(|_| b.take(1, 0)));
        assert!(!b.take(1, 0), "burst spent");
        // 10 per second: one token every 100 ticks.
        assert!(!b.take(1, 99));
        assert!(b.take(1, 100));
        assert!(!b.take(2, 250), "1.5 tokens banked");
        assert!(b.take(2, 300));
        // Never more than the burst, however long the pause.
        assert!(b.take(4, 1_000_000));
        assert!(!b.take(1, 1_000_000));
    }

    #[test]
    fn zero_rate_is_unlimited_and_time_going_back_is_harmless() {
        let mut b = RstBudget::new(0, 1, 1000);
        assert!((0..1000).all(|_| b.take(2, 5)));
        let mut b = RstBudget::new(1, 1, 1000);
        assert!(b.take(1, 5000));
        assert!(!b.take(1, 10));
    }
}
