//! Semantic validation: the rules a well-typed object must also follow
//! (names, ports, image references, probes, ...).
//!
//! [`validate`] returns every violation with the field path it concerns, in the
//! same notation the manifest reader uses for type errors
//! (`spec.ports[1].container`, `metadata.labels["app.kubernetes.io/name"]`), so
//! `crate::manifest` can point each one at a line and column.
//!
//! Status fields are ignored: they are written by controllers, not users.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use super::component::{Check, ComponentSpec, Probe, Protocol};
use super::quantity::IntOrPercent;
use super::{Kind, Object, ObjectMeta, API_VERSION};

/// One broken rule: the field it concerns and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Field path such as `spec.ports[1].container`; empty for the whole object.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Smallest memory limit Docker 20.10 accepts (6 MB, `linuxMinMemory`).
pub const MIN_MEMORY: u64 = 6 * 1024 * 1024;

/// Appends `key` to a field path: `.key` for plain keys (letters, digits, `_`, `-`),
/// `["some.key/x"]` (JSON-quoted) for the others.
pub fn push_key(path: &mut String, key: &str) {
    let plain = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    } else {
        path.push('[');
        path.push_str(&serde_json::Value::from(key).to_string());
        path.push(']');
    }
}

/// Appends `[index]` to a field path.
pub fn push_index(path: &mut String, index: usize) {
    let _ = write!(path, "[{index}]");
}

/// The path of the parent of `path` (`spec.ports[1]` → `spec.ports`), `None` at the root.
pub fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    if let Some(stripped) = path.strip_suffix("\"]") {
        // A quoted key: JSON escapes every '"' inside it, so the last `["` starts it.
        return stripped.rfind("[\"").map(|i| &path[..i]);
    }
    if path.ends_with(']') {
        return path.rfind('[').map(|i| &path[..i]);
    }
    Some(path.rfind(['.', '[']).map_or("", |i| &path[..i]))
}

/// Checks one object. An empty result means it is valid.
pub fn validate(obj: &Object) -> Vec<Violation> {
    let mut v = Validator::default();
    let (api_version, kind_field) = match obj {
        Object::Project(p) => (&p.api_version, &p.kind),
        Object::Component(c) => (&c.api_version, &c.kind),
        Object::Node(n) => (&n.api_version, &n.kind),
    };
    if api_version != API_VERSION {
        v.add(
            "apiVersion",
            format!("unknown apiVersion {api_version:?}, expected {API_VERSION:?}"),
        );
    }
    if kind_field != obj.kind().name() {
        v.add(
            "kind",
            format!(
                "kind {kind_field:?} does not match the object, expected {:?}",
                obj.kind().name()
            ),
        );
    }
    v.metadata(obj.kind(), obj.metadata());
    match obj {
        Object::Component(c) => v.component(&c.metadata.name, &c.spec),
        Object::Project(p) => {
            if let Some(d) = &p.spec.description {
                if d.len() > 4096 {
                    v.add("spec.description", "longer than 4096 bytes");
                }
            }
        }
        Object::Node(_) => {}
    }
    v.out
}

#[derive(Default)]
struct Validator {
    out: Vec<Violation>,
}

impl Validator {
    fn configs(&mut self, s: &ComponentSpec) {
        self.out.extend(super::validate_configs::violations(s));
    }
}

/// Whether `s` is a DNS label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Whether `s` is a DNS subdomain: DNS labels joined by '.', at most 253 characters.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

const DNS_LABEL_RULE: &str =
    "lowercase letters, digits and '-', starting and ending with a letter or digit, at most 63 characters";

/// A label name (the part after an optional `prefix/`) or a non-empty label value:
/// at most 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// Why `key` is not a valid label or annotation key (`[prefix/]name`), if it is not.
pub fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        if !is_dns_subdomain(p) {
            return Some(format!(
                "invalid key {key:?}: the prefix before '/' must be a DNS subdomain such as \"example.com\""
            ));
        }
    }
    if !is_label_name(name) {
        return Some(format!(
            "invalid key {key:?}: the name must be at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ));
    }
    None
}

/// Why `value` is not a valid label value (empty is valid), if it is not.
pub fn label_value_error(value: &str) -> Option<String> {
    if value.is_empty() || is_label_name(value) {
        None
    } else {
        Some(format!(
            "invalid value {value:?}: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"
        ))
    }
}

/// Whether `s` is a valid environment variable name: `[A-Za-z_][A-Za-z0-9_]*`.
pub fn is_env_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && !b[0].is_ascii_digit()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// Why `image` is not a well-formed image reference, if it is not.
///
/// Accepted: `[host[:port]/]path[:tag][@sha256:<64 hex>]`, where `path` is
/// lowercase components separated by '/', each `[a-z0-9]+` joined by `.`,
/// `_`, `__` or dashes, as in Docker's reference grammar.
pub fn image_reference_error(image: &str) -> Option<String> {
    let bad = |why: &str| Some(format!("invalid image reference {image:?}: {why}"));
    if image.is_empty() {
        return bad("empty");
    }
    if image.len() > 512 {
        return bad("longer than 512 characters");
    }
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64
                && h.bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        });
        if !ok {
            return bad("the digest must be sha256: followed by 64 lowercase hex digits");
        }
    }
    // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].find(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let tb = t.as_bytes();
        let ok = !tb.is_empty()
            && tb.len() <= 128
            && (tb[0].is_ascii_alphanumeric() || tb[0] == b'_')
            && tb
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !ok {
            return bad("the tag must be 1-128 letters, digits, '_', '.' or '-', not starting with '.' or '-'");
        }
    }
    if name.is_empty() {
        return bad("missing repository name");
    }
    if name.len() > 255 {
        return bad("repository name longer than 255 characters");
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first component is a registry host when it looks like one (as in Docker).
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            let (host, port) = match first.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (first, None),
            };
            let host_ok = !host.is_empty()
                && host.split('.').all(|l| {
                    let lb = l.as_bytes();
                    !lb.is_empty()
                        && lb.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                        && lb[0] != b'-'
                        && lb[lb.len() - 1] != b'-'
                });
            if !host_ok {
                return bad(&format!("invalid registry host {host:?}"));
            }
            if let Some(p) = port {
                if p.parse::<u16>().map_or(true, |n| n == 0) {
                    return bad(&format!("invalid registry port {p:?}"));
                }
            }
            parts.remove(0);
        }
    }
    for part in parts {
        if part.is_empty() {
            return bad("empty path component (\"//\" or a trailing '/')");
        }
        if part.bytes().any(|c| c.is_ascii_uppercase()) {
            return bad("repository names must be lowercase");
        }
        if !path_component_ok(part) {
            return bad(&format!(
                "invalid path component {part:?}: lowercase letters and digits, separated by '.', '_', '__' or '-'"
            ));
        }
    }
    None
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn path_component_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|c| *c == b'-');
        if !ok {
            return false;
        }
    }
    true
}

