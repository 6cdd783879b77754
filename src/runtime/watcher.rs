//! The watcher: list a prefix at revision R, then watch it from R+1, forever.
//!
//! The stream never ends by itself. Each cycle starts with [`Event::Init`], one
//! [`Event::InitApply`] per key at the list's revision, then [`Event::InitDone`];
//! after that come [`Event::Apply`] and [`Event::Delete`] in revision order.
//!
//! - A dropped connection (the watch stream ends or fails) is resumed from the
//!   last seen revision + 1 after a capped, jittered exponential backoff; the
//!   consumer sees an `Err` item and then the missed events, nothing twice.
//! - A compacted resume point (the watch comes back canceled with
//!   `compact_revision`, or a get fails with OutOfRange) starts a new
//!   Init…InitDone cycle: the consumer replaces what it knew.
//! - Progress notifications are never used as resume points (etcd issue 15220):
//!   the resume point only advances with events actually received.
//! - Listing a page and opening the watch are bounded by
//!   [`WatcherConfig::timeout`]: an etcd that accepts connections but never
//!   answers (a hung member, a black-holed route) gives an `Err` item and a
//!   retry after the backoff, never a watcher stuck forever. The open watch
//!   itself may rightly be quiet for hours; HTTP/2 keep-alive guards it.
//!
//! Errors are yielded as `Err` items for logging; the stream goes on.

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{Client, GetOptions, KeyValue, WatchOptions, WatchResponseStream};
use futures::Stream;

use super::backoff::{Backoff, BackoffConfig};

/// One key and its value as etcd holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    /// The full key (UTF-8; other keys are skipped with a warning).
    pub key: String,
    /// The value. For a [`Event::Delete`], the value before the deletion (empty when
    /// etcd no longer had it).
    pub value: Vec<u8>,
    /// The revision of the last change; for a delete, the revision of the deletion.
    pub mod_revision: i64,
    /// The revision that created the key (0 when unknown).
    pub create_revision: i64,
}

/// What a watcher reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A (re)list starts: forget what you knew once `InitDone` comes.
    Init,
    /// A key present at the list's revision.
    InitApply(Kv),
    /// The list is complete; watch events follow.
    InitDone,
    /// A key was created or changed.
    Apply(Kv),
    /// A key was deleted.
    Delete(Kv),
}

impl Event {
    /// The key this event is about (`None` for `Init` and `InitDone`).
    pub fn key(&self) -> Option<&str> {
        match self {
            Event::InitApply(kv) | Event::Apply(kv) | Event::Delete(kv) => Some(&kv.key),
            Event::Init | Event::InitDone => None,
        }
    }
}

/// Why a watcher had to retry. The stream goes on after each.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Listing the prefix failed (the watcher lists again after a backoff).
    #[error("listing {prefix} failed: {source}")]
    List {
        prefix: String,
        #[source]
        source: etcd_client::Error,
    },
    /// Opening the watch failed (retried from the same revision after a backoff).
    #[error("watching {prefix} from revision {revision} failed: {source}")]
    Watch {
        prefix: String,
        revision: i64,
        #[source]
        source: etcd_client::Error,
    },
    /// The watch stream broke (resumed from the last seen revision + 1).
    #[error("watch of {prefix} broke after revision {last_seen}: {source}")]
    Stream {
        prefix: String,
        last_seen: i64,
        #[source]
        source: etcd_client::Error,
    },
    /// A list page got no answer in time (listed again after a backoff).
    #[error("listing {prefix}: no answer from etcd within {after:?}")]
    ListTimeout { prefix: String, after: Duration },
    /// Opening the watch got no answer in time (retried from the same revision after a backoff).
    #[error("watching {prefix} from revision {revision}: no answer from etcd within {after:?}")]
    WatchTimeout {
        prefix: String,
        revision: i64,
        after: Duration,
    },
    /// The server ended the watch stream (resumed from the last seen revision + 1).
    #[error("watch of {prefix} ended by the server after revision {last_seen}")]
    Ended { prefix: String, last_seen: i64 },
    /// The server canceled the watch for a reason other than compaction.
    #[error("watch of {prefix} canceled by the server: {reason}")]
    Canceled { prefix: String, reason: String },
    /// The resume point was compacted away: the watcher re-lists.
    #[error("watch of {prefix} from revision {revision} hit compaction at {compact_revision}; re-listing")]
    Compacted {
        prefix: String,
        revision: i64,
        compact_revision: i64,
    },
}

