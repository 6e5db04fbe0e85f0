//! Elastic runner pools, as FLAME and Dragonfly have them: wrap expensive
//! code in a remote function and it runs on an ephemeral runner, a fresh
//! node that booted the same binary, joined the cluster (so pub/sub, the
//! cache and the registry work inside the function), ran the call and idles
//! down when unused.
//!
//! ```ignore
//! #[drove::remote]
//! async fn transcode(video: Video) -> Result<String, String> { .. }
//!
//! let pool = drove.add_pool(Pool::builder("ffmpeg").max(10).max_concurrency(5))?;
//! let path = pool.call(transcode, video).await?;
//! ```
//!
//! # Decisions
//!
//! - **Functions by name.** Closures cannot cross processes, so functions
//!   are registered at link time (`inventory`) under a stable name; a call
//!   is typed at compile time and bincode on the wire. Every call carries
//!   the caller's build id (a hash of the executable): a runner of another
//!   build refuses it.
//! - **Runners are nodes.** A runner is this executable started with
//!   `DROVE_PARENT_FILE`; it joins the cluster under its own name, declares no
//!   child types, says hello to its parent's pools service with a
//!   per-runner secret, and exits when its parent is down or gone, when
//!   its stdin pipe closes, when it cannot reach the parent within
//!   boot_timeout, when its pool stops it, or after its single use.
//! - **One task per pool** owns a sans-IO [`state::PoolState`]: least
//!   loaded runner first, boot below max, FIFO waiters with deadlines,
//!   backoff after failed boots, idle shrink to min.
//! - **Calls end.** The caller's timeout cancels the remote work (and the
//!   runner enforces the same deadline); dropping the call future cancels
//!   it; a runner's death fails its callers at once with its name.
//!
//! # Layout
//!
//! - [`remote`]: [`RemoteFn`], the function table, [`Ctx`], [`build_id`].
//! - [`builtin`]: `drove.sleep`, `drove.sha256`, `drove.exit`.
//! - [`config`]: [`PoolConfig`], [`BackendKind`]; [`error`]: the errors.
//! - [`state`]: the pool's decisions, pure.
//! - [`mod@parent`]: `DROVE_PARENT_FILE`, [`parent()`].
//! - [`protocol`]: messages between pools and runners.
//! - [`backend`]: [`Backend`], process and exec backends.
//! - `task`: the pool task; `pool`: [`Pool`], [`PoolBuilder`].
//! - `runner`: the runner side; `service`: [`Pools`], the pools service.
//! - [`metrics`]: Prometheus counters per pool.

pub mod backend;
pub mod builtin;
pub mod config;
pub mod error;
pub mod metrics;
pub mod parent;
mod pool;
pub mod protocol;
pub mod remote;
mod runner;
mod service;
pub mod state;
mod task;

pub use backend::{Backend, ExecBackend, ProcessBackend, RunnerProcess};
pub use config::{BackendKind, PoolConfig};
pub use error::{PoolConfigError, PoolError, RemoteError};
pub use parent::{parent, parent_from_env, ParentInfo};
pub use pool::{PlacedChild, Pool, PoolBuilder, Ran};
pub use remote::{
    build_id, check_table, functions, BoxFuture, Ctx, FnEntry, Invoker, RemoteFn, MAX_PAYLOAD,
};
pub use runner::IdleCheck;
pub use service::{Pools, PoolsError};
pub use task::{BootHook, CountHook, Home, Hooks, RunnerInfo, Snapshot};

/// Re-exported for `#[drove::remote]`'s expansion.
#[doc(hidden)]
pub use inventory;
