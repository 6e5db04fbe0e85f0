//! Durable jobs through the `drove` facade: a typed worker, a delayed
//! job, and its state read back from the store. The store is SQLite
//! (`drove-jobs.sqlite3` here) unless `DROVE_JOBS` names another
//! (`DROVE_JOBS=redis://127.0.0.1:6379/0`).
//!
//! `cargo run -p drove-examples --example jobs`

use std::time::Duration;

use drove::jobs::{JobCtx, JobError, JobState, Worker};
use drove::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Resize {
    image: String,
    width: u32,
}

struct Thumbnailer;

impl Worker for Thumbnailer {
    const NAME: &'static str = "thumbnailer";
    type Args = Resize;

    async fn perform(&self, ctx: JobCtx, job: Resize) -> Result<(), JobError> {
        if job.width == 0 {
            return Err(JobError::discard("a width of 0"));
        }
        // Delivery is at least once: key side effects by the attempt.
        println!(
            "{} at {} px, key {}",
            job.image,
            job.width,
            ctx.idempotency_key()
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = Config::from_env()?;
    if config.name.is_empty() {
        config.name = "jobs-example".into();
    }
    let drove = Drove::builder(config).worker(Thumbnailer).start().await?;
    let jobs = drove
        .jobs()
        .ok_or_else(|| anyhow::anyhow!("a pool's runner runs no jobs"))?;
    let resize = Resize {
        image: "cat.png".into(),
        width: 320,
    };
    let job = jobs
        .enqueue_in("default", Duration::from_millis(200), Thumbnailer, resize)
        .await?;
    loop {
        let state = jobs.get(job.id).await?.map(|j| j.state);
        if state == Some(JobState::Completed) {
            println!("job {} completed", job.id);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drove.shutdown(Shutdown::Leave).await;
    Ok(())
}
