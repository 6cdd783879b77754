//! The balancing decision, pure: which backend takes the next connection
//! (tcp) or request (http).

/// A backend as the balancer sees it at one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Load {
    /// Open connections (tcp) or requests in flight (http).
    pub open: u64,
    /// Marked draining by the agent: takes nothing new.
    pub draining: bool,
    /// Already failed for this connection or request: try the others first.
    pub failed: bool,
}

/// The index of the backend with the fewest open, skipping draining and
/// failed ones; `None` when none is left.
///
/// Ties go to the first candidate at or after `cursor` (modulo the length),
/// in the given order. The caller advances the cursor on every pick, so equal
/// backends take turns: a client sending one request at a time (every count
/// back to zero in between) is still spread, and the same inputs always give
/// the same answer.
pub fn pick(loads: &[Load], cursor: usize) -> Option<usize> {
    let n = loads.len();
    let mut best: Option<(usize, u64)> = None;
    for k in 0..n {
        let i = (cursor % n.max(1) + k) % n;
        let l = loads[i];
        if l.draining || l.failed {
            continue;
        }
        // Strictly fewer: the earliest from the cursor keeps a tie.
        if best.is_none_or(|(_, open)| l.open < open) {
            best = Some((i, l.open));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(open: u64) -> Load {
        Load {
            open,
            draining: false,
            failed: false,
        }
    }

    #[test]
    fn fewest_open_wins() {
        assert_eq!(pick(&[up(3), up(1), up(2)], 0), Some(1));
        assert_eq!(pick(&[up(3), up(1), up(2)], 2), Some(1));
    }

    #[test]
    fn ties_take_turns_from_the_cursor() {
        let loads = [up(0), up(0), up(0)];
        let picks: Vec<_> = (0..6).map(|c| pick(&loads, c)).collect();
        assert_eq!(
            picks,
            [Some(0), Some(1), Some(2), Some(0), Some(1), Some(2)]
        );
        // Among the least loaded only: 1 is busier than 0 and 2.
        let loads = [up(0), up(1), up(0)];
        assert_eq!(pick(&loads, 1), Some(2));
        assert_eq!(pick(&loads, 3), Some(0));
    }

    #[test]
    fn draining_and_failed_are_skipped() {
        let loads = [
            Load {
                draining: true,
                ..up(0)
            },
            Load {
                failed: true,
                ..up(0)
            },
            up(9),
        ];
        assert_eq!(pick(&loads, 0), Some(2));
        assert_eq!(pick(&loads[..2], 0), None);
    }

    #[test]
    fn nothing_to_pick() {
        assert_eq!(pick(&[], 0), None);
        assert_eq!(pick(&[], 7), None);
    }

    #[test]
    fn deterministic() {
        let loads = [up(2), up(1), up(1), up(5)];
        for c in 0..8 {
            assert_eq!(pick(&loads, c), pick(&loads, c));
            assert!(matches!(pick(&loads, c), Some(1 | 2)));
        }
    }
}
