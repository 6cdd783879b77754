//! The coordinator's picture of the cluster: one cache per prefix it reads,
//! filled by the runtime's watchers, and the streams of keys that changed.
//! Built anew for every term, so a new coordinator starts from a full list.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use etcd_client::Client;
use futures::stream::BoxStream;
use futures::StreamExt;

use crate::placement::NodeView;
use crate::resource::component::{Component, ComponentStatus};
use crate::resource::{Assignment, ComponentKey, Kind, Node, NodeRecord, Observed};
use crate::runtime::{self, Doc, Reader, WatcherConfig};
use crate::store::Keys;

/// Every cache a term reads.
#[derive(Clone)]
pub struct Cluster {
    pub keys: Keys,
    /// `specs/component/`: what users asked for.
    pub specs: Reader<Doc<Component>>,
    /// `nodes/`: live registrations (bound to the agents' leases).
    pub registrations: Reader<Node>,
    /// `specs/node/`: cordon, drain and labels users set.
    pub node_specs: Reader<Node>,
    /// `status/node/`: this cluster's record of every node ever seen.
    pub records: Reader<NodeRecord>,
    /// `assignments/`: what every node is asked to run.
    pub assignments: Reader<Doc<Assignment>>,
    /// `observed/`: what every node runs.
    pub observed: Reader<Observed>,
    /// `status/component/`: the statuses as etcd holds them (what a term
    /// compares its first roll-up of each component with).
    pub statuses: Reader<ComponentStatus>,
    /// Which nodes have an assignment / an observed document of each
    /// component, kept as their events pass, so a reconcile reads its own
    /// component's documents without scanning everyone's.
    assigned_on: ByComponent,
    observed_on: ByComponent,
    /// The node views, computed at most once per node change (and per
    /// second): every reconcile needs them.
    views: Arc<Mutex<Option<CachedViews>>>,
    node_changes: Arc<AtomicU64>,
}

/// Keys that changed, mapped to what they concern.
pub struct Changes {
    /// Component spec keys to reconcile.
    pub components: BoxStream<'static, String>,
    /// Any node changed (registration, record, user spec): node names.
    pub nodes: BoxStream<'static, String>,
}

type Cache<T> = (Reader<T>, BoxStream<'static, String>);

fn cache<T: Send + Sync + 'static>(
    client: &Client,
    prefix: String,
    decode: impl Fn(&runtime::Kv) -> Option<T> + Send + Sync + 'static,
) -> Cache<T> {
    let (reader, writer) = runtime::store(decode);
    let events = runtime::watcher(client.clone(), prefix, WatcherConfig::default());
    let keys = runtime::trigger_keys(runtime::reflector(writer, events)).boxed();
    (reader, keys)
}

fn json<T: serde::de::DeserializeOwned>(kv: &runtime::Kv) -> Option<T> {
    serde_json::from_slice(&kv.value).ok()
}

impl Cluster {
    /// Starts every watcher; the caches fill in the background.
    pub fn watch(client: &Client, keys: &Keys) -> (Cluster, Changes) {
        let (specs, spec_keys) = cache(
            client,
            keys.spec_prefix(Kind::Component, None),
            runtime::doc::json::<Component>,
        );
        let (registrations, reg_keys) = cache(client, keys.nodes_prefix(), json::<Node>);
        let (node_specs, nspec_keys) =
            cache(client, keys.spec_prefix(Kind::Node, None), json::<Node>);
        let (records, record_keys) = cache(
            client,
            keys.status_prefix(Kind::Node, None),
            json::<NodeRecord>,
        );
        let (assignments, assign_keys) = cache(
            client,
            keys.all_assignments_prefix(),
            runtime::doc::json::<Assignment>,
        );
        let (observed, observed_keys) = cache(client, keys.all_observed_prefix(), json::<Observed>);
        let (statuses, status_keys) = cache(
            client,
            keys.status_prefix(Kind::Component, None),
            json::<ComponentStatus>,
        );
        let cluster = Cluster {
            keys: keys.clone(),
            specs,
            registrations,
            node_specs,
            records,
            assignments,
            observed,
            statuses,
            assigned_on: Default::default(),
            observed_on: Default::default(),
            views: Default::default(),
            node_changes: Default::default(),
        };
        let mut changes = cluster.changes(
            spec_keys,
            assign_keys,
            observed_keys,
            reg_keys,
            nspec_keys,
            record_keys,
        );
        // The status cache fills while its stream is polled; a status
        // written (by this term) re-places nothing.
        let statuses = status_keys.filter_map(|_| futures::future::ready(None));
        changes.components = futures::stream::select(changes.components, statuses).boxed();
        (cluster, changes)
    }

