//! Reading objects: one object, a list, revisions, and raw prefix ranges.

use etcd_client::{GetOptions, KeyValue, SortOrder, SortTarget, Txn, TxnOp};

use super::{keys::prefix_end, Result, Store, StoreError};
use crate::resource::{Component, ComponentStatus, Kind, Node, NodeStatus, Object, Revision};

/// Keys per page when listing: keeps each response far below the client's
/// 4 MB decode limit while costing few round trips.
const PAGE: i64 = 2000;

/// An object read from etcd with the revision it was read at.
#[derive(Clone, Debug)]
pub struct Stored {
    pub object: Object,
    /// etcd mod_revision of the spec key (also in `metadata.resourceVersion`).
    pub mod_revision: i64,
    /// The raw stored spec JSON (for unchanged-detection).
    pub raw: Vec<u8>,
}

impl Store {
    /// Every key/value under `prefix`, read page by page at one consistent revision.
    /// Returns the values and the etcd revision they were read at.
    pub async fn range_all(&self, prefix: &str) -> Result<(Vec<KeyValue>, i64)> {
        let end = prefix_end(prefix.as_bytes());
        let mut out = Vec::new();
        let mut start = prefix.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let mut opts = GetOptions::new()
                .with_range(end.clone())
                .with_limit(PAGE)
                .with_sort(SortTarget::Key, SortOrder::Ascend);
            if revision > 0 {
                opts = opts.with_revision(revision);
            }
            let mut kv = self.client.kv_client();
            let resp = self.call(kv.get(start.clone(), Some(opts))).await?;
            if revision == 0 {
                revision = resp.header().map_or(0, |h| h.revision());
            }
            let more = resp.more();
            let mut kvs = resp.kvs().to_vec();
            if let Some(last) = kvs.last() {
                start = last.key().to_vec();
                start.push(0);
            }
            let empty = kvs.is_empty();
            out.append(&mut kvs);
            if !more || empty {
                return Ok((out, revision));
            }
        }
    }

    /// One object with its status, or `None`. One round trip.
    pub async fn get(
        &self,
        kind: Kind,
        project: Option<&str>,
        name: &str,
    ) -> Result<Option<Stored>> {
        if kind == Kind::Node {
            return Ok(self
                .list(Kind::Node, None)
                .await?
                .into_iter()
                .find(|s| s.object.name() == name));
        }
        let spec_key = self.keys.spec(kind, project, name);
        let status_key = self.keys.status(kind, project, name);
        let txn = Txn::new().and_then(vec![
            TxnOp::get(spec_key.clone(), None),
            TxnOp::get(status_key, None),
        ]);
        let mut kv = self.client.kv_client();
        let resp = self.call(kv.txn(txn)).await?;
        let mut spec = None;
        let mut status = None;
        for (i, op) in resp.op_responses().into_iter().enumerate() {
            if let etcd_client::TxnOpResponse::Get(g) = op {
                let first = g.kvs().first().cloned();
                if i == 0 {
                    spec = first;
                } else {
                    status = first;
                }
            }
        }
        let Some(spec) = spec else { return Ok(None) };
        let mut stored = decode(kind, &spec)?;
        if let Some(st) = status {
            merge_status(&mut stored.object, st.value());
        }
        Ok(Some(stored))
    }

    /// All objects of a kind, in one project or (with `None`) in all of them,
    /// sorted by project then name. Two range reads (specs, status).
    pub async fn list(&self, kind: Kind, project: Option<&str>) -> Result<Vec<Stored>> {
        Ok(self.list_with_revision(kind, project).await?.0)
    }

    /// [`Store::list`] plus the etcd revision the specs were read at, to
    /// watch from without missing a change.
    pub async fn list_with_revision(
        &self,
        kind: Kind,
        project: Option<&str>,
    ) -> Result<(Vec<Stored>, i64)> {
        if kind == Kind::Node {
            let (kvs_rev, nodes) =
                futures::future::try_join(self.current_revision(), self.list_nodes()).await?;
            return Ok((nodes, kvs_rev));
        }
        let spec_prefix = self.keys.spec_prefix(kind, project);
        let status_prefix = self.keys.status_prefix(kind, project);
        let (specs, statuses) =
            futures::future::try_join(self.range_all(&spec_prefix), self.range_all(&status_prefix))
                .await?;
        let mut status_by_suffix: std::collections::HashMap<Vec<u8>, Vec<u8>> = statuses
            .0
            .into_iter()
            .map(|kv| {
                (
                    kv.key()
                        .strip_prefix(status_prefix.as_bytes())
                        .unwrap_or_default()
                        .to_vec(),
                    kv.value().to_vec(),
                )
            })
            .collect();
        let mut out = Vec::with_capacity(specs.0.len());
        for kv in &specs.0 {
            let mut stored = decode(kind, kv)?;
            let suffix = kv
                .key()
                .strip_prefix(spec_prefix.as_bytes())
                .unwrap_or_default();
            if let Some(st) = status_by_suffix.remove(suffix) {
                merge_status(&mut stored.object, &st);
            }
            out.push(stored);
        }
        Ok((out, specs.1))
    }

    /// The etcd cluster's current revision.
    pub async fn current_revision(&self) -> Result<i64> {
        let mut kv = self.client.kv_client();
        let resp = self
            .call(kv.get(
                format!("{}/", self.keys.root()),
                Some(GetOptions::new().with_count_only()),
            ))
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// Nodes: the agents' registrations (`nodes/`) overlaid with what users
    /// set (`specs/node/`: cordon, labels).
    async fn list_nodes(&self) -> Result<Vec<Stored>> {
        let (registered, _) = self.range_all(&self.keys.nodes_prefix()).await?;
        let (user, _) = self
            .range_all(&self.keys.spec_prefix(Kind::Node, None))
            .await?;
        let mut by_name: std::collections::BTreeMap<String, Stored> =
            std::collections::BTreeMap::new();
        for kv in &registered {
            let node: Node =
                serde_json::from_slice(kv.value()).map_err(|e| StoreError::Decode {
                    key: String::from_utf8_lossy(kv.key()).into(),
                    cause: e.to_string(),
                })?;
            let mut object = Object::Node(node);
            object.metadata_mut().resource_version = Some(kv.mod_revision().to_string());
            by_name.insert(
                object.name().to_string(),
                Stored {
                    object,
                    mod_revision: kv.mod_revision(),
                    raw: kv.value().to_vec(),
                },
            );
        }
        for kv in &user {
            let Stored {
                object,
                mod_revision,
                raw,
            } = decode(Kind::Node, kv)?;
            let Object::Node(user_node) = object else {
                continue;
            };
            let entry = by_name
                .entry(user_node.metadata.name.clone())
                .or_insert_with(|| Stored {
                    object: Object::Node(Node {
                        status: None,
                        ..user_node.clone()
                    }),
                    mod_revision,
                    raw: raw.clone(),
                });
            if let Object::Node(n) = &mut entry.object {
                n.spec = user_node.spec.clone();
                n.metadata.labels.extend(user_node.metadata.labels.clone());
                n.metadata.resource_version = Some(mod_revision.to_string());
            }
            entry.mod_revision = mod_revision;
            entry.raw = raw;
        }
        // A node's labels include those its agent was started with.
        for s in by_name.values_mut() {
            if let Object::Node(n) = &mut s.object {
                if let Some(st) = &n.status {
                    for (k, v) in &st.labels {
                        n.metadata
                            .labels
                            .entry(k.clone())
                            .or_insert_with(|| v.clone());
                    }
                }
            }
        }
        Ok(by_name.into_values().collect())
    }

    /// Revisions of a component, oldest first.
    pub async fn revisions(&self, project: &str, component: &str) -> Result<Vec<Revision>> {
        let (kvs, _) = self
            .range_all(&self.keys.revision_prefix(project, component))
            .await?;
        kvs.iter()
            .map(|kv| {
                serde_json::from_slice(kv.value()).map_err(|e| StoreError::Decode {
                    key: String::from_utf8_lossy(kv.key()).into(),
                    cause: e.to_string(),
                })
            })
            .collect()
    }
}

/// Decodes a stored spec document, filling `resourceVersion`.
pub(crate) fn decode(kind: Kind, kv: &KeyValue) -> Result<Stored> {
    let mut object = Object::from_json(kind, kv.value()).map_err(|e| StoreError::Decode {
        key: String::from_utf8_lossy(kv.key()).into(),
        cause: e.to_string(),
    })?;
    object.metadata_mut().resource_version = Some(kv.mod_revision().to_string());
    Ok(Stored {
        object,
        mod_revision: kv.mod_revision(),
        raw: kv.value().to_vec(),
    })
}

/// Attaches a status document; an undecodable status is ignored (status is
/// advisory and rewritten by controllers).
fn merge_status(object: &mut Object, bytes: &[u8]) {
    match object {
        Object::Component(Component { status, .. }) => {
            *status = serde_json::from_slice::<ComponentStatus>(bytes).ok();
        }
        Object::Node(Node { status, .. }) => {
            *status = serde_json::from_slice::<NodeStatus>(bytes).ok();
        }
        Object::Project(_) => {}
    }
}
