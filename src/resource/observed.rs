//! What the agents are told (`assignments/`) and what they see (`observed/`).
//! These are internal documents, not user-facing kinds.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::component::{State, Template};
use super::Condition;

/// `assignments/<node>/<project>/<component>`: what one node must run, as a
/// replica count per revision ("2 of revision 3 and 1 of revision 4"), so a
/// rollout can move a node one container at a time.
///
/// Invariant: `revisions` is sorted by revision, oldest first, with one entry
/// per revision (see [`Assignment::new`]); the agent keeps each count and
/// removes surplus containers oldest revision first.
///
/// Reads the one-revision form older coordinators wrote (`revision`, `hash`,
/// `template`, `replicas` at the top) as an assignment of one revision.
#[derive(Serialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Assignment {
    /// Generation of the component spec this assignment was made from.
    pub generation: i64,
    #[serde(default)]
    pub state: State,
    /// Containers to run per revision, oldest revision first.
    pub revisions: Vec<RevisionReplicas>,
}

/// One revision's share of an [`Assignment`].
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RevisionReplicas {
    /// Revision sequence number and hash of `template`.
    pub revision: u64,
    pub hash: String,
    pub template: Template,
    /// Containers of `template` this node runs.
    pub replicas: u32,
    /// Health replacements within the cluster's surge budget: containers
    /// started beside as many unhealthy ones of this revision, which leave
    /// once the coordinator lowers this again (their replacements ready).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub replacing: u32,
    /// Unhealthy containers taken away before their replacement starts
    /// (`maxSurge` 0): the node runs this many fewer until the coordinator
    /// lowers it again, once they are gone and the budget allows.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub removing: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl RevisionReplicas {
    /// Containers of this revision the node keeps now: `replicas`, plus
    /// the replacements granted, minus the unhealthy ones taken away.
    pub fn wanted(&self) -> u32 {
        self.replicas
            .saturating_add(self.replacing)
            .saturating_sub(self.removing)
    }
}

impl Assignment {
    /// An assignment of these revisions, sorted oldest first; entries of
    /// one revision are merged (their counts add up).
    pub fn new(generation: i64, state: State, revisions: Vec<RevisionReplicas>) -> Self {
        let mut merged: Vec<RevisionReplicas> = Vec::with_capacity(revisions.len());
        let mut revisions = revisions;
        revisions.sort_by_key(|r| r.revision);
        for r in revisions {
            match merged.last_mut() {
                Some(last) if last.revision == r.revision => {
                    last.replicas = last.replicas.saturating_add(r.replicas);
                    last.replacing = last.replacing.saturating_add(r.replacing);
                    last.removing = last.removing.saturating_add(r.removing);
                }
                _ => merged.push(r),
            }
        }
        Assignment {
            generation,
            state,
            revisions: merged,
        }
    }

    /// An assignment of one revision.
    pub fn single(generation: i64, state: State, revision: RevisionReplicas) -> Self {
        Assignment::new(generation, state, vec![revision])
    }

    /// Replicas over all revisions (health replacements aside: see
    /// [`RevisionReplicas::wanted`]).
    pub fn replicas(&self) -> u32 {
        self.revisions
            .iter()
            .fold(0u32, |n, r| n.saturating_add(r.replicas))
    }

    /// Ready replicas surplus serving containers must leave behind before
    /// they go: `replicas` less what the coordinator took away (`removing`
    /// is its grant of that unavailability, within `maxUnavailable`).
    pub fn covered(&self) -> u32 {
        self.revisions.iter().fold(0u32, |n, r| {
            n.saturating_add(r.replicas.saturating_sub(r.removing))
        })
    }

    /// The newest revision named, whatever its count.
    pub fn newest(&self) -> Option<&RevisionReplicas> {
        self.revisions.last()
    }

