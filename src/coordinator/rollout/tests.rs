//! Table tests of the engine: single steps on hand-written clusters, and
//! whole rollouts in the simulation (`sim.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use super::sim::{self, Image, Sim};
use super::*;
use crate::resource::component::Rollout;
use crate::resource::observed::{ContainerPhase, ObservedContainer};
use crate::resource::quantity::{self, IntOrPercent};
use crate::resource::Observed;

fn rev(n: u64) -> Rev {
    let t = sim::template(&format!("web:{n}"));
    Rev {
        number: n,
        hash: t.hash(),
        template: t,
    }
}

/// One node of a hand-written cluster: target, assigned (rev, count),
/// containers (rev, phase).
struct N {
    target: u32,
    assigned: &'static [(u64, u32)],
    ctrs: &'static [(u64, ContainerPhase)],
}

const R: ContainerPhase = ContainerPhase::Ready;
const S: ContainerPhase = ContainerPhase::Starting;
const D: ContainerPhase = ContainerPhase::Draining;

fn policy(surge: u32, unavailable: u32) -> Rollout {
    Rollout {
        max_surge: Some(IntOrPercent::Int(surge)),
        max_unavailable: Some(IntOrPercent::Int(unavailable)),
        ..Default::default()
    }
}

/// One step of rolling revision 2 out over `nodes` (n0, n1, ...), from a
/// rollout of revision 2 in progress; `want` is every node's assignment
/// afterwards as (rev, count) lists.
fn check(rollout: Rollout, nodes: &[N], want: &[&[(u64, u32)]]) {
    let (r1, r2) = (rev(1), rev(2));
    let hash = |n: u64| {
        if n == 1 {
            r1.hash.clone()
        } else {
            r2.hash.clone()
        }
    };
    let name = |i: usize| format!("n{i}");
    let mut target = BTreeMap::new();
    let mut current = BTreeMap::new();
    let mut observed = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        target.insert(name(i), n.target);
        let list = n
            .assigned
            .iter()
            .map(|(r, c)| RevisionReplicas {
                revision: *r,
                hash: hash(*r),
                template: if *r == 1 {
                    r1.template.clone()
                } else {
                    r2.template.clone()
                },
                replicas: *c,
                replacing: 0,
                removing: 0,
            })
            .collect();
        current.insert(name(i), Assignment::new(1, State::Running, list));
        let containers = n
            .ctrs
            .iter()
            .map(|(r, phase)| ObservedContainer {
                revision: *r,
                hash: hash(*r),
                phase: *phase,
                ..Default::default()
            })
            .collect();
        let o = Observed {
            containers,
            ..Default::default()
        };
        observed.insert(name(i), Arc::new(o));
    }
    let registered: BTreeSet<String> = target.keys().cloned().collect();
    let prev = RolloutStatus {
        revision: 2,
        last_progress: Some(state::stamp(sim::t0())),
        ..Default::default()
    };
    let out = step(&Input {
        spec: Spec {
            generation: 1,
            state: State::Running,
            rollout: &rollout,
            desired: target.values().sum(),
            promoted: None,
        },
        revision: &r2,
        known: std::slice::from_ref(&r1),
        target: &target,
        unschedulable: None,
        current: &current,
        observed: &observed,
        registered: &registered,
        now: sim::t0(),
        prev: Some(&prev),
    });
    let got: Vec<Vec<(u64, u32)>> = (0..nodes.len())
        .map(|i| {
            out.assignments.get(&name(i)).map_or(Vec::new(), |a| {
                a.revisions
                    .iter()
                    .map(|r| (r.revision, r.replicas))
                    .collect()
            })
        })
        .collect();
    let want: Vec<Vec<(u64, u32)>> = want.iter().map(|w| w.to_vec()).collect();
    assert_eq!(got, want);
}

