//! `berth get KIND [NAME]`, with `-w` streaming changes.
//!
//! Components are shown as the coordinator's status documents say; one with
//! none yet shows what its spec wants and STATUS `Pending`. `get` never reads
//! the agents' observed documents, so its cost follows the objects shown.
//!
//! `-w` follows etcd through [`crate::runtime::watcher`], one watcher per
//! prefix that shapes the objects shown: their specs and status (and, for
//! nodes, the registrations), plus the election key. Nothing under
//! `observed/` is watched, so agents' reports cost a watcher nothing. It is
//! level-triggered: an event names one object, which alone is read again
//! (its spec and status) and printed when its rendering differs from what
//! was printed for it last. After a
//! compaction a watcher lists again (Init…InitDone); once every watcher has a
//! complete list, all objects are read again and compared with what was
//! printed, so no change is lost: changed and new objects are printed, and in
//! JSON a DELETED event goes out for each one that is gone.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;

use super::args::{EtcdArgs, GetArgs, GetKind, OutputFormat};
use super::output::{header, line, print_objects, row, yaml, RowContext, Table};
use super::CliError;
use crate::resource::selector::Selector;
use crate::resource::{Kind, Object};
use crate::runtime::{watcher, Event, WatcherConfig};
use crate::store::{Keys, Store, StoreError};

/// How soon reads that failed during `-w` are tried again.
const REREAD: Duration = Duration::from_secs(1);

pub async fn run(etcd: &EtcdArgs, mut args: GetArgs) -> Result<ExitCode, CliError> {
    let kind_arg = match &args.kind {
        GetKind::Object(k) => k.clone(),
        GetKind::Endpoints(n) => {
            let name = match (n, &args.name) {
                (Some(_), Some(_)) => return Err(CliError::Usage(
                    "give the name either as endpoints/NAME or as a separate argument, not both"
                        .into(),
                )),
                (a, b) => a.clone().or_else(|| b.clone()),
            };
            return super::get_endpoints::run(etcd, &args, name).await;
        }
        GetKind::Containers(n) => {
            let name = match (n, &args.name) {
                (Some(_), Some(_)) => return Err(CliError::Usage(
                    "give the name either as containers/COMPONENT or as a separate argument, not both"
                        .into(),
                )),
                (a, b) => a.clone().or_else(|| b.clone()),
            };
            return super::get_containers::run(etcd, &args, name).await;
        }
    };
    let kind = kind_arg.0;
    let extra: Vec<String> = args.name.iter().cloned().collect();
    args.name = kind_arg.names(&extra).map_err(CliError::Usage)?.pop();
    if args.name.is_some() && args.all_projects {
        return Err(CliError::Usage(
            "a name and --all-projects (-A) exclude each other".into(),
        ));
    }
    let selector: Selector = match &args.selector {
        Some(s) => s.parse().map_err(CliError::Usage)?,
        None => Selector::default(),
    };
    let project = (kind.namespaced() && !args.all_projects).then(|| args.project.clone());
    let store = Store::connect(&etcd.store_config()).await?;
    let mut view = View {
        kind,
        project,
        name: args.name.clone(),
        selector,
        output: args.output,
        all_projects: args.all_projects,
        no_headers: args.no_headers,
        watch: args.watch,
        widths: Vec::new(),
    };
    let objects = read_initial(&store, &view).await?;
    let wide = view.output == OutputFormat::Wide;
    let ctx = Context::load(&store, kind, &objects, wide).await?;
    let printed = view.print_initial(&objects, &ctx);
    if args.watch {
        let prefixes = Prefixes::new(store.keys(), &view);
        Watch {
            store: &store,
            view,
            prefixes,
            printed,
            stale: false,
        }
        .run()
        .await;
    }
    Ok(ExitCode::SUCCESS)
}

