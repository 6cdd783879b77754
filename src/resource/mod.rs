//! The resource model: `Project`, `Component` and `Node` (`apiVersion: berth/v1`),
//! their value types, and the internal documents agents exchange.
//!
//! Invariant: nothing here performs I/O; these are plain data types.

pub mod component;
pub mod condition;
pub mod configs;
pub mod endpoint;
pub mod key;
pub mod meta;
pub mod node;
pub mod observed;
pub mod project;
pub mod quantity;
pub mod selector;
pub mod services;
pub mod services_check;
pub mod validate;
mod validate_configs;

pub use component::{
    Component, ComponentSpec, ComponentStatus, Revision, RolloutCause, RolloutPhase, RolloutStatus,
    Template,
};
pub use condition::{Condition, ConditionType, Reason};
pub use key::ComponentKey;
pub use meta::{ObjectMeta, API_VERSION, DEFAULT_PROJECT};
pub use node::{Node, NodePhase, NodeRecord, NodeSpec, NodeStatus};
pub use observed::{Assignment, Observed, RevisionReplicas};
pub use project::{Project, ProjectSpec};

use std::fmt;
use std::str::FromStr;

/// The kinds a user can name on the command line or in a manifest
/// (serialized as its `kind:` value, [`Kind::name`]).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, schemars::JsonSchema,
)]
pub enum Kind {
    Project,
    Component,
    Node,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Project, Kind::Component, Kind::Node];

    /// The `kind:` value in manifests.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Project => "Project",
            Kind::Component => "Component",
            Kind::Node => "Node",
        }
    }
    /// Lowercase singular, used in etcd keys and output (`component/web`).
    pub fn lower(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::Component => "component",
            Kind::Node => "node",
        }
    }
    /// Whether objects of this kind live in a project.
    pub fn namespaced(self) -> bool {
        self == Kind::Component
    }
    /// Names accepted on the command line.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Kind::Project => &["project", "projects", "proj"],
            Kind::Component => &["component", "components", "comp", "comps"],
            Kind::Node => &["node", "nodes", "no"],
        }
    }
    /// From a manifest's `kind:` value (exact, like Kubernetes).
    pub fn from_manifest(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == kind)
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let l = s.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|k| k.aliases().contains(&l.as_str()) || k.name().eq_ignore_ascii_case(&l))
            .ok_or_else(|| {
                format!("unknown resource type {s:?}: expected component (comp), project (proj) or node")
            })
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.lower())
    }
}

/// Any object of any kind, as read from a manifest or from etcd.
// Components are the common case; boxing them would only add indirection.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Project(Project),
    Component(Component),
    Node(Node),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Project(_) => Kind::Project,
            Object::Component(_) => Kind::Component,
            Object::Node(_) => Kind::Node,
        }
    }
    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Project(o) => &o.metadata,
            Object::Component(o) => &o.metadata,
            Object::Node(o) => &o.metadata,
        }
    }
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Project(o) => &mut o.metadata,
            Object::Component(o) => &mut o.metadata,
            Object::Node(o) => &mut o.metadata,
        }
    }
    pub fn name(&self) -> &str {
        &self.metadata().name
    }
    /// The project of a namespaced object (defaulted), `None` for cluster-scoped kinds.
    pub fn project(&self) -> Option<&str> {
        if self.kind().namespaced() {
            Some(
                self.metadata()
                    .project
                    .as_deref()
                    .unwrap_or(DEFAULT_PROJECT),
            )
        } else {
            None
        }
    }
    /// `component/web`, as in kubectl's output.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind().lower(), self.name())
    }
    /// The spec as JSON: what `generation` tracks.
    pub fn spec_json(&self) -> serde_json::Value {
        match self {
            Object::Project(o) => serde_json::to_value(&o.spec),
            Object::Component(o) => serde_json::to_value(&o.spec),
            Object::Node(o) => serde_json::to_value(&o.spec),
        }
        .unwrap_or(serde_json::Value::Null)
    }
    /// The whole object as JSON (status included when present).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Object::Project(o) => serde_json::to_value(o),
            Object::Component(o) => serde_json::to_value(o),
            Object::Node(o) => serde_json::to_value(o),
        }
        .unwrap_or(serde_json::Value::Null)
    }
    /// Parses the JSON of a stored object of a known kind.
    pub fn from_json(kind: Kind, bytes: &[u8]) -> Result<Object, serde_json::Error> {
        Ok(match kind {
            Kind::Project => Object::Project(serde_json::from_slice(bytes)?),
            Kind::Component => Object::Component(serde_json::from_slice(bytes)?),
            Kind::Node => Object::Node(serde_json::from_slice(bytes)?),
        })
    }
    /// Removes status and the fields berth sets, leaving what a user wrote.
    pub fn user_part(&self) -> Object {
        let mut o = self.clone();
        let meta = o.metadata().user_part();
        *o.metadata_mut() = meta;
        match &mut o {
            Object::Component(c) => c.status = None,
            Object::Node(n) => n.status = None,
            Object::Project(_) => {}
        }
        o
    }
}
