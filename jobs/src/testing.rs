//! Testing helpers, as Oban's: a job system with no cluster and a
//! private in-memory store, in **manual** mode (jobs are only recorded;
//! [`TestJobs::drain_queue`] runs them) or **inline** mode (every enqueue
//! runs its queue at once, before it returns), plus
//! [`TestJobs::assert_enqueued`] and [`perform_job`].
//!
//! ```
//! use drove_jobs::testing::{perform_job, TestJobs, TestMode};
//! use drove_jobs::{JobCtx, JobError, Worker};
//!
//! struct Greeter;
//!
//! impl Worker for Greeter {
//!     const NAME: &'static str = "greeter";
//!     type Args = String;
//!
//!     async fn perform(&self, _ctx: JobCtx, name: String) -> Result<(), JobError> {
//!         if name.is_empty() {
//!             return Err(JobError::discard("no name"));
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let jobs = TestJobs::new(TestMode::Manual).worker(Greeter).build().unwrap();
//! jobs.enqueue("default", Greeter, "ada".to_string()).await.unwrap();
//! jobs.assert_enqueued("default", "greeter", Some(serde_json::json!("ada")), None)
//!     .await
//!     .unwrap();
//! let drained = jobs.drain_queue("default", false).await.unwrap();
//! assert_eq!(drained.completed, 1);
//! assert_eq!(perform_job(&Greeter, String::new()).await, Err(JobError::discard("no name")));
//! # });
//! ```

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use crate::config::JobsConfig;
use crate::engine::{failure_of, now_ms, Engine};
use crate::job::{Attempt, Enqueued, Failure, JobId, JobState};
use crate::jobs::{Jobs, JobsError};
use crate::spec::JobSpec;
use crate::sqlite::SqliteStore;
use crate::store::{FetchRequest, Fetched, StoreError};
use crate::worker::{BatchWorker, JobCtx, JobError, Worker, Workers};

/// How a [`TestJobs`] runs what is enqueued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestMode {
    /// Enqueue records; [`TestJobs::drain_queue`] runs.
    Manual,
    /// Enqueue runs the queue (scheduled jobs too) before returning.
    Inline,
}

/// Builds a [`TestJobs`].
#[derive(Debug)]
pub struct TestJobsBuilder {
    mode: TestMode,
    workers: Workers,
    config: JobsConfig,
}

/// A job system for tests. Derefs to [`Jobs`] for enqueueing, `get`,
/// `cancel` and the rest.
#[derive(Debug, Clone)]
pub struct TestJobs {
    jobs: Jobs,
    mode: TestMode,
}

/// What a drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Jobs that completed.
    pub completed: usize,
    /// Jobs that failed and will be retried.
    pub retried: usize,
    /// Jobs that went dead.
    pub dead: usize,
    /// Jobs that snoozed (scheduled again at no cost).
    pub snoozed: usize,
}

