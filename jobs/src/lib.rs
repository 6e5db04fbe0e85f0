//! Durable job pipelines for drove, as Flume (with what Oban adds):
//! jobs are enqueued from any node and run by pipelines on any node,
//! held in a store until done, so they survive crashes; scheduled,
//! prioritised, unique, retried with backoff, rate-limited, batched,
//! paused, cancelled, on cron, and measured.
//!
//! A job's life: `scheduled` (or `available`) → `executing` under one
//! node incarnation (its *consumer*) with a new attempt number →
//! `completed`, `retryable` (then available again at its time), `dead`
//! or `cancelled`. Every answer about an executing job is fenced by its
//! consumer and attempt, so a node that wakes from a freeze cannot
//! complete an attempt that has since been rescued. A member declared
//! down has its jobs handed back at once; a lease is the backstop.
//!
//! # Layout
//!
//! - [`job`]: the job record and its states.
//! - [`store`]: the [`JobStore`] trait; [`redis_store`] (cluster-wide,
//!   Lua scripts beside it) and [`sqlite`] (one machine, WAL) implement it.
//! - [`worker`]: [`Worker`], [`BatchWorker`], [`JobCtx`], [`JobError`];
//!   [`builtin`]: `drove.noop`, `drove.sleep`, `drove.fail`.
//! - [`spec`]: [`JobSpec`], a job to enqueue with its options.
//! - [`config`]: store URL, pipelines (`--pipeline` specs), settings;
//!   [`backoff`]: retry waits.
//! - [`caretaker`]: which consumers' jobs to rescue and when, the
//!   heartbeat's pace: a pure state machine with time as an input.
//! - `engine`: running and settling jobs; `pipeline`: the fetch loop;
//!   [`jobs`]: the [`Jobs`] handle, and the task that carries out the
//!   caretaker's chores; [`cron`].
//! - [`testing`]: inline and manual modes, `assert_enqueued`,
//!   `drain_queue`, `perform_job`.
//! - [`metrics`]: Prometheus counters.

pub mod backoff;
pub mod builtin;
pub mod caretaker;
pub mod config;
pub mod cron;
mod engine;
pub mod job;
pub mod jobs;
pub mod metrics;
mod pipeline;
pub mod redis_store;
pub mod spec;
pub mod sqlite;
pub mod store;
pub mod testing;
pub mod worker;

pub use config::{JobsConfig, PipelineConfig, StoreUrl};
pub use cron::CronJob;
pub use job::{Enqueued, Job, JobId, JobState, UniqueHold};
pub use jobs::{Jobs, JobsBuilder, JobsError, PipelineInfo, Scope};
pub use pipeline::PipelineStatus;
pub use spec::{JobSpec, UniqueBy};
pub use store::JobStore;
pub use worker::{BatchWorker, JobCtx, JobError, Worker, Workers};