/// How a watcher lists and backs off.
#[derive(Debug, Clone)]
pub struct WatcherConfig {
    /// Keys per list request (etcd's `limit`); pages keep each response small.
    pub page_size: i64,
    /// Largest decoded response (list page or watch batch).
    pub max_decoding_message_size: usize,
    /// Retry delays after errors (capped exponential, jittered by default).
    pub backoff: BackoffConfig,
    /// Bound on each list request and on opening the watch (not on the
    /// wait for events, which may rightly be long).
    pub timeout: Duration,
}

impl Default for WatcherConfig {
    fn default() -> Self {
        WatcherConfig {
            page_size: 1000,
            max_decoding_message_size: 64 * 1024 * 1024,
            backoff: BackoffConfig {
                min: Duration::from_millis(100),
                max: Duration::from_secs(10),
                factor: 2.0,
                jitter: true,
            },
            timeout: Duration::from_secs(10),
        }
    }
}

/// Where the watcher is.
enum State {
    /// Nothing known: list next.
    Empty,
    /// Listing at `revision`; `next_key` is where the next page starts.
    InitListing { revision: i64, next_key: Vec<u8> },
    /// The list at `revision` is complete: open the watch from `revision + 1`.
    InitListed { revision: i64 },
    /// Watching; `last_seen` is the revision of the last event delivered.
    Watching {
        last_seen: i64,
        stream: Box<WatchResponseStream>,
        // Dropping the sender cancels the watch, so keep it with the stream.
        _sender: etcd_client::WatchRequestSender,
    },
    /// Disconnected after `last_seen`: wait, then watch from `last_seen + 1`.
    Resuming { last_seen: i64 },
}

struct Watcher {
    client: Client,
    prefix: String,
    range_end: Vec<u8>,
    cfg: WatcherConfig,
    state: State,
    backoff: Backoff,
    /// Whether the next step must wait a backoff delay first.
    must_wait: bool,
    out: VecDeque<Result<Event, Error>>,
}

/// Lists `prefix`, then watches it; see the module docs for the guarantees.
///
/// `prefix` is matched as a plain byte prefix: pass a trailing `/` to watch a
/// directory (`/berth/specs/` and not `/berth/specs-old`).
pub fn watcher(
    client: Client,
    prefix: String,
    cfg: WatcherConfig,
) -> impl Stream<Item = Result<Event, Error>> + Send + 'static {
    let w = Watcher {
        client,
        range_end: crate::store::prefix_end(prefix.as_bytes()),
        backoff: cfg.backoff.build(),
        cfg,
        prefix,
        state: State::Empty,
        must_wait: false,
        out: VecDeque::new(),
    };
    futures::stream::unfold(w, |mut w| async move {
        loop {
            if let Some(item) = w.out.pop_front() {
                return Some((item, w));
            }
            w.step().await;
        }
    })
}

impl Watcher {
    async fn step(&mut self) {
        if self.must_wait {
            self.must_wait = false;
            let delay = self.backoff.next_delay();
            tracing::debug!(prefix = %self.prefix, ?delay, "watcher backing off");
            tokio::time::sleep(delay).await;
        }
        let state = std::mem::replace(&mut self.state, State::Empty);
        self.state = match state {
            State::Empty => {
                // The first page fixes the revision of the whole list.
                self.list_page(0, self.prefix.as_bytes().to_vec()).await
            }
            State::InitListing { revision, next_key } => self.list_page(revision, next_key).await,
            State::InitListed { revision } => self.open_watch(revision).await,
            State::Resuming { last_seen } => self.open_watch(last_seen).await,
            State::Watching {
                last_seen,
                stream,
                _sender,
            } => self.next_batch(last_seen, stream, _sender).await,
        };
    }

