//! Glue between the agent and its traffic proxy ([`crate::proxy`]).
//!
//! The agent's reconciles tell [`Traffic`] which of a component's containers
//! are ready (from memory: the tracker and the container records, never
//! etcd); `Traffic` then
//! - publishes the route table the proxy follows (local backends: ready
//!   containers on their published 127.0.0.1 ports; remote: the forwarding
//!   addresses of peers' endpoints, cached from etcd by a watcher),
//! - writes this node's `endpoints/...` documents through the reporter
//!   (bound to the lease) and deletes them the moment a container stops
//!   being ready or starts draining,
//! - drains: [`Traffic::drain`] takes a container out of the balancer and
//!   the endpoints at once and returns the wait for its last connection.
//!
//! With etcd down, the last peer endpoints stay cached and local routes keep
//! following the containers: serving never waits for etcd.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::report::Reporter;
use crate::proxy::{
    Backend, DrainOutcome, Proxy, ProxyConfig, ProxyMetrics, ProxyRuntime, Route, Routes,
};
use crate::resource::component::PortSpec;
use crate::resource::endpoint::{Endpoint, EndpointPort};
use crate::resource::observed::{ContainerPhase, Drain, ObservedContainer};
use crate::resource::ComponentKey;
use crate::runtime::{self, Reader, WatcherConfig};
use crate::store::Keys;

/// The default `--forward-port`.
pub const DEFAULT_FORWARD_PORT: u16 = 7946;

/// What the agent's flags say about traffic.
#[derive(Clone, Debug)]
pub struct TrafficConfig {
    /// `--proxy-bind`: external ports and the forwarding port listen here.
    pub bind: IpAddr,
    /// `--forward-port`; 0 turns forwarding (both ways) off.
    pub forward_port: u16,
    /// `--proxy-threads`: the proxy's own runtime (1: one thread).
    pub threads: NonZeroUsize,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            forward_port: DEFAULT_FORWARD_PORT,
            threads: NonZeroUsize::MIN,
        }
    }
}

/// Where peers reach this node's forwarding listener: `--address` (an IP,
/// or `IP:port` whose port is ignored), else `--proxy-bind` when it is a
/// specific address. `None`: peers cannot forward here (no endpoint says
/// where), which only costs them a remote choice.
pub fn advertised_forward(address: &str, cfg: &TrafficConfig) -> Option<SocketAddr> {
    if cfg.forward_port == 0 {
        return None;
    }
    let ip = address
        .parse::<IpAddr>()
        .ok()
        .or_else(|| address.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| (!cfg.bind.is_unspecified()).then_some(cfg.bind))?;
    Some(SocketAddr::new(ip, cfg.forward_port))
}

/// One component as this node serves it.
#[derive(Clone, Debug, Default)]
struct Local {
    /// The ports of its newest assigned template.
    ports: Vec<PortSpec>,
    /// Ready, not draining containers: id -> container port -> host port.
    ready: BTreeMap<String, BTreeMap<u16, u16>>,
}

/// A drain in progress, for observed documents.
#[derive(Clone, Debug)]
struct Draining {
    since: SystemTime,
    until: SystemTime,
}

#[derive(Default)]
struct Inner {
    local: BTreeMap<ComponentKey, Local>,
    draining: HashMap<String, Draining>,
}

/// The agent's side of the proxy. Shared by every reconcile and stop task.
pub struct Traffic {
    node: String,
    keys: Keys,
    forward: Option<SocketAddr>,
    proxy: Proxy,
    routes: watch::Sender<Routes>,
    inner: Mutex<Inner>,
    reporter: Reporter,
    peers: Reader<Endpoint>,
}

