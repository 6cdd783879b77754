//! Dialing a local backend from inside its container's network namespace.
//!
//! A backend's published port on 127.0.0.1 is served by Docker's userland
//! `docker-proxy`, which copies every byte once more. A socket created by a
//! thread that joined the container's network namespace belongs to that
//! namespace for its whole life, so the proxy connects it to
//! `127.0.0.1:<container port>` on the container's own loopback and
//! docker-proxy is skipped (no traffic goes to Docker's bridge network).
//!
//! Per container, one dedicated std thread is parked in the namespace and
//! creates non-blocking sockets on request (a thread that setns'd never
//! serves anything else, so no pooled thread is left in a foreign
//! namespace). It makes them [`BATCH`] at a time and the spares wait,
//! unconnected, for the next connects: a backend that closes every
//! connection (busybox httpd does) would otherwise cost a thread round trip
//! per request. The container's pid is looked up off the data path: until it
//! is known, and whenever the namespace cannot be used, the published port
//! is dialed instead and counted as a fallback. A connect that fails inside
//! the namespace (refused included: that is how a container restarted in
//! place, with a new namespace, shows) drops the entry, so the next connect
//! looks the pid up again. A request never fails because of this file.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{FromRawFd, OwnedFd};
use std::pin::Pin;
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLock};

use prometheus_client::metrics::counter::Counter;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

use super::routes::Routes;

/// Looks up a container's main pid (the agent asks Docker); `None` when
/// unknown. Called in the background (first connect, and again after a
/// namespace connect failed), never on the data path.
#[derive(Clone)]
pub struct PidLookup(pub Arc<dyn Fn(String) -> PidFuture + Send + Sync>);

/// The answer of a [`PidLookup`].
pub type PidFuture = Pin<Box<dyn Future<Output = Option<u32>> + Send>>;

impl fmt::Debug for PidLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PidLookup")
    }
}

/// Why a namespace dialer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("joining the network namespace of pid {pid}: {source}")]
    Namespace { pid: u32, source: io::Error },
    #[error("the namespace dialer thread is gone")]
    Gone,
}

/// What the proxy knows about one container's namespace.
enum Entry {
    /// The pid is being looked up; the published port is used meanwhile.
    Resolving,
    /// A thread parked in the namespace makes sockets.
    Ready(NetnsThread),
    /// No pid, or the namespace could not be joined: published port only.
    Unavailable,
}

/// Which way one connect goes (pure decision, see [`path`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Path {
    /// Inside the container's namespace, to 127.0.0.1:<container port>.
    Netns(u16),
    /// The published port (through docker-proxy).
    Published,
    /// The published port, because the namespace is not usable (counted).
    Fallback,
    /// The published port while the pid is looked up; start the lookup.
    Lookup,
}

/// The decision for one connect: `state` is the container's entry (`None`:
/// never seen), `container_port` the port inside it (`None`: a peer or a
/// backend without one), `enabled` whether a pid lookup is configured.
pub(crate) fn path(state: Option<EntryState>, container_port: Option<u16>, enabled: bool) -> Path {
    match (enabled, container_port, state) {
        (false, _, _) | (_, None, _) => Path::Published,
        (true, Some(_), None) => Path::Lookup,
        (true, Some(_), Some(EntryState::Resolving | EntryState::Unavailable)) => Path::Fallback,
        (true, Some(p), Some(EntryState::Ready)) => Path::Netns(p),
    }
}

/// [`Entry`] without its thread, for the pure decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EntryState {
    Resolving,
    Ready,
    Unavailable,
}

impl Entry {
    fn state(&self) -> EntryState {
        match self {
            Entry::Resolving => EntryState::Resolving,
            Entry::Ready(_) => EntryState::Ready,
            Entry::Unavailable => EntryState::Unavailable,
        }
    }
}

/// Sockets made per round trip to a namespace thread. Each spare is an
/// open descriptor (and keeps the namespace alive until used or dropped
/// with the entry), so a container holds at most this many; `agent::run`
/// raises the descriptor limit (`util::raise_nofile`).
const BATCH: usize = 8;

type SocketReply = oneshot::Sender<io::Result<Vec<OwnedFd>>>;

/// The thread parked in one container's namespace; it ends when the last
/// clone is dropped (its channel closes), and the spare sockets close with
/// it. A connect holds a clone only while it runs.
#[derive(Clone)]
struct NetnsThread {
    requests: mpsc::Sender<SocketReply>,
    spare: Arc<Mutex<Vec<OwnedFd>>>,
}

