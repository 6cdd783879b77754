//! A throwaway `etcd` child process, for `berth up` and the tests.
//!
//! [`LocalEtcd::start`] finds `etcd` on `PATH`, picks free loopback ports unless
//! told which, starts it with its output in `<data_dir>/etcd.log`, and waits
//! until it answers a read. etcd's data goes to `<data_dir>/etcd`. The child is killed when the [`LocalEtcd`] is
//! dropped. [`LocalEtcd::restart`] keeps the ports and the data directory, so a
//! test can simulate an outage and clients reconnect to the same endpoint.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How long [`LocalEtcd::start`] waits for etcd to answer.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How often a start is retried with new ports when auto-picked ports collide.
const PORT_ATTEMPTS: usize = 5;

/// What went wrong starting or stopping a local etcd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `etcd` is not on `PATH`.
    #[error("`etcd` was not found on PATH; install it with `hack/install-deps.sh` (Debian: apt-get install etcd-server etcd-client)")]
    NotInstalled,
    /// The data directory or the log file could not be created.
    #[error("cannot prepare {path}: {source}")]
    Prepare {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// No free loopback port could be found.
    #[error("cannot pick a free loopback port: {0}")]
    Port(#[source] std::io::Error),
    /// The process could not be spawned.
    #[error("cannot spawn {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A port etcd needs is taken by another process.
    #[error(
        "127.0.0.1:{port} is already in use (address already in use); pick another {which} port"
    )]
    PortInUse { port: u16, which: &'static str },
    /// etcd exited before it answered.
    #[error("etcd exited during start-up ({status}); log at {log}:\n{tail}")]
    Exited {
        status: String,
        log: PathBuf,
        tail: String,
    },
    /// etcd did not answer in time.
    #[error("etcd did not answer on {endpoint} within {timeout:?}; log at {log}:\n{tail}")]
    Timeout {
        endpoint: String,
        timeout: Duration,
        log: PathBuf,
        tail: String,
    },
    /// Killing or reaping the child failed.
    #[error("cannot stop etcd (pid {pid:?}): {source}")]
    Stop {
        pid: Option<u32>,
        #[source]
        source: std::io::Error,
    },
}

/// How to start a local etcd.
#[derive(Debug, Clone)]
pub struct LocalEtcdConfig {
    /// This etcd's directory, created if missing: etcd's own data goes to
    /// `<data_dir>/etcd` (etcd's `--data-dir`), its output to `<data_dir>/etcd.log`.
    pub data_dir: PathBuf,
    /// The client port on 127.0.0.1; `None` picks a free one.
    pub client_port: Option<u16>,
    /// The peer port on 127.0.0.1; `None` picks a free one.
    pub peer_port: Option<u16>,
    /// The member name.
    pub name: String,
    /// Short heartbeat and election timeouts (`--heartbeat-interval 10
    /// --election-timeout 100`): starts faster, for tests and `berth up`.
    pub fast: bool,
}

impl LocalEtcdConfig {
    /// A config with free ports, the name `berth` and `fast` on.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        LocalEtcdConfig {
            data_dir: data_dir.into(),
            client_port: None,
            peer_port: None,
            name: "berth".into(),
            fast: true,
        }
    }
}

/// A running (or stopped) etcd child process.
#[derive(Debug)]
pub struct LocalEtcd {
    cfg: LocalEtcdConfig,
    program: PathBuf,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

impl LocalEtcd {
    /// Starts etcd and waits until it answers a read (at most [`START_TIMEOUT`]).
    pub async fn start(cfg: LocalEtcdConfig) -> Result<LocalEtcd, Error> {
        let program = find_etcd().ok_or(Error::NotInstalled)?;
        std::fs::create_dir_all(&cfg.data_dir).map_err(|source| Error::Prepare {
            path: cfg.data_dir.clone(),
            source,
        })?;
        let auto_ports = cfg.client_port.is_none() || cfg.peer_port.is_none();
        let attempts = if auto_ports { PORT_ATTEMPTS } else { 1 };
        let mut last_err = None;
        for _ in 0..attempts {
            let client_port = match cfg.client_port {
                Some(p) => p,
                None => free_port()?,
            };
            let peer_port = match cfg.peer_port {
                Some(p) => p,
                None => loop {
                    let p = free_port()?;
                    if p != client_port {
                        break p;
                    }
                },
            };
            let mut etcd = LocalEtcd {
                cfg: cfg.clone(),
                program: program.clone(),
                client_port,
                peer_port,
                child: None,
            };
            match etcd.spawn_and_wait().await {
                Ok(()) => return Ok(etcd),
                Err(e @ (Error::Exited { .. } | Error::PortInUse { .. }))
                    if auto_ports && e.to_string().contains("address already in use") =>
                {
                    tracing::debug!("etcd port collision, retrying with new ports");
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or(Error::NotInstalled))
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The client port.
    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// The peer port.
    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    /// The directory given in the config (etcd's data is in its `etcd` subdirectory).
    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }

    /// The log file of the child (stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.cfg.data_dir.join("etcd.log")
    }

    /// The child's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(|c| c.id())
    }

