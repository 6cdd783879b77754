//! Reading manifests: files, directories (recursively) and stdin, holding
//! multi-document YAML or JSON, into typed, validated [`Object`]s.
//!
//! Every problem is reported as one [`ManifestError`] line naming the file,
//! line:column, document, object and field path. Inputs are bounded by
//! [`Limits`] (size per file and per document, nesting depth, document count)
//! so hostile input fails cleanly instead of exhausting memory or stack.

mod de;
mod error;
mod input;
mod parse;
mod split;
mod tree;

#[cfg(test)]
mod tests;

use std::collections::HashMap;

pub use error::{ErrorDetails, ManifestError};
pub use input::{EXTENSIONS, STDIN};

use crate::resource::{Kind, Object};

/// Bounds on what [`load`] and [`parse_str`] accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest input file (or stdin), in bytes. Default 16 MiB: room for
    /// 10,000 components in one file.
    pub max_bytes: usize,
    /// Largest single document, in bytes. Default 1 MiB: etcd refuses
    /// requests over 1.5 MiB, so a bigger object could never be stored.
    pub max_document_bytes: usize,
    /// Deepest nesting of mappings and sequences. Default 64 (a Component
    /// needs about 6).
    pub max_depth: usize,
    /// Most documents over all inputs of one call. Default 20,000.
    pub max_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 << 20,
            max_document_bytes: 1 << 20,
            max_depth: 64,
            max_documents: 20_000,
        }
    }
}

/// One object read from a manifest, with where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    pub object: Object,
    /// The file path (as given or as found in a directory), or `<stdin>`.
    pub source: String,
    /// 1-based index of the document within its file.
    pub document: usize,
    /// 1-based line where the document's content starts.
    pub line: usize,
}

impl Loaded {
    /// `file:line`, for messages.
    pub fn location(&self) -> String {
        format!("{}:{}", self.source, self.line)
    }
}

/// Reads every input (a file, a directory read recursively, or `-` for
/// stdin), parses and validates every document, and returns the objects in
/// input order. The first problem found is the error; nothing is returned
/// then.
///
/// Directories are read in name order; files ending in `.yaml`, `.yml` or
/// `.json` are manifests, hidden entries (`.git`) are skipped, and any other
/// file is an error. A file named explicitly is read whatever its name.
/// An input holding no object at all is an error, and so is the same object
/// (kind, project, name) twice.
pub fn load(inputs: &[String], limits: &Limits) -> Result<Vec<Loaded>, ManifestError> {
    if inputs.is_empty() {
        return Err(ManifestError::file("-f", "no input given"));
    }
    let files = input::expand(inputs)?;
    let mut out = Vec::new();
    let mut documents = 0;
    for file in &files {
        let text = input::read(file, limits)?;
        parse_one(&file.name(), &text, limits, &mut documents, &mut out)?;
    }
    check_duplicates(&out)?;
    Ok(out)
}

/// Parses and validates the manifest text `text`, naming it `source` in
/// errors.
pub fn parse_str(source: &str, text: &str, limits: &Limits) -> Result<Vec<Loaded>, ManifestError> {
    if text.len() > limits.max_bytes {
        return Err(ManifestError::file(
            source,
            format!(
                "input is larger than the limit of {}",
                parse::bytes(limits.max_bytes)
            ),
        ));
    }
    let mut out = Vec::new();
    parse_one(source, text, limits, &mut 0, &mut out)?;
    check_duplicates(&out)?;
    Ok(out)
}

fn parse_one(
    source: &str,
    text: &str,
    limits: &Limits,
    documents: &mut usize,
    out: &mut Vec<Loaded>,
) -> Result<(), ManifestError> {
    if parse::parse_text(source, text, limits, documents, out)? == 0 {
        return Err(ManifestError::new(ErrorDetails {
            file: source.to_string(),
            position: Some((1, 1)),
            document: None,
            object: None,
            path: None,
            message: "no objects found (the input is empty or holds only comments)".into(),
        }));
    }
    Ok(())
}

/// The same kind, project and name twice is an error at the second one.
fn check_duplicates(loaded: &[Loaded]) -> Result<(), ManifestError> {
    let mut seen: HashMap<(Kind, Option<&str>, &str), &Loaded> = HashMap::new();
    for l in loaded {
        let key = (l.object.kind(), l.object.project(), l.object.name());
        if let Some(first) = seen.insert(key, l) {
            let where_ = if first.source == l.source {
                format!("document {} (line {})", first.document, first.line)
            } else {
                format!(
                    "{}:{} (document {})",
                    first.source, first.line, first.document
                )
            };
            let project = l
                .object
                .project()
                .map_or(String::new(), |p| format!(" in project {p}"));
            return Err(ManifestError::new(ErrorDetails {
                file: l.source.clone(),
                position: Some((l.line, 1)),
                document: Some(l.document),
                object: Some(l.object.display_name()),
                path: Some("metadata.name".into()),
                message: format!(
                    "{}{project} is defined twice: also in {where_}",
                    l.object.display_name()
                ),
            }));
        }
    }
    Ok(())
}
