//! The link's address made real inside the consumer's container.
//!
//! A listener on `127.0.0.1:PORT` *inside the container's network
//! namespace*: a short-lived std thread enters the namespace
//! (`setns(/proc/<pid>/ns/net)`; it affects that thread only), binds, and
//! hands the socket back; the socket stays in that namespace for its life
//! while tokio accepts on it from any thread. Each connection is relayed to
//! the targets the caller keeps current (the provider's port on this node's proxy,
//! or its local ready containers), so the address inside the container
//! never changes while the provider's containers come and go.
//!
//! Why not the bridge gateway or a published port: host loopback is not
//! reachable from a container, the bridge may be off (`--bridge=none`) and
//! its addresses differ per engine; the container's own loopback always is.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("entering the network namespace of pid {pid}: {source}")]
    Namespace { pid: u32, source: std::io::Error },
    #[error("binding 127.0.0.1:{port} in the container: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("the namespace thread could not start or died")]
    Thread,
}

/// Binds `127.0.0.1:port` in the network namespace of process `pid`. The
/// bind runs on a thread of its own that ends right after (never a tokio
/// or blocking-pool thread: a reused thread would stay in the namespace);
/// the caller awaits the answer, so no worker blocks on the join.
pub async fn bind_in_netns(pid: u32, port: u16) -> Result<std::net::TcpListener, Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("link-bind-{pid}"))
        .spawn(move || {
            let _ = tx.send(bind_here(pid, port));
        })
        .map_err(|_| Error::Thread)?;
    rx.await.map_err(|_| Error::Thread)?
}

/// Enters the namespace (this thread only) and binds there.
fn bind_here(pid: u32, port: u16) -> Result<std::net::TcpListener, Error> {
    crate::util::enter_netns(pid).map_err(|source| Error::Namespace { pid, source })?;
    let l = std::net::TcpListener::bind(("127.0.0.1", port))
        .map_err(|source| Error::Bind { port, source })?;
    l.set_nonblocking(true)
        .map_err(|source| Error::Bind { port, source })?;
    Ok(l)
}

/// Where a connection goes: resolved when specs or endpoints change (see
/// `services::node::links`), read per connection as one `Arc` clone.
pub type Targets = watch::Receiver<Arc<[SocketAddr]>>;

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
            let targets = targets.borrow().clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut conn = conn;
                for t in targets.iter().copied() {
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
