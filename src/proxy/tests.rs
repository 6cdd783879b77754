//! Socket tests of the proxy: real listeners on 127.0.0.1, tokio backends
//! inside the test, no Docker. Waits are only for positive signals (a port
//! bound, a response, a count reaching a value), each bounded by `LONG`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::*;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// Bound for waiting on something that must happen (never slept through).
const LONG: Duration = Duration::from_secs(10);

async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(LONG, f).await {
        Ok(v) => v,
        Err(_) => panic!("timed out waiting for {what}"),
    }
}

/// A port free right now (the kernel's pick, released again).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind((LOCAL, 0)).expect("bind");
    l.local_addr().expect("addr").port()
}

/// An address where nothing listens: connects are refused.
fn dead_addr() -> SocketAddr {
    SocketAddr::new(LOCAL, free_port())
}

struct Harness {
    proxy: Proxy,
    routes: watch::Sender<Routes>,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Harness {
    fn start(routes: Routes) -> Harness {
        let (tx, rx) = watch::channel(routes);
        let shutdown = CancellationToken::new();
        let mut config = ProxyConfig::new(LOCAL);
        config.connect_timeout = Duration::from_secs(2);
        let proxy = Proxy::start(config, ProxyMetrics::new(), rx, shutdown.clone());
        Harness {
            proxy,
            routes: tx,
            shutdown,
        }
    }

    /// Waits until `port` has a status, and returns it.
    async fn status(&self, port: u16) -> PortStatus {
        let mut rx = self.proxy.ports();
        let s = within("port status", rx.wait_for(|m| m.contains_key(&port))).await;
        match s {
            Ok(m) => m[&port].clone(),
            Err(e) => panic!("proxy gone: {e}"),
        }
    }

    async fn bound(&self, port: u16) -> SocketAddr {
        match self.status(port).await {
            PortStatus::Bound(a) => a,
            PortStatus::Failed(e) => panic!("port {port} not bound: {e}"),
        }
    }

    /// Waits until the container's open count is `n`.
    async fn open_is(&self, id: &str, n: u64) {
        within(&format!("{id} open = {n}"), async {
            while self.proxy.open_connections().get(id).copied().unwrap_or(0) != n {
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
        .await;
    }
}

fn route(protocol: Protocol, backends: &[(&str, SocketAddr)]) -> Route {
    Route {
        backends: backends
            .iter()
            .map(|(id, addr)| Backend {
                container_id: id.to_string(),
                addr: *addr,
                container_port: None,
            })
            .collect(),
        ..Route::new(ComponentKey::new("shop", "web"), protocol)
    }
}

fn table(ports: impl IntoIterator<Item = (u16, Route)>) -> Routes {
    Routes {
        ports: ports.into_iter().collect(),
    }
}

/// A tcp backend: greets each connection with its name and a newline, then
/// holds it open until the client closes.
async fn tcp_backend(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind((LOCAL, 0)).await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                if s.write_all(format!("{name}\n").as_bytes()).await.is_ok() {
                    let mut sink = Vec::new();
                    let _ = s.read_to_end(&mut sink).await;
                }
            });
        }
    });
    addr
}

/// Connects through the proxy and returns the backend's greeting and the
/// still-open connection.
async fn tcp_hello(addr: SocketAddr) -> (String, BufReader<TcpStream>) {
    let s = TcpStream::connect(addr).await.expect("connect to proxy");
    let mut r = BufReader::new(s);
    let mut line = String::new();
    within("greeting", r.read_line(&mut line))
        .await
        .expect("read");
    (line.trim().to_string(), r)
}

/// An http backend. Answers its name in `x-backend` and the body, and the
/// forwarding headers it saw; `/slow` reports on `started` and answers once
/// `release` turns true.
#[derive(Clone)]
struct HttpBackend {
    name: &'static str,
    hits: Arc<AtomicUsize>,
    started: mpsc::UnboundedSender<()>,
    release: watch::Receiver<bool>,
}

