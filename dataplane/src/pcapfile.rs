//! Minimal classic pcap (libpcap 2.4, not pcapng) reader and writer for Ethernet frames.
//!
//! The writer emits nanosecond-resolution files by default (magic `a1b23c4d`, lossless for
//! our `ts_ns` timestamps) or microsecond ones on request. The reader accepts both
//! resolutions in both byte orders and returns every timestamp in nanoseconds.
//! Used by the pcap-in/pcap-out tests and the traffic generator, never on the packet path.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::Path;

/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
const VERSION_MAJOR: u16 = 2;
const VERSION_MINOR: u16 = 4;
const GLOBAL_HEADER_LEN: usize = 24;
const RECORD_HEADER_LEN: usize = 16;

/// Snapshot length written in the global header, and the largest record the reader accepts
/// (libpcap's own maximum), so a corrupt length cannot make it allocate gigabytes.
pub const MAX_SNAPLEN: u32 = 262_144;

/// Resolution of the timestamps in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampPrecision {
    Micros,
    Nanos,
}

/// What can go wrong reading or writing a pcap file.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("pcap I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("not a classic pcap file (magic {0:#010x}; pcapng is not supported)")]
    BadMagic(u32),
    #[error("file ends inside the 24-byte pcap global header")]
    TruncatedGlobalHeader,
    #[error("unsupported pcap version {major}.{minor} (expected 2.4)")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("unsupported link type {0} (only LINKTYPE_ETHERNET = 1)")]
    UnsupportedLinkType(u32),
    #[error("record {index}: file ends inside the record {what}")]
    TruncatedRecord { index: u64, what: &'static str },
    #[error("record {index}: captured length {len} exceeds the {MAX_SNAPLEN}-byte maximum")]
    RecordTooLarge { index: u64, len: u32 },
    #[error("packet of {0} bytes exceeds the {MAX_SNAPLEN}-byte maximum")]
    PacketTooLarge(usize),
}

/// Writes Ethernet frames to a classic pcap stream.
#[derive(Debug)]
pub struct PcapWriter<W: Write> {
    out: W,
    precision: TimestampPrecision,
}

impl PcapWriter<BufWriter<File>> {
    /// Creates (truncates) `path` and writes a nanosecond-resolution global header.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, PcapError> {
        PcapWriter::new(BufWriter::new(File::create(path)?))
    }
}

impl<W: Write> PcapWriter<W> {
    /// Writes a nanosecond-resolution global header to `out`.
    pub fn new(out: W) -> Result<Self, PcapError> {
        PcapWriter::with_precision(out, TimestampPrecision::Nanos)
    }

    /// Writes a global header with the given timestamp resolution to `out`.
    pub fn with_precision(mut out: W, precision: TimestampPrecision) -> Result<Self, PcapError> {
        let magic = match precision {
            TimestampPrecision::Micros => MAGIC_MICROS,
            TimestampPrecision::Nanos => MAGIC_NANOS,
        };
        let mut header = [0u8; GLOBAL_HEADER_LEN];
        header[0..4].copy_from_slice(&magic.to_le_bytes());
        header[4..6].copy_from_slice(&VERSION_MAJOR.to_le_bytes());
        header[6..8].copy_from_slice(&VERSION_MINOR.to_le_bytes());
        // thiszone and sigfigs stay 0.
        header[16..20].copy_from_slice(&MAX_SNAPLEN.to_le_bytes());
        header[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&header)?;
        Ok(PcapWriter { out, precision })
    }

    /// Appends one frame captured at `ts_ns` nanoseconds since the Unix epoch.
    pub fn write_packet(&mut self, ts_ns: u64, frame: &[u8]) -> Result<(), PcapError> {
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&l| l <= MAX_SNAPLEN)
            .ok_or(PcapError::PacketTooLarge(frame.len()))?;
        let secs = (ts_ns / 1_000_000_000) as u32;
        let frac = match self.precision {
            TimestampPrecision::Micros => (ts_ns % 1_000_000_000) / 1_000,
            TimestampPrecision::Nanos => ts_ns % 1_000_000_000,
        } as u32;
        let mut record = [0u8; RECORD_HEADER_LEN];
        record[0..4].copy_from_slice(&secs.to_le_bytes());
        record[4..8].copy_from_slice(&frac.to_le_bytes());
        record[8..12].copy_from_slice(&len.to_le_bytes());
        record[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&record)?;
        self.out.write_all(frame)?;
        Ok(())
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) -> Result<(), PcapError> {
        Ok(self.out.flush()?)
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> Result<W, PcapError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Reads Ethernet frames from a classic pcap stream; iterates `(ts_ns, frame)`.
#[derive(Debug)]
pub struct PcapReader<R: Read> {
    input: R,
    big_endian: bool,
    precision: TimestampPrecision,
    next_index: u64,
    failed: bool,
}

impl PcapReader<BufReader<File>> {
    /// Opens `path` and validates its global header.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, PcapError> {
        PcapReader::new(BufReader::new(File::open(path)?))
    }
}

