//! The coordinator election: one key, `election/coordinator`, holding the
//! coordinating node's name, bound to that agent's own kept-alive lease.
//!
//! Campaigning is one transaction: create the key if it does not exist. The
//! winner's **fence** is the key's create revision; every coordinator write
//! compares it ([`super::fence`]), so a coordinator paused past its lease
//! (the key deleted with the lease, another elected) can never overwrite its
//! successor, whatever it still believes. Losers watch the key and campaign
//! again the moment it is deleted, so failover takes the lease TTL plus one
//! watch round trip.

use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, EventType, PutOptions, Txn, TxnOp, WatchOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::store::call::etcd;
use crate::store::Keys;

/// How often a follower re-reads the key even without a watch event (a
/// watch broken by an outage must not leave the cluster leaderless).
const RECHECK: Duration = Duration::from_secs(2);

/// This node's term as coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    /// The election key's create revision: the fencing token.
    pub fence: i64,
    /// The lease the key is bound to (this agent's).
    pub lease: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    #[error("{0}")]
    Etcd(String),
}

/// One attempt: `Ok(Some(term))` when this node now holds the key,
/// `Ok(None)` with the holder's revision when another does.
pub async fn campaign(
    client: &Client,
    keys: &Keys,
    node: &str,
    lease: i64,
) -> Result<Result<Term, i64>, ElectionError> {
    let key = keys.election();
    let txn = Txn::new()
        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
        .and_then([TxnOp::put(
            key.clone(),
            node,
            Some(PutOptions::new().with_lease(lease)),
        )])
        .or_else([TxnOp::get(key, None)]);
    let resp = etcd("campaigning", client.clone().txn(txn))
        .await
        .map_err(ElectionError::Etcd)?;
    let revision = resp.header().map_or(0, |h| h.revision());
    if resp.succeeded() {
        return Ok(Ok(Term {
            fence: revision,
            lease,
        }));
    }
    // Held: by this node on the same lease (a retried campaign whose
    // answer was lost) counts as won; by this node on another lease, a
    // previous run of this agent, is taken over.
    for op in resp.op_responses() {
        if let etcd_client::TxnOpResponse::Get(g) = op {
            if let Some(kv) = g.kvs().first() {
                if kv.value() == node.as_bytes() && kv.lease() == lease {
                    return Ok(Ok(Term {
                        fence: kv.create_revision(),
                        lease,
                    }));
                }
                if kv.value() == node.as_bytes() {
                    take_over(client, keys, kv.create_revision()).await?;
                    return Box::pin(campaign(client, keys, node, lease)).await;
                }
            }
        }
    }
    Ok(Err(revision))
}

/// Deletes the election key a previous run of this node's agent holds.
/// Only one agent runs per node name (registration refuses a second one
/// while the old lease is kept alive), so that run is gone; waiting for its
/// lease to lapse would leave the cluster without a coordinator meanwhile.
/// The delete compares the old term's fence: a term started since is kept.
async fn take_over(client: &Client, keys: &Keys, fence: i64) -> Result<(), ElectionError> {
    let key = keys.election();
    let txn = Txn::new()
        .when([Compare::create_revision(
            key.clone(),
            CompareOp::Equal,
            fence,
        )])
        .and_then([TxnOp::delete(key, None)]);
    tracing::info!(
        fence,
        "taking the coordinator role over from this node's previous agent"
    );
    etcd("taking over the election", client.clone().txn(txn))
        .await
        .map_err(ElectionError::Etcd)?;
    Ok(())
}

/// Waits until the election key is deleted (or `RECHECK` passes, or the
/// watch fails): time to campaign again.
pub async fn wait_for_vacancy(client: &Client, keys: &Keys, after: i64, stop: &CancellationToken) {
    let opts = WatchOptions::new().with_start_revision(after + 1);
    let mut client = client.clone();
    let watch = client.watch(keys.election(), Some(opts));
    let mut stream = match tokio::time::timeout(RECHECK, watch).await {
        Ok(Ok(s)) => s,
        _ => return,
    };
    let deadline = tokio::time::sleep(RECHECK);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = &mut deadline => return,
            msg = stream.message() => match msg {
                Ok(Some(resp)) => {
                    if resp.events().iter().any(|e| e.event_type() == EventType::Delete) {
                        return;
                    }
                }
                _ => return,
            },
        }
    }
}

/// Resolves when `term` has ended: the key was deleted or re-created (its
/// create revision is no longer the fence), or this agent's lease changed.
pub async fn term_ended(
    client: &Client,
    keys: &Keys,
    term: &Term,
    mut lease: watch::Receiver<Option<i64>>,
) {
    let lease_changed = async {
        loop {
            if *lease.borrow_and_update() != Some(term.lease) {
                return;
            }
            if lease.changed().await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = lease_changed => {}
        _ = key_lost(client, keys, term) => {}
    }
}

/// Polls and watches the election key until it is not this term's.
async fn key_lost(client: &Client, keys: &Keys, term: &Term) {
    loop {
        match etcd(
            "reading the election key",
            client.clone().get(keys.election(), None),
        )
        .await
        {
            Ok(resp) => {
                let held = resp
                    .kvs()
                    .first()
                    .is_some_and(|kv| kv.create_revision() == term.fence);
                if !held {
                    return;
                }
                let after = resp.header().map_or(0, |h| h.revision());
                wait_for_vacancy(client, keys, after, &CancellationToken::new()).await;
            }
            // etcd unreachable: the term may be over; writes are fenced
            // anyway, so keep coordinating until it answers.
            Err(_) => tokio::time::sleep(RECHECK).await,
        }
    }
}
