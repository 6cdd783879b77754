//! Object metadata shared by every kind, as in Kubernetes' `ObjectMeta`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The only API version berth speaks.
pub const API_VERSION: &str = "berth/v1";

/// The `kind: List` document `get -o json`, `events -o json` and the API's
/// list routes answer with.
pub fn list_json(items: Vec<serde_json::Value>) -> serde_json::Value {
    serde_json::json!({"apiVersion": API_VERSION, "kind": "List", "items": items})
}

/// The project a component belongs to when its manifest names none.
pub const DEFAULT_PROJECT: &str = "default";

/// Annotation that records which applyset last applied an object (`apply --prune`).
pub const APPLYSET_ANNOTATION: &str = "berth/applyset";

/// Annotation whose value becomes a revision's change cause in `rollout history`.
pub const CHANGE_CAUSE_ANNOTATION: &str = "berth/change-cause";

/// Annotation `berth rollout promote` sets on a component: the revision
/// whose waiting canary may go on (metadata, so it makes no new revision).
pub const PROMOTE_ANNOTATION: &str = "berth/promote";

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ObjectMeta {
    /// Name, unique per kind within a project: lowercase letters, digits and
    /// '-', at most 63 characters, starting and ending with a letter or digit.
    pub name: String,
    /// Project (namespace) of a Component; `default` when omitted.
    /// Projects and Nodes have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Set by berth: unique id of this object's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Set by berth: etcd mod_revision of the spec key. Writes compare on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Set by berth: bumped only when `spec` changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Set by berth: RFC 3339 time of creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
}

impl ObjectMeta {
    /// Drops the fields berth sets itself, leaving what a user wrote.
    pub fn user_part(&self) -> ObjectMeta {
        ObjectMeta {
            name: self.name.clone(),
            project: self.project.clone(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            ..Default::default()
        }
    }
}
