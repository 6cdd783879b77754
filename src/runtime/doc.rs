//! Cached documents that may not decode.
//!
//! To a reconcile, a key missing from the cache means "delete what it
//! described". A document that is there but cannot be read must never mean
//! that, so caches of documents that decide what runs store a [`Doc`]: the
//! decoded value, or [`Unreadable`] with the key and the decode error, which
//! the reconcile reports (a `Degraded` condition) while it keeps what runs.

use serde::de::DeserializeOwned;

use super::watcher::Kv;

/// A cached document: decoded, or kept as unreadable.
pub type Doc<T> = Result<T, Unreadable>;

/// A document in etcd that does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{key} (revision {revision}) cannot be read: {error}")]
pub struct Unreadable {
    pub key: String,
    pub revision: i64,
    pub error: String,
}

/// The decoder for [`super::store`] of a JSON document cache: never skips a
/// key, an undecodable value becomes [`Unreadable`].
pub fn json<T: DeserializeOwned>(kv: &Kv) -> Option<Doc<T>> {
    Some(serde_json::from_slice(&kv.value).map_err(|e| {
        tracing::warn!(key = %kv.key, revision = kv.mod_revision, error = %e, "a document does not decode");
        Unreadable {
            key: kv.key.clone(),
            revision: kv.mod_revision,
            error: e.to_string(),
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{store, Event};

    fn kv(key: &str, value: &str, rev: i64) -> Kv {
        Kv {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            mod_revision: rev,
            create_revision: 1,
        }
    }

    /// An undecodable value stays in the cache as unreadable: it is never
    /// mistaken for a missing (deleted) key.
    #[test]
    fn unreadable_documents_are_kept() {
        let (reader, mut writer) = store(json::<u32>);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(kv("/a", "1", 2)));
        writer.apply_watcher_event(&Event::InitApply(kv("/b", "{garbage", 3)));
        writer.apply_watcher_event(&Event::InitDone);
        assert_eq!(reader.get("/a").as_deref(), Some(&Ok(1)));
        let b = reader.get("/b").expect("kept");
        let e = b.as_ref().as_ref().expect_err("unreadable");
        assert_eq!((e.key.as_str(), e.revision), ("/b", 3));
        // A good value that turns bad is unreadable, not gone.
        writer.apply_watcher_event(&Event::Apply(kv("/a", "\"x\"", 4)));
        assert!(reader.get("/a").expect("kept").is_err());
    }
}
