//! Backup artifacts on the node's disk: a run's stdout goes to a hidden
//! partial file, which becomes `<job>-<stamp>.out` only when the run
//! succeeded; then the job's own files are pruned ([`super::prune`]).
//!
//! Writes are small chunks to a local file, done in place on the runtime
//! thread (a `BufWriter` batches them), as the rest of the output handling.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{artifact_name, prune, Keep};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("backup {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One backup being written.
pub struct BackupWriter {
    dir: PathBuf,
    job: String,
    name: String,
    partial: PathBuf,
    out: BufWriter<File>,
    /// The first write error; the backup is then abandoned at `commit`.
    failed: Option<std::io::Error>,
}

impl BackupWriter {
    /// Starts `job`'s backup taken at `at` in `dir` (created if missing).
    pub fn begin(dir: &Path, job: &str, at: DateTime<Utc>) -> Result<BackupWriter, BackupError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let name = artifact_name(job, at);
        // A dot file with a suffix: never one of the job's names, so a
        // crash leaves nothing pruning would mistake for a backup.
        let partial = dir.join(format!(".{name}.partial"));
        let file = File::create(&partial).map_err(io(&partial))?;
        Ok(BackupWriter {
            dir: dir.to_path_buf(),
            job: job.to_string(),
            name,
            partial,
            out: BufWriter::new(file),
            failed: None,
        })
    }

    pub fn write(&mut self, bytes: &[u8]) {
        if self.failed.is_none() {
            if let Err(e) = self.out.write_all(bytes) {
                self.failed = Some(e);
            }
        }
    }

    /// Makes the backup final and prunes the job's older ones: the
    /// artifact's path and the files removed.
    pub fn commit(mut self, keep: &Keep) -> Result<(PathBuf, Vec<String>), BackupError> {
        if let Some(e) = self.failed.take() {
            let _ = fs::remove_file(&self.partial);
            return Err(io(&self.partial)(e));
        }
        let flushed = self.out.flush().and_then(|_| self.out.get_ref().sync_all());
        if let Err(e) = flushed {
            let _ = fs::remove_file(&self.partial);
            return Err(io(&self.partial)(e));
        }
        let path = self.dir.join(&self.name);
        fs::rename(&self.partial, &path).map_err(io(&path))?;
        let removed = prune_dir(&self.dir, &self.job, keep)?;
        Ok((path, removed))
    }

    /// Drops the partial file (the run failed).
    pub fn abandon(self) {
        let _ = fs::remove_file(&self.partial);
    }
}

/// Removes the job's backups in `dir` that no rule keeps; returns their names.
pub fn prune_dir(dir: &Path, job: &str, keep: &Keep) -> Result<Vec<String>, BackupError> {
    let names: Vec<String> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    let gone = prune(job, &names, keep);
    for name in &gone {
        let p = dir.join(name);
        fs::remove_file(&p).map_err(io(&p))?;
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, h, 0, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn commit_writes_the_artifact_and_prunes_only_the_jobs_files() {
        let dir = tempfile::tempdir().expect("dir");
        fs::write(dir.path().join("notes.txt"), "mine").expect("write");
        fs::write(dir.path().join("other-20261204T000000Z.out"), "x").expect("write");
        let keep = Keep {
            hourly: 2,
            ..Keep::default()
        };
        for h in 0..4 {
            let mut w = BackupWriter::begin(dir.path(), "dump", at(h)).expect("begin");
            w.write(format!("backup {h}\n").as_bytes());
            w.commit(&keep).expect("commit");
        }
        let mut left: Vec<String> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "dump-20261204T020000Z.out",
                "dump-20261204T030000Z.out",
                "notes.txt",
                "other-20261204T000000Z.out"
            ]
        );
        let newest =
            fs::read_to_string(dir.path().join("dump-20261204T030000Z.out")).expect("read");
        assert_eq!(newest, "backup 3\n");
        // An abandoned run leaves nothing.
        let w = BackupWriter::begin(dir.path(), "dump", at(5)).expect("begin");
        w.abandon();
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 4);
    }
}
