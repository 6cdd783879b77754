//! `berth agent`: the per-node daemon. It registers the node, watches what the
//! node must run (`assignments/<node>/`), and reconciles the Docker engine to it.
//!
//! - [`plan`]: the pure planner (no Docker, no etcd).
//! - [`health`]: ready and health check tracking per container.
//! - [`executor`]: container names, labels, admission, and Docker operations.
//! - [`state`]: the in-memory picture of containers, conditions and events.
//! - [`reconcile`]: one component's reconcile: plan, execute, publish.
//! - [`sync`]: Docker events and resyncs by label (adoption at start).
//! - [`register`]: the lease and the `Node` document.
//! - [`report`]: writing `observed/` documents in the background.
//! - the coordinator ([`crate::coordinator`]) runs in every agent: it
//!   campaigns, and while elected places replicas for the whole cluster.
//! - [`traffic`]: the glue to the traffic proxy ([`crate::proxy`]): routes
//!   from ready containers, endpoints, drains.
//! - [`metrics`], [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`services`]: wiring of the jobs and roles loops ([`crate::services`]).
//!
//! Static stability: nothing on the container path waits for etcd. With etcd
//! down, the assignments cache keeps its last state, containers keep running
//! and being checked, replaced and restarted; observed state waits in the
//! reporter; the lease is re-created when etcd answers again.
//!
//! Known limit: desired state comes only from the assignments in etcd, so an
//! agent *started* while etcd is down adopts its containers but does not
//! restart crashed ones (nor start, replace or stop any) until etcd answers
//! and the first list of assignments completes. An agent that was running
//! when etcd went down keeps acting from its cache.
//!
//! One agent per node name: an agent refuses to start while `nodes/<node>`
//! is bound to a lease another running agent keeps alive (see [`register`]).

pub mod actions;
pub mod evictions;
pub mod executor;
pub mod health;
pub mod http;
pub mod metrics;
pub mod pin;
pub mod plan;
pub mod reconcile;
pub mod register;
pub mod report;
pub mod services;
pub mod state;
pub mod sync;
pub mod traffic;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::docker::Docker;
use crate::resource::component::Check;
use crate::resource::Assignment;
use crate::runtime::{self, Action, Controller, ControllerConfig, WatcherConfig};
use crate::store::Keys;
use executor::{Executor, Permissions};
use health::{ProbeTarget, Prober, Tracker};
use metrics::Metrics;
use reconcile::Ctx;

/// How an agent runs. Plain data: the CLI fills it from flags.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// Node name (`--node`, default: the hostname).
    pub node: String,
    /// Node labels (`--labels k=v,...`), used by `nodeSelector`.
    pub labels: BTreeMap<String, String>,
    /// How other nodes reach this one (`--address`).
    pub address: String,
    /// etcd key root (`--root`, default `/berth`).
    pub root: String,
    /// Docker engine address; `None`: `DOCKER_HOST` or the local socket.
    pub docker_host: Option<String>,
    /// TTL of the agent's etcd lease (default 10 s).
    pub lease_ttl: Duration,
    /// Address of the HTTP endpoints (`--http`), e.g. `127.0.0.1:9100`.
    pub http_addr: Option<String>,
    /// API bearer tokens file (`--api-tokens`); without it no token is valid.
    pub api_tokens: Option<std::path::PathBuf>,
    /// `--api-anonymous-read`: requests without a token may read the API.
    pub api_anonymous_read: bool,
    /// `--api-cert` and `--api-key`: serve `--http` over TLS.
    pub api_tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub allow_privileged: bool,
    /// Host path prefixes bindings may use (`--allow-bind`, repeatable).
    pub allow_bind: Vec<String>,
    /// Stop this node's containers on shutdown (default: leave them running).
    pub stop_containers_on_exit: bool,
    /// Period of the full resync of containers (default 60 s).
    pub resync_interval: Duration,
    /// Take part in the coordinator election (default: yes). An agent that
    /// does not only runs what it is assigned.
    pub coordinate: bool,
    /// Most component reconciles at once.
    pub concurrency: usize,
    /// `--proxy-bind`, `--forward-port`.
    pub traffic: traffic::TrafficConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            node: default_node_name(),
            labels: BTreeMap::new(),
            address: String::new(),
            root: crate::store::DEFAULT_ROOT.to_string(),
            docker_host: None,
            lease_ttl: Duration::from_secs(10),
            http_addr: None,
            api_tokens: None,
            api_anonymous_read: false,
            api_tls: None,
            allow_privileged: false,
            allow_bind: Vec::new(),
            stop_containers_on_exit: false,
            resync_interval: Duration::from_secs(60),
            coordinate: true,
            concurrency: 16,
            traffic: traffic::TrafficConfig::default(),
        }
    }
}

