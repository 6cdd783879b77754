//! The reflector: keeps an in-memory cache of what a watcher reports.
//!
//! One [`Writer`] applies watcher events; any number of cheap, cloneable
//! [`Reader`]s read the cache. The cache is ready only after the first complete
//! list ([`Reader::wait_until_ready`]); a re-list (`Init`…`InitDone`) is built on
//! the side and swapped in at `InitDone`, so readers never see half a list.
//!
//! Values are decoded by a function given to [`store`]. A value that does not
//! decode is logged and skipped: the cache keeps the last good value of that
//! key (or nothing, if it never had one). Nothing here panics on etcd's data.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures::{Stream, StreamExt};
use tokio::sync::watch;

use super::watcher::{Event, Kv};

/// Errors of a reader.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The writer went away before the first list completed.
    #[error("the reflector's writer was dropped before the cache became ready")]
    WriterDropped,
}

/// Decodes a value; `None` means "undecodable" (logged and skipped).
pub type Decode<T> = Arc<dyn Fn(&Kv) -> Option<T> + Send + Sync>;

/// One cached object and the revisions of the key that holds it.
#[derive(Debug)]
pub struct Entry<T> {
    pub value: Arc<T>,
    pub mod_revision: i64,
    pub create_revision: i64,
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Entry {
            value: self.value.clone(),
            mod_revision: self.mod_revision,
            create_revision: self.create_revision,
        }
    }
}

type Map<T> = HashMap<String, Entry<T>>;

/// The shared cache: key → decoded object.
#[derive(Debug)]
struct Store<T> {
    map: RwLock<Map<T>>,
}

impl<T> Store<T> {
    fn read(&self) -> RwLockReadGuard<'_, Map<T>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (each update is a single insert/remove/swap), so poisoning is ignored.
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }
    fn write(&self) -> RwLockWriteGuard<'_, Map<T>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// Creates a cache: its only writer and a first reader.
pub fn store<T, F>(decode: F) -> (Reader<T>, Writer<T>)
where
    F: Fn(&Kv) -> Option<T> + Send + Sync + 'static,
{
    let writer = Writer::new(decode);
    (writer.as_reader(), writer)
}

/// The one writer of a cache.
pub struct Writer<T> {
    store: Arc<Store<T>>,
    /// The list being built between `Init` and `InitDone`.
    buffer: Option<Map<T>>,
    decode: Decode<T>,
    ready: watch::Sender<bool>,
}

impl<T> Writer<T> {
    /// A writer for an empty, not yet ready cache.
    pub fn new<F>(decode: F) -> Self
    where
        F: Fn(&Kv) -> Option<T> + Send + Sync + 'static,
    {
        Writer {
            store: Arc::new(Store {
                map: RwLock::new(HashMap::new()),
            }),
            buffer: None,
            decode: Arc::new(decode),
            ready: watch::Sender::new(false),
        }
    }

    /// A reader of this writer's cache.
    pub fn as_reader(&self) -> Reader<T> {
        Reader {
            store: self.store.clone(),
            ready: self.ready.subscribe(),
        }
    }

    fn decode(&self, kv: &Kv) -> Option<Entry<T>> {
        match (self.decode)(kv) {
            Some(v) => Some(Entry {
                value: Arc::new(v),
                mod_revision: kv.mod_revision,
                create_revision: kv.create_revision,
            }),
            None => {
                tracing::warn!(key = %kv.key, revision = kv.mod_revision, "skipping a value that does not decode");
                None
            }
        }
    }