impl NetnsThread {
    /// Spawns the thread and waits until it joined the namespace.
    fn start(pid: u32) -> Result<NetnsThread, DialError> {
        let (tx, rx) = mpsc::channel::<SocketReply>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), DialError>>();
        std::thread::Builder::new()
            .name(format!("netns-{pid}"))
            .spawn(move || {
                let joined = join_netns(pid);
                let ok = joined.is_ok();
                let _ = ready_tx.send(joined);
                if !ok {
                    return;
                }
                while let Ok(reply) = rx.recv() {
                    let _ = reply.send(batch());
                }
            })
            .map_err(|_| DialError::Gone)?;
        ready_rx.recv().map_err(|_| DialError::Gone)??;
        Ok(NetnsThread {
            requests: tx,
            spare: Arc::default(),
        })
    }
}

impl NetnsThread {
    /// Connects a socket of the namespace to its `127.0.0.1:port`.
    async fn connect(&self, port: u16) -> io::Result<TcpStream> {
        let fd = self.socket().await?;
        let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
        socket.set_nodelay(true)?;
        socket
            .connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
            .await
    }

    /// A socket of the namespace: a spare, else a new batch from the
    /// thread (one kept, the rest spared).
    async fn socket(&self) -> io::Result<OwnedFd> {
        let gone = || io::Error::other(DialError::Gone);
        if let Some(fd) = self
            .spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
        {
            return Ok(fd);
        }
        let (tx, rx) = oneshot::channel();
        self.requests.send(tx).map_err(|_| gone())?;
        let mut made = rx.await.map_err(|_| gone())??.into_iter();
        let fd = made.next().ok_or_else(gone)?;
        // Concurrent misses each bring a batch; keep at most one batch.
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        let room = BATCH.saturating_sub(spare.len());
        spare.extend(made.take(room));
        Ok(fd)
    }
}

// The thread that joins serves nothing but socket creation for this container.
fn join_netns(pid: u32) -> Result<(), DialError> {
    crate::util::enter_netns(pid).map_err(|source| DialError::Namespace { pid, source })
}

/// Up to [`BATCH`] sockets: those made before the first failure (out of
/// descriptors, say), or that failure when none was.
fn batch() -> io::Result<Vec<OwnedFd>> {
    let mut made = Vec::with_capacity(BATCH);
    for _ in 0..BATCH {
        match tcp_socket() {
            Ok(fd) => made.push(fd),
            Err(e) if made.is_empty() => return Err(e),
            Err(_) => break,
        }
    }
    Ok(made)
}

/// A fresh non-blocking IPv4 TCP socket in this thread's namespace.
fn tcp_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned right below.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The dialer's metrics: connects in a namespace, and those that used the
/// published port instead.
pub(crate) struct DialCounters {
    pub dials: Counter,
    pub fallbacks: Counter,
}

/// Every container's namespace dialer, shared by the whole proxy.
pub(crate) struct Dialer {
    lookup: Option<PidLookup>,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
    /// Published address -> (container id, container port) of every routed
    /// local backend, for the HTTP connector, which sees only the address.
    local: RwLock<HashMap<SocketAddr, (String, u16)>>,
    fallbacks: Counter,
    dials: Counter,
}

impl Dialer {
    pub(crate) fn new(lookup: Option<PidLookup>, counters: DialCounters) -> Dialer {
        Dialer {
            lookup,
            entries: Arc::default(),
            local: RwLock::default(),
            fallbacks: counters.fallbacks,
            dials: counters.dials,
        }
    }

    /// Connects to a local container: in its namespace at `container_port`
    /// when possible, else its published `addr`. Errors are the connect's own.
    pub(crate) async fn connect(
        &self,
        container_id: &str,
        container_port: Option<u16>,
        addr: SocketAddr,
    ) -> io::Result<TcpStream> {
        // One look at the entry: the path, and the thread's handles with it.
        let (decision, thread) = {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let entry = entries.get(container_id);
            let thread = match entry {
                Some(Entry::Ready(t)) => Some(t.clone()),
                _ => None,
            };
            let decision = path(
                entry.map(Entry::state),
                container_port,
                self.lookup.is_some(),
            );
            (decision, thread)
        };
        match (decision, thread) {
            (Path::Netns(p), Some(thread)) => match thread.connect(p).await {
                Ok(s) => {
                    self.dials.inc();
                    return Ok(s);
                }
                Err(e) => {
                    // The namespace is gone (container restarted, pid
                    // changed): look it up again on the next connect.
                    tracing::debug!(container = container_id, error = %e, "netns dial failed; using the published port");
                    self.entries
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(container_id);
                    self.fallbacks.inc();
                }
            },
            (Path::Lookup, _) => {
                self.fallbacks.inc();
                self.resolve(container_id);
            }
            // Netns implies a Ready entry, whose handles came with it.
            (Path::Fallback | Path::Netns(_), _) => {
                self.fallbacks.inc();
            }
            (Path::Published, _) => {}
        }
        TcpStream::connect(addr).await
    }

