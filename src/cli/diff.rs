//! `berth diff -f`: unified diff of live objects against files.
//! Exit 0: no differences; 1: differences; 2: error.

use std::process::ExitCode;

use super::args::{DiffArgs, EtcdArgs};
use super::output::yaml;
use super::CliError;
use crate::store::{comparable, ApplyOptions, Store};

pub async fn run(etcd: &EtcdArgs, args: DiffArgs) -> Result<ExitCode, CliError> {
    // Errors exit 2 here: 1 means "differences".
    match diff(etcd, args).await {
        Ok(true) => Ok(ExitCode::from(1)),
        Ok(false) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(2))
        }
    }
}

async fn diff(etcd: &EtcdArgs, args: DiffArgs) -> Result<bool, CliError> {
    let loaded = super::load_manifests(&args.files.files)?;
    let store = Store::connect(&etcd.store_config()).await?;
    // The same comparison `apply` makes, so "no diff" means "apply: unchanged".
    let opts = ApplyOptions {
        applyset: args.applyset.clone(),
        ..Default::default()
    };
    let mut differs = false;
    for l in loaded {
        let o = &l.object;
        let live = store.get(o.kind(), o.project(), o.name()).await?;
        let (old, new) = comparable(o, live.as_ref().map(|s| &s.object), &opts);
        let old = old.map(|o| yaml(&o.to_json())).unwrap_or_default();
        let new = yaml(&new.to_json());
        if old == new {
            continue;
        }
        differs = true;
        let label = match o.project() {
            Some(p) => format!("{}/{}/{}", o.kind().lower(), p, o.name()),
            None => format!("{}/{}", o.kind().lower(), o.name()),
        };
        let live_name = if live.is_some() {
            format!("live/{label}")
        } else {
            "/dev/null".into()
        };
        let diff = similar::TextDiff::from_lines(&old, &new);
        print!(
            "{}",
            diff.unified_diff()
                .context_radius(3)
                .header(&live_name, &format!("file/{label}"))
        );
    }
    Ok(differs)
}
