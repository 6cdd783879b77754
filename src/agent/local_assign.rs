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
//! This is all a coordinator has to replace: the rest of the agent only
//! reads assignments.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, GetOptions, SortOrder, SortTarget};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::register::etcd;
use crate::resource::component::Component;
use crate::resource::{Assignment, Node, Revision};
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
}

/// Whether a component runs on `node`, given the registered node names.
/// This node always counts as registered: its own registration vanishing
/// (a lease lost in an etcd outage) must not take its containers away.
pub fn eligible(
    c: &Component,
    node: &str,
    labels: &BTreeMap<String, String>,
    registered: &[String],
) -> bool {
    let p = &c.spec.placement;
    let selected = p
        .node_selector
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v));
    if !p.nodes.is_empty() {
        return p.nodes.iter().any(|n| n == node) && selected;
    }
    registered.iter().all(|n| n == node) && selected
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
    let wanted = match spec.as_deref() {
        Some(c) if eligible(c, &ctx.node, &ctx.labels, &registered) => Some(c),
        _ => None,
    };
    let Some(c) = wanted else {
        if current.is_some() {
            tracing::info!(component = %format!("{project}/{name}"), "no longer assigned to this node");
            ctx.delete(&akey).await.map_err(AssignError)?;
        }
        return Ok(Action::await_change());
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
        assignments,
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
    .wait_for(nodes)
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
        let labels = BTreeMap::from([("zone".to_string(), "a".to_string())]);
        let one = vec!["n1".to_string()];
        let two = vec!["n1".to_string(), "n2".to_string()];
        // Pinned: only the named nodes, however many are registered.
        assert!(eligible(&comp(&["n1", "n3"], &[]), "n1", &labels, &two));
        assert!(!eligible(&comp(&["n3"], &[]), "n1", &labels, &one));
        // Not pinned: only on a one-node cluster, and only that node.
        assert!(eligible(&comp(&[], &[]), "n1", &labels, &one));
        assert!(!eligible(&comp(&[], &[]), "n1", &labels, &two));
        assert!(!eligible(
            &comp(&[], &[]),
            "n1",
            &labels,
            &["n2".to_string()]
        ));
        // Its own registration missing for a while changes nothing.
        assert!(eligible(&comp(&[], &[]), "n1", &labels, &[]));
        // The node selector must match the agent's labels.
        assert!(eligible(&comp(&[], &[("zone", "a")]), "n1", &labels, &one));
        assert!(!eligible(&comp(&[], &[("zone", "b")]), "n1", &labels, &one));
        assert!(!eligible(
            &comp(&["n1"], &[("zone", "b")]),
            "n1",
            &labels,
            &one
        ));
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
