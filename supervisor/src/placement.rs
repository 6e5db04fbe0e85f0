//! Where a child runs: pure functions of the child's id and the members
//! that can run it, so every node computes the same answer from the same
//! membership, with no coordination.

use std::hash::{Hash, Hasher};

use drove_runtime::NodeId;

/// FNV-1a, stable across builds and machines (placement must agree
/// between nodes running different builds).
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn score(child: &str, node: &NodeId) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    child.hash(&mut h);
    node.name.hash(&mut h);
    node.incarnation.0.hash(&mut h);
    // splitmix64 finalizer: FNV alone clusters on similar inputs.
    let mut z = h.finish().wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Rendezvous (highest-random-weight) hashing: the candidate with the
/// highest score for `child`. Independent of the candidates' order; when a
/// candidate goes away only the children it held move, and when one is
/// added only the children it now wins move to it.
pub fn rendezvous<'a>(child: &str, candidates: &'a [NodeId]) -> Option<&'a NodeId> {
    candidates
        .iter()
        .max_by(|a, b| score(child, a).cmp(&score(child, b)).then_with(|| b.cmp(a)))
}

/// A placement strategy: which of `candidates` (up members that declared
/// the child's type) runs `child`, or `None` to run it nowhere for now.
pub trait Placement: Send + Sync + 'static {
    /// Picks a node for `child`.
    fn place<'a>(&self, child: &str, candidates: &'a [NodeId]) -> Option<&'a NodeId>;
}

/// The default: rendezvous hashing over the candidates.
#[derive(Clone, Copy, Debug, Default)]
pub struct Uniform;

impl Placement for Uniform {
    fn place<'a>(&self, child: &str, candidates: &'a [NodeId]) -> Option<&'a NodeId> {
        rendezvous(child, candidates)
    }
}

/// Majority rule: a side of the cluster runs children only while it sees a
/// strict majority of the cluster's size, either configured or the largest
/// membership this node has seen.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quorum {
    configured: Option<usize>,
    largest_seen: usize,
}

impl Quorum {
    /// A quorum over a fixed cluster size, or over the largest membership
    /// seen when `size` is `None`.
    pub fn new(size: Option<usize>) -> Self {
        Self {
            configured: size,
            largest_seen: 0,
        }
    }

    /// Records how many members are up now.
    pub fn observe(&mut self, up: usize) {
        self.largest_seen = self.largest_seen.max(up);
    }

    /// The cluster size the majority is counted against.
    pub fn size(&self) -> usize {
        self.configured.unwrap_or(self.largest_seen).max(1)
    }

    /// Whether `up` members are a strict majority.
    pub fn has_quorum(&self, up: usize) -> bool {
        up * 2 > self.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drove_runtime::Incarnation;
    use proptest::prelude::*;

    fn nodes(n: usize) -> Vec<NodeId> {
        (0..n)
            .map(|i| NodeId::new(format!("n{i}"), Incarnation(i as u64 * 31 + 7)))
            .collect()
    }

    proptest! {
        #[test]
        fn independent_of_candidate_order(child in "[a-z0-9]{1,20}", n in 1usize..8, rot in 0usize..8) {
            let a = nodes(n);
            let mut b = a.clone();
            b.rotate_left(rot % n);
            b.reverse();
            prop_assert_eq!(rendezvous(&child, &a), rendezvous(&child, &b));
        }

        /// Removing a node moves only the children it held.
        #[test]
        fn minimal_movement(children in prop::collection::vec("[a-z0-9]{1,12}", 1..50), n in 2usize..8, gone in 0usize..8) {
            let all = nodes(n);
            let gone = &all[gone % n];
            let rest: Vec<NodeId> = all.iter().filter(|x| *x != gone).cloned().collect();
            for c in &children {
                let before = rendezvous(c, &all).cloned();
                let after = rendezvous(c, &rest).cloned();
                if before.as_ref() != Some(gone) {
                    prop_assert_eq!(before, after);
                }
            }
        }
    }

    #[test]
    fn spreads_evenly() {
        let all = nodes(3);
        let mut counts = [0usize; 3];
        for i in 0..3000 {
            let chosen = rendezvous(&format!("child-{i}"), &all).cloned();
            let idx = all
                .iter()
                .position(|n| Some(n) == chosen.as_ref())
                .unwrap_or(0);
            counts[idx] += 1;
        }
        assert!(
            counts.iter().all(|&c| (850..=1150).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn quorum_counts_a_strict_majority() {
        let mut q = Quorum::new(None);
        q.observe(3);
        assert!(q.has_quorum(2));
        assert!(!q.has_quorum(1));
        q.observe(2);
        assert_eq!(q.size(), 3, "the largest membership seen counts");
        let fixed = Quorum::new(Some(4));
        assert!(!fixed.has_quorum(2));
        assert!(fixed.has_quorum(3));
        assert!(rendezvous("x", &[]).is_none());
    }
}
