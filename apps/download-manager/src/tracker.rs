//! The tracker: a transient supervised child per download, globally named
//! by its user. It produces the file step by step (each step a chunk of CSV
//! rows, stored in the replicated cache at once), checkpoints the next
//! step, updates the download in the cache and publishes it. After a
//! failover it resumes from its checkpoint on another node, whose rows then
//! carry that node's id: the file records which nodes worked on it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use drove_cache::Cache;
use drove_pubsub::PubSub;
use drove_runtime::{Actor, ActorError, Context, Message};
use drove_supervisor::{checkpoint, Child, Started};

use crate::download::{self, Download, Manifest, State, Update};

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
}

/// The tracker's only message: do the next step.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum TrackerMsg {
    /// Produce the next chunk, or finish.
    Step,
}

impl Message for TrackerMsg {
    const TAG: &'static str = "download-manager.tracker.v1";
}

/// One download's tracker.
#[derive(Clone)]
pub(crate) struct Tracker {
    cache: Cache,
    pubsub: PubSub,
}

/// Its state: the arguments and the next step.
pub(crate) struct TrackerState {
    args: TrackerArgs,
    step: u32,
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
    /// A tracker that stores in `cache` and reports on `pubsub`.
    pub(crate) fn new(cache: &Cache, pubsub: &PubSub) -> Self {
        Tracker {
            cache: cache.clone(),
            pubsub: pubsub.clone(),
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

    /// The CSV rows of one step, `chunk_bytes` long or a little more.
    fn chunk(args: &TrackerArgs, step: u32, node: &str) -> String {
        let mut out = String::with_capacity(args.chunk_bytes + 128);
        if step == 0 {
            out.push_str("# drove download-manager report\n");
            out.push_str(&format!("# download_id: {}\n", args.download_id));
            out.push_str(&format!("# user: {}\n", args.user));
            out.push_str("step,row,node,value\n");
        }
        let mut row = 0u32;
        while out.len() < args.chunk_bytes.max(1) {
            out.push_str(&format!(
                "{step},{row},{node},{:016x}\n",
                rand::random::<u64>()
            ));
            row += 1;
        }
        out
    }

    /// Reads every chunk back, hashes the file, stores the manifest.
    fn seal(&self, args: &TrackerArgs) -> Result<Manifest, String> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut nodes: Vec<String> = Vec::new();
        for n in 0..args.steps {
            let chunk: String = self
                .cache
                .get(&download::chunk_key(&args.download_id, n))
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("chunk {n} is missing"))?;
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
            .map_err(|e| e.to_string())?;
        Ok(manifest)
    }
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
        Ok(TrackerState { args, step })
    }

    async fn handle(
        &self,
        ctx: &Context<Self>,
        _: TrackerMsg,
        s: &mut TrackerState,
    ) -> Result<(), ActorError> {
        let node = ctx.node().id().to_string();
        let Some(mut d) = self.stored(&s.args, ctx.node().name()) else {
            tracing::info!(download = %s.args.download_id, "download cleared; tracker ends");
            ctx.stop();
            return Ok(());
        };
        if s.step < s.args.steps {
            let chunk = Self::chunk(&s.args, s.step, &node);
            self.cache.put(
                &download::chunk_key(&s.args.download_id, s.step),
                &chunk,
                Some(FILE_TTL),
            )?;
            s.step += 1;
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
            Ok(manifest) => {
                d.state = State::Ready;
                d.progress = 100;
                d.file_url = Some(download::FILE_URL.to_string());
                tracing::info!(download = %s.args.download_id, size = manifest.size, nodes = ?manifest.nodes, "file ready");
            }
            Err(e) => {
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
