//! The subset of CBOR (RFC 8949) that the Smithy RPC v2 CBOR protocol uses, mapped onto
//! `serde_json::Value` so both AWS protocols share one request handler: the decoder turns a
//! request body into the JSON value the JSON 1.0 protocol would have carried, the encoder
//! writes a response value back as CBOR.
//!
//! Decoding accepts every major type and both definite and indefinite lengths (SDKs emit
//! either). Byte strings become base64 text (as blobs are in JSON 1.0), epoch-time tags
//! (1) their number, other tags their content; `undefined` is null. Hostile input gets an
//! error, never a panic or an allocation larger than the input: lengths are checked
//! against the bytes left, nesting is bounded, and trailing bytes are refused.

use serde_json::{Map, Number, Value};

/// Deeper nesting than any request shape of the API needs.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    #[error("CBOR ends early at byte {0}")]
    Truncated(usize),
    #[error("CBOR item at byte {0} is not well-formed")]
    Malformed(usize),
    #[error("CBOR nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("CBOR map key at byte {0} is not a text string")]
    KeyNotText(usize),
    #[error("CBOR text at byte {0} is not valid UTF-8")]
    BadUtf8(usize),
    #[error("CBOR float at byte {0} is not finite")]
    NotFinite(usize),
    #[error("{0} bytes follow the CBOR item")]
    Trailing(usize),
}

/// Decodes exactly one CBOR data item.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let mut d = Decoder { b: bytes, pos: 0 };
    let v = d.item(0)?;
    match bytes.len() - d.pos {
        0 => Ok(v),
        n => Err(CborError::Trailing(n)),
    }
}

/// Encodes `v`; map members named in `timestamps` holding a number become epoch-time
/// tags (tag 1), as the protocol carries timestamps.
pub fn encode(v: &Value, timestamps: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_value(&mut out, v, timestamps);
    out
}

struct Decoder<'a> {
    b: &'a [u8],
    pos: usize,
}

/// One item's head: major type, and the argument (or `None` for indefinite length).
struct Head {
    major: u8,
    info: u8,
    arg: Option<u64>,
    at: usize,
}

const BREAK: u8 = 0xff;

