//! [`SubscriptionsSchema`]: the replicated table of which nodes have
//! subscribers to which topics.

use std::sync::Arc;

use drove_replication::Schema;

/// Which nodes have subscribers to which topics: each node owns the slots
/// of its own topics (present while it has at least one subscriber).
#[derive(Debug)]
pub struct SubscriptionsSchema;

impl Schema for SubscriptionsSchema {
    const CHANNEL: &'static str = "pubsub";
    const TAG: &'static str = "drove.pubsub.subscriptions.v1";
    type Key = Arc<str>;
    type Value = bool;
}
