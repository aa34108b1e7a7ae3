//! The AWS resources of this appliance, kept durably in `<state_dir>/resources/resources.json`:
//! the firewall's own record (id, update token, associated policy, tags), firewall policies,
//! rule groups, the logging configuration.
//!
//! Every change is made on a copy, written atomically (temp file, fsync, rename, fsync of the
//! directory) and only then made current: a crash or kill -9 at any point leaves the old or
//! the new state on disk, never a torn one, and the in-memory state never runs ahead of the
//! disk. Bodies (`FirewallPolicy`, `RuleGroup`, `LoggingConfiguration`) are kept as the
//! validated JSON the API received, so Describe returns exactly what was set.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

const FILE: &str = "resources.json";
/// Bumped when the layout changes incompatibly.
const VERSION: u32 = 1;

/// `{Key, Value}` tags in the order they were given.
pub type Tags = Vec<(String, String)>;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FirewallRecord {
    pub id: String,
    pub update_token: String,
    /// The associated firewall policy's ARN (`None` while the seed policy file runs).
    pub policy_arn: Option<String>,
    pub tags: Tags,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub name: String,
    pub arn: String,
    pub id: String,
    pub update_token: String,
    pub description: Option<String>,
    pub tags: Tags,
    /// The `FirewallPolicy` member.
    pub body: Value,
    /// Seconds since the epoch.
    pub last_modified: f64,
    /// Imported from the policy file under `policy.source = "file"`: the API may not change it.
    #[serde(default)]
    pub from_file: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleGroupRecord {
    pub name: String,
    pub arn: String,
    pub id: String,
    /// `STATEFUL` or `STATELESS`.
    pub kind: String,
    pub capacity: u64,
    pub consumed_capacity: u64,
    pub update_token: String,
    pub description: Option<String>,
    pub tags: Tags,
    /// The `RuleGroup` member.
    pub body: Value,
    pub last_modified: f64,
    #[serde(default)]
    pub from_file: bool,
}

/// Everything the store keeps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub firewall: FirewallRecord,
    /// By ARN.
    pub policies: BTreeMap<String, PolicyRecord>,
    /// By ARN.
    pub rule_groups: BTreeMap<String, RuleGroupRecord>,
    /// The `LoggingConfiguration` member.
    pub logging: Value,
}

impl State {
    fn fresh() -> State {
        State {
            version: VERSION,
            firewall: FirewallRecord {
                id: new_id(),
                update_token: new_id(),
                policy_arn: None,
                tags: Vec::new(),
            },
            policies: BTreeMap::new(),
            rule_groups: BTreeMap::new(),
            logging: serde_json::json!({"LogDestinationConfigs": []}),
        }
    }
}

/// A fresh `ResourceId` / `UpdateToken` (a v4 UUID, as the service's pattern requires).
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is not a resource store: {why}")]
    Corrupt { path: PathBuf, why: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// The state on disk and in memory.
pub struct Store {
    dir: PathBuf,
    state: State,
}

impl Store {
    /// Opens (or creates) the store under `state_dir/resources`.
    pub fn open(state_dir: &Path) -> Result<Store, StoreError> {
        let dir = state_dir.join("resources");
        let path = dir.join(FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => {
                let s: State = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
                if s.version != VERSION {
                    return Err(StoreError::Corrupt {
                        path,
                        why: format!("layout version {} (this build reads {VERSION})", s.version),
                    });
                }
                s
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let mut store = Store {
                    dir: dir.clone(),
                    state: State::fresh(),
                };
                let fresh = store.state.clone();
                store.commit(fresh)?;
                return Ok(store);
            }
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        Ok(Store { dir, state })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `next` durably, then makes it current. On error the current state stays.
    pub fn commit(&mut self, next: State) -> Result<(), StoreError> {
        let body = serde_json::to_vec_pretty(&next).map_err(|e| StoreError::Write {
            path: self.dir.join(FILE),
            source: io::Error::other(e),
        })?;
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| crate::ops::write_atomic(&self.dir, FILE, &body))
            .map_err(|source| StoreError::Write {
                path: self.dir.join(FILE),
                source,
            })?;
        self.state = next;
        Ok(())
    }

    /// Writes another file atomically in the store's directory (the effective policy).
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, StoreError> {
        std::fs::create_dir_all(&self.dir)
            .and_then(|()| crate::ops::write_atomic(&self.dir, name, bytes))
            .map_err(|source| StoreError::Write {
                path: self.dir.join(name),
                source,
            })?;
        Ok(self.dir.join(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_survives_reopening_and_a_failed_write_keeps_the_current_state() {
        let dir = std::env::temp_dir().join(format!("fg-res-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Store::open(&dir).unwrap();
        let id = s.state().firewall.id.clone();
        let mut next = s.state().clone();
        next.firewall.tags.push(("Name".into(), "lab".into()));
        s.commit(next).unwrap();
        let again = Store::open(&dir).unwrap();
        assert_eq!(again.state().firewall.id, id);
        assert_eq!(
            again.state().firewall.tags,
            vec![("Name".into(), "lab".into())]
        );
        assert!(!dir.join("resources/resources.json.tmp").exists());

        // A write that cannot happen (the directory is now a file) leaves memory as it was.
        let mut s = again;
        std::fs::remove_dir_all(dir.join("resources")).unwrap();
        std::fs::write(dir.join("resources"), b"x").unwrap();
        let mut next = s.state().clone();
        next.firewall.tags.clear();
        assert!(s.commit(next).is_err());
        assert_eq!(s.state().firewall.tags.len(), 1);

        std::fs::remove_file(dir.join("resources")).unwrap();
        std::fs::create_dir_all(dir.join("resources")).unwrap();
        std::fs::write(dir.join("resources/resources.json"), b"{torn").unwrap();
        assert!(matches!(Store::open(&dir), Err(StoreError::Corrupt { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
