//! What a config template sees. Documented in the README ("Config templates"):
//!
//! ```text
//! project, component          the consumer
//! sources.<name>.endpoints[]  per source as written in `sources`, sorted by node then container:
//!   node, container           the node name and Docker's container id
//!   address                   the node's advertised address (its forwarding IP), else the node name
//!   port                      the container's first port (its lowest container port)
//!   hostPort                  that port as published on the node's 127.0.0.1
//!   ports[]                   every port: container, host, external (or none), protocol
//!   ready                     always true: only ready, not draining containers have endpoints
//! ```
//!
//! Sorted, so the same membership renders the same bytes: a re-render with
//! nothing changed writes and reloads nothing.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::resource::endpoint::{Endpoint, EndpointPort};

#[derive(Serialize, Clone, Debug, PartialEq, Default)]
pub struct Context {
    pub project: String,
    pub component: String,
    pub sources: BTreeMap<String, SourceView>,
}

#[derive(Serialize, Clone, Debug, PartialEq, Default)]
pub struct SourceView {
    pub endpoints: Vec<EndpointView>,
}

#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    pub node: String,
    pub container: String,
    pub address: String,
    pub port: Option<u16>,
    pub host_port: Option<u16>,
    pub ports: Vec<EndpointPort>,
    pub ready: bool,
}

/// A source name as written in `sources`: `component` (the consumer's
/// project) or `project/component`.
pub fn source_key<'a>(project: &'a str, source: &'a str) -> (&'a str, &'a str) {
    source.split_once('/').unwrap_or((project, source))
}

impl Context {
    /// The context of `project/component`'s template reading `sources`, from
    /// every endpoint known (any order).
    pub fn build<'a>(
        project: &str,
        component: &str,
        sources: &[String],
        endpoints: impl IntoIterator<Item = &'a Endpoint> + Clone,
    ) -> Context {
        let mut out = BTreeMap::new();
        for s in sources {
            let (p, c) = source_key(project, s);
            let mut eps: Vec<EndpointView> = endpoints
                .clone()
                .into_iter()
                .filter(|e| e.project == p && e.component == c)
                .map(view)
                .collect();
            eps.sort_by(|a, b| (&a.node, &a.container).cmp(&(&b.node, &b.container)));
            out.insert(s.clone(), SourceView { endpoints: eps });
        }
        Context {
            project: project.to_string(),
            component: component.to_string(),
            sources: out,
        }
    }
}

fn view(e: &Endpoint) -> EndpointView {
    let mut ports = e.ports.clone();
    ports.sort_by_key(|p| p.container);
    let address = e
        .forward
        .as_deref()
        .and_then(|f| f.parse::<std::net::SocketAddr>().ok())
        .map_or_else(|| e.node.clone(), |a| a.ip().to_string());
    EndpointView {
        node: e.node.clone(),
        container: e.container.clone(),
        address,
        port: ports.first().map(|p| p.container),
        host_port: ports.first().map(|p| p.host),
        ports,
        ready: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::Protocol;

    fn ep(project: &str, component: &str, node: &str, id: &str, fwd: Option<&str>) -> Endpoint {
        Endpoint {
            project: project.into(),
            component: component.into(),
            node: node.into(),
            container: id.into(),
            forward: fwd.map(Into::into),
            ports: vec![
                EndpointPort {
                    container: 8080,
                    host: 40001,
                    external: None,
                    protocol: Protocol::Tcp,
                },
                EndpointPort {
                    container: 80,
                    host: 40000,
                    external: Some(9000),
                    protocol: Protocol::Http,
                },
            ],
        }
    }

    #[test]
    fn sources_pick_their_endpoints_sorted() {
        let all = [
            ep("shop", "web", "b", "c2", Some("127.0.0.2:7946")),
            ep("shop", "web", "a", "c9", None),
            ep("shop", "db", "a", "d1", None),
            ep("other", "web", "a", "x1", None),
        ];
        let ctx = Context::build(
            "shop",
            "lb",
            &["web".into(), "other/web".into(), "gone".into()],
            &all,
        );
        let names = |s: &str| -> Vec<(String, String, String)> {
            ctx.sources[s]
                .endpoints
                .iter()
                .map(|e| (e.node.clone(), e.container.clone(), e.address.clone()))
                .collect()
        };
        assert_eq!(
            names("web"),
            [
                ("a".into(), "c9".into(), "a".into()),
                ("b".into(), "c2".into(), "127.0.0.2".into())
            ]
        );
        assert_eq!(names("other/web"), [("a".into(), "x1".into(), "a".into())]);
        assert!(ctx.sources["gone"].endpoints.is_empty());
        let first = &ctx.sources["web"].endpoints[0];
        assert_eq!((first.port, first.host_port), (Some(80), Some(40000)));
        // The documented field names.
        let json = serde_json::to_value(first).unwrap();
        for k in [
            "node",
            "container",
            "address",
            "port",
            "hostPort",
            "ports",
            "ready",
        ] {
            assert!(json.get(k).is_some(), "{k} missing in {json}");
        }
    }
}
