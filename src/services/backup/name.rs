//! Backup file names: `<job>-<UTC timestamp>.out`, e.g.
//! `dump-20261204T103700Z.out`. Only files that parse as one of a job's own
//! names are ever pruned, so pruning never touches a file berth did not
//! write.

use chrono::{DateTime, NaiveDateTime, Utc};

const STAMP: &str = "%Y%m%dT%H%M%SZ";
const SUFFIX: &str = ".out";

/// The file name of `job`'s backup taken at `at`.
pub fn artifact_name(job: &str, at: DateTime<Utc>) -> String {
    format!("{job}-{}{SUFFIX}", at.format(STAMP))
}

/// When a backup of `job` named `file` was taken; `None` for any file that
/// is not exactly one of `job`'s names (another job's, a user's, a temp file).
pub fn parse_artifact(job: &str, file: &str) -> Option<DateTime<Utc>> {
    let stamp = file
        .strip_prefix(job)?
        .strip_prefix('-')?
        .strip_suffix(SUFFIX)?;
    // Exactly the stamp: `dump-x-2026...` is not `dump`'s.
    if stamp.len() != 16 {
        return None;
    }
    NaiveDateTime::parse_from_str(stamp, STAMP)
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn names_round_trip_and_foreign_files_are_not_ours() {
        let at = Utc
            .with_ymd_and_hms(2026, 12, 4, 10, 37, 0)
            .single()
            .expect("time");
        let name = artifact_name("dump", at);
        assert_eq!(name, "dump-20261204T103700Z.out");
        assert_eq!(parse_artifact("dump", &name), Some(at));
        for foreign in [
            "dump-20261204T103700Z.out.tmp",
            "dump-x-20261204T103700Z.out",
            "dumps-20261204T103700Z.out",
            "other-20261204T103700Z.out",
            "dump-20261399T103700Z.out",
            "notes.txt",
        ] {
            assert_eq!(parse_artifact("dump", foreign), None, "{foreign}");
        }
    }
}
