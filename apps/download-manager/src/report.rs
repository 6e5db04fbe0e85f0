//! Rendering one step of a report: the CPU-heavy part of a download, run on
//! a runner of the `report` pool (a process of this same binary), the way
//! Dragonfly runs a video transcode. The rows record the tracker's node
//! and the runner that rendered them.

use sha2::{Digest, Sha256};

use drove::pool::Ctx;
use serde::{Deserialize, Serialize};

/// The pool reports are rendered on, unless `--report-pool none`.
pub(crate) const DEFAULT_POOL: &str =
    "report:max=2,max_concurrency=8,idle_ms=15000,timeout_ms=10000,backend=process";

/// Hashing rounds over each chunk: the stand-in for real CPU work.
const WORK_ROUNDS: u32 = 16;

/// One step to render.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StepJob {
    /// The download.
    pub download_id: String,
    /// Its user.
    pub user: String,
    /// The step.
    pub step: u32,
    /// Bytes the chunk should have, about.
    pub chunk_bytes: usize,
    /// The node running the tracker (`name#incarnation`).
    pub tracker_node: String,
}

/// A rendered step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Rendered {
    /// The chunk's CSV rows.
    pub chunk: String,
    /// The node that rendered it.
    pub runner: String,
}

/// Renders a step on a runner.
#[drove::remote(name = "download-manager.render-step.v1")]
pub(crate) async fn render_step(ctx: Ctx, job: StepJob) -> Result<Rendered, String> {
    let runner = ctx.node().name().to_string();
    let job_runner = runner.clone();
    // CPU-bound work leaves the async threads free for the node.
    tokio::task::spawn_blocking(move || render(&job, &job_runner))
        .await
        .map_err(|e| format!("rendering failed: {e}"))
}

/// The rows of one step, `chunk_bytes` long or a little more, then the
/// hashing rounds; also used in-process when the pool cannot be reached.
pub(crate) fn render(job: &StepJob, runner: &str) -> Rendered {
    if job.chunk_bytes > 1 << 20 {
        return Rendered {
            chunk: String::new(),
            runner: runner.to_string(),
        };
    }
    let mut out = String::with_capacity(job.chunk_bytes + 128);
    if job.step == 0 {
        out.push_str("# drove download-manager report\n");
        out.push_str(&format!("# download_id: {}\n", job.download_id));
        out.push_str(&format!("# user: {}\n", job.user));
        out.push_str("step,row,node,runner,value\n");
    }
    let mut row = 0u32;
    while out.len() < job.chunk_bytes.max(1) {
        out.push_str(&format!(
            "{},{row},{},{runner},{:016x}\n",
            job.step,
            job.tracker_node,
            rand::random::<u64>()
        ));
        row += 1;
    }
    let mut digest = Sha256::digest(out.as_bytes());
    for _ in 0..WORK_ROUNDS {
        let mut h = Sha256::new();
        h.update(digest);
        h.update(out.as_bytes());
        digest = h.finalize();
    }
    Rendered {
        chunk: out,
        runner: runner.to_string(),
    }
}
