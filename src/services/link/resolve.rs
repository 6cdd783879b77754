//! Which component defines a required link.

use crate::resource::component::{ComponentSpec, LinkKind, LinkRequire};
use crate::resource::ComponentKey;

use super::env::default_alias;

/// A required link, found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The link as required (`db` or `shop/db`).
    pub name: String,
    pub alias: String,
    pub provider: ComponentKey,
    /// The provider's container port of the link.
    pub port: u16,
    /// That port's external (proxy) port, if it has one.
    pub external: Option<u16>,
    pub kind: LinkKind,
}

/// Finds `req` (required by a component of `project`) among `specs`. `None`:
/// defined nowhere. Several definers: the first by key (projects, then
/// names), so every node picks the same one.
pub fn resolve<'a>(
    project: &str,
    req: &LinkRequire,
    specs: impl IntoIterator<Item = (&'a ComponentKey, &'a ComponentSpec)>,
) -> Option<Resolved> {
    let (p, link) = req.name.split_once('/').unwrap_or((project, &req.name));
    let mut found: Vec<(&ComponentKey, &ComponentSpec)> = specs
        .into_iter()
        .filter(|(k, s)| {
            k.project == p
                && s.links
                    .as_ref()
                    .is_some_and(|l| l.define.iter().any(|d| d.name == link))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(b.0));
    let (key, spec) = found.first()?;
    let def = spec
        .links
        .as_ref()?
        .define
        .iter()
        .find(|d| d.name == link)?;
    let port = match def.port.parse::<u16>() {
        Ok(n) => spec.ports.iter().find(|pp| pp.container == n)?,
        Err(_) => spec
            .ports
            .iter()
            .find(|pp| pp.name.as_deref() == Some(def.port.as_str()))?,
    };
    Some(Resolved {
        name: req.name.clone(),
        alias: req
            .alias
            .clone()
            .unwrap_or_else(|| default_alias(&req.name)),
        provider: (*key).clone(),
        port: port.container,
        external: port.external,
        kind: def.kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ComponentSpec {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn check(project: &str, req: &str, expected: Option<(&str, &str, u16, Option<u16>, LinkKind)>) {
        let specs = [
            (
                ComponentKey::new("shop", "db"),
                spec("image: x\nports: [{name: sql, container: 5432, external: 15432}]\nlinks: {define: [{name: db, port: sql}]}"),
            ),
            (
                ComponentKey::new("shop", "api"),
                spec("image: x\nports: [{container: 8080}]\nlinks: {define: [{name: api, port: '8080', kind: http}]}"),
            ),
            (
                ComponentKey::new("other", "db2"),
                spec("image: x\nports: [{container: 3306}]\nlinks: {define: [{name: db, port: '3306'}]}"),
            ),
        ];
        let req = LinkRequire {
            name: req.to_string(),
            alias: None,
        };
        let got = resolve(project, &req, specs.iter().map(|(k, s)| (k, s)));
        let want = expected.map(|(p, c, port, external, kind)| Resolved {
            name: req.name.clone(),
            alias: default_alias(&req.name),
            provider: ComponentKey::new(p, c),
            port,
            external,
            kind,
        });
        assert_eq!(got, want, "{project} requires {}", req.name);
    }

    #[test]
    fn links_resolve_within_their_project() {
        check(
            "shop",
            "db",
            Some(("shop", "db", 5432, Some(15432), LinkKind::Tcp)),
        );
        check(
            "shop",
            "api",
            Some(("shop", "api", 8080, None, LinkKind::Http)),
        );
        check(
            "shop",
            "other/db",
            Some(("other", "db2", 3306, None, LinkKind::Tcp)),
        );
        check(
            "other",
            "db",
            Some(("other", "db2", 3306, None, LinkKind::Tcp)),
        );
        check("shop", "cache", None);
        check("nobody", "db", None);
    }
}
