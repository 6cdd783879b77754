//! The leader keys as this agent knows them: a reflector cache of `roles/`
//! (list at revision R, watch from R+1, resume after a reconnect, relist
//! after compaction: see `runtime::watcher`), so an election pass reads
//! memory instead of asking etcd for every elected component. A key's
//! deletion also wakes the election loop, so followers campaign as soon as
//! a leader's lease ends.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::decide::Elected;
use crate::resource::ComponentKey;
use crate::runtime::{self, Event, Reader, WatcherConfig};
use crate::store::Keys;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// Until the first list, a missing key does not mean "no leader".
    #[error("the leader keys are not listed yet")]
    NotReady,
}

/// A cheap, cloneable view of every leader key. A value that does not
/// decode is cached as `None`: it names no replica of ours and is left
/// alone (its lease ends it) rather than guessed at.
#[derive(Clone, Debug)]
pub struct LeaderCache {
    reader: Reader<Option<Elected>>,
    keys: Keys,
}

impl LeaderCache {
    /// Starts watching `roles/`; the returned future applies the events to
    /// the cache and wakes `wake` on each deletion, until `token`.
    pub fn watch(
        client: etcd_client::Client,
        keys: &Keys,
        wake: Arc<Notify>,
        token: CancellationToken,
    ) -> (LeaderCache, impl std::future::Future<Output = ()> + Send) {
        let (reader, writer) = runtime::store(decode);
        let events = runtime::watcher(client, keys.roles_prefix(), WatcherConfig::default());
        let driven = follow(runtime::reflector(writer, events), wake, token);
        (LeaderCache::new(reader, keys.clone()), driven)
    }

    fn new(reader: Reader<Option<Elected>>, keys: Keys) -> LeaderCache {
        LeaderCache { reader, keys }
    }

    /// Who leads `ck` as last heard from etcd.
    pub fn leader(&self, ck: &ComponentKey) -> Result<Option<Elected>, CacheError> {
        if !self.reader.is_ready() {
            return Err(CacheError::NotReady);
        }
        Ok(self
            .reader
            .get(&self.keys.role_leader(ck))
            .and_then(|e| e.as_ref().clone()))
    }
}

fn decode(kv: &runtime::Kv) -> Option<Option<Elected>> {
    Some(Elected::decode(&kv.value, kv.create_revision))
}

/// Drives the reflector (the cache is written as the stream is polled).
async fn follow<S, E>(events: S, wake: Arc<Notify>, token: CancellationToken)
where
    S: Stream<Item = Result<Event, E>>,
    E: std::fmt::Display,
{
    let mut events = std::pin::pin!(events);
    loop {
        tokio::select! {
            _ = token.cancelled() => return,
            ev = events.next() => match ev {
                Some(Ok(Event::Delete(_))) => wake.notify_one(),
                Some(Ok(_)) => {}
                Some(Err(e)) => tracing::debug!(error = %e, "roles watch"),
                None => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Kv;

    fn kv(key: &str, value: &str, rev: i64, created: i64) -> Kv {
        Kv {
            key: format!("/t/roles/p/{key}/leader"),
            value: value.as_bytes().to_vec(),
            mod_revision: rev,
            create_revision: created,
        }
    }

    fn record(container: &str) -> String {
        format!(r#"{{"node":"n1","container":"{container}"}}"#)
    }

    /// Applies `events` to a fresh cache and compares what component `c`
    /// reads: `Err(())` not ready, else the leader's container and term.
    fn check(events: &[Event], expected: Result<Option<(&str, i64)>, ()>) {
        let (reader, mut writer) = runtime::store(decode);
        for e in events {
            writer.apply_watcher_event(e);
        }
        let cache = LeaderCache::new(reader, Keys::new("/t"));
        let got = cache
            .leader(&ComponentKey::new("p", "c"))
            .map(|l| l.map(|e| (e.record.container, e.term)))
            .map_err(|_| ());
        let expected = expected.map(|l| l.map(|(c, t)| (c.to_string(), t)));
        assert_eq!(got, expected, "events {events:?}");
    }

    #[test]
    fn the_cache_follows_the_watch() {
        use Event::*;
        let a = || kv("c", &record("a"), 5, 5);
        // Nothing is known before the first list completes.
        check(&[], Err(()));
        check(&[Init, InitApply(a())], Err(()));
        check(&[Init, InitApply(a()), InitDone], Ok(Some(("a", 5))));
        check(&[Init, InitDone], Ok(None));
        // Another component's key is not ours.
        check(
            &[Init, InitApply(kv("d", &record("a"), 5, 5)), InitDone],
            Ok(None),
        );
        // Watch events after the list; the term is the create revision.
        check(
            &[Init, InitDone, Apply(kv("c", &record("b"), 9, 8))],
            Ok(Some(("b", 8))),
        );
        check(&[Init, InitApply(a()), InitDone, Delete(a())], Ok(None));
        // A relist (compaction) without the key: it is gone.
        check(&[Init, InitApply(a()), InitDone, Init, InitDone], Ok(None));
        // An undecodable record names no leader (never the last good one).
        check(
            &[Init, InitApply(a()), InitDone, Apply(kv("c", "{bad", 6, 5))],
            Ok(None),
        );
    }
}
