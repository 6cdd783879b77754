//! `berth job run COMPONENT JOB -p P`: asks the agents to run a job now and
//! streams its output (see [`crate::services::jobs::manual`] for the
//! protocol: a request key on this command's lease, output chunks and an
//! `end` document written back on it).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use chrono::Utc;
use etcd_client::PutOptions;
use futures::StreamExt;

use super::args::{EtcdArgs, JobCommand, JobRunArgs};
use super::CliError;
use crate::resource::{ComponentKey, Kind, Object};
use crate::runtime::{watcher, Event, WatcherConfig};
use crate::services::jobs::manual::{JobRequest, RunEnd};
use crate::services::jobs::RunPhase;
use crate::store::{Store, StoreError};

/// Time the request and its output outlive the job's own timeout.
const LEASE_SLACK: Duration = Duration::from_secs(60);

pub async fn run(etcd: &EtcdArgs, cmd: JobCommand) -> Result<ExitCode, CliError> {
    match cmd {
        JobCommand::Run(a) => run_job(etcd, a).await,
    }
}

async fn run_job(etcd: &EtcdArgs, a: JobRunArgs) -> Result<ExitCode, CliError> {
    let store = Store::connect(&etcd.store_config()).await?;
    let stored = store
        .get(Kind::Component, Some(&a.project), &a.component)
        .await?
        .ok_or_else(|| {
            StoreError::NotFound(format!(
                "component/{} in project {}",
                a.component, a.project
            ))
        })?;
    let Object::Component(c) = stored.object else {
        return Err(CliError::Input(format!(
            "{} is not a component",
            a.component
        )));
    };
    let Some(job) = c.spec.jobs.iter().find(|j| j.name == a.job) else {
        let names: Vec<&str> = c.spec.jobs.iter().map(|j| j.name.as_str()).collect();
        return Err(CliError::Input(format!(
            "component {}/{} has no job {:?} (its jobs: {})",
            a.project,
            a.component,
            a.job,
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let ck = ComponentKey::new(a.project.clone(), a.component.clone());
    let keys = store.keys().clone();
    let mut client = store.client();
    let ttl = (job.timeout() + LEASE_SLACK).as_secs() as i64;
    let lease = client
        .lease_grant(ttl, None)
        .await
        .map_err(|e| store.map_err(e))?
        .id();
    let id = format!(
        "{}-{}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        // 32 hex digits; 8 make the id unique enough per second.
        uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .take(8)
            .collect::<String>()
    );
    let request = JobRequest {
        job: a.job.clone(),
        lease,
    };
    let value = serde_json::to_vec(&request).map_err(|e| CliError::Agent(e.to_string()))?;
    client
        .put(
            keys.job_request(&ck, &id),
            value,
            Some(PutOptions::new().with_lease(lease)),
        )
        .await
        .map_err(|e| store.map_err(e))?;
    let result = follow(&store, &ck, &a, &id).await;
    // The request and its output go with the lease.
    let _ = client.lease_revoke(lease).await;
    result
}

/// Prints the output chunks as they come; ends with the run's exit code.
async fn follow(
    store: &Store,
    ck: &ComponentKey,
    a: &JobRunArgs,
    id: &str,
) -> Result<ExitCode, CliError> {
    let keys = store.keys();
    let prefix = keys.job_output_prefix(ck, id);
    let record = keys.job_run(ck, &a.job, &format!("manual-{id}"));
    let mut events = std::pin::pin!(watcher(
        store.client(),
        prefix.clone(),
        WatcherConfig::default()
    ));
    let started = tokio::time::Instant::now();
    let mut taken = false;
    let mut stdout = std::io::stdout();
    loop {
        let ev = match tokio::time::timeout(Duration::from_millis(500), events.next()).await {
            Ok(Some(ev)) => ev,
            Ok(None) => return Err(CliError::Agent("the output stream ended".into())),
            Err(_) => {
                if !taken && started.elapsed() > a.start_timeout {
                    taken = store.get_raw(&record).await?.is_some();
                    if !taken {
                        return Err(CliError::Agent(format!(
                            "no agent took the run of {}/{} job {:?} within {:?}: no ready replica (or none of the leader)",
                            ck.project, ck.name, a.job, a.start_timeout
                        )));
                    }
                }
                continue;
            }
        };
        let kv = match ev {
            Ok(Event::Apply(kv)) | Ok(Event::InitApply(kv)) => kv,
            Ok(_) => continue,
            Err(e) => {
                eprintln!("warning: {e}");
                continue;
            }
        };
        taken = true;
        let part = kv.key.strip_prefix(&prefix).unwrap_or_default();
        if part == "end" {
            let _ = stdout.flush();
            let end: RunEnd = serde_json::from_slice(&kv.value)
                .map_err(|e| CliError::Agent(format!("the run's end does not decode: {e}")))?;
            return Ok(exit_code(&end));
        }
        // `<seq>.out` to stdout, `<seq>.err` to stderr, in order.
        if part.ends_with(".err") {
            let _ = stdout.flush();
            let mut stderr = std::io::stderr();
            let _ = stderr.write_all(&kv.value);
            let _ = stderr.flush();
        } else {
            let _ = stdout.write_all(&kv.value);
            let _ = stdout.flush();
        }
    }
}

fn exit_code(end: &RunEnd) -> ExitCode {
    let r = &end.run;
    match (r.phase, r.exit_code) {
        (RunPhase::Succeeded, _) => ExitCode::SUCCESS,
        (RunPhase::Failed, Some(code)) => {
            eprintln!("job {} exited with code {code} on {}", r.job, r.node);
            ExitCode::from(u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1))
        }
        _ => {
            eprintln!(
                "error: job {} on {}: {:?}{}",
                r.job,
                r.node,
                r.phase,
                r.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            );
            ExitCode::from(1)
        }
    }
}
