//! Property tests of the engine in the simulation: over random specs, node
//! sets and event orders (which agents act, when the engine runs, a node
//! lost, a late promote),
//! - containers (every revision, leaving ones included) never exceed
//!   `replicas + maxSurge`;
//! - available replicas never fall below `replicas - maxUnavailable`,
//!   except after a node was lost: from the loss until both the available
//!   replicas and those the assignments in force keep (per node and
//!   revision the fewer of assigned and available) are back at the bound
//!   (a decision made before the loss may still be carried out by the
//!   agents). The bound is checked after every agent pass and engine step
//!   outside that window;
//! - every rollout ends `Complete`, `Failed` or `RolledBack` (also when a
//!   third revision is applied in the middle of the second's rollout).
//!
//! Health checks fail at random moments (and containers not ready within the
//! simulated `readyTimeout` count as unhealthy): the containers bound holds
//! throughout, as health replacements draw on the same surge budget; a
//! failure, like a node loss, suspends the availability bound until it is
//! back. In steady state (no rollout), every unhealthy container is replaced
//! and all replicas are available again.
//!
//! Evictions (`berth evict`) at random moments, in steady state and in a
//! rollout, suspend nothing: the containers bound and the availability
//! bound hold throughout (surge-first; drain-first within `maxUnavailable`
//! when `maxSurge` is 0), and every evicted container is gone in the end.

use proptest::prelude::*;

use super::sim::{Image, Sim};
use super::Budget;
use crate::resource::component::Rollout;
use crate::resource::quantity::{self, IntOrPercent};

fn image() -> impl Strategy<Value = Image> {
    prop_oneof![
        (1u32..4).prop_map(Image::Ready),
        Just(Image::NeverReady),
        Just(Image::Crash),
    ]
}

fn amount() -> impl Strategy<Value = IntOrPercent> {
    prop_oneof![
        (0u32..4).prop_map(IntOrPercent::Int),
        (0u32..=100).prop_map(IntOrPercent::Percent),
    ]
}

/// Both budgets at 0 forbid every step: no rollout could move.
fn movable(surge: IntOrPercent, unavailable: IntOrPercent) -> bool {
    let zero = |x: IntOrPercent| matches!(x, IntOrPercent::Int(0) | IntOrPercent::Percent(0));
    !(zero(surge) && zero(unavailable))
}

/// The rollout settings every property draws.
fn budgets(surge: IntOrPercent, unavailable: IntOrPercent, min_ready: u64) -> Rollout {
    Rollout {
        max_surge: Some(surge),
        max_unavailable: Some(unavailable),
        min_ready: Some(quantity::Duration::from_secs(min_ready)),
        ..Default::default()
    }
}

/// `web:1` applied and run for 10 ticks: every replica available (the
/// caller asserts it).
fn settled(nodes: usize, replicas: u32, rollout: Rollout, drain: u32) -> Sim {
    let mut s = Sim::new(nodes, replicas, rollout);
    s.drain_ticks = drain;
    s.apply("web:1", Image::Ready(1));
    s.run(10);
    s
}

/// The order of events, from the case's seed (xorshift: reproducible with
/// the case, and no second source of randomness beside proptest's).
struct Order(u64);

impl Order {
    fn new(seed: u64) -> Order {
        Order(seed | 1)
    }

