//! Label selectors as kubectl writes them: `k=v`, `k==v`, `k!=v`, `k`, `!k`,
//! comma-separated; every term must match.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Term {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selector(Vec<Term>);

impl std::str::FromStr for Selector {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let bad =
                || format!("invalid label selector term {raw:?}: expected k=v, k!=v, k or !k");
            let valid = |k: &str| {
                !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
            };
            let term = if let Some((k, v)) = raw.split_once("!=") {
                Term::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = raw.split_once("==").or_else(|| raw.split_once('=')) {
                Term::Eq(k.trim().into(), v.trim().into())
            } else if let Some(k) = raw.strip_prefix('!') {
                Term::NotExists(k.trim().into())
            } else {
                Term::Exists(raw.into())
            };
            let key = match &term {
                Term::Eq(k, _) | Term::NotEq(k, _) | Term::Exists(k) | Term::NotExists(k) => k,
            };
            if !valid(key) {
                return Err(bad());
            }
            terms.push(term);
        }
        Ok(Selector(terms))
    }
}

impl Selector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|t| match t {
            Term::Eq(k, v) => labels.get(k) == Some(v),
            Term::NotEq(k, v) => labels.get(k) != Some(v),
            Term::Exists(k) => labels.contains_key(k),
            Term::NotExists(k) => !labels.contains_key(k),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(selector: &str, labels: &[(&str, &str)], expected: Result<bool, &str>) {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match (selector.parse::<Selector>(), expected) {
            (Ok(s), Ok(want)) => assert_eq!(s.matches(&labels), want, "{selector}"),
            (Err(e), Err(want)) => assert!(e.contains(want), "{e}"),
            (got, want) => panic!("{selector}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn selectors() {
        check("tier=front", &[("tier", "front")], Ok(true));
        check("tier==front", &[("tier", "back")], Ok(false));
        check("tier!=front", &[], Ok(true));
        check("tier,zone=a", &[("tier", "x"), ("zone", "a")], Ok(true));
        check("!tier", &[("tier", "x")], Ok(false));
        check("", &[], Ok(true));
        check("a b=c", &[], Err("invalid label selector"));
    }
}
