//! The agent's in-memory picture of its containers and of each component's
//! conditions and events.
//!
//! [`Containers`] is fed by the agent's own actions (start, restart, stop),
//! by Docker events and by full resyncs (a list by label, then an inspect of
//! each container). It remembers what Docker does not: consecutive crashes,
//! restarts done by berth, and which containers the agent is stopping.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use super::executor::Owner;
use super::plan::{self, ContainerView, RunState, StopHow};
use crate::docker::ContainerDetails;
use crate::resource::observed::Event;
use crate::resource::{ComponentKey, Condition, ConditionType, Reason};

/// Events kept per component.
pub const MAX_EVENTS: usize = 10;

/// One container of this agent.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub owner: Owner,
    pub created: SystemTime,
    pub run: RunState,
    /// Consecutive crashes (see [`plan::consecutive_crashes`]).
    pub crashes: u32,
    /// Restarts done by berth since the agent knows the container.
    pub restarts: u32,
    /// Last exit: code and reason (`OOMKilled`, `Error`, `Completed`).
    pub last_exit: Option<(i64, String)>,
    /// When the agent last saw it start (for the crash-count reset).
    pub started: Option<Instant>,
    /// Docker's `StartedAt` of the latest start the agent knows of (`None`
    /// right after the agent started it, until Docker tells).
    pub started_at: Option<String>,
    /// Docker's `FinishedAt` of the latest exit the agent knows of.
    pub finished_at: Option<String>,
    pub stopping: Option<StopHow>,
    /// Container port -> host port on 127.0.0.1.
    pub ports: BTreeMap<u16, u16>,
    /// When the agent first learnt of it.
    pub known_since: Instant,
    /// The image ID Docker created it from (`sha256:...`), once known.
    pub image_id: Option<String>,
}

impl ContainerRecord {
    pub fn key(&self) -> ComponentKey {
        self.owner.key()
    }

    pub fn is_running(&self) -> bool {
        self.run == RunState::Running
    }

    /// The planner's view, with the check phase from the tracker.
    pub fn view(&self, check: plan::CheckPhase) -> ContainerView {
        ContainerView {
            id: self.id.clone(),
            revision: self.owner.revision,
            hash: self.owner.hash.clone(),
            created: self.created,
            run: self.run.clone(),
            check,
            crashes: self.crashes,
            stopping: self.stopping,
            evicting: false,
        }
    }
}

/// What an update changed, so the caller can trigger a reconcile and update
/// check tracking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// First time seen (adopted).
    New,
    /// It was running and is not any more.
    Exited,
    /// It was not running and runs now.
    Started,
    /// Details changed (ports, Docker's start time...): to be published,
    /// nothing the planner cares about.
    Updated,
    Unchanged,
}

fn run_state(d: &ContainerDetails, at: Instant) -> RunState {
    if d.running {
        RunState::Running
    } else if d.state == "created" {
        RunState::Created
    } else {
        RunState::Exited {
            code: d.exit_code.unwrap_or(-1),
            oom: d.oom_killed,
            at,
        }
    }
}

fn created_time(d: &ContainerDetails, fallback_unix: i64) -> SystemTime {
    // `inspect` has no creation time in ContainerDetails; the list's Unix
    // seconds (or the start time) order containers well enough.
    let secs = u64::try_from(fallback_unix).unwrap_or(0);
    if secs > 0 {
        return SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    }
    d.started_at
        .as_deref()
        .and_then(crate::util::parse_rfc3339)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// What a previous run of the agent reported about a container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Remembered {
    pub restarts: u32,
    pub last_exit: Option<(i64, String)>,
}

/// Every container of this agent, by id. Cheap to clone.
#[derive(Clone, Default)]
pub struct Containers {
    inner: Arc<Mutex<HashMap<String, ContainerRecord>>>,
    /// Restart counts from the last observed documents, used at adoption.
    remembered: Arc<Mutex<HashMap<String, Remembered>>>,
}

