//! [`ComponentKey`]: which component, across the code and in etcd keys.

use std::fmt;

/// A component's identity: its project and name. Shown (and logged) as
/// `project/name`; etcd keys are built from it by `store::Keys`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComponentKey {
    pub project: String,
    pub name: String,
}

impl ComponentKey {
    pub fn new(project: impl Into<String>, name: impl Into<String>) -> Self {
        ComponentKey {
            project: project.into(),
            name: name.into(),
        }
    }

    /// From the two path segments of a key (`.../<project>/<name>`); `None`
    /// unless there are exactly two, both non-empty.
    pub fn from_parts(parts: &[&str]) -> Option<Self> {
        match parts {
            [p, n] if !p.is_empty() && !n.is_empty() => Some(ComponentKey::new(*p, *n)),
            _ => None,
        }
    }
}

impl fmt::Display for ComponentKey {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}/{}", self.project, self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_display() {
        let k = ComponentKey::from_parts(&["shop", "web"]).expect("two parts");
        assert_eq!(k.to_string(), "shop/web");
        assert_eq!(ComponentKey::from_parts(&["shop"]), None);
        assert_eq!(ComponentKey::from_parts(&["shop", ""]), None);
        assert_eq!(ComponentKey::from_parts(&["a", "b", "c"]), None);
    }
}
