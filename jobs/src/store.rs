//! [`JobStore`]: what a job backend does, atomically, for every node.
//!
//! A consumer is one node incarnation (`name#incarnation`). Every
//! answer about a held job names the consumer and the attempt it
//! fetched: the store accepts it only while the job is still executing
//! under that consumer and attempt, so a node that wakes from a freeze
//! cannot complete or retry an attempt that has moved on.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;

use crate::job::{Attempt, Enqueued, Failure, Job, JobId, JobState, NewJob};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or refused the command.
    #[error("job store unavailable: {0}")]
    Unavailable(String),
    /// The store's URL or options are wrong.
    #[error("bad job store address {url:?}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The store answered with something that is not a job.
    #[error("corrupt job record: {0}")]
    Corrupt(String),
}

/// A shared rate limit: at most `count` fetches per `scale_ms`, counted
/// over a sliding window by every node that uses `key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    /// Pipelines with one key share one limit.
    pub key: String,
    /// Jobs per window.
    pub count: u32,
    /// The window, in ms.
    pub scale_ms: u64,
}

/// What one fetch asks for.
#[derive(Debug, Clone)]
pub struct FetchRequest<'a> {
    /// The queue.
    pub queue: &'a str,
    /// Who holds what is fetched.
    pub consumer: &'a str,
    /// At most this many jobs.
    pub limit: u32,
    /// Now, in Unix ms: scheduled jobs due by then become available.
    pub now_ms: u64,
    /// The lease of what is fetched ends then, unless renewed.
    pub lease_until_ms: u64,
    /// The pipeline's rate limit, if any.
    pub rate: Option<&'a RateLimit>,
}

/// What a fetch got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Jobs, now executing under the consumer (maybe none).
    Jobs(Vec<Job>),
    /// The queue is paused cluster-wide.
    Paused,
    /// The rate limit is spent for this long, in ms.
    RateLimited(u64),
}

/// One queue's pause state and counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueInfo {
    /// The queue.
    pub queue: String,
    /// Whether it is paused cluster-wide.
    pub paused: bool,
    /// Nodes (by name) that paused it for themselves.
    pub paused_nodes: Vec<String>,
    /// Jobs by state (completed, dead and cancelled ones until pruned).
    pub counts: BTreeMap<JobState, u64>,
}

impl QueueInfo {
    /// A queue with no pause and no jobs.
    pub fn new(queue: String) -> QueueInfo {
        QueueInfo {
            queue,
            paused: false,
            paused_nodes: Vec::new(),
            counts: BTreeMap::new(),
        }
    }
}

/// Why jobs are handed back by [`JobStore::rescue`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RescueReason {
    /// Membership declared the consumer down or gone.
    NodeDown,
    /// The consumer stopped and released what it held.
    Released,
}

