//! `ManifestError`: one line naming the file, position, document, object and
//! field path of the first problem found.

use std::fmt;

/// Why reading manifests failed. Displays as one line:
///
/// `FILE:LINE:COL: document N (kind/name): FIELD.PATH: cause`
///
/// Parts that are unknown are left out: an unreadable file is `FILE: cause`,
/// a YAML syntax error has no field path, a document without a recognizable
/// kind has no `(kind/name)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError(Box<ErrorDetails>);

/// The parts of a [`ManifestError`] (reachable through `Deref`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorDetails {
    /// The file path as given (or found in a directory), or `<stdin>`.
    pub file: String,
    /// 1-based line and column in the file, when known.
    pub position: Option<(usize, usize)>,
    /// 1-based index of the document in the file, when the problem is in one.
    pub document: Option<usize>,
    /// `component/web`, `component`, `project/shop`: as much as is known.
    pub object: Option<String>,
    /// Field path such as `spec.ports[1].container`, when the problem is in a field.
    pub path: Option<String>,
    /// What is wrong, on one line.
    pub message: String,
}

impl ManifestError {
    pub(crate) fn file(file: &str, message: impl Into<String>) -> Self {
        ManifestError::new(ErrorDetails {
            file: file.to_string(),
            position: None,
            document: None,
            object: None,
            path: None,
            message: one_line(&message.into()),
        })
    }

    pub(crate) fn new(details: ErrorDetails) -> Self {
        ManifestError(Box::new(details))
    }

    pub fn details(&self) -> &ErrorDetails {
        &self.0
    }
}

impl std::ops::Deref for ManifestError {
    type Target = ErrorDetails;
    fn deref(&self) -> &ErrorDetails {
        &self.0
    }
}

/// Collapses every run of whitespace (newlines included) into one space.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if let Some(n) = self.document {
            write!(f, ": document {n}")?;
            if let Some(o) = &self.object {
                write!(f, " ({o})")?;
            }
        }
        if let Some(p) = self.path.as_deref().filter(|p| !p.is_empty()) {
            write!(f, ": {p}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ManifestError {}
