//! The caches links and configs read: every component spec (which
//! component defines a link) and every endpoint (the templates' sources).
//! Both are in memory: rendering and relaying never wait for etcd.

use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::resource::component::{Component, ComponentSpec};
use crate::resource::endpoint::Endpoint;
use crate::resource::{ComponentKey, Kind};
use crate::runtime::{self, Reader, WatcherConfig};
use crate::store::Keys;

/// The two caches, and a signal per change of the endpoints. `routes` is
/// told of every change of either (link targets are resolved again).
pub fn start(
    etcd: &etcd_client::Client,
    keys: &Keys,
    routes: &watch::Sender<()>,
    shutdown: &CancellationToken,
) -> (
    Reader<(ComponentKey, ComponentSpec)>,
    Reader<Endpoint>,
    mpsc::UnboundedReceiver<()>,
) {
    let k = keys.clone();
    // A spec that does not decode defines no link: left out (the
    // coordinator reports it as `UnreadableSpec`).
    let (specs, spec_writer) = runtime::store(move |kv: &runtime::Kv| {
        let ck = k.component_of_spec(&kv.key)?;
        let c = serde_json::from_slice::<Component>(&kv.value).ok()?;
        Some((ck, c.spec))
    });
    let (endpoints, ep_writer) =
        runtime::store(|kv: &runtime::Kv| serde_json::from_slice::<Endpoint>(&kv.value).ok());
    let spec_events = runtime::reflector(
        spec_writer,
        runtime::watcher(
            etcd.clone(),
            keys.spec_prefix(Kind::Component, None),
            WatcherConfig::default(),
        ),
    );
    let ep_events = runtime::reflector(
        ep_writer,
        runtime::watcher(
            etcd.clone(),
            keys.endpoints_prefix(),
            WatcherConfig::default(),
        ),
    );
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(drive(spec_events, None, routes.clone(), shutdown.clone()));
    tokio::spawn(drive(ep_events, Some(tx), routes.clone(), shutdown.clone()));
    (specs, endpoints, rx)
}

async fn drive<S, E>(
    events: S,
    changes: Option<mpsc::UnboundedSender<()>>,
    routes: watch::Sender<()>,
    stop: CancellationToken,
) where
    S: Stream<Item = Result<runtime::Event, E>>,
    E: std::fmt::Display,
{
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            ev = events.next() => match ev {
                Some(Ok(_)) => {
                    routes.send_replace(());
                    if let Some(tx) = &changes {
                        let _ = tx.send(());
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "services watch"),
                None => return,
            },
        }
    }
}
