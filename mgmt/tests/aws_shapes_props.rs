//! Every shape of the service model that Flowgate serves (each operation's input and
//! output, and everything they reach) round-trips through AWS JSON 1.0 and through Smithy
//! RPC v2 CBOR unchanged: random values are generated from the embedded model itself
//! (structures with any subset of members, lists, maps, enums, bounded integers, strings,
//! booleans, timestamps), encoded and decoded both ways, and compared. The model validator
//! also judges the CBOR-decoded value exactly as it judges the original.

use mgmt::cbor;
use mgmt::resources::model::model;
use proptest::prelude::*;
use serde_json::{Map, Value};

const MODEL: &str = include_str!("../aws-model/network-firewall.json");
const TIMESTAMPS: &[&str] = &["FlowRequestTimestamp", "LastModifiedTime"];

/// A small deterministic generator (xorshift), seeded by proptest.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
}

fn value(m: &Value, shape: &str, g: &mut Gen, depth: u32) -> Value {
    let s = &m["shapes"][shape];
    let min = s["min"].as_f64();
    let max = s["max"].as_f64();
    match s["type"].as_str().unwrap_or_default() {
        "structure" => {
            let mut out = Map::new();
            if let Some(members) = s["members"].as_object() {
                for (name, r) in members {
                    let required = s["required"]
                        .as_array()
                        .is_some_and(|req| req.iter().any(|x| x == name));
                    if depth < 6 && (required || g.below(2) == 0) {
                        out.insert(
                            name.clone(),
                            value(m, r["shape"].as_str().unwrap(), g, depth + 1),
                        );
                    }
                }
            }
            Value::Object(out)
        }
        "list" => {
            let n = if depth >= 6 { 0 } else { g.below(3) };
            let n = n
                .max(min.unwrap_or(0.0) as u64)
                .min(max.unwrap_or(3.0) as u64);
            let member = s["member"]["shape"].as_str().unwrap();
            Value::Array((0..n).map(|_| value(m, member, g, depth + 1)).collect())
        }
        "map" => {
            let n = if depth >= 6 { 0 } else { g.below(3) };
            let v = s["value"]["shape"].as_str().unwrap();
            Value::Object(
                (0..n)
                    .map(|i| (format!("K{i}x{}", g.below(100)), value(m, v, g, depth + 1)))
                    .collect(),
            )
        }
        "string" => {
            if let Some(values) = s["enum"].as_array() {
                return values[g.below(values.len() as u64) as usize].clone();
            }
            let len = 1 + g.below(12);
            let alphabet = "abcXYZ019-_:/ é€\"\\\n";
            let chars: Vec<char> = alphabet.chars().collect();
            Value::from(
                (0..len)
                    .map(|_| chars[g.below(chars.len() as u64) as usize])
                    .collect::<String>(),
            )
        }
        "integer" | "long" => {
            let lo = min.unwrap_or(-1e6) as i64;
            let hi = max.unwrap_or(1e9) as i64;
            Value::from(lo + g.below((hi - lo + 1) as u64) as i64)
        }
        "boolean" => Value::Bool(g.below(2) == 0),
        // Epoch seconds, whole or with milliseconds.
        "timestamp" => {
            let secs = 1_700_000_000 + g.below(100_000_000);
            if g.below(2) == 0 {
                Value::from(secs)
            } else {
                Value::from(secs as f64 + (g.below(1000) as f64) / 1000.0)
            }
        }
        other => panic!("shape type {other} not generated"),
    }
}

fn shapes() -> Vec<String> {
    let m: Value = serde_json::from_str(MODEL).unwrap();
    let mut out = Vec::new();
    for op in m["operations"].as_object().unwrap().values() {
        for k in ["input", "output"] {
            out.push(op[k].as_str().unwrap().to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_shape_round_trips_through_json_and_cbor(seed in 1u64..u64::MAX) {
        let m: Value = serde_json::from_str(MODEL).unwrap();
        let mut g = Gen(seed);
        for shape in shapes() {
            let v = value(&m, &shape, &mut g, 0);
            let json: Value = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
            prop_assert_eq!(&json, &v, "JSON round trip of {}", shape);
            let bytes = cbor::encode(&v, TIMESTAMPS);
            let back = cbor::decode(&bytes).map_err(|e| TestCaseError::fail(format!("{shape}: {e}")))?;
            prop_assert_eq!(&back, &v, "CBOR round trip of {}", shape);
            prop_assert_eq!(
                model().validate(&shape, &back, ""),
                model().validate(&shape, &v, ""),
                "validation differs after CBOR for {}", shape
            );
        }
    }
}

#[test]
fn the_model_lists_every_served_operation_with_its_shapes() {
    let m: Value = serde_json::from_str(MODEL).unwrap();
    assert_eq!(m["operations"].as_object().unwrap().len(), 24);
    assert!(shapes().len() >= 40);
}
