//! `ListFlowOperations` over every zone: the zones' newest-first lists merged into one
//! newest-first list, and the `NextToken` of the merge. The token is opaque to clients:
//! base64 (so it fits the service's `PaginationToken` pattern) of the per-zone cursors —
//! each zone's own appliance token where its next item starts, or the start of its list;
//! zones whose lists are exhausted are left out. A token from another filter or naming
//! zones this fleet does not have is refused, never silently reinterpreted.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The service's `PaginationToken` limit.
const MAX_TOKEN_CHARS: usize = 4096;
const VERSION: u32 = 1;

/// Where each zone's part of the merged list continues.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeCursor {
    v: u32,
    /// `FlowOperationType` filter the listing was started with.
    #[serde(rename = "t")]
    pub kind: Option<String>,
    /// zone name → the appliance's `NextToken` ("" = the start of its list).
    #[serde(rename = "z")]
    pub zones: BTreeMap<String, String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("NextToken: not a token of this fleet's ListFlowOperations")]
    Malformed,
    #[error("NextToken: was issued for another FlowOperationType filter")]
    OtherFilter,
    #[error("NextToken: names availability zone '{0}', which this firewall does not have")]
    UnknownZone(String),
    #[error("the merged NextToken would exceed {MAX_TOKEN_CHARS} characters")]
    TooLong,
}

impl MergeCursor {
    /// The first page: every zone from the start of its list.
    pub fn start<'a>(kind: Option<&str>, zones: impl IntoIterator<Item = &'a str>) -> MergeCursor {
        MergeCursor {
            v: VERSION,
            kind: kind.map(str::to_string),
            zones: zones
                .into_iter()
                .map(|z| (z.to_string(), String::new()))
                .collect(),
        }
    }

    pub fn encode(&self) -> Result<String, TokenError> {
        let json = serde_json::to_vec(self).map_err(|_| TokenError::Malformed)?;
        let t = STANDARD.encode(json);
        if t.len() > MAX_TOKEN_CHARS {
            return Err(TokenError::TooLong);
        }
        Ok(t)
    }

    /// Decodes a client's token, checked against the filter and the fleet's zones.
    pub fn decode(
        token: &str,
        kind: Option<&str>,
        known_zone: impl Fn(&str) -> bool,
    ) -> Result<MergeCursor, TokenError> {
        let bytes = STANDARD
            .decode(token.as_bytes())
            .map_err(|_| TokenError::Malformed)?;
        let c: MergeCursor = serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)?;
        if c.v != VERSION || c.zones.is_empty() {
            return Err(TokenError::Malformed);
        }
        if c.kind.as_deref() != kind {
            return Err(TokenError::OtherFilter);
        }
        if let Some(z) = c.zones.keys().find(|z| !known_zone(z)) {
            return Err(TokenError::UnknownZone(z.clone()));
        }
        Ok(c)
    }
}

/// One zone's page, as its appliance answered.
pub struct ZonePage {
    pub zone: String,
    pub items: Vec<Value>,
    /// The appliance's `NextToken` after `items` (None: the zone's list ends there).
    pub next: Option<String>,
}

/// The newest-first order of `FlowOperationMetadata`: request time, then id, both descending
/// (the appliances' own order, so each zone's order is kept).
fn newer(a: &Value, b: &Value) -> bool {
    let ts = |v: &Value| {
        v.get("FlowRequestTimestamp")
            .and_then(Value::as_f64)
            .unwrap_or(0.0)
    };
    let id = |v: &Value| {
        v.get("FlowOperationId")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    match ts(a).total_cmp(&ts(b)) {
        std::cmp::Ordering::Equal => id(a) > id(b),
        o => o == std::cmp::Ordering::Greater,
    }
}

/// Merges `pages` newest-first and keeps the first `max` items. Returns the items and how
/// many of each page's items were taken (same order as `pages`).
pub fn merge(pages: &[ZonePage], max: usize) -> (Vec<Value>, Vec<usize>) {
    let mut taken = vec![0usize; pages.len()];
    let mut out = Vec::with_capacity(max);
    while out.len() < max {
        let mut best: Option<usize> = None;
        for (i, p) in pages.iter().enumerate() {
            let Some(head) = p.items.get(taken[i]) else {
                continue;
            };
            if best.is_none_or(|b| newer(head, &pages[b].items[taken[b]])) {
                best = Some(i);
            }
        }
        let Some(b) = best else { break };
        out.push(pages[b].items[taken[b]].clone());
        taken[b] += 1;
    }
    (out, taken)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(ts: f64, id: &str) -> Value {
        json!({"FlowOperationId": id, "FlowRequestTimestamp": ts})
    }

    fn ids(v: &[Value]) -> Vec<&str> {
        v.iter()
            .map(|x| x["FlowOperationId"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn merge_is_newest_first_and_keeps_each_zones_order() {
        let pages = [
            ZonePage {
                zone: "a".into(),
                items: vec![op(10.0, "a1"), op(7.0, "a2"), op(3.0, "a3")],
                next: None,
            },
            ZonePage {
                zone: "b".into(),
                items: vec![op(9.0, "b1"), op(8.0, "b2")],
                next: Some("tok".into()),
            },
        ];
        let (items, taken) = merge(&pages, 4);
        assert_eq!(ids(&items), ["a1", "b1", "b2", "a2"]);
        assert_eq!(taken, [2, 2]);
        let (items, taken) = merge(&pages, 10);
        assert_eq!(items.len(), 5);
        assert_eq!(taken, [3, 2]);
    }

    #[test]
    fn token_round_trips_and_refuses_tampering() {
        let c = MergeCursor::start(Some("FLOW_CAPTURE"), ["a", "b"]);
        let t = c.encode().unwrap();
        assert!(t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)));
        let known = |z: &str| z == "a" || z == "b";
        assert_eq!(
            MergeCursor::decode(&t, Some("FLOW_CAPTURE"), known).unwrap(),
            c
        );
        assert_eq!(
            MergeCursor::decode(&t, None, known),
            Err(TokenError::OtherFilter)
        );
        assert_eq!(
            MergeCursor::decode(&t, Some("FLOW_CAPTURE"), |z| z == "a"),
            Err(TokenError::UnknownZone("b".into()))
        );
        for bad in ["AAAA", "not base64!", &t[..t.len() - 4]] {
            assert!(MergeCursor::decode(bad, Some("FLOW_CAPTURE"), known).is_err());
        }
        let empty = STANDARD.encode(br#"{"v":1,"t":null,"z":{}}"#);
        assert_eq!(
            MergeCursor::decode(&empty, None, known),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn too_many_long_cursors_are_refused_not_truncated() {
        let mut c = MergeCursor::start(None, ["a"]);
        c.zones.insert("a".into(), "x".repeat(5000));
        assert_eq!(c.encode(), Err(TokenError::TooLong));
    }
}
