//! `berth agent`: the per-node daemon.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::args::EtcdArgs;
use super::CliError;
use crate::agent::{self, AgentConfig};
use crate::store::Store;

#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// This node's name (default: the hostname).
    #[arg(long, env = "BERTH_NODE")]
    pub node: Option<String>,
    /// Node labels for nodeSelector, e.g. zone=a,disk=ssd.
    #[arg(long, env = "BERTH_LABELS", value_delimiter = ',', value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// How other nodes reach this one (shown in `get nodes -o wide`).
    #[arg(long, env = "BERTH_ADDRESS", default_value = "")]
    pub address: String,
    /// Docker engine address (default: DOCKER_HOST or the local socket).
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// TTL of the node's etcd lease: a dead agent's node goes away after this.
    #[arg(long, env = "BERTH_LEASE_TTL", default_value = "10s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
    /// Serve /healthz, /readyz, Prometheus /metrics and the REST API (/api/v1) on this address (e.g. 127.0.0.1:9180).
    #[arg(long = "http", env = "BERTH_HTTP")]
    pub http: Option<String>,
    /// YAML file of API bearer tokens, each with a role (read or admin) and optionally projects.
    #[arg(long, value_name = "FILE", env = "BERTH_API_TOKENS")]
    pub api_tokens: Option<std::path::PathBuf>,
    /// Let requests without a token read the API (for an agent listening on loopback only).
    #[arg(long)]
    pub api_anonymous_read: bool,
    /// Serve --http over TLS with this PEM certificate chain (needs --api-key).
    #[arg(long, value_name = "FILE", requires = "api_key")]
    pub api_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --api-cert.
    #[arg(long, value_name = "FILE", requires = "api_cert")]
    pub api_key: Option<std::path::PathBuf>,
    /// Allow components with `privileged: true`.
    #[arg(long)]
    pub allow_privileged: bool,
    /// Allow bindings of host paths under this prefix (repeatable).
    #[arg(long = "allow-bind", value_name = "PREFIX")]
    pub allow_bind: Vec<String>,
    /// Stop this node's containers when the agent exits (default: leave them running).
    #[arg(long)]
    pub stop_containers_on_exit: bool,
    /// Full resync with Docker this often, besides the events stream.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub resync_interval: Duration,
    /// The traffic proxy binds every external port (and the forwarding port) on this address.
    #[arg(long, env = "BERTH_PROXY_BIND", default_value = "0.0.0.0")]
    pub proxy_bind: std::net::IpAddr,
    /// Peers forward connections for components this node runs to this port
    /// (on --proxy-bind; advertised with --address). 0: no forwarding.
    #[arg(long, env = "BERTH_FORWARD_PORT", default_value_t = crate::agent::traffic::DEFAULT_FORWARD_PORT)]
    pub forward_port: u16,
    /// Threads of the traffic proxy's own runtime (1: a single-threaded
    /// event loop, enough for tens of thousands of requests per second).
    #[arg(long, env = "BERTH_PROXY_THREADS", default_value = "1")]
    pub proxy_threads: std::num::NonZeroUsize,
    /// Log format.
    #[arg(long, value_enum, default_value = "text", env = "BERTH_LOG_FORMAT")]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<crate::resource::quantity::Duration>()
        .map(|d| d.std())
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.trim().into(), v.trim().into())),
        _ => Err(format!("invalid label {s:?}: expected key=value")),
    }
}

impl AgentArgs {
    pub fn config(&self, etcd: &EtcdArgs) -> AgentConfig {
        let defaults = AgentConfig::default();
        AgentConfig {
            node: self.node.clone().unwrap_or(defaults.node),
            labels: self.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
            address: self.address.clone(),
            root: etcd.root.clone(),
            docker_host: self.docker_host.clone(),
            lease_ttl: self.lease_ttl,
            http_addr: self.http.clone(),
            api_tokens: self.api_tokens.clone(),
            api_anonymous_read: self.api_anonymous_read,
            api_tls: self.api_cert.clone().zip(self.api_key.clone()),
            allow_privileged: self.allow_privileged,
            allow_bind: self.allow_bind.clone(),
            stop_containers_on_exit: self.stop_containers_on_exit,
            resync_interval: self.resync_interval,
            traffic: crate::agent::traffic::TrafficConfig {
                bind: self.proxy_bind,
                forward_port: self.forward_port,
                threads: self.proxy_threads,
            },
            ..defaults
        }
    }
}

/// Sets up `tracing` output on stderr: human text or one JSON object per
/// line. `RUST_LOG` overrides the default level (`info`). Text is coloured
/// only on a terminal (see [`use_colour`]).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR"),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Whether logs get ANSI colours: only for a person at a terminal. A log
/// file, a pipe or journald would store the escape codes as text. A
/// non-empty `NO_COLOR` turns colour off everywhere (https://no-color.org).
fn use_colour(stderr_is_terminal: bool, no_color: Option<OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

pub async fn run(etcd: &EtcdArgs, args: AgentArgs) -> Result<ExitCode, CliError> {
    init_logging(args.log_format);
    let store = Store::connect(&etcd.store_config()).await?;
    agent::run(args.config(etcd), store.client(), shutdown_signal())
        .await
        .map_err(|e| CliError::Agent(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(!use_colour(false, None), "a file, pipe or journald");
        assert!(!use_colour(true, Some("1".into())), "NO_COLOR=1");
        assert!(
            use_colour(true, Some("".into())),
            "an empty NO_COLOR is unset"
        );
        assert!(!use_colour(false, Some("1".into())));
    }
}
