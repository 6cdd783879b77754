//! Cluster services carried out by the agents on top of components (issue
//! 10): scheduled jobs ([`jobs`]), rotating backups ([`backup`]) and leader
//! roles ([`roles`]). Pure parts have no etcd and no Docker; [`run`] starts
//! the loops an agent runs, fed by [`local::LocalReplicas`].

pub mod backup;
pub mod jobs;
pub mod local;
pub mod roles;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::docker::Docker;
use crate::store::Keys;
use local::LocalReplicas;

/// How often the election of each elected component is looked at.
pub const ROLES_POLL: Duration = Duration::from_millis(250);

/// What the services loops need from the agent.
pub struct ServicesConfig {
    pub node: String,
    pub keys: Keys,
    pub client: etcd_client::Client,
    pub docker: Docker,
    /// The agent's lease (leader keys live on it).
    pub lease: watch::Receiver<Option<i64>>,
    pub local: Arc<dyn LocalReplicas>,
}

/// Runs the jobs and roles loops until `token` is cancelled.
pub async fn run(cfg: ServicesConfig, token: CancellationToken) {
    let leaders: roles::Leaders = Arc::new(Mutex::new(HashMap::new()));
    let runner = jobs::runner::Runner {
        node: cfg.node.clone(),
        docker: cfg.docker.clone(),
        records: jobs::claim::Records::new(cfg.client.clone(), cfg.keys.clone()),
        local: cfg.local.clone(),
        leaders: leaders.clone(),
    };
    let jobs_task = tokio::spawn(runner.run(token.clone()));
    let manual = jobs::manual::Manual {
        client: cfg.client.clone(),
        keys: cfg.keys.clone(),
        node: cfg.node.clone(),
        docker: cfg.docker.clone(),
        records: jobs::claim::Records::new(cfg.client.clone(), cfg.keys.clone()),
        local: cfg.local.clone(),
        leaders: leaders.clone(),
    };
    let manual_task = tokio::spawn(manual.run(token.clone()));
    let wake = Arc::new(tokio::sync::Notify::new());
    let watch_task = tokio::spawn(wake_on_role_changes(
        cfg.client.clone(),
        cfg.keys.roles_prefix(),
        wake.clone(),
        token.clone(),
    ));
    let elector = roles::Elector::new(cfg.client, cfg.keys, cfg.node, cfg.docker, leaders);
    elect(elector, cfg.local, cfg.lease, wake, token).await;
    let _ = watch_task.await;
    let _ = jobs_task.await;
    let _ = manual_task.await;
}

/// Wakes the election loop when a leader key changes (a leader's lease
/// expired, a leader resigned): followers campaign at once, not at the next
/// poll. The poll stays as the safety net behind the watch.
async fn wake_on_role_changes(
    client: etcd_client::Client,
    prefix: String,
    wake: Arc<tokio::sync::Notify>,
    token: CancellationToken,
) {
    use futures::StreamExt;
    let events = crate::runtime::watcher(client, prefix, crate::runtime::WatcherConfig::default());
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            ev = events.next() => match ev {
                Some(Ok(crate::runtime::Event::Delete(_))) => wake.notify_one(),
                Some(_) => {}
                None => return,
            },
        }
    }
}

async fn elect(
    mut elector: roles::Elector,
    local: Arc<dyn LocalReplicas>,
    lease: watch::Receiver<Option<i64>>,
    wake: Arc<tokio::sync::Notify>,
    token: CancellationToken,
) {
    let mut interval = tokio::time::interval(ROLES_POLL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // Components this node held a replica of: a component whose last local
    // replica went must still resign its key (its leader is gone).
    let mut known: HashMap<crate::resource::ComponentKey, crate::resource::services::Roles> =
        HashMap::new();
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            _ = interval.tick() => {}
            _ = wake.notified() => {}
        }
        let ready = local.ready();
        let by_component = jobs::runner::group(ready.clone());
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
