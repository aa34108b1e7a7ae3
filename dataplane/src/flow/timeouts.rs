//! Idle timeouts per protocol and state: the configured seconds, and the same converted
//! once to TSC ticks so the packet path and the expiry scan only compare integers.

use super::state::FlowState;
use crate::packet::proto;

/// Idle timeouts in seconds, as the config states them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutsSecs {
    /// TCP in SYN_SENT / SYN_RECV.
    pub tcp_new: u32,
    /// TCP in ESTABLISHED / FIN_WAIT / CLOSE_WAIT (AWS's `TcpIdleTimeoutSeconds`).
    pub tcp_established: u32,
    /// TCP in CLOSING / TIME_WAIT / CLOSED.
    pub tcp_closed: u32,
    pub udp_new: u32,
    pub udp_established: u32,
    /// ICMP and ICMPv6.
    pub icmp_new: u32,
    pub icmp_established: u32,
    /// Every other IP protocol (SCTP included).
    pub other_new: u32,
    pub other_established: u32,
}

impl Default for TimeoutsSecs {
    /// The normal timeouts: AWS's TCP idle timeout, Suricata's for the rest.
    fn default() -> Self {
        TimeoutsSecs {
            tcp_new: 60,
            tcp_established: 350,
            tcp_closed: 60,
            udp_new: 30,
            udp_established: 300,
            icmp_new: 30,
            icmp_established: 300,
            other_new: 30,
            other_established: 300,
        }
    }
}

impl TimeoutsSecs {
    /// Shorter timeouts used while a shard is nearly full (Suricata's emergency values).
    pub fn emergency_default() -> Self {
        TimeoutsSecs {
            tcp_new: 5,
            tcp_established: 100,
            tcp_closed: 10,
            udp_new: 10,
            udp_established: 100,
            icmp_new: 10,
            icmp_established: 100,
            other_new: 10,
            other_established: 100,
        }
    }
}

/// Idle timeouts in ticks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    tcp_new: u64,
    tcp_established: u64,
    tcp_closed: u64,
    udp_new: u64,
    udp_established: u64,
    icmp_new: u64,
    icmp_established: u64,
    other_new: u64,
    other_established: u64,
}

impl Timeouts {
    pub fn set_tcp_established(&mut self, ticks: u64) {
        self.tcp_established = ticks;
    }

    /// Converts seconds to ticks (saturating: a huge timeout just never fires).
    pub fn from_secs(s: &TimeoutsSecs, ticks_per_sec: u64) -> Self {
        let t = |secs: u32| u64::from(secs).saturating_mul(ticks_per_sec);
        Timeouts {
            tcp_new: t(s.tcp_new),
            tcp_established: t(s.tcp_established),
            tcp_closed: t(s.tcp_closed),
            udp_new: t(s.udp_new),
            udp_established: t(s.udp_established),
            icmp_new: t(s.icmp_new),
            icmp_established: t(s.icmp_established),
            other_new: t(s.other_new),
            other_established: t(s.other_established),
        }
    }

    /// How long (ticks) a flow of protocol `proto_nr` in `state` may stay idle.
    #[inline]
    pub fn idle_limit(&self, proto_nr: u8, state: FlowState) -> u64 {
        use FlowState::*;
        let (new, established) = match proto_nr {
            proto::TCP => {
                return match state {
                    New | SynSent | SynRecv => self.tcp_new,
                    Established | FinWait | CloseWait => self.tcp_established,
                    Closing | TimeWait | Closed => self.tcp_closed,
                }
            }
            proto::UDP => (self.udp_new, self.udp_established),
            proto::ICMP | proto::ICMPV6 => (self.icmp_new, self.icmp_established),
            _ => (self.other_new, self.other_established),
        };
        if state == New {
            new
        } else {
            established
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_protocol_and_state() {
        let t = Timeouts::from_secs(&TimeoutsSecs::default(), 1000);
        use FlowState::*;
        assert_eq!(t.idle_limit(proto::TCP, SynSent), 60_000);
        assert_eq!(t.idle_limit(proto::TCP, SynRecv), 60_000);
        assert_eq!(t.idle_limit(proto::TCP, Established), 350_000);
        assert_eq!(t.idle_limit(proto::TCP, FinWait), 350_000);
        assert_eq!(t.idle_limit(proto::TCP, CloseWait), 350_000);
        assert_eq!(t.idle_limit(proto::TCP, Closing), 60_000);
        assert_eq!(t.idle_limit(proto::TCP, TimeWait), 60_000);
        assert_eq!(t.idle_limit(proto::TCP, Closed), 60_000);
        assert_eq!(t.idle_limit(proto::UDP, New), 30_000);
        assert_eq!(t.idle_limit(proto::UDP, Established), 300_000);
        assert_eq!(t.idle_limit(proto::ICMPV6, New), 30_000);
        assert_eq!(t.idle_limit(proto::ICMP, Established), 300_000);
        assert_eq!(t.idle_limit(proto::SCTP, New), 30_000);
        assert_eq!(t.idle_limit(47, Established), 300_000);
    }

    #[test]
    fn every_field_is_converted() {
        let s = TimeoutsSecs {
            tcp_new: 1,
            tcp_established: 2,
            tcp_closed: 3,
            udp_new: 4,
            udp_established: 5,
            icmp_new: 6,
            icmp_established: 7,
            other_new: 8,
            other_established: 9,
        };
        let t = Timeouts::from_secs(&s, 10);
        use FlowState::*;
        let got = [
            t.idle_limit(proto::TCP, SynSent),
            t.idle_limit(proto::TCP, Established),
            t.idle_limit(proto::TCP, TimeWait),
            t.idle_limit(proto::UDP, New),
            t.idle_limit(proto::UDP, Established),
            t.idle_limit(proto::ICMP, New),
            t.idle_limit(proto::ICMP, Established),
            t.idle_limit(proto::SCTP, New),
            t.idle_limit(proto::SCTP, Established),
        ];
        assert_eq!(got, [10, 20, 30, 40, 50, 60, 70, 80, 90]);
    }

    #[test]
    fn huge_values_saturate() {
        let s = TimeoutsSecs {
            tcp_established: u32::MAX,
            ..TimeoutsSecs::default()
        };
        let t = Timeouts::from_secs(&s, u64::MAX / 2);
        assert_eq!(t.idle_limit(proto::TCP, FlowState::Established), u64::MAX);
    }
}