#[test]
fn steps_within_the_budgets() {
    // Start: one more of revision 2 (surge) and one fewer of 1, on the same
    // node, so its agent swaps them in place.
    check(
        policy(1, 1),
        &[
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
        ],
        &[&[(1, 1), (2, 1)], &[(1, 2)]],
    );
    // maxUnavailable 0: the new one first; nothing leaves until it is available.
    check(
        policy(1, 0),
        &[
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
        ],
        &[&[(1, 2), (2, 1)], &[(1, 2)]],
    );
    // ...and once it is, an old one goes.
    check(
        policy(1, 0),
        &[
            N {
                target: 2,
                assigned: &[(1, 2), (2, 1)],
                ctrs: &[(1, R), (1, R), (2, R)],
            },
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
        ],
        &[&[(1, 1), (2, 1)], &[(1, 2)]],
    );
    // maxSurge 0: an old one goes first, the new one waits for the room.
    check(
        policy(0, 1),
        &[
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
        ],
        &[&[(1, 1)], &[(1, 2)]],
    );
    // A draining container holds the surge budget.
    check(
        policy(1, 1),
        &[
            N {
                target: 2,
                assigned: &[(1, 1), (2, 1)],
                ctrs: &[(1, R), (2, R), (1, D)],
            },
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
        ],
        &[&[(1, 1), (2, 1)], &[(1, 1)]],
    );
    // Once it is gone, the next swap (on the node furthest from its target).
    check(
        policy(1, 1),
        &[
            N {
                target: 2,
                assigned: &[(1, 1), (2, 1)],
                ctrs: &[(1, R), (2, R)],
            },
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
        ],
        &[&[(1, 1), (2, 1)], &[(1, 1), (2, 1)]],
    );
    // A new container that never gets ready: nothing more moves.
    check(
        policy(1, 1),
        &[
            N {
                target: 2,
                assigned: &[(1, 1), (2, 1)],
                ctrs: &[(1, R), (1, R), (2, S)],
            },
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
        ],
        &[&[(1, 1), (2, 1)], &[(1, 2)]],
    );
    // Unavailable old replicas go at once (they cost nothing).
    check(
        policy(1, 0),
        &[
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, S), (1, S)],
            },
            N {
                target: 2,
                assigned: &[(1, 2)],
                ctrs: &[(1, R), (1, R)],
            },
        ],
        &[&[(2, 1)], &[(1, 2)]],
    );
    // A node leaving placement (drain) keeps its replica until the
    // replacement is available.
    check(
        policy(1, 1),
        &[
            N {
                target: 2,
                assigned: &[(2, 1)],
                ctrs: &[(2, R), (2, S)],
            },
            N {
                target: 0,
                assigned: &[(2, 1)],
                ctrs: &[(2, R)],
            },
        ],
        &[&[(2, 2)], &[(2, 1)]],
    );
    check(
        policy(1, 1),
        &[
            N {
                target: 2,
                assigned: &[(2, 2)],
                ctrs: &[(2, R), (2, R)],
            },
            N {
                target: 0,
                assigned: &[(2, 1)],
                ctrs: &[(2, R)],
            },
        ],
        &[&[(2, 2)], &[]],
    );
    // Scale-up is one step; scale-down keeps the available ones' count.
    check(
        policy(1, 1),
        &[
            N {
                target: 3,
                assigned: &[(2, 1)],
                ctrs: &[(2, R)],
            },
            N {
                target: 3,
                assigned: &[(2, 1)],
                ctrs: &[(2, R)],
            },
        ],
        &[&[(2, 3)], &[(2, 3)]],
    );
    check(
        policy(1, 1),
        &[
            N {
                target: 1,
                assigned: &[(2, 3)],
                ctrs: &[(2, R), (2, R), (2, R)],
            },
            N {
                target: 1,
                assigned: &[(2, 3)],
                ctrs: &[(2, R), (2, R), (2, R)],
            },
        ],
        &[&[(2, 1)], &[(2, 1)]],
    );
}

fn roll(surge: &str, unavailable: &str, extra: impl FnOnce(&mut Rollout)) -> Rollout {
    let mut r = Rollout {
        max_surge: Some(surge.parse().expect("valid")),
        max_unavailable: Some(unavailable.parse().expect("valid")),
        progress_deadline: Some(quantity::Duration::from_secs(20)),
        ..Default::default()
    };
    extra(&mut r);
    r
}

