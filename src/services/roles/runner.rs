//! The election loop of an agent: every [`ROLES_POLL`], and at once when a
//! leader key is deleted (see [`super::cache`]), one [`Elector::step`] per
//! component that has (or had) a ready replica here with `roles.elect`. A
//! pass reads the leader keys from the cache: etcd is written to (campaign,
//! resign), and read only to confirm a cached key naming this node that is
//! not known to be on the current lease (after a partition the cache may
//! lag behind the expiry of the old lease's keys).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

use super::Elector;
use crate::resource::services::Roles;
use crate::resource::ComponentKey;
use crate::services::jobs::runner::group;
use crate::services::local::LocalReplicas;

/// How often the election of each elected component is looked at (local
/// replicas change without any etcd event: a replica becoming ready).
pub const ROLES_POLL: Duration = Duration::from_millis(250);

pub async fn elect(
    mut elector: Elector,
    local: Arc<dyn LocalReplicas>,
    lease: watch::Receiver<Option<i64>>,
    wake: Arc<Notify>,
    token: CancellationToken,
) {
    let mut interval = tokio::time::interval(ROLES_POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Components this node held a replica of: a component whose last local
    // replica went must still resign its key (its leader is gone).
    let mut known: HashMap<ComponentKey, Roles> = HashMap::new();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = interval.tick() => {}
            _ = wake.notified() => {}
        }
        let ready = local.ready();
        let by_component = group(ready.clone());
        for (ck, replicas) in &by_component {
            if let Some(r) = replicas
                .iter()
                .max_by_key(|r| r.revision)
                .and_then(|r| r.template.roles.clone())
                .filter(|r| r.elect)
            {
                known.insert(ck.clone(), r);
            }
        }
        let lease_id = *lease.borrow();
        let running = |c: &str| local.running(c);
        let mut done = Vec::new();
        for (ck, roles) in &known {
            let replicas = by_component.get(ck).map_or(&[][..], |v| v.as_slice());
            match elector.step(ck, roles, replicas, &running, lease_id).await {
                Ok(()) if replicas.is_empty() => done.push(ck.clone()),
                Ok(()) => {}
                Err(e) => {
                    tracing::debug!(component = %ck, error = %e, "election pass failed");
                    if lease_id.is_none() {
                        elector.demote(ck, roles, replicas).await;
                    }
                }
            }
        }
        for ck in done {
            known.remove(&ck);
        }
        elector.retain(&ready);
    }
}
