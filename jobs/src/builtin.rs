//! The built-in workers, for black-box tests and benchmarks:
//! `drove.noop`, `drove.sleep {"ms"}` and `drove.fail {"times"}`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::worker::{JobCtx, JobError, Worker, Workers};

/// Does nothing (`drove.noop`, any args).
#[derive(Debug, Clone, Copy)]
pub struct Noop;

impl Worker for Noop {
    const NAME: &'static str = "drove.noop";
    type Args = serde_json::Value;

    async fn perform(&self, _ctx: JobCtx, _args: serde_json::Value) -> Result<(), JobError> {
        Ok(())
    }
}

/// `drove.sleep`'s arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SleepArgs {
    /// How long, in ms.
    pub ms: u64,
}

/// Sleeps `ms` (`drove.sleep`).
#[derive(Debug, Clone, Copy)]
pub struct Sleep;

impl Worker for Sleep {
    const NAME: &'static str = "drove.sleep";
    type Args = SleepArgs;

    async fn perform(&self, _ctx: JobCtx, args: SleepArgs) -> Result<(), JobError> {
        tokio::time::sleep(Duration::from_millis(args.ms)).await;
        Ok(())
    }
}

/// `drove.fail`'s arguments.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailArgs {
    /// How many first attempts fail.
    pub times: u32,
}

/// Fails its first `times` attempts, then succeeds (`drove.fail`).
#[derive(Debug, Clone, Copy)]
pub struct Fail;

impl Worker for Fail {
    const NAME: &'static str = "drove.fail";
    type Args = FailArgs;

    async fn perform(&self, ctx: JobCtx, args: FailArgs) -> Result<(), JobError> {
        if ctx.attempt <= args.times {
            return Err(JobError::retry(format!(
                "drove.fail: attempt {} of {} planned failures",
                ctx.attempt, args.times
            )));
        }
        Ok(())
    }
}

/// A worker table with the built-in workers.
pub fn builtins() -> Workers {
    let mut workers = Workers::default();
    workers.add(Noop);
    workers.add(Sleep);
    workers.add(Fail);
    workers
}
