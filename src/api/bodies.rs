//! The JSON success bodies of the API and their schemas in the OpenAPI
//! document.
//!
//! Every body is one of berth's serde types, so its schema comes from the
//! same schemars derives as `crds/`, generated in schemars' *serialize*
//! contract (what the API sends: a field with `skip_serializing_if` is
//! optional, one without it is required). utoipa knows each body only by
//! name: [`api_bodies!`] gives every body type a `ToSchema` whose name is its
//! schemars name, so a route's `body = T` refers to
//! `#/components/schemas/<name>`, and [`document`] puts schemars'
//! definitions there (one per type, shared through `$ref`s).

use std::borrow::Cow;

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::events::ClusterEvent;
use crate::resource::endpoint::Endpoint;
use crate::resource::observed::ContainerRow;
use crate::resource::{Component, Kind, Node, Project, Revision};
use crate::store::Change;

/// Always `berth/v1` (a one-value enum, so the schema says so).
#[derive(Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApiVersion {
    #[default]
    #[serde(rename = "berth/v1")]
    V1,
}

/// Always `List`.
#[derive(Serialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ListKind {
    #[default]
    List,
}

/// The `kind: List` that `berth get -o json` prints.
#[derive(Serialize, JsonSchema, Debug)]
#[serde(rename_all = "camelCase")]
#[schemars(rename = "{T}List")]
pub struct List<T> {
    pub api_version: ApiVersion,
    pub kind: ListKind,
    pub items: Vec<T>,
}

impl<T> List<T> {
    pub fn new(items: Vec<T>) -> Self {
        List {
            api_version: ApiVersion::V1,
            kind: ListKind::List,
            items,
        }
    }
}

/// `POST /apply`: what each object became, in input order.
#[derive(Serialize, JsonSchema, Debug)]
pub struct Applied {
    pub items: Vec<AppliedObject>,
}

/// One object of an apply.
#[derive(Serialize, JsonSchema, Debug)]
#[serde(rename_all = "camelCase")]
pub struct AppliedObject {
    pub kind: Kind,
    /// A component's project; `null` for projects and nodes.
    pub project: Option<String>,
    pub name: String,
    pub change: Change,
    /// Nothing was written (`?dryRun=true`).
    pub dry_run: bool,
}

/// `DELETE`: `kind/name` of what was deleted.
#[derive(Serialize, JsonSchema, Debug)]
pub struct Deleted {
    pub deleted: String,
}

/// A rollout or node action: one line saying what was done.
#[derive(Serialize, JsonSchema, Debug)]
pub struct Done {
    pub message: String,
}

/// A container action: what was done, and the node that did it.
#[derive(Serialize, JsonSchema, Debug)]
pub struct ContainerDone {
    pub message: String,
    pub node: String,
}

pub type ProjectList = List<Project>;
pub type ComponentList = List<Component>;
pub type RevisionList = List<Revision>;
pub type NodeList = List<Node>;
pub type ContainerList = List<ContainerRow>;
pub type EndpointList = List<Endpoint>;
pub type EventList = List<ClusterEvent>;

/// Gives each body type a utoipa name (its schemars name; the schema
/// itself is a placeholder that [`document`] replaces), and lists them all
/// for [`definitions`].
macro_rules! api_bodies {
    ($($t:ty),* $(,)?) => {
        $(
            impl utoipa::PartialSchema for $t {
                fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                    utoipa::openapi::RefOr::T(Default::default())
                }
            }
            impl utoipa::ToSchema for $t {
                fn name() -> Cow<'static, str> {
                    <$t as JsonSchema>::schema_name()
                }
            }
        )*

        /// The schemars definitions of every body type and of the types
        /// they refer to, by name, each referring to the others under
        /// `#/components/schemas/`.
        pub fn definitions() -> Map<String, Value> {
            let mut generator = settings().into_generator();
            $( generator.subschema_for::<$t>(); )*
            generator.take_definitions(true)
        }
    };
}

api_bodies!(
    Project,
    Component,
    Node,
    ProjectList,
    ComponentList,
    RevisionList,
    NodeList,
    ContainerRow,
    ContainerList,
    EndpointList,
    EventList,
    Applied,
    Deleted,
    Done,
    ContainerDone,
);