    fn changes(
        &self,
        specs: BoxStream<'static, String>,
        assignments: BoxStream<'static, String>,
        observed: BoxStream<'static, String>,
        registrations: BoxStream<'static, String>,
        node_specs: BoxStream<'static, String>,
        records: BoxStream<'static, String>,
    ) -> Changes {
        let keys = self.keys.clone();
        let changed = self.node_changes.clone();
        let by_node = move |prefix: String| {
            let changed = changed.clone();
            move |key: String| {
                changed.fetch_add(1, Ordering::SeqCst);
                futures::future::ready(key.strip_prefix(&prefix).map(str::to_string))
            }
        };
        let nodes = futures::stream::select_all([
            registrations
                .filter_map(by_node(keys.nodes_prefix()))
                .boxed(),
            node_specs
                .filter_map(by_node(keys.spec_prefix(Kind::Node, None)))
                .boxed(),
            records
                .filter_map(by_node(keys.status_prefix(Kind::Node, None)))
                .boxed(),
        ])
        .boxed();
        let (k1, k2) = (keys.clone(), keys.clone());
        let (assigned_on, observed_on) = (self.assigned_on.clone(), self.observed_on.clone());
        let of_assignment = move |key: String| {
            let spec = k1.split_assignment(&key).map(|(node, ck)| {
                assigned_on.note(&ck, node);
                k1.component_spec(&ck)
            });
            futures::future::ready(spec)
        };
        let of_observed = move |key: String| {
            let parts = k2.parts(&k2.all_observed_prefix(), &key);
            let spec = match parts.as_deref() {
                Some([node, rest @ ..]) => ComponentKey::from_parts(rest).map(|ck| {
                    observed_on.note(&ck, node.to_string());
                    k2.component_spec(&ck)
                }),
                _ => None,
            };
            futures::future::ready(spec)
        };
        let components = futures::stream::select_all([
            specs,
            assignments.filter_map(of_assignment).boxed(),
            observed.filter_map(of_observed).boxed(),
        ])
        .boxed();
        Changes { components, nodes }
    }

    /// Every cache has its first full list.
    pub async fn ready(&self) -> bool {
        self.specs.wait_until_ready().await.is_ok()
            && self.registrations.wait_until_ready().await.is_ok()
            && self.node_specs.wait_until_ready().await.is_ok()
            && self.records.wait_until_ready().await.is_ok()
            && self.assignments.wait_until_ready().await.is_ok()
            && self.observed.wait_until_ready().await.is_ok()
            && self.statuses.wait_until_ready().await.is_ok()
    }

    /// Every node name known: registered, recorded or given a spec.
    pub fn node_names(&self) -> BTreeSet<String> {
        let of = |prefix: String, keys: Vec<String>| -> Vec<String> {
            keys.into_iter()
                .filter_map(|k| k.strip_prefix(&prefix).map(str::to_string))
                .collect()
        };
        let k = &self.keys;
        let mut names: BTreeSet<String> = BTreeSet::new();
        names.extend(of(k.nodes_prefix(), self.registrations.keys()));
        names.extend(of(k.status_prefix(Kind::Node, None), self.records.keys()));
        names.extend(of(k.spec_prefix(Kind::Node, None), self.node_specs.keys()));
        names
    }

    /// What placement needs to know of every node.
    pub fn node_views(&self) -> Arc<Vec<NodeView>> {
        let generation = self.node_changes.load(Ordering::SeqCst);
        let mut cached = self.views.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cached.as_ref() {
            if c.generation == generation && c.at.elapsed() < VIEWS_MAX_AGE {
                return c.views.clone();
            }
        }
        let views: Arc<Vec<NodeView>> = Arc::new(
            self.node_names()
                .into_iter()
                .map(|name| self.node_view(&name))
                .collect(),
        );
        *cached = Some(CachedViews {
            generation,
            at: std::time::Instant::now(),
            views: views.clone(),
        });
        views
    }

    pub fn node_view(&self, name: &str) -> NodeView {
        let k = &self.keys;
        let registration = self.registrations.get(&k.node(name));
        let record = self.records.get(&k.status(Kind::Node, None, name));
        let user = self.node_specs.get(&k.spec(Kind::Node, None, name));
        let mut labels: BTreeMap<String, String> = match (&registration, &record) {
            (Some(r), _) => r
                .status
                .as_ref()
                .map(|s| s.labels.clone())
                .unwrap_or_default(),
            (None, Some(rec)) => rec.labels.clone(),
            (None, None) => BTreeMap::new(),
        };
        let (mut cordoned, mut draining) = (false, false);
        if let Some(u) = &user {
            labels.extend(u.metadata.labels.clone());
            cordoned = u.spec.unschedulable || u.spec.drain;
            draining = u.spec.drain;
        }
        NodeView {
            name: name.to_string(),
            labels,
            ready: registration.is_some(),
            cordoned,
            draining,
        }
    }

    /// Every node's assignment of `ck` (unreadable ones included).
    pub fn assignments_of(&self, ck: &ComponentKey) -> BTreeMap<String, Arc<Doc<Assignment>>> {
        self.assigned_on.docs(ck, |node| {
            self.assignments.get(&self.keys.assignment_of(node, ck))
        })
    }

    /// Every node's observed document of `ck`.
    pub fn observed_of(&self, ck: &ComponentKey) -> BTreeMap<String, Arc<Observed>> {
        self.observed_on.docs(ck, |node| {
            self.observed.get(&self.keys.observed_of(node, ck))
        })
    }
}

/// How long cached node views may be used without a node change (bounds any
/// staleness a re-list after compaction could leave).
const VIEWS_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

struct CachedViews {
    generation: u64,
    at: std::time::Instant,
    views: Arc<Vec<NodeView>>,
}

/// Nodes per component, noted as events pass. Every key an event names is
/// noted (a list's entries reach the cache only at its end, so the cache
/// cannot tell yet); readers drop the nodes the cache holds nothing for.
#[derive(Clone, Default)]
struct ByComponent(Arc<Mutex<HashMap<ComponentKey, BTreeSet<String>>>>);

impl ByComponent {
    fn note(&self, ck: &ComponentKey, node: String) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(ck.clone()).or_default().insert(node);
    }

    /// The documents `get` finds for `ck`'s nodes; nodes without one are forgotten.
    fn docs<T>(&self, ck: &ComponentKey, get: impl Fn(&str) -> Option<T>) -> BTreeMap<String, T> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(nodes) = map.get_mut(ck) else {
            return BTreeMap::new();
        };
        let mut out = BTreeMap::new();
        nodes.retain(|node| get(node).map(|d| out.insert(node.clone(), d)).is_some());
        out
    }
}
