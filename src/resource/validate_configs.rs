//! Validation of `spec.configs` (kept beside `validate.rs`, which it extends).

use std::collections::HashSet;

use super::component::ComponentSpec;
use super::validate::{is_dns_label, Violation};
use crate::services::config::template;

/// Every rule `configs` follow: absolute, distinct paths; a template that
/// parses (the error positioned inside it); sources named like components;
/// a reload with exactly one of `signal` and `exec`.
pub fn violations(s: &ComponentSpec) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut add = |path: String, message: String| out.push(Violation { path, message });
    let mut paths = HashSet::new();
    for (i, c) in s.configs.iter().enumerate() {
        let p = format!("spec.configs[{i}]");
        if !c.path.starts_with('/') || c.path.ends_with('/') || c.path.contains('\0') {
            add(
                format!("{p}.path"),
                format!("{:?} must be an absolute file path", c.path),
            );
        } else if !paths.insert(c.path.as_str()) {
            add(
                format!("{p}.path"),
                format!("{:?} is rendered twice", c.path),
            );
        }
        if let Err(e) = template::check(&c.template) {
            add(format!("{p}.template"), e.to_string());
        }
        let mut seen = HashSet::new();
        for (j, src) in c.sources.iter().enumerate() {
            let ok = match src.split_once('/') {
                Some((pr, name)) => is_dns_label(pr) && is_dns_label(name),
                None => is_dns_label(src),
            };
            if !ok {
                add(
                    format!("{p}.sources[{j}]"),
                    format!("invalid source {src:?}: expected \"component\" or \"project/component\", each a DNS label"),
                );
            } else if !seen.insert(src.as_str()) {
                add(
                    format!("{p}.sources[{j}]"),
                    format!("{src:?} is listed twice"),
                );
            }
        }
        if let Some(r) = &c.reload {
            if r.action().is_none() {
                add(
                    format!("{p}.reload"),
                    "give exactly one of `signal` and `exec`".to_string(),
                );
            } else if r.exec.first().is_some_and(|c| c.is_empty()) {
                add(format!("{p}.reload.exec[0]"), "empty command".to_string());
            }
        }
    }
    out
}