    /// Applies one watcher event. Returns the keys that vanished across a
    /// re-list (cached before `Init`, absent at `InitDone`): they were deleted
    /// while the watcher was cut off.
    pub fn apply_watcher_event(&mut self, event: &Event) -> Vec<String> {
        match event {
            Event::Init => {
                self.buffer = Some(HashMap::new());
            }
            Event::InitApply(kv) => {
                let entry = match self.decode(kv) {
                    Some(e) => Some(e),
                    // Keep the last good value rather than dropping the key.
                    None => self.store.read().get(&kv.key).cloned(),
                };
                let buffer = self.buffer.get_or_insert_with(HashMap::new);
                if let Some(entry) = entry {
                    buffer.insert(kv.key.clone(), entry);
                }
            }
            Event::InitDone => {
                let new = self.buffer.take().unwrap_or_default();
                let old = std::mem::replace(&mut *self.store.write(), new);
                let map = self.store.read();
                let mut vanished: Vec<String> =
                    old.into_keys().filter(|k| !map.contains_key(k)).collect();
                drop(map);
                vanished.sort();
                self.ready.send_replace(true);
                return vanished;
            }
            Event::Apply(kv) => {
                if let Some(entry) = self.decode(kv) {
                    self.store.write().insert(kv.key.clone(), entry);
                }
            }
            Event::Delete(kv) => {
                self.store.write().remove(&kv.key);
            }
        }
        Vec::new()
    }
}

/// A cheap, cloneable reader of a cache.
pub struct Reader<T> {
    store: Arc<Store<T>>,
    ready: watch::Receiver<bool>,
}

impl<T> Clone for Reader<T> {
    fn clone(&self) -> Self {
        Reader {
            store: self.store.clone(),
            ready: self.ready.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Reader<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("len", &self.len())
            .field("ready", &self.is_ready())
            .finish()
    }
}

impl<T> Reader<T> {
    /// The object under `key`.
    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.store.read().get(key).map(|e| e.value.clone())
    }

    /// The object under `key` with its revisions.
    pub fn get_entry(&self, key: &str) -> Option<Entry<T>> {
        self.store.read().get(key).cloned()
    }

    /// Every cached object, in key order.
    pub fn state(&self) -> Vec<Arc<T>> {
        self.entries().into_iter().map(|(_, v)| v).collect()
    }

    /// Every cached key and object, in key order.
    pub fn entries(&self) -> Vec<(String, Arc<T>)> {
        let mut v: Vec<(String, Arc<T>)> = self
            .store
            .read()
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Every cached key, in order.
    pub fn keys(&self) -> Vec<String> {
        let mut v: Vec<String> = self.store.read().keys().cloned().collect();
        v.sort();
        v
    }

    /// How many objects are cached.
    pub fn len(&self) -> usize {
        self.store.read().len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.store.read().is_empty()
    }

    /// Whether the first complete list has been applied.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the first complete list has been applied.
    pub async fn wait_until_ready(&self) -> Result<(), Error> {
        if self.is_ready() {
            return Ok(());
        }
        let mut rx = self.ready.clone();
        rx.wait_for(|r| *r)
            .await
            .map(|_| ())
            .map_err(|_| Error::WriterDropped)
    }
}

/// Applies every event of `stream` to `writer`'s cache and passes the events on.
///
/// After an `InitDone` that ends a re-list, it also yields a [`Event::Delete`]
/// for each key that vanished meanwhile (value empty, `mod_revision` 0: the
/// deletion's revision is unknown), so consumers that trigger on events see
/// every change. Errors are passed through unchanged.
pub fn reflector<T, S, E>(mut writer: Writer<T>, stream: S) -> impl Stream<Item = Result<Event, E>>
where
    S: Stream<Item = Result<Event, E>>,
{
    stream
        .map(move |item| {
            let mut out = Vec::new();
            if let Ok(ev) = &item {
                let vanished = writer.apply_watcher_event(ev);
                out.push(item);
                out.extend(vanished.into_iter().map(|key| {
                    Ok(Event::Delete(Kv {
                        key,
                        value: Vec::new(),
                        mod_revision: 0,
                        create_revision: 0,
                    }))
                }));
            } else {
                out.push(item);
            }
            futures::stream::iter(out)
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, rev: i64) -> Kv {
        Kv {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            mod_revision: rev,
            create_revision: rev,
        }
    }

    fn decode_num(kv: &Kv) -> Option<u32> {
        std::str::from_utf8(&kv.value).ok()?.parse().ok()
    }

    #[test]
    fn ready_only_after_first_full_list() {
        let (reader, mut writer) = store(decode_num);
        assert!(!reader.is_ready());
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(kv("a", "1", 2)));
        assert!(!reader.is_ready());
        assert_eq!(reader.get("a"), None, "half a list is never visible");
        writer.apply_watcher_event(&Event::InitDone);
        assert!(reader.is_ready());
        assert_eq!(reader.get("a").as_deref(), Some(&1));
    }

    #[test]
    fn applies_and_deletes() {
        let (reader, mut writer) = store(decode_num);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitDone);
        writer.apply_watcher_event(&Event::Apply(kv("a", "1", 2)));
        writer.apply_watcher_event(&Event::Apply(kv("b", "2", 3)));
        writer.apply_watcher_event(&Event::Apply(kv("a", "5", 4)));
        assert_eq!(reader.state(), vec![Arc::new(5), Arc::new(2)]);
        assert_eq!(reader.get_entry("a").map(|e| e.mod_revision), Some(4));
        writer.apply_watcher_event(&Event::Delete(kv("a", "", 5)));
        assert_eq!(reader.keys(), vec!["b".to_string()]);
    }

