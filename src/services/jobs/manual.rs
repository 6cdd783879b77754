//! `berth job run`: a run asked for by hand.
//!
//! The CLI puts a request `jobs-requests/<project>/<component>/<id>` on a
//! lease of its own. Every agent watches `jobs-requests/`; one with a ready
//! replica (for `on: leader`, the leader's) claims the run
//! `jobs/.../<job>/manual-<id>` (create-if-absent, so exactly one runs it)
//! and streams the output through etcd: numbered chunks
//! `jobs-output/<project>/<component>/<id>/<seq>.out|err`, then `end` with the
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
use crate::docker::{Docker, OutputStream};
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
    Bytes(OutputStream, Vec<u8>),
    End(Box<JobRun>),
}

/// The key suffix of a chunk of `stream`: the CLI writes `.out` chunks to
/// its stdout and `.err` chunks to its stderr.
pub fn suffix(stream: OutputStream) -> &'static str {
    match stream {
        OutputStream::Stdout => "out",
        OutputStream::Stderr => "err",
    }
}

/// Appends `bytes` to the pending segments, joining it to the last one when
/// it is of the same stream (the order across streams is kept).
fn push(pending: &mut Vec<(OutputStream, Vec<u8>)>, stream: OutputStream, bytes: &[u8]) {
    match pending.last_mut() {
        Some((s, b)) if *s == stream => b.extend_from_slice(bytes),
        _ => pending.push((stream, bytes.to_vec())),
    }
}

/// Writes the chunks as numbered keys `<seq>.out|err` (joined per
/// [`FLUSH_EVERY`]), then `end`.
async fn write_output(
    client: Client,
    prefix: String,
    lease: i64,
    mut rx: mpsc::UnboundedReceiver<OutputChunk>,
) {
    let mut seq: u64 = 0;
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
    while let Some(first) = rx.recv().await {
        let mut pending: Vec<(OutputStream, Vec<u8>)> = Vec::new();
        let mut end = None;
        let mut take = |c: OutputChunk, pending: &mut Vec<(OutputStream, Vec<u8>)>| match c {
            OutputChunk::Bytes(stream, b) => push(pending, stream, &b),
            OutputChunk::End(r) => end = Some(r),
        };
        take(first, &mut pending);
        tokio::time::sleep(FLUSH_EVERY).await;
        while let Ok(c) = rx.try_recv() {
            take(c, &mut pending);
        }
        for (stream, bytes) in pending {
            seq += 1;
            put(format!("{prefix}{seq:010}.{}", suffix(stream)), bytes).await;
        }
        if let Some(run) = end {
            let value = serde_json::to_vec(&RunEnd { run: *run }).unwrap_or_default();
            put(format!("{prefix}end"), value).await;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_keep_the_order_across_streams() {
        let mut p = Vec::new();
        push(&mut p, OutputStream::Stdout, b"a");
        push(&mut p, OutputStream::Stdout, b"b");
        push(&mut p, OutputStream::Stderr, b"E");
        push(&mut p, OutputStream::Stdout, b"c");
        assert_eq!(
            p,
            vec![
                (OutputStream::Stdout, b"ab".to_vec()),
                (OutputStream::Stderr, b"E".to_vec()),
                (OutputStream::Stdout, b"c".to_vec()),
            ]
        );
    }
}
