//! `protocol: tcp`: each client connection is piped to one backend.
//!
//! Until the backend sends its first byte, what the client sent is kept
//! (up to [`REPLAY_LIMIT`]): a backend that closes or resets without a byte
//! of answer is treated like one that refused the connect, and the kept
//! bytes go to another backend. That is the case of a container killed a
//! moment ago: Docker's userland proxy on its published port still accepts,
//! then drops the connection, and the agent has not yet taken the container
//! out of the routes. Only a new connection is replayed: one dropped within
//! the connect timeout of its connect, by a container not draining (one cut
//! at the end of its drain is cut for good). (Known limit: a backend that
//! reads a request and closes at once without answering gets that request
//! again on another backend.)

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::Port;

/// Client bytes kept for a replay; a client that sends more before the
/// backend answers is not replayed.
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// How the first exchange with one backend ended.
enum First {
    /// The backend sent a byte (forwarded to the client): piping goes on.
    Answered,
    /// The backend closed or reset with nothing sent; the client's bytes
    /// so far are kept for the next backend (if within the limit).
    Unanswered { replayable: bool, error: String },
    /// The client went away (or the proxy is stopping).
    Done,
}

/// Serves one client connection: connect a backend (retrying others), then
/// pump bytes both ways until either side closes or the proxy shuts down.
/// A client for which no backend answers is closed without a byte.
/// `local_only`: a connection a peer forwarded, served by local containers.
pub(crate) async fn serve(
    port: &Port,
    mut client: TcpStream,
    peer: SocketAddr,
    shutdown: &CancellationToken,
    local_only: bool,
) {
    let mut tried = Vec::new();
    let mut kept: Vec<u8> = Vec::new();
    let mut client_done = false;
    let mut accepted = false;
    loop {
        let (mut backend, target, _open) = match port.connect(local_only, &mut tried).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(port = port.number, client = %peer, error = %e, "no backend for connection");
                return;
            }
        };
        if local_only && !accepted {
            // Tells the forwarding peer a container took it (see `forward`).
            if let Err(e) = super::forward::send_accept(&mut client).await {
                tracing::debug!(port = port.number, client = %peer, error = %e, "forwarding peer went away");
                return;
            }
            accepted = true;
        }
        let connected = tokio::time::Instant::now();
        let first = first_exchange(
            port,
            &mut client,
            &mut backend,
            &mut kept,
            &mut client_done,
            shutdown,
        )
        .await;
        match first {
            First::Answered => {
                pipe(port, &mut client, &mut backend, peer, &target, shutdown).await;
                return;
            }
            First::Done => return,
            First::Unanswered { replayable, error } => {
                port.metrics.backend_errors.inc();
                let fresh =
                    connected.elapsed() < port.shared.config.connect_timeout && !target.draining();
                if !replayable || !fresh {
                    tracing::warn!(port = port.number, backend = %target, client = %peer, %error,
                        "backend closed without answering; not tried elsewhere");
                    return;
                }
                tracing::warn!(port = port.number, backend = %target, client = %peer, %error,
                    "backend closed without answering; trying another");
                tried.push(target);
            }
        }
    }
}

/// Relays until the backend's first byte, keeping what the client sends.
async fn first_exchange(
    port: &Port,
    client: &mut TcpStream,
    backend: &mut TcpStream,
    kept: &mut Vec<u8>,
    client_done: &mut bool,
    shutdown: &CancellationToken,
) -> First {
    let unanswered = |kept: &Vec<u8>, error: String| First::Unanswered {
        replayable: kept.len() <= REPLAY_LIMIT,
        error,
    };
    // A replay: the bytes the last backend got go to this one first.
    if !kept.is_empty() {
        if let Err(e) = backend.write_all(kept).await {
            return unanswered(kept, e.to_string());
        }
    }
    if *client_done {
        if let Err(e) = backend.shutdown().await {
            return unanswered(kept, e.to_string());
        }
    }
    let mut from_client = vec![0u8; 16 * 1024];
    let mut from_backend = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return First::Done,
            r = client.read(&mut from_client), if !*client_done => match r {
                Ok(0) => {
                    *client_done = true;
                    if let Err(e) = backend.shutdown().await {
                        return unanswered(kept, e.to_string());
                    }
                }
                Ok(n) => {
                    port.metrics.bytes_in.inc_by(n as u64);
                    if kept.len() <= REPLAY_LIMIT {
                        kept.extend_from_slice(&from_client[..n]);
                    }
                    if let Err(e) = backend.write_all(&from_client[..n]).await {
                        return unanswered(kept, e.to_string());
                    }
                }
                Err(_) => return First::Done,
            },
            r = backend.read(&mut from_backend) => match r {
                Ok(0) => return unanswered(kept, "closed".into()),
                Ok(n) => {
                    port.metrics.bytes_out.inc_by(n as u64);
                    if client.write_all(&from_backend[..n]).await.is_err() {
                        return First::Done;
                    }
                    return First::Answered;
                }
                Err(e) => return unanswered(kept, e.to_string()),
            },
        }
    }
}

/// The rest of the connection, both ways, once the backend has answered.
async fn pipe(
    port: &Port,
    client: &mut TcpStream,
    backend: &mut TcpStream,
    peer: SocketAddr,
    target: &super::Target,
    shutdown: &CancellationToken,
) {
    tokio::select! {
        r = tokio::io::copy_bidirectional(client, backend) => match r {
            Ok((to_backend, to_client)) => {
                port.metrics.bytes_in.inc_by(to_backend);
                port.metrics.bytes_out.inc_by(to_client);
            }
            // A reset by either side ends the pair; it is the peers' business,
            // so only debug (it names the container for whoever looks).
            Err(e) => tracing::debug!(port = port.number, backend = %target, client = %peer, error = %e, "connection ended with an error"),
        },
        _ = shutdown.cancelled() => {}
    }
}
