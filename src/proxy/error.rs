//! The proxy's one error type.

use std::net::SocketAddr;

/// What can go wrong between a client and a backend. None of these ends the
/// proxy: they end one connection or request, or leave one port unbound.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Another process (or another route) holds the port.
    #[error("binding external port {port} on {addr}: {source}")]
    Bind {
        port: u16,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// No ready, not-draining backend, local or remote, is left to try.
    #[error("external port {port}: no ready backend")]
    NoBackend { port: u16 },
    /// Connecting to a backend failed (nothing reached it).
    #[error("connecting to {backend} at {addr}: {source}")]
    Connect {
        /// The container id, or `remote` for a peer's container.
        backend: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// Connecting to a backend took longer than the connect timeout.
    #[error("connecting to {backend} at {addr}: timed out")]
    ConnectTimeout { backend: String, addr: SocketAddr },
    /// An HTTP exchange with a backend failed after it started.
    #[error("request to {backend} at {addr}: {message}")]
    Backend {
        backend: String,
        addr: SocketAddr,
        message: String,
    },
}
