//! `berth job run`: a run asked for by hand.
//!
//! The CLI puts a request `jobs-requests/<project>/<component>/<id>` on a
//! lease of its own. Every agent watches `jobs-requests/`; one with a ready
//! replica (for `on: leader`, the leader's) claims the run
//! `jobs/.../<job>/manual-<id>` (create-if-absent, so exactly one runs it)
//! and streams the output through etcd: numbered chunks
//! `jobs-output/<project>/<component>/<id>/<seq>`, then `end` with the
//! result, all on the request's lease, so they go when the CLI's lease ends.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use etcd_client::{Client, PutOptions};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::claim::Records;
use super::record::{JobRun, Trigger};
use super::run::{claim_and_run, RunSpec};
use crate::docker::Docker;
use crate::resource::services::JobTarget;
use crate::resource::ComponentKey;
use crate::runtime::{watcher, Event, WatcherConfig};
use crate::services::local::LocalReplicas;
use crate::services::roles::Leaders;
use crate::store::call::call;
use crate::store::Keys;

/// Output is written at most this often (chunks in between are joined).
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// The request the CLI writes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobRequest {
    pub job: String,
    /// The CLI's lease: the output is written on it.
    pub lease: i64,
}

/// The `end` document: how the run ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunEnd {
    pub run: JobRun,
}

pub struct Manual {
    pub client: Client,
    pub keys: Keys,
    pub node: String,
    pub docker: Docker,
    pub records: Records,
    pub local: Arc<dyn LocalReplicas>,
    pub leaders: Leaders,
}

impl Manual {
    pub async fn run(self, token: CancellationToken) {
        let prefix = self.keys.job_requests_prefix();
        let mut events = std::pin::pin!(watcher(
            self.client.clone(),
            prefix.clone(),
            WatcherConfig::default()
        ));
        let this = Arc::new(self);
        loop {
            let ev = tokio::select! {
                _ = token.cancelled() => return,
                ev = events.next() => match ev { Some(ev) => ev, None => return },
            };
            // Requests already there when the watch (re)lists are taken
            // too: a claim already made makes them no-ops.
            let kv = match ev {
                Ok(Event::Apply(kv)) | Ok(Event::InitApply(kv)) => kv,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "job requests watch");
                    continue;
                }
            };
            let Some(rest) = kv.key.strip_prefix(&prefix) else {
                continue;
            };
            let mut parts = rest.splitn(3, '/');
            let (Some(p), Some(c), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
                continue;
            };
            let Ok(req) = serde_json::from_slice::<JobRequest>(&kv.value) else {
                tracing::debug!(key = %kv.key, "a job request that does not decode is skipped");
                continue;
            };
            let (ck, id) = (ComponentKey::new(p, c), id.to_string());
            let this = this.clone();
            let token = token.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = token.cancelled() => {}
                    _ = this.serve(ck, id, req) => {}
                }
            });
        }
    }

    /// Runs the request here if this node may (and wins the claim).
    async fn serve(&self, ck: ComponentKey, id: String, req: JobRequest) {
        let ready: Vec<_> = self
            .local
            .ready()
            .into_iter()
            .filter(|r| r.key == ck)
            .collect();
        let Some(newest) = ready.iter().max_by_key(|r| r.revision) else {
            return;
        };
        let Some(job) = newest
            .template
            .jobs
            .iter()
            .find(|j| j.name == req.job)
            .cloned()
        else {
            return;
        };
        let container = if job.on == JobTarget::Leader {
            let leaders = self.leaders.lock().unwrap_or_else(|e| e.into_inner());
            let Some(l) = leaders.get(&ck).filter(|e| e.record.node == self.node) else {
                return;
            };
            l.record.container.clone()
        } else {
            newest.container.clone()
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(write_output(
            self.client.clone(),
            self.keys.job_output_prefix(&ck, &id),
            req.lease,
            rx,
        ));
        let spec = RunSpec {
            key: ck,
            job,
            node: self.node.clone(),
            container,
            tick: Utc::now(),
            trigger: Trigger::Manual,
            run_id: format!("manual-{id}"),
            output: Some(tx.clone()),
        };
        if let Some(run) = claim_and_run(&self.records, &self.docker, spec).await {
            let _ = tx.send(OutputChunk::End(Box::new(run)));
        }
        drop(tx);
        let _ = writer.await;
    }
}

/// What [`super::run`] sends while a manual run goes.
pub enum OutputChunk {
    Bytes(Vec<u8>),
    End(Box<JobRun>),
}

/// Writes the chunks as numbered keys (joined per [`FLUSH_EVERY`]), then `end`.
async fn write_output(
    client: Client,
    prefix: String,
    lease: i64,
    mut rx: mpsc::UnboundedReceiver<OutputChunk>,
) {
    let mut seq: u64 = 0;
    let mut pending: Vec<u8> = Vec::new();
    let put = |key: String, value: Vec<u8>| {
        let mut c = client.clone();
        async move {
            let r = call(
                "stream job output",
                c.put(key, value, Some(PutOptions::new().with_lease(lease))),
            )
            .await;
            if let Err(e) = r {
                tracing::debug!(error = %e, "job output not written");
            }
        }
    };
    loop {
        let first = match rx.recv().await {
            Some(c) => c,
            None => break,
        };
        let mut end = None;
        let mut take = |c: OutputChunk, pending: &mut Vec<u8>| match c {
            OutputChunk::Bytes(b) => pending.extend_from_slice(&b),
            OutputChunk::End(r) => end = Some(r),
        };
        take(first, &mut pending);
        tokio::time::sleep(FLUSH_EVERY).await;
        while let Ok(c) = rx.try_recv() {
            take(c, &mut pending);
        }
        if !pending.is_empty() {
            seq += 1;
            put(format!("{prefix}{seq:010}"), std::mem::take(&mut pending)).await;
        }
        if let Some(run) = end {
            let value = serde_json::to_vec(&RunEnd { run: *run }).unwrap_or_default();
            put(format!("{prefix}end"), value).await;
            return;
        }
    }
}
