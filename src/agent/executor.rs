//! The executor: performs the planner's container steps through
//! [`crate::docker::Docker`], and decides, purely, what a container of a
//! template looks like (name, labels, config) and whether this agent may run
//! it at all ([`admit`]).
//!
//! Containers are named `berth-<project>-<component>-<hash>-<rand>` and carry
//! the labels of [`LABEL_ROOT`] and friends; those labels are how the agent
//! finds (and adopts) its containers, and it never touches a container
//! without them.

use std::collections::BTreeMap;
use std::path::{Component as PathPart, Path};

use crate::docker::container::Bind;
use crate::docker::{ContainerConfig, Docker, Started};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::resource::component::{Template, Termination};
use crate::resource::{ComponentKey, ConditionType, Reason};

/// Label: the etcd root of the cluster that owns the container.
pub const LABEL_ROOT: &str = "berth.root";
/// Label: the node (agent) that owns the container.
pub const LABEL_NODE: &str = "berth.node";
pub const LABEL_PROJECT: &str = "berth.project";
pub const LABEL_COMPONENT: &str = "berth.component";
/// Label: the revision sequence number the container was created from.
pub const LABEL_REVISION: &str = "berth.revision";
/// Label: the template hash the container was created from.
pub const LABEL_HASH: &str = "berth.hash";

/// The berth labels of one container, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    pub project: String,
    pub component: String,
    pub revision: u64,
    pub hash: String,
}

impl Owner {
    /// The component this container belongs to.
    pub fn key(&self) -> ComponentKey {
        ComponentKey::new(&self.project, &self.component)
    }

    /// Reads the labels of a container that belongs to `root` and `node`;
    /// `None` for any other container (never touched).
    pub fn from_labels(labels: &BTreeMap<String, String>, root: &str, node: &str) -> Option<Owner> {
        if labels.get(LABEL_ROOT)? != root || labels.get(LABEL_NODE)? != node {
            return None;
        }
        Some(Owner {
            project: labels.get(LABEL_PROJECT)?.clone(),
            component: labels.get(LABEL_COMPONENT)?.clone(),
            revision: labels
                .get(LABEL_REVISION)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            hash: labels.get(LABEL_HASH)?.clone(),
        })
    }

    pub fn labels(&self, root: &str, node: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            (LABEL_ROOT.to_string(), root.to_string()),
            (LABEL_NODE.to_string(), node.to_string()),
            (LABEL_PROJECT.to_string(), self.project.clone()),
            (LABEL_COMPONENT.to_string(), self.component.clone()),
            (LABEL_REVISION.to_string(), self.revision.to_string()),
            (LABEL_HASH.to_string(), self.hash.clone()),
        ])
    }

    /// `berth-<project>-<component>-<hash>-<6 random hex>`.
    pub fn container_name(&self) -> String {
        let rand = uuid::Uuid::new_v4().simple().to_string();
        format!(
            "berth-{}-{}-{}-{}",
            self.project,
            self.component,
            self.hash,
            &rand[..6]
        )
    }
}

/// Label filters that select every container of this agent.
pub fn node_filters(root: &str, node: &str) -> Vec<(String, String)> {
    vec![
        (LABEL_ROOT.to_string(), root.to_string()),
        (LABEL_NODE.to_string(), node.to_string()),
    ]
}

/// What the agent allows containers to do (`--allow-privileged`, `--allow-bind`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    pub allow_privileged: bool,
    /// Host path prefixes bindings may use.
    pub allow_bind: Vec<String>,
}

/// Whether `path` lies at or below one of `prefixes`, comparing whole path
/// components (`/data` allows `/data/x`, not `/database`); relative paths and
/// `..` are never allowed.
pub fn bind_allowed(path: &str, prefixes: &[String]) -> bool {
    let p = Path::new(path);
    if !p.is_absolute() || p.components().any(|c| matches!(c, PathPart::ParentDir)) {
        return false;
    }
    prefixes.iter().any(|prefix| {
        let pre = Path::new(prefix);
        pre.is_absolute()
            && !pre.components().any(|c| matches!(c, PathPart::ParentDir))
            && p.starts_with(pre)
    })
}

