//! The effects of the election: read the leader key (from [`LeaderCache`]),
//! campaign or resign as [`super::decide`] says, and apply each replica's
//! role (the role file, then the hook) — a step-down's hook always before
//! the key is deleted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use etcd_client::{Client, Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse};

use super::cache::{CacheError, LeaderCache};
use super::decide::{self, Elected, Election, LeaderRecord, Role};
use crate::docker::files::FileInContainer;
use crate::docker::{Docker, ExecRequest};
use crate::events::{ClusterEvent, Recorder};
use crate::resource::services::Roles;
use crate::resource::ComponentKey;
use crate::services::local::Replica;
use crate::store::call::{call, CallError};
use crate::store::Keys;

/// The file berth keeps current in every replica of an elected component.
pub const ROLE_FILE: &str = "/run/berth/role";

/// Who leads each component, as this node last read it (the job runner's
/// `on: leader` reads it).
pub type Leaders = Arc<Mutex<HashMap<ComponentKey, Elected>>>;

#[derive(Debug, thiserror::Error)]
pub enum ElectError {
    #[error(transparent)]
    Etcd(#[from] CallError),
    #[error(transparent)]
    Cache(#[from] CacheError),
}

pub struct Elector {
    pub client: Client,
    pub keys: Keys,
    pub node: String,
    pub docker: Docker,
    pub leaders: Leaders,
    /// Every role change is a cluster event (`berth events`).
    pub events: Recorder,
    cache: LeaderCache,
    /// Roles applied per container (file written and hook run).
    applied: BTreeMap<String, Role>,
    /// Per component, the term of the leader key this node resigned (its
    /// follower hook ran if it still ran): while the cache has not seen the
    /// deletion, that key counts as gone and the hook does not run again.
    resigned: HashMap<ComponentKey, i64>,
    /// Per component, the term of our leader key and the lease it is on,
    /// as won or read from etcd: a cached key naming this node counts only
    /// when it matches (see [`Self::leader`]).
    ours: HashMap<ComponentKey, (i64, i64)>,
}

impl Elector {
    pub fn new(
        client: Client,
        keys: Keys,
        node: String,
        docker: Docker,
        leaders: Leaders,
        events: Recorder,
        cache: LeaderCache,
    ) -> Self {
        Elector {
            client,
            keys,
            node,
            docker,
            leaders,
            events,
            cache,
            applied: BTreeMap::new(),
            resigned: HashMap::new(),
            ours: HashMap::new(),
        }
    }

    /// The leader key: from the cache while the agent holds its lease.
    /// Without one, etcd is asked: the cache may be cut off from an etcd
    /// that expired our keys, and a failed read is what demotes (see
    /// [`Self::demote`]). A cached key naming this node is taken only when
    /// it is known to be on the current lease; else etcd says: after a
    /// partition the agent gets a new lease while its cache may still show
    /// the key that expired with the old one, and leading on it would make
    /// two leaders.
    async fn leader(
        &mut self,
        ck: &ComponentKey,
        lease: Option<i64>,
    ) -> Result<Option<Elected>, ElectError> {
        let Some(lease) = lease else {
            return Ok(self.read(ck).await?.map(|(e, _)| e));
        };
        let cached = self.cache.leader(ck)?;
        match &cached {
            Some(e) if !trusted(e, &self.node, self.ours.get(ck), lease) => {
                let read = self.read(ck).await?;
                match &read {
                    Some((e, on)) if e.record.node == self.node && *on == lease => {
                        self.ours.insert(ck.clone(), (e.term, lease));
                    }
                    _ => {
                        self.ours.remove(ck);
                    }
                }
                Ok(read.map(|(e, _)| e))
            }
            _ => Ok(cached),
        }
    }

    /// The leader key from etcd, with the lease it is on.
    async fn read(&self, ck: &ComponentKey) -> Result<Option<(Elected, i64)>, CallError> {
        let mut c = self.client.clone();
        let r = call(
            "read the leader key",
            c.get(self.keys.role_leader(ck), None),
        )
        .await?;
        Ok(r.kvs().first().and_then(|kv| {
            Elected::decode(kv.value(), kv.create_revision()).map(|e| (e, kv.lease()))
        }))
    }

    /// One pass over one component: `ready` are its ready replicas here,
    /// `running` whether a container still runs, `lease` the agent's lease.
    pub async fn step(
        &mut self,
        ck: &ComponentKey,
        roles: &Roles,
        ready: &[Replica],
        running: &(dyn Fn(&str) -> bool + Sync),
        lease: Option<i64>,
    ) -> Result<(), ElectError> {
        let ids: Vec<String> = ready.iter().map(|r| r.container.clone()).collect();
        let cached = self.leader(ck, lease).await?;
        let leader = match self.resigning(ck, cached.as_ref()) {
            // Resigned already; the cache has not seen the deletion yet.
            // Deleting again is harmless (compared on the term).
            Some(term) => {
                self.resign(ck, term).await?;
                None
            }
            None => self.elect(ck, roles, &ids, running, lease, cached).await?,
        };
        self.publish(ck, leader.as_ref());
        let term = leader.as_ref().map_or(0, |e| e.term);
        let now = decide::roles(&self.node, &ids, leader.as_ref());
        for (container, role) in decide::transitions(&now, &self.applied) {
            self.apply(ck, roles, &container, role, term).await;
        }
        Ok(())
    }

    /// The term of `leader` if this node resigned it: such a key is never
    /// led by, stepped down from or campaigned against again. Forgotten
    /// once the cache shows another key (or none).
    fn resigning(&mut self, ck: &ComponentKey, leader: Option<&Elected>) -> Option<i64> {
        let term = leader.map(|e| e.term);
        match self.resigned.get(ck) {
            Some(t) if Some(*t) == term => term,
            _ => {
                self.resigned.remove(ck);
                None
            }
        }
    }

    /// Campaigns or resigns as [`decide::decide`] says; the leader after.
    async fn elect(
        &mut self,
        ck: &ComponentKey,
        roles: &Roles,
        ids: &[String],
        running: &(dyn Fn(&str) -> bool + Sync),
        lease: Option<i64>,
        leader: Option<Elected>,
    ) -> Result<Option<Elected>, ElectError> {
        let candidates: Vec<String> = leader
            .iter()
            .map(|e| e.record.container.clone())
            .filter(|c| running(c))
            .collect();
        match decide::decide(&self.node, ids, &candidates, leader.as_ref()) {
            Election::Keep => Ok(leader),
            Election::Campaign { container } => match lease {
                Some(lease) => Ok(self.campaign(ck, &container, lease).await?),
                None => Ok(leader),
            },
            Election::Resign {
                container,
                term,
                step_down,
            } => {
                self.resigned.insert(ck.clone(), term);
                if step_down {
                    // Before the key goes: nobody else can lead meanwhile.
                    self.apply(ck, roles, &container, Role::Follower, term)
                        .await;
                }
                self.resign(ck, term).await?;
                Ok(None)
            }
        }
    }

    /// What the job runner's `on: leader` reads.
    fn publish(&self, ck: &ComponentKey, leader: Option<&Elected>) {
        let mut leaders = self.leaders.lock().unwrap_or_else(|e| e.into_inner());
        match leader {
            Some(e) => leaders.insert(ck.clone(), e.clone()),
            None => leaders.remove(ck),
        };
    }

    /// The agent lost its lease and etcd cannot be read: its leader keys
    /// are gone (or going), so a replica here that leads steps down (its
    /// follower hook runs) without waiting to hear who leads now.
    pub async fn demote(&mut self, ck: &ComponentKey, roles: &Roles, ready: &[Replica]) {
        let leading: Vec<String> = ready
            .iter()
            .filter(|r| self.applied.get(&r.container) == Some(&Role::Leader))
            .map(|r| r.container.clone())
            .collect();
        for c in leading {
            tracing::warn!(component = %ck, container = %short(&c), "lease lost: stepping down");
            self.apply(ck, roles, &c, Role::Follower, 0).await;
        }
        self.leaders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(ck);
    }

    /// Forgets containers that are no longer ready replicas here.
    pub fn retain(&mut self, ready: &[Replica]) {
        self.applied
            .retain(|c, _| ready.iter().any(|r| &r.container == c));
    }

    /// Creates the leader key if absent; else reads it in the same
    /// transaction, so the leader and term come from one revision.
    async fn campaign(
        &mut self,
        ck: &ComponentKey,
        container: &str,
        lease: i64,
    ) -> Result<Option<Elected>, CallError> {
        let key = self.keys.role_leader(ck);
        let record = LeaderRecord {
            node: self.node.clone(),
            container: container.to_string(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| CallError::Other(e.to_string()))?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(
                key.as_str(),
                value,
                Some(PutOptions::new().with_lease(lease)),
            )])
            .or_else([TxnOp::get(key.as_str(), None)]);
        let mut c = self.client.clone();
        let r = call("campaign for leader", c.txn(txn)).await?;
        if !r.succeeded() {
            return Ok(winner(&r));
        }
        // The put's revision is the key's create revision: the term.
        let term = r
            .header()
            .map(|h| h.revision())
            .ok_or_else(|| CallError::Other("a campaign answer without a header".into()))?;
        tracing::info!(component = %ck, container = %short(container), term, "elected leader");
        self.ours.insert(ck.clone(), (term, lease));
        Ok(Some(Elected { record, term }))
    }

    async fn resign(&self, ck: &ComponentKey, term: i64) -> Result<(), CallError> {
        let key = self.keys.role_leader(ck);
        let txn = Txn::new()
            .when([Compare::create_revision(
                key.as_str(),
                CompareOp::Equal,
                term,
            )])
            .and_then([TxnOp::delete(key.as_str(), None)]);
        let mut c = self.client.clone();
        call("resign as leader", c.txn(txn)).await?;
        tracing::info!(component = %ck, term, "resigned leadership");
        Ok(())
    }

    /// Writes the role file and runs the role's hook in `container`. A hook
    /// that fails is logged; the role stands (the election does not wait on
    /// the application).
    async fn apply(
        &mut self,
        ck: &ComponentKey,
        roles: &Roles,
        container: &str,
        role: Role,
        term: i64,
    ) {
        self.applied.insert(container.to_string(), role);
        let content = format!("{}\n", role.as_str());
        let file = FileInContainer {
            path: ROLE_FILE.to_string(),
            content: content.into_bytes(),
        };
        if let Err(e) = self.docker.put_file(container, &file).await {
            tracing::warn!(component = %ck, container = %short(container), error = %e, "role file not written");
        }
        let hook = match role {
            Role::Leader => roles.on_leader.as_ref(),
            Role::Follower => roles.on_follower.as_ref(),
        };
        let Some(hook) = hook else {
            self.event(ck, container, role, term, "no hook");
            return;
        };
        let req = ExecRequest {
            command: &hook.exec,
            env: vec![
                format!("BERTH_ROLE={}", role.as_str()),
                format!("BERTH_ROLE_TERM={term}"),
            ],
            timeout: hook.timeout(),
        };
        let mut sink = |_: crate::docker::OutputStream, _: &[u8]| {};
        let outcome = match self.docker.exec_streaming(container, &req, &mut sink).await {
            Ok(0) => "hook exited 0".to_string(),
            Ok(code) => format!("hook exited {code}"),
            Err(e) => format!("hook not run: {e}"),
        };
        tracing::info!(component = %ck, container = %short(container), role = role.as_str(), term, outcome = %outcome, "role applied");
        self.event(ck, container, role, term, &outcome);
    }
}

impl Elector {
    fn event(&self, ck: &ComponentKey, container: &str, role: Role, term: i64, outcome: &str) {
        let message = format!(
            "container {} is {} (term {term}); {outcome}",
            short(container),
            role.as_str()
        );
        self.events.record(ClusterEvent::component(
            &ck.project,
            &ck.name,
            &self.node,
            role.reason(),
            &message,
        ));
    }
}

/// The leader a lost campaign read (the transaction's `else` get).
fn winner(r: &TxnResponse) -> Option<Elected> {
    r.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(g) => g
            .kvs()
            .first()
            .and_then(|kv| Elected::decode(kv.value(), kv.create_revision())),
        _ => None,
    })
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Whether a cached leader key can be taken as it is: another node's always
/// (its lease is its agent's business); this node's only when it is the
/// key this node won or read from etcd (`ours`: term, lease) on `lease`,
/// the lease it holds now.
fn trusted(cached: &Elected, node: &str, ours: Option<&(i64, i64)>, lease: i64) -> bool {
    cached.record.node != node || ours == Some(&(cached.term, lease))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elected(node: &str, term: i64) -> Elected {
        Elected {
            record: LeaderRecord {
                node: node.into(),
                container: "c".into(),
            },
            term,
        }
    }

    /// (cached key's node and term, what this node knows of its own key,
    /// the lease it holds) -> taken from the cache as it is?
    fn check(input: ((&str, i64), Option<(i64, i64)>, i64), expected: bool) {
        let ((node, term), ours, lease) = input;
        assert_eq!(
            trusted(&elected(node, term), "me", ours.as_ref(), lease),
            expected,
            "{input:?}"
        );
    }

    #[test]
    fn a_cached_key_of_ours_counts_only_on_the_lease_we_hold() {
        // Another node's key: the cache says.
        check((("peer", 7), None, 1), true);
        // Ours, won (or read) on the lease we hold: the cache says.
        check((("me", 7), Some((7, 1)), 1), true);
        // Ours, but we know nothing of it (an agent restart): ask etcd.
        check((("me", 7), None, 1), false);
        // Ours, won on a lease since lost: after a partition the cache may
        // still show the key that expired with it; etcd says.
        check((("me", 7), Some((7, 1)), 2), false);
        // Ours at another term than the one we won: etcd says.
        check((("me", 9), Some((7, 2)), 2), false);
    }
}