/// The named object (an error when it does not exist) or the selected list.
async fn read_initial(store: &Store, view: &View) -> Result<Vec<Object>, CliError> {
    let (kind, project) = (view.kind, view.project.as_deref());
    match &view.name {
        Some(name) => {
            let found = store.get(kind, project, name).await?.ok_or_else(|| {
                StoreError::NotFound(match project {
                    Some(p) => format!("{}/{name} in project {p}", kind.lower()),
                    None => format!("{}/{name}", kind.lower()),
                })
            })?;
            Ok(vec![found.object])
        }
        None => Ok(store
            .list(kind, project)
            .await?
            .into_iter()
            .map(|s| s.object)
            .filter(|o| view.wants(o))
            .collect()),
    }
}

/// An object as `-w` tracks it: (project for namespaced kinds, name).
type Target = (Option<String>, String);

/// What was printed for one object, to print only changes.
enum Shown {
    /// A table line (table and wide output), and its cells with the
    /// clock-driven ones (AGE, LAST SEEN) blanked: a row is printed again
    /// when the object changed, not because time passed.
    Line(String, Vec<String>),
    /// The object with its status (JSON, YAML and name output).
    Doc(serde_json::Value),
}

impl PartialEq for Shown {
    fn eq(&self, other: &Shown) -> bool {
        match (self, other) {
            (Shown::Line(_, a), Shown::Line(_, b)) => a == b,
            (Shown::Doc(a), Shown::Doc(b)) => a == b,
            _ => false,
        }
    }
}

/// Columns whose value moves with the clock alone.
const CLOCK_COLUMNS: [&str; 2] = ["AGE", "LAST SEEN"];

/// What `get` shows, and how.
struct View {
    kind: Kind,
    project: Option<String>,
    name: Option<String>,
    selector: Selector,
    output: OutputFormat,
    all_projects: bool,
    no_headers: bool,
    watch: bool,
    /// Column widths of the first table, which later watch lines keep.
    widths: Vec<usize>,
}

impl View {
    fn table_mode(&self) -> bool {
        matches!(self.output, OutputFormat::Table | OutputFormat::Wide)
    }

    /// A named object is shown whatever its labels, as kubectl does.
    fn wants(&self, o: &Object) -> bool {
        self.name.is_some() || self.selector.matches(&o.metadata().labels)
    }

    fn target(o: &Object) -> Target {
        (o.project().map(str::to_string), o.name().to_string())
    }

    /// Prints the first listing as `get` without `-w` does (JSON: one ADDED
    /// event per line); returns what each object looked like.
    fn print_initial(&mut self, objects: &[Object], ctx: &Context) -> HashMap<Target, Shown> {
        if self.table_mode() {
            return self.print_table(objects, ctx);
        }
        if self.watch && self.output == OutputFormat::Json {
            // One JSON document per line, so a pipeline can read it as a stream.
            for o in objects {
                println!("{}", watch_line("ADDED", &o.to_json()));
            }
        } else {
            print_objects(objects, self.output, self.name.is_some());
        }
        objects
            .iter()
            .map(|o| (View::target(o), Shown::Doc(o.to_json())))
            .collect()
    }

    fn print_table(&mut self, objects: &[Object], ctx: &Context) -> HashMap<Target, Shown> {
        let wide = self.output == OutputFormat::Wide;
        let mut t = if self.no_headers {
            Table::default()
        } else {
            Table::new(&header(self.kind, wide, self.all_projects))
        };
        let rows: Vec<Vec<String>> = objects
            .iter()
            .map(|o| row(o, wide, self.all_projects, &ctx.row_context()))
            .collect();
        for r in &rows {
            t.row(r.clone());
        }
        self.widths = t.widths();
        if objects.is_empty() && !self.watch {
            match &self.project {
                Some(p) => eprintln!("No {}s found in project {p}.", self.kind.lower()),
                None => eprintln!("No {}s found.", self.kind.lower()),
            }
        } else {
            print!("{}", t.render());
        }
        if let Some((n, since)) = ctx.stale(objects) {
            eprintln!(
                "warning: no coordinator is running: the status of {n} component(s) is stale (STATUS Stale), last updated {since}"
            );
        }
        if let Some(n) = ctx.pending(objects) {
            eprintln!(
                "warning: no coordinator is running: {n} component(s) have no status yet (STATUS Pending)"
            );
        }
        objects
            .iter()
            .zip(rows)
            .map(|(o, r)| (View::target(o), self.shown_line(r)))
            .collect()
    }

