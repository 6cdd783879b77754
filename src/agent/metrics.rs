//! The agent's Prometheus metrics (`/metrics`, text format): its own,
//! prefixed `berth_agent_`, and its proxy's, prefixed `berth_proxy_`
//! ([`crate::proxy::metrics`]).

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::health::CheckKind;
use crate::proxy::ProxyMetrics;

/// Cheap to clone; every clone updates the same metrics.
#[derive(Clone)]
pub struct Metrics {
    pub reconciles: Counter,
    pub reconcile_errors: Counter,
    pub container_starts: Counter,
    pub container_start_failures: Counter,
    pub container_restarts: Counter,
    pub container_stops: Counter,
    pub check_failures: Family<Vec<(String, String)>, Counter>,
    pub docker_events: Counter,
    pub resyncs: Counter,
    pub observed_writes: Counter,
    /// Containers of this agent, and how many of them run.
    pub containers: Gauge,
    pub containers_running: Gauge,
    /// 1 while the agent holds a live etcd lease.
    pub etcd_lease_up: Gauge,
    /// The traffic proxy's, per component and external port.
    pub proxy: ProxyMetrics,
    registry: Arc<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        let proxy = ProxyMetrics::new();
        proxy.register(root.sub_registry_with_prefix("berth_proxy"));
        let r = root.sub_registry_with_prefix("berth_agent");
        let m = MetricsParts::default();
        r.register(
            "reconciles",
            "Component reconciles run",
            m.reconciles.clone(),
        );
        r.register(
            "reconcile_errors",
            "Component reconciles that failed",
            m.reconcile_errors.clone(),
        );
        r.register(
            "container_starts",
            "Containers created and started",
            m.container_starts.clone(),
        );
        r.register(
            "container_start_failures",
            "Container starts that failed (pull, refusal, Docker error)",
            m.container_start_failures.clone(),
        );
        r.register(
            "container_restarts",
            "Crashed containers restarted",
            m.container_restarts.clone(),
        );
        r.register(
            "container_stops",
            "Containers stopped or killed, then removed",
            m.container_stops.clone(),
        );
        r.register(
            "check_failures",
            "Failed ready and health probes, by kind",
            m.check_failures.clone(),
        );
        r.register(
            "docker_events",
            "Docker container events handled",
            m.docker_events.clone(),
        );
        r.register(
            "resyncs",
            "Full resyncs of containers by label",
            m.resyncs.clone(),
        );
        r.register(
            "observed_writes",
            "Observed status documents written to etcd",
            m.observed_writes.clone(),
        );
        r.register(
            "containers",
            "Containers of this agent",
            m.containers.clone(),
        );
        r.register(
            "containers_running",
            "Running containers of this agent",
            m.containers_running.clone(),
        );
        r.register(
            "etcd_lease_up",
            "1 while the agent holds a live etcd lease",
            m.etcd_lease_up.clone(),
        );
        Metrics {
            reconciles: m.reconciles,
            reconcile_errors: m.reconcile_errors,
            container_starts: m.container_starts,
            container_start_failures: m.container_start_failures,
            container_restarts: m.container_restarts,
            container_stops: m.container_stops,
            check_failures: m.check_failures,
            docker_events: m.docker_events,
            resyncs: m.resyncs,
            observed_writes: m.observed_writes,
            containers: m.containers,
            containers_running: m.containers_running,
            etcd_lease_up: m.etcd_lease_up,
            proxy,
            registry: Arc::new(root),
        }
    }

    pub fn check_failed(&self, kind: CheckKind) {
        let k = match kind {
            CheckKind::Ready => "ready",
            CheckKind::Health => "health",
        };
        self.check_failures
            .get_or_create(&vec![("kind".to_string(), k.to_string())])
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics");
        }
        out
    }
}

#[derive(Default)]
struct MetricsParts {
    reconciles: Counter,
    reconcile_errors: Counter,
    container_starts: Counter,
    container_start_failures: Counter,
    container_restarts: Counter,
    container_stops: Counter,
    check_failures: Family<Vec<(String, String)>, Counter>,
    docker_events: Counter,
    resyncs: Counter,
    observed_writes: Counter,
    containers: Gauge,
    containers_running: Gauge,
    etcd_lease_up: Gauge,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.reconciles.inc();
        m.check_failed(CheckKind::Health);
        m.containers.set(3);
        let text = m.render();
        assert!(text.contains("berth_agent_reconciles_total 1"), "{text}");
        assert!(
            text.contains("berth_agent_check_failures_total{kind=\"health\"} 1"),
            "{text}"
        );
        assert!(text.contains("berth_agent_containers 3"), "{text}");
        m.proxy.set_bound(
            &crate::resource::ComponentKey::new("shop", "web"),
            18080,
            true,
        );
        let text = m.render();
        assert!(
            text.contains(
                r#"berth_proxy_port_bound{project="shop",component="web",port="18080"} 1"#
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
