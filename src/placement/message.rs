//! The `Unschedulable` message: one line saying why replicas fall short, in
//! the terms the user wrote (pins, nodeSelector) before the nodes' state.

use std::fmt::Write;

use super::eligibility::Ineligible;
use super::NodeView;
use crate::resource::component::Placement as PlacementSpec;

/// Node names listed in a message at most, so 500 nodes make one readable line.
const LISTED: usize = 5;

/// Why `placed` of `wanted` is all there is. `nodes` are in name order with
/// `checks` beside them; `short_pins` are the pins that fall short (empty
/// when nothing is pinned).
pub(super) fn unschedulable(
    spec: &PlacementSpec,
    nodes: &[&NodeView],
    checks: &[Result<(), Ineligible>],
    short_pins: &[&str],
    placed: u64,
    wanted: u64,
) -> String {
    let mut why = if spec.nodes.is_empty() {
        unpinned(spec, nodes, checks)
    } else {
        short_pins
            .iter()
            .map(|p| pinned(spec, nodes, checks, p))
            .collect::<Vec<_>>()
            .join("; ")
    };
    if placed > 0 {
        let _ = write!(why, "; {placed} of {wanted} replicas placed");
    }
    why
}

/// One pinned node that falls short.
fn pinned(
    spec: &PlacementSpec,
    nodes: &[&NodeView],
    checks: &[Result<(), Ineligible>],
    pin: &str,
) -> String {
    let Ok(i) = nodes.binary_search_by(|n| n.name.as_str().cmp(pin)) else {
        return format!("pinned node {pin} is not registered");
    };
    match &checks[i] {
        Err(Ineligible::SelectorMismatch { key }) => format!(
            "pinned node {pin} does not match nodeSelector {key}={}",
            spec.node_selector.get(key).map_or("", String::as_str)
        ),
        Err(Ineligible::NotReady) => format!("pinned node {pin} is not ready"),
        Err(Ineligible::Draining) => format!("pinned node {pin} is draining"),
        Err(Ineligible::Cordoned) => format!("pinned node {pin} is cordoned"),
        // Not reached: a pinned eligible node is never short.
        Err(Ineligible::NotPinned) | Ok(()) => format!("pinned node {pin} falls short"),
    }
}

/// No pins, and no node is eligible.
fn unpinned(
    spec: &PlacementSpec,
    nodes: &[&NodeView],
    checks: &[Result<(), Ineligible>],
) -> String {
    if nodes.is_empty() {
        return "no node is registered".into();
    }
    let matching: Vec<usize> = (0..nodes.len())
        .filter(|&i| !matches!(checks[i], Err(Ineligible::SelectorMismatch { .. })))
        .collect();
    if matching.is_empty() {
        let selector: Vec<String> = spec
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        return format!(
            "no node matches nodeSelector {} ({})",
            selector.join(","),
            listed(nodes)
        );
    }
    let noun = if spec.node_selector.is_empty() {
        "node"
    } else {
        "matching node"
    };
    if let [i] = matching[..] {
        return format!(
            "the only {noun}, {}, is {}",
            nodes[i].name,
            state(&checks[i])
        );
    }
    // The counts per state, most severe first (the order `check` uses).
    let counts: Vec<(usize, &str)> = [
        Ineligible::NotReady,
        Ineligible::Draining,
        Ineligible::Cordoned,
    ]
    .into_iter()
    .map(|reason| {
        let n = matching
            .iter()
            .filter(|&&i| checks[i].as_ref().err() == Some(&reason))
            .count();
        (n, state(&Err(reason)))
    })
    .filter(|(n, _)| *n > 0)
    .collect();
    match counts[..] {
        [(_, state)] => format!("all {} {noun}s are {state}", matching.len()),
        _ => format!(
            "none of the {} {noun}s is eligible: {}",
            matching.len(),
            counts
                .iter()
                .map(|(n, state)| format!("{n} {state}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A matching node's state as the messages say it.
fn state(check: &Result<(), Ineligible>) -> &'static str {
    match check {
        Err(Ineligible::NotReady) => "not ready",
        Err(Ineligible::Draining) => "draining",
        Err(Ineligible::Cordoned) => "cordoned",
        // Not reached: no pins, and a matching node that is short is one of
        // the above.
        _ => "ineligible",
    }
}

/// "3 nodes: n1, n2, n3", at most `LISTED` names.
fn listed(nodes: &[&NodeView]) -> String {
    let mut names: Vec<&str> = nodes.iter().take(LISTED).map(|n| n.name.as_str()).collect();
    if nodes.len() > LISTED {
        names.push("...");
    }
    let noun = if nodes.len() == 1 { "node" } else { "nodes" };
    format!("{} {noun}: {}", nodes.len(), names.join(", "))
}
