//! Pinned image identity: every node runs the same bits of a revision.
//!
//! The first node that starts containers of a revision records what the
//! revision's image reference resolved to on it (the image ID, and the repo
//! digest where there is one) in the revision document
//! (`revisions/<project>/<component>/<seq>`), by compare-and-swap on the
//! key's mod_revision as read: first writer wins, a loser adopts the
//! winner's pin. Every node then compares its own resolution with the pin
//! ([`pin_decision`], pure): a node whose tag resolves to another image
//! starts nothing of that revision and says so (`ImageMismatch`); containers
//! already running are not touched.
//!
//! Pins are cached per (component, revision, hash), so a node reads the
//! revision key once per revision it starts, not once per start. A missing,
//! unreadable or foreign (other template hash) revision document, or an etcd
//! that does not answer within [`PIN_TIMEOUT`], does not block starts: the
//! revision runs unpinned, as before pins existed, and the log says why.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};

use crate::docker::image::{short_id, ImageIdentity};
use crate::resource::component::ImagePin;
use crate::resource::{Assignment, ComponentKey, Revision, RevisionReplicas};
use crate::store::Keys;

/// Bound on the read (and write) of a revision document before a start:
/// an etcd that does not answer delays a start by this much at most.
pub const PIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Lost compare-and-swaps tolerated before giving up on pinning.
const CAS_TRIES: usize = 3;

/// What to do about starting containers of a revision (pure).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinAction {
    /// Nothing pinned yet: record this node's identity, then start.
    Record,
    /// The local image is the pinned one: start.
    Run,
    /// The local image is another one: start nothing of this revision.
    Mismatch {
        /// What was pinned and what this node has (image IDs, or repo
        /// digests for a reference by digest).
        pinned: String,
        local: String,
    },
}

/// Compares this node's resolution of `reference` with the revision's pin.
/// A reference by digest (`repo@sha256:...`) is pinned by itself: compared
/// by digest. A tag is compared by image ID.
pub fn pin_decision(
    reference: &str,
    pinned: Option<&ImagePin>,
    local: &ImageIdentity,
) -> PinAction {
    let Some(pin) = pinned else {
        return PinAction::Record;
    };
    if reference.contains('@') {
        if let Some(digest) = &pin.repo_digest {
            return match &local.repo_digest {
                Some(l) if l == digest => PinAction::Run,
                l => PinAction::Mismatch {
                    pinned: digest.clone(),
                    local: l.clone().unwrap_or_else(|| local.id.clone()),
                },
            };
        }
    }
    if pin.image_id == local.id {
        PinAction::Run
    } else {
        PinAction::Mismatch {
            pinned: pin.image_id.clone(),
            local: local.id.clone(),
        }
    }
}

/// The pin this node records for `local`.
pub fn pin_of(local: &ImageIdentity, node: &str, now: &str) -> ImagePin {
    ImagePin {
        image_id: local.id.clone(),
        repo_digest: local.repo_digest.clone(),
        node: node.to_string(),
        pinned_at: now.to_string(),
    }
}

/// The `ImageMismatch` message: names the pinned and the local image and
/// both nodes.
pub fn mismatch_message(
    rev: &RevisionReplicas,
    pin: &ImagePin,
    pinned: &str,
    local: &str,
    node: &str,
) -> String {
    let show = |s: &str| {
        if s.contains('@') {
            s.to_string()
        } else {
            short_id(s).to_string()
        }
    };
    format!(
        "image {} of revision {} is pinned to {} (by node {}), but on node {node} it is {}: \
         no container of revision {} starts here until they match",
        rev.template.image,
        rev.revision,
        show(pinned),
        pin.node,
        show(local),
        rev.revision,
    )
}

/// Pins known to this agent, per component, by (revision, hash): the
/// revision's sequence number alone could name another template after the
/// component was deleted and created again.
#[derive(Clone, Debug, Default)]
pub struct PinCache {
    by_component: HashMap<ComponentKey, Vec<(u64, String, ImagePin)>>,
}

impl PinCache {
    pub fn get(&self, ck: &ComponentKey, rev: &RevisionReplicas) -> Option<&ImagePin> {
        self.by_component
            .get(ck)?
            .iter()
            .find(|(seq, hash, _)| *seq == rev.revision && *hash == rev.hash)
            .map(|(_, _, pin)| pin)
    }

    pub fn insert(&mut self, ck: &ComponentKey, rev: &RevisionReplicas, pin: ImagePin) {
        let pins = self.by_component.entry(ck.clone()).or_default();
        pins.retain(|(seq, hash, _)| !(*seq == rev.revision && *hash == rev.hash));
        pins.push((rev.revision, rev.hash.clone(), pin));
    }

    /// Keeps the pins of the revisions `a` names (none without an
    /// assignment: a component deleted and created again starts afresh).
    /// Costs the component's own pins only.
    pub fn retain(&mut self, ck: &ComponentKey, a: Option<&Assignment>) {
        let Some(pins) = self.by_component.get_mut(ck) else {
            return;
        };
        let named = |seq: u64, hash: &str| {
            a.is_some_and(|a| {
                a.revisions
                    .iter()
                    .any(|r| r.revision == seq && r.hash == hash)
            })
        };
        pins.retain(|(seq, hash, _)| named(*seq, hash));
        if pins.is_empty() {
            self.by_component.remove(ck);
        }
    }

