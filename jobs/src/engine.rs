//! [`Engine`]: what one node's pipelines share. It runs fetched jobs
//! (each in a task, under a span), settles their outcomes with the store
//! in batches, and keeps the table of running attempts that the
//! heartbeat renews and aborts when the store says they moved on.
//!
//! Whoever takes a job's entry out of the running table owns its end:
//! the settler (the run finished), the heartbeat (the store no longer
//! gives it to this node) or a local cancel. That one releases the
//! pipeline's slot, so a slot is never released twice.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::AbortHandle;
use tracing::Instrument;

use crate::backoff::Backoff;
use crate::config::JobsConfig;
use crate::job::{Attempt, Failure, Job, JobId};
use crate::metrics::{JobMetrics, Outcome};
use crate::store::JobStore;
use crate::worker::{Decoded, ErasedWorker, JobCtx, JobError, Workers};

/// Unix ms now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// How a run ended, before the store hears of it.
type Verdict = Result<(), JobError>;

struct Settle {
    id: JobId,
    verdict: Verdict,
    took: Option<Duration>,
}

struct Running {
    attempt: u32,
    max_retries: u32,
    consumer: String,
    queue: String,
    abort: Option<AbortHandle>,
    slots: Arc<Semaphore>,
}

/// Decoded jobs of one batch worker, waiting to be grouped.
type BatchGroup = (Arc<dyn ErasedWorker>, Vec<(JobCtx, Decoded)>);

/// One node's job machinery.
pub(crate) struct Engine {
    pub(crate) store: Arc<dyn JobStore>,
    pub(crate) workers: Workers,
    pub(crate) config: JobsConfig,
    pub(crate) metrics: JobMetrics,
    consumer: RwLock<String>,
    running: Mutex<HashMap<JobId, Running>>,
    settle_tx: mpsc::UnboundedSender<Settle>,
    extension: Option<Arc<dyn Any + Send + Sync>>,
}

impl Engine {
    /// The engine and its settler task.
    pub(crate) fn start(
        store: Arc<dyn JobStore>,
        workers: Workers,
        config: JobsConfig,
        consumer: String,
        extension: Option<Arc<dyn Any + Send + Sync>>,
    ) -> Arc<Engine> {
        let (settle_tx, settle_rx) = mpsc::unbounded_channel();
        let engine = Arc::new(Engine {
            store,
            workers,
            config,
            metrics: JobMetrics::default(),
            consumer: RwLock::new(consumer),
            running: Mutex::new(HashMap::new()),
            settle_tx,
            extension,
        });
        tokio::spawn(settler(Arc::downgrade(&engine), settle_rx));
        engine
    }

