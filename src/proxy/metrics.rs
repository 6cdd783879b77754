//! The proxy's Prometheus metrics, all prefixed `berth_proxy_` and labelled
//! by `project`, `component` and external `port` (same crate and style as
//! `agent::metrics`).

use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::resource::ComponentKey;

type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.5 ms to ~16 s: loopback connects up to slow backends.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// Cheap to clone; every clone updates the same metrics.
#[derive(Clone)]
pub struct ProxyMetrics {
    connections_open: Family<Labels, Gauge>,
    connections: Family<Labels, Counter>,
    requests: Family<Labels, Counter>,
    backend_errors: Family<Labels, Counter>,
    retries: Family<Labels, Counter>,
    bytes: Family<Labels, Counter>,
    latency: HistogramFamily,
    port_bound: Family<Labels, Gauge>,
    netns_fallbacks: Counter,
    netns_dials: Counter,
    registry: Arc<Registry>,
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        ProxyMetrics::new()
    }
}

impl ProxyMetrics {
    pub fn new() -> ProxyMetrics {
        let mut r = Registry::with_prefix("berth_proxy");
        let m = ProxyMetrics {
            connections_open: Family::default(),
            connections: Family::default(),
            requests: Family::default(),
            backend_errors: Family::default(),
            retries: Family::default(),
            bytes: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            port_bound: Family::default(),
            netns_fallbacks: Counter::default(),
            netns_dials: Counter::default(),
            registry: Arc::new(Registry::default()),
        };
        m.register(&mut r);
        ProxyMetrics {
            registry: Arc::new(r),
            ..m
        }
    }

    /// Adds these metrics to another registry (the agent's `/metrics`).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "connections_open",
            "Client connections open",
            self.connections_open.clone(),
        );
        r.register(
            "connections",
            "Client connections accepted",
            self.connections.clone(),
        );
        r.register(
            "requests",
            "HTTP requests answered, by status class (`error`: no response)",
            self.requests.clone(),
        );
        r.register(
            "backend_errors",
            "Failed connects to and exchanges with backends",
            self.backend_errors.clone(),
        );
        r.register(
            "retries",
            "Connections and requests sent to another backend after a failure",
            self.retries.clone(),
        );
        r.register(
            "bytes",
            "Bytes relayed: `in` from clients, `out` to clients",
            self.bytes.clone(),
        );
        r.register(
            "latency_seconds",
            "tcp: time to connect a backend; http: time to the response head",
            self.latency.clone(),
        );
        r.register(
            "port_bound",
            "1 while the external port is bound, 0 while binding it fails",
            self.port_bound.clone(),
        );
        r.register(
            "netns_fallbacks",
            "Local backend connects that used the published port (docker-proxy) because the container's network namespace was not (yet) usable",
            self.netns_fallbacks.clone(),
        );
        r.register(
            "netns_dials",
            "Local backend connects made inside the container's network namespace (skipping docker-proxy)",
            self.netns_dials.clone(),
        );
    }

    /// Counts connects made inside a container's namespace.
    pub(crate) fn netns_dials(&self) -> Counter {
        self.netns_dials.clone()
    }

    /// Counts connects that could not go through the container's namespace.
    pub(crate) fn netns_fallbacks(&self) -> Counter {
        self.netns_fallbacks.clone()
    }

    /// The handles of one external port, resolved once per listener so the
    /// data path does no label lookups.
    pub(crate) fn port(&self, component: &ComponentKey, port: u16) -> PortMetrics {
        let base = labels(component, port);
        let with = |k: &str, v: &str| {
            let mut l = base.clone();
            l.push((k.to_string(), v.to_string()));
            l
        };
        let class = |c: &str| get(&self.requests, &with("class", c));
        PortMetrics {
            connections_open: get(&self.connections_open, &base),
            connections: get(&self.connections, &base),
            requests: [
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
                class("error"),
            ],
            backend_errors: get(&self.backend_errors, &base),
            retries: get(&self.retries, &base),
            bytes_in: get(&self.bytes, &with("direction", "in")),
            bytes_out: get(&self.bytes, &with("direction", "out")),
            latency: get(&self.latency, &base),
        }
    }

    pub(crate) fn set_bound(&self, component: &ComponentKey, port: u16, bound: bool) {
        self.port_bound
            .get_or_create(&labels(component, port))
            .set(i64::from(bound));
    }

    /// The Prometheus text exposition of these metrics alone.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding proxy metrics");
        }
        out
    }
}

/// One labelled metric, its lock released before the next is taken: two
/// `get_or_create` guards of one family alive at once deadlock.
fn get<M: Clone, C: MetricConstructor<M>>(family: &Family<Labels, M, C>, labels: &Labels) -> M {
    family.get_or_create(labels).clone()
}

fn labels(component: &ComponentKey, port: u16) -> Labels {
    vec![
        ("project".to_string(), component.project.clone()),
        ("component".to_string(), component.name.clone()),
        ("port".to_string(), port.to_string()),
    ]
}

/// One external port's metric handles.
#[derive(Clone)]
pub(crate) struct PortMetrics {
    pub connections_open: Gauge,
    pub connections: Counter,
    requests: [Counter; 6],
    pub backend_errors: Counter,
    pub retries: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub latency: Histogram,
}

impl PortMetrics {
    /// Counts one answered request by the class of its status; `None` when
    /// the client got no response at all.
    pub fn request(&self, status: Option<u16>) {
        let i = match status {
            Some(s @ 100..=599) => usize::from(s / 100 - 1),
            _ => 5,
        };
        self.requests[i].inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_per_port_metrics() {
        let m = ProxyMetrics::new();
        let p = m.port(&ComponentKey::new("shop", "web"), 8080);
        p.connections.inc();
        p.request(Some(204));
        p.request(Some(502));
        p.request(None);
        p.bytes_in.inc_by(10);
        p.latency.observe(0.002);
        m.set_bound(&ComponentKey::new("shop", "web"), 8080, true);
        let text = m.render();
        let l = r#"project="shop",component="web",port="8080""#;
        for want in [
            format!("berth_proxy_connections_total{{{l}}} 1"),
            format!("berth_proxy_requests_total{{{l},class=\"2xx\"}} 1"),
            format!("berth_proxy_requests_total{{{l},class=\"5xx\"}} 1"),
            format!("berth_proxy_requests_total{{{l},class=\"error\"}} 1"),
            format!("berth_proxy_bytes_total{{{l},direction=\"in\"}} 10"),
            format!("berth_proxy_latency_seconds_count{{{l}}} 1"),
            format!("berth_proxy_port_bound{{{l}}} 1"),
        ] {
            assert!(text.contains(&want), "{want} missing from\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
