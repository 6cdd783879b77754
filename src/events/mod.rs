//! Cluster events (issue 11): what happened to containers, rollouts and
//! nodes, kept in etcd under `events/<project>/<id>` on a lease, so they go
//! away on their own after [`EVENT_TTL`] to [`2 × EVENT_TTL`].
//!
//! Writers (agents, the coordinator) hand events to a [`Recorder`], whose
//! task writes them in the background: recording never waits on etcd and
//! never fails the caller. An event that cannot be written (etcd down, the
//! queue full) is dropped with a log line; events are a record for people,
//! nothing decides on them. Readers: `berth events` and `/api/v1/events`.

mod recorder;

use serde::{Deserialize, Serialize};

use crate::store::{Store, StoreError};

pub use recorder::Recorder;

/// How long an event lives at least (its lease is granted for twice this
/// and renewed by a new grant every TTL, so it lives TTL to 2 × TTL).
pub const EVENT_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Events of no project (a node lost) are kept under this name.
pub const CLUSTER: &str = "_cluster";

/// One event.
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterEvent {
    /// RFC 3339, UTC, with nanoseconds.
    pub time: String,
    /// The project, or [`CLUSTER`].
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// CamelCase, as conditions' reasons: `Started`, `Unhealthy`, `NodeLost`...
    pub reason: String,
    pub message: String,
}

impl ClusterEvent {
    /// An event of `project/component` on `node`, now.
    pub fn component(
        project: &str,
        component: &str,
        node: &str,
        reason: &str,
        message: &str,
    ) -> Self {
        ClusterEvent {
            time: crate::util::now_rfc3339_nanos(),
            project: project.to_string(),
            component: Some(component.to_string()),
            node: Some(node.to_string()),
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }

    /// An event of the cluster (no project), about `node`, now.
    pub fn cluster(node: &str, reason: &str, message: &str) -> Self {
        ClusterEvent {
            time: crate::util::now_rfc3339_nanos(),
            project: CLUSTER.to_string(),
            component: None,
            node: Some(node.to_string()),
            reason: reason.to_string(),
            message: message.to_string(),
        }
    }
}

/// The events of `project` (or of every project and the cluster), oldest
/// first. A stored event that does not decode is skipped.
pub async fn list(store: &Store, project: Option<&str>) -> Result<Vec<ClusterEvent>, StoreError> {
    let (kvs, _) = store
        .range_all(&store.keys().events_prefix(project))
        .await?;
    let mut out: Vec<ClusterEvent> = kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
        .collect();
    out.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(out)
}