    /// This node incarnation's consumer name.
    pub(crate) fn consumer(&self) -> String {
        self.consumer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn set_consumer(&self, consumer: String) {
        *self.consumer.write().unwrap_or_else(|p| p.into_inner()) = consumer;
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many attempts run here.
    pub(crate) fn running_count(&self) -> usize {
        self.table().len()
    }

    /// Runs fetched `jobs` with the pipeline's `slots` (one held per
    /// job), grouping batch workers' jobs by `batch_size`.
    pub(crate) fn dispatch(
        self: &Arc<Self>,
        jobs: Vec<Job>,
        batch_size: usize,
        slots: &Arc<Semaphore>,
    ) {
        let mut groups: BTreeMap<String, BatchGroup> = BTreeMap::new();
        for job in jobs {
            self.table().insert(
                job.id,
                Running {
                    attempt: job.attempt,
                    max_retries: job.max_retries,
                    consumer: job.node.clone().unwrap_or_else(|| self.consumer()),
                    queue: job.queue.clone(),
                    abort: None,
                    slots: slots.clone(),
                },
            );
            let Some(worker) = self.workers.get(&job.worker) else {
                let reason = format!(
                    "unknown worker {:?} on node {}",
                    job.worker,
                    self.consumer()
                );
                self.settle(job.id, Err(JobError::Discard(reason)), None);
                continue;
            };
            if job.args.len() > self.config.max_args_bytes {
                let reason = format!(
                    "args of {} bytes are over the limit of {}",
                    job.args.len(),
                    self.config.max_args_bytes
                );
                self.settle(job.id, Err(JobError::Discard(reason)), None);
                continue;
            }
            let args = match worker.decode(&job.args) {
                Ok(args) => args,
                Err(reason) => {
                    self.settle(job.id, Err(JobError::Discard(reason)), None);
                    continue;
                }
            };
            let ctx = JobCtx {
                id: job.id,
                attempt: job.attempt,
                queue: job.queue.clone(),
                node: job.node.clone().unwrap_or_default(),
                extension: self.extension.clone(),
            };
            if worker.is_batch() {
                groups
                    .entry(job.worker.clone())
                    .or_insert_with(|| (worker.clone(), Vec::new()))
                    .1
                    .push((ctx, args));
            } else {
                self.spawn_run(worker, job.worker.clone(), vec![(ctx, args)]);
            }
        }
        for (name, (worker, jobs)) in groups {
            let mut jobs = jobs.into_iter().peekable();
            while jobs.peek().is_some() {
                let group: Vec<_> = jobs.by_ref().take(batch_size.max(1)).collect();
                self.spawn_run(worker.clone(), name.clone(), group);
            }
        }
    }

    fn spawn_run(
        self: &Arc<Self>,
        worker: Arc<dyn ErasedWorker>,
        name: String,
        jobs: Vec<(JobCtx, Decoded)>,
    ) {
        let ids: Vec<JobId> = jobs.iter().map(|(ctx, _)| ctx.id).collect();
        let span = match jobs.first() {
            Some((ctx, _)) => tracing::info_span!(
                "job",
                id = %ctx.id,
                attempt = ctx.attempt,
                queue = %ctx.queue,
                worker = %name,
                batch = jobs.len()
            ),
            None => return,
        };
        let (ctxs, args): (Vec<JobCtx>, Vec<Decoded>) = jobs.into_iter().unzip();
        let engine = Arc::downgrade(self);
        let run_ids = ids.clone();
        let timeout = worker.timeout();
        let task = tokio::spawn(
            async move {
                let started = Instant::now();
                let run = AssertUnwindSafe(worker.run(ctxs, args)).catch_unwind();
                let verdict = match timeout {
                    Some(limit) => match tokio::time::timeout(limit, run).await {
                        Ok(result) => verdict_of(result),
                        Err(_) => Err(JobError::Retry(format!("timed out after {limit:?}"))),
                    },
                    None => verdict_of(run.await),
                };
                if let Err(e @ (JobError::Retry(_) | JobError::Discard(_))) = &verdict {
                    tracing::warn!(error = %e, "job failed");
                }
                if let Some(engine) = engine.upgrade() {
                    for id in run_ids {
                        engine.settle(id, verdict.clone(), Some(started.elapsed()));
                    }
                }
            }
            .instrument(span),
        );
        let abort = task.abort_handle();
        let mut table = self.table();
        for id in ids {
            if let Some(entry) = table.get_mut(&id) {
                entry.abort = Some(abort.clone());
            }
        }
    }

    fn settle(&self, id: JobId, verdict: Verdict, took: Option<Duration>) {
        let _ = self.settle_tx.send(Settle { id, verdict, took });
    }

    /// Attempts running here, by the consumer that fetched them.
    pub(crate) fn held(&self) -> BTreeMap<String, Vec<Attempt>> {
        let mut held: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
        for (id, r) in self.table().iter() {
            held.entry(r.consumer.clone()).or_default().push(Attempt {
                id: *id,
                attempt: r.attempt,
            });
        }
        held
    }

    /// Stops the runs of `ids` (cancelled, or rescued elsewhere) and
    /// frees their slots. Returns how many were running here.
    pub(crate) fn abort(&self, ids: &[JobId]) -> usize {
        let mut stopped = 0;
        for id in ids {
            let entry = self.table().remove(id);
            if let Some(entry) = entry {
                if let Some(abort) = &entry.abort {
                    abort.abort();
                }
                self.metrics.ran(&entry.queue, Outcome::Lost, None);
                entry.slots.add_permits(1);
                stopped += 1;
                tracing::info!(job = %id, "job stopped: the store no longer gives it to this node");
            }
        }
        stopped
    }

    /// Stops every run here (at shutdown, after the grace period).
    pub(crate) fn abort_all(&self) -> usize {
        let ids: Vec<JobId> = self.table().keys().copied().collect();
        self.abort(&ids)
    }
}

fn verdict_of(result: std::thread::Result<Verdict>) -> Verdict {
    match result {
        Ok(verdict) => verdict,
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string payload".to_owned());
            Err(JobError::Retry(format!("worker panicked: {message}")))
        }
    }
}

/// The record of a failed (or snoozed) attempt: retried after the backoff
/// while retries remain, else dead.
pub(crate) fn failure_of(
    attempt: Attempt,
    error: &JobError,
    max_retries: u32,
    backoff: &Backoff,
    now_ms: u64,
) -> Failure {
    let after =
        |wait: Duration| now_ms.saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
    let (retry_at_ms, snooze) = match error {
        JobError::Retry(_) if attempt.attempt <= max_retries => {
            (Some(after(backoff.delay_for(attempt.attempt))), false)
        }
        JobError::Retry(_) | JobError::Discard(_) => (None, false),
        JobError::Snooze(wait) => (Some(after(*wait)), true),
    };
    Failure {
        attempt,
        error: error.to_string(),
        retry_at_ms,
        snooze,
    }
}

/// Most outcomes settled in one store call.
const SETTLE_BATCH: usize = 2048;

async fn settler(engine: std::sync::Weak<Engine>, mut rx: mpsc::UnboundedReceiver<Settle>) {
    let mut batch = Vec::with_capacity(SETTLE_BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < SETTLE_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        engine.settle_batch(std::mem::take(&mut batch)).await;
    }
}

impl Engine {
    async fn settle_batch(&self, batch: Vec<Settle>) {
        let mut owned = Vec::with_capacity(batch.len());
        {
            let mut table = self.table();
            for s in batch {
                if let Some(entry) = table.remove(&s.id) {
                    owned.push((s, entry));
                }
            }
        }
        let mut by_consumer: BTreeMap<String, Vec<(Settle, Running)>> = BTreeMap::new();
        for (s, entry) in owned {
            by_consumer
                .entry(entry.consumer.clone())
                .or_default()
                .push((s, entry));
        }
        for (consumer, items) in by_consumer {
            self.settle_for(&consumer, &items).await;
            for (_, entry) in items {
                entry.slots.add_permits(1);
            }
        }
    }

