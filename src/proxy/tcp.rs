//! `protocol: tcp`: each client connection is piped to one backend.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::Port;

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
    let (mut backend, target, _open) = match port.connect(local_only).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(port = port.number, client = %peer, error = %e, "no backend for connection");
            return;
        }
    };
    if local_only {
        if let Err(e) = super::forward::send_accept(&mut client).await {
            tracing::debug!(port = port.number, client = %peer, error = %e, "forwarding peer went away");
            return;
        }
    }
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut backend) => match r {
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
