//! One component's reconcile in the coordinator: place it, write the
//! assignments that changed, roll its status up and write it if it changed.
//! Every write is fenced by the term and compares each key it touches with
//! the revision the decision was made on.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use etcd_client::{Client, Compare, CompareOp, GetOptions, TxnOp};
use tokio_util::sync::CancellationToken;

use super::assign::annotated_revision;
use super::cluster::Cluster;
use super::fence::{FenceError, Fenced};
use super::rollout;
use super::status;
use crate::events::ClusterEvent;
use crate::placement;
use crate::resource::component::{Component, ComponentStatus, RolloutPhase, RolloutStatus, State};
use crate::resource::meta::PROMOTE_ANNOTATION;
use crate::resource::{Assignment, ComponentKey, Condition, ConditionType, Kind, Reason, Revision};
use crate::runtime::Action;
use crate::store::call::etcd;

/// A component with work pending (a rollout progressing, `minReady`
/// running) is looked at again at least this soon.
const PENDING: Duration = Duration::from_secs(1);

/// What every reconcile of a term shares.
pub struct Ctx {
    pub cluster: Cluster,
    pub fenced: Fenced,
    pub client: Client,
    /// This node's name (written into every status).
    pub node: String,
    /// Cancelled when a write finds the fence gone: the term is over.
    pub deposed: CancellationToken,
    /// Revision numbers looked up by template hash.
    pub revisions: Mutex<HashMap<(ComponentKey, String), u64>>,
    /// The statuses this term last wrote or read.
    pub statuses: Mutex<HashMap<ComponentKey, ComponentStatus>>,
    /// This term's assignment writes the cache has not shown yet, by key:
    /// the revision written and the value (`None`: deleted). Only this term
    /// writes assignments (the previous term's writes were all listed when
    /// its caches started), so cache + these is exactly what etcd holds, and
    /// a reconcile never decides on a cache that lags its own last write.
    /// Indexed by component, so a reconcile looks at its own writes only
    /// (a scan of every pending write made each reconcile O(writes): at
    /// 10,000 components the coordinator's CPU grew with their square).
    pub written: Mutex<HashMap<ComponentKey, HashMap<String, Written>>>,
    /// Revision documents an automatic rollback needed, by number (`None`:
    /// not there).
    pub known: Mutex<HashMap<(ComponentKey, u64), Option<rollout::Rev>>>,
    /// Cluster events of this term's writes (rollout steps and ends).
    pub events: crate::events::Recorder,
}

/// One of this term's assignment writes: its revision and value (`None`: deleted).
pub type Written = (i64, Option<Assignment>);

#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    #[error(transparent)]
    Fence(#[from] FenceError),
    #[error("{0}")]
    Etcd(String),
}

/// Deposed: end the term. A lost compare: decide again at once.
pub fn error_policy(_: &str, e: &ComponentError, ctx: Arc<Ctx>) -> Action {
    match e {
        ComponentError::Fence(FenceError::Deposed) => {
            ctx.deposed.cancel();
            Action::await_change()
        }
        ComponentError::Fence(FenceError::Conflict) => Action::requeue(Duration::from_millis(50)),
        _ => Action::backoff(),
    }
}

pub async fn reconcile(spec_key: String, ctx: Arc<Ctx>) -> Result<Action, ComponentError> {
    let Some(ck) = ctx.cluster.keys.component_of_spec(&spec_key) else {
        return Ok(Action::await_change());
    };
    let spec = match ctx.cluster.specs.get(&spec_key).as_deref() {
        Some(Ok(c)) => Some(c.clone()),
        Some(Err(e)) => {
            let message = format!("{e}; its assignments are kept as they are");
            mark_degraded(&ctx, &ck, Reason::UnreadableSpec, &message).await?;
            return Ok(Action::await_change());
        }
        None => None,
    };
    let docs = ctx.cluster.assignments_of(&ck);
    let mut current: BTreeMap<String, Assignment> = BTreeMap::new();
    for (node, doc) in &docs {
        match doc.as_ref() {
            Ok(a) => current.insert(node.clone(), a.clone()),
            Err(e) => {
                let message = format!("{e}; the component is left as it is");
                mark_degraded(&ctx, &ck, Reason::UnreadableAssignment, &message).await?;
                return Ok(Action::await_change());
            }
        };
    }
    overlay_own_writes(&ctx, &ck, &mut current);
    let Some(c) = spec else {
        delete_all(&ctx, &ck, &current).await?;
        return Ok(Action::await_change());
    };
    place(&ctx, &ck, &c, &current).await
}

