//! The management side's HTTP/1.1 transport on plain threads: a hardened server for the
//! AWS-compatible and native APIs ([`server`]), a minimal blocking client for `flowgatectl`
//! and tests ([`client`]), the shared message framing ([`conn`]), date formats ([`date`]) and
//! request/operation id generation ([`uuid_v4`]).

pub mod client;
mod conn;
pub mod date;
pub mod server;

pub use client::{request, ClientError, ClientResponse, Url};
pub use server::{Handler, LimitKind, Request, Response, Server, ServerLimits};

use std::fs::File;
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A random (version 4, RFC 9562) UUID in lowercase hyphenated form, 36 characters. Used for
/// `x-amzn-RequestId` and operation ids.
///
/// Randomness comes from `/dev/urandom`. Should that ever be unreadable, the id is derived by
/// hashing the clock, the process id and a counter: still unique within this appliance, which
/// is all request ids need, but not unpredictable.
pub fn uuid_v4() -> String {
    let mut bytes = [0u8; 16];
    if File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_err()
    {
        bytes = fallback_unique_bytes();
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
    let mut out = String::with_capacity(36);
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

fn fallback_unique_bytes() -> [u8; 16] {
    use sha2::{Digest, Sha256};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut hasher = Sha256::new();
    hasher.update(nanos.to_le_bytes());
    hasher.update(std::process::id().to_le_bytes());
    hasher.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn uuid_v4_has_the_canonical_shape_and_version_bits() {
        let id = uuid_v4();
        assert_eq!(id.len(), 36);
        let dashes: Vec<usize> = id.match_indices('-').map(|(i, _)| i).collect();
        assert_eq!(dashes, [8, 13, 18, 23]);
        assert!(id
            .chars()
            .all(|c| c == '-' || matches!(c, '0'..='9' | 'a'..='f')));
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"));
    }

    #[test]
    fn uuid_v4_does_not_repeat() {
        let ids: HashSet<String> = (0..1000).map(|_| uuid_v4()).collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn fallback_bytes_differ_between_calls() {
        assert_ne!(fallback_unique_bytes(), fallback_unique_bytes());
    }
}