impl Traffic {
    /// Starts the proxy (listeners follow the routes) and the watcher of
    /// every endpoint in the cluster (for forwarding).
    pub fn start(
        agent: &super::AgentConfig,
        etcd: &etcd_client::Client,
        keys: &Keys,
        reporter: Reporter,
        metrics: ProxyMetrics,
        docker: &crate::docker::Docker,
        shutdown: &CancellationToken,
    ) -> Arc<Traffic> {
        let (node, address, cfg) = (&agent.node, &agent.address, &agent.traffic);
        let (routes_tx, routes_rx) = watch::channel(Routes::default());
        let mut pcfg = ProxyConfig::new(cfg.bind);
        if cfg.forward_port != 0 {
            pcfg.forward = Some(SocketAddr::new(cfg.bind, cfg.forward_port));
        }
        pcfg.pid_lookup = Some(pid_lookup(
            docker.clone(),
            tokio::runtime::Handle::current(),
        ));
        let proxy = match ProxyRuntime::start(cfg.threads, shutdown.clone()) {
            Ok(rt) => Proxy::start_on(&rt, pcfg, metrics, routes_rx, shutdown.child_token()),
            Err(e) => {
                // Serving on the agent's runtime beats not serving.
                tracing::warn!(error = %e, "cannot start the proxy's own runtime; it shares the agent's");
                Proxy::start(pcfg, metrics, routes_rx, shutdown.child_token())
            }
        };
        // Endpoints decide no container's fate: one that does not decode
        // is skipped (a peer that cannot be read is not forwarded to).
        let (peers, writer) = runtime::store(|kv: &runtime::Kv| {
            serde_json::from_slice::<Endpoint>(&kv.value)
                .map_err(
                    |e| tracing::debug!(key = %kv.key, error = %e, "an endpoint does not decode"),
                )
                .ok()
        });
        let traffic = Arc::new(Traffic {
            node: node.to_string(),
            keys: keys.clone(),
            forward: advertised_forward(address, cfg),
            proxy,
            routes: routes_tx,
            inner: Mutex::new(Inner::default()),
            reporter,
            peers,
        });
        let events = runtime::watcher(
            etcd.clone(),
            keys.endpoints_prefix(),
            WatcherConfig::default(),
        );
        let t = traffic.clone();
        let token = shutdown.clone();
        tokio::spawn(async move {
            let mut events = std::pin::pin!(runtime::reflector(writer, events));
            loop {
                tokio::select! {
                    _ = token.cancelled() => return,
                    ev = events.next() => match ev {
                        Some(Ok(_)) => t.rebuild(),
                        Some(Err(e)) => tracing::debug!(error = %e, "endpoints watch"),
                        None => return,
                    },
                }
            }
        });
        traffic
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A reconcile's view of one component: its ports (`None`: nothing
    /// assigned any more, the last known ports stay while containers are
    /// left) and its containers. Writes the endpoints that changed and
    /// publishes the routes.
    pub fn update(
        &self,
        ck: &ComponentKey,
        ports: Option<&[PortSpec]>,
        containers: &[ObservedContainer],
    ) {
        let mut inner = self.inner();
        let old = inner.local.get(ck).cloned().unwrap_or_default();
        let ports_given = ports.is_some();
        let ports = match ports {
            Some(p) => p.to_vec(),
            None => old.ports.clone(),
        };
        let ready: BTreeMap<String, BTreeMap<u16, u16>> = containers
            .iter()
            .filter(|c| {
                c.phase == ContainerPhase::Ready
                    && !c.ports.is_empty()
                    && !inner.draining.contains_key(&c.id)
            })
            .map(|c| (c.id.clone(), c.ports.clone()))
            .collect();
        for id in old.ready.keys().filter(|id| !ready.contains_key(*id)) {
            self.reporter
                .delete(&self.keys.endpoint_of(ck, &self.node, id));
        }
        for (id, published) in &ready {
            if old.ready.get(id) != Some(published) || old.ports != ports {
                let doc = self.endpoint(ck, id, published, &ports);
                self.reporter
                    .put(&self.keys.endpoint_of(ck, &self.node, id), &doc);
            }
        }
        // Kept while assigned (the port is served, by forwarding if need
        // be) or while containers are left (they may still drain).
        if containers.is_empty() && !ports_given {
            inner.local.remove(ck);
        } else {
            inner.local.insert(ck.clone(), Local { ports, ready });
        }
        drop(inner);
        self.rebuild();
    }

    /// Nothing of the component is left on this node.
    pub fn forget(&self, ck: &ComponentKey) {
        let old = self.inner().local.remove(ck);
        if let Some(old) = old {
            for id in old.ready.keys() {
                self.reporter
                    .delete(&self.keys.endpoint_of(ck, &self.node, id));
            }
        }
        self.rebuild();
    }

    fn endpoint(
        &self,
        ck: &ComponentKey,
        id: &str,
        published: &BTreeMap<u16, u16>,
        ports: &[PortSpec],
    ) -> Endpoint {
        Endpoint {
            project: ck.project.clone(),
            component: ck.name.clone(),
            node: self.node.clone(),
            container: id.to_string(),
            forward: self.forward.map(|a| a.to_string()),
            ports: published
                .iter()
                .map(|(&container, &host)| {
                    let spec = ports.iter().find(|p| p.container == container);
                    EndpointPort {
                        container,
                        host,
                        external: spec.and_then(|p| p.external),
                        protocol: spec.map(|p| p.protocol).unwrap_or_default(),
                    }
                })
                .collect(),
        }
    }

    /// Takes the container out of the balancer and the endpoints now, and
    /// returns the wait until nothing is open on it or `timeout` passed.
    pub fn drain(
        &self,
        ck: &ComponentKey,
        id: &str,
        timeout: Duration,
    ) -> impl std::future::Future<Output = DrainOutcome> + Send + 'static {
        // The proxy's mark first: from here on nothing new reaches it, even
        // before the route table changes.
        let wait = self.proxy.drain(id, timeout);
        let now = SystemTime::now();
        let mut inner = self.inner();
        inner.draining.insert(
            id.to_string(),
            Draining {
                since: now,
                until: now + timeout,
            },
        );
        let was_ready = inner
            .local
            .get_mut(ck)
            .and_then(|l| l.ready.remove(id))
            .is_some();
        drop(inner);
        if was_ready {
            self.reporter
                .delete(&self.keys.endpoint_of(ck, &self.node, id));
        }
        self.rebuild();
        wait
    }

