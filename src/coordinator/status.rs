//! A component's status, rolled up from every node's observed document
//! (pure). The coordinator writes it only when it changed, ignoring the
//! write time and the conditions' transition times.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::resource::component::{
    Component, ComponentStatus, NodeSummary, RolloutPhase, RolloutStatus, State,
};
use crate::resource::observed::{ContainerPhase, ObservedContainer};
use crate::resource::{Condition, ConditionType, Observed, Reason};

/// Conditions of the nodes copied into the status when any node has them
/// true, so `get` can say which problem it is.
const COPIED: [ConditionType; 4] = [
    ConditionType::ImagePullFailed,
    ConditionType::StartFailed,
    ConditionType::Forbidden,
    ConditionType::Degraded,
];

/// What a status is rolled up from.
pub struct Input<'a> {
    pub spec: &'a Component,
    /// Hash and revision number of the spec's template.
    pub hash: &'a str,
    pub revision: u64,
    /// Replicas wanted in all (0 unless `state: running`).
    pub desired: u32,
    /// Replicas assigned per node, after this pass's writes.
    pub assigned: &'a BTreeMap<String, (u32, u64)>,
    pub observed: &'a BTreeMap<String, std::sync::Arc<Observed>>,
    /// Why not every replica could be placed.
    pub unschedulable: Option<&'a str>,
    pub coordinator: &'a str,
    pub now: SystemTime,
    /// The rollout engine's record and its `Progressing` condition; without
    /// them (a stopped component) the old record stays and `Progressing`
    /// is derived from the counts.
    pub rollout: Option<&'a RolloutStatus>,
    pub progressing: Option<&'a Condition>,
}

#[derive(Default)]
struct Counts {
    current: u32,
    ready: u32,
    updated: u32,
    available: u32,
    draining: u32,
    completed: u32,
    failed: u32,
    crash_loop: Vec<String>,
}

fn leaving(c: &ObservedContainer) -> bool {
    matches!(
        c.phase,
        ContainerPhase::Draining | ContainerPhase::Stopping | ContainerPhase::Stopped
    )
}

fn ready_for(c: &ObservedContainer, min_ready: Duration, now: SystemTime) -> bool {
    if min_ready.is_zero() {
        return true;
    }
    c.ready_since
        .as_deref()
        .and_then(crate::util::parse_rfc3339)
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|d| d >= min_ready)
}

fn count(input: &Input, node: &str, o: &Observed, into: &mut Counts) -> NodeSummary {
    let min_ready = input
        .spec
        .spec
        .rollout()
        .min_ready
        .map(|d| d.std())
        .unwrap_or_default();
    let mut s = NodeSummary::default();
    for c in &o.containers {
        let ready = c.phase == ContainerPhase::Ready;
        if leaving(c) {
            s.draining += 1;
            continue;
        }
        s.current += 1;
        s.ready += u32::from(ready);
        into.updated += u32::from(c.hash == input.hash);
        into.available += u32::from(ready && ready_for(c, min_ready, input.now));
        if c.phase == ContainerPhase::CrashLoop {
            into.crash_loop.push(format!("{node}/{}", c.name));
        }
        if c.phase == ContainerPhase::Exited {
            match c.last_exit_code {
                Some(0) => into.completed += 1,
                _ => into.failed += 1,
            }
        }
    }
    into.current += s.current;
    into.ready += s.ready;
    into.draining += s.draining;
    s
}

