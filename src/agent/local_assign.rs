//! Local assignment: until a cluster coordinator exists, each agent writes
//! its own `assignments/<node>/<project>/<component>` from the component specs.
//!
//! A component runs on this node when `spec.placement.nodes` names it, or
//! when `placement.nodes` is empty and the cluster has exactly one registered
//! node, this one (its `nodeSelector`, if any, must match the agent's
//! labels). The assignment asks for `placement.count()` containers of the
//! spec's template; its revision number is the spec's `berth/revision`
//! annotation when the `berth/template-hash` annotation matches the template,
//! else the latest `revisions/<project>/<component>/<seq>` document of that
//! hash. Specs that stop naming this node, and deleted specs, lose their
//! assignment.
//!
//! Never a duplicate: an unpinned component assigned to any other node,
//! registered or not, is left there (a node that looks gone may be cut off
//! in an outage and still run it). With more than one node registered,
//! nothing here can place an unpinned component safely: a component already
//! assigned here stays (sticky, and follows its spec), and one assigned
//! nowhere is started nowhere. Both are shown as an `Unschedulable`
//! condition in the component's observed document (`False` with reason
//! `KeptOnNode`, `True` with reason `NoCoordinator`), saying to pin it.
//!
//! Every write is a transaction guarded by what the decision was made on,
//! read at one etcd revision R ([`Snapshot`]): this node's assignment key
//! unchanged, and, when the decision was "this node is alone", no node key
//! and no other node's assignment of the component written after R. Two
//! agents starting at the same moment therefore cannot both take a
//! component: the later registration fails the earlier one's guard.
//!
//! Never a delete from a document that cannot be read: an unreadable spec
//! keeps its assignment (a `Degraded` condition says why), an unreadable
//! assignment is left as it is.
//!
//! This is all a coordinator has to replace: the rest of the agent only
//! reads assignments.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, GetOptions, SortOrder, SortTarget, Txn, TxnOp};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::state::PlacementNotes;
use crate::resource::component::Component;
use crate::resource::{Assignment, ComponentKey, Condition, ConditionType, Reason, Revision};
use crate::runtime::{self, Action, Controller, Doc, Reader, WatcherConfig};
use crate::store::call::etcd;
use crate::store::{prefix_end, Keys, HASH_ANNOTATION, REVISION_ANNOTATION};

/// How often assignments without a spec are swept (a spec deleted while the
/// agent was away).
const SWEEP: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AssignError {
    #[error("{0}")]
    Etcd(String),
    /// The guard failed: what the decision was made on changed meanwhile.
    #[error("assignment of {0} changed concurrently; deciding again")]
    Conflict(ComponentKey),
}

struct Ctx {
    client: Client,
    keys: Keys,
    node: String,
    labels: BTreeMap<String, String>,
    specs: Reader<Doc<Component>>,
    /// This node's assignments, as the agent's main cache sees them.
    assignments: Reader<Doc<Assignment>>,
    notes: Notes,
}

/// Where placement's word on a component goes: the agent's
/// [`PlacementNotes`], published with the component's observed document
/// (the reconcile of its assignment key is triggered on every change).
#[derive(Clone)]
pub struct Notes {
    pub notes: PlacementNotes,
    /// The agent's reconcile trigger (assignment keys).
    pub trigger: mpsc::UnboundedSender<String>,
}

/// What local assignment does with one component on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run it here: pinned to this node.
    Assign,
    /// Run it here: unpinned, assigned nowhere, and this is the only node
    /// registered (itself included).
    AssignAlone,
    /// Unpinned, assigned nowhere, no other node registered, but this one
    /// not registered (yet, or any more): decided again once it is, because
    /// only a registration that precedes the decision lets another node's
    /// decision see this one.
    WaitForRegistration,
    /// Unpinned, `nodes` nodes registered, already assigned here: kept here
    /// (and follows its spec).
    Keep { nodes: usize },
    /// Unpinned and assigned to another node: it stays there. `registered`
    /// says whether that node is registered now.
    Elsewhere { node: String, registered: bool },
    /// Unpinned, `nodes` nodes registered, assigned to none of them: not
    /// started anywhere.
    Unschedulable { nodes: usize },
    /// Not for this node (pinned elsewhere, or its node selector does not
    /// match, or the spec is gone): its assignment here, if any, is removed.
    No,
    /// The spec does not decode: whatever is assigned stays as it is.
    Unreadable { error: String },
}

