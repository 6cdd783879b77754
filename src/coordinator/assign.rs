//! From a placement decision to assignment writes (pure).
//!
//! A node in the decision gets an assignment of the spec's template with its
//! replica count. A node that leaves the decision loses its assignment:
//! at once when it is not registered (its agent is gone; the replicas are
//! placed elsewhere), otherwise only once the replicas that replace it are
//! ready, so a drain, a selector change or a rebalance never takes capacity
//! away before the new containers serve.

use std::collections::{BTreeMap, BTreeSet};

use crate::resource::component::Component;
use crate::resource::{Assignment, RevisionReplicas};
use crate::store::{HASH_ANNOTATION, REVISION_ANNOTATION};

/// The assignment of `c` for one node, given its revision number.
pub fn assignment_for(c: &Component, revision: u64, replicas: u32) -> Assignment {
    let template = c.spec.template();
    let generation = c.metadata.generation.unwrap_or(1);
    let revision = RevisionReplicas {
        revision,
        hash: template.hash(),
        template,
        replicas,
    };
    Assignment::single(generation, c.spec.state, revision)
}

/// The revision number from the spec's annotations, if they describe `hash`
/// (the CLI writes them with the spec).
pub fn annotated_revision(c: &Component, hash: &str) -> Option<u64> {
    let a = &c.metadata.annotations;
    (a.get(HASH_ANNOTATION).map(String::as_str) == Some(hash))
        .then(|| a.get(REVISION_ANNOTATION)?.parse().ok())?
}

/// What one component's assignments must become.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Writes {
    pub puts: BTreeMap<String, Assignment>,
    pub deletes: BTreeSet<String>,
    /// Nodes whose assignment stays until their replacements are ready.
    pub waiting: BTreeSet<String>,
}

/// The input of [`plan`].
pub struct Input<'a> {
    /// The spec, or `None` when it was deleted (every assignment goes).
    pub spec: Option<&'a Component>,
    pub revision: u64,
    /// Target replicas per node (placement's decision).
    pub target: &'a BTreeMap<String, u32>,
    /// Current assignments per node.
    pub current: &'a BTreeMap<String, Assignment>,
    /// Registered nodes.
    pub registered: &'a BTreeSet<String>,
    /// Ready containers of the target template, per node.
    pub ready: &'a BTreeMap<String, u32>,
}

/// The writes that take the assignments from `current` to `target`.
pub fn plan(input: &Input) -> Writes {
    let mut w = Writes::default();
    let Some(spec) = input.spec else {
        w.deletes = input.current.keys().cloned().collect();
        return w;
    };
    for (node, &n) in input.target {
        let want = assignment_for(spec, input.revision, n);
        if input.current.get(node) != Some(&want) {
            w.puts.insert(node.clone(), want);
        }
    }
    let wanted: u32 = input.target.values().sum();
    let ready: u32 = input
        .target
        .keys()
        .map(|n| input.ready.get(n).copied().unwrap_or(0))
        .sum();
    for node in input
        .current
        .keys()
        .filter(|n| !input.target.contains_key(*n))
    {
        if !input.registered.contains(node) || ready >= wanted {
            w.deletes.insert(node.clone());
        } else {
            w.waiting.insert(node.clone());
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::component::{ComponentSpec, Placement};
    use crate::resource::ObjectMeta;

    fn spec() -> Component {
        Component {
            api_version: "berth/v1".into(),
            kind: "Component".into(),
            metadata: ObjectMeta {
                name: "web".into(),
                project: Some("shop".into()),
                generation: Some(2),
                ..Default::default()
            },
            spec: ComponentSpec {
                image: "web:1".into(),
                placement: Placement {
                    replicas: Some(3),
                    ..Default::default()
                },
                ..Default::default()
            },
            status: None,
        }
    }

    fn map<T: Clone>(pairs: &[(&str, T)]) -> BTreeMap<String, T> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// `plan` on: target, current (node → replicas), registered nodes,
    /// ready per node; expected puts (node → replicas), deletes, waiting.
    #[allow(clippy::type_complexity)]
    fn check(
        target: &[(&str, u32)],
        current: &[(&str, u32)],
        registered: &[&str],
        ready: &[(&str, u32)],
        want: (&[(&str, u32)], &[&str], &[&str]),
    ) {
        let c = spec();
        let current: BTreeMap<String, Assignment> = current
            .iter()
            .map(|(n, r)| (n.to_string(), assignment_for(&c, 1, *r)))
            .collect();
        let input = Input {
            spec: Some(&c),
            revision: 1,
            target: &map(target),
            current: &current,
            registered: &registered.iter().map(|s| s.to_string()).collect(),
            ready: &map(ready),
        };
        let w = plan(&input);
        let puts: BTreeMap<String, u32> = w
            .puts
            .iter()
            .map(|(n, a)| (n.clone(), a.replicas()))
            .collect();
        let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
        assert_eq!(
            (puts, w.deletes, w.waiting),
            (map(want.0), set(want.1), set(want.2))
        );
    }

    #[test]
    fn assignment_writes() {
        let all = ["a", "b", "c"];
        // Nothing assigned yet: every target node is written.
        check(
            &[("a", 1), ("b", 1), ("c", 1)],
            &[],
            &all,
            &[],
            (&[("a", 1), ("b", 1), ("c", 1)], &[], &[]),
        );
        // Already as wanted: nothing to write.
        check(
            &[("a", 2), ("b", 1)],
            &[("a", 2), ("b", 1)],
            &all,
            &[],
            (&[], &[], &[]),
        );
        // A count changes: only that node.
        check(
            &[("a", 2), ("b", 2)],
            &[("a", 2), ("b", 1)],
            &all,
            &[],
            (&[("b", 2)], &[], &[]),
        );
        // A lost node's assignment goes at once; its replica moves.
        check(
            &[("a", 2), ("b", 1)],
            &[("a", 1), ("b", 1), ("c", 1)],
            &["a", "b"],
            &[],
            (&[("a", 2)], &["c"], &[]),
        );
        // A drained (registered) node keeps its assignment until the
        // replacements are ready...
        check(
            &[("a", 2), ("b", 1)],
            &[("a", 1), ("b", 1), ("c", 1)],
            &all,
            &[("a", 1), ("b", 1)],
            (&[("a", 2)], &[], &["c"]),
        );
        // ...and loses it once they are.
        check(
            &[("a", 2), ("b", 1)],
            &[("a", 2), ("b", 1), ("c", 1)],
            &all,
            &[("a", 2), ("b", 1)],
            (&[], &["c"], &[]),
        );
    }

    #[test]
    fn a_deleted_spec_loses_every_assignment() {
        let c = spec();
        let current = BTreeMap::from([("a".to_string(), assignment_for(&c, 1, 1))]);
        let input = Input {
            spec: None,
            revision: 0,
            target: &BTreeMap::new(),
            current: &current,
            registered: &BTreeSet::new(),
            ready: &BTreeMap::new(),
        };
        assert_eq!(plan(&input).deletes, BTreeSet::from(["a".to_string()]));
    }
}
