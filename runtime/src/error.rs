//! Error enums at the runtime's boundary.

use serde::{Deserialize, Serialize};

use drove_membership::NodeId;

/// Why a message was not delivered to an actor. Travels back to a remote
/// caller, so it is serializable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DeliveryError {
    /// No actor with that id or local name on the node.
    #[error("no actor {0} on this node")]
    NoSuchActor(String),
    /// The actor exists but takes another message type.
    #[error("actor {actor} takes message tag {expected:#018x}, got {got:#018x}")]
    WrongType {
        /// The addressed actor.
        actor: String,
        /// The tag of the type it takes.
        expected: u64,
        /// The tag that came.
        got: u64,
    },
    /// The payload does not decode as the actor's message type.
    #[error("payload does not decode: {0}")]
    Decode(String),
    /// The message was meant for another incarnation of this node.
    #[error("message for incarnation {0}, which is not this node's")]
    StaleIncarnation(String),
    /// The reply value did not decode as the caller's reply type.
    #[error("reply does not decode: {0}")]
    ReplyDecode(String),
    /// The message names another node as its sender than the one it came
    /// from (see `Message::claimed_sender`).
    #[error("message claims to come from {claimed} but came from {from}")]
    Impersonation {
        /// The node the message names.
        claimed: String,
        /// The node it came from.
        from: String,
    },
}

/// Why a cast could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The addressed node is not up in this node's view (down, left, never
    /// seen, or an older incarnation).
    #[error("node {0} is not reachable")]
    NodeUnreachable(NodeId),
    /// Delivery on this node failed.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// The message could not be encoded, or is larger than a frame.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The link to the node has more than its limit of unsent bytes.
    #[error("link to {0} is overloaded")]
    Overloaded(NodeId),
}

/// Why a call returned no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The request could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The callee's node reported that the request could not be delivered.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// No reply within the timeout.
    #[error("no reply within {0:?}")]
    Timeout(std::time::Duration),
    /// The callee's node went down (or this node rejoined) before replying.
    #[error("node {0} went down before replying")]
    NodeDown(NodeId),
}

/// Why an actor could not be spawned.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The local name is taken by a live actor.
    #[error("local name {0:?} is already taken")]
    NameTaken(String),
    /// The actor's `init` failed, or ractor refused the spawn.
    #[error("actor failed to start")]
    Start(#[source] ractor::SpawnErr),
}

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The node's name is not a valid name.
    #[error("invalid node name")]
    Name(#[source] drove_membership::NodeIdParseError),
    /// The gossip socket could not be opened.
    #[error("gossip failed to start on {addr}")]
    Gossip {
        /// The UDP address.
        addr: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The cluster listener could not be started.
    #[error("transport failed to start on {addr}")]
    Transport {
        /// The TCP address.
        addr: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The node's echo service could not be spawned.
    #[error("starting the echo service")]
    Echo(#[source] SpawnError),
    /// `listen` is an address no peer can reach (a wildcard, multicast,
    /// port 0): it is also the address gossip advertises.
    #[error("listen address {0} cannot be advertised to peers; give a specific one")]
    Listen(std::net::SocketAddr),
    /// A bound on unauthenticated cluster connections is out of range.
    #[error("cluster gate limits")]
    Gate(#[source] crate::gate::GateLimitsError),
    /// TLS is on but this node's name cannot be checked against a
    /// certificate.
    #[error("TLS setup")]
    Tls(#[source] crate::tls::TlsError),
    /// The cookie may not be used on this address.
    #[error("refusing to start")]
    Cookie(#[source] crate::cookie::CookieError),
}

/// Why bytes are not a valid batch or frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The batch is shorter than its own length fields say.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A batch of a version this node does not speak.
    #[error("unsupported envelope version {0}")]
    Version(u8),
    /// A frame larger than the frame limit.
    #[error("frame of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A header or payload that bincode cannot decode.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// Which part failed.
        what: &'static str,
        /// bincode's explanation.
        reason: String,
    },
    /// A value that bincode cannot encode.
    #[error("cannot encode message: {0}")]
    Encode(String),
}

/// `e` and its causes as one line, `what failed: why: ...` (for an answer
/// that leaves the process, where the error itself cannot go).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
