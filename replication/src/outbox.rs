//! [`Outbox`]: messages to one peer that wait for room on its link.
//!
//! A link holds a bounded number of bytes (see drove-runtime), and a
//! partition can be larger: a resync of 40 values of 900 KB is 36 MB. When
//! the link is full, the rest of what is going to that peer waits here, in
//! order, and later messages to the peer queue behind it, so the peer still
//! sees this node's messages in the order they were made (a delta never
//! overtakes the sync chunks before it). A pump sends from the front as the
//! link drains. An outbox is bounded too: one that grows past
//! [`OUTBOX_MAX`] messages or waits past [`OUTBOX_PATIENCE`] is dropped,
//! and the peer repaired by a fresh resync once it reads again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Messages an outbox holds, at most.
pub(crate) const OUTBOX_MAX: usize = 4096;

/// How long an outbox may go without sending anything before it is dropped.
pub(crate) const OUTBOX_PATIENCE: Duration = Duration::from_secs(30);

/// How often the pump tries the front of an outbox.
pub(crate) const OUTBOX_PUMP_EVERY: Duration = Duration::from_millis(10);

/// Messages waiting for one peer's link, oldest first.
pub(crate) struct Outbox<M> {
    queue: VecDeque<M>,
    progress_at: Instant,
}

impl<M> Outbox<M> {
    /// An outbox holding `first`, which the link just refused.
    pub(crate) fn new(first: M) -> Self {
        Self {
            queue: VecDeque::from([first]),
            progress_at: Instant::now(),
        }
    }

    /// Queues `msg` behind the others; false when the outbox is full.
    pub(crate) fn push(&mut self, msg: M) -> bool {
        if self.queue.len() >= OUTBOX_MAX {
            return false;
        }
        self.queue.push_back(msg);
        true
    }

    /// The oldest message, to try sending.
    pub(crate) fn pop(&mut self) -> Option<M> {
        self.queue.pop_front()
    }

    /// Puts back a message the link refused again, at the front.
    pub(crate) fn put_back(&mut self, msg: M) {
        self.queue.push_front(msg);
    }

    /// A message went out.
    pub(crate) fn sent_one(&mut self) {
        self.progress_at = Instant::now();
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether the peer has taken nothing for [`OUTBOX_PATIENCE`].
    pub(crate) fn stalled(&self) -> bool {
        self.progress_at.elapsed() > OUTBOX_PATIENCE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_is_kept_and_the_bound_holds() {
        let mut o = Outbox::new(0);
        for i in 1..OUTBOX_MAX {
            assert!(o.push(i));
        }
        assert!(!o.push(OUTBOX_MAX), "full");
        let first = o.pop();
        assert_eq!(first, Some(0));
        o.put_back(0);
        assert_eq!(o.pop(), Some(0));
        assert_eq!(o.pop(), Some(1));
        assert!(!o.stalled());
        assert!(!o.is_empty());
    }
}