/// The hostname (`/etc/hostname`, `HOSTNAME`), or `node`.
pub fn default_node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "node".to_string())
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{0}")]
    Docker(#[from] crate::docker::Error),
    #[error("cannot serve HTTP on {addr}: {source}")]
    Http {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error(transparent)]
    NodeTaken(#[from] register::NodeTaken),
}

/// Probes through [`crate::checks::probe`].
struct DockerProber(Docker);

impl Prober for DockerProber {
    fn probe<'a>(
        &'a self,
        target: &'a ProbeTarget,
        check: &'a Check,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let t = crate::checks::ProbeTarget {
                container_id: target.id.clone(),
                ports: target.ports.clone(),
            };
            let r = crate::checks::probe(&self.0, &t, check).await;
            if r.ok {
                Ok(())
            } else {
                Err(r.message)
            }
        })
    }
}

/// How long shutdown waits for stops in flight before it says it did not.
const STOPS_ON_EXIT: Duration = Duration::from_secs(30);

/// Runs the agent until `shutdown` completes. See the module docs.
///
/// Fails at once when the Docker engine does not answer or the HTTP address
/// cannot be bound; etcd being unreachable is not an error (the agent keeps
/// retrying with backoff).
pub async fn run(
    cfg: AgentConfig,
    etcd: etcd_client::Client,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), AgentError> {
    validate(&cfg)?;
    // The proxy holds two descriptors per connection plus spare namespace
    // sockets per container (`berth agent` and `berth up` alike).
    match crate::util::raise_nofile() {
        Ok(n) => tracing::debug!(limit = n, "open descriptors"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-descriptor limit"),
    }
    let api = api_config(&cfg)?;
    let tls = match &cfg.api_tls {
        Some((cert, key)) => Some(http::tls_acceptor(cert, key).map_err(AgentError::Config)?),
        None => None,
    };
    let docker = Docker::connect(cfg.docker_host.as_deref()).await?;
    let keys = Keys::new(&cfg.root);
    let listener = bind_http(&cfg).await?;
    let token = CancellationToken::new();
    {
        let token = token.clone();
        tokio::spawn(async move {
            shutdown.await;
            token.cancel();
        });
    }
    tracing::info!(node = %cfg.node, root = %keys.root(), docker = %docker.host(), api = %docker.api_version(), "agent starting");
    tokio::select! {
        r = register::check_not_taken(&etcd, &keys, &cfg.node) => r?,
        _ = token.cancelled() => return Ok(()),
    }
    let metrics = Metrics::new();
    let background = Background::start(&cfg, &etcd, &keys, &docker, &metrics, &token);
    let (assignments, assignment_triggers) = watch_assignments(&etcd, &keys, &cfg.node);
    let (evictions, eviction_triggers) = evictions::Evictions::watch(&etcd, &keys, &cfg.node);
    let (trigger_tx, trigger_rx) = mpsc::unbounded_channel::<String>();
    let traffic = traffic::Traffic::start(
        &cfg,
        &etcd,
        &keys,
        background.reporter.clone(),
        metrics.proxy.clone(),
        &docker,
        &token,
    );
    let services = crate::services::node::NodeServices::start(
        crate::services::node::NodeServicesConfig {
            node: cfg.node.clone(),
            proxy_ip: cfg.traffic.bind,
        },
        &etcd,
        &keys,
        docker.clone(),
        trigger_tx.clone(),
        &token,
    );
    let ctx = context(
        &cfg,
        &etcd,
        &keys,
        &docker,
        &metrics,
        assignments,
        &background,
        &trigger_tx,
        traffic.clone(),
        evictions.clone(),
        services,
    );
    {
        let (keys, node) = (keys.clone(), cfg.node.clone());
        traffic.follow_ports(
            trigger_tx.clone(),
            move |ck| keys.assignment_of(&node, ck),
            token.clone(),
        );
    }
    remember_restarts(&ctx.containers, &etcd, &keys, &cfg.node).await;

    // Docker: adoption, events, resyncs. Nothing is reconciled before the
    // first resync (the adoption gate) and the first list of assignments.
    let (adopted_tx, adopted_rx) = watch::channel(false);
    let sync_task = tokio::spawn(sync::run(
        ctx.clone(),
        keys.root().to_string(),
        cfg.resync_interval,
        adopted_tx,
        token.clone(),
    ));
    let (gate, ready_rx) = adoption_gate(adopted_rx, ctx.assignments.clone(), token.clone());
    let http_task = listener.map(|l| {
        let store = crate::store::Store::from_client(etcd.clone(), &cfg.root);
        let local = Arc::new(actions::LocalActions::new(ctx.clone()));
        let router = http::router(metrics.clone(), ready_rx).merge(crate::api::router(
            store,
            api,
            Some(local),
        ));
        tokio::spawn(http::serve(l, router, token.clone(), tls))
    });
    let coordinator_task = cfg.coordinate.then(|| {
        let ccfg = crate::coordinator::CoordinatorConfig {
            node: cfg.node.clone(),
            keys: keys.clone(),
            concurrency: cfg.concurrency,
            resync: cfg.resync_interval,
        };
        let lease = background.lease.clone();
        tokio::spawn(crate::coordinator::run(
            etcd.clone(),
            ccfg,
            lease,
            token.clone(),
        ))
    });
    let services_task = tokio::spawn(crate::services::run(
        crate::services::ServicesConfig {
            node: cfg.node.clone(),
            keys: keys.clone(),
            client: etcd.clone(),
            docker: docker.clone(),
            lease: background.lease.clone(),
            local: Arc::new(services::AgentReplicas(ctx.clone())),
        },
        token.clone(),
    ));
    let triggers = tokio_stream::wrappers::UnboundedReceiverStream::new(trigger_rx);
    Controller::new(ctx.assignments.clone(), assignment_triggers)
        .with_trigger(triggers)
        .with_trigger(eviction_triggers)
        .wait_for(gate)
        .wait_for(evictions.reader())
        .with_resync(cfg.resync_interval)
        .with_config(ControllerConfig {
            concurrency: cfg.concurrency,
            ..Default::default()
        })
        .graceful_shutdown_on(token.clone().cancelled_owned())
        .run(
            reconcile::reconcile,
            |_, _, _| Action::backoff(),
            ctx.clone(),
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::warn!(error = %e, "reconcile failed; retrying with backoff");
            }
        })
        .await;

    token.cancel();
    tracing::info!("agent stopping");
    if cfg.stop_containers_on_exit {
        stop_all(&ctx).await;
    }
    ctx.tracker.shutdown();
    wait_for_stops(&ctx.stops).await;
    let _ = sync_task.await;
    let _ = services_task.await;
    for t in [coordinator_task, http_task].into_iter().flatten() {
        let _ = t.await;
    }
    background.stop().await;
    tracing::info!("agent stopped");
    Ok(())
}

