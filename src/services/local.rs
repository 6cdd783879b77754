//! What the services need to know of the node they run on: its ready
//! replicas. The agent implements [`LocalReplicas`] from its memory (no etcd,
//! no Docker call), so the services never reach into the agent's internals.

use std::sync::Arc;

use crate::resource::component::Template;
use crate::resource::ComponentKey;

/// One ready, running, not draining container of this node.
#[derive(Clone, Debug)]
pub struct Replica {
    pub key: ComponentKey,
    /// Docker's container id.
    pub container: String,
    /// Its revision number and template (jobs and roles come from it).
    pub revision: u64,
    pub template: Arc<Template>,
}

pub trait LocalReplicas: Send + Sync {
    /// Every ready replica of this node, oldest container first.
    fn ready(&self) -> Vec<Replica>;
    /// Whether `container` still runs here (ready or not).
    fn running(&self, container: &str) -> bool;
}
