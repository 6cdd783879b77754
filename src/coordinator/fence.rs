//! Fenced writes: every coordinator write is a transaction that also
//! compares the election key's create revision with the term's fence (see
//! [`super::election`]). A deposed coordinator's write fails here, never
//! lands.

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};

use super::election::Term;
use crate::store::call::etcd;
use crate::store::Keys;

/// Operations per transaction (etcd allows 128; one is left for the fence
/// and the caller's own compares).
pub const BATCH: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    #[error("{0}")]
    Etcd(String),
    /// The fence failed: another coordinator was elected.
    #[error("no longer the coordinator (the election key changed)")]
    Deposed,
    /// A caller's compare failed (what a decision was made on changed).
    #[error("changed concurrently")]
    Conflict,
}

/// Writes guarded by one term's fence. Cheap to clone.
#[derive(Clone)]
pub struct Fenced {
    client: Client,
    election: String,
    fence: i64,
}

impl Fenced {
    pub fn new(client: Client, keys: &Keys, term: &Term) -> Self {
        Fenced {
            client,
            election: keys.election(),
            fence: term.fence,
        }
    }

    fn fence(&self) -> Compare {
        Compare::create_revision(self.election.clone(), CompareOp::Equal, self.fence)
    }

    /// Commits `ops` in transactions of [`BATCH`], each also guarded by
    /// `when`; stops at the first failure. Returns the revision of the last
    /// transaction.
    pub async fn commit(&self, when: Vec<Compare>, ops: Vec<TxnOp>) -> Result<i64, FenceError> {
        let mut ops = ops.into_iter().peekable();
        let mut revision = 0;
        while ops.peek().is_some() {
            let chunk: Vec<TxnOp> = ops.by_ref().take(BATCH).collect();
            revision = self.commit_one(when.clone(), chunk).await?;
        }
        Ok(revision)
    }

    /// Commits `ops`, each with the compares that guard it, in
    /// transactions of up to [`BATCH`] operations: each transaction carries
    /// the compares of its own operations plus `always` (a later chunk must
    /// not compare keys an earlier chunk of the same write changed). The
    /// operations keep their order, so what must land last (a status
    /// naming the assignments) goes last. Stops at the first failure;
    /// returns the revision of the last transaction.
    pub async fn commit_guarded(
        &self,
        always: Vec<Compare>,
        ops: Vec<(Option<Compare>, TxnOp)>,
    ) -> Result<i64, FenceError> {
        let mut ops = ops.into_iter().peekable();
        let mut revision = 0;
        while ops.peek().is_some() {
            let (when, chunk): (Vec<Option<Compare>>, Vec<TxnOp>) =
                ops.by_ref().take(BATCH).unzip();
            let mut when: Vec<Compare> = when.into_iter().flatten().collect();
            when.extend(always.iter().cloned());
            revision = self.commit_one(when, chunk).await?;
        }
        Ok(revision)
    }

    async fn commit_one(&self, mut when: Vec<Compare>, ops: Vec<TxnOp>) -> Result<i64, FenceError> {
        when.insert(0, self.fence());
        // On failure, read the election key to tell a lost fence from a
        // lost compare of the caller's.
        let txn = Txn::new()
            .when(when)
            .and_then(ops)
            .or_else([TxnOp::get(self.election.clone(), None)]);
        let resp = etcd("a fenced write", self.client.clone().txn(txn))
            .await
            .map_err(FenceError::Etcd)?;
        if resp.succeeded() {
            return Ok(resp.header().map_or(0, |h| h.revision()));
        }
        let held = resp.op_responses().into_iter().any(|op| match op {
            etcd_client::TxnOpResponse::Get(g) => g
                .kvs()
                .first()
                .is_some_and(|kv| kv.create_revision() == self.fence),
            _ => false,
        });
        Err(if held {
            FenceError::Conflict
        } else {
            FenceError::Deposed
        })
    }
}
