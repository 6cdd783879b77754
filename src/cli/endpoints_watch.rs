//! `berth endpoints watch COMPONENT -p P --template FILE --out FILE [--exec CMD]`:
//! confd for berth. Renders FILE's minijinja template over COMPONENT's
//! endpoints (the context configs get: `sources.<COMPONENT>.endpoints`),
//! writes `--out` atomically (a temp file in the same directory, renamed),
//! and runs `--exec` (with `sh -c`) only when the content changed. Changes
//! are debounced like the agents' configs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use futures::StreamExt;
use tokio::time::Instant;

use super::args::EtcdArgs;
use super::CliError;
use crate::resource::endpoint::Endpoint;
use crate::resource::ComponentKey;
use crate::runtime::{watcher, Event, WatcherConfig};
use crate::services::config::{self, Context, Debounce, DebounceConfig};
use crate::store::Store;

pub const ENDPOINTS_HELP: &str = "The template sees `project`, `component` and `sources.<COMPONENT>.endpoints`, a list sorted by node then container of {node, container, address, port, hostPort, ports, ready} (see the README, \"Config templates\"). Undefined variables are errors: a render that fails keeps the last file and prints a warning.\n\nExamples:\n  berth endpoints watch web -p shop --template lb.conf.j2 --out /etc/lb/web.conf --exec 'kill -HUP $(cat /run/lb.pid)'\n  berth endpoints watch web -p shop --template hosts.j2 --out hosts.txt --once";

#[derive(Subcommand, Debug)]
pub enum EndpointsCommand {
    /// Render a file from a component's endpoints, again on every change.
    #[command(after_help = ENDPOINTS_HELP)]
    Watch(WatchArgs),
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// The component whose endpoints the template reads.
    pub component: String,
    /// Its project.
    #[arg(short = 'p', long, default_value = crate::resource::DEFAULT_PROJECT)]
    pub project: String,
    /// The minijinja template file.
    #[arg(long)]
    pub template: PathBuf,
    /// The file to write (replaced atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Run with `sh -c` after each change of the written content.
    #[arg(long)]
    pub exec: Option<String>,
    /// Render once from the current endpoints and exit.
    #[arg(long)]
    pub once: bool,
}

pub async fn run(etcd: &EtcdArgs, cmd: EndpointsCommand) -> Result<ExitCode, CliError> {
    let EndpointsCommand::Watch(args) = cmd;
    let source = std::fs::read_to_string(&args.template)
        .map_err(|e| CliError::Input(format!("reading {}: {e}", args.template.display())))?;
    if let Err(config::Error::Syntax { line, col, message }) = config::check(&source) {
        return Err(CliError::Input(format!(
            "{}:{line}:{col}: {message}",
            args.template.display()
        )));
    }
    let store = Store::connect(&etcd.store_config()).await?;
    let ck = ComponentKey::new(args.project.clone(), args.component.clone());
    let prefix = store.keys().component_endpoints_prefix(&ck);
    let mut events = std::pin::pin!(watcher(store.client(), prefix, WatcherConfig::default()));
    let mut listed: std::collections::BTreeMap<String, Endpoint> = Default::default();
    let mut last = std::fs::read_to_string(&args.out).ok();
    let cfg = DebounceConfig::default();
    let mut debounce = Debounce::Idle;
    let mut listing = true;
    let mut first = true;
    loop {
        // No spec is read here: every change counts as settled.
        let due = debounce.due(cfg, true);
        tokio::select! {
            ev = events.next() => match ev {
                None => return Ok(ExitCode::SUCCESS),
                Some(Err(e)) if first => return Err(CliError::Io(std::io::Error::other(e.to_string()))),
                Some(Err(e)) => eprintln!("warning: {e}"),
                Some(Ok(Event::Init)) => { listed.clear(); listing = true; }
                Some(Ok(Event::InitApply(kv))) | Some(Ok(Event::Apply(kv))) => {
                    if let Ok(ep) = serde_json::from_slice::<Endpoint>(&kv.value) {
                        listed.insert(kv.key, ep);
                    }
                    if !listing { debounce.changed(Instant::now()); }
                }
                Some(Ok(Event::Delete(kv))) => {
                    listed.remove(&kv.key);
                    debounce.changed(Instant::now());
                }
                Some(Ok(Event::InitDone)) => {
                    listing = false;
                    if first {
                        first = false;
                        render(&args, &source, &listed, &mut last)?;
                        if args.once {
                            return Ok(ExitCode::SUCCESS);
                        }
                    } else {
                        debounce.changed(Instant::now());
                    }
                }
            },
            _ = async {
                match due {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            } => {
                if debounce.fire(cfg, Instant::now(), true) {
                    render(&args, &source, &listed, &mut last)?;
                }
            }
        }
    }
}

/// Renders, and writes and execs when the content changed.
fn render(
    args: &WatchArgs,
    source: &str,
    listed: &std::collections::BTreeMap<String, Endpoint>,
    last: &mut Option<String>,
) -> Result<(), CliError> {
    let ctx = Context::build(
        &args.project,
        &args.component,
        std::slice::from_ref(&args.component),
        listed.values(),
    );
    let content = match config::render(source, &ctx) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "warning: {}: {e} (keeping {})",
                args.template.display(),
                args.out.display()
            );
            return Ok(());
        }
    };
    if last.as_deref() == Some(content.as_str()) {
        return Ok(());
    }
    write_atomic(&args.out, content.as_bytes())?;
    *last = Some(content);
    if let Some(cmd) = &args.exec {
        match std::process::Command::new("sh").arg("-c").arg(cmd).status() {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("warning: --exec exited with {s}"),
            Err(e) => eprintln!("warning: --exec could not run: {e}"),
        }
    }
    Ok(())
}

/// A temp file beside `out`, then a rename: readers see the old or the new
/// file, never a part.
fn write_atomic(out: &Path, content: &[u8]) -> Result<(), CliError> {
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| CliError::Usage(format!("--out {}: not a file path", out.display())))?;
    let tmp = dir.join(format!(".{name}.berth-{}", std::process::id()));
    std::fs::write(&tmp, content)
        .and_then(|()| std::fs::rename(&tmp, out))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            CliError::Io(std::io::Error::other(format!(
                "writing {}: {e}",
                out.display()
            )))
        })
}
