//! The forwarding listener (`--forward-port`): where a peer's proxy sends
//! new connections or requests for which it has no ready local container.
//!
//! What arrives here is served by this node's local containers only, never
//! sent on to another peer, so forwarding cannot loop: a client's bytes cross
//! at most two proxies. Both protocols share the one listener:
//!
//! - `tcp`: the peer writes `BERTH-FWD <external port>\n`, then the client's
//!   bytes; the rest of the connection is piped as on the external port.
//! - `http`: plain HTTP/1.1 from the peer's pooled client, each request
//!   naming its external port in `x-berth-forward-port` (removed before the
//!   request goes on to a container).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderName;
use hyper::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use super::{http, tcp, Shared};

/// The first bytes of a forwarded tcp connection. No HTTP method starts so.
pub(crate) const PREAMBLE: &[u8] = b"BERTH-FWD ";
/// The external port of a forwarded HTTP request.
pub(crate) const PORT_HEADER: HeaderName = HeaderName::from_static("x-berth-forward-port");

/// A peer must send its first bytes within this time.
const FIRST_BYTES: Duration = Duration::from_secs(10);
/// Longest preamble line: `BERTH-FWD 65535\n` with room to spare.
const MAX_LINE: usize = 32;

/// Writes the preamble of a forwarded tcp connection for `port`.
pub(crate) async fn send_preamble(stream: &mut TcpStream, port: u16) -> std::io::Result<()> {
    let line = format!("BERTH-FWD {port}\n");
    stream.write_all(line.as_bytes()).await
}

/// The one byte a peer's forwarding listener sends once a local container
/// took the forwarded tcp connection.
const ACCEPTED: u8 = b'+';

/// Tells the forwarding peer its connection reached a local container.
pub(crate) async fn send_accept(stream: &mut TcpStream) -> std::io::Result<()> {
    stream.write_all(&[ACCEPTED]).await
}

/// Waits for the peer's [`send_accept`]; anything else (it closed: no local
/// container took it) is an error.
pub(crate) async fn read_accept(stream: &mut TcpStream) -> std::io::Result<()> {
    match stream.read_u8().await? {
        ACCEPTED => Ok(()),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "peer has no ready container",
        )),
    }
}

/// Answer header of a forwarded HTTP request no local container took:
/// nothing reached a backend, so the forwarding peer may try another.
pub(crate) const UNSERVED_HEADER: HeaderName = HeaderName::from_static("x-berth-unserved");

/// Binds `addr` (retrying every `rebind_interval` while another process
/// holds it) and serves forwarded traffic until `shutdown`.
pub(crate) async fn listen(shared: Arc<Shared>, addr: SocketAddr, shutdown: CancellationToken) {
    let socket = loop {
        match TcpListener::bind(addr).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "cannot bind the forwarding port; peers cannot forward here");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(shared.config.rebind_interval) => {}
                }
            }
        }
    };
    tracing::info!(%addr, "forwarding port listening");
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = socket.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve(shared.clone(), stream, peer, shutdown.clone()));
            }
            Err(e) => {
                tracing::warn!(%addr, error = %e, "accepting a forwarded connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// What the first bytes of a forwarded connection say.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Tcp,
    Http,
    /// Not enough bytes yet to tell.
    Unsure,
}

fn kind(first: &[u8]) -> Kind {
    let n = first.len().min(PREAMBLE.len());
    if first[..n] != PREAMBLE[..n] {
        Kind::Http
    } else if n == PREAMBLE.len() {
        Kind::Tcp
    } else {
        Kind::Unsure
    }
}

async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let kind = tokio::time::timeout(FIRST_BYTES, peek_kind(&stream)).await;
    match kind {
        Ok(Ok(Kind::Tcp)) => serve_tcp(shared, stream, peer, shutdown).await,
        Ok(Ok(_)) => serve_http(shared, stream, peer, shutdown).await,
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "forwarded connection ended early"),
        Err(_) => tracing::debug!(%peer, "forwarded connection sent nothing"),
    }
}

/// Peeks (consumes nothing) until the first bytes tell the protocol.
async fn peek_kind(stream: &TcpStream) -> std::io::Result<Kind> {
    let mut buf = [0u8; PREAMBLE.len()];
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        match kind(&buf[..n]) {
            Kind::Unsure => {
                // A preamble split over segments: rare, wait for the rest.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            k => return Ok(k),
        }
    }
}

async fn serve_tcp(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let port = match read_preamble(&mut stream).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%peer, error = %e, "bad forwarding preamble");
            return;
        }
    };
    let Some(port) = shared.port(port) else {
        tracing::warn!(%peer, port, "forwarded connection for a port not served here");
        return;
    };
    port.metrics.connections.inc();
    port.metrics.connections_open.inc();
    tcp::serve(&port, stream, peer, &shutdown, true).await;
    port.metrics.connections_open.dec();
}

/// Reads `BERTH-FWD <port>\n` byte by byte: nothing after it is consumed.
async fn read_preamble(stream: &mut TcpStream) -> std::io::Result<u16> {
    let mut line = Vec::with_capacity(MAX_LINE);
    loop {
        let b = stream.read_u8().await?;
        if b == b'\n' {
            break;
        }
        if line.len() == MAX_LINE {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "preamble too long",
            ));
        }
        line.push(b);
    }
    std::str::from_utf8(&line)
        .ok()
        .and_then(|l| l.strip_prefix("BERTH-FWD "))
        .and_then(|p| p.trim().parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "bad preamble"))
}

async fn serve_http(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: CancellationToken,
) {
    let s = shared.clone();
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let s = s.clone();
        async move {
            let number = req
                .headers()
                .get(PORT_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u16>().ok());
            let resp = match number.and_then(|n| s.port(n)) {
                Some(port) => http::forward(&port, req, peer, true).await,
                None => {
                    let mut r = http::local(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "forwarded request for a port not served here\n",
                    );
                    r.headers_mut().insert(
                        UNSERVED_HEADER,
                        hyper::header::HeaderValue::from_static("1"),
                    );
                    r
                }
            };
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.config.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "forwarded HTTP connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_bytes_tell_the_protocol() {
        assert_eq!(kind(b"BERTH-FWD 80"), Kind::Tcp);
        assert_eq!(kind(b"BERTH-FWD "), Kind::Tcp);
        assert_eq!(kind(b"BER"), Kind::Unsure);
        assert_eq!(kind(b"GET / HTTP/1.1"), Kind::Http);
        assert_eq!(kind(b"B"), Kind::Unsure);
        assert_eq!(kind(b"BERT "), Kind::Http);
    }
}
