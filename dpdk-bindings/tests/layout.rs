//! The `rte_mbuf` fields the safe layer reads directly must sit where the C compiler puts them.
//! `fg_mbuf_layout` (csrc/shim.c) reports C's `offsetof`/`sizeof`; these tests compare them with
//! bindgen's struct, and check that `Mbuf`'s accessors agree with DPDK's own macros.
#![allow(unsafe_code)]

use std::mem::{align_of, offset_of, size_of};

use dpdk_bindings::{sys, Mbuf};

fn c_layout() -> sys::fg_mbuf_layout {
    let mut layout = sys::fg_mbuf_layout::default();
    // SAFETY: fg_mbuf_layout only writes constants into the struct we pass; it needs no EAL.
    unsafe { sys::fg_mbuf_layout(&mut layout) };
    layout
}

#[test]
fn rte_mbuf_size_and_alignment_match_c() {
    let c = c_layout();
    assert_eq!(size_of::<sys::rte_mbuf>(), c.size);
    assert_eq!(align_of::<sys::rte_mbuf>(), c.align);
    // Two cache lines, cache-line aligned: a change here means a different DPDK ABI.
    assert_eq!(c.size, 128);
    assert_eq!(c.align, 64);
}

#[test]
fn rte_mbuf_field_offsets_match_c() {
    let c = c_layout();
    let rust = [
        ("buf_addr", offset_of!(sys::rte_mbuf, buf_addr), c.buf_addr),
        ("data_off", offset_of!(sys::rte_mbuf, data_off), c.data_off),
        ("refcnt", offset_of!(sys::rte_mbuf, refcnt), c.refcnt),
        ("nb_segs", offset_of!(sys::rte_mbuf, nb_segs), c.nb_segs),
        ("port", offset_of!(sys::rte_mbuf, port), c.port),
        ("ol_flags", offset_of!(sys::rte_mbuf, ol_flags), c.ol_flags),
        ("pkt_len", offset_of!(sys::rte_mbuf, pkt_len), c.pkt_len),
        ("data_len", offset_of!(sys::rte_mbuf, data_len), c.data_len),
        ("pool", offset_of!(sys::rte_mbuf, pool), c.pool),
        ("next", offset_of!(sys::rte_mbuf, next), c.next),
    ];
    for (field, rust_offset, c_offset) in rust {
        assert_eq!(rust_offset, c_offset, "offset of rte_mbuf::{field}");
    }
    // The fields of the hot first cache line that rx touches.
    assert!(c.data_len < 64 && c.pkt_len < 64 && c.data_off < 64);
}

/// A fake mbuf header over a plain buffer: enough for the accessors and the C macros, never freed
/// through DPDK.
#[test]
fn mbuf_accessors_agree_with_dpdk_macros() {
    let mut buffer: Vec<u8> = (0..=255u8).collect();
    let mut header = Box::new(sys::rte_mbuf::default());
    header.buf_addr = buffer.as_mut_ptr().cast();
    header.buf_len = 256;
    header.data_off = 10;
    header.data_len = 20;
    header.pkt_len = 20;
    header.port = 7;
    let raw: *mut sys::rte_mbuf = &mut *header;

    // SAFETY: raw points to a live, initialised header whose buffer covers data_off + data_len.
    let (c_data, c_data_len, c_pkt_len) = unsafe {
        (
            sys::fg_pktmbuf_mtod(raw),
            sys::fg_pktmbuf_data_len(raw),
            sys::fg_pktmbuf_pkt_len(raw),
        )
    };
    // SAFETY: raw is valid and exclusively ours; into_raw below gives it back before Mbuf's Drop
    // could hand the fake to rte_pktmbuf_free.
    let mut m = unsafe { Mbuf::from_raw(raw) };
    assert_eq!(m.data().as_ptr(), c_data.cast::<u8>().cast_const());
    assert_eq!(m.data().len(), usize::from(c_data_len));
    assert_eq!(m.pkt_len(), c_pkt_len);
    assert_eq!(m.data_len(), 20);
    assert_eq!(m.port(), 7);
    assert_eq!(m.data(), &(10..30u8).collect::<Vec<_>>()[..]);
    m.data_mut()[0] = 0xee;
    assert_eq!(m.into_raw(), raw);
    assert_eq!(buffer[10], 0xee);
    drop(header);
}
