//! [`KeyPage`]: one page of a table's keys in name order, picked in a
//! single pass with memory bounded by the page size, so reading a page of
//! a million-key table never copies the table.

use std::collections::BinaryHeap;

/// Collects the `limit` smallest keys after a cursor that match a search,
/// and counts every match. Feed it with [`offer`](Self::offer), then call
/// [`finish`](Self::finish).
#[derive(Debug)]
pub struct KeyPage<'q> {
    search: &'q str,
    after: Option<&'q str>,
    limit: usize,
    /// The smallest keys so far, largest on top.
    kept: BinaryHeap<String>,
    matched: usize,
}

/// A page of keys and how many keys matched in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Up to the limit, in order.
    pub keys: Vec<String>,
    /// Keys that matched the search, on every page.
    pub matched: usize,
    /// Whether more matching keys follow the last one.
    pub more: bool,
}

impl<'q> KeyPage<'q> {
    /// Keys that contain `search` (empty: every key) and sort after
    /// `after` (none: from the first), at most `limit` of them.
    pub fn new(search: &'q str, after: Option<&'q str>, limit: usize) -> KeyPage<'q> {
        KeyPage {
            search,
            after,
            limit,
            kept: BinaryHeap::with_capacity(limit.saturating_add(1).min(1024)),
            matched: 0,
        }
    }

    /// Whether `key` matches the search (counted or not).
    pub fn matches(&self, key: &str) -> bool {
        key.contains(self.search)
    }

    /// Looks at one key that exists (callers filter out dead keys first).
    pub fn offer(&mut self, key: &str) {
        if !self.matches(key) {
            return;
        }
        self.matched += 1;
        if self.after.is_some_and(|a| key <= a) {
            return;
        }
        if self.kept.len() <= self.limit {
            self.kept.push(key.to_string());
        } else if self.kept.peek().is_some_and(|top| key < top.as_str()) {
            self.kept.pop();
            self.kept.push(key.to_string());
        }
    }

    /// The page. One key more than the limit is kept, to tell whether more
    /// follow.
    pub fn finish(self) -> Page {
        let mut keys = self.kept.into_sorted_vec();
        let more = keys.len() > self.limit;
        keys.truncate(self.limit);
        Page {
            keys,
            matched: self.matched,
            more,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Walking the pages gives every matching key once, in order.
        #[test]
        fn pages_walk_the_sorted_matches(
            keys in proptest::collection::btree_set("[a-c]{1,4}", 0..60),
            search in "[a-c]{0,1}",
            limit in 1usize..7,
        ) {
            let want: Vec<String> = keys.iter().filter(|k| k.contains(&search)).cloned().collect();
            let mut got = Vec::new();
            let mut after: Option<String> = None;
            loop {
                let mut page = KeyPage::new(&search, after.as_deref(), limit);
                for k in &keys {
                    page.offer(k);
                }
                let page = page.finish();
                prop_assert_eq!(page.matched, want.len());
                prop_assert!(page.keys.len() <= limit);
                got.extend(page.keys.iter().cloned());
                if !page.more {
                    break;
                }
                after = page.keys.last().cloned();
            }
            prop_assert_eq!(got, want);
        }
    }
}
