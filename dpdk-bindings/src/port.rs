//! Ethernet ports: configuration and start ([`Port::start`]), statistics, and the per-queue
//! handles ([`RxQueue`], [`TxQueue`]) that workers poll.
//!
//! A started port is shared (`Arc`) by its [`Port`] handle and every queue handle, and is stopped and
//! closed when the last of them is dropped: a worker can never poll a closed port. Each queue can be
//! handed out once at a time, because DPDK queues are not thread-safe.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::burst::Burst;
use crate::eal::{Eal, LiveObject};
use crate::error::{check, DpdkError, Result};
use crate::mempool::Mempool;
use crate::sys;

/// DPDK port id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl std::fmt::Display for PortId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port {}", self.0)
    }
}

/// How to configure a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    /// Receive queues (>= 1).
    pub rx_queues: u16,
    /// Transmit queues (>= 1).
    pub tx_queues: u16,
    /// Receive descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Transmit descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Spread flows over rx queues with a symmetric Toeplitz key, so both directions of a flow land
    /// on the same queue. Ignored (see [`PortInfo::rss_enabled`]) if the device has no RSS.
    pub symmetric_rss: bool,
    /// Enable promiscuous mode (devices that cannot filter, like most vdevs, accept everything anyway).
    pub promiscuous: bool,
    /// MTU to configure, `None` for the device default.
    pub mtu: Option<u16>,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            symmetric_rss: true,
            promiscuous: true,
            mtu: None,
        }
    }
}

/// What the device is and how it ended up configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortInfo {
    /// Driver name, e.g. `net_ring`, `net_af_packet`, `net_ice`.
    pub driver: String,
    /// Port MAC address.
    pub mac: [u8; 6],
    /// Device limit on rx queues.
    pub max_rx_queues: u16,
    /// Device limit on tx queues.
    pub max_tx_queues: u16,
    /// Whether RSS was actually configured (requested and supported by the device).
    pub rss_enabled: bool,
    /// Rx descriptors per queue after adjusting to the device's limits.
    pub rx_desc: u16,
    /// Tx descriptors per queue after adjusting to the device's limits.
    pub tx_desc: u16,
}

/// Port counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the device because the rx queues were full.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Rx mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Statistics of port `id`, or `None` if it is not a valid port. Callable from any thread (the
/// management thread only holds ids).
pub fn port_stats(id: PortId) -> Option<PortStats> {
    let mut raw = sys::rte_eth_stats::default();
    // SAFETY: raw is a valid, writable rte_eth_stats; DPDK validates the port id.
    let ret = unsafe { sys::rte_eth_stats_get(id.0, &mut raw) };
    (ret == 0).then_some(PortStats {
        ipackets: raw.ipackets,
        opackets: raw.opackets,
        ibytes: raw.ibytes,
        obytes: raw.obytes,
        imissed: raw.imissed,
        ierrors: raw.ierrors,
        oerrors: raw.oerrors,
        rx_nombuf: raw.rx_nombuf,
    })
}

