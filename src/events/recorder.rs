//! The background writer of events.

use std::time::{Duration, Instant};

use etcd_client::{Client, PutOptions};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ClusterEvent, EVENT_TTL};
use crate::store::Keys;

/// Events waiting to be written; beyond this, new ones are dropped.
const QUEUE: usize = 1024;

/// A handle to record events; cheap to clone. [`Recorder::disabled`] records
/// nothing (tests, tools without etcd).
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    tx: Option<mpsc::Sender<ClusterEvent>>,
}

impl Recorder {
    /// Starts the writer task for `writer` (a node name: it makes ids
    /// unique across writers) until `stop`.
    pub fn spawn(client: Client, keys: Keys, writer: String, stop: CancellationToken) -> Recorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_all(client, keys, writer, rx, stop));
        Recorder { tx: Some(tx) }
    }

    pub fn disabled() -> Recorder {
        Recorder { tx: None }
    }

    /// Queues `event`; never waits. Dropped when the queue is full.
    pub fn record(&self, event: ClusterEvent) {
        if let Some(tx) = &self.tx {
            if tx.try_send(event).is_err() {
                tracing::debug!("event queue full or closed; event dropped");
            }
        }
    }
}

/// The lease events are written on: granted for 2 × TTL and replaced by a
/// new grant once it is TTL old, so every event lives TTL to 2 × TTL.
struct Lease {
    id: i64,
    granted: Instant,
}

async fn write_all(
    mut client: Client,
    keys: Keys,
    writer: String,
    mut rx: mpsc::Receiver<ClusterEvent>,
    stop: CancellationToken,
) {
    let mut lease: Option<Lease> = None;
    let mut seq: u64 = 0;
    loop {
        let event = tokio::select! {
            _ = stop.cancelled() => return,
            e = rx.recv() => match e { Some(e) => e, None => return },
        };
        if lease
            .as_ref()
            .is_none_or(|l| l.granted.elapsed() >= EVENT_TTL)
        {
            let ttl = (2 * EVENT_TTL).as_secs() as i64;
            lease = match client.lease_grant(ttl, None).await {
                Ok(r) => Some(Lease {
                    id: r.id(),
                    granted: Instant::now(),
                }),
                Err(e) => {
                    tracing::debug!(error = %e, "no lease for events; event dropped");
                    None
                }
            };
        }
        let Some(l) = &lease else { continue };
        seq += 1;
        let id = format!("{}-{writer}-{seq}", event.time);
        let key = keys.event(&event.project, &id);
        let Ok(value) = serde_json::to_vec(&event) else {
            continue;
        };
        let put = client.put(key, value, Some(PutOptions::new().with_lease(l.id)));
        match tokio::time::timeout(Duration::from_secs(5), put).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "event not written");
                // The lease may have expired (etcd was down long): grant anew.
                lease = None;
            }
            Err(_) => tracing::debug!("event not written: etcd did not answer in 5 s"),
        }
    }
}
