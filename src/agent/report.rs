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
    /// Sets the document at `key` (the full etcd key): an `observed/`
    /// document or an endpoint, both bound to the lease.
    pub fn put<T: serde::Serialize>(&self, key: &str, doc: &T) {
        match serde_json::to_vec(doc) {
            Ok(v) => {
                let _ = self.tx.send((key.to_string(), Some(v)));
            }
            Err(e) => tracing::error!(error = %e, key, "encoding a document"),
        }
    }

    /// Deletes the document at `key`.
    pub fn delete(&self, key: &str) {
        let _ = self.tx.send((key.to_string(), None));
    }

    /// A reporter whose writes a test reads: (key, document or `None`).
    #[cfg(test)]
    pub fn for_tests() -> (Reporter, mpsc::UnboundedReceiver<Write>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Reporter { tx }, rx)
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

/// One write of a batch: a put (`Some`) or a delete (`None`).
type Write = (String, Option<Vec<u8>>);

/// The reporter's bookkeeping (pure): the latest document per key, what was
/// written under which lease, and which keys differ from it.
#[derive(Default)]
struct Book {
    desired: BTreeMap<String, Option<Vec<u8>>>,
    /// What was written under `written_lease`.
    written: BTreeMap<String, Option<Vec<u8>>>,
    written_lease: Option<i64>,
    dirty: BTreeSet<String>,
}

impl Book {
    /// A reconcile's latest document for `k` (or its deletion).
    fn offer(&mut self, k: String, v: Option<Vec<u8>>) {
        if self.written.get(&k) != Some(&v) || self.written_lease.is_none() {
            self.dirty.insert(k.clone());
        } else {
            // Back to what etcd holds: nothing to write.
            self.dirty.remove(&k);
        }
        self.desired.insert(k, v);
    }

    /// Documents found gone or replaced in etcd: written again.
    fn lost(&mut self, keys: Vec<String>) {
        for k in keys {
            self.written.remove(&k);
            self.dirty.insert(k);
        }
    }

    /// What to write now under `lease`, at most `max` writes. A lease other
    /// than the one written under (or none) makes everything dirty: its
    /// documents went with the old lease.
    fn batch(&mut self, lease: Option<i64>, max: usize) -> Vec<Write> {
        if lease != self.written_lease {
            self.written.clear();
            self.written_lease = None;
            self.dirty.extend(self.desired.keys().cloned());
        }
        if lease.is_none() {
            return Vec::new();
        }
        let next = self.dirty.iter().take(max);
        next.map(|k| (k.clone(), self.desired.get(k).cloned().flatten()))
            .collect()
    }

    /// `batch` landed in etcd under `lease`.
    fn wrote(&mut self, batch: Vec<Write>, lease: i64) {
        for (k, v) in batch {
            self.dirty.remove(&k);
            if v.is_none() {
                self.desired.remove(&k);
            }
            self.written.insert(k, v);
        }
        self.written_lease = Some(lease);
    }
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
        // Only keys under the listed prefix (endpoints are not checked).
        .filter(|(k, v)| v.is_some() && k.starts_with(prefix) && !ours.contains(k.as_bytes()))
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
    let mut book = Book::default();
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
                Some((k, v)) => book.offer(k, v),
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
                if let (Some(lease), true) = (lease, lease == book.written_lease) {
                    match lost_keys(&client, &verify.prefix, lease, &book.written).await {
                        Ok(lost) => {
                            for k in &lost {
                                tracing::warn!(key = %k, "observed document gone or replaced behind the agent's back; writing it again");
                            }
                            book.lost(lost);
                        }
                        Err(e) => tracing::debug!(error = %e, "could not check observed state"),
                    }
                }
            }
        }
        // Take everything queued, so one transaction carries many changes.
        while let Ok((k, v)) = rx.try_recv() {
            book.offer(k, v);
        }
        let lease = *lease_rx.borrow_and_update();
        if retry_in.is_some() {
            continue;
        }
        if let Err(e) = write_all(&client, &mut book, lease, &metrics).await {
            let d = bo.next_delay();
            tracing::warn!(error = %e, retry_in = ?d, "could not write observed state; will retry");
            retry_in = Some(d);
        } else {
            bo = cfg.build();
        }
    }
}

