//! [`Jobs`]: one node's handle on the job system. [`JobsBuilder`] opens
//! the store, starts the pipelines (the `default` one always), the
//! heartbeat (lease renewal, cancellation, the expiry backstop, pruning),
//! the rescuer (a member declared down or gone has its jobs handed back
//! at once) and the cron schedules.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use drove_runtime::{MembershipEvent, Node, NodeId};
use tokio::sync::{broadcast, watch};

use crate::caretaker::{Caretaker, Chore};
use crate::config::{JobsConfig, PipelineConfig, StoreUrl};
use crate::cron::CronJob;
use crate::engine::{now_ms, Engine};
use crate::job::{Enqueued, Job, JobId, JobState};
use crate::pipeline::{self, PipelineHandle, PipelineStatus};
use crate::redis_store::RedisStore;
use crate::spec::{JobSpec, SpecError};
use crate::sqlite::SqliteStore;
use crate::store::{JobStore, QueueInfo, RescueReason, StoreError};
use crate::worker::{BatchWorker, Worker, Workers};

/// Why a job operation failed.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job was refused before it reached the store.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// A pipeline's options are refused.
    #[error("pipeline {name:?}: {reason}")]
    Pipeline {
        /// The pipeline.
        name: String,
        /// Why.
        reason: String,
    },
    /// A cron schedule is refused.
    #[error(transparent)]
    Cron(#[from] crate::cron::CronError),
    /// A synchronous pause or resume did not take effect in time.
    #[error("{queue}: pipelines did not {what} within {timeout:?}")]
    Timeout {
        /// The queue.
        queue: String,
        /// "pause" or "resume".
        what: &'static str,
        /// The wait.
        timeout: Duration,
    },
}

/// Where a pause or resume applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// This node only, until it restarts.
    Node,
    /// Every node, stored (it survives restarts).
    Cluster,
}

/// The most jobs one [`Jobs::list`] returns.
pub const MAX_LIST: u32 = 200;
/// The most jobs one [`Jobs::list`] skips: deeper pages of a state are
/// for the store's own tools.
pub const MAX_LIST_OFFSET: u32 = 100_000;

/// The consumer name of a node incarnation.
pub fn consumer_of(id: &NodeId) -> String {
    format!("{}#{}", id.name, id.incarnation.0)
}

/// Builds a node's job system.
pub struct JobsBuilder {
    config: JobsConfig,
    workers: Workers,
    crons: Vec<CronJob>,
    store: Option<Arc<dyn JobStore>>,
}

impl std::fmt::Debug for JobsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobsBuilder")
            .field("config", &self.config)
            .field("workers", &self.workers)
            .finish()
    }
}

impl JobsBuilder {
    /// A builder with `config` and the built-in workers.
    pub fn new(config: JobsConfig) -> JobsBuilder {
        JobsBuilder {
            config,
            workers: crate::builtin::builtins(),
            crons: Vec::new(),
            store: None,
        }
    }

    /// Adds a worker.
    pub fn worker<W: Worker>(mut self, worker: W) -> JobsBuilder {
        self.workers.add(worker);
        self
    }

    /// Adds a batch worker.
    pub fn batch_worker<W: BatchWorker>(mut self, worker: W) -> JobsBuilder {
        self.workers.add_batch(worker);
        self
    }

    /// Adds a pipeline.
    pub fn pipeline(mut self, pipeline: PipelineConfig) -> JobsBuilder {
        self.config.pipelines.push(pipeline);
        self
    }

    /// Adds a cron schedule.
    pub fn cron(mut self, job: CronJob) -> JobsBuilder {
        self.crons.push(job);
        self
    }

    /// Uses `store` instead of opening the configured one.
    pub fn store(mut self, store: Arc<dyn JobStore>) -> JobsBuilder {
        self.store = Some(store);
        self
    }

    /// The settings so far.
    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    fn open_store(&self) -> Result<Arc<dyn JobStore>, JobsError> {
        if let Some(store) = &self.store {
            return Ok(store.clone());
        }
        Ok(match &self.config.store {
            StoreUrl::Redis(url) => Arc::new(RedisStore::open(url, &self.config.namespace)?),
            StoreUrl::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        })
    }