/// Why an assertion on enqueued jobs failed.
#[derive(Debug, thiserror::Error)]
pub enum AssertError {
    /// No matching job was enqueued (within the timeout).
    #[error("no job for {worker:?} on {queue:?} matching {args} was enqueued")]
    NotEnqueued {
        /// The queue.
        queue: String,
        /// The worker.
        worker: String,
        /// The args looked for.
        args: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl TestJobs {
    /// A builder in `mode`, with the built-in workers.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(mode: TestMode) -> TestJobsBuilder {
        TestJobsBuilder {
            mode,
            workers: crate::builtin::builtins(),
            config: JobsConfig::default(),
        }
    }

    /// Enqueues a job; in inline mode, runs its queue before returning.
    pub async fn insert(&self, spec: JobSpec) -> Result<Enqueued, JobsError> {
        let queue = spec.queue.clone();
        let answer = self.jobs.insert(spec).await?;
        if self.mode == TestMode::Inline {
            self.drain_queue(&queue, true).await?;
        }
        Ok(answer)
    }

    /// Enqueues a job for `W` (inline mode runs it at once).
    pub async fn enqueue<W: Worker>(
        &self,
        queue: &str,
        _worker: W,
        args: W::Args,
    ) -> Result<Enqueued, JobsError> {
        self.insert(JobSpec::of::<W>(queue, &args)?).await
    }

    /// Runs every job of `queue` that is due now (and every scheduled and
    /// retryable one too with `with_scheduled`, until they complete or go
    /// dead), one at a time, in this task.
    pub async fn drain_queue(
        &self,
        queue: &str,
        with_scheduled: bool,
    ) -> Result<Drained, JobsError> {
        let engine = self.jobs.engine();
        let consumer = engine.consumer();
        let mut drained = Drained::default();
        // Without `with_scheduled`, only what was due when the drain began
        // runs: a job that fails now is retried by a later drain.
        let now = if with_scheduled {
            u64::MAX / 4
        } else {
            now_ms()
        };
        loop {
            let fetched = engine
                .store
                .fetch(FetchRequest {
                    queue,
                    consumer: &consumer,
                    limit: 1,
                    now_ms: now,
                    lease_until_ms: u64::MAX / 4,
                    rate: None,
                })
                .await?;
            let job = match fetched {
                Fetched::Jobs(mut jobs) => match jobs.pop() {
                    Some(job) => job,
                    None => return Ok(drained),
                },
                Fetched::Paused | Fetched::RateLimited(_) => return Ok(drained),
            };
            let attempt = Attempt {
                id: job.id,
                attempt: job.attempt,
            };
            let outcome = match engine.workers.get(&job.worker) {
                None => Err(JobError::discard(format!(
                    "unknown worker {:?}",
                    job.worker
                ))),
                Some(worker) => match worker.decode(&job.args) {
                    Err(reason) => Err(JobError::Discard(reason)),
                    Ok(args) => {
                        let ctx = JobCtx {
                            id: job.id,
                            attempt: job.attempt,
                            queue: job.queue.clone(),
                            node: consumer.clone(),
                            extension: None,
                        };
                        worker.run(vec![ctx], vec![args]).await
                    }
                },
            };
            let now = now_ms();
            match outcome {
                Ok(()) => {
                    engine.store.complete(&consumer, &[attempt], now).await?;
                    drained.completed += 1;
                }
                Err(e) => {
                    let failure =
                        failure_of(attempt, &e, job.max_retries, &engine.config.backoff, now);
                    engine
                        .store
                        .fail(&consumer, std::slice::from_ref(&failure), now)
                        .await?;
                    match failure {
                        Failure { snooze: true, .. } => drained.snoozed += 1,
                        Failure {
                            retry_at_ms: Some(_),
                            ..
                        } => drained.retried += 1,
                        Failure { .. } => drained.dead += 1,
                    }
                }
            }
        }
    }

    /// Succeeds when a job for `worker` on `queue` whose args contain
    /// `args` (every key given, recursively; `None` for any) was
    /// enqueued through this handle and has not finished; waits up to
    /// `timeout` for one.
    pub async fn assert_enqueued(
        &self,
        queue: &str,
        worker: &str,
        args: Option<serde_json::Value>,
        timeout: Option<Duration>,
    ) -> Result<JobId, AssertError> {
        let deadline = tokio::time::Instant::now() + timeout.unwrap_or_default();
        loop {
            for (id, spec) in self.jobs.inserted() {
                let matches = spec.queue == queue
                    && spec.worker == worker
                    && args.as_ref().is_none_or(|a| contains(&spec.args, a));
                if !matches {
                    continue;
                }
                let live = self
                    .jobs
                    .store()
                    .get(id)
                    .await?
                    .is_some_and(|j| !j.state.is_final() || self.mode == TestMode::Inline);
                if live {
                    return Ok(id);
                }
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(AssertError::NotEnqueued {
                    queue: queue.to_owned(),
                    worker: worker.to_owned(),
                    args: args
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| "anything".into()),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The state of job `id`.
    pub async fn state_of(&self, id: JobId) -> Result<Option<JobState>, JobsError> {
        Ok(self.jobs.get(id).await?.map(|j| j.state))
    }
}

impl Deref for TestJobs {
    type Target = Jobs;

    fn deref(&self) -> &Jobs {
        &self.jobs
    }
}

impl TestJobsBuilder {
    /// Adds a worker.
    pub fn worker<W: Worker>(mut self, worker: W) -> TestJobsBuilder {
        self.workers.add(worker);
        self
    }

    /// Adds a batch worker (drained one job at a time).
    pub fn batch_worker<W: BatchWorker>(mut self, worker: W) -> TestJobsBuilder {
        self.workers.add_batch(worker);
        self
    }

    /// The job system.
    pub fn build(self) -> Result<TestJobs, JobsError> {
        let store = Arc::new(SqliteStore::open(":memory:")?);
        let engine = Engine::start(store, self.workers, self.config, "test#0".into(), None);
        Ok(TestJobs {
            jobs: Jobs::from_engine(engine, "test".into()),
            mode: self.mode,
        })
    }
}

/// Whether `value` has everything `pattern` has (objects by key,
/// recursively; anything else by equality).
fn contains(value: &serde_json::Value, pattern: &serde_json::Value) -> bool {
    match (value, pattern) {
        (serde_json::Value::Object(v), serde_json::Value::Object(p)) => p
            .iter()
            .all(|(k, pv)| v.get(k).is_some_and(|vv| contains(vv, pv))),
        _ => value == pattern,
    }
}

/// Runs `worker` on `args` as a job's first attempt would, with the args
/// through JSON and back (as the store would carry them).
pub async fn perform_job<W: Worker>(worker: &W, args: W::Args) -> Result<(), JobError> {
    let json = serde_json::to_string(&args)
        .map_err(|e| JobError::discard(format!("args do not serialize: {e}")))?;
    let args: W::Args = serde_json::from_str(&json)
        .map_err(|e| JobError::discard(format!("args do not decode: {e}")))?;
    let ctx = JobCtx {
        id: JobId(0),
        attempt: 1,
        queue: "test".into(),
        node: "test#0".into(),
        extension: None,
    };
    worker.perform(ctx, args).await
}