impl<R: Read> PcapReader<R> {
    /// Reads and validates the global header from `input`.
    pub fn new(mut input: R) -> Result<Self, PcapError> {
        let mut header = [0u8; GLOBAL_HEADER_LEN];
        match read_full(&mut input, &mut header)? {
            GLOBAL_HEADER_LEN => {}
            _ => return Err(PcapError::TruncatedGlobalHeader),
        }
        let magic_le = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let (big_endian, precision) = match (magic_le, magic_le.swap_bytes()) {
            (MAGIC_MICROS, _) => (false, TimestampPrecision::Micros),
            (MAGIC_NANOS, _) => (false, TimestampPrecision::Nanos),
            (_, MAGIC_MICROS) => (true, TimestampPrecision::Micros),
            (_, MAGIC_NANOS) => (true, TimestampPrecision::Nanos),
            _ => return Err(PcapError::BadMagic(magic_le)),
        };
        let reader = PcapReader {
            input,
            big_endian,
            precision,
            next_index: 0,
            failed: false,
        };
        let major = reader.u16_of([header[4], header[5]]);
        let minor = reader.u16_of([header[6], header[7]]);
        if major != VERSION_MAJOR {
            return Err(PcapError::UnsupportedVersion { major, minor });
        }
        let linktype = reader.u32_of([header[20], header[21], header[22], header[23]]);
        // The upper 16 bits may carry FCS information; the link type is the low 16.
        if linktype & 0xffff != LINKTYPE_ETHERNET {
            return Err(PcapError::UnsupportedLinkType(linktype));
        }
        Ok(reader)
    }

    /// Timestamp resolution of the file.
    pub fn precision(&self) -> TimestampPrecision {
        self.precision
    }

    /// Reads the next record: `Ok(None)` at a clean end of file.
    pub fn next_packet(&mut self) -> Result<Option<(u64, Vec<u8>)>, PcapError> {
        let index = self.next_index;
        let mut header = [0u8; RECORD_HEADER_LEN];
        match read_full(&mut self.input, &mut header)? {
            0 => return Ok(None),
            RECORD_HEADER_LEN => {}
            _ => {
                return Err(PcapError::TruncatedRecord {
                    index,
                    what: "header",
                })
            }
        }
        let secs = self.u32_of([header[0], header[1], header[2], header[3]]);
        let frac = self.u32_of([header[4], header[5], header[6], header[7]]);
        let incl_len = self.u32_of([header[8], header[9], header[10], header[11]]);
        if incl_len > MAX_SNAPLEN {
            return Err(PcapError::RecordTooLarge {
                index,
                len: incl_len,
            });
        }
        let mut data = vec![0u8; incl_len as usize];
        if read_full(&mut self.input, &mut data)? != data.len() {
            return Err(PcapError::TruncatedRecord {
                index,
                what: "data",
            });
        }
        let frac_ns = match self.precision {
            TimestampPrecision::Micros => u64::from(frac) * 1_000,
            TimestampPrecision::Nanos => u64::from(frac),
        };
        self.next_index += 1;
        Ok(Some((u64::from(secs) * 1_000_000_000 + frac_ns, data)))
    }

    fn u16_of(&self, b: [u8; 2]) -> u16 {
        if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    }

    fn u32_of(&self, b: [u8; 4]) -> u32 {
        if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    }
}

impl<R: Read> Iterator for PcapReader<R> {
    type Item = Result<(u64, Vec<u8>), PcapError>;

    /// Yields records until the end of file; after an error, yields nothing more.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_packet().transpose();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}

/// Reads until `buf` is full or end of file; returns how many bytes were read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod test {
    use super::*;

    fn frames() -> Vec<(u64, Vec<u8>)> {
        vec![
            (1_700_000_000_123_456_789, vec![0xaa; 60]),
            (1_700_000_001_000_000_001, (0..=255).collect()),
            (5, Vec::new()),
        ]
    }

