//! What placement knows of a node, and the one order nodes are looked at in.

use std::collections::BTreeMap;

/// What placement knows of one node.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The node's agent holds its lease (status `Ready`).
    pub ready: bool,
    /// No new replicas; running ones stay.
    pub cordoned: bool,
    /// Being drained: its replicas move elsewhere.
    pub draining: bool,
}

/// The nodes in name order, each name once (the first given wins).
///
/// Every decision is made over this order, so the caller's order never
/// changes the result (determinism), and ties are broken by name.
pub(super) fn by_name(nodes: &[NodeView]) -> Vec<&NodeView> {
    // The coordinator's views come sorted and unique already: then this is
    // one pass, not a map of every name for every component it places (at
    // 500 nodes that map was most of the coordinator's CPU).
    if nodes.windows(2).all(|w| w[0].name < w[1].name) {
        return nodes.iter().collect();
    }
    let mut seen = BTreeMap::new();
    for n in nodes {
        seen.entry(n.name.as_str()).or_insert(n);
    }
    seen.into_values().collect()
}
