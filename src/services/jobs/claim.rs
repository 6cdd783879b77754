//! The etcd side of a job run: claiming a tick (create-if-absent, the
//! fence), recording the result, and keeping the last N records.
//!
//! Records live on a lease of their own, granted for [`RECORD_TTL`] × 2 and
//! replaced once it is [`RECORD_TTL`] old, so history outlives the agent that
//! wrote it (a SIGKILLed agent's runs stay visible) but never grows forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use tokio::sync::Mutex;

use super::record::JobRun;
use crate::resource::ComponentKey;
use crate::store::call::{call, CallError};
use crate::store::Keys;

/// Every record lives between this and twice this.
pub const RECORD_TTL: Duration = Duration::from_secs(3600);

/// A record younger than this is never pruned: an agent may still fire its
/// tick (its grace, plus clock skew), and the record is its fence.
pub const PRUNE_AFTER: chrono::Duration = chrono::Duration::seconds(60);

/// Reads and writes run records; cheap to clone.
#[derive(Clone)]
pub struct Records {
    client: Client,
    keys: Keys,
    lease: Arc<Mutex<Option<(i64, Instant)>>>,
}

impl Records {
    pub fn new(client: Client, keys: Keys) -> Records {
        Records {
            client,
            keys,
            lease: Arc::new(Mutex::new(None)),
        }
    }

    /// The key of run `run` of `job`.
    pub fn key(&self, ck: &ComponentKey, job: &str, run: &str) -> String {
        self.keys.job_run(ck, job, run)
    }

    async fn lease(&self) -> Result<i64, CallError> {
        let mut l = self.lease.lock().await;
        if let Some((id, at)) = *l {
            if at.elapsed() < RECORD_TTL {
                return Ok(id);
            }
        }
        let mut c = self.client.clone();
        let ttl = (2 * RECORD_TTL).as_secs() as i64;
        let r = call("grant the job records' lease", c.lease_grant(ttl, None)).await?;
        *l = Some((r.id(), Instant::now()));
        Ok(r.id())
    }

    async fn forget_lease(&self) {
        *self.lease.lock().await = None;
    }

    /// Creates `key` with `run` if no record of that run exists: `true` when
    /// this call created it (the caller runs the tick), `false` when another
    /// agent (or an earlier fire of this one) already has.
    pub async fn claim(&self, key: &str, run: &JobRun) -> Result<bool, CallError> {
        let value = serde_json::to_vec(run).map_err(|e| CallError::Other(e.to_string()))?;
        let lease = self.lease().await?;
        let txn = Txn::new()
            .when([Compare::create_revision(key, CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key,
                value,
                Some(PutOptions::new().with_lease(lease)),
            )]);
        let mut c = self.client.clone();
        match call("claim a job tick", c.txn(txn)).await {
            Ok(r) => Ok(r.succeeded()),
            Err(e) => {
                if e.lease_gone() {
                    self.forget_lease().await;
                }
                Err(e)
            }
        }
    }

    /// Writes the result of a claimed run over its claim.
    pub async fn finish(&self, key: &str, run: &JobRun) -> Result<(), CallError> {
        let value = serde_json::to_vec(run).map_err(|e| CallError::Other(e.to_string()))?;
        let lease = self.lease().await?;
        let mut c = self.client.clone();
        let put = c.put(key, value, Some(PutOptions::new().with_lease(lease)));
        match call("record a job run", put).await {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.lease_gone() {
                    self.forget_lease().await;
                }
                Err(e)
            }
        }
    }

    /// Deletes `job`'s records beyond the newest `keep`, except those
    /// younger than [`PRUNE_AFTER`] at `now`.
    pub async fn prune(
        &self,
        ck: &ComponentKey,
        job: &str,
        keep: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), CallError> {
        let prefix = self.keys.job_run(ck, job, "");
        let mut c = self.client.clone();
        let opts = GetOptions::new().with_prefix().with_keys_only();
        let r = call("list job runs", c.get(prefix.as_str(), Some(opts))).await?;
        let ids: Vec<String> = r
            .kvs()
            .iter()
            .filter_map(|kv| kv.key_str().ok()?.strip_prefix(&prefix).map(str::to_string))
            .collect();
        let cutoff = super::record::run_id(now - PRUNE_AFTER, None);
        let deletes: Vec<TxnOp> = prunable(ids, keep as usize, &cutoff)
            .into_iter()
            .map(|id| TxnOp::delete(format!("{prefix}{id}"), None))
            .collect();
        // One round trip per 100 records, not one per record (etcd's
        // default limit is 128 operations per transaction).
        for chunk in deletes.chunks(100) {
            let txn = Txn::new().and_then(chunk.to_vec());
            call("prune job runs", c.txn(txn)).await?;
        }
        Ok(())
    }
}

/// The run ids to delete: all but the newest `keep` (ids sort by tick),
/// and only those older than `cutoff` (a run id of a time). Manual runs
/// (`manual-...`) are pruned as the oldest.
fn prunable(mut ids: Vec<String>, keep: usize, cutoff: &str) -> Vec<String> {
    ids.sort_by(|a, b| {
        let manual = |s: &str| s.starts_with("manual-");
        let stamp = |s: &str| s.trim_start_matches("manual-").to_string();
        stamp(b).cmp(&stamp(a)).then(manual(a).cmp(&manual(b)))
    });
    ids.into_iter()
        .skip(keep)
        .filter(|id| id.trim_start_matches("manual-") < cutoff)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ids: &[&str], keep: usize, cutoff: &str, expected: &[&str]) {
        let got = prunable(ids.iter().map(|s| s.to_string()).collect(), keep, cutoff);
        assert_eq!(got, expected, "{ids:?} keep {keep} cutoff {cutoff}");
    }

    #[test]
    fn pruning_keeps_the_newest_and_the_fresh() {
        let ids = ["20261204T100000Z", "20261204T100001Z", "20261204T100002Z"];
        check(&ids, 2, "20261204T110000Z", &["20261204T100000Z"]);
        check(&ids, 3, "20261204T110000Z", &[]);
        // Younger than the cutoff: kept even beyond `keep` (still a fence).
        check(&ids, 1, "20261204T100001Z", &["20261204T100000Z"]);
        check(&ids, 0, "20261204T090000Z", &[]);
        check(
            &[
                "manual-20261204T100003Z",
                "20261204T100000Z.abc",
                "20261204T100004Z",
            ],
            1,
            "20261204T110000Z",
            &["manual-20261204T100003Z", "20261204T100000Z.abc"],
        );
    }
}
