//! The traffic proxy in every agent: one listener per `external` port of the
//! components on this node, bound on `--proxy-bind`, balancing over the
//! node's ready containers of the component.
//!
//! The agent drives it with a route table ([`Routes`]) published through a
//! `tokio::sync::watch`; the proxy reconciles its listeners to the table
//! (binds new ports, closes removed ones, retries ports it could not bind) and
//! reads backends from it on every new connection or request: nothing on the
//! data path waits for etcd.
//!
//! - `tcp` ports ([`tcp`]): each new connection goes to the backend with the
//!   fewest open connections; a failed connect is retried on another backend
//!   before the client sees anything.
//! - `http` ports ([`http`]): HTTP/1.x only (no h2c, no Upgrade/WebSocket:
//!   use `tcp` for those). Client keep-alive connections stay on the proxy;
//!   each request goes to the backend with the fewest requests in flight, over
//!   pooled backend connections; a request whose backend could not be
//!   connected is retried on another; `X-Forwarded-For` and
//!   `X-Forwarded-Proto` are set; a malformed request gets a 400 from the
//!   proxy and never reaches a backend.
//! - Draining ([`Proxy::drain`]): a draining container takes nothing new;
//!   what is open on it finishes.
//! - Forwarding ([`forward`]): when no local backend is left, new
//!   connections/requests go to the route's `remote` addresses: peers'
//!   *forwarding listeners* (`--address`:`--forward-port`). What arrives on a
//!   forwarding listener is served by that node's local containers only,
//!   never forwarded again: a connection crosses at most two proxies, so
//!   forwarding cannot loop.

pub mod balance;
mod connector;
pub mod dial;
pub mod drain;
pub mod error;
pub mod forward;
pub mod http;
pub mod metrics;
pub mod routes;
pub mod runtime;
pub mod tcp;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::resource::component::Protocol;
use crate::resource::ComponentKey;

pub use drain::DrainOutcome;
pub use error::ProxyError;
pub use metrics::ProxyMetrics;
pub use routes::{Backend, Route, Routes};
pub use runtime::ProxyRuntime;

use balance::Load;
use drain::{BackendState, OpenGuard, Tracker};
use metrics::PortMetrics;

/// How the proxy binds and how hard it tries a backend.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// `--proxy-bind`: every external port is bound on this address.
    pub bind: IpAddr,
    /// One backend connect may take this long before the next is tried.
    pub connect_timeout: Duration,
    /// Backends tried per connection or request (first try included).
    pub max_attempts: usize,
    /// How often a port that could not be bound is tried again.
    pub rebind_interval: Duration,
    /// An HTTP client must send a request head within this time.
    pub header_read_timeout: Duration,
    /// `--forward-port` on `--proxy-bind`: where peers forward connections
    /// for which they have no local container. `None`: not listening.
    pub forward: Option<SocketAddr>,
    /// Finds a container's pid, so local backends are dialed inside their
    /// network namespace (`dial.rs`). `None`: always the published port.
    pub pid_lookup: Option<dial::PidLookup>,
}

impl ProxyConfig {
    pub fn new(bind: IpAddr) -> ProxyConfig {
        ProxyConfig {
            bind,
            connect_timeout: Duration::from_secs(3),
            max_attempts: 3,
            rebind_interval: Duration::from_secs(5),
            header_read_timeout: Duration::from_secs(30),
            forward: None,
            pid_lookup: None,
        }
    }
}

/// What became of one external port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortStatus {
    /// Listening on this address.
    Bound(SocketAddr),
    /// Binding failed with this error; tried again every `rebind_interval`.
    Failed(String),
}

/// State shared by the reconciler, every listener and every connection.
pub(crate) struct Shared {
    config: ProxyConfig,
    tracker: Tracker,
    metrics: ProxyMetrics,
    status: watch::Sender<BTreeMap<u16, PortStatus>>,
    client: http::BackendClient,
    dialer: Arc<dial::Dialer>,
    /// The bound ports by number, for the forwarding listener.
    ports: RwLock<BTreeMap<u16, Arc<Port>>>,
}

impl Shared {
    fn port(&self, number: u16) -> Option<Arc<Port>> {
        self.ports
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&number)
            .cloned()
    }
}

