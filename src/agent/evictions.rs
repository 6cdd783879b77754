//! Eviction requests for this node's containers: a cache of
//! `evictions/<node>/` (see `services::actions::evict`).
//!
//! An evicted container keeps its phase and keeps serving; it is published
//! with `evicting: true`, so the coordinator replaces it surge-first within
//! `maxSurge` (drain-first within `maxUnavailable` when `maxSurge` is 0);
//! the node never replaces it alone. Once the planner stops it (gracefully:
//! drained first) and it is removed, the request key is deleted.
//!
//! The requests live in etcd, so they survive an agent restart: the first
//! reconcile waits for the list (`reader()` gates the controller).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use futures::{Stream, StreamExt};

use crate::resource::ComponentKey;
use crate::runtime::{self, Doc, Reader, WatcherConfig};
use crate::services::actions::Eviction;
use crate::store::Keys;

/// The cache of this node's eviction requests. Cheap to clone.
#[derive(Clone)]
pub struct Evictions {
    reader: Reader<Doc<Eviction>>,
    keys: Keys,
    node: String,
    client: etcd_client::Client,
    /// Containers whose eviction was announced (one event each per run).
    announced: Arc<Mutex<HashSet<String>>>,
}

impl Evictions {
    /// Watches `evictions/<node>/`; the stream gives the reconcile key
    /// (`assignments/<node>/<project>/<component>`) of every request that
    /// appears or goes.
    pub fn watch(
        etcd: &etcd_client::Client,
        keys: &Keys,
        node: &str,
    ) -> (Evictions, impl Stream<Item = String> + Send + 'static) {
        let (reader, writer) = runtime::store(runtime::doc::json::<Eviction>);
        let events = runtime::watcher(
            etcd.clone(),
            keys.evictions_prefix(node),
            WatcherConfig::default(),
        );
        let (k, n) = (keys.clone(), node.to_string());
        let triggers =
            runtime::trigger_keys(runtime::reflector(writer, events)).filter_map(move |key| {
                let to = k
                    .split_eviction(&n, &key)
                    .map(|(ck, _)| k.assignment_of(&n, &ck));
                async move { to }
            });
        let e = Evictions {
            reader,
            keys: keys.clone(),
            node: node.to_string(),
            client: etcd.clone(),
            announced: Arc::default(),
        };
        (e, triggers)
    }

    /// The cache, to gate the first reconcile on its list.
    pub fn reader(&self) -> Reader<Doc<Eviction>> {
        self.reader.clone()
    }

    /// Whether an eviction of the container is pending. A request that does
    /// not decode still counts: the key says what is asked.
    pub fn is_evicted(&self, ck: &ComponentKey, id: &str) -> bool {
        self.reader
            .get(&self.keys.eviction(&self.node, ck, id))
            .is_some()
    }

    /// True the first time it is asked for a container (in this run): the
    /// caller records the `Evicted` event then.
    pub fn first_notice(&self, id: &str) -> bool {
        self.announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string())
    }

    /// The container is gone: deletes its request in the background (best
    /// effort: a key left behind names an id that never comes back).
    pub fn done(&self, ck: &ComponentKey, id: &str) {
        self.announced
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if !self.is_evicted(ck, id) {
            return;
        }
        let key = self.keys.eviction(&self.node, ck, id);
        let mut client = self.client.clone();
        tokio::spawn(async move {
            let r = crate::store::call::call(
                "deleting an eviction request",
                client.delete(key.clone(), None),
            )
            .await;
            if let Err(e) = r {
                tracing::debug!(key = %key, error = %e, "eviction request not deleted");
            }
        });
    }
}
