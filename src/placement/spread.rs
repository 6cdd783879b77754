//! The arithmetic of stable spreading, over counts in node-name order.
//!
//! Both functions compute in one pass what "move one replica at a time"
//! would reach (add to the least-loaded, ties by name; take from the
//! most-loaded, ties in reverse name order), so a component of 100000
//! replicas costs no more than one of 3.

use std::cmp::Reverse;

/// Spreads `total` over nodes holding `current` now, so that counts differ by
/// at most one, moving as few replicas as possible.
///
/// Balance forces every count to be `q` or `q + 1` (`q = total / n`); the only
/// freedom is which `total % n` nodes get `q + 1`. Giving it to the nodes that
/// hold the most now keeps the most replicas where they are, so a node only
/// gains when it ends at most at `q + 1`, and only loses when it ends at
/// least at `q`. Ties go to the earlier name.
pub(super) fn spread(current: &[u32], total: u32) -> Vec<u32> {
    let n = current.len() as u64;
    if n == 0 {
        return Vec::new();
    }
    // q <= total and r < n, so both fit back.
    let q = (u64::from(total) / n) as u32;
    let r = (u64::from(total) % n) as usize;
    let mut order: Vec<usize> = (0..current.len()).collect();
    order.sort_by_key(|&i| (Reverse(current[i]), i));
    let mut out = vec![q; current.len()];
    for &i in &order[..r] {
        out[i] += 1;
    }
    out
}

/// Keeps at most `keep` of `current` in place, removing from the most-loaded
/// first (ties: the later name loses first). Never adds.
pub(super) fn trim(current: &[u32], keep: u32) -> Vec<u32> {
    let keep = u64::from(keep);
    let capped = |level: u32| -> u64 { current.iter().map(|&c| u64::from(c.min(level))).sum() };
    let max = current.iter().copied().max().unwrap_or(0);
    if capped(max) <= keep {
        return current.to_vec();
    }
    // Removing from the top levels everything down to `level`, with
    // capped(lo) <= keep < capped(hi): find the highest such level.
    let (mut lo, mut hi) = (0, max);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if capped(mid) <= keep {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // capped(lo + 1) = capped(lo) + |{c > lo}| > keep, so the rest fits in
    // one more replica on some of the nodes above `lo`: the earlier names.
    let mut extra = keep - capped(lo);
    let mut out: Vec<u32> = current.iter().map(|&c| c.min(lo)).collect();
    for (o, &c) in out.iter_mut().zip(current) {
        if extra == 0 {
            break;
        }
        if c > lo {
            *o += 1;
            extra -= 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_keeps_the_most_loaded() {
        assert_eq!(spread(&[], 3), Vec::<u32>::new());
        assert_eq!(spread(&[0, 0, 0], 4), [2, 1, 1]);
        assert_eq!(spread(&[0, 0, 1], 2), [1, 0, 1]);
        assert_eq!(spread(&[1, 1, 1, 0], 3), [1, 1, 1, 0]);
        assert_eq!(spread(&[2, 1, 1, 0], 4), [1, 1, 1, 1]);
        assert_eq!(spread(&[5, 0, 3], 4), [2, 1, 1]);
        assert_eq!(spread(&[0, 3], 0), [0, 0]);
        assert_eq!(spread(&[0], u32::MAX), [u32::MAX]);
    }

    #[test]
    fn trim_removes_from_the_most_loaded() {
        assert_eq!(trim(&[], 3), Vec::<u32>::new());
        assert_eq!(trim(&[1, 2], 5), [1, 2]);
        assert_eq!(trim(&[3, 1, 3], 5), [2, 1, 2]);
        assert_eq!(trim(&[3, 1, 3], 6), [3, 1, 2]);
        assert_eq!(trim(&[1, 1, 1], 1), [1, 0, 0]);
        assert_eq!(trim(&[4, 0, 2], 0), [0, 0, 0]);
        assert_eq!(
            trim(&[u32::MAX, u32::MAX], u32::MAX),
            [u32::MAX / 2 + 1, u32::MAX / 2]
        );
    }
}