impl Containers {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, ContainerRecord>> {
        // Each update is a single insert/assignment: a poisoned map is consistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<ContainerRecord> {
        self.lock().get(id).cloned()
    }

    /// Restart counts a previous run of the agent published, applied when
    /// those containers are adopted.
    pub fn remember(&self, seen: HashMap<String, Remembered>) {
        *self.remembered.lock().unwrap_or_else(|e| e.into_inner()) = seen;
    }

    /// Containers of one component (`<project>/<component>`), oldest first.
    pub fn of(&self, key: &ComponentKey) -> Vec<ContainerRecord> {
        let mut v: Vec<ContainerRecord> = self
            .lock()
            .values()
            .filter(|r| r.owner.project == key.project && r.owner.component == key.name)
            .cloned()
            .collect();
        v.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        v
    }

    /// The component keys that have containers.
    pub fn keys(&self) -> Vec<ComponentKey> {
        let mut keys: Vec<ComponentKey> = self.lock().values().map(|r| r.key()).collect();
        keys.sort();
        keys.dedup();
        keys
    }

    pub fn ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Counts of running containers and of all containers.
    pub fn counts(&self) -> (usize, usize) {
        let map = self.lock();
        (map.values().filter(|r| r.is_running()).count(), map.len())
    }

    /// Records a container the agent just created and started.
    pub fn started(
        &self,
        id: &str,
        name: &str,
        owner: Owner,
        ports: BTreeMap<u16, u16>,
        now: Instant,
    ) {
        let rec = ContainerRecord {
            id: id.to_string(),
            name: name.to_string(),
            owner,
            created: SystemTime::now(),
            run: RunState::Running,
            crashes: 0,
            restarts: 0,
            last_exit: None,
            started: Some(now),
            started_at: None,
            finished_at: None,
            stopping: None,
            ports,
            known_since: now,
            image_id: None,
        };
        let mut map = self.lock();
        match map.get_mut(id) {
            // It died already and an event said so: that stands.
            Some(r) if r.finished_at.is_some() => {
                r.started = Some(now);
                r.known_since = now;
            }
            // An event or resync saw it between create and start (or
            // running): the agent's record replaces it, keeping Docker's
            // start time if that was seen already.
            Some(r) => {
                let started_at = r.is_running().then(|| r.started_at.clone()).flatten();
                map.insert(id.to_string(), ContainerRecord { started_at, ..rec });
            }
            None => {
                map.insert(id.to_string(), rec);
            }
        }
    }

    /// Records the image ID a container was created from.
    pub fn set_image_id(&self, id: &str, image_id: &str) {
        if let Some(r) = self.lock().get_mut(id) {
            if !image_id.is_empty() {
                r.image_id = Some(image_id.to_string());
            }
        }
    }

    /// Records a restart done by the agent, asked for at `requested`. An
    /// exit seen after that (the container died again at once) stands.
    pub fn restarted(&self, id: &str, ports: BTreeMap<u16, u16>, requested: Instant) {
        if let Some(r) = self.lock().get_mut(id) {
            r.restarts += 1;
            if matches!(r.run, RunState::Exited { at, .. } if at > requested) {
                return;
            }
            // A start seen by an inspect sent after the request is this
            // restart: its Docker start time stands.
            let seen = r.is_running() && r.started.is_some_and(|s| s >= requested);
            if !seen {
                r.started = Some(requested);
                r.started_at = None;
            }
            r.run = RunState::Running;
            r.ports = ports;
        }
    }

    /// Marks a container as being stopped (its exit is then no crash).
    pub fn stopping(&self, id: &str, how: StopHow) {
        if let Some(r) = self.lock().get_mut(id) {
            r.stopping = Some(how);
        }
    }

    /// The stop was part of a restart in place: the container is the
    /// planner's again.
    pub fn not_stopping(&self, id: &str) {
        if let Some(r) = self.lock().get_mut(id) {
            r.stopping = None;
        }
    }

