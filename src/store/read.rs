//! Reading objects: one object, a list, revisions, and raw prefix ranges.

use etcd_client::{GetOptions, KeyValue, SortOrder, SortTarget, Txn, TxnOp};

use super::{keys::prefix_end, Keys, Result, Store, StoreError};
use std::collections::BTreeMap;

use crate::resource::observed::ContainerRow;
use crate::resource::{
    Component, ComponentKey, ComponentStatus, Condition, ConditionType, Kind, Node, NodeRecord,
    NodeStatus, Object, Observed, Reason, Revision,
};

/// Annotation readers put on the node whose agent holds the coordinator
/// election (`berth/role: coordinator`); never stored (`apply` drops it).
pub const ROLE_ANNOTATION: &str = "berth/role";

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
    /// The container rows of every node's observed documents that `wanted`
    /// accepts (see [`container_rows`]), with the keys that do not decode.
    pub async fn observed_rows(
        &self,
        wanted: impl Fn(&str, &ComponentKey) -> bool,
    ) -> Result<(Vec<ContainerRow>, Vec<String>)> {
        let (kvs, _) = self.range_all(&self.keys().all_observed_prefix()).await?;
        let docs = kvs.iter().map(|kv| (kv.key(), kv.value()));
        Ok(container_rows(self.keys(), docs, wanted))
    }

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
            let kv = self.client.kv_client();
            let resp = self
                .call(|| {
                    let (mut kv, start, opts) = (kv.clone(), start.clone(), opts.clone());
                    async move { kv.get(start, Some(opts)).await }
                })
                .await?;
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
        let resp = self.txn(txn).await?;
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
        let kv = self.client.kv_client();
        let resp = self
            .call(|| {
                let mut kv = kv.clone();
                let key = format!("{}/", self.keys.root());
                async move { kv.get(key, Some(GetOptions::new().with_count_only())).await }
            })
            .await?;
        Ok(resp.header().map_or(0, |h| h.revision()))
    }

    /// The value under one key, if any.
    pub async fn get_raw(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let resp = self.get_key(key.to_string()).await?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// The node holding the coordinator election (`election/coordinator`),
    /// if any.
    pub async fn coordinator(&self) -> Result<Option<String>> {
        let resp = self.get_key(self.keys.election()).await?;
        Ok(resp
            .kvs()
            .first()
            .map(|kv| String::from_utf8_lossy(kv.value()).into_owned()))
    }

    /// Nodes: the agents' registrations (`nodes/`), overlaid with what users
    /// set (`specs/node/`: cordon, drain, labels) and the coordinator's
    /// records (`status/node/`), which keep a node whose agent is gone listed
    /// as `NotReady` until `berth delete node`. Three range reads and one get.
    async fn list_nodes(&self) -> Result<Vec<Stored>> {
        let (registered, user, records, coordinator) = futures::future::try_join4(
            self.range_all(&self.keys.nodes_prefix()),
            self.range_all(&self.keys.spec_prefix(Kind::Node, None)),
            self.range_all(&self.keys.status_prefix(Kind::Node, None)),
            self.coordinator(),
        )
        .await?;
        let mut parts: BTreeMap<String, NodeParts> = BTreeMap::new();
        for kv in &registered.0 {
            let node: Node = decode_json(kv)?;
            let name = node.metadata.name.clone();
            parts.entry(name).or_default().registration =
                Some((node, kv.mod_revision(), kv.value().to_vec()));
        }
        for kv in &user.0 {
            let stored = decode(Kind::Node, kv)?;
            let name = stored.object.name().to_string();
            parts.entry(name).or_default().spec = Some(stored);
        }
        let record_prefix = self.keys.status_prefix(Kind::Node, None);
        for kv in &records.0 {
            let key = String::from_utf8_lossy(kv.key());
            let name = key.strip_prefix(&record_prefix).unwrap_or_default();
            // A record is advisory (the coordinator rewrites it): one that
            // does not decode leaves the node as the other keys show it.
            if let (false, Ok(r)) = (name.is_empty(), serde_json::from_slice(kv.value())) {
                parts.entry(name.to_string()).or_default().record = Some(r);
            }
        }
        Ok(parts
            .into_iter()
            .filter_map(|(name, p)| merge_node(&name, p, coordinator.as_deref()))
            .collect())
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

/// What etcd holds about one node.
#[derive(Default)]
struct NodeParts {
    /// The agent's registration, its mod_revision and raw value.
    registration: Option<(Node, i64, Vec<u8>)>,
    /// The user's `specs/node/<node>`.
    spec: Option<Stored>,
    /// The coordinator's `status/node/<node>`.
    record: Option<NodeRecord>,
}

/// One node as readers see it (pure): the registration, else the user's
/// spec, else the record; the user's spec and labels on top, the agent's
/// labels under them. A node known only from its record gets the record's
/// address and labels, `lastHeartbeat` = when it was last seen, and a Ready
/// condition False (`AgentNotRegistered`); `creationTimestamp` is the
/// record's `firstSeen` when there is one (the node's age); the node holding
/// the election carries [`ROLE_ANNOTATION`]. `None` when etcd holds nothing
/// about it.
fn merge_node(name: &str, p: NodeParts, coordinator: Option<&str>) -> Option<Stored> {
    let registered = p.registration.is_some();
    let (mut node, mut mod_revision, mut raw) = match (p.registration, &p.spec, &p.record) {
        (Some(r), _, _) => r,
        (None, Some(s), _) => match &s.object {
            Object::Node(n) => (n.clone(), s.mod_revision, s.raw.clone()),
            _ => return None,
        },
        (None, None, Some(_)) => (empty_node(name), 0, Vec::new()),
        (None, None, None) => return None,
    };
    if let Some(Stored {
        object: Object::Node(user),
        mod_revision: m,
        raw: r,
    }) = p.spec
    {
        node.spec = user.spec;
        node.metadata.labels.extend(user.metadata.labels);
        node.metadata.annotations.extend(user.metadata.annotations);
        node.metadata.resource_version = Some(m.to_string());
        (mod_revision, raw) = (m, r);
    }
    if let Some(r) = &p.record {
        if r.first_seen.is_some() {
            node.metadata.creation_timestamp = r.first_seen.clone();
        }
        if !registered {
            node.status = Some(lost_status(r));
        }
    }
    node.metadata.annotations.remove(ROLE_ANNOTATION);
    if coordinator == Some(name) {
        node.metadata
            .annotations
            .insert(ROLE_ANNOTATION.into(), "coordinator".into());
    }
    // A node's labels include those its agent was started with.
    if let Some(st) = &node.status {
        for (k, v) in &st.labels {
            node.metadata
                .labels
                .entry(k.clone())
                .or_insert_with(|| v.clone());
        }
    }
    Some(Stored {
        object: Object::Node(node),
        mod_revision,
        raw,
    })
}

fn empty_node(name: &str) -> Node {
    Node {
        api_version: crate::resource::API_VERSION.into(),
        kind: Kind::Node.name().into(),
        metadata: crate::resource::ObjectMeta {
            name: name.into(),
            ..Default::default()
        },
        spec: Default::default(),
        status: None,
    }
}

/// The status of a node whose agent is gone, from the coordinator's record.
fn lost_status(r: &NodeRecord) -> NodeStatus {
    let since = r.last_seen.as_deref().unwrap_or("an unknown time");
    NodeStatus {
        address: r.address.clone(),
        labels: r.labels.clone(),
        last_heartbeat: r.last_seen.clone(),
        conditions: vec![Condition {
            last_transition_time: r.since.clone(),
            ..Condition::new(
                ConditionType::Ready,
                false,
                Reason::AgentNotRegistered,
                format!("no agent registered since {since}"),
            )
        }],
        ..Default::default()
    }
}

fn decode_json<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Result<T> {
    serde_json::from_slice(kv.value()).map_err(|e| StoreError::Decode {
        key: String::from_utf8_lossy(kv.key()).into(),
        cause: e.to_string(),
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

/// The container rows of observed documents `(key, value)` whose node and
/// component `wanted` accepts. A document that does not decode is left out
/// (never guessed at); its key is returned in the second list.
pub fn container_rows<'a>(
    keys: &Keys,
    docs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    wanted: impl Fn(&str, &ComponentKey) -> bool,
) -> (Vec<ContainerRow>, Vec<String>) {
    let (mut rows, mut bad) = (Vec::new(), Vec::new());
    for (key, value) in docs {
        let key = String::from_utf8_lossy(key);
        let Some((node, c)) = keys.split_observed(&key) else {
            continue;
        };
        if !wanted(&node, &c) {
            continue;
        }
        let Ok(doc) = serde_json::from_slice::<Observed>(value) else {
            bad.push(key.into_owned());
            continue;
        };
        rows.extend(doc.containers.into_iter().map(|container| ContainerRow {
            node: node.clone(),
            project: c.project.clone(),
            component: c.name.clone(),
            container,
        }));
    }
    (rows, bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::NodeSpec;

    fn node(name: &str, labels: &[(&str, &str)]) -> Node {
        let mut n = empty_node(name);
        n.metadata.creation_timestamp = Some("2026-01-02T00:00:00Z".into());
        n.status = Some(NodeStatus {
            address: "10.0.0.1".into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            last_heartbeat: Some("2026-01-03T00:00:00Z".into()),
            conditions: vec![Condition::new(
                ConditionType::Ready,
                true,
                Reason::AgentReady,
                "",
            )],
            ..Default::default()
        });
        n
    }

    fn spec(name: &str, labels: &[(&str, &str)], cordon: bool) -> Stored {
        let mut n = empty_node(name);
        n.metadata.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        n.spec = NodeSpec {
            unschedulable: cordon,
            drain: false,
        };
        Stored {
            object: Object::Node(n),
            mod_revision: 7,
            raw: b"{}".to_vec(),
        }
    }

    fn record() -> NodeRecord {
        NodeRecord {
            phase: crate::resource::NodePhase::NotReady,
            since: Some("2026-01-04T00:00:00Z".into()),
            last_seen: Some("2026-01-04T00:00:00Z".into()),
            first_seen: Some("2026-01-01T00:00:00Z".into()),
            address: "10.0.0.9".into(),
            labels: [("zone".to_string(), "b".to_string())].into(),
        }
    }

    fn merged(p: NodeParts, coordinator: Option<&str>) -> Node {
        match merge_node("n1", p, coordinator).map(|s| s.object) {
            Some(Object::Node(n)) => n,
            other => panic!("expected a node, got {other:?}"),
        }
    }

    #[test]
    fn registered_node_with_spec_record_and_role() {
        let n = merged(
            NodeParts {
                registration: Some((node("n1", &[("zone", "a"), ("os", "linux")]), 3, vec![])),
                spec: Some(spec("n1", &[("zone", "c")], true)),
                record: Some(record()),
            },
            Some("n1"),
        );
        assert!(n.is_ready() && n.spec.unschedulable);
        // The user's label wins over the agent's; the agent's fill in.
        assert_eq!(n.metadata.labels["zone"], "c");
        assert_eq!(n.metadata.labels["os"], "linux");
        // Age from the record's first sighting; address from the registration.
        assert_eq!(
            n.metadata.creation_timestamp.as_deref(),
            Some("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            n.status.as_ref().map(|s| s.address.as_str()),
            Some("10.0.0.1")
        );
        assert_eq!(n.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(n.metadata.annotations[ROLE_ANNOTATION], "coordinator");
    }

    #[test]
    fn record_only_node_is_not_ready_with_last_seen() {
        let n = merged(
            NodeParts {
                record: Some(record()),
                ..Default::default()
            },
            Some("other"),
        );
        assert!(!n.is_ready());
        let st = n.status.clone().expect("status from the record");
        assert_eq!(st.address, "10.0.0.9");
        assert_eq!(st.last_heartbeat.as_deref(), Some("2026-01-04T00:00:00Z"));
        assert_eq!(st.conditions[0].reason, "AgentNotRegistered");
        assert_eq!(n.metadata.labels["zone"], "b");
        assert!(!n.metadata.annotations.contains_key(ROLE_ANNOTATION));
    }

    #[test]
    fn spec_only_node_has_no_status_and_nothing_is_none() {
        let n = merged(
            NodeParts {
                spec: Some(spec("n1", &[], true)),
                ..Default::default()
            },
            None,
        );
        assert!(n.status.is_none() && n.spec.unschedulable);
        assert!(merge_node("n1", NodeParts::default(), None).is_none());
    }
}
