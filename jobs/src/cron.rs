//! Cron: a schedule that enqueues one job per tick, cluster-wide. Every
//! node runs the schedule and enqueues each tick as a unique job keyed
//! by the schedule's name and the tick's time, so the store keeps exactly
//! one per tick however many nodes are up, and a tick still fires while
//! any node is.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::engine::{now_ms, Engine};
use crate::job::{Unique, UniqueHold};
use crate::spec::JobSpec;

/// How long a tick's key is held: longer than any node can lag.
const TICK_KEY_MS: u64 = 86_400_000;

/// A job enqueued on a schedule.
#[derive(Debug, Clone)]
pub struct CronJob {
    name: String,
    schedule: cron::Schedule,
    spec: JobSpec,
}

/// A refused cron expression.
#[derive(Debug, thiserror::Error)]
#[error("cron {name:?}: bad schedule {expr:?}: {reason}")]
pub struct CronError {
    /// The schedule's name.
    pub name: String,
    /// The expression.
    pub expr: String,
    /// Why.
    pub reason: String,
}

impl CronJob {
    /// `spec` enqueued at every tick of `expr`: standard five fields
    /// (`*/5 * * * *`, minute first) or six with seconds first
    /// (`*/2 * * * * *`).
    pub fn new(name: impl Into<String>, expr: &str, spec: JobSpec) -> Result<CronJob, CronError> {
        let name = name.into();
        let fields = expr.split_whitespace().count();
        let full = if fields == 5 {
            format!("0 {expr}")
        } else {
            expr.to_owned()
        };
        let schedule = cron::Schedule::from_str(&full).map_err(|e| CronError {
            name: name.clone(),
            expr: expr.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(CronJob {
            name,
            schedule,
            spec,
        })
    }

    /// The schedule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn next_after(&self, ms: u64) -> Option<u64> {
        let at = DateTime::<Utc>::from_timestamp_millis(i64::try_from(ms).ok()?)?;
        let next = self.schedule.after(&at).next()?;
        u64::try_from(next.timestamp_millis()).ok()
    }
}

/// Runs `job`'s schedule on this node until the engine is gone.
pub(crate) async fn run(engine: std::sync::Weak<Engine>, job: CronJob) {
    let mut after = now_ms();
    loop {
        let Some(tick) = job.next_after(after) else {
            tracing::warn!(cron = %job.name, "schedule has no next tick");
            return;
        };
        let wait = tick.saturating_sub(now_ms());
        tokio::time::sleep(Duration::from_millis(wait)).await;
        let Some(engine) = engine.upgrade() else {
            return;
        };
        enqueue_tick(&engine, &job, tick).await;
        after = tick;
    }
}

async fn enqueue_tick(engine: &Arc<Engine>, job: &CronJob, tick: u64) {
    let new = job.spec.to_new_job(
        tick,
        engine.config.backoff.max_retries,
        engine.config.max_args_bytes,
    );
    let mut new = match new {
        Ok(new) => new,
        Err(e) => {
            tracing::error!(cron = %job.name, error = %e, "cron job refused");
            return;
        }
    };
    new.unique = Some(Unique {
        key: format!("cron:{}:{tick}", job.name),
        period_ms: TICK_KEY_MS,
        // One enqueue per tick across the cluster, cancelled or not.
        hold: UniqueHold::Always,
    });
    // A store outage at the tick is retried briefly; a later tick is the
    // next chance after that.
    for wait in [50u64, 200, 1000] {
        match engine
            .store
            .enqueue(std::slice::from_ref(&new), now_ms())
            .await
        {
            Ok(answers) => {
                if answers.first().is_some_and(|a| !a.duplicate) {
                    tracing::info!(cron = %job.name, tick, "cron tick enqueued");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(cron = %job.name, error = %e, "cron enqueue failed");
                tokio::time::sleep(Duration::from_millis(wait)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_field_schedules() {
        let spec = JobSpec::raw("q", "w", serde_json::json!(null));
        let every_min = CronJob::new("m", "* * * * *", spec.clone()).unwrap();
        assert_eq!(every_min.next_after(60_000), Some(120_000));
        let every_2s = CronJob::new("s", "*/2 * * * * *", spec.clone()).unwrap();
        assert_eq!(every_2s.next_after(1_000), Some(2_000));
        assert_eq!(every_2s.next_after(2_000), Some(4_000));
        assert!(CronJob::new("bad", "every day", spec).is_err());
    }
}
