//! Which nodes may receive new replicas of a component, and why not.

use std::collections::BTreeSet;
use std::fmt;

use super::node::{by_name, NodeView};
use crate::resource::component::Placement as PlacementSpec;

/// Why a node is not eligible (for messages and `describe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ineligible {
    NotReady,
    Cordoned,
    Draining,
    /// The node lacks `key` or has another value for it (the first such key
    /// in key order).
    SelectorMismatch {
        key: String,
    },
    /// Pins are given and this node is not among them.
    NotPinned,
}

impl fmt::Display for Ineligible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ineligible::NotReady => f.write_str("not ready"),
            Ineligible::Cordoned => f.write_str("cordoned"),
            Ineligible::Draining => f.write_str("draining"),
            Ineligible::SelectorMismatch { key } => {
                write!(f, "does not match nodeSelector key {key}")
            }
            Ineligible::NotPinned => f.write_str("not in placement.nodes"),
        }
    }
}

/// Eligibility of every node for one component, in node-name order.
pub fn eligibility(
    spec: &PlacementSpec,
    nodes: &[NodeView],
) -> Vec<(String, Result<(), Ineligible>)> {
    by_name(nodes)
        .into_iter()
        .map(|n| (n.name.clone(), check(spec, n)))
        .collect()
}

/// Pinned names that no given node has, sorted, each once. `eligibility`
/// lists only registered nodes, so `describe` needs these separately.
pub fn unknown_pins(spec: &PlacementSpec, nodes: &[NodeView]) -> Vec<String> {
    pins(spec)
        .into_iter()
        .filter(|p| !nodes.iter().any(|n| n.name == *p))
        .map(str::to_owned)
        .collect()
}

/// The pins, sorted, each once.
pub(super) fn pins(spec: &PlacementSpec) -> BTreeSet<&str> {
    spec.nodes.iter().map(String::as_str).collect()
}

/// One node's eligibility. The order of the checks decides which reason is
/// reported: first what the spec says about the node (pins, then selector),
/// since no change of state would make such a node eligible; then its state,
/// most severe first. So `Err(Cordoned)` means exactly "matches, Ready, not
/// draining, cordoned", the one case whose running replicas stay.
pub(super) fn check(spec: &PlacementSpec, node: &NodeView) -> Result<(), Ineligible> {
    if !spec.nodes.is_empty() && !spec.nodes.contains(&node.name) {
        return Err(Ineligible::NotPinned);
    }
    if let Some((key, _)) = spec
        .node_selector
        .iter()
        .find(|(k, v)| node.labels.get(*k) != Some(*v))
    {
        return Err(Ineligible::SelectorMismatch { key: key.clone() });
    }
    if !node.ready {
        Err(Ineligible::NotReady)
    } else if node.draining {
        Err(Ineligible::Draining)
    } else if node.cordoned {
        Err(Ineligible::Cordoned)
    } else {
        Ok(())
    }
}
