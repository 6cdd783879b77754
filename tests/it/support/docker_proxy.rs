//! A unix-socket proxy in front of the Docker engine that reads the HTTP
//! requests going through it, for tests of how an agent uses the engine.
//!
//! - [`DockerProxy::cut`]: every connection is closed and new ones are turned
//!   away (the engine seems gone while it goes on).
//! - [`DockerProxy::max_in_flight`], [`DockerProxy::count`]: requests by
//!   [`Kind`], and how many of them overlapped. A request is in flight from
//!   its request line until the first byte of its answer: for create and
//!   start, Docker answers only when the work is done.
//! - [`DockerProxy::delay`], [`DockerProxy::hold`]: slow down a kind of
//!   request, or hold requests for one path until released.
//!
//! The reader understands what berth sends: HTTP/1.1 requests, one at a time
//! per connection (hyper does not pipeline), bodies with `Content-Length`.
//! A connection that upgrades (exec attach) or sends a chunked body is passed
//! through unread from there on.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

/// What a request asks of the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// `POST /containers/create`
    Create,
    /// `POST /containers/<id>/start`
    Start,
    /// `GET /containers/<id>/json`
    Inspect,
    /// `GET /images/<name>/json`
    ImageInspect,
    /// `POST /containers/<id>/kill`
    Signal,
    Other,
}

/// One request seen: its kind and path (no API version, no query).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub method: String,
    pub path: String,
}

impl Request {
    fn parse(line: &str) -> Option<Request> {
        let mut parts = line.split(' ');
        let method = parts.next()?.to_string();
        let target = parts.next()?;
        let path = strip_version(target.split('?').next().unwrap_or(target)).to_string();
        Some(Request {
            kind: kind_of(&method, &path),
            method,
            path,
        })
    }
}

/// `/v1.41/containers/x` → `/containers/x`.
fn strip_version(path: &str) -> &str {
    let Some(rest) = path.strip_prefix("/v") else {
        return path;
    };
    let end = rest.find('/').unwrap_or(rest.len());
    if rest[..end].chars().all(|c| c.is_ascii_digit() || c == '.') {
        &rest[end..]
    } else {
        path
    }
}

fn kind_of(method: &str, path: &str) -> Kind {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["containers", "create"]) => Kind::Create,
        ("POST", ["containers", _, "start"]) => Kind::Start,
        ("POST", ["containers", _, "kill"]) => Kind::Signal,
        ("GET", ["containers", _, "json"]) => Kind::Inspect,
        // Image names carry slashes (`berth-test/web:1`).
        ("GET", ["images", .., "json"]) if segments.len() > 2 => Kind::ImageInspect,
        _ => Kind::Other,
    }
}

/// Everything the connections share with the test.
#[derive(Default)]
struct Shared {
    /// Every request's start (`true`) and end (`false`), in order.
    log: Mutex<Vec<(Request, bool)>>,
    /// Kinds of requests slowed down, and by how much.
    delays: Mutex<BTreeMap<Kind, Duration>>,
    /// Connections turned away while cut.
    refused: AtomicUsize,
}

impl Shared {
    fn record(&self, r: &Request, begins: bool) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((r.clone(), begins));
    }

    fn log(&self) -> Vec<(Request, bool)> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn delay_of(&self, kind: Kind) -> Option<Duration> {
        let delays = self.delays.lock().unwrap_or_else(|e| e.into_inner());
        delays.get(&kind).copied()
    }
}

pub struct DockerProxy {
    path: PathBuf,
    cut: Arc<watch::Sender<bool>>,
    /// Paths whose requests wait until released.
    held: Arc<watch::Sender<BTreeSet<String>>>,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// The engine's socket (`DOCKER_HOST` or the default); the proxy needs a
/// unix socket.
fn engine_socket() -> PathBuf {
    let host = std::env::var("DOCKER_HOST").unwrap_or_default();
    match host.strip_prefix("unix://") {
        Some(p) => p.into(),
        None if host.is_empty() => "/var/run/docker.sock".into(),
        None => panic!("the Docker proxy needs a unix socket engine (DOCKER_HOST={host})"),
    }
}

impl DockerProxy {
    pub async fn start() -> DockerProxy {
        let target = engine_socket();
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("bind the proxy socket");
        let cut = Arc::new(watch::Sender::new(false));
        let held = Arc::new(watch::Sender::new(BTreeSet::new()));
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(accept(
            listener,
            target,
            cut.clone(),
            held.clone(),
            shared.clone(),
        ));
        DockerProxy {
            path,
            cut,
            held,
            shared,
            task,
            _dir: dir,
        }
    }

