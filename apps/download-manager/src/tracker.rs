//! The tracker: a transient supervised child per download, globally named
//! by its user. It produces the file step by step (each step a chunk of CSV
//! rows, stored in the replicated cache at once), checkpoints the next
//! step, updates the download in the cache and publishes it. After a
//! failover it resumes from its checkpoint on another node, whose rows then
//! carry that node's id: the file records which nodes worked on it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use drove_cache::Cache;
use drove_pubsub::PubSub;
use drove_runtime::{Actor, ActorError, Context, Message, Reply};
use drove_supervisor::{checkpoint, Child, Started};

use drove::events::Events;
use drove::pool::Pool;

use crate::download::{self, Download, Manifest, State, Update};
use crate::expiry::ReportReady;
use crate::report::{self, render_step, StepJob};

/// Failed pool calls for one step before it is rendered in-process.
const POOL_ATTEMPTS: u32 = 3;

/// How long stored files stay when nobody fetches them.
const FILE_TTL: Duration = Duration::from_secs(3600);

/// A tracker's start arguments.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TrackerArgs {
    /// The user.
    pub user: String,
    /// The download.
    pub download_id: String,
    /// Steps (chunks) to produce.
    pub steps: u32,
    /// Time per step, ms.
    pub step_ms: u64,
    /// Bytes per chunk (about).
    pub chunk_bytes: usize,
    /// How long the ready file stays unfetched, ms (0: until its TTL).
    #[serde(default)]
    pub expire_ms: u64,
}

/// The tracker's only message: do the next step.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum TrackerMsg {
    /// Produce the next chunk, or finish.
    Step,
    /// Which download this is, as far as it has got (for a request of the
    /// same user that lost the race to start one).
    Describe(Reply<Download>),
}

impl Message for TrackerMsg {
    const TAG: &'static str = "download-manager.tracker.v2";
}

/// One download's tracker.
#[derive(Clone)]
pub(crate) struct Tracker {
    cache: Cache,
    pubsub: PubSub,
    /// What the node starts after declaring the tracker type.
    started: Arc<NodeParts>,
}

/// The parts of a node that start after its child types are declared.
#[derive(Default)]
pub(crate) struct NodeParts {
    /// The pool steps are rendered on (in-process while unset).
    pub pool: OnceLock<Pool>,
    /// Durable events, for the report's expiry.
    pub events: OnceLock<Events>,
}

/// Its state: the arguments, the next step, and failed attempts at it.
pub(crate) struct TrackerState {
    args: TrackerArgs,
    step: u32,
    failures: u32,
}

fn schedule(ctx: &Context<Tracker>, after: Duration) {
    let me = ctx.myself().clone();
    let node = ctx.node().clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let _ = node.cast(&me, TrackerMsg::Step);
    });
}

impl Tracker {
    /// A tracker that stores in `cache`, reports on `pubsub`, renders on
    /// the pool in `started` and signals expiries through its events.
    pub(crate) fn new(cache: &Cache, pubsub: &PubSub, started: Arc<NodeParts>) -> Self {
        Tracker {
            cache: cache.clone(),
            pubsub: pubsub.clone(),
            started,
        }
    }

    /// Signals the ready file's expiry (durable: it happens even if this
    /// node is gone by then).
    async fn expire_later(&self, args: &TrackerArgs) {
        let Some(events) = self.started.events.get() else {
            return;
        };
        if args.expire_ms == 0 {
            return;
        }
        let ready = ReportReady {
            user: args.user.clone(),
            download_id: args.download_id.clone(),
            chunks: args.steps,
        };
        let after = Duration::from_millis(args.expire_ms);
        if let Err(e) = events.signal_after(after, &ready).await {
            tracing::warn!(download = %args.download_id, error = %e, "could not schedule the expiry; the file's TTL still applies");
        }
    }