    async fn settle_for(&self, consumer: &str, items: &[(Settle, Running)]) {
        let now = now_ms();
        let mut done = Vec::new();
        let mut failures = Vec::new();
        for (s, entry) in items {
            let attempt = Attempt {
                id: s.id,
                attempt: entry.attempt,
            };
            match &s.verdict {
                Ok(()) => done.push(attempt),
                Err(error) => failures.push(failure_of(
                    attempt,
                    error,
                    entry.max_retries,
                    &self.config.backoff,
                    now,
                )),
            }
        }
        let mut refused = Vec::new();
        if !done.is_empty() {
            match self
                .with_retries(|| self.store.complete(consumer, &done, now))
                .await
            {
                Some(ids) => refused.extend(ids),
                None => refused.extend(done.iter().map(|a| a.id)),
            }
        }
        if !failures.is_empty() {
            match self
                .with_retries(|| self.store.fail(consumer, &failures, now))
                .await
            {
                Some(ids) => refused.extend(ids),
                None => refused.extend(failures.iter().map(|f| f.attempt.id)),
            }
        }
        for (s, entry) in items {
            let outcome = if refused.contains(&s.id) {
                Outcome::Lost
            } else {
                match &s.verdict {
                    Ok(()) => Outcome::Completed,
                    Err(JobError::Retry(_)) if entry.attempt <= entry.max_retries => {
                        Outcome::Retried
                    }
                    Err(JobError::Snooze(_)) => Outcome::Snoozed,
                    Err(_) => Outcome::Dead,
                }
            };
            self.metrics.ran(&entry.queue, outcome, s.took);
        }
        if !refused.is_empty() {
            tracing::info!(
                jobs = refused.len(),
                "outcomes refused: those attempts were cancelled or rescued"
            );
        }
    }

    /// Retries a settling call while the store is down, for up to a
    /// lease: after that another node has the jobs anyway. Returns the
    /// refused ids, or `None` if the store never answered.
    async fn with_retries<'a, F, Fut>(&'a self, call: F) -> Option<Vec<JobId>>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<JobId>, crate::store::StoreError>> + 'a,
    {
        let deadline = Instant::now() + Duration::from_millis(self.config.lease_ms);
        let mut wait = Duration::from_millis(50);
        loop {
            match call().await {
                Ok(refused) => return Some(refused),
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(error = %e, "settling jobs failed; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(error = %e, "settling jobs failed for a whole lease; the jobs will run again");
                    return None;
                }
            }
        }
    }
}
