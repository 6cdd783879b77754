//! Every configured etcd endpoint, for the client's whole life.
//!
//! etcd-client balances requests over the endpoints it holds and fails those
//! that land on a member that does not answer (etcd-client issue 39), so only
//! members that answer may sit in its balancer. Yet a member that was down
//! when berth started must be used again once it answers: agents run for
//! months, and a cluster loses and regains members in that time.
//!
//! [`Balanced`] is the balanced channel berth hands etcd-client. The endpoints
//! etcd-client inserts (at connect, or through `Client::add_endpoint`) go to a
//! prober task instead of straight into the balancer. The prober asks each
//! member a gRPC health check over its own connection (TCP, TLS and HTTP/2, as
//! a request would travel), puts those that answer into the balancer and takes
//! out those that stop answering. Members out of the balancer are probed every
//! [`REPROBE`]; members in it whenever a request fails at the transport level
//! (a failure is what tells a member went away). When none answers, all are in
//! the balancer: requests fail with the real cause, and whichever member comes
//! back first is used at once.
//!
//! The channel is shared by every clone of the `Client`, so every holder of a
//! clone benefits. The prober ends when the last clone is dropped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use etcd_client::{BalancedChannelBuilder, Channel};
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response, Uri};
use tonic::codegen::Service;
use tonic::transport::channel::Change;
use tonic::transport::Endpoint;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

type Update = Change<Uri, Endpoint>;
/// The balancer is gone: every client was dropped.
type Gone = mpsc::error::SendError<Update>;

/// How often members out of the balancer are probed: how soon a member that
/// comes back is used again.
pub const REPROBE: Duration = Duration::from_secs(1);
/// Least time between two probe rounds that failures started, so a burst of
/// failed requests costs one round.
const MIN_GAP: Duration = Duration::from_millis(200);

/// The balanced channel that keeps every endpoint (see the module docs).
pub(super) struct Balanced {
    /// How many endpoints etcd-client inserts while connecting: the first
    /// probe round waits for all of them, so it never judges a partial list.
    pub expected: usize,
    /// Bound on one probe.
    pub probe_timeout: Duration,
}

impl BalancedChannelBuilder for Balanced {
    type Error = tonic::transport::Error;

    fn balanced_channel(
        self,
        buffer: usize,
    ) -> Result<(Channel, mpsc::Sender<Update>), Self::Error> {
        let (channel, balancer) = tonic::transport::Channel::balance_channel(buffer);
        let (requests_tx, requests) = mpsc::channel(buffer);
        let failed = Arc::new(Notify::new());
        let prober = Prober {
            balancer,
            requests,
            failed: failed.clone(),
            members: Vec::new(),
            probe_timeout: self.probe_timeout,
        };
        tokio::spawn(prober.run(self.expected));
        let observed = Observed {
            inner: channel,
            failed,
        };
        Ok((
            Channel::Custom(BoxCloneSyncService::new(observed)),
            requests_tx,
        ))
    }
}

/// The balanced channel, telling the prober when a request fails.
#[derive(Clone)]
struct Observed {
    inner: tonic::transport::Channel,
    failed: Arc<Notify>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Request<Body>> for Observed {
    type Response = Response<Body>;
    type Error = tower::BoxError;
    type Future = BoxFuture<Result<Response<Body>, tower::BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let response = self.inner.call(req);
        let failed = self.failed.clone();
        Box::pin(async move {
            // gRPC errors (NotFound, compare failed...) arrive as responses;
            // an `Err` here is the transport: the member may be gone.
            let result = response.await;
            if result.is_err() {
                failed.notify_one();
            }
            result.map_err(Into::into)
        })
    }
}

struct Member {
    uri: Uri,
    endpoint: Endpoint,
    in_balancer: bool,
}

struct Prober {
    /// Into the real balancer.
    balancer: mpsc::Sender<Update>,
    /// From etcd-client: every endpoint it was given or told to add/remove.
    requests: mpsc::Receiver<Update>,
    failed: Arc<Notify>,
    members: Vec<Member>,
    probe_timeout: Duration,
}

