//! Cutting a list of ops into messages of bounded size: at most `max_ops`
//! items and `max_bytes` encoded bytes each, so no message nears the
//! transport's frame limit however large the values are.

use serde::Serialize;

/// How large one message may grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLimits {
    /// Items per message.
    pub max_ops: usize,
    /// Encoded bytes per message. An item larger than this goes alone.
    pub max_bytes: usize,
}

/// `items` cut in order into runs within `limits`. Every run holds at least
/// one item, and a run over `max_bytes` holds exactly one. An item that
/// cannot be encoded counts as `max_bytes` (it goes alone, and its send
/// fails where the error can be reported).
pub fn split<T: Serialize>(items: Vec<T>, limits: ChunkLimits) -> Vec<Vec<T>> {
    // Most writes are one op: it goes alone whatever its size, unmeasured.
    if items.len() <= 1 {
        return if items.is_empty() {
            Vec::new()
        } else {
            vec![items]
        };
    }
    let max_ops = limits.max_ops.max(1);
    let mut runs = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0usize;
    for item in items {
        let size = drove_runtime::wire::encoded_len(&item).unwrap_or(limits.max_bytes);
        let full = current.len() >= max_ops || bytes.saturating_add(size) > limits.max_bytes;
        if full && !current.is_empty() {
            runs.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        current.push(item);
    }
    if !current.is_empty() {
        runs.push(current);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Runs keep every item in order, none is empty, and each stays
        /// within both limits unless it is a single oversized item.
        #[test]
        fn runs_keep_order_and_limits(
            sizes in prop::collection::vec(0usize..300, 0..60),
            max_ops in 1usize..10,
            max_bytes in 1usize..600,
        ) {
            let items: Vec<Vec<u8>> = sizes.iter().map(|&n| vec![1u8; n]).collect();
            let limits = ChunkLimits { max_ops, max_bytes };
            let runs = split(items.clone(), limits);
            let flat: Vec<Vec<u8>> = runs.iter().flatten().cloned().collect();
            prop_assert_eq!(flat, items);
            for run in &runs {
                prop_assert!(!run.is_empty());
                prop_assert!(run.len() <= max_ops);
                let bytes: usize = run.iter().map(|i| drove_runtime::wire::encoded_len(i).unwrap()).sum();
                prop_assert!(bytes <= max_bytes || run.len() == 1);
            }
        }
    }

    #[test]
    fn forty_large_values_make_many_small_messages() {
        let items: Vec<Vec<u8>> = (0..40).map(|_| vec![7u8; 900_000]).collect();
        let runs = split(
            items,
            ChunkLimits {
                max_ops: 2000,
                max_bytes: 2 << 20,
            },
        );
        assert_eq!(runs.len(), 20);
        assert!(runs.iter().all(|r| r.len() == 2));
    }
}
