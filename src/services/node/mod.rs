//! The node side of links and configs: what every agent does for the
//! containers it runs. The agent calls three things and nothing else:
//! [`NodeServices::start_extras`] before a container's create (link
//! variables, configs rendered before the process starts),
//! [`NodeServices::observe`] from each publish (which containers run), and
//! [`NodeServices::conditions`] (what to report on the component).
//!
//! Effects live here (etcd watchers of specs and endpoints, Docker file
//! copies, execs, signals, link listeners); decisions are the pure
//! `services::config` and `services::link` functions.

mod configs;
mod links;
mod watch;

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::docker::files::FileInContainer;
use crate::docker::Docker;
use crate::resource::component::ComponentSpec;
use crate::resource::endpoint::Endpoint;
use crate::resource::{ComponentKey, Condition, ConditionType, Reason, Template};
use crate::runtime::Reader;
use crate::services::config::{self, Context};
use crate::services::link;
use crate::store::Keys;

/// What the agent's flags say about these services.
#[derive(Clone, Debug)]
pub struct NodeServicesConfig {
    pub node: String,
    /// Where this node's proxy listens (`--proxy-bind`): a link whose port
    /// has an external port is relayed there (unspecified: 127.0.0.1).
    pub proxy_ip: IpAddr,
}

/// What a new container gets beyond its template.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StartExtras {
    pub env: BTreeMap<String, String>,
    pub files: Vec<FileInContainer>,
}

/// One running container this node serves links and configs to.
#[derive(Debug)]
struct Running {
    ck: ComponentKey,
    /// A restart is a new process (new network namespace): relays anew.
    started_at: Option<String>,
    /// Shared with the agent's memory: a publish clones a pointer.
    template: Arc<Template>,
    relays: CancellationToken,
    /// Path -> content last written into this container (`None`: unknown,
    /// e.g. adopted after an agent restart: the next render writes and reloads).
    files: BTreeMap<String, Option<String>>,
}

#[derive(Default)]
struct Inner {
    running: HashMap<String, Running>,
    /// Content rendered for a component's file right before a create, so the
    /// container it starts is not reloaded for the same bytes.
    prestart: HashMap<(ComponentKey, String), String>,
    conditions: HashMap<ComponentKey, BTreeMap<ConditionType, Condition>>,
    /// Containers registered since the config loop last looked: their
    /// files are rendered at once (others wait for their debounce).
    fresh: Vec<String>,
}

pub struct NodeServices {
    cfg: NodeServicesConfig,
    docker: Docker,
    keys: Keys,
    specs: Reader<(ComponentKey, ComponentSpec)>,
    endpoints: Reader<Endpoint>,
    inner: Mutex<Inner>,
    /// A container appeared: render its files now (no debounce).
    kick: Notify,
    /// Ticks on every change of the specs or endpoints: link targets are
    /// resolved again (see `links.rs`).
    routes: tokio::sync::watch::Sender<()>,
    /// Reconcile keys to trigger so a changed condition is published.
    trigger: mpsc::UnboundedSender<String>,
}