/// The proxy. Cheap to clone; every clone is the same proxy.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts the reconciler: listeners follow `routes` until `shutdown`.
    /// When the sender of `routes` goes away, the last table keeps being
    /// served (static stability), until `shutdown`.
    pub fn start(
        config: ProxyConfig,
        metrics: ProxyMetrics,
        routes: watch::Receiver<Routes>,
        shutdown: CancellationToken,
    ) -> Proxy {
        let dialer = Arc::new(dial::Dialer::new(
            config.pid_lookup.clone(),
            dial::DialCounters {
                dials: metrics.netns_dials(),
                fallbacks: metrics.netns_fallbacks(),
            },
        ));
        let client = http::BackendClient::new(&config, dialer.clone());
        let shared = Arc::new(Shared {
            dialer,
            config,
            tracker: Tracker::default(),
            metrics,
            status: watch::Sender::new(BTreeMap::new()),
            client,
            ports: RwLock::new(BTreeMap::new()),
        });
        if let Some(addr) = shared.config.forward {
            tokio::spawn(forward::listen(shared.clone(), addr, shutdown.clone()));
        }
        tokio::spawn(run(shared.clone(), routes, shutdown));
        Proxy { shared }
    }

    /// [`Proxy::start`] with every listener and connection on `rt`, the
    /// proxy's own runtime, whichever runtime calls this.
    pub fn start_on(
        rt: &ProxyRuntime,
        config: ProxyConfig,
        metrics: ProxyMetrics,
        routes: watch::Receiver<Routes>,
        shutdown: CancellationToken,
    ) -> Proxy {
        let _on = rt.handle().enter();
        Proxy::start(config, metrics, routes, shutdown)
    }

    /// Marks the container draining — from this call on it gets no new
    /// connection (tcp) or request (http), whether or not the future is
    /// polled — and returns the wait until nothing is open on it (connections
    /// closed, requests answered), or `timeout`. The mark stays for as long
    /// as routes name the container; the agent drops it from the routes when
    /// it stops the container.
    pub fn drain(
        &self,
        container_id: &str,
        timeout: Duration,
    ) -> impl std::future::Future<Output = DrainOutcome> + Send + 'static {
        self.shared.tracker.drain(container_id, timeout)
    }

    /// Ends a drain without a stop (a restart in place): the container
    /// takes new connections again once the routes name it.
    pub fn undrain(&self, container_id: &str) {
        self.shared.tracker.undrain(container_id)
    }

    /// Per container id: open connections (tcp) plus requests in flight
    /// (http), over all its ports. For `describe`.
    pub fn open_connections(&self) -> BTreeMap<String, u64> {
        self.shared.tracker.open_counts()
    }

    /// Every routed port and whether it is bound; follow it to wait for a bind.
    pub fn ports(&self) -> watch::Receiver<BTreeMap<u16, PortStatus>> {
        self.shared.status.subscribe()
    }

    /// The ports that could not be bound, with the error.
    pub fn bind_errors(&self) -> BTreeMap<u16, String> {
        self.shared
            .status
            .borrow()
            .iter()
            .filter_map(|(p, s)| match s {
                PortStatus::Failed(e) => Some((*p, e.clone())),
                PortStatus::Bound(_) => None,
            })
            .collect()
    }

    pub fn metrics(&self) -> &ProxyMetrics {
        &self.shared.metrics
    }
}

/// One bound external port.
struct Listener {
    protocol: Protocol,
    port: Arc<Port>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// What a listener's connections need: the current route and the handles.
pub(crate) struct Port {
    number: u16,
    local: SocketAddr,
    // Swapped whole by the reconciler; a connection reads one snapshot per
    // decision, so the lock is held only to clone an Arc.
    route: RwLock<Arc<Route>>,
    cursor: AtomicUsize,
    remote_cursor: AtomicUsize,
    metrics: PortMetrics,
    shared: Arc<Shared>,
}

/// Where one connection or request is sent.
pub(crate) struct Target {
    /// The local container, `None` for a peer's forwarding listener.
    container: Option<(String, Arc<BackendState>)>,
    addr: SocketAddr,
    /// The port inside a local container (dialed in its namespace).
    container_port: Option<u16>,
}

impl Target {
    /// A peer's forwarding listener: the connection or request must say
    /// which external port it is for.
    fn is_remote(&self) -> bool {
        self.container.is_none()
    }