/// A job backend. Every method is atomic on its own.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Enqueues `jobs` in order; a unique job whose key is held returns
    /// the holder's id with `duplicate`.
    async fn enqueue(&self, jobs: &[NewJob], now_ms: u64) -> Result<Vec<Enqueued>, StoreError>;

    /// Makes due scheduled jobs available, then takes up to
    /// `limit` available jobs (priority, then scheduled time), within the
    /// rate limit, as executing under the consumer with a new attempt.
    async fn fetch(&self, request: FetchRequest<'_>) -> Result<Fetched, StoreError>;

    /// Completes attempts still held by `consumer`; returns the jobs that
    /// were not (cancelled, rescued, or another attempt's).
    async fn complete(
        &self,
        consumer: &str,
        done: &[Attempt],
        now_ms: u64,
    ) -> Result<Vec<JobId>, StoreError>;

    /// Records failed attempts still held by `consumer`: retryable at
    /// their time, or dead. Returns the jobs that were not held.
    async fn fail(
        &self,
        consumer: &str,
        failures: &[Failure],
        now_ms: u64,
    ) -> Result<Vec<JobId>, StoreError>;

    /// Extends the lease of attempts still held by `consumer`; returns
    /// those it no longer holds (their work should stop).
    async fn renew(
        &self,
        consumer: &str,
        held: &[Attempt],
        lease_until_ms: u64,
    ) -> Result<Vec<JobId>, StoreError>;

    /// Hands back everything `consumer` holds: available again, or dead
    /// when that was its last attempt. Returns how many.
    async fn rescue(
        &self,
        consumer: &str,
        reason: RescueReason,
        now_ms: u64,
    ) -> Result<u64, StoreError>;

    /// Hands back attempts whose lease ended before `now_ms` (the
    /// backstop for a consumer cut off but never declared down).
    async fn rescue_expired(&self, now_ms: u64) -> Result<u64, StoreError>;

    /// Consumers that hold jobs.
    async fn consumers(&self) -> Result<Vec<String>, StoreError>;

    /// Cancels a job that has not finished; returns the state it was in
    /// (`None` if there is no such job).
    async fn cancel(&self, id: JobId, now_ms: u64) -> Result<Option<JobState>, StoreError>;

    /// Makes a retryable, dead or cancelled job available now, with its
    /// attempts so far; returns the state it was in.
    async fn retry(&self, id: JobId, now_ms: u64) -> Result<Option<JobState>, StoreError>;

    /// One job.
    async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError>;

    /// Up to `limit` jobs of `queue` in `state`, after the first `offset`
    /// of them: available ones in the order they run, scheduled and
    /// retryable ones by run time, executing ones by lease end (Redis) or
    /// id (SQLite), finished ones newest first. A store may stop looking
    /// after a bounded number of entries, so deep pages can come back
    /// short.
    async fn list(
        &self,
        queue: &str,
        state: JobState,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<Job>, StoreError>;

    /// The job holding unique key `key` at `now_ms`, if its period has
    /// not lapsed.
    async fn unique_holder(&self, key: &str, now_ms: u64) -> Result<Option<JobId>, StoreError>;

    /// Every queue that has had a job or a pause, with its counts.
    async fn queues(&self) -> Result<Vec<QueueInfo>, StoreError>;

    /// Pauses or resumes `queue` cluster-wide (stored: it survives
    /// restarts).
    async fn set_paused(&self, queue: &str, paused: bool) -> Result<(), StoreError>;

    /// Records that node `node` paused (or resumed) `queue` for itself;
    /// only listed, the node's own flag is what stops its pipelines.
    async fn set_node_paused(
        &self,
        queue: &str,
        node: &str,
        paused: bool,
    ) -> Result<(), StoreError>;

    /// Deletes completed and cancelled jobs that finished before
    /// `finished_before_ms`, dead ones before `dead_before_ms`, and
    /// lapsed unique keys. Returns how many jobs.
    async fn prune(
        &self,
        finished_before_ms: u64,
        dead_before_ms: u64,
        now_ms: u64,
    ) -> Result<u64, StoreError>;
}

/// The error entry a rescue appends.
pub(crate) fn rescue_message(consumer: &str, reason: RescueReason) -> String {
    match reason {
        RescueReason::NodeDown => format!("node {consumer} went down during the attempt"),
        RescueReason::Released => format!("node {consumer} stopped before the attempt finished"),
    }
}

/// The error entry a lease expiry appends.
pub(crate) fn expiry_message(consumer: &str) -> String {
    format!("the lease of node {consumer} ran out during the attempt")
}

/// One attempt's error as the stores keep it (a JSON object).
pub(crate) fn error_entry(attempt: u32, at_ms: u64, node: &str, error: &str) -> String {
    let entry = crate::job::AttemptError {
        attempt,
        at_ms,
        node: node.to_owned(),
        error: error.to_owned(),
    };
    serde_json::to_string(&entry).unwrap_or_else(|_| "{}".to_owned())
}

/// Splits a message made for node `X` around the name, so a store can
/// put each job's own node in (in SQL or Lua).
pub(crate) fn around_node(message: impl Fn(&str) -> String) -> (String, String) {
    let marker = "\u{1}";
    let text = message(marker);
    match text.split_once(marker) {
        Some((before, after)) => (before.to_owned(), after.to_owned()),
        None => (text, String::new()),
    }
}