    /// Whether the child is running (as far as this handle knows).
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Kills the child (SIGKILL) and waits for it. A no-op when stopped.
    pub async fn stop(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            let pid = child.id();
            if let Err(source) = child.kill().await {
                // Already exited is fine; anything else is reported.
                if source.kind() != std::io::ErrorKind::InvalidInput {
                    return Err(Error::Stop { pid, source });
                }
            }
        }
        Ok(())
    }

    /// Stops the child and starts it again on the same ports with the same data.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.stop().await?;
        // The ports were ours a moment ago; a collision is very unlikely, but the
        // kernel may need a moment to release them, so retry briefly.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.spawn_and_wait().await {
                Err(e @ (Error::Exited { .. } | Error::PortInUse { .. }))
                    if Instant::now() < deadline
                        && e.to_string().contains("address already in use") =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn spawn_and_wait(&mut self) -> Result<(), Error> {
        // Another process on our client port would answer the readiness probe
        // in our child's place: make sure both ports are free first.
        for (port, which) in [(self.client_port, "client"), (self.peer_port, "peer")] {
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                return Err(Error::PortInUse { port, which });
            }
        }
        let log_path = self.log_path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| Error::Prepare {
                path: log_path.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(|source| Error::Prepare {
            path: log_path.clone(),
            source,
        })?;
        let log_start = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = Command::new(&self.program);
        cmd.arg("--name")
            .arg(&self.cfg.name)
            .arg("--data-dir")
            .arg(self.cfg.data_dir.join("etcd"))
            .arg("--listen-client-urls")
            .arg(&client)
            .arg("--advertise-client-urls")
            .arg(&client)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("{}={}", self.cfg.name, peer))
            .arg("--initial-cluster-state")
            .arg("new");
        if self.cfg.fast {
            cmd.args(["--heartbeat-interval", "10", "--election-timeout", "100"]);
        }
        // Its own process group: a Ctrl-C in the terminal goes to berth, which
        // stops its agent (still needing etcd) before it stops etcd.
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn().map_err(|source| Error::Spawn {
            program: self.program.clone(),
            source,
        })?;
        self.child = Some(child);

        let started = Instant::now();
        let endpoint = self.endpoint();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(Error::Exited {
                        status: status.to_string(),
                        log: log_path.clone(),
                        tail: log_tail(&log_path, log_start),
                    });
                }
            }
            if answers(&endpoint).await {
                // It answers; make sure it is our child that does.
                if let Some(child) = self.child.as_mut() {
                    if let Ok(None) = child.try_wait() {
                        return Ok(());
                    }
                }
                continue;
            }
            if started.elapsed() > START_TIMEOUT {
                let tail = log_tail(&log_path, log_start);
                let _ = self.stop().await;
                return Err(Error::Timeout {
                    endpoint,
                    timeout: START_TIMEOUT,
                    log: log_path,
                    tail,
                });
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Whether an etcd at `endpoint` answers a read within about a second.
pub async fn answers(endpoint: &str) -> bool {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_millis(500))
        .with_timeout(Duration::from_secs(1));
    let attempt = async {
        let mut client = etcd_client::Client::connect([endpoint], Some(opts)).await?;
        client.get("/berth-ping", None).await
    };
    matches!(
        tokio::time::timeout(Duration::from_millis(1500), attempt).await,
        Ok(Ok(_))
    )
}

/// Finds `etcd` on `PATH` (or `/usr/bin/etcd`).
pub fn find_etcd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join("etcd"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A free TCP port on 127.0.0.1 (bound, read and released; a later bind can still
/// race with another process, which callers retry).
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(Error::Port)?;
    let port = listener.local_addr().map_err(Error::Port)?.port();
    Ok(port)
}

/// The last lines the child wrote to the log since `from`.
fn log_tail(path: &Path, from: u64) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return "(log unreadable)".into();
    };
    let start = usize::try_from(from).unwrap_or(0).min(bytes.len());
    let text = String::from_utf8_lossy(&bytes[start..]);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(15);
    lines[skip..].join("\n")
}