/// A deleted spec: every assignment goes (status and revisions went with
/// the spec).
async fn delete_all(
    ctx: &Ctx,
    ck: &ComponentKey,
    current: &BTreeMap<String, Assignment>,
) -> Result<(), ComponentError> {
    if current.is_empty() {
        return Ok(());
    }
    tracing::info!(component = %ck, nodes = current.len(), "spec deleted: removing its assignments");
    let keys: Vec<String> = current
        .keys()
        .map(|n| ctx.cluster.keys.assignment_of(n, ck))
        .collect();
    let (when, ops) = keys
        .iter()
        .map(|k| (unchanged(ctx, ck, k), TxnOp::delete(k.clone(), None)))
        .unzip();
    let revision = ctx.fenced.commit(when, ops).await?;
    remember_writes(ctx, ck, revision, keys.into_iter().map(|k| (k, None)));
    ctx.statuses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(ck);
    Ok(())
}

/// Applies this term's writes the cache has not caught up with yet, and
/// forgets those it has.
fn overlay_own_writes(ctx: &Ctx, ck: &ComponentKey, current: &mut BTreeMap<String, Assignment>) {
    let mut all = ctx.written.lock().unwrap_or_else(|e| e.into_inner());
    let Some(written) = all.get_mut(ck) else {
        return;
    };
    let keys = &ctx.cluster.keys;
    written.retain(|key, (rev, value)| {
        if caught_up(ctx, key, *rev, value.is_none()) {
            return false;
        }
        if let Some((node, _)) = keys.split_assignment(key) {
            match value {
                Some(a) => current.insert(node, a.clone()),
                None => current.remove(&node),
            };
        }
        true
    });
    if written.is_empty() {
        all.remove(ck);
    }
}

/// Whether the cache shows a write of ours made at `rev`: a put once the
/// key's revision reached it, a delete once the key is gone (or re-made later).
fn caught_up(ctx: &Ctx, key: &str, rev: i64, deleted: bool) -> bool {
    match ctx.cluster.assignments.get_entry(key) {
        Some(e) => e.mod_revision >= rev,
        None => deleted,
    }
}

/// Remembers this term's writes until the cache shows them.
fn remember_writes(
    ctx: &Ctx,
    ck: &ComponentKey,
    revision: i64,
    writes: impl IntoIterator<Item = (String, Option<Assignment>)>,
) {
    let mut all = ctx.written.lock().unwrap_or_else(|e| e.into_inner());
    let written = all.entry(ck.clone()).or_default();
    for (key, value) in writes {
        written.insert(key, (revision, value));
    }
}

/// The key is as etcd holds it, to this term's knowledge (absent: still
/// absent): the cache, or this term's own write it does not show yet.
fn unchanged(ctx: &Ctx, ck: &ComponentKey, key: &str) -> Compare {
    let written = ctx.written.lock().unwrap_or_else(|e| e.into_inner());
    let own = written
        .get(ck)
        .and_then(|w| w.get(key))
        .map(|(rev, value)| (*rev, value.is_none()));
    drop(written);
    let rev = match own {
        // Ours, not in the cache yet: a put is at its revision, a delete absent.
        Some((rev, deleted)) if !caught_up(ctx, key, rev, deleted) => {
            if deleted {
                0
            } else {
                rev
            }
        }
        _ => ctx
            .cluster
            .assignments
            .get_entry(key)
            .map_or(0, |e| e.mod_revision),
    };
    Compare::mod_revision(key, CompareOp::Equal, rev)
}

