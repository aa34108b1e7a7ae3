//! Opaque pagination tokens. A token is base64 text (so it fits AWS's `PaginationToken`
//! pattern `^[0-9A-Za-z:\/+=]+$`) of a small versioned cursor; anything that does not decode
//! to a cursor of the expected kind is refused, so a tampered token is an error, not a
//! silently wrong page.

use super::model::OpKind;

/// Where the next page of `ListFlowOperations` starts: strictly after this item in the
/// newest-first order. Keyed by item, not offset, so pages stay stable while new operations
/// arrive or old ones are purged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListCursor {
    pub kind: Option<OpKind>,
    pub requested_at_us: u64,
    pub id: String,
}

/// Where the next page of `ListFlowOperationResults` starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultsCursor {
    pub id: String,
    pub offset: u64,
}

fn kind_tag(k: Option<OpKind>) -> &'static str {
    match k {
        None => "any",
        Some(OpKind::Capture) => "capture",
        Some(OpKind::Flush) => "flush",
    }
}

impl ListCursor {
    pub fn encode(&self) -> String {
        b64_encode(
            format!(
                "L1|{}|{}|{}",
                kind_tag(self.kind),
                self.requested_at_us,
                self.id
            )
            .as_bytes(),
        )
    }

    pub fn decode(token: &str) -> Option<ListCursor> {
        let text = String::from_utf8(b64_decode(token)?).ok()?;
        let mut parts = text.split('|');
        if parts.next()? != "L1" {
            return None;
        }
        let kind = match parts.next()? {
            "any" => None,
            k => Some(OpKind::parse(k)?),
        };
        let requested_at_us = parts.next()?.parse().ok()?;
        let id = parts.next()?.to_string();
        if parts.next().is_some() || !super::is_operation_id(&id) {
            return None;
        }
        Some(ListCursor {
            kind,
            requested_at_us,
            id,
        })
    }
}

impl ResultsCursor {
    pub fn encode(&self) -> String {
        b64_encode(format!("R1|{}|{}", self.id, self.offset).as_bytes())
    }

    pub fn decode(token: &str) -> Option<ResultsCursor> {
        let text = String::from_utf8(b64_decode(token)?).ok()?;
        let mut parts = text.split('|');
        if parts.next()? != "R1" {
            return None;
        }
        let id = parts.next()?.to_string();
        let offset = parts.next()?.parse().ok()?;
        if parts.next().is_some() || !super::is_operation_id(&id) {
            return None;
        }
        Some(ResultsCursor { id, offset })
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn b64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Strict standard base64 (padding required); `None` on anything else.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(4) {
        return None;
    }
    let val = |c: u8| ALPHABET.iter().position(|a| *a == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let last = bytes.len() / 4 - 1;
    for (i, q) in bytes.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && i != last) {
            return None;
        }
        let mut n = 0u32;
        for c in &q[..4 - pad] {
            n = (n << 6) | val(*c)?;
        }
        n <<= 6 * pad as u32;
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    #[test]
    fn base64_known_vectors() {
        assert_eq!(b64_encode(b""), "");
        assert_eq!(b64_encode(b"f"), "Zg==");
        assert_eq!(b64_encode(b"fo"), "Zm8=");
        assert_eq!(b64_encode(b"foo"), "Zm9v");
        assert_eq!(b64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64_decode("Zm9vYg==").unwrap(), b"foob");
        for bad in ["", "Zg=", "Z===", "Zg==Zg==", "Zm9*", "Zm9v\n"] {
            assert!(b64_decode(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = ListCursor {
            kind: Some(OpKind::Flush),
            requested_at_us: 1_700_000_000_123_456,
            id: ID.into(),
        };
        let t = c.encode();
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=:".contains(&b)));
        assert_eq!(ListCursor::decode(&t), Some(c));
        let r = ResultsCursor {
            id: ID.into(),
            offset: 200,
        };
        assert_eq!(ResultsCursor::decode(&r.encode()), Some(r.clone()));
        // One kind's token is not the other's.
        assert!(ListCursor::decode(&r.encode()).is_none());
        for bad in [
            "garbage",
            "",
            &b64_encode(b"R1|not-an-id|5"),
            &b64_encode(b"R1|x"),
        ] {
            assert!(ResultsCursor::decode(bad).is_none(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn base64_round_trips(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            let e = b64_encode(&data);
            if data.is_empty() {
                prop_assert!(b64_decode(&e).is_none());
            } else {
                prop_assert_eq!(b64_decode(&e).unwrap(), data);
            }
        }

        #[test]
        fn decoding_arbitrary_text_never_panics(s in "\\PC{0,80}") {
            let _ = ListCursor::decode(&s);
            let _ = ResultsCursor::decode(&s);
        }
    }
}
