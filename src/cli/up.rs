//! `berth up -f FILE`: a one-machine cluster in one command. Uses the etcd at
//! `--etcd` if it answers, else starts a local one; runs an agent; applies
//! FILE; prints where the app answers; on Ctrl-C stops what it started.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use super::agent::{init_logging, shutdown_signal, AgentArgs};
use super::args::{EtcdArgs, FileArgs};
use super::CliError;
use crate::localetcd::{self, LocalEtcd, LocalEtcdConfig};
use crate::resource::observed::ContainerPhase;
use crate::resource::{Object, Observed};
use crate::store::{ApplyOptions, Store};

#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub files: FileArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Where a local etcd keeps its data (default: $XDG_DATA_HOME/berth, else ~/.local/share/berth).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// How long to wait for the components to become ready.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub wait: Duration,
    /// Leave the containers running on Ctrl-C (default: stop them, like `docker compose up`).
    #[arg(long)]
    pub keep_running: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<crate::resource::quantity::Duration>()
        .map(|d| d.std())
}

/// `$XDG_DATA_HOME/berth` or `~/.local/share/berth`.
fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("berth");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    home.join(".local/share/berth")
}

/// The port of a loopback `http://` endpoint, where a local etcd could listen.
fn loopback_port(endpoint: &str) -> Option<u16> {
    let rest = endpoint.strip_prefix("http://")?;
    let (host, port) = rest.trim_end_matches('/').rsplit_once(':')?;
    matches!(host, "127.0.0.1" | "localhost").then_some(())?;
    port.parse().ok()
}

pub async fn run(etcd: &EtcdArgs, args: UpArgs) -> Result<ExitCode, CliError> {
    if std::env::var_os("RUST_LOG").is_none() {
        // Keep the terminal for berth up's own messages; RUST_LOG shows more.
        std::env::set_var("RUST_LOG", "warn");
    }
    init_logging(args.agent.log_format);
    // Bad input fails before anything starts.
    let loaded = super::load_manifests(&args.files.files)?;
    let objects: Vec<Object> = loaded.iter().map(|l| l.object.clone()).collect();

    let mut etcd = etcd.clone();
    let endpoint = etcd.endpoints.first().cloned().unwrap_or_default();
    let mut local: Option<LocalEtcd> = None;
    if localetcd::answers(&endpoint).await {
        println!("Using etcd at {endpoint}.");
    } else {
        let data_dir = args
            .data_dir
            .clone()
            .unwrap_or_else(default_data_dir)
            .join("etcd");
        let mut cfg = LocalEtcdConfig::new(&data_dir);
        cfg.client_port = loopback_port(&endpoint)
            .filter(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok());
        let started = LocalEtcd::start(cfg)
            .await
            .map_err(|e| CliError::Agent(format!("cannot start etcd: {e}")))?;
        println!(
            "Started etcd at {} (data in {}, log in {}).",
            started.endpoint(),
            data_dir.display(),
            started.log_path().display()
        );
        etcd.endpoints = vec![started.endpoint()];
        local = Some(started);
    }
    let store = Store::connect(&etcd.store_config()).await?;

    let mut agent_cfg = args.agent.config(&etcd);
    // Where the proxy serves the external ports (what a user curls).
    let proxy_host = match agent_cfg.traffic.bind {
        ip if ip.is_unspecified() => "127.0.0.1".to_string(),
        ip => ip.to_string(),
    };
    agent_cfg.stop_containers_on_exit = !args.keep_running;
    let page = serve_page_on_loopback(&mut agent_cfg);
    let node = agent_cfg.node.clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut agent = tokio::spawn(crate::agent::run(agent_cfg, store.client(), async move {
        let _ = stop_rx.await;
    }));
    println!("Started agent for node {node}.");
    if let Some(url) = &page {
        println!("Status page and API at {url} (read without a token: loopback only).");
    }

    let result = store
        .apply(&objects, &ApplyOptions::default())
        .await
        .map_err(|e| super::apply::at_source(e, &loaded))?;
    for o in &result.outcomes {
        println!("{}/{} {}", o.kind.lower(), o.name, o.change);
    }

    let components: Vec<(String, String, u32)> = objects
        .iter()
        .filter_map(|o| match o {
            Object::Component(c) if c.spec.state == crate::resource::component::State::Running => {
                Some((
                    o.project().unwrap_or_default().to_string(),
                    c.metadata.name.clone(),
                    c.spec.placement.count(),
                ))
            }
            _ => None,
        })
        .collect();
    let deadline = Instant::now() + args.wait;
    let mut ready = false;
    let mut agent_done = None;
    while Instant::now() < deadline {
        let observed = read_observed(&store).await.unwrap_or_default();
        ready = components
            .iter()
            .all(|(p, c, want)| ready_count(&observed, p, c) >= *want);
        if ready {
            for (p, c, _) in &components {
                for url in urls(&observed, p, c) {
                    println!("{p}/{c} answers at {url}");
                }
                for port in externals(&objects, p, c) {
                    println!(
                        "{p}/{c} answers at http://{proxy_host}:{port}/ (external port, through the proxy)"
                    );
                }
            }
            break;
        }
        tokio::select! {
            r = &mut agent => { agent_done = Some(r); break; }
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    if let Some(r) = agent_done {
        let msg = match r {
            Ok(Ok(())) => "the agent stopped".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => format!("the agent failed: {e}"),
        };
        return Err(CliError::Agent(msg));
    }
    if !ready {
        eprintln!("warning: not all components are ready after {:?}; see `berth describe component NAME -p PROJECT`", args.wait);
    }
    let mut etcd_flag = if local.is_some() || endpoint != crate::store::DEFAULT_ENDPOINT {
        format!(" --etcd {}", etcd.endpoints.join(","))
    } else {
        String::new()
    };
    if etcd.root != crate::store::DEFAULT_ROOT {
        etcd_flag.push_str(&format!(" --root {}", etcd.root));
    }
    println!("berth is up. Try `berth{etcd_flag} get components -A`. Press Ctrl-C to stop.");

    tokio::select! {
        _ = shutdown_signal() => {}
        r = &mut agent => {
            if let Ok(Err(e)) = r {
                return Err(CliError::Agent(e.to_string()));
            }
        }
    }
    println!(
        "Stopping{}...",
        if args.keep_running { "" } else { " containers" }
    );
    let _ = stop_tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(120), agent).await;
    if let Some(mut e) = local {
        let _ = e.stop().await;
        println!("Stopped etcd.");
    }
    Ok(ExitCode::SUCCESS)
}

async fn read_observed(store: &Store) -> Result<Vec<(String, Observed)>, CliError> {
    let prefix = store.keys().all_observed_prefix();
    let (kvs, _) = store.range_all(&prefix).await?;
    Ok(kvs
        .iter()
        .filter_map(|kv| {
            let key = String::from_utf8_lossy(kv.key()).to_string();
            let rest = key.strip_prefix(&prefix)?.to_string();
            let (_, pc) = rest.split_once('/')?;
            Some((pc.to_string(), serde_json::from_slice(kv.value()).ok()?))
        })
        .collect())
}

/// The ready containers of one component, on every node.
fn ready<'a>(
    observed: &'a [(String, Observed)],
    project: &str,
    component: &str,
) -> impl Iterator<Item = &'a crate::resource::observed::ObservedContainer> + 'a {
    let key = format!("{project}/{component}");
    observed
        .iter()
        .filter(move |(k, _)| *k == key)
        .flat_map(|(_, o)| &o.containers)
        .filter(|c| c.phase == ContainerPhase::Ready)
}

