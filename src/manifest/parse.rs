//! Parsing one input's text: each document is scanned (syntax, depth,
//! `apiVersion`/`kind`), deserialized into its kind's type with the field path
//! tracked, then validated, every error positioned in the file.

use serde::Deserialize;

use super::de::{from_tree, Ctx};
use super::error::{one_line, ErrorDetails, ManifestError};
use super::split::{split, Chunk};
use super::tree::{build, Pos, Tree, TreeError};
use super::{Limits, Loaded};
use crate::resource::validate::validate;
use crate::resource::{Kind, Object, API_VERSION};

/// Parses every document of `text` (the content of `source`) into `out`.
/// `documents` counts the documents read so far over all inputs (for
/// `Limits::max_documents`). Returns how many objects this input held.
pub(crate) fn parse_text(
    source: &str,
    text: &str,
    limits: &Limits,
    documents: &mut usize,
    out: &mut Vec<Loaded>,
) -> Result<usize, ManifestError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut n = 0usize;
    for chunk in split(text) {
        let doc = Doc {
            source,
            chunk,
            number: n + 1,
        };
        if chunk.text.len() > limits.max_document_bytes {
            let first = chunk
                .text
                .lines()
                .position(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .unwrap_or(0);
            return Err(doc.error(
                Pos {
                    line: first + 1,
                    col: 1,
                },
                None,
                None,
                format!(
                    "document is {} bytes, more than the limit of {}",
                    chunk.text.len(),
                    bytes(limits.max_document_bytes)
                ),
            ));
        }
        let mut tree = build(chunk.text, limits.max_depth).map_err(|f| doc.syntax(f))?;
        let Some(root) = tree.root.map(|r| tree.pos(r)) else {
            continue; // an empty document, e.g. after a trailing `---`
        };
        n += 1;
        *documents += 1;
        if *documents > limits.max_documents {
            return Err(doc.error(
                root,
                None,
                None,
                format!("more than {} documents in the input", limits.max_documents),
            ));
        }
        // A `kind: List` (what `berth get -o json` prints for several
        // objects) holds objects in `items`: each is parsed as a document of
        // its own, positioned where it stands in the file.
        if let Some(items) = list_items(&tree) {
            for item in items {
                tree.root = Some(item);
                let pos = tree.pos(item);
                *documents += 1;
                if *documents > limits.max_documents {
                    return Err(doc.error(
                        pos,
                        None,
                        None,
                        format!("more than {} documents in the input", limits.max_documents),
                    ));
                }
                let object = doc.parse(&tree, pos, limits)?;
                out.push(Loaded {
                    object,
                    source: source.to_string(),
                    document: doc.number,
                    line: pos.line + chunk.first_line - 1,
                });
            }
            continue;
        }
        let object = doc.parse(&tree, root, limits)?;
        out.push(Loaded {
            object,
            source: source.to_string(),
            document: doc.number,
            line: root.line + chunk.first_line - 1,
        });
    }
    Ok(n)
}

/// The item nodes of a `kind: List` document (apiVersion `berth/v1` or `v1`).
fn list_items(tree: &Tree<'_>) -> Option<Vec<usize>> {
    let (kind, _) = tree.scalar_at(&["kind"])?;
    let (api, _) = tree.scalar_at(&["apiVersion"])?;
    if kind != "List" || !(api == API_VERSION || api == "v1") {
        return None;
    }
    let (_, items) = tree.get(tree.root?, "items")?;
    match tree.data(items) {
        Some(super::tree::Data::Seq(v)) => Some(v.clone()),
        // `items:` with nothing under it: an empty list.
        _ => Some(Vec::new()),
    }
}

/// "1 MiB (1048576 bytes)"
pub(crate) fn bytes(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB ({n} bytes)", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

struct Doc<'a> {
    source: &'a str,
    chunk: Chunk<'a>,
    number: usize,
}