async fn place(
    ctx: &Ctx,
    ck: &ComponentKey,
    c: &Component,
    current: &BTreeMap<String, Assignment>,
) -> Result<Action, ComponentError> {
    let views = ctx.cluster.node_views();
    let counts: BTreeMap<String, u32> = current
        .iter()
        .map(|(n, a)| (n.clone(), a.replicas()))
        .collect();
    let decision = placement::place(&c.spec.placement, &views, &counts);
    let template = c.spec.template();
    let hash = template.hash();
    let revision = revision(ctx, ck, c, &hash).await?;
    let observed = ctx.cluster.observed_of(ck);
    let registered: BTreeSet<String> = views
        .iter()
        .filter(|v| v.ready)
        .map(|v| v.name.clone())
        .collect();
    let status_key = ctx
        .cluster
        .keys
        .status(Kind::Component, Some(&ck.project), &ck.name);
    let old = old_status(ctx, ck, &status_key);
    let prev = old.as_ref().and_then(|s| s.rollout.as_ref());
    let known = known_revisions(ctx, ck, prev, current, revision).await?;
    let policy = c.spec.rollout();
    let rev = rollout::Rev {
        number: revision,
        hash: hash.clone(),
        template,
    };
    let now = SystemTime::now();
    let out = rollout::step(&rollout::Input {
        spec: rollout::Spec {
            generation: c.metadata.generation.unwrap_or(1),
            state: c.spec.state,
            rollout: &policy,
            desired: decision.per_node.values().sum(),
            promoted: c
                .metadata
                .annotations
                .get(PROMOTE_ANNOTATION)
                .and_then(|v| v.parse().ok()),
        },
        revision: &rev,
        known: &known,
        target: &decision.per_node,
        unschedulable: decision.unschedulable.as_deref(),
        current,
        observed: &observed,
        registered: &registered,
        now,
        prev,
    });
    let puts: BTreeMap<String, Assignment> = out
        .assignments
        .iter()
        .filter(|(n, a)| current.get(*n) != Some(*a))
        .map(|(n, a)| (n.clone(), a.clone()))
        .collect();
    let deletes: BTreeSet<String> = current
        .keys()
        .filter(|n| !out.assignments.contains_key(*n))
        .cloned()
        .collect();
    let assigned: BTreeMap<String, (u32, u64)> = out
        .assignments
        .iter()
        .map(|(n, a)| (n.clone(), (a.replicas(), newest_revision(a))))
        .collect();
    let desired = match (c.spec.state, c.spec.placement.per_node) {
        (State::Running, Some(_)) => decision.per_node.values().sum(),
        (State::Running, None) => c.spec.placement.count(),
        _ => 0,
    };
    let input = status::Input {
        spec: c,
        hash: &hash,
        revision,
        desired,
        assigned: &assigned,
        observed: &observed,
        unschedulable: decision.unschedulable.as_deref(),
        coordinator: &ctx.node,
        now,
        rollout: out.rollout.as_ref(),
        progressing: out.progressing.as_ref(),
    };
    let st = status::roll_up(&input, old.as_ref());
    let changed = !old.as_ref().is_some_and(|o| status::same(o, &st));
    let landed = write(ctx, ck, &puts, &deletes, changed.then_some(&st)).await?;
    // Announced only by the write that recorded the change.
    let was = old.as_ref().and_then(|o| o.rollout.as_ref());
    let events = landed.then(|| super::events::rollout(was, st.rollout.as_ref()));
    for (reason, message) in events.unwrap_or_default() {
        let e = ClusterEvent::component(&ck.project, &ck.name, &ctx.node, reason, &message);
        ctx.events.record(e);
    }
    let moving = out
        .rollout
        .as_ref()
        .is_some_and(|r| r.phase == RolloutPhase::Progressing);
    let pending = moving || st.available_replicas < st.ready_replicas;
    let after = match (out.rerun, pending) {
        (Some(r), true) => Some(r.min(PENDING)),
        (Some(r), false) => Some(r),
        (None, true) => Some(PENDING),
        (None, false) => None,
    };
    Ok(after.map_or_else(Action::await_change, Action::requeue))
}

