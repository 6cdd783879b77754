//! Containers: create + start, list by label, inspect, stop, kill, remove.

use std::collections::{BTreeMap, HashMap};
use std::pin::pin;
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, HostConfig, PortBinding, PortMap, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, KillContainerOptions, ListContainersOptions,
    RemoveContainerOptions, WaitContainerOptions,
};
use futures::StreamExt;

use super::{Docker, Error, Result, CALL_TIMEOUT};
use crate::resource::quantity::Signal;

/// How long `stop` waits for the exit after SIGKILL before giving up.
const KILL_WAIT: Duration = Duration::from_secs(30);

/// Everything needed to create one container.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ContainerConfig {
    /// Container name (Docker requires it unique per engine); empty: Docker picks one.
    pub name: String,
    pub image: String,
    /// Command and arguments; the image's default when empty.
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    /// Container ports (tcp), each published on 127.0.0.1 with an ephemeral host port.
    pub ports: Vec<u16>,
    /// Containers (ids or names) whose volumes this one mounts.
    pub volumes_from: Vec<String>,
    pub binds: Vec<Bind>,
    pub privileged: bool,
    /// Memory limit in bytes.
    pub memory: Option<u64>,
    /// CPU limit in cores (Docker's NanoCpus).
    pub cpus: Option<f64>,
    pub labels: BTreeMap<String, String>,
    /// Written into the container after its create, before its start (so
    /// the process finds them: rendered configs).
    pub files: Vec<super::files::FileInContainer>,
}

/// A host path bound into the container.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bind {
    pub host: String,
    pub container: String,
    pub read_only: bool,
}

/// A created and started container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Started {
    pub id: String,
    /// The image ID (`sha256:...`) Docker created it from.
    pub image_id: String,
    /// Container port -> host port on 127.0.0.1.
    pub ports: BTreeMap<u16, u16>,
}

/// One entry of `list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSummary {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub image: String,
    /// The image ID (`sha256:...`) it was created from.
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    /// Docker's state: `created`, `running`, `exited`, `dead`, ...
    pub state: String,
    /// Creation time, Unix seconds.
    pub created: i64,
}

/// What `inspect` tells about one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerDetails {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The image reference the container was created from.
    pub image: String,
    /// The image ID (`sha256:...`) that reference resolved to at create.
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    /// Docker's state: `created`, `running`, `exited`, `dead`, ...
    pub state: String,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    /// Docker's error for a container that failed to start.
    pub error: Option<String>,
    /// RFC 3339, `None` when never started.
    pub started_at: Option<String>,
    /// RFC 3339, `None` when it never finished.
    pub finished_at: Option<String>,
    /// Container port -> host port on 127.0.0.1 (empty once stopped).
    pub ports: BTreeMap<u16, u16>,
    pub memory: Option<i64>,
    pub nano_cpus: Option<i64>,
    pub privileged: bool,
}

impl ContainerConfig {
    fn to_body(&self) -> ContainerCreateBody {
        let key = |p: &u16| format!("{p}/tcp");
        let exposed: Vec<String> = self.ports.iter().map(key).collect();
        let bindings: PortMap = self
            .ports
            .iter()
            .map(|p| {
                let b = PortBinding {
                    host_ip: Some("127.0.0.1".into()),
                    host_port: Some(String::new()),
                };
                (key(p), Some(vec![b]))
            })
            .collect();
        let binds: Vec<String> = self
            .binds
            .iter()
            .map(|b| {
                format!(
                    "{}:{}{}",
                    b.host,
                    b.container,
                    if b.read_only { ":ro" } else { "" }
                )
            })
            .collect();
        let host_config = HostConfig {
            port_bindings: (!bindings.is_empty()).then_some(bindings),
            binds: (!binds.is_empty()).then_some(binds),
            volumes_from: (!self.volumes_from.is_empty()).then(|| self.volumes_from.clone()),
            privileged: Some(self.privileged),
            memory: self.memory.map(|m| m.min(i64::MAX as u64) as i64),
            nano_cpus: self.cpus.map(|c| (c * 1e9).round() as i64),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::NO),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: (!self.command.is_empty()).then(|| self.command.clone()),
            env: (!self.env.is_empty())
                .then(|| self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: self.user.clone(),
            exposed_ports: (!exposed.is_empty()).then_some(exposed),
            labels: (!self.labels.is_empty()).then(|| {
                self.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            }),
            host_config: Some(host_config),
            ..Default::default()
        }
    }
}

/// Reads `{"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]}`.
fn published_ports(map: Option<&PortMap>) -> BTreeMap<u16, u16> {
    let mut out = BTreeMap::new();
    for (key, bindings) in map.into_iter().flatten() {
        let Some(port) = key.strip_suffix("/tcp").and_then(|p| p.parse::<u16>().ok()) else {
            continue;
        };
        let host = bindings.iter().flatten().find_map(|b| {
            let loopback = matches!(b.host_ip.as_deref(), Some("127.0.0.1") | Some("") | None);
            b.host_port
                .as_deref()
                .and_then(|p| p.parse::<u16>().ok())
                .filter(|_| loopback)
        });
        if let Some(h) = host {
            out.insert(port, h);
        }
    }
    out
}

