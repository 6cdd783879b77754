//! A document as a tree of positioned nodes, built from the YAML event
//! parser without recursion (so a document nested 10,000 levels deep is
//! rejected by the depth limit, never by a stack overflow).
//!
//! The tree is what [`super::de`] deserializes typed objects from, and what
//! turns a field path back into a line and column.

use std::borrow::Cow;

use serde_saphyr::granit_parser::{self as yaml, Event, Marker, ScalarStyle};

/// A 1-based line and column, relative to the parsed text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn of(m: &Marker) -> Pos {
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Data<'a> {
    /// Text, and whether it is plain (unquoted, untagged): only plain
    /// scalars resolve to null, booleans and numbers.
    Scalar(Cow<'a, str>, bool),
    Seq(Vec<usize>),
    /// Keys and values, in order.
    Map(Vec<(usize, usize)>),
    /// Refers to an anchored node.
    Alias(usize),
}

#[derive(Debug)]
pub(crate) struct Node<'a> {
    pub pos: Pos,
    pub data: Data<'a>,
}

/// One parsed document.
#[derive(Debug, Default)]
pub(crate) struct Tree<'a> {
    pub nodes: Vec<Node<'a>>,
    /// `None` for an empty document (nothing, or a plain null).
    pub root: Option<usize>,
}

/// A syntax or nesting error, positioned.
#[derive(Debug)]
pub(crate) struct TreeError {
    pub pos: Pos,
    pub message: String,
}

struct Frame {
    node: usize,
    children: Vec<usize>,
    anchor: usize,
}

/// Whether a plain scalar is YAML's null.
pub(crate) fn is_null_text(t: &str) -> bool {
    matches!(t, "" | "~" | "null" | "Null" | "NULL")
}

/// Parses `text`, which must hold at most one YAML document.
pub(crate) fn build(text: &str, max_depth: usize) -> Result<Tree<'_>, TreeError> {
    let mut options = yaml::Options::default();
    options.emit_comments = false;
    // Our own depth check (with a clearer message) fires first.
    options.flow_nesting_limit = max_depth.saturating_add(1);
    options.block_nesting_limit = max_depth.saturating_add(1);
    let mut parser = yaml::Parser::new_from_str_with_options(text, options);
    let mut tree = Tree::default();
    let mut stack: Vec<Frame> = Vec::new();
    // Anchor id → node; anchors still open (their collection not ended) are
    // not registered yet, so an alias into its own ancestor is an error.
    let mut anchors: Vec<(usize, usize)> = Vec::new();
    let mut documents = 0usize;

    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| {
            // The scanner reads flow collections ahead of the events, so its
            // own nesting limit (set just above ours) can fire first.
            let message = if matches!(e.kind(), yaml::ErrorKind::RecursionLimitExceeded) {
                format!("nested more than {max_depth} levels deep")
            } else {
                format!("invalid YAML: {}", e.info())
            };
            TreeError {
                pos: Pos::of(e.marker()),
                message,
            }
        })?;
        let pos = Pos::of(&span.start);
        let node = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(TreeError {
                        pos,
                        message: "a second document in one: separate documents with a '---' line"
                            .into(),
                    });
                }
                continue;
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let Some(frame) = stack.pop() else { continue };
                let data = if matches!(tree.nodes[frame.node].data, Data::Map(_)) {
                    Data::Map(
                        frame
                            .children
                            .chunks(2)
                            .map(|kv| (kv[0], kv.get(1).copied().unwrap_or(kv[0])))
                            .collect(),
                    )
                } else {
                    Data::Seq(frame.children)
                };
                tree.nodes[frame.node].data = data;
                if frame.anchor != 0 {
                    anchors.push((frame.anchor, frame.node));
                }
                attach(&mut tree, &mut stack, frame.node);
                continue;
            }
            Event::MappingStart(_, anchor, _) | Event::SequenceStart(_, anchor, _) => {
                if stack.len() >= max_depth {
                    return Err(TreeError {
                        pos,
                        message: format!("nested more than {max_depth} levels deep"),
                    });
                }
                let is_map = matches!(event, Event::MappingStart(..));
                let idx = tree.nodes.len();
                tree.nodes.push(Node {
                    pos,
                    data: if is_map {
                        Data::Map(Vec::new())
                    } else {
                        Data::Seq(Vec::new())
                    },
                });
                stack.push(Frame {
                    node: idx,
                    children: Vec::new(),
                    anchor,
                });
                continue;
            }
            Event::Scalar(text, style, anchor, tag) => {
                // A tag such as `!!str` or `!` makes the scalar a string.
                let plain = style == ScalarStyle::Plain && tag.is_none();
                let idx = tree.nodes.len();
                tree.nodes.push(Node {
                    pos,
                    data: Data::Scalar(text, plain),
                });
                if anchor != 0 {
                    anchors.push((anchor, idx));
                }
                idx
            }
            Event::Alias(id) => {
                let Some(&(_, target)) = anchors.iter().rev().find(|(a, _)| *a == id) else {
                    return Err(TreeError {
                        pos,
                        message: "an alias cannot refer to the collection that contains it".into(),
                    });
                };
                let idx = tree.nodes.len();
                tree.nodes.push(Node {
                    pos,
                    data: Data::Alias(target),
                });
                idx
            }
            _ => continue,
        };
        attach(&mut tree, &mut stack, node);
    }
    Ok(tree)
}