fn validate(cfg: &AgentConfig) -> Result<(), AgentError> {
    if cfg.node.is_empty() || cfg.node.contains('/') {
        return Err(AgentError::Config(format!(
            "invalid node name {:?}",
            cfg.node
        )));
    }
    Ok(())
}

/// The API's access rules; a tokens file that does not load stops the
/// agent at start, naming the file and the entry.
fn api_config(cfg: &AgentConfig) -> Result<crate::api::ApiConfig, AgentError> {
    let tokens = match &cfg.api_tokens {
        Some(path) => Some(std::sync::Arc::new(
            crate::api::Tokens::load(path).map_err(|e| AgentError::Config(e.to_string()))?,
        )),
        None => None,
    };
    Ok(crate::api::ApiConfig {
        tokens,
        anonymous_read: cfg.api_anonymous_read,
    })
}

/// The API address this agent advertises in its registration (see
/// [`api_url`]).
fn api_address(cfg: &AgentConfig) -> String {
    cfg.http_addr
        .as_deref()
        .and_then(|http| api_url(http, &cfg.address, cfg.api_tls.is_some()))
        .unwrap_or_default()
}

/// Where peers reach the API of an agent serving `--http http` (pure):
/// `http://IP:PORT` (`https` with TLS); an unspecified bind IP (`0.0.0.0`,
/// `::`) takes `--address`'s IP with the bind port. `None` when no reachable
/// address can be named (unspecified bind and no `--address`, or an `--http`
/// that is no IP:port).
pub fn api_url(http: &str, address: &str, tls: bool) -> Option<String> {
    let bind: std::net::SocketAddr = http.parse().ok()?;
    let ip = if bind.ip().is_unspecified() {
        address.parse::<std::net::IpAddr>().ok()?
    } else {
        bind.ip()
    };
    let scheme = if tls { "https" } else { "http" };
    Some(format!(
        "{scheme}://{}",
        std::net::SocketAddr::new(ip, bind.port())
    ))
}