    #[test]
    fn round_trip_nanos() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        for (ts, f) in frames() {
            w.write_packet(ts, &f).unwrap();
        }
        let bytes = w.into_inner().unwrap();
        assert_eq!(&bytes[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        let r = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(r.precision(), TimestampPrecision::Nanos);
        let read: Vec<_> = r.collect::<Result<_, _>>().unwrap();
        assert_eq!(read, frames());
    }

    #[test]
    fn round_trip_micros_truncates_to_microseconds() {
        let mut w = PcapWriter::with_precision(Vec::new(), TimestampPrecision::Micros).unwrap();
        w.write_packet(1_700_000_000_123_456_789, &[1, 2, 3])
            .unwrap();
        let bytes = w.into_inner().unwrap();
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert_eq!(
            r.next_packet().unwrap(),
            Some((1_700_000_000_123_456_000, vec![1, 2, 3]))
        );
        assert_eq!(r.next_packet().unwrap(), None);
    }

    /// A big-endian microsecond file, as written by a big-endian host, byte by byte.
    #[test]
    fn reads_big_endian() {
        #[rustfmt::skip]
        let bytes = [
            0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 1,
            0, 0, 0, 10, 0, 0, 0, 7, 0, 0, 0, 2, 0, 0, 0, 2, 0xbe, 0xef,
        ];
        let read: Vec<_> = PcapReader::new(&bytes[..])
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(read, vec![(10_000_007_000, vec![0xbe, 0xef])]);
    }

    #[test]
    fn file_round_trip() {
        let path = std::env::temp_dir().join(format!("flowgate-pcap-{}.pcap", std::process::id()));
        let mut w = PcapWriter::create(&path).unwrap();
        w.write_packet(42, &[9; 64]).unwrap();
        w.flush().unwrap();
        drop(w);
        let read: Vec<_> = PcapReader::open(&path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read, vec![(42, vec![9; 64])]);
    }

    fn header_with(magic: [u8; 4], major: u16, linktype: u32) -> Vec<u8> {
        let mut h = magic.to_vec();
        h.extend_from_slice(&major.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&MAX_SNAPLEN.to_le_bytes());
        h.extend_from_slice(&linktype.to_le_bytes());
        h
    }

    #[test]
    fn header_errors() {
        let ok = MAGIC_NANOS.to_le_bytes();
        assert!(matches!(
            PcapReader::new(&header_with(ok, 2, 1)[..10]),
            Err(PcapError::TruncatedGlobalHeader)
        ));
        assert!(matches!(
            PcapReader::new(&header_with([0x0a, 0x0d, 0x0d, 0x0a], 2, 1)[..]),
            Err(PcapError::BadMagic(0x0a0d_0d0a))
        ));
        assert!(matches!(
            PcapReader::new(&header_with(ok, 3, 1)[..]),
            Err(PcapError::UnsupportedVersion { major: 3, minor: 4 })
        ));
        assert!(matches!(
            PcapReader::new(&header_with(ok, 2, 101)[..]),
            Err(PcapError::UnsupportedLinkType(101))
        ));
    }

    #[test]
    fn record_errors_stop_the_iterator() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write_packet(1, &[1; 10]).unwrap();
        let bytes = w.into_inner().unwrap();

        let mut r = PcapReader::new(&bytes[..bytes.len() - 1]).unwrap();
        assert!(matches!(
            r.next(),
            Some(Err(PcapError::TruncatedRecord {
                index: 0,
                what: "data"
            }))
        ));
        assert!(r.next().is_none());

        let r = PcapReader::new(&bytes[..GLOBAL_HEADER_LEN + 5]).unwrap();
        let errs: Vec<_> = r.collect();
        assert!(matches!(
            errs[..],
            [Err(PcapError::TruncatedRecord { what: "header", .. })]
        ));

        let mut huge = bytes.clone();
        huge[GLOBAL_HEADER_LEN + 8..GLOBAL_HEADER_LEN + 12]
            .copy_from_slice(&(MAX_SNAPLEN + 1).to_le_bytes());
        assert!(matches!(
            PcapReader::new(&huge[..]).unwrap().next_packet(),
            Err(PcapError::RecordTooLarge { index: 0, .. })
        ));
    }

    #[test]
    fn oversized_packet_is_refused() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        assert!(matches!(
            w.write_packet(0, &vec![0; MAX_SNAPLEN as usize + 1]),
            Err(PcapError::PacketTooLarge(_))
        ));
    }
}
