//! Flow states (the TCP connection states plus NEW for connectionless flows) and packet
//! direction relative to the flow's opener.

/// Where a flow is in its life. TCP flows walk the handshake/close states; UDP, ICMP and
/// other protocols use only `New` (one direction seen) and `Established` (both seen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FlowState {
    /// Connectionless flow that has seen only its opener's direction.
    New = 0,
    /// TCP: handshake done (or picked up midstream); others: both directions seen.
    Established = 1,
    /// TCP: the opener's SYN seen.
    SynSent = 2,
    /// TCP: the responder's SYN+ACK seen.
    SynRecv = 3,
    /// TCP: the opener sent the first FIN.
    FinWait = 4,
    /// TCP: the responder sent the first FIN (the opener has yet to close).
    CloseWait = 5,
    /// TCP: both sides sent FIN and at least one FIN is not acknowledged yet (this also
    /// covers LAST_ACK).
    Closing = 6,
    /// TCP: both FINs sent and acknowledged.
    TimeWait = 7,
    /// TCP: reset by a plausible RST.
    Closed = 8,
}

impl FlowState {
    /// Every state, in discriminant order.
    pub const ALL: [FlowState; 9] = [
        FlowState::New,
        FlowState::Established,
        FlowState::SynSent,
        FlowState::SynRecv,
        FlowState::FinWait,
        FlowState::CloseWait,
        FlowState::Closing,
        FlowState::TimeWait,
        FlowState::Closed,
    ];

    /// The name used in logs, the API and filters (`"SYN_SENT"`, `"ESTABLISHED"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FlowState::New => "NEW",
            FlowState::Established => "ESTABLISHED",
            FlowState::SynSent => "SYN_SENT",
            FlowState::SynRecv => "SYN_RECV",
            FlowState::FinWait => "FIN_WAIT",
            FlowState::CloseWait => "CLOSE_WAIT",
            FlowState::Closing => "CLOSING",
            FlowState::TimeWait => "TIME_WAIT",
            FlowState::Closed => "CLOSED",
        }
    }

    /// A flow is active while it is not `Closed`.
    #[inline]
    pub fn is_active(self) -> bool {
        self != FlowState::Closed
    }

    /// Parses a state name, case-insensitively (`"established"`, `"SYN_SENT"`).
    pub fn parse(s: &str) -> Option<FlowState> {
        FlowState::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
    }
}

impl core::fmt::Display for FlowState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A packet's direction relative to the side that opened its flow.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Dir {
    /// Sent by the opener (client → server).
    Orig = 0,
    /// Sent by the responder (server → client).
    Reply = 1,
}

impl Dir {
    /// The other direction.
    #[inline]
    pub fn opposite(self) -> Dir {
        match self {
            Dir::Orig => Dir::Reply,
            Dir::Reply => Dir::Orig,
        }
    }

    /// Index into per-direction arrays.
    #[inline]
    pub(crate) fn idx(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_case_insensitively() {
        for (i, s) in FlowState::ALL.into_iter().enumerate() {
            assert_eq!(s as u8 as usize, i);
            assert_eq!(FlowState::parse(s.as_str()), Some(s));
            assert_eq!(FlowState::parse(&s.as_str().to_lowercase()), Some(s));
        }
        assert_eq!(
            FlowState::parse("established"),
            Some(FlowState::Established)
        );
        assert_eq!(FlowState::parse("SYN-SENT"), None);
        assert_eq!(FlowState::parse(""), None);
    }

    #[test]
    fn only_closed_is_inactive() {
        for s in FlowState::ALL {
            assert_eq!(s.is_active(), s != FlowState::Closed);
        }
    }

    #[test]
    fn dir_opposite() {
        assert_eq!(Dir::Orig.opposite(), Dir::Reply);
        assert_eq!(Dir::Reply.opposite(), Dir::Orig);
        assert_eq!(Dir::Reply.idx(), 1);
    }
}
