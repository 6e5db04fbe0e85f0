//! The messages between a pool on its parent node and its runners.
//!
//! - [`RunnerMsg`] goes to the runner service (`drove.runner`) on a
//!   runner: run a function, cancel it, stop a placed child, stop if idle.
//! - [`ParentMsg`] goes to the pools service (`drove.pools`) on the parent:
//!   a runner's hello, a placed child that stopped, a runner that is
//!   leaving. Each names its sender, and the runtime delivers it only if
//!   it came from that node.

use serde::{Deserialize, Serialize};

use drove_runtime::{ActorAddr, Message, NodeId, Reply};

use crate::error::RemoteError;

/// The local name of the runner service on a runner node.
pub const RUNNER_SERVICE: &str = "drove.runner";

/// The local name of the pools service on every node with pools.
pub const POOLS_SERVICE: &str = "drove.pools";

/// One invocation: which function, from which build, with what.
#[derive(Debug, Serialize, Deserialize)]
pub struct Invoke {
    /// The caller's id for this call (with the caller's node, unique).
    pub call: u64,
    /// The function's stable name.
    pub function: String,
    /// The caller's build id.
    pub build: String,
    /// The encoded arguments.
    #[serde(with = "serde_bytes")]
    pub args: Vec<u8>,
    /// The remote work is stopped after this long.
    pub timeout_ms: u64,
    /// The result is an actor to keep (a placed child): the runner holds
    /// a slot for it until it stops.
    pub place: bool,
}

/// To a runner.
#[derive(Debug, Serialize, Deserialize)]
pub enum RunnerMsg {
    /// Run a function and answer with its encoded result.
    Invoke(Invoke, Reply<Result<serde_bytes::ByteBuf, RemoteError>>),
    /// The caller gave up on call `call` (timeout, dropped future): stop it.
    Cancel {
        /// The caller's node.
        caller: NodeId,
        /// The call.
        call: u64,
    },
    /// Stop a child placed on this runner.
    StopChild {
        /// The caller's node (only the node that placed it may).
        caller: NodeId,
        /// The child.
        child: ActorAddr,
    },
    /// The parent wants the runner gone: it stops if it is idle and its
    /// pool's idle check agrees, and says whether it will.
    Shrink {
        /// The parent.
        caller: NodeId,
        /// Whether the runner stops.
        reply: Reply<bool>,
        /// Stop even if the idle check disagrees (max was lowered, the
        /// parent is leaving).
        force: bool,
    },
}

impl Message for RunnerMsg {
    const TAG: &'static str = "drove.pool.runner.v1";

    fn claimed_sender(&self) -> Option<&NodeId> {
        match self {
            RunnerMsg::Invoke(_, reply) => Some(reply.origin()),
            RunnerMsg::Cancel { caller, .. }
            | RunnerMsg::StopChild { caller, .. }
            | RunnerMsg::Shrink { caller, .. } => Some(caller),
        }
    }
}

/// To a pool's parent.
#[derive(Debug, Serialize, Deserialize)]
pub enum ParentMsg {
    /// A runner booted and joined.
    Hello {
        /// The runner's node.
        node: NodeId,
        /// Its pool.
        pool: String,
        /// Its id there.
        runner: u64,
        /// The secret its parent gave it.
        secret: String,
        /// Its build id.
        build: String,
        /// Its OS process id.
        pid: u32,
    },
    /// A child placed on the runner stopped: its slot is free.
    ChildStopped {
        /// The runner's node.
        node: NodeId,
        /// Its pool.
        pool: String,
        /// Its id there.
        runner: u64,
    },
    /// The runner is exiting by itself (single use done, build mismatch).
    Leaving {
        /// The runner's node.
        node: NodeId,
        /// Its pool.
        pool: String,
        /// Its id there.
        runner: u64,
        /// Why.
        reason: String,
    },
}

impl ParentMsg {
    /// The pool this message is for.
    pub fn pool(&self) -> &str {
        match self {
            ParentMsg::Hello { pool, .. }
            | ParentMsg::ChildStopped { pool, .. }
            | ParentMsg::Leaving { pool, .. } => pool,
        }
    }
}

impl Message for ParentMsg {
    const TAG: &'static str = "drove.pool.parent.v1";

    fn claimed_sender(&self) -> Option<&NodeId> {
        match self {
            ParentMsg::Hello { node, .. }
            | ParentMsg::ChildStopped { node, .. }
            | ParentMsg::Leaving { node, .. } => Some(node),
        }
    }
}
