//! [`JobSpec`]: a job to enqueue, typed or by name, with its options
//! (delay, time, priority, uniqueness, retries).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::job::{NewJob, Unique, UniqueHold, MAX_PRIORITY};
use crate::worker::{BatchWorker, Worker};

/// Uniqueness as asked for: a period, and which args make a job the
/// same (all of them, or the named top-level keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UniqueBy {
    /// How long the uniqueness holds.
    pub period: Duration,
    /// Top-level keys of the args that count; `None` for the whole args.
    pub keys: Option<Vec<String>>,
    /// Which states hold the key ([`UniqueHold::Live`] by default).
    pub hold: UniqueHold,
}

/// When a job may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAt {
    /// Now.
    Now,
    /// After a delay from enqueueing.
    In(Duration),
    /// At a time.
    At(SystemTime),
    /// At a time in Unix ms (any u64: a time given over the network need
    /// not fit a `SystemTime`).
    AtMs(u64),
}

/// How far ahead a job may be scheduled, and the longest unique period:
/// ten years, in ms. Every time the stores keep stays far below 2^53, so
/// it survives a trip through a Lua number or a JSON double.
pub const MAX_AHEAD_MS: u64 = 315_576_000_000;

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct JobSpec {
    /// The queue.
    pub queue: String,
    /// The worker's name.
    pub worker: String,
    /// The args, as JSON.
    pub args: serde_json::Value,
    /// When it may run.
    pub run_at: RunAt,
    /// 0 (first) to 9.
    pub priority: u8,
    /// Uniqueness, if any.
    pub unique: Option<UniqueBy>,
    /// Retries, if not the node's default.
    pub max_retries: Option<u32>,
}

