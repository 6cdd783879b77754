//! Placement: which nodes run how many replicas of a component. Pure: no
//! etcd, no Docker. Shared by the coordinator and the CLI (`describe`).

// TEMPORARY stub until the placement module lands.
use std::collections::BTreeMap;
pub struct NodeView {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ready: bool,
    pub cordoned: bool,
    pub draining: bool,
}
pub struct Decision {
    pub per_node: BTreeMap<String, u32>,
    pub unschedulable: Option<String>,
}
pub fn place(
    _spec: &crate::resource::component::Placement,
    _nodes: &[NodeView],
    current: &BTreeMap<String, u32>,
) -> Decision {
    Decision {
        per_node: current.clone(),
        unschedulable: None,
    }
}
