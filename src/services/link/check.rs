//! `berth apply`'s warning: a required link that no component defines,
//! neither in etcd nor in the input (the input wins over etcd for the same
//! component). A warning, not an error: the provider may be applied next.

use std::collections::BTreeMap;

use crate::resource::component::ComponentSpec;
use crate::resource::ComponentKey;

use super::resolve::resolve;

/// One line per required link of an input component defined nowhere.
pub fn undefined_links(
    input: &[(ComponentKey, &ComponentSpec)],
    stored: &[(ComponentKey, &ComponentSpec)],
) -> Vec<String> {
    let mut all: BTreeMap<&ComponentKey, &ComponentSpec> =
        stored.iter().map(|(k, s)| (k, *s)).collect();
    for (k, s) in input {
        all.insert(k, s);
    }
    let mut out = Vec::new();
    for (k, s) in input {
        for req in s.links.iter().flat_map(|l| &l.require) {
            if resolve(&k.project, req, all.iter().map(|(k, s)| (*k, *s))).is_none() {
                out.push(format!(
                    "component {k} requires link {:?}, which no component defines (in etcd or the input): its containers start without its variables",
                    req.name
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ComponentSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn check(input: &[(&str, &str)], stored: &[(&str, &str)], expected: &[&str]) {
        let parse = |v: &[(&str, &str)]| -> Vec<(ComponentKey, ComponentSpec)> {
            v.iter()
                .map(|(k, y)| {
                    let (p, n) = k.split_once('/').unwrap();
                    (ComponentKey::new(p, n), spec(y))
                })
                .collect()
        };
        let (i, s) = (parse(input), parse(stored));
        let i: Vec<_> = i.iter().map(|(k, s)| (k.clone(), s)).collect();
        let s: Vec<_> = s.iter().map(|(k, s)| (k.clone(), s)).collect();
        let got = undefined_links(&i, &s);
        assert_eq!(got.len(), expected.len(), "{got:?}");
        for (g, want) in got.iter().zip(expected) {
            assert!(g.contains(want), "{g:?} lacks {want:?}");
        }
    }

    #[test]
    fn warns_only_for_links_defined_nowhere() {
        let web = "image: x\nlinks: {require: [{name: db}]}";
        let db =
            "image: x\nports: [{container: 5432}]\nlinks: {define: [{name: db, port: '5432'}]}";
        let db_gone = "image: x\nports: [{container: 5432}]";
        check(&[("shop/web", web), ("shop/db", db)], &[], &[]);
        check(&[("shop/web", web)], &[("shop/db", db)], &[]);
        check(
            &[("shop/web", web)],
            &[],
            &["component shop/web requires link \"db\""],
        );
        check(&[("shop/web", web)], &[("other/db", db)], &["shop/web"]);
        // The input replaces what etcd holds: db no longer defines it.
        check(
            &[("shop/web", web), ("shop/db", db_gone)],
            &[("shop/db", db)],
            &["\"db\""],
        );
    }
}
