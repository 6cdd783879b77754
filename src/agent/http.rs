//! The agent's HTTP endpoints (`--http ADDR`): `/healthz` (the process
//! answers), `/readyz` (containers adopted and assignments listed) and
//! `/metrics` (Prometheus / OpenMetrics text).

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::path::Path;

use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::metrics::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The routes, given the metrics and a readiness flag.
pub fn router(metrics: Metrics, ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/readyz",
            get(move || {
                let ready = *ready.borrow();
                async move {
                    if ready {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (
                            StatusCode::SERVICE_UNAVAILABLE,
                            "not ready: adopting containers or listing assignments\n",
                        )
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let body = metrics.render();
                async move { ([(header::CONTENT_TYPE, OPENMETRICS)], body).into_response() }
            }),
        )
}

/// Binds `addr` and serves until `shutdown`.
pub async fn bind(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

/// Serves `router` on `listener` until `shutdown`, over TLS when `tls` is
/// given (`--api-cert`, `--api-key`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
    tls: Option<TlsAcceptor>,
) {
    if let Some(tls) = tls {
        return serve_tls(listener, router, shutdown, tls).await;
    }
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, "HTTP server failed");
    }
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE: std::time::Duration = std::time::Duration::from_secs(10);

/// The TLS server config from PEM files: the certificate chain and its key.
/// Errors name the file.
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect())
        .map_err(|e| format!("--api-cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--api-cert {}: no certificate in it",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("--api-key {}: {e}", key.display()))?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("--api-cert/--api-key: {e}"))?;
    Ok(TlsAcceptor::from(std::sync::Arc::new(config)))
}

/// Accepts TLS connections and serves each with hyper's HTTP/1 until
/// `shutdown` (connections in progress end with the process).
async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
    tls: TlsAcceptor,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "HTTPS accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (tls, router) = (tls.clone(), router.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE, tls.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = hyper::service::service_fn(move |req| router.clone().oneshot(req));
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "HTTPS connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => panic!("connect: {e}"),
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        if let Err(e) = s.write_all(req.as_bytes()).await {
            panic!("write: {e}");
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        out
    }

    #[tokio::test]
    async fn endpoints() {
        let metrics = Metrics::new();
        metrics.reconciles.inc();
        let (ready_tx, ready_rx) = watch::channel(false);
        let listener = match bind("127.0.0.1:0").await {
            Ok(l) => l,
            Err(e) => panic!("bind: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(a) => a,
            Err(e) => panic!("addr: {e}"),
        };
        let token = CancellationToken::new();
        let server = tokio::spawn(serve(
            listener,
            router(metrics, ready_rx),
            token.clone(),
            None,
        ));
        assert!(get(addr, "/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 503"));
        let _ = ready_tx.send(true);
        assert!(get(addr, "/readyz").await.starts_with("HTTP/1.1 200"));
        let m = get(addr, "/metrics").await;
        assert!(m.contains("berth_agent_reconciles_total 1"), "{m}");
        assert!(m.contains("openmetrics-text"), "{m}");
        token.cancel();
        let _ = server.await;
    }
}
