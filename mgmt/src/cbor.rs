//! CBOR (RFC 8949, via `ciborium`) for the Smithy RPC v2 CBOR protocol, mapped onto
//! `serde_json::Value` so both AWS protocols share one request handler: [`decode`] turns a
//! request body into the JSON value the JSON 1.0 protocol would have carried, [`encode`]
//! writes a response value back as CBOR.
//!
//! What this module adds to the codec is the mapping: byte strings become base64 text (as
//! blobs are in JSON 1.0), epoch-time tags (1) their number, other tags their content;
//! map keys must be text, floats finite. Hostile input gets an error, never a panic: nesting
//! is bounded, trailing bytes are refused, and the decoded items are limited to a budget
//! proportional to the body (an item takes at least one byte).

use ciborium::value::{Integer, Value as Cbor};
use serde_json::{Map, Number, Value};

/// Deeper nesting than any request shape of the API needs.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    #[error("CBOR ends early")]
    Truncated,
    #[error("CBOR item at byte {0} is not well-formed")]
    Malformed(usize),
    #[error("CBOR nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("CBOR map key is not a text string")]
    KeyNotText,
    #[error("CBOR float is not finite")]
    NotFinite,
    #[error("CBOR integer {0} is out of range")]
    OutOfRange(i128),
    #[error("CBOR holds more items than its {0} bytes can")]
    TooManyItems(usize),
    #[error("{0} bytes follow the CBOR item")]
    Trailing(usize),
}

/// Decodes exactly one CBOR data item.
pub fn decode(bytes: &[u8]) -> Result<Value, CborError> {
    let mut rest = bytes;
    let item: Cbor = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH).map_err(
        |e| match e {
            ciborium::de::Error::Io(_) => CborError::Truncated,
            ciborium::de::Error::Syntax(at) => CborError::Malformed(at),
            ciborium::de::Error::Semantic(at, _) => CborError::Malformed(at.unwrap_or(0)),
            ciborium::de::Error::RecursionLimitExceeded => CborError::TooDeep,
        },
    )?;
    if !rest.is_empty() {
        return Err(CborError::Trailing(rest.len()));
    }
    let mut budget = bytes.len();
    to_json(item, &mut budget)
}

fn to_json(item: Cbor, budget: &mut usize) -> Result<Value, CborError> {
    *budget = budget
        .checked_sub(1)
        .ok_or(CborError::TooManyItems(*budget))?;
    Ok(match item {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => integer(i)?,
        Cbor::Float(f) if f.is_finite() => Number::from_f64(f).map_or(Value::Null, Value::Number),
        Cbor::Float(_) => return Err(CborError::NotFinite),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bytes(b) => Value::String(base64(&b)),
        Cbor::Tag(_, inner) => to_json(*inner, budget)?,
        Cbor::Array(items) => Value::Array(
            items
                .into_iter()
                .map(|i| to_json(i, budget))
                .collect::<Result<_, _>>()?,
        ),
        Cbor::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let Cbor::Text(k) = k else {
                    return Err(CborError::KeyNotText);
                };
                map.insert(k, to_json(v, budget)?);
            }
            Value::Object(map)
        }
        _ => return Err(CborError::Malformed(0)),
    })
}

fn integer(i: Integer) -> Result<Value, CborError> {
    let wide = i128::from(i);
    if let Ok(u) = u64::try_from(wide) {
        Ok(Value::from(u))
    } else if let Ok(n) = i64::try_from(wide) {
        Ok(Value::from(n))
    } else {
        Err(CborError::OutOfRange(wide))
    }
}

/// Encodes `v`; map members named in `timestamps` holding a number become epoch-time
/// tags (tag 1), as the protocol carries timestamps.
pub fn encode(v: &Value, timestamps: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    // Writing a value tree to a Vec cannot fail.
    let _ = ciborium::ser::into_writer(&to_cbor(v, timestamps), &mut out);
    out
}

fn to_cbor(v: &Value, timestamps: &[&str]) -> Cbor {
    match v {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Number(n) => number(n),
        Value::String(s) => Cbor::Text(s.clone()),
        Value::Array(items) => Cbor::Array(items.iter().map(|i| to_cbor(i, timestamps)).collect()),
        Value::Object(map) => Cbor::Map(
            map.iter()
                .map(|(k, v)| {
                    let value = match v {
                        Value::Number(n) if timestamps.contains(&k.as_str()) => {
                            Cbor::Tag(1, Box::new(number(n)))
                        }
                        _ => to_cbor(v, timestamps),
                    };
                    (Cbor::Text(k.clone()), value)
                })
                .collect(),
        ),
    }
}

fn number(n: &Number) -> Cbor {
    if let Some(u) = n.as_u64() {
        Cbor::Integer(u.into())
    } else if let Some(i) = n.as_i64() {
        Cbor::Integer(i.into())
    } else {
        Cbor::Float(n.as_f64().unwrap_or(0.0))
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
                assert_eq!(got, Err(CborError::KeyNotText), "{h}");
            } else {
                assert_eq!(got, Ok(want), "{h}");
            }
        }
    }

    #[test]
    fn refuses_hostile_input_without_panicking_or_allocating_it() {
        for (h, want) in [
            ("", Some(CborError::Truncated)),
            ("1a0000", Some(CborError::Truncated)),
            ("5bffffffffffffffff", None),
            ("9bffffffffffffffff", None),
            ("bbffffffffffffffff", None),
            ("1c", None),
            ("1f", None),
            ("62c328", None),
            ("5f6161ff", None),
            ("f97c00", Some(CborError::NotFinite)),
            ("0000", Some(CborError::Trailing(1))),
            ("9f01", Some(CborError::Truncated)),
            (
                "3bffffffffffffffff",
                Some(CborError::OutOfRange(-(1i128 << 64))),
            ),
        ] {
            let got = decode(&hex(h));
            match want {
                Some(want) => assert_eq!(got, Err(want), "{h}"),
                None => assert!(got.is_err(), "{h}: {got:?}"),
            }
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
