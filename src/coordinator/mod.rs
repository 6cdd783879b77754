//! The cluster coordinator: one elected agent places replicas, tracks node
//! lifecycle and writes component status, every write fenced by its
//! election.
//!
//! - [`election`]: campaign on the agent's own lease; the election key's
//!   create revision is the term's fence.
//! - [`fence`]: writes that fail once the term is over.
//! - [`cluster`]: the caches a term reads (specs, registrations, node specs
//!   and records, assignments, observed documents).
//! - [`assign`]: placement's decision to assignment writes (pure).
//! - [`status`]: a component's status from the nodes' observed documents (pure).
//! - [`nodes`]: node records, `Ready` / `NotReady` (pure).
//! - [`component`]: one component's reconcile (place, write, roll up).
//!
//! Every agent runs [`run`]: followers wait for the election key to go and
//! campaign again, so a one-node cluster is a cluster whose only agent
//! coordinates.

pub mod assign;
pub mod cluster;
pub mod component;
pub mod election;
pub mod events;
pub mod fence;
pub mod nodes;
pub mod rollout;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, TxnOp};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::resource::Kind;
use crate::runtime::{Controller, ControllerConfig};
use crate::store::Keys;
use cluster::{Changes, Cluster};
use election::Term;
use fence::{FenceError, Fenced};

/// How a coordinator runs.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    pub node: String,
    pub keys: Keys,
    /// Components reconciled at once.
    pub concurrency: usize,
    /// Period of the full pass over every component.
    pub resync: Duration,
}

/// Campaigns, coordinates while elected, campaigns again; until `shutdown`.
/// `lease` is the agent's current lease (`None` while it has none).
pub async fn run(
    client: Client,
    cfg: CoordinatorConfig,
    mut lease: watch::Receiver<Option<i64>>,
    shutdown: CancellationToken,
) {
    loop {
        let Some(l) = current_lease(&mut lease, &shutdown).await else {
            return;
        };
        match election::campaign(&client, &cfg.keys, &cfg.node, l).await {
            Ok(Ok(term)) => lead(&client, &cfg, term, lease.clone(), &shutdown).await,
            Ok(Err(held_at)) => {
                election::wait_for_vacancy(&client, &cfg.keys, held_at, &shutdown).await
            }
            Err(e) => {
                tracing::debug!(error = %e, "campaign failed; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        if shutdown.is_cancelled() {
            return;
        }
    }
}

async fn current_lease(
    lease: &mut watch::Receiver<Option<i64>>,
    shutdown: &CancellationToken,
) -> Option<i64> {
    loop {
        if let Some(l) = *lease.borrow_and_update() {
            return Some(l);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = lease.changed() => r.ok()?,
        }
    }
}

/// One term: coordinates until the term ends (key lost, lease changed, a
/// write deposed) or `shutdown`.
async fn lead(
    client: &Client,
    cfg: &CoordinatorConfig,
    term: Term,
    lease: watch::Receiver<Option<i64>>,
    shutdown: &CancellationToken,
) {
    tracing::info!(node = %cfg.node, fence = term.fence, "coordinating");
    let stop = shutdown.child_token();
    let ended = {
        let (client, keys, term, stop) =
            (client.clone(), cfg.keys.clone(), term.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = election::term_ended(&client, &keys, &term, lease) => stop.cancel(),
                _ = stop.cancelled() => {}
            }
        })
    };
    let (cluster, changes) = Cluster::watch(client, &cfg.keys);
    let fenced = Fenced::new(client.clone(), &cfg.keys, &term);
    let ctx = Arc::new(component::Ctx {
        cluster,
        fenced,
        client: client.clone(),
        node: cfg.node.clone(),
        deposed: stop.clone(),
        revisions: Mutex::new(HashMap::new()),
        statuses: Mutex::new(HashMap::new()),
        written: Mutex::new(HashMap::new()),
        known: Mutex::new(HashMap::new()),
        events: crate::events::Recorder::spawn(
            client.clone(),
            cfg.keys.clone(),
            cfg.node.clone(),
            stop.clone(),
        ),
    });
    coordinate(cfg, ctx.clone(), changes, stop.clone()).await;
    stop.cancel();
    let _ = ended.await;
    if shutdown.is_cancelled() {
        resign(client, &cfg.keys, &term).await;
    }
    tracing::info!(node = %cfg.node, fence = term.fence, "no longer coordinating");
}

