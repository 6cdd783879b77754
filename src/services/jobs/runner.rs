//! The scheduling loop: every [`POLL`] it looks at this node's ready
//! replicas, computes the ticks due since the last pass, and spawns the
//! claims (and runs) for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::claim::Records;
use super::fire::candidates;
use super::record::Trigger;
use super::run::{claim_and_run, RunSpec};
use super::schedule::Schedule;
use crate::docker::Docker;
use crate::resource::services::Job;
use crate::resource::ComponentKey;
use crate::services::local::{LocalReplicas, Replica};
use crate::services::roles::Leaders;

/// How often due ticks are looked for: a tick starts at most this late.
pub const POLL: Duration = Duration::from_millis(100);

/// A tick older than this when first seen due is skipped, not run late. It
/// covers a busy pass and a clock a second behind; it is well under the
/// records' life ([`super::claim::PRUNE_AFTER`]), so a record never goes
/// while a tick it fences could still fire.
pub const GRACE: chrono::Duration = chrono::Duration::seconds(3);

pub struct Runner {
    /// A run that did not succeed is a cluster event (`JobFailed`).
    pub events: crate::events::Recorder,
    pub node: String,
    pub docker: Docker,
    pub records: Records,
    pub local: Arc<dyn LocalReplicas>,
    pub leaders: Leaders,
}

impl Runner {
    pub async fn run(self, token: CancellationToken) {
        // Per component and job: the schedule text parsed, and the last
        // time looked at (ticks up to it are done). A job first seen now
        // starts with the next tick: no backlog at start.
        let mut last: HashMap<(ComponentKey, String), (String, Schedule, chrono::DateTime<Utc>)> =
            HashMap::new();
        let mut interval = tokio::time::interval(POLL);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = interval.tick() => {}
            }
            let now = Utc::now();
            let by_component = group(self.local.ready());
            let mut seen = Vec::new();
            for (ck, replicas) in &by_component {
                let ready: Vec<String> = replicas.iter().map(|r| r.container.clone()).collect();
                let leader = self.leader_of(ck);
                for job in jobs_of(replicas) {
                    let id = (ck.clone(), job.name.clone());
                    seen.push(id.clone());
                    let entry = match last.get_mut(&id) {
                        Some(e) if e.0 == job.schedule => e,
                        _ => {
                            // Validated at apply; a bad one here is skipped.
                            let Ok(s) = Schedule::parse(&job.schedule) else {
                                continue;
                            };
                            last.insert(id.clone(), (job.schedule.clone(), s, now));
                            continue;
                        }
                    };
                    let ticks = entry.1.due(entry.2, now, GRACE);
                    entry.2 = now;
                    for c in candidates(job, &ticks, &ready, leader.as_deref()) {
                        let spec = RunSpec {
                            key: ck.clone(),
                            job: job.clone(),
                            node: self.node.clone(),
                            container: c.container,
                            tick: c.tick,
                            trigger: Trigger::Schedule,
                            run_id: c.run_id,
                            output: None,
                        };
                        let (records, docker) = (self.records.clone(), self.docker.clone());
                        let (token, events) = (token.clone(), self.events.clone());
                        tokio::spawn(async move {
                            let (ck, node) = (spec.key.clone(), spec.node.clone());
                            let run = tokio::select! {
                                _ = token.cancelled() => return,
                                run = claim_and_run(&records, &docker, spec) => run,
                            };
                            if let Some(e) = run.as_ref().and_then(|r| failure_event(&ck, &node, r))
                            {
                                events.record(e);
                            }
                        });
                    }
                }
            }
            last.retain(|k, _| seen.contains(k));
        }
    }

    fn leader_of(&self, ck: &ComponentKey) -> Option<String> {
        let leaders = self.leaders.lock().unwrap_or_else(|e| e.into_inner());
        leaders
            .get(ck)
            .filter(|e| e.record.node == self.node)
            .map(|e| e.record.container.clone())
    }
}

/// The `JobFailed` event of a run that did not succeed.
fn failure_event(
    ck: &ComponentKey,
    node: &str,
    run: &super::record::JobRun,
) -> Option<crate::events::ClusterEvent> {
    if run.phase == super::record::RunPhase::Succeeded {
        return None;
    }
    let cause = match (run.exit_code, &run.message) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(m)) => m.clone(),
        (None, None) => format!("{:?}", run.phase),
    };
    let message = format!("job {} (tick {}): {cause}", run.job, run.tick);
    Some(crate::events::ClusterEvent::component(
        &ck.project,
        &ck.name,
        node,
        super::record::JOB_FAILED,
        &message,
    ))
}

/// Ready replicas per component.
pub fn group(replicas: Vec<Replica>) -> HashMap<ComponentKey, Vec<Replica>> {
    let mut out: HashMap<ComponentKey, Vec<Replica>> = HashMap::new();
    for r in replicas {
        out.entry(r.key.clone()).or_default().push(r);
    }
    out
}

/// The jobs of a component: those of its newest revision running here.
fn jobs_of(replicas: &[Replica]) -> &[Job] {
    replicas
        .iter()
        .max_by_key(|r| r.revision)
        .map_or(&[], |r| r.template.jobs.as_slice())
}