/// Refuses templates this agent does not allow; the message is the text of
/// the `Forbidden` condition.
pub fn admit(t: &Template, perms: &Permissions) -> Result<(), String> {
    let mut refused = Vec::new();
    if t.privileged && !perms.allow_privileged {
        refused.push("privileged containers need `berth agent --allow-privileged`".to_string());
    }
    for b in &t.bindings {
        if !bind_allowed(&b.host, &perms.allow_bind) {
            refused.push(if perms.allow_bind.is_empty() {
                format!("host path {} may not be bound: this agent allows no bindings (--allow-bind PREFIX)", b.host)
            } else {
                format!(
                    "host path {} may not be bound: it is not under an allowed prefix ({})",
                    b.host,
                    perms.allow_bind.join(", ")
                )
            });
        }
    }
    if refused.is_empty() {
        Ok(())
    } else {
        Err(refused.join("; "))
    }
}

/// Container ports to publish: the spec's, plus those the http and tcp
/// checks probe (probes go through the published loopback ports).
pub fn published_ports(t: &Template) -> Vec<u16> {
    let mut ports: Vec<u16> = t.ports.iter().map(|p| p.container).collect();
    for c in t.ready_checks.iter().chain(&t.health_checks) {
        if let Some(p) = c
            .http
            .as_ref()
            .map(|h| h.port)
            .or(c.tcp.as_ref().map(|t| t.port))
        {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
    }
    ports
}

/// The template's environment; an elected component's replicas also get
/// `BERTH_ROLE=follower`: a new container is never leader before it is ready
/// (the role file, `/run/berth/role`, follows every change after that).
fn env(t: &Template) -> BTreeMap<String, String> {
    let mut env = t.env.clone();
    if t.roles.as_ref().is_some_and(|r| r.elect) {
        env.entry("BERTH_ROLE".into())
            .or_insert_with(|| crate::services::roles::Role::Follower.as_str().into());
    }
    env
}

/// The Docker config of a new container of `t`; `volumes_from` are the
/// resolved container ids.
pub fn container_config(
    owner: &Owner,
    root: &str,
    node: &str,
    t: &Template,
    volumes_from: Vec<String>,
) -> ContainerConfig {
    let resources = t.resources.clone().unwrap_or_default();
    ContainerConfig {
        name: owner.container_name(),
        image: t.image.clone(),
        command: t.command.clone(),
        env: env(t),
        user: t.user.clone(),
        ports: published_ports(t),
        volumes_from,
        binds: t
            .bindings
            .iter()
            .map(|b| Bind {
                host: b.host.clone(),
                container: b.container.clone(),
                read_only: b.read_only,
            })
            .collect(),
        privileged: t.privileged,
        memory: resources.memory.map(|m| m.0),
        cpus: resources.cpus,
        labels: owner.labels(root, node),
        files: Vec::new(),
    }
}

/// Why a container could not be started; each maps to a condition.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    ImagePull(String),
    #[error("{0}")]
    VolumesFrom(String),
    #[error("{0}")]
    Docker(#[from] crate::docker::Error),
}

impl StartError {
    /// `(condition type, reason)` this error is reported as.
    pub fn condition(&self) -> (ConditionType, Reason) {
        use ConditionType as T;
        match self {
            StartError::Forbidden(_) => (T::Forbidden, Reason::Forbidden),
            StartError::ImagePull(_) => (T::ImagePullFailed, Reason::ImagePullFailed),
            StartError::VolumesFrom(_) => (T::StartFailed, Reason::VolumesFromMissing),
            StartError::Docker(_) => (T::StartFailed, Reason::StartFailed),
        }
    }
}

/// Performs container operations for one agent.
#[derive(Clone, Debug)]
pub struct Executor {
    pub docker: Docker,
    pub root: String,
    pub node: String,
    pub perms: Permissions,
    /// Bounds the container starts in flight across the whole agent (the
    /// `concurrency` setting): a large scale-up does not flood the engine.
    pub starts: Arc<Semaphore>,
}

/// An image made present for one wave of starts (see [`Executor::prepare`]).
pub struct Prepared<'a> {
    template: &'a Template,
    /// What the template's image reference resolves to on this node.
    pub identity: crate::docker::image::ImageIdentity,
}