    #[test]
    fn undecodable_values_are_skipped_keeping_the_last_good_one() {
        let (reader, mut writer) = store(decode_num);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(kv("bad", "zzz", 2)));
        writer.apply_watcher_event(&Event::InitApply(kv("a", "1", 3)));
        writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(reader.keys(), vec!["a".to_string()]);
        writer.apply_watcher_event(&Event::Apply(kv("a", "not a number", 4)));
        assert_eq!(reader.get("a").as_deref(), Some(&1));
        // Also across a relist.
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(kv("a", "still bad", 4)));
        writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(reader.get("a").as_deref(), Some(&1));
    }

    #[test]
    fn relist_swaps_atomically_and_reports_vanished_keys() {
        let (reader, mut writer) = store(decode_num);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(kv("a", "1", 2)));
        writer.apply_watcher_event(&Event::InitApply(kv("b", "2", 3)));
        writer.apply_watcher_event(&Event::InitDone);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(kv("b", "7", 9)));
        writer.apply_watcher_event(&Event::InitApply(kv("c", "3", 9)));
        // Until InitDone readers see the old list.
        assert_eq!(reader.keys(), vec!["a".to_string(), "b".to_string()]);
        let vanished = writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(vanished, vec!["a".to_string()]);
        assert_eq!(reader.keys(), vec!["b".to_string(), "c".to_string()]);
        assert_eq!(reader.get("b").as_deref(), Some(&7));
    }

    #[tokio::test]
    async fn wait_until_ready_and_reflector_stream() {
        let (reader, writer) = store(decode_num);
        let events: Vec<Result<Event, ()>> = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(kv("a", "1", 2))),
            Ok(Event::InitDone),
            Err(()),
            Ok(Event::Init),
            Ok(Event::InitDone),
        ];
        let r2 = reader.clone();
        let waiter = tokio::spawn(async move { r2.wait_until_ready().await.is_ok() });
        let out: Vec<Result<Event, ()>> = reflector(writer, futures::stream::iter(events))
            .collect()
            .await;
        assert!(waiter.await.unwrap_or(false));
        assert_eq!(out.len(), 7);
        assert_eq!(out[3], Err(()));
        assert_eq!(out[6].as_ref().ok().and_then(|e| e.key()), Some("a"));
        assert!(matches!(out[6], Ok(Event::Delete(_))));
        assert!(reader.is_empty());
        // The writer is gone now, but the reader was ready: still Ok.
        assert!(reader.wait_until_ready().await.is_ok());
    }

    #[tokio::test]
    async fn wait_until_ready_fails_if_writer_dropped() {
        let (reader, writer) = store(decode_num);
        drop(writer);
        assert!(matches!(
            reader.wait_until_ready().await,
            Err(Error::WriterDropped)
        ));
    }
}