async fn http_backend(
    name: &'static str,
) -> (
    SocketAddr,
    Arc<AtomicUsize>,
    mpsc::UnboundedReceiver<()>,
    watch::Sender<bool>,
) {
    let l = TcpListener::bind((LOCAL, 0)).await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let (started, started_rx) = mpsc::unbounded_channel();
    let (release, release_rx) = watch::channel(false);
    let b = HttpBackend {
        name,
        hits: hits.clone(),
        started,
        release: release_rx,
    };
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let b = b.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let b = b.clone();
                    async move {
                        b.hits.fetch_add(1, Ordering::SeqCst);
                        if req.uri().path() == "/slow" {
                            let _ = b.started.send(());
                            let mut r = b.release.clone();
                            let _ = r.wait_for(|go| *go).await;
                        }
                        let seen = |h: &str| {
                            req.headers()
                                .get(h)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-")
                                .to_string()
                        };
                        let echo = req.method() == hyper::Method::POST;
                        let xff = seen("x-forwarded-for");
                        let xfp = seen("x-forwarded-proto");
                        let body = if echo {
                            match req.into_body().collect().await {
                                Ok(c) => c.to_bytes(),
                                Err(_) => Bytes::from_static(b"body error"),
                            }
                        } else {
                            Bytes::from(b.name)
                        };
                        Response::builder()
                            .header("x-backend", b.name)
                            .header("x-seen-xff", xff)
                            .header("x-seen-xfp", xfp)
                            .body(http_body_util::Full::new(body))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, hits, started_rx, release)
}

/// One keep-alive client connection to the proxy.
struct Client {
    send: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).await.expect("connect to proxy");
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Client { send }
    }

    /// GET `path`: status, headers and body.
    async fn get(&mut self, path: &str) -> (u16, hyper::HeaderMap, String) {
        within("ready", self.send.ready())
            .await
            .expect("client connection closed");
        let req = Request::builder()
            .uri(path)
            .header("host", "proxy.test")
            .body(Empty::new())
            .expect("request");
        let resp = within("response", self.send.send_request(req))
            .await
            .expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = within("body", resp.into_body().collect())
            .await
            .expect("body")
            .to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }
}

#[tokio::test]
async fn tcp_new_connections_go_to_the_least_loaded_backend() {
    let a = tcp_backend("a").await;
    let b = tcp_backend("b").await;
    let c = tcp_backend("c").await;
    let port = free_port();
    let h = Harness::start(table([(
        port,
        route(Protocol::Tcp, &[("a", a), ("b", b), ("c", c)]),
    )]));
    let addr = h.bound(port).await;
    let mut held = Vec::new();
    let mut per: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..6 {
        let (name, conn) = tcp_hello(addr).await;
        *per.entry(name).or_default() += 1;
        held.push(conn);
    }
    assert_eq!(
        per,
        BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)])
    );
    assert_eq!(
        h.proxy.open_connections(),
        BTreeMap::from([("a".into(), 2), ("b".into(), 2), ("c".into(), 2)])
    );
    // Two of b's connections close: the next two both go to b.
    let mut kept = Vec::new();
    let mut closed = 0;
    for (i, conn) in held.into_iter().enumerate() {
        // Connections alternate a, b, c, a, b, c.
        if i % 3 == 1 {
            drop(conn);
            closed += 1;
        } else {
            kept.push(conn);
        }
    }
    assert_eq!(closed, 2);
    h.open_is("b", 0).await;
    for _ in 0..2 {
        let (name, conn) = tcp_hello(addr).await;
        assert_eq!(name, "b");
        kept.push(conn);
    }
    let text = h.proxy.metrics().render();
    assert!(
        text.contains(r#"berth_proxy_connections_total{project="shop",component="web",port=""#),
        "{text}"
    );
}

