//! Grandfather-father-son pruning (pure): which of a job's backups go.
//!
//! Each rule walks the backups newest first and keeps the newest one of
//! every new period (hour, day, ISO week, month) until it has kept its
//! count; a backup kept by any rule stays. The newest backup always stays,
//! and only files named as the job's backups are considered (see
//! [`super::name`]), so pruning never deletes a file berth did not write.
//!
//! Periods are UTC. In local time a day can have 23 or 25 hours and the
//! hour repeated when clocks go back would fold two backups into one
//! "hour"; UTC periods never do, so a DST change neither loses an hourly
//! backup nor keeps an extra one.

use std::collections::BTreeSet;

use chrono::{DateTime, Datelike, Timelike, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::name::parse_artifact;

/// How many periods of each kind to keep a backup for.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
pub struct Keep {
    #[serde(default)]
    pub hourly: u32,
    #[serde(default)]
    pub daily: u32,
    #[serde(default)]
    pub weekly: u32,
    #[serde(default)]
    pub monthly: u32,
}

impl Keep {
    /// All zeros keeps only the newest backup: refused at apply.
    pub fn is_empty(&self) -> bool {
        *self == Keep::default()
    }
}

/// A period a backup falls in, per rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Period {
    Hour(i32, u32, u32, u32),
    Day(i32, u32, u32),
    IsoWeek(i32, u32),
    Month(i32, u32),
}

type Rule = (u32, fn(DateTime<Utc>) -> Period);

fn rules(keep: &Keep) -> [Rule; 4] {
    [
        (keep.hourly, |t| {
            Period::Hour(t.year(), t.month(), t.day(), t.hour())
        }),
        (keep.daily, |t| Period::Day(t.year(), t.month(), t.day())),
        (keep.weekly, |t| {
            let w = t.iso_week();
            Period::IsoWeek(w.year(), w.week())
        }),
        (keep.monthly, |t| Period::Month(t.year(), t.month())),
    ]
}