    fn fail(&mut self, e: Error) {
        self.out.push_back(Err(e));
        self.must_wait = true;
    }

    /// Lists one page starting at `from`; `revision` 0 means "the current one,
    /// and this is the first page".
    async fn list_page(&mut self, revision: i64, from: Vec<u8>) -> State {
        let opts = GetOptions::new()
            .with_range(self.range_end.clone())
            .with_limit(self.cfg.page_size)
            .with_revision(revision);
        let mut kv = self
            .client
            .kv_client()
            .max_decoding_message_size(self.cfg.max_decoding_message_size);
        let from_retry = from.clone();
        let get = tokio::time::timeout(self.cfg.timeout, kv.get(from, Some(opts)));
        let mut resp = match get.await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) if is_compacted(&e) => {
                tracing::info!(prefix = %self.prefix, revision, "list revision compacted; re-listing");
                // No backoff: a fresh list at the current revision will do.
                return State::Empty;
            }
            Ok(Err(e)) => {
                let e = Error::List {
                    prefix: self.prefix.clone(),
                    source: e,
                };
                return self.retry_page(revision, from_retry, e);
            }
            Err(_) => {
                let e = Error::ListTimeout {
                    prefix: self.prefix.clone(),
                    after: self.cfg.timeout,
                };
                return self.retry_page(revision, from_retry, e);
            }
        };
        let revision = if revision == 0 {
            let Some(header) = resp.header() else {
                self.fail(Error::List {
                    prefix: self.prefix.clone(),
                    source: etcd_client::Error::Internal("range response without header".into()),
                });
                return State::Empty;
            };
            self.out.push_back(Ok(Event::Init));
            header.revision()
        } else {
            revision
        };
        let more = resp.more();
        let kvs = resp.take_kvs();
        let next_key = kvs.last().map(|kv| {
            let mut k = kv.key().to_vec();
            k.push(0);
            k
        });
        for kv in &kvs {
            if let Some(kv) = convert(kv, None, 0) {
                self.out.push_back(Ok(Event::InitApply(kv)));
            }
        }
        match (more, next_key) {
            (true, Some(next_key)) => State::InitListing { revision, next_key },
            _ => {
                self.backoff = self.cfg.backoff.build();
                self.out.push_back(Ok(Event::InitDone));
                State::InitListed { revision }
            }
        }
    }

    /// Reports a failed page; a page of a list in progress is retried at the
    /// same revision, a first page at the then current one.
    fn retry_page(&mut self, revision: i64, from: Vec<u8>, e: Error) -> State {
        self.fail(e);
        if revision == 0 {
            State::Empty
        } else {
            State::InitListing {
                revision,
                next_key: from,
            }
        }
    }

    /// Opens a watch delivering every event after `last_seen`.
    async fn open_watch(&mut self, last_seen: i64) -> State {
        let opts = WatchOptions::new()
            .with_range(self.range_end.clone())
            .with_start_revision(last_seen + 1)
            .with_prev_key();
        let mut wc = self
            .client
            .watch_client()
            .max_decoding_message_size(self.cfg.max_decoding_message_size);
        let open = wc.watch(self.prefix.as_bytes().to_vec(), Some(opts));
        match tokio::time::timeout(self.cfg.timeout, open).await {
            Ok(Ok(ws)) => {
                let (sender, stream) = ws.split();
                State::Watching {
                    last_seen,
                    stream: Box::new(stream),
                    _sender: sender,
                }
            }
            Ok(Err(e)) => {
                self.fail(Error::Watch {
                    prefix: self.prefix.clone(),
                    revision: last_seen + 1,
                    source: e,
                });
                State::Resuming { last_seen }
            }
            Err(_) => {
                self.fail(Error::WatchTimeout {
                    prefix: self.prefix.clone(),
                    revision: last_seen + 1,
                    after: self.cfg.timeout,
                });
                State::Resuming { last_seen }
            }
        }
    }

    async fn next_batch(
        &mut self,
        mut last_seen: i64,
        mut stream: Box<WatchResponseStream>,
        sender: etcd_client::WatchRequestSender,
    ) -> State {
        let resp = match stream.message().await {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.fail(Error::Ended {
                    prefix: self.prefix.clone(),
                    last_seen,
                });
                return State::Resuming { last_seen };
            }
            Err(e) => {
                let compacted = is_compacted(&e);
                self.fail(Error::Stream {
                    prefix: self.prefix.clone(),
                    last_seen,
                    source: e,
                });
                return if compacted {
                    State::Empty
                } else {
                    State::Resuming { last_seen }
                };
            }
        };
        if resp.canceled() {
            if resp.compact_revision() > 0 {
                self.out.push_back(Err(Error::Compacted {
                    prefix: self.prefix.clone(),
                    revision: last_seen + 1,
                    compact_revision: resp.compact_revision(),
                }));
                return State::Empty;
            }
            self.fail(Error::Canceled {
                prefix: self.prefix.clone(),
                reason: resp.cancel_reason().to_string(),
            });
            return State::Resuming { last_seen };
        }
        // A healthy response: the next failure starts the backoff from the bottom.
        self.backoff = self.cfg.backoff.build();
        // Events of one revision (a txn) always come in one response.
        let floor = last_seen;
        for ev in resp.events() {
            let Some(kv) = ev.kv() else { continue };
            let rev = kv.mod_revision();
            if rev <= floor {
                // Already delivered (a resumed watch never sends these, but be sure).
                continue;
            }
            last_seen = last_seen.max(rev);
            // A deletion's kv is a tombstone: version 0 (a put always has version >= 1).
            // Read that rather than `event_type()`, which panics on unknown values.
            let deleted = kv.version() == 0;
            let converted = if deleted {
                convert(kv, ev.prev_kv(), rev)
            } else {
                convert(kv, None, 0)
            };
            if let Some(kv) = converted {
                self.out.push_back(Ok(if deleted {
                    Event::Delete(kv)
                } else {
                    Event::Apply(kv)
                }));
            }
        }
        State::Watching {
            last_seen,
            stream,
            _sender: sender,
        }
    }
}

