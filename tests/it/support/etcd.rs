//! A throwaway etcd per test: own port, own data dir, own root prefix.
//!
//! ```ignore
//! let etcd = TestEtcd::start().await;
//! let mut client = etcd.client().await;
//! client.put(etcd.key("specs/x"), "v", None).await?;
//! assert_eq!(etcd.keys(&etcd.key("specs/")).await, vec![etcd.key("specs/x")]);
//! ```
//!
//! A missing `etcd` fails the test with how to install it (`hack/install-deps.sh`),
//! in CI (`CI=true`) and outside it alike: nothing is silently skipped.
//! [`EtcdProxy`] sits between a client and etcd and can cut or stall every
//! connection, so a test can make a client lose etcd while others still write to it,
//! and counts the bytes etcd sends through it (what a client was made to receive).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use berth::localetcd::{LocalEtcd, LocalEtcdConfig};
use etcd_client::{Client, ConnectOptions, GetOptions};
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Fails the test unless `etcd` is installed; returns its path.
pub fn require_etcd() -> PathBuf {
    match berth::localetcd::find_etcd() {
        Some(p) => p,
        None if std::env::var("CI").as_deref() == Ok("true") => panic!(
            "etcd is not installed, and CI=true: a missing etcd fails the run. \
             Install it with `hack/install-deps.sh` (Debian: etcd-server etcd-client)."
        ),
        None => panic!(
            "etcd is not installed: berth's integration tests need a real etcd. \
             Install it with `hack/install-deps.sh` (Debian: apt-get install etcd-server etcd-client)."
        ),
    }
}

/// One test's etcd.
pub struct TestEtcd {
    etcd: LocalEtcd,
    root: String,
    // Dropped last: the etcd child dies first (kill_on_drop), then its data goes.
    _dir: TempDir,
}

impl TestEtcd {
    /// Starts a fast single-member etcd on free loopback ports in a temp dir,
    /// with a random root prefix (`/t-<uuid>`).
    pub async fn start() -> TestEtcd {
        require_etcd();
        let dir = tempfile::Builder::new()
            .prefix("berth-etcd-")
            .tempdir()
            .expect("create a temp dir for etcd");
        let mut cfg = LocalEtcdConfig::new(dir.path().join("data"));
        cfg.name = "test".into();
        cfg.fast = true;
        let etcd = match LocalEtcd::start(cfg).await {
            Ok(e) => e,
            Err(e) => panic!("cannot start the test etcd: {e}"),
        };
        let root = format!("/t-{}", uuid::Uuid::new_v4().simple());
        TestEtcd {
            etcd,
            root,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        self.etcd.endpoint()
    }

    /// This test's root prefix, `/t-<random>` (no trailing slash).
    pub fn root(&self) -> &str {
        &self.root
    }

    /// `root/rel`.
    pub fn key(&self, rel: &str) -> String {
        format!("{}/{}", self.root, rel.trim_start_matches('/'))
    }

    /// The local etcd process (stop, restart, ports, log).
    pub fn local(&mut self) -> &mut LocalEtcd {
        &mut self.etcd
    }

    /// Kills etcd (an outage); [`TestEtcd::restart`] or `local().restart()` brings it back.
    pub async fn stop(&mut self) {
        self.etcd.stop().await.expect("stop etcd");
    }

    /// Stops etcd and starts it again on the same port with the same data.
    pub async fn restart(&mut self) {
        self.etcd.restart().await.expect("restart etcd");
    }

    /// A new client of this etcd (connect timeout only: no request deadline,
    /// so it can hold long watches).
    pub async fn client(&self) -> Client {
        client_for(&self.endpoint()).await
    }

    /// The value under `key` (absolute).
    pub async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut c = self.client().await;
        let resp = c.get(key, None).await.expect("etcd get");
        resp.kvs().first().map(|kv| kv.value().to_vec())
    }