/// The newest revision an assignment names (0 for none).
fn newest_revision(a: &Assignment) -> u64 {
    a.newest().map_or(0, |r| r.revision)
}

/// The revision an automatic rollback may need when no assignment carries
/// it any more: read from its revision document (once per term; revision
/// documents do not change but for their pin).
async fn known_revisions(
    ctx: &Ctx,
    ck: &ComponentKey,
    prev: Option<&RolloutStatus>,
    current: &BTreeMap<String, Assignment>,
    revision: u64,
) -> Result<Vec<rollout::Rev>, ComponentError> {
    let Some(stable) = prev.and_then(|p| p.stable_revision) else {
        return Ok(Vec::new());
    };
    let carried = current
        .values()
        .any(|a| a.revisions.iter().any(|r| r.revision == stable));
    if stable == revision || carried {
        return Ok(Vec::new());
    }
    let key = (ck.clone(), stable);
    if let Some(r) = ctx
        .known
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
    {
        return Ok(r.iter().cloned().collect());
    }
    let prefix = ctx.cluster.keys.revision_prefix(&ck.project, &ck.name);
    let resp = etcd(
        "reading revisions",
        ctx.client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await
    .map_err(ComponentError::Etcd)?;
    let found = resp.kvs().iter().find_map(|kv| {
        let r: Revision = serde_json::from_slice(kv.value()).ok()?;
        (r.seq == stable).then_some(rollout::Rev {
            number: r.seq,
            hash: r.hash,
            template: r.template,
        })
    });
    ctx.known
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key, found.clone());
    Ok(found.into_iter().collect())
}

/// Writes the assignments that changed and the status (if it changed) in
/// one fenced transaction while the spec exists (chunked past
/// [`super::fence::BATCH`] operations, the status in the last chunk), each
/// assignment compared with the revision the decision was made on.
async fn write(
    ctx: &Ctx,
    ck: &ComponentKey,
    puts: &BTreeMap<String, Assignment>,
    deletes: &BTreeSet<String>,
    status: Option<&ComponentStatus>,
) -> Result<bool, ComponentError> {
    if puts.is_empty() && deletes.is_empty() && status.is_none() {
        return Ok(false);
    }
    let k = &ctx.cluster.keys;
    let mut ops = Vec::new();
    for (node, a) in puts {
        let key = k.assignment_of(node, ck);
        let value = serde_json::to_vec(a).map_err(|e| ComponentError::Etcd(e.to_string()))?;
        ops.push((Some(unchanged(ctx, ck, &key)), TxnOp::put(key, value, None)));
    }
    for node in deletes {
        let key = k.assignment_of(node, ck);
        ops.push((Some(unchanged(ctx, ck, &key)), TxnOp::delete(key, None)));
    }
    let assigns = ops.len();
    if let Some(st) = status {
        let key = k.status(Kind::Component, Some(&ck.project), &ck.name);
        let value = serde_json::to_vec(st).map_err(|e| ComponentError::Etcd(e.to_string()))?;
        ops.push((None, TxnOp::put(key, value, None)));
    }
    if assigns > 0 {
        let puts: Vec<String> = puts
            .iter()
            .map(|(n, a)| {
                let counts: Vec<String> = a
                    .revisions
                    .iter()
                    .map(|r| format!("{}x{}", r.replicas, r.revision))
                    .collect();
                format!("{n}={}", counts.join("+"))
            })
            .collect();
        tracing::info!(component = %ck, assign = ?puts, remove = ?deletes, "placing");
    }
    // Only while the spec exists: a status never outlives its component.
    let exists = Compare::create_revision(k.component_spec(ck), CompareOp::Greater, 0);
    let revision = match ctx.fenced.commit_guarded(vec![exists], ops).await {
        Ok(r) => r,
        // A status alone lost to a deleted spec: nothing to write.
        Err(FenceError::Conflict) if assigns == 0 => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let written = puts
        .iter()
        .map(|(n, a)| (k.assignment_of(n, ck), Some(a.clone())))
        .chain(deletes.iter().map(|n| (k.assignment_of(n, ck), None)));
    remember_writes(ctx, ck, revision, written);
    if let Some(st) = status {
        ctx.statuses
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ck.clone(), st.clone());
    }
    Ok(status.is_some())
}

