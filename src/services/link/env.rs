//! The consumer's link variables, after Docker's legacy links
//! (`DB_PORT_5432_TCP_ADDR`), named `_CLINK` so they never collide with
//! Docker's own.

use std::collections::BTreeMap;

use crate::resource::component::LinkKind;

/// The address every link has inside the consumer's container: its own
/// loopback. The agent's relay listens there, in the container's network
/// namespace, so the address survives every update of the provider.
pub const LINK_ADDR: &str = "127.0.0.1";

/// `db` -> `DB`, `my-db` -> `MY_DB`, `shop/db` -> `DB`.
pub fn default_alias(link: &str) -> String {
    let name = link.rsplit('/').next().unwrap_or(link);
    name.to_ascii_uppercase().replace('-', "_")
}

/// `{ALIAS}_CLINK=tcp://ADDR:PORT` and `{ALIAS}_CLINK_{PORT}_{KIND}` with
/// its `_PROTO`, `_ADDR` and `_PORT`.
pub fn env(alias: &str, port: u16, kind: LinkKind) -> BTreeMap<String, String> {
    let k = kind.as_str();
    let url = format!("{k}://{LINK_ADDR}:{port}");
    let base = format!("{alias}_CLINK_{port}_{}", k.to_ascii_uppercase());
    BTreeMap::from([
        (
            format!("{alias}_CLINK"),
            format!("tcp://{LINK_ADDR}:{port}"),
        ),
        (format!("{base}_PROTO"), k.to_string()),
        (format!("{base}_ADDR"), LINK_ADDR.to_string()),
        (format!("{base}_PORT"), port.to_string()),
        (base, url),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(alias: &str, port: u16, kind: LinkKind, expected: &[(&str, &str)]) {
        let want: BTreeMap<String, String> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(env(alias, port, kind), want);
    }

    #[test]
    fn variables() {
        check(
            "DB",
            5432,
            LinkKind::Tcp,
            &[
                ("DB_CLINK", "tcp://127.0.0.1:5432"),
                ("DB_CLINK_5432_TCP", "tcp://127.0.0.1:5432"),
                ("DB_CLINK_5432_TCP_PROTO", "tcp"),
                ("DB_CLINK_5432_TCP_ADDR", "127.0.0.1"),
                ("DB_CLINK_5432_TCP_PORT", "5432"),
            ],
        );
        check(
            "API",
            8080,
            LinkKind::Http,
            &[
                ("API_CLINK", "tcp://127.0.0.1:8080"),
                ("API_CLINK_8080_HTTP", "http://127.0.0.1:8080"),
                ("API_CLINK_8080_HTTP_PROTO", "http"),
                ("API_CLINK_8080_HTTP_ADDR", "127.0.0.1"),
                ("API_CLINK_8080_HTTP_PORT", "8080"),
            ],
        );
    }

    #[test]
    fn aliases() {
        for (link, want) in [("db", "DB"), ("my-db", "MY_DB"), ("shop/db", "DB")] {
            assert_eq!(default_alias(link), want, "{link}");
        }
    }
}
