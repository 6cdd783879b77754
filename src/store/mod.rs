//! The etcd store: connecting (TLS, auth, timeouts), the key layout, reads,
//! and compare-and-swap writes of specs and revisions.
//!
//! Invariant: spec keys are written only by the CLI paths in this module
//! (`apply`, `delete`); status keys only by controllers. Every write is one
//! etcd transaction guarded by a compare on the keys it read.

mod apply;
pub mod call;
mod endpoints;
mod keys;
mod node;
pub mod ports;
mod read;

pub use apply::{
    comparable, ApplyOptions, ApplyOutcome, ApplyResult, Change, HASH_ANNOTATION,
    REVISION_ANNOTATION,
};
pub use keys::{prefix_end, Keys};
pub use node::NodeState;
pub use read::{container_rows, Stored, ROLE_ANNOTATION};

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

/// Default etcd endpoint and key root.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";
pub const DEFAULT_ROOT: &str = "/berth";

/// How to reach etcd. Built from `--etcd`, `--etcd-cacert`, ... or the
/// matching `BERTH_*` environment variables.
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub endpoints: Vec<String>,
    pub root: String,
    pub ca_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub user: Option<String>,
    /// Never printed: `Debug` of the config is used in logs.
    pub password: Option<Password>,
    /// Bound on connecting and on every request.
    pub timeout: Duration,
}

/// A password that never shows in `Debug` output.
#[derive(Clone)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            endpoints: vec![DEFAULT_ENDPOINT.into()],
            root: DEFAULT_ROOT.into(),
            ca_cert: None,
            cert: None,
            key: None,
            user: None,
            password: None,
            timeout: Duration::from_secs(5),
        }
    }
}

