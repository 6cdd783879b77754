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
//! With more than one node registered, nothing here can place an unpinned
//! component safely, so nothing is taken away: a component already assigned
//! to this node stays (sticky, and follows its spec), and one assigned
//! nowhere is started nowhere. Both are logged as warnings and shown as an
//! `Unschedulable` condition in the component's observed document (`False`
//! with reason `KeptOnNode` for the first, `True` with reason
//! `NoCoordinator` for the second), saying to pin it with `placement.nodes`.
//! A second agent started on the same root therefore never removes the
//! first one's containers.
//!
//! This is all a coordinator has to replace: the rest of the agent only
//! reads assignments.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, GetOptions, SortOrder, SortTarget};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::register::etcd;
use super::state::{PlacementNotes, UNSCHEDULABLE};
use crate::resource::component::Component;
use crate::resource::{Assignment, Condition, Node, Revision};
use crate::runtime::{self, Action, Controller, Reader, WatcherConfig};
use crate::store::{Keys, HASH_ANNOTATION, REVISION_ANNOTATION};

/// How often assignments without a spec are swept (a spec deleted while the
/// agent was away).
const SWEEP: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AssignError(String);

struct Ctx {
    client: Client,
    keys: Keys,
    node: String,
    labels: BTreeMap<String, String>,
    specs: Reader<Component>,
    nodes: Reader<Node>,
    /// This node's assignments, as the agent's main cache sees them.
    assignments: Reader<Assignment>,
    /// Every node's assignment keys (is a component assigned elsewhere?).
    everywhere: Reader<()>,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run it here: pinned to this node, or this is the only node.
    Assign,
    /// Unpinned, `nodes` nodes registered, already assigned here: kept here.
    Keep { nodes: usize },
    /// Unpinned, several nodes registered, assigned to another registered
    /// node only: that node keeps it, nothing to do or say here.
    Elsewhere,
    /// Unpinned, `nodes` nodes registered, assigned to none of them: not
    /// started anywhere.
    Unschedulable { nodes: usize },
    /// Not for this node (pinned elsewhere, or its node selector does not
    /// match): its assignment here, if any, is removed.
    No,
}

/// Where a component is assigned now, this node first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assigned {
    Here,
    /// To another registered node, not to this one.
    Elsewhere,
    Nowhere,
}

/// What to do with component `c` on `node`, given the registered node names
/// and where it is assigned now. This node always counts as
/// registered: its own registration vanishing (a lease lost in an etcd
/// outage) must not take its containers away.
pub fn decide(
    c: &Component,
    node: &str,
    labels: &BTreeMap<String, String>,
    registered: &[String],
    assigned: Assigned,
) -> Decision {
    let p = &c.spec.placement;
    let selected = p
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !selected {
        return Decision::No;
    }
    if !p.nodes.is_empty() {
        return if p.nodes.iter().any(|n| n == node) {
            Decision::Assign
        } else {
            Decision::No
        };
    }
    let nodes = registered
        .iter()
        .map(String::as_str)
        .chain([node])
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    match (nodes, assigned) {
        (1, _) => Decision::Assign,
        (nodes, Assigned::Here) => Decision::Keep { nodes },
        (_, Assigned::Elsewhere) => Decision::Elsewhere,
        (nodes, Assigned::Nowhere) => Decision::Unschedulable { nodes },
    }
}

