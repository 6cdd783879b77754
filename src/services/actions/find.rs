//! Finding one container cluster-wide: `observed/` says which node runs it.
//!
//! A container is named by its Docker name, its full id, or a prefix of its
//! id of at least [`MIN_ID_PREFIX`] characters (what `get containers`
//! shows), always within one project.

use crate::resource::observed::ContainerRow;
use crate::store::Store;

use super::ActionError;

/// The shortest id prefix accepted (Docker's short id is 12).
pub const MIN_ID_PREFIX: usize = 12;

/// The one row of `project` that `wanted` names. Pure.
pub fn pick(
    rows: Vec<ContainerRow>,
    project: &str,
    wanted: &str,
) -> Result<ContainerRow, ActionError> {
    let mut of_project: Vec<ContainerRow> =
        rows.into_iter().filter(|r| r.project == project).collect();
    // An exact name or id wins over prefixes.
    if let Some(i) = of_project
        .iter()
        .position(|r| r.container.name == wanted || r.container.id == wanted)
    {
        return Ok(of_project.swap_remove(i));
    }
    let by_prefix: Vec<ContainerRow> = if wanted.len() >= MIN_ID_PREFIX {
        of_project
            .into_iter()
            .filter(|r| r.container.id.starts_with(wanted))
            .collect()
    } else {
        Vec::new()
    };
    match <[ContainerRow; 1]>::try_from(by_prefix) {
        Ok([one]) => Ok(one),
        Err(v) if v.is_empty() => Err(ActionError::NotFound {
            project: project.into(),
            wanted: wanted.into(),
        }),
        Err(v) => Err(ActionError::Ambiguous {
            project: project.into(),
            wanted: wanted.into(),
            candidates: v
                .iter()
                .map(|r| r.container.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// Reads the project's observed documents (every node) and picks the
/// container. Documents that do not decode are skipped (logged): a
/// container is never guessed at.
pub async fn find_container(
    store: &Store,
    project: &str,
    wanted: &str,
) -> Result<ContainerRow, ActionError> {
    let (rows, bad) = store.observed_rows(|_, c| c.project == project).await?;
    for key in bad {
        tracing::warn!(key = %key, "observed document does not decode; its containers cannot be found");
    }
    pick(rows, project, wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::observed::ObservedContainer;

    fn row(node: &str, project: &str, name: &str, id: &str) -> ContainerRow {
        ContainerRow {
            node: node.into(),
            project: project.into(),
            component: "web".into(),
            container: ObservedContainer {
                id: id.into(),
                name: name.into(),
                ..Default::default()
            },
        }
    }

    fn rows() -> Vec<ContainerRow> {
        vec![
            row("a", "shop", "shop-web-1", "aaaaaaaaaaaa1111"),
            row("b", "shop", "shop-web-2", "aaaaaaaaaaaa2222"),
            row("b", "shop", "shop-db-1", "bbbbbbbbbbbb1111"),
            row("a", "blog", "blog-web-1", "cccccccccccc1111"),
        ]
    }

    /// `Ok(node/name)` or the error's first words.
    fn check(project: &str, wanted: &str, expected: Result<&str, &str>) {
        let got = pick(rows(), project, wanted)
            .map(|r| format!("{}/{}", r.node, r.container.name))
            .map_err(|e| e.to_string());
        match (&got, expected) {
            (Ok(g), Ok(e)) => assert_eq!(g, e, "{project} {wanted}"),
            (Err(g), Err(e)) => assert!(g.starts_with(e), "{project} {wanted}: {g}"),
            _ => panic!("{project} {wanted}: got {got:?}, expected {expected:?}"),
        }
    }

    #[test]
    fn picks_by_name_id_or_unique_prefix_within_the_project() {
        check("shop", "shop-web-2", Ok("b/shop-web-2"));
        check("shop", "aaaaaaaaaaaa1111", Ok("a/shop-web-1"));
        check("shop", "bbbbbbbbbbbb", Ok("b/shop-db-1"));
        check(
            "shop",
            "aaaaaaaaaaaa",
            Err("container \"aaaaaaaaaaaa\" is ambiguous"),
        );
        // Too short a prefix is no match (a typo must not hit a container).
        check("shop", "bbbb", Err("container \"bbbb\" not found"));
        // Another project's container is not found by name or id.
        check(
            "shop",
            "blog-web-1",
            Err("container \"blog-web-1\" not found"),
        );
        check("blog", "cccccccccccc1111", Ok("a/blog-web-1"));
        check(
            "nope",
            "shop-web-1",
            Err("container \"shop-web-1\" not found"),
        );
    }
}
