//! One run of a job: claim its record (the fence), exec in the container
//! with the output streamed (a tail for the record, stdout to the backup
//! file), then record the result and prune old records.

use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};

use super::claim::Records;
use super::record::{tail, JobRun, RunPhase, Trigger};
use crate::docker::{Docker, ExecRequest, OutputStream};
use crate::resource::services::Job;
use crate::resource::ComponentKey;
use crate::services::backup::BackupWriter;

/// Everything one run needs.
pub struct RunSpec {
    pub key: ComponentKey,
    pub job: Job,
    pub node: String,
    pub container: String,
    /// The tick's scheduled time (or a manual run's request time).
    pub tick: DateTime<Utc>,
    pub trigger: Trigger,
    /// The record's id (see [`super::record::run_id`]).
    pub run_id: String,
    /// Where a manual run's output goes as it comes (`berth job run`).
    pub output: Option<tokio::sync::mpsc::UnboundedSender<super::manual::OutputChunk>>,
}

/// Claims and runs `spec`; returns the record written, `None` when another
/// agent had claimed the run (or etcd could not be asked: then nobody here
/// runs it, at most once).
pub async fn claim_and_run(records: &Records, docker: &Docker, spec: RunSpec) -> Option<JobRun> {
    let key = records.key(&spec.key, &spec.job.name, &spec.run_id);
    let started = Utc::now();
    let mut run = JobRun {
        job: spec.job.name.clone(),
        tick: spec.tick.to_rfc3339_opts(SecondsFormat::Millis, true),
        trigger: spec.trigger,
        node: spec.node.clone(),
        container: spec.container.clone(),
        phase: RunPhase::Running,
        started: started.to_rfc3339_opts(SecondsFormat::Millis, true),
        duration_ms: None,
        exit_code: None,
        output: String::new(),
        message: None,
        artifact: None,
    };
    match records.claim(&key, &run).await {
        Ok(true) => {}
        Ok(false) => return None,
        Err(e) => {
            tracing::warn!(component = %spec.key, job = %spec.job.name, error = %e, "job tick not claimed; not run here");
            return None;
        }
    }
    let clock = Instant::now();
    execute(docker, &spec, &mut run).await;
    run.duration_ms = Some(clock.elapsed().as_millis() as u64);
    tracing::info!(component = %spec.key, job = %spec.job.name, run = %spec.run_id, phase = ?run.phase, code = ?run.exit_code, "job ran");
    if let Err(e) = records.finish(&key, &run).await {
        tracing::warn!(component = %spec.key, job = %spec.job.name, error = %e, "job result not recorded");
    }
    if let Err(e) = records
        .prune(&spec.key, &spec.job.name, spec.job.history(), Utc::now())
        .await
    {
        tracing::debug!(error = %e, "job records not pruned");
    }
    Some(run)
}

/// Runs the exec and fills in `run`'s result.
async fn execute(docker: &Docker, spec: &RunSpec, run: &mut JobRun) {
    let mut backup = match &spec.job.backup {
        Some(b) => {
            match BackupWriter::begin(Path::new(&b.destination), &spec.job.name, spec.tick) {
                Ok(w) => Some(w),
                Err(e) => {
                    run.phase = RunPhase::Error;
                    run.message = Some(e.to_string());
                    return;
                }
            }
        }
        None => None,
    };
    let req = ExecRequest {
        command: &spec.job.exec,
        env: vec![
            format!("BERTH_JOB={}", spec.job.name),
            format!("BERTH_JOB_TICK={}", super::record::run_id(spec.tick, None)),
            format!("BERTH_NODE={}", spec.node),
        ],
        timeout: spec.job.timeout(),
    };
    let mut output: Vec<u8> = Vec::new();
    let mut sink = |stream: OutputStream, bytes: &[u8]| {
        output.extend_from_slice(bytes);
        if output.len() > 4 * super::record::OUTPUT_TAIL {
            output.drain(..output.len() - super::record::OUTPUT_TAIL);
        }
        if let (OutputStream::Stdout, Some(w)) = (stream, backup.as_mut()) {
            w.write(bytes);
        }
        if let Some(tx) = &spec.output {
            let _ = tx.send(super::manual::OutputChunk::Bytes(stream, bytes.to_vec()));
        }
    };
    let result = docker
        .exec_streaming(&spec.container, &req, &mut sink)
        .await;
    run.output = tail(&String::from_utf8_lossy(&output));
    match result {
        Ok(code) => {
            run.exit_code = Some(code);
            run.phase = if code == 0 {
                RunPhase::Succeeded
            } else {
                RunPhase::Failed
            };
        }
        Err(crate::docker::Error::Timeout { .. }) => {
            run.phase = RunPhase::TimedOut;
            run.message = Some(format!("still running after {:?}", spec.job.timeout()));
        }
        Err(e) => {
            run.phase = RunPhase::Error;
            run.message = Some(e.to_string());
        }
    }
    let (Some(w), Some(b)) = (backup, &spec.job.backup) else {
        return;
    };
    // Only a successful run's output becomes a backup.
    if run.phase != RunPhase::Succeeded {
        w.abandon();
        return;
    }
    match w.commit(&b.keep) {
        Ok((path, pruned)) => {
            run.artifact = Some(path.display().to_string());
            if !pruned.is_empty() {
                tracing::info!(component = %spec.key, job = %spec.job.name, pruned = pruned.len(), "old backups pruned");
            }
        }
        Err(e) => {
            run.phase = RunPhase::Error;
            run.message = Some(e.to_string());
        }
    }
}