    /// A local container the agent is draining.
    fn draining(&self) -> bool {
        self.container.as_ref().is_some_and(|(_, s)| s.draining())
    }
}

impl Target {
    /// Counts the connection or request on a local container while it lives.
    fn open(&self) -> Option<OpenGuard> {
        self.container
            .as_ref()
            .map(|(_, s)| OpenGuard::new(s.clone()))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.container {
            Some((id, _)) => f.write_str(id.get(..12).unwrap_or(id)),
            None => write!(f, "peer {}", self.addr),
        }
    }
}

impl Port {
    fn route(&self) -> Arc<Route> {
        self.route
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn component(&self) -> ComponentKey {
        self.route().component.clone()
    }

    /// The next target, skipping those already `tried` for this connection
    /// or request: the least-loaded ready local container, else (none left,
    /// and not `local_only`) a peer in turn; `None` when nothing is left.
    fn choose(&self, tried: &[Target], local_only: bool) -> Option<Target> {
        let route = self.route();
        let tracker = &self.shared.tracker;
        let states: Vec<Arc<BackendState>> = route
            .backends
            .iter()
            .map(|b| tracker.state(&b.container_id))
            .collect();
        let loads: Vec<Load> = route
            .backends
            .iter()
            .zip(&states)
            .map(|(b, s)| Load {
                open: s.open(),
                draining: s.draining(),
                failed: tried.iter().any(|t| {
                    t.container
                        .as_ref()
                        .is_some_and(|(id, _)| *id == b.container_id)
                }),
            })
            .collect();
        let cursor = self.cursor.fetch_add(1, Ordering::Relaxed);
        if let Some(i) = balance::pick(&loads, cursor) {
            let b = &route.backends[i];
            return Some(Target {
                container: Some((b.container_id.clone(), states[i].clone())),
                addr: b.addr,
                container_port: b.container_port,
            });
        }
        if local_only {
            // Forwarded traffic is never forwarded again (no loops).
            return None;
        }
        let loads: Vec<Load> = route
            .remote
            .iter()
            .map(|a| Load {
                open: 0,
                draining: false,
                // Our own listening address as a "peer" would be a loop.
                failed: *a == self.local
                    || tried.iter().any(|t| t.container.is_none() && t.addr == *a),
            })
            .collect();
        let cursor = self.remote_cursor.fetch_add(1, Ordering::Relaxed);
        balance::pick(&loads, cursor).map(|i| Target {
            container: None,
            addr: route.remote[i],
            container_port: None,
        })
    }

    /// Connects to a backend, trying others after a failure (nothing has
    /// reached the failed one, so the client sees only the success). A peer
    /// is sent the forwarding preamble first. `tried` holds the backends
    /// that already failed this connection (skipped; failures here are added);
    /// at most `max_attempts` are tried in all.
    async fn connect(
        &self,
        local_only: bool,
        tried: &mut Vec<Target>,
    ) -> Result<(TcpStream, Target, Option<OpenGuard>), ProxyError> {
        let timeout = self.shared.config.connect_timeout;
        let mut last = None;
        while tried.len() < self.shared.config.max_attempts {
            let Some(target) = self.choose(tried, local_only) else {
                break;
            };
            if !tried.is_empty() {
                self.metrics.retries.inc();
            }
            // Counted from the decision on, so a burst of new connections
            // spreads instead of all seeing the same counts.
            let guard = target.open();
            let started = tokio::time::Instant::now();
            let connect = async {
                let mut stream = match &target.container {
                    Some((id, _)) => {
                        self.shared
                            .dialer
                            .connect(id, target.container_port, target.addr)
                            .await?
                    }
                    None => TcpStream::connect(target.addr).await?,
                };
                if target.is_remote() {
                    // The peer answers once its own backend is connected, so
                    // a peer with nothing left is retried like a refused
                    // connect: the client has seen nothing yet.
                    forward::send_preamble(&mut stream, self.number).await?;
                    forward::read_accept(&mut stream).await?;
                }
                Ok::<_, std::io::Error>(stream)
            };
            let err = match tokio::time::timeout(timeout, connect).await {
                Ok(Ok(stream)) => {
                    self.metrics
                        .latency
                        .observe(started.elapsed().as_secs_f64());
                    return Ok((stream, target, guard));
                }
                Ok(Err(source)) => ProxyError::Connect {
                    backend: target.to_string(),
                    addr: target.addr,
                    source,
                },
                Err(_) => ProxyError::ConnectTimeout {
                    backend: target.to_string(),
                    addr: target.addr,
                },
            };
            self.metrics.backend_errors.inc();
            tracing::warn!(
                port = self.number,
                backend = %target,
                error = %err,
                "backend connect failed; trying another"
            );
            last = Some(err);
            tried.push(target);
        }
        Err(last.unwrap_or(ProxyError::NoBackend { port: self.number }))
    }
}

/// The reconciler: listeners follow the route table.
async fn run(
    shared: Arc<Shared>,
    mut routes: watch::Receiver<Routes>,
    shutdown: CancellationToken,
) {
    let mut listeners: BTreeMap<u16, Listener> = BTreeMap::new();
    let mut follow = true;
    loop {
        let table = routes.borrow_and_update().clone();
        reconcile(&shared, &mut listeners, &table, &shutdown).await;
        let unbound = listeners.len() < table.ports.len();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = routes.changed(), if follow => {
                if changed.is_err() {
                    // No more tables: keep serving this one.
                    follow = false;
                }
            }
            _ = tokio::time::sleep(shared.config.rebind_interval), if unbound => {}
        }
    }
    // The registry holds ports that hold `shared`: emptied, no cycle is left.
    shared
        .ports
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();
    for (_, l) in std::mem::take(&mut listeners) {
        close(l).await;
    }
}

async fn close(l: Listener) {
    l.cancel.cancel();
    // Waited for, so the socket is closed before a rebind of the same port.
    if let Err(e) = l.task.await {
        tracing::warn!(port = l.port.number, error = %e, "proxy listener task failed");
    }
}

async fn reconcile(
    shared: &Arc<Shared>,
    listeners: &mut BTreeMap<u16, Listener>,
    table: &Routes,
    shutdown: &CancellationToken,
) {
    // Close ports that left the table or changed protocol (rebound below).
    let stale: Vec<u16> = listeners
        .iter()
        .filter(|(p, l)| {
            table
                .ports
                .get(p)
                .is_none_or(|r| r.protocol != l.protocol || r.component != l.port.component())
        })
        .map(|(p, _)| *p)
        .collect();
    for p in stale {
        shared
            .ports
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&p);
        if let Some(l) = listeners.remove(&p) {
            tracing::info!(port = p, "closing external port");
            close(l).await;
        }
    }
    let mut status = BTreeMap::new();
    for (&number, route) in &table.ports {
        if let Some(l) = listeners.get(&number) {
            *l.port.route.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(route.clone());
            status.insert(number, PortStatus::Bound(l.port.local));
            continue;
        }
        let addr = SocketAddr::new(shared.config.bind, number);
        match TcpListener::bind(addr).await {
            Ok(socket) => {
                let local = socket.local_addr().unwrap_or(addr);
                let port = Arc::new(Port {
                    number,
                    local,
                    route: RwLock::new(Arc::new(route.clone())),
                    cursor: AtomicUsize::new(0),
                    remote_cursor: AtomicUsize::new(0),
                    metrics: shared.metrics.port(&route.component, number),
                    shared: shared.clone(),
                });
                shared.metrics.set_bound(&route.component, number, true);
                shared
                    .ports
                    .write()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(number, port.clone());
                tracing::info!(port = number, %local, protocol = route.protocol.as_str(),
                    project = %route.component.project, component = %route.component.name,
                    "serving external port");
                let cancel = shutdown.child_token();
                let task = tokio::spawn(accept_loop(
                    socket,
                    port.clone(),
                    route.protocol,
                    cancel.clone(),
                    shutdown.clone(),
                ));
                listeners.insert(
                    number,
                    Listener {
                        protocol: route.protocol,
                        port,
                        cancel,
                        task,
                    },
                );
                status.insert(number, PortStatus::Bound(local));
            }
            Err(source) => {
                let err = ProxyError::Bind {
                    port: number,
                    addr,
                    source,
                };
                shared.metrics.set_bound(&route.component, number, false);
                let msg = err.to_string();
                // Logged when it starts failing (or the error changes), not
                // on every retry.
                if shared.status.borrow().get(&number) != Some(&PortStatus::Failed(msg.clone())) {
                    tracing::warn!(port = number, error = %err, "cannot bind external port; other ports are served");
                }
                status.insert(number, PortStatus::Failed(msg));
            }
        }
    }
    shared.status.send_if_modified(|s| {
        let changed = *s != status;
        *s = status;
        changed
    });
    let routed: HashSet<&str> = table
        .ports
        .values()
        .flat_map(|r| r.backends.iter().map(|b| b.container_id.as_str()))
        .collect();
    shared.tracker.sync(&routed);
    shared.dialer.sync(table, &routed);
}

async fn accept_loop(
    socket: TcpListener,
    port: Arc<Port>,
    protocol: Protocol,
    cancel: CancellationToken,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = socket.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                // Small writes (request heads, interactive protocols) go out at once.
                let _ = stream.set_nodelay(true);
                let port = port.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    port.metrics.connections.inc();
                    port.metrics.connections_open.inc();
                    match protocol {
                        Protocol::Tcp => tcp::serve(&port, stream, peer, &shutdown, false).await,
                        Protocol::Http => http::serve(&port, stream, peer, &shutdown).await,
                    }
                    port.metrics.connections_open.dec();
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of
                // spinning, the listener itself is still fine.
                tracing::warn!(port = port.number, error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
