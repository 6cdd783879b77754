//! `berth apply -f`: parse and validate everything first, then write.

use std::process::ExitCode;

use super::args::{ApplyArgs, EtcdArgs};
use super::load_manifests;
use super::CliError;
use crate::resource::component::ComponentSpec;
use crate::resource::{ComponentKey, Kind, Object, DEFAULT_PROJECT};
use crate::store::{ApplyOptions, Store, StoreError};

pub async fn run(etcd: &EtcdArgs, args: ApplyArgs) -> Result<ExitCode, CliError> {
    // The whole input is parsed and validated before anything is written.
    let loaded = load_manifests(&args.files.files)?;
    let objects: Vec<_> = loaded.iter().map(|l| l.object.clone()).collect();
    if let Some(set) = &args.applyset {
        if set.is_empty()
            || set.len() > 63
            || !set.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(CliError::Usage(format!(
                "invalid --applyset {set:?}: use letters, digits and '-' (at most 63)"
            )));
        }
    }
    let store = Store::connect(&etcd.store_config()).await?;
    let opts = ApplyOptions {
        dry_run: args.dry_run,
        applyset: args.applyset.clone(),
        prune: args.prune,
    };
    for w in link_warnings(&store, &objects).await {
        eprintln!("warning: {w}");
    }
    let result = store
        .apply(&objects, &opts)
        .await
        .map_err(|e| at_source(e, &loaded))?;
    let suffix = if args.dry_run { " (dry run)" } else { "" };
    for o in &result.outcomes {
        println!("{}/{} {}{suffix}", o.kind.lower(), o.name, o.change);
    }
    tracing::debug!(round_trips = result.round_trips, "apply done");
    Ok(ExitCode::SUCCESS)
}

/// Required links of the input that no component defines (in etcd or the
/// input). Only read when the input requires a link; a failed read warns
/// nothing (apply itself reports etcd errors).
async fn link_warnings(store: &Store, objects: &[Object]) -> Vec<String> {
    let components =
        |objs: &mut dyn Iterator<Item = &Object>| -> Vec<(ComponentKey, ComponentSpec)> {
            objs.filter_map(|o| match o {
                Object::Component(c) => Some((
                    ComponentKey::new(
                        o.project().unwrap_or(DEFAULT_PROJECT),
                        c.metadata.name.clone(),
                    ),
                    c.spec.clone(),
                )),
                _ => None,
            })
            .collect()
        };
    let input = components(&mut objects.iter());
    if !input
        .iter()
        .any(|(_, s)| s.links.as_ref().is_some_and(|l| !l.require.is_empty()))
    {
        return Vec::new();
    }
    let stored = match store.list(Kind::Component, None).await {
        Ok(s) => s,
        Err(_) => return Vec::new(),
    };
    let stored = components(&mut stored.iter().map(|s| &s.object));
    let i: Vec<_> = input.iter().map(|(k, s)| (k.clone(), s)).collect();
    let s: Vec<_> = stored.iter().map(|(k, s)| (k.clone(), s)).collect();
    crate::services::link::check::undefined_links(&i, &s)
}

/// Points an error about one input object at its document.
pub(crate) fn at_source(e: StoreError, loaded: &[crate::manifest::Loaded]) -> CliError {
    match &e {
        StoreError::MissingProject { index, .. } => match loaded.get(*index) {
            Some(l) => CliError::Input(format!(
                "{}:1: document {} ({}): {e}",
                l.location(),
                l.document,
                l.object.display_name()
            )),
            None => e.into(),
        },
        _ => e.into(),
    }
}