    /// Forgets containers known before `listed_at` that are not in `present`
    /// (removed while the events stream was down); returns them.
    pub fn retain_listed(
        &self,
        present: &std::collections::HashSet<String>,
        listed_at: Instant,
    ) -> Vec<ContainerRecord> {
        let mut map = self.lock();
        let gone: Vec<String> = map
            .values()
            .filter(|r| !present.contains(&r.id) && r.known_since < listed_at)
            .map(|r| r.id.clone())
            .collect();
        gone.iter().filter_map(|id| map.remove(id)).collect()
    }

    /// Puts back a record taken out with [`Containers::remove`].
    pub fn reinsert(&self, r: ContainerRecord) {
        self.lock().insert(r.id.clone(), r);
    }

    /// Forgets a removed container; returns its record.
    pub fn remove(&self, id: &str) -> Option<ContainerRecord> {
        self.lock().remove(id)
    }

    /// Merges what Docker reports about a container of this agent.
    /// `created_unix` is the list's creation time (0 when unknown);
    /// `asked_at` is when the inspect was sent.
    ///
    /// News is ordered by Docker's own clock, not by arrival: a start counts
    /// only if its `StartedAt` is new, an exit only if its `FinishedAt` is
    /// new, so a stale answer (an inspect that raced with a start or an
    /// exit) never undoes what the agent knows.
    pub fn observe(
        &self,
        d: &ContainerDetails,
        owner: Owner,
        created_unix: i64,
        asked_at: Instant,
    ) -> Change {
        let now = asked_at;
        let mut map = self.lock();
        let Some(r) = map.get_mut(&d.id) else {
            let run = run_state(d, now);
            let remembered = self
                .remembered
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&d.id)
                .unwrap_or_default();
            let last_exit = match run {
                RunState::Exited { code, oom, .. } => {
                    Some((code, plan::exit_reason(code, oom).to_string()))
                }
                _ => remembered.last_exit,
            };
            let rec = ContainerRecord {
                id: d.id.clone(),
                name: d.name.clone(),
                owner,
                created: created_time(d, created_unix),
                crashes: u32::from(matches!(run, RunState::Exited { .. })),
                run,
                restarts: remembered.restarts,
                last_exit,
                started: d.running.then_some(now),
                started_at: d.started_at.clone(),
                finished_at: d.finished_at.clone(),
                stopping: None,
                ports: d.ports.clone(),
                known_since: now,
                image_id: (!d.image_id.is_empty()).then(|| d.image_id.clone()),
            };
            map.insert(d.id.clone(), rec);
            return Change::New;
        };
        if r.image_id.is_none() && !d.image_id.is_empty() {
            r.image_id = Some(d.image_id.clone());
        }
        let mut change = Change::Unchanged;
        if d.running {
            if r.is_running() && r.started_at.is_none() {
                // The agent's own start, now with Docker's time: published
                // (the container's age), nothing for the planner.
                r.started_at = d.started_at.clone();
                if r.started_at.is_some() {
                    change = Change::Updated;
                }
            } else if d.started_at.is_some() && d.started_at != r.started_at {
                change = if r.is_running() {
                    Change::Updated
                } else {
                    Change::Started
                };
                r.run = RunState::Running;
                r.started = Some(now);
                r.started_at = d.started_at.clone();
            }
            if r.is_running() && r.ports != d.ports && !d.ports.is_empty() {
                r.ports = d.ports.clone();
                if change == Change::Unchanged {
                    change = Change::Updated;
                }
            }
        } else if d.finished_at.is_some() && d.finished_at != r.finished_at {
            let code = d.exit_code.unwrap_or(-1);
            r.last_exit = Some((code, plan::exit_reason(code, d.oom_killed).to_string()));
            if r.stopping.is_none() {
                let ran_for = r
                    .started
                    .map_or(Duration::ZERO, |s| now.saturating_duration_since(s));
                r.crashes = plan::consecutive_crashes(r.crashes, ran_for);
            }
            r.run = RunState::Exited {
                code,
                oom: d.oom_killed,
                at: now,
            };
            r.finished_at = d.finished_at.clone();
            r.started_at = d.started_at.clone();
            change = Change::Exited;
        } else if let RunState::Exited { oom, code, .. } = &mut r.run {
            // An OOM kill can be reported after the exit was seen.
            if d.oom_killed && !*oom && d.finished_at == r.finished_at {
                *oom = true;
                r.last_exit = Some((*code, plan::exit_reason(*code, true).to_string()));
                change = Change::Updated;
            }
        }
        change
    }
}

