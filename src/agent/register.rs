//! Node registration: the agent's etcd lease, kept alive, and the `Node`
//! document at `nodes/<node>` bound to it.
//!
//! - The lease is granted with `--lease-ttl` and kept alive about every TTL/3.
//! - The node document is rewritten about every TTL with a fresh heartbeat and
//!   the Docker engine's state (`Ready` condition). The write is a
//!   compare-and-swap on the key's revision so a user's cordon (`spec`) made
//!   meanwhile is kept, never overwritten.
//! - While etcd is unreachable the loop retries with capped backoff. The
//!   lease counts as lost when etcd says so (keep-alive answers TTL 0 or
//!   "lease not found", a heartbeat is refused for an unknown lease) or when
//!   no keep-alive was confirmed for longer than its TTL (etcd has expired it,
//!   even if it cannot be asked). A lost lease is replaced by a new one as
//!   soon as etcd answers, and the node document and every lease-bound key
//!   follow it (the current lease is published on a `watch` channel; the
//!   reporter rewrites every observed document on a new lease).
//! - On shutdown the lease is revoked, so the node and its observed state
//!   disappear at once.
//! - One agent per node: before registering, [`check_not_taken`] looks at
//!   `nodes/<node>`. If it is bound to a lease that another agent keeps alive
//!   (its remaining TTL goes up), the agent refuses to start. A lease nobody
//!   keeps alive (an agent killed a moment ago) is waited out or taken over;
//!   one granted by an agent of this same process that has ended is taken
//!   over at once. With etcd unreachable at start the check is skipped.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::docker::Docker;
use crate::resource::{
    Condition, ConditionType, Node, NodeSpec, NodeStatus, ObjectMeta, Reason, API_VERSION,
};
use crate::runtime::BackoffConfig;
use crate::store::call::{call, lease_gone, CallError};
pub use crate::store::call::{etcd, ETCD_TIMEOUT};
use crate::store::Keys;

/// Everything the registration loop needs.
#[derive(Clone)]
pub struct Registration {
    pub client: Client,
    pub keys: Keys,
    pub node: String,
    pub address: String,
    /// Where peers reach this agent's API (`--http`, see `agent::api_url`);
    /// empty without one.
    pub api_address: String,
    pub labels: BTreeMap<String, String>,
    pub ttl: Duration,
    pub docker: Docker,
    pub metrics: Metrics,
}

/// Leases granted by agents of this process: `true` while that agent runs.
static OWN_LEASES: Mutex<Option<HashMap<i64, bool>>> = Mutex::new(None);

