//! The coordinator's election and fencing against a real etcd.

use berth::coordinator::election::{self, Term};
use berth::coordinator::fence::{FenceError, Fenced};
use berth::store::Keys;
use etcd_client::TxnOp;

use crate::support::etcd::TestEtcd;

async fn lease(etcd: &TestEtcd) -> i64 {
    let mut c = etcd.client().await;
    c.lease_grant(30, None).await.expect("lease").id()
}

/// One holder at a time; a deposed coordinator (its lease gone, as after a
/// pause past its TTL) can never write over its successor, whatever it
/// still believes; the successor's writes land.
#[tokio::test]
async fn a_deposed_coordinators_writes_are_refused_by_the_fence() {
    let etcd = TestEtcd::start().await;
    let client = etcd.client().await;
    let keys = Keys::new(etcd.root());
    let (l1, l2) = (lease(&etcd).await, lease(&etcd).await);
    let first: Term = election::campaign(&client, &keys, "n1", l1)
        .await
        .expect("etcd")
        .expect("n1 elected");
    let held = election::campaign(&client, &keys, "n2", l2)
        .await
        .expect("etcd");
    assert!(held.is_err(), "two coordinators at once");
    // n1's lease lapses (revoked here, as etcd does when it expires).
    let mut c = etcd.client().await;
    c.lease_revoke(l1).await.expect("revoke");
    let second = election::campaign(&client, &keys, "n2", l2)
        .await
        .expect("etcd")
        .expect("n2 elected once n1's key is gone");
    assert!(second.fence > first.fence);

    let key = etcd.key("assignments/n1/shop/web");
    let stale = Fenced::new(client.clone(), &keys, &first);
    let r = stale
        .commit(vec![], vec![TxnOp::put(key.clone(), "old", None)])
        .await;
    assert!(matches!(r, Err(FenceError::Deposed)), "{r:?}");
    assert_eq!(etcd.get(&key).await, None, "a deposed write landed");
    let current = Fenced::new(client.clone(), &keys, &second);
    current
        .commit(vec![], vec![TxnOp::put(key.clone(), "new", None)])
        .await
        .expect("the coordinator's write");
    assert_eq!(etcd.get_string(&key).await.as_deref(), Some("new"));
    // Re-campaigning on the same lease is winning again, not a second term.
    let again = election::campaign(&client, &keys, "n2", l2)
        .await
        .expect("etcd");
    assert_eq!(again.expect("still n2"), second);
}