    /// The entry of the revision whose template hashes to `hash`.
    pub fn of_hash(&self, hash: &str) -> Option<&RevisionReplicas> {
        self.revisions.iter().find(|r| r.hash == hash)
    }

    /// Replicas asked of the revision whose template hashes to `hash`.
    pub fn replicas_of(&self, hash: &str) -> u32 {
        self.of_hash(hash).map_or(0, |r| r.replicas)
    }
}

/// The stored form: the current one (`revisions`) or the one-revision form
/// older coordinators wrote.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssignmentWire {
    generation: i64,
    #[serde(default)]
    state: State,
    revisions: Option<Vec<RevisionReplicas>>,
    revision: Option<u64>,
    hash: Option<String>,
    template: Option<Template>,
    replicas: Option<u32>,
}

impl TryFrom<AssignmentWire> for Assignment {
    type Error = &'static str;

    fn try_from(w: AssignmentWire) -> Result<Self, Self::Error> {
        let revisions =
            match (w.revisions, w.revision, w.hash, w.template, w.replicas) {
                (Some(list), ..) => list,
                (None, Some(revision), Some(hash), Some(template), Some(replicas)) => {
                    vec![RevisionReplicas {
                        revision,
                        hash,
                        template,
                        replicas,
                        replacing: 0,
                        removing: 0,
                    }]
                }
                _ => return Err(
                    "an assignment needs `revisions` (or revision, hash, template and replicas)",
                ),
            };
        Ok(Assignment::new(w.generation, w.state, revisions))
    }
}

impl<'de> Deserialize<'de> for Assignment {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = AssignmentWire::deserialize(d)?;
        Assignment::try_from(wire).map_err(serde::de::Error::custom)
    }
}

/// Life-cycle state of one container, as `describe` shows it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub enum ContainerPhase {
    #[default]
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

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
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
    /// Set while it drains before its stop (phase `draining`): it has left
    /// the endpoints and the balancer, and still counts against a rollout's
    /// surge budget because it holds resources and connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain: Option<Drain>,
    /// An administrator evicted it (`berth evict`): it keeps serving, in
    /// its phase, until the coordinator's replacement is available (or,
    /// with `maxSurge` 0, until `maxUnavailable` lets it go first); then it
    /// is drained and removed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub evicting: bool,
}

impl ObservedContainer {
    /// The phase as tables show it: `ready`, or `ready,evicting` for an
    /// evicted container still serving (like kubectl's
    /// `Ready,SchedulingDisabled`).
    pub fn phase_label(&self) -> String {
        if self.evicting {
            format!("{},evicting", self.phase)
        } else {
            self.phase.to_string()
        }
    }
}

/// A draining container's progress, as `describe` shows it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct Drain {
    /// RFC 3339: when the drain started.
    pub since: String,
    /// RFC 3339: when `drainTimeout` runs out and the stop signals start.
    pub until: String,
    /// Open connections (TCP) or requests in flight (HTTP) at the last report.
    #[serde(default)]
    pub open: u32,
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
    /// Container id -> the image ID (`sha256:...`) Docker created it from,
    /// for the containers in `containers` whose image ID is known.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub image_ids: BTreeMap<String, String>,
}

