//! berth's view of the container engine (bollard underneath).
//!
//! [`Docker`] is a cheap-to-clone handle. Every call maps bollard's errors to
//! the one [`Error`] enum and is bounded by its own timeout, so a hung engine
//! never hangs the agent.
//!
//! - [`container`]: create + start, list by label, inspect, stop with a
//!   signal sequence, kill, remove.
//! - [`events`]: the container events stream, raw and resilient (re-opened
//!   with `since` after the engine restarts, with a [`EventItem::Resync`] marker).
//! - [`image`]: `ensure_image` (local fast path, else pull).
//! - [`exec`]: run a command in a container, get its exit code.
//! - [`build`]: make a busybox image with no registry (tests, `berth up`'s example).
//!
//! Invariants:
//! - The API version is negotiated at connect time (Docker 20.10 speaks 1.41).
//! - Published ports are always on 127.0.0.1 with an ephemeral host port, and
//!   every published port is also exposed (20.10 publishes nothing otherwise).
//! - Docker's restart policy is always `no`: berth restarts containers itself.
//! - Stopping or removing a container that is already gone is `Ok`.

pub mod build;
pub mod container;
mod error;
pub mod events;
pub mod exec;
pub mod exec_stream;
pub mod files;
pub mod image;
mod logs;
mod tar;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use build::BusyboxImage;
pub use container::{Bind, ContainerConfig, ContainerDetails, ContainerSummary, Started};
pub use error::{Error, Result};
pub use events::{ContainerEvent, EventItem};
pub use exec::ExecOutput;
pub use exec_stream::{ExecRequest, OutputStream};

/// bollard's own request timeout. It bounds the wait for response headers of
/// every request; berth's calls carry their own, tighter timeouts, and long
/// waits (stops with long grace periods, waiting for exit) stream their body,
/// so this only has to be a generous backstop.
pub const BOLLARD_TIMEOUT: Duration = Duration::from_secs(3600);
/// How long `connect` waits for the engine to answer.
/// The local engine socket, used when neither a host nor `DOCKER_HOST` is given.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";
/// How long `connect` waits for the engine to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default bound of one ordinary API call (create, start, inspect, list...).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// A handle on one Docker engine. Clones share the connection pool.
#[derive(Clone)]
pub struct Docker {
    inner: bollard::Docker,
    host: Arc<str>,
}

impl std::fmt::Debug for Docker {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.debug_struct("Docker").field("host", &self.host).finish()
    }
}

impl Docker {
    /// Connects to `host` (`unix:///path`, `/path`, `tcp://h:p`, `http://h:p`),
    /// else `DOCKER_HOST`, else the local socket, and negotiates the API
    /// version. Fails within [`CONNECT_TIMEOUT`] when no engine answers.
    pub async fn connect(host: Option<&str>) -> Result<Docker> {
        let host = match host.filter(|h| !h.is_empty()) {
            Some(h) => h.to_string(),
            None => std::env::var("DOCKER_HOST")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| DEFAULT_HOST.to_string()),
        };
        let host = if host.starts_with('/') {
            format!("unix://{host}")
        } else {
            host
        };
        let secs = BOLLARD_TIMEOUT.as_secs();
        let version = bollard::API_DEFAULT_VERSION;
        let client = if host.starts_with("unix://") {
            bollard::Docker::connect_with_unix(&host, secs, version)
        } else if host.starts_with("tcp://") || host.starts_with("http://") {
            bollard::Docker::connect_with_http(&host, secs, version)
        } else {
            return Err(Error::Unreachable {
                host,
                message:
                    "unsupported address: expected unix://PATH, tcp://HOST:PORT or http://HOST:PORT"
                        .into(),
            });
        }
        .map_err(|e| Error::from_bollard(e, &host, ""))?;
        let negotiated = tokio::time::timeout(CONNECT_TIMEOUT, client.negotiate_version())
            .await
            .map_err(|_| Error::Unreachable {
                host: host.clone(),
                message: format!("no answer within {CONNECT_TIMEOUT:?}"),
            })?
            .map_err(|e| match Error::from_bollard(e, &host, "") {
                Error::Other(message) => Error::Unreachable {
                    host: host.clone(),
                    message,
                },
                e => e,
            })?;
        Ok(Docker {
            inner: negotiated,
            host: host.into(),
        })
    }

    /// The address this handle talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The negotiated API version (e.g. `1.41`).
    pub fn api_version(&self) -> String {
        let v = self.inner.client_version();
        format!("{}.{}", v.major_version, v.minor_version)
    }

    /// `(engine version, API version)`, e.g. `("20.10.24+dfsg1", "1.41")`.
    pub async fn version(&self) -> Result<(String, String)> {
        let v = self
            .call("version", "", CALL_TIMEOUT, self.inner.version())
            .await?;
        Ok((
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default(),
        ))
    }

    /// The underlying bollard client, for what this module does not cover.
    pub fn bollard(&self) -> &bollard::Docker {
        &self.inner
    }

    /// Runs one bollard call with a timeout, mapping its error.
    pub(crate) async fn call<T>(
        &self,
        what: &str,
        subject: &str,
        timeout: Duration,
        fut: impl Future<Output = Result<T, bollard::errors::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(match Error::from_bollard(e, &self.host, subject) {
                Error::Timeout { after, .. } if after.is_zero() => Error::Timeout {
                    what: format!("{what} {subject}"),
                    after: BOLLARD_TIMEOUT,
                },
                e => e,
            }),
            Err(_) => Err(Error::Timeout {
                what: format!("{what} {subject}").trim().to_string(),
                after: timeout,
            }),
        }
    }
}