/// Symmetric Toeplitz key: repeating 0x6d5a makes hash(src, dst) == hash(dst, src)
/// (Woo & Park, "Scalable TCP Session Monitoring with Symmetric Receive-side Scaling").
const SYMMETRIC_RSS_KEY: [u8; 64] = {
    let mut key = [0u8; 64];
    let mut i = 0;
    while i < key.len() {
        key[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    key
};
/// Key length used when a driver does not report one (the common 40-byte Toeplitz key).
const DEFAULT_RSS_KEY_LEN: u8 = 40;

/// A configured and started port. Stopped and closed when it and all its queue handles are dropped.
#[derive(Debug)]
pub struct Port {
    shared: Arc<PortShared>,
}

#[derive(Debug)]
struct PortShared {
    id: PortId,
    rx_taken: Box<[AtomicBool]>,
    tx_taken: Box<[AtomicBool]>,
    /// The rx rings hold mbufs of this pool until the port is closed.
    _pool: Mempool,
    _live: LiveObject,
}

impl Drop for PortShared {
    fn drop(&mut self) {
        // Errors cannot be reported from Drop and leave nothing to undo: the port is unusable either way.
        // SAFETY: no queue handle is left (they hold this Arc), so nobody polls the port any more.
        unsafe {
            sys::rte_eth_dev_stop(self.id.0);
            sys::rte_eth_dev_close(self.id.0);
        }
    }
}

impl Port {
    /// Looks up a port by device name (`"net_ring0"`, `"net_af_packet0"`, `"0000:01:00.0"`).
    ///
    /// # Errors
    /// [`DpdkError::NoSuchPortName`] if no attached device has this name.
    pub fn by_name(_eal: &Eal, name: &str) -> Result<PortId> {
        let c_name = CString::new(name).map_err(|_| DpdkError::InteriorNul {
            what: "port name",
            value: name.to_owned(),
        })?;
        let mut id = 0u16;
        // SAFETY: c_name is a valid C string and id a writable u16 for the duration of the call.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
        if ret != 0 {
            return Err(DpdkError::NoSuchPortName(name.to_owned()));
        }
        Ok(PortId(id))
    }

    /// Number of available ports.
    pub fn count(_eal: &Eal) -> u16 {
        // SAFETY: plain query, valid after rte_eal_init.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// Configures queues, RSS, MTU and promiscuous mode, then starts the port. Rx queues take their
    /// mbufs from `pool`, which the port keeps alive.
    ///
    /// RSS with a symmetric Toeplitz key over IP/TCP/UDP is configured when `cfg.symmetric_rss` is set
    /// and the device supports RSS for at least one of those flow types; otherwise the port uses
    /// plain multi-queue mode and `PortInfo::rss_enabled` is false.
    ///
    /// # Errors
    /// [`DpdkError::InvalidPort`], [`DpdkError::NoQueues`], [`DpdkError::TooManyQueues`], or
    /// [`DpdkError::Call`] naming the configuration step that failed (`EBUSY` from
    /// `rte_eth_dev_configure` means the port is already started).
    pub fn start(
        _eal: &Eal,
        id: PortId,
        cfg: &PortConfig,
        pool: &Mempool,
    ) -> Result<(Port, PortInfo)> {
        let port = id.0;
        // SAFETY: plain query; any id is accepted.
        if unsafe { sys::rte_eth_dev_is_valid_port(port) } == 0 {
            return Err(DpdkError::InvalidPort(port));
        }
        for (direction, n) in [("rx", cfg.rx_queues), ("tx", cfg.tx_queues)] {
            if n == 0 {
                return Err(DpdkError::NoQueues { port, direction });
            }
        }

        let mut dev = sys::rte_eth_dev_info::default();
        // SAFETY: dev is a valid, writable rte_eth_dev_info; the port id is valid.
        check(unsafe { sys::rte_eth_dev_info_get(port, &mut dev) }, || {
            format!("rte_eth_dev_info_get(port {port})")
        })?;
        let driver = if dev.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a non-null driver_name points to the driver's static NUL-terminated name.
            unsafe { CStr::from_ptr(dev.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        for (direction, requested, max) in [
            ("rx", cfg.rx_queues, dev.max_rx_queues),
            ("tx", cfg.tx_queues, dev.max_tx_queues),
        ] {
            if requested > max {
                return Err(DpdkError::TooManyQueues {
                    port,
                    direction,
                    requested,
                    max,
                    driver: driver.clone(),
                });
            }
        }

        let mut conf = sys::rte_eth_conf::default();
        // RTE_ETH_RSS_* come out of bindgen as u32: widen before masking with the u64 capabilities.
        let rss_hf = u64::from(sys::RTE_ETH_RSS_IP | sys::RTE_ETH_RSS_TCP | sys::RTE_ETH_RSS_UDP)
            & dev.flow_type_rss_offloads;
        let rss_enabled = cfg.symmetric_rss && rss_hf != 0;
        // DPDK copies the key during rte_eth_dev_configure; this local outlives that call.
        let mut rss_key = SYMMETRIC_RSS_KEY;
        if rss_enabled {
            conf.rxmode.mq_mode = sys::rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS;
            let key_len = match dev.hash_key_size {
                0 => DEFAULT_RSS_KEY_LEN,
                n => n.min(rss_key.len() as u8),
            };
            conf.rx_adv_conf.rss_conf = sys::rte_eth_rss_conf {
                rss_key: rss_key.as_mut_ptr(),
                rss_key_len: key_len,
                rss_hf,
            };
        }
        if let Some(mtu) = cfg.mtu {
            conf.rxmode.mtu = u32::from(mtu);
        }
        // SAFETY: conf (and the rss key it points to) is valid for the call; the port id is valid.
        let ret = unsafe { sys::rte_eth_dev_configure(port, cfg.rx_queues, cfg.tx_queues, &conf) };
        check(ret, || {
            format!(
                "rte_eth_dev_configure(port {port}, rxq {}, txq {})",
                cfg.rx_queues, cfg.tx_queues
            )
        })?;

        let (mut rx_desc, mut tx_desc) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: both pointers are valid writable u16s; the port is configured.
        let ret =
            unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port, &mut rx_desc, &mut tx_desc) };
        check(ret, || {
            format!("rte_eth_dev_adjust_nb_rx_tx_desc(port {port})")
        })?;
        // SAFETY: plain query on a valid port; -1 (SOCKET_ID_ANY) is passed through as DPDK expects.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port) } as u32;
        for q in 0..cfg.rx_queues {
            // SAFETY: the port is configured with > q rx queues; NULL rx_conf selects the driver
            // defaults; the pool outlives the queue because PortShared keeps a clone of it.
            let ret = unsafe {
                sys::rte_eth_rx_queue_setup(
                    port,
                    q,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            check(ret, || {
                format!("rte_eth_rx_queue_setup(port {port}, queue {q}, {rx_desc} desc)")
            })?;
        }
        for q in 0..cfg.tx_queues {
            // SAFETY: the port is configured with > q tx queues; NULL tx_conf selects the defaults.
            let ret =
                unsafe { sys::rte_eth_tx_queue_setup(port, q, tx_desc, socket, std::ptr::null()) };
            check(ret, || {
                format!("rte_eth_tx_queue_setup(port {port}, queue {q}, {tx_desc} desc)")
            })?;
        }
        if cfg.promiscuous {
            // SAFETY: plain control call on a valid port.
            let ret = unsafe { sys::rte_eth_promiscuous_enable(port) };
            // Devices without MAC filtering (most vdevs) report ENOTSUP: they already see every frame.
            if ret != -libc::ENOTSUP {
                check(ret, || format!("rte_eth_promiscuous_enable(port {port})"))?;
            }
        }
        // SAFETY: the port is configured and all its queues are set up.
        check(unsafe { sys::rte_eth_dev_start(port) }, || {
            format!("rte_eth_dev_start(port {port})")
        })?;

        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: mac is a valid writable rte_ether_addr. A failure leaves it zeroed, which is an
        // acceptable "unknown" for an informational field.
        unsafe { sys::rte_eth_macaddr_get(port, &mut mac) };

        let flags = |n: u16| (0..n).map(|_| AtomicBool::new(false)).collect();
        let port_handle = Port {
            shared: Arc::new(PortShared {
                id,
                rx_taken: flags(cfg.rx_queues),
                tx_taken: flags(cfg.tx_queues),
                _pool: pool.clone(),
                _live: LiveObject::new(),
            }),
        };
        let info = PortInfo {
            driver,
            mac: mac.addr_bytes,
            max_rx_queues: dev.max_rx_queues,
            max_tx_queues: dev.max_tx_queues,
            rss_enabled,
            rx_desc,
            tx_desc,
        };
        Ok((port_handle, info))
    }

    /// This port's id.
    pub fn id(&self) -> PortId {
        self.shared.id
    }

    /// Number of configured rx queues.
    pub fn rx_queues(&self) -> u16 {
        self.shared.rx_taken.len() as u16
    }

    /// Number of configured tx queues.
    pub fn tx_queues(&self) -> u16 {
        self.shared.tx_taken.len() as u16
    }

    /// Handle for rx queue `q`, exclusive until dropped.
    ///
    /// # Errors
    /// [`DpdkError::QueueUnavailable`] if `q` was not configured or its handle is still alive.
    pub fn try_rx_queue(&self, q: u16) -> Result<RxQueue> {
        claim(&self.shared.rx_taken, q).ok_or(DpdkError::QueueUnavailable {
            port: self.shared.id.0,
            direction: "rx",
            queue: q,
        })?;
        Ok(RxQueue {
            port: self.shared.id.0,
            queue: q,
            shared: self.shared.clone(),
            _not_sync: PhantomData,
        })
    }

    /// Handle for tx queue `q`, exclusive until dropped.
    ///
    /// # Errors
    /// [`DpdkError::QueueUnavailable`] if `q` was not configured or its handle is still alive.
    pub fn try_tx_queue(&self, q: u16) -> Result<TxQueue> {
        claim(&self.shared.tx_taken, q).ok_or(DpdkError::QueueUnavailable {
            port: self.shared.id.0,
            direction: "tx",
            queue: q,
        })?;
        Ok(TxQueue {
            port: self.shared.id.0,
            queue: q,
            shared: self.shared.clone(),
            _not_sync: PhantomData,
        })
    }

    /// Handle for rx queue `q` (setup-time convenience over [`Port::try_rx_queue`]).
    ///
    /// # Panics
    /// If `q` was not configured or its handle is still alive (a wiring bug, not a runtime condition).
    pub fn rx_queue(&self, q: u16) -> RxQueue {
        self.try_rx_queue(q).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Handle for tx queue `q` (setup-time convenience over [`Port::try_tx_queue`]).
    ///
    /// # Panics
    /// If `q` was not configured or its handle is still alive (a wiring bug, not a runtime condition).
    pub fn tx_queue(&self, q: u16) -> TxQueue {
        self.try_tx_queue(q).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Current counters; zeroes if DPDK cannot report them.
    pub fn stats(&self) -> PortStats {
        port_stats(self.shared.id).unwrap_or_default()
    }

    /// Whether the link is up (non-blocking query).
    pub fn link_up(&self) -> bool {
        let mut link = sys::rte_eth_link::default();
        // SAFETY: link is a valid writable rte_eth_link; the port is started.
        let ret = unsafe { sys::rte_eth_link_get_nowait(self.shared.id.0, &mut link) };
        ret == 0 && u32::from(link.link_status()) == sys::RTE_ETH_LINK_UP
    }
}

/// Marks queue `q` as handed out; `None` if it does not exist or already is.
fn claim(taken: &[AtomicBool], q: u16) -> Option<()> {
    let flag = taken.get(usize::from(q))?;
    (!flag.swap(true, Ordering::AcqRel)).then_some(())
}

fn release(taken: &[AtomicBool], q: u16) {
    if let Some(flag) = taken.get(usize::from(q)) {
        flag.store(false, Ordering::Release);
    }
}

/// Exclusive handle on one rx queue. `Send` (moved to its worker lcore), not `Sync`.
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    shared: Arc<PortShared>,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// Receives into `out`'s free room (holes are compacted first); returns how many arrived.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, out: &mut Burst<N>) -> usize {
        self.rx_burst_up_to(out, N)
    }

    /// As [`Self::rx_burst`], receiving at most `max` mbufs (the configured burst size).
    #[inline]
    pub fn rx_burst_up_to<const N: usize>(&mut self, out: &mut Burst<N>, max: usize) -> usize {
        let (slots, room) = out.free_room();
        let room = room.min(u16::try_from(max).unwrap_or(u16::MAX));
        if room == 0 {
            return 0;
        }
        // SAFETY: slots points to `room` writable, null slots of `out`; this handle is the only user
        // of (port, queue) and the port stays started while the handle (holding the Arc) exists.
        let n = unsafe { sys::fg_eth_rx_burst(self.port, self.queue, slots, room) };
        out.commit_filled(n);
        usize::from(n)
    }

    /// Port id.
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// Queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        release(&self.shared.rx_taken, self.queue);
    }
}

/// Exclusive handle on one tx queue. `Send`, not `Sync`.
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    shared: Arc<PortShared>,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    /// Sends the burst's mbufs; ownership of sent ones passes to the driver; the unsent tail is freed
    /// and its count returned (caller counts it as tx_full drops). Leaves `burst` empty.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> (u16, u16) {
        let (slots, n) = burst.filled();
        if n == 0 {
            return (0, 0);
        }
        // SAFETY: slots[..n] are owned, non-null mbufs (compacted); the driver takes ownership of the
        // first `sent` ones, which release_after_send forgets. Exclusive (port, queue) as for rx.
        let sent = unsafe { sys::fg_eth_tx_burst(self.port, self.queue, slots, n) };
        let dropped = burst.release_after_send(sent);
        (sent, dropped)
    }

    /// Port id.
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// Queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        release(&self.shared.tx_taken, self.queue);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference Toeplitz hash (Microsoft RSS spec): for every set input bit, XOR in the 32-bit
    /// window of the key starting at that bit.
    fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
        let mut hash = 0u32;
        for (byte_index, byte) in input.iter().enumerate() {
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    let start = byte_index * 8 + bit;
                    let window = (0..32).fold(0u32, |w, k| {
                        let pos = start + k;
                        let key_bit = (key[pos / 8] >> (7 - pos % 8)) & 1;
                        (w << 1) | u32::from(key_bit)
                    });
                    hash ^= window;
                }
            }
        }
        hash
    }

    fn tuple(src: &[u8], dst: &[u8], sport: u16, dport: u16) -> Vec<u8> {
        [src, dst, &sport.to_be_bytes(), &dport.to_be_bytes()].concat()
    }

    #[test]
    fn rss_key_hashes_both_directions_of_a_flow_alike() {
        let key = &SYMMETRIC_RSS_KEY[..usize::from(DEFAULT_RSS_KEY_LEN)];
        let v4 = [
            ([10, 0, 0, 1], [192, 168, 7, 9], 49152, 443),
            ([1, 2, 3, 4], [5, 6, 7, 8], 1, 65535),
        ];
        for (a, b, pa, pb) in v4 {
            assert_eq!(
                toeplitz(key, &tuple(&a, &b, pa, pb)),
                toeplitz(key, &tuple(&b, &a, pb, pa))
            );
        }
        let a6: Vec<u8> = (0..16).collect();
        let b6: Vec<u8> = (100..116).collect();
        assert_eq!(
            toeplitz(key, &tuple(&a6, &b6, 80, 5555)),
            toeplitz(key, &tuple(&b6, &a6, 5555, 80))
        );
        // Still a hash: different flows spread.
        assert_ne!(
            toeplitz(key, &tuple(&[10, 0, 0, 1], &[10, 0, 0, 2], 1000, 80)),
            toeplitz(key, &tuple(&[10, 0, 0, 1], &[10, 0, 0, 3], 1000, 80))
        );
    }

    #[test]
    fn queue_handles_are_exclusive_until_released() {
        let taken: Vec<AtomicBool> = (0..2).map(|_| AtomicBool::new(false)).collect();
        assert_eq!(claim(&taken, 1), Some(()));
        assert_eq!(claim(&taken, 1), None, "second claim of a live queue");
        assert_eq!(claim(&taken, 2), None, "queue not configured");
        release(&taken, 1);
        assert_eq!(claim(&taken, 1), Some(()));
    }
}
