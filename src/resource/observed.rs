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

#[cfg(test)]
mod tests {
    use super::*;

    /// An agent one version older reads what a newer coordinator or agent
    /// wrote: fields it does not know, at the top and nested deep in the
    /// template, are ignored rather than making the document unreadable
    /// (an unreadable assignment would leave the node unable to act).
    #[test]
    fn older_agent_reads_newer_documents() {
        let newer = serde_json::json!({
            "generation": 3, "revision": 2, "hash": "abc", "replicas": 2,
            "revisions": {"2": 1, "3": 1},
            "template": {
                "image": "web:2",
                "ports": [{"container": 80, "external": 8080, "protocol": "http"}],
                "termination": {"gracePeriod": "5s", "preStop": ["x"]},
                "readyChecks": [{"http": {"port": 80, "path": "/", "scheme": "h2c"}, "interval": "1s"}],
                "sidecars": []
            }
        });
        let a: Assignment = serde_json::from_value(newer).expect("newer assignment decodes");
        assert_eq!((a.revision, a.replicas), (2, 2));
        assert_eq!(a.template.ports[0].external, Some(8080));
        let newer = serde_json::json!({
            "node": "n1", "generation": 1, "revision": 2, "leader": true,
            "containers": [{"id": "c", "name": "n", "revision": 2, "hash": "abc",
                            "phase": "ready", "connections": 4}],
        });
        let o: Observed = serde_json::from_value(newer).expect("newer observed decodes");
        assert_eq!(o.containers[0].phase, ContainerPhase::Ready);
    }

    /// A newer agent reads what an older one wrote: fields the older one
    /// did not write take their defaults.
    #[test]
    fn newer_agent_reads_older_documents() {
        let older = serde_json::json!({
            "generation": 1, "revision": 1, "hash": "abc", "replicas": 1,
            "template": {"image": "web:1"}
        });
        let a: Assignment = serde_json::from_value(older).expect("older assignment decodes");
        assert_eq!(a.state, State::Running);
        assert!(a.template.ports.is_empty());
        let older = serde_json::json!({"node": "n1", "generation": 1, "revision": 1});
        let o: Observed = serde_json::from_value(older).expect("older observed decodes");
        assert!(o.containers.is_empty() && o.conditions.is_empty());
    }
}
