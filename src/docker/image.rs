//! Images: make sure one is present locally, pulling it if needed.

use std::time::Duration;

use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;

use super::{Docker, Error, Result, CALL_TIMEOUT};

/// What a local image reference resolves to: the image ID (`sha256:<64
/// hex>`, the digest of its config, the same on every machine for the same
/// bits) and, where there is one, the repository digest
/// (`repo@sha256:...`) of the reference's repository.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageIdentity {
    pub id: String,
    pub repo_digest: Option<String>,
}

impl ImageIdentity {
    /// The identity from an inspect's `Id` and `RepoDigests`: a reference
    /// by digest is its own repo digest; a tag takes the repo digest of its
    /// repository, if the image has one (images built locally have none).
    pub fn from_inspect(reference: &str, id: String, repo_digests: &[String]) -> ImageIdentity {
        let repo_digest = if reference.contains('@') {
            Some(reference.to_string())
        } else {
            let (repo, _) = pull_reference(reference);
            repo_digests
                .iter()
                .find(|d| d.split_once('@').is_some_and(|(r, _)| r == repo))
                .cloned()
        };
        ImageIdentity { id, repo_digest }
    }
}

/// The 12-hex short form of an image or container ID (`sha256:` dropped),
/// as `docker images` shows it.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// Longest a pull may take.
pub const PULL_TIMEOUT: Duration = Duration::from_secs(600);

/// Splits `repo[:tag]` / `repo@digest` into what `/images/create` takes:
/// `(fromImage, tag)`. A bare repository means `latest` (the API would pull
/// every tag otherwise).
pub fn pull_reference(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_string(), String::new());
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => {
            let at = last_slash + i;
            (image[..at].to_string(), image[at + 1..].to_string())
        }
        None => (image.to_string(), "latest".to_string()),
    }
}

impl Docker {
    /// Whether the image is present locally.
    pub async fn image_present(&self, image: &str) -> Result<bool> {
        Ok(self.image_identity(image).await?.is_some())
    }

    /// What `image` resolves to locally (one inspect); `None` when absent.
    pub async fn image_identity(&self, image: &str) -> Result<Option<ImageIdentity>> {
        match self
            .call(
                "inspect image",
                image,
                CALL_TIMEOUT,
                self.inner.inspect_image(image),
            )
            .await
        {
            Ok(i) => Ok(Some(ImageIdentity::from_inspect(
                image,
                i.id.unwrap_or_default(),
                i.repo_digests.as_deref().unwrap_or_default(),
            ))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes sure `image` is present locally: one inspect when it is, else a
    /// pull. A failed pull is [`Error::ImagePull`] with Docker's message.
    /// Returns what the reference resolves to.
    pub async fn ensure_image(&self, image: &str) -> Result<ImageIdentity> {
        if let Some(identity) = self.image_identity(image).await? {
            return Ok(identity);
        }
        let (from_image, tag) = pull_reference(image);
        tracing::info!(image, "pulling image");
        let options = CreateImageOptions {
            from_image: Some(from_image),
            tag: (!tag.is_empty()).then_some(tag),
            ..Default::default()
        };
        let pull = async {
            let mut stream = self.inner.create_image(Some(options), None, None);
            while let Some(item) = stream.next().await {
                match item {
                    Ok(info) => {
                        if let Some(detail) = info.error_detail {
                            let message = detail.message.unwrap_or_default();
                            return Err(Error::ImagePull {
                                image: image.to_string(),
                                message,
                            });
                        }
                    }
                    Err(e) => {
                        let message = match e {
                            bollard::errors::Error::DockerStreamError { error } => error,
                            bollard::errors::Error::DockerResponseServerError {
                                message, ..
                            } => message,
                            e => Error::from_bollard(e, &self.host, image).to_string(),
                        };
                        return Err(Error::ImagePull {
                            image: image.to_string(),
                            message,
                        });
                    }
                }
            }
            Ok(())
        };
        match tokio::time::timeout(PULL_TIMEOUT, pull).await {
            Ok(r) => r?,
            Err(_) => {
                let message = format!("pull did not finish within {PULL_TIMEOUT:?}");
                return Err(Error::ImagePull {
                    image: image.to_string(),
                    message,
                });
            }
        }
        // A pull can "succeed" without producing the reference asked for.
        self.image_identity(image)
            .await?
            .ok_or_else(|| Error::ImagePull {
                image: image.to_string(),
                message: "image not present after pull".into(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = |s: &str| pull_reference(s);
        assert_eq!(r("busybox"), ("busybox".into(), "latest".into()));
        assert_eq!(r("bench/web:2"), ("bench/web".into(), "2".into()));
        assert_eq!(
            r("localhost:5000/web"),
            ("localhost:5000/web".into(), "latest".into())
        );
        assert_eq!(
            r("localhost:5000/web:1"),
            ("localhost:5000/web".into(), "1".into())
        );
        let d = format!("web@sha256:{}", "a".repeat(64));
        assert_eq!(r(&d), (d.clone(), String::new()));
    }

    #[test]
    fn identities() {
        fn check(reference: &str, digests: &[&str], want: Option<&str>) {
            let digests: Vec<String> = digests.iter().map(|d| d.to_string()).collect();
            let got = ImageIdentity::from_inspect(reference, "sha256:1".into(), &digests);
            assert_eq!(got.repo_digest.as_deref(), want, "{reference} {digests:?}");
            assert_eq!(got.id, "sha256:1");
        }
        let dig = format!("sha256:{}", "b".repeat(64));
        let web = format!("web@{dig}");
        let other = format!("other/web@{dig}");
        check("web:1", &[], None);
        check("web:1", &[&other, &web], Some(&web));
        check("web", &[&web], Some(&web));
        check("web:1", &[&other], None);
        check(&web, &[], Some(&web));
        let local = format!("localhost:5000/web@{dig}");
        check("localhost:5000/web:2", &[&local], Some(&local));
        assert_eq!(
            short_id(&format!("sha256:{}", "0123456789abcdef".repeat(4))),
            "0123456789ab"
        );
        assert_eq!(short_id("abc"), "abc");
    }
}