/// JSON Schema 2020-12 (OpenAPI 3.1's dialect), what is serialized,
/// definitions where OpenAPI keeps them.
fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().for_serialize().with(|s| {
        s.definitions_path = "/components/schemas".into();
        s.meta_schema = None;
    })
}

/// The OpenAPI document with utoipa's placeholders for the body types
/// replaced by their schemars schemas.
pub fn document(doc: utoipa::openapi::OpenApi) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or(Value::Null);
    let Some(root) = doc.as_object_mut() else {
        return doc;
    };
    let components = root
        .entry("components")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(c) = components.as_object_mut() {
        let schemas = c
            .entry("schemas")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(s) = schemas.as_object_mut() {
            s.extend(definitions());
            s.sort_keys();
        }
    }
    doc
}

#[cfg(test)]
mod tests {
    //! Real bodies, serialized as the handlers serialize them, checked
    //! against the schema the published document gives their route.

    use serde_json::{json, Map, Value};

    use super::{AppliedObject, List};
    use crate::events::ClusterEvent;
    use crate::manifest::{parse_str, Limits};
    use crate::resource::endpoint::Endpoint;
    use crate::resource::observed::ContainerRow;
    use crate::resource::{Kind, Object, Revision};
    use crate::store::Change;

    /// The JSON Schema keywords the document uses, checked as JSON Schema
    /// 2020-12 does, except `pattern` and `format` (no regex engine in the
    /// tree; schemathesis checks them in `hack/fuzz-api.sh`). A keyword this
    /// does not know fails the test, so nothing goes unchecked silently.
    struct Validator {
        schemas: Map<String, Value>,
    }

    impl Validator {
        fn new(doc: &Value) -> Self {
            let schemas = doc
                .pointer("/components/schemas")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            Validator { schemas }
        }

        /// Every place `v` breaks `schema`, as `path: why`.
        fn errors(&self, schema: &Value, v: &Value) -> Vec<String> {
            let mut out = Vec::new();
            self.check(schema, v, "$", &mut out);
            out
        }

        fn ok(&self, schema: &Value, v: &Value) -> bool {
            self.errors(schema, v).is_empty()
        }

        fn check(&self, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
            let s = match schema {
                Value::Object(s) => s,
                Value::Bool(true) => return,
                other => return out.push(format!("{at}: schema {other} refuses {v}")),
            };
            for (keyword, arg) in s {
                self.keyword(s, keyword, arg, v, at, out);
            }
        }

        fn keyword(
            &self,
            s: &Map<String, Value>,
            keyword: &str,
            arg: &Value,
            v: &Value,
            at: &str,
            out: &mut Vec<String>,
        ) {
            let mut fail = |why: String| out.push(format!("{at}: {why}"));
            match keyword {
                "$ref" => {
                    let name = arg
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"));
                    match name.and_then(|n| self.schemas.get(n)) {
                        Some(target) => self.check(target, v, at, out),
                        None => fail(format!("$ref {arg} does not resolve")),
                    }
                }
                "type" => {
                    let types: Vec<&str> = match arg {
                        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                        other => other.as_str().into_iter().collect(),
                    };
                    if !types.iter().any(|t| is_type(t, v)) {
                        fail(format!("{v} is not of type {arg}"));
                    }
                }
                "enum" if !arg.as_array().is_some_and(|a| a.contains(v)) => {
                    fail(format!("{v} is not one of {arg}"))
                }
                "const" if arg != v => fail(format!("{v} is not {arg}")),
                "minimum" if v.as_f64().zip(arg.as_f64()).is_some_and(|(n, m)| n < m) => {
                    fail(format!("{v} < {arg}"))
                }
                "maximum" if v.as_f64().zip(arg.as_f64()).is_some_and(|(n, m)| n > m) => {
                    fail(format!("{v} > {arg}"))
                }
                "required" => {
                    for name in arg
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                    {
                        if v.as_object().is_some_and(|o| !o.contains_key(name)) {
                            fail(format!("required {name:?} is missing"));
                        }
                    }
                }
                "properties" => {
                    let props = arg.as_object().into_iter().flatten();
                    for (name, sub) in props {
                        if let Some(x) = v.get(name).filter(|_| v.is_object()) {
                            self.check(sub, x, &format!("{at}.{name}"), out);
                        }
                    }
                }
                "patternProperties" => {
                    for (pattern, sub) in arg.as_object().into_iter().flatten() {
                        for (name, x) in v.as_object().into_iter().flatten() {
                            if matches(pattern, name) {
                                self.check(sub, x, &format!("{at}.{name}"), out);
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    for (name, x) in v.as_object().into_iter().flatten() {
                        if !declared(s, name) {
                            self.check(arg, x, &format!("{at}.{name}"), out);
                        }
                    }
                }
                "items" => {
                    for (i, x) in v.as_array().into_iter().flatten().enumerate() {
                        self.check(arg, x, &format!("{at}[{i}]"), out);
                    }
                }
                "anyOf" if !branches(arg).any(|b| self.ok(b, v)) => {
                    fail(format!("{v} matches none of anyOf"))
                }
                "oneOf" if branches(arg).filter(|b| self.ok(b, v)).count() != 1 => {
                    fail(format!("{v} does not match exactly one of oneOf"))
                }
                "enum" | "const" | "minimum" | "maximum" | "anyOf" | "oneOf" => {}
                "description" | "default" | "format" | "pattern" => {}
                other => panic!("the test's validator does not know the keyword {other:?}"),
            }
        }
    }

    fn branches(arg: &Value) -> impl Iterator<Item = &Value> {
        arg.as_array().into_iter().flatten()
    }

    fn is_type(t: &str, v: &Value) -> bool {
        match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            other => panic!("unknown type {other:?}"),
        }
    }

    /// The one pattern `patternProperties` uses (map keys that are numbers).
    fn matches(pattern: &str, name: &str) -> bool {
        match pattern {
            r"^\d+$" => !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()),
            other => panic!("the test's validator does not know the pattern {other:?}"),
        }
    }

