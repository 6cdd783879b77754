//! The HTTP client's connector: a local container's published address is
//! dialed through [`Dialer`] (inside the container's network namespace when
//! possible), anything else (peers' forwarding listeners) with hyper-util's
//! plain `HttpConnector`. The pool still keys connections by the published
//! address, so one backend's pooled connections stay one backend's.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

use super::dial::Dialer;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Clone)]
pub(crate) struct NetnsConnector {
    dialer: Arc<Dialer>,
    plain: HttpConnector,
    timeout: Duration,
}

impl NetnsConnector {
    pub(crate) fn new(dialer: Arc<Dialer>, plain: HttpConnector, timeout: Duration) -> Self {
        NetnsConnector {
            dialer,
            plain,
            timeout,
        }
    }
}

impl Service<Uri> for NetnsConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.plain.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let local = uri
            .authority()
            .and_then(|a| a.as_str().parse::<SocketAddr>().ok())
            .and_then(|addr| self.dialer.local(addr).map(|(id, port)| (addr, id, port)));
        match local {
            Some((addr, id, port)) => {
                let dialer = self.dialer.clone();
                let timeout = self.timeout;
                Box::pin(async move {
                    let stream =
                        tokio::time::timeout(timeout, dialer.connect(&id, Some(port), addr))
                            .await
                            .map_err(|_| {
                                std::io::Error::new(
                                    std::io::ErrorKind::TimedOut,
                                    "connect timed out",
                                )
                            })??;
                    Ok(TokioIo::new(stream))
                })
            }
            None => {
                let fut = self.plain.call(uri);
                Box::pin(async move { fut.await.map_err(Into::into) })
            }
        }
    }
}
