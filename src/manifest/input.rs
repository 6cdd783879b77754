//! Finding and reading inputs: files, directories (recursively, sorted) and
//! stdin, each bounded by `Limits::max_bytes`.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::{ErrorDetails, ManifestError};
use super::parse::bytes;
use super::Limits;

/// Name used for stdin in errors and `Loaded::source`.
pub const STDIN: &str = "<stdin>";

/// File extensions read from directories (compared case-insensitively).
pub const EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// One input to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    pub(crate) fn name(&self) -> String {
        match self {
            Input::Stdin => STDIN.to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

fn at_start(file: &str, message: impl Into<String>) -> ManifestError {
    ManifestError::new(ErrorDetails {
        file: file.to_string(),
        position: Some((1, 1)),
        document: None,
        object: None,
        path: None,
        message: message.into(),
    })
}

/// Expands the command-line inputs into the files to read, in order.
pub(crate) fn expand(inputs: &[String]) -> Result<Vec<Input>, ManifestError> {
    let mut out = Vec::new();
    let mut stdin = false;
    for input in inputs {
        if input == "-" {
            if stdin {
                return Err(ManifestError::file(
                    STDIN,
                    "stdin ('-') given more than once",
                ));
            }
            stdin = true;
            out.push(Input::Stdin);
            continue;
        }
        let path = Path::new(input);
        let meta = fs::metadata(path)
            .map_err(|e| ManifestError::file(input, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            let mut seen = HashSet::new();
            walk(path, &mut seen, &mut out, 0)?;
        } else {
            // A file named explicitly is read whatever its extension.
            out.push(Input::File(path.to_path_buf()));
        }
    }
    Ok(out)
}

fn has_manifest_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Adds the manifests under `dir` in name order. Hidden entries (names
/// starting with '.', such as `.git`) are skipped; any other file must be a
/// manifest.
fn walk(
    dir: &Path,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<Input>,
    depth: usize,
) -> Result<(), ManifestError> {
    let name = dir.display().to_string();
    if depth > 32 {
        return Err(ManifestError::file(
            &name,
            "directories nested more than 32 levels deep",
        ));
    }
    // Symbolic links may form loops: visit each real directory once.
    let real = fs::canonicalize(dir)
        .map_err(|e| ManifestError::file(&name, format!("cannot read: {e}")))?;
    if !seen.insert(real) {
        return Ok(());
    }
    let entries = fs::read_dir(dir)
        .map_err(|e| ManifestError::file(&name, format!("cannot read directory: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry =
            entry.map_err(|e| ManifestError::file(&name, format!("cannot read directory: {e}")))?;
        paths.push(entry.path());
    }
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        let shown = path.display().to_string();
        let meta = fs::metadata(&path)
            .map_err(|e| ManifestError::file(&shown, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            walk(&path, seen, out, depth + 1)?;
        } else if has_manifest_extension(&path) {
            out.push(Input::File(path));
        } else {
            return Err(at_start(
                &shown,
                format!(
                    "not a manifest file: a directory given to -f may only hold files ending in .{} (found in {name})",
                    EXTENSIONS.join(", .")
                ),
            ));
        }
    }
    Ok(())
}

/// Reads one input as UTF-8 text of at most `limits.max_bytes`.
pub(crate) fn read(input: &Input, limits: &Limits) -> Result<String, ManifestError> {
    let name = input.name();
    let cap = u64::try_from(limits.max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut buf = Vec::new();
    let result = match input {
        Input::Stdin => std::io::stdin().lock().take(cap).read_to_end(&mut buf),
        Input::File(p) => {
            let f = fs::File::open(p)
                .map_err(|e| ManifestError::file(&name, format!("cannot read: {e}")))?;
            if f.metadata().is_ok_and(|m| m.len() > cap - 1) {
                return Err(at_start(&name, too_big(limits)));
            }
            f.take(cap).read_to_end(&mut buf)
        }
    };
    result.map_err(|e| ManifestError::file(&name, format!("cannot read: {e}")))?;
    if buf.len() > limits.max_bytes {
        return Err(at_start(&name, too_big(limits)));
    }
    String::from_utf8(buf).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let col = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
        ManifestError::new(ErrorDetails {
            file: name.clone(),
            position: Some((line, col)),
            document: None,
            object: None,
            path: None,
            message: "not UTF-8 text".into(),
        })
    })
}

fn too_big(limits: &Limits) -> String {
    format!(
        "input is larger than the limit of {}",
        bytes(limits.max_bytes)
    )
}