/// The files in `files` that are `job`'s backups and no rule keeps, oldest
/// first.
pub fn prune(job: &str, files: &[String], keep: &Keep) -> Vec<String> {
    let mut ours: Vec<(DateTime<Utc>, &String)> = files
        .iter()
        .filter_map(|f| Some((parse_artifact(job, f)?, f)))
        .collect();
    // Newest first; equal times by name, so the result is deterministic.
    ours.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(a.1)));
    let mut kept: BTreeSet<&String> = BTreeSet::new();
    if let Some((_, newest)) = ours.first() {
        kept.insert(newest);
    }
    for (count, period_of) in rules(keep) {
        let mut seen: Option<Period> = None;
        let mut left = count;
        for (t, f) in &ours {
            if left == 0 {
                break;
            }
            let p = period_of(*t);
            if seen != Some(p) {
                seen = Some(p);
                kept.insert(f);
                left -= 1;
            }
        }
    }
    let mut gone: Vec<(DateTime<Utc>, &String)> = ours
        .into_iter()
        .filter(|(_, f)| !kept.contains(f))
        .collect();
    gone.sort();
    gone.into_iter().map(|(_, f)| f.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::backup::artifact_name;
    use chrono::{Duration, TimeZone};

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("an RFC 3339 time")
            .with_timezone(&Utc)
    }

    fn keep(hourly: u32, daily: u32, weekly: u32, monthly: u32) -> Keep {
        Keep {
            hourly,
            daily,
            weekly,
            monthly,
        }
    }

    /// Backups of job `dump` taken at `times` (plus foreign files), pruned
    /// with `keep`: the times whose backups stay.
    fn check(times: &[&str], keep: Keep, want_kept: &[&str]) {
        let mut files: Vec<String> = times.iter().map(|t| artifact_name("dump", at(t))).collect();
        let foreign = [
            "notes.txt",
            "dump-20200101T000000Z.out.partial",
            "db-20200101T000000Z.out",
        ];
        files.extend(foreign.iter().map(|f| f.to_string()));
        let gone = prune("dump", &files, &keep);
        for f in foreign {
            assert!(!gone.iter().any(|g| g == f), "deleted a foreign file {f}");
        }
        let mut kept: Vec<String> = times
            .iter()
            .filter(|t| !gone.contains(&artifact_name("dump", at(t))))
            .map(|t| t.to_string())
            .collect();
        kept.sort();
        let mut want: Vec<String> = want_kept.iter().map(|t| t.to_string()).collect();
        want.sort();
        assert_eq!(kept, want, "{keep:?}");
    }

    #[test]
    fn the_newest_of_each_period_up_to_the_counts() {
        // Hourly 2: the newest in each of the last two hours.
        check(
            &[
                "2026-12-04T08:10:00Z",
                "2026-12-04T09:10:00Z",
                "2026-12-04T09:40:00Z",
                "2026-12-04T10:05:00Z",
            ],
            keep(2, 0, 0, 0),
            &["2026-12-04T09:40:00Z", "2026-12-04T10:05:00Z"],
        );
        // Daily 2 and monthly 2 together: the union.
        check(
            &[
                "2026-11-15T12:00:00Z",
                "2026-11-30T12:00:00Z",
                "2026-12-03T12:00:00Z",
                "2026-12-04T06:00:00Z",
                "2026-12-04T12:00:00Z",
            ],
            keep(0, 2, 0, 2),
            &[
                "2026-11-30T12:00:00Z",
                "2026-12-03T12:00:00Z",
                "2026-12-04T12:00:00Z",
            ],
        );
        // Periods with no backup do not count: daily 2 reaches back past a gap.
        check(
            &[
                "2026-12-01T00:00:00Z",
                "2026-12-02T00:00:00Z",
                "2026-12-04T00:00:00Z",
            ],
            keep(0, 2, 0, 0),
            &["2026-12-02T00:00:00Z", "2026-12-04T00:00:00Z"],
        );
    }

    #[test]
    fn month_and_iso_year_boundaries() {
        // The last minute of January and the first of February: two months.
        check(
            &["2027-01-31T23:59:00Z", "2027-02-01T00:00:00Z"],
            keep(0, 0, 0, 2),
            &["2027-01-31T23:59:00Z", "2027-02-01T00:00:00Z"],
        );
        // 2026-12-29 (Tue) and 2027-01-02 (Sat) are both ISO week 2026-W53;
        // 2027-01-04 (Mon) starts 2027-W01. Weekly 2 keeps one of W53 (its
        // newest) and W01 — though the calendar year changed in W53.
        check(
            &[
                "2026-12-29T12:00:00Z",
                "2027-01-02T12:00:00Z",
                "2027-01-04T12:00:00Z",
            ],
            keep(0, 0, 2, 0),
            &["2027-01-02T12:00:00Z", "2027-01-04T12:00:00Z"],
        );
        // And 2027-12-31 (Fri) is 2027-W52, 2028-01-01 (Sat) too.
        check(
            &["2027-12-31T12:00:00Z", "2028-01-01T12:00:00Z"],
            keep(0, 0, 2, 0),
            &["2027-12-31T12:00:00Z", "2028-01-01T12:00:00Z"][1..],
        );
    }

    #[test]
    fn dst_changes_neither_merge_nor_split_hours() {
        // Europe/Berlin goes back at 2026-10-25 01:00Z: 00:30Z and 01:30Z
        // are both 02:30 local. Periods are UTC, so they are two hours.
        check(
            &["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"],
            keep(2, 0, 0, 0),
            &["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"],
        );
        // It goes forward at 2026-03-29 01:00Z: a 23-hour local day; the
        // UTC day still holds 24 hourly backups, all kept by hourly 24.
        let day: Vec<String> = (0..24)
            .map(|h| (at("2026-03-29T00:15:00Z") + Duration::hours(h)).to_rfc3339())
            .map(|s| s.replace("+00:00", "Z"))
            .collect();
        let day: Vec<&str> = day.iter().map(String::as_str).collect();
        check(&day, keep(24, 0, 0, 0), &day);
        check(&day, keep(0, 1, 0, 0), &day[23..]);
    }

    #[test]
    fn the_newest_always_stays() {
        check(
            &["2026-12-04T08:00:00Z", "2026-12-04T09:00:00Z"],
            keep(0, 0, 0, 0),
            &["2026-12-04T09:00:00Z"],
        );
        check(&[], keep(1, 1, 1, 1), &[]);
        let t = Utc
            .with_ymd_and_hms(2026, 12, 4, 9, 0, 0)
            .single()
            .expect("time");
        assert!(prune("dump", &[artifact_name("dump", t)], &Keep::default()).is_empty());
    }
}
