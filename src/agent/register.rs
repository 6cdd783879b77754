//! Node registration: the agent's etcd lease, kept alive, and the `Node`
//! document at `nodes/<node>` bound to it.
//!
//! - The lease is granted with `--lease-ttl` and kept alive about every TTL/3.
//! - The node document is rewritten about every TTL with a fresh heartbeat and
//!   the Docker engine's state (`Ready` condition). The write is a
//!   compare-and-swap on the key's revision so a user's cordon (`spec`) made
//!   meanwhile is kept, never overwritten.
//! - While etcd is unreachable the loop retries with capped backoff; a lease
//!   found expired on reconnect (keep-alive answers TTL 0) is replaced by a
//!   new one, and the node document and every lease-bound key follow it (the
//!   current lease is published on a `watch` channel).
//! - On shutdown the lease is revoked, so the node and its observed state
//!   disappear at once.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::docker::Docker;
use crate::resource::{Condition, Node, NodeSpec, NodeStatus, ObjectMeta, API_VERSION};
use crate::runtime::BackoffConfig;
use crate::store::Keys;

/// Bound on every etcd request of the registration loop.
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(5);

/// Everything the registration loop needs.
#[derive(Clone)]
pub struct Registration {
    pub client: Client,
    pub keys: Keys,
    pub node: String,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    pub ttl: Duration,
    pub docker: Docker,
    pub metrics: Metrics,
}

/// Runs one etcd call under [`ETCD_TIMEOUT`].
pub async fn etcd<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(ETCD_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer within {ETCD_TIMEOUT:?}")),
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
        loop {
            let mut client = self.client.clone();
            let granted = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = etcd("granting a lease", client.lease_grant(self.ttl_secs(), None)) => r,
            };
            let lease = match granted {
                Ok(r) => r.id(),
                Err(e) => {
                    tracing::warn!(error = %e, "etcd unreachable; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(bo.next_delay()) => continue,
                    }
                }
            };
            bo = backoff();
            tracing::info!(lease = format!("{lease:x}"), node = %self.node, "registered with a new lease");
            if let Err(e) = self.write_node(lease).await {
                tracing::warn!(error = %e, "writing the node document (retried at the next heartbeat)");
            }
            let _ = lease_tx.send(Some(lease));
            self.metrics.etcd_lease_up.set(1);
            let lost = self.keep_alive(lease, &shutdown).await;
            self.metrics.etcd_lease_up.set(0);
            if !lost {
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
            }
            tracing::warn!(
                lease = format!("{lease:x}"),
                "lease lost; registering again"
            );
            let _ = lease_tx.send(None);
        }
        let _ = lease_tx.send(None);
    }

    /// Keeps `lease` alive; `true` when it was lost, `false` on shutdown.
    async fn keep_alive(&self, lease: i64, shutdown: &CancellationToken) -> bool {
        let period = (self.ttl / 3).max(Duration::from_millis(500));
        let mut bo = backoff();
        let mut last_heartbeat = Instant::now();
        let mut stream_pair = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(period) => {}
            }
            if stream_pair.is_none() {
                match etcd(
                    "opening lease keep-alive",
                    self.client.clone().lease_keep_alive(lease),
                )
                .await
                {
                    Ok(p) => stream_pair = Some(p),
                    Err(e) => {
                        tracing::warn!(error = %e, "etcd unreachable; keeping containers as they are");
                        tokio::select! {
                            _ = shutdown.cancelled() => return false,
                            _ = tokio::time::sleep(bo.next_delay()) => continue,
                        }
                    }
                }
            }
            let Some((keeper, stream)) = stream_pair.as_mut() else {
                continue;
            };
            let answer = async {
                keeper.keep_alive().await?;
                stream.message().await
            };
            match tokio::time::timeout(ETCD_TIMEOUT, answer).await {
                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {
                    bo = backoff();
                    if last_heartbeat.elapsed() + period > self.ttl {
                        last_heartbeat = Instant::now();
                        if let Err(e) = self.write_node(lease).await {
                            tracing::warn!(error = %e, "heartbeat failed");
                        }
                    }
                }
                Ok(Ok(Some(_))) => return true,
                other => {
                    let why = match other {
                        Ok(Err(e)) => e.to_string(),
                        Ok(Ok(None)) => "keep-alive stream ended".into(),
                        _ => format!("no keep-alive answer within {ETCD_TIMEOUT:?}"),
                    };
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
                "Ready",
                ready,
                if ready {
                    "AgentReady"
                } else {
                    "DockerUnreachable"
                },
                message,
            )],
        }
    }

    /// Writes `nodes/<node>` bound to `lease`, keeping the spec, labels and
    /// creation time a previous document had (compare-and-swap, retried).
    pub async fn write_node(&self, lease: i64) -> Result<(), String> {
        let key = self.keys.node(&self.node);
        let status = self.status().await;
        for _ in 0..5 {
            let got = etcd(
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
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            {
                for c in status
                    .conditions
                    .iter_mut()
                    .filter(|c| c.type_ == "Ready" && c.status == old.status)
                {
                    c.last_transition_time = old.last_transition_time.clone();
                }
            }
            node.status = Some(status);
            let value = serde_json::to_vec(&node).map_err(|e| e.to_string())?;
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
            let resp = etcd("writing the node document", self.client.clone().txn(txn)).await?;
            if resp.succeeded() {
                return Ok(());
            }
        }
        Err("the node document kept changing; will retry".into())
    }
}