async fn bind_http(cfg: &AgentConfig) -> Result<Option<tokio::net::TcpListener>, AgentError> {
    let Some(addr) = &cfg.http_addr else {
        return Ok(None);
    };
    let listener = http::bind(addr).await.map_err(|source| AgentError::Http {
        addr: addr.clone(),
        source,
    })?;
    Ok(Some(listener))
}

/// The registration loop (lease and node document) and the reporter of
/// observed documents, running in the background.
struct Background {
    reporter: report::Reporter,
    /// The agent's current lease (the coordinator campaigns on it).
    lease: watch::Receiver<Option<i64>>,
    registration: tokio::task::JoinHandle<()>,
    reporting: tokio::task::JoinHandle<()>,
}

impl Background {
    fn start(
        cfg: &AgentConfig,
        etcd: &etcd_client::Client,
        keys: &Keys,
        docker: &Docker,
        metrics: &Metrics,
        token: &CancellationToken,
    ) -> Background {
        let (lease_tx, lease_rx) = watch::channel(None);
        let registration = register::Registration {
            client: etcd.clone(),
            keys: keys.clone(),
            node: cfg.node.clone(),
            address: cfg.address.clone(),
            api_address: api_address(cfg),
            labels: cfg.labels.clone(),
            ttl: cfg.lease_ttl,
            docker: docker.clone(),
            metrics: metrics.clone(),
        };
        let registration = tokio::spawn(registration.run(lease_tx, token.clone()));
        let lease = lease_rx.clone();
        let (reporter, reporting) = report::Reporter::spawn(
            etcd.clone(),
            keys.observed_prefix(&cfg.node),
            cfg.resync_interval.min(report::VERIFY_EVERY),
            lease_rx,
            metrics.clone(),
            token.clone(),
        );
        Background {
            reporter,
            lease,
            registration,
            reporting,
        }
    }

    /// Waits for the lease to be revoked (bounded) and the reporter to end.
    async fn stop(self) {
        let _ = tokio::time::timeout(register::ETCD_TIMEOUT, self.registration).await;
        let _ = self.reporting.await;
    }
}

/// What this node must run: the cache of `assignments/<node>/` (unreadable
/// documents kept as such) and the keys that change.
fn watch_assignments(
    etcd: &etcd_client::Client,
    keys: &Keys,
    node: &str,
) -> (
    runtime::Reader<runtime::Doc<Assignment>>,
    impl futures::Stream<Item = String> + Send + 'static,
) {
    let (reader, writer) = runtime::store(runtime::doc::json::<Assignment>);
    let events = runtime::watcher(
        etcd.clone(),
        keys.assignments_prefix(node),
        WatcherConfig::default(),
    );
    (
        reader,
        runtime::trigger_keys(runtime::reflector(writer, events)),
    )
}

