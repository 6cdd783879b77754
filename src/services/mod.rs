//! Cluster services carried out by the agents on top of components (issue
//! 10): scheduled jobs ([`jobs`]), rotating backups ([`backup`]), leader
//! roles ([`roles`]), config templates ([`config`]) and links ([`link`]).
//! Pure parts have no etcd and no Docker; [`run`] starts the jobs and roles
//! loops an agent runs, fed by [`local::LocalReplicas`]; [`node`] (and
//! `link::relay`) are the agent-side effects of configs and links.

pub mod actions;
pub mod backup;
pub mod config;
pub mod jobs;
pub mod link;
pub mod local;
pub mod node;
pub mod roles;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::docker::Docker;
use crate::store::Keys;
use local::LocalReplicas;

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
    // One writer of run records per agent (one lease for all of them).
    let records = jobs::claim::Records::new(cfg.client.clone(), cfg.keys.clone());
    // Role changes and failed job runs are cluster events (`berth events`).
    let events = crate::events::Recorder::spawn(
        cfg.client.clone(),
        cfg.keys.clone(),
        cfg.node.clone(),
        token.clone(),
    );
    let runner = jobs::runner::Runner {
        events: events.clone(),
        node: cfg.node.clone(),
        docker: cfg.docker.clone(),
        records: records.clone(),
        local: cfg.local.clone(),
        leaders: leaders.clone(),
    };
    let jobs_task = tokio::spawn(runner.run(token.clone()));
    let manual = jobs::manual::Manual {
        client: cfg.client.clone(),
        keys: cfg.keys.clone(),
        node: cfg.node.clone(),
        docker: cfg.docker.clone(),
        records,
        local: cfg.local.clone(),
        leaders: leaders.clone(),
    };
    let manual_task = tokio::spawn(manual.run(token.clone()));
    let wake = Arc::new(tokio::sync::Notify::new());
    let (cache, follow) =
        roles::LeaderCache::watch(cfg.client.clone(), &cfg.keys, wake.clone(), token.clone());
    let watch_task = tokio::spawn(follow);
    let elector = roles::Elector::new(
        cfg.client, cfg.keys, cfg.node, cfg.docker, leaders, events, cache,
    );
    roles::runner::elect(elector, cfg.local, cfg.lease, wake, token).await;
    let _ = watch_task.await;
    let _ = jobs_task.await;
    let _ = manual_task.await;
}
