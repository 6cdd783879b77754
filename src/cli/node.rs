//! `berth cordon`, `uncordon`, `label node` and `drain`: what users set on a
//! node, written to `specs/node/<node>` over exactly the version read
//! (compare-and-swap, read again on a lost race). A node berth does not know
//! (no registration, no record, no spec) or a malformed label is refused
//! before anything is written.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;

use futures::StreamExt;

use super::args::{DrainArgs, EtcdArgs, LabelArgs, NodeArgs};
use super::CliError;
use crate::resource::validate::{label_key_error, label_value_error};
use crate::resource::{Kind, Node, Observed};
use crate::runtime::{watcher, Event, WatcherConfig};
use crate::store::{Change, NodeState, Store, StoreError};

/// Reads and writes of one edit before giving up on a node that keeps
/// changing under it.
const RETRIES: usize = 8;

pub async fn cordon(etcd: &EtcdArgs, args: NodeArgs) -> Result<ExitCode, CliError> {
    let name = node_name(&args.node)?;
    let store = Store::connect(&etcd.store_config()).await?;
    println!("node/{name} {}", set_cordon(&store, &name, true).await?);
    Ok(ExitCode::SUCCESS)
}

/// Clears the cordon and a drain.
pub async fn uncordon(etcd: &EtcdArgs, args: NodeArgs) -> Result<ExitCode, CliError> {
    let name = node_name(&args.node)?;
    let store = Store::connect(&etcd.store_config()).await?;
    println!("node/{name} {}", set_cordon(&store, &name, false).await?);
    Ok(ExitCode::SUCCESS)
}

/// Cordons `name`, or uncordons it (which also ends a drain); says what was
/// done ("cordoned", "already uncordoned"...). The CLI and the API share it.
pub async fn set_cordon(store: &Store, name: &str, cordon: bool) -> Result<String, CliError> {
    let change = edit(store, name, |_, n| {
        n.spec.unschedulable = cordon;
        if !cordon {
            n.spec.drain = false;
        }
        Ok(())
    })
    .await?;
    Ok(done(change, if cordon { "cordoned" } else { "uncordoned" }))
}

/// Cordons `name` and asks the coordinator to move its replicas off; does
/// not wait (`berth drain` waits, the API answers 202).
pub async fn start_drain(store: &Store, name: &str) -> Result<(), CliError> {
    edit(store, name, |_, n| {
        n.spec.unschedulable = true;
        n.spec.drain = true;
        Ok(())
    })
    .await?;
    Ok(())
}