    /// A table row as printed, and as compared (see [`Shown::Line`]).
    fn shown_line(&self, cells: Vec<String>) -> Shown {
        let wide = self.output == OutputFormat::Wide;
        let header = crate::cli::output::header(self.kind, wide, self.all_projects);
        let text = line(&cells, &self.widths);
        let key = cells
            .into_iter()
            .zip(header.iter().chain(std::iter::repeat(&"")))
            .map(|(c, h)| {
                if CLOCK_COLUMNS.contains(h) {
                    String::new()
                } else {
                    c
                }
            })
            .collect();
        Shown::Line(text, key)
    }

    fn render(&self, o: Object, ctx: &Context) -> Shown {
        if self.table_mode() {
            let wide = self.output == OutputFormat::Wide;
            let cells = row(&o, wide, self.all_projects, &ctx.row_context());
            self.shown_line(cells)
        } else {
            Shown::Doc(o.to_json())
        }
    }

    /// Prints one change: `event` is ADDED or MODIFIED (JSON only).
    fn print_change(&self, event: &str, shown: &Shown, display_name: &str) {
        match (shown, self.output) {
            (Shown::Line(text, _), _) => print!("{text}"),
            (Shown::Doc(doc), OutputFormat::Json) => println!("{}", watch_line(event, doc)),
            // A separator first: the listing before ends without one.
            (Shown::Doc(doc), OutputFormat::Yaml) => print!("---\n{}", yaml(doc)),
            (Shown::Doc(_), _) => println!("{display_name}"),
        }
        let _ = std::io::stdout().flush();
    }
}

fn watch_line(event: &str, object: &serde_json::Value) -> String {
    serde_json::json!({"type": event, "object": object}).to_string()
}

/// The prefixes `-w` watches for one kind.
struct Prefixes {
    spec: String,
    status: String,
    /// Registered nodes (`nodes/<node>`), for `get nodes`.
    nodes: Option<String>,
    /// The coordinator election: it moves ROLE (nodes) and makes component
    /// status stale or current.
    election: Option<String>,
}

impl Prefixes {
    fn new(keys: &Keys, view: &View) -> Prefixes {
        let project = view.project.as_deref();
        Prefixes {
            spec: keys.spec_prefix(view.kind, project),
            status: keys.status_prefix(view.kind, project),
            nodes: (view.kind == Kind::Node).then(|| keys.nodes_prefix()),
            election: (view.kind != Kind::Project).then(|| keys.election()),
        }
    }

    fn all(&self) -> Vec<String> {
        [
            Some(&self.spec),
            Some(&self.status),
            self.nodes.as_ref(),
            self.election.as_ref(),
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }

    /// The object a changed key concerns, if any.
    fn target(&self, view: &View, key: &str) -> Option<Target> {
        if let Some(rest) = key.strip_prefix(&self.spec) {
            return Some(split_target(view, rest));
        }
        if let Some(rest) = key.strip_prefix(&self.status) {
            return Some(split_target(view, rest));
        }
        let rest = self
            .nodes
            .as_ref()
            .and_then(|p| key.strip_prefix(p.as_str()))?;
        Some((None, rest.to_string()))
    }
}

fn split_target(view: &View, rest: &str) -> Target {
    if view.kind.namespaced() && view.project.is_none() {
        match rest.split_once('/') {
            Some((p, n)) => (Some(p.into()), n.into()),
            None => (None, rest.into()),
        }
    } else {
        (view.project.clone(), rest.into())
    }
}

/// `get -w` after the first listing.
struct Watch<'a> {
    store: &'a Store,
    view: View,
    prefixes: Prefixes,
    printed: HashMap<Target, Shown>,
    /// A read failed: everything is read again after [`REREAD`].
    stale: bool,
}

