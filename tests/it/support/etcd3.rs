//! A three-member etcd on loopback ports, for tests that lose a member (the
//! leader) while berth works.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use etcd_client::Client;
use tempfile::TempDir;

use super::etcd::{client_for, require_etcd};

pub struct EtcdCluster {
    members: Vec<Member>,
    pub root: String,
    _dir: TempDir,
}

struct Member {
    client: String,
    child: Option<Child>,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            if let Some(mut c) = m.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn port() -> u16 {
    berth::localetcd::free_port().expect("a free port")
}

impl EtcdCluster {
    /// Starts three members and waits until the cluster serves a write.
    pub async fn start() -> EtcdCluster {
        let etcd = require_etcd();
        let dir = tempfile::Builder::new()
            .prefix("berth-etcd3-")
            .tempdir()
            .expect("tempdir");
        let ports: Vec<(u16, u16)> = (0..3).map(|_| (port(), port())).collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
            .collect();
        let mut members = Vec::new();
        for (i, (c, p)) in ports.iter().enumerate() {
            let client = format!("http://127.0.0.1:{c}");
            let peer = format!("http://127.0.0.1:{p}");
            let log = std::fs::File::create(dir.path().join(format!("m{i}.log"))).expect("log");
            let child = Command::new(&etcd)
                .args(["--name", &format!("m{i}")])
                .arg("--data-dir")
                .arg(dir.path().join(format!("m{i}")))
                .args([
                    "--listen-client-urls",
                    &client,
                    "--advertise-client-urls",
                    &client,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args(["--initial-cluster", &initial.join(",")])
                .args(["--initial-cluster-state", "new"])
                .args(["--heartbeat-interval", "10", "--election-timeout", "100"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn etcd");
            members.push(Member {
                client,
                child: Some(child),
            });
        }
        let cluster = EtcdCluster {
            members,
            root: format!("/t-{}", uuid::Uuid::new_v4().simple()),
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            let mut c = cluster.client().await;
            if c.put(format!("{}/ready", cluster.root), "1", None)
                .await
                .is_ok()
            {
                return cluster;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "3-member etcd did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every member's client URL, comma-separated (for `--etcd`).
    pub fn endpoints(&self) -> String {
        let all: Vec<&str> = self.members.iter().map(|m| m.client.as_str()).collect();
        all.join(",")
    }

    /// A client of the first live member.
    pub async fn client(&self) -> Client {
        let live = self
            .members
            .iter()
            .find(|m| m.child.is_some())
            .expect("a live member");
        client_for(&live.client).await
    }

    /// Kills the current leader (SIGKILL); returns its client URL.
    pub async fn kill_leader(&mut self) -> String {
        let mut c = self.client().await;
        let status = c.status().await.expect("status");
        let leader = status.leader();
        for m in &mut self.members {
            let Some(child) = m.child.as_mut() else {
                continue;
            };
            let mut mc = client_for(&m.client).await;
            let Ok(s) = mc.status().await else { continue };
            if s.header().map(|h| h.member_id()) == Some(leader) {
                let _ = child.kill();
                let _ = child.wait();
                m.child = None;
                return m.client.clone();
            }
        }
        panic!("no member is the leader {leader:x}");
    }
}