impl Observed {
    /// The image ID a container of this document was created from.
    pub fn image_id_of(&self, container: &str) -> Option<&str> {
        self.image_ids.get(container).map(String::as_str)
    }
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
            "generation": 3, "pinned": {"imageId": "sha256:1"},
            "revisions": [{
                "revision": 2, "hash": "abc", "replicas": 2, "canary": true,
                "template": {
                    "image": "web:2",
                    "ports": [{"container": 80, "external": 8080, "protocol": "http"}],
                    "termination": {"gracePeriod": "5s", "preStop": ["x"]},
                    "readyChecks": [{"http": {"port": 80, "path": "/", "scheme": "h2c"}, "interval": "1s"}],
                    "sidecars": []
                }
            }]
        });
        let a: Assignment = serde_json::from_value(newer).expect("newer assignment decodes");
        assert_eq!((a.revisions[0].revision, a.replicas()), (2, 2));
        assert_eq!(a.revisions[0].template.ports[0].external, Some(8080));
        let newer = serde_json::json!({
            "node": "n1", "generation": 1, "revision": 2, "leader": true,
            "containers": [{"id": "c", "name": "n", "revision": 2, "hash": "abc",
                            "phase": "ready", "connections": 4}],
        });
        let o: Observed = serde_json::from_value(newer).expect("newer observed decodes");
        assert_eq!(o.containers[0].phase, ContainerPhase::Ready);
    }

    /// Several revisions in one assignment, in any order, are kept oldest
    /// first; a document with neither form is an error (never "nothing").
    #[test]
    fn assignments_hold_a_count_per_revision() {
        let two = serde_json::json!({
            "generation": 4,
            "revisions": [
                {"revision": 4, "hash": "h4", "replicas": 1, "template": {"image": "web:4"}},
                {"revision": 3, "hash": "h3", "replicas": 2, "template": {"image": "web:3"}}
            ]
        });
        let a: Assignment = serde_json::from_value(two).expect("decodes");
        let counts: Vec<_> = a
            .revisions
            .iter()
            .map(|r| (r.revision, r.replicas))
            .collect();
        assert_eq!(counts, [(3, 2), (4, 1)]);
        assert_eq!(
            (a.replicas(), a.replicas_of("h4"), a.replicas_of("h9")),
            (3, 1, 0)
        );
        assert_eq!(a.newest().map(|r| r.revision), Some(4));
        let back: Assignment =
            serde_json::from_value(serde_json::to_value(&a).expect("encodes")).expect("decodes");
        assert_eq!(back, a);
        let neither = serde_json::json!({"generation": 1, "revision": 1});
        let e = serde_json::from_value::<Assignment>(neither).expect_err("refused");
        assert!(e.to_string().contains("revisions"), "{e}");
    }

    #[test]
    fn health_counts_are_written_only_when_set_and_default_to_zero() {
        let r = |replacing, removing| RevisionReplicas {
            revision: 1,
            hash: "abc".into(),
            template: Template {
                image: "web:1".into(),
                ..Default::default()
            },
            replicas: 2,
            replacing,
            removing,
        };
        let plain = serde_json::to_value(r(0, 0)).expect("encodes");
        assert!(plain.get("replacing").is_none() && plain.get("removing").is_none());
        // A document without them (an older coordinator's) reads as 0.
        let back: RevisionReplicas = serde_json::from_value(plain).expect("decodes");
        assert_eq!(back, r(0, 0));
        let set = serde_json::to_value(r(1, 0)).expect("encodes");
        assert_eq!(set["replacing"], 1);
        assert_eq!(r(1, 0).wanted(), 3);
        assert_eq!(r(0, 1).wanted(), 1);
        assert_eq!(r(0, 5).wanted(), 0);
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
        let counts: Vec<_> = a
            .revisions
            .iter()
            .map(|r| (r.revision, r.replicas))
            .collect();
        assert_eq!(counts, [(1, 1)]);
        assert!(a.revisions[0].template.ports.is_empty());
        let older = serde_json::json!({"node": "n1", "generation": 1, "revision": 1});
        let o: Observed = serde_json::from_value(older).expect("older observed decodes");
        assert!(o.containers.is_empty() && o.conditions.is_empty());
    }
}

/// One container and where it runs: a row of `berth get containers` and of
/// `/api/v1/containers`.
#[derive(Serialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRow {
    pub node: String,
    pub project: String,
    pub component: String,
    #[serde(flatten)]
    pub container: ObservedContainer,
}

impl ContainerRow {
    /// The row's id in a watch: `node/project/component/container`.
    pub fn id(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.node, self.project, self.component, self.container.id
        )
    }
}