/// Conditions and recent events of each component, kept by the agent.
/// Every event also goes to the cluster's event log (`berth events`)
/// through the recorder, which never waits on etcd.
#[derive(Clone, Default)]
pub struct ComponentStates {
    inner: Arc<Mutex<HashMap<ComponentKey, ComponentState>>>,
    recorder: crate::events::Recorder,
    node: String,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ComponentState {
    /// By condition type.
    pub conditions: BTreeMap<ConditionType, Condition>,
    pub events: VecDeque<Event>,
    /// Containers last reported ready (for one `Ready` event per transition).
    pub ready: std::collections::BTreeSet<String>,
}

impl ComponentStates {
    /// States whose events also go to `recorder`, as events of `node`.
    pub fn recording(recorder: crate::events::Recorder, node: &str) -> Self {
        ComponentStates {
            recorder,
            node: node.to_string(),
            ..Default::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ComponentKey, ComponentState>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, key: &ComponentKey) -> ComponentState {
        self.lock().get(key).cloned().unwrap_or_default()
    }

    /// Sets a condition, keeping its transition time when its status is unchanged.
    pub fn set_condition(
        &self,
        key: &ComponentKey,
        type_: ConditionType,
        ok: bool,
        reason: Reason,
        message: &str,
    ) {
        let mut map = self.lock();
        let st = map.entry(key.clone()).or_default();
        let new = Condition::new(type_, ok, reason, message);
        match st.conditions.get_mut(&type_) {
            Some(c) if c.status == new.status => {
                c.reason = new.reason;
                c.message = new.message;
            }
            _ => {
                st.conditions.insert(type_, new);
            }
        }
    }

    pub fn clear_condition(&self, key: &ComponentKey, type_: ConditionType) {
        if let Some(st) = self.lock().get_mut(key) {
            st.conditions.remove(&type_);
        }
    }

    pub fn has_condition(&self, key: &ComponentKey, type_: ConditionType) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|s| s.conditions.contains_key(&type_))
    }

    /// Records an event (the last [`MAX_EVENTS`] are kept). An event that
    /// repeats one already kept (same reason and message, e.g. a ready check
    /// failing the same way every 30 s) replaces it, so repeats do not push
    /// other events out.
    pub fn event(&self, key: &ComponentKey, reason: &str, message: &str) {
        tracing::info!(component = %key, reason, message, "event");
        self.recorder.record(crate::events::ClusterEvent::component(
            &key.project,
            &key.name,
            &self.node,
            reason,
            message,
        ));
        let mut map = self.lock();
        let st = map.entry(key.clone()).or_default();
        st.events
            .retain(|e| e.reason != reason || e.message != message);
        st.events.push_back(Event {
            time: crate::util::now_rfc3339(),
            reason: reason.to_string(),
            message: message.to_string(),
        });
        while st.events.len() > MAX_EVENTS {
            st.events.pop_front();
        }
    }

    /// Of the containers ready now, those that were not at the last call;
    /// remembers `ready_now` for the next.
    pub fn newly_ready(&self, key: &ComponentKey, ready_now: &[&str]) -> Vec<String> {
        let mut map = self.lock();
        let st = map.entry(key.clone()).or_default();
        let fresh = ready_now
            .iter()
            .filter(|id| !st.ready.contains(**id))
            .map(|id| id.to_string())
            .collect();
        st.ready = ready_now.iter().map(|id| id.to_string()).collect();
        fresh
    }