/// What a simulated rollout ends as.
#[derive(Debug, PartialEq)]
struct End {
    phase: RolloutPhase,
    /// Running containers of revision 1 and 2.
    running: (u32, u32),
    cause: Option<String>,
}

/// Six replicas of revision 1 on `nodes`, then revision 2 behaving as
/// `image`; runs until the rollout is final (at most 300 ticks) and checks
/// the budgets at every tick.
fn simulate(nodes: usize, rollout: Rollout, image: Image) -> End {
    let mut s = Sim::new(nodes, 6, rollout);
    s.apply("web:1", Image::Ready(1));
    s.run(10);
    assert_eq!(s.phase(), Some(RolloutPhase::Complete));
    s.apply("web:2", image);
    let b = Budget::of(&s.rollout, 6);
    for _ in 0..300 {
        s.tick_all();
        assert!(
            s.containers() <= b.max_total(),
            "t={} containers {}",
            s.t,
            s.containers()
        );
        assert!(
            s.available() >= b.min_available(),
            "t={} available {}",
            s.t,
            s.available()
        );
        if s.phase().is_some_and(|p| p.is_final()) {
            s.run(10);
            break;
        }
    }
    let h = |n: u64| s.revs[n as usize - 1].hash.clone();
    End {
        phase: s.phase().unwrap_or_default(),
        running: (s.running(&h(1)), s.running(&h(2))),
        cause: s
            .status
            .as_ref()
            .and_then(|r| r.cause.as_ref())
            .map(|c| c.reason.clone()),
    }
}

#[test]
fn whole_rollouts_in_the_simulation() {
    let end = |phase, running, cause: Option<&str>| End {
        phase,
        running,
        cause: cause.map(String::from),
    };
    use RolloutPhase::*;
    let plain = roll("1", "1", |_| {});
    assert_eq!(
        simulate(3, plain.clone(), Image::Ready(2)),
        end(Complete, (0, 6), None)
    );
    assert_eq!(
        simulate(3, roll("25%", "0", |_| {}), Image::Ready(1)),
        end(Complete, (0, 6), None)
    );
    assert_eq!(
        simulate(2, roll("0", "2", |_| {}), Image::Ready(3)),
        end(Complete, (0, 6), None)
    );
    assert_eq!(
        simulate(
            3,
            roll("1", "1", |r| r.min_ready =
                Some(quantity::Duration::from_secs(3))),
            Image::Ready(1)
        ),
        end(Complete, (0, 6), None)
    );
    assert_eq!(
        simulate(3, plain.clone(), Image::NeverReady),
        end(RolledBack, (6, 0), Some("ReadyCheckFailed"))
    );
    assert_eq!(
        simulate(3, plain.clone(), Image::Crash),
        end(RolledBack, (6, 0), Some("CrashLoop"))
    );
    // No rollback: failed, and still only maxUnavailable out of service.
    let keep = roll("1", "1", |r| r.auto_rollback = Some(false));
    let failed = simulate(3, keep, Image::Crash);
    assert_eq!(
        (failed.phase, failed.cause.as_deref()),
        (Failed, Some("CrashLoop"))
    );
    assert!(failed.running.0 >= 5, "{failed:?}");
}

#[test]
fn canary_waits_for_promote_and_pause_holds() {
    let mut s = Sim::new(3, 6, roll("1", "1", |r| r.canary = Some(2)));
    s.apply("web:1", Image::Ready(1));
    s.run(10);
    let r2 = s.apply("web:2", Image::Ready(1));
    s.run(30);
    let h2 = s.revs[1].hash.clone();
    assert_eq!(s.phase(), Some(RolloutPhase::CanaryWaiting));
    assert_eq!(s.running(&h2), 2);
    // Waiting past the deadline is not a failure.
    s.run(30);
    assert_eq!(s.phase(), Some(RolloutPhase::CanaryWaiting));
    s.promoted = Some(r2);
    s.rollout.paused = true;
    s.run(5);
    assert_eq!(s.phase(), Some(RolloutPhase::Paused));
    assert_eq!(s.running(&h2), 2, "paused: nothing more of revision 2");
    s.rollout.paused = false;
    s.run(40);
    assert_eq!(s.phase(), Some(RolloutPhase::Complete));
    assert_eq!(s.running(&h2), 6);
    let st = s.status.clone().unwrap_or_default();
    assert_eq!(
        (st.revision, st.from_revision, st.stable_revision),
        (2, Some(1), Some(2))
    );
}