    /// The address to give the agent (`AgentConfig::docker_host`).
    pub fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Cuts every connection and turns new ones away (`true`), or lets them
    /// through again.
    pub fn cut(&self, cut: bool) {
        self.cut.send_replace(cut);
    }

    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Waits until a connection made from now on is turned away: whoever
    /// made it has tried the engine again and learnt nothing.
    pub async fn wait_refused(&self) {
        let before = self.refused();
        let start = Instant::now();
        while self.refused() == before {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "nobody tried the engine while it was cut off"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Forwards requests of `kind` only after `by` (from now on).
    pub fn delay(&self, kind: Kind, by: Duration) {
        let mut delays = self.shared.delays.lock().unwrap_or_else(|e| e.into_inner());
        delays.insert(kind, by);
    }

    /// Holds every request for `path` (e.g. `/containers/<id>/json`) from
    /// now on until [`DockerProxy::release`].
    pub fn hold(&self, path: &str) {
        self.held.send_modify(|h| {
            h.insert(path.to_string());
        });
    }

    pub fn release(&self, path: &str) {
        self.held.send_modify(|h| {
            h.remove(path);
        });
    }

    /// Requests of `kind` seen so far.
    pub fn count(&self, kind: Kind) -> usize {
        let log = self.shared.log();
        log.iter().filter(|(r, b)| *b && r.kind == kind).count()
    }

    /// Requests for `path` in flight now.
    pub fn in_flight(&self, path: &str) -> usize {
        let log = self.shared.log();
        let of_path = log.iter().filter(|(r, _)| r.path == path);
        of_path.fold(0, |n, (_, begins)| if *begins { n + 1 } else { n - 1 })
    }

    /// The most requests of any of `kinds` that were in flight at once.
    pub fn max_in_flight(&self, kinds: &[Kind]) -> usize {
        let log = self.shared.log();
        let (mut now, mut max) = (0usize, 0usize);
        for (_, begins) in log.iter().filter(|(r, _)| kinds.contains(&r.kind)) {
            if *begins {
                now += 1;
                max = max.max(now);
            } else {
                now = now.saturating_sub(1);
            }
        }
        max
    }

    /// Waits until a request for `path` is in flight.
    pub async fn wait_in_flight(&self, path: &str) {
        let start = Instant::now();
        while self.in_flight(path) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no request for {path} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for DockerProxy {
    fn drop(&mut self) {
        self.held.send_replace(BTreeSet::new());
        self.cut.send_replace(true);
        self.task.abort();
    }
}

async fn accept(
    listener: UnixListener,
    target: PathBuf,
    cut: Arc<watch::Sender<bool>>,
    held: Arc<watch::Sender<BTreeSet<String>>>,
    shared: Arc<Shared>,
) {
    loop {
        let Ok((inbound, _)) = listener.accept().await else {
            continue;
        };
        if *cut.borrow() {
            drop(inbound);
            shared.refused.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let conn = Connection {
            shared: shared.clone(),
            held: held.subscribe(),
            waiting: Arc::default(),
        };
        let cut_rx = cut.subscribe();
        tokio::spawn(conn.serve(inbound, target.clone(), cut_rx));
    }
}

/// One client connection and its connection to the engine.
struct Connection {
    shared: Arc<Shared>,
    held: watch::Receiver<BTreeSet<String>>,
    /// The request sent and not answered yet (one at a time: no pipelining).
    waiting: Arc<Mutex<Option<Request>>>,
}

impl Connection {
    async fn serve(self, inbound: UnixStream, target: PathBuf, mut cut: watch::Receiver<bool>) {
        let Ok(outbound) = UnixStream::connect(&target).await else {
            return;
        };
        let (client_rd, client_wr) = inbound.into_split();
        let (engine_rd, engine_wr) = outbound.into_split();
        let answers = answers(
            engine_rd,
            client_wr,
            self.shared.clone(),
            self.waiting.clone(),
        );
        let requests = self.requests(client_rd, engine_wr);
        tokio::select! {
            _ = async { tokio::join!(requests, answers) } => {}
            _ = cut.wait_for(|c| *c) => {}
        }
    }

    /// Client → engine: reads each request's head, records it, waits if it
    /// is delayed or held, forwards it and its body.
    async fn requests(
        mut self,
        mut rd: impl AsyncRead + Unpin,
        mut wr: impl AsyncWrite + Unpin,
    ) -> std::io::Result<()> {
        let mut buf = Vec::new();
        loop {
            let Some(end) = read_head(&mut rd, &mut buf).await? else {
                return wr.shutdown().await;
            };
            let head = Head::parse(&buf[..end]);
            if let Some(r) = &head.request {
                self.begin(r).await;
            }
            wr.write_all(&buf[..end]).await?;
            buf.drain(..end);
            if head.opaque {
                wr.write_all(&buf).await?;
                tokio::io::copy(&mut rd, &mut wr).await?;
                return wr.shutdown().await;
            }
            forward_body(&mut rd, &mut wr, &mut buf, head.length).await?;
        }
    }

    async fn begin(&mut self, r: &Request) {
        self.shared.record(r, true);
        *self.waiting.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.clone());
        if let Some(d) = self.shared.delay_of(r.kind) {
            tokio::time::sleep(d).await;
        }
        let _ = self.held.wait_for(|h| !h.contains(&r.path)).await;
    }
}

/// Engine → client: the first bytes after a request are its answer.
async fn answers(
    mut rd: impl AsyncRead + Unpin,
    mut wr: impl AsyncWrite + Unpin,
    shared: Arc<Shared>,
    waiting: Arc<Mutex<Option<Request>>>,
) -> std::io::Result<()> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = rd.read(&mut chunk).await?;
        if n == 0 {
            return wr.shutdown().await;
        }
        let answered = waiting.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(r) = answered {
            shared.record(&r, false);
        }
        wr.write_all(&chunk[..n]).await?;
    }
}

/// Reads until `buf` holds a whole request head; its length, or `None` at
/// the end of the stream.
async fn read_head(
    rd: &mut (impl AsyncRead + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<usize>> {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok(Some(i + 4));
        }
        let n = rd.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Forwards `length` body bytes: first those already in `buf`, then from `rd`.
async fn forward_body(
    rd: &mut (impl AsyncRead + Unpin),
    wr: &mut (impl AsyncWrite + Unpin),
    buf: &mut Vec<u8>,
    length: usize,
) -> std::io::Result<()> {
    let from_buf = length.min(buf.len());
    wr.write_all(&buf[..from_buf]).await?;
    buf.drain(..from_buf);
    let rest = (length - from_buf) as u64;
    let copied = tokio::io::copy(&mut (&mut *rd).take(rest), wr).await?;
    if copied < rest {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// What the proxy needs from a request head.
struct Head {
    request: Option<Request>,
    /// `Content-Length` (0 when absent).
    length: usize,
    /// An upgrade or a chunked body: pass the rest through unread.
    opaque: bool,
}

impl Head {
    fn parse(bytes: &[u8]) -> Head {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.split("\r\n");
        let request = lines.next().and_then(Request::parse);
        let (mut length, mut opaque) = (0, false);
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "transfer-encoding" => opaque |= value.eq_ignore_ascii_case("chunked"),
                "upgrade" => opaque = true,
                _ => {}
            }
        }
        Head {
            request,
            length,
            opaque,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified() {
        let check = |line: &str, kind: Kind, path: &str| {
            let r = Request::parse(line).expect("a request line");
            assert_eq!((r.kind, r.path.as_str()), (kind, path), "{line}");
        };
        check(
            "POST /v1.41/containers/create?name=x HTTP/1.1",
            Kind::Create,
            "/containers/create",
        );
        check(
            "POST /v1.41/containers/abc/start HTTP/1.1",
            Kind::Start,
            "/containers/abc/start",
        );
        check(
            "GET /v1.41/containers/abc/json HTTP/1.1",
            Kind::Inspect,
            "/containers/abc/json",
        );
        check(
            "GET /v1.41/images/berth-test/web:1/json HTTP/1.1",
            Kind::ImageInspect,
            "/images/berth-test/web:1/json",
        );
        check(
            "POST /containers/abc/kill?signal=SIGTERM HTTP/1.1",
            Kind::Signal,
            "/containers/abc/kill",
        );
        check(
            "GET /v1.41/containers/json?all=true HTTP/1.1",
            Kind::Other,
            "/containers/json",
        );
        check("GET /version HTTP/1.1", Kind::Other, "/version");
    }
}
