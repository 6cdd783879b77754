//! Ready and health probes (http, tcp, exec) and the failure-threshold
//! bookkeeping of health checks.
//!
//! Probes reach a container through its published port on 127.0.0.1, never
//! through the bridge network. docker-proxy accepts connections on the
//! published port before the container listens, so:
//! - [`http`] reads the status line (a connection closed without one fails);
//! - [`tcp`] holds the connection briefly: the proxy closes it at once when
//!   the container refuses, and keeps it open when the container accepted.
//!
//! [`probe`] never returns an error: every failure is a failed [`ProbeResult`]
//! with a message fit for `describe`.

pub mod http;
pub mod state;
pub mod tcp;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::docker::Docker;
use crate::resource::component::{Check, Probe};

pub use state::{CheckState, Verdict};

/// Where a probe goes: the container, and its published ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProbeTarget {
    pub container_id: String,
    /// Container port -> host port on 127.0.0.1.
    pub ports: BTreeMap<u16, u16>,
}

/// The outcome of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeResult {
    pub ok: bool,
    pub message: String,
}

impl ProbeResult {
    pub fn pass(message: impl Into<String>) -> ProbeResult {
        ProbeResult {
            ok: true,
            message: message.into(),
        }
    }
    pub fn fail(message: impl Into<String>) -> ProbeResult {
        ProbeResult {
            ok: false,
            message: message.into(),
        }
    }
}

/// Runs `check` once against `target`, bounded by the check's timeout.
pub async fn probe(docker: &Docker, target: &ProbeTarget, check: &Check) -> ProbeResult {
    let timeout = check.timeout();
    let Some(p) = check.probe() else {
        return ProbeResult::fail("the check names no probe (exactly one of http, tcp, exec)");
    };
    let run = async {
        match p {
            Probe::Http(h) => match host_port(target, h.port) {
                Ok(port) => http::probe(port, &h.path, timeout).await,
                Err(r) => r,
            },
            Probe::Tcp(t) => match host_port(target, t.port) {
                Ok(port) => tcp::probe(port, timeout).await,
                Err(r) => r,
            },
            Probe::Exec(e) => exec(docker, &target.container_id, &e.command, timeout).await,
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => ProbeResult::fail(format!(
            "{} timed out after {}",
            describe(&p),
            fmt_duration(timeout)
        )),
    }
}

/// `http GET :8080/healthz`, `tcp :8080`, `exec [cat /ready]`: for messages.
pub fn describe(p: &Probe<'_>) -> String {
    match p {
        Probe::Http(h) => format!("http GET :{}{}", h.port, h.path),
        Probe::Tcp(t) => format!("tcp :{}", t.port),
        Probe::Exec(e) => format!("exec {:?}", e.command),
    }
}

fn host_port(target: &ProbeTarget, port: u16) -> Result<u16, ProbeResult> {
    target.ports.get(&port).copied().ok_or_else(|| {
        let published: Vec<String> = target.ports.keys().map(|p| p.to_string()).collect();
        ProbeResult::fail(format!(
            "container port {port} is not published (published: {})",
            if published.is_empty() {
                "none".to_string()
            } else {
                published.join(", ")
            }
        ))
    })
}

async fn exec(docker: &Docker, id: &str, command: &[String], timeout: Duration) -> ProbeResult {
    match docker.exec_output(id, command, timeout).await {
        Ok(o) if o.exit_code == 0 => ProbeResult::pass("exit code 0"),
        Ok(o) => {
            let tail: String = o
                .output
                .trim()
                .chars()
                .rev()
                .take(200)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if tail.is_empty() {
                ProbeResult::fail(format!("exit code {}", o.exit_code))
            } else {
                ProbeResult::fail(format!("exit code {}: {tail}", o.exit_code))
            }
        }
        Err(e) => ProbeResult::fail(format!("exec failed: {e}")),
    }
}

pub(crate) fn fmt_duration(d: Duration) -> String {
    crate::resource::quantity::Duration(d).to_string()
}