#[test]
fn a_lost_node_is_replaced_at_once_and_the_rollout_goes_on() {
    let mut s = Sim::new(4, 6, roll("1", "1", |_| {}));
    s.apply("web:1", Image::Ready(1));
    s.run(10);
    // Out of a rollout, the lost replicas are placed again in one step.
    s.lose("n3");
    s.engine();
    let assigned = |s: &Sim| -> u32 {
        s.nodes
            .values()
            .filter_map(|n| n.assignment.as_ref())
            .map(|a| a.replicas())
            .sum()
    };
    assert_eq!(assigned(&s), 6);
    assert!(s.nodes["n3"].assignment.is_none());
    // During one, within the surge budget, and the rollout goes on.
    s.apply("web:2", Image::Ready(2));
    s.run(3);
    s.lose("n2");
    s.run(60);
    assert_eq!(s.phase(), Some(RolloutPhase::Complete));
    assert_eq!(s.running(&s.revs[1].hash.clone()), 6);
    assert_eq!(assigned(&s), 6);
}

/// A new coordinator continues from the status: the same `started`, the
/// step count goes on.
#[test]
fn the_status_carries_a_rollout_across_coordinators() {
    let mut s = Sim::new(3, 6, roll("1", "1", |_| {}));
    s.apply("web:1", Image::Ready(1));
    s.run(10);
    s.apply("web:2", Image::Ready(2));
    s.run(4);
    let before = s.status.clone().unwrap_or_default();
    // The status goes through JSON as it does through etcd.
    let json = serde_json::to_string(&before).expect("encodes");
    s.status = Some(serde_json::from_str(&json).expect("decodes"));
    s.run(1);
    let after = s.status.clone().unwrap_or_default();
    assert_eq!(
        (after.started, after.revision),
        (before.started, before.revision)
    );
    assert!(after.step >= before.step);
}

#[test]
fn deadline_and_minready_set_the_rerun() {
    let mut s = Sim::new(1, 1, roll("1", "0", |_| {}));
    s.apply("web:1", Image::NeverReady);
    let out = s.engine();
    assert_eq!(out.rerun, Some(Duration::from_millis(20_050)));
}

/// The cost of one step at 1,000 nodes (3,000 replicas, mid-rollout with
/// `maxSurge: 25%`): `cargo test --lib step_cost -- --ignored --nocapture`
/// (add `--release` for the optimized number).
#[test]
#[ignore]
fn step_cost_at_1000_nodes() {
    let mut s = Sim::new(1000, 3000, roll("25%", "10%", |_| {}));
    s.apply("web:1", Image::Ready(1));
    s.run(3);
    assert_eq!(s.phase(), Some(RolloutPhase::Complete));
    s.apply("web:2", Image::Ready(2));
    s.run(3);
    let (fastest, median) = s.time_step(20);
    println!("one step at 1000 nodes / 3000 replicas: fastest {fastest:?}, median {median:?}");
}

/// No eligible node: nothing placed is not a complete rollout; the deadline
/// fails it as `Unschedulable`.
#[test]
fn nothing_placed_is_not_complete() {
    let mut s = Sim::new(1, 2, roll("1", "1", |r| r.auto_rollback = Some(false)));
    s.lose("n0");
    s.apply("web:1", Image::Ready(1));
    s.run(5);
    assert_eq!(s.phase(), Some(RolloutPhase::Progressing));
    s.run(30);
    let st = s.status.clone().unwrap_or_default();
    assert_eq!(st.phase, RolloutPhase::Failed);
    assert_eq!(
        st.cause.map(|c| c.reason),
        Some("Unschedulable".to_string())
    );
}

