//! One etcd request, bounded in time, with etcd's error kept typed: the
//! helper every background loop (registration, reporter, assignment) uses.
//!
//! Invariant: no background etcd request waits longer than [`ETCD_TIMEOUT`].

use std::time::Duration;

/// Bound on every etcd request of the agent's background loops.
pub const ETCD_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one etcd call under [`ETCD_TIMEOUT`].
pub async fn etcd<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, String> {
    call(what, fut).await.map_err(|e| e.to_string())
}

/// A failed etcd call, with etcd's error kept typed
/// so "the lease is gone" can be told from "etcd is unreachable".
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{what}: {source}")]
    Etcd {
        what: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("{what}: no answer within {ETCD_TIMEOUT:?}")]
    Timeout { what: String },
    #[error("{0}")]
    Other(String),
}

impl CallError {
    /// Whether etcd answered that the lease does not exist (any more).
    pub fn lease_gone(&self) -> bool {
        matches!(self, CallError::Etcd { source, .. } if lease_gone(source))
    }
}

/// Whether `e` is etcd saying the lease does not exist: etcd-client's
/// keep-alive reports a first answer of TTL 0 as `LeaseKeepAliveError("lease
/// not found")`; a put or txn bound to an expired lease fails with the
/// server's `requested lease not found`.
pub fn lease_gone(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::LeaseKeepAliveError(m) => m == "lease not found",
        etcd_client::Error::GRpcStatus(s) => s.message().contains("requested lease not found"),
        _ => false,
    }
}

/// Runs one etcd call under [`ETCD_TIMEOUT`], keeping etcd's error.
pub async fn call<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, CallError> {
    match tokio::time::timeout(ETCD_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(CallError::Etcd {
            what: what.to_string(),
            source,
        }),
        Err(_) => Err(CallError::Timeout {
            what: what.to_string(),
        }),
    }
}
