//! `apply` and `delete`: deciding what to write (pure) and writing it with
//! compare-and-swap transactions.
//!
//! Round trips for `apply` of N objects: one read per (kind, project) group
//! (a range read when the group is large, else one small read per object,
//! concurrently), the same again over `revisions/` for components whose
//! template changed (to recognise a rollback), then one transaction per chunk
//! of up to [`CHUNK`] objects and [`CHUNK_BYTES`] bytes (etcd refuses
//! requests over 1.5 MiB).
//! An input that fits one chunk is written all-or-nothing; a larger one is
//! written chunk by chunk (etcd allows 128 operations per transaction), so a
//! conflict or failure part-way leaves the earlier chunks written — as with
//! kubectl, which writes object by object. Sizes are checked before the first
//! write, so an object too large to store fails the whole command cleanly.

use std::collections::{BTreeMap, HashMap, HashSet};

use etcd_client::{Compare, CompareOp, DeleteOptions, Txn, TxnOp};
use futures::{StreamExt, TryStreamExt};

use super::read::{decode, Stored};
use super::{Result, Store, StoreError};
use crate::resource::meta::{APPLYSET_ANNOTATION, CHANGE_CAUSE_ANNOTATION};
use crate::resource::{Component, Kind, Object, Revision, Template, DEFAULT_PROJECT};

/// Objects per transaction: each needs up to 3 operations and etcd allows
/// 128 operations per transaction by default.
pub const CHUNK: usize = 40;
/// Bytes of keys and values per transaction: below etcd's 1.5 MiB request
/// limit with room for the request's own overhead.
pub const CHUNK_BYTES: usize = 1_200_000;
/// Transactions in flight at once.
const PARALLEL_TXNS: usize = 8;
/// Attempts per object after a lost compare-and-swap race. A race is lost
/// only to another writer's successful write between our read and our
/// transaction, so with W writers of one object an apply loses at most W - 1
/// times and always succeeds for up to RETRIES + 1 concurrent writers; the
/// bound only stops a stream of writers that never ends.
const RETRIES: usize = 8;

/// Annotations berth itself maintains on components (like Kubernetes'
/// `deployment.kubernetes.io/revision`). User values are replaced.
pub const REVISION_ANNOTATION: &str = "berth/revision";
pub const HASH_ANNOTATION: &str = "berth/template-hash";

#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    /// Compute outcomes, write nothing.
    pub dry_run: bool,
    /// Marks every applied object as belonging to this applyset.
    pub applyset: Option<String>,
    /// Delete objects of `applyset` that are not in the input.
    pub prune: bool,
}

