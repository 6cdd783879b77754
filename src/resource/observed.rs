//! What the agents are told (`assignments/`) and what they see (`observed/`).
//! These are internal documents, not user-facing kinds.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::component::{State, Template};
use super::Condition;

/// `assignments/<node>/<project>/<component>`: what one node must run.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// Generation of the component spec this assignment was made from.
    pub generation: i64,
    /// Revision sequence number and hash of `template`.
    pub revision: u64,
    pub hash: String,
    pub template: Template,
    /// Containers of `template` this node runs.
    pub replicas: u32,
    #[serde(default)]
    pub state: State,
}

/// Life-cycle state of one container, as `describe` shows it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum ContainerPhase {
    Starting,
    Ready,
    Unhealthy,
    Draining,
    Stopping,
    Stopped,
    Exited,
    CrashLoop,
}

impl std::fmt::Display for ContainerPhase {
    /// Lowercase like the serialized form, except `CrashLoop`, which is
    /// written the way users search for it (as `get` and kubectl show it).
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        if *self == ContainerPhase::CrashLoop {
            return f.write_str("CrashLoop");
        }
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("unknown"))
    }
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub revision: u64,
    pub hash: String,
    pub phase: ContainerPhase,
    #[serde(default)]
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i64>,
    /// `OOMKilled`, `Error`, `Completed`, `Unhealthy`, `ReadyTimeout`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Since when it has been ready (for `minReady`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_since: Option<String>,
    /// Container port -> published port on 127.0.0.1.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ports: BTreeMap<u16, u16>,
}

/// A notable thing that happened, kept in the last few per component.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub time: String,
    pub reason: String,
    pub message: String,
}

/// `observed/<node>/<project>/<component>`: what that node runs.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Observed {
    pub node: String,
    /// Generation of the assignment the agent last acted on.
    pub generation: i64,
    /// Revision the node was asked to run.
    pub revision: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub containers: Vec<ObservedContainer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}
