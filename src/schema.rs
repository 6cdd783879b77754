//! JSON Schemas and Kubernetes-CRD-style documents generated from the
//! resource types (schemars), committed under `crds/`.
//!
//! - `crds/<kind>.schema.json`: JSON Schema 2020-12 for one kind, for
//!   editors (`# yaml-language-server: $schema=...`) and other tools.
//! - `crds/berth.schema.json`: any berth object, chosen by `kind`, for files
//!   that mix kinds.
//! - `crds/<kind>.crd.yaml`: a `CustomResourceDefinition` whose
//!   `openAPIV3Schema` is the OpenAPI 3.0 form of the same type.
//!
//! A unit test fails when the committed files differ from [`render_all`];
//! `BERTH_UPDATE_CRDS=1 cargo test --lib schema` rewrites them.

use std::path::PathBuf;

use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

use crate::resource::{Component, Kind, Node, Project, API_VERSION};

/// The directory, relative to the repository root, holding the generated files.
pub const CRDS_DIR: &str = "crds";

/// How to regenerate the committed files.
pub const REGENERATE: &str = "BERTH_UPDATE_CRDS=1 cargo test --lib schema";

/// The API group of `apiVersion: berth/v1`.
const GROUP: &str = "berth";

const DNS_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const DNS_SUBDOMAIN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

fn root_schema(kind: Kind, settings: SchemaSettings) -> Value {
    let generator = settings.into_generator();
    let schema = match kind {
        Kind::Project => generator.into_root_schema_for::<Project>(),
        Kind::Component => generator.into_root_schema_for::<Component>(),
        Kind::Node => generator.into_root_schema_for::<Node>(),
    };
    schema.to_value()
}

/// Narrows what the Rust types cannot say: `apiVersion` and `kind` are
/// constants, names follow the DNS rules of their kind.
fn refine(kind: Kind, root: &mut Value, meta_pointer: &str) {
    if let Some(props) = root
        .pointer_mut("/properties")
        .and_then(Value::as_object_mut)
    {
        props.insert(
            "apiVersion".into(),
            json!({"description": "Always `berth/v1`.", "type": "string", "enum": [API_VERSION]}),
        );
        props.insert(
            "kind".into(),
            json!({"description": format!("Always `{}`.", kind.name()), "type": "string", "enum": [kind.name()]}),
        );
    }
    let (pattern, max) = if kind == Kind::Node {
        (DNS_SUBDOMAIN, 253)
    } else {
        (DNS_LABEL, 63)
    };
    let name_pointer = format!("{meta_pointer}/properties/name");
    if let Some(name) = root
        .pointer_mut(&name_pointer)
        .and_then(Value::as_object_mut)
    {
        name.insert("pattern".into(), json!(pattern));
        name.insert("minLength".into(), json!(1));
        name.insert("maxLength".into(), json!(max));
    }
    let project_pointer = format!("{meta_pointer}/properties/project");
    if let Some(project) = root
        .pointer_mut(&project_pointer)
        .and_then(Value::as_object_mut)
    {
        project.insert("pattern".into(), json!(DNS_LABEL));
        project.insert("maxLength".into(), json!(63));
    }
}

/// The JSON Schema (2020-12) of one kind.
pub fn json_schema(kind: Kind) -> Value {
    let mut root = root_schema(kind, SchemaSettings::draft2020_12());
    refine(kind, &mut root, "/$defs/ObjectMeta");
    if let Some(obj) = root.as_object_mut() {
        let mut out = Map::new();
        // `$schema` first, then a note on where the file comes from.
        if let Some(s) = obj.remove("$schema") {
            out.insert("$schema".into(), s);
        }
        out.insert(
            "$comment".into(),
            json!(format!(
                "Generated from berth's Rust types; do not edit. Regenerate with: {REGENERATE}"
            )),
        );
        out.extend(std::mem::take(obj));
        root = Value::Object(out);
    }
    root
}

