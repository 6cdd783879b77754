//! Which revision number a spec's template is (pure). What each node runs
//! is decided by the rollout engine (`super::rollout`).

use crate::resource::component::Component;
use crate::store::{HASH_ANNOTATION, REVISION_ANNOTATION};

/// The revision number from the spec's annotations, if they describe `hash`
/// (the CLI writes them with the spec).
pub fn annotated_revision(c: &Component, hash: &str) -> Option<u64> {
    let a = &c.metadata.annotations;
    (a.get(HASH_ANNOTATION).map(String::as_str) == Some(hash))
        .then(|| a.get(REVISION_ANNOTATION)?.parse().ok())?
}
