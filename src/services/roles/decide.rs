//! What this node does about one component's election (pure): campaign,
//! resign (first stepping its leader down, if it still runs), or nothing;
//! and which role each of its ready replicas has now.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A replica's role.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    Leader,
    Follower,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Follower => "follower",
        }
    }

    /// The reason of the cluster event a change to this role records.
    pub fn reason(self) -> &'static str {
        match self {
            Role::Leader => "BecameLeader",
            Role::Follower => "BecameFollower",
        }
    }
}

/// The value of `roles/<project>/<component>/leader`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LeaderRecord {
    pub node: String,
    /// Docker's container id.
    pub container: String,
}

/// The leader key as read: its record and create revision (the term).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elected {
    pub record: LeaderRecord,
    pub term: i64,
}

impl Elected {
    /// The leader key's value and create revision. A record that does not
    /// decode names no replica of ours: `None`, left alone (its lease ends
    /// it) rather than guessed at.
    pub fn decode(value: &[u8], create_revision: i64) -> Option<Elected> {
        let record = serde_json::from_slice(value).ok()?;
        Some(Elected {
            record,
            term: create_revision,
        })
    }
}

/// What to do about the leader key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Election {
    /// Nothing to change.
    Keep,
    /// No leader: create the key for this ready replica.
    Campaign { container: String },
    /// Our leader is no longer a ready replica: delete the key (compared on
    /// its term). With `step_down`, the container still runs: its follower
    /// hook runs first, so no other replica leads while it still does.
    Resign {
        container: String,
        term: i64,
        step_down: bool,
    },
}

/// Decides for `node`, whose ready replicas are `ready` (in preference
/// order) and whose running containers are `running`.
pub fn decide(
    node: &str,
    ready: &[String],
    running: &[String],
    leader: Option<&Elected>,
) -> Election {
    match leader {
        None => match ready.first() {
            Some(c) => Election::Campaign {
                container: c.clone(),
            },
            None => Election::Keep,
        },
        Some(e) if e.record.node == node && !ready.contains(&e.record.container) => {
            Election::Resign {
                container: e.record.container.clone(),
                term: e.term,
                step_down: running.contains(&e.record.container),
            }
        }
        Some(_) => Election::Keep,
    }
}

/// The role of each ready replica given the leader key.
pub fn roles(node: &str, ready: &[String], leader: Option<&Elected>) -> BTreeMap<String, Role> {
    ready
        .iter()
        .map(|c| {
            let lead = leader.is_some_and(|e| e.record.node == node && &e.record.container == c);
            (c.clone(), if lead { Role::Leader } else { Role::Follower })
        })
        .collect()
}

/// The hooks to run: replicas whose role differs from the one last applied
/// (a new replica starts unapplied, so it gets its first role's hook).
pub fn transitions(
    now: &BTreeMap<String, Role>,
    applied: &BTreeMap<String, Role>,
) -> Vec<(String, Role)> {
    now.iter()
        .filter(|(c, r)| applied.get(*c) != Some(r))
        .map(|(c, r)| (c.clone(), *r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn elected(node: &str, c: &str) -> Elected {
        Elected {
            record: LeaderRecord {
                node: node.into(),
                container: c.into(),
            },
            term: 7,
        }
    }

    fn check(ready: &[&str], running: &[&str], leader: Option<Elected>, expected: Election) {
        assert_eq!(
            decide("n1", &s(ready), &s(running), leader.as_ref()),
            expected,
            "ready {ready:?} running {running:?} leader {leader:?}"
        );
    }

    #[test]
    fn elections() {
        check(
            &["a", "b"],
            &["a", "b"],
            None,
            Election::Campaign {
                container: "a".into(),
            },
        );
        check(&[], &["a"], None, Election::Keep);
        check(&["a"], &["a"], Some(elected("n1", "a")), Election::Keep);
        check(&["a"], &["a"], Some(elected("n2", "x")), Election::Keep);
        // Our leader is not ready but runs: step down (hook), then resign.
        check(
            &["b"],
            &["a", "b"],
            Some(elected("n1", "a")),
            Election::Resign {
                container: "a".into(),
                term: 7,
                step_down: true,
            },
        );
        // Our leader is gone: resign, no hook to run.
        check(
            &["b"],
            &["b"],
            Some(elected("n1", "a")),
            Election::Resign {
                container: "a".into(),
                term: 7,
                step_down: false,
            },
        );
        // A key of this node's previous agent naming an unknown container.
        check(
            &[],
            &[],
            Some(elected("n1", "old")),
            Election::Resign {
                container: "old".into(),
                term: 7,
                step_down: false,
            },
        );
    }

    #[test]
    fn roles_and_transitions() {
        let l = elected("n1", "a");
        let now = roles("n1", &s(&["a", "b"]), Some(&l));
        assert_eq!(now.get("a"), Some(&Role::Leader));
        assert_eq!(now.get("b"), Some(&Role::Follower));
        let applied = BTreeMap::from([("a".to_string(), Role::Follower)]);
        assert_eq!(
            transitions(&now, &applied),
            vec![
                ("a".to_string(), Role::Leader),
                ("b".to_string(), Role::Follower)
            ]
        );
        assert!(transitions(&now, &now).is_empty());
        // Another node's leader makes every local replica a follower.
        let other = roles("n1", &s(&["a"]), Some(&elected("n2", "a")));
        assert_eq!(other.get("a"), Some(&Role::Follower));
    }
}