/// A schema for any berth object: the kind's schema chosen by `kind`.
/// Refers to the per-kind files next to it.
pub fn json_schema_any() -> Value {
    let branches: Vec<Value> = Kind::ALL
        .iter()
        .map(|k| {
            json!({
                "if": {"properties": {"kind": {"const": k.name()}}, "required": ["kind"]},
                "then": {"$ref": format!("{}.schema.json", k.lower())}
            })
        })
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$comment": format!("Generated from berth's Rust types; do not edit. Regenerate with: {REGENERATE}"),
        "title": "berth object",
        "description": "Any berth object (Project, Component or Node), validated by the schema of its kind.",
        "type": "object",
        "required": ["apiVersion", "kind", "metadata"],
        "properties": {
            "apiVersion": {"type": "string", "enum": [API_VERSION]},
            "kind": {"type": "string", "enum": Kind::ALL.map(Kind::name)}
        },
        "allOf": branches
    })
}

fn plural(kind: Kind) -> String {
    format!("{}s", kind.lower())
}

/// A Kubernetes-CRD-style document for one kind, with the OpenAPI 3.0 form
/// of its schema inlined (no `$ref`).
pub fn crd(kind: Kind) -> Value {
    let settings = SchemaSettings::openapi3().with(|s| {
        s.inline_subschemas = true;
        s.meta_schema = None;
    });
    let mut schema = root_schema(kind, settings);
    refine(kind, &mut schema, "/properties/metadata");
    structural(&mut schema);
    if let Some(obj) = schema.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
    }
    let short: Vec<&str> = kind
        .aliases()
        .iter()
        .copied()
        .filter(|a| *a != kind.lower() && *a != plural(kind))
        .collect();
    let mut version = json!({
        "name": "v1",
        "served": true,
        "storage": true,
        "schema": {"openAPIV3Schema": schema},
    });
    if matches!(kind, Kind::Component | Kind::Node) {
        version["subresources"] = json!({"status": {}});
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{GROUP}", plural(kind))},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind.name(),
                "listKind": format!("{}List", kind.name()),
                "plural": plural(kind),
                "singular": kind.lower(),
                "shortNames": short,
            },
            "scope": if kind.namespaced() { "Namespaced" } else { "Cluster" },
            "versions": [version],
        }
    })
}

