//! Files copied into a container (Docker's archive endpoint takes a tar),
//! and the container's main process (whose network namespace links use).

use bollard::query_parameters::{InspectContainerOptions, UploadToContainerOptionsBuilder};

use super::tar::Tar;
use super::{Docker, Error, Result, CALL_TIMEOUT};

/// One file written into a container: before its start (in
/// [`super::container::ContainerConfig::files`]) or while it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileInContainer {
    /// Absolute path inside the container; missing parents are created.
    pub path: String,
    pub content: Vec<u8>,
}

impl Docker {
    /// Writes `file` into container `id` (created or running), mode 0644.
    /// Docker unpacks the tar in place: a reader may see the file being
    /// replaced, but never a mix of two versions once the call returns.
    pub async fn put_file(&self, id: &str, file: &FileInContainer) -> Result<()> {
        let rel = file.path.trim_start_matches('/');
        if rel.is_empty() {
            return Err(Error::Other(format!("{:?} is not a file path", file.path)));
        }
        let mut tar = Tar::default();
        // The file alone, no directory entries: Docker's extraction creates
        // missing parents (0755) itself, and a directory entry would reset
        // the mode of one that exists (`/tmp` is 1777).
        tar.file(rel, 0o644, &file.content);
        let options = UploadToContainerOptionsBuilder::new().path("/").build();
        self.call(
            "copy a file into container",
            id,
            CALL_TIMEOUT,
            self.inner.upload_to_container(
                id,
                Some(options),
                bollard::body_full(tar.finish().into()),
            ),
        )
        .await
    }

    /// The host pid of the container's main process; `None` when it is
    /// not running.
    pub async fn pid(&self, id: &str) -> Result<Option<u32>> {
        let c = self
            .call(
                "inspect container",
                id,
                CALL_TIMEOUT,
                self.inner
                    .inspect_container(id, None::<InspectContainerOptions>),
            )
            .await?;
        Ok(c.state
            .and_then(|s| s.pid)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0))
    }
}
