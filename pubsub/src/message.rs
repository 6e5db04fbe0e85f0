//! [`PubSubMsg`]: what travels between the pub/sub services of two nodes.

use serde::{Deserialize, Serialize};

use drove_runtime::Message;

/// What travels between pub/sub services: one per node with subscribers
/// per broadcast, whatever the number of subscribers there.
#[derive(Debug, Serialize, Deserialize)]
pub enum PubSubMsg {
    /// Deliver an encoded message to this node's subscribers of `topic`.
    Deliver {
        /// The sending node's name, for the counters.
        from: String,
        /// The topic.
        topic: String,
        /// The message type's wire tag.
        tag: u64,
        /// The encoded message.
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
}

impl Message for PubSubMsg {
    const TAG: &'static str = "drove.pubsub.v1";
}
