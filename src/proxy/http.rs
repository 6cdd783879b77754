//! `protocol: http`: HTTP/1.x, balanced per request.
//!
//! The client's connection ends at the proxy (keep-alive included); every
//! request is sent to a backend chosen for it, over a pool of backend
//! connections. h2c (HTTP/2 without TLS) and `Upgrade` (WebSocket) are not
//! supported: a port that needs them uses `protocol: tcp`.

use std::convert::Infallible;
use std::error::Error as _;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use prometheus_client::metrics::counter::Counter;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::connector::NetnsConnector;
use super::dial::Dialer;
use super::drain::OpenGuard;
use super::error::ProxyError;
use super::{Port, ProxyConfig, Target};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// The pooled client to every backend, one per proxy (hyper-util's legacy
/// client pools per `host:port`, i.e. per backend).
pub(crate) struct BackendClient {
    client: Client<NetnsConnector, ReplayBody>,
}

impl BackendClient {
    pub(crate) fn new(config: &ProxyConfig, dialer: Arc<Dialer>) -> BackendClient {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            // Idle backend connections go before a container is likely to
            // be stopped and replaced by another on the same address.
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build(NetnsConnector::new(
                dialer,
                connector,
                config.connect_timeout,
            ));
        BackendClient { client }
    }
}

