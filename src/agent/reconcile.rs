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

use super::executor::{admit, Executor, Owner, StartError};
use super::health::{ProbeTarget, Tracker};
use super::metrics::Metrics;
use super::plan::{self, CheckPhase, PlanInput, Step, StopHow};
use super::report::Reporter;
use super::state::{ComponentStates, ContainerRecord, Containers, PlacementNotes};
use crate::resource::component::{State, Template, Termination};
use crate::resource::observed::{ContainerPhase, ObservedContainer};
use crate::resource::{Assignment, Observed};
use crate::runtime::{Action, Reader};
use crate::store::Keys;

/// Requeue of a component with nothing pending: a safety net behind the
/// Docker events and the periodic resync.
pub const IDLE_REQUEUE: Duration = Duration::from_secs(300);

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("starting a container of {key}: {message}")]
    Start { key: String, message: String },
    #[error("{0}")]
    Docker(#[from] crate::docker::Error),
}

/// What every reconcile shares.
pub struct Ctx {
    pub node: String,
    pub keys: Keys,
    pub assignments: Reader<Assignment>,
    pub containers: Containers,
    pub states: ComponentStates,
    /// Placement's word on components (e.g. `Unschedulable`).
    pub placement: PlacementNotes,
    pub tracker: Tracker,
    pub exec: Executor,
    pub reporter: Reporter,
    pub metrics: Metrics,
    /// Reconcile keys to trigger (stop tasks finishing).
    pub trigger: mpsc::UnboundedSender<String>,
    /// Templates seen, by hash: the termination settings of old containers.
    pub templates: Mutex<HashMap<String, Template>>,
}

impl Ctx {
    /// The reconcile key of a component.
    pub fn key_of(&self, project: &str, component: &str) -> String {
        self.keys.assignment(&self.node, project, component)
    }