/// Failed probes: metrics always; an event (rate-limited by the tracker)
/// published by the reconcile the trigger runs.
fn on_check_failure(
    metrics: &Metrics,
    states: &state::ComponentStates,
    trigger: &mpsc::UnboundedSender<String>,
    keys: &Keys,
    node: &str,
) -> health::OnFailure {
    let (m, states, trigger) = (metrics.clone(), states.clone(), trigger.clone());
    let (keys, node) = (keys.clone(), node.to_string());
    Arc::new(move |f: &health::Failure| {
        m.check_failed(f.kind);
        if !f.notable {
            return;
        }
        if let Some(ck) = keys.component_of_assignment(&node, &f.key) {
            let id = f.container.get(..12).unwrap_or(&f.container);
            let message = format!("container {id}: {}", f.message);
            states.event(&ck, f.reason(), &message);
            let _ = trigger.send(f.key.clone());
        }
    })
}

/// Everything every reconcile shares.
#[allow(clippy::too_many_arguments)]
fn context(
    cfg: &AgentConfig,
    etcd: &etcd_client::Client,
    keys: &Keys,
    docker: &Docker,
    metrics: &Metrics,
    assignments: runtime::Reader<runtime::Doc<Assignment>>,
    background: &Background,
    trigger: &mpsc::UnboundedSender<String>,
    traffic: Arc<traffic::Traffic>,
    evictions: evictions::Evictions,
    services: Arc<crate::services::node::NodeServices>,
) -> Arc<Ctx> {
    let recorder = crate::events::Recorder::spawn(
        etcd.clone(),
        keys.clone(),
        cfg.node.clone(),
        CancellationToken::new(),
    );
    let states = state::ComponentStates::recording(recorder, &cfg.node);
    let on_failure = on_check_failure(metrics, &states, trigger, keys, &cfg.node);
    let prober = Arc::new(DockerProber(docker.clone()));
    let tracker = Tracker::new(prober, trigger.clone(), Some(on_failure));
    let perms = Permissions {
        allow_privileged: cfg.allow_privileged,
        allow_bind: cfg.allow_bind.clone(),
    };
    let root = keys.root().to_string();
    Arc::new(Ctx {
        node: cfg.node.clone(),
        keys: keys.clone(),
        assignments,
        containers: state::Containers::default(),
        states,
        tracker,
        exec: Executor::new(
            docker.clone(),
            root,
            cfg.node.clone(),
            perms,
            cfg.concurrency,
        ),
        reporter: background.reporter.clone(),
        metrics: metrics.clone(),
        trigger: trigger.clone(),
        templates: Mutex::new(HashMap::new()),
        stops: tokio_util::task::TaskTracker::new(),
        pins: pin::Pins::new(etcd.clone(), keys.clone(), cfg.node.clone()),
        traffic,
        evictions,
        services,
    })
}

/// The gate every reconcile waits for: open once the first resync adopted
/// the containers; `ready` (for `/readyz`) turns true once the assignments
/// are listed too.
fn adoption_gate(
    mut adopted: watch::Receiver<bool>,
    assignments: runtime::Reader<runtime::Doc<Assignment>>,
    token: CancellationToken,
) -> (runtime::Reader<()>, watch::Receiver<bool>) {
    let (gate, mut gate_writer) = runtime::store::<(), _>(|_| None);
    let (ready_tx, ready_rx) = watch::channel(false);
    tokio::spawn(async move {
        tokio::select! {
            _ = token.cancelled() => {}
            r = async { adopted.wait_for(|a| *a).await.map(|_| ()) } => if r.is_ok() {
                gate_writer.apply_watcher_event(&runtime::Event::Init);
                gate_writer.apply_watcher_event(&runtime::Event::InitDone);
                tracing::info!("containers adopted");
                if assignments.wait_until_ready().await.is_ok() {
                    let _ = ready_tx.send(true);
                }
            }
        }
    });
    (gate, ready_rx)
}

