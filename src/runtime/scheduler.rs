//! The scheduler: a deduplicating work queue of keys with delays.
//!
//! A key is in at most one place at a time: ready (FIFO), delayed (until a
//! deadline), or running (with perhaps one pending re-run). Scheduling a key
//! that is already waiting keeps the earlier time; scheduling a key that is
//! running marks it for one re-run when it finishes. So one key never runs
//! twice at once, and a burst of triggers costs one run.
//!
//! The scheduler has no clock and no tasks: callers pass the time in, which
//! keeps it deterministic and unit-testable. Every operation is infallible, so
//! this module has no error type.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use tokio::time::Instant;

/// The work queue.
#[derive(Debug, Default)]
pub struct Scheduler {
    ready: VecDeque<String>,
    in_ready: HashSet<String>,
    delayed: BTreeSet<(Instant, u64, String)>,
    deadline: HashMap<String, (Instant, u64)>,
    running: HashSet<String>,
    /// Running keys that must run again when done, and from when.
    rerun: HashMap<String, Instant>,
    seq: u64,
}

impl Scheduler {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks for `key` to run at `at` (or as soon as possible after). Earlier
    /// wins over later; a running key runs once more after it finishes.
    pub fn schedule(&mut self, key: String, at: Instant, now: Instant) {
        if self.running.contains(&key) {
            let e = self.rerun.entry(key).or_insert(at);
            if at < *e {
                *e = at;
            }
            return;
        }
        if self.in_ready.contains(&key) {
            return;
        }
        if let Some(&(old, seq)) = self.deadline.get(&key) {
            if old <= at {
                return;
            }
            self.delayed.remove(&(old, seq, key.clone()));
            self.deadline.remove(&key);
        }
        if at <= now {
            self.in_ready.insert(key.clone());
            self.ready.push_back(key);
        } else {
            self.seq += 1;
            self.deadline.insert(key.clone(), (at, self.seq));
            self.delayed.insert((at, self.seq, key));
        }
    }

    /// Moves every delayed key whose time has come to the ready queue.
    pub fn promote(&mut self, now: Instant) {
        while let Some(first) = self.delayed.first() {
            if first.0 > now {
                break;
            }
            let Some((_, _, key)) = self.delayed.pop_first() else {
                break;
            };
            self.deadline.remove(&key);
            if self.in_ready.insert(key.clone()) {
                self.ready.push_back(key);
            }
        }
    }

    /// The earliest deadline of a delayed key.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.delayed.first().map(|(at, _, _)| *at)
    }

    /// Takes the next ready key and marks it running.
    pub fn pop(&mut self) -> Option<String> {
        let key = self.ready.pop_front()?;
        self.in_ready.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// Marks `key` as finished; a trigger that came while it ran schedules it again.
    pub fn done(&mut self, key: &str, now: Instant) {
        self.running.remove(key);
        if let Some(at) = self.rerun.remove(key) {
            self.schedule(key.to_string(), at, now);
        }
    }

    /// Forgets every waiting key (running keys stay running).
    pub fn clear_waiting(&mut self) {
        self.ready.clear();
        self.in_ready.clear();
        self.delayed.clear();
        self.deadline.clear();
        self.rerun.clear();
    }

    /// Keys ready to run now.
    pub fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// Keys waiting for a deadline.
    pub fn delayed_len(&self) -> usize {
        self.delayed.len()
    }

    /// Keys running.
    pub fn running_len(&self) -> usize {
        self.running.len()
    }

    /// Whether `key` is running.
    pub fn is_running(&self, key: &str) -> bool {
        self.running.contains(key)
    }

    /// When `key` is due, if it is delayed.
    pub fn deadline_of(&self, key: &str) -> Option<Instant> {
        self.deadline.get(key).map(|(at, _)| *at)
    }

    /// Whether nothing is ready, delayed or running.
    pub fn is_idle(&self) -> bool {
        self.ready.is_empty() && self.delayed.is_empty() && self.running.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn dedups_ready_keys() {
        let now = Instant::now();
        let mut s = Scheduler::new();
        for _ in 0..5 {
            s.schedule("a".into(), now, now);
        }
        s.schedule("b".into(), now, now);
        assert_eq!(s.ready_len(), 2);
        assert_eq!(s.pop().as_deref(), Some("a"));
        assert_eq!(s.pop().as_deref(), Some("b"));
        assert_eq!(s.pop(), None);
    }

    #[test]
    fn earlier_wins() {
        let now = Instant::now();
        let mut s = Scheduler::new();
        s.schedule("a".into(), now + ms(100), now);
        s.schedule("a".into(), now + ms(500), now);
        assert_eq!(s.deadline_of("a"), Some(now + ms(100)));
        s.schedule("a".into(), now + ms(50), now);
        assert_eq!(s.deadline_of("a"), Some(now + ms(50)));
        assert_eq!(s.delayed_len(), 1);
        s.schedule("a".into(), now, now);
        assert_eq!(s.delayed_len(), 0);
        assert_eq!(s.ready_len(), 1);
        // Ready already: a later time changes nothing.
        s.schedule("a".into(), now + ms(10), now);
        assert_eq!(s.delayed_len(), 0);
    }

    #[test]
    fn promotes_in_deadline_order() {
        let now = Instant::now();
        let mut s = Scheduler::new();
        s.schedule("late".into(), now + ms(300), now);
        s.schedule("early".into(), now + ms(100), now);
        s.schedule("mid".into(), now + ms(200), now);
        assert_eq!(s.next_deadline(), Some(now + ms(100)));
        s.promote(now + ms(250));
        assert_eq!(s.pop().as_deref(), Some("early"));
        assert_eq!(s.pop().as_deref(), Some("mid"));
        assert_eq!(s.pop(), None);
        assert_eq!(s.next_deadline(), Some(now + ms(300)));
    }

    #[test]
    fn running_key_reruns_once_after() {
        let now = Instant::now();
        let mut s = Scheduler::new();
        s.schedule("a".into(), now, now);
        assert_eq!(s.pop().as_deref(), Some("a"));
        // Triggered three times while running: one re-run, and not concurrently.
        for _ in 0..3 {
            s.schedule("a".into(), now, now);
        }
        assert_eq!(s.pop(), None);
        assert!(s.is_running("a"));
        s.done("a", now);
        assert_eq!(s.pop().as_deref(), Some("a"));
        s.done("a", now);
        assert_eq!(s.pop(), None);
        assert!(s.is_idle());
    }
}