/// Where a component is assigned, and who is registered, at one revision.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// The etcd revision it was read at.
    pub revision: i64,
    /// Registered node names (keys under `nodes/`).
    pub registered: BTreeSet<String>,
    /// Nodes that have an assignment of the component, this one included.
    pub assigned_to: BTreeSet<String>,
    /// mod_revision of this node's assignment key (0: none).
    pub own_revision: i64,
}

impl Snapshot {
    /// Registered nodes, counting this one even while its registration is
    /// missing (a lease lost in an outage must not take its containers away).
    fn nodes(&self, node: &str) -> usize {
        let mut all: BTreeSet<&str> = self.registered.iter().map(String::as_str).collect();
        all.insert(node);
        all.len()
    }
}

/// What to do with component `c` on `node`, given the snapshot.
pub fn decide(
    c: &Doc<Component>,
    node: &str,
    labels: &BTreeMap<String, String>,
    snap: &Snapshot,
) -> Decision {
    let c = match c {
        Ok(c) => c,
        Err(e) => {
            return Decision::Unreadable {
                error: e.to_string(),
            }
        }
    };
    let p = &c.spec.placement;
    if !p
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
    {
        return Decision::No;
    }
    if !p.nodes.is_empty() {
        return match p.nodes.iter().any(|n| n == node) {
            true => Decision::Assign,
            false => Decision::No,
        };
    }
    let nodes = snap.nodes(node);
    if snap.assigned_to.contains(node) {
        return Decision::Keep { nodes };
    }
    if let Some(other) = snap.assigned_to.iter().next() {
        return Decision::Elsewhere {
            node: other.clone(),
            registered: snap.registered.contains(other),
        };
    }
    match (nodes, snap.registered.contains(node)) {
        (1, true) => Decision::AssignAlone,
        (1, false) => Decision::WaitForRegistration,
        _ => Decision::Unschedulable { nodes },
    }
}

/// The condition a decision publishes (`None`: no word to say).
pub fn note(decision: &Decision, node: &str) -> Option<Condition> {
    use ConditionType::{Degraded, Unschedulable};
    match decision {
        Decision::Keep { nodes } if *nodes > 1 => Some(Condition::new(
            Unschedulable,
            false,
            Reason::KeptOnNode,
            format!(
                "{nodes} nodes registered and no coordinator yet: kept on node {node}, \
                 where it was assigned; pin it with placement.nodes"
            ),
        )),
        Decision::Unschedulable { nodes } => Some(Condition::new(
            Unschedulable,
            true,
            Reason::NoCoordinator,
            format!(
                "{nodes} nodes registered and no coordinator yet: not started on any node; \
                 pin it with placement.nodes"
            ),
        )),
        Decision::Elsewhere {
            node: other,
            registered: false,
        } => Some(Condition::new(
            Unschedulable,
            true,
            Reason::NoCoordinator,
            format!(
                "assigned to node {other}, which is not registered now; it stays there \
                 until that node returns (no coordinator yet); pin it with placement.nodes"
            ),
        )),
        Decision::Unreadable { error } => Some(Condition::new(
            Degraded,
            true,
            Reason::UnreadableSpec,
            format!("{error}; its assignment on node {node} is kept as it is"),
        )),
        _ => None,
    }
}