/// The status `input` describes; conditions keep their transition time from
/// `old` while their status holds.
pub fn roll_up(input: &Input, old: Option<&ComponentStatus>) -> ComponentStatus {
    let mut n = Counts::default();
    let mut nodes: BTreeMap<String, NodeSummary> = BTreeMap::new();
    for (node, o) in input.observed {
        let s = count(input, node, o, &mut n);
        if s.current + s.draining > 0 {
            nodes.insert(node.clone(), s);
        }
    }
    for (node, (replicas, revision)) in input.assigned {
        let s = nodes.entry(node.clone()).or_default();
        s.desired = *replicas;
        s.revision = Some(*revision);
    }
    let done = n.updated >= input.desired && n.ready >= input.desired && n.current == n.updated;
    let mut conditions = vec![
        available(input, &n),
        match input.progressing {
            Some(p) => p.clone(),
            None => progressing(input, &n, done),
        },
        degraded(input, &n),
    ];
    conditions.extend(copied(input));
    let now = humantime::format_rfc3339_seconds(input.now).to_string();
    let conditions = keep_transition_times(conditions, old, &now);
    ComponentStatus {
        observed_generation: input.spec.metadata.generation.unwrap_or(1),
        replicas: input.desired,
        ready_replicas: n.ready,
        updated_replicas: n.updated,
        available_replicas: n.available,
        current_revision: if let Some(r) = input
            .rollout
            .filter(|r| r.phase == RolloutPhase::RolledBack)
        {
            r.stable_revision
        } else if done {
            Some(input.revision)
        } else {
            old.and_then(|o| o.current_revision)
        },
        update_revision: Some(input.revision),
        conditions,
        current_replicas: n.current,
        draining_replicas: n.draining,
        completed_replicas: n.completed,
        failed_replicas: n.failed,
        nodes,
        last_update: Some(now),
        coordinator: Some(input.coordinator.to_string()),
        rollout: input
            .rollout
            .cloned()
            .or_else(|| old.and_then(|o| o.rollout.clone())),
    }
}

fn available(input: &Input, n: &Counts) -> Condition {
    let ok = n.available >= input.desired;
    let reason = if ok {
        Reason::MinimumReplicasAvailable
    } else {
        Reason::MinimumReplicasUnavailable
    };
    Condition::new(
        ConditionType::Available,
        ok,
        reason,
        format!("{}/{} available", n.available, input.desired),
    )
}

fn progressing(input: &Input, n: &Counts, done: bool) -> Condition {
    let message = format!(
        "{}/{} updated to revision {}, {}/{} ready",
        n.updated, input.desired, input.revision, n.ready, input.desired
    );
    match done {
        true => Condition::new(ConditionType::Progressing, false, Reason::Complete, message),
        false => Condition::new(ConditionType::Progressing, true, Reason::Updating, message),
    }
}

fn degraded(input: &Input, n: &Counts) -> Condition {
    let t = ConditionType::Degraded;
    if input.spec.spec.state != State::Running {
        return Condition::new(t, false, Reason::AsExpected, "");
    }
    if let Some(why) = input.unschedulable {
        return Condition::new(t, true, Reason::Unschedulable, why);
    }
    if !n.crash_loop.is_empty() {
        let message = format!("crash-looping: {}", n.crash_loop.join(", "));
        return Condition::new(t, true, Reason::CrashLoop, message);
    }
    for (node, o) in input.observed {
        if let Some(c) = o
            .conditions
            .iter()
            .find(|c| c.is_true() && COPIED.iter().any(|t| c.is(*t)))
        {
            return Condition::with_reason(
                t,
                true,
                &c.type_,
                format!("node {node}: {}", c.message),
            );
        }
    }
    Condition::new(t, false, Reason::AsExpected, "")
}

/// The nodes' problem conditions (the first node's of each type).
fn copied(input: &Input) -> Vec<Condition> {
    let mut out: Vec<Condition> = Vec::new();
    for t in COPIED.iter().filter(|t| **t != ConditionType::Degraded) {
        let first = input.observed.iter().find_map(|(node, o)| {
            let c = o.conditions.iter().find(|c| c.is(*t) && c.is_true())?;
            Some(Condition {
                message: format!("node {node}: {}", c.message),
                ..c.clone()
            })
        });
        out.extend(first);
    }
    out
}

