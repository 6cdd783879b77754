//! Which runs this node starts for the ticks that came due (pure): one
//! candidate per tick for once-per-tick jobs (`any`: this node's first ready
//! replica; `leader`: the leader, if it is one of ours), one per replica for
//! `on: all`. Every candidate is still claimed in etcd before it runs.

use chrono::{DateTime, Utc};

use super::record::run_id;
use crate::resource::services::{Job, JobTarget};

/// A run this node will try to claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    pub container: String,
    pub tick: DateTime<Utc>,
    pub run_id: String,
}

/// `ready`: this node's ready replicas of the component; `leader`: the
/// elected container if it is on this node.
pub fn candidates(
    job: &Job,
    ticks: &[DateTime<Utc>],
    ready: &[String],
    leader: Option<&str>,
) -> Vec<Candidate> {
    let mut out = Vec::new();
    for &tick in ticks {
        match job.on {
            JobTarget::Any => {
                if let Some(c) = ready.first() {
                    out.push(Candidate {
                        container: c.clone(),
                        tick,
                        run_id: run_id(tick, None),
                    });
                }
            }
            JobTarget::Leader => {
                if let Some(c) = leader.filter(|l| ready.iter().any(|r| r == l)) {
                    out.push(Candidate {
                        container: c.to_string(),
                        tick,
                        run_id: run_id(tick, None),
                    });
                }
            }
            JobTarget::All => out.extend(ready.iter().map(|c| Candidate {
                container: c.clone(),
                tick,
                run_id: run_id(tick, Some(c)),
            })),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn check(on: JobTarget, ready: &[&str], leader: Option<&str>, expected: &[(&str, &str)]) {
        let job = Job {
            name: "j".into(),
            on,
            ..Job::default()
        };
        let tick = Utc
            .with_ymd_and_hms(2026, 12, 4, 10, 0, 0)
            .single()
            .expect("t");
        let ready: Vec<String> = ready.iter().map(|s| s.to_string()).collect();
        let got: Vec<(String, String)> = candidates(&job, &[tick], &ready, leader)
            .into_iter()
            .map(|c| (c.container, c.run_id))
            .collect();
        let want: Vec<(String, String)> = expected
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want, "{on:?} ready {ready:?} leader {leader:?}");
    }

    #[test]
    fn who_runs_a_tick() {
        check(
            JobTarget::Any,
            &["aaaaaaaaaaaaaaaa", "b"],
            None,
            &[("aaaaaaaaaaaaaaaa", "20261204T100000Z")],
        );
        check(JobTarget::Any, &[], None, &[]);
        check(
            JobTarget::Leader,
            &["a", "b"],
            Some("b"),
            &[("b", "20261204T100000Z")],
        );
        // The leader is elsewhere (or not ready here): not ours to run.
        check(JobTarget::Leader, &["a"], Some("x"), &[]);
        check(JobTarget::Leader, &["a"], None, &[]);
        check(
            JobTarget::All,
            &["aaaaaaaaaaaaaaaa", "b"],
            None,
            &[
                ("aaaaaaaaaaaaaaaa", "20261204T100000Z.aaaaaaaaaaaa"),
                ("b", "20261204T100000Z.b"),
            ],
        );
    }
}
