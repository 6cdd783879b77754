//! A container's output (`docker logs`), stdout and stderr interleaved as
//! the engine sends them.

use bollard::query_parameters::LogsOptions;
use futures::stream::BoxStream;
use futures::StreamExt;

use super::{Docker, Error, Result};

impl Docker {
    /// The last `tail` lines (all when `None`); with `follow`, the stream
    /// goes on with what the container writes until it stops. The request
    /// is sent on the first poll (bollard streams are lazy).
    pub fn logs(
        &self,
        id: &str,
        tail: Option<u32>,
        follow: bool,
    ) -> BoxStream<'static, Result<bytes::Bytes>> {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        let (host, subject) = (self.host.clone(), id.to_string());
        self.inner
            .logs(id, Some(options))
            .map(move |item| match item {
                Ok(out) => Ok(out.into_bytes()),
                Err(e) => Err(Error::from_bollard(e, &host, &subject)),
            })
            .boxed()
    }
}