fn keep_transition_times(
    new: Vec<Condition>,
    old: Option<&ComponentStatus>,
    now: &str,
) -> Vec<Condition> {
    new.into_iter()
        .map(|mut c| {
            let before = old.and_then(|o| o.conditions.iter().find(|x| x.type_ == c.type_));
            c.last_transition_time = match before {
                Some(b) if b.status == c.status => b.last_transition_time.clone(),
                _ => Some(now.to_string()),
            };
            c
        })
        .collect()
}

/// Whether two statuses say the same, apart from when they were written.
/// The coordinator that wrote it counts: a new coordinator's first pass
/// writes every status once, so readers see it took over.
pub fn same(a: &ComponentStatus, b: &ComponentStatus) -> bool {
    let strip = |s: &ComponentStatus| ComponentStatus {
        last_update: None,
        ..s.clone()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::ComponentSpec;
    use crate::resource::observed::ObservedContainer;
    use crate::resource::ObjectMeta;
    use std::sync::Arc;

    fn spec() -> Component {
        Component {
            api_version: "berth/v1".into(),
            kind: "Component".into(),
            metadata: ObjectMeta {
                name: "web".into(),
                generation: Some(3),
                ..Default::default()
            },
            spec: ComponentSpec {
                image: "web:2".into(),
                ..Default::default()
            },
            status: None,
        }
    }

    fn container(hash: &str, phase: ContainerPhase) -> ObservedContainer {
        ObservedContainer {
            id: format!("{hash}-{phase}"),
            name: "c".into(),
            revision: 2,
            hash: hash.into(),
            phase,
            ..Default::default()
        }
    }

    /// Rolls up `containers` on node n1 (3 wanted of hash `new`, revision 2);
    /// checks (current, updated, ready, draining) and each condition's
    /// (status, reason).
    fn check(
        containers: Vec<ObservedContainer>,
        want: (u32, u32, u32, u32),
        conditions: &[(&str, bool, &str)],
    ) {
        let c = spec();
        let observed = BTreeMap::from([(
            "n1".to_string(),
            Arc::new(Observed {
                node: "n1".into(),
                containers,
                ..Default::default()
            }),
        )]);
        let assigned = BTreeMap::from([("n1".to_string(), (3, 2))]);
        let input = Input {
            spec: &c,
            hash: "new",
            revision: 2,
            desired: 3,
            assigned: &assigned,
            observed: &observed,
            unschedulable: None,
            coordinator: "n1",
            now: SystemTime::now(),
            rollout: None,
            progressing: None,
        };
        let st = roll_up(&input, None);
        let got = (
            st.current_replicas,
            st.updated_replicas,
            st.ready_replicas,
            st.draining_replicas,
        );
        assert_eq!(got, want);
        assert_eq!(st.nodes["n1"].desired, 3);
        for (t, ok, reason) in conditions {
            let found = st
                .conditions
                .iter()
                .find(|c| c.type_ == *t)
                .expect("condition");
            assert_eq!(
                (found.is_true(), found.reason.as_str()),
                (*ok, *reason),
                "{t}"
            );
        }
        // Written again only when something but the write time changed.
        let again = roll_up(&input, Some(&st));
        assert!(same(&st, &again));
    }

    #[test]
    fn roll_ups() {
        use ContainerPhase::*;
        let ready = |h| container(h, Ready);
        check(
            vec![ready("new"), ready("new"), ready("new")],
            (3, 3, 3, 0),
            &[
                ("Available", true, "MinimumReplicasAvailable"),
                ("Progressing", false, "Complete"),
                ("Degraded", false, "AsExpected"),
            ],
        );
        // Mid-rollout: an old one still serves, one new one starts, one old drains.
        check(
            vec![
                ready("old"),
                ready("new"),
                container("new", Starting),
                container("old", Draining),
            ],
            (3, 2, 2, 1),
            &[
                ("Available", false, "MinimumReplicasUnavailable"),
                ("Progressing", true, "Updating"),
            ],
        );
        check(
            vec![ready("new"), ready("new"), container("new", CrashLoop)],
            (3, 3, 2, 0),
            &[("Degraded", true, "CrashLoop")],
        );
    }
}
