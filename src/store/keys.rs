//! The etcd key layout of DESIGN.md, under a configurable root.
//!
//! Invariant: every etcd key berth reads or writes is built here.

use crate::resource::{ComponentKey, Kind};

/// Builds keys under one root (default `/berth`). Several clusters can share
/// one etcd by using different roots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    root: String,
}

/// Width of revision sequence numbers in keys, so lexical order is numeric order.
const SEQ_WIDTH: usize = 10;

impl Keys {
    /// `root` is normalised to start with `/` and end without one.
    pub fn new(root: &str) -> Keys {
        let trimmed = root.trim_end_matches('/');
        let root = if trimmed.starts_with('/') {
            trimmed.to_string()
        } else {
            format!("/{trimmed}")
        };
        Keys { root }
    }

    pub fn root(&self) -> &str {
        &self.root
    }

    /// `specs/<kind>/[<project>/]<name>`.
    pub fn spec(&self, kind: Kind, project: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.spec_prefix(kind, project))
    }

    /// All specs of a kind (`project: None`), or of one project for namespaced kinds.
    pub fn spec_prefix(&self, kind: Kind, project: Option<&str>) -> String {
        match project {
            Some(p) if kind.namespaced() => format!("{}/specs/{}/{p}/", self.root, kind.lower()),
            _ => format!("{}/specs/{}/", self.root, kind.lower()),
        }
    }

    /// `status/<kind>/[<project>/]<name>`.
    pub fn status(&self, kind: Kind, project: Option<&str>, name: &str) -> String {
        format!("{}{name}", self.status_prefix(kind, project))
    }

    pub fn status_prefix(&self, kind: Kind, project: Option<&str>) -> String {
        match project {
            Some(p) if kind.namespaced() => format!("{}/status/{}/{p}/", self.root, kind.lower()),
            _ => format!("{}/status/{}/", self.root, kind.lower()),
        }
    }

    /// `revisions/<project>/<component>/<seq>` (seq zero-padded).
    pub fn revision(&self, project: &str, component: &str, seq: u64) -> String {
        format!(
            "{}{seq:0width$}",
            self.revision_prefix(project, component),
            width = SEQ_WIDTH
        )
    }

    /// Every revision of every component of a project.
    pub fn project_revisions_prefix(&self, project: &str) -> String {
        format!("{}/revisions/{project}/", self.root)
    }

    pub fn revision_prefix(&self, project: &str, component: &str) -> String {
        format!("{}/revisions/{project}/{component}/", self.root)
    }

    /// `nodes/<node>`: the agent's registration, bound to its lease.
    pub fn node(&self, node: &str) -> String {
        format!("{}/nodes/{node}", self.root)
    }

    pub fn nodes_prefix(&self) -> String {
        format!("{}/nodes/", self.root)
    }

    /// `assignments/<node>/<project>/<component>`.
    pub fn assignment(&self, node: &str, project: &str, component: &str) -> String {
        format!("{}{project}/{component}", self.assignments_prefix(node))
    }

    pub fn assignments_prefix(&self, node: &str) -> String {
        format!("{}/assignments/{node}/", self.root)
    }

    pub fn all_assignments_prefix(&self) -> String {
        format!("{}/assignments/", self.root)
    }

    /// `assignments/<node>/<project>/<component>` of a component.
    pub fn assignment_of(&self, node: &str, c: &ComponentKey) -> String {
        self.assignment(node, &c.project, &c.name)
    }

    /// The component of an assignment key of `node`.
    pub fn component_of_assignment(&self, node: &str, key: &str) -> Option<ComponentKey> {
        ComponentKey::from_parts(&self.parts(&self.assignments_prefix(node), key)?)
    }

    /// The node and component of any node's assignment key.
    pub fn split_assignment(&self, key: &str) -> Option<(String, ComponentKey)> {
        match self.parts(&self.all_assignments_prefix(), key)?.as_slice() {
            [node, rest @ ..] if !node.is_empty() => {
                Some((node.to_string(), ComponentKey::from_parts(rest)?))
            }
            _ => None,
        }
    }

    /// The node and component of an observed document's key.
    pub fn split_observed(&self, key: &str) -> Option<(String, ComponentKey)> {
        match self.parts(&self.all_observed_prefix(), key)?.as_slice() {
            [node, rest @ ..] if !node.is_empty() => {
                Some((node.to_string(), ComponentKey::from_parts(rest)?))
            }
            _ => None,
        }
    }

    /// `specs/component/<project>/<component>` of a component.
    pub fn component_spec(&self, c: &ComponentKey) -> String {
        self.spec(Kind::Component, Some(&c.project), &c.name)
    }

    /// The component of a component spec key.
    pub fn component_of_spec(&self, key: &str) -> Option<ComponentKey> {
        ComponentKey::from_parts(&self.parts(&self.spec_prefix(Kind::Component, None), key)?)
    }

    /// `observed/<node>/<project>/<component>`.
    pub fn observed(&self, node: &str, project: &str, component: &str) -> String {
        format!("{}{project}/{component}", self.observed_prefix(node))
    }

    pub fn observed_prefix(&self, node: &str) -> String {
        format!("{}/observed/{node}/", self.root)
    }

    /// `observed/<node>/<project>/<component>` of a component.
    pub fn observed_of(&self, node: &str, c: &ComponentKey) -> String {
        self.observed(node, &c.project, &c.name)
    }

    pub fn all_observed_prefix(&self) -> String {
        format!("{}/observed/", self.root)
    }

    /// `endpoints/<project>/<component>/<node>/<container>`.
    pub fn endpoint(&self, project: &str, component: &str, node: &str, container: &str) -> String {
        format!(
            "{}/endpoints/{project}/{component}/{node}/{container}",
            self.root
        )
    }

    /// `events/[<project>/]`: one project's events, or all of them.
    pub fn events_prefix(&self, project: Option<&str>) -> String {
        match project {
            Some(p) => format!("{}/events/{p}/", self.root),
            None => format!("{}/events/", self.root),
        }
    }

    /// `events/<project>/<id>`.
    pub fn event(&self, project: &str, id: &str) -> String {
        format!("{}/events/{project}/{id}", self.root)
    }

    /// Every endpoint of the cluster (what each proxy follows to forward).
    pub fn endpoints_prefix(&self) -> String {
        format!("{}/endpoints/", self.root)
    }

    /// The endpoints of one project (`get endpoints -p P`).
    pub fn project_endpoints_prefix(&self, project: &str) -> String {
        format!("{}/endpoints/{project}/", self.root)
    }

    /// The endpoints of one component.
    pub fn component_endpoints_prefix(&self, c: &ComponentKey) -> String {
        format!("{}/endpoints/{}/{}/", self.root, c.project, c.name)
    }

    /// The endpoint key of one container of this node.
    pub fn endpoint_of(&self, c: &ComponentKey, node: &str, container: &str) -> String {
        self.endpoint(&c.project, &c.name, node, container)
    }

    /// `evictions/<node>/<project>/<component>/<container id>`: an
    /// administrator's request that the node replace that container (see
    /// `services::evict`). Not on a lease: it outlives an agent restart.
    pub fn eviction(&self, node: &str, c: &ComponentKey, id: &str) -> String {
        format!(
            "{}{}/{}/{id}",
            self.evictions_prefix(node),
            c.project,
            c.name
        )
    }

    pub fn evictions_prefix(&self, node: &str) -> String {
        format!("{}/evictions/{node}/", self.root)
    }

    /// The component and container id of an eviction key of `node`.
    pub fn split_eviction(&self, node: &str, key: &str) -> Option<(ComponentKey, String)> {
        match self.parts(&self.evictions_prefix(node), key)?.as_slice() {
            [project, name, id] if !id.is_empty() => {
                Some((ComponentKey::from_parts(&[project, name])?, id.to_string()))
            }
            _ => None,
        }
    }

    pub fn election(&self) -> String {
        format!("{}/election/coordinator", self.root)
    }

    /// `jobs/<project>/<component>/`: every run record of a component's jobs.
    pub fn jobs_prefix(&self, c: &ComponentKey) -> String {
        format!("{}/jobs/{}/{}/", self.root, c.project, c.name)
    }

    /// `jobs/<project>/<component>/<job>/<run>`: one run of a job; `run` is
    /// the tick's scheduled time (once-per-tick jobs: the fence), with the
    /// container for `on: all`, or `manual-...` for `berth job run`.
    pub fn job_run(&self, c: &ComponentKey, job: &str, run: &str) -> String {
        format!("{}{job}/{run}", self.jobs_prefix(c))
    }

    /// `jobs-requests/`: every `berth job run` request, as
    /// `jobs-requests/<project>/<component>/<id>` (on the CLI's lease).
    pub fn job_requests_prefix(&self) -> String {
        format!("{}/jobs-requests/", self.root)
    }

    pub fn job_request(&self, c: &ComponentKey, id: &str) -> String {
        format!(
            "{}{}/{}/{id}",
            self.job_requests_prefix(),
            c.project,
            c.name
        )
    }

    /// `jobs-output/<project>/<component>/<id>/`: a manual run's output,
    /// streamed as numbered chunks, then `end` (on the request's lease).
    pub fn job_output_prefix(&self, c: &ComponentKey, id: &str) -> String {
        format!("{}/jobs-output/{}/{}/{id}/", self.root, c.project, c.name)
    }

    /// `roles/`: every component's leader key.
    pub fn roles_prefix(&self) -> String {
        format!("{}/roles/", self.root)
    }

    /// `roles/<project>/<component>/leader`: the elected replica, on its
    /// agent's lease; its create revision is the term.
    pub fn role_leader(&self, c: &ComponentKey) -> String {
        format!("{}/roles/{}/{}/leader", self.root, c.project, c.name)
    }

    pub fn lock(&self, name: &str) -> String {
        format!("{}/locks/{name}", self.root)
    }

    /// Splits a key below `prefix` into its `/`-separated parts.
    pub fn parts<'a>(&self, prefix: &str, key: &'a str) -> Option<Vec<&'a str>> {
        key.strip_prefix(prefix)
            .map(|rest| rest.split('/').collect())
    }

    /// The sequence number at the end of a revision key.
    pub fn revision_seq(key: &str) -> Option<u64> {
        key.rsplit('/').next()?.parse().ok()
    }
}

