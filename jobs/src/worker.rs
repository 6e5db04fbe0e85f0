//! Workers: the typed traits a job runs through ([`Worker`],
//! [`BatchWorker`]), what a run gets ([`JobCtx`]) and returns
//! ([`JobError`]), and the table of workers by name ([`Workers`]).

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::job::JobId;

/// A boxed future, as workers run behind the table.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// What a job's run knows about itself.
#[derive(Clone)]
pub struct JobCtx {
    /// The job.
    pub id: JobId,
    /// This attempt (1 is the first). With the id, an idempotency key.
    pub attempt: u32,
    /// The queue it came from.
    pub queue: String,
    /// The consumer (node) running it.
    pub node: String,
    pub(crate) extension: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for JobCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobCtx")
            .field("id", &self.id)
            .field("attempt", &self.attempt)
            .field("queue", &self.queue)
            .field("node", &self.node)
            .finish()
    }
}

impl JobCtx {
    /// `"<id>:<attempt>"`: the same for every delivery of one attempt,
    /// different for each attempt. Delivery is at least once, so side
    /// effects should be keyed by it (or by the id alone).
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}", self.id, self.attempt)
    }

    /// What the node put in every job's context (the `drove` facade puts
    /// its `Services` there), if it is a `T`.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<&T> {
        self.extension.as_deref()?.downcast_ref()
    }
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// Try again after the backoff (dead once retries run out).
    #[error("{0}")]
    Retry(String),
    /// Never try again: straight to the dead set.
    #[error("discarded: {0}")]
    Discard(String),
    /// Not now: run again after this long, without using up an attempt
    /// and without recording an error (Oban's snooze; the job's
    /// `max_retries` grows by one instead, so its attempt stays fenced).
    #[error("snoozed for {0:?}")]
    Snooze(std::time::Duration),
}

impl JobError {
    /// A failure worth another attempt.
    pub fn retry(reason: impl std::fmt::Display) -> JobError {
        JobError::Retry(reason.to_string())
    }

    /// A failure no retry will fix.
    pub fn discard(reason: impl std::fmt::Display) -> JobError {
        JobError::Discard(reason.to_string())
    }

    /// A job that should wait `wait` and try again, at no cost.
    pub fn snooze(wait: std::time::Duration) -> JobError {
        JobError::Snooze(wait)
    }
}

/// A worker: runs jobs of one name, one at a time per job.
///
/// ```
/// use drove_jobs::{JobCtx, JobError, Worker};
///
/// struct Mailer;
///
/// impl Worker for Mailer {
///     const NAME: &'static str = "mailer";
///     type Args = String;
///
///     async fn perform(&self, ctx: JobCtx, to: String) -> Result<(), JobError> {
///         println!("mail {to} (key {})", ctx.idempotency_key());
///         Ok(())
///     }
/// }
/// ```
pub trait Worker: Send + Sync + 'static {
    /// The stable name jobs are enqueued under.
    const NAME: &'static str;
    /// The arguments, as JSON in the store.
    type Args: Serialize + DeserializeOwned + Send + 'static;

    /// Runs one job.
    fn perform(
        &self,
        ctx: JobCtx,
        args: Self::Args,
    ) -> impl Future<Output = Result<(), JobError>> + Send;

    /// How long a run may take before it counts as failed.
    fn timeout(&self) -> Option<Duration> {
        None
    }
}

/// A worker that takes jobs in groups (up to a pipeline's `batch_size`),
/// as Flume's batch pipelines do. The group succeeds or fails as one.
pub trait BatchWorker: Send + Sync + 'static {
    /// The stable name jobs are enqueued under.
    const NAME: &'static str;
    /// One job's arguments.
    type Args: Serialize + DeserializeOwned + Send + 'static;

    /// Runs a group of jobs; `ctxs[i]` goes with `args[i]`.
    fn perform_batch(
        &self,
        ctxs: Vec<JobCtx>,
        args: Vec<Self::Args>,
    ) -> impl Future<Output = Result<(), JobError>> + Send;

    /// How long a group may take before it counts as failed.
    fn timeout(&self) -> Option<Duration> {
        None
    }
}

/// Decoded arguments, typed behind the table.
pub(crate) type Decoded = Box<dyn Any + Send>;

/// A worker with its types erased, as the table keeps it.
pub(crate) trait ErasedWorker: Send + Sync {
    fn is_batch(&self) -> bool;
    fn timeout(&self) -> Option<Duration>;
    fn decode(&self, args: &str) -> Result<Decoded, String>;
    /// Runs `args` (one, or a group for batch workers).
    fn run(&self, ctxs: Vec<JobCtx>, args: Vec<Decoded>) -> BoxFuture<Result<(), JobError>>;
}

fn decode_as<A: DeserializeOwned + Send + 'static>(args: &str) -> Result<Decoded, String> {
    serde_json::from_str::<A>(args)
        .map(|a| Box::new(a) as Decoded)
        .map_err(|e| format!("args do not decode as {}: {e}", std::any::type_name::<A>()))
}

fn typed<A: 'static>(args: Vec<Decoded>) -> Result<Vec<A>, JobError> {
    args.into_iter()
        .map(|a| {
            a.downcast::<A>()
                .map(|a| *a)
                .map_err(|_| JobError::discard("args of another worker"))
        })
        .collect()
}

struct Single<W>(Arc<W>);

impl<W: Worker> ErasedWorker for Single<W> {
    fn is_batch(&self) -> bool {
        false
    }

    fn timeout(&self) -> Option<Duration> {
        self.0.timeout()
    }

    fn decode(&self, args: &str) -> Result<Decoded, String> {
        decode_as::<W::Args>(args)
    }

    fn run(&self, ctxs: Vec<JobCtx>, args: Vec<Decoded>) -> BoxFuture<Result<(), JobError>> {
        let worker = self.0.clone();
        Box::pin(async move {
            let mut args = typed::<W::Args>(args)?;
            let (Some(ctx), Some(args)) = (ctxs.into_iter().next(), args.pop()) else {
                return Err(JobError::discard("no job given"));
            };
            worker.perform(ctx, args).await
        })
    }
}

struct Batch<W>(Arc<W>);

impl<W: BatchWorker> ErasedWorker for Batch<W> {
    fn is_batch(&self) -> bool {
        true
    }

    fn timeout(&self) -> Option<Duration> {
        self.0.timeout()
    }

    fn decode(&self, args: &str) -> Result<Decoded, String> {
        decode_as::<W::Args>(args)
    }

    fn run(&self, ctxs: Vec<JobCtx>, args: Vec<Decoded>) -> BoxFuture<Result<(), JobError>> {
        let worker = self.0.clone();
        Box::pin(async move {
            let args = typed::<W::Args>(args)?;
            worker.perform_batch(ctxs, args).await
        })
    }
}

/// The workers a node runs, by name.
#[derive(Clone, Default)]
pub struct Workers {
    by_name: HashMap<String, Arc<dyn ErasedWorker>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Workers {
    /// Adds `worker` under [`Worker::NAME`] (replacing one of that name).
    pub fn add<W: Worker>(&mut self, worker: W) {
        self.by_name
            .insert(W::NAME.to_owned(), Arc::new(Single(Arc::new(worker))));
    }

    /// Adds a batch worker under [`BatchWorker::NAME`].
    pub fn add_batch<W: BatchWorker>(&mut self, worker: W) {
        self.by_name
            .insert(W::NAME.to_owned(), Arc::new(Batch(Arc::new(worker))));
    }

    /// Whether a worker of that name is here.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn ErasedWorker>> {
        self.by_name.get(name).cloned()
    }
}
