//! Images: make sure one is present locally, pulling it if needed.

use std::time::Duration;

use bollard::query_parameters::CreateImageOptions;
use futures::StreamExt;

use super::{Docker, Error, Result, CALL_TIMEOUT};

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
        match self
            .call(
                "inspect image",
                image,
                CALL_TIMEOUT,
                self.inner.inspect_image(image),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Makes sure `image` is present locally: one inspect when it is, else a
    /// pull. A failed pull is [`Error::ImagePull`] with Docker's message.
    pub async fn ensure_image(&self, image: &str) -> Result<()> {
        if self.image_present(image).await? {
            return Ok(());
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
        if self.image_present(image).await? {
            Ok(())
        } else {
            Err(Error::ImagePull {
                image: image.to_string(),
                message: "image not present after pull".into(),
            })
        }
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
}
