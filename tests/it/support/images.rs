//! The Docker engine and test images, with no registry.
//!
//! - [`docker`]: connects to the engine; a missing engine fails the test
//!   (locally and in CI alike: never a silent skip).
//! - [`ensure_test_images`]: builds `berth-test/web:1` and `berth-test/web:2`
//!   once per process from the host's static busybox (`docker import` of a
//!   tarball made in memory). Both serve `/www` with `httpd -f -p 8080 -h /www`;
//!   `/www/index.html` says `web 1` / `web 2`. An image already built with the
//!   same content is kept (one inspect), so parallel test processes are cheap
//!   and safe.
//! - [`Containers`]: a guard that removes every container carrying its unique
//!   label when dropped, even when the test panics.

use std::time::Duration;

use berth::docker::{BusyboxImage, Docker};
use tokio::sync::OnceCell;

pub const WEB1: &str = "berth-test/web:1";
pub const WEB2: &str = "berth-test/web:2";
/// The port the web images listen on.
pub const WEB_PORT: u16 = 8080;
/// The label key [`Containers`] puts on test containers.
pub const TEST_LABEL: &str = "berth.test";

static BUILT: OnceCell<()> = OnceCell::const_new();

/// Connects to the engine (`DOCKER_HOST` or the local socket). Panics with a
/// clear message when no engine answers: Docker is required.
pub async fn docker() -> Docker {
    match Docker::connect(None).await {
        Ok(d) => d,
        Err(e) => panic!(
            "these tests need a Docker engine ({e}); start one (e.g. `dockerd &`) or set DOCKER_HOST{}",
            if std::env::var("CI").is_ok_and(|v| v == "true") { " [CI]" } else { "" }
        ),
    }
}

/// Builds `berth-test/web:1` and `berth-test/web:2` once per process.
pub async fn ensure_test_images() -> Result<(), berth::docker::Error> {
    BUILT
        .get_or_try_init(|| async {
            let d = Docker::connect(None).await?;
            build_web_image(&d, WEB1, "web 1").await?;
            build_web_image(&d, WEB2, "web 2").await?;
            Ok(())
        })
        .await
        .map(|_| ())
}

/// Builds a busybox httpd image `tag` whose `/www/index.html` says `body`
/// (what `hack/build-example-image.sh` makes with the docker CLI). Returns
/// the image id.
pub async fn build_web_image(
    docker: &Docker,
    tag: &str,
    body: &str,
) -> Result<String, berth::docker::Error> {
    docker
        .build_busybox_image(&BusyboxImage::web(tag, body))
        .await
}

/// A name unique to this test run: `prefix-<8 hex>`.
pub fn unique(prefix: &str) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &id[..8])
}

/// Removes, when dropped, every container labelled `berth.test=<value>`.
pub struct Containers {
    pub value: String,
}

impl Containers {
    pub fn new(prefix: &str) -> Containers {
        Containers {
            value: unique(prefix),
        }
    }

    /// The label to put on every container of the test.
    pub fn label(&self) -> (String, String) {
        (TEST_LABEL.to_string(), self.value.clone())
    }

    /// Labels map with the test label (plus `extra`).
    pub fn labels(&self, extra: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
        let mut m: std::collections::BTreeMap<String, String> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.insert(TEST_LABEL.to_string(), self.value.clone());
        m
    }

    /// Removes the labelled containers now.
    pub async fn clean(&self) {
        remove_labelled(&self.value).await;
    }
}

async fn remove_labelled(value: &str) {
    let Ok(d) = Docker::connect(None).await else {
        return;
    };
    let filter = [(TEST_LABEL.to_string(), value.to_string())];
    if let Ok(list) = d.list(&filter).await {
        for c in list {
            let _ = d.remove(&c.id).await;
        }
    }
}

/// Runs a clean-up from `Drop`, which may run inside a runtime (or while
/// panicking): on a thread of its own with a runtime of its own, at most 60 s.
pub fn clean_up_in_thread<F>(f: impl FnOnce() -> F + Send + 'static)
where
    F: std::future::Future<Output = ()>,
{
    let cleanup = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(60), f()).await;
        });
    });
    let _ = cleanup.join();
}

impl Drop for Containers {
    fn drop(&mut self) {
        let value = self.value.clone();
        clean_up_in_thread(move || async move { remove_labelled(&value).await });
    }
}

/// Removes, when dropped, every container an agent made for `node` under `root`.
pub struct NodeContainers {
    pub root: String,
    pub node: String,
}

async fn remove_node_containers(root: &str, node: &str) {
    let Ok(d) = Docker::connect(None).await else {
        return;
    };
    let filter = berth::agent::executor::node_filters(root, node);
    if let Ok(list) = d.list(&filter).await {
        for c in list {
            let _ = d.remove(&c.id).await;
        }
    }
}

impl NodeContainers {
    /// The containers of the node right now.
    pub async fn list(&self) -> Vec<berth::docker::ContainerSummary> {
        let d = docker().await;
        d.list(&berth::agent::executor::node_filters(
            &self.root, &self.node,
        ))
        .await
        .unwrap_or_default()
    }
}

impl Drop for NodeContainers {
    fn drop(&mut self) {
        let (root, node) = (self.root.clone(), self.node.clone());
        clean_up_in_thread(move || async move { remove_node_containers(&root, &node).await });
    }
}