/// Converts an etcd key-value; for a delete pass the previous kv (its value and
/// create revision are kept) and the deletion revision.
fn convert(kv: &KeyValue, prev: Option<&KeyValue>, deleted_at: i64) -> Option<Kv> {
    let Ok(key) = std::str::from_utf8(kv.key()) else {
        tracing::warn!(key = ?String::from_utf8_lossy(kv.key()), "skipping a key that is not UTF-8");
        return None;
    };
    Some(match prev {
        Some(p) => Kv {
            key: key.to_string(),
            value: p.value().to_vec(),
            mod_revision: deleted_at,
            create_revision: p.create_revision(),
        },
        None if deleted_at > 0 => Kv {
            key: key.to_string(),
            value: Vec::new(),
            mod_revision: deleted_at,
            create_revision: 0,
        },
        None => Kv {
            key: key.to_string(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
            create_revision: kv.create_revision(),
        },
    })
}

/// Whether an etcd error means "that revision was compacted".
fn is_compacted(e: &etcd_client::Error) -> bool {
    match e {
        // gRPC's OutOfRange is code 11; etcd says "required revision has been compacted".
        etcd_client::Error::GRpcStatus(s) => {
            i32::from(s.code()) == 11 || s.message().contains("compacted")
        }
        _ => false,
    }
}