    /// `(project, component)` of a reconcile key.
    pub fn parse_key<'a>(&self, key: &'a str) -> Option<(&'a str, &'a str)> {
        let parts = self
            .keys
            .parts(&self.keys.assignments_prefix(&self.node), key)?;
        match parts.as_slice() {
            [p, c] if !p.is_empty() && !c.is_empty() => Some((p, c)),
            _ => None,
        }
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
        let of = ctx.containers.of(&format!("{project}/{name}"));
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

/// Reconciles one component. See the module docs.
pub async fn reconcile(key: String, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    ctx.metrics.reconciles.inc();
    let Some((project, component)) = ctx.parse_key(&key) else {
        tracing::warn!(%key, "ignoring a key that names no component");
        return Ok(Action::await_change());
    };
    let ckey = format!("{project}/{component}");
    let assignment: Option<Assignment> = ctx.assignments.get(&key).map(|a| (*a).clone());
    if let Some(a) = &assignment {
        ctx.remember(a);
    }
    let records = ctx.containers.of(&ckey);
    track(&ctx, &key, &records, assignment.as_ref());
    let now = tokio::time::Instant::now().into_std();
    let views = records
        .iter()
        .map(|r| {
            r.view(
                ctx.tracker
                    .phase(&r.id)
                    .unwrap_or(CheckPhase::Starting { since: now }),
            )
        })
        .collect();
    let input = PlanInput {
        assignment: assignment.clone(),
        containers: views,
    };
    let plan = plan::plan(&input, now);
    if !plan.steps.is_empty() {
        tracing::debug!(component = %ckey, steps = ?plan.steps, "plan");
    }

    // Admission: a refused template starts nothing, and says why.
    let running = assignment.as_ref().filter(|a| a.state == State::Running);
    let refused = match running.map(|a| admit(&a.template, &ctx.exec.perms)) {
        Some(Err(msg)) => {
            ctx.states
                .set_condition(&ckey, "Forbidden", true, "Forbidden", &msg);
            Some(msg)
        }
        _ => {
            ctx.states.clear_condition(&ckey, "Forbidden");
            None
        }
    };

    let mut starts = 0usize;
    let mut failure: Option<String> = None;
    for step in &plan.steps {
        match step {
            Step::Record { reason, message } => ctx.states.event(&ckey, reason, message),
            Step::Start { .. } => starts += 1,
            Step::Restart { id } => {
                let Some(a) = &assignment else { continue };
                let requested = tokio::time::Instant::now().into_std();
                match ctx.exec.restart(id).await {
                    Ok(ports) => {
                        ctx.containers.restarted(id, ports.clone(), requested);
                        ctx.metrics.container_restarts.inc();
                        let target = ProbeTarget {
                            id: id.clone(),
                            ports,
                        };
                        ctx.tracker.track(
                            &key,
                            target,
                            &a.hash,
                            a.template.ready_checks.clone(),
                            a.template.health_checks.clone(),
                        );
                    }
                    Err(e) if e.is_not_found() => {
                        ctx.containers.remove(id);
                        ctx.tracker.forget(id);
                    }
                    Err(e) => {
                        ctx.states.event(
                            &ckey,
                            "RestartFailed",
                            &format!("container {}: {e}", short(id)),
                        );
                        failure = Some(e.to_string());
                    }
                }
            }
            Step::Stop { id, how } => {
                let Some(r) = records.iter().find(|r| &r.id == id) else {
                    continue;
                };
                let termination = ctx.termination(r, assignment.as_ref());
                spawn_stop(&ctx, &key, id, *how, termination);
            }
            Step::Remove { id } => {
                ctx.tracker.forget(id);
                match ctx.exec.remove(id).await {
                    Ok(()) => {
                        ctx.containers.remove(id);
                    }
                    Err(e) => failure = Some(e.to_string()),
                }
            }
        }
    }

    if starts > 0 && refused.is_none() {
        if let Some(a) = &assignment {
            if let Err(e) = start_all(&ctx, &key, project, component, a, starts).await {
                failure = Some(e);
            }
        }
    } else if starts == 0 {
        // Nothing to start (any more): earlier start failures are moot.
        ctx.states.clear_condition(&ckey, "ImagePullFailed");
        ctx.states.clear_condition(&ckey, "StartFailed");
    }

    publish(&ctx, &key, &ckey, assignment.as_ref());
    let (running, all) = ctx.containers.counts();
    ctx.metrics.containers.set(all as i64);
    ctx.metrics.containers_running.set(running as i64);

    if let Some(message) = failure {
        ctx.metrics.reconcile_errors.inc();
        return Err(ReconcileError::Start { key: ckey, message });
    }
    Ok(Action::requeue(
        plan.requeue_after.unwrap_or(IDLE_REQUEUE).min(IDLE_REQUEUE),
    ))
}

/// Starts `n` containers of `a` concurrently; updates conditions.
async fn start_all(
    ctx: &Arc<Ctx>,
    key: &str,
    project: &str,
    component: &str,
    a: &Assignment,
    n: usize,
) -> Result<(), String> {
    let ckey = format!("{project}/{component}");
    let owner = Owner {
        project: project.to_string(),
        component: component.to_string(),
        revision: a.revision,
        hash: a.hash.clone(),
    };
    let volumes = match volumes_from(ctx, project, &a.template) {
        Ok(v) => v,
        Err(e) => {
            let (type_, reason) = e.condition();
            ctx.states
                .set_condition(&ckey, type_, true, reason, &e.to_string());
            return Err(e.to_string());
        }
    };
    let results = futures::future::join_all(
        (0..n).map(|_| ctx.exec.start(&owner, &a.template, volumes.clone())),
    )
    .await;
    let mut error = None;
    let mut ok = 0;
    for r in results {
        match r {
            Ok((started, name)) => {
                ok += 1;
                ctx.metrics.container_starts.inc();
                ctx.containers.started(
                    &started.id,
                    &name,
                    owner.clone(),
                    started.ports.clone(),
                    tokio::time::Instant::now().into_std(),
                );
                ctx.tracker.track(
                    key,
                    ProbeTarget {
                        id: started.id.clone(),
                        ports: started.ports,
                    },
                    &a.hash,
                    a.template.ready_checks.clone(),
                    a.template.health_checks.clone(),
                );
            }
            Err(e) => {
                ctx.metrics.container_start_failures.inc();
                let (type_, reason) = e.condition();
                let message = match &e {
                    StartError::ImagePull(m) => format!("pulling image {}: {m}", a.template.image),
                    other => other.to_string(),
                };
                if !ctx.states.has_condition(&ckey, type_) {
                    ctx.states.event(&ckey, reason, &message);
                }
                ctx.states
                    .set_condition(&ckey, type_, true, reason, &message);
                error = Some(message);
            }
        }
    }
    if ok > 0 {
        ctx.states.clear_condition(&ckey, "ImagePullFailed");
        if error.is_none() {
            ctx.states.clear_condition(&ckey, "StartFailed");
        }
    }
    error.map_or(Ok(()), Err)
}

/// Stops a container in its own task; the component is triggered when done.
fn spawn_stop(ctx: &Arc<Ctx>, key: &str, id: &str, how: StopHow, termination: Termination) {
    ctx.containers.stopping(id, how);
    ctx.tracker.forget(id);
    let ctx = ctx.clone();
    let key = key.to_string();
    let id = id.to_string();
    tokio::spawn(async move {
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
pub fn publish(ctx: &Ctx, key: &str, ckey: &str, a: Option<&Assignment>) {
    let Some((project, component)) = ctx.parse_key(key) else {
        return;
    };
    let okey = ctx.keys.observed(&ctx.node, project, component);
    let records = ctx.containers.of(ckey);
    let note = ctx.placement.get(ckey);
    if a.is_none() && records.is_empty() {
        ctx.states.forget(ckey);
        if note.is_none() {
            ctx.reporter.delete(&okey);
            return;
        }
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
    conditions.extend(note);
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
        ctx.states.set_condition(
            ckey,
            "Ready",
            ok,
            if ok {
                "ContainersReady"
            } else {
                "ContainersNotReady"
            },
            &message,
        );
        if let Some(c) = ctx.states.get(ckey).conditions.get("Ready") {
            conditions.retain(|x| x.type_ != "Ready");
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