/// The end of the range covering every key that starts with `prefix`
/// (etcd's `WithPrefix`): the prefix with its last byte incremented, bytes
/// of 0xff dropped first; `[0]` (the end of the keyspace) when none is left.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let k = Keys::new("berth/");
        assert_eq!(
            k.spec(Kind::Component, Some("shop"), "web"),
            "/berth/specs/component/shop/web"
        );
        assert_eq!(
            k.spec(Kind::Project, Some("ignored"), "shop"),
            "/berth/specs/project/shop"
        );
        assert_eq!(
            k.status(Kind::Component, Some("shop"), "web"),
            "/berth/status/component/shop/web"
        );
        assert_eq!(
            k.revision("shop", "web", 3),
            "/berth/revisions/shop/web/0000000003"
        );
        assert_eq!(Keys::revision_seq(&k.revision("shop", "web", 12)), Some(12));
        assert_eq!(
            k.assignment("n1", "shop", "web"),
            "/berth/assignments/n1/shop/web"
        );
        let ck = ComponentKey::new("shop", "web");
        let ev = k.eviction("n1", &ck, "abc123");
        assert_eq!(ev, "/berth/evictions/n1/shop/web/abc123");
        assert_eq!(k.split_eviction("n1", &ev), Some((ck, "abc123".into())));
        assert_eq!(k.split_eviction("n2", &ev), None);
        assert_eq!(k.split_eviction("n1", "/berth/evictions/n1/shop/web"), None);
        assert_eq!(
            k.observed("n1", "shop", "web"),
            "/berth/observed/n1/shop/web"
        );
        assert_eq!(k.node("n1"), "/berth/nodes/n1");
        let c = ComponentKey::new("shop", "web");
        let akey = k.assignment_of("n1", &c);
        assert_eq!(k.component_of_assignment("n1", &akey), Some(c.clone()));
        assert_eq!(k.component_of_assignment("n2", &akey), None);
        assert_eq!(k.split_assignment(&akey), Some(("n1".into(), c.clone())));
        assert_eq!(k.component_of_spec(&k.component_spec(&c)), Some(c.clone()));
        assert_eq!(k.component_of_spec("/berth/specs/component/shop"), None);
        assert_eq!(k.observed_of("n1", &c), "/berth/observed/n1/shop/web");
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
