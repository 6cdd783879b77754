//! `berth agent` processes for the multi-node tests: one `AgentConfig` says
//! what differs between the tests (node, labels, 127.0.0.x address, ports,
//! extra flags), `spawn` starts the real binary and the returned `Agent`
//! SIGKILLs it and removes its node's containers when dropped, so a failing
//! test leaves nothing running.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::support::cli::BERTH;
use crate::support::images::NodeContainers;

/// A port free right now on every loopback address (the kernel's pick).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The traffic proxy of one agent: it binds its components' external ports
/// on `--proxy-bind` and forwards between nodes on `--forward-port`.
#[derive(Clone, Debug)]
pub struct Proxy {
    pub bind: String,
    pub forward_port: u16,
}

/// Where an agent's stderr goes.
#[derive(Clone, Debug)]
pub enum Log {
    /// JSON lines (`--log-format json`) into this file, for a test to read
    /// after the fact.
    Json(PathBuf),
    Null,
}

/// One agent process to start; everything a test varies.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// etcd endpoints, comma-separated.
    pub etcd: String,
    pub root: String,
    pub node: String,
    pub labels: Option<String>,
    /// `--address`: the node's own 127.0.0.x.
    pub address: Option<String>,
    pub proxy: Option<Proxy>,
    /// `--http`: the metrics and API address.
    pub http: Option<String>,
    /// Further flags after the common ones.
    pub extra: Vec<String>,
    pub log: Log,
    /// `RUST_LOG` for the agent; `None` inherits the test's environment.
    pub rust_log: Option<String>,
}

impl AgentConfig {
    /// An agent of `node` under `root` with no optional flag set.
    pub fn new(etcd: &str, root: &str, node: &str) -> AgentConfig {
        AgentConfig {
            etcd: etcd.to_string(),
            root: root.to_string(),
            node: node.to_string(),
            labels: None,
            address: None,
            proxy: None,
            http: None,
            extra: Vec::new(),
            log: Log::Null,
            rust_log: None,
        }
    }

    /// The command line; `spawn` runs it. Stdout is discarded; stderr goes
    /// where `log` says. The lease is short (3s) so that failover tests
    /// finish in seconds.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BERTH);
        cmd.args(["--etcd", &self.etcd, "--root", &self.root])
            .args(["agent", "--node", &self.node, "--lease-ttl", "3s"]);
        if let Some(labels) = &self.labels {
            cmd.args(["--labels", labels]);
        }
        if let Some(address) = &self.address {
            cmd.args(["--address", address]);
        }
        if let Some(p) = &self.proxy {
            cmd.args(["--proxy-bind", &p.bind])
                .args(["--forward-port", &p.forward_port.to_string()]);
        }
        if let Some(http) = &self.http {
            cmd.args(["--http", http]);
        }
        cmd.args(&self.extra);
        if let Some(rust_log) = &self.rust_log {
            cmd.env("RUST_LOG", rust_log);
        }
        cmd.stdout(Stdio::null());
        match &self.log {
            Log::Json(path) => {
                let file = std::fs::File::create(path).expect("log file");
                cmd.args(["--log-format", "json"]).stderr(file);
            }
            Log::Null => {
                cmd.stderr(Stdio::null());
            }
        }
        cmd
    }

    pub fn spawn(&self) -> Agent {
        let child = self.command().spawn().expect("spawn berth agent");
        Agent {
            node: self.node.clone(),
            child,
            log: match &self.log {
                Log::Json(path) => Some(path.clone()),
                Log::Null => None,
            },
            containers: NodeContainers {
                root: self.root.clone(),
                node: self.node.clone(),
            },
            address: self.address.clone(),
            http: self.http.clone(),
        }
    }
}

/// One running agent; SIGKILLed when dropped, then its containers removed.
pub struct Agent {
    pub node: String,
    pub child: Child,
    /// Its JSON log, if it writes one.
    pub log: Option<PathBuf>,
    pub containers: NodeContainers,
    address: Option<String>,
    http: Option<String>,
}

impl Agent {
    /// Its `--address`; a test asks only of agents it gave one.
    pub fn address(&self) -> &str {
        self.address
            .as_deref()
            .expect("agent started with --address")
    }

    /// Its `--http` address; a test asks only of agents it gave one.
    pub fn http(&self) -> &str {
        self.http.as_deref().expect("agent started with --http")
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