    /// Looks the pid up and parks a thread in the namespace, in the
    /// background; connects meanwhile use the published port.
    fn resolve(&self, container_id: &str) {
        let Some(lookup) = self.lookup.clone() else {
            return;
        };
        {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.contains_key(container_id) {
                return;
            }
            entries.insert(container_id.to_string(), Entry::Resolving);
        }
        let entries = self.entries.clone();
        let id = container_id.to_string();
        tokio::spawn(async move {
            let pid = (lookup.0)(id.clone()).await;
            let entry = match pid {
                None => Entry::Unavailable,
                Some(pid) => {
                    match tokio::task::spawn_blocking(move || NetnsThread::start(pid)).await {
                        Ok(Ok(t)) => Entry::Ready(t),
                        Ok(Err(e)) => {
                            tracing::info!(container = %id, error = %e, "cannot dial in the container's namespace; using its published port");
                            Entry::Unavailable
                        }
                        Err(_) => Entry::Unavailable,
                    }
                }
            };
            let mut entries = entries.lock().unwrap_or_else(PoisonError::into_inner);
            // Forgotten meanwhile (left the routes): stays forgotten.
            if let Some(e) = entries.get_mut(&id) {
                *e = entry;
            }
        });
    }

    /// The routed local container published on `addr`, with its port inside.
    pub(crate) fn local(&self, addr: SocketAddr) -> Option<(String, u16)> {
        self.local
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&addr)
            .cloned()
    }

    /// Follows the route table: forgets containers no route names (`routed`,
    /// the table's container ids; their threads end) and maps published
    /// addresses to containers.
    pub(crate) fn sync(&self, table: &Routes, routed: &HashSet<&str>) {
        let backends = table.ports.values().flat_map(|r| &r.backends);
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| routed.contains(id.as_str()));
        *self.local.write().unwrap_or_else(PoisonError::into_inner) = backends
            .filter_map(|b| Some((b.addr, (b.container_id.clone(), b.container_port?))))
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: (Option<EntryState>, Option<u16>, bool), expected: Path) {
        assert_eq!(path(input.0, input.1, input.2), expected, "{input:?}");
    }

    #[test]
    fn chooses_the_path() {
        use EntryState::*;
        check((None, Some(80), false), Path::Published);
        check((Some(Ready), Some(80), false), Path::Published);
        check((Some(Ready), None, true), Path::Published);
        check((None, Some(80), true), Path::Lookup);
        check((Some(Resolving), Some(80), true), Path::Fallback);
        check((Some(Unavailable), Some(80), true), Path::Fallback);
        check((Some(Ready), Some(80), true), Path::Netns(80));
    }

    /// The whole path on this process's own namespace (joining it takes
    /// root, as the agent has): the first connect uses the published
    /// address and starts the lookup; once the thread is parked, connects
    /// go to 127.0.0.1:<container port> in the namespace, so a dead
    /// published address does not matter; a dead container port falls back.
    #[tokio::test]
    async fn dials_inside_the_namespace_once_the_pid_is_known() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            // CI runs as root (the agent needs it too): there, not being
            // root is a failure, never a silent skip.
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "joining a network namespace takes root, and CI=true"
            );
            eprintln!("skipped: joining a network namespace takes root");
            return;
        }
        let inside = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let published = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (inside_port, published_addr) = (
            inside.local_addr().unwrap().port(),
            published.local_addr().unwrap(),
        );
        let fallbacks = Counter::default();
        let pid = std::process::id();
        let lookup = PidLookup(Arc::new(move |_| Box::pin(async move { Some(pid) })));
        let dialer = Dialer::new(
            Some(lookup),
            DialCounters {
                dials: Counter::default(),
                fallbacks: fallbacks.clone(),
            },
        );
        let first = dialer
            .connect("c1", Some(inside_port), published_addr)
            .await
            .unwrap();
        assert_eq!(first.peer_addr().unwrap(), published_addr);
        assert_eq!(fallbacks.get(), 1);
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while dialer.entries.lock().unwrap().get("c1").map(Entry::state) != Some(EntryState::Ready)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "namespace thread never ready"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        drop(published);
        let s = dialer
            .connect("c1", Some(inside_port), published_addr)
            .await
            .unwrap();
        assert_eq!(s.peer_addr().unwrap().port(), inside_port);
        assert_eq!(fallbacks.get(), 1);
        // Nothing on the container port: the dial fails, the published
        // address is tried (and refused: nothing there either), counted.
        drop(inside);
        assert!(dialer
            .connect("c1", Some(inside_port), published_addr)
            .await
            .is_err());
        assert_eq!(fallbacks.get(), 2);
    }

    #[test]
    fn a_missing_pid_is_an_error_not_a_panic() {
        // pid 0 has no /proc entry.
        assert!(matches!(
            NetnsThread::start(0),
            Err(DialError::Namespace { pid: 0, .. })
        ));
    }
}
