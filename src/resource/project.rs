//! `Project`: the namespace of components.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ObjectMeta;

/// A project groups components, like a Kubernetes namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Project {
    /// Always `berth/v1`.
    pub api_version: String,
    /// Always `Project`.
    pub kind: String,
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ProjectSpec,
}

#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ProjectSpec {
    /// Free text shown by `describe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