fn ready_count(observed: &[(String, Observed)], project: &str, component: &str) -> u32 {
    ready(observed, project, component).count() as u32
}

/// The external ports of component `p/c` in the applied objects.
fn externals(objects: &[Object], p: &str, c: &str) -> Vec<u16> {
    objects
        .iter()
        .filter(|o| o.project().unwrap_or_default() == p && o.name() == c)
        .filter_map(crate::store::ports::externals)
        .flat_map(|(_, ports)| ports)
        .collect()
}

fn urls(observed: &[(String, Observed)], project: &str, component: &str) -> Vec<String> {
    ready(observed, project, component)
        .flat_map(|c| {
            c.ports
                .iter()
                .map(|(cp, hp)| format!("http://127.0.0.1:{hp}/ (container port {cp})"))
        })
        .collect()
}

/// `berth up` serves the API and the status page on loopback: on `--http`
/// when given, else on 127.0.0.1:9180 (or a free port when that is taken).
/// Anonymous read is allowed only when the address is a loopback one.
/// Returns the page's URL.
fn serve_page_on_loopback(cfg: &mut crate::agent::AgentConfig) -> Option<String> {
    let addr = match &cfg.http_addr {
        Some(a) => a.clone(),
        None => {
            let port = std::net::TcpListener::bind(("127.0.0.1", 9180))
                .map(|_| 9180)
                .or_else(|_| localetcd::free_port())
                .ok()?;
            format!("127.0.0.1:{port}")
        }
    };
    let loopback = addr
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    cfg.api_anonymous_read |= loopback;
    cfg.http_addr = Some(addr.clone());
    Some(format!("http://{addr}/"))
}
