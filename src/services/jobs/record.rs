//! The run record of a job (`jobs/<project>/<component>/<job>/<run>`): the
//! claim an agent creates when it takes a tick, then its result. `describe
//! component` lists them as the job's history.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The reason of the cluster event of a run that did not succeed.
pub const JOB_FAILED: &str = "JobFailed";

/// Output kept in a record (its tail).
pub const OUTPUT_TAIL: usize = 2048;

/// Where a run is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum RunPhase {
    /// Claimed and started; no result yet (or its agent died meanwhile).
    Running,
    /// Exit code 0.
    Succeeded,
    /// A non-zero exit code.
    Failed,
    /// Still running at the job's timeout (Docker cannot kill an exec: the
    /// process may go on inside the container).
    TimedOut,
    /// The exec (or the backup file) could not be made.
    Error,
}

/// What started a run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Trigger {
    Schedule,
    Manual,
}

/// One run of a job.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct JobRun {
    pub job: String,
    /// The tick's scheduled time (RFC 3339); for a manual run, its request time.
    pub tick: String,
    pub trigger: Trigger,
    pub node: String,
    /// Docker's container id.
    pub container: String,
    pub phase: RunPhase,
    /// When the agent started it (RFC 3339, milliseconds).
    pub started: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i64>,
    /// The last [`OUTPUT_TAIL`] bytes of stdout and stderr.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub output: String,
    /// Why it is `Error` or `TimedOut`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The backup file written on the node, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact: Option<String>,
}

/// The run id of a tick: its scheduled time, sortable (`20261204T100000Z`),
/// plus the container for jobs that run on every replica.
pub fn run_id(tick: DateTime<Utc>, container: Option<&str>) -> String {
    let stamp = tick.format("%Y%m%dT%H%M%SZ").to_string();
    match container {
        Some(c) => format!("{stamp}.{}", c.get(..12).unwrap_or(c)),
        None => stamp,
    }
}

/// Keeps the last [`OUTPUT_TAIL`] bytes of `s`, cut on a char boundary.
pub fn tail(s: &str) -> String {
    crate::util::tail(s, OUTPUT_TAIL).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn run_ids_sort_by_tick() {
        let a = Utc
            .with_ymd_and_hms(2026, 12, 4, 9, 59, 59)
            .single()
            .expect("t");
        let b = Utc
            .with_ymd_and_hms(2026, 12, 4, 10, 0, 0)
            .single()
            .expect("t");
        assert_eq!(run_id(b, None), "20261204T100000Z");
        assert_eq!(
            run_id(b, Some("0123456789abcdef")),
            "20261204T100000Z.0123456789ab"
        );
        assert!(run_id(a, None) < run_id(b, None));
        assert_eq!(tail(&"é".repeat(2000)).len() % 2, 0);
    }
}