impl Doc<'_> {
    fn error(
        &self,
        pos: Pos,
        object: Option<String>,
        path: Option<String>,
        message: impl Into<String>,
    ) -> ManifestError {
        ManifestError::new(ErrorDetails {
            file: self.source.to_string(),
            position: Some((pos.line + self.chunk.first_line - 1, pos.col)),
            document: Some(self.number),
            object,
            path,
            message: one_line(&message.into()),
        })
    }

    fn syntax(&self, f: TreeError) -> ManifestError {
        let mut message = f.message;
        if message.contains("tabs") {
            message.push_str(" (indent with spaces, not tabs)");
        }
        self.error(f.pos, None, None, message)
    }

    fn parse(&self, tree: &Tree<'_>, root: Pos, limits: &Limits) -> Result<Object, ManifestError> {
        let api_version = tree.scalar_at(&["apiVersion"]);
        let kind_field = tree.scalar_at(&["kind"]);
        let name = tree.scalar_at(&["metadata", "name"]);
        let kind = kind_field.and_then(|(k, _)| Kind::from_manifest(k));
        let object = match (kind, name) {
            (Some(k), Some((n, _))) => Some(format!("{}/{n}", k.lower())),
            (Some(k), None) => Some(k.lower().to_string()),
            (None, Some((n, _))) => Some(n.to_string()),
            (None, None) => None,
        };
        let err = |pos: Pos, path: &str, msg: String| {
            self.error(pos, object.clone(), Some(path.to_string()), msg)
        };

        let root_is_map = tree
            .root
            .is_some_and(|r| matches!(tree.data(r), Some(super::tree::Data::Map(_))));
        if !root_is_map {
            return Err(self.error(
                root,
                None,
                None,
                "expected an object (a mapping with apiVersion, kind, metadata and spec)",
            ));
        }
        match api_version {
            None => {
                return Err(err(
                    root,
                    "apiVersion",
                    format!("missing field `apiVersion`: expected {API_VERSION:?}"),
                ))
            }
            Some((v, pos)) if v != API_VERSION => {
                return Err(err(
                    pos,
                    "apiVersion",
                    format!("unknown apiVersion {v:?}: expected {API_VERSION:?}"),
                ))
            }
            Some(_) => {}
        }
        let known = Kind::ALL.map(Kind::name).join(", ");
        let kind = match (kind_field, kind) {
            (None, _) => {
                return Err(err(
                    root,
                    "kind",
                    format!("missing field `kind`: expected one of {known}"),
                ));
            }
            (Some((k, pos)), None) => {
                let hint = match k.parse::<Kind>() {
                    Ok(kk) => format!(" (kinds are case-sensitive: did you mean {}?)", kk.name()),
                    Err(_) => String::new(),
                };
                return Err(err(
                    pos,
                    "kind",
                    format!("unknown kind {k:?}: expected one of {known}{hint}"),
                ));
            }
            (Some(_), Some(kind)) => kind,
        };

        let cx = Ctx::new(tree, limits.max_depth);
        let object = match kind {
            Kind::Project => self.typed(&cx, &object).map(Object::Project),
            Kind::Component => self.typed(&cx, &object).map(Object::Component),
            Kind::Node => self.typed(&cx, &object).map(Object::Node),
        }?;

        let violations = validate(&object);
        if let Some(first) = violations.first() {
            let pos = tree.locate(&first.path).unwrap_or(root);
            let mut message = first.message.clone();
            if violations.len() > 1 {
                let others: Vec<&str> = violations[1..].iter().map(|v| v.path.as_str()).collect();
                message.push_str(&format!(
                    " (and {} more: {})",
                    others.len(),
                    others.join(", ")
                ));
            }
            return Err(self.error(
                pos,
                Some(object.display_name()),
                Some(first.path.clone()),
                message,
            ));
        }
        Ok(object)
    }

    /// Deserializes the document into `T`.
    fn typed<'a, T: Deserialize<'a>>(
        &self,
        cx: &Ctx<'_, 'a>,
        object: &Option<String>,
    ) -> Result<T, ManifestError> {
        from_tree(cx).map_err(|e| {
            let pos = e.pos.unwrap_or(Pos { line: 1, col: 1 });
            let message = e
                .message
                .replace("expected u16", "expected u16 (0 to 65535)")
                .replace("expected u8", "expected u8 (0 to 255)")
                .replace("expected f64", "expected a number")
                .replace("expected f32", "expected a number");
            self.error(pos, object.clone(), e.path, message)
        })
    }
}