/// The assignment for `c` on this node, given its revision number.
pub fn assignment_for(c: &Component, revision: u64) -> Assignment {
    let template = c.spec.template();
    Assignment {
        generation: c.metadata.generation.unwrap_or(1),
        revision,
        hash: template.hash(),
        template,
        replicas: c.spec.placement.count(),
        state: c.spec.state,
    }
}

/// The revision number from the spec's annotations, if they describe `hash`.
pub fn annotated_revision(c: &Component, hash: &str) -> Option<u64> {
    let a = &c.metadata.annotations;
    (a.get(HASH_ANNOTATION).map(String::as_str) == Some(hash))
        .then(|| a.get(REVISION_ANNOTATION)?.parse().ok())?
}

/// The guard of a write made on `decision`: what must not have changed
/// since `snap` was read. This node's assignment key always; for
/// [`Decision::AssignAlone`] also every node key: a node that registered
/// since then may have decided the same. (A node decides alone only once
/// registered itself, so any other node deciding later sees it, and one
/// deciding earlier registered before this snapshot.)
pub fn guard(
    keys: &Keys,
    node: &str,
    ck: &ComponentKey,
    decision: &Decision,
    snap: &Snapshot,
) -> Vec<Compare> {
    let own = keys.assignment_of(node, ck);
    let mut when = vec![Compare::mod_revision(
        own,
        CompareOp::Equal,
        snap.own_revision,
    )];
    if *decision == Decision::AssignAlone {
        let nodes = keys.nodes_prefix();
        when.push(
            Compare::mod_revision(nodes.clone(), CompareOp::Less, snap.revision + 1)
                .with_range(prefix_end(nodes.as_bytes())),
        );
    }
    when
}

impl Ctx {
    /// Records placement's word on a component; on a change, logs it and
    /// has the agent republish the component's observed document.
    fn note(&self, ck: &ComponentKey, decision: &Decision) {
        let note = note(decision, &self.node);
        if !self.notes.notes.set(ck, note.clone()) {
            return;
        }
        match note {
            Some(c) => tracing::warn!(component = %ck, reason = %c.reason, "{}", c.message),
            None => tracing::info!(component = %ck, "placement is unambiguous again"),
        }
        let _ = self
            .notes
            .trigger
            .send(self.keys.assignment_of(&self.node, ck));
    }

    /// Registered nodes and the component's assignments, at one revision.
    async fn snapshot(&self, ck: &ComponentKey) -> Result<Snapshot, AssignError> {
        let keys_only = || GetOptions::new().with_prefix().with_keys_only();
        let txn = Txn::new().and_then([
            TxnOp::get(self.keys.nodes_prefix(), Some(keys_only())),
            TxnOp::get(self.keys.all_assignments_prefix(), Some(keys_only())),
        ]);
        let resp = etcd(
            "reading nodes and assignments",
            self.client.clone().txn(txn),
        )
        .await
        .map_err(AssignError::Etcd)?;
        let mut snap = Snapshot {
            revision: resp.header().map_or(0, |h| h.revision()),
            ..Default::default()
        };
        let ranges = resp.op_responses().into_iter().filter_map(|op| match op {
            etcd_client::TxnOpResponse::Get(g) => Some(g),
            _ => None,
        });
        for (i, range) in ranges.enumerate() {
            for kv in range.kvs() {
                let key = String::from_utf8_lossy(kv.key());
                if i == 0 {
                    if let Some(name) = key.strip_prefix(&self.keys.nodes_prefix()) {
                        snap.registered.insert(name.to_string());
                    }
                } else if let Some((node, of)) = self.keys.split_assignment(&key) {
                    if &of == ck {
                        if node == self.node {
                            snap.own_revision = kv.mod_revision();
                        }
                        snap.assigned_to.insert(node);
                    }
                }
            }
        }
        Ok(snap)
    }

