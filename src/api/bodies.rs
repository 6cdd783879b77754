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