    /// Whether `properties` or `patternProperties` of `s` covers `name`.
    fn declared(s: &Map<String, Value>, name: &str) -> bool {
        let in_props = s
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.contains_key(name));
        let in_patterns = s
            .get("patternProperties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.keys().any(|pat| matches(pat, name)));
        in_props || in_patterns
    }

    /// The schema the document gives the JSON answer of `method path` with `status`.
    fn schema_of(doc: &Value, method: &str, path: &str, status: &str) -> Value {
        let pointer = format!(
            "/paths/{}/{method}/responses/{status}/content/application~1json/schema",
            path.replace('~', "~0").replace('/', "~1")
        );
        match doc.pointer(&pointer) {
            Some(s) => s.clone(),
            None => panic!("{method} {path} {status} has no JSON schema"),
        }
    }

    /// Asserts that `body` (as the handler serializes it) conforms.
    fn assert_conforms(method: &str, path: &str, status: &str, body: &impl serde::Serialize) {
        let doc = super::super::openapi();
        let v = Validator::new(&doc);
        let body = serde_json::to_value(body).expect("bodies serialize");
        let errors = v.errors(&schema_of(&doc, method, path, status), &body);
        assert!(errors.is_empty(), "{method} {path}: {errors:#?}\n{body:#}");
    }