    /// The container is gone (stopped and removed).
    pub fn stopped(&self, id: &str) {
        self.inner().draining.remove(id);
    }

    /// The container was stopped and started again in place: its drain is
    /// over and, once ready, it is routed like a new one.
    pub fn restarted(&self, id: &str) {
        self.inner().draining.remove(id);
        self.proxy.undrain(id);
    }

    /// A draining container's progress, for its observed document.
    pub fn drain_of(&self, id: &str) -> Option<Drain> {
        let d = self.inner().draining.get(id).cloned()?;
        let open = self.proxy.open_connections().get(id).copied().unwrap_or(0);
        Some(Drain {
            since: humantime::format_rfc3339_seconds(d.since).to_string(),
            until: humantime::format_rfc3339_seconds(d.until).to_string(),
            open: u32::try_from(open).unwrap_or(u32::MAX),
        })
    }

    /// The external ports of `ck` this node could not bind, with the error.
    pub fn unbound(&self, ck: &ComponentKey) -> Vec<(u16, String)> {
        let ports: Vec<u16> = self
            .inner()
            .local
            .get(ck)
            .map(|l| l.ports.iter().filter_map(|p| p.external).collect())
            .unwrap_or_default();
        let errors = self.proxy.bind_errors();
        ports
            .into_iter()
            .filter_map(|p| Some((p, errors.get(&p)?.clone())))
            .collect()
    }

    /// Republishes the route table from local state and peers' endpoints.
    fn rebuild(&self) {
        let table = {
            let inner = self.inner();
            let peers = self.peers.state();
            build_routes(&self.node, &inner.local, peers.iter().map(|e| e.as_ref()))
        };
        self.routes.send_if_modified(|r| {
            let changed = *r != table;
            *r = table;
            changed
        });
    }

    /// Triggers `key` whenever the bound ports change (a bind failing or
    /// succeeding later), so its `PortUnavailable` condition follows.
    pub fn follow_ports(
        self: &Arc<Self>,
        trigger: mpsc::UnboundedSender<String>,
        key_of: impl Fn(&ComponentKey) -> String + Send + 'static,
        shutdown: CancellationToken,
    ) {
        let mut rx = self.proxy.ports();
        let t = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = rx.changed() => if r.is_err() { return },
                }
                let keys: Vec<ComponentKey> = t.inner().local.keys().cloned().collect();
                for ck in keys {
                    let _ = trigger.send(key_of(&ck));
                }
            }
        });
    }
}