pub async fn label(etcd: &EtcdArgs, args: LabelArgs) -> Result<ExitCode, CliError> {
    if args.kind.0 != Kind::Node {
        return Err(CliError::Usage(format!(
            "label supports nodes only (berth label node NAME KEY=VALUE); set a {}'s labels in its manifest",
            args.kind.0
        )));
    }
    let (name, items) = match (&args.kind.1, args.args.split_first()) {
        (Some(n), _) => (n.clone(), &args.args[..]),
        (None, Some((n, rest))) => (n.clone(), rest),
        (None, None) => (String::new(), &args.args[..]),
    };
    if name.is_empty() || items.is_empty() {
        return Err(CliError::Usage(
            "label needs a node and at least one KEY=VALUE or KEY- (e.g. berth label node n1 zone=a)"
                .into(),
        ));
    }
    let ops = parse_labels(items).map_err(CliError::Input)?;
    let store = Store::connect(&etcd.store_config()).await?;
    let change = edit(&store, &name, |state, n| {
        apply_labels(
            &mut n.metadata.labels,
            &state.agent_labels(),
            &ops,
            args.overwrite,
        )
        .map_err(|e| CliError::Input(format!("node/{name}: {e}")))
    })
    .await?;
    let word = if ops.iter().all(|o| matches!(o, LabelOp::Remove(_))) {
        "unlabeled"
    } else {
        "labeled"
    };
    match change {
        Change::Unchanged => println!("node/{name} not {word}"),
        _ => println!("node/{name} {word}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Sets `unschedulable` and `drain`, then waits until every observed
/// document of the node lists no container.
pub async fn drain(etcd: &EtcdArgs, args: DrainArgs) -> Result<ExitCode, CliError> {
    let name = node_name(&args.node)?;
    let store = Store::connect(&etcd.store_config()).await?;
    start_drain(&store, &name).await?;
    println!("node/{name} cordoned, draining");
    let mut left = Left::default();
    let drained = tokio::time::timeout(args.timeout, wait_empty(&store, &name, &mut left)).await;
    match drained {
        Ok(()) => {
            println!("node/{name} drained");
            Ok(ExitCode::SUCCESS)
        }
        Err(_) => Err(CliError::Timeout(format!(
            "node/{name} not drained after {}: {} left ({}); it stays cordoned",
            humantime::format_duration(args.timeout),
            left.count_text(),
            left.detail()
        ))),
    }
}

/// A node's name as given, `node/NAME` accepted too.
fn node_name(arg: &str) -> Result<String, CliError> {
    let name = match arg.split_once('/') {
        Some((kind, n)) if kind.parse::<Kind>() == Ok(Kind::Node) => n,
        Some(_) => {
            return Err(CliError::Usage(format!(
                "invalid node {arg:?}: expected NAME or node/NAME"
            )))
        }
        None => arg,
    };
    if name.is_empty() {
        return Err(CliError::Usage("a node name is required".into()));
    }
    Ok(name.to_string())
}

/// "cordoned" or "already cordoned".
fn done(change: Change, word: &str) -> String {
    match change {
        Change::Unchanged => format!("already {word}"),
        _ => word.to_string(),
    }
}

/// Reads the node, lets `f` change what the user set, and writes that over
/// exactly what was read; a lost race reads again. Unknown nodes and errors
/// from `f` write nothing.
async fn edit(
    store: &Store,
    name: &str,
    f: impl Fn(&NodeState, &mut Node) -> Result<(), CliError>,
) -> Result<Change, CliError> {
    for _ in 0..RETRIES {
        let state = store.node_state(name).await?;
        if !state.exists() {
            return Err(CliError::Store(StoreError::NotFound(format!(
                "node/{name} (no agent registered it and berth has no record of it; see berth get nodes)"
            ))));
        }
        let mut node = state.user_node(name);
        f(&state, &mut node)?;
        match store.write_node_spec(&node, &state).await {
            Err(StoreError::Conflict(_)) => continue,
            other => return Ok(other?),
        }
    }
    Err(CliError::Store(StoreError::Conflict(format!(
        "node/{name} kept changing while being written; retry the command"
    ))))
}

/// One item of `berth label`.
#[derive(Clone, Debug, PartialEq)]
enum LabelOp {
    Set(String, String),
    Remove(String),
}

/// `KEY=VALUE` and `KEY-` items, validated as manifest labels are.
fn parse_labels(items: &[String]) -> Result<Vec<LabelOp>, String> {
    let mut ops: Vec<LabelOp> = Vec::new();
    for item in items {
        let op = match item.split_once('=') {
            Some((k, v)) => {
                if let Some(e) = label_key_error(k).or_else(|| label_value_error(v)) {
                    return Err(format!("label {item:?}: {e}"));
                }
                LabelOp::Set(k.into(), v.into())
            }
            None => match item.strip_suffix('-') {
                Some(k) => {
                    if let Some(e) = label_key_error(k) {
                        return Err(format!("label {item:?}: {e}"));
                    }
                    LabelOp::Remove(k.into())
                }
                None => {
                    return Err(format!(
                        "invalid label {item:?}: expected KEY=VALUE to set or KEY- to remove"
                    ))
                }
            },
        };
        let key = |o: &LabelOp| match o {
            LabelOp::Set(k, _) | LabelOp::Remove(k) => k.clone(),
        };
        if ops.iter().any(|o| key(o) == key(&op)) {
            return Err(format!("label {:?} is given more than once", key(&op)));
        }
        ops.push(op);
    }
    Ok(ops)
}

/// Applies `ops` to the user's labels, as kubectl: changing a value the
/// node shows (user's or agent's) needs `overwrite`; removing a label that
/// only the agent's `--labels` gives is refused (it would stay).
fn apply_labels(
    user: &mut BTreeMap<String, String>,
    agent: &BTreeMap<String, String>,
    ops: &[LabelOp],
    overwrite: bool,
) -> Result<(), String> {
    for op in ops {
        match op {
            LabelOp::Set(k, v) => {
                let shown = user.get(k).or_else(|| agent.get(k));
                if let Some(old) = shown.filter(|old| *old != v && !overwrite) {
                    return Err(format!(
                        "label {k:?} already has a value ({old}); use --overwrite to change it"
                    ));
                }
                user.insert(k.clone(), v.clone());
            }
            LabelOp::Remove(k) => {
                if user.remove(k).is_none() && agent.contains_key(k) {
                    return Err(format!(
                        "label {k:?} comes from the agent's --labels; restart the agent without it to remove it"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Containers still on a node, per observed document (`project/component`).
#[derive(Default)]
struct Left {
    per_doc: BTreeMap<String, Option<usize>>,
    /// The first complete listing arrived.
    listed: bool,
}

impl Left {
    /// A document counts as its containers; one that does not decode counts
    /// as "unknown" (never as empty: drain must not end on a guess).
    fn set(&mut self, doc: String, value: &[u8]) {
        let n = serde_json::from_slice::<Observed>(value)
            .ok()
            .map(|o| o.containers.len());
        self.per_doc.insert(doc, n);
    }

    fn empty(&self) -> bool {
        self.listed && self.per_doc.values().all(|n| *n == Some(0))
    }

    fn count_text(&self) -> String {
        if !self.listed {
            return "unknown (its observed documents could not be read)".into();
        }
        let known: usize = self.per_doc.values().flatten().sum();
        let unreadable = self.per_doc.values().filter(|n| n.is_none()).count();
        match unreadable {
            0 => format!("{known} container(s)"),
            u => format!("{known} container(s) and {u} unreadable observed document(s)"),
        }
    }

    fn detail(&self) -> String {
        let parts: Vec<String> = self
            .per_doc
            .iter()
            .filter(|(_, n)| **n != Some(0))
            .map(|(doc, n)| match n {
                Some(n) => format!("{doc} {n}"),
                None => format!("{doc} unreadable"),
            })
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Follows `observed/<node>/` until no document lists a container,
/// printing a line whenever the count changes. Returns only when empty;
/// the caller bounds it with the timeout.
async fn wait_empty(store: &Store, node: &str, left: &mut Left) {
    let prefix = store.keys().observed_prefix(node);
    let mut events = watcher(store.client(), prefix.clone(), WatcherConfig::default()).boxed();
    let mut fresh = Left::default();
    let mut last: Option<String> = None;
    while let Some(item) = events.next().await {
        let doc = |key: &str| key.strip_prefix(&prefix).unwrap_or(key).to_string();
        match item {
            Err(e) => eprintln!("warning: {e}"),
            // A (re)list: collect it aside and take it whole at InitDone.
            Ok(Event::Init) => fresh = Left::default(),
            Ok(Event::InitApply(kv)) => fresh.set(doc(&kv.key), &kv.value),
            Ok(Event::InitDone) => {
                *left = std::mem::take(&mut fresh);
                left.listed = true;
            }
            Ok(Event::Apply(kv)) => left.set(doc(&kv.key), &kv.value),
            Ok(Event::Delete(kv)) => {
                left.per_doc.remove(&doc(&kv.key));
            }
        }
        if !left.listed {
            continue;
        }
        if left.empty() {
            return;
        }
        let text = format!("{} left ({})", left.count_text(), left.detail());
        if last.as_ref() != Some(&text) {
            println!("node/{node}: {text}");
            let _ = std::io::stdout().flush();
            last = Some(text);
        }
    }
    // The watcher's stream never ends; should it, wait out the timeout.
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn map(v: &[(&str, &str)]) -> BTreeMap<String, String> {
        v.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_items() {
        assert_eq!(
            parse_labels(&items(&["zone=a", "disk-", "example.com/tier="])),
            Ok(vec![
                LabelOp::Set("zone".into(), "a".into()),
                LabelOp::Remove("disk".into()),
                LabelOp::Set("example.com/tier".into(), "".into()),
            ])
        );
        for bad in [
            "zone",
            "bad key=x",
            "zone=-x",
            "Foo_/x=y",
            "-",
            "a=1,b=2",
            "=x",
        ] {
            assert!(parse_labels(&items(&[bad])).is_err(), "{bad}");
        }
        assert!(parse_labels(&items(&["zone=a", "zone-"])).is_err());
    }

    #[test]
    fn labels_like_kubectl() {
        let agent = map(&[("zone", "a"), ("os", "linux")]);
        let set = |k: &str, v: &str| LabelOp::Set(k.into(), v.into());
        let rm = |k: &str| LabelOp::Remove(k.into());
        let mut user = map(&[("disk", "ssd")]);
        // Same value: fine without --overwrite; a new key too.
        apply_labels(
            &mut user,
            &agent,
            &[set("zone", "a"), set("rack", "r1")],
            false,
        )
        .expect("no change of value");
        // A different value, the user's or the agent's: needs --overwrite.
        assert!(apply_labels(&mut user.clone(), &agent, &[set("disk", "hdd")], false).is_err());
        assert!(apply_labels(&mut user.clone(), &agent, &[set("os", "bsd")], false).is_err());
        apply_labels(&mut user, &agent, &[set("disk", "hdd")], true).expect("overwrite");
        assert_eq!(user["disk"], "hdd");
        // Removing: the user's goes; an agent-only one cannot; an absent one is a no-op.
        apply_labels(&mut user, &agent, &[rm("disk"), rm("nothing")], false).expect("remove");
        assert!(!user.contains_key("disk"));
        assert!(apply_labels(&mut user, &agent, &[rm("os")], false).is_err());
    }

    #[test]
    fn left_counts_unreadable_as_not_empty() {
        let mut l = Left::default();
        assert!(!l.empty(), "nothing is known before the first listing");
        l.listed = true;
        assert!(l.empty());
        l.set(
            "shop/web".into(),
            br#"{"node":"n1","generation":1,"revision":1}"#,
        );
        assert!(l.empty());
        l.set("shop/api".into(), b"not json");
        assert!(!l.empty());
        assert_eq!(l.detail(), "shop/api unreadable");
    }
}