    /// Pins held, over all components.
    pub fn len(&self) -> usize {
        self.by_component.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.by_component.is_empty()
    }
}

/// The agent's pins: the etcd side (read, compare-and-swap) and the cache.
#[derive(Clone)]
pub struct Pins {
    client: etcd_client::Client,
    keys: Keys,
    node: String,
    cache: Arc<Mutex<PinCache>>,
}

/// Why a revision runs unpinned (logged), or its pin.
#[derive(Debug)]
pub enum Resolved {
    Pinned(ImagePin),
    Unpinned(String),
}

impl Pins {
    pub fn new(client: etcd_client::Client, keys: Keys, node: String) -> Pins {
        Pins {
            client,
            keys,
            node,
            cache: Arc::default(),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, PinCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached pin of a revision.
    pub fn cached(&self, ck: &ComponentKey, rev: &RevisionReplicas) -> Option<ImagePin> {
        self.cache().get(ck, rev).cloned()
    }

    /// See [`PinCache::retain`].
    pub fn retain(&self, ck: &ComponentKey, a: Option<&Assignment>) {
        self.cache().retain(ck, a);
    }

    /// The pin of `rev`: cached, else read from its revision document, else
    /// recorded there from `local` (compare-and-swap; a lost race adopts
    /// the winner's pin).
    pub async fn resolve(
        &self,
        ck: &ComponentKey,
        rev: &RevisionReplicas,
        local: &ImageIdentity,
    ) -> Resolved {
        if let Some(pin) = self.cached(ck, rev) {
            return Resolved::Pinned(pin);
        }
        let r = match tokio::time::timeout(PIN_TIMEOUT, self.read_or_record(ck, rev, local)).await {
            Ok(r) => r,
            Err(_) => Err(format!("etcd did not answer within {PIN_TIMEOUT:?}")),
        };
        match r {
            Ok(Some(pin)) => {
                self.cache().insert(ck, rev, pin.clone());
                Resolved::Pinned(pin)
            }
            Ok(None) => Resolved::Unpinned("no revision document".into()),
            Err(e) => Resolved::Unpinned(e),
        }
    }

    /// `Ok(None)`: no usable revision document (missing, unreadable, or of
    /// another template).
    async fn read_or_record(
        &self,
        ck: &ComponentKey,
        rev: &RevisionReplicas,
        local: &ImageIdentity,
    ) -> Result<Option<ImagePin>, String> {
        let key = self.keys.revision(&ck.project, &ck.name, rev.revision);
        let mut kv = self.client.kv_client();
        let resp = kv
            .get(key.as_str(), None)
            .await
            .map_err(|e| format!("reading {key}: {e}"))?;
        let mut found = resp
            .kvs()
            .first()
            .map(|kv| (kv.value().to_vec(), kv.mod_revision()));
        for _ in 0..CAS_TRIES {
            let Some((value, mod_revision)) = found.take() else {
                tracing::debug!(component = %ck, revision = rev.revision, %key,
                    "no revision document (written by an older CLI, or deleted): the revision runs unpinned");
                return Ok(None);
            };
            let mut doc = match serde_json::from_slice::<Revision>(&value) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(component = %ck, %key, error = %e,
                        "revision document does not decode: the revision runs unpinned");
                    return Ok(None);
                }
            };
            if doc.hash != rev.hash {
                tracing::debug!(component = %ck, %key, doc_hash = %doc.hash, hash = %rev.hash,
                    "revision document is of another template: the revision runs unpinned");
                return Ok(None);
            }
            if let Some(pin) = doc.pin {
                return Ok(Some(pin));
            }
            let pin = pin_of(local, &self.node, &crate::util::now_rfc3339());
            doc.pin = Some(pin.clone());
            let body = serde_json::to_vec(&doc).map_err(|e| e.to_string())?;
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.as_str(),
                    CompareOp::Equal,
                    mod_revision,
                )])
                .and_then([TxnOp::put(key.as_str(), body, None::<PutOptions>)])
                .or_else([TxnOp::get(key.as_str(), None::<GetOptions>)]);
            let resp = kv
                .txn(txn)
                .await
                .map_err(|e| format!("pinning {key}: {e}"))?;
            if resp.succeeded() {
                tracing::info!(component = %ck, revision = rev.revision, image = %rev.template.image,
                    image_id = %pin.image_id, "pinned the revision's image");
                return Ok(Some(pin));
            }
            // Someone wrote the document since the read: look again.
            found = resp.op_responses().into_iter().find_map(|op| match op {
                TxnOpResponse::Get(g) => g
                    .kvs()
                    .first()
                    .map(|kv| (kv.value().to_vec(), kv.mod_revision())),
                _ => None,
            });
        }
        Err(format!("{key} kept changing while pinning it"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(id: &str, digest: Option<&str>) -> ImageIdentity {
        ImageIdentity {
            id: id.into(),
            repo_digest: digest.map(str::to_string),
        }
    }

    fn pinned(id: &str, digest: Option<&str>) -> ImagePin {
        pin_of(&ident(id, digest), "a", "2026-01-01T00:00:00Z")
    }

    #[test]
    fn decisions() {
        fn check(reference: &str, pin: Option<ImagePin>, local: ImageIdentity, want: PinAction) {
            let got = pin_decision(reference, pin.as_ref(), &local);
            assert_eq!(got, want, "{reference} pinned {pin:?}, local {local:?}");
        }
        let mismatch = |p: &str, l: &str| PinAction::Mismatch {
            pinned: p.into(),
            local: l.into(),
        };
        let dx = "web@sha256:xx";
        let dy = "web@sha256:yy";
        // Nothing pinned: record what this node has, with or without a digest.
        check("web:1", None, ident("sha256:x", None), PinAction::Record);
        check(dx, None, ident("sha256:x", Some(dx)), PinAction::Record);
        // A tag: the image ID decides, whatever the repo digests say.
        check(
            "web:1",
            Some(pinned("sha256:x", None)),
            ident("sha256:x", None),
            PinAction::Run,
        );
        check(
            "web:1",
            Some(pinned("sha256:x", None)),
            ident("sha256:y", None),
            mismatch("sha256:x", "sha256:y"),
        );
        check(
            "web:1",
            Some(pinned("sha256:x", Some(dx))),
            ident("sha256:x", None),
            PinAction::Run,
        );
        check(
            "web:1",
            Some(pinned("sha256:x", Some(dx))),
            ident("sha256:y", Some(dx)),
            mismatch("sha256:x", "sha256:y"),
        );
        // A digest reference: the digest decides.
        check(
            dx,
            Some(pinned("sha256:x", Some(dx))),
            ident("sha256:z", Some(dx)),
            PinAction::Run,
        );
        check(
            dx,
            Some(pinned("sha256:x", Some(dx))),
            ident("sha256:x", Some(dy)),
            mismatch(dx, dy),
        );
        check(
            dx,
            Some(pinned("sha256:x", Some(dx))),
            ident("sha256:x", None),
            mismatch(dx, "sha256:x"),
        );
        // A digest reference pinned without a digest (by an older agent): by ID.
        check(
            dx,
            Some(pinned("sha256:x", None)),
            ident("sha256:x", Some(dx)),
            PinAction::Run,
        );
    }

    #[test]
    fn the_cache_keeps_the_pins_of_assigned_revisions_only() {
        use crate::resource::component::State;
        let rev = |seq: u64, hash: &str| RevisionReplicas {
            revision: seq,
            hash: hash.into(),
            template: Default::default(),
            replicas: 1,
            replacing: 0,
            removing: 0,
        };
        let (web, api) = (ComponentKey::new("p", "web"), ComponentKey::new("p", "api"));
        let mut c = PinCache::default();
        c.insert(&web, &rev(1, "h1"), pinned("sha256:1", None));
        c.insert(&web, &rev(2, "h2"), pinned("sha256:2", None));
        c.insert(&api, &rev(1, "h1"), pinned("sha256:3", None));
        // Same number, other template: not the pin of this revision.
        assert_eq!(c.get(&web, &rev(1, "hX")), None);
        assert_eq!(
            c.get(&web, &rev(1, "h1")).map(|p| p.image_id.as_str()),
            Some("sha256:1")
        );
        // Revision 1 of web no longer assigned: its pin goes, api's stays.
        let a = Assignment::single(1, State::Running, rev(2, "h2"));
        c.retain(&web, Some(&a));
        assert_eq!(c.get(&web, &rev(1, "h1")), None);
        assert!(c.get(&web, &rev(2, "h2")).is_some());
        assert_eq!(c.len(), 2);
        // No assignment: the component starts afresh.
        c.retain(&web, None);
        c.retain(&api, None);
        assert!(c.is_empty());
    }

    #[test]
    fn the_mismatch_message_names_both_images_and_both_nodes() {
        let rev = RevisionReplicas {
            revision: 3,
            hash: "h3".into(),
            template: crate::resource::component::Template {
                image: "web:1".into(),
                ..Default::default()
            },
            replicas: 1,
            replacing: 0,
            removing: 0,
        };
        let x = format!("sha256:{}", "a".repeat(64));
        let y = format!("sha256:{}", "b".repeat(64));
        let m = mismatch_message(&rev, &pinned(&x, None), &x, &y, "b1");
        assert_eq!(
            m,
            "image web:1 of revision 3 is pinned to aaaaaaaaaaaa (by node a), but on node b1 it is \
             bbbbbbbbbbbb: no container of revision 3 starts here until they match"
        );
        let m = mismatch_message(
            &rev,
            &pinned(&x, None),
            "web@sha256:1",
            "web@sha256:2",
            "b1",
        );
        assert!(
            m.contains("pinned to web@sha256:1") && m.contains("it is web@sha256:2"),
            "{m}"
        );
    }
}