/// Asks Docker for a container's pid, for the proxy's namespace dialer.
/// The proxy asks from its own runtime; the call runs on the agent's
/// (`agent`, the runtime current when the proxy starts), so the Docker
/// client's pooled connections are never driven by the proxy's thread nor
/// dropped with its runtime.
fn pid_lookup(
    docker: crate::docker::Docker,
    agent: tokio::runtime::Handle,
) -> crate::proxy::dial::PidLookup {
    crate::proxy::dial::PidLookup(Arc::new(move |id: String| {
        let docker = docker.clone();
        let asked = agent.spawn(async move {
            docker
                .pid(&id)
                .await
                .map_err(|e| tracing::debug!(container = %id, error = %e, "container pid"))
                .ok()
                .flatten()
        });
        Box::pin(async move { asked.await.ok().flatten() })
    }))
}

/// The route table (pure): per external port, this node's ready containers
/// and the forwarding addresses of peers with a ready one. A port claimed by
/// two components (refused at apply; possible only through races) goes to
/// the first in key order.
fn build_routes<'a>(
    node: &str,
    local: &BTreeMap<ComponentKey, Local>,
    peers: impl Iterator<Item = &'a Endpoint>,
) -> Routes {
    let mut routes = Routes::default();
    for (ck, l) in local {
        for p in &l.ports {
            let Some(ext) = p.external else { continue };
            let route = routes
                .ports
                .entry(ext)
                .or_insert_with(|| Route::new(ck.clone(), p.protocol));
            if route.component != *ck {
                continue;
            }
            for (id, published) in &l.ready {
                if let Some(&host) = published.get(&p.container) {
                    route.backends.push(Backend {
                        container_id: id.clone(),
                        addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), host),
                        container_port: Some(p.container),
                    });
                }
            }
        }
    }
    let mut peers: Vec<&Endpoint> = peers.filter(|e| e.node != node).collect();
    peers.sort_by(|a, b| (&a.node, &a.container).cmp(&(&b.node, &b.container)));
    for e in peers {
        let Some(fwd) = e
            .forward
            .as_deref()
            .and_then(|f| f.parse::<SocketAddr>().ok())
        else {
            continue;
        };
        let ck = ComponentKey::new(e.project.clone(), e.component.clone());
        for p in &e.ports {
            let Some(ext) = p.external else { continue };
            let route = routes
                .ports
                .entry(ext)
                .or_insert_with(|| Route::new(ck.clone(), p.protocol));
            if route.component == ck && !route.remote.contains(&fwd) {
                route.remote.push(fwd);
            }
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::Protocol;

    fn ready(id: &str, phase: ContainerPhase) -> ObservedContainer {
        ObservedContainer {
            id: id.into(),
            phase,
            ports: BTreeMap::from([(8080, 32100)]),
            ..Default::default()
        }
    }

    /// A ready container is announced and routed; a drain takes it out of
    /// both at once (before any stop), and reports its progress.
    #[tokio::test]
    async fn ready_containers_are_announced_and_a_drain_withdraws_them_at_once() {
        let (reporter, mut written) = Reporter::for_tests();
        let (routes_tx, mut routes) = watch::channel(Routes::default());
        let shutdown = CancellationToken::new();
        let proxy = Proxy::start(
            ProxyConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            ProxyMetrics::new(),
            routes.clone(),
            shutdown.clone(),
        );
        let (peers, _writer) = runtime::store(|_: &runtime::Kv| None::<Endpoint>);
        let keys = Keys::new("/t");
        let t = Traffic {
            node: "n1".into(),
            keys: keys.clone(),
            forward: Some("127.0.0.9:7946".parse().expect("addr")),
            proxy,
            routes: routes_tx,
            inner: Mutex::new(Inner::default()),
            reporter,
            peers,
        };
        let web = ComponentKey::new("shop", "web");
        // An external port nobody else holds (bound by the proxy).
        let external = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let ports = [PortSpec {
            name: None,
            container: 8080,
            external: Some(external),
            protocol: Protocol::Tcp,
        }];
        let key = keys.endpoint_of(&web, "n1", "c1");

        t.update(&web, Some(&ports), &[ready("c1", ContainerPhase::Starting)]);
        assert!(written.try_recv().is_err(), "not ready: not announced");
        t.update(&web, Some(&ports), &[ready("c1", ContainerPhase::Ready)]);
        let (k, doc) = written.try_recv().expect("announced");
        assert_eq!(k, key);
        let doc: Endpoint = serde_json::from_slice(&doc.expect("a put")).expect("endpoint");
        assert_eq!(doc.forward.as_deref(), Some("127.0.0.9:7946"));
        assert_eq!(doc.ports[0].external, Some(external));
        assert_eq!(
            routes.borrow_and_update().ports[&external].backends.len(),
            1
        );

        let wait = t.drain(&web, "c1", Duration::from_secs(5));
        assert_eq!(written.try_recv().expect("withdrawn"), (key.clone(), None));
        assert!(routes.borrow_and_update().ports[&external]
            .backends
            .is_empty());
        // Still Ready in the reconcile's eyes for a moment: not announced again.
        t.update(&web, Some(&ports), &[ready("c1", ContainerPhase::Ready)]);
        assert!(written.try_recv().is_err());
        let d = t.drain_of("c1").expect("draining");
        assert_eq!(d.open, 0);
        assert_eq!(wait.await, DrainOutcome::Drained);
        t.stopped("c1");
        assert!(t.drain_of("c1").is_none());
        shutdown.cancel();
    }

    fn port(container: u16, external: u16, protocol: Protocol) -> PortSpec {
        PortSpec {
            name: None,
            container,
            external: Some(external),
            protocol,
        }
    }

    fn endpoint(node: &str, component: &str, external: u16, forward: Option<&str>) -> Endpoint {
        Endpoint {
            project: "shop".into(),
            component: component.into(),
            node: node.into(),
            container: format!("{node}-c"),
            forward: forward.map(str::to_string),
            ports: vec![EndpointPort {
                container: 80,
                host: 30000,
                external: Some(external),
                protocol: Protocol::Http,
            }],
        }
    }

    #[test]
    fn routes_hold_local_ready_containers_and_peers_forwarding_addresses() {
        let web = ComponentKey::new("shop", "web");
        let local = BTreeMap::from([(
            web.clone(),
            Local {
                ports: vec![port(80, 18080, Protocol::Http)],
                ready: BTreeMap::from([("c1".to_string(), BTreeMap::from([(80, 32001)]))]),
            },
        )]);
        let peers = [
            endpoint("b", "web", 18080, Some("127.0.0.2:7946")),
            endpoint("b", "web", 18080, Some("127.0.0.2:7946")),
            endpoint("me", "web", 18080, Some("127.0.0.1:7946")),
            endpoint("c", "web", 18080, None),
            endpoint("d", "api", 19090, Some("127.0.0.4:7946")),
            // Another component claiming the same port: ignored.
            endpoint("e", "other", 18080, Some("127.0.0.5:7946")),
        ];
        let r = build_routes("me", &local, peers.iter());
        let route = &r.ports[&18080];
        assert_eq!(route.component, web);
        assert_eq!(route.protocol, Protocol::Http);
        assert_eq!(route.backends.len(), 1);
        assert_eq!(route.backends[0].addr.port(), 32001);
        assert_eq!(
            route.remote,
            vec!["127.0.0.2:7946".parse::<SocketAddr>().expect("addr")]
        );
        // A node with no local replica still serves the port, by forwarding.
        let api = &r.ports[&19090];
        assert!(api.backends.is_empty());
        assert_eq!(api.remote.len(), 1);
    }

    #[test]
    fn forward_address_comes_from_address_or_bind() {
        let cfg = TrafficConfig {
            bind: "127.0.0.3".parse().expect("ip"),
            forward_port: 7000,
            ..TrafficConfig::default()
        };
        assert_eq!(
            advertised_forward("127.0.0.9", &cfg),
            Some("127.0.0.9:7000".parse().expect("a"))
        );
        assert_eq!(
            advertised_forward("10.0.0.1:22", &cfg),
            Some("10.0.0.1:7000".parse().expect("a"))
        );
        assert_eq!(
            advertised_forward("", &cfg),
            Some("127.0.0.3:7000".parse().expect("a"))
        );
        let any = TrafficConfig::default();
        assert_eq!(advertised_forward("", &any), None);
        let off = TrafficConfig {
            forward_port: 0,
            ..cfg
        };
        assert_eq!(advertised_forward("127.0.0.9", &off), None);
    }
}