/// What `apply` did to one object (serialized as its [`Display`](std::fmt::Display) word).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Created,
    Configured,
    Unchanged,
    Pruned,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(match self {
            Change::Created => "created",
            Change::Configured => "configured",
            Change::Unchanged => "unchanged",
            Change::Pruned => "pruned",
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ApplyOutcome {
    pub kind: Kind,
    pub project: Option<String>,
    pub name: String,
    pub change: Change,
    /// The component revision now current, when one was created.
    pub revision: Option<u64>,
}

#[derive(Clone, Debug, Default)]
pub struct ApplyResult {
    pub outcomes: Vec<ApplyOutcome>,
    /// etcd round trips the command made (reported by the benchmark).
    pub round_trips: usize,
}

/// What one object's write consists of, decided without I/O.
#[derive(Clone, Debug)]
pub(crate) struct Prepared {
    pub kind: Kind,
    pub project: Option<String>,
    pub name: String,
    pub change: Change,
    /// 0: the key must not exist yet.
    pub expected_mod: i64,
    pub doc: Vec<u8>,
    pub revision: Option<Revision>,
    /// Revisions with a lower sequence number are pruned.
    pub prune_below: Option<u64>,
    /// An older revision with the same template, replaced by the new one
    /// (a rollback moves the old revision to the new number, as in Kubernetes).
    pub replaces: Option<u64>,
}

fn object_key(kind: Kind, project: Option<&str>, name: &str) -> (Kind, Option<String>, String) {
    (kind, project.map(str::to_string), name.to_string())
}

/// Normalises what a user wrote: components always carry their project.
fn normalized(obj: &Object, opts: &ApplyOptions) -> Object {
    let mut o = obj.user_part();
    let project = o.project().map(str::to_string);
    let meta = o.metadata_mut();
    meta.project = project;
    meta.annotations.remove(REVISION_ANNOTATION);
    meta.annotations.remove(HASH_ANNOTATION);
    meta.annotations.remove(super::read::ROLE_ANNOTATION);
    if let Some(set) = &opts.applyset {
        meta.annotations
            .insert(APPLYSET_ANNOTATION.into(), set.clone());
    }
    o
}

/// What `apply` compares: the live object and the desired one, each as a
/// user wrote it (berth's bookkeeping removed). `apply` reports "unchanged"
/// exactly when the two are equal; `diff` shows their difference.
pub fn comparable(
    desired: &Object,
    live: Option<&Object>,
    opts: &ApplyOptions,
) -> (Option<Object>, Object) {
    let mut next = normalized(desired, opts);
    // A plain apply (no --applyset) keeps the object's applyset marker.
    if opts.applyset.is_none() {
        if let Some(set) = live.and_then(|l| l.metadata().annotations.get(APPLYSET_ANNOTATION)) {
            next.metadata_mut()
                .annotations
                .insert(APPLYSET_ANNOTATION.into(), set.clone());
        }
    }
    (live.map(|l| normalized(l, &ApplyOptions::default())), next)
}

/// Decides the write for one object given what etcd holds. Pure.
pub(crate) fn prepare(
    desired: &Object,
    existing: Option<&Stored>,
    opts: &ApplyOptions,
    now: &str,
) -> Prepared {
    let (old_user, mut next) = comparable(desired, existing.map(|s| &s.object), opts);
    let kind = next.kind();
    let project = next.project().map(str::to_string);
    let name = next.name().to_string();
    let template = match &next {
        Object::Component(c) => Some(c.spec.template()),
        _ => None,
    };
    let mut revision = None;
    let mut prune_below = None;
    let (change, expected_mod) = match existing {
        Some(old) => {
            let old_meta = old.object.metadata();
            let spec_changed = old.object.spec_json() != next.spec_json();
            let unchanged = old_user.as_ref() == Some(&next);
            let meta = next.metadata_mut();
            meta.uid = old_meta.uid.clone();
            meta.creation_timestamp = old_meta.creation_timestamp.clone();
            meta.generation = Some(old_meta.generation.unwrap_or(1) + i64::from(spec_changed));
            let old_seq: u64 = old_meta
                .annotations
                .get(REVISION_ANNOTATION)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let old_hash = old_meta.annotations.get(HASH_ANNOTATION).cloned();
            if let Some(t) = &template {
                let hash = t.hash();
                if old_hash.as_deref() == Some(hash.as_str()) {
                    set_revision_annotations(&mut next, old_seq, &hash);
                } else {
                    let seq = old_seq + 1;
                    let old_template = match &old.object {
                        Object::Component(c) => Some(c.spec.template()),
                        _ => None,
                    };
                    revision = Some(new_revision(
                        &next,
                        seq,
                        &hash,
                        t,
                        old_template.as_ref(),
                        now,
                    ));
                    prune_below = prune_point(&next, seq);
                    set_revision_annotations(&mut next, seq, &hash);
                }
            }
            let change = if unchanged && revision.is_none() {
                Change::Unchanged
            } else {
                Change::Configured
            };
            (change, old.mod_revision)
        }
        None => {
            let meta = next.metadata_mut();
            meta.uid = Some(uuid::Uuid::new_v4().to_string());
            meta.creation_timestamp = Some(now.to_string());
            meta.generation = Some(1);
            if let Some(t) = &template {
                let hash = t.hash();
                revision = Some(new_revision(&next, 1, &hash, t, None, now));
                set_revision_annotations(&mut next, 1, &hash);
            }
            (Change::Created, 0)
        }
    };
    let doc = serde_json::to_vec(&next.to_json()).unwrap_or_default();
    Prepared {
        kind,
        project,
        name,
        change,
        expected_mod,
        doc,
        revision,
        prune_below,
        replaces: None,
    }
}

fn set_revision_annotations(obj: &mut Object, seq: u64, hash: &str) {
    let ann = &mut obj.metadata_mut().annotations;
    ann.insert(REVISION_ANNOTATION.into(), seq.to_string());
    ann.insert(HASH_ANNOTATION.into(), hash.into());
}

fn prune_point(obj: &Object, seq: u64) -> Option<u64> {
    let Object::Component(Component { spec, .. }) = obj else {
        return None;
    };
    let keep = u64::from(spec.rollout().revision_history().max(1));
    (seq > keep).then(|| seq + 1 - keep)
}

fn new_revision(
    obj: &Object,
    seq: u64,
    hash: &str,
    t: &Template,
    old: Option<&Template>,
    now: &str,
) -> Revision {
    let cause = obj
        .metadata()
        .annotations
        .get(CHANGE_CAUSE_ANNOTATION)
        .cloned()
        .unwrap_or_else(|| describe_change(old, t));
    Revision {
        seq,
        hash: hash.into(),
        template: t.clone(),
        change_cause: cause,
        created: now.into(),
        pin: None,
    }
}

/// "created", "image a -> b", or "changed env, ports".
fn describe_change(old: Option<&Template>, new: &Template) -> String {
    let Some(old) = old else {
        return "created".into();
    };
    if old.image != new.image {
        return format!("image {} -> {}", old.image, new.image);
    }
    let (a, b) = (
        serde_json::to_value(old).unwrap_or_default(),
        serde_json::to_value(new).unwrap_or_default(),
    );
    let empty = serde_json::Map::new();
    let (a, b) = (
        a.as_object().unwrap_or(&empty),
        b.as_object().unwrap_or(&empty),
    );
    let mut fields: Vec<&str> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    fields.dedup();
    format!("changed {}", fields.join(", "))
}

impl Store {
    /// Applies objects that have already been parsed and validated.
    /// Nothing is written when a reference is missing.
    pub async fn apply(&self, objects: &[Object], opts: &ApplyOptions) -> Result<ApplyResult> {
        let mut round_trips = 0;
        let existing = self.read_existing(objects, &mut round_trips).await?;
        self.check_references(objects, &mut round_trips).await?;
        self.check_ports(objects, &mut round_trips).await?;
        check_preconditions(objects, &existing)?;
        let now = crate::util::now_rfc3339();
        let mut prepared: Vec<Prepared> = objects
            .iter()
            .map(|o| {
                let k = object_key(o.kind(), o.project(), o.name());
                prepare(o, existing.get(&k), opts, &now)
            })
            .collect();
        self.find_rollbacks(&mut prepared, &mut round_trips).await?;
        let mut outcomes: Vec<ApplyOutcome> = prepared.iter().map(outcome).collect();
        if !opts.dry_run {
            let writes: Vec<&Prepared> = prepared
                .iter()
                .filter(|p| p.change != Change::Unchanged)
                .collect();
            let chunks = chunk(&writes)?;
            round_trips += chunks.len();
            // Chunks travel as index ranges into `writes`: a closure taking
            // `Vec<&Prepared>` makes this future not provably `Send` (a
            // rustc limit with higher-ranked lifetimes), and an API handler
            // must be `Send`.
            let mut ranges = Vec::new();
            let mut from = 0;
            for c in &chunks {
                ranges.push(from..from + c.len());
                from += c.len();
            }
            let writes = &writes;
            let failed: Vec<Vec<&Prepared>> = futures::stream::iter(ranges)
                .map(|range: std::ops::Range<usize>| async move {
                    let chunk = writes[range].to_vec();
                    let ok = self.write_chunk(&chunk).await?;
                    Ok::<_, StoreError>(if ok { None } else { Some(chunk) })
                })
                .buffer_unordered(PARALLEL_TXNS)
                .try_filter_map(|x| async move { Ok(x) })
                .try_collect()
                .await?;
            // A lost race in a chunk: redo its objects one by one against fresh reads.
            for p in failed.into_iter().flatten() {
                let obj = objects.iter().find(|o| {
                    o.kind() == p.kind
                        && o.name() == p.name
                        && o.project().map(str::to_string) == p.project
                });
                if let Some(obj) = obj {
                    let out = self
                        .apply_one_with_retry(obj, opts, &mut round_trips)
                        .await?;
                    if let Some(slot) = outcomes.iter_mut().find(|o| {
                        o.kind == out.kind && o.name == out.name && o.project == out.project
                    }) {
                        *slot = out;
                    }
                }
            }
        }
        if opts.prune {
            let set = opts
                .applyset
                .as_deref()
                .ok_or_else(|| StoreError::Invalid("--prune needs --applyset NAME".into()))?;
            outcomes.extend(
                self.prune(objects, set, opts.dry_run, &mut round_trips)
                    .await?,
            );
        }
        Ok(ApplyResult {
            outcomes,
            round_trips,
        })
    }

    /// For each new revision of an existing component, looks for an older
    /// revision with the same template: a rollback. That one is replaced by
    /// the new number instead of kept twice. One range read per project with
    /// more than 4 such components, else one small read per component.
    async fn find_rollbacks(
        &self,
        prepared: &mut [Prepared],
        round_trips: &mut usize,
    ) -> Result<()> {
        let candidates: Vec<usize> = prepared
            .iter()
            .enumerate()
            .filter(|(_, p)| p.expected_mod != 0 && p.revision.as_ref().is_some_and(|r| r.seq > 1))
            .map(|(i, _)| i)
            .collect();
        // Like `read_existing`: one range read for a project with many
        // changed components, else one small read per component.
        let mut by_project: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in candidates {
            let project = prepared[i]
                .project
                .clone()
                .unwrap_or_else(|| DEFAULT_PROJECT.into());
            by_project.entry(project).or_default().push(i);
        }
        let mut history: HashMap<(String, String), Vec<Revision>> = HashMap::new();
        for (project, idx) in &by_project {
            if idx.len() > 4 {
                *round_trips += 1;
                let prefix = self.keys.project_revisions_prefix(project);
                let (kvs, _) = self.range_all(&prefix).await?;
                for kv in &kvs {
                    let key = String::from_utf8_lossy(kv.key());
                    let component = key
                        .strip_prefix(&prefix)
                        .and_then(|k| k.split('/').next())
                        .unwrap_or_default();
                    if let Ok(r) = serde_json::from_slice::<Revision>(kv.value()) {
                        history
                            .entry((project.clone(), component.to_string()))
                            .or_default()
                            .push(r);
                    }
                }
            } else {
                *round_trips += idx.len();
                let names: Vec<String> = idx.iter().map(|i| prepared[*i].name.clone()).collect();
                let found: Vec<(String, Vec<Revision>)> = futures::stream::iter(names)
                    .map(|name| async move {
                        Ok::<_, StoreError>((name.clone(), self.revisions(project, &name).await?))
                    })
                    .buffer_unordered(16)
                    .try_collect()
                    .await?;
                for (name, revs) in found {
                    history.insert((project.clone(), name), revs);
                }
            }
        }
        let found: Vec<(usize, Option<Revision>)> = by_project
            .iter()
            .flat_map(|(project, idx)| idx.iter().map(move |i| (project, *i)))
            .map(|(project, i)| {
                let p = &prepared[i];
                let hash = p.revision.as_ref().map(|r| &r.hash);
                let old = history
                    .get(&(project.clone(), p.name.clone()))
                    .and_then(|revs| revs.iter().find(|r| Some(&r.hash) == hash).cloned());
                (i, old)
            })
            .collect();
        for (i, old) in found {
            let (Some(old), Some(rev)) = (old, prepared[i].revision.as_mut()) else {
                continue;
            };
            rev.change_cause = format!("rollback to revision {}: {}", old.seq, old.change_cause);
            // The same template brings back the same bits: the old pin stays.
            rev.pin = old.pin;
            prepared[i].replaces = Some(old.seq);
        }
        Ok(())
    }

    async fn apply_one_with_retry(
        &self,
        obj: &Object,
        opts: &ApplyOptions,
        round_trips: &mut usize,
    ) -> Result<ApplyOutcome> {
        for _ in 0..RETRIES {
            *round_trips += 2;
            let existing = self
                .get_for_write(obj.kind(), obj.project(), obj.name())
                .await?;
            let mut p = [prepare(
                obj,
                existing.as_ref(),
                opts,
                &crate::util::now_rfc3339(),
            )];
            self.find_rollbacks(&mut p, round_trips).await?;
            let [p] = p;
            if p.change == Change::Unchanged || self.write_chunk(&[&p]).await? {
                return Ok(outcome(&p));
            }
        }
        Err(StoreError::Conflict(format!(
            "{}: changed concurrently {RETRIES} times in a row; retry the command",
            obj.display_name()
        )))
    }

    /// The stored spec only (no status), for writes.
    async fn get_for_write(
        &self,
        kind: Kind,
        project: Option<&str>,
        name: &str,
    ) -> Result<Option<Stored>> {
        let key = self.keys.spec(kind, project, name);
        let resp = self.get_key(key.clone()).await?;
        resp.kvs().first().map(|kv| decode(kind, kv)).transpose()
    }

    /// Reads what etcd holds for every input object.
    async fn read_existing(
        &self,
        objects: &[Object],
        round_trips: &mut usize,
    ) -> Result<HashMap<(Kind, Option<String>, String), Stored>> {
        let mut groups: BTreeMap<(Kind, Option<String>), Vec<&Object>> = BTreeMap::new();
        for o in objects {
            groups
                .entry((o.kind(), o.project().map(str::to_string)))
                .or_default()
                .push(o);
        }
        let mut reads = Vec::new();
        for ((kind, project), objs) in &groups {
            if objs.len() > 4 {
                *round_trips += 1;
                reads.push(futures::future::Either::Left(async move {
                    let prefix = self.keys.spec_prefix(*kind, project.as_deref());
                    let (kvs, _) = self.range_all(&prefix).await?;
                    let wanted: HashSet<&str> = objs.iter().map(|o| o.name()).collect();
                    kvs.iter()
                        .filter(|kv| {
                            let name = kv
                                .key()
                                .strip_prefix(prefix.as_bytes())
                                .and_then(|k| std::str::from_utf8(k).ok())
                                .unwrap_or("");
                            wanted.contains(name)
                        })
                        .map(|kv| decode(*kind, kv))
                        .collect::<Result<Vec<_>>>()
                }));
            } else {
                *round_trips += objs.len();
                for o in objs {
                    reads.push(futures::future::Either::Right(async move {
                        Ok(self
                            .get_for_write(o.kind(), o.project(), o.name())
                            .await?
                            .into_iter()
                            .collect())
                    }));
                }
            }
        }
        let found: Vec<Vec<Stored>> = futures::stream::iter(reads)
            .buffer_unordered(16)
            .try_collect()
            .await?;
        Ok(found
            .into_iter()
            .flatten()
            .map(|s| {
                (
                    object_key(s.object.kind(), s.object.project(), s.object.name()),
                    s,
                )
            })
            .collect())
    }

    /// Every component's project must exist (in etcd or in the same input);
    /// `default` always exists.
    async fn check_references(&self, objects: &[Object], round_trips: &mut usize) -> Result<()> {
        let in_input: HashSet<&str> = objects
            .iter()
            .filter(|o| o.kind() == Kind::Project)
            .map(|o| o.name())
            .collect();
        let mut needed: Vec<&str> = objects
            .iter()
            .filter_map(|o| o.project())
            .filter(|p| *p != DEFAULT_PROJECT && !in_input.contains(p))
            .collect();
        needed.sort_unstable();
        needed.dedup();
        for p in needed {
            *round_trips += 1;
            if self.get_for_write(Kind::Project, None, p).await?.is_none() {
                let index = objects
                    .iter()
                    .position(|o| o.project() == Some(p))
                    .unwrap_or(0);
                return Err(StoreError::MissingProject {
                    index,
                    project: p.to_string(),
                });
            }
        }
        Ok(())
    }

    /// No external port may go to two components (cluster-wide). Reads
    /// every component spec only when the input claims an external port.
    async fn check_ports(&self, objects: &[Object], round_trips: &mut usize) -> Result<()> {
        let input: Vec<_> = objects.iter().filter_map(super::ports::externals).collect();
        if input.iter().all(|(_, p)| p.is_empty()) {
            return Ok(());
        }
        *round_trips += 1;
        let (kvs, _) = self
            .range_all(&self.keys.spec_prefix(Kind::Component, None))
            .await?;
        let stored: Vec<_> = kvs
            .iter()
            // A spec that does not decode claims nothing we could name.
            .filter_map(|kv| {
                super::ports::externals(&super::read::decode(Kind::Component, kv).ok()?.object)
            })
            .collect();
        super::ports::check(&stored, &input)?;
        Ok(())
    }

    /// Writes a chunk in one transaction; `false` when a compare failed.
    async fn write_chunk(&self, chunk: &[&Prepared]) -> Result<bool> {
        let mut compares = Vec::with_capacity(chunk.len());
        let mut ops = Vec::with_capacity(chunk.len() * 3);
        for p in chunk {
            let key = self.keys.spec(p.kind, p.project.as_deref(), &p.name);
            compares.push(if p.expected_mod == 0 {
                Compare::create_revision(key.clone(), CompareOp::Equal, 0)
            } else {
                Compare::mod_revision(key.clone(), CompareOp::Equal, p.expected_mod)
            });
            ops.push(TxnOp::put(key, p.doc.clone(), None));
            if let (Some(rev), Some(project)) = (&p.revision, &p.project) {
                let rkey = self.keys.revision(project, &p.name, rev.seq);
                ops.push(TxnOp::put(
                    rkey,
                    serde_json::to_vec(rev).unwrap_or_default(),
                    None,
                ));
                if let Some(old) = p.replaces {
                    ops.push(TxnOp::delete(
                        self.keys.revision(project, &p.name, old),
                        None,
                    ));
                }
                if let Some(below) = p.prune_below {
                    let from = self.keys.revision(project, &p.name, 0);
                    let to = self.keys.revision(project, &p.name, below);
                    ops.push(TxnOp::delete(
                        from,
                        Some(DeleteOptions::new().with_range(to)),
                    ));
                }
            }
        }
        let txn = Txn::new().when(compares).and_then(ops);
        Ok(self.txn(txn).await?.succeeded())
    }

    /// Deletes objects of applyset `set` that are not in `objects`.
    async fn prune(
        &self,
        objects: &[Object],
        set: &str,
        dry_run: bool,
        round_trips: &mut usize,
    ) -> Result<Vec<ApplyOutcome>> {
        let keep: HashSet<(Kind, Option<String>, String)> = objects
            .iter()
            .map(|o| object_key(o.kind(), o.project(), o.name()))
            .collect();
        let mut out = Vec::new();
        // Components before projects, so a pruned project is empty by then.
        for kind in [Kind::Component, Kind::Project] {
            *round_trips += 1;
            let (kvs, _) = self.range_all(&self.keys.spec_prefix(kind, None)).await?;
            for kv in &kvs {
                let stored = decode(kind, kv)?;
                let o = &stored.object;
                if o.metadata()
                    .annotations
                    .get(APPLYSET_ANNOTATION)
                    .map(String::as_str)
                    != Some(set)
                    || keep.contains(&object_key(kind, o.project(), o.name()))
                {
                    continue;
                }
                if !dry_run {
                    *round_trips += 1;
                    self.delete(kind, o.project(), o.name(), Some(stored.mod_revision))
                        .await?;
                }
                out.push(ApplyOutcome {
                    kind,
                    project: o.project().map(str::to_string),
                    name: o.name().to_string(),
                    change: Change::Pruned,
                    revision: None,
                });
            }
        }
        Ok(out)
    }

    /// Deletes an object with its status (and a component's revisions).
    /// With `expected_mod`, only if unchanged since read. Returns whether it existed.
    pub async fn delete(
        &self,
        kind: Kind,
        project: Option<&str>,
        name: &str,
        expected_mod: Option<i64>,
    ) -> Result<bool> {
        if kind == Kind::Project {
            let (kvs, _) = self
                .range_all(&self.keys.spec_prefix(Kind::Component, Some(name)))
                .await?;
            if !kvs.is_empty() {
                return Err(StoreError::Invalid(format!(
                    "project/{name} still has {} component(s); delete them first",
                    kvs.len()
                )));
            }
        }
        if kind == Kind::Node {
            return self.delete_node(name, expected_mod).await;
        }
        let key = self.keys.spec(kind, project, name);
        let mut ops = vec![
            TxnOp::delete(key.clone(), None),
            TxnOp::delete(self.keys.status(kind, project, name), None),
        ];
        if kind == Kind::Component {
            let p = project.unwrap_or(DEFAULT_PROJECT);
            ops.push(TxnOp::delete(
                self.keys.revision_prefix(p, name),
                Some(DeleteOptions::new().with_prefix()),
            ));
        }
        let compare = match expected_mod {
            Some(m) => Compare::mod_revision(key.clone(), CompareOp::Equal, m),
            None => Compare::create_revision(key.clone(), CompareOp::Greater, 0),
        };
        let txn = Txn::new().when(vec![compare]).and_then(ops);
        let resp = self.txn(txn).await?;
        if resp.succeeded() {
            return Ok(true);
        }
        if expected_mod.is_some() {
            return Err(StoreError::Conflict(format!(
                "{kind}/{name}: changed since it was read; retry the command"
            )));
        }
        Ok(false)
    }
}

impl Prepared {
    /// Bytes this write puts on the wire (keys, spec, revision).
    fn size(&self) -> usize {
        let rev = self
            .revision
            .as_ref()
            .map_or(0, |r| serde_json::to_vec(r).map_or(0, |v| v.len()) + 200);
        self.doc.len() + rev + 200
    }
}

/// Groups writes into transactions of at most [`CHUNK`] objects and
/// [`CHUNK_BYTES`] bytes. Fails, before anything is written, when one object
/// alone is too large for a request.
fn chunk<'a>(writes: &[&'a Prepared]) -> Result<Vec<Vec<&'a Prepared>>> {
    let mut chunks: Vec<Vec<&Prepared>> = Vec::new();
    let mut bytes = 0;
    for p in writes {
        let size = p.size();
        if size > CHUNK_BYTES {
            return Err(StoreError::Invalid(format!(
                "{}/{}: too large to store: {} KiB with its revision record, etcd accepts at most {} KiB per request; keep specs under about 500 KiB",
                p.kind.lower(),
                p.name,
                size / 1024,
                CHUNK_BYTES / 1024
            )));
        }
        match chunks.last_mut() {
            Some(last) if last.len() < CHUNK && bytes + size <= CHUNK_BYTES => {
                last.push(p);
                bytes += size;
            }
            _ => {
                chunks.push(vec![p]);
                bytes = size;
            }
        }
    }
    Ok(chunks)
}

