//! A job's cron schedule (croner) and which ticks are due (pure: the caller
//! passes the times, nothing here reads a clock).
//!
//! A tick is named by its *scheduled* time, never by the clock that fired
//! it: two agents (or one with a clock a second off) firing the same tick
//! name the same etcd key, so the create-if-absent claim lets one run it.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds};
use croner::Cron;

/// Most ticks one `due` call returns: a clock jump forward does not make an
/// agent fire a backlog.
const MAX_DUE: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("invalid cron expression {expr:?}: {cause}")]
    Invalid { expr: String, cause: String },
}

/// A parsed cron expression (5 fields, or 6 with seconds first).
#[derive(Clone, Debug)]
pub struct Schedule {
    cron: Cron,
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, ScheduleError> {
        let invalid = |cause: String| ScheduleError::Invalid {
            expr: expr.to_string(),
            cause,
        };
        let fields = expr.split_whitespace().count();
        // croner also takes 7 fields (years); berth documents 5 or 6.
        if !(5..=6).contains(&fields) {
            return Err(invalid(format!(
                "{fields} fields, expected 5 (minute hour day month weekday) or 6 (seconds first)"
            )));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| invalid(e.to_string()))?;
        Ok(Schedule { cron })
    }

    /// The ticks `t` with `after < t <= now` that are less than `grace` old
    /// at `now`, oldest first (at most [`MAX_DUE`]). Older ones were missed
    /// (agent busy, clock jump) and are skipped: another agent ran them, or
    /// nobody could in time.
    pub fn due(
        &self,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
        grace: chrono::Duration,
    ) -> Vec<DateTime<Utc>> {
        let from = after.max(now - grace);
        let mut out = Vec::new();
        let mut cursor = from;
        while out.len() < MAX_DUE {
            let Ok(next) = self.cron.find_next_occurrence(&cursor, false) else {
                break;
            };
            if next > now {
                break;
            }
            if next > after {
                out.push(next);
            }
            cursor = next;
        }
        out
    }

    /// The first tick after `t`, if any.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&t, false).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, h, m, s)
            .single()
            .expect("time")
    }

    fn check(expr: &str, after: DateTime<Utc>, now: DateTime<Utc>, expected: &[DateTime<Utc>]) {
        let s = Schedule::parse(expr).expect("valid");
        assert_eq!(
            s.due(after, now, chrono::Duration::seconds(5)),
            expected,
            "{expr} after {after} at {now}"
        );
    }

    #[test]
    fn due_ticks() {
        // Every second: the ticks in (after, now].
        check(
            "* * * * * *",
            t(10, 0, 0),
            t(10, 0, 2),
            &[t(10, 0, 1), t(10, 0, 2)],
        );
        // Nothing new yet.
        check("* * * * * *", t(10, 0, 2), t(10, 0, 2), &[]);
        // A tick exactly at `now` is due (fired on time, never early).
        check("0 * * * *", t(9, 59, 59), t(10, 0, 0), &[t(10, 0, 0)]);
        // Older than the grace: missed, not fired late.
        check("0 * * * *", t(9, 59, 59), t(10, 0, 6), &[]);
        check(
            "* * * * * *",
            t(10, 0, 0),
            t(10, 0, 30),
            &[
                t(10, 0, 26),
                t(10, 0, 27),
                t(10, 0, 28),
                t(10, 0, 29),
                t(10, 0, 30),
            ],
        );
        // Every 5 minutes, 5-field form.
        check("*/5 * * * *", t(10, 4, 0), t(10, 5, 1), &[t(10, 5, 0)]);
    }

    #[test]
    fn a_skewed_clock_names_the_same_tick() {
        // Agent A fires at 10:00:00.2, agent B (clock 1 s behind) at its
        // 10:00:00.1: both name the scheduled time 10:00:00.
        let s = Schedule::parse("* * * * * *").expect("valid");
        let a = s.due(
            t(9, 59, 59),
            t(10, 0, 0) + chrono::Duration::milliseconds(200),
            chrono::Duration::seconds(2),
        );
        let b = s.due(
            t(9, 59, 59),
            t(10, 0, 0) + chrono::Duration::milliseconds(100),
            chrono::Duration::seconds(2),
        );
        assert_eq!(a, vec![t(10, 0, 0)]);
        assert_eq!(a, b);
    }

    #[test]
    fn invalid_expressions() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * * *",
            "x * * * *",
            "* * 32 * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["0 * * * *", "*/10 * * * * *", "0 0 1 * *", "@hourly"] {
            let r = Schedule::parse(good);
            // `@hourly` is one field: refused by berth's field count.
            assert_eq!(r.is_ok(), good != "@hourly", "{good:?}: {r:?}");
        }
    }
}
