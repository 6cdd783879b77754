//! An eviction request: `evictions/<node>/<project>/<component>/<id>`.
//!
//! `berth evict` and the API's `/evict` route write it; the owning agent
//! watches its own prefix and publishes the container `evicting` (it keeps
//! serving), and the coordinator replaces it within the rollout budget,
//! surge-first (`coordinator::rollout::replace`). The agent deletes the key
//! once the container is removed.
//!
//! The key is in etcd, not on a lease and not in the agent's memory, so a
//! request survives an agent restart (the new agent lists the prefix before
//! its first reconcile), and writing it twice is harmless: the write is
//! create-if-absent, the second answers [`Requested::Already`].

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use crate::resource::observed::ContainerRow;
use crate::resource::ComponentKey;
use crate::store::{Store, StoreError};

/// The stored request: who asked and when (for people; nothing decides on it).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Eviction {
    /// RFC 3339.
    pub requested_at: String,
    /// The token name (API) or `cli`.
    pub by: String,
    /// The container's name when asked.
    #[serde(default)]
    pub name: String,
}

/// What the request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    /// Written now.
    New,
    /// An eviction of that container was already pending.
    Already,
}

impl Requested {
    /// The answer's wording: `evicted`, or `already being evicted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Requested::New => "evicted",
            Requested::Already => "already being evicted",
        }
    }
}

/// Writes the eviction request of `row` unless one is pending (one
/// compare-and-swap: create revision 0).
pub async fn request_eviction(
    store: &Store,
    row: &ContainerRow,
    by: &str,
) -> Result<Requested, StoreError> {
    let ck = ComponentKey::new(&row.project, &row.component);
    let key = store.keys().eviction(&row.node, &ck, &row.container.id);
    let doc = Eviction {
        requested_at: crate::util::now_rfc3339(),
        by: by.to_string(),
        name: row.container.name.clone(),
    };
    let value = serde_json::to_vec(&doc).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let txn = Txn::new()
        .when(vec![Compare::create_revision(
            key.clone(),
            CompareOp::Equal,
            0,
        )])
        .and_then(vec![TxnOp::put(key, value, None)]);
    if store.txn(txn).await?.succeeded() {
        Ok(Requested::New)
    } else {
        Ok(Requested::Already)
    }
}