    /// The latest revision document of `hash`.
    async fn revision_of(&self, ck: &ComponentKey, hash: &str) -> Result<Option<u64>, AssignError> {
        let prefix = self.keys.revision_prefix(&ck.project, &ck.name);
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend);
        let resp = etcd(
            "reading revisions",
            self.client.clone().get(prefix, Some(opts)),
        )
        .await
        .map_err(AssignError::Etcd)?;
        Ok(resp.kvs().iter().find_map(|kv| {
            let r: Revision = serde_json::from_slice(kv.value()).ok()?;
            (r.hash == hash).then_some(r.seq)
        }))
    }

    /// Writes (`Some`) or deletes (`None`) this node's assignment of `ck`
    /// under `when`; a failed guard is a [`AssignError::Conflict`].
    async fn write(
        &self,
        ck: &ComponentKey,
        a: Option<&Assignment>,
        when: Vec<Compare>,
    ) -> Result<(), AssignError> {
        let key = self.keys.assignment_of(&self.node, ck);
        let op = match a {
            Some(a) => {
                let value = serde_json::to_vec(a).map_err(|e| AssignError::Etcd(e.to_string()))?;
                TxnOp::put(key, value, None)
            }
            None => TxnOp::delete(key, None),
        };
        let txn = Txn::new().when(when).and_then([op]);
        let resp = etcd("writing an assignment", self.client.clone().txn(txn))
            .await
            .map_err(AssignError::Etcd)?;
        match resp.succeeded() {
            true => Ok(()),
            false => Err(AssignError::Conflict(ck.clone())),
        }
    }

    /// The revision number of `c`'s template: from the spec's annotations
    /// (the CLI writes them with the spec), else from the revision
    /// documents; a spec written by other means runs as revision 0.
    async fn revision(&self, ck: &ComponentKey, c: &Component) -> Result<u64, AssignError> {
        let hash = c.spec.template().hash();
        match annotated_revision(c, &hash) {
            Some(r) => Ok(r),
            None => Ok(self.revision_of(ck, &hash).await?.unwrap_or_default()),
        }
    }
}

async fn reconcile(spec_key: String, ctx: Arc<Ctx>) -> Result<Action, AssignError> {
    let Some(ck) = ctx.keys.component_of_spec(&spec_key) else {
        return Ok(Action::await_change());
    };
    let akey = ctx.keys.assignment_of(&ctx.node, &ck);
    let current = ctx.assignments.get(&akey);
    let snap = ctx.snapshot(&ck).await?;
    let decision = match ctx.specs.get(&spec_key) {
        Some(spec) => decide(&spec, &ctx.node, &ctx.labels, &snap),
        None => Decision::No,
    };
    ctx.note(&ck, &decision);
    if matches!(current.as_deref(), Some(Err(_))) {
        // Reported by the agent's reconcile; never overwritten from here.
        return Ok(Action::await_change());
    }
    let spec = ctx.specs.get(&spec_key);
    let c = match (spec.as_deref(), &decision) {
        (Some(Ok(c)), Decision::Assign | Decision::AssignAlone | Decision::Keep { .. }) => c,
        (_, Decision::No) if snap.own_revision != 0 => {
            tracing::info!(component = %ck, "no longer assigned to this node");
            ctx.write(
                &ck,
                None,
                guard(&ctx.keys, &ctx.node, &ck, &decision, &snap),
            )
            .await?;
            return Ok(Action::await_change());
        }
        (_, Decision::WaitForRegistration) => {
            return Ok(Action::requeue(Duration::from_millis(200)))
        }
        _ => return Ok(Action::await_change()),
    };
    let a = assignment_for(c, ctx.revision(&ck, c).await?);
    if current.as_deref().and_then(|d| d.as_ref().ok()) != Some(&a) || snap.own_revision == 0 {
        tracing::info!(component = %ck, revision = a.revision, hash = %a.hash, replicas = a.replicas, "assigning to this node");
        let when = guard(&ctx.keys, &ctx.node, &ck, &decision, &snap);
        ctx.write(&ck, Some(&a), when).await?;
    }
    Ok(Action::await_change())
}