    /// Renders a step on the pool; after repeated failures, here.
    async fn render(
        &self,
        job: StepJob,
        failures: u32,
        here: &str,
    ) -> Result<report::Rendered, String> {
        match self.started.pool.get() {
            Some(pool) if failures < POOL_ATTEMPTS => {
                let ran = pool
                    .call(render_step, job)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(ran)
            }
            _ => Ok(report::render(&job, here)),
        }
    }

    /// Writes the download as it is now and tells the user's pages.
    fn report(&self, d: &Download) -> Result<(), ActorError> {
        self.cache.put(
            &download::download_key(&d.user),
            d,
            Some(download::RECORD_TTL),
        )?;
        self.pubsub
            .broadcast(&download::topic(&d.user), &Update::Changed(d.clone()))?;
        Ok(())
    }

    /// The download as stored, if it is still this tracker's: a user who
    /// cleared it (or started another) ends this tracker.
    fn stored(&self, args: &TrackerArgs, node: &str) -> Option<Download> {
        let mut d: Download = self
            .cache
            .get(&download::download_key(&args.user))
            .ok()
            .flatten()
            .filter(|d: &Download| d.id == args.download_id)?;
        d.tracker_node = Some(node.to_string());
        Some(d)
    }

    /// The download as stored here, or as this tracker knows it when its
    /// record has not reached this node yet.
    fn describe(&self, s: &TrackerState, node: &str) -> Download {
        self.stored(&s.args, node).unwrap_or_else(|| Download {
            id: s.args.download_id.clone(),
            user: s.args.user.clone(),
            state: if s.step == 0 {
                State::Pending
            } else {
                State::Processing
            },
            progress: progress(s.step, s.args.steps),
            tracker_node: Some(node.to_string()),
            step_runner: None,
            file_url: None,
            error: None,
            client: None,
            created_ms: 0,
        })
    }

    /// The first chunk from `from` on that this node does not hold
    /// (`steps` when none is missing).
    fn next_missing(&self, args: &TrackerArgs, from: u32) -> u32 {
        (from..args.steps)
            .find(|&n| {
                let key = download::chunk_key(&args.download_id, n);
                !matches!(self.cache.get::<String>(&key), Ok(Some(_)))
            })
            .unwrap_or(args.steps)
    }

    /// Reads every chunk back, hashes the file, stores the manifest.
    fn seal(&self, args: &TrackerArgs) -> Result<Manifest, SealError> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut nodes: Vec<String> = Vec::new();
        for n in 0..args.steps {
            let chunk: String = self
                .cache
                .get(&download::chunk_key(&args.download_id, n))
                .map_err(|e| SealError::Failed(e.to_string()))?
                .ok_or(SealError::Missing(n))?;
            for line in chunk.lines().filter(|l| !l.starts_with('#')) {
                if let Some(node) = line.split(',').nth(2) {
                    if node != "node" && !nodes.iter().any(|n| n == node) {
                        nodes.push(node.to_string());
                    }
                }
            }
            size += chunk.len() as u64;
            hasher.update(chunk.as_bytes());
        }
        let sha256 = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let manifest = Manifest {
            download_id: args.download_id.clone(),
            chunks: args.steps,
            size,
            sha256,
            nodes,
        };
        self.cache
            .put(
                &download::manifest_key(&args.download_id),
                &manifest,
                Some(FILE_TTL),
            )
            .map_err(|e| SealError::Failed(e.to_string()))?;
        Ok(manifest)
    }
}

/// Why a file could not be sealed.
enum SealError {
    /// This chunk is not held here: it is rendered again.
    Missing(u32),
    /// Anything else: the download fails with this message.
    Failed(String),
}

impl Actor for Tracker {
    type Msg = TrackerMsg;
    type State = TrackerState;
    type Args = (TrackerArgs, u32);