impl Watch<'_> {
    /// Runs until the process is stopped; errors are warnings and retried.
    async fn run(mut self) {
        let prefixes = self.prefixes.all();
        let mut listed = vec![false; prefixes.len()];
        let mut events =
            futures::stream::select_all(prefixes.into_iter().enumerate().map(|(i, prefix)| {
                watcher(self.store.client(), prefix, WatcherConfig::default())
                    .map(move |item| (i, item))
                    .boxed()
            }));
        loop {
            let next = if self.stale {
                match tokio::time::timeout(REREAD, events.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        self.resync().await;
                        continue;
                    }
                }
            } else {
                events.next().await
            };
            let Some((i, item)) = next else { return };
            match item {
                Err(e) => eprintln!("warning: {e}"),
                Ok(Event::Init) => listed[i] = false,
                Ok(Event::InitApply(_)) => {}
                Ok(Event::InitDone) => {
                    listed[i] = true;
                    // Compare everything once all lists are complete: the
                    // first time (changes since the first listing) and after
                    // each re-list (changes whose events were compacted away).
                    if listed.iter().all(|l| *l) {
                        self.resync().await;
                    }
                }
                Ok(Event::Apply(kv)) => self.changed(&kv.key, false).await,
                Ok(Event::Delete(kv)) => self.changed(&kv.key, true).await,
            }
        }
    }

    /// Reads the object `key` concerns again and prints it if it changed.
    async fn changed(&mut self, key: &str, deleted: bool) {
        if self.prefixes.election.as_deref() == Some(key) {
            // Concerns every row (role, staleness): compare them all.
            self.resync().await;
            return;
        }
        let Some(target) = self.prefixes.target(&self.view, key) else {
            return;
        };
        if self.view.name.as_ref().is_some_and(|n| *n != target.1) {
            return;
        }
        if deleted && key.starts_with(&self.prefixes.spec) {
            self.gone(&target);
            return;
        }
        match self.read_one(&target).await {
            Ok(Some((o, ctx))) if self.view.wants(&o) => self.show(target, o, &ctx),
            // Gone, or no longer selected: as kubectl, a DELETED event.
            Ok(_) => self.gone(&target),
            Err(e) => {
                eprintln!("warning: {e}; reading again");
                self.stale = true;
            }
        }
    }

    async fn read_one(&self, target: &Target) -> Result<Option<(Object, Context)>, CliError> {
        let kind = self.view.kind;
        let Some(stored) = self.store.get(kind, target.0.as_deref(), &target.1).await? else {
            return Ok(None);
        };
        let wide = self.view.output == OutputFormat::Wide;
        let ctx =
            Context::load(self.store, kind, std::slice::from_ref(&stored.object), wide).await?;
        Ok(Some((stored.object, ctx)))
    }

    /// Reads every object again and prints what differs from what was printed.
    async fn resync(&mut self) {
        let (objects, ctx) = match self.read_all().await {
            Ok(read) => read,
            Err(e) => {
                eprintln!("warning: {e}; reading again");
                self.stale = true;
                return;
            }
        };
        self.stale = false;
        let mut present = HashSet::new();
        for o in objects {
            let target = View::target(&o);
            present.insert(target.clone());
            self.show(target, o, &ctx);
        }
        let gone: Vec<Target> = self
            .printed
            .keys()
            .filter(|t| !present.contains(*t))
            .cloned()
            .collect();
        for target in gone {
            self.gone(&target);
        }
    }

    async fn read_all(&self) -> Result<(Vec<Object>, Context), CliError> {
        let (kind, project) = (self.view.kind, self.view.project.as_deref());
        let objects: Vec<Object> = match &self.view.name {
            Some(name) => self
                .store
                .get(kind, project, name)
                .await?
                .into_iter()
                .collect(),
            None => self.store.list(kind, project).await?,
        }
        .into_iter()
        .map(|s| s.object)
        .filter(|o| self.view.wants(o))
        .collect();
        let wide = self.view.output == OutputFormat::Wide;
        let ctx = Context::load(self.store, kind, &objects, wide).await?;
        Ok((objects, ctx))
    }

    /// Prints `o` unless it looks as it did when last printed.
    fn show(&mut self, target: Target, o: Object, ctx: &Context) {
        let display_name = o.display_name();
        let shown = self.view.render(o, ctx);
        let event = match self.printed.get(&target) {
            Some(old) if *old == shown => return,
            Some(_) => "MODIFIED",
            None => "ADDED",
        };
        self.view.print_change(event, &shown, &display_name);
        self.printed.insert(target, shown);
    }

    /// An object that was printed is gone: a DELETED event in JSON (showing
    /// it as last printed); other formats print nothing for it.
    fn gone(&mut self, target: &Target) {
        let Some(Shown::Doc(doc)) = self.printed.remove(target) else {
            return;
        };
        if self.view.output == OutputFormat::Json {
            println!("{}", watch_line("DELETED", &doc));
            let _ = std::io::stdout().flush();
        }
    }
}

