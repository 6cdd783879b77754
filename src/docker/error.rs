//! The one error type of [`crate::docker`], and how bollard's errors map onto it.

use std::time::Duration;

/// Everything that can go wrong talking to the container engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No engine answered at the address (socket missing, connection refused,
    /// no answer within the connect timeout).
    #[error("cannot reach the Docker engine at {host}: {message}")]
    Unreachable { host: String, message: String },
    /// The container (or exec instance) does not exist.
    #[error("no such container: {0}")]
    NotFound(String),
    /// A name is already in use, or the object is in a state that forbids the call.
    #[error("conflict: {0}")]
    Conflict(String),
    /// An image is missing locally and could not be pulled; `message` is
    /// Docker's own text (it goes into an `ImagePullFailed` condition).
    #[error("pulling image {image} failed: {message}")]
    ImagePull { image: String, message: String },
    /// The engine answered with an error status.
    #[error("Docker engine error (HTTP {status}): {message}")]
    Api { status: u16, message: String },
    /// A call did not finish in time.
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    /// Something else (transport, decoding, local I/O).
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Docker's own message for errors that carry one (the text of an
    /// `ImagePullFailed` condition).
    pub fn docker_message(&self) -> String {
        match self {
            Error::ImagePull { message, .. } | Error::Api { message, .. } => message.clone(),
            Error::Conflict(m) | Error::NotFound(m) | Error::Other(m) => m.clone(),
            other => other.to_string(),
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    /// Errors that say the engine is not there (as opposed to refusing a request).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Error::Unreachable { .. })
    }

    /// Maps a bollard error; `subject` names the container/image for `NotFound`.
    pub(crate) fn from_bollard(err: bollard::errors::Error, host: &str, subject: &str) -> Error {
        use bollard::errors::Error as B;
        match err {
            B::DockerResponseServerError {
                status_code,
                message,
            } => match status_code {
                404 => Error::NotFound(if subject.is_empty() {
                    message
                } else {
                    subject.to_string()
                }),
                409 => Error::Conflict(message),
                status => Error::Api { status, message },
            },
            B::RequestTimeoutError => Error::Timeout {
                what: format!("Docker request ({subject})"),
                after: Duration::ZERO,
            },
            B::SocketNotFoundError(path) => Error::Unreachable {
                host: host.to_string(),
                message: format!("socket {path} not found"),
            },
            ref e @ (B::HyperResponseError { .. }
            | B::HyperLegacyError { .. }
            | B::IOError { .. }) => {
                let message = full_chain(e);
                if looks_unreachable(&message) {
                    Error::Unreachable {
                        host: host.to_string(),
                        message,
                    }
                } else {
                    Error::Other(message)
                }
            }
            e => Error::Other(full_chain(&e)),
        }
    }
}

/// The error's message with its sources (hyper hides the useful part in them).
fn full_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        let m = src.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = src.source();
    }
    s
}

fn looks_unreachable(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "connection refused",
        "no such file",
        "not found",
        "connect error",
        "broken pipe",
        "connection reset",
    ]
    .iter()
    .any(|p| m.contains(p))
}