    async fn init(
        &self,
        ctx: &Context<Self>,
        (args, step): (TrackerArgs, u32),
    ) -> Result<TrackerState, ActorError> {
        if let Some(mut d) = self.stored(&args, ctx.node().name()) {
            if step > 0 {
                // Resumed: say where it runs now, never lower than before.
                d.state = State::Processing;
                d.progress = d.progress.max(progress(step, args.steps));
                tracing::info!(download = %args.download_id, step, "tracker resumed");
            }
            self.report(&d)?;
        }
        // A cleared download is noticed, and the tracker ends, at the step.
        schedule(ctx, Duration::from_millis(args.step_ms));
        Ok(TrackerState {
            args,
            step,
            failures: 0,
        })
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: TrackerMsg,
        s: &mut TrackerState,
    ) -> Result<(), ActorError> {
        if let TrackerMsg::Describe(reply) = msg {
            let d = self.describe(s, ctx.node().name());
            ctx.reply(reply, d)?;
            return Ok(());
        }
        let node = ctx.node().id().to_string();
        let Some(mut d) = self.stored(&s.args, ctx.node().name()) else {
            tracing::info!(download = %s.args.download_id, "download cleared; tracker ends");
            ctx.stop();
            return Ok(());
        };
        if s.step < s.args.steps {
            let job = StepJob {
                download_id: s.args.download_id.clone(),
                user: s.args.user.clone(),
                step: s.step,
                chunk_bytes: s.args.chunk_bytes,
                tracker_node: node,
            };
            let rendered = match self.render(job, s.failures, ctx.node().name()).await {
                Ok(rendered) => rendered,
                Err(e) => {
                    // A runner killed mid-step: the step is tried again.
                    s.failures += 1;
                    tracing::warn!(download = %s.args.download_id, step = s.step, error = %e, "step failed; retrying");
                    schedule(ctx, Duration::from_millis(s.args.step_ms));
                    return Ok(());
                }
            };
            self.cache.put(
                &download::chunk_key(&s.args.download_id, s.step),
                &rendered.chunk,
                Some(FILE_TTL),
            )?;
            s.step = self.next_missing(&s.args, s.step + 1);
            s.failures = 0;
            d.step_runner = Some(rendered.runner);
            // Checkpoint before telling anyone, so a resumed tracker never
            // reports less than the page has seen.
            checkpoint(ctx, &s.step)?;
            d.state = State::Processing;
            d.progress = d.progress.max(progress(s.step, s.args.steps));
            self.report(&d)?;
            schedule(ctx, Duration::from_millis(s.args.step_ms));
            return Ok(());
        }
        match self.seal(&s.args) {
            // A chunk can be lost with the node that wrote it (its delta
            // had not left when the node died, though the checkpoint after
            // it had): it is rendered again, here or on a runner.
            Err(SealError::Missing(chunk)) => {
                tracing::warn!(download = %s.args.download_id, chunk, "a chunk was lost with its node; rendering it again");
                s.step = chunk;
                schedule(ctx, Duration::from_millis(s.args.step_ms));
                return Ok(());
            }
            Ok(manifest) => {
                d.state = State::Ready;
                d.progress = 100;
                d.file_url = Some(download::FILE_URL.to_string());
                self.expire_later(&s.args).await;
                tracing::info!(download = %s.args.download_id, size = manifest.size, nodes = ?manifest.nodes, "file ready");
            }
            Err(SealError::Failed(e)) => {
                d.state = State::Error;
                d.error = Some(e);
            }
        }
        self.report(&d)?;
        ctx.stop();
        Ok(())
    }
}

impl Child for Tracker {
    const TYPE: &'static str = "download-tracker";
    type Start = TrackerArgs;
    /// The next step to produce.
    type Checkpoint = u32;

    fn init_args(&self, start: Started<Self>) -> (TrackerArgs, u32) {
        (start.args, start.checkpoint.unwrap_or(0))
    }
}

/// Progress after `done` of `steps` steps; 100 only once the file is sealed.
fn progress(done: u32, steps: u32) -> u8 {
    if steps == 0 {
        return 99;
    }
    (u64::from(done) * 99 / u64::from(steps)) as u8
}
