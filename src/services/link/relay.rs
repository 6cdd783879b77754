//! The link's address made real inside the consumer's container.
//!
//! A listener on `127.0.0.1:PORT` *inside the container's network
//! namespace*: a short-lived std thread enters the namespace
//! (`setns(/proc/<pid>/ns/net)`; it affects that thread only), binds, and
//! hands the socket back; the socket stays in that namespace for its life
//! while tokio accepts on it from any thread. Each connection is relayed to
//! the targets the caller gives (the provider's port on this node's proxy,
//! or its local ready containers), so the address inside the container
//! never changes while the provider's containers come and go.
//!
//! Why not the bridge gateway or a published port: host loopback is not
//! reachable from a container, the bridge may be off (`--bridge=none`) and
//! its addresses differ per engine; the container's own loopback always is.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("entering the network namespace of pid {pid}: {source}")]
    Namespace { pid: u32, source: std::io::Error },
    #[error("binding 127.0.0.1:{port} in the container: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("the namespace thread died")]
    Thread,
}

/// Binds `127.0.0.1:port` in the network namespace of process `pid`.
pub fn bind_in_netns(pid: u32, port: u16) -> Result<std::net::TcpListener, Error> {
    std::thread::spawn(move || {
        // This thread ends right after the bind.
        crate::util::enter_netns(pid).map_err(|source| Error::Namespace { pid, source })?;
        let l = std::net::TcpListener::bind(("127.0.0.1", port))
            .map_err(|source| Error::Bind { port, source })?;
        l.set_nonblocking(true)
            .map_err(|source| Error::Bind { port, source })?;
        Ok(l)
    })
    .join()
    .map_err(|_| Error::Thread)?
}

/// Where a connection goes, asked per connection (routes change).
pub type Targets = Arc<dyn Fn() -> Vec<SocketAddr> + Send + Sync>;

/// Accepts on `listener` until `stop`, relaying each connection to the
/// first target that accepts a connect.
pub fn spawn(listener: std::net::TcpListener, targets: Targets, stop: CancellationToken) {
    tokio::spawn(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "link listener");
                return;
            }
        };
        loop {
            let (conn, _) = tokio::select! {
                _ = stop.cancelled() => return,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::debug!(error = %e, "link accept");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let targets = targets();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut conn = conn;
                for t in targets {
                    if let Ok(mut up) = TcpStream::connect(t).await {
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = tokio::io::copy_bidirectional(&mut conn, &mut up) => {}
                        }
                        return;
                    }
                }
                tracing::debug!("link: no target accepted the connection");
            });
        }
    });
}
