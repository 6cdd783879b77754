//! `configs`: files berth renders inside a component's containers from the
//! endpoint lists of other components, and how the container is told that
//! one changed (issue 10, cluster-control's handlers done declaratively).
//! Kept apart from `component.rs` so other spec fields grow beside it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::quantity::{Duration, Signal};

/// One rendered file.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct ConfigFile {
    /// Absolute path of the file inside the container.
    pub path: String,
    /// A minijinja template. Its context: `sources`, a map from each source
    /// component's name to `{endpoints: [{node, container, address, port,
    /// ports, ready}]}`, plus `component` and `project` (see README).
    pub template: String,
    /// Components of the same project (or `project/component`) whose endpoints
    /// the template reads; a change of their membership re-renders the file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// What tells the container the file changed; runs only when the
    /// rendered content changed (never for the first file, written before start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<Reload>,
    /// How long membership must be quiet before the file is rendered
    /// (default 300ms). A burst renders at the latest after 3x this (at
    /// least 2s), also while a source has fewer ready endpoints than its
    /// replicas (a scale-up under way is held, so it is one reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<Duration>,
}

impl ConfigFile {
    pub fn debounce(&self) -> crate::services::config::DebounceConfig {
        match self.debounce {
            None => crate::services::config::DebounceConfig::default(),
            Some(d) => crate::services::config::DebounceConfig::quiet(d.std()),
        }
    }
}

/// Exactly one of `signal` and `exec`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Reload {
    /// Sent to the container's main process, e.g. `SIGHUP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Signal>,
    /// Run inside the container (docker exec); a non-zero exit is reported.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
}

/// What a [`Reload`] says to do, once validated.
#[derive(Clone, Debug, PartialEq)]
pub enum ReloadAction {
    Signal(Signal),
    Exec(Vec<String>),
}

impl Reload {
    /// `None` when neither or both are given (validation refuses those).
    pub fn action(&self) -> Option<ReloadAction> {
        match (&self.signal, self.exec.is_empty()) {
            (Some(s), true) => Some(ReloadAction::Signal(*s)),
            (None, false) => Some(ReloadAction::Exec(self.exec.clone())),
            _ => None,
        }
    }
}