impl Executor {
    pub fn new(
        docker: Docker,
        root: String,
        node: String,
        perms: Permissions,
        concurrency: usize,
    ) -> Self {
        Executor {
            docker,
            root,
            node,
            perms,
            starts: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    /// Admits `t` and makes its image present (one inspect, or a pull):
    /// once per wave of starts, not once per replica. The answer says what
    /// the image resolves to (for the revision's pin).
    pub async fn prepare<'a>(&self, t: &'a Template) -> Result<Prepared<'a>, StartError> {
        admit(t, &self.perms).map_err(StartError::Forbidden)?;
        let identity = self
            .docker
            .ensure_image(&t.image)
            .await
            .map_err(|e| match e {
                crate::docker::Error::ImagePull { message, .. } => StartError::ImagePull(message),
                e => StartError::Docker(e),
            })?;
        Ok(Prepared {
            template: t,
            identity,
        })
    }

    /// Creates and starts a container of a prepared template, waiting for
    /// a start slot first.
    pub async fn start(
        &self,
        owner: &Owner,
        prepared: &Prepared<'_>,
        volumes_from: Vec<String>,
        extras: &crate::services::node::StartExtras,
    ) -> Result<(Started, String), StartError> {
        let _slot = self.starts.acquire().await.map_err(|_| {
            StartError::Docker(crate::docker::Error::Other("the agent is stopping".into()))
        })?;
        let t = prepared.template;
        let mut config = container_config(owner, &self.root, &self.node, t, volumes_from);
        // Link variables under the template's own env: a user's explicit
        // variable of the same name wins.
        let mut env = extras.env.clone();
        env.append(&mut config.env);
        config.env = env;
        config.files = extras.files.clone();
        let started = self.docker.create_and_start(&config).await?;
        tracing::info!(container = %started.id, name = %config.name, component = %owner.key(), "started container");
        Ok((started, config.name))
    }

    /// Starts an exited container again; returns its (new) published ports.
    pub async fn restart(&self, id: &str) -> crate::docker::Result<BTreeMap<u16, u16>> {
        self.docker.start(id).await
    }

    /// Stops gracefully (termination signals over the grace period, then
    /// SIGKILL), then removes the container.
    pub async fn stop_and_remove(
        &self,
        id: &str,
        termination: &Termination,
    ) -> crate::docker::Result<()> {
        self.docker
            .stop(id, &termination.signals(), termination.grace_period())
            .await?;
        self.docker.remove(id).await
    }

    /// Stops gracefully (as [`Executor::stop_and_remove`]) and keeps the
    /// container, for a restart in place.
    pub async fn stop(&self, id: &str, termination: &Termination) -> crate::docker::Result<()> {
        self.docker
            .stop(id, &termination.signals(), termination.grace_period())
            .await
    }

