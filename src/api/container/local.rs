//! What the API asks of the agent it runs in for that agent's own
//! containers. The agent implements it (`agent::actions`); the API knows
//! nothing of Docker or the agent's state.

use futures::stream::BoxStream;

/// A container's output as the engine sends it.
pub type LogStream = BoxStream<'static, Result<bytes::Bytes, String>>;

/// `?tail=N&follow=true`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Last lines to send first; `None`: all.
    pub tail: Option<u32>,
    /// Keep streaming until the container stops or the client goes.
    pub follow: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// The container is not (or no longer) on this node.
    #[error("container {0} is not on this node")]
    NotHere(String),
    /// Its state forbids the action (e.g. not running, being stopped).
    #[error("{0}")]
    Refused(String),
    /// The engine failed.
    #[error("Docker: {0}")]
    Docker(String),
}

/// The agent's side of the per-container routes.
pub trait LocalContainers: Send + Sync {
    /// This agent's node name.
    fn node(&self) -> &str;

    /// Starts a restart in place (drain, stop, start the same container);
    /// returns at once with what was started. Refused unless it runs.
    fn restart(&self, id: &str) -> Result<String, LocalError>;

    /// The container's output (running or exited). The engine's errors
    /// come as items of the stream (it is sent on the first poll).
    fn logs(&self, id: &str, opts: LogOptions) -> Result<LogStream, LocalError>;
}