/// The component controller and the node loop, until `stop`.
async fn coordinate(
    cfg: &CoordinatorConfig,
    ctx: Arc<component::Ctx>,
    changes: Changes,
    stop: CancellationToken,
) {
    let (all_tx, all_rx) = mpsc::unbounded_channel::<String>();
    let nodes = node_loop(ctx.clone(), changes.nodes, all_tx, stop.clone());
    let c = &ctx.cluster;
    let controller = Controller::new(c.specs.clone(), changes.components)
        .with_trigger(tokio_stream::wrappers::UnboundedReceiverStream::new(all_rx))
        .wait_for(c.registrations.clone())
        .wait_for(c.node_specs.clone())
        .wait_for(c.records.clone())
        .wait_for(c.assignments.clone())
        .wait_for(c.observed.clone())
        .wait_for(c.statuses.clone())
        .with_resync(cfg.resync)
        .with_config(ControllerConfig {
            concurrency: cfg.concurrency,
            ..Default::default()
        })
        .graceful_shutdown_on(stop.clone().cancelled_owned())
        .run(component::reconcile, component::error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::warn!(error = %e, "coordinating a component failed; retrying");
            }
        });
    tokio::join!(controller, nodes);
}

/// Keeps the node records; any node change re-places every component.
async fn node_loop(
    ctx: Arc<component::Ctx>,
    changes: futures::stream::BoxStream<'static, String>,
    all: mpsc::UnboundedSender<String>,
    stop: CancellationToken,
) {
    // The node caches fill only while their streams are polled: forward
    // them from the start, and act once every cache is ready.
    let (tx, rx) = mpsc::unbounded_channel();
    let forward = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut changes = std::pin::pin!(changes.take_until(stop.cancelled_owned()));
            while let Some(name) = changes.next().await {
                if tx.send(name).is_err() {
                    return;
                }
            }
        }
    });
    let mut changes = tokio_stream::wrappers::UnboundedReceiverStream::new(rx);
    if !tokio::select! { r = ctx.cluster.ready() => r, _ = stop.cancelled() => false } {
        forward.abort();
        return;
    }
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for name in ctx.cluster.node_names() {
        record_node(&ctx, &name).await;
        seen.insert(name.clone(), Seen::of(&ctx.cluster, &name));
    }
    loop {
        let name = tokio::select! {
            _ = stop.cancelled() => return,
            n = changes.next() => match n { Some(n) => n, None => return },
        };
        record_node(&ctx, &name).await;
        // Heartbeats rewrite registrations all the time: only a change
        // placement cares about re-places the components.
        let now = Seen::of(&ctx.cluster, &name);
        if seen.insert(name, now.clone()).as_ref() != Some(&now) {
            for key in ctx.cluster.specs.keys() {
                let _ = all.send(key);
            }
        }
    }
}

/// What placement sees of a node.
#[derive(Clone, PartialEq)]
struct Seen {
    ready: bool,
    cordoned: bool,
    draining: bool,
    labels: std::collections::BTreeMap<String, String>,
}

impl Seen {
    fn of(cluster: &Cluster, name: &str) -> Seen {
        let v = cluster.node_view(name);
        Seen {
            ready: v.ready,
            cordoned: v.cordoned,
            draining: v.draining,
            labels: v.labels,
        }
    }
}

async fn record_node(ctx: &component::Ctx, name: &str) {
    let k = &ctx.cluster.keys;
    let registration = ctx.cluster.registrations.get(&k.node(name));
    let key = k.status(Kind::Node, None, name);
    let old = ctx.cluster.records.get_entry(&key);
    let now = crate::util::now_rfc3339();
    let Some(new) = nodes::record(
        registration.as_deref(),
        old.as_ref().map(|e| &*e.value),
        &now,
    ) else {
        return;
    };
    let Ok(value) = serde_json::to_vec(&new) else {
        return;
    };
    tracing::info!(node = %name, phase = ?new.phase, "node record");
    let old_phase = old.as_ref().map(|e| e.value.phase);
    let rev = old.map_or(0, |e| e.mod_revision);
    let when = vec![Compare::mod_revision(key.clone(), CompareOp::Equal, rev)];
    match ctx
        .fenced
        .commit(when, vec![TxnOp::put(key, value, None)])
        .await
    {
        Ok(_) => {
            if let Some((reason, message)) = events::node(old_phase, new.phase) {
                let e = crate::events::ClusterEvent::cluster(name, reason, message);
                ctx.events.record(e);
            }
        }
        Err(FenceError::Conflict) => {}
        Err(FenceError::Deposed) => ctx.deposed.cancel(),
        Err(e) => tracing::warn!(node = %name, error = %e, "writing a node record"),
    }
}

/// Gives the election up at shutdown, so another agent takes over at once
/// rather than after the lease TTL. Fenced: only this term's key goes.
async fn resign(client: &Client, keys: &Keys, term: &Term) {
    let fenced = Fenced::new(client.clone(), keys, term);
    let _ = fenced
        .commit(vec![], vec![TxnOp::delete(keys.election(), None)])
        .await;
}