impl Prober {
    async fn run(mut self, expected: usize) {
        for _ in 0..expected {
            let Some(change) = self.requests.recv().await else {
                return;
            };
            if self.record(change).await.is_err() {
                return;
            }
        }
        // Requests wait in the (empty) balancer until this first round ends.
        if self.round().await.is_err() {
            return;
        }
        let mut last_round = Instant::now();
        while self.next_trigger(last_round).await {
            if self.round().await.is_err() {
                return;
            }
            last_round = Instant::now();
        }
    }

    /// Waits for a reason to probe; false when every client is gone.
    async fn next_trigger(&mut self, last_round: Instant) -> bool {
        let someone_out = self.members.iter().any(|m| !m.in_balancer);
        tokio::select! {
            change = self.requests.recv() => match change {
                Some(change) => self.record(change).await.is_ok(),
                None => false,
            },
            _ = self.failed.notified() => {
                tokio::time::sleep_until(last_round + MIN_GAP).await;
                true
            }
            _ = tokio::time::sleep(REPROBE), if someone_out => true,
        }
    }

    /// Follows an endpoint etcd-client added or removed.
    async fn record(&mut self, change: Update) -> Result<(), Gone> {
        match change {
            Change::Insert(uri, endpoint) => {
                match self.members.iter_mut().find(|m| m.uri == uri) {
                    // Added again: new settings; a member in use is replaced in place.
                    Some(m) => {
                        m.endpoint = endpoint.clone();
                        if m.in_balancer {
                            self.balancer.send(Change::Insert(uri, endpoint)).await?;
                        }
                    }
                    // Probed in the next round before any request uses it.
                    None => self.members.push(Member {
                        uri,
                        endpoint,
                        in_balancer: false,
                    }),
                }
            }
            Change::Remove(uri) => {
                if let Some(i) = self.members.iter().position(|m| m.uri == uri) {
                    let m = self.members.remove(i);
                    if m.in_balancer {
                        self.balancer.send(Change::Remove(m.uri)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Probes every member at once and moves each in or out of the balancer.
    async fn round(&mut self) -> Result<(), Gone> {
        let timeout = self.probe_timeout;
        let mut probes: FuturesUnordered<_> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let endpoint = m.endpoint.clone();
                async move { (i, answers(endpoint, timeout).await) }
            })
            .collect();
        let mut live = vec![false; self.members.len()];
        while let Some((i, ok)) = probes.next().await {
            live[i] = ok;
            // A member that answers serves at once, not after the slowest probe.
            if ok {
                self.set(i, true).await?;
            }
        }
        let none = !live.contains(&true);
        // All inserts before any removal: the balancer is never empty on the way.
        for (i, ok) in live.iter().enumerate() {
            self.set(i, *ok || none).await?;
        }
        Ok(())
    }

    async fn set(&mut self, i: usize, wanted: bool) -> Result<(), Gone> {
        let m = &mut self.members[i];
        if m.in_balancer == wanted {
            return Ok(());
        }
        let change = if wanted {
            Change::Insert(m.uri.clone(), m.endpoint.clone())
        } else {
            Change::Remove(m.uri.clone())
        };
        self.balancer.send(change).await?;
        m.in_balancer = wanted;
        tracing::debug!(endpoint = %m.uri, in_use = wanted, "etcd endpoint");
        Ok(())
    }
}

/// Whether the member at `endpoint` answers a gRPC health check within
/// `timeout`. Any HTTP/2 response counts (etcd answers it without auth); a
/// bare TCP connect would not do: a TLS member logs every connection that
/// ends before its handshake, and a port can accept while nothing serves.
async fn answers(endpoint: Endpoint, timeout: Duration) -> bool {
    let check = async move {
        let channel = endpoint.connect().await.ok()?;
        // The channel fills in the scheme and authority.
        let req = Request::post("/grpc.health.v1.Health/Check")
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            // One empty message (flag 0, length 0): a request without one
            // gets no answer from etcd.
            .body(Body::new(String::from("\0\0\0\0\0")))
            .ok()?;
        channel.oneshot(req).await.ok()
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Some(_)))
}
