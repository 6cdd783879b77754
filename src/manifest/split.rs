//! Splitting a YAML stream into documents.
//!
//! A line starting with `---` or `...` (followed by nothing or whitespace) at
//! column 0 is always a document marker: YAML forbids such a line inside any
//! scalar. Splitting ourselves lets each document be parsed on its own (a
//! kind-specific type per document, bounded size per document), with its line
//! numbers shifted back to the file's.

/// One document's text and where it starts in the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunk<'a> {
    pub text: &'a str,
    /// 1-based line of the file where `text` starts.
    pub first_line: usize,
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']))
}

/// Whether a line carries no document content (blank, comment or directive).
fn is_blank(line: &str) -> bool {
    let t = line.trim_start();
    t.is_empty() || t.starts_with('#')
}

/// Splits `text` into documents. Chunks holding nothing but blank lines and
/// comments are kept; the scanner finds them empty.
pub(crate) fn split(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let mut start = 0usize; // byte offset of the current chunk
    let mut start_line = 1usize;
    let mut has_content = false; // anything but blank lines, comments and directives
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        if is_marker(line, "---") {
            // Directives (`%YAML`) belong to the document their `---` starts.
            if has_content {
                chunks.push(Chunk {
                    text: &text[start..offset],
                    first_line: start_line,
                });
                start = offset;
                start_line = line_no;
            }
            has_content = true;
        } else if is_marker(line, "...") {
            let end = offset + line.len();
            chunks.push(Chunk {
                text: &text[start..end],
                first_line: start_line,
            });
            start = end;
            start_line = line_no + 1;
            has_content = false;
        } else if !is_blank(line) && !line.starts_with('%') {
            has_content = true;
        }
        offset += line.len();
    }
    if start < text.len() {
        chunks.push(Chunk {
            text: &text[start..],
            first_line: start_line,
        });
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(text: &str) -> Vec<(usize, &str)> {
        split(text).iter().map(|c| (c.first_line, c.text)).collect()
    }

    #[test]
    fn splits_on_markers() {
        assert_eq!(
            parts("a: 1\n---\nb: 2\n"),
            vec![(1, "a: 1\n"), (2, "---\nb: 2\n")]
        );
        assert_eq!(
            parts("---\na: 1\n---\n"),
            vec![(1, "---\na: 1\n"), (3, "---\n")]
        );
        assert_eq!(parts("# c\n---\na: 1"), vec![(1, "# c\n---\na: 1")]);
        assert_eq!(
            parts("a: 1\n...\nb: 2\n"),
            vec![(1, "a: 1\n...\n"), (3, "b: 2\n")]
        );
        assert_eq!(
            parts("%YAML 1.2\n---\na: 1\n"),
            vec![(1, "%YAML 1.2\n---\na: 1\n")]
        );
        assert_eq!(
            parts("a: 1\r\n--- \r\nb: |\n  ---x\n----\n"),
            vec![(1, "a: 1\r\n"), (2, "--- \r\nb: |\n  ---x\n----\n")]
        );
        assert_eq!(parts(""), Vec::<(usize, &str)>::new());
    }
}