/// Deletes this node's assignments whose spec is gone (not merely
/// unreadable), each guarded by the revision it was seen at.
async fn sweep(ctx: &Ctx) {
    for akey in ctx.assignments.keys() {
        let Some(ck) = ctx.keys.component_of_assignment(&ctx.node, &akey) else {
            continue;
        };
        let Some(entry) = ctx.assignments.get_entry(&akey) else {
            continue;
        };
        if ctx.specs.get(&ctx.keys.component_spec(&ck)).is_some() {
            continue;
        }
        tracing::info!(component = %ck, "spec gone: removing its assignment");
        let when = vec![Compare::mod_revision(
            akey,
            CompareOp::Equal,
            entry.mod_revision,
        )];
        if let Err(e) = ctx.write(&ck, None, when).await {
            tracing::warn!(error = %e, "sweeping assignments");
        }
    }
}

/// Runs the local assigner until `shutdown`.
pub async fn run(
    client: Client,
    keys: Keys,
    node: String,
    labels: BTreeMap<String, String>,
    assignments: Reader<Doc<Assignment>>,
    notes: Notes,
    shutdown: CancellationToken,
) {
    let (specs, specs_writer) = runtime::store(runtime::doc::json::<Component>);
    let spec_events = runtime::watcher(
        client.clone(),
        keys.spec_prefix(crate::resource::Kind::Component, None),
        WatcherConfig::default(),
    );
    let triggers = Triggers::new(&client, &keys, &specs);
    let ctx = Arc::new(Ctx {
        client,
        keys,
        node,
        labels,
        specs: specs.clone(),
        assignments: assignments.clone(),
        notes,
    });
    let controller = Controller::new(
        specs,
        runtime::trigger_keys(runtime::reflector(specs_writer, spec_events)),
    )
    .with_trigger(triggers.nodes)
    .with_trigger(triggers.assignments)
    .wait_for(triggers.nodes_ready)
    // Where a component is assigned decides what several nodes do.
    .wait_for(assignments)
    .wait_for(triggers.assignments_ready)
    .with_resync(SWEEP)
    .graceful_shutdown_on(shutdown.clone().cancelled_owned())
    .run(reconcile, error_policy, ctx.clone())
    .for_each(|r| async move {
        match r {
            Err(runtime::controller::Error::Reconcile {
                source: e @ AssignError::Conflict(_),
                ..
            }) => tracing::debug!(error = %e, "local assignment"),
            Err(e) => tracing::warn!(error = %e, "local assignment failed; retrying"),
            Ok(_) => {}
        }
    });
    tokio::join!(controller, sweeper(ctx, shutdown));
}

/// A conflict is decided again at once (on a fresh snapshot); etcd errors back off.
fn error_policy(_: &str, e: &AssignError, _: Arc<Ctx>) -> Action {
    match e {
        AssignError::Conflict(_) => Action::requeue(Duration::from_millis(50)),
        AssignError::Etcd(_) => Action::backoff(),
    }
}

/// Every [`SWEEP`], removes assignments whose spec is gone.
async fn sweeper(ctx: Arc<Ctx>, shutdown: CancellationToken) {
    if ctx.specs.wait_until_ready().await.is_err()
        || ctx.assignments.wait_until_ready().await.is_err()
    {
        return;
    }
    loop {
        sweep(&ctx).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(SWEEP) => {}
        }
    }
}

type KeyStream = futures::stream::BoxStream<'static, String>;

/// What re-decides components: any node registering or leaving (every
/// component), any node's assignment of a component appearing or going.
struct Triggers {
    nodes: KeyStream,
    nodes_ready: Reader<()>,
    assignments: KeyStream,
    assignments_ready: Reader<()>,
}