    pub fn forget(&self, key: &ComponentKey) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> Owner {
        Owner {
            project: "p".into(),
            component: "web".into(),
            revision: 1,
            hash: "h1".into(),
        }
    }

    /// Running since start `n` (Docker's StartedAt `...:0n`).
    fn running(id: &str, n: u32) -> ContainerDetails {
        ContainerDetails {
            id: id.into(),
            name: format!("berth-p-web-h1-{id}"),
            image: "img".into(),
            image_id: "sha256:1".into(),
            labels: BTreeMap::new(),
            running: true,
            state: "running".into(),
            exit_code: None,
            oom_killed: false,
            error: None,
            started_at: Some(format!("2026-01-01T00:00:{n:02}Z")),
            finished_at: None,
            ports: BTreeMap::from([(8080, 40000 + n as u16)]),
            memory: None,
            nano_cpus: None,
            privileged: false,
        }
    }

    /// Exited after start `n` (FinishedAt `...:0n.5`).
    fn exited(id: &str, n: u32, code: i64, oom: bool) -> ContainerDetails {
        ContainerDetails {
            running: false,
            state: "exited".into(),
            exit_code: Some(code),
            oom_killed: oom,
            finished_at: Some(format!("2026-01-01T00:00:{n:02}.5Z")),
            ports: BTreeMap::new(),
            ..running(id, n)
        }
    }

    fn get(c: &Containers, id: &str) -> ContainerRecord {
        c.get(id).unwrap_or_else(|| panic!("{id} missing"))
    }