#[tokio::test]
async fn tcp_connect_failure_is_retried_on_another_backend() {
    let good = tcp_backend("good").await;
    let port = free_port();
    // The dead backend comes first: the first pick (cursor 0) is it.
    let h = Harness::start(table([(
        port,
        route(Protocol::Tcp, &[("dead", dead_addr()), ("good", good)]),
    )]));
    let addr = h.bound(port).await;
    for _ in 0..3 {
        let (name, _conn) = tcp_hello(addr).await;
        assert_eq!(name, "good");
    }
    // At least the first connection met the dead backend first; later ones
    // may too (it has no connections, so it stays the least loaded).
    let text = h.proxy.metrics().render();
    let labels = format!("{{project=\"shop\",component=\"web\",port=\"{port}\"}}");
    let retries = metric(&text, &format!("berth_proxy_retries_total{labels}"));
    let errors = metric(&text, &format!("berth_proxy_backend_errors_total{labels}"));
    assert!((1.0..=3.0).contains(&retries), "{text}");
    assert_eq!(retries, errors, "{text}");
}

/// The value of the sample named exactly `series` (name and labels).
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} missing from\n{text}"))
}

/// A proxy on another loopback address (a peer node), listening for
/// forwarded traffic too.
fn peer_proxy(bind: IpAddr, routes: Routes) -> (Harness, SocketAddr) {
    let (tx, rx) = watch::channel(routes);
    let shutdown = CancellationToken::new();
    let mut config = ProxyConfig::new(bind);
    let forward = SocketAddr::new(bind, free_port());
    config.forward = Some(forward);
    let proxy = Proxy::start(config, ProxyMetrics::new(), rx, shutdown.clone());
    let h = Harness {
        proxy,
        routes: tx,
        shutdown,
    };
    (h, forward)
}