/// Why a job cannot be enqueued.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The args do not serialize to JSON.
    #[error("args do not serialize: {0}")]
    Encode(#[source] serde_json::Error),
    /// A time or period past [`MAX_AHEAD_MS`].
    #[error("{what} of {ms} ms is more than ten years ({MAX_AHEAD_MS} ms) ahead")]
    TooFar {
        /// Which: the run time or the unique period.
        what: &'static str,
        /// The value given, in ms from now.
        ms: u64,
    },
    /// The priority is out of range.
    #[error("priority {0} is out of range 0..=9")]
    Priority(u8),
    /// The args are too large.
    #[error("args of {bytes} bytes are over the limit of {limit}")]
    TooLarge {
        /// Their size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// Queue or worker name empty or too long.
    #[error("{what} must be 1 to 200 bytes")]
    Name {
        /// Which name.
        what: &'static str,
    },
    /// Unique keys given, but the args are not an object with them.
    #[error("unique key {0:?} is not a top-level key of the args")]
    UniqueKey(String),
}

fn ms_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl JobSpec {
    /// A job for worker `worker` (by name) with JSON args.
    pub fn raw(
        queue: impl Into<String>,
        worker: impl Into<String>,
        args: serde_json::Value,
    ) -> JobSpec {
        JobSpec {
            queue: queue.into(),
            worker: worker.into(),
            args,
            run_at: RunAt::Now,
            priority: 0,
            unique: None,
            max_retries: None,
        }
    }

    /// A job for worker `W`, its args checked by the compiler.
    pub fn of<W: Worker>(queue: impl Into<String>, args: &W::Args) -> Result<JobSpec, SpecError> {
        let args = serde_json::to_value(args).map_err(SpecError::Encode)?;
        Ok(JobSpec::raw(queue, W::NAME, args))
    }

    /// A job for batch worker `W`.
    pub fn of_batch<W: BatchWorker>(
        queue: impl Into<String>,
        args: &W::Args,
    ) -> Result<JobSpec, SpecError> {
        let args = serde_json::to_value(args).map_err(SpecError::Encode)?;
        Ok(JobSpec::raw(queue, W::NAME, args))
    }

    /// Runs after `delay`.
    pub fn run_in(mut self, delay: Duration) -> JobSpec {
        self.run_at = RunAt::In(delay);
        self
    }

    /// Runs at `time`.
    pub fn run_at(mut self, time: SystemTime) -> JobSpec {
        self.run_at = RunAt::At(time);
        self
    }

    /// Runs at `ms` Unix milliseconds.
    pub fn run_at_ms(mut self, ms: u64) -> JobSpec {
        self.run_at = RunAt::AtMs(ms);
        self
    }

    /// Priority 0 (first) to 9.
    pub fn priority(mut self, priority: u8) -> JobSpec {
        self.priority = priority;
        self
    }

    /// At most one job with these args (or these keys of them) per
    /// `period`: a second enqueue returns the first job.
    pub fn unique(mut self, unique: UniqueBy) -> JobSpec {
        self.unique = Some(unique);
        self
    }

    /// Retries after the first attempt before the job goes dead.
    pub fn max_retries(mut self, retries: u32) -> JobSpec {
        self.max_retries = Some(retries);
        self
    }

    /// The job as the store takes it, at `now_ms`.
    pub(crate) fn to_new_job(
        &self,
        now_ms: u64,
        default_retries: u32,
        max_args_bytes: usize,
    ) -> Result<NewJob, SpecError> {
        for (what, name) in [("queue", &self.queue), ("worker", &self.worker)] {
            if name.is_empty() || name.len() > 200 {
                return Err(SpecError::Name { what });
            }
        }
        if self.priority > MAX_PRIORITY {
            return Err(SpecError::Priority(self.priority));
        }
        let args = serde_json::to_string(&self.args).map_err(SpecError::Encode)?;
        if args.len() > max_args_bytes {
            return Err(SpecError::TooLarge {
                bytes: args.len(),
                limit: max_args_bytes,
            });
        }
        let run_at_ms = match self.run_at {
            RunAt::Now => now_ms,
            RunAt::In(delay) => {
                now_ms.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
            }
            RunAt::At(time) => ms_since_epoch(time),
            RunAt::AtMs(ms) => ms,
        };
        let ahead = run_at_ms.saturating_sub(now_ms);
        if ahead > MAX_AHEAD_MS {
            return Err(SpecError::TooFar {
                what: "the run time",
                ms: ahead,
            });
        }
        let unique = match &self.unique {
            Some(by) => {
                let period_ms = u64::try_from(by.period.as_millis()).unwrap_or(u64::MAX);
                if period_ms > MAX_AHEAD_MS {
                    return Err(SpecError::TooFar {
                        what: "the unique period",
                        ms: period_ms,
                    });
                }
                Some(Unique {
                    key: self.unique_key(by)?,
                    period_ms: period_ms.max(1),
                    hold: by.hold,
                })
            }
            None => None,
        };
        Ok(NewJob {
            queue: self.queue.clone(),
            worker: self.worker.clone(),
            args,
            priority: self.priority,
            max_retries: self.max_retries.unwrap_or(default_retries),
            run_at_ms,
            unique,
        })
    }

    /// The unique key a job from this spec holds (`None` unless
    /// [`unique`](Self::unique) was set): with
    /// [`Jobs::unique_holder`](crate::Jobs::unique_holder), how to find
    /// the job a unique spec was enqueued as.
    pub fn held_key(&self) -> Result<Option<String>, SpecError> {
        self.unique
            .as_ref()
            .map(|by| self.unique_key(by))
            .transpose()
    }

    fn unique_key(&self, by: &UniqueBy) -> Result<String, SpecError> {
        #[derive(Serialize)]
        struct Identity<'a> {
            queue: &'a str,
            worker: &'a str,
            args: Vec<(&'a str, &'a serde_json::Value)>,
            whole: Option<&'a serde_json::Value>,
        }
        let identity = match &by.keys {
            None => Identity {
                queue: &self.queue,
                worker: &self.worker,
                args: Vec::new(),
                whole: Some(&self.args),
            },
            Some(keys) => {
                let mut picked = Vec::new();
                for key in keys {
                    let value = self
                        .args
                        .get(key)
                        .ok_or_else(|| SpecError::UniqueKey(key.clone()))?;
                    picked.push((key.as_str(), value));
                }
                picked.sort_by(|a, b| a.0.cmp(b.0));
                Identity {
                    queue: &self.queue,
                    worker: &self.worker,
                    args: picked,
                    whole: None,
                }
            }
        };
        let bytes = serde_json::to_vec(&identity).map_err(SpecError::Encode)?;
        let digest = Sha256::digest(&bytes);
        Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(spec: &JobSpec) -> String {
        spec.to_new_job(0, 5, 1000).unwrap().unique.unwrap().key
    }

    #[test]
    fn times_past_ten_years_are_refused() {
        let now = 1_700_000_000_000;
        let spec = |run: RunAt| JobSpec {
            run_at: run,
            ..JobSpec::raw("q", "w", json!(1))
        };
        for far in [
            RunAt::AtMs(100_000_000_000_000_000),
            RunAt::AtMs(u64::MAX),
            RunAt::In(Duration::from_millis(MAX_AHEAD_MS + 1)),
            RunAt::In(Duration::MAX),
        ] {
            assert!(matches!(
                spec(far).to_new_job(now, 5, 1000),
                Err(SpecError::TooFar { .. })
            ));
        }
        let edge = spec(RunAt::AtMs(now + MAX_AHEAD_MS));
        assert_eq!(
            edge.to_new_job(now, 5, 1000).unwrap().run_at_ms,
            now + MAX_AHEAD_MS
        );
        // A time in the past runs now-ish, as before.
        assert!(spec(RunAt::AtMs(0)).to_new_job(now, 5, 1000).is_ok());
        let period = |ms| {
            spec(RunAt::Now).unique(UniqueBy {
                period: Duration::from_millis(ms),
                keys: None,
                hold: UniqueHold::Live,
            })
        };
        assert!(matches!(
            period(MAX_AHEAD_MS + 1).to_new_job(now, 5, 1000),
            Err(SpecError::TooFar { .. })
        ));
        assert!(period(MAX_AHEAD_MS).to_new_job(now, 5, 1000).is_ok());
    }

    #[test]
    fn unique_keys_follow_the_chosen_args() {
        let by_keys = UniqueBy {
            period: Duration::from_secs(60),
            keys: Some(vec!["user".into()]),
            hold: UniqueHold::Live,
        };
        let a = JobSpec::raw("q", "w", json!({"user": 1, "n": 1})).unique(by_keys.clone());
        let b = JobSpec::raw("q", "w", json!({"n": 2, "user": 1})).unique(by_keys.clone());
        let c = JobSpec::raw("q", "w", json!({"user": 2, "n": 1})).unique(by_keys.clone());
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        let whole = UniqueBy {
            period: Duration::from_secs(60),
            keys: None,
            hold: UniqueHold::Live,
        };
        let d = JobSpec::raw("q", "w", json!({"user": 1, "n": 1})).unique(whole.clone());
        let e = JobSpec::raw("q", "w", json!({"user": 1, "n": 2})).unique(whole.clone());
        let f = JobSpec::raw("other", "w", json!({"user": 1, "n": 1})).unique(whole);
        assert_ne!(key(&d), key(&e));
        assert_ne!(key(&d), key(&f));
        let missing = JobSpec::raw("q", "w", json!(3)).unique(by_keys);
        assert!(matches!(
            missing.to_new_job(0, 5, 1000),
            Err(SpecError::UniqueKey(_))
        ));
    }

    #[test]
    fn bad_specs_are_refused() {
        let big = JobSpec::raw("q", "w", json!("x".repeat(2000)));
        assert!(matches!(
            big.to_new_job(0, 5, 1000),
            Err(SpecError::TooLarge { .. })
        ));
        let p = JobSpec::raw("q", "w", json!(1)).priority(10);
        assert!(matches!(
            p.to_new_job(0, 5, 1000),
            Err(SpecError::Priority(10))
        ));
        let q = JobSpec::raw("", "w", json!(1));
        assert!(matches!(
            q.to_new_job(0, 5, 1000),
            Err(SpecError::Name { what: "queue" })
        ));
        let later = JobSpec::raw("q", "w", json!(1)).run_in(Duration::from_millis(250));
        assert_eq!(later.to_new_job(1000, 5, 1000).unwrap().run_at_ms, 1250);
    }
}
