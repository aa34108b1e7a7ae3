//! IEEE 802.1Q VLAN tag view (also the tags of 802.1ad QinQ stacks).
//!
//! A tag is the 4 bytes that follow a TPID: the TCI (PCP, DEI, VLAN id) and the EtherType
//! (or TPID) of what comes next. The parser walks stacked tags up to [`MAX_TAGS`] deep.

use super::ethernet::ethertype;
use super::field::{set_u16, u16_at};
use super::ParseError;

/// Length of one tag after its TPID.
pub const TAG_LEN: usize = 4;

/// How many stacked tags the parser accepts (QinQ is 2; a deeper stack is not something a
/// bump-in-the-wire firewall should guess about).
pub const MAX_TAGS: usize = 4;

mod field {
    pub const TCI: usize = 0;
    pub const ETHERTYPE: usize = 2;
}

/// True for the TPIDs that introduce a VLAN tag: 802.1Q, 802.1ad and legacy QinQ.
#[inline]
pub const fn is_vlan_tpid(value: u16) -> bool {
    matches!(
        value,
        ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_LEGACY
    )
}

/// A view of one VLAN tag (the bytes after its TPID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VlanTag<T> {
    #[inline]
    pub const fn new_unchecked(buffer: T) -> Self {
        VlanTag { buffer }
    }

    /// Wraps `buffer` after checking it holds a full tag.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Self, ParseError> {
        if buffer.as_ref().len() < TAG_LEN {
            return Err(ParseError::TruncatedVlan);
        }
        Ok(VlanTag { buffer })
    }

    /// The 12-bit VLAN identifier.
    #[inline]
    pub fn vid(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::TCI) & 0x0fff
    }

    /// The 3-bit priority code point.
    #[inline]
    pub fn pcp(&self) -> u8 {
        (u16_at(self.buffer.as_ref(), field::TCI) >> 13) as u8
    }

    /// The drop-eligible indicator.
    #[inline]
    pub fn dei(&self) -> bool {
        u16_at(self.buffer.as_ref(), field::TCI) & 0x1000 != 0
    }

    /// The EtherType (or next TPID) after this tag.
    #[inline]
    pub fn ethertype(&self) -> u16 {
        u16_at(self.buffer.as_ref(), field::ETHERTYPE)
    }

    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.buffer.as_ref().get(TAG_LEN..).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VlanTag<T> {
    /// Sets the TCI from its parts (`vid` is masked to 12 bits, `pcp` to 3).
    #[inline]
    pub fn set_tci(&mut self, pcp: u8, dei: bool, vid: u16) {
        let tci = (u16::from(pcp & 7) << 13) | (u16::from(dei) << 12) | (vid & 0x0fff);
        set_u16(self.buffer.as_mut(), field::TCI, tci);
    }

    #[inline]
    pub fn set_ethertype(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, value);
    }
}

#[cfg(test)]
mod test {
    use super::*;

    // PCP 5, DEI 1, VID 0x123, then IPv4.
    static TAG: [u8; 5] = [0xb1, 0x23, 0x08, 0x00, 0x45];

    #[test]
    fn deconstruct() {
        let t = VlanTag::new_checked(&TAG[..]).unwrap();
        assert_eq!(t.vid(), 0x123);
        assert_eq!(t.pcp(), 5);
        assert!(t.dei());
        assert_eq!(t.ethertype(), ethertype::IPV4);
        assert_eq!(t.payload(), &[0x45]);
    }

    #[test]
    fn construct() {
        let mut buf = [0u8; 4];
        let mut t = VlanTag::new_unchecked(&mut buf[..]);
        t.set_tci(5, true, 0xf123);
        t.set_ethertype(ethertype::IPV4);
        assert_eq!(buf, TAG[..4]);
    }

    #[test]
    fn truncated() {
        assert_eq!(
            VlanTag::new_checked(&TAG[..3]),
            Err(ParseError::TruncatedVlan)
        );
    }

    #[test]
    fn tpids() {
        assert!(is_vlan_tpid(0x8100) && is_vlan_tpid(0x88a8) && is_vlan_tpid(0x9100));
        assert!(!is_vlan_tpid(0x0800) && !is_vlan_tpid(0x86dd));
    }
}