fn own_leases<T>(f: impl FnOnce(&mut HashMap<i64, bool>) -> T) -> T {
    let mut g = OWN_LEASES.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Marks the lease it holds as this process's, running until dropped (also
/// when the agent's runtime is dropped with the task in it).
struct Held(Option<i64>);

impl Held {
    fn set(&mut self, lease: i64) {
        own_leases(|m| {
            if let Some(old) = self.0.replace(lease) {
                m.insert(old, false);
            }
            m.insert(lease, true);
        });
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(l) = self.0 {
            own_leases(|m| m.insert(l, false));
        }
    }
}

/// The node is registered by another agent that is running.
#[derive(Debug, thiserror::Error)]
#[error("node {node} is already registered by a running agent (lease {lease:x}); stop it or use another --node")]
pub struct NodeTaken {
    pub node: String,
    pub lease: i64,
}

/// Refuses when `nodes/<node>` is bound to a lease another running agent
/// keeps alive (see the module docs). Waits at most the remaining TTL of a
/// lease nobody keeps alive; skips the check when etcd does not answer.
pub async fn check_not_taken(client: &Client, keys: &Keys, node: &str) -> Result<(), NodeTaken> {
    let key = keys.node(node);
    let lease = match call("reading the node document", client.clone().get(key, None)).await {
        Ok(r) => match r.kvs().first().map(|kv| kv.lease()) {
            Some(l) if l != 0 => l,
            _ => return Ok(()),
        },
        Err(e) => {
            tracing::warn!(error = %e, "cannot tell whether another agent runs as this node; starting anyway");
            return Ok(());
        }
    };
    if own_leases(|m| m.get(&lease) == Some(&false)) {
        tracing::info!(
            lease = format!("{lease:x}"),
            "taking over from an agent of this process that ended"
        );
        return Ok(());
    }
    let taken = NodeTaken {
        node: node.to_string(),
        lease,
    };
    tracing::info!(
        lease = format!("{lease:x}"),
        "node registered under another lease; waiting until it expires or is kept alive"
    );
    let mut last: Option<i64> = None;
    // Alive past this point: someone kept it alive.
    let mut deadline: Option<Instant> = None;
    loop {
        let ttl = match call(
            "asking for the lease's TTL",
            client.clone().lease_time_to_live(lease, None),
        )
        .await
        {
            Ok(r) => r.ttl(),
            Err(e) if e.lease_gone() => return Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot tell whether another agent runs as this node; starting anyway");
                return Ok(());
            }
        };
        if ttl <= 0 {
            return Ok(());
        }
        // Kept alive by someone: the remaining TTL went up, or the lease
        // outlived what remained of it when first asked (etcd gives whole
        // seconds, too coarse to see keep-alives of a short TTL; etcd revokes
        // an expired lease up to ~0.5 s late).
        let deadline = *deadline
            .get_or_insert_with(|| Instant::now() + Duration::from_secs(ttl.unsigned_abs() + 2));
        if last.is_some_and(|l| ttl > l) || Instant::now() >= deadline {
            return Err(taken);
        }
        last = Some(last.map_or(ttl, |l| l.min(ttl)));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn backoff() -> crate::runtime::Backoff {
    BackoffConfig {
        min: Duration::from_millis(200),
        max: Duration::from_secs(5),
        factor: 2.0,
        jitter: true,
    }
    .build()
}

impl Registration {
    fn ttl_secs(&self) -> i64 {
        i64::try_from(self.ttl.as_secs()).unwrap_or(10).max(2)
    }

    /// Grants, keeps alive and re-grants the lease until `shutdown`; publishes
    /// the current lease (or `None` while there is none) on `lease_tx`.
    pub async fn run(self, lease_tx: watch::Sender<Option<i64>>, shutdown: CancellationToken) {
        let mut bo = backoff();
        // The lease this run had before, if it lost one.
        let mut previous: Option<i64> = None;
        let mut held = Held(None);
        loop {
            let mut client = self.client.clone();
            let asked = Instant::now();
            let granted = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = etcd("granting a lease", client.lease_grant(self.ttl_secs(), None)) => r,
            };
            let (lease, ttl) = match granted {
                Ok(r) => (r.id(), Duration::from_secs(r.ttl().max(1).unsigned_abs())),
                Err(e) => {
                    tracing::warn!(error = %e, "etcd unreachable; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(bo.next_delay()) => continue,
                    }
                }
            };
            bo = backoff();
            held.set(lease);
            match previous.replace(lease) {
                Some(old) => tracing::info!(
                    lease = format!("{lease:x}"),
                    previous = format!("{old:x}"),
                    node = %self.node,
                    "registered again with a new lease"
                ),
                None => {
                    tracing::info!(lease = format!("{lease:x}"), node = %self.node, "registered with a new lease")
                }
            }
            if let Err(e) = self.write_node(lease).await {
                tracing::warn!(error = %e, "writing the node document (retried at the next heartbeat)");
            }
            // The reporter rewrites every observed document on the new lease.
            let _ = lease_tx.send(Some(lease));
            self.metrics.etcd_lease_up.set(1);
            let ended = self.keep_alive(lease, ttl, asked, &shutdown).await;
            self.metrics.etcd_lease_up.set(0);
            let Some(why) = ended else {
                let _ = lease_tx.send(None);
                match etcd(
                    "revoking the lease",
                    self.client.clone().lease_revoke(lease),
                )
                .await
                {
                    Ok(_) => tracing::info!("lease revoked"),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not revoke the lease; it expires by itself")
                    }
                }
                return;
            };
            tracing::warn!(
                lost_lease = format!("{lease:x}"),
                why = %why,
                "lease lost; asking for a new one"
            );
            let _ = lease_tx.send(None);
        }
        let _ = lease_tx.send(None);
    }

    /// Keeps `lease` (granted with `ttl`, asked for at `granted_at`) alive.
    /// Returns why it was lost, or `None` on shutdown.
    ///
    /// The lease counts as lost when etcd says so (a keep-alive answering
    /// TTL 0, "lease not found", a heartbeat refused for an unknown lease)
    /// or when no keep-alive was confirmed for longer than its TTL: etcd has
    /// expired it by then, even if it cannot say so yet.
    async fn keep_alive(
        &self,
        lease: i64,
        ttl: Duration,
        granted_at: Instant,
        shutdown: &CancellationToken,
    ) -> Option<String> {
        let period = (ttl / 3).max(Duration::from_millis(500));
        let mut bo = backoff();
        let mut last_heartbeat = Instant::now();
        // When the last keep-alive etcd confirmed was sent.
        let mut confirmed = granted_at;
        let mut stream_pair = None;
        let expired = |confirmed: Instant| {
            (confirmed.elapsed() > ttl).then(|| {
                format!(
                    "no keep-alive confirmed for {:?} (TTL {ttl:?})",
                    confirmed.elapsed()
                )
            })
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(period) => {}
            }
            if stream_pair.is_none() {
                let sent = Instant::now();
                match call(
                    "opening lease keep-alive",
                    self.client.clone().lease_keep_alive(lease),
                )
                .await
                {
                    // etcd-client reads the first answer: TTL > 0.
                    Ok(p) => {
                        confirmed = sent;
                        stream_pair = Some(p);
                    }
                    Err(e) if e.lease_gone() => return Some(e.to_string()),
                    Err(e) => {
                        if let Some(why) = expired(confirmed) {
                            return Some(format!("{why}; last error: {e}"));
                        }
                        tracing::warn!(error = %e, "etcd unreachable; keeping containers as they are");
                        tokio::select! {
                            _ = shutdown.cancelled() => return None,
                            _ = tokio::time::sleep(bo.next_delay()) => continue,
                        }
                    }
                }
            }
            let Some((keeper, stream)) = stream_pair.as_mut() else {
                continue;
            };
            let sent = Instant::now();
            let answer = async {
                keeper.keep_alive().await?;
                stream.message().await
            };
            match tokio::time::timeout(ETCD_TIMEOUT, answer).await {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                    confirmed = sent;
                    bo = backoff();
                    if last_heartbeat.elapsed() + period > ttl {
                        last_heartbeat = Instant::now();
                        match self.write_node(lease).await {
                            Ok(()) => {}
                            Err(e) if e.lease_gone() => return Some(e.to_string()),
                            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
                        }
                    }
                }
                Ok(Ok(Some(_))) => return Some("keep-alive answered TTL 0".into()),
                other => {
                    let why = match other {
                        Ok(Err(e)) if lease_gone(&e) => return Some(e.to_string()),
                        Ok(Err(e)) => e.to_string(),
                        Ok(Ok(None)) => "keep-alive stream ended".into(),
                        _ => format!("no keep-alive answer within {ETCD_TIMEOUT:?}"),
                    };
                    if let Some(expired) = expired(confirmed) {
                        return Some(format!("{expired}; last error: {why}"));
                    }
                    tracing::warn!(error = %why, "lease keep-alive failed; retrying");
                    stream_pair = None;
                }
            }
        }
    }

    /// The node's status now (Docker asked for its versions).
    pub async fn status(&self) -> NodeStatus {
        let (ready, docker_version, api_version, message) = match self.docker.version().await {
            Ok((v, api)) => (true, v.clone(), api, format!("Docker {v} answers")),
            Err(e) => (false, String::new(), String::new(), e.to_string()),
        };
        NodeStatus {
            address: self.address.clone(),
            api_address: self.api_address.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_string(),
            docker_version,
            docker_api_version: if api_version.is_empty() {
                self.docker.api_version()
            } else {
                api_version
            },
            labels: self.labels.clone(),
            last_heartbeat: Some(crate::util::now_rfc3339()),
            conditions: vec![Condition::new(
                ConditionType::Ready,
                ready,
                if ready {
                    Reason::AgentReady
                } else {
                    Reason::DockerUnreachable
                },
                message,
            )],
        }
    }

    /// Writes `nodes/<node>` bound to `lease`, keeping the spec, labels and
    /// creation time a previous document had (compare-and-swap, retried).
    pub async fn write_node(&self, lease: i64) -> Result<(), CallError> {
        let key = self.keys.node(&self.node);
        let status = self.status().await;
        for _ in 0..5 {
            let got = call(
                "reading the node document",
                self.client.clone().get(key.clone(), None),
            )
            .await?;
            let existing = got.kvs().first().map(|kv| {
                (
                    kv.mod_revision(),
                    serde_json::from_slice::<Node>(kv.value()),
                )
            });
            let (mod_rev, old) = match existing {
                Some((rev, Ok(n))) => (rev, Some(n)),
                Some((rev, Err(e))) => {
                    tracing::warn!(error = %e, "replacing an unreadable node document");
                    (rev, None)
                }
                None => (0, None),
            };
            let mut node = old.unwrap_or_else(|| Node {
                api_version: API_VERSION.into(),
                kind: "Node".into(),
                metadata: ObjectMeta {
                    name: self.node.clone(),
                    creation_timestamp: Some(crate::util::now_rfc3339()),
                    uid: Some(uuid::Uuid::new_v4().to_string()),
                    ..Default::default()
                },
                spec: NodeSpec::default(),
                status: None,
            });
            // Keep the Ready condition's transition time while it holds.
            let mut status = status.clone();
            if let Some(old) = node
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.is(ConditionType::Ready)))
            {
                for c in status
                    .conditions
                    .iter_mut()
                    .filter(|c| c.is(ConditionType::Ready) && c.status == old.status)
                {
                    c.last_transition_time = old.last_transition_time.clone();
                }
            }
            node.status = Some(status);
            let value = serde_json::to_vec(&node).map_err(|e| CallError::Other(e.to_string()))?;
            let cmp = if mod_rev == 0 {
                Compare::create_revision(key.clone(), CompareOp::Equal, 0)
            } else {
                Compare::mod_revision(key.clone(), CompareOp::Equal, mod_rev)
            };
            let txn = Txn::new().when([cmp]).and_then([TxnOp::put(
                key.clone(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )]);
            let resp = call("writing the node document", self.client.clone().txn(txn)).await?;
            if resp.succeeded() {
                return Ok(());
            }
        }
        Err(CallError::Other(
            "the node document kept changing; will retry".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etcd_client::Error;

    #[test]
    fn a_lost_lease_is_told_from_an_unreachable_etcd() {
        let gone = Error::LeaseKeepAliveError("lease not found".into());
        assert!(lease_gone(&gone));
        let e = CallError::Etcd {
            what: "opening lease keep-alive".into(),
            source: gone,
        };
        assert!(e.lease_gone());
        assert_eq!(
            e.to_string(),
            "opening lease keep-alive: lease keep alive error: lease not found"
        );
        assert!(lease_gone(&Error::GRpcStatus(tonic::Status::not_found(
            "etcdserver: requested lease not found"
        ))));
        assert!(!lease_gone(&Error::LeaseKeepAliveError(
            "channel closed".into()
        )));
        assert!(!lease_gone(&Error::GRpcStatus(tonic::Status::unavailable(
            "connection refused"
        ))));
        assert!(!CallError::Timeout {
            what: "opening lease keep-alive".into()
        }
        .lease_gone());
    }
}