/// An input object that carries `metadata.resourceVersion` (as `get -o yaml`
/// writes it) is applied only over exactly that version, like kubectl: an
/// edit of a stale copy is a conflict, not a silent overwrite.
fn check_preconditions(
    objects: &[Object],
    existing: &HashMap<(Kind, Option<String>, String), Stored>,
) -> Result<()> {
    for o in objects {
        let Some(rv) = o.metadata().resource_version.as_deref() else {
            continue;
        };
        let key = object_key(o.kind(), o.project(), o.name());
        let live = existing.get(&key).map(|s| s.mod_revision.to_string());
        if live.as_deref() != Some(rv) {
            return Err(StoreError::Conflict(format!(
                "{}: the input has resourceVersion {rv} but etcd holds {}; get the object again (or drop resourceVersion to overwrite)",
                o.display_name(),
                live.map_or("no such object".to_string(), |v| format!("version {v}"))
            )));
        }
    }
    Ok(())
}

fn outcome(p: &Prepared) -> ApplyOutcome {
    ApplyOutcome {
        kind: p.kind,
        project: p.project.clone(),
        name: p.name.clone(),
        change: p.change,
        revision: p.revision.as_ref().map(|r| r.seq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::{ComponentSpec, ObjectMeta, API_VERSION};

    fn component(image: &str, replicas: u32) -> Object {
        Object::Component(Component {
            api_version: API_VERSION.into(),
            kind: "Component".into(),
            metadata: ObjectMeta {
                name: "web".into(),
                ..Default::default()
            },
            spec: ComponentSpec {
                image: image.into(),
                placement: crate::resource::component::Placement {
                    replicas: Some(replicas),
                    ..Default::default()
                },
                ..Default::default()
            },
            status: None,
        })
    }

    fn stored(p: &Prepared, mod_revision: i64) -> Stored {
        let kv_obj = Object::from_json(p.kind, &p.doc).expect("own doc decodes");
        Stored {
            object: kv_obj,
            mod_revision,
            raw: p.doc.clone(),
        }
    }

    /// Applies `steps` in order against an in-memory "etcd" and checks
    /// (change, generation, revision annotation) after each.
    fn check(steps: &[Object], expected: &[(Change, i64, u64)]) {
        let opts = ApplyOptions::default();
        let mut current: Option<Stored> = None;
        for (i, (obj, want)) in steps.iter().zip(expected).enumerate() {
            let p = prepare(obj, current.as_ref(), &opts, "2026-01-01T00:00:00Z");
            let s = stored(&p, 10 + i as i64);
            let meta = s.object.metadata();
            let rev = meta
                .annotations
                .get(REVISION_ANNOTATION)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            assert_eq!(
                (p.change, meta.generation.unwrap_or(0), rev),
                *want,
                "step {i}"
            );
            if p.change != Change::Unchanged {
                current = Some(s);
            }
        }
    }

    #[test]
    fn generation_and_revisions() {
        check(
            &[
                component("web:1", 1),
                component("web:1", 1),
                component("web:1", 3),
                component("web:2", 3),
                component("web:2", 3),
            ],
            &[
                (Change::Created, 1, 1),
                (Change::Unchanged, 1, 1),
                // Scaling changes the spec but not the template: no new revision.
                (Change::Configured, 2, 1),
                (Change::Configured, 3, 2),
                (Change::Unchanged, 3, 2),
            ],
        );
    }

    #[test]
    fn labels_change_is_configured_without_generation_bump() {
        let mut labelled = component("web:1", 1);
        labelled
            .metadata_mut()
            .labels
            .insert("tier".into(), "front".into());
        check(
            &[component("web:1", 1), labelled],
            &[(Change::Created, 1, 1), (Change::Configured, 1, 1)],
        );
    }

    #[test]
    fn change_cause() {
        let a = match component("web:1", 1) {
            Object::Component(c) => c.spec.template(),
            _ => unreachable!(),
        };
        let mut b = a.clone();
        b.image = "web:2".into();
        assert_eq!(describe_change(Some(&a), &b), "image web:1 -> web:2");
        let mut c = a.clone();
        c.env.insert("A".into(), "1".into());
        c.privileged = true;
        assert_eq!(describe_change(Some(&a), &c), "changed env, privileged");
        assert_eq!(describe_change(None, &a), "created");
    }
}
