//! Whether a rendering is written and the container reloaded: only a content
//! change reloads; a failed render keeps the last good file.

/// What the driver does with one render attempt of one file in one container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Same bytes as the file in place: nothing to do.
    Unchanged,
    /// Write the file, then reload. (The file copied in before the start is
    /// not decided here: it is the `last` of the first decision, so the
    /// process is not reloaded for the bytes it started with.)
    Write,
    /// The render failed: the last good file stays, the component shows the error.
    KeepLast { error: String },
}

/// `last`: the content written into this container before; `None` when
/// unknown (adopted after an agent restart, or no file before the start): the
/// file is written and the process told, since it may hold other bytes.
pub fn decide(last: Option<&str>, rendered: &Result<String, super::Error>) -> Decision {
    match (last, rendered) {
        (_, Err(e)) => Decision::KeepLast {
            error: e.to_string(),
        },
        (Some(l), Ok(r)) if l == r => Decision::Unchanged,
        (_, Ok(_)) => Decision::Write,
    }
}

#[cfg(test)]
mod tests {
    use super::super::Error;
    use super::*;

    fn check(last: Option<&str>, rendered: Result<&str, &str>, expected: Decision) {
        let rendered = rendered.map(str::to_string).map_err(|m| Error::Render {
            line: None,
            message: m.to_string(),
        });
        assert_eq!(decide(last, &rendered), expected, "{last:?} {rendered:?}");
    }

    #[test]
    fn only_a_content_change_reloads() {
        check(None, Ok("a"), Decision::Write);
        check(Some("a"), Ok("a"), Decision::Unchanged);
        check(Some("a"), Ok("b"), Decision::Write);
        check(
            Some("a"),
            Err("undefined value"),
            Decision::KeepLast {
                error: "template render failed: undefined value".into(),
            },
        );
        check(
            None,
            Err("x"),
            Decision::KeepLast {
                error: "template render failed: x".into(),
            },
        );
    }
}
