//! Parsing and rendering config templates with minijinja.
//!
//! Strict undefined: a template naming a variable or attribute the context
//! lacks fails to render instead of writing an empty string into a server's
//! config. Fuel bounds a template that loops forever on a big context.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// Enough for a loop over tens of thousands of endpoints; a runaway
/// template stops here instead of holding the agent's thread.
const FUEL: u64 = 5_000_000;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The template does not parse: 1-based line and column inside it.
    #[error("template line {line}:{col}: {message}")]
    Syntax {
        line: usize,
        col: usize,
        message: String,
    },
    /// It parsed but failed while rendering (e.g. an undefined variable).
    #[error("template render failed{}: {message}", at_line(*line))]
    Render {
        line: Option<usize>,
        message: String,
    },
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" at template line {l}"))
        .unwrap_or_default()
}

fn env() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    // Config files are not HTML.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

/// Why `source` does not parse, positioned inside it; `Ok` when it does.
pub fn check(source: &str) -> Result<(), Error> {
    let env = env();
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| syntax(source, &e))
}

/// Renders `source` over `ctx` (strict undefined).
pub fn render<C: Serialize>(source: &str, ctx: &C) -> Result<String, Error> {
    let env = env();
    let t = env
        .template_from_str(source)
        .map_err(|e| syntax(source, &e))?;
    t.render(minijinja::Value::from(minijinja::value::Serde(ctx)))
        .map_err(|e| Error::Render {
            line: e.line(),
            message: message(&e),
        })
}

fn message(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

fn syntax(source: &str, e: &minijinja::Error) -> Error {
    let line = e.line().unwrap_or(1);
    // The column from the byte range minijinja reports, counted in chars.
    let col = e
        .range()
        .and_then(|r| {
            let before = source.get(..r.start)?;
            let start_of_line = before.rfind('\n').map_or(0, |i| i + 1);
            Some(before[start_of_line..].chars().count() + 1)
        })
        .unwrap_or(1);
    Error::Syntax {
        line,
        col,
        message: message(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_render(source: &str, ctx: serde_json::Value, expected: Result<&str, &str>) {
        match (render(source, &ctx), expected) {
            (Ok(out), Ok(want)) => assert_eq!(out, want, "template {source:?}"),
            (Err(e), Err(want)) => assert!(
                e.to_string().contains(want),
                "template {source:?}: error {e} lacks {want:?}"
            ),
            (got, want) => panic!("template {source:?}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn renders_strictly() {
        let ctx = serde_json::json!({"sources": {"web": {"endpoints": [
            {"address": "10.0.0.1", "port": 80}, {"address": "10.0.0.2", "port": 80}
        ]}}});
        check_render(
            "{% for e in sources.web.endpoints %}server {{ e.address }}:{{ e.port }}\n{% endfor %}",
            ctx.clone(),
            Ok("server 10.0.0.1:80\nserver 10.0.0.2:80\n"),
        );
        check_render("{{ sources.web.endpoints | length }}", ctx.clone(), Ok("2"));
        check_render("<{{ '&' }}>", ctx.clone(), Ok("<&>"));
        check_render("{{ nope }}", ctx.clone(), Err("undefined"));
        check_render("{{ sources.db.endpoints }}", ctx.clone(), Err("undefined"));
        check_render(
            "a\n{{ sources.web.endpoints[0].weight }}",
            ctx.clone(),
            Err("at template line 2"),
        );
        check_render(
            "{% for x in range(90000) %}{% for y in range(90000) %}{% endfor %}{% endfor %}",
            ctx,
            Err("fuel"),
        );
    }

    #[test]
    fn syntax_errors_are_positioned() {
        type Case<'a> = (&'a str, Result<(), (usize, usize)>);
        let cases: &[Case] = &[
            ("plain", Ok(())),
            ("{% for e in x %}{{ e }}{% endfor %}", Ok(())),
            ("{{ x", Err((1, 4))),
            ("line one\n  {% for %}", Err((2, 10))),
            ("a\nb\n{% endfor %}", Err((3, 4))),
        ];
        for (source, want) in cases {
            let got = check(source).map_err(|e| match e {
                Error::Syntax { line, col, .. } => (line, col),
                other => panic!("{source:?}: not a syntax error: {other}"),
            });
            assert_eq!(&got, want, "template {source:?}: {:?}", check(source));
        }
    }
}