/// What rows need besides the objects: for components, whether a
/// coordinator runs (one read of the election key) and, in wide output, the
/// image ID pinned in each one's current revision (its revision key, read in
/// transactions of up to [`PINS_PER_TXN`] keys); for projects, their
/// component counts.
struct Context {
    components_per_project: BTreeMap<String, usize>,
    no_coordinator: bool,
    pins: BTreeMap<(String, String), String>,
}

/// Revision keys read per transaction for wide component rows.
const PINS_PER_TXN: usize = 100;

impl Context {
    async fn load(
        store: &Store,
        kind: Kind,
        objects: &[Object],
        wide: bool,
    ) -> Result<Context, CliError> {
        let mut ctx = Context {
            components_per_project: BTreeMap::new(),
            no_coordinator: false,
            pins: BTreeMap::new(),
        };
        match kind {
            Kind::Component if !objects.is_empty() => {
                ctx.no_coordinator = store.coordinator().await?.is_none();
                if wide {
                    ctx.load_pins(store, objects).await?;
                }
            }
            Kind::Project => ctx.count_components(store).await?,
            Kind::Component | Kind::Node => {}
        }
        Ok(ctx)
    }

    /// The pins of the components' current revisions (the revision the
    /// spec's annotation names, if that document is of the spec's hash).
    async fn load_pins(&mut self, store: &Store, objects: &[Object]) -> Result<(), CliError> {
        use crate::store::{HASH_ANNOTATION, REVISION_ANNOTATION};
        let wanted: Vec<((String, String), String, String)> = objects
            .iter()
            .filter_map(|o| {
                let Object::Component(c) = o else {
                    return None;
                };
                let m = &c.metadata;
                let seq: u64 = m.annotations.get(REVISION_ANNOTATION)?.parse().ok()?;
                let hash = m.annotations.get(HASH_ANNOTATION)?.clone();
                let project = m.project.clone().unwrap_or_default();
                let key = store.keys().revision(&project, &m.name, seq);
                Some(((project, m.name.clone()), key, hash))
            })
            .collect();
        for chunk in wanted.chunks(PINS_PER_TXN) {
            let gets = chunk
                .iter()
                .map(|(_, key, _)| etcd_client::TxnOp::get(key.as_str(), None));
            let resp = store
                .txn(etcd_client::Txn::new().and_then(gets.collect::<Vec<_>>()))
                .await?;
            for ((target, _, hash), op) in chunk.iter().zip(resp.op_responses()) {
                let etcd_client::TxnOpResponse::Get(get) = op else {
                    continue;
                };
                let pin = get
                    .kvs()
                    .first()
                    .and_then(|kv| {
                        serde_json::from_slice::<crate::resource::Revision>(kv.value()).ok()
                    })
                    .filter(|r| &r.hash == hash)
                    .and_then(|r| r.pin);
                if let Some(pin) = pin {
                    self.pins.insert(target.clone(), pin.image_id);
                }
            }
        }
        Ok(())
    }

