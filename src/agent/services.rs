//! Wiring only: the agent's memory as the services' view of this node
//! ([`crate::services::local::LocalReplicas`]); the services themselves live
//! in `src/services/`.

use std::sync::Arc;

use super::plan::CheckPhase;
use super::reconcile::Ctx;
use crate::services::local::{LocalReplicas, Replica};

pub struct AgentReplicas(pub Arc<Ctx>);

impl LocalReplicas for AgentReplicas {
    fn ready(&self) -> Vec<Replica> {
        let ctx = &self.0;
        let mut out: Vec<(std::time::SystemTime, Replica)> = ctx
            .containers
            .ids()
            .into_iter()
            .filter_map(|id| ctx.containers.get(&id))
            .filter(|r| r.is_running() && r.stopping.is_none())
            .filter(|r| matches!(ctx.tracker.phase(&r.id), Some(CheckPhase::Ready { .. })))
            .filter(|r| ctx.traffic.drain_of(&r.id).is_none())
            .filter_map(|r| {
                let template = ctx.template_of(&r.owner.hash)?;
                Some((
                    r.created,
                    Replica {
                        key: r.key(),
                        container: r.id.clone(),
                        revision: r.owner.revision,
                        template,
                    },
                ))
            })
            .collect();
        out.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| a.1.container.cmp(&b.1.container))
        });
        out.into_iter().map(|(_, r)| r).collect()
    }

    fn running(&self, container: &str) -> bool {
        self.0
            .containers
            .get(container)
            .is_some_and(|r| r.is_running())
    }
}