/// Adds a finished node to its parent, or makes it the root.
fn attach(tree: &mut Tree<'_>, stack: &mut [Frame], node: usize) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(node),
        None => {
            let null = matches!(&tree.nodes[node].data, Data::Scalar(t, true) if is_null_text(t));
            if tree.root.is_none() && !null {
                tree.root = Some(node);
            }
        }
    }
}

impl<'a> Tree<'a> {
    /// Follows an alias to the node it stands for.
    pub fn resolve(&self, mut node: usize) -> usize {
        // Aliases point at anchored non-alias nodes; the bound is defensive.
        for _ in 0..8 {
            match self.nodes.get(node).map(|n| &n.data) {
                Some(Data::Alias(t)) => node = *t,
                _ => break,
            }
        }
        node
    }

    pub fn data(&self, node: usize) -> Option<&Data<'a>> {
        self.nodes.get(self.resolve(node)).map(|n| &n.data)
    }

    pub fn pos(&self, node: usize) -> Pos {
        self.nodes.get(node).map(|n| n.pos).unwrap_or_default()
    }

    /// The text of a scalar node.
    pub fn text(&self, node: usize) -> Option<&str> {
        match self.data(node) {
            Some(Data::Scalar(t, _)) => Some(t),
            _ => None,
        }
    }

    /// The value under `key` in the mapping `map`, with the key node.
    pub fn get(&self, map: usize, key: &str) -> Option<(usize, usize)> {
        match self.data(map) {
            Some(Data::Map(entries)) => entries
                .iter()
                .find(|(k, _)| self.text(*k) == Some(key))
                .copied(),
            _ => None,
        }
    }

    /// The scalar text at a top-level path such as `["metadata", "name"]`.
    pub fn scalar_at(&self, keys: &[&str]) -> Option<(&str, Pos)> {
        let mut node = self.root?;
        for k in keys {
            node = self.get(node, k)?.1;
        }
        let node = self.resolve(node);
        self.text(node).map(|t| (t, self.pos(node)))
    }

    /// The position to report for a field path (`spec.ports[1].container`):
    /// a scalar's value, or the key introducing a collection. A path that is
    /// not in the document points at its nearest ancestor that is.
    pub fn locate(&self, path: &str) -> Option<Pos> {
        let mut node = self.root?;
        let mut key_node: Option<usize> = None;
        for seg in segments(path) {
            let next = match (&seg, self.data(node)) {
                (Seg::Key(k), Some(Data::Map(_))) => self.get(node, k).map(|(kn, v)| (Some(kn), v)),
                (Seg::Index(i), Some(Data::Seq(items))) => items.get(*i).map(|v| (None, *v)),
                _ => None,
            };
            match next {
                Some((k, v)) => {
                    key_node = k;
                    node = v;
                }
                None => break,
            }
        }
        let scalar = matches!(self.data(node), Some(Data::Scalar(..)));
        Some(match key_node {
            Some(k) if !scalar => self.pos(k),
            _ => self.pos(node),
        })
    }
}

enum Seg {
    Key(String),
    Index(usize),
}

/// Splits a path written by `validate::push_key`/`push_index` into segments.
fn segments(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        } else if let Some(r) = rest.strip_prefix("[\"") {
            // A JSON string up to the first unescaped quote followed by ']'.
            let mut end = None;
            let mut escaped = false;
            for (i, c) in r.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let Some(end) = end else { break };
            let key: String =
                serde_json::from_str(&format!("\"{}\"", &r[..end])).unwrap_or_default();
            out.push(Seg::Key(key));
            rest = r[end + 1..].strip_prefix(']').unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            match r[..end].parse() {
                Ok(i) => out.push(Seg::Index(i)),
                Err(_) => break,
            }
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Seg::Key(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    out
}
