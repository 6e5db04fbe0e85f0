//! drove as a library: an Erlang/OTP-style distributed actor runtime. One
//! [`Config`], one builder, and one [`Drove`] handle to a node running the
//! global registry, the distributed supervisor, pub/sub and the
//! replicated cache, with the app's own child types.
//!
//! ```no_run
//! use drove::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! enum CounterMsg { Add(u64), Get(Reply<u64>) }
//! impl Message for CounterMsg { const TAG: &'static str = "myapp.counter.v1"; }
//!
//! /// A counter that survives its node: it checkpoints every change.
//! #[derive(Clone)]
//! struct Counter;
//!
//! impl Actor for Counter {
//!     type Msg = CounterMsg;
//!     type State = u64;
//!     type Args = u64;
//!     async fn init(&self, _: &Context<Self>, n: u64) -> Result<u64, ActorError> { Ok(n) }
//!     async fn handle(&self, ctx: &Context<Self>, msg: CounterMsg, n: &mut u64) -> Result<(), ActorError> {
//!         match msg {
//!             CounterMsg::Add(k) => { *n += k; checkpoint(ctx, n)?; }
//!             CounterMsg::Get(reply) => ctx.reply(reply, *n)?,
//!         }
//!         Ok(())
//!     }
//! }
//!
//! impl Child for Counter {
//!     const TYPE: &'static str = "counter";
//!     type Start = u64;      // its first value
//!     type Checkpoint = u64; // its value when it last changed
//!     fn init_args(&self, start: Started<Self>) -> u64 { start.checkpoint.unwrap_or(start.args) }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let drove = Drove::builder(Config::from_env()?).child(Counter).start().await?;
//!     let spec = ChildSpec::of::<Counter>(0).transient().name("counter");
//!     let counter = drove.supervisor().singleton(spec).await?;
//!     drove.node().cast(&counter, CounterMsg::Add(1))?;
//!     drove.run_until_signal().await?; // SIGTERM hands the counter to another node
//!     Ok(())
//! }
//! ```
//!
//! # Layout
//!
//! - [`config`]: [`Config`], from TOML or `DROVE_*` variables.
//! - `drove`: the [`Drove`] handle, its [`DroveBuilder`], [`Services`],
//!   [`Shutdown`].
//! - [`error`]: why a node did not start, [`DroveError`].
//! - [`prelude`]: what a program using drove imports.
//!
//! - `runner_mode`: how a process booted by a runner pool becomes a runner.
//!
//! The crates underneath, re-exported: [`runtime`] (nodes, actors,
//! membership), [`registry`], [`supervisor`], [`pubsub`], [`cache`],
//! [`pool`] (runner pools, with [`macro@remote`] for their functions and
//! [`parent()`] to tell a runner from its parent) and [`jobs`] (durable
//! job pipelines: workers, pipelines, cron, the testing modes;
//! [`Drove::jobs`]) and [`events`] (durable events on the job store;
//! [`Drove::events`]). HTTP lives above this crate, in `drove-admin`.

pub mod config;
pub mod cookie_file;
mod drove;
pub mod error;
mod runner_mode;

pub use config::{Config, ConfigError};
pub use drove::{wait_for_signal, Drove, DroveBuilder, Services, Shutdown};
pub use error::DroveError;

pub use drove_cache as cache;
pub use drove_discovery as discovery;
pub use drove_events as events;
pub use drove_jobs as jobs;
pub use drove_macros::remote;
pub use drove_pool as pool;
pub use drove_pool::{parent, Pool};
pub use drove_pubsub as pubsub;
pub use drove_registry as registry;
pub use drove_runtime as runtime;
pub use drove_supervisor as supervisor;

/// What a program using drove imports: the facade, actors and messages,
/// typed children.
pub mod prelude {
    pub use crate::{remote, Config, Drove, Pool, Shutdown};
    pub use drove_runtime::{Actor, ActorError, Context, Handle, Message, Node, Reply};
    pub use drove_supervisor::{checkpoint, Child, ChildSpec, Restart, Started};
}