/// The `Unschedulable` condition of a decision (`None`: no word to say).
pub fn note(decision: Decision, node: &str) -> Option<Condition> {
    match decision {
        Decision::Keep { nodes } => Some(Condition::new(
            UNSCHEDULABLE,
            false,
            "KeptOnNode",
            format!(
                "{nodes} nodes registered and no coordinator yet: kept on node {node}, \
                 where it was assigned; pin it with placement.nodes"
            ),
        )),
        Decision::Unschedulable { nodes } => Some(Condition::new(
            UNSCHEDULABLE,
            true,
            "NoCoordinator",
            format!(
                "{nodes} nodes registered and no coordinator yet: not started on any node; \
                 pin it with placement.nodes"
            ),
        )),
        Decision::Assign | Decision::Elsewhere | Decision::No => None,
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

impl Ctx {
    /// Records placement's word on a component; on a change, logs it and
    /// has the agent republish the component's observed document.
    fn note(&self, project: &str, name: &str, decision: Decision) {
        let ckey = format!("{project}/{name}");
        let note = note(decision, &self.node);
        if !self.notes.notes.set(&ckey, note.clone()) {
            return;
        }
        match note {
            Some(c) => tracing::warn!(component = %ckey, reason = %c.reason, "{}", c.message),
            None => tracing::info!(component = %ckey, "placement is unambiguous again"),
        }
        let _ = self
            .notes
            .trigger
            .send(self.keys.assignment(&self.node, project, name));
    }

    fn project_name<'a>(&self, spec_key: &'a str) -> Option<(&'a str, &'a str)> {
        let prefix = self
            .keys
            .spec_prefix(crate::resource::Kind::Component, None);
        match self.keys.parts(&prefix, spec_key)?.as_slice() {
            [p, n] => Some((p, n)),
            _ => None,
        }
    }

    /// The latest revision document of `hash`.
    async fn revision_of(
        &self,
        project: &str,
        component: &str,
        hash: &str,
    ) -> Result<Option<u64>, String> {
        let prefix = self.keys.revision_prefix(project, component);
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend);
        let resp = etcd(
            "reading revisions",
            self.client.clone().get(prefix, Some(opts)),
        )
        .await?;
        Ok(resp.kvs().iter().find_map(|kv| {
            let r: Revision = serde_json::from_slice(kv.value()).ok()?;
            (r.hash == hash).then_some(r.seq)
        }))
    }

    async fn put(&self, key: &str, a: &Assignment) -> Result<(), String> {
        let value = serde_json::to_vec(a).map_err(|e| e.to_string())?;
        etcd(
            "writing an assignment",
            self.client.clone().put(key, value, None),
        )
        .await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), String> {
        etcd(
            "deleting an assignment",
            self.client.clone().delete(key, None),
        )
        .await?;
        Ok(())
    }
}

async fn reconcile(spec_key: String, ctx: Arc<Ctx>) -> Result<Action, AssignError> {
    let Some((project, name)) = ctx.project_name(&spec_key) else {
        return Ok(Action::await_change());
    };
    let akey = ctx.keys.assignment(&ctx.node, project, name);
    let current = ctx.assignments.get(&akey);
    let registered: Vec<String> = ctx
        .nodes
        .state()
        .iter()
        .map(|n| n.metadata.name.clone())
        .collect();
    let spec = ctx.specs.get(&spec_key);
    let decision = match spec.as_deref() {
        Some(c) => {
            let elsewhere = || {
                registered.iter().any(|n| {
                    n != &ctx.node
                        && ctx
                            .everywhere
                            .get(&ctx.keys.assignment(n, project, name))
                            .is_some()
                })
            };
            let assigned = if current.is_some() {
                Assigned::Here
            } else if elsewhere() {
                Assigned::Elsewhere
            } else {
                Assigned::Nowhere
            };
            decide(c, &ctx.node, &ctx.labels, &registered, assigned)
        }
        None => Decision::No,
    };
    ctx.note(project, name, decision);
    let c = match (spec.as_deref(), decision) {
        (Some(c), Decision::Assign | Decision::Keep { .. }) => c,
        (_, Decision::Unschedulable { .. } | Decision::Elsewhere) => {
            return Ok(Action::await_change())
        }
        _ => {
            if current.is_some() {
                tracing::info!(component = %format!("{project}/{name}"), "no longer assigned to this node");
                ctx.delete(&akey).await.map_err(AssignError)?;
            }
            return Ok(Action::await_change());
        }
    };
    let hash = c.spec.template().hash();
    // The CLI writes the revision with the spec; a spec written by other
    // means runs as revision 0.
    let revision = match annotated_revision(c, &hash) {
        Some(r) => r,
        None => ctx
            .revision_of(project, name, &hash)
            .await
            .map_err(AssignError)?
            .unwrap_or_default(),
    };
    let a = assignment_for(c, revision);
    if current.as_deref() != Some(&a) {
        tracing::info!(component = %format!("{project}/{name}"), revision, hash = %a.hash, replicas = a.replicas, "assigning to this node");
        ctx.put(&akey, &a).await.map_err(AssignError)?;
    }
    Ok(Action::await_change())
}

