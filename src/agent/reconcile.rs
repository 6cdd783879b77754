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

use super::executor::{admit, Executor, Owner, StartError};
use super::health::{ProbeTarget, Tracker};
use super::metrics::Metrics;
use super::plan::{self, CheckPhase, PlanInput, Step, StopHow};
use super::report::Reporter;
use super::state::{ComponentStates, ContainerRecord, Containers};
use crate::resource::component::{State, Template, Termination};
use crate::resource::observed::{ContainerPhase, ObservedContainer};
use crate::resource::{Assignment, ComponentKey, ConditionType, Observed, Reason};
use crate::runtime::{Action, Doc, Reader, Unreadable};
use crate::store::Keys;

/// Requeue of a component with nothing pending: a safety net behind the
/// Docker events and the periodic resync.
pub const IDLE_REQUEUE: Duration = Duration::from_secs(300);

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
    pub templates: Mutex<HashMap<String, Template>>,
    /// Stop tasks in flight (see [`spawn_stop`]); shutdown waits for them.
    pub stops: TaskTracker,
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

    fn template_of(&self, hash: &str) -> Option<Template> {
        self.templates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            .cloned()
    }

    fn remember(&self, a: &Assignment) {
        let mut t = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        if !t.contains_key(&a.hash) {
            t.insert(a.hash.clone(), a.template.clone());
        }
    }

    /// How to stop a container: its own template's termination if known,
    /// else the current assignment's, else the defaults.
    fn termination(&self, r: &ContainerRecord, a: Option<&Assignment>) -> Termination {
        self.template_of(&r.owner.hash)
            .and_then(|t| t.termination)
            .or_else(|| a.and_then(|a| a.template.termination.clone()))
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
        match a {
            Some(a) if a.hash == r.owner.hash => ctx.tracker.ensure(
                key,
                target,
                &a.hash,
                a.template.ready_checks.clone(),
                a.template.health_checks.clone(),
            ),
            _ if ctx.tracker.is_tracked(&r.id) => {}
            _ => ctx.tracker.track(key, target, "", vec![], vec![]),
        }
    }
}