    fn pipelines(&self) -> Result<Vec<PipelineConfig>, JobsError> {
        let mut pipelines = vec![PipelineConfig::default_pipeline()];
        for p in &self.config.pipelines {
            p.validate().map_err(|reason| JobsError::Pipeline {
                name: p.name.clone(),
                reason,
            })?;
            match pipelines.iter_mut().find(|q| q.name == p.name) {
                Some(existing) if existing.name == "default" => *existing = p.clone(),
                Some(_) => {
                    return Err(JobsError::Pipeline {
                        name: p.name.clone(),
                        reason: "two pipelines with this name".into(),
                    })
                }
                None => pipelines.push(p.clone()),
            }
        }
        Ok(pipelines)
    }

    /// Starts the job system of `node`; `extension` is what every job's
    /// context carries.
    pub async fn start(
        self,
        node: &Node,
        extension: Option<Arc<dyn Any + Send + Sync>>,
    ) -> Result<Jobs, JobsError> {
        let store = self.open_store()?;
        let pipelines = self.pipelines()?;
        let mut crons = self.crons;
        for c in &self.config.cron {
            let spec = JobSpec::raw(c.queue.clone(), c.worker.clone(), c.args.clone());
            crons.push(CronJob::new(c.name.clone(), &c.schedule, spec)?);
        }
        let me = node.id();
        let engine = Engine::start(
            store,
            self.workers,
            self.config,
            consumer_of(&me),
            extension,
        );
        let (stop, stop_rx) = watch::channel(false);
        let handles = pipelines
            .into_iter()
            .map(|p| pipeline::start(engine.clone(), p, node.cut_off(), stop_rx.clone()))
            .collect();
        let jobs = Jobs {
            inner: Arc::new(JobsInner {
                engine: engine.clone(),
                pipelines: handles,
                stop,
                node_name: me.name.clone(),
                inserted: None,
            }),
        };
        jobs.forget_own_node_pauses().await;
        tokio::spawn(caretake(
            Arc::downgrade(&engine),
            node.subscribe(),
            me,
            stop_rx.clone(),
        ));
        for job in crons {
            tokio::spawn(crate::cron::run(Arc::downgrade(&engine), job));
        }
        Ok(jobs)
    }
}

struct JobsInner {
    engine: Arc<Engine>,
    pipelines: Vec<PipelineHandle>,
    stop: watch::Sender<bool>,
    node_name: String,
    /// Every job inserted through this handle, kept by the testing modes
    /// only (for `assert_enqueued`): a running node keeps none.
    inserted: Option<Mutex<Vec<(JobId, JobSpec)>>>,
}

/// A node's job system. Cheap to clone.
#[derive(Clone)]
pub struct Jobs {
    inner: Arc<JobsInner>,
}

impl std::fmt::Debug for Jobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jobs")
            .field("node", &self.inner.node_name)
            .field("consumer", &self.inner.engine.consumer())
            .finish()
    }
}

/// A pipeline as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineInfo {
    /// Its options.
    pub config: PipelineConfig,
    /// What it is doing.
    pub status: PipelineStatus,
    /// Jobs it runs now.
    pub busy: usize,
}

impl Jobs {
    /// Builds on an engine already made (the testing modes' way in).
    pub(crate) fn from_engine(engine: Arc<Engine>, node_name: String) -> Jobs {
        let (stop, _) = watch::channel(true);
        Jobs {
            inner: Arc::new(JobsInner {
                engine,
                pipelines: Vec::new(),
                stop,
                node_name,
                inserted: Some(Mutex::new(Vec::new())),
            }),
        }
    }

    pub(crate) fn engine(&self) -> &Arc<Engine> {
        &self.inner.engine
    }

