//! Link listeners in a consumer container's network namespace, each with
//! its targets resolved on change (specs, endpoints), not per connection.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::NodeServices;
use crate::resource::component::LinkRequire;
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
        let mut bound = relay::bind_in_netns(pid, r.port).await;
        for _ in 0..20 {
            match &bound {
                Err(relay::Error::Bind { source, .. })
                    if source.kind() == std::io::ErrorKind::AddrInUse =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    bound = relay::bind_in_netns(pid, r.port).await;
                }
                _ => break,
            }
        }
        match bound {
            Ok(listener) => {
                let stop = stop.child_token();
                let targets = targets(s.clone(), ck.project.clone(), req.clone(), stop.clone());
                relay::spawn(listener, targets, stop);
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

/// Where connections to the link go, kept current until `stop`: resolved
/// now and again after each change of the specs or endpoints (not per
/// connection), and published only when the answer differs.
fn targets(
    s: Arc<NodeServices>,
    project: String,
    req: LinkRequire,
    stop: CancellationToken,
) -> relay::Targets {
    // Subscribed before the first resolve: a change in between is not lost.
    let mut changed = s.routes.subscribe();
    let (tx, rx) = watch::channel(resolve(&s, &project, &req));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                // The listener ended (its accept loop gave up).
                _ = tx.closed() => return,
                r = changed.changed() => if r.is_err() { return },
            }
            let new = resolve(&s, &project, &req);
            tx.send_if_modified(|cur| {
                let differs = *cur != new;
                if differs {
                    *cur = new;
                }
                differs
            });
        }
    });
    rx
}

/// The provider's external port on this node's proxy (which balances over
/// local ready containers and forwards to peers), else the provider's ready
/// containers on this node; nothing while no component defines the link.
fn resolve(s: &NodeServices, project: &str, req: &LinkRequire) -> Arc<[SocketAddr]> {
    let specs = s.specs.state();
    let Some(r) = link::resolve(project, req, specs.iter().map(|x| (&x.0, &x.1))) else {
        return Arc::new([]);
    };
    if let Some(ext) = r.external {
        let ip = if s.cfg.proxy_ip.is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            s.cfg.proxy_ip
        };
        return Arc::new([SocketAddr::new(ip, ext)]);
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
}