    async fn count_components(&mut self, store: &Store) -> Result<(), CliError> {
        let prefix = store.keys().spec_prefix(Kind::Component, None);
        let (kvs, _) = store.range_all(&prefix).await?;
        for kv in kvs {
            let key = String::from_utf8_lossy(kv.key()).to_string();
            if let Some((p, _)) = key.strip_prefix(&prefix).and_then(|k| k.split_once('/')) {
                *self
                    .components_per_project
                    .entry(p.to_string())
                    .or_default() += 1;
            }
        }
        Ok(())
    }

    /// With no coordinator running, the oldest `lastUpdate` among the
    /// components' status documents, and how many there are: what the
    /// staleness warning says.
    fn stale(&self, objects: &[Object]) -> Option<(usize, String)> {
        if !self.no_coordinator {
            return None;
        }
        let updates: Vec<String> = objects
            .iter()
            .filter_map(|o| match o {
                Object::Component(c) => c.status.as_ref(),
                _ => None,
            })
            .map(|st| st.last_update.clone().unwrap_or_else(|| "?".into()))
            .collect();
        let oldest = updates.iter().min()?.clone();
        Some((updates.len(), oldest))
    }

    /// With no coordinator running, how many components have no status
    /// document (and will get none until one runs).
    fn pending(&self, objects: &[Object]) -> Option<usize> {
        let n = objects
            .iter()
            .filter(|o| matches!(o, Object::Component(c) if c.status.is_none()))
            .count();
        (self.no_coordinator && n > 0).then_some(n)
    }

    fn row_context(&self) -> RowContext<'_> {
        RowContext {
            components_per_project: &self.components_per_project,
            no_coordinator: self.no_coordinator,
            pins: &self.pins,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(kind: Kind) -> View {
        View {
            kind,
            project: None,
            name: None,
            selector: Selector::default(),
            output: OutputFormat::Table,
            all_projects: false,
            no_headers: false,
            watch: true,
            widths: Vec::new(),
        }
    }

    /// Rows (kind, before, after) and whether `-w` prints the second again.
    #[test]
    fn a_row_is_printed_again_only_when_more_than_the_clock_moved() {
        fn check(kind: Kind, before: &[&str], after: &[&str], reprinted: bool) {
            let v = view(kind);
            let cells = |r: &[&str]| r.iter().map(|c| c.to_string()).collect();
            let (a, b) = (v.shown_line(cells(before)), v.shown_line(cells(after)));
            assert_eq!(a != b, reprinted, "{before:?} -> {after:?}");
        }
        let web = ["web", "2/2", "2", "2", "Running", "0s"];
        check(
            Kind::Component,
            &web,
            &["web", "2/2", "2", "2", "Running", "1s"],
            false,
        );
        check(
            Kind::Component,
            &web,
            &["web", "1/2", "2", "1", "Running", "1s"],
            true,
        );
        let n1 = ["n1", "Ready", "", "127.0.0.2", "1s", "5m", "0.1.0"];
        check(
            Kind::Node,
            &n1,
            &["n1", "Ready", "", "127.0.0.2", "3s", "6m", "0.1.0"],
            false,
        );
        check(
            Kind::Node,
            &n1,
            &["n1", "NotReady", "", "127.0.0.2", "3s", "6m", "0.1.0"],
            true,
        );
    }
}