    #[test]
    fn adoption_then_crash_then_restart() {
        let c = Containers::default();
        let t0 = Instant::now();
        assert_eq!(c.observe(&running("a", 1), owner(), 100, t0), Change::New);
        assert_eq!(
            c.observe(&running("a", 1), owner(), 100, t0),
            Change::Unchanged
        );
        let r = get(&c, "a");
        assert_eq!(r.ports, BTreeMap::from([(8080, 40001)]));
        assert_eq!(r.created, SystemTime::UNIX_EPOCH + Duration::from_secs(100));
        assert_eq!(c.keys(), vec![ComponentKey::new("p", "web")]);
        // Crash: counted, exit kept, the same news twice counts once.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(
            c.observe(&exited("a", 1, 137, true), owner(), 100, t1),
            Change::Exited
        );
        assert_eq!(
            c.observe(&exited("a", 1, 137, true), owner(), 100, t1),
            Change::Unchanged
        );
        let r = get(&c, "a");
        assert_eq!(r.crashes, 1);
        assert_eq!(r.last_exit, Some((137, "OOMKilled".into())));
        assert_eq!(
            r.run,
            RunState::Exited {
                code: 137,
                oom: true,
                at: t1
            }
        );
        assert_eq!(
            r.ports,
            BTreeMap::from([(8080, 40001)]),
            "ports of a stopped container are kept"
        );
        // Restart by the agent; Docker's start time fills in: nothing for
        // the planner, but the observed document must show it (AGE).
        c.restarted("a", BTreeMap::from([(8080, 40002)]), t1);
        let r = get(&c, "a");
        assert_eq!((r.restarts, r.run.clone()), (1, RunState::Running));
        assert_eq!(r.started_at, None);
        assert_eq!(
            c.observe(&running("a", 2), owner(), 100, t1),
            Change::Updated
        );
        assert_eq!(
            get(&c, "a").started_at.as_deref(),
            Some("2026-01-01T00:00:02Z")
        );
        assert_eq!(
            c.observe(&running("a", 2), owner(), 100, t1),
            Change::Unchanged
        );
        // A second crash soon after.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(
            c.observe(&exited("a", 2, 1, false), owner(), 100, t2),
            Change::Exited
        );
        assert_eq!(get(&c, "a").crashes, 2);
        // After running 10 minutes a crash starts a fresh count.
        c.restarted("a", BTreeMap::new(), t2);
        let t3 = t2 + Duration::from_secs(700);
        c.observe(&exited("a", 3, 1, false), owner(), 100, t3);
        assert_eq!(get(&c, "a").crashes, 1);
    }

    #[test]
    fn the_agents_own_start_gets_dockers_start_time_whatever_the_order() {
        // The `start` event is handled after the agent recorded its start.
        let c = Containers::default();
        let t0 = Instant::now();
        c.started("a", "n", owner(), BTreeMap::new(), t0);
        assert_eq!(get(&c, "a").started_at, None);
        assert_eq!(c.observe(&running("a", 1), owner(), 0, t0), Change::Updated);
        assert!(get(&c, "a").started_at.is_some());
        // ...or before: the agent's record keeps what Docker said.
        let c = Containers::default();
        assert_eq!(c.observe(&running("b", 1), owner(), 0, t0), Change::New);
        c.started("b", "n", owner(), BTreeMap::new(), t0);
        assert_eq!(
            get(&c, "b").started_at.as_deref(),
            Some("2026-01-01T00:00:01Z")
        );
        // A restart whose start was seen (asked after the request) before
        // the agent recorded it keeps Docker's start time too.
        let t1 = t0 + Duration::from_secs(1);
        c.observe(&exited("b", 1, 1, false), owner(), 0, t1);
        let requested = t1 + Duration::from_millis(10);
        let seen = requested + Duration::from_millis(5);
        assert_eq!(
            c.observe(&running("b", 2), owner(), 0, seen),
            Change::Started
        );
        c.restarted("b", BTreeMap::new(), requested);
        let r = get(&c, "b");
        assert_eq!((r.restarts, r.run.clone()), (1, RunState::Running));
        assert_eq!(r.started_at.as_deref(), Some("2026-01-01T00:00:02Z"));
    }

    #[test]
    fn a_death_seen_before_the_restart_is_recorded_stands() {
        // The container dies within milliseconds of `docker start`: its
        // `die` is handled before the agent records the restart.
        let c = Containers::default();
        let t0 = Instant::now();
        c.observe(&exited("a", 1, 3, false), owner(), 0, t0);
        let requested = t0 + Duration::from_millis(10);
        let died_seen = requested + Duration::from_millis(5);
        assert_eq!(
            c.observe(&exited("a", 2, 3, false), owner(), 0, died_seen),
            Change::Exited
        );
        c.restarted("a", BTreeMap::new(), requested);
        let r = get(&c, "a");
        assert_eq!(r.restarts, 1);
        assert!(matches!(r.run, RunState::Exited { .. }), "{r:?}");
        assert_eq!(r.crashes, 2);
        // A stale "running" answer from between the start and the death
        // does not bring it back to life either.
        assert_eq!(
            c.observe(&running("a", 2), owner(), 0, requested),
            Change::Unchanged
        );
        assert!(matches!(get(&c, "a").run, RunState::Exited { .. }));
    }

    #[test]
    fn stale_news_does_not_undo_a_start() {
        let c = Containers::default();
        let asked = Instant::now();
        let t1 = asked + Duration::from_millis(10);
        let mut created = running("a", 1);
        created.running = false;
        created.state = "created".into();
        created.started_at = None;
        // Resync saw it just created; then the agent's start completes.
        c.observe(&created, owner(), 0, asked);
        c.started("a", "n", owner(), BTreeMap::new(), t1);
        assert_eq!(get(&c, "a").run, RunState::Running);
        // The same stale answer arriving late changes nothing.
        assert_eq!(c.observe(&created, owner(), 0, asked), Change::Unchanged);
        assert_eq!(get(&c, "a").run, RunState::Running);
        // A resync list taken before the start does not forget it.
        let gone = c.retain_listed(&Default::default(), asked);
        assert!(gone.is_empty());
        let gone = c.retain_listed(&Default::default(), t1 + Duration::from_millis(1));
        assert_eq!(gone.len(), 1);
    }

    #[test]
    fn a_new_container_that_died_before_it_was_recorded_stays_dead() {
        let c = Containers::default();
        let t0 = Instant::now();
        assert_eq!(
            c.observe(&exited("a", 1, 127, false), owner(), 0, t0),
            Change::New
        );
        c.started("a", "n", owner(), BTreeMap::new(), t0);
        let r = get(&c, "a");
        assert!(matches!(r.run, RunState::Exited { code: 127, .. }), "{r:?}");
    }

    #[test]
    fn a_start_by_someone_else_is_seen() {
        let c = Containers::default();
        let t0 = Instant::now();
        c.observe(&exited("a", 1, 0, false), owner(), 0, t0);
        assert_eq!(c.observe(&running("a", 2), owner(), 0, t0), Change::Started);
        assert_eq!(get(&c, "a").run, RunState::Running);
    }

    #[test]
    fn adoption_keeps_what_the_last_run_reported() {
        let c = Containers::default();
        let r = Remembered {
            restarts: 4,
            last_exit: Some((137, "OOMKilled".into())),
        };
        c.remember(HashMap::from([("a".to_string(), r)]));
        c.observe(&running("a", 1), owner(), 0, Instant::now());
        let rec = get(&c, "a");
        assert_eq!((rec.restarts, rec.crashes), (4, 0));
        assert_eq!(rec.last_exit, Some((137, "OOMKilled".into())));
        c.observe(&running("b", 1), owner(), 0, Instant::now());
        assert_eq!(c.get("b").map(|r| r.restarts), Some(0));
    }

    #[test]
    fn exit_while_stopping_is_no_crash() {
        let c = Containers::default();
        let t0 = Instant::now();
        c.started("a", "n", owner(), BTreeMap::new(), t0);
        c.stopping("a", StopHow::Graceful);
        assert_eq!(
            c.observe(&exited("a", 1, 143, false), owner(), 0, t0),
            Change::Exited
        );
        assert_eq!(c.get("a").map(|r| r.crashes), Some(0));
        assert!(c.remove("a").is_some());
        assert!(c.is_empty());
    }

    #[test]
    fn adopted_exited_container_counts_one_crash() {
        let c = Containers::default();
        c.observe(&exited("a", 1, 2, false), owner(), 0, Instant::now());
        let r = c.get("a").unwrap_or_else(|| panic!("missing"));
        assert_eq!(r.crashes, 1);
        assert_eq!(r.last_exit, Some((2, "Error".into())));
    }

    #[test]
    fn conditions_keep_transition_time_and_events_are_bounded() {
        let s = ComponentStates::default();
        let web = ComponentKey::new("p", "web");
        let pull = ConditionType::ImagePullFailed;
        s.set_condition(&web, pull, true, Reason::ImagePullFailed, "no such image");
        let t = s.get(&web).conditions[&pull].last_transition_time.clone();
        s.set_condition(&web, pull, true, Reason::ImagePullFailed, "still no image");
        let st = s.get(&web);
        assert_eq!(st.conditions[&pull].last_transition_time, t);
        assert_eq!(st.conditions[&pull].message, "still no image");
        assert!(s.has_condition(&web, pull));
        s.clear_condition(&web, pull);
        assert!(!s.has_condition(&web, pull));
        for i in 0..15 {
            s.event(&web, "Restarted", &format!("{i}"));
        }
        let st = s.get(&web);
        assert_eq!(st.events.len(), MAX_EVENTS);
        assert_eq!(st.events.back().map(|e| e.message.as_str()), Some("14"));
        // A repeat replaces the event it repeats, at the end.
        s.event(&web, "Restarted", "9");
        let st = s.get(&web);
        let messages: Vec<&str> = st.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            ["5", "6", "7", "8", "10", "11", "12", "13", "14", "9"]
        );
    }
}
