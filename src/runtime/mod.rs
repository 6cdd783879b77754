//! The controller runtime: ideas from kube-runtime, rebuilt for etcd.
//!
//! ```text
//! etcd ──watcher──▶ Event stream ──reflector──▶ cache (Reader) ─┐
//!                        │                                      │
//!                        └──trigger_keys──▶ keys ──▶ Controller (Scheduler) ──▶ reconcile(key)
//!                  extra triggers (Docker events, resync tick) ─┘
//! ```
//!
//! - [`watcher`](mod@watcher): list a prefix at revision R, watch from R+1; resume after a
//!   disconnect from the last seen revision + 1, re-list after compaction.
//! - [`reflector`](mod@reflector): one writer, many cheap readers of an in-memory cache; ready
//!   only after the first full list.
//! - [`scheduler`]: the deduplicating work queue of keys (one run per key at a
//!   time, delays, earlier wins).
//! - [`backoff`]: capped, jittered exponential backoff (backon underneath).
//! - [`controller`]: runs `reconcile(key, ctx)` with a concurrency cap,
//!   requeue, and per-key error backoff.
//!
//! A typical agent loop:
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use berth::runtime::{self, Action, Controller, WatcherConfig};
//! use futures::StreamExt;
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("{0}")]
//! struct MyError(String);
//!
//! struct Ctx { cache: runtime::Reader<String> }
//!
//! async fn reconcile(key: String, ctx: Arc<Ctx>) -> Result<Action, MyError> {
//!     match ctx.cache.get(&key) {
//!         Some(desired) => { /* make the world match `desired` */ let _ = desired; }
//!         None => { /* the key is gone: clean up */ }
//!     }
//!     Ok(Action::requeue(Duration::from_secs(300)))
//! }
//!
//! # async fn agent(client: etcd_client::Client) {
//! let (reader, writer) = runtime::store(|kv| String::from_utf8(kv.value.clone()).ok());
//! let events = runtime::watcher(client, "/berth/assignments/node-1/".into(), WatcherConfig::default());
//! let triggers = runtime::trigger_keys(runtime::reflector(writer, events));
//! let ctx = Arc::new(Ctx { cache: reader.clone() });
//! Controller::new(reader, triggers)
//!     .with_resync(Duration::from_secs(60))
//!     .run(reconcile, |_key, _err: &MyError, _ctx| Action::backoff(), ctx)
//!     .for_each(|result| async move {
//!         if let Err(e) = result { tracing::warn!(error = %e, "reconcile failed") }
//!     })
//!     .await;
//! # }
//! ```

pub mod backoff;
pub mod controller;
pub mod doc;
pub mod reflector;
pub mod scheduler;
pub mod watcher;

pub use backoff::{Backoff, BackoffConfig, Backoffs};
pub use controller::{trigger_keys, Action, Controller, ControllerConfig};
pub use doc::{Doc, Unreadable};
pub use reflector::{reflector, store, Reader, Writer};
pub use scheduler::Scheduler;
pub use watcher::{watcher, Event, Kv, WatcherConfig};