impl Decoder<'_> {
    fn byte(&mut self) -> Result<u8, CborError> {
        let b = *self.b.get(self.pos).ok_or(CborError::Truncated(self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<&[u8], CborError> {
        let left = (self.b.len() - self.pos) as u64;
        if n > left {
            return Err(CborError::Truncated(self.b.len()));
        }
        let s = &self.b[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn head(&mut self) -> Result<Head, CborError> {
        let at = self.pos;
        let ib = self.byte()?;
        let (major, info) = (ib >> 5, ib & 0x1f);
        let arg = match info {
            0..=23 => Some(u64::from(info)),
            24..=27 => {
                let n = 1usize << (info - 24);
                let mut x = 0u64;
                for &b in self.take(n as u64)? {
                    x = x << 8 | u64::from(b);
                }
                Some(x)
            }
            31 if matches!(major, 2..=5 | 7) => None,
            _ => return Err(CborError::Malformed(at)),
        };
        Ok(Head {
            major,
            info,
            arg,
            at,
        })
    }

    fn at_break(&mut self) -> Result<bool, CborError> {
        if *self.b.get(self.pos).ok_or(CborError::Truncated(self.pos))? == BREAK {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        if depth > MAX_DEPTH {
            return Err(CborError::TooDeep);
        }
        let h = self.head()?;
        match (h.major, h.arg) {
            (0, Some(n)) => Ok(Value::from(n)),
            (1, Some(n)) => Ok(match i64::try_from(n) {
                Ok(n) => Value::from(-1 - n),
                // Below i64::MIN: only representable as a float.
                Err(_) => float(-1.0 - n as f64, h.at)?,
            }),
            (2, _) => {
                let bytes = self.string_bytes(&h, 2)?;
                Ok(Value::String(base64(&bytes)))
            }
            (3, _) => {
                let bytes = self.string_bytes(&h, 3)?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| CborError::BadUtf8(h.at))
            }
            (4, n) => {
                let mut items = Vec::new();
                match n {
                    Some(n) => {
                        // Each item takes at least one byte: a count beyond the input is a lie.
                        if n > (self.b.len() - self.pos) as u64 {
                            return Err(CborError::Truncated(self.b.len()));
                        }
                        for _ in 0..n {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                    None => {
                        while !self.at_break()? {
                            items.push(self.item(depth + 1)?);
                        }
                    }
                }
                Ok(Value::Array(items))
            }
            (5, n) => {
                let mut map = Map::new();
                let mut member = |d: &mut Self| -> Result<(), CborError> {
                    let at = d.pos;
                    let Value::String(k) = d.item(depth + 1)? else {
                        return Err(CborError::KeyNotText(at));
                    };
                    let v = d.item(depth + 1)?;
                    map.insert(k, v);
                    Ok(())
                };
                match n {
                    Some(n) => {
                        if n > (self.b.len() - self.pos) as u64 / 2 {
                            return Err(CborError::Truncated(self.b.len()));
                        }
                        for _ in 0..n {
                            member(self)?;
                        }
                    }
                    None => {
                        while !self.at_break()? {
                            member(self)?;
                        }
                    }
                }
                Ok(Value::Object(map))
            }
            // Tags: epoch time (1) is its number; others carry no meaning for this API.
            (6, Some(_)) => self.item(depth + 1),
            (7, _) => self.simple(&h),
            _ => Err(CborError::Malformed(h.at)),
        }
    }

    /// The bytes of a (possibly chunked) byte or text string.
    fn string_bytes(&mut self, h: &Head, major: u8) -> Result<Vec<u8>, CborError> {
        match h.arg {
            Some(n) => Ok(self.take(n)?.to_vec()),
            None => {
                let mut out = Vec::new();
                while !self.at_break()? {
                    let c = self.head()?;
                    // Chunks are definite-length strings of the same major type.
                    let (true, Some(n)) = (c.major == major, c.arg) else {
                        return Err(CborError::Malformed(c.at));
                    };
                    out.extend_from_slice(self.take(n)?);
                }
                Ok(out)
            }
        }
    }

    fn simple(&mut self, h: &Head) -> Result<Value, CborError> {
        let bits = h.arg.ok_or(CborError::Malformed(h.at))?;
        match h.info {
            20 => Ok(Value::Bool(false)),
            21 => Ok(Value::Bool(true)),
            22 | 23 => Ok(Value::Null),
            25 => float(half_to_f64(bits as u16), h.at),
            26 => float(f64::from(f32::from_bits(bits as u32)), h.at),
            27 => float(f64::from_bits(bits), h.at),
            _ => Err(CborError::Malformed(h.at)),
        }
    }
}

fn float(x: f64, at: usize) -> Result<Value, CborError> {
    Number::from_f64(x)
        .map(Value::Number)
        .ok_or(CborError::NotFinite(at))
}

fn half_to_f64(h: u16) -> f64 {
    let exp = (h >> 10) & 0x1f;
    let mant = f64::from(h & 0x3ff);
    let v = match exp {
        0 => mant * 2f64.powi(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (mant + 1024.0) * 2f64.powi(i32::from(e) - 25),
    };
    if h & 0x8000 != 0 {
        -v
    } else {
        v
    }
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                s.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn write_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn write_number(out: &mut Vec<u8>, n: &Number) {
    if let Some(u) = n.as_u64() {
        write_head(out, 0, u);
    } else if let Some(i) = n.as_i64() {
        // Negative: CBOR stores -1 - n.
        write_head(out, 1, (-1 - i) as u64);
    } else {
        out.push(0xfb);
        out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_bits().to_be_bytes());
    }
}

fn write_value(out: &mut Vec<u8>, v: &Value, timestamps: &[&str]) {
    match v {
        Value::Null => out.push(0xf6),
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Number(n) => write_number(out, n),
        Value::String(s) => {
            write_head(out, 3, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            write_head(out, 4, items.len() as u64);
            for i in items {
                write_value(out, i, timestamps);
            }
        }
        Value::Object(map) => {
            write_head(out, 5, map.len() as u64);
            for (k, v) in map {
                write_head(out, 3, k.len() as u64);
                out.extend_from_slice(k.as_bytes());
                if let (true, Value::Number(n)) = (timestamps.contains(&k.as_str()), v) {
                    write_head(out, 6, 1);
                    write_number(out, n);
                } else {
                    write_value(out, v, timestamps);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn decodes_the_rfc_8949_appendix_a_examples() {
        for (h, want) in [
            ("00", json!(0)),
            ("17", json!(23)),
            ("1818", json!(24)),
            ("1903e8", json!(1000)),
            ("1b000000e8d4a51000", json!(1_000_000_000_000u64)),
            ("20", json!(-1)),
            ("3903e7", json!(-1000)),
            ("f90000", json!(0.0)),
            ("f93c00", json!(1.0)),
            ("f97bff", json!(65504.0)),
            ("fa47c35000", json!(100000.0)),
            ("fb3ff199999999999a", json!(1.1)),
            ("f4", json!(false)),
            ("f5", json!(true)),
            ("f6", Value::Null),
            ("c11a514b67b0", json!(1363896240)),
            ("c1fb41d452d9ec200000", json!(1363896240.5)),
            ("4401020304", json!("AQIDBA==")),
            ("6449455446", json!("IETF")),
            ("62225c", json!("\"\\")),
            ("83010203", json!([1, 2, 3])),
            ("a201020304", Value::Null), // integer keys: refused below
            ("a26161016162820203", json!({"a": 1, "b": [2, 3]})),
            ("5f42010243030405ff", json!("AQIDBAU=")),
            ("7f657374726561646d696e67ff", json!("streaming")),
            ("9f018202039f0405ffff", json!([1, [2, 3], [4, 5]])),
            ("bf61610161629f0203ffff", json!({"a": 1, "b": [2, 3]})),
        ] {
            let got = decode(&hex(h));
            if want.is_null() && h != "f6" {
                assert!(matches!(got, Err(CborError::KeyNotText(_))), "{h}");
            } else {
                assert_eq!(got, Ok(want), "{h}");
            }
        }
    }

    #[test]
    fn refuses_hostile_input_without_panicking_or_allocating_it() {
        for (h, want) in [
            ("", CborError::Truncated(0)),
            ("1a0000", CborError::Truncated(3)),
            ("5bffffffffffffffff", CborError::Truncated(9)),
            ("9bffffffffffffffff", CborError::Truncated(9)),
            ("bbffffffffffffffff", CborError::Truncated(9)),
            ("1c", CborError::Malformed(0)),
            ("1f", CborError::Malformed(0)),
            ("62c328", CborError::BadUtf8(0)),
            ("5f6161ff", CborError::Malformed(1)),
            ("f97c00", CborError::NotFinite(0)),
            ("0000", CborError::Trailing(1)),
            ("9f01", CborError::Truncated(2)),
        ] {
            assert_eq!(decode(&hex(h)), Err(want), "{h}");
        }
        let deep = [vec![0x81u8; 100], vec![0]].concat();
        assert_eq!(decode(&deep), Err(CborError::TooDeep));
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e300f64..1e300).prop_map(|f| json!(f)),
            ".{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,12}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn every_value_round_trips(v in json_value()) {
            proptest::prop_assert_eq!(decode(&encode(&v, &[])), Ok(v));
        }
    }

    #[test]
    fn encodes_what_it_decodes_and_tags_timestamps() {
        let v = json!({
            "FlowOperationId": "0f0e0d0c-0b0a-0908-0706-050403020100",
            "FlowRequestTimestamp": 1_700_000_000u64,
            "Flows": [{"Age": 3, "PacketCount": 1_000_000, "ByteCount": 5_000_000_000u64}],
            "Neg": -1000, "Half": 0.5, "None": null, "Yes": true,
        });
        let bytes = encode(&v, &["FlowRequestTimestamp"]);
        assert_eq!(decode(&bytes), Ok(v));
        let ts = encode(
            &json!({"FlowRequestTimestamp": 1363896240}),
            &["FlowRequestTimestamp"],
        );
        assert!(ts.windows(6).any(|w| w == hex("c11a514b67b0")));
    }
}