/// Waits (bounded) for the stop tasks in flight; says so when some did not end.
async fn wait_for_stops(stops: &tokio_util::task::TaskTracker) {
    stops.close();
    if stops.is_empty() {
        return;
    }
    tracing::info!(stops = stops.len(), "waiting for container stops in flight");
    if tokio::time::timeout(STOPS_ON_EXIT, stops.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            stops = stops.len(),
            "container stops still in flight after {STOPS_ON_EXIT:?}; exiting without them \
             (their containers may be left stopped but not removed: the next agent removes them)"
        );
    }
}

/// Reads the restart counts the last run of this agent published (if its
/// observed documents are still there), so adoption keeps them. Best effort:
/// bounded by a short timeout, skipped when etcd does not answer.
async fn remember_restarts(
    containers: &state::Containers,
    etcd: &etcd_client::Client,
    keys: &Keys,
    node: &str,
) {
    let opts = etcd_client::GetOptions::new().with_prefix();
    let mut client = etcd.clone();
    let read = client.get(keys.observed_prefix(node), Some(opts));
    let resp = match tokio::time::timeout(Duration::from_secs(2), read).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return tracing::debug!(error = %e, "no restart counts from etcd"),
        Err(_) => return tracing::debug!("no restart counts from etcd: no answer"),
    };
    let mut seen = HashMap::new();
    for kv in resp.kvs() {
        let Ok(o) = serde_json::from_slice::<crate::resource::Observed>(kv.value()) else {
            continue;
        };
        for c in o.containers {
            let last_exit = c
                .last_exit_code
                .map(|code| (code, c.last_reason.clone().unwrap_or_default()));
            seen.insert(
                c.id,
                state::Remembered {
                    restarts: c.restarts,
                    last_exit,
                },
            );
        }
    }
    containers.remember(seen);
}

/// Stops and removes every container of this agent (`--stop-containers-on-exit`).
async fn stop_all(ctx: &Arc<Ctx>) {
    let all: Vec<_> = ctx
        .containers
        .ids()
        .into_iter()
        .filter_map(|id| ctx.containers.get(&id))
        .collect();
    tracing::info!(containers = all.len(), "stopping containers before exit");
    let stops = all.into_iter().map(|r| {
        let ctx = ctx.clone();
        async move {
            let termination = match ctx.assignments.get(&ctx.key_of(&r.key())).as_deref() {
                Some(Ok(a)) => a
                    .of_hash(&r.owner.hash)
                    .or(a.newest())
                    .and_then(|rev| rev.template.termination.clone())
                    .unwrap_or_default(),
                _ => Default::default(),
            };
            let res = if r.is_running() {
                ctx.exec.stop_and_remove(&r.id, &termination).await
            } else {
                ctx.exec.remove(&r.id).await
            };
            if let Err(e) = res {
                tracing::warn!(container = %r.name, error = %e, "stopping on exit failed");
            }
        }
    });
    futures::future::join_all(stops).await;
}

#[cfg(test)]
mod tests {
    #[test]
    fn advertised_api_address() {
        fn check(http: &str, address: &str, tls: bool, expected: Option<&str>) {
            assert_eq!(
                super::api_url(http, address, tls).as_deref(),
                expected,
                "{http} {address} {tls}"
            );
        }
        check("127.0.0.2:9100", "", false, Some("http://127.0.0.2:9100"));
        check(
            "127.0.0.2:9100",
            "10.0.0.1",
            true,
            Some("https://127.0.0.2:9100"),
        );
        check(
            "0.0.0.0:9100",
            "10.0.0.1",
            false,
            Some("http://10.0.0.1:9100"),
        );
        check("[::]:9100", "fd00::1", false, Some("http://[fd00::1]:9100"));
        check("0.0.0.0:9100", "", false, None);
        check("0.0.0.0:9100", "node-a.example", false, None);
        check("localhost:9100", "10.0.0.1", false, None);
    }
}
