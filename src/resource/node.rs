//! `Node`: a machine running `berth agent`. Agents register nodes; users may
//! only cordon or label them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Condition, ObjectMeta};

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Node {
    /// Always `berth/v1`.
    pub api_version: String,
    /// Always `Node`.
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NodeSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<NodeStatus>,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct NodeSpec {
    /// A cordoned node gets no new replicas; running ones stay.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unschedulable: bool,
    /// Set by `berth drain`: every replica moves off the node (new ones
    /// ready elsewhere first); implies `unschedulable`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drain: bool,
}

/// Whether a node's agent is registered (its lease alive).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NodePhase {
    #[default]
    Ready,
    NotReady,
}

/// `status/node/<node>`: the coordinator's record of a node. It outlives the
/// agent's lease, so a node that went away is listed as `NotReady` (with when
/// it was last seen) until `berth delete node`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub phase: NodePhase,
    /// When the phase last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// When the node was last seen registered (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    /// When the coordinator first saw it (RFC 3339): the node's age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// Its last registration's address and agent labels.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Written by the node's agent.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// How other nodes reach this one.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub address: String,
    /// Where this agent serves the API (`http[s]://IP:PORT`, from `--http`):
    /// the address other agents forward per-container actions to.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub api_address: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub agent_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_api_version: String,
    /// Labels the agent was started with (`--labels`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl Node {
    /// Whether its Ready condition is True: its agent is registered and its
    /// Docker engine answers.
    pub fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.is(super::ConditionType::Ready) && c.is_true())
        })
    }
}