    /// A component as stored: a manifest with most fields, and a status.
    fn component() -> Object {
        let manifest = r#"
apiVersion: berth/v1
kind: Component
metadata: {name: web, project: shop, labels: {tier: front}}
spec:
  image: busybox:1.36
  command: [httpd, -f]
  env: {A: "1"}
  ports: [{name: http, container: 8080, external: 80}]
  placement: {replicas: 3, nodeSelector: {disk: ssd}}
  readyChecks: [{http: {port: 8080, path: /healthz}, interval: 1s, timeout: 2s, failureThreshold: 1}]
  healthChecks: [{tcp: {port: 8080}}]
  termination: {signals: [SIGTERM], gracePeriod: 1m30s}
  rollout: {maxUnavailable: 0, maxSurge: 25%}
  resources: {memory: 256Mi, cpus: 0.5}
"#;
        let loaded =
            parse_str("test", manifest, &Limits::default()).expect("the manifest is valid");
        let Some(Object::Component(mut c)) = loaded.into_iter().next().map(|l| l.object) else {
            panic!("not a component");
        };
        c.metadata.resource_version = Some("42".into());
        c.metadata.generation = Some(2);
        c.status = Some(
            serde_json::from_value(json!({
                "observedGeneration": 2, "replicas": 3, "readyReplicas": 2,
                "updatedReplicas": 3, "availableReplicas": 2, "currentRevision": 1,
                "updateRevision": 2, "currentReplicas": 3, "drainingReplicas": 1,
                "conditions": [{"type": "Available", "status": "False", "reason": "Rollout",
                    "message": "2 of 3", "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                "nodes": {"n1": {"desired": 2, "current": 2, "ready": 2, "draining": 0, "revision": 2}},
                "lastUpdate": "2026-01-01T00:00:00Z", "coordinator": "n1",
                "rollout": {"phase": "Progressing", "revision": 2, "fromRevision": 1, "step": 1}
            }))
            .expect("a status as the coordinator writes it"),
        );
        Object::Component(c)
    }

    fn container_row() -> ContainerRow {
        serde_json::from_value(json!({
            "node": "n1", "project": "shop", "component": "web",
            "id": "0123456789abcdef", "name": "shop-web-1", "revision": 2, "hash": "abc",
            "phase": "draining", "restarts": 1, "lastExitCode": 137, "lastReason": "OOMKilled",
            "startedAt": "2026-01-01T00:00:00Z", "ports": {"8080": 32768},
            "drain": {"since": "2026-01-01T00:00:00Z", "until": "2026-01-01T00:01:00Z", "open": 3},
            "evicting": true
        }))
        .map(|c| ContainerRow {
            node: "n1".into(),
            project: "shop".into(),
            component: "web".into(),
            container: c,
        })
        .expect("an observed container")
    }

    #[test]
    fn resources_and_their_lists_conform() {
        let c = component();
        assert_conforms(
            "get",
            "/api/v1/projects/{project}/components/{name}",
            "200",
            &c.to_json(),
        );
        let list = List::new(vec![c.to_json()]);
        assert_conforms("get", "/api/v1/components", "200", &list);
        let template = match &c {
            Object::Component(c) => c.spec.template(),
            _ => unreachable!("component() is a component"),
        };
        let revision: Revision = serde_json::from_value(json!({
            "seq": 2, "hash": "abc", "template": template, "changeCause": "bump",
            "created": "2026-01-01T00:00:00Z",
            "pin": {"imageId": "sha256:00", "node": "n1", "pinnedAt": "2026-01-01T00:00:00Z"}
        }))
        .expect("a revision document");
        let revisions = List::new(vec![revision]);
        assert_conforms(
            "get",
            "/api/v1/projects/{project}/components/{name}/revisions",
            "200",
            &revisions,
        );
        let node = Object::from_json(
            Kind::Node,
            json!({
                "apiVersion": "berth/v1", "kind": "Node",
                "metadata": {"name": "n1", "annotations": {"berth/role": "coordinator"}},
                "spec": {"unschedulable": true},
                "status": {"address": "10.0.0.1", "apiAddress": "http://10.0.0.1:8080",
                    "conditions": [{"type": "Ready", "status": "True"}]}
            })
            .to_string()
            .as_bytes(),
        )
        .expect("a node document");
        assert_conforms(
            "get",
            "/api/v1/nodes",
            "200",
            &List::new(vec![node.to_json()]),
        );
    }

    #[test]
    fn containers_endpoints_and_events_conform() {
        let row = container_row();
        assert_conforms(
            "get",
            "/api/v1/projects/{project}/containers/{container}",
            "200",
            &row,
        );
        assert_conforms("get", "/api/v1/containers", "200", &List::new(vec![row]));
        let endpoint: Endpoint = serde_json::from_value(json!({
            "project": "shop", "component": "web", "node": "n1", "container": "0123",
            "forward": "10.0.0.1:7000",
            "ports": [{"container": 8080, "host": 32768, "external": 80, "protocol": "tcp"}]
        }))
        .expect("an endpoint document");
        assert_conforms(
            "get",
            "/api/v1/projects/{project}/endpoints",
            "200",
            &List::new(vec![endpoint]),
        );
        let events = vec![
            ClusterEvent::component("shop", "web", "n1", "Started", "started shop-web-1"),
            serde_json::from_value::<ClusterEvent>(json!({"time": "2026-01-01T00:00:00Z",
                "project": "_cluster", "node": "n1", "reason": "NodeLost", "message": "gone"}))
            .expect("a cluster event"),
        ];
        assert_conforms("get", "/api/v1/events", "200", &List::new(events));
    }

    #[test]
    fn write_answers_conform() {
        let applied = super::Applied {
            items: vec![
                AppliedObject {
                    kind: Kind::Project,
                    project: None,
                    name: "shop".into(),
                    change: Change::Unchanged,
                    dry_run: true,
                },
                AppliedObject {
                    kind: Kind::Component,
                    project: Some("shop".into()),
                    name: "web".into(),
                    change: Change::Created,
                    dry_run: true,
                },
            ],
        };
        assert_conforms("post", "/api/v1/apply", "200", &applied);
        let deleted = super::Deleted {
            deleted: "component/web".into(),
        };
        assert_conforms(
            "delete",
            "/api/v1/projects/{project}/components/{name}",
            "200",
            &deleted,
        );
        let done = super::Done {
            message: "node/n1 cordoned, draining".into(),
        };
        assert_conforms("post", "/api/v1/nodes/{name}/{action}", "202", &done);
        let evicted = super::ContainerDone {
            message: "container shop-web-1 evicted".into(),
            node: "n1".into(),
        };
        assert_conforms(
            "post",
            "/api/v1/projects/{project}/containers/{container}/evict",
            "202",
            &evicted,
        );
    }

    /// The check can fail: bodies that differ from the schema are caught.
    #[test]
    fn bodies_that_differ_do_not_conform() {
        let doc = super::super::openapi();
        let v = Validator::new(&doc);
        let component = schema_of(
            &doc,
            "get",
            "/api/v1/projects/{project}/components/{name}",
            "200",
        );
        let mut c = component_json();
        assert!(v.errors(&component, &c).is_empty(), "the fixture conforms");
        c["metadata"]["colour"] = json!("red"); // an unknown field
        assert!(
            !v.errors(&component, &c).is_empty(),
            "unknown metadata field accepted"
        );
        let mut c = component_json();
        c["status"]["replicas"] = json!("3"); // a number as a string
        assert!(
            !v.errors(&component, &c).is_empty(),
            "a string replicas accepted"
        );
        let row_schema = schema_of(
            &doc,
            "get",
            "/api/v1/projects/{project}/containers/{container}",
            "200",
        );
        let mut row = serde_json::to_value(container_row()).expect("serializes");
        row["phase"] = json!("sleeping"); // not a phase
        assert!(
            !v.errors(&row_schema, &row).is_empty(),
            "an unknown phase accepted"
        );
        let list = schema_of(&doc, "get", "/api/v1/components", "200");
        let wrong_kind = json!({"apiVersion": "berth/v1", "kind": "ComponentList", "items": []});
        assert!(
            !v.errors(&list, &wrong_kind).is_empty(),
            "kind other than List accepted"
        );
    }

    fn component_json() -> Value {
        component().to_json()
    }

    /// Every `$ref` resolves, every body utoipa names has its schemars
    /// schema (no placeholder is left), and the typed list is what
    /// `get -o json` prints.
    #[test]
    fn the_document_is_complete() {
        let doc = super::super::openapi();
        let schemas = doc
            .pointer("/components/schemas")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 20, "the success bodies are referenced");
        for r in refs {
            let name = r.strip_prefix("#/components/schemas/").unwrap_or(&r);
            assert!(schemas.contains_key(name), "dangling $ref {r}");
        }
        let defs = super::definitions();
        let utoipa = super::super::utoipa_openapi();
        for name in utoipa.components.iter().flat_map(|c| c.schemas.keys()) {
            assert!(
                name == "ErrorBody" || defs.contains_key(name),
                "{name} has no schema"
            );
        }
        let typed = serde_json::to_value(List::new(vec![json!({"a": 1})])).expect("serializes");
        assert_eq!(
            typed,
            crate::resource::meta::list_json(vec![json!({"a": 1})])
        );
    }

    /// The typed answers say what the JSON ones built from strings said.
    #[test]
    fn kinds_and_changes_serialize_as_the_cli_prints_them() {
        for kind in Kind::ALL {
            assert_eq!(serde_json::to_value(kind).ok(), Some(json!(kind.name())));
        }
        for change in [
            Change::Created,
            Change::Configured,
            Change::Unchanged,
            Change::Pruned,
        ] {
            assert_eq!(
                serde_json::to_value(change).ok(),
                Some(json!(change.to_string()))
            );
        }
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(r) = o.get("$ref").and_then(Value::as_str) {
                    out.push(r.to_string());
                }
                o.values().for_each(|x| collect_refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
            _ => {}
        }
    }
}
