//! The one error type commands return; each prints as one line.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Agent(String),
    /// A problem with the input found only by looking at etcd (a missing reference).
    #[error("{0}")]
    Input(String),
    /// `wait` or `drain` ran out of time; the message says what was left.
    #[error("{0}")]
    Timeout(String),
}

impl CliError {
    /// 2 for command-line usage errors (as clap does), 1 for everything else.
    /// `diff` maps its own errors to 2, since 1 means "differences found".
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}