/// Deletes this node's assignments whose spec is gone.
async fn sweep(ctx: &Ctx) {
    for akey in ctx.assignments.keys() {
        let parts = ctx
            .keys
            .parts(&ctx.keys.assignments_prefix(&ctx.node), &akey);
        let Some([project, name]) = parts.as_deref() else {
            continue;
        };
        let skey = ctx
            .keys
            .spec(crate::resource::Kind::Component, Some(project), name);
        if ctx.specs.get(&skey).is_none() {
            tracing::info!(component = %format!("{project}/{name}"), "spec gone: removing its assignment");
            if let Err(e) = ctx.delete(&akey).await {
                tracing::warn!(error = %e, "sweeping assignments");
            }
        }
    }
}

/// Runs the local assigner until `shutdown`.
pub async fn run(
    client: Client,
    keys: Keys,
    node: String,
    labels: BTreeMap<String, String>,
    assignments: Reader<Assignment>,
    notes: Notes,
    shutdown: CancellationToken,
) {
    let (specs, specs_writer) =
        runtime::store(|kv| serde_json::from_slice::<Component>(&kv.value).ok());
    let (nodes, nodes_writer) = runtime::store(|kv| serde_json::from_slice::<Node>(&kv.value).ok());
    let spec_events = runtime::watcher(
        client.clone(),
        keys.spec_prefix(crate::resource::Kind::Component, None),
        WatcherConfig::default(),
    );
    let node_events = runtime::watcher(
        client.clone(),
        keys.nodes_prefix(),
        WatcherConfig::default(),
    );
    let (everywhere, everywhere_writer) = runtime::store(|_| Some(()));
    let everywhere_events = runtime::watcher(
        client.clone(),
        keys.all_assignments_prefix(),
        WatcherConfig::default(),
    );
    // An assignment appearing or going (on any node) can change its
    // component's placement here.
    let assignment_triggers = {
        let keys = keys.clone();
        runtime::trigger_keys(runtime::reflector(everywhere_writer, everywhere_events)).filter_map(
            move |akey| {
                let spec = match keys.parts(&keys.all_assignments_prefix(), &akey).as_deref() {
                    Some([_node, project, name]) => {
                        Some(keys.spec(crate::resource::Kind::Component, Some(project), name))
                    }
                    _ => None,
                };
                futures::future::ready(spec)
            },
        )
    };
    let specs_for_nodes = specs.clone();
    // Any change of the registered nodes can change every component's placement.
    let node_triggers = runtime::trigger_keys(runtime::reflector(nodes_writer, node_events))
        .flat_map(move |_| futures::stream::iter(specs_for_nodes.keys()));
    let ctx = Arc::new(Ctx {
        client,
        keys,
        node,
        labels,
        specs: specs.clone(),
        nodes: nodes.clone(),
        assignments: assignments.clone(),
        everywhere: everywhere.clone(),
        notes,
    });
    let sweeper = {
        let ctx = ctx.clone();
        let shutdown = shutdown.clone();
        async move {
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
    };
    let controller = Controller::new(
        specs,
        runtime::trigger_keys(runtime::reflector(specs_writer, spec_events)),
    )
    .with_trigger(node_triggers)
    .with_trigger(assignment_triggers)
    .wait_for(nodes)
    // Where a component is assigned decides what several nodes do.
    .wait_for(assignments)
    .wait_for(everywhere)
    .with_resync(SWEEP)
    .graceful_shutdown_on(shutdown.clone().cancelled_owned())
    .run(reconcile, |_, _, _| Action::backoff(), ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::warn!(error = %e, "local assignment failed; retrying");
        }
    });
    tokio::join!(controller, sweeper);
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

    #[test]
    fn placement_rules() {
        use Decision::*;
        let labels = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        let one = vec!["n1".to_string()];
        let two = vec!["n1".to_string(), "n2".to_string()];
        let d = |c: &Component, registered: &[String], here: bool| {
            let assigned = if here {
                Assigned::Here
            } else {
                Assigned::Nowhere
            };
            decide(c, "n1", &labels, registered, assigned)
        };
        // Pinned: only the named nodes, however many are registered.
        assert_eq!(d(&comp(&["n1", "n3"], &[]), &two, false), Assign);
        assert_eq!(d(&comp(&["n3"], &[]), &one, false), No);
        assert_eq!(d(&comp(&["n3"], &[]), &two, true), No);
        // Not pinned, one node: that node.
        assert_eq!(d(&comp(&[], &[]), &one, false), Assign);
        assert_eq!(d(&comp(&[], &[]), &one, true), Assign);
        // Its own registration missing for a while changes nothing.
        assert_eq!(d(&comp(&[], &[]), &[], true), Assign);
        // Not pinned, several nodes: what runs here stays, nothing new starts.
        assert_eq!(d(&comp(&[], &[]), &two, true), Keep { nodes: 2 });
        assert_eq!(d(&comp(&[], &[]), &two, false), Unschedulable { nodes: 2 });
        // ...and what runs on another node stays there, without a word.
        let c = comp(&[], &[]);
        assert_eq!(
            decide(&c, "n1", &labels, &two, Assigned::Elsewhere),
            Elsewhere
        );
        assert_eq!(note(Elsewhere, "n1"), None);
        let on_one = decide(&c, "n1", &labels, &one, Assigned::Elsewhere);
        assert_eq!(on_one, Assign, "alone, it runs everything");
        // Another node registered, this one (not yet) among them: two nodes.
        let other = ["n2".to_string()];
        assert_eq!(
            d(&comp(&[], &[]), &other, false),
            Unschedulable { nodes: 2 }
        );
        assert_eq!(d(&comp(&[], &[]), &other, true), Keep { nodes: 2 });
        // The node selector must match the agent's labels, sticky or not.
        assert_eq!(d(&comp(&[], &[("zone", "a")]), &one, false), Assign);
        assert_eq!(d(&comp(&[], &[("zone", "b")]), &one, true), No);
        assert_eq!(d(&comp(&[], &[("zone", "b")]), &two, true), No);
        assert_eq!(d(&comp(&["n1"], &[("zone", "b")]), &one, true), No);
    }

    #[test]
    fn notes_say_what_to_do() {
        assert_eq!(note(Decision::Assign, "n1"), None);
        assert_eq!(note(Decision::No, "n1"), None);
        let c = note(Decision::Unschedulable { nodes: 3 }, "n1").expect("note");
        assert_eq!((c.type_.as_str(), c.is_true()), ("Unschedulable", true));
        assert!(
            c.message
                .starts_with("3 nodes registered and no coordinator yet")
                && c.message.ends_with("pin it with placement.nodes"),
            "{c:?}"
        );
        let c = note(Decision::Keep { nodes: 2 }, "n1").expect("note");
        assert_eq!((c.is_true(), c.reason.as_str()), (false, "KeptOnNode"));
        assert!(c.message.contains("kept on node n1"), "{c:?}");
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
