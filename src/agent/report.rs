//! The reporter: writes `observed/<node>/<project>/<component>` documents,
//! bound to the agent's lease, in the background.
//!
//! Reconciles hand it the latest document of a component (or its deletion)
//! and never wait for etcd: with etcd down, containers keep being managed and
//! the reporter keeps only the latest document per key until etcd answers.
//! A document is written only when it differs from what was last written
//! under the current lease; a new lease rewrites everything. Writes are
//! batched in transactions.
//!
//! Every `verify_every` the reporter lists the keys under
//! `observed/<node>/` and rewrites any document it wrote that is gone or
//! bound to another lease (deleted behind its back, e.g. by another agent
//! started with the same `--node` revoking its lease).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use etcd_client::{Client, GetOptions, PutOptions, Txn, TxnOp};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::metrics::Metrics;
use crate::resource::Observed;
use crate::runtime::BackoffConfig;
use crate::store::call::etcd;

/// Longest period between checks that the documents written are still there.
pub const VERIFY_EVERY: Duration = Duration::from_secs(15);

/// Operations per transaction (etcd allows 128).
const BATCH: usize = 64;

/// Sends documents to the reporter task. Cheap to clone.
#[derive(Clone)]
pub struct Reporter {
    tx: mpsc::UnboundedSender<(String, Option<Vec<u8>>)>,
}

impl Reporter {
    /// Sets the document at `key` (the full etcd key).
    pub fn put(&self, key: &str, observed: &Observed) {
        match serde_json::to_vec(observed) {
            Ok(v) => {
                let _ = self.tx.send((key.to_string(), Some(v)));
            }
            Err(e) => tracing::error!(error = %e, "encoding an observed document"),
        }
    }

    /// Deletes the document at `key`.
    pub fn delete(&self, key: &str) {
        let _ = self.tx.send((key.to_string(), None));
    }

    /// Starts the reporter task; it ends when `shutdown` is cancelled.
    /// `prefix` is `observed/<node>/`, checked every `verify_every`.
    pub fn spawn(
        client: Client,
        prefix: String,
        verify_every: Duration,
        lease: watch::Receiver<Option<i64>>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> (Reporter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let verify = Verify {
            prefix,
            every: verify_every,
        };
        let task = tokio::spawn(run(client, verify, rx, lease, metrics, shutdown));
        (Reporter { tx }, task)
    }
}

struct Verify {
    prefix: String,
    every: Duration,
}

/// The keys under `prefix` that are missing or not bound to `lease`, among
/// the documents `written` (deletions are not checked).
async fn lost_keys(
    client: &Client,
    prefix: &str,
    lease: i64,
    written: &BTreeMap<String, Option<Vec<u8>>>,
) -> Result<Vec<String>, String> {
    let opts = GetOptions::new().with_prefix().with_keys_only();
    let resp = etcd(
        "checking observed state",
        client.clone().get(prefix, Some(opts)),
    )
    .await?;
    let ours: BTreeSet<&[u8]> = resp
        .kvs()
        .iter()
        .filter(|kv| kv.lease() == lease)
        .map(|kv| kv.key())
        .collect();
    Ok(written
        .iter()
        .filter(|(k, v)| v.is_some() && !ours.contains(k.as_bytes()))
        .map(|(k, _)| k.clone())
        .collect())
}

async fn run(
    client: Client,
    verify: Verify,
    mut rx: mpsc::UnboundedReceiver<(String, Option<Vec<u8>>)>,
    mut lease_rx: watch::Receiver<Option<i64>>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut desired: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    // What was written under `written_lease`.
    let mut written: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let mut written_lease: Option<i64> = None;
    let mut dirty: BTreeSet<String> = BTreeSet::new();
    let cfg = BackoffConfig {
        min: Duration::from_millis(200),
        max: Duration::from_secs(5),
        factor: 2.0,
        jitter: true,
    };
    let mut bo = cfg.build();
    let mut retry_in: Option<Duration> = None;
    let mut verify_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + verify.every,
        verify.every.max(Duration::from_millis(100)),
    );
    verify_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let retry = async {
            match retry_in {
                Some(d) => tokio::time::sleep(d).await,
                None => futures::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            msg = rx.recv() => match msg {
                Some((k, v)) => {
                    if written.get(&k) != Some(&v) || written_lease.is_none() {
                        dirty.insert(k.clone());
                    } else {
                        dirty.remove(&k);
                    }
                    desired.insert(k, v);
                }
                None => return,
            },
            changed = lease_rx.changed() => {
                if changed.is_err() {
                    return;
                }
                // Writes that failed on the old lease (or with no etcd) are
                // retried on the new one at once.
                retry_in = None;
                bo = cfg.build();
            }
            _ = retry => retry_in = None,
            _ = verify_tick.tick() => {
                let lease = *lease_rx.borrow();
                if let (Some(lease), true) = (lease, lease == written_lease) {
                    match lost_keys(&client, &verify.prefix, lease, &written).await {
                        Ok(lost) => {
                            for k in lost {
                                tracing::warn!(key = %k, "observed document gone or replaced behind the agent's back; writing it again");
                                written.remove(&k);
                                dirty.insert(k);
                            }
                        }
                        Err(e) => tracing::debug!(error = %e, "could not check observed state"),
                    }
                }
            }
        }
        // Take everything queued, so one transaction carries many changes.
        while let Ok((k, v)) = rx.try_recv() {
            if written.get(&k) != Some(&v) || written_lease.is_none() {
                dirty.insert(k.clone());
            } else {
                dirty.remove(&k);
            }
            desired.insert(k, v);
        }
        let lease = *lease_rx.borrow_and_update();
        if lease != written_lease {
            // A new lease (or none): everything must be written again.
            written.clear();
            written_lease = None;
            dirty.extend(desired.keys().cloned());
        }
        let Some(lease) = lease else { continue };
        if retry_in.is_some() || dirty.is_empty() {
            continue;
        }
        let keys: Vec<String> = dirty.iter().cloned().collect();
        for chunk in keys.chunks(BATCH) {
            let ops: Vec<TxnOp> = chunk
                .iter()
                .map(|k| match desired.get(k).cloned().flatten() {
                    Some(v) => TxnOp::put(k.clone(), v, Some(PutOptions::new().with_lease(lease))),
                    None => TxnOp::delete(k.clone(), None),
                })
                .collect();
            match etcd(
                "writing observed state",
                client.clone().txn(Txn::new().and_then(ops)),
            )
            .await
            {
                Ok(_) => {
                    for k in chunk {
                        dirty.remove(k);
                        let v = desired.get(k).cloned().flatten();
                        if v.is_none() {
                            desired.remove(k);
                        }
                        written.insert(k.clone(), v);
                        metrics.observed_writes.inc();
                    }
                    written_lease = Some(lease);
                    bo = cfg.build();
                }
                Err(e) => {
                    let d = bo.next_delay();
                    tracing::warn!(error = %e, retry_in = ?d, "could not write observed state; will retry");
                    retry_in = Some(d);
                    break;
                }
            }
        }
    }
}