/// One node for the health tests: target, assigned (rev, replicas,
/// replacing, removing), containers (rev, phase).
#[derive(Clone, Copy)]
struct H {
    target: u32,
    assigned: &'static [(u64, u32, u32, u32)],
    ctrs: &'static [(u64, ContainerPhase)],
}

const U: ContainerPhase = ContainerPhase::Unhealthy;

/// One step with revision 2 as the spec's (`rolling`: a rollout from 1 in
/// progress, else complete: steady state); `want` is every node's
/// assignment afterwards as (rev, replicas, replacing, removing) lists.
fn check_health(rollout: Rollout, rolling: bool, nodes: &[H], want: &[&[(u64, u32, u32, u32)]]) {
    check_marked(rollout, rolling, nodes, &[], want)
}

/// As [`check_health`] in steady state (no rollout in progress), with the
/// containers at `evicted` (node index, container index) marked evicted
/// (`berth evict`).
fn check_evictions(
    rollout: Rollout,
    nodes: &[H],
    evicted: &[(usize, usize)],
    want: &[&[(u64, u32, u32, u32)]],
) {
    check_marked(rollout, false, nodes, evicted, want)
}

/// As [`check_health`], with the containers at `evicted` marked evicted.
fn check_marked(
    rollout: Rollout,
    rolling: bool,
    nodes: &[H],
    evicted: &[(usize, usize)],
    want: &[&[(u64, u32, u32, u32)]],
) {
    let (r1, r2) = (rev(1), rev(2));
    let of = |n: u64| if n == 1 { r1.clone() } else { r2.clone() };
    let name = |i: usize| format!("n{i}");
    let mut target = BTreeMap::new();
    let mut current = BTreeMap::new();
    let mut observed = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        target.insert(name(i), n.target);
        let list = n
            .assigned
            .iter()
            .map(|&(r, replicas, replacing, removing)| RevisionReplicas {
                revision: r,
                hash: of(r).hash,
                template: of(r).template,
                replicas,
                replacing,
                removing,
            })
            .collect();
        current.insert(name(i), Assignment::new(1, State::Running, list));
        let containers = n
            .ctrs
            .iter()
            .enumerate()
            .map(|(j, (r, phase))| ObservedContainer {
                revision: *r,
                hash: of(*r).hash,
                phase: *phase,
                evicting: evicted.contains(&(i, j)),
                ..Default::default()
            })
            .collect();
        let o = Observed {
            containers,
            ..Default::default()
        };
        observed.insert(name(i), Arc::new(o));
    }
    let registered: BTreeSet<String> = target.keys().cloned().collect();
    let prev = RolloutStatus {
        revision: 2,
        phase: if rolling {
            RolloutPhase::Progressing
        } else {
            RolloutPhase::Complete
        },
        last_progress: Some(state::stamp(sim::t0())),
        ..Default::default()
    };
    let out = step(&Input {
        spec: Spec {
            generation: 1,
            state: State::Running,
            rollout: &rollout,
            desired: target.values().sum(),
            promoted: None,
        },
        revision: &r2,
        known: std::slice::from_ref(&r1),
        target: &target,
        unschedulable: None,
        current: &current,
        observed: &observed,
        registered: &registered,
        now: sim::t0(),
        prev: Some(&prev),
    });
    let got: Vec<Vec<(u64, u32, u32, u32)>> = (0..nodes.len())
        .map(|i| {
            out.assignments.get(&name(i)).map_or(Vec::new(), |a| {
                a.revisions
                    .iter()
                    .map(|r| (r.revision, r.replicas, r.replacing, r.removing))
                    .collect()
            })
        })
        .collect();
    let want: Vec<Vec<(u64, u32, u32, u32)>> = want.iter().map(|w| w.to_vec()).collect();
    assert_eq!(got, want);
}

