//! Per-container actions (issues 10 and 11): finding a container anywhere
//! in the cluster from observed state ([`find`]), and an administrator's
//! eviction request ([`evict`]), which the owning agent carries out through
//! the coordinator's rollout budget (see `agent::evictions`).

pub mod evict;
pub mod find;

pub use evict::{request_eviction, Eviction, Requested};
pub use find::{find_container, pick};

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// No container of the project answers to the name.
    #[error("container {wanted:?} not found in project {project:?} (berth get containers -p {project} lists them)")]
    NotFound { project: String, wanted: String },
    /// An id prefix that fits several containers.
    #[error("container {wanted:?} is ambiguous in project {project:?}: {candidates}")]
    Ambiguous {
        project: String,
        wanted: String,
        candidates: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}