impl NodeServices {
    /// Starts the watchers (component specs, endpoints) and the config loop.
    pub fn start(
        cfg: NodeServicesConfig,
        etcd: &etcd_client::Client,
        keys: &Keys,
        docker: Docker,
        trigger: mpsc::UnboundedSender<String>,
        shutdown: &CancellationToken,
    ) -> Arc<NodeServices> {
        let routes = tokio::sync::watch::Sender::new(());
        let (specs, endpoints, changes) = watch::start(etcd, keys, &routes, shutdown);
        let s = Arc::new(NodeServices {
            cfg,
            docker,
            keys: keys.clone(),
            specs,
            endpoints,
            inner: Mutex::new(Inner::default()),
            kick: Notify::new(),
            routes,
            trigger,
        });
        tokio::spawn(configs::run(s.clone(), changes, shutdown.clone()));
        s
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Link variables and rendered files for a new container of `ck`. A
    /// link defined nowhere or a template failing now leaves that variable
    /// or file out and sets the component's condition; never waits for etcd.
    pub fn start_extras(&self, ck: &ComponentKey, t: &Template) -> StartExtras {
        let mut out = StartExtras::default();
        if let Some(links) = &t.links {
            let specs = self.specs.state();
            let mut missing = Vec::new();
            for req in &links.require {
                match link::resolve(&ck.project, req, specs.iter().map(|s| (&s.0, &s.1))) {
                    Some(r) => out.env.extend(link::env(&r.alias, r.port, r.kind)),
                    None => missing.push(req.name.clone()),
                }
            }
            self.links_condition(ck, &missing);
        }
        let endpoints = self.endpoints.state();
        let mut failed = Vec::new();
        for c in &t.configs {
            let ctx = Context::build(
                &ck.project,
                &ck.name,
                &c.sources,
                endpoints.iter().map(|e| e.as_ref()),
            );
            match config::render(&c.template, &ctx) {
                Ok(content) => {
                    self.inner()
                        .prestart
                        .insert((ck.clone(), c.path.clone()), content.clone());
                    out.files.push(FileInContainer {
                        path: c.path.clone(),
                        content: content.into_bytes(),
                    });
                }
                Err(e) => failed.push(format!("{}: {e}", c.path)),
            }
        }
        if !t.configs.is_empty() {
            self.render_condition(ck, &failed);
        }
        out
    }

    /// The running containers of `ck` with their templates (from a
    /// publish). New ones get their link listeners and a render; gone ones
    /// lose them.
    pub fn observe(
        self: &Arc<Self>,
        ck: &ComponentKey,
        running: &[(String, Option<String>, Arc<Template>)],
    ) {
        let mut new = Vec::new();
        {
            let mut inner = self.inner();
            let gone: Vec<String> = inner
                .running
                .iter()
                .filter(|(id, r)| &r.ck == ck && !running.iter().any(|(i, _, _)| i == *id))
                .map(|(id, _)| id.clone())
                .collect();
            for id in gone {
                if let Some(r) = inner.running.remove(&id) {
                    r.relays.cancel();
                }
            }
            for (id, started_at, t) in running {
                if t.configs.is_empty() && t.links.as_ref().is_none_or(|l| l.require.is_empty()) {
                    continue;
                }
                if inner
                    .running
                    .get(id)
                    .is_some_and(|r| &r.started_at == started_at)
                {
                    continue;
                }
                let old = inner.running.remove(id);
                if let Some(old) = &old {
                    old.relays.cancel();
                }
                // Restarted in place (same id), the container kept its
                // filesystem: its files are what was last written into it,
                // not what its create got.
                let files = t
                    .configs
                    .iter()
                    .map(|c| {
                        let last = match old.as_ref().and_then(|o| o.files.get(&c.path)) {
                            Some(last) => last.clone(),
                            None => inner.prestart.get(&(ck.clone(), c.path.clone())).cloned(),
                        };
                        (c.path.clone(), last)
                    })
                    .collect();
                let relays = CancellationToken::new();
                inner.running.insert(
                    id.clone(),
                    Running {
                        ck: ck.clone(),
                        started_at: started_at.clone(),
                        template: t.clone(),
                        relays: relays.clone(),
                        files,
                    },
                );
                new.push((id.clone(), t.clone(), relays));
            }
            if running.is_empty() {
                inner.conditions.remove(ck);
            }
        }
        for (id, t, relays) in new.iter().cloned() {
            if t.links.as_ref().is_some_and(|l| !l.require.is_empty()) {
                tokio::spawn(links::bind(self.clone(), ck.clone(), id, t, relays));
            }
        }
        if !new.is_empty() {
            self.inner().fresh.extend(
                new.iter()
                    .filter(|n| !n.1.configs.is_empty())
                    .map(|n| n.0.clone()),
            );
            self.kick.notify_one();
        }
    }

    /// Conditions to publish on `ck` (links, rendering, reloads).
    pub fn conditions(&self, ck: &ComponentKey) -> Vec<Condition> {
        self.inner()
            .conditions
            .get(ck)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    fn set_condition(&self, ck: &ComponentKey, c: Condition) {
        let t: Option<ConditionType> = c.type_.parse().ok();
        let Some(t) = t else { return };
        let changed = {
            let mut inner = self.inner();
            let m = inner.conditions.entry(ck.clone()).or_default();
            let same = m.get(&t).is_some_and(|o| {
                o.status == c.status && o.reason == c.reason && o.message == c.message
            });
            if !same {
                m.insert(t, c);
            }
            !same
        };
        if changed {
            let _ = self
                .trigger
                .send(self.keys.assignment_of(&self.cfg.node, ck));
        }
    }

    fn links_condition(&self, ck: &ComponentKey, missing: &[String]) {
        let c = if missing.is_empty() {
            Condition::new(
                ConditionType::LinksResolved,
                true,
                Reason::LinksResolved,
                "every required link is defined",
            )
        } else {
            Condition::new(
                ConditionType::LinksResolved,
                false,
                Reason::LinkNotDefined,
                format!(
                    "no component defines the required link(s) {}: containers started now lack their variables (once defined, `berth rollout restart` gives them)",
                    missing.join(", ")
                ),
            )
        };
        self.set_condition(ck, c);
    }

    fn render_condition(&self, ck: &ComponentKey, failed: &[String]) {
        let c = if failed.is_empty() {
            Condition::new(
                ConditionType::ConfigRendered,
                true,
                Reason::Rendered,
                "every config file rendered",
            )
        } else {
            Condition::new(
                ConditionType::ConfigRendered,
                false,
                Reason::TemplateFailed,
                format!("{} (the last good file stays)", failed.join("; ")),
            )
        };
        self.set_condition(ck, c);
    }
}