    pub(crate) fn inserted(&self) -> Vec<(JobId, JobSpec)> {
        self.inner.inserted.as_ref().map_or_else(Vec::new, |log| {
            log.lock().unwrap_or_else(|p| p.into_inner()).clone()
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn JobStore> {
        &self.inner.engine.store
    }

    /// The workers this node runs.
    pub fn workers(&self) -> &Workers {
        &self.inner.engine.workers
    }

    /// The settings.
    pub fn config(&self) -> &JobsConfig {
        &self.inner.engine.config
    }

    /// Enqueues a job for `W` on `queue`, to run now.
    pub async fn enqueue<W: Worker>(
        &self,
        queue: &str,
        _worker: W,
        args: W::Args,
    ) -> Result<Enqueued, JobsError> {
        self.insert(JobSpec::of::<W>(queue, &args)?).await
    }

    /// Enqueues a job for `W` to run after `delay`.
    pub async fn enqueue_in<W: Worker>(
        &self,
        queue: &str,
        delay: Duration,
        _worker: W,
        args: W::Args,
    ) -> Result<Enqueued, JobsError> {
        self.insert(JobSpec::of::<W>(queue, &args)?.run_in(delay))
            .await
    }

    /// Enqueues a job for `W` to run at `time`.
    pub async fn enqueue_at<W: Worker>(
        &self,
        queue: &str,
        time: SystemTime,
        _worker: W,
        args: W::Args,
    ) -> Result<Enqueued, JobsError> {
        self.insert(JobSpec::of::<W>(queue, &args)?.run_at(time))
            .await
    }

    /// Enqueues one job with its options.
    pub async fn insert(&self, spec: JobSpec) -> Result<Enqueued, JobsError> {
        let mut answers = self.insert_all(vec![spec]).await?;
        answers
            .pop()
            .ok_or_else(|| StoreError::Corrupt("no answer to an enqueue".into()).into())
    }

    /// Enqueues jobs in one store call (bulk enqueue); all or none are
    /// checked before any is sent.
    pub async fn insert_all(&self, specs: Vec<JobSpec>) -> Result<Vec<Enqueued>, JobsError> {
        let engine = &self.inner.engine;
        let now = now_ms();
        let new = specs
            .iter()
            .map(|s| {
                s.to_new_job(
                    now,
                    engine.config.backoff.max_retries,
                    engine.config.max_args_bytes,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let answers = engine.store.enqueue(&new, now).await?;
        for job in &new {
            engine.metrics.enqueued(&job.queue, job.args.len());
        }
        if let Some(log) = &self.inner.inserted {
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(answers.iter().map(|a| a.id).zip(specs));
        }
        for p in &self.inner.pipelines {
            if new.iter().any(|j| j.queue == p.config.queue) {
                p.wake.notify_one();
            }
        }
        Ok(answers)
    }

    /// This node's consumer name (`name#incarnation`), as jobs it runs
    /// record it.
    pub fn consumer(&self) -> String {
        self.inner.engine.consumer()
    }

    /// The job that holds `spec`'s unique key now (the one a unique
    /// spec was enqueued as), if any; `None` for a spec that is not unique.
    pub async fn unique_holder(&self, spec: &JobSpec) -> Result<Option<JobId>, JobsError> {
        let Some(key) = spec.held_key()? else {
            return Ok(None);
        };
        Ok(self
            .inner
            .engine
            .store
            .unique_holder(&key, now_ms())
            .await?)
    }

    /// One job.
    pub async fn get(&self, id: JobId) -> Result<Option<Job>, JobsError> {
        Ok(self.inner.engine.store.get(id).await?)
    }

    /// Cancels a job, queued or running (a run on this node stops at
    /// once; on another node at its next heartbeat). Returns the state
    /// it was in.
    pub async fn cancel(&self, id: JobId) -> Result<Option<JobState>, JobsError> {
        let before = self.inner.engine.store.cancel(id, now_ms()).await?;
        if before == Some(JobState::Executing) {
            self.inner.engine.abort(&[id]);
        }
        Ok(before)
    }

    /// Makes a retryable, dead or cancelled job available now.
    pub async fn retry(&self, id: JobId) -> Result<Option<JobState>, JobsError> {
        Ok(self.inner.engine.store.retry(id, now_ms()).await?)
    }

    /// One page of `queue`'s jobs in `state` (see [`JobStore::list`] for
    /// the order): at most [`MAX_LIST`] jobs, skipping at most
    /// [`MAX_LIST_OFFSET`].
    pub async fn list(
        &self,
        queue: &str,
        state: JobState,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<Job>, JobsError> {
        let (offset, limit) = (offset.min(MAX_LIST_OFFSET), limit.min(MAX_LIST));
        Ok(self
            .inner
            .engine
            .store
            .list(queue, state, offset, limit)
            .await?)
    }

    /// Every queue with its counts and pauses.
    pub async fn queues(&self) -> Result<Vec<QueueInfo>, JobsError> {
        Ok(self.inner.engine.store.queues().await?)
    }

    /// This node's pipelines.
    pub fn pipelines(&self) -> Vec<PipelineInfo> {
        self.inner
            .pipelines
            .iter()
            .map(|p| PipelineInfo {
                config: p.config.clone(),
                status: *p.status.borrow(),
                busy: (p.config.max_demand as usize).saturating_sub(p.slots.available_permits()),
            })
            .collect()
    }

    /// Queues paused on this node.
    pub fn paused_here(&self) -> Vec<String> {
        let mut queues: Vec<String> = self
            .inner
            .pipelines
            .iter()
            .filter(|p| *p.paused_here.borrow())
            .map(|p| p.config.queue.clone())
            .collect();
        queues.dedup();
        queues
    }

    /// Pauses `queue` on this node or cluster-wide. With `wait`, returns
    /// once this node's pipelines on the queue fetch no more (or fails
    /// after `wait`); without, at once.
    pub async fn pause(
        &self,
        queue: &str,
        scope: Scope,
        wait: Option<Duration>,
    ) -> Result<(), JobsError> {
        self.set_paused(queue, scope, true, wait).await
    }

    /// Resumes `queue`, as [`Jobs::pause`].
    pub async fn resume(
        &self,
        queue: &str,
        scope: Scope,
        wait: Option<Duration>,
    ) -> Result<(), JobsError> {
        self.set_paused(queue, scope, false, wait).await
    }

    async fn set_paused(
        &self,
        queue: &str,
        scope: Scope,
        paused: bool,
        wait: Option<Duration>,
    ) -> Result<(), JobsError> {
        let store = &self.inner.engine.store;
        match scope {
            Scope::Cluster => store.set_paused(queue, paused).await?,
            Scope::Node => {
                store
                    .set_node_paused(queue, &self.inner.node_name, paused)
                    .await?;
                for p in self.on_queue(queue) {
                    p.paused_here.send_replace(paused);
                }
            }
        }
        for p in self.on_queue(queue) {
            p.wake.notify_one();
        }
        let Some(timeout) = wait else {
            return Ok(());
        };
        let settled = async {
            for p in self.on_queue(queue) {
                let mut status = p.status.clone();
                let target = |s: &PipelineStatus| match (paused, scope) {
                    (true, Scope::Node) => *s == PipelineStatus::PausedHere,
                    (true, Scope::Cluster) => {
                        matches!(
                            s,
                            PipelineStatus::PausedCluster | PipelineStatus::PausedHere
                        )
                    }
                    (false, Scope::Node) => *s != PipelineStatus::PausedHere,
                    (false, Scope::Cluster) => *s != PipelineStatus::PausedCluster,
                };
                if status.wait_for(target).await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, settled)
            .await
            .map_err(|_| JobsError::Timeout {
                queue: queue.to_owned(),
                what: if paused { "pause" } else { "resume" },
                timeout,
            })
    }

    fn on_queue<'a>(&'a self, queue: &'a str) -> impl Iterator<Item = &'a PipelineHandle> + 'a {
        self.inner
            .pipelines
            .iter()
            .filter(move |p| p.config.queue == queue)
    }

    /// Node pauses are temporary: a restarted node starts with none.
    async fn forget_own_node_pauses(&self) {
        let Ok(queues) = self.inner.engine.store.queues().await else {
            return;
        };
        for q in queues {
            if q.paused_nodes.contains(&self.inner.node_name) {
                let _ = self
                    .inner
                    .engine
                    .store
                    .set_node_paused(&q.queue, &self.inner.node_name, false)
                    .await;
            }
        }
    }

    /// Prometheus text for this node's jobs.
    pub fn metrics_text(&self) -> String {
        self.inner.engine.metrics.render(&self.inner.node_name)
    }

    /// Runs on this node that ended with `outcome` (`completed`,
    /// `retried`, `dead`, `lost`).
    pub fn outcome_total(&self, outcome: &str) -> u64 {
        self.inner.engine.metrics.outcome_total(outcome)
    }

    /// Stops fetching, waits up to the configured grace for running jobs,
    /// then stops the rest and hands them back to the store.
    pub async fn shutdown(&self) {
        self.inner.stop.send_replace(true);
        let engine = &self.inner.engine;
        let grace = Duration::from_millis(engine.config.shutdown_ms);
        let deadline = tokio::time::Instant::now() + grace;
        while engine.running_count() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Let the settler reach the store with what just finished.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stopped = engine.abort_all();
        match engine
            .store
            .rescue(&engine.consumer(), RescueReason::Released, now_ms())
            .await
        {
            Ok(n) if n > 0 || stopped > 0 => {
                tracing::info!(
                    handed_back = n,
                    "jobs still running at shutdown handed back"
                )
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not hand back running jobs; their leases will")
            }
        }
    }
}

/// Carries out the [`Caretaker`]'s chores: hands back the jobs of members
/// declared down or gone and of this node's earlier incarnations, renews
/// held leases and stops the jobs the store took back, and now and then
/// sweeps expired leases, refreshes the counts for `/metrics` and prunes
/// old jobs.
async fn caretake(
    engine: std::sync::Weak<Engine>,
    mut events: broadcast::Receiver<MembershipEvent>,
    me: NodeId,
    mut stop: watch::Receiver<bool>,
) {
    let Some(first) = engine.upgrade() else {
        return;
    };
    let mut care = Caretaker::new(now_ms(), first.config.heartbeat_ms);
    if let Ok(holders) = first.store.consumers().await {
        care.started(now_ms(), &consumer_of(&me), &me.name, &holders);
    }
    drop(first);
    loop {
        let Some(strong) = engine.upgrade() else {
            return;
        };
        for chore in care.due(now_ms()) {
            chore_once(&strong, &mut care, chore).await;
        }
        // Held only while chores run, so a dropped job system ends here.
        drop(strong);
        let sleep = Duration::from_millis(care.next_wake().saturating_sub(now_ms()));
        tokio::select! {
            event = events.recv() => match event {
                Ok(MembershipEvent::NodeDown(id)) | Ok(MembershipEvent::NodeLeft(id)) if id != me => {
                    care.gone(now_ms(), &consumer_of(&id));
                }
                Ok(MembershipEvent::Rejoined { old, new }) => {
                    if let Some(engine) = engine.upgrade() {
                        engine.set_consumer(consumer_of(&new));
                    }
                    care.gone(now_ms(), &consumer_of(&old));
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "membership events missed; leases cover them");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tokio::time::sleep(sleep) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Does one chore against the store; a rescue's outcome goes back to the
/// caretaker.
async fn chore_once(engine: &Engine, care: &mut Caretaker, chore: Chore) {
    let now = now_ms();
    match chore {
        Chore::Rescue(consumer) => {
            let done = engine
                .store
                .rescue(&consumer, RescueReason::NodeDown, now)
                .await;
            match &done {
                Ok(n) if *n > 0 => {
                    tracing::info!(
                        consumer,
                        jobs = n,
                        "rescued the jobs of a node that went down"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(consumer, error = %e, "rescue failed"),
            }
            if !care.rescued(now_ms(), &consumer, done.is_ok()) {
                tracing::warn!(
                    consumer,
                    "rescue failed every try; expired leases will hand the jobs back"
                );
            }
        }
        Chore::Renew => {
            for (consumer, attempts) in engine.held() {
                let until = now.saturating_add(engine.config.lease_ms);
                match engine.store.renew(&consumer, &attempts, until).await {
                    Ok(lost) if !lost.is_empty() => {
                        engine.abort(&lost);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "renewing job leases failed"),
                }
            }
        }
        Chore::Sweep => {
            if let Ok(n) = engine.store.rescue_expired(now).await {
                if n > 0 {
                    tracing::info!(jobs = n, "rescued jobs whose lease ran out");
                }
            }
            if let Ok(counts) = engine.store.queues().await {
                engine.metrics.set_counts(counts);
            }
        }
        Chore::Prune => {
            let finished = now.saturating_sub(engine.config.keep_finished_ms);
            let dead = now.saturating_sub(engine.config.keep_dead_ms);
            if let Err(e) = engine.store.prune(finished, dead, now).await {
                tracing::warn!(error = %e, "pruning old jobs failed");
            }
        }
    }
}