async fn wait_connectable(addr: SocketAddr) {
    within("forwarding port", async {
        while TcpStream::connect(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn tcp_forwards_to_a_peer_only_without_a_local_backend() {
    let local = tcp_backend("local").await;
    let theirs = tcp_backend("peer").await;
    let port = free_port();
    let peer_ip: IpAddr = "127.0.0.2".parse().expect("ip");
    let (peer, forward) = peer_proxy(
        peer_ip,
        table([(port, route(Protocol::Tcp, &[("p1", theirs)]))]),
    );
    peer.bound(port).await;
    wait_connectable(forward).await;
    let mut r = route(Protocol::Tcp, &[]);
    r.remote = vec![forward];
    let h = Harness::start(table([(port, r.clone())]));
    let addr = h.bound(port).await;
    assert_eq!(tcp_hello(addr).await.0, "peer");
    // A ready local container takes over from the peer.
    r.backends = vec![Backend {
        container_id: "local".into(),
        addr: local,
        container_port: None,
    }];
    h.routes.send_replace(table([(port, r)]));
    within("local backend used", async {
        loop {
            if tcp_hello(addr).await.0 == "local" {
                break;
            }
        }
    })
    .await;
    for _ in 0..3 {
        assert_eq!(tcp_hello(addr).await.0, "local");
    }
}

#[tokio::test]
async fn forwarded_traffic_is_never_forwarded_again() {
    // Two proxies with no container, each routing the port to the other's
    // forwarding listener: a loop if forwarded traffic were forwarded
    // again. The client is closed without a byte instead, and each side
    // counts exactly one connection (a second hop would count on ours).
    let port = free_port();
    let (h, ours) = peer_proxy(LOCAL, table([(port, route(Protocol::Tcp, &[]))]));
    wait_connectable(ours).await;
    let peer_ip: IpAddr = "127.0.0.3".parse().expect("ip");
    let mut theirs = route(Protocol::Tcp, &[]);
    theirs.remote = vec![ours];
    let (peer, forward) = peer_proxy(peer_ip, table([(port, theirs)]));
    peer.bound(port).await;
    wait_connectable(forward).await;
    let mut r = route(Protocol::Tcp, &[]);
    r.remote = vec![forward];
    h.routes.send_replace(table([(port, r)]));
    let addr = h.bound(port).await;
    let mut s = within("connect", TcpStream::connect(addr))
        .await
        .expect("connect");
    let mut buf = Vec::new();
    let n = within("close", s.read_to_end(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0);
    let name = format!(
        "berth_proxy_connections_total{{project=\"shop\",component=\"web\",port=\"{port}\"}}"
    );
    assert_eq!(metric(&peer.proxy.metrics().render(), &name), 1.0);
    assert_eq!(metric(&h.proxy.metrics().render(), &name), 1.0);
}

#[tokio::test]
async fn http_forwards_to_a_peer_with_the_port_named() {
    let (theirs, _, _, _release) = http_backend("peer").await;
    let port = free_port();
    let peer_ip: IpAddr = "127.0.0.4".parse().expect("ip");
    let (peer, forward) = peer_proxy(
        peer_ip,
        table([(port, route(Protocol::Http, &[("p1", theirs)]))]),
    );
    peer.bound(port).await;
    wait_connectable(forward).await;
    let mut r = route(Protocol::Http, &[]);
    r.remote = vec![forward];
    let h = Harness::start(table([(port, r)]));
    let addr = h.bound(port).await;
    let mut c = Client::connect(addr).await;
    for _ in 0..3 {
        let (status, headers, body) = c.get("/").await;
        assert_eq!(status, 200);
        assert_eq!(body, "peer");
        // The client's address first, then the forwarding proxy's.
        assert_eq!(headers["x-seen-xff"], "127.0.0.1, 127.0.0.1");
    }
}

#[tokio::test]
async fn drain_waits_for_open_connections_or_times_out() {
    let a = tcp_backend("a").await;
    let b = tcp_backend("b").await;
    let port = free_port();
    let h = Harness::start(table([(port, route(Protocol::Tcp, &[("a", a), ("b", b)]))]));
    let addr = h.bound(port).await;
    let (name, conn) = tcp_hello(addr).await;
    assert_eq!(name, "a");
    // The connection is held: the drain can only time out, with it counted.
    assert_eq!(
        h.proxy.drain("a", Duration::from_millis(50)).await,
        DrainOutcome::TimedOut { open: 1 }
    );
    // Draining: new connections go to b only.
    for _ in 0..3 {
        assert_eq!(tcp_hello(addr).await.0, "b");
    }
    let drained = tokio::spawn(h.proxy.drain("a", LONG));
    drop(conn);
    assert_eq!(
        within("drain", drained).await.ok(),
        Some(DrainOutcome::Drained)
    );
}

#[tokio::test]
async fn a_port_held_elsewhere_is_reported_and_the_others_served() {
    let a = tcp_backend("a").await;
    let holder = std::net::TcpListener::bind((LOCAL, 0)).expect("bind");
    let taken = holder.local_addr().expect("addr").port();
    let free = free_port();
    let h = Harness::start(table([
        (taken, route(Protocol::Tcp, &[("a", a)])),
        (free, route(Protocol::Http, &[("a", a)])),
        (free_port(), route(Protocol::Tcp, &[("a", a)])),
    ]));
    assert!(matches!(h.status(taken).await, PortStatus::Failed(_)));
    let errors = h.proxy.bind_errors();
    assert_eq!(errors.keys().copied().collect::<Vec<_>>(), [taken]);
    assert!(errors[&taken].contains(&taken.to_string()), "{errors:?}");
    let ports: Vec<u16> = h.proxy.ports().borrow().keys().copied().collect();
    assert_eq!(ports.len(), 3);
    let tcp = *ports
        .iter()
        .find(|p| **p != taken && **p != free)
        .expect("tcp port");
    let addr = h.bound(tcp).await;
    assert_eq!(tcp_hello(addr).await.0, "a");
    let text = h.proxy.metrics().render();
    assert!(
        text.contains(&format!(
            "berth_proxy_port_bound{{project=\"shop\",component=\"web\",port=\"{taken}\"}} 0"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn http_keep_alive_requests_are_spread_and_forwarded_headers_set() {
    let (a, a_hits, _, _) = http_backend("a").await;
    let (b, b_hits, _, _) = http_backend("b").await;
    let port = free_port();
    let h = Harness::start(table([(
        port,
        route(Protocol::Http, &[("a", a), ("b", b)]),
    )]));
    let addr = h.bound(port).await;
    let mut client = Client::connect(addr).await;
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let (status, headers, body) = client.get("/").await;
        assert_eq!(status, 200);
        assert_eq!(headers["x-seen-xff"], "127.0.0.1");
        assert_eq!(headers["x-seen-xfp"], "http");
        bodies.push(body);
    }
    // One client connection, both backends: balanced per request.
    assert_eq!(bodies, ["a", "b", "a", "b"]);
    assert_eq!(a_hits.load(Ordering::SeqCst), 2);
    assert_eq!(b_hits.load(Ordering::SeqCst), 2);
    // Counted per request: nothing in flight any more.
    h.open_is("a", 0).await;
    h.open_is("b", 0).await;
    let text = h.proxy.metrics().render();
    assert!(
        text.contains(&format!(
            "berth_proxy_requests_total{{project=\"shop\",component=\"web\",port=\"{port}\",class=\"2xx\"}} 4"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn http_x_forwarded_for_appends_to_an_earlier_hop() {
    let (a, _, _, _) = http_backend("a").await;
    let port = free_port();
    let h = Harness::start(table([(port, route(Protocol::Http, &[("a", a)]))]));
    let addr = h.bound(port).await;
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.1.2.3\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut resp = String::new();
    within("response", s.read_to_string(&mut resp))
        .await
        .expect("read");
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.to_ascii_lowercase()
            .contains("x-seen-xff: 10.1.2.3, 127.0.0.1"),
        "{resp}"
    );
}

#[tokio::test]
async fn http_connect_failure_is_retried_and_no_backend_is_503() {
    let (good, hits, _, _) = http_backend("good").await;
    let port = free_port();
    let h = Harness::start(table([(
        port,
        route(Protocol::Http, &[("dead", dead_addr()), ("good", good)]),
    )]));
    let addr = h.bound(port).await;
    let mut client = Client::connect(addr).await;
    for _ in 0..3 {
        let (status, _, body) = client.get("/").await;
        assert_eq!((status, body.as_str()), (200, "good"));
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // No backend at all: the proxy answers, the client connection stays.
    h.routes
        .send_replace(table([(port, route(Protocol::Http, &[]))]));
    within("503", async {
        loop {
            if client.get("/").await.0 == 503 {
                break;
            }
        }
    })
    .await;
}

#[tokio::test]
async fn http_request_body_survives_a_connect_retry() {
    let (good, hits, _, _) = http_backend("good").await;
    let port = free_port();
    let h = Harness::start(table([(
        port,
        route(Protocol::Http, &[("dead", dead_addr()), ("good", good)]),
    )]));
    let addr = h.bound(port).await;
    for framing in [
        "Content-Length: 11\r\n\r\nhello world",
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let req = format!("POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{framing}");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut resp = String::new();
        within("response", s.read_to_string(&mut resp))
            .await
            .expect("read");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.ends_with("hello world"), "{resp}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    // The first request (cursor 0) met the dead backend first.
    let text = h.proxy.metrics().render();
    let series =
        format!("berth_proxy_retries_total{{project=\"shop\",component=\"web\",port=\"{port}\"}}");
    assert!(metric(&text, &series) >= 1.0, "{text}");
}

#[tokio::test]
async fn http_draining_backend_gets_no_new_request_and_in_flight_finishes() {
    let (a, a_hits, mut a_started, a_release) = http_backend("a").await;
    let (b, b_hits, _, _) = http_backend("b").await;
    let port = free_port();
    let h = Harness::start(table([(
        port,
        route(Protocol::Http, &[("a", a), ("b", b)]),
    )]));
    let addr = h.bound(port).await;
    // The first request (cursor 0, all idle) goes to a, and hangs there.
    let mut slow_client = Client::connect(addr).await;
    let slow = tokio::spawn(async move { slow_client.get("/slow").await });
    within("slow request at a", a_started.recv()).await;
    h.open_is("a", 1).await;
    let drained = tokio::spawn(h.proxy.drain("a", LONG));
    let mut client = Client::connect(addr).await;
    for _ in 0..4 {
        let (status, _, body) = client.get("/").await;
        assert_eq!((status, body.as_str()), (200, "b"));
    }
    assert_eq!(a_hits.load(Ordering::SeqCst), 1);
    assert_eq!(b_hits.load(Ordering::SeqCst), 4);
    assert!(!drained.is_finished(), "a request is still in flight on a");
    // The request in flight on the draining backend finishes normally.
    a_release.send_replace(true);
    let (status, _, body) = within("slow response", slow).await.expect("slow task");
    assert_eq!((status, body.as_str()), (200, "a"));
    assert_eq!(
        within("drain", drained).await.ok(),
        Some(DrainOutcome::Drained)
    );
}

#[tokio::test]
async fn http_garbage_gets_400_and_reaches_no_backend() {
    let (a, hits, _, _) = http_backend("a").await;
    let port = free_port();
    let h = Harness::start(table([(port, route(Protocol::Http, &[("a", a)]))]));
    let addr = h.bound(port).await;
    for garbage in [
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
        b"NOT A REQUEST\r\n\r\n",
    ] {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(garbage).await.expect("write");
        let mut resp = Vec::new();
        within("400", s.read_to_end(&mut resp)).await.expect("read");
        let resp = String::from_utf8_lossy(&resp);
        assert!(resp.starts_with("HTTP/1.1 400"), "{garbage:?} → {resp}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn removed_port_is_closed_and_removed_backend_gets_nothing_new() {
    let a = tcp_backend("a").await;
    let b = tcp_backend("b").await;
    let port = free_port();
    let h = Harness::start(table([(port, route(Protocol::Tcp, &[("a", a), ("b", b)]))]));
    let addr = h.bound(port).await;
    h.routes
        .send_replace(table([(port, route(Protocol::Tcp, &[("b", b)]))]));
    within("a removed", async {
        while !h
            .proxy
            .open_connections()
            .keys()
            .map(String::as_str)
            .eq(["b"])
        {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    for _ in 0..4 {
        assert_eq!(tcp_hello(addr).await.0, "b");
    }
    h.routes.send_replace(Routes::default());
    let mut rx = h.proxy.ports();
    within("port closed", rx.wait_for(|m| m.is_empty()))
        .await
        .expect("proxy gone");
    // Closed and the socket released: the port can be bound again.
    within("rebind", async {
        loop {
            if TcpListener::bind(addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

/// Accepts and closes at once without a byte: Docker's userland proxy in
/// front of a container that was just killed.
async fn dropping_backend() -> SocketAddr {
    let l = TcpListener::bind((LOCAL, 0)).await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            drop(s);
        }
    });
    addr
}

#[tokio::test]
async fn tcp_backend_closing_without_an_answer_is_replayed_on_another() {
    let dropper = dropping_backend().await;
    let good = tcp_backend("good").await;
    let port = free_port();
    let h = Harness::start(table([(
        port,
        route(Protocol::Tcp, &[("dropper", dropper), ("good", good)]),
    )]));
    let addr = h.bound(port).await;
    for _ in 0..6 {
        // The client speaks first (its bytes are replayed) or waits.
        let mut s = within("connect", TcpStream::connect(addr))
            .await
            .expect("connect");
        s.write_all(b"hello\n").await.expect("write");
        let mut r = BufReader::new(s);
        let mut line = String::new();
        within("greeting", r.read_line(&mut line))
            .await
            .expect("read");
        assert_eq!(line.trim(), "good");
    }
    let text = h.proxy.metrics().render();
    assert!(
        metric(
            &text,
            &format!(
                "berth_proxy_retries_total{{project=\"shop\",component=\"web\",port=\"{port}\"}}"
            )
        ) >= 1.0
    );
}