    /// The container's output: the last `tail` lines (all when `None`),
    /// then, with `follow`, what it writes until it stops.
    pub fn logs(
        &self,
        id: &str,
        tail: Option<u32>,
        follow: bool,
    ) -> futures::stream::BoxStream<'static, crate::docker::Result<bytes::Bytes>> {
        self.docker.logs(id, tail, follow)
    }

    /// SIGKILL, then remove.
    pub async fn kill_and_remove(&self, id: &str) -> crate::docker::Result<()> {
        self.docker.kill(id).await?;
        self.docker.remove(id).await
    }

    pub async fn remove(&self, id: &str) -> crate::docker::Result<()> {
        self.docker.remove(id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::{Binding, Check, HttpProbe, PortSpec, Resources, TcpProbe};
    use crate::resource::quantity::ByteSize;

    fn owner() -> Owner {
        Owner {
            project: "shop".into(),
            component: "web".into(),
            revision: 3,
            hash: "abcdef0123".into(),
        }
    }

    #[test]
    fn labels_round_trip_and_foreign_containers_are_ignored() {
        let o = owner();
        let labels = o.labels("/berth", "n1");
        assert_eq!(Owner::from_labels(&labels, "/berth", "n1"), Some(o.clone()));
        assert_eq!(Owner::from_labels(&labels, "/other", "n1"), None);
        assert_eq!(Owner::from_labels(&labels, "/berth", "n2"), None);
        assert_eq!(Owner::from_labels(&BTreeMap::new(), "/berth", "n1"), None);
        assert_eq!(o.key().to_string(), "shop/web");
        let name = o.container_name();
        assert!(name.starts_with("berth-shop-web-abcdef0123-"), "{name}");
        assert_eq!(name.len(), "berth-shop-web-abcdef0123-".len() + 6);
        assert_ne!(name, o.container_name());
    }

    #[test]
    fn binds_only_under_allowed_prefixes() {
        let allow = vec!["/srv/data".to_string(), "/tmp/".to_string()];
        assert!(bind_allowed("/srv/data", &allow));
        assert!(bind_allowed("/srv/data/x/y", &allow));
        assert!(bind_allowed("/tmp/a", &allow));
        assert!(!bind_allowed("/srv/database", &allow));
        assert!(!bind_allowed("/srv/data/../../etc", &allow));
        assert!(!bind_allowed("srv/data", &allow));
        assert!(!bind_allowed("/etc", &allow));
        assert!(!bind_allowed("/etc", &[]));
        assert!(!bind_allowed("/etc", &["relative".to_string()]));
    }

    #[test]
    fn admission() {
        let mut t = Template {
            image: "x".into(),
            ..Default::default()
        };
        let none = Permissions::default();
        assert_eq!(admit(&t, &none), Ok(()));
        t.privileged = true;
        let e = admit(&t, &none).unwrap_err();
        assert!(e.contains("--allow-privileged"), "{e}");
        assert_eq!(
            admit(
                &t,
                &Permissions {
                    allow_privileged: true,
                    allow_bind: vec![]
                }
            ),
            Ok(())
        );
        t.privileged = false;
        t.bindings = vec![Binding {
            host: "/etc".into(),
            container: "/etc2".into(),
            read_only: true,
        }];
        let e = admit(&t, &none).unwrap_err();
        assert!(e.contains("allows no bindings"), "{e}");
        let some = Permissions {
            allow_privileged: false,
            allow_bind: vec!["/srv".into()],
        };
        let e = admit(&t, &some).unwrap_err();
        assert!(e.contains("/etc") && e.contains("/srv"), "{e}");
        t.bindings[0].host = "/srv/x".into();
        assert_eq!(admit(&t, &some), Ok(()));
    }

    #[test]
    fn config_from_template() {
        let t = Template {
            image: "bench/web:1".into(),
            command: vec!["httpd".into()],
            env: BTreeMap::from([("A".into(), "b".into())]),
            user: Some("1000".into()),
            ports: vec![PortSpec {
                name: None,
                container: 8080,
                external: Some(18080),
                ..Default::default()
            }],
            bindings: vec![Binding {
                host: "/srv/x".into(),
                container: "/x".into(),
                read_only: true,
            }],
            resources: Some(Resources {
                memory: Some(ByteSize(64 << 20)),
                cpus: Some(0.5),
            }),
            ..Default::default()
        };
        let c = container_config(&owner(), "/berth", "n1", &t, vec!["cid".into()]);
        assert_eq!(c.image, "bench/web:1");
        assert_eq!(c.ports, vec![8080]);
        let mut t = t;
        t.ready_checks = vec![Check {
            http: Some(HttpProbe {
                port: 9090,
                path: "/".into(),
            }),
            ..Default::default()
        }];
        t.health_checks = vec![Check {
            tcp: Some(TcpProbe { port: 8080 }),
            ..Default::default()
        }];
        assert_eq!(published_ports(&t), vec![8080, 9090]);
        assert_eq!(c.volumes_from, vec!["cid".to_string()]);
        assert_eq!(
            c.binds,
            vec![Bind {
                host: "/srv/x".into(),
                container: "/x".into(),
                read_only: true
            }]
        );
        assert_eq!(c.memory, Some(64 << 20));
        assert_eq!(c.cpus, Some(0.5));
        assert_eq!(c.user.as_deref(), Some("1000"));
        assert_eq!(
            c.labels.get(LABEL_HASH).map(String::as_str),
            Some("abcdef0123")
        );
        assert_eq!(c.labels.get(LABEL_REVISION).map(String::as_str), Some("3"));
        assert_eq!(c.labels.get(LABEL_NODE).map(String::as_str), Some("n1"));
        assert_eq!(c.labels.get(LABEL_ROOT).map(String::as_str), Some("/berth"));
    }
}
