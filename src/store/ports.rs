//! External ports are cluster-wide: every node's proxy owns each one for one
//! component. `apply` refuses an input that would give one port to two
//! components (in the input, or against what etcd holds), before any write.

use std::collections::BTreeMap;

use crate::resource::{ComponentKey, Object, DEFAULT_PROJECT};

/// Two components that claim one external port.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("external port {port} is claimed by both component {first} and component {second}: external ports are cluster-wide (across projects); change one of them")]
pub struct PortConflict {
    pub port: u16,
    /// The component that holds it (in etcd, or earlier in the input).
    pub first: ComponentKey,
    /// The component of the input that claims it too.
    pub second: ComponentKey,
}

/// The external ports of a component object (none for other kinds).
pub fn externals(o: &Object) -> Option<(ComponentKey, Vec<u16>)> {
    match o {
        Object::Component(c) => Some((
            ComponentKey::new(o.project().unwrap_or(DEFAULT_PROJECT), o.name()),
            c.spec.ports.iter().filter_map(|p| p.external).collect(),
        )),
        _ => None,
    }
}

/// The first conflict (pure): `stored` is every component in etcd with its
/// external ports, `input` the components being applied, which replace
/// their stored selves.
pub fn check(
    stored: &[(ComponentKey, Vec<u16>)],
    input: &[(ComponentKey, Vec<u16>)],
) -> Result<(), PortConflict> {
    let mut owner: BTreeMap<u16, &ComponentKey> = BTreeMap::new();
    let applied = |k: &ComponentKey| input.iter().any(|(i, _)| i == k);
    for (k, ports) in stored.iter().filter(|(k, _)| !applied(k)) {
        for p in ports {
            owner.entry(*p).or_insert(k);
        }
    }
    for (k, ports) in input {
        for p in ports {
            match owner.get(p) {
                Some(first) if *first != k => {
                    return Err(PortConflict {
                        port: *p,
                        first: (*first).clone(),
                        second: k.clone(),
                    })
                }
                _ => {
                    owner.insert(*p, k);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(p: &str, n: &str) -> ComponentKey {
        ComponentKey::new(p, n)
    }

    #[test]
    fn a_port_of_another_component_is_refused_across_projects() {
        let stored = [(k("shop", "web"), vec![18080])];
        let e = check(&stored, &[(k("blog", "api"), vec![9000, 18080])]).expect_err("conflict");
        assert_eq!(e.port, 18080);
        assert_eq!((e.first, e.second), (k("shop", "web"), k("blog", "api")));
        let text = check(&stored, &[(k("blog", "api"), vec![18080])])
            .expect_err("conflict")
            .to_string();
        assert!(
            text.contains("shop/web") && text.contains("blog/api"),
            "{text}"
        );
    }

    #[test]
    fn a_component_keeps_or_moves_its_own_ports() {
        let stored = [
            (k("shop", "web"), vec![18080]),
            (k("shop", "api"), vec![9000]),
        ];
        assert!(check(&stored, &[(k("shop", "web"), vec![18080])]).is_ok());
        // web gives 18080 up in the same input that hands it to api.
        assert!(check(
            &stored,
            &[
                (k("shop", "web"), vec![18081]),
                (k("shop", "api"), vec![18080])
            ]
        )
        .is_ok());
    }

    #[test]
    fn two_components_of_one_input_conflict() {
        let e =
            check(&[], &[(k("a", "x"), vec![80]), (k("b", "y"), vec![80])]).expect_err("conflict");
        assert_eq!((e.first, e.second), (k("a", "x"), k("b", "y")));
    }
}