fn to_btree(m: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    m.unwrap_or_default().into_iter().collect()
}

/// Docker writes `0001-01-01T00:00:00Z` for "never".
fn real_time(t: Option<String>) -> Option<String> {
    t.filter(|s| !s.is_empty() && !s.starts_with("0001-"))
}

impl Docker {
    /// Creates and starts a container, then reads its published ports. If the
    /// start fails, the created container is removed again.
    pub async fn create_and_start(&self, config: &ContainerConfig) -> Result<Started> {
        let options = CreateContainerOptions {
            name: (!config.name.is_empty()).then(|| config.name.clone()),
            ..Default::default()
        };
        let subject = if config.name.is_empty() {
            config.image.as_str()
        } else {
            config.name.as_str()
        };
        let created = self
            .call(
                "create container",
                subject,
                CALL_TIMEOUT,
                self.inner.create_container(Some(options), config.to_body()),
            )
            .await
            .map_err(|e| match e {
                // A 404 on create is about the image, not the container.
                Error::NotFound(_) => Error::NotFound(format!("image {}", config.image)),
                e => e,
            })?;
        let id = created.id;
        let started = async {
            for f in &config.files {
                self.put_file(&id, f).await?;
            }
            self.call(
                "start container",
                &id,
                CALL_TIMEOUT,
                self.inner.start_container(&id, None),
            )
            .await
        };
        if let Err(e) = started.await {
            if let Err(re) = self.remove(&id).await {
                tracing::warn!(container = %id, error = %re, "removing a container that failed to start");
            }
            return Err(e);
        }
        let details = self.inspect(&id).await?;
        Ok(Started {
            id,
            image_id: details.image_id,
            ports: details.ports,
        })
    }

    /// Starts an existing (stopped) container again and returns its published
    /// ports, which may differ from the last run's (ephemeral ports are
    /// allocated anew). Starting a running container is `Ok`.
    pub async fn start(&self, id: &str) -> Result<BTreeMap<u16, u16>> {
        self.call(
            "start container",
            id,
            CALL_TIMEOUT,
            self.inner.start_container(id, None),
        )
        .await?;
        Ok(self.inspect(id).await?.ports)
    }

    /// Containers (running or not) carrying all the given labels.
    pub async fn list(&self, label_filters: &[(String, String)]) -> Result<Vec<ContainerSummary>> {
        let labels: Vec<String> = label_filters
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut filters = HashMap::new();
        if !labels.is_empty() {
            filters.insert("label".to_string(), labels);
        }
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let list = self
            .call(
                "list containers",
                "",
                CALL_TIMEOUT,
                self.inner.list_containers(Some(options)),
            )
            .await?;
        Ok(list
            .into_iter()
            .map(|c| {
                let state = c.state.map(|s| s.to_string()).unwrap_or_default();
                ContainerSummary {
                    id: c.id.unwrap_or_default(),
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    image: c.image.unwrap_or_default(),
                    image_id: c.image_id.unwrap_or_default(),
                    labels: to_btree(c.labels),
                    running: state == "running",
                    state,
                    created: c.created.unwrap_or_default(),
                }
            })
            .collect())
    }

    /// One container's state; [`Error::NotFound`] when it does not exist.
    pub async fn inspect(&self, id: &str) -> Result<ContainerDetails> {
        let c = self
            .call(
                "inspect container",
                id,
                CALL_TIMEOUT,
                self.inner
                    .inspect_container(id, None::<InspectContainerOptions>),
            )
            .await?;
        let state = c.state.unwrap_or_default();
        let config = c.config.unwrap_or_default();
        let host = c.host_config.unwrap_or_default();
        let exited = state
            .finished_at
            .as_deref()
            .is_some_and(|t| !t.starts_with("0001-"));
        Ok(ContainerDetails {
            id: c.id.unwrap_or_default(),
            name: c
                .name
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            image_id: c.image.unwrap_or_default(),
            labels: to_btree(config.labels),
            running: state.running.unwrap_or(false),
            state: state.status.map(|s| s.to_string()).unwrap_or_default(),
            exit_code: if state.running == Some(true) || !exited {
                None
            } else {
                state.exit_code
            },
            oom_killed: state.oom_killed.unwrap_or(false),
            error: state.error.filter(|e| !e.is_empty()),
            started_at: real_time(state.started_at),
            finished_at: real_time(state.finished_at),
            ports: published_ports(c.network_settings.and_then(|n| n.ports).as_ref()),
            memory: host.memory.filter(|m| *m > 0),
            nano_cpus: host.nano_cpus.filter(|n| *n > 0),
            privileged: host.privileged.unwrap_or(false),
        })
    }