pub(crate) fn path_error(p: &str) -> Option<&'static str> {
    if !p.starts_with('/') {
        return Some("must be an absolute path (starting with '/')");
    }
    if p.split('/').any(|c| c == "..") {
        return Some("must not contain '..'");
    }
    if p.contains([':', ',', '\0']) {
        return Some("must not contain ':', ',' or NUL");
    }
    if p.len() > 4096 {
        return Some("longer than 4096 bytes");
    }
    None
}

fn at(base: &str, index: usize) -> String {
    let mut p = base.to_string();
    push_index(&mut p, index);
    p
}

fn key(base: &str, k: &str) -> String {
    let mut p = base.to_string();
    push_key(&mut p, k);
    p
}

fn ports_list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Validator {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.out.push(Violation {
            path: path.into(),
            message: message.into(),
        });
    }

    fn labels(&mut self, path: &str, labels: &BTreeMap<String, String>, values_are_labels: bool) {
        for (k, val) in labels {
            let p = key(path, k);
            if let Some(e) = label_key_error(k) {
                self.add(&p, e);
            } else if values_are_labels {
                if let Some(e) = label_value_error(val) {
                    self.add(&p, e);
                }
            } else if val.len() > 64 * 1024 {
                self.add(&p, "value longer than 64 KiB");
            }
        }
    }

    fn metadata(&mut self, kind: Kind, m: &ObjectMeta) {
        if m.name.is_empty() {
            self.add("metadata.name", "must not be empty");
        } else if kind == Kind::Node {
            if !is_dns_subdomain(&m.name) {
                self.add(
                    "metadata.name",
                    format!(
                        "invalid node name {:?}: DNS labels ({DNS_LABEL_RULE}) joined by '.'",
                        m.name
                    ),
                );
            }
        } else if !is_dns_label(&m.name) {
            self.add(
                "metadata.name",
                format!(
                    "invalid name {:?}: must be a DNS label: {DNS_LABEL_RULE}",
                    m.name
                ),
            );
        }
        if let Some(p) = &m.project {
            if !kind.namespaced() {
                self.add(
                    "metadata.project",
                    format!("a {} belongs to no project; remove this field", kind.name()),
                );
            } else if !is_dns_label(p) {
                self.add(
                    "metadata.project",
                    format!("invalid project name {p:?}: must be a DNS label: {DNS_LABEL_RULE}"),
                );
            }
        }
        self.labels("metadata.labels", &m.labels, true);
        self.labels("metadata.annotations", &m.annotations, false);
    }

    fn component(&mut self, name: &str, s: &ComponentSpec) {
        if let Some(e) = image_reference_error(&s.image) {
            self.add("spec.image", e);
        }
        if s.command.first().is_some_and(|c| c.is_empty()) {
            self.add("spec.command[0]", "the program must not be empty");
        }
        for (k, val) in &s.env {
            if !is_env_name(k) {
                self.add(
                    key("spec.env", k),
                    format!("invalid environment variable name {k:?}: letters, digits and '_', not starting with a digit"),
                );
            } else if val.contains('\0') {
                self.add(key("spec.env", k), "value contains NUL");
            }
        }
        if let Some(u) = &s.user {
            let ok = !u.is_empty()
                && u.len() <= 64
                && u.split(':').count() <= 2
                && u.split(':').all(|p| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
                });
            if !ok {
                self.add(
                    "spec.user",
                    format!("invalid user {u:?}: expected a user name or uid, optionally followed by :group or :gid"),
                );
            }
        }
        self.ports(s);
        self.placement(s);
        self.out.extend(super::services_check::violations(s));
        let container_ports: Vec<u16> = s.ports.iter().map(|p| p.container).collect();
        for (field, checks) in [
            ("spec.readyChecks", &s.ready_checks),
            ("spec.healthChecks", &s.health_checks),
        ] {
            for (i, c) in checks.iter().enumerate() {
                self.check(&at(field, i), c, &container_ports);
            }
        }
        if s.ready_timeout.is_some_and(|d| d.std().is_zero()) {
            self.add("spec.readyTimeout", "must be more than 0s");
        }
        if let Some(r) = &s.rollout {
            let zero = |x: Option<IntOrPercent>| {
                matches!(
                    x,
                    Some(IntOrPercent::Int(0)) | Some(IntOrPercent::Percent(0))
                )
            };
            if zero(r.max_unavailable) && zero(r.max_surge) {
                self.add(
                    "spec.rollout",
                    "maxUnavailable and maxSurge are both 0: a rollout could never make progress",
                );
            }
            if r.revision_history == Some(0) {
                self.add("spec.rollout.revisionHistory", "must be at least 1");
            }
            if r.progress_deadline.is_some_and(|d| d.std().is_zero()) {
                self.add("spec.rollout.progressDeadline", "must be more than 0s");
            }
            if let (Some(canary), Some(replicas)) = (r.canary, s.placement.replicas) {
                if canary > replicas {
                    self.add(
                        "spec.rollout.canary",
                        format!("canary {canary} is more than the {replicas} replicas"),
                    );
                }
            }
        }
        let mut seen = HashSet::new();
        for (i, v) in s.volumes_from.iter().enumerate() {
            let p = at("spec.volumesFrom", i);
            if !is_dns_label(v) {
                self.add(
                    &p,
                    format!("invalid component name {v:?}: must be a DNS label: {DNS_LABEL_RULE}"),
                );
            } else if v == name {
                self.add(&p, "a component cannot take volumes from itself");
            } else if !seen.insert(v) {
                self.add(&p, format!("{v:?} is listed twice"));
            }
        }
        let mut targets = HashSet::new();
        for (i, b) in s.bindings.iter().enumerate() {
            let p = at("spec.bindings", i);
            if let Some(e) = path_error(&b.host) {
                self.add(format!("{p}.host"), format!("{:?} {e}", b.host));
            }
            if let Some(e) = path_error(&b.container) {
                self.add(format!("{p}.container"), format!("{:?} {e}", b.container));
            } else if b.container == "/" {
                self.add(
                    format!("{p}.container"),
                    "cannot bind over the container's root '/'",
                );
            } else if !targets.insert(b.container.trim_end_matches('/')) {
                self.add(
                    format!("{p}.container"),
                    format!("{:?} is bound twice", b.container),
                );
            }
        }
        if let Some(links) = &s.links {
            let mut names = HashSet::new();
            for (i, d) in links.define.iter().enumerate() {
                let p = at("spec.links.define", i);
                if !is_dns_label(&d.name) {
                    self.add(
                        format!("{p}.name"),
                        format!(
                            "invalid link name {:?}: must be a DNS label: {DNS_LABEL_RULE}",
                            d.name
                        ),
                    );
                } else if !names.insert(d.name.as_str()) {
                    self.add(
                        format!("{p}.name"),
                        format!("link {:?} is defined twice", d.name),
                    );
                }
                let found = match d.port.parse::<u16>() {
                    Ok(n) => s.ports.iter().any(|pp| pp.container == n),
                    Err(_) => s
                        .ports
                        .iter()
                        .any(|pp| pp.name.as_deref() == Some(d.port.as_str())),
                };
                if !found {
                    self.add(
                        format!("{p}.port"),
                        format!(
                            "port {:?} is not a declared port of this component (names or container ports: {})",
                            d.port,
                            declared_ports(s)
                        ),
                    );
                }
            }
            let mut required = HashSet::new();
            for (i, r) in links.require.iter().enumerate() {
                let p = at("spec.links.require", i);
                let (project, link) = match r.name.split_once('/') {
                    Some((pr, l)) => (Some(pr), l),
                    None => (None, r.name.as_str()),
                };
                if !is_dns_label(link) || project.is_some_and(|pr| !is_dns_label(pr)) {
                    self.add(
                        format!("{p}.name"),
                        format!("invalid link {:?}: expected \"link\" or \"project/link\", each a DNS label", r.name),
                    );
                } else if !required.insert(r.name.as_str()) {
                    self.add(
                        format!("{p}.name"),
                        format!("link {:?} is required twice", r.name),
                    );
                } else if project.is_none() && names.contains(link) {
                    self.add(
                        format!("{p}.name"),
                        format!("link {:?} is defined by this component itself: a component cannot require its own link", r.name),
                    );
                }
                if let Some(e) = &r.alias {
                    if !is_env_name(e) {
                        self.add(
                            format!("{p}.alias"),
                            format!("invalid environment variable prefix {e:?}: letters, digits and '_', not starting with a digit"),
                        );
                    }
                }
            }
        }
        self.configs(s);
        if let Some(r) = &s.resources {
            if let Some(m) = r.memory {
                if m.0 < MIN_MEMORY {
                    self.add(
                        "spec.resources.memory",
                        format!("{m} is below Docker's minimum memory limit of 6Mi"),
                    );
                }
            }
            if let Some(c) = r.cpus {
                if !(c.is_finite() && c > 0.0) {
                    self.add("spec.resources.cpus", format!("{c} must be more than 0"));
                } else if c > 1024.0 {
                    self.add("spec.resources.cpus", format!("{c} is more than 1024"));
                }
            }
        }
    }

    fn ports(&mut self, s: &ComponentSpec) {
        let mut containers = HashMap::new();
        let mut externals = HashMap::new();
        let mut names = HashMap::new();
        for (i, p) in s.ports.iter().enumerate() {
            let base = at("spec.ports", i);
            if p.container == 0 {
                self.add(
                    format!("{base}.container"),
                    "port 0 is not allowed: expected 1-65535",
                );
            } else if let Some(j) = containers.insert(p.container, i) {
                self.add(
                    format!("{base}.container"),
                    format!(
                        "duplicate container port {} (also in spec.ports[{j}])",
                        p.container
                    ),
                );
            }
            if let Some(e) = p.external {
                if e == 0 {
                    self.add(
                        format!("{base}.external"),
                        "port 0 is not allowed: expected 1-65535",
                    );
                } else if let Some(j) = externals.insert(e, i) {
                    self.add(
                        format!("{base}.external"),
                        format!("duplicate external port {e} (also in spec.ports[{j}])"),
                    );
                }
            }
            // The proxy is what reads `protocol`; on a port it does not own
            // the field would silently mean nothing.
            if p.external.is_none() && p.protocol != Protocol::Tcp {
                self.add(
                    format!("{base}.protocol"),
                    "protocol applies only to a port with `external` set",
                );
            }
            if let Some(n) = &p.name {
                let ok =
                    is_dns_label(n) && n.len() <= 15 && n.bytes().any(|c| c.is_ascii_lowercase());
                if !ok {
                    self.add(
                        format!("{base}.name"),
                        format!("invalid port name {n:?}: at most 15 lowercase letters, digits and '-', with at least one letter, starting and ending with a letter or digit"),
                    );
                } else if let Some(j) = names.insert(n.as_str(), i) {
                    self.add(
                        format!("{base}.name"),
                        format!("duplicate port name {n:?} (also in spec.ports[{j}])"),
                    );
                }
            }
        }
    }

    fn placement(&mut self, s: &ComponentSpec) {
        let pl = &s.placement;
        if pl.replicas.is_some() && pl.per_node.is_some() {
            self.add(
                "spec.placement",
                "replicas and perNode are both set: use replicas (spread over nodes) or perNode (on every eligible node)",
            );
        }
        if pl.per_node == Some(0) {
            self.add(
                "spec.placement.perNode",
                "must be at least 1 (use replicas: 0 or state: stopped to run nothing)",
            );
        }
        if pl.replicas.is_some_and(|r| r > 100_000) {
            self.add("spec.placement.replicas", "more than 100000");
        }
        if pl.per_node.is_some_and(|r| r > 1_000) {
            self.add("spec.placement.perNode", "more than 1000");
        }
        self.labels("spec.placement.nodeSelector", &pl.node_selector, true);
        for (i, n) in pl.nodes.iter().enumerate() {
            if !is_dns_subdomain(n) {
                self.add(
                    at("spec.placement.nodes", i),
                    format!("invalid node name {n:?}: DNS labels ({DNS_LABEL_RULE}) joined by '.'"),
                );
            }
        }
    }

    fn check(&mut self, path: &str, c: &Check, container_ports: &[u16]) {
        let set: Vec<&str> = [
            c.http.as_ref().map(|_| "http"),
            c.tcp.as_ref().map(|_| "tcp"),
            c.exec.as_ref().map(|_| "exec"),
        ]
        .into_iter()
        .flatten()
        .collect();
        match c.probe() {
            None if set.is_empty() => {
                self.add(path, "a check needs exactly one probe: http, tcp or exec");
            }
            None => {
                self.add(
                    path,
                    format!(
                        "a check has exactly one probe, this one has {}",
                        set.join(" and ")
                    ),
                );
            }
            Some(Probe::Http(h)) => {
                self.probe_port(&format!("{path}.http.port"), h.port, container_ports);
                if !h.path.starts_with('/') {
                    self.add(
                        format!("{path}.http.path"),
                        format!("{:?} must start with '/'", h.path),
                    );
                } else if h
                    .path
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
                {
                    self.add(
                        format!("{path}.http.path"),
                        format!("{:?} contains whitespace or control characters", h.path),
                    );
                }
            }
            Some(Probe::Tcp(t)) => {
                self.probe_port(&format!("{path}.tcp.port"), t.port, container_ports)
            }
            Some(Probe::Exec(e)) => {
                if e.command.is_empty() {
                    self.add(format!("{path}.exec.command"), "must not be empty");
                } else if e.command[0].is_empty() {
                    self.add(
                        format!("{path}.exec.command[0]"),
                        "the program must not be empty",
                    );
                }
            }
        }
        if c.interval.is_some_and(|d| d.std().is_zero()) {
            self.add(format!("{path}.interval"), "must be more than 0s");
        }
        if c.timeout.is_some_and(|d| d.std().is_zero()) {
            self.add(format!("{path}.timeout"), "must be more than 0s");
        }
        if c.failure_threshold == Some(0) {
            self.add(format!("{path}.failureThreshold"), "must be at least 1");
        }
    }

    fn probe_port(&mut self, path: &str, port: u16, container_ports: &[u16]) {
        if port == 0 {
            self.add(path, "port 0 is not allowed: expected 1-65535");
        } else if container_ports.is_empty() {
            self.add(
                path,
                format!("port {port} is not a container port of this component: spec.ports declares none"),
            );
        } else if !container_ports.contains(&port) {
            self.add(
                path,
                format!(
                    "port {port} is not a container port of this component (spec.ports: {})",
                    ports_list(container_ports)
                ),
            );
        }
    }
}

