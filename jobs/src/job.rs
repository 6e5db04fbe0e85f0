//! A job as the store keeps it: its id, state, attempts and times.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A job's id, unique in its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A job's state, as in Oban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for its time.
    Scheduled,
    /// Ready to be fetched.
    Available,
    /// Held by a node's pipeline.
    Executing,
    /// Failed; waiting for its next attempt.
    Retryable,
    /// Done.
    Completed,
    /// Failed for good (out of retries, or bad input): the dead set.
    Dead,
    /// Cancelled before it completed.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 7] = [
        JobState::Scheduled,
        JobState::Available,
        JobState::Executing,
        JobState::Retryable,
        JobState::Completed,
        JobState::Dead,
        JobState::Cancelled,
    ];

    /// The state's name (`"executing"`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Scheduled => "scheduled",
            JobState::Available => "available",
            JobState::Executing => "executing",
            JobState::Retryable => "retryable",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether the job will never run again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Dead | JobState::Cancelled
        )
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| format!("unknown job state {s:?}"))
    }
}

/// The highest (least urgent) priority; 0 runs first.
pub const MAX_PRIORITY: u8 = 9;

/// One failed attempt, kept with the job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptError {
    /// The attempt that failed (1 is the first).
    pub attempt: u32,
    /// When, in Unix ms.
    pub at_ms: u64,
    /// The consumer (node) that ran it.
    pub node: String,
    /// What went wrong.
    pub error: String,
}

/// Uniqueness of a job being enqueued: while a job with the same key was
/// enqueued less than `period_ms` ago, enqueueing returns that job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unique {
    /// The key (a digest of the queue, worker and the chosen args).
    pub key: String,
    /// How long the key holds, in ms.
    pub period_ms: u64,
    /// Which states hold the key.
    #[serde(default)]
    pub hold: UniqueHold,
}

/// Which states of a job hold its unique key for the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UniqueHold {
    /// Every state but cancelled and dead (Oban's default): a cancelled or
    /// discarded job lets its key go, so whoever enqueues first and cancels
    /// cannot keep everyone else's job out for the period.
    #[default]
    Live,
    /// Every state, for the whole period (a key used to find the job
    /// again, as events find their deliveries).
    Always,
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// The queue it goes to.
    pub queue: String,
    /// The worker's registered name.
    pub worker: String,
    /// The arguments, as JSON.
    pub args: String,
    /// 0 (first) to [`MAX_PRIORITY`].
    pub priority: u8,
    /// Attempts after the first before it goes dead.
    pub max_retries: u32,
    /// When it may run, in Unix ms.
    pub run_at_ms: u64,
    /// Uniqueness, if any.
    pub unique: Option<Unique>,
}

/// The answer to one enqueued job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enqueued {
    /// The job's id (the earlier job's, for a duplicate).
    pub id: JobId,
    /// Whether a unique job with this key already existed.
    pub duplicate: bool,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its worker's name.
    pub worker: String,
    /// Its arguments, as JSON.
    pub args: String,
    /// Its priority.
    pub priority: u8,
    /// Its state.
    pub state: JobState,
    /// Attempts so far (the current one, while executing).
    pub attempt: u32,
    /// Attempts after the first before it goes dead.
    pub max_retries: u32,
    /// Each failed attempt's error.
    pub errors: Vec<AttemptError>,
    /// The consumer that holds or last held it.
    pub node: Option<String>,
    /// When it was enqueued, Unix ms.
    pub enqueued_at_ms: u64,
    /// When it may run (next), Unix ms.
    pub scheduled_at_ms: u64,
    /// When its last attempt started, Unix ms.
    pub attempted_at_ms: Option<u64>,
    /// When it completed, went dead or was cancelled, Unix ms.
    pub completed_at_ms: Option<u64>,
}

/// One attempt of one job: what fences a node's answer about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Attempt {
    /// The job.
    pub id: JobId,
    /// The attempt number the node got at fetch.
    pub attempt: u32,
}

/// A failed attempt to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The attempt.
    pub attempt: Attempt,
    /// Why.
    pub error: String,
    /// When to try again (Unix ms); `None` sends the job to the dead set.
    pub retry_at_ms: Option<u64>,
    /// A snooze: scheduled again at `retry_at_ms` with one more allowed
    /// retry, and no error recorded.
    pub snooze: bool,
}
