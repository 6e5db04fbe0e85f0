//! A runner pool: a transcode wrapped as a remote function runs on a fresh
//! process of this same program, which joined the cluster for the call.
//! The program is its own runner: started with `DROVE_PARENT_FILE`, the builder
//! turns it into one.
//!
//! `cargo run -p drove-examples --example pool`

use drove::pool::BackendKind;
use drove::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Video {
    id: u32,
    url: String,
}

/// The expensive step, by a stable name, typed both ways.
#[drove::remote]
async fn transcode(video: Video) -> Result<String, String> {
    let path = format!("{}_720p.mp4", video.id);
    tracing::info!(url = %video.url, %path, "transcoding on a runner");
    Ok(path)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    let mut config = Config::new("pool-example");
    config.listen = "127.0.0.1:47372".parse()?;
    let ffmpeg = Pool::builder("ffmpeg")
        .max(2)
        .max_concurrency(2)
        .backend_kind(BackendKind::Process);
    let drove = Drove::builder(config).pool(ffmpeg).start().await?;
    if drove::parent().is_some() {
        // A runner: it serves calls until its pool is done with it.
        drove.run_until_signal().await?;
        return Ok(());
    }
    let pool = drove
        .pool("ffmpeg")
        .ok_or_else(|| anyhow::anyhow!("no pool"))?;
    let video = Video {
        id: 7,
        url: "https://example.com/7.mov".into(),
    };
    let path = pool.call(transcode, video).await?;
    let runner = &pool.snapshot().runners[0];
    println!(
        "{path}, made by runner {} (pid {:?})",
        runner.name, runner.pid
    );
    drove.shutdown(Shutdown::Leave).await;
    Ok(())
}