#[test]
fn health_replacements_draw_on_the_surge_budget() {
    let healthy = H {
        target: 2,
        assigned: &[(2, 2, 0, 0)],
        ctrs: &[(2, R), (2, R)],
    };
    let sick = || H {
        target: 2,
        assigned: &[(2, 2, 0, 0)],
        ctrs: &[(2, R), (2, U)],
    };
    // Steady state, no rollout: the unhealthy one gets a replacement.
    check_health(
        policy(1, 1),
        false,
        &[sick(), healthy],
        &[&[(2, 2, 1, 0)], &[(2, 2, 0, 0)]],
    );
    // The replacement starting: the grant holds, nothing else moves.
    check_health(
        policy(1, 1),
        false,
        &[
            H {
                target: 2,
                assigned: &[(2, 2, 1, 0)],
                ctrs: &[(2, R), (2, U), (2, S)],
            },
            healthy,
        ],
        &[&[(2, 2, 1, 0)], &[(2, 2, 0, 0)]],
    );
    // Available: withdrawn, so the agent lets the unhealthy one go.
    check_health(
        policy(1, 1),
        false,
        &[
            H {
                target: 2,
                assigned: &[(2, 2, 1, 0)],
                ctrs: &[(2, R), (2, U), (2, R)],
            },
            healthy,
        ],
        &[&[(2, 2, 0, 0)], &[(2, 2, 0, 0)]],
    );
    // Two sick, surge 1: one replacement at a time; the other one is taken
    // away (it serves nothing, and it holds the budget while it stays).
    check_health(
        policy(1, 1),
        false,
        &[sick(), sick()],
        &[&[(2, 2, 1, 0)], &[(2, 2, 0, 1)]],
    );
    // Still draining: its slot comes back only once it is gone.
    check_health(
        policy(1, 1),
        false,
        &[
            H {
                target: 2,
                assigned: &[(2, 2, 1, 0)],
                ctrs: &[(2, R), (2, U), (2, S)],
            },
            H {
                target: 2,
                assigned: &[(2, 2, 0, 1)],
                ctrs: &[(2, R), (2, D)],
            },
        ],
        &[&[(2, 2, 1, 0)], &[(2, 2, 0, 1)]],
    );
    // maxSurge 0: taken away first, and back once gone.
    check_health(
        policy(0, 1),
        false,
        &[sick(), healthy],
        &[&[(2, 2, 0, 1)], &[(2, 2, 0, 0)]],
    );
    check_health(
        policy(0, 1),
        false,
        &[
            H {
                target: 2,
                assigned: &[(2, 2, 0, 1)],
                ctrs: &[(2, R), (2, D)],
            },
            healthy,
        ],
        &[&[(2, 2, 0, 1)], &[(2, 2, 0, 0)]],
    );
    check_health(
        policy(0, 1),
        false,
        &[
            H {
                target: 2,
                assigned: &[(2, 2, 0, 1)],
                ctrs: &[(2, R)],
            },
            healthy,
        ],
        &[&[(2, 2, 0, 0)], &[(2, 2, 0, 0)]],
    );
    // Mid-rollout: the unhealthy old one is the first old one to go (it
    // costs no availability), beside the step's new one; no replacement.
    check_health(
        policy(1, 1),
        true,
        &[
            H {
                target: 2,
                assigned: &[(1, 2, 0, 0)],
                ctrs: &[(1, R), (1, U)],
            },
            H {
                target: 2,
                assigned: &[(1, 2, 0, 0)],
                ctrs: &[(1, R), (1, R)],
            },
        ],
        &[&[(1, 1, 0, 0), (2, 1, 0, 0)], &[(1, 2, 0, 0)]],
    );
}

