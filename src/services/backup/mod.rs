//! Rotating backups: each run's standard output stored as a timestamped
//! file, pruned by grandfather-father-son rules ([`retention`]).

pub mod name;
pub mod retention;

pub use name::{artifact_name, parse_artifact};
pub use retention::{prune, Keep};