/// Serves one client connection: HTTP/1.x requests, each forwarded on its own.
pub(crate) async fn serve(
    port: &Arc<Port>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: &CancellationToken,
) {
    let p = port.clone();
    let service = hyper::service::service_fn(move |req| {
        let p = p.clone();
        async move { Ok::<_, Infallible>(forward(&p, req, peer, false).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(port.shared.config.header_read_timeout)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let ended = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            // Requests in flight finish; the connection takes no more.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = ended {
        if e.is_parse() || e.is_parse_status() {
            // hyper answered it (400 and the like); nothing reached a backend.
            port.metrics.request(Some(400));
        }
        tracing::debug!(port = port.number, client = %peer, error = %e, "client connection ended with an error");
    }
}

/// One request: to a backend (another after a connect failure), its
/// response back. Never fails: errors become 502/503 from the proxy.
/// `local_only`: a request a peer forwarded, served by local containers.
pub(crate) async fn forward(
    port: &Port,
    req: Request<Incoming>,
    peer: SocketAddr,
    local_only: bool,
) -> Response<ProxyBody> {
    let resp = exchange(port, req, peer, local_only).await;
    port.metrics.request(Some(resp.status().as_u16()));
    resp
}

async fn exchange(
    port: &Port,
    req: Request<Incoming>,
    peer: SocketAddr,
    local_only: bool,
) -> Response<ProxyBody> {
    if req.method() == Method::CONNECT {
        return local(StatusCode::METHOD_NOT_ALLOWED, "CONNECT is not supported\n");
    }
    let (parts, body) = req.into_parts();
    // Only the path goes on: an absolute-form target names no backend.
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    // Only a peer proxy may name the port; a client's header goes nowhere.
    headers.remove(super::forward::PORT_HEADER);
    forwarded_for(&mut headers, peer.ip());
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));

    let slot = BodySlot::new(body);
    let mut tried: Vec<Target> = Vec::new();
    for attempt in 0..port.shared.config.max_attempts {
        let Some(target) = port.choose(&tried, local_only) else {
            break;
        };
        if attempt > 0 {
            port.metrics.retries.inc();
        }
        let open = target.open();
        let uri = Uri::builder()
            .scheme("http")
            .authority(target.addr.to_string())
            .path_and_query(path.as_str())
            .build();
        let Ok(uri) = uri else {
            return local(StatusCode::BAD_REQUEST, "bad request target\n");
        };
        let mut out = Request::new(slot.body(port.metrics.bytes_in.clone()));
        *out.method_mut() = parts.method.clone();
        *out.uri_mut() = uri;
        *out.headers_mut() = headers.clone();
        if target.is_remote() {
            out.headers_mut()
                .insert(super::forward::PORT_HEADER, HeaderValue::from(port.number));
        }
        let started = tokio::time::Instant::now();
        match port.shared.client.client.request(out).await {
            Ok(resp)
                if target.is_remote()
                    && resp.headers().contains_key(super::forward::UNSERVED_HEADER)
                    && (slot.unsent() || slot.end) =>
            {
                // The peer had no container left for it; nothing reached a
                // backend, so another peer may take it.
                tracing::debug!(port = port.number, backend = %target, "peer has no ready container; trying another");
                tried.push(target);
                continue;
            }
            Ok(resp) => {
                port.metrics
                    .latency
                    .observe(started.elapsed().as_secs_f64());
                let (mut head, body) = resp.into_parts();
                strip_hop_by_hop(&mut head.headers);
                // The request stays counted on its container until the
                // client has the whole body: a drain waits for it.
                let body = ProxyBody::Backend {
                    body,
                    bytes: port.metrics.bytes_out.clone(),
                    _open: open,
                };
                return Response::from_parts(head, body);
            }
            Err(e) => {
                port.metrics.backend_errors.inc();
                let err = ProxyError::Backend {
                    backend: target.to_string(),
                    addr: target.addr,
                    message: chain(&e),
                };
                // A connect error means nothing was sent; the body is still
                // ours if it was never polled. Only then is a retry safe.
                if e.is_connect() && slot.unsent() {
                    tracing::warn!(port = port.number, backend = %target, error = %err, "backend connect failed; trying another");
                    tried.push(target);
                    continue;
                }
                // No answer at all (a container killed under load: its
                // pooled connection reset, or docker-proxy accepting then
                // dropping) to a request that is safe to repeat and has no
                // body: tried again.
                if slot.end && idempotent(&parts.method) {
                    tracing::warn!(port = port.number, backend = %target, error = %err, "backend gave no answer to a repeatable request; trying another");
                    tried.push(target);
                    continue;
                }
                tracing::warn!(port = port.number, backend = %target, error = %err, "request to backend failed");
                return local(StatusCode::BAD_GATEWAY, "backend failed\n");
            }
        }
    }
    let mut resp = if tried.is_empty() {
        tracing::warn!(port = port.number, "no ready backend for request");
        local(StatusCode::SERVICE_UNAVAILABLE, "no ready backend\n")
    } else {
        local(StatusCode::BAD_GATEWAY, "no backend answered\n")
    };
    if local_only {
        // Nothing reached a backend here: the forwarding peer may retry.
        resp.headers_mut().insert(
            super::forward::UNSERVED_HEADER,
            HeaderValue::from_static("1"),
        );
    }
    resp
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// An error with its sources, on one line (hyper's own text is terse).
fn chain(e: &hyper_util::client::legacy::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

pub(crate) fn local(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::Local(Full::new(Bytes::from_static(
        text.as_bytes(),
    ))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Headers about one connection, not the message (RFC 9110 7.6.1): each hop
/// sets its own. Keep-alive and framing between proxy and backend are the
/// proxy's; a backend's `Connection: close` must not close the client's.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        h.remove(n);
    }
}

/// Appends the client's address to `X-Forwarded-For` (earlier hops kept).
pub(crate) fn forwarded_for(h: &mut HeaderMap, client: IpAddr) {
    let client = client.to_canonical().to_string();
    let earlier: Vec<&str> = h
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    let value = if earlier.is_empty() {
        client.clone()
    } else {
        format!("{}, {client}", earlier.join(", "))
    };
    let value = HeaderValue::from_str(&value)
        .or_else(|_| HeaderValue::from_str(&client))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    h.insert(X_FORWARDED_FOR, value);
}

/// The client's request body, held until an attempt first reads it: a
/// request whose backend could not be connected still has it for the next.
struct BodySlot {
    body: Arc<Mutex<Option<Incoming>>>,
    end: bool,
    hint: SizeHint,
}

impl BodySlot {
    fn new(body: Incoming) -> BodySlot {
        BodySlot {
            end: body.is_end_stream(),
            hint: body.size_hint(),
            body: Arc::new(Mutex::new(Some(body))),
        }
    }

    fn body(&self, bytes: Counter) -> ReplayBody {
        ReplayBody {
            slot: self.body.clone(),
            body: None,
            end: self.end,
            hint: self.hint,
            bytes,
        }
    }

    /// Still in the slot: no attempt has read a byte of it.
    fn unsent(&self) -> bool {
        self.body
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

/// The body of one attempt: takes the client's body out of the slot on its
/// first read.
pub(crate) struct ReplayBody {
    slot: Arc<Mutex<Option<Incoming>>>,
    body: Option<Incoming>,
    end: bool,
    hint: SizeHint,
    bytes: Counter,
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if this.body.is_none() {
            this.body = this
                .slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
        }
        let Some(body) = this.body.as_mut() else {
            // Another attempt took it: only after that attempt was sent,
            // and then no other attempt is made. Nothing to send.
            return Poll::Ready(None);
        };
        let frame = Pin::new(body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame {
            if let Some(d) = f.data_ref() {
                this.bytes.inc_by(d.len() as u64);
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().map_or(self.end, Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.body.as_ref().map_or(self.hint, Body::size_hint)
    }
}

/// What the client receives: the proxy's own answer or a backend's body.
pub(crate) enum ProxyBody {
    Local(Full<Bytes>),
    Backend {
        body: Incoming,
        bytes: Counter,
        _open: Option<OpenGuard>,
    },
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Local(full) => match Pin::new(full).poll_frame(cx) {
                Poll::Ready(Some(Ok(f))) => Poll::Ready(Some(Ok(f))),
                Poll::Ready(Some(Err(never))) => match never {},
                Poll::Ready(None) => Poll::Ready(None),
                Poll::Pending => Poll::Pending,
            },
            ProxyBody::Backend { body, bytes, .. } => {
                let frame = Pin::new(body).poll_frame(cx);
                if let Poll::Ready(Some(Ok(f))) = &frame {
                    if let Some(d) = f.data_ref() {
                        bytes.inc_by(d.len() as u64);
                    }
                }
                frame
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Local(full) => full.is_end_stream(),
            ProxyBody::Backend { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Local(full) => full.size_hint(),
            ProxyBody::Backend { body, .. } => body.size_hint(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("close, x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-end-to-end", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-end-to-end"]);
    }

    #[test]
    fn forwarded_for_appends() {
        let mut h = HeaderMap::new();
        forwarded_for(&mut h, "10.0.0.7".parse().expect("ip"));
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.7");
        forwarded_for(&mut h, "::ffff:127.0.0.1".parse().expect("ip"));
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.7, 127.0.0.1");
        let mut h = HeaderMap::new();
        h.insert(X_FORWARDED_FOR, HeaderValue::from_static(" "));
        forwarded_for(&mut h, "::1".parse().expect("ip"));
        assert_eq!(h[&X_FORWARDED_FOR], "::1");
    }
}
