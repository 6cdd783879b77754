//! What users set on nodes (`specs/node/<node>`: cordon, drain, labels) and
//! `delete node`. Agents own `nodes/<node>`, the coordinator
//! `status/node/<node>`; this module only reads those.

use std::collections::BTreeMap;

use etcd_client::{Compare, CompareOp, Txn, TxnOp, TxnOpResponse};

use super::apply::{prepare, ApplyOptions, Change};
use super::read::{decode, Stored};
use super::{Result, Store, StoreError};
use crate::resource::{Kind, Node, NodeRecord, NodeSpec, Object, ObjectMeta, API_VERSION};

/// What etcd holds about one node, read in one transaction.
#[derive(Clone, Debug, Default)]
pub struct NodeState {
    /// The agent's registration (present while its lease lives).
    pub registration: Option<Node>,
    /// The coordinator's record (outlives the lease).
    pub record: Option<NodeRecord>,
    /// The user's spec document.
    pub spec: Option<Stored>,
}

impl NodeState {
    /// Whether berth knows the node at all.
    pub fn exists(&self) -> bool {
        self.registration.is_some() || self.record.is_some() || self.spec.is_some()
    }

    /// What the user set: the stored spec document, or an empty one.
    pub fn user_node(&self, name: &str) -> Node {
        match self.spec.as_ref().map(|s| s.object.user_part()) {
            Some(Object::Node(n)) => n,
            _ => empty_node(name),
        }
    }

    /// Labels the agent was started with (`--labels`), from its registration
    /// or, when it is gone, from the record of its last one.
    pub fn agent_labels(&self) -> BTreeMap<String, String> {
        self.registration
            .as_ref()
            .and_then(|n| n.status.as_ref())
            .map(|s| s.labels.clone())
            .or_else(|| self.record.as_ref().map(|r| r.labels.clone()))
            .unwrap_or_default()
    }
}

/// An empty user document for a node.
fn empty_node(name: &str) -> Node {
    Node {
        api_version: API_VERSION.into(),
        kind: Kind::Node.name().into(),
        metadata: ObjectMeta {
            name: name.into(),
            ..Default::default()
        },
        spec: NodeSpec::default(),
        status: None,
    }
}

impl Store {
    /// Registration, record and user spec of one node, at one revision.
    pub async fn node_state(&self, name: &str) -> Result<NodeState> {
        let txn = Txn::new().and_then(vec![
            TxnOp::get(self.keys.node(name), None),
            TxnOp::get(self.keys.status(Kind::Node, None, name), None),
            TxnOp::get(self.keys.spec(Kind::Node, None, name), None),
        ]);
        let resp = self.txn(txn).await?;
        let mut found = resp.op_responses().into_iter().map(|op| match op {
            TxnOpResponse::Get(g) => g.kvs().first().cloned(),
            _ => None,
        });
        let (reg, rec, spec) = (
            found.next().flatten(),
            found.next().flatten(),
            found.next().flatten(),
        );
        Ok(NodeState {
            registration: match reg {
                Some(kv) => {
                    Some(
                        serde_json::from_slice(kv.value()).map_err(|e| StoreError::Decode {
                            key: self.keys.node(name),
                            cause: e.to_string(),
                        })?,
                    )
                }
                None => None,
            },
            // Advisory, rewritten by the coordinator: unreadable counts as absent.
            record: rec.and_then(|kv| serde_json::from_slice(kv.value()).ok()),
            spec: spec.map(|kv| decode(Kind::Node, &kv)).transpose()?,
        })
    }

    /// Writes `desired` as the node's user spec, only over exactly the spec
    /// `state` read (created when it had none): a lost race is
    /// [`StoreError::Conflict`], for the caller to read again and retry.
    /// Nothing is written when nothing changes.
    pub async fn write_node_spec(&self, desired: &Node, state: &NodeState) -> Result<Change> {
        let now = crate::util::now_rfc3339();
        let object = Object::Node(desired.clone());
        let p = prepare(&object, state.spec.as_ref(), &ApplyOptions::default(), &now);
        if p.change == Change::Unchanged {
            return Ok(Change::Unchanged);
        }
        let key = self.keys.spec(Kind::Node, None, &desired.metadata.name);
        let compare = if p.expected_mod == 0 {
            Compare::create_revision(key.clone(), CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key.clone(), CompareOp::Equal, p.expected_mod)
        };
        let txn = Txn::new()
            .when(vec![compare])
            .and_then(vec![TxnOp::put(key, p.doc, None)]);
        if self.txn(txn).await?.succeeded() {
            Ok(p.change)
        } else {
            Err(StoreError::Conflict(format!(
                "node/{}: changed since it was read",
                desired.metadata.name
            )))
        }
    }

    /// Deletes what users and the coordinator keep about a node (its spec
    /// and record), refused while its agent is registered: the agent would
    /// only register it again. With `expected_mod`, only if the spec is
    /// unchanged since read. Returns whether anything existed.
    pub async fn delete_node(&self, name: &str, expected_mod: Option<i64>) -> Result<bool> {
        let spec = self.keys.spec(Kind::Node, None, name);
        let mut when = vec![Compare::create_revision(
            self.keys.node(name),
            CompareOp::Equal,
            0,
        )];
        if let Some(m) = expected_mod {
            when.push(Compare::mod_revision(spec.clone(), CompareOp::Equal, m));
        }
        let txn = Txn::new().when(when).and_then(vec![
            TxnOp::delete(spec, None),
            TxnOp::delete(self.keys.status(Kind::Node, None, name), None),
        ]);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            return Ok(resp.op_responses().into_iter().any(|op| match op {
                TxnOpResponse::Delete(d) => d.deleted() > 0,
                _ => false,
            }));
        }
        if self.node_state(name).await?.registration.is_some() {
            return Err(StoreError::Invalid(format!(
                "node/{name} is registered (its agent is running): stop its agent first (`berth drain {name}` moves its replicas away), then delete it once it shows NotReady"
            )));
        }
        Err(StoreError::Conflict(format!(
            "node/{name}: changed since it was read; retry the command"
        )))
    }
}
