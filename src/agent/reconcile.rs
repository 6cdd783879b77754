//! The reconcile of one component on this node: read the assignment (from the
//! reflector's cache) and the containers (from [`Containers`]), plan, perform
//! the steps, publish the observed state.
//!
//! Reconciles are keyed by the assignment key
//! (`<root>/assignments/<node>/<project>/<component>`), also for components
//! that only have leftover containers. Level-triggered: whatever woke it, a
//! reconcile looks at the whole component.
//!
//! Long operations do not hold the reconcile: graceful stops run as their own
//! tasks (the container shows as `Draining` meanwhile) and trigger the
//! component again when done. Starts of one reconcile run concurrently.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::evictions::Evictions;
use super::executor::{admit, Executor, Owner, Permissions, StartError};
use super::health::{ProbeTarget, Tracker};
use super::metrics::Metrics;
use super::pin::{self, PinAction, Pins, Resolved};
use super::plan::{self, CheckPhase, ContainerView, PlanInput, Step, StopHow};
use super::report::Reporter;
use super::state::{ComponentStates, ContainerRecord, Containers};
use super::traffic::Traffic;
use crate::resource::component::{State, Template, Termination};
use crate::resource::observed::{ContainerPhase, ObservedContainer};
use crate::resource::{
    Assignment, ComponentKey, ConditionType, Observed, Reason, RevisionReplicas,
};
use crate::runtime::{Action, Doc, Reader, Unreadable};
use crate::store::Keys;

/// Requeue of a component with nothing pending: a safety net behind the
/// Docker events and the periodic resync.
pub const IDLE_REQUEUE: Duration = Duration::from_secs(300);

/// How often a component whose image does not match its revision's pin
/// looks again (one image inspect): a retag or pull by the operator is no
/// etcd change, so nothing else would wake it.
pub const MISMATCH_RECHECK: Duration = Duration::from_secs(2);

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("starting a container of {key}: {message}")]
    Start { key: ComponentKey, message: String },
    #[error("{0}")]
    Docker(#[from] crate::docker::Error),
}

/// What every reconcile shares.
pub struct Ctx {
    pub node: String,
    pub keys: Keys,
    pub assignments: Reader<Doc<Assignment>>,
    pub containers: Containers,
    pub states: ComponentStates,
    pub tracker: Tracker,
    pub exec: Executor,
    pub reporter: Reporter,
    pub metrics: Metrics,
    /// Reconcile keys to trigger (stop tasks finishing).
    pub trigger: mpsc::UnboundedSender<String>,
    /// Templates seen, by hash: the termination settings of old containers.
    pub templates: Mutex<HashMap<String, Arc<Template>>>,
    /// Stop tasks in flight (see [`spawn_stop`]); shutdown waits for them.
    pub stops: TaskTracker,
    /// The revisions' pinned images (see [`super::pin`]).
    pub pins: Pins,
    /// The traffic proxy: routes, endpoints, drains (see [`super::traffic`]).
    pub traffic: Arc<Traffic>,
    /// Administrators' eviction requests (see [`super::evictions`]).
    pub evictions: Evictions,
    /// Links and configs of the containers this node runs
    /// ([`crate::services::node`]).
    pub services: Arc<crate::services::node::NodeServices>,
}

impl Ctx {
    /// The reconcile key of a component.
    pub fn key_of(&self, ck: &ComponentKey) -> String {
        self.keys.assignment_of(&self.node, ck)
    }

    /// The component of a reconcile key.
    pub fn parse_key(&self, key: &str) -> Option<ComponentKey> {
        self.keys.component_of_assignment(&self.node, key)
    }

    /// The tracker's check phase (and ready time). An evicted container
    /// keeps its own: it serves until its replacement is ready (see
    /// [`super::evictions`]).
    fn check_of(&self, r: &ContainerRecord) -> Option<(CheckPhase, Option<String>)> {
        self.tracker.status(&r.id)
    }

    /// The planner's view of a container, its eviction included.
    fn view_of(&self, r: &ContainerRecord, check: CheckPhase) -> ContainerView {
        let mut v = r.view(check);
        v.evicting = self.evictions.is_evicted(&r.key(), &r.id);
        v
    }

    pub(crate) fn template_of(&self, hash: &str) -> Option<Arc<Template>> {
        self.templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .cloned()
    }

    fn remember(&self, a: &Assignment) {
        let mut t = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        for r in &a.revisions {
            if !t.contains_key(&r.hash) {
                t.insert(r.hash.clone(), Arc::new(r.template.clone()));
            }
        }
    }

