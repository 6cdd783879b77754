//! HTTP probe: `GET path HTTP/1.0` to 127.0.0.1:<host port>, then the status
//! line decides (2xx and 3xx pass). Reading the status line, not just
//! connecting, is what makes it sound behind docker-proxy, which accepts
//! before the container listens and then closes without a response.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{fmt_duration, ProbeResult};

/// The longest status line read.
const MAX_STATUS_LINE: usize = 1024;

/// Probes `http://127.0.0.1:{port}{path}`.
pub async fn probe(port: u16, path: &str, timeout: Duration) -> ProbeResult {
    match tokio::time::timeout(timeout, status(port, path)).await {
        Ok(Ok(code)) if (200..400).contains(&code) => ProbeResult::pass(format!("HTTP {code}")),
        Ok(Ok(code)) => ProbeResult::fail(format!("GET {path}: HTTP {code}")),
        Ok(Err(message)) => ProbeResult::fail(format!("GET {path}: {message}")),
        Err(_) => ProbeResult::fail(format!(
            "GET {path}: no response within {}",
            fmt_duration(timeout)
        )),
    }
}

/// Sends the request and returns the status code.
pub async fn status(port: u16, path: &str) -> Result<u16, String> {
    let addr = ("127.0.0.1", port);
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let request = format!(
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: berth-probe\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut buf = Vec::with_capacity(128);
    let mut chunk = [0u8; 256];
    loop {
        if let Some(end) = buf.iter().position(|&b| b == b'\n') {
            return parse_status_line(&buf[..end]);
        }
        if buf.len() >= MAX_STATUS_LINE {
            return parse_status_line(&buf);
        }
        match stream.read(&mut chunk).await {
            Ok(0) if buf.is_empty() => {
                return Err(
                    "connection closed without a response (is the container listening?)".into(),
                )
            }
            Ok(0) => return parse_status_line(&buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if buf.is_empty() => return Err(format!("no response: {e}")),
            Err(_) => return parse_status_line(&buf),
        }
    }
}

/// `HTTP/1.1 200 OK` -> 200.
fn parse_status_line(line: &[u8]) -> Result<u16, String> {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end();
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => code
            .parse::<u16>()
            .ok()
            .filter(|c| (100..600).contains(c))
            .ok_or_else(|| bad(line)),
        _ => Err(bad(line)),
    }
}

fn bad(line: &str) -> String {
    let shown: String = line.chars().take(80).collect();
    format!("not an HTTP response: {shown:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A one-shot server answering each connection with `reply` (then closing).
    async fn server(reply: &'static [u8]) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).await;
                let _ = s.write_all(reply).await;
            }
        });
        port
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r"), Ok(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 302 Found"), Ok(302));
        assert!(parse_status_line(b"SSH-2.0-OpenSSH").is_err());
        assert!(parse_status_line(b"HTTP/1.1 abc").is_err());
    }

    #[tokio::test]
    async fn passes_on_2xx_3xx_fails_otherwise() {
        let t = Duration::from_secs(2);
        let ok = server(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
        assert!(probe(ok, "/", t).await.ok);
        let redirect = server(b"HTTP/1.1 301 Moved\r\n\r\n").await;
        assert!(probe(redirect, "/", t).await.ok);
        let err = server(b"HTTP/1.1 503 Unavailable\r\n\r\n").await;
        let r = probe(err, "/health", t).await;
        assert!(!r.ok && r.message.contains("503"), "{r:?}");
        // docker-proxy with nothing behind it: accept, then close.
        let closed = server(b"").await;
        let r = probe(closed, "/", t).await;
        assert!(!r.ok && r.message.contains("closed"), "{r:?}");
    }

    #[tokio::test]
    async fn refused_and_silent() {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        drop(l);
        let r = probe(port, "/", Duration::from_secs(1)).await;
        assert!(!r.ok && r.message.contains("connect"), "{r:?}");
        // Accepts and never answers.
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = l.local_addr().expect("addr").port();
        let _keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = l.accept().await {
                held.push(s);
            }
        });
        let r = probe(port, "/", Duration::from_millis(200)).await;
        assert!(!r.ok && r.message.contains("no response"), "{r:?}");
    }
}
