//! Link listeners in a consumer container's network namespace.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::NodeServices;
use crate::resource::{ComponentKey, Condition, ConditionType, Reason, Template};
use crate::services::link::{self, relay};

/// Binds one listener per resolved required link inside container `id`.
/// A link defined nowhere gets none (its condition is already set).
pub async fn bind(
    s: Arc<NodeServices>,
    ck: ComponentKey,
    id: String,
    t: Arc<Template>,
    stop: CancellationToken,
) {
    let Some(links) = t.links.clone() else { return };
    let mut pid = None;
    // Just started: Docker may not show the pid on the first inspect.
    for _ in 0..20 {
        match s.docker.pid(&id).await {
            Ok(Some(p)) => {
                pid = Some(p);
                break;
            }
            Ok(None) | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let Some(pid) = pid else { return };
    let mut errors = Vec::new();
    for req in links.require {
        let specs = s.specs.state();
        let Some(r) = link::resolve(&ck.project, &req, specs.iter().map(|x| (&x.0, &x.1))) else {
            continue;
        };
        // The listener of this container's previous record may still be
        // closing (its accept loop sees the cancel a moment later).
        let mut bound = relay::bind_in_netns(pid, r.port);
        for _ in 0..20 {
            match &bound {
                Err(relay::Error::Bind { source, .. })
                    if source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    bound = relay::bind_in_netns(pid, r.port);
                }
                _ => break,
            }
        }
        match bound {
            Ok(listener) => {
                let targets = targets(s.clone(), ck.project.clone(), req.clone());
                relay::spawn(listener, targets, stop.child_token());
            }
            Err(e) => {
                tracing::warn!(container = %id, link = %req.name, error = %e, "link listener");
                errors.push(format!("link {}: {e}", req.name));
            }
        }
    }
    if !errors.is_empty() {
        s.set_condition(
            &ck,
            Condition::new(
                ConditionType::LinksResolved,
                false,
                Reason::LinkUnbound,
                errors.join("; "),
            ),
        );
    }
}

/// Where a connection to the link goes, decided per connection: the
/// provider's external port on this node's proxy (which balances over local
/// ready containers and forwards to peers), else the provider's ready
/// containers on this node.
fn targets(
    s: Arc<NodeServices>,
    project: String,
    req: crate::resource::component::LinkRequire,
) -> relay::Targets {
    Arc::new(move || {
        let specs = s.specs.state();
        let Some(r) = link::resolve(&project, &req, specs.iter().map(|x| (&x.0, &x.1))) else {
            return Vec::new();
        };
        if let Some(ext) = r.external {
            let ip = if s.cfg.proxy_ip.is_unspecified() {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            } else {
                s.cfg.proxy_ip
            };
            return vec![SocketAddr::new(ip, ext)];
        }
        s.endpoints
            .state()
            .iter()
            .filter(|e| {
                e.node == s.cfg.node
                    && e.project == r.provider.project
                    && e.component == r.provider.name
            })
            .filter_map(|e| e.ports.iter().find(|p| p.container == r.port))
            .map(|p| SocketAddr::from(([127, 0, 0, 1], p.host)))
            .collect()
    })
}