impl Triggers {
    fn new(client: &Client, keys: &Keys, specs: &Reader<Doc<Component>>) -> Triggers {
        let (nodes_ready, nodes_writer) = runtime::store(|_| Some(()));
        let node_events = runtime::watcher(
            client.clone(),
            keys.nodes_prefix(),
            WatcherConfig::default(),
        );
        let specs = specs.clone();
        let nodes = runtime::trigger_keys(runtime::reflector(nodes_writer, node_events))
            .flat_map(move |_| futures::stream::iter(specs.keys()))
            .boxed();
        let (assignments_ready, writer) = runtime::store(|_| Some(()));
        let events = runtime::watcher(
            client.clone(),
            keys.all_assignments_prefix(),
            WatcherConfig::default(),
        );
        let keys = keys.clone();
        let assignments = runtime::trigger_keys(runtime::reflector(writer, events))
            .filter_map(move |akey| {
                let spec = keys
                    .split_assignment(&akey)
                    .map(|(_, ck)| keys.component_spec(&ck));
                futures::future::ready(spec)
            })
            .boxed();
        Triggers {
            nodes,
            nodes_ready,
            assignments,
            assignments_ready,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::{ComponentSpec, Placement, State};
    use crate::resource::ObjectMeta;

    fn comp(nodes: &[&str], selector: &[(&str, &str)]) -> Component {
        Component {
            api_version: "berth/v1".into(),
            kind: "Component".into(),
            metadata: ObjectMeta {
                name: "web".into(),
                project: Some("shop".into()),
                generation: Some(4),
                ..Default::default()
            },
            spec: ComponentSpec {
                image: "bench/web:1".into(),
                placement: Placement {
                    replicas: Some(2),
                    nodes: nodes.iter().map(|s| s.to_string()).collect(),
                    node_selector: selector
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    ..Default::default()
                },
                state: State::Stopped,
                ..Default::default()
            },
            status: None,
        }
    }

    fn snap(registered: &[&str], assigned_to: &[&str]) -> Snapshot {
        Snapshot {
            revision: 10,
            registered: registered.iter().map(|s| s.to_string()).collect(),
            assigned_to: assigned_to.iter().map(|s| s.to_string()).collect(),
            own_revision: if assigned_to.contains(&"n1") { 7 } else { 0 },
        }
    }

    /// `decide` for node n1 (labels zone=a) on one table of cases.
    fn check(c: Doc<Component>, registered: &[&str], assigned_to: &[&str], want: Decision) {
        let labels = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        let got = decide(&c, "n1", &labels, &snap(registered, assigned_to));
        assert_eq!(
            got, want,
            "registered {registered:?}, assigned to {assigned_to:?}"
        );
    }

    #[test]
    fn placement_rules() {
        use Decision::*;
        let free = || Ok(comp(&[], &[]));
        // Pinned: only the named nodes, however many are registered.
        check(Ok(comp(&["n1", "n3"], &[])), &["n1", "n2"], &[], Assign);
        check(Ok(comp(&["n3"], &[])), &["n1"], &[], No);
        check(Ok(comp(&["n3"], &[])), &["n1", "n2"], &["n1"], No);
        // Not pinned, one node: that node.
        check(free(), &["n1"], &[], AssignAlone);
        check(free(), &["n1"], &["n1"], Keep { nodes: 1 });
        // Its own registration missing for a while changes nothing...
        check(free(), &[], &["n1"], Keep { nodes: 1 });
        // ...but nothing new is taken before it registers: a node deciding
        // alone must be visible to every node deciding after it.
        check(free(), &[], &[], WaitForRegistration);
        // Not pinned, several nodes: what runs here stays, nothing new starts.
        check(free(), &["n1", "n2"], &["n1"], Keep { nodes: 2 });
        check(free(), &["n1", "n2"], &[], Unschedulable { nodes: 2 });
        check(free(), &["n2"], &[], Unschedulable { nodes: 2 });
        check(free(), &["n2"], &["n1"], Keep { nodes: 2 });
        // Assigned to another node: it stays there, registered or not. A
        // node that looks gone (lease lapsed in an outage) may still run it.
        let n2 = |registered| Elsewhere {
            node: "n2".into(),
            registered,
        };
        check(free(), &["n1", "n2"], &["n2"], n2(true));
        check(free(), &["n1"], &["n2"], n2(false));
        check(free(), &[], &["n2"], n2(false));
        // The node selector must match the agent's labels, sticky or not.
        check(Ok(comp(&[], &[("zone", "a")])), &["n1"], &[], AssignAlone);
        assert_eq!(note(&Keep { nodes: 1 }, "n1"), None);
        check(Ok(comp(&[], &[("zone", "b")])), &["n1"], &["n1"], No);
        check(Ok(comp(&["n1"], &[("zone", "b")])), &["n1"], &["n1"], No);
        // A spec that does not decode decides nothing.
        let bad = crate::runtime::Unreadable {
            key: "/k".into(),
            revision: 3,
            error: "eof".into(),
        };
        let error = bad.to_string();
        check(Err(bad), &["n1"], &["n1"], Unreadable { error });
    }

    #[test]
    fn notes_say_what_to_do() {
        assert_eq!(note(&Decision::Assign, "n1"), None);
        assert_eq!(note(&Decision::No, "n1"), None);
        let registered = Decision::Elsewhere {
            node: "n2".into(),
            registered: true,
        };
        assert_eq!(note(&registered, "n1"), None);
        let c = note(&Decision::Unschedulable { nodes: 3 }, "n1").expect("note");
        assert!(c.is(ConditionType::Unschedulable) && c.is_true());
        assert!(
            c.message
                .starts_with("3 nodes registered and no coordinator yet")
                && c.message.ends_with("pin it with placement.nodes"),
            "{c:?}"
        );
        let c = note(&Decision::Keep { nodes: 2 }, "n1").expect("note");
        assert_eq!((c.is_true(), c.reason.as_str()), (false, "KeptOnNode"));
        assert!(c.message.contains("kept on node n1"), "{c:?}");
        let gone = Decision::Elsewhere {
            node: "n2".into(),
            registered: false,
        };
        let c = note(&gone, "n1").expect("note");
        assert!(
            c.message.contains("node n2, which is not registered"),
            "{c:?}"
        );
        let c = note(
            &Decision::Unreadable {
                error: "bad".into(),
            },
            "n1",
        )
        .expect("note");
        assert!(
            c.is(ConditionType::Degraded) && c.message.starts_with("bad;"),
            "{c:?}"
        );
    }

    /// Only a decision that this node is alone is guarded beyond its own key.
    #[test]
    fn guards() {
        let keys = Keys::new("/b");
        let ck = ComponentKey::new("shop", "web");
        let s = snap(&["n1", "n2"], &["n1"]);
        assert_eq!(
            guard(&keys, "n1", &ck, &Decision::Keep { nodes: 2 }, &s).len(),
            1
        );
        let s = snap(&["n1"], &[]);
        // Own key and the nodes range.
        assert_eq!(guard(&keys, "n1", &ck, &Decision::AssignAlone, &s).len(), 2);
    }

    #[test]
    fn assignment_from_spec() {
        let mut c = comp(&["n1"], &[]);
        let hash = c.spec.template().hash();
        assert_eq!(annotated_revision(&c, &hash), None);
        c.metadata
            .annotations
            .insert(HASH_ANNOTATION.into(), hash.clone());
        c.metadata
            .annotations
            .insert(REVISION_ANNOTATION.into(), "7".into());
        assert_eq!(annotated_revision(&c, &hash), Some(7));
        assert_eq!(annotated_revision(&c, "other"), None);
        let a = assignment_for(&c, 7);
        assert_eq!(
            (a.generation, a.revision, a.replicas, a.state),
            (4, 7, 2, State::Stopped)
        );
        assert_eq!(a.hash, hash);
        assert_eq!(a.template.image, "bench/web:1");
    }
}
