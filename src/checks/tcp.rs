//! TCP probe through a published port.
//!
//! A bare connect proves nothing: docker-proxy accepts on the published port
//! whatever the container does, then dials the container and, if that fails,
//! closes the client connection at once. So the probe connects, then reads
//! for a short hold window:
//! - EOF or a reset within the window: the container refused (fail);
//! - data, or the connection still open at the end of the window: the
//!   container accepted (pass).
//!
//! With the userland proxy disabled (iptables DNAT), a refused container
//! refuses the connect itself, which fails too.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::ProbeResult;

/// How long a connection must stay open to count as accepted by the
/// container. docker-proxy closes in about a millisecond when the container
/// refuses; the margin covers a busy machine.
pub const HOLD: Duration = Duration::from_millis(250);

/// Probes the container port published on `127.0.0.1:{port}`.
pub async fn probe(port: u16, timeout: Duration) -> ProbeResult {
    let hold = HOLD.min(timeout / 2);
    let connect = tokio::time::timeout(
        timeout.saturating_sub(hold),
        TcpStream::connect(("127.0.0.1", port)),
    );
    let mut stream = match connect.await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return ProbeResult::fail(format!("connect to 127.0.0.1:{port}: {e}")),
        Err(_) => return ProbeResult::fail(format!("connect to 127.0.0.1:{port}: timed out")),
    };
    let mut buf = [0u8; 64];
    match tokio::time::timeout(hold, stream.read(&mut buf)).await {
        Err(_) => ProbeResult::pass("connection accepted"),
        Ok(Ok(n)) if n > 0 => ProbeResult::pass("connection accepted (data received)"),
        Ok(Ok(_)) => ProbeResult::fail(format!(
            "connection to 127.0.0.1:{port} closed at once: nothing accepts it in the container"
        )),
        Ok(Err(e)) => ProbeResult::fail(format!("connection to 127.0.0.1:{port} failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn listener() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        (l, port)
    }

    #[tokio::test]
    async fn held_open_passes() {
        let (l, port) = listener().await;
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        assert!(probe(port, Duration::from_secs(2)).await.ok);
    }

    #[tokio::test]
    async fn banner_passes() {
        let (l, port) = listener().await;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"220 hello\r\n").await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let r = probe(port, Duration::from_secs(2)).await;
        assert!(r.ok && r.message.contains("data"), "{r:?}");
    }

    #[tokio::test]
    async fn proxy_closing_at_once_fails() {
        let (l, port) = listener().await;
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                drop(s);
            }
        });
        let r = probe(port, Duration::from_secs(2)).await;
        assert!(!r.ok && r.message.contains("closed at once"), "{r:?}");
    }

    #[tokio::test]
    async fn refused_fails() {
        let (l, port) = listener().await;
        drop(l);
        let r = probe(port, Duration::from_secs(1)).await;
        assert!(!r.ok && r.message.contains("connect"), "{r:?}");
    }
}