    /// Sends one signal. `Ok(false)` when the container is not running or gone.
    pub async fn signal(&self, id: &str, signal: Signal) -> Result<bool> {
        let options = KillContainerOptions {
            signal: signal.name().to_string(),
        };
        match self
            .call(
                "signal container",
                id,
                CALL_TIMEOUT,
                self.inner.kill_container(id, Some(options)),
            )
            .await
        {
            Ok(()) => Ok(true),
            // 409: "Container ... is not running"
            Err(Error::NotFound(_)) | Err(Error::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// SIGKILL now. A stopped or missing container is `Ok`.
    pub async fn kill(&self, id: &str) -> Result<()> {
        self.signal(id, Signal::KILL).await.map(|_| ())
    }

    /// Stops a container gracefully: sends `signals` in order, spread evenly
    /// over `grace`, returning as soon as the container exits; SIGKILL once
    /// `grace` is over. A stopped or missing container is `Ok`.
    pub async fn stop(&self, id: &str, signals: &[Signal], grace: Duration) -> Result<()> {
        // One wait request for the whole stop: it answers when the container
        // is not running (at once when it already is not).
        let mut exited = pin!(self.wait_exit(id));
        let step = if signals.is_empty() {
            grace
        } else {
            grace / signals.len() as u32
        };
        for &sig in signals {
            if sig == Signal::KILL {
                break;
            }
            if !self.signal(id, sig).await? {
                return Ok(());
            }
            tracing::debug!(container = %id, signal = %sig, "sent stop signal");
            if let Ok(r) = tokio::time::timeout(step, exited.as_mut()).await {
                return r;
            }
        }
        if signals.is_empty() && !grace.is_zero() {
            if let Ok(r) = tokio::time::timeout(grace, exited.as_mut()).await {
                return r;
            }
        }
        if !self.signal(id, Signal::KILL).await? {
            return Ok(());
        }
        tracing::debug!(container = %id, "grace period over: sent SIGKILL");
        match tokio::time::timeout(KILL_WAIT, exited.as_mut()).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                what: format!("waiting for {id} to exit after SIGKILL"),
                after: KILL_WAIT,
            }),
        }
    }

    /// Waits until the container is not running (or gone).
    pub async fn wait_exit(&self, id: &str) -> Result<()> {
        let options = WaitContainerOptions {
            condition: "not-running".into(),
        };
        let mut stream = pin!(self.inner.wait_container(id, Some(options)));
        match stream.next().await {
            None | Some(Ok(_)) => Ok(()),
            // bollard reports a non-zero exit code as an error.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { .. })) => Ok(()),
            Some(Err(e)) => match Error::from_bollard(e, &self.host, id) {
                Error::NotFound(_) => Ok(()),
                e => Err(e),
            },
        }
    }

    /// Removes a container, killing it first if it runs. Missing is `Ok`.
    pub async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptions {
            force: true,
            v: true,
            ..Default::default()
        };
        match self
            .call(
                "remove container",
                id,
                CALL_TIMEOUT,
                self.inner.remove_container(id, Some(options)),
            )
            .await
        {
            Ok(()) | Err(Error::NotFound(_)) => Ok(()),
            // "removal of container ... is already in progress"
            Err(Error::Conflict(m)) if m.contains("already in progress") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_exposes_and_publishes_on_loopback() {
        let c = ContainerConfig {
            image: "x".into(),
            ports: vec![8080],
            memory: Some(64 << 20),
            cpus: Some(0.5),
            binds: vec![Bind {
                host: "/a".into(),
                container: "/b".into(),
                read_only: true,
            }],
            ..Default::default()
        };
        let b = c.to_body();
        assert_eq!(b.exposed_ports, Some(vec!["8080/tcp".to_string()]));
        let hc = b.host_config.unwrap_or_default();
        let pb = hc.port_bindings.unwrap_or_default();
        let bind = pb.get("8080/tcp").cloned().flatten().unwrap_or_default();
        assert_eq!(bind[0].host_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(hc.nano_cpus, Some(500_000_000));
        assert_eq!(hc.memory, Some(64 << 20));
        assert_eq!(hc.binds, Some(vec!["/a:/b:ro".to_string()]));
        assert_eq!(
            hc.restart_policy.and_then(|r| r.name),
            Some(RestartPolicyNameEnum::NO)
        );
    }

    #[test]
    fn reads_published_ports() {
        let mut m = PortMap::new();
        m.insert(
            "8080/tcp".into(),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("49153".into()),
            }]),
        );
        m.insert("9090/tcp".into(), None);
        m.insert("53/udp".into(), Some(vec![]));
        assert_eq!(published_ports(Some(&m)), BTreeMap::from([(8080, 49153)]));
    }
}