/// Adapts an OpenAPI schema to Kubernetes' structural-schema rules: type
/// lists become `anyOf` (int-or-string marked as such), and
/// `additionalProperties: false` next to `properties` goes (Kubernetes
/// prunes unknown fields instead).
fn structural(v: &mut Value) {
    // Iterative walk: generated schemas are shallow, but no recursion is needed.
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(obj) => {
                // `Option<T>` of a non-inlined type: anyOf [T, null] becomes T, nullable.
                let null_only = json!({"nullable": true, "enum": [null]});
                if let Some(Value::Array(any)) = obj.get("anyOf") {
                    if any.len() == 2 && any.contains(&null_only) {
                        let other = any.iter().find(|a| **a != null_only).cloned();
                        obj.remove("anyOf");
                        if let Some(Value::Object(inner)) = other {
                            for (k, v) in inner {
                                obj.entry(k).or_insert(v);
                            }
                        }
                        obj.insert("nullable".into(), json!(true));
                    }
                }
                if let Some(Value::Array(types)) = obj.get("type").cloned() {
                    let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
                    obj.remove("type");
                    if names.contains(&"integer") && names.contains(&"string") {
                        obj.insert("x-kubernetes-int-or-string".into(), json!(true));
                    }
                    let any: Vec<Value> = names.iter().map(|t| json!({"type": t})).collect();
                    obj.insert("anyOf".into(), Value::Array(any));
                }
                if let Some(Value::Array(any)) = obj.get("anyOf") {
                    let types: Vec<&str> =
                        any.iter().filter_map(|a| a.get("type")?.as_str()).collect();
                    if types.len() == 2 && types.contains(&"integer") && types.contains(&"string") {
                        obj.insert("x-kubernetes-int-or-string".into(), json!(true));
                    }
                }
                if obj.contains_key("properties")
                    && obj.get("additionalProperties") == Some(&json!(false))
                {
                    obj.remove("additionalProperties");
                }
                stack.extend(obj.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// Every generated file, as `(path relative to the repository root, content)`.
pub fn render_all() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(CRDS_DIR);
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let json = serde_json::to_string_pretty(&json_schema(kind)).unwrap_or_default() + "\n";
        out.push((dir.join(format!("{}.schema.json", kind.lower())), json));
        out.push((
            dir.join(format!("{}.crd.yaml", kind.lower())),
            crd_yaml(kind),
        ));
    }
    let any = serde_json::to_string_pretty(&json_schema_any()).unwrap_or_default() + "\n";
    out.push((dir.join("berth.schema.json"), any));
    out
}

/// The CRD of `kind` as YAML, with a header saying where it comes from.
pub fn crd_yaml(kind: Kind) -> String {
    let body = serde_saphyr::to_string(&crd(kind)).unwrap_or_default();
    format!(
        "# Generated from berth's Rust types; do not edit. Regenerate with: {REGENERATE}\n{body}"
    )
}

/// What `berth schema KIND` prints: the JSON Schema, or with `crd` the CRD YAML.
pub fn render(kind: Kind, crd: bool) -> String {
    if crd {
        crd_yaml(kind)
    } else {
        serde_json::to_string_pretty(&json_schema(kind)).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// The committed `crds/` files match the types. With
    /// `BERTH_UPDATE_CRDS=1` the files are rewritten instead.
    #[test]
    fn committed_files_match_the_types() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let update =
            std::env::var_os("BERTH_UPDATE_CRDS").is_some_and(|v| v != "0" && !v.is_empty());
        let mut stale = Vec::new();
        for (path, content) in render_all() {
            let full = root.join(&path);
            if update {
                if let Some(dir) = full.parent() {
                    assert!(
                        std::fs::create_dir_all(dir).is_ok(),
                        "cannot create {}",
                        dir.display()
                    );
                }
                assert!(
                    std::fs::write(&full, &content).is_ok(),
                    "cannot write {}",
                    full.display()
                );
            } else if std::fs::read_to_string(&full).ok().as_deref() != Some(content.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "generated files differ from the Rust types: {}. Regenerate them with `{REGENERATE}` and commit crds/.",
            stale.join(", ")
        );
    }

    #[test]
    fn schemas_describe_the_kinds() {
        let c = json_schema(Kind::Component);
        assert_eq!(c["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(c["properties"]["kind"]["enum"], json!(["Component"]));
        assert_eq!(c["properties"]["apiVersion"]["enum"], json!(["berth/v1"]));
        assert_eq!(
            c["$defs"]["ObjectMeta"]["properties"]["name"]["pattern"],
            DNS_LABEL
        );
        assert_eq!(c["$defs"]["ComponentSpec"]["additionalProperties"], false);
        let n = json_schema(Kind::Node);
        assert_eq!(
            n["$defs"]["ObjectMeta"]["properties"]["name"]["maxLength"],
            253
        );

        let crd = crd(Kind::Component);
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(crd["kind"], "CustomResourceDefinition");
        assert_eq!(crd["metadata"]["name"], "components.berth");
        assert_eq!(crd["spec"]["names"]["shortNames"], json!(["comp", "comps"]));
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert_eq!(schema["type"], "object");
        let text = schema.to_string();
        assert!(!text.contains("$ref"), "CRD schema must be inlined");
        assert!(
            !text.contains("\"type\":["),
            "CRD schema must not use type lists"
        );
        assert!(text.contains("x-kubernetes-int-or-string"));
        assert_eq!(
            schema["properties"]["spec"]["properties"]["image"]["type"],
            "string"
        );
        assert_eq!(self::crd(Kind::Project)["spec"]["scope"], "Cluster");
        assert_eq!(
            self::crd(Kind::Node)["spec"]["names"]["shortNames"],
            json!(["no"])
        );
    }

    #[test]
    fn crd_yaml_parses_back() {
        for kind in Kind::ALL {
            let text = crd_yaml(kind);
            let back: Result<Value, _> = serde_saphyr::from_str(&text);
            assert_eq!(back.ok(), Some(crd(kind)), "{kind}");
        }
    }
}