/// Writes every dirty document under `lease`, `BATCH` per transaction,
/// until none is left or a write fails.
async fn write_all(
    client: &Client,
    book: &mut Book,
    lease: Option<i64>,
    metrics: &Metrics,
) -> Result<(), String> {
    loop {
        let batch = book.batch(lease, BATCH);
        let Some(lease) = lease.filter(|_| !batch.is_empty()) else {
            return Ok(());
        };
        let put = || PutOptions::new().with_lease(lease);
        let ops: Vec<TxnOp> = batch
            .iter()
            .map(|(k, v)| match v {
                Some(v) => TxnOp::put(k.clone(), v.clone(), Some(put())),
                None => TxnOp::delete(k.clone(), None),
            })
            .collect();
        let txn = Txn::new().and_then(ops);
        etcd("writing observed state", client.clone().txn(txn)).await?;
        metrics.observed_writes.inc_by(batch.len() as u64);
        book.wrote(batch, lease);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What happened before the batch is asked for.
    enum Op {
        Put(&'static str, &'static str),
        Delete(&'static str),
        /// The batch asked for under this lease landed.
        Wrote(i64),
        /// The batch asked for under this lease failed.
        Failed(i64),
        /// The verifier found the document gone.
        Lost(&'static str),
        /// The reporter ran with no lease (it lapsed).
        NoLease,
    }

    /// Writes per batch in these tests (`BATCH` is 64).
    const MAX: usize = 2;

    /// The batch written under `lease` after `ops`: `(key, Some(doc))` puts,
    /// `(key, None)` deletes.
    fn check(ops: &[Op], lease: Option<i64>, want: &[(&str, Option<&str>)]) {
        let mut book = Book::default();
        for op in ops {
            let doc = |v: &str| Some(v.as_bytes().to_vec());
            match *op {
                Op::Put(k, v) => book.offer(k.into(), doc(v)),
                Op::Delete(k) => book.offer(k.into(), None),
                Op::Wrote(l) => {
                    let batch = book.batch(Some(l), MAX);
                    book.wrote(batch, l);
                }
                Op::Failed(l) => drop(book.batch(Some(l), MAX)),
                Op::Lost(k) => book.lost(vec![k.into()]),
                Op::NoLease => assert_eq!(book.batch(None, MAX), vec![]),
            }
        }
        let got = book.batch(lease, MAX);
        let got: Vec<(&str, Option<&str>)> = got
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str(),
                    v.as_deref().map(|v| std::str::from_utf8(v).unwrap()),
                )
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_batch_holds_what_etcd_lacks() {
        use Op::*;
        // Nothing is written without a lease; a new document is.
        check(&[Put("a", "1")], None, &[]);
        check(&[Put("a", "1")], Some(1), &[("a", Some("1"))]);
        // Written and offered again unchanged: nothing; changed: written.
        check(&[Put("a", "1"), Wrote(1), Put("a", "1")], Some(1), &[]);
        check(
            &[Put("a", "1"), Wrote(1), Put("a", "2")],
            Some(1),
            &[("a", Some("2"))],
        );
        // Changed and changed back before the write: nothing.
        let back = [Put("a", "1"), Wrote(1), Put("a", "2"), Put("a", "1")];
        check(&back, Some(1), &[]);
        // Only the latest of several changes.
        check(
            &[Put("a", "1"), Put("a", "2"), Put("a", "3")],
            Some(1),
            &[("a", Some("3"))],
        );
        // Deletions: sent once.
        check(
            &[Put("a", "1"), Wrote(1), Delete("a")],
            Some(1),
            &[("a", None)],
        );
        check(
            &[Put("a", "1"), Wrote(1), Delete("a"), Wrote(1)],
            Some(1),
            &[],
        );
        // A failed write is in the next batch again.
        check(&[Put("a", "1"), Failed(1)], Some(1), &[("a", Some("1"))]);
        // A document gone behind the reporter's back is written again.
        let lost = [Put("a", "1"), Put("b", "1"), Wrote(1), Lost("b")];
        check(&lost, Some(1), &[("b", Some("1"))]);
    }

    #[test]
    fn a_new_lease_rewrites_every_document() {
        use Op::*;
        let written = [Put("a", "1"), Put("b", "2"), Wrote(1)];
        check(&written, Some(2), &[("a", Some("1")), ("b", Some("2"))]);
        // A pending deletion is still sent; one done is not sent again.
        let pending = [Put("a", "1"), Wrote(1), Delete("a")];
        check(&pending, Some(2), &[("a", None)]);
        check(
            &[Put("a", "1"), Wrote(1), Delete("a"), Wrote(1)],
            Some(2),
            &[],
        );
        // Part written under the new lease: what the old lease held counts
        // for nothing, even offered again unchanged.
        let part = [
            Put("a", "1"),
            Put("b", "2"),
            Put("c", "3"),
            Wrote(1),
            Wrote(1),
            Wrote(2),
            Put("c", "3"),
        ];
        check(&part, Some(2), &[("c", Some("3"))]);
        // A lease that lapsed, then a new one: everything again.
        let lapsed = [Put("a", "1"), Wrote(1), NoLease];
        check(&lapsed, Some(2), &[("a", Some("1"))]);
    }

    #[test]
    fn batches_are_bounded_in_key_order() {
        use Op::*;
        let three = [Put("c", "3"), Put("a", "1"), Put("b", "2")];
        check(&three, Some(1), &[("a", Some("1")), ("b", Some("2"))]);
        let rest = [Put("c", "3"), Put("a", "1"), Put("b", "2"), Wrote(1)];
        check(&rest, Some(1), &[("c", Some("3"))]);
    }
}