impl StoreConfig {
    pub fn with_endpoint(endpoint: impl Into<String>, root: impl Into<String>) -> Self {
        StoreConfig {
            endpoints: vec![endpoint.into()],
            root: root.into(),
            ..Default::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach etcd at {endpoints}: {cause}")]
    Unreachable { endpoints: String, cause: String },
    #[error("etcd at {endpoints}: {source}")]
    Etcd {
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },
    #[error("invalid etcd configuration: {0}")]
    Config(String),
    /// A lost race or a stale `resourceVersion`; the message says which object.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("stored value at {key} is not valid: {cause}")]
    Decode { key: String, cause: String },
    #[error("{0}")]
    Invalid(String),
    /// The `index`th object names a project that exists neither in etcd nor
    /// in the input.
    /// Two components would own one external port.
    #[error(transparent)]
    PortConflict(#[from] ports::PortConflict),
    #[error("metadata.project: project {project:?} does not exist: apply a Project named {project:?} first (or in the same input)")]
    MissingProject { index: usize, project: String },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A connected store: an etcd client plus the key layout of one root.
#[derive(Clone)]
pub struct Store {
    client: Client,
    keys: Keys,
    endpoints: String,
    timeout: Duration,
}

impl Store {
    /// Connects lazily: an unreachable etcd shows up as
    /// [`StoreError::Unreachable`] on the first request, within `cfg.timeout`.
    pub async fn connect(cfg: &StoreConfig) -> Result<Store> {
        let endpoints = cfg.endpoints.join(",");
        if cfg.endpoints.is_empty() || cfg.endpoints.iter().any(|e| e.trim().is_empty()) {
            return Err(StoreError::Config("no etcd endpoint given (--etcd)".into()));
        }
        // No per-request timeout on the client: it would also end long-lived
        // watch streams. Unary requests are bounded in `Store::call` instead.
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(cfg.timeout)
            .with_keep_alive(Duration::from_secs(10), cfg.timeout);
        if let Some(user) = &cfg.user {
            let password = cfg
                .password
                .as_ref()
                .map(|p| p.0.clone())
                .unwrap_or_default();
            opts = opts.with_user(user.clone(), password);
        }
        if cfg.ca_cert.is_some() || cfg.cert.is_some() {
            opts = opts.with_tls(tls_options(cfg)?);
        }
        let client = match tokio::time::timeout(cfg.timeout, connect_client(cfg, opts)).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(unreachable(&endpoints, e)),
            Err(_) => {
                return Err(StoreError::Unreachable {
                    endpoints,
                    cause: format!("no answer within {:?}", cfg.timeout),
                })
            }
        };
        Ok(Store {
            client,
            keys: Keys::new(&cfg.root),
            endpoints,
            timeout: cfg.timeout,
        })
    }

    /// Wraps an existing client (agents, tests).
    pub fn from_client(client: Client, root: &str) -> Store {
        Store {
            client,
            keys: Keys::new(root),
            endpoints: "<client>".into(),
            timeout: Duration::from_secs(5),
        }
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn endpoints(&self) -> &str {
        &self.endpoints
    }

    /// Runs one etcd request under the store's timeout, mapping errors so
    /// they name the endpoints. `op` makes the request; it is made again
    /// while etcd answers that it is between leaders (a member lost, a new
    /// leader being elected: about a second), until the timeout. Retrying is
    /// safe: every berth write is a compare-and-swap, so a write that did
    /// land the first time fails its compare and the caller re-reads.
    pub(crate) async fn call<T, F, Fut>(&self, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match tokio::time::timeout_at(deadline, op()).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if between_leaders(&e) && tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "etcd is between leaders; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(Err(e)) => return Err(self.map_err(e)),
                Err(_) => {
                    return Err(StoreError::Unreachable {
                        endpoints: self.endpoints.clone(),
                        cause: format!("no answer within {:?}", self.timeout),
                    })
                }
            }
        }
    }

    /// One transaction, through [`Store::call`].
    pub(crate) async fn txn(&self, txn: etcd_client::Txn) -> Result<etcd_client::TxnResponse> {
        let kv = self.client.kv_client();
        self.call(|| {
            let (mut kv, txn) = (kv.clone(), txn.clone());
            async move { kv.txn(txn).await }
        })
        .await
    }

    /// One key, through [`Store::call`].
    pub(crate) async fn get_key(&self, key: String) -> Result<etcd_client::GetResponse> {
        let kv = self.client.kv_client();
        self.call(|| {
            let (mut kv, key) = (kv.clone(), key.clone());
            async move { kv.get(key, None).await }
        })
        .await
    }

    /// An etcd error as berth reports it (one line, naming the endpoints).
    pub fn map_err(&self, e: etcd_client::Error) -> StoreError {
        match &e {
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => {
                unreachable(&self.endpoints, e)
            }
            etcd_client::Error::GRpcStatus(s)
                if matches!(
                    s.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ) =>
            {
                unreachable(&self.endpoints, e)
            }
            _ => StoreError::Etcd {
                endpoints: self.endpoints.clone(),
                source: e,
            },
        }
    }
}

fn unreachable(endpoints: &str, e: etcd_client::Error) -> StoreError {
    // tonic wraps the useful part ("Connection refused") deep in its source
    // chain; report the innermost cause, on one line.
    let mut cause = e.to_string();
    let mut src: Option<&(dyn std::error::Error + 'static)> = match &e {
        etcd_client::Error::GRpcStatus(status) => {
            cause = status.message().to_string();
            std::error::Error::source(status)
        }
        other => std::error::Error::source(other),
    };
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    StoreError::Unreachable {
        endpoints: endpoints.into(),
        cause: cause.replace('\n', " "),
    }
}

/// A client of every configured endpoint. With several, the balancer holds
/// only the members that answer, re-checked for the client's whole life
/// (see [`endpoints`]): etcd-client fails the requests that land on a dead
/// member (etcd-client issue 39), yet a member down at start must be used
/// once it is back.
async fn connect_client(
    cfg: &StoreConfig,
    opts: ConnectOptions,
) -> Result<Client, etcd_client::Error> {
    if cfg.endpoints.len() < 2 {
        return Client::connect(&cfg.endpoints, Some(opts)).await;
    }
    let balanced = endpoints::Balanced {
        expected: cfg.endpoints.len(),
        probe_timeout: cfg.timeout.min(Duration::from_secs(1)),
    };
    Client::connect_with_balanced_channel(&cfg.endpoints, Some(opts), balanced).await
}

fn tls_options(cfg: &StoreConfig) -> Result<TlsOptions> {
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p)
            .map_err(|e| StoreError::Config(format!("cannot read {what} {}: {e}", p.display())))
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = &cfg.ca_cert {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?));
    }
    match (&cfg.cert, &cfg.key) {
        (Some(c), Some(k)) => {
            tls = tls.identity(Identity::from_pem(
                read(c, "client certificate")?,
                read(k, "client key")?,
            ))
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::Config(
                "--etcd-cert and --etcd-key must be given together".into(),
            ))
        }
    }
    Ok(tls)
}

/// Whether etcd refused a request because its cluster is electing a leader
/// ("leader changed", "no leader"): worth making again in a moment.
fn between_leaders(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            let m = s.message();
            s.code() == tonic::Code::Unavailable
                && (m.contains("leader changed") || m.contains("no leader"))
        }
        _ => false,
    }
}