    /// One event: the engine one time in four, otherwise an agent drawn
    /// from `names`.
    fn step(&mut self, s: &mut Sim, names: &[String]) {
        let r = &mut self.0;
        *r ^= *r << 13;
        *r ^= *r >> 7;
        *r ^= *r << 17;
        let r = *r;
        if r.is_multiple_of(4) {
            s.engine();
        } else {
            let name = names[(r as usize / 4) % names.len()].clone();
            s.agent(&name);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn budgets_hold_and_every_rollout_ends(
        nodes in 1usize..6,
        replicas in 0u32..10,
        surge in amount(),
        unavailable in amount(),
        min_ready in 0u64..3,
        canary in 0u32..3,
        auto_rollback in any::<bool>(),
        new in image(),
        seed in any::<u64>(),
        lose in proptest::option::of(0u64..40),
        third in proptest::option::of((0u64..60, image())),
        sick in proptest::collection::vec((0u64..80, 0usize..5, 0usize..4), 0..4),
    ) {
        prop_assume!(movable(surge, unavailable));
        let rollout = Rollout {
            progress_deadline: Some(quantity::Duration::from_secs(15)),
            canary: Some(canary),
            auto_rollback: Some(auto_rollback),
            ..budgets(surge, unavailable, min_ready)
        };
        let mut s = Sim::new(nodes, replicas, rollout);
        s.apply("web:1", Image::Ready(1));
        s.run(10);
        prop_assert_eq!(s.available(), replicas);
        let r2 = s.apply("web:2", new);
        let mut order = Order::new(seed);
        let mut recovering = false;
        let names: Vec<String> = s.nodes.keys().cloned().collect();
        let mut ended = false;
        for tick in 0..600u64 {
            if lose == Some(tick) && nodes > 1 {
                s.lose(&names[0]);
                recovering = true;
            }
            if tick == 60 {
                s.promoted = Some(r2);
            }
            for (_, node, nth) in sick.iter().filter(|x| x.0 == tick) {
                if s.sicken(&names[node % names.len()], *nth) {
                    recovering = true;
                }
            }
            if let Some((_, image)) = third.filter(|t| t.0 == tick) {
                s.apply("web:3", image);
            }
            if tick == 120 && third.is_some() {
                s.promoted = s.spec_rev().map(|r| r.number);
            }
            // Agents in a random order, some skipped; the engine at random moments.
            for _ in 0..(names.len() + 1) {
                order.step(&mut s, &names);
                let b = Budget::of(&s.rollout, replicas);
                prop_assert!(s.containers() <= b.max_total(),
                    "t={} containers {} > {}\n{}", s.t, s.containers(), b.max_total(), s.dump());
                if recovering
                    && s.available() >= b.min_available()
                    && s.kept_available() >= b.min_available()
                {
                    recovering = false;
                }
                if !recovering {
                    prop_assert!(s.available() >= b.min_available(),
                        "t={} available {} < {}\n{}{:?}", s.t, s.available(), b.min_available(), s.dump(), s.status);
                }
            }
            s.engine();
            s.t += 1;
            let latest = s.spec_rev().map(|r| r.number);
            let third_due = third.is_some_and(|t| tick < t.0);
            if !third_due
                && s.status.as_ref().map(|r| r.revision) == latest
                && s.phase().is_some_and(|p| p.is_final())
            {
                ended = true;
                break;
            }
        }
        prop_assert!(ended, "not final after 600 ticks: {:?}", s.status);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn health_replacements_stay_within_the_surge_budget_in_steady_state(
        nodes in 1usize..5,
        replicas in 1u32..8,
        surge in amount(),
        unavailable in amount(),
        min_ready in 0u64..3,
        drain in 1u32..4,
        seed in any::<u64>(),
        sick in proptest::collection::vec((0u64..30, 0usize..5, 0usize..4), 1..6),
    ) {
        prop_assume!(movable(surge, unavailable));
        let mut s = settled(nodes, replicas, budgets(surge, unavailable, min_ready), drain);
        prop_assert_eq!(s.available(), replicas);
        let b = Budget::of(&s.rollout, replicas);
        let names: Vec<String> = s.nodes.keys().cloned().collect();
        let mut order = Order::new(seed);
        for tick in 0..120u64 {
            for (_, node, nth) in sick.iter().filter(|x| x.0 == tick) {
                s.sicken(&names[node % names.len()], *nth);
            }
            for _ in 0..(names.len() + 1) {
                order.step(&mut s, &names);
                prop_assert!(s.containers() <= b.max_total(),
                    "t={} containers {} > {}\n{}", s.t, s.containers(), b.max_total(), s.dump());
            }
            s.engine();
            s.t += 1;
        }
        prop_assert_eq!(s.unhealthy(), 0, "{}", s.dump());
        prop_assert_eq!(s.available(), replicas, "{}", s.dump());
        prop_assert!(s.status.as_ref().is_some_and(|r| r.phase.is_final()), "{:?}", s.status);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn evictions_keep_both_budgets_and_end_replaced(
        nodes in 1usize..5,
        replicas in 1u32..8,
        surge in amount(),
        unavailable in amount(),
        min_ready in 0u64..3,
        drain in 1u32..4,
        seed in any::<u64>(),
        rollout_at in proptest::option::of(0u64..30),
        evict in proptest::collection::vec((0u64..40, 0usize..5, 0usize..8), 1..6),
    ) {
        prop_assume!(movable(surge, unavailable));
        let mut s = settled(nodes, replicas, budgets(surge, unavailable, min_ready), drain);
        prop_assert_eq!(s.available(), replicas);
        let b = Budget::of(&s.rollout, replicas);
        let names: Vec<String> = s.nodes.keys().cloned().collect();
        let mut order = Order::new(seed);
        for tick in 0..150u64 {
            if rollout_at == Some(tick) {
                s.apply("web:2", Image::Ready(2));
            }
            for (_, node, nth) in evict.iter().filter(|x| x.0 == tick) {
                s.evict(&names[node % names.len()], *nth);
            }
            for _ in 0..(names.len() + 1) {
                order.step(&mut s, &names);
                prop_assert!(s.containers() <= b.max_total(),
                    "t={} containers {} > {}\n{}", s.t, s.containers(), b.max_total(), s.dump());
                prop_assert!(s.available() >= b.min_available(),
                    "t={} available {} < {}\n{}", s.t, s.available(), b.min_available(), s.dump());
            }
            s.engine();
            s.t += 1;
        }
        prop_assert_eq!(s.evicting(), 0, "{}", s.dump());
        prop_assert_eq!(s.available(), replicas, "{}", s.dump());
        prop_assert!(s.status.as_ref().is_some_and(|r| r.phase.is_final()), "{:?}", s.status);
    }
}
