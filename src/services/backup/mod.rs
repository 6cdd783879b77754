//! Rotating backups: each run's standard output stored as a timestamped
//! file, pruned by grandfather-father-son rules ([`retention`]); the files
//! themselves are written by [`store`].

pub mod name;
pub mod retention;
pub mod store;

pub use name::{artifact_name, parse_artifact};
pub use retention::{prune, Keep};
pub use store::{BackupError, BackupWriter};