/// Reads the component's assignment from the cache: `Ok(None)` when there
/// is none (whatever runs goes); an assignment that does not decode is an
/// error, and nothing is started, stopped or removed on its account.
fn desired(ctx: &Ctx, key: &str) -> Result<Option<Assignment>, Unreadable> {
    match ctx.assignments.get(key).as_deref() {
        None => Ok(None),
        Some(Ok(a)) => {
            ctx.remember(a);
            Ok(Some(a.clone()))
        }
        Some(Err(e)) => Err(e.clone()),
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
    let records = ctx.containers.of(&ck);
    track(&ctx, &key, &records, assignment.as_ref());
    let plan = plan_for(&ctx, &ck, &records, assignment.clone());
    let refused = admission(&ctx, &ck, assignment.as_ref());
    let mut failure = execute(&ctx, &key, &ck, &plan.steps, &records, assignment.as_ref()).await;
    let starts = plan
        .steps
        .iter()
        .filter(|s| matches!(s, Step::Start { .. }))
        .count();
    match (&assignment, starts, refused) {
        (Some(a), 1.., false) => {
            if let Err(e) = start_all(&ctx, &key, &ck, a, starts).await {
                failure = Some(e);
            }
        }
        // Nothing to start (any more): earlier start failures are moot.
        (_, 0, _) => {
            ctx.states
                .clear_condition(&ck, ConditionType::ImagePullFailed);
            ctx.states.clear_condition(&ck, ConditionType::StartFailed);
        }
        _ => {}
    }
    publish(&ctx, &key, &ck, assignment.as_ref());
    count_containers(&ctx);
    if let Some(message) = failure {
        ctx.metrics.reconcile_errors.inc();
        return Err(ReconcileError::Start { key: ck, message });
    }
    Ok(Action::requeue(
        plan.requeue_after.unwrap_or(IDLE_REQUEUE).min(IDLE_REQUEUE),
    ))
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
            let phase = ctx.tracker.phase(&r.id);
            r.view(phase.unwrap_or(CheckPhase::Starting { since: now }))
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

/// Admission: a refused template starts nothing, and says why. `true` when refused.
fn admission(ctx: &Ctx, ck: &ComponentKey, a: Option<&Assignment>) -> bool {
    let running = a.filter(|a| a.state == State::Running);
    match running.map(|a| admit(&a.template, &ctx.exec.perms)) {
        Some(Err(msg)) => {
            ctx.states
                .set_condition(ck, ConditionType::Forbidden, true, Reason::Forbidden, &msg);
            true
        }
        _ => {
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
            Step::Restart { id } => match a {
                Some(a) => restart(ctx, key, ck, id, a).await,
                None => Ok(()),
            },
            Step::Stop { id, how } => {
                if let Some(r) = records.iter().find(|r| &r.id == id) {
                    spawn_stop(ctx, key, id, *how, ctx.termination(r, a));
                }
                Ok(())
            }
            Step::Remove { id } => remove(ctx, id).await,
        };
        if let Err(e) = r {
            failure = Some(e);
        }
    }
    failure
}

async fn restart(
    ctx: &Ctx,
    key: &str,
    ck: &ComponentKey,
    id: &str,
    a: &Assignment,
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

async fn remove(ctx: &Ctx, id: &str) -> Result<(), String> {
    ctx.tracker.forget(id);
    ctx.exec.remove(id).await.map_err(|e| e.to_string())?;
    ctx.containers.remove(id);
    Ok(())
}

/// Starts `n` containers of `a`: the image made present once, then the
/// starts concurrently within the agent's start slots; updates conditions.
async fn start_all(
    ctx: &Arc<Ctx>,
    key: &str,
    ck: &ComponentKey,
    a: &Assignment,
    n: usize,
) -> Result<(), String> {
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
    let results = futures::future::join_all(
        (0..n).map(|_| ctx.exec.start(&owner, &prepared, volumes.clone())),
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
    if ok > 0 {
        ctx.states
            .clear_condition(ck, ConditionType::ImagePullFailed);
        if error.is_none() {
            ctx.states.clear_condition(ck, ConditionType::StartFailed);
        }
    }
    error.map_or(Ok(()), Err)
}

/// Records a container just started and tracks its checks.
fn started_one(
    ctx: &Ctx,
    key: &str,
    owner: &Owner,
    a: &Assignment,
    started: crate::docker::Started,
    name: &str,
) {
    ctx.metrics.container_starts.inc();
    let now = tokio::time::Instant::now().into_std();
    let ports = started.ports.clone();
    ctx.containers
        .started(&started.id, name, owner.clone(), ports, now);
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
fn start_failed(ctx: &Ctx, ck: &ComponentKey, a: &Assignment, e: &StartError) -> String {
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

/// Stops a container in its own task; the component is triggered when done.
/// The task is tracked, so shutdown can wait for stops in flight.
fn spawn_stop(ctx: &Arc<Ctx>, key: &str, id: &str, how: StopHow, termination: Termination) {
    ctx.containers.stopping(id, how);
    ctx.tracker.forget(id);
    let ctx2 = ctx.clone();
    let key = key.to_string();
    let id = id.to_string();
    ctx.stops.spawn(async move {
        let ctx = ctx2;
        let r = match how {
            StopHow::Graceful => ctx.exec.stop_and_remove(&id, &termination).await,
            StopHow::Kill => ctx.exec.kill_and_remove(&id).await,
        };
        match r {
            Ok(()) => {
                ctx.metrics.container_stops.inc();
                ctx.containers.remove(&id);
                tracing::info!(container = %short(&id), ?how, "stopped and removed container");
            }
            Err(e) => {
                // Let the next reconcile decide again.
                tracing::warn!(container = %short(&id), error = %e, "stopping a container failed");
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
        return;
    }
    let policy = a.map(|a| a.template.restart_policy).unwrap_or_default();
    let containers: Vec<ObservedContainer> = records
        .iter()
        .map(|r| {
            let (check, ready_at) = ctx.tracker.status(&r.id).unwrap_or((
                CheckPhase::Starting {
                    since: tokio::time::Instant::now().into_std(),
                },
                None,
            ));
            let phase = plan::phase(&r.view(check.clone()), policy);
            ObservedContainer {
                id: r.id.clone(),
                name: r.name.clone(),
                revision: r.owner.revision,
                hash: r.owner.hash.clone(),
                phase,
                restarts: r.restarts,
                last_exit_code: r.last_exit.as_ref().map(|e| e.0),
                last_reason: match &check {
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
            }
        })
        .collect();
    let state = ctx.states.get(ckey);
    let mut conditions: Vec<_> = state.conditions.values().cloned().collect();
    if let Some(a) = a {
        let ready = containers
            .iter()
            .filter(|c| c.hash == a.hash && c.phase == ContainerPhase::Ready)
            .count();
        let want = if a.state == State::Running {
            a.replicas as usize
        } else {
            0
        };
        let ok = ready >= want;
        let message = format!("{ready}/{want} containers of revision {} ready", a.revision);
        let reason = if ok {
            Reason::ContainersReady
        } else {
            Reason::ContainersNotReady
        };
        ctx.states
            .set_condition(ckey, ConditionType::Ready, ok, reason, &message);
        if let Some(c) = ctx.states.get(ckey).conditions.get(&ConditionType::Ready) {
            conditions.retain(|x| !x.is(ConditionType::Ready));
            conditions.insert(0, c.clone());
        }
    }
    let observed = Observed {
        node: ctx.node.clone(),
        generation: a.map_or(0, |a| a.generation),
        revision: a.map_or(0, |a| a.revision),
        containers,
        conditions,
        events: state.events.into_iter().collect(),
    };
    ctx.reporter.put(&okey, &observed);
}