/// Sets the status's `Degraded` condition (the rest of the status stays as
/// it was): for what cannot be read, where nothing else can be decided.
async fn mark_degraded(
    ctx: &Ctx,
    ck: &ComponentKey,
    reason: Reason,
    message: &str,
) -> Result<(), ComponentError> {
    let key = ctx
        .cluster
        .keys
        .status(Kind::Component, Some(&ck.project), &ck.name);
    let mut st = old_status(ctx, ck, &key).unwrap_or_default();
    let degraded = Condition::new(ConditionType::Degraded, true, reason, message);
    if let Some(c) = st.conditions.iter().find(|c| c.is(ConditionType::Degraded)) {
        if c.is_true() && c.reason == degraded.reason && c.message == degraded.message {
            return Ok(());
        }
    }
    tracing::warn!(component = %ck, "{message}");
    st.conditions.retain(|c| !c.is(ConditionType::Degraded));
    st.conditions.push(degraded);
    st.last_update = Some(crate::util::now_rfc3339());
    st.coordinator = Some(ctx.node.clone());
    let value = serde_json::to_vec(&st).map_err(|e| ComponentError::Etcd(e.to_string()))?;
    ctx.fenced
        .commit(vec![], vec![TxnOp::put(key, value, None)])
        .await?;
    ctx.statuses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(ck.clone(), st);
    Ok(())
}

/// The status this term last wrote; before its first write, what the status
/// cache (etcd) holds.
fn old_status(ctx: &Ctx, ck: &ComponentKey, key: &str) -> Option<ComponentStatus> {
    let own = ctx
        .statuses
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(ck)
        .cloned();
    own.or_else(|| ctx.cluster.statuses.get(key).map(|s| (*s).clone()))
}

/// The revision number of `c`'s template: from the spec's annotations,
/// else from the revision documents (a spec written by other means runs as
/// revision 0). Looked up once per template.
async fn revision(
    ctx: &Ctx,
    ck: &ComponentKey,
    c: &Component,
    hash: &str,
) -> Result<u64, ComponentError> {
    if let Some(r) = annotated_revision(c, hash) {
        return Ok(r);
    }
    let cache_key = (ck.clone(), hash.to_string());
    if let Some(r) = ctx
        .revisions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&cache_key)
    {
        return Ok(*r);
    }
    let prefix = ctx.cluster.keys.revision_prefix(&ck.project, &ck.name);
    let resp = etcd(
        "reading revisions",
        ctx.client
            .clone()
            .get(prefix, Some(GetOptions::new().with_prefix())),
    )
    .await
    .map_err(ComponentError::Etcd)?;
    let found = resp
        .kvs()
        .iter()
        .rev()
        .find_map(|kv| {
            let r: Revision = serde_json::from_slice(kv.value()).ok()?;
            (r.hash == hash).then_some(r.seq)
        })
        .unwrap_or_default();
    ctx.revisions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(cache_key, found);
    Ok(found)
}