    /// How to stop a container: its own template's termination if known,
    /// else the current assignment's, else the defaults.
    fn termination(&self, r: &ContainerRecord, a: Option<&Assignment>) -> Termination {
        self.template_of(&r.owner.hash)
            .and_then(|t| t.termination.clone())
            .or_else(|| a.and_then(|a| a.newest()?.template.termination.clone()))
            .unwrap_or_default()
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Resolves `volumesFrom` component names to containers of this node.
fn volumes_from(ctx: &Ctx, project: &str, t: &Template) -> Result<Vec<String>, StartError> {
    let mut ids = Vec::new();
    for name in &t.volumes_from {
        let of = ctx.containers.of(&ComponentKey::new(project, name));
        let pick = of.iter().find(|r| r.is_running()).or_else(|| of.first());
        match pick {
            Some(r) => ids.push(r.id.clone()),
            None => {
                return Err(StartError::VolumesFrom(format!(
                    "volumesFrom: component {name} has no container on node {}",
                    ctx.node
                )))
            }
        }
    }
    Ok(ids)
}

/// Makes sure every running container is check-tracked with the checks of
/// the assigned template. A container of another template keeps whatever
/// tracking it has (its own checks, from when it was current); one never
/// tracked (adopted in the middle of a rollout) gets no checks, so it counts
/// as ready while it is being replaced.
fn track(ctx: &Ctx, key: &str, records: &[ContainerRecord], a: Option<&Assignment>) {
    for r in records {
        if !r.is_running() || r.stopping.is_some() {
            ctx.tracker.forget(&r.id);
            continue;
        }
        let target = ProbeTarget {
            id: r.id.clone(),
            ports: r.ports.clone(),
        };
        match a.and_then(|a| a.of_hash(&r.owner.hash)) {
            Some(rev) => ctx.tracker.ensure(
                key,
                target,
                &rev.hash,
                rev.template.ready_checks.clone(),
                rev.template.health_checks.clone(),
            ),
            _ if ctx.tracker.is_tracked(&r.id) => {}
            _ => ctx.tracker.track(key, target, "", vec![], vec![]),
        }
    }
}

/// The assignment a cached document says (pure): `Ok(None)` only when
/// there is no document (whatever runs goes); one that does not decode is an
/// error, never taken as "none".
fn assignment_of(doc: Option<&Doc<Assignment>>) -> Result<Option<&Assignment>, &Unreadable> {
    doc.map(Result::as_ref).transpose()
}

/// Reads the component's assignment from the cache (see [`assignment_of`]):
/// nothing is started, stopped or removed on account of an unreadable one.
fn desired(ctx: &Ctx, key: &str) -> Result<Option<Assignment>, Unreadable> {
    let doc = ctx.assignments.get(key);
    let a = assignment_of(doc.as_deref()).map_err(Unreadable::clone)?;
    if let Some(a) = a {
        ctx.remember(a);
    }
    Ok(a.cloned())
}

/// What a reconcile does about starting containers (pure).
#[derive(Debug, PartialEq)]
enum Wave<'a> {
    /// Start this many containers of each of these revisions.
    Start(Vec<(&'a RevisionReplicas, usize)>),
    /// Nothing (any more) to start: earlier start failures are moot.
    Settled,
    /// Starts are wanted but none may happen (refused, or no assignment to
    /// start from): the start conditions stay as they are.
    Held,
}

/// The start conditions, cleared once nothing is left to start.
const START_CONDITIONS: [ConditionType; 2] =
    [ConditionType::ImagePullFailed, ConditionType::StartFailed];

fn wave<'a>(a: Option<&'a Assignment>, steps: &[Step], refused: bool) -> Wave<'a> {
    let starts = |hash: &str| {
        steps
            .iter()
            .filter(|s| matches!(s, Step::Start { hash: h, .. } if h == hash))
            .count()
    };
    let any = steps.iter().any(|s| matches!(s, Step::Start { .. }));
    match (a, any, refused) {
        (_, false, _) => Wave::Settled,
        (Some(a), true, false) => Wave::Start(
            a.revisions
                .iter()
                .map(|r| (r, starts(&r.hash)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        ),
        _ => Wave::Held,
    }
}

/// The start conditions a wave clears (pure): a container started proves
/// the image is there; only a wave without failures clears `StartFailed`.
fn cleared_by_wave(started: usize, failed: bool) -> &'static [ConditionType] {
    match (started, failed) {
        (0, _) => &[],
        (_, true) => &START_CONDITIONS[..1],
        (_, false) => &START_CONDITIONS,
    }
}

/// Reconciles one component. See the module docs.
pub async fn reconcile(key: String, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    ctx.metrics.reconciles.inc();
    let Some(ck) = ctx.parse_key(&key) else {
        tracing::warn!(%key, "ignoring a key that names no component");
        return Ok(Action::await_change());
    };
    let assignment = match desired(&ctx, &key) {
        Ok(a) => {
            ctx.states.clear_condition(&ck, ConditionType::Degraded);
            a
        }
        Err(e) => return Ok(hold(&ctx, &key, &ck, &e)),
    };
    ctx.pins.retain(&ck, assignment.as_ref());
    let records = ctx.containers.of(&ck);
    track(&ctx, &key, &records, assignment.as_ref());
    let plan = plan_for(&ctx, &ck, &records, assignment.clone());
    let refused = admission(&ctx, &ck, assignment.as_ref());
    let mut failure = execute(&ctx, &key, &ck, &plan.steps, &records, assignment.as_ref()).await;
    let mut mismatched = false;
    match wave(assignment.as_ref(), &plan.steps, refused) {
        Wave::Start(revisions) => {
            let mut mismatches = Vec::new();
            for (rev, n) in revisions {
                match start_all(&ctx, &key, &ck, rev, n).await {
                    Ok(WaveOutcome::Done) => {}
                    Ok(WaveOutcome::Mismatch(m)) => mismatches.push(m),
                    Err(e) => failure = Some(e),
                }
            }
            mismatched = !mismatches.is_empty();
            image_mismatch(&ctx, &ck, &mismatches);
        }
        Wave::Settled => {
            for c in START_CONDITIONS {
                ctx.states.clear_condition(&ck, c);
            }
            ctx.states
                .clear_condition(&ck, ConditionType::ImageMismatch);
        }
        Wave::Held => {}
    }
    publish(&ctx, &key, &ck, assignment.as_ref());
    count_containers(&ctx);
    if let Some(message) = failure {
        ctx.metrics.reconcile_errors.inc();
        return Err(ReconcileError::Start { key: ck, message });
    }
    let recheck = if mismatched {
        MISMATCH_RECHECK
    } else {
        IDLE_REQUEUE
    };
    Ok(Action::requeue(
        plan.requeue_after.unwrap_or(IDLE_REQUEUE).min(recheck),
    ))
}

/// Sets the `ImageMismatch` condition (an event the first time) while a
/// revision's image does not match its pin; clears it once none mismatches.
fn image_mismatch(ctx: &Ctx, ck: &ComponentKey, messages: &[String]) {
    if messages.is_empty() {
        ctx.states.clear_condition(ck, ConditionType::ImageMismatch);
        return;
    }
    let message = messages.join("; ");
    if !ctx.states.has_condition(ck, ConditionType::ImageMismatch) {
        tracing::warn!(component = %ck, "{message}");
        ctx.states
            .event(ck, Reason::ImageMismatch.as_str(), &message);
    }
    ctx.states.set_condition(
        ck,
        ConditionType::ImageMismatch,
        true,
        Reason::ImageMismatch,
        &message,
    );
}

/// An unreadable assignment: keep every container as it is (running ones
/// keep their checks), say why, and look again when the document changes.
fn hold(ctx: &Ctx, key: &str, ck: &ComponentKey, e: &Unreadable) -> Action {
    let message = format!(
        "{e}; the containers of node {} are kept as they are",
        ctx.node
    );
    if !ctx.states.has_condition(ck, ConditionType::Degraded) {
        tracing::warn!(component = %ck, "{message}");
    }
    ctx.states.set_condition(
        ck,
        ConditionType::Degraded,
        true,
        Reason::UnreadableAssignment,
        &message,
    );
    publish(ctx, key, ck, None);
    Action::await_change()
}

fn count_containers(ctx: &Ctx) {
    let (running, all) = ctx.containers.counts();
    ctx.metrics.containers.set(all as i64);
    ctx.metrics.containers_running.set(running as i64);
}

/// The planner's input from the containers and their check phases, and its plan.
fn plan_for(
    ctx: &Ctx,
    ck: &ComponentKey,
    records: &[ContainerRecord],
    assignment: Option<Assignment>,
) -> plan::Plan {
    let now = tokio::time::Instant::now().into_std();
    let containers = records
        .iter()
        .map(|r| {
            if ctx.evictions.is_evicted(ck, &r.id) && ctx.evictions.first_notice(&r.id) {
                let message = format!(
                    "container {} evicted: it serves until its replacement is ready (within the rollout budget), then it is drained and removed",
                    short(&r.id)
                );
                ctx.states.event(ck, Reason::Evicted.as_str(), &message);
            }
            let phase = ctx.check_of(r).map(|(p, _)| p);
            ctx.view_of(r, phase.unwrap_or(CheckPhase::Starting { since: now }))
        })
        .collect();
    let input = PlanInput {
        assignment,
        containers,
    };
    let plan = plan::plan(&input, now);
    if !plan.steps.is_empty() {
        tracing::debug!(component = %ck, steps = ?plan.steps, "plan");
    }
    plan
}

/// Why this agent refuses to run `a` (pure): only an assignment to run
/// is judged; one stopped or killed needs nothing this agent could refuse.
fn refusal(a: Option<&Assignment>, perms: &Permissions) -> Option<String> {
    let running = a.filter(|a| a.state == State::Running)?;
    running
        .revisions
        .iter()
        .find_map(|r| admit(&r.template, perms).err())
}

/// Admission: a refused template starts nothing, and says why. `true` when refused.
fn admission(ctx: &Ctx, ck: &ComponentKey, a: Option<&Assignment>) -> bool {
    match refusal(a, &ctx.exec.perms) {
        Some(msg) => {
            ctx.states
                .set_condition(ck, ConditionType::Forbidden, true, Reason::Forbidden, &msg);
            true
        }
        None => {
            ctx.states.clear_condition(ck, ConditionType::Forbidden);
            false
        }
    }
}

/// Performs every step but the starts; returns the last failure.
async fn execute(
    ctx: &Arc<Ctx>,
    key: &str,
    ck: &ComponentKey,
    steps: &[Step],
    records: &[ContainerRecord],
    a: Option<&Assignment>,
) -> Option<String> {
    let mut failure = None;
    for step in steps {
        let r = match step {
            Step::Record { reason, message } => {
                ctx.states.event(ck, reason, message);
                Ok(())
            }
            Step::Start { .. } => Ok(()),
            Step::Restart { id } => {
                let record = records.iter().find(|r| &r.id == id);
                match a.zip(record).and_then(|(a, r)| a.of_hash(&r.owner.hash)) {
                    Some(rev) => restart(ctx, key, ck, id, rev).await,
                    None => Ok(()),
                }
            }
            Step::Stop { id, how } => {
                if let Some(r) = records.iter().find(|r| &r.id == id) {
                    spawn_stop(ctx, key, ck, id, *how, ctx.termination(r, a));
                }
                Ok(())
            }
            Step::Remove { id } => remove(ctx, ck, id).await,
        };
        if let Err(e) = r {
            failure = Some(e);
        }
    }
    failure
}

pub(super) async fn restart(
    ctx: &Ctx,
    key: &str,
    ck: &ComponentKey,
    id: &str,
    a: &RevisionReplicas,
) -> Result<(), String> {
    let requested = tokio::time::Instant::now().into_std();
    match ctx.exec.restart(id).await {
        Ok(ports) => {
            ctx.containers.restarted(id, ports.clone(), requested);
            ctx.metrics.container_restarts.inc();
            let target = ProbeTarget {
                id: id.to_string(),
                ports,
            };
            let t = &a.template;
            let (ready, health) = (t.ready_checks.clone(), t.health_checks.clone());
            ctx.tracker.track(key, target, &a.hash, ready, health);
            Ok(())
        }
        Err(e) if e.is_not_found() => {
            ctx.containers.remove(id);
            ctx.tracker.forget(id);
            Ok(())
        }
        Err(e) => {
            let message = format!("container {}: {e}", short(id));
            ctx.states
                .event(ck, Reason::RestartFailed.as_str(), &message);
            Err(e.to_string())
        }
    }
}

async fn remove(ctx: &Ctx, ck: &ComponentKey, id: &str) -> Result<(), String> {
    ctx.tracker.forget(id);
    ctx.exec.remove(id).await.map_err(|e| e.to_string())?;
    ctx.containers.remove(id);
    ctx.evictions.done(ck, id);
    Ok(())
}

/// What a wave of starts of one revision did.
#[derive(Debug)]
enum WaveOutcome {
    /// Started what it could (failures are the `Err` side).
    Done,
    /// Started nothing: the local image is not the revision's pinned one.
    Mismatch(String),
}

/// Starts `n` containers of revision `a`: the image made present once and
/// checked against the revision's pin, then the starts concurrently within
/// the agent's start slots; updates conditions.
async fn start_all(
    ctx: &Arc<Ctx>,
    key: &str,
    ck: &ComponentKey,
    a: &RevisionReplicas,
    n: usize,
) -> Result<WaveOutcome, String> {
    let owner = Owner {
        project: ck.project.clone(),
        component: ck.name.clone(),
        revision: a.revision,
        hash: a.hash.clone(),
    };
    let volumes = match volumes_from(ctx, &ck.project, &a.template) {
        Ok(v) => v,
        Err(e) => return Err(start_failed(ctx, ck, a, &e)),
    };
    let prepared = match ctx.exec.prepare(&a.template).await {
        Ok(p) => p,
        Err(e) => return Err(start_failed(ctx, ck, a, &e)),
    };
    if let Some(message) = pin_check(ctx, ck, a, &prepared.identity).await {
        return Ok(WaveOutcome::Mismatch(message));
    }
    let extras = ctx.services.start_extras(ck, &a.template);
    let results = futures::future::join_all(
        (0..n).map(|_| ctx.exec.start(&owner, &prepared, volumes.clone(), &extras)),
    )
    .await;
    let mut error = None;
    let mut ok = 0;
    for r in results {
        match r {
            Ok((started, name)) => {
                ok += 1;
                started_one(ctx, key, &owner, a, started, &name);
            }
            Err(e) => error = Some(start_failed(ctx, ck, a, &e)),
        }
    }
    for &c in cleared_by_wave(ok, error.is_some()) {
        ctx.states.clear_condition(ck, c);
    }
    error.map_or(Ok(WaveOutcome::Done), Err)
}

/// Checks this node's image for `a` against the revision's pin (recording
/// it when none is pinned yet); `Some(message)` when they differ. A
/// revision that cannot be pinned runs as before pins existed.
async fn pin_check(
    ctx: &Ctx,
    ck: &ComponentKey,
    a: &RevisionReplicas,
    local: &crate::docker::image::ImageIdentity,
) -> Option<String> {
    let pin = match ctx.pins.resolve(ck, a, local).await {
        Resolved::Pinned(pin) => pin,
        Resolved::Unpinned(why) => {
            tracing::debug!(component = %ck, revision = a.revision, %why,
                "starting containers of an unpinned revision");
            return None;
        }
    };
    match pin::pin_decision(&a.template.image, Some(&pin), local) {
        PinAction::Run | PinAction::Record => None,
        PinAction::Mismatch { pinned, local } => {
            Some(pin::mismatch_message(a, &pin, &pinned, &local, &ctx.node))
        }
    }
}

/// Records a container just started and tracks its checks.
fn started_one(
    ctx: &Ctx,
    key: &str,
    owner: &Owner,
    a: &RevisionReplicas,
    started: crate::docker::Started,
    name: &str,
) {
    ctx.metrics.container_starts.inc();
    if let Some(ck) = ctx.parse_key(key) {
        let message = format!(
            "started container {} ({name}) of revision {}",
            short(&started.id),
            a.revision
        );
        ctx.states.event(&ck, "Started", &message);
    }
    let now = tokio::time::Instant::now().into_std();
    let ports = started.ports.clone();
    ctx.containers
        .started(&started.id, name, owner.clone(), ports, now);
    ctx.containers.set_image_id(&started.id, &started.image_id);
    let target = ProbeTarget {
        id: started.id,
        ports: started.ports,
    };
    let t = &a.template;
    let (ready, health) = (t.ready_checks.clone(), t.health_checks.clone());
    ctx.tracker.track(key, target, &a.hash, ready, health);
}

/// Reports a failed start as an event (the first time) and a condition;
/// returns its message.
fn start_failed(ctx: &Ctx, ck: &ComponentKey, a: &RevisionReplicas, e: &StartError) -> String {
    ctx.metrics.container_start_failures.inc();
    let (type_, reason) = e.condition();
    let message = match e {
        StartError::ImagePull(m) => format!("pulling image {}: {m}", a.template.image),
        other => other.to_string(),
    };
    if !ctx.states.has_condition(ck, type_) {
        ctx.states.event(ck, reason.as_str(), &message);
    }
    ctx.states.set_condition(ck, type_, true, reason, &message);
    message
}

/// How often a draining container's open count is published.
const DRAIN_REPORT: Duration = Duration::from_secs(1);

/// Stops a container in its own task; the component is triggered when done.
/// The task is tracked, so shutdown can wait for stops in flight.
///
/// A graceful stop drains first: the container leaves the balancer and the
/// endpoints here, before the task even starts, then the task waits for
/// its open connections or `drainTimeout`, and only then signals it.
/// `Kill` skips the drain.
fn spawn_stop(
    ctx: &Arc<Ctx>,
    key: &str,
    ck: &ComponentKey,
    id: &str,
    how: StopHow,
    termination: Termination,
) {
    ctx.containers.stopping(id, how);
    ctx.tracker.forget(id);
    let drain = match how {
        StopHow::Graceful | StopHow::Restart => {
            Some(ctx.traffic.drain(ck, id, termination.drain_timeout()))
        }
        StopHow::Kill => None,
    };
    let ctx2 = ctx.clone();
    let key = key.to_string();
    let id = id.to_string();
    let ck = ck.clone();
    ctx.stops.spawn(async move {
        let ctx = ctx2;
        if let Some(drain) = drain {
            let mut drain = std::pin::pin!(drain);
            let mut tick = tokio::time::interval(DRAIN_REPORT);
            tick.tick().await;
            let outcome = loop {
                tokio::select! {
                    o = &mut drain => break o,
                    // The open count and time left, in the observed document.
                    _ = tick.tick() => { let _ = ctx.trigger.send(key.clone()); }
                }
            };
            let message = match outcome {
                crate::proxy::DrainOutcome::Drained => {
                    tracing::info!(container = %short(&id), "drained");
                    format!("container {} drained", short(&id))
                }
                crate::proxy::DrainOutcome::TimedOut { open } => {
                    tracing::info!(container = %short(&id), open, "drainTimeout reached; stopping with connections open");
                    format!(
                        "container {}: drainTimeout reached with {open} open; stopping",
                        short(&id)
                    )
                }
            };
            ctx.states.event(&ck, "Drained", &message);
        }
        let r = match how {
            StopHow::Graceful | StopHow::Restart => {
                ctx.exec.stop_and_remove(&id, &termination).await
            }
            StopHow::Kill => ctx.exec.kill_and_remove(&id).await,
        };
        match r {
            Ok(()) => {
                ctx.metrics.container_stops.inc();
                ctx.containers.remove(&id);
                ctx.evictions.done(&ck, &id);
                ctx.traffic.stopped(&id);
                tracing::info!(container = %short(&id), ?how, "stopped and removed container");
                let (reason, verb) = match how {
                    StopHow::Graceful | StopHow::Restart => ("Stopped", "stopped and removed"),
                    StopHow::Kill => ("Killed", "killed and removed"),
                };
                ctx.states
                    .event(&ck, reason, &format!("container {} {verb}", short(&id)));
            }
            Err(e) => {
                // Let the next reconcile decide again (a container still
                // ready goes back into the balancer).
                tracing::warn!(container = %short(&id), error = %e, "stopping a container failed");
                ctx.traffic.stopped(&id);
                if let Some(mut r) = ctx.containers.remove(&id) {
                    r.stopping = None;
                    ctx.containers.reinsert(r);
                }
            }
        }
        let _ = ctx.trigger.send(key);
    });
}

/// The RFC 3339 wall time of an `Instant` in the past.
fn wall(at: std::time::Instant) -> String {
    let ago = tokio::time::Instant::now()
        .into_std()
        .saturating_duration_since(at);
    let t = SystemTime::now()
        .checked_sub(ago)
        .unwrap_or(SystemTime::now());
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The node's `Ready` condition for `a` (pure): for every assigned revision,
/// as many ready containers of it as it asks to run.
fn readiness(a: &Assignment, containers: &[ObservedContainer]) -> (bool, Reason, String) {
    let running = a.state == State::Running;
    let counts: Vec<(u64, usize, usize)> = a
        .revisions
        .iter()
        .map(|r| {
            let ready = containers
                .iter()
                .filter(|c| c.hash == r.hash && c.phase == ContainerPhase::Ready)
                .count();
            let want = if running { r.replicas as usize } else { 0 };
            (r.revision, ready, want)
        })
        .collect();
    let ok = counts.iter().all(|(_, ready, want)| ready >= want);
    let message = match counts.as_slice() {
        [(revision, ready, want)] => {
            format!("{ready}/{want} containers of revision {revision} ready")
        }
        _ => {
            let (ready, want) = counts.iter().fold((0, 0), |(r, w), c| (r + c.1, w + c.2));
            let each: Vec<String> = counts
                .iter()
                .map(|(rev, r, w)| format!("revision {rev}: {r}/{w}"))
                .collect();
            format!("{ready}/{want} containers ready ({})", each.join(", "))
        }
    };
    let reason = if ok {
        Reason::ContainersReady
    } else {
        Reason::ContainersNotReady
    };
    (ok, reason, message)
}

/// `PortUnavailable` while an external port of the component cannot be
/// bound on this node (the others are served).
fn port_conditions(ctx: &Ctx, ck: &ComponentKey) {
    let unbound = ctx.traffic.unbound(ck);
    if unbound.is_empty() {
        ctx.states
            .clear_condition(ck, ConditionType::PortUnavailable);
        return;
    }
    let message = unbound
        .iter()
        .map(|(p, e)| format!("external port {p}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    if !ctx.states.has_condition(ck, ConditionType::PortUnavailable) {
        ctx.states
            .event(ck, Reason::PortUnavailable.as_str(), &message);
    }
    ctx.states.set_condition(
        ck,
        ConditionType::PortUnavailable,
        true,
        Reason::PortUnavailable,
        &message,
    );
}

/// Builds the component's observed document and hands it to the reporter.
pub fn publish(ctx: &Ctx, key: &str, ckey: &ComponentKey, a: Option<&Assignment>) {
    debug_assert_eq!(ctx.parse_key(key).as_ref(), Some(ckey));
    let okey = ctx.keys.observed_of(&ctx.node, ckey);
    let records = ctx.containers.of(ckey);
    // Nothing assigned, nothing running, nothing to say: no document. An
    // unreadable assignment is something to say.
    let degraded = ctx.states.has_condition(ckey, ConditionType::Degraded);
    if a.is_none() && records.is_empty() && !degraded {
        ctx.states.forget(ckey);
        ctx.reporter.delete(&okey);
        ctx.traffic.forget(ckey);
        ctx.services.observe(ckey, &[]);
        return;
    }
    let policy = a
        .and_then(Assignment::newest)
        .map(|r| r.template.restart_policy)
        .unwrap_or_default();
    let now = tokio::time::Instant::now().into_std();
    let containers: Vec<ObservedContainer> = records
        .iter()
        .map(|r| {
            let (check, ready_at) = ctx
                .check_of(r)
                .unwrap_or((CheckPhase::Starting { since: now }, None));
            let view = ctx.view_of(r, check.clone());
            let rev = a.and_then(|a| a.of_hash(&view.hash));
            let (phase, timed_out) = plan::published_phase(&view, rev, policy, now);
            ObservedContainer {
                id: r.id.clone(),
                name: r.name.clone(),
                revision: r.owner.revision,
                hash: r.owner.hash.clone(),
                phase,
                restarts: r.restarts,
                last_exit_code: r.last_exit.as_ref().map(|e| e.0),
                last_reason: match &check {
                    _ if timed_out && phase == ContainerPhase::Unhealthy => {
                        Some(Reason::ReadyTimeout.as_str().into())
                    }
                    CheckPhase::Unhealthy { .. } if phase == ContainerPhase::Unhealthy => {
                        Some("Unhealthy".into())
                    }
                    _ => r.last_exit.as_ref().map(|e| e.1.clone()),
                },
                started_at: r.started_at.clone(),
                ready_since: match check {
                    CheckPhase::Ready { since } if phase == ContainerPhase::Ready => {
                        ready_at.or_else(|| Some(wall(since)))
                    }
                    _ => None,
                },
                ports: if r.is_running() {
                    r.ports.clone()
                } else {
                    BTreeMap::new()
                },
                drain: if phase == ContainerPhase::Draining {
                    ctx.traffic.drain_of(&r.id)
                } else {
                    None
                },
                evicting: view.evicting,
            }
        })
        .collect();
    let ready_now: Vec<&str> = containers
        .iter()
        .filter(|c| c.phase == ContainerPhase::Ready)
        .map(|c| c.id.as_str())
        .collect();
    for id in ctx.states.newly_ready(ckey, &ready_now) {
        ctx.states
            .event(ckey, "Ready", &format!("container {} is ready", short(&id)));
    }
    let ports = a
        .and_then(Assignment::newest)
        .map(|r| r.template.ports.as_slice());
    ctx.traffic.update(ckey, ports, &containers);
    port_conditions(ctx, ckey);
    let running: Vec<_> = records
        .iter()
        .filter(|r| r.is_running())
        .filter_map(|r| {
            Some((
                r.id.clone(),
                r.started_at.clone(),
                ctx.template_of(&r.owner.hash)?,
            ))
        })
        .collect();
    ctx.services.observe(ckey, &running);
    let image_ids = records
        .iter()
        .filter_map(|r| Some((r.id.clone(), r.image_id.clone()?)))
        .collect();
    let state = ctx.states.get(ckey);
    let mut conditions: Vec<_> = state.conditions.values().cloned().collect();
    if let Some(a) = a {
        let (ok, reason, message) = readiness(a, &containers);
        ctx.states
            .set_condition(ckey, ConditionType::Ready, ok, reason, &message);
        if let Some(c) = ctx.states.get(ckey).conditions.get(&ConditionType::Ready) {
            conditions.retain(|x| !x.is(ConditionType::Ready));
            conditions.insert(0, c.clone());
        }
    }
    conditions.extend(ctx.services.conditions(ckey));
    let observed = Observed {
        node: ctx.node.clone(),
        generation: a.map_or(0, |a| a.generation),
        revision: a.and_then(Assignment::newest).map_or(0, |r| r.revision),
        containers,
        conditions,
        events: state.events.into_iter().collect(),
        image_ids,
    };
    ctx.reporter.put(&okey, &observed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::Binding;

    fn revision(n: u64, replicas: u32) -> RevisionReplicas {
        RevisionReplicas {
            revision: n,
            hash: format!("h{n}"),
            template: Template {
                image: format!("bench/web:{n}"),
                ..Default::default()
            },
            replicas,
            replacing: 0,
            removing: 0,
        }
    }

    fn assignment(replicas: u32, state: State) -> Assignment {
        Assignment::single(1, state, revision(1, replicas))
    }

    /// `n1` of revision 1 and `n2` of revision 2.
    fn both(n1: u32, n2: u32) -> Assignment {
        Assignment::new(1, State::Running, vec![revision(1, n1), revision(2, n2)])
    }

    fn privileged(state: State) -> Assignment {
        let mut a = assignment(1, state);
        a.revisions[0].template.privileged = true;
        a
    }

    #[test]
    fn an_unreadable_assignment_is_never_taken_as_none() {
        fn check(doc: Option<Doc<Assignment>>, want: Result<Option<Assignment>, Unreadable>) {
            let got = assignment_of(doc.as_ref());
            let got = got.map(Option::<&Assignment>::cloned).map_err(Clone::clone);
            assert_eq!(got, want, "{doc:?}");
        }
        let a = assignment(2, State::Running);
        let e = Unreadable {
            key: "/berth/assignments/n1/shop/web".into(),
            revision: 7,
            error: "expected value at line 1 column 1".into(),
        };
        check(None, Ok(None));
        check(Some(Ok(a.clone())), Ok(Some(a)));
        check(Some(Err(e.clone())), Err(e));
    }

    #[test]
    fn only_an_assignment_to_run_is_refused() {
        /// `want`: a part of the refusal's message, or `None` (admitted).
        fn check(a: Option<Assignment>, perms: &Permissions, want: Option<&str>) {
            let got = refusal(a.as_ref(), perms);
            match (&got, want) {
                (Some(msg), Some(part)) => assert!(msg.contains(part), "{msg}"),
                (None, None) => {}
                _ => panic!("{a:?} with {perms:?}: got {got:?}, want {want:?}"),
            }
        }
        let none = Permissions::default();
        let all = Permissions {
            allow_privileged: true,
            allow_bind: vec!["/srv".into()],
        };
        let mut binds = assignment(1, State::Running);
        binds.revisions[0].template.bindings = vec![Binding {
            host: "/etc".into(),
            container: "/etc2".into(),
            read_only: true,
        }];
        check(None, &none, None);
        check(Some(assignment(1, State::Running)), &none, None);
        check(
            Some(privileged(State::Running)),
            &none,
            Some("--allow-privileged"),
        );
        check(Some(privileged(State::Running)), &all, None);
        // Stopping or killing what runs is never refused.
        check(Some(privileged(State::Stopped)), &none, None);
        check(Some(privileged(State::Killed)), &none, None);
        check(Some(binds.clone()), &none, Some("allows no bindings"));
        check(
            Some(binds),
            &all,
            Some("not under an allowed prefix (/srv)"),
        );
        // Every revision is judged, not only the newest.
        let mut mixed = both(1, 1);
        mixed.revisions[0].template.privileged = true;
        check(Some(mixed), &none, Some("--allow-privileged"));
    }

    #[test]
    fn a_wave_starts_only_what_an_admitted_assignment_asks_for() {
        fn check(a: Option<&Assignment>, steps: &[Step], refused: bool, want: Wave) {
            assert_eq!(wave(a, steps, refused), want, "{steps:?} refused={refused}");
        }
        let a = assignment(3, State::Running);
        let start = Step::Start {
            revision: 1,
            hash: "h1".into(),
        };
        let stop = Step::Stop {
            id: "c1".into(),
            how: StopHow::Graceful,
        };
        let record = Step::Record {
            reason: "Restarted".into(),
            message: "m".into(),
        };
        check(
            Some(&a),
            &[start.clone(), start.clone()],
            false,
            Wave::Start(vec![(&a.revisions[0], 2)]),
        );
        // Only starts count; the other steps are executed on their own.
        check(
            Some(&a),
            &[stop.clone(), start.clone(), record],
            false,
            Wave::Start(vec![(&a.revisions[0], 1)]),
        );
        // Starts of several revisions, each with its own count.
        let two = both(1, 2);
        let start2 = Step::Start {
            revision: 2,
            hash: "h2".into(),
        };
        check(
            Some(&two),
            &[start2.clone(), start.clone(), start2.clone()],
            false,
            Wave::Start(vec![(&two.revisions[0], 1), (&two.revisions[1], 2)]),
        );
        check(Some(&a), &[], false, Wave::Settled);
        check(Some(&a), &[stop], false, Wave::Settled);
        // Refused: nothing starts, and the refusal is not "settled".
        check(Some(&a), std::slice::from_ref(&start), true, Wave::Held);
        check(Some(&a), &[], true, Wave::Settled);
        check(None, &[start], false, Wave::Held);
        check(None, &[], false, Wave::Settled);
    }

    #[test]
    fn a_wave_clears_the_start_conditions_it_disproves() {
        fn check(started: usize, failed: bool, want: &[ConditionType]) {
            assert_eq!(cleared_by_wave(started, failed), want, "{started} {failed}");
        }
        use ConditionType::{ImagePullFailed, StartFailed};
        check(0, true, &[]);
        check(0, false, &[]);
        check(2, true, &[ImagePullFailed]);
        check(3, false, &[ImagePullFailed, StartFailed]);
    }

    #[test]
    fn ready_when_enough_containers_of_the_assigned_revision_are() {
        fn ctr(hash: &str, phase: ContainerPhase) -> ObservedContainer {
            ObservedContainer {
                id: "c".into(),
                name: "n".into(),
                revision: 1,
                hash: hash.into(),
                phase,
                ..Default::default()
            }
        }
        fn check(a: Assignment, containers: &[ObservedContainer], want: (bool, &str)) {
            let (ok, reason, message) = readiness(&a, containers);
            let want_reason = if want.0 {
                Reason::ContainersReady
            } else {
                Reason::ContainersNotReady
            };
            assert_eq!(
                (ok, reason, message.as_str()),
                (want.0, want_reason, want.1)
            );
        }
        use ContainerPhase::{Ready, Starting};
        let running = |n| assignment(n, State::Running);
        let ready = ctr("h1", Ready);
        let old = ctr("h0", Ready);
        let starting = ctr("h1", Starting);
        let msg = |r, w| format!("{r}/{w} containers of revision 1 ready");
        check(
            running(2),
            &[ready.clone(), ready.clone()],
            (true, &msg(2, 2)),
        );
        check(
            running(2),
            &[ready.clone(), starting.clone()],
            (false, &msg(1, 2)),
        );
        // A ready container of another revision does not count.
        check(running(1), &[old], (false, &msg(0, 1)));
        // A surge's extra container is no harm.
        check(
            running(1),
            &[ready.clone(), ready.clone()],
            (true, &msg(2, 1)),
        );
        check(assignment(3, State::Stopped), &[], (true, &msg(0, 0)));
        check(
            assignment(3, State::Killed),
            std::slice::from_ref(&starting),
            (true, &msg(0, 0)),
        );
        // Several revisions: each count must be met.
        let new = ctr("h2", Ready);
        let both_msg =
            |a, b, c| format!("{a}/3 containers ready (revision 1: {b}/2, revision 2: {c}/1)");
        check(
            both(2, 1),
            &[ready.clone(), ready.clone(), new.clone()],
            (true, &both_msg(3, 2, 1)),
        );
        check(
            both(2, 1),
            &[ready.clone(), new.clone(), new],
            (false, &both_msg(3, 1, 2)),
        );
    }
}