    /// The value under `key` as text.
    pub async fn get_string(&self, key: &str) -> Option<String> {
        self.get(key)
            .await
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    /// The value under `key` and the lease it is bound to (0: none).
    pub async fn get_with_lease(&self, key: &str) -> Option<(Vec<u8>, i64)> {
        let mut c = self.client().await;
        let resp = c.get(key, None).await.expect("etcd get");
        resp.kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.lease()))
    }

    /// The lease `key` is bound to (0: none); `None` when there is no `key`.
    pub async fn lease_of(&self, key: &str) -> Option<i64> {
        self.get_with_lease(key).await.map(|(_, lease)| lease)
    }

    /// Waits until etcd has seen `lease` renewed `times` times, each proven by
    /// its expiry moving past every earlier bound (etcd reports whole seconds
    /// left, so a reading `r` taken between `sent` and `received` puts the
    /// expiry in `[sent + r, received + r + 1)`). Panics if the lease expires
    /// or is not renewed within `timeout`.
    pub async fn wait_renewals(&self, lease: i64, times: u32, timeout: Duration) {
        let mut c = self.client().await;
        let start = tokio::time::Instant::now();
        let mut bound: Option<tokio::time::Instant> = None;
        let mut renewals = 0;
        while renewals < times {
            assert!(
                start.elapsed() < timeout,
                "lease {lease:x} renewed {renewals} of {times} times within {timeout:?}"
            );
            let sent = tokio::time::Instant::now();
            let ttl = c
                .lease_time_to_live(lease, None)
                .await
                .expect("lease time to live")
                .ttl();
            let received = tokio::time::Instant::now();
            assert!(ttl > 0, "lease {lease:x} expired");
            let left = Duration::from_secs(ttl.unsigned_abs());
            let renewed = bound.is_some_and(|b| sent + left > b);
            if renewed {
                renewals += 1;
            }
            if renewed || bound.is_none() {
                bound = Some(received + left + Duration::from_secs(1));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every key starting with `prefix` (absolute), in order.
    pub async fn keys(&self, prefix: &str) -> Vec<String> {
        let mut c = self.client().await;
        let resp = c
            .get(
                prefix,
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .expect("etcd get prefix");
        resp.kvs()
            .iter()
            .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
            .collect()
    }

    /// Puts `key` (absolute); returns the new revision.
    pub async fn put(&self, key: &str, value: impl Into<Vec<u8>>) -> i64 {
        let mut c = self.client().await;
        let resp = c.put(key, value, None).await.expect("etcd put");
        resp.header().map(|h| h.revision()).unwrap_or(0)
    }

    /// Deletes `key` (absolute); returns the new revision.
    pub async fn delete(&self, key: &str) -> i64 {
        let mut c = self.client().await;
        let resp = c.delete(key, None).await.expect("etcd delete");
        resp.header().map(|h| h.revision()).unwrap_or(0)
    }

    /// etcd's current revision.
    pub async fn revision(&self) -> i64 {
        let mut c = self.client().await;
        let resp = c.get("/", None).await.expect("etcd get");
        resp.header().map(|h| h.revision()).expect("header")
    }

    /// Compacts etcd's history up to its current revision.
    pub async fn compact(&self) -> i64 {
        let rev = self.revision().await;
        let mut c = self.client().await;
        c.compact(
            rev,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await
        .expect("etcd compact");
        rev
    }

    /// A TCP proxy to this etcd whose connections a test can cut.
    pub async fn proxy(&self) -> EtcdProxy {
        EtcdProxy::start(0, self.etcd.client_port()).await
    }

    /// A proxy to this etcd listening on `port` (one a test kept free, to
    /// play an endpoint that comes up late).
    pub async fn proxy_on(&self, port: u16) -> EtcdProxy {
        EtcdProxy::start(port, self.etcd.client_port()).await
    }
}

/// A client of `endpoint` with a short connect timeout.
///
/// HTTP/2 keep-alive pings must not come more often than etcd's
/// `--grpc-keepalive-min-time` (5 s by default): etcd answers faster pings with
/// GOAWAY (too many pings) and drops the connection.
pub async fn client_for(endpoint: &str) -> Client {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5));
    Client::connect([endpoint], Some(opts))
        .await
        .expect("connect to etcd")
}

/// What an [`EtcdProxy`] does with connections.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Forward to etcd.
    Open,
    /// Close at once (refused, as far as a client can tell).
    Cut,
    /// Accept and never answer: a hung member or a black-holed route.
    Stall,
}

/// A loopback TCP proxy in front of etcd. [`EtcdProxy::cut`] closes every
/// connection and refuses new ones, [`EtcdProxy::stall`] makes new ones hang,
/// until [`EtcdProxy::restore`]. Every change of mode closes the connections
/// made in the previous one, so a client always starts afresh.
pub struct EtcdProxy {
    port: u16,
    mode: Arc<watch::Sender<Mode>>,
    task: tokio::task::JoinHandle<()>,
    /// Bytes etcd sent to the proxy's clients so far.
    received: Arc<AtomicU64>,
}

impl EtcdProxy {
    async fn start(listen_port: u16, target_port: u16) -> EtcdProxy {
        let listener = TcpListener::bind(("127.0.0.1", listen_port))
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let mode = Arc::new(watch::Sender::new(Mode::Open));
        let mode2 = mode.clone();
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                let now = *mode2.borrow();
                if now == Mode::Cut {
                    drop(inbound);
                    continue;
                }
                let mut mode_rx = mode2.subscribe();
                let counter = counter.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(now, inbound, target_port, counter) => {}
                        _ = mode_rx.wait_for(|m| *m != now) => {}
                    }
                });
            }
        });
        EtcdProxy {
            port,
            mode,
            task,
            received,
        }
    }

    /// Bytes etcd has sent to the proxy's clients so far (responses and
    /// watch events alike): a measure of the work a client was given.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::SeqCst)
    }

    /// The proxy's client URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Closes every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Closes every proxied connection; new ones are accepted and never answered.
    pub fn stall(&self) {
        self.mode.send_replace(Mode::Stall);
    }

    /// Forwards connections again (closing the stalled ones).
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Open);
    }
}

/// Forwards `inbound` to etcd, counting the bytes etcd sends back, or holds
/// it unanswered.
async fn serve(mode: Mode, inbound: TcpStream, target_port: u16, received: Arc<AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if mode == Mode::Stall {
        return std::future::pending().await;
    }
    let Ok(outbound) = TcpStream::connect(("127.0.0.1", target_port)).await else {
        return;
    };
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_etcd, mut to_etcd) = outbound.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut from_client, &mut to_etcd).await;
        let _ = to_etcd.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n @ 1..) = from_etcd.read(&mut buf).await {
            received.fetch_add(n as u64, Ordering::SeqCst);
            if to_client.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}

impl Drop for EtcdProxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Cut);
        self.task.abort();
    }
}