/// An evicted container serves on and is replaced like an outdated one:
/// surge-first within `maxSurge` (never a dip below `replicas`), its
/// replacement's grant withdrawn once available; with `maxSurge` 0,
/// taken away first within `maxUnavailable`, one at a time.
#[test]
fn evictions_are_replaced_through_the_budgets() {
    let two = |ctrs: &'static [(u64, ContainerPhase)], a: &'static [(u64, u32, u32, u32)]| H {
        target: 2,
        assigned: a,
        ctrs,
    };
    let steady = || two(&[(2, R), (2, R)], &[(2, 2, 0, 0)]);
    // maxUnavailable 0: a replacement beside it; nothing taken away.
    check_evictions(
        policy(1, 0),
        &[steady(), steady()],
        &[(0, 1)],
        &[&[(2, 2, 1, 0)], &[(2, 2, 0, 0)]],
    );
    // Replacement starting: the grant holds.
    check_evictions(
        policy(1, 0),
        &[two(&[(2, R), (2, R), (2, S)], &[(2, 2, 1, 0)]), steady()],
        &[(0, 1)],
        &[&[(2, 2, 1, 0)], &[(2, 2, 0, 0)]],
    );
    // Replacement available: withdrawn, the agent lets the evicted one go.
    check_evictions(
        policy(1, 0),
        &[two(&[(2, R), (2, R), (2, R)], &[(2, 2, 1, 0)]), steady()],
        &[(0, 1)],
        &[&[(2, 2, 0, 0)], &[(2, 2, 0, 0)]],
    );
    // Two evicted, surge 1: one at a time; the other serves on, waiting.
    check_evictions(
        policy(1, 0),
        &[steady(), steady()],
        &[(0, 0), (1, 0)],
        &[&[(2, 2, 1, 0)], &[(2, 2, 0, 0)]],
    );
    // Its own replacement not ready: the evicted one still counts as
    // available (it serves), so the grant is all that changes.
    check_evictions(
        policy(2, 0),
        &[steady(), steady()],
        &[(0, 0), (0, 1)],
        &[&[(2, 2, 2, 0)], &[(2, 2, 0, 0)]],
    );
    // Two evicted, one replacement available, the other still starting:
    // the grant drops by the one covered only, so the agent lets one
    // evicted container go and keeps the starting replacement.
    check_evictions(
        policy(2, 0),
        &[H {
            target: 3,
            assigned: &[(2, 3, 2, 0)],
            ctrs: &[(2, R), (2, R), (2, R), (2, R), (2, S)],
        }],
        &[(0, 0), (0, 1)],
        &[&[(2, 3, 1, 0)]],
    );
    // maxSurge 0: drain-first, within maxUnavailable (one at a time).
    check_evictions(
        policy(0, 1),
        &[steady(), steady()],
        &[(0, 1)],
        &[&[(2, 2, 0, 1)], &[(2, 2, 0, 0)]],
    );
    check_evictions(
        policy(0, 1),
        &[steady(), steady()],
        &[(0, 1), (1, 0)],
        &[&[(2, 2, 0, 1)], &[(2, 2, 0, 0)]],
    );
    check_evictions(
        policy(0, 2),
        &[steady(), steady()],
        &[(0, 1), (1, 0)],
        &[&[(2, 2, 0, 1)], &[(2, 2, 0, 1)]],
    );
    // Draining: its slot comes back only once it is gone.
    check_evictions(
        policy(0, 1),
        &[two(&[(2, R), (2, D)], &[(2, 2, 0, 1)]), steady()],
        &[],
        &[&[(2, 2, 0, 1)], &[(2, 2, 0, 0)]],
    );
    check_evictions(
        policy(0, 1),
        &[two(&[(2, R)], &[(2, 2, 0, 1)]), steady()],
        &[],
        &[&[(2, 2, 0, 0)], &[(2, 2, 0, 0)]],
    );
    // An unhealthy one uses up maxUnavailable: the unhealthy one is taken
    // away (it serves nothing), the evicted one waits.
    check_evictions(
        policy(0, 1),
        &[steady(), two(&[(2, R), (2, U)], &[(2, 2, 0, 0)])],
        &[(0, 1)],
        &[&[(2, 2, 0, 0)], &[(2, 2, 0, 1)]],
    );
    // Both written 0 never validates; rounded to 0 (`maxUnavailable: 10%`
    // of 4) the budget allows one surge replica: surge-first.
    check_evictions(
        Rollout {
            max_surge: Some(IntOrPercent::Int(0)),
            max_unavailable: Some(IntOrPercent::Percent(10)),
            ..Default::default()
        },
        &[steady(), steady()],
        &[(0, 1)],
        &[&[(2, 2, 1, 0)], &[(2, 2, 0, 0)]],
    );
}
