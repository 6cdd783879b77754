//! Building small images with no registry: a tarball made in memory from the
//! host's static busybox (Debian's `busybox-static`), imported with
//! `/images/create?fromSrc=-` (`docker import`). Used by the tests and by
//! `berth up`'s example (`hack/build-example-image.sh` does the same with the
//! docker CLI).
//!
//! The image carries a `berth.image.content` label, a hash of everything that
//! went into it: building an image that is already there with the same
//! content is one inspect. Building the same tag concurrently is safe (each
//! import is atomic; the tag ends on one of the identical images).

use std::collections::BTreeMap;
use std::path::PathBuf;

use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::image::pull_reference;
use super::tar::Tar;
use super::{Docker, Error, Result, CALL_TIMEOUT};

/// The label holding the content hash of a built image.
pub const CONTENT_LABEL: &str = "berth.image.content";

/// Where busybox is looked for (`BERTH_BUSYBOX` first).
const BUSYBOX_PATHS: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// Applets linked when `busybox --list` cannot be run.
const FALLBACK_APPLETS: [&str; 24] = [
    "sh", "ash", "cat", "echo", "env", "false", "httpd", "id", "kill", "ls", "mkdir", "nc", "ps",
    "rm", "sleep", "test", "touch", "true", "wget", "grep", "sed", "head", "printf", "[",
];

/// A busybox image: `/bin/busybox` with every applet linked in `/bin`, a few
/// files, and a default command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BusyboxImage {
    /// `repo:tag`.
    pub tag: String,
    /// Absolute path in the image -> content.
    pub files: BTreeMap<String, Vec<u8>>,
    /// The image's default command.
    pub cmd: Vec<String>,
}

impl BusyboxImage {
    /// An image whose default command serves `/www` (holding `index.html`
    /// with `body`) on port 8080: `httpd -f -p 8080 -h /www`.
    pub fn web(tag: &str, body: &str) -> BusyboxImage {
        let files = BTreeMap::from([(
            "/www/index.html".to_string(),
            format!("{body}\n").into_bytes(),
        )]);
        let cmd = ["/bin/httpd", "-f", "-p", "8080", "-h", "/www"]
            .map(String::from)
            .to_vec();
        BusyboxImage {
            tag: tag.to_string(),
            files,
            cmd,
        }
    }
}

/// Path of the host's static busybox.
pub fn busybox_path() -> Result<PathBuf> {
    let candidates = std::env::var("BERTH_BUSYBOX")
        .ok()
        .into_iter()
        .chain(BUSYBOX_PATHS.map(String::from));
    for p in candidates {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::Other(format!(
        "no static busybox found (looked at $BERTH_BUSYBOX, {}): install Debian's busybox-static",
        BUSYBOX_PATHS.join(", ")
    )))
}

async fn applets(busybox: &PathBuf) -> Vec<String> {
    let out = tokio::process::Command::new(busybox)
        .arg("--list")
        .output()
        .await;
    match out {
        Ok(o) if o.status.success() => {
            let list: Vec<String> = String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty() && !l.contains('/') && l != "busybox")
                .collect();
            if list.is_empty() {
                FALLBACK_APPLETS.map(String::from).to_vec()
            } else {
                list
            }
        }
        _ => FALLBACK_APPLETS.map(String::from).to_vec(),
    }
}