fn declared_ports(s: &ComponentSpec) -> String {
    if s.ports.is_empty() {
        return "none".into();
    }
    s.ports
        .iter()
        .map(|p| match &p.name {
            Some(n) => format!("{n}/{}", p.container),
            None => p.container.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Kind;

    /// Parses `yaml` (the spec part of a Component named `web`, or a whole
    /// object when it starts with `apiVersion`) and checks that validation
    /// gives `expected`: `Ok(())` for no violation, or `Err("substring")` for a
    /// violation whose `path: message` contains it.
    fn check(yaml: &str, expected: Result<(), &str>) {
        let text = if yaml.starts_with("apiVersion") {
            yaml.to_string()
        } else {
            let body: String = yaml.lines().map(|l| format!("  {l}\n")).collect();
            format!("apiVersion: berth/v1\nkind: Component\nmetadata:\n  name: web\nspec:\n{body}")
        };
        // The kind, case-insensitively, so a wrong-case `kind:` still parses.
        let kind = text
            .lines()
            .find_map(|l| l.strip_prefix("kind: "))
            .and_then(|k| k.parse::<Kind>().ok())
            .unwrap_or(Kind::Component);
        let parsed = match kind {
            Kind::Project => serde_saphyr::from_str(&text).map(Object::Project),
            Kind::Component => serde_saphyr::from_str(&text).map(Object::Component),
            Kind::Node => serde_saphyr::from_str(&text).map(Object::Node),
        };
        let obj = match parsed {
            Ok(o) => o,
            Err(e) => panic!("test YAML is not a valid {kind}: {e}\n{text}"),
        };
        let got: Vec<String> = validate(&obj).iter().map(Violation::to_string).collect();
        match expected {
            Ok(()) => assert!(
                got.is_empty(),
                "expected no violation for\n{text}\ngot {got:#?}"
            ),
            Err(want) => assert!(
                got.iter().any(|g| g.contains(want)),
                "expected a violation containing {want:?} for\n{text}\ngot {got:#?}"
            ),
        }
    }

    const OK: Result<(), &str> = Ok(());

    #[test]
    fn names() {
        check("image: busybox", OK);
        check(
            "apiVersion: berth/v1\nkind: Component\nmetadata: {name: Web}\nspec: {image: x}",
            Err("metadata.name: invalid name \"Web\""),
        );
        check(
            "apiVersion: berth/v1\nkind: Component\nmetadata: {name: web-}\nspec: {image: x}",
            Err("metadata.name: invalid name"),
        );
        check(
            &format!(
                "apiVersion: berth/v1\nkind: Component\nmetadata: {{name: {}}}\nspec: {{image: x}}",
                "a".repeat(64)
            ),
            Err("metadata.name"),
        );
        check(
            &format!(
                "apiVersion: berth/v1\nkind: Component\nmetadata: {{name: {}}}\nspec: {{image: x}}",
                "a".repeat(63)
            ),
            OK,
        );
        check(
            "apiVersion: berth/v1\nkind: Component\nmetadata: {name: ''}\nspec: {image: x}",
            Err("metadata.name: must not be empty"),
        );
        check("apiVersion: berth/v1\nkind: Component\nmetadata: {name: web, project: Shop}\nspec: {image: x}", Err("metadata.project: invalid project name"));
        check(
            "apiVersion: berth/v1\nkind: Project\nmetadata: {name: shop, project: x}",
            Err("metadata.project: a Project belongs to no project"),
        );
        check(
            "apiVersion: berth/v1\nkind: Node\nmetadata: {name: ip-10-0-0-1.ec2.internal}",
            OK,
        );
        check(
            "apiVersion: berth/v1\nkind: Node\nmetadata: {name: Host_1}",
            Err("metadata.name: invalid node name"),
        );
        check(
            "apiVersion: berth/v2\nkind: Project\nmetadata: {name: shop}",
            Err("apiVersion: unknown apiVersion \"berth/v2\""),
        );
        check(
            "apiVersion: berth/v1\nkind: project\nmetadata: {name: shop}",
            Err("kind: kind \"project\" does not match"),
        );
    }

    #[test]
    fn labels() {
        check("apiVersion: berth/v1\nkind: Project\nmetadata: {name: shop, labels: {app.kubernetes.io/name: shop, tier: front_end.1}}", OK);
        check(
            "apiVersion: berth/v1\nkind: Project\nmetadata: {name: shop, labels: {\"bad key\": x}}",
            Err("metadata.labels[\"bad key\"]: invalid key"),
        );
        check(
            "apiVersion: berth/v1\nkind: Project\nmetadata: {name: shop, labels: {tier: \"-x\"}}",
            Err("metadata.labels.tier: invalid value"),
        );
        check(
            "apiVersion: berth/v1\nkind: Project\nmetadata: {name: shop, labels: {Foo_/x: y}}",
            Err("the prefix before '/'"),
        );
        check("apiVersion: berth/v1\nkind: Project\nmetadata: {name: shop, annotations: {berth/change-cause: \"any text at all!\"}}", OK);
        check(
            "image: x\nplacement: {nodeSelector: {zone: \"a b\"}}",
            Err("spec.placement.nodeSelector.zone: invalid value"),
        );
    }

    #[test]
    fn images() {
        for ok in [
            "busybox",
            "busybox:1.36",
            "berth-example/hello:1",
            "localhost:5000/team/app:v2.0-rc_1",
            "registry.example.com/a/b__c/d-e.f",
            "ghcr.io/org/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "app:1@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(image_reference_error(ok), None, "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("busybox:", "tag"),
            ("busybox:-x", "tag"),
            ("busy box", "path component"),
            ("a//b", "empty path component"),
            ("app@sha256:abc", "digest"),
            (
                "app@md5:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
                "digest",
            ),
            ("exa_mple.com/app", "registry host"),
            ("localhost:0/app", "registry port"),
            ("a..b", "path component"),
            ("a-", "path component"),
            ("aé/b", "path component"),
        ] {
            let e = image_reference_error(bad);
            assert!(
                e.as_deref().is_some_and(|e| e.contains(why)),
                "{bad}: {e:?} lacks {why}"
            );
        }
        check(
            "image: Bad/Image",
            Err("spec.image: invalid image reference \"Bad/Image\""),
        );
    }

    #[test]
    fn ports() {
        check(
            "image: x\nports: [{name: http, container: 8080, external: 18080}, {container: 9090}]",
            OK,
        );
        check(
            "image: x\nports: [{container: 80, external: 8080, protocol: http}, {container: 81, external: 8081, protocol: tcp}]",
            OK,
        );
        check(
            "image: x\nports: [{container: 80, protocol: http}]",
            Err("spec.ports[0].protocol: protocol applies only to a port with `external` set"),
        );
        check(
            "image: x\nports: [{container: 0}]",
            Err("spec.ports[0].container: port 0 is not allowed"),
        );
        check(
            "image: x\nports: [{container: 80, external: 0}]",
            Err("spec.ports[0].external: port 0"),
        );
        check(
            "image: x\nports: [{container: 80}, {container: 80}]",
            Err("spec.ports[1].container: duplicate container port 80 (also in spec.ports[0])"),
        );
        check(
            "image: x\nports: [{container: 80, external: 1}, {container: 81, external: 1}]",
            Err("spec.ports[1].external: duplicate external port 1"),
        );
        check(
            "image: x\nports: [{name: a, container: 80}, {name: a, container: 81}]",
            Err("spec.ports[1].name: duplicate port name \"a\""),
        );
        check(
            "image: x\nports: [{name: \"8080\", container: 80}]",
            Err("spec.ports[0].name: invalid port name"),
        );
        check(
            "image: x\nports: [{name: a-very-long-port-name, container: 80}]",
            Err("invalid port name"),
        );
    }

    #[test]
    fn placement() {
        check(
            "image: x\nplacement: {replicas: 3, nodeSelector: {zone: a}, nodes: [n1, n2.lan]}",
            OK,
        );
        check("image: x\nplacement: {perNode: 1}", OK);
        check(
            "image: x\nplacement: {replicas: 3, perNode: 1}",
            Err("spec.placement: replicas and perNode are both set"),
        );
        check(
            "image: x\nplacement: {perNode: 0}",
            Err("spec.placement.perNode: must be at least 1"),
        );
        check(
            "image: x\nplacement: {nodes: [N1]}",
            Err("spec.placement.nodes[0]: invalid node name"),
        );
    }

    #[test]
    fn checks() {
        let ports = "image: x\nports: [{container: 8080}]\n";
        check(&format!("{ports}readyChecks: [{{http: {{port: 8080, path: /healthz}}, interval: 1s, timeout: 2s, failureThreshold: 1}}]"), OK);
        check(&format!("{ports}healthChecks: [{{tcp: {{port: 8080}}}}, {{exec: {{command: [/bin/true]}}}}]"), OK);
        check(
            &format!("{ports}readyChecks: [{{interval: 1s}}]"),
            Err("spec.readyChecks[0]: a check needs exactly one probe"),
        );
        check(
            &format!("{ports}readyChecks: [{{http: {{port: 8080}}, tcp: {{port: 8080}}}}]"),
            Err("spec.readyChecks[0]: a check has exactly one probe, this one has http and tcp"),
        );
        check(&format!("{ports}readyChecks: [{{http: {{port: 8081}}}}]"), Err("spec.readyChecks[0].http.port: port 8081 is not a container port of this component (spec.ports: 8080)"));
        check("image: x\nhealthChecks: [{tcp: {port: 80}}]", Err("spec.healthChecks[0].tcp.port: port 80 is not a container port of this component: spec.ports declares none"));
        check(
            &format!("{ports}readyChecks: [{{http: {{port: 8080, path: healthz}}}}]"),
            Err("spec.readyChecks[0].http.path: \"healthz\" must start with '/'"),
        );
        check(
            &format!("{ports}readyChecks: [{{exec: {{command: []}}}}]"),
            Err("spec.readyChecks[0].exec.command: must not be empty"),
        );
        check(
            &format!("{ports}readyChecks: [{{exec: {{command: ['']}}}}]"),
            Err("spec.readyChecks[0].exec.command[0]"),
        );
        check(
            &format!("{ports}readyChecks: [{{tcp: {{port: 8080}}, timeout: 0s}}]"),
            Err("spec.readyChecks[0].timeout: must be more than 0s"),
        );
        check(
            &format!("{ports}readyChecks: [{{tcp: {{port: 8080}}, interval: '0'}}]"),
            Err("spec.readyChecks[0].interval: must be more than 0s"),
        );
        check(
            &format!("{ports}healthChecks: [{{tcp: {{port: 8080}}, failureThreshold: 0}}]"),
            Err("spec.healthChecks[0].failureThreshold: must be at least 1"),
        );
        check(
            "image: x\nreadyTimeout: 0s",
            Err("spec.readyTimeout: must be more than 0s"),
        );
    }

    #[test]
    fn rollout() {
        check(
            "image: x\nrollout: {maxUnavailable: 0, maxSurge: 25%, revisionHistory: 1, canary: 1}",
            OK,
        );
        check(
            "image: x\nrollout: {maxUnavailable: 0, maxSurge: 0%}",
            Err("spec.rollout: maxUnavailable and maxSurge are both 0"),
        );
        check(
            "image: x\nrollout: {revisionHistory: 0}",
            Err("spec.rollout.revisionHistory: must be at least 1"),
        );
        check(
            "image: x\nrollout: {progressDeadline: 0s}",
            Err("spec.rollout.progressDeadline"),
        );
        check(
            "image: x\nplacement: {replicas: 2}\nrollout: {canary: 3}",
            Err("spec.rollout.canary: canary 3 is more than the 2 replicas"),
        );
    }

    #[test]
    fn env_user_command() {
        check("image: x\nenv: {GREETING: hi, _X1: y}\nuser: \"1000:1000\"\ncommand: [/bin/sh, -c, '']", OK);
        check(
            "image: x\nenv: {1X: y}",
            Err("spec.env.1X: invalid environment variable name"),
        );
        check(
            "image: x\nenv: {A-B: y}",
            Err("spec.env.A-B: invalid environment variable name"),
        );
        check("image: x\nuser: \"a:b:c\"", Err("spec.user: invalid user"));
        check("image: x\nuser: \"\"", Err("spec.user"));
        check(
            "image: x\ncommand: ['', a]",
            Err("spec.command[0]: the program must not be empty"),
        );
    }

    #[test]
    fn configs() {
        let c = "image: x\nconfigs:\n- path: /etc/lb.conf\n  sources: [web, other/web]\n";
        check(&format!("{c}  template: '{{% for e in sources.web.endpoints %}}{{{{ e.address }}}}{{% endfor %}}'\n  reload: {{signal: SIGHUP}}"), OK);
        check(
            &format!("{c}  template: x\n  reload: {{exec: [/bin/sh, -c, 'kill -HUP 1']}}"),
            OK,
        );
        check(
            &format!("{c}  template: \"a\\n{{{{ x\"\n"),
            Err("spec.configs[0].template: template line 2:"),
        );
        check(
            &format!("{c}  template: x\n  reload: {{signal: SIGHUP, exec: [a]}}"),
            Err("spec.configs[0].reload: give exactly one of `signal` and `exec`"),
        );
        check(
            &format!("{c}  template: x\n  reload: {{}}"),
            Err("spec.configs[0].reload: give exactly one"),
        );
        check(
            "image: x\nconfigs: [{path: etc/x, template: x}]",
            Err("spec.configs[0].path: \"etc/x\" must be an absolute file path"),
        );
        check(
            "image: x\nconfigs: [{path: /x, template: x}, {path: /x, template: y}]",
            Err("spec.configs[1].path: \"/x\" is rendered twice"),
        );
        check(
            "image: x\nconfigs: [{path: /x, template: x, sources: [Web]}]",
            Err("spec.configs[0].sources[0]: invalid source"),
        );
    }

    #[test]
    fn volumes_bindings_links_resources() {
        check("image: x\nvolumesFrom: [db]\nbindings: [{host: /srv/data, container: /data, readOnly: true}]", OK);
        check(
            "image: x\nvolumesFrom: [web]",
            Err("spec.volumesFrom[0]: a component cannot take volumes from itself"),
        );
        check(
            "image: x\nvolumesFrom: [Db]",
            Err("spec.volumesFrom[0]: invalid component name"),
        );
        check(
            "image: x\nvolumesFrom: [db, db]",
            Err("spec.volumesFrom[1]: \"db\" is listed twice"),
        );
        check(
            "image: x\nbindings: [{host: srv, container: /data}]",
            Err("spec.bindings[0].host: \"srv\" must be an absolute path"),
        );
        check(
            "image: x\nbindings: [{host: /srv/../etc, container: /data}]",
            Err("spec.bindings[0].host: \"/srv/../etc\" must not contain '..'"),
        );
        check(
            "image: x\nbindings: [{host: /a, container: /data}, {host: /b, container: /data/}]",
            Err("spec.bindings[1].container: \"/data/\" is bound twice"),
        );
        check(
            "image: x\nbindings: [{host: /a, container: /}]",
            Err("spec.bindings[0].container: cannot bind over"),
        );
        let ports = "image: x\nports: [{name: http, container: 8080}]\n";
        check(&format!("{ports}links: {{define: [{{name: api, port: http}}, {{name: api2, port: '8080'}}], require: [{{name: shop/db, env: DB}}, {{name: cache}}]}}"), OK);
        check(&format!("{ports}links: {{define: [{{name: api, port: grpc}}]}}"), Err("spec.links.define[0].port: port \"grpc\" is not a declared port of this component (names or container ports: http/8080)"));
        check(
            &format!("{ports}links: {{define: [{{name: api, port: '9090'}}]}}"),
            Err("spec.links.define[0].port"),
        );
        check(
            &format!(
                "{ports}links: {{define: [{{name: api, port: http}}, {{name: api, port: http}}]}}"
            ),
            Err("spec.links.define[1].name: link \"api\" is defined twice"),
        );
        check(
            &format!(
                "{ports}links: {{define: [{{name: api, port: http}}], require: [{{name: api}}]}}"
            ),
            Err("spec.links.require[0].name: link \"api\" is defined by this component itself"),
        );
        check(
            "image: x\nlinks: {require: [{name: a/b/c}]}",
            Err("spec.links.require[0].name: invalid link"),
        );
        check(
            "image: x\nlinks: {require: [{name: db, env: 'x-y'}]}",
            Err("spec.links.require[0].alias"),
        );
        check(&format!("{ports}links: {{define: [{{name: api, port: http, kind: http}}], require: [{{name: db, alias: MY_DB}}]}}"), OK);
        check("image: x\nresources: {memory: 256Mi, cpus: 0.5}", OK);
        check(
            "image: x\nresources: {memory: 1Mi}",
            Err("spec.resources.memory: 1Mi is below Docker's minimum"),
        );
        check(
            "image: x\nresources: {cpus: 0}",
            Err("spec.resources.cpus: 0 must be more than 0"),
        );
        check(
            "image: x\nresources: {cpus: -1.5}",
            Err("spec.resources.cpus"),
        );
    }

    #[test]
    fn jobs_and_roles() {
        let job = |extra: &str| {
            format!("image: x\njobs: [{{name: dump, schedule: '0 * * * *', exec: [sh, -c, 'true']{extra}}}]")
        };
        check(&job(""), OK);
        check(&job(", on: all, timeout: 30s, history: 50"), OK);
        check(
            "image: x\njobs: [{name: t, schedule: '*/2 * * * * *', exec: [date]}]",
            OK,
        );
        check(
            "image: x\njobs: [{name: t, schedule: '61 * * * *', exec: [date]}]",
            Err("spec.jobs[0].schedule: invalid cron expression \"61 * * * *\""),
        );
        check(
            "image: x\njobs: [{name: t, schedule: '* *', exec: [date]}]",
            Err("spec.jobs[0].schedule: invalid cron expression \"* *\": 2 fields"),
        );
        check(
            "image: x\njobs: [{name: Dump, schedule: '0 * * * *', exec: [date]}]",
            Err("spec.jobs[0].name: invalid job name \"Dump\""),
        );
        check(
            "image: x\njobs: [{name: a, schedule: '0 * * * *', exec: [date]}, {name: a, schedule: '0 * * * *', exec: [date]}]",
            Err("spec.jobs[1].name: job \"a\" is defined twice"),
        );
        check(
            "image: x\njobs: [{name: a, schedule: '0 * * * *', exec: []}]",
            Err("spec.jobs[0].exec: must name a command"),
        );
        check(
            &job(", timeout: 0s"),
            Err("spec.jobs[0].timeout: must be more than 0s"),
        );
        check(
            &job(", history: 0"),
            Err("spec.jobs[0].history: 0 is not between 1 and 100"),
        );
        check(
            &job(", on: leader"),
            Err("spec.jobs[0].on: `leader` needs `spec.roles.elect: true`"),
        );
        check(
            &format!("{}\nroles: {{elect: true}}", job(", on: leader")),
            OK,
        );
        check(
            &job(", backup: {destination: /var/backups, keep: {hourly: 24, daily: 14, weekly: 4, monthly: 3}}"),
            OK,
        );
        check(
            &job(", backup: {destination: /var/backups, keep: {}}"),
            Err("spec.jobs[0].backup.keep: hourly, daily, weekly and monthly are all 0"),
        );
        check(
            &job(", backup: {destination: /var/backups, keep: {hourly: 0, daily: 0, weekly: 0, monthly: 0}}"),
            Err("spec.jobs[0].backup.keep"),
        );
        check(
            &job(", backup: {destination: backups, keep: {daily: 1}}"),
            Err("spec.jobs[0].backup.destination: \"backups\" must be an absolute path"),
        );
        check("image: x\nroles: {elect: true, onLeader: {exec: [sh, -c, 'echo up']}, onFollower: {exec: [true]}}", OK);
        check(
            "image: x\nroles: {elect: false, onLeader: {exec: [true]}}",
            Err("spec.roles.onLeader: a role hook needs `elect: true`"),
        );
        check(
            "image: x\nroles: {elect: false, onFollower: {exec: [true]}}",
            Err("spec.roles.onFollower: a role hook needs `elect: true`"),
        );
        check(
            "image: x\nroles: {elect: true, onLeader: {exec: ['']}}",
            Err("spec.roles.onLeader.exec[0]: the program must not be empty"),
        );
        check("image: x\nroles: {elect: false}", OK);
    }

    #[test]
    fn status_is_ignored() {
        check("apiVersion: berth/v1\nkind: Component\nmetadata: {name: web}\nspec: {image: x}\nstatus: {replicas: 3, conditions: [{type: Weird, status: Maybe}]}", OK);
    }

    #[test]
    fn paths() {
        let mut p = String::from("metadata.labels");
        push_key(&mut p, "app.kubernetes.io/name");
        assert_eq!(p, "metadata.labels[\"app.kubernetes.io/name\"]");
        assert_eq!(parent_path(&p), Some("metadata.labels"));
        let mut q = String::new();
        push_key(&mut q, "spec");
        push_key(&mut q, "ports");
        push_index(&mut q, 1);
        push_key(&mut q, "container");
        assert_eq!(q, "spec.ports[1].container");
        assert_eq!(parent_path(&q), Some("spec.ports[1]"));
        assert_eq!(parent_path("spec.ports[1]"), Some("spec.ports"));
        assert_eq!(parent_path("spec"), Some(""));
        assert_eq!(parent_path(""), None);
        let mut r = String::from("x");
        push_key(&mut r, "a\"[\"b");
        assert_eq!(parent_path(&r), Some("x"));
    }
}
