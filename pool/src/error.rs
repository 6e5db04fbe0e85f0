//! Why a pool call failed: [`RemoteError`] travels back from a runner;
//! [`PoolError`] is what a caller gets; [`PoolConfigError`] why a pool
//! description does not parse.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Why a runner did not return a function's result. Crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RemoteError {
    /// No function of that name in the runner's table.
    #[error("no remote function named {0:?}")]
    UnknownFunction(String),
    /// The caller and the runner are different builds.
    #[error("runner is build {runner}, the call came from build {caller}")]
    BuildMismatch {
        /// The runner's build id.
        runner: String,
        /// The caller's.
        caller: String,
    },
    /// The arguments do not decode as the function's argument type.
    #[error("arguments do not decode: {0}")]
    BadArgs(String),
    /// The result could not be encoded (or, at the caller, decoded).
    #[error("result does not encode: {0}")]
    BadOutput(String),
    /// The function returned an error; its text.
    #[error("function failed: {0}")]
    Failed(String),
    /// The function panicked.
    #[error("function panicked")]
    Panicked,
    /// The function ran past its deadline and was stopped.
    #[error("function ran past its {0} ms deadline and was stopped")]
    Timeout(u64),
    /// The caller cancelled the call.
    #[error("cancelled by the caller")]
    Cancelled,
    /// The runner is shutting down and takes no more calls.
    #[error("runner is shutting down")]
    ShuttingDown,
    /// The runner has more calls than its pool allows.
    #[error("runner is at its concurrency limit")]
    Busy,
}

/// Why a pool call (or placement) failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// No pool of that name on this node.
    #[error("no pool named {0:?}")]
    UnknownPool(String),
    /// No function of that name in this build.
    #[error("no remote function named {0:?}")]
    UnknownFunction(String),
    /// The arguments could not be encoded, or JSON arguments do not fit the
    /// function's type.
    #[error("bad arguments: {0}")]
    BadArgs(String),
    /// The arguments are larger than a call may carry.
    #[error("arguments of {len} bytes exceed the {max}-byte limit")]
    TooLarge {
        /// Their encoded size.
        len: usize,
        /// The limit (`MAX_PAYLOAD`).
        max: usize,
    },
    /// No runner slot within the pool's boot_timeout.
    #[error("no runner capacity in pool {pool} within {waited:?}")]
    NoCapacity {
        /// The pool.
        pool: String,
        /// How long the caller waited.
        waited: Duration,
    },
    /// Booting a runner failed, and no other runner could take the call.
    #[error("pool {pool} could not boot a runner: {reason}")]
    BootFailed {
        /// The pool.
        pool: String,
        /// Why the boot failed.
        reason: String,
    },
    /// The call ran past its timeout; the remote work was stopped.
    #[error("call to {function} on {runner} timed out after {after:?}")]
    Timeout {
        /// The function.
        function: String,
        /// The runner it ran on.
        runner: String,
        /// The timeout.
        after: Duration,
    },
    /// The runner died (or left) during the call.
    #[error("runner {runner} died during the call: {reason}")]
    RunnerDied {
        /// The runner's name.
        runner: String,
        /// What was seen.
        reason: String,
    },
    /// The runner answered with an error.
    #[error("runner {runner}: {error}")]
    Remote {
        /// The runner's name.
        runner: String,
        /// Its answer.
        error: RemoteError,
    },
    /// The pool has too many callers waiting.
    #[error("pool {0} has too many waiting callers")]
    Overloaded(String),
    /// The pool is stopping.
    #[error("pool {0} is stopped")]
    Stopped(String),
}

/// Why a pool description (`NAME:key=value,...` or its config) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolConfigError {
    /// No `NAME:` before the options, or an invalid name.
    #[error("pool name {0:?} is not a valid name ([A-Za-z0-9_.-], 1 to 40 bytes)")]
    Name(String),
    /// An option this parser does not know.
    #[error("unknown pool option {0:?}")]
    UnknownOption(String),
    /// An option whose value does not parse.
    #[error("pool option {key}={value:?} is not valid")]
    BadValue {
        /// The option.
        key: String,
        /// Its value.
        value: String,
    },
    /// Options that parse but do not make a pool.
    #[error("invalid pool: {0}")]
    Invalid(&'static str),
}