impl Docker {
    /// Builds (imports) `image` unless an image with that tag and the same
    /// content exists. Returns the image id.
    pub async fn build_busybox_image(&self, image: &BusyboxImage) -> Result<String> {
        let busybox_path = busybox_path()?;
        let busybox = tokio::fs::read(&busybox_path)
            .await
            .map_err(|e| Error::Other(format!("reading {}: {e}", busybox_path.display())))?;
        let applets = applets(&busybox_path).await;
        let tar = rootfs_tar(&busybox, &applets, &image.files);
        let cmd = serde_json::to_string(&image.cmd).map_err(|e| Error::Other(e.to_string()))?;
        let mut hasher = Sha256::new();
        hasher.update(&tar);
        hasher.update(cmd.as_bytes());
        let hash: String = hasher
            .finalize()
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect();

        if let Ok(existing) = self.inner.inspect_image(&image.tag).await {
            let label = existing
                .config
                .and_then(|c| c.labels)
                .and_then(|l| l.get(CONTENT_LABEL).cloned());
            if label.as_deref() == Some(hash.as_str()) {
                return Ok(existing.id.unwrap_or_default());
            }
        }

        let (repo, tag) = pull_reference(&image.tag);
        let options = CreateImageOptions {
            from_src: Some("-".into()),
            repo: Some(repo),
            tag: (!tag.is_empty()).then_some(tag),
            changes: vec![
                format!("CMD {cmd}"),
                "ENV PATH=/bin:/sbin:/usr/bin:/usr/sbin".into(),
                format!("LABEL {CONTENT_LABEL}={hash}"),
            ],
            ..Default::default()
        };
        let mut stream =
            self.inner
                .create_image(Some(options), Some(bollard::body_full(tar.into())), None);
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    if let Some(detail) = info.error_detail {
                        return Err(Error::Other(format!(
                            "importing {}: {}",
                            image.tag,
                            detail.message.unwrap_or_default()
                        )));
                    }
                }
                Err(e) => {
                    return Err(Error::Other(format!(
                        "importing {}: {}",
                        image.tag,
                        Error::from_bollard(e, &self.host, &image.tag)
                    )))
                }
            }
        }
        let built = self
            .call(
                "inspect image",
                &image.tag,
                CALL_TIMEOUT,
                self.inner.inspect_image(&image.tag),
            )
            .await?;
        Ok(built.id.unwrap_or_default())
    }
}

/// The image's root filesystem as an uncompressed tar (deterministic).
fn rootfs_tar(busybox: &[u8], applets: &[String], files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut t = Tar::default();
    let mut dirs_done = std::collections::BTreeSet::new();
    for dir in [
        "bin", "etc", "tmp", "www", "root", "var", "proc", "sys", "dev",
    ] {
        t.dir(dir, if dir == "tmp" { 0o1777 } else { 0o755 });
        dirs_done.insert(dir.to_string());
    }
    t.file("bin/busybox", 0o755, busybox);
    for a in applets {
        t.symlink(&format!("bin/{a}"), "busybox");
    }
    t.file(
        "etc/passwd",
        0o644,
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    );
    t.file("etc/group", 0o644, b"root:x:0:\nnogroup:x:65534:\n");
    for (path, content) in files {
        let rel = path.trim_start_matches('/');
        // Parent directories of the file, once each.
        let mut parent = String::new();
        for part in rel
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d.to_vec())
            .unwrap_or_default()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            if dirs_done.insert(parent.clone()) {
                t.dir(&parent, 0o755);
            }
        }
        t.file(rel, 0o644, content);
    }
    t.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_layout() {
        let files = BTreeMap::from([("/www/a/index.html".to_string(), b"hi".to_vec())]);
        let tar = rootfs_tar(b"BB", &["sh".to_string()], &files);
        assert_eq!(tar.len() % 512, 0);
        // The first header is a valid ustar directory entry with a correct checksum.
        let h = &tar[..512];
        assert_eq!(&h[257..262], b"ustar");
        assert_eq!(h[156], b'5');
        let stored =
            u32::from_str_radix(std::str::from_utf8(&h[148..154]).unwrap_or("x"), 8).unwrap_or(0);
        let sum: u32 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    b as u32
                }
            })
            .sum();
        assert_eq!(stored, sum);
        let text = String::from_utf8_lossy(&tar);
        assert!(text.contains("www/a/\0"));
        assert!(text.contains("www/a/index.html"));
        // Deterministic.
        assert_eq!(tar, rootfs_tar(b"BB", &["sh".to_string()], &files));
    }
}
