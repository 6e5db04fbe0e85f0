//! Options: the store's address ([`StoreUrl`]), pipelines
//! ([`PipelineConfig`], also parsed from `--pipeline` specs) and the
//! node's job settings ([`JobsConfig`]).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::backoff::Backoff;

/// Where jobs are kept: `redis://HOST:PORT/DB` or `sqlite:PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StoreUrl {
    /// A Redis server (the cluster-wide store).
    Redis(String),
    /// A SQLite file (one machine; nodes on it share the file).
    Sqlite(PathBuf),
}

impl Default for StoreUrl {
    fn default() -> Self {
        StoreUrl::Sqlite(PathBuf::from("drove-jobs.sqlite3"))
    }
}

impl FromStr for StoreUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.starts_with("redis://") || s.starts_with("rediss://") {
            Ok(StoreUrl::Redis(s.to_owned()))
        } else if let Some(path) = s.strip_prefix("sqlite:") {
            if path.is_empty() {
                return Err("sqlite: needs a path (sqlite:jobs.sqlite3)".into());
            }
            Ok(StoreUrl::Sqlite(PathBuf::from(path)))
        } else {
            Err(format!(
                "job store {s:?}: expected redis://HOST:PORT/DB or sqlite:PATH"
            ))
        }
    }
}

impl TryFrom<String> for StoreUrl {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<StoreUrl> for String {
    fn from(url: StoreUrl) -> String {
        url.to_string()
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Redis(url) => f.write_str(url),
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
        }
    }
}

/// A rate limit as configured: `count` jobs per `scale_ms`, shared by
/// pipelines with one `key` (by default the pipeline's own name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Jobs per window.
    pub count: u32,
    /// The window, in ms.
    pub scale_ms: u64,
    /// The shared key, if not the pipeline's.
    #[serde(default)]
    pub key: Option<String>,
}

/// One pipeline on a node, as Flume's: it pulls from `queue`, never
/// more than `max_demand` jobs at a time, and hands batch workers up to
/// `batch_size` jobs at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// The pipeline's name.
    pub name: String,
    /// The queue it pulls from.
    pub queue: String,
    /// Jobs in flight on this node at most.
    #[serde(default = "default_demand")]
    pub max_demand: u32,
    /// Jobs per batch-worker call.
    #[serde(default = "default_batch")]
    pub batch_size: u32,
    /// The rate limit, if any.
    #[serde(default)]
    pub rate: Option<RateConfig>,
}

fn default_demand() -> u32 {
    10
}

fn default_batch() -> u32 {
    1
}

/// A refused pipeline spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pipeline {spec:?}: {reason}")]
pub struct PipelineSpecError {
    /// The spec.
    pub spec: String,
    /// What is wrong.
    pub reason: String,
}

impl PipelineConfig {
    /// A pipeline `name` on `queue` with default demand (10) and no
    /// batching or rate limit.
    pub fn new(name: impl Into<String>, queue: impl Into<String>) -> PipelineConfig {
        PipelineConfig {
            name: name.into(),
            queue: queue.into(),
            max_demand: default_demand(),
            batch_size: default_batch(),
            rate: None,
        }
    }

    /// The pipeline every node has: `default` on queue `default`.
    pub fn default_pipeline() -> PipelineConfig {
        PipelineConfig::new("default", "default")
    }

    /// The key the rate limit counts under.
    pub fn rate_key(&self) -> Option<String> {
        let rate = self.rate.as_ref()?;
        Some(
            rate.key
                .clone()
                .unwrap_or_else(|| format!("pipeline:{}", self.name)),
        )
    }

    /// Checks the numbers.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.queue.is_empty() {
            return Err("name and queue must not be empty".into());
        }
        if !(1..=100_000).contains(&self.max_demand) {
            return Err("max_demand must be 1 to 100000".into());
        }
        if !(1..=10_000).contains(&self.batch_size) {
            return Err("batch must be 1 to 10000".into());
        }
        if let Some(rate) = &self.rate {
            if rate.count == 0 || rate.scale_ms == 0 {
                return Err("rate must be COUNT/MS, both above 0".into());
            }
        }
        Ok(())
    }
}

impl FromStr for PipelineConfig {
    type Err = PipelineSpecError;

    /// `NAME:queue=Q,max_demand=N,batch=B,rate=COUNT/MS,rate_key=K`
    /// (everything after the name optional; the queue defaults to the
    /// name).
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let fail = |reason: String| PipelineSpecError {
            spec: spec.to_owned(),
            reason,
        };
        let (name, options) = spec.split_once(':').unwrap_or((spec, ""));
        let mut p = PipelineConfig::new(name, name);
        let mut rate_key = None;
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| fail(format!("{option:?} is not KEY=VALUE")))?;
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|e| fail(format!("{key}={v}: {e}")))
            };
            match key {
                "queue" => p.queue = value.to_owned(),
                "max_demand" => {
                    p.max_demand = u32::try_from(number(value)?).map_err(|e| fail(e.to_string()))?
                }
                "batch" | "batch_size" => {
                    p.batch_size = u32::try_from(number(value)?).map_err(|e| fail(e.to_string()))?
                }
                "rate" => {
                    let (count, ms) = value
                        .split_once('/')
                        .ok_or_else(|| fail(format!("rate={value}: expected COUNT/MS")))?;
                    p.rate = Some(RateConfig {
                        count: u32::try_from(number(count)?).map_err(|e| fail(e.to_string()))?,
                        scale_ms: number(ms)?,
                        key: None,
                    });
                }
                "rate_key" => rate_key = Some(value.to_owned()),
                other => return Err(fail(format!("unknown option {other:?}"))),
            }
        }
        match (&mut p.rate, rate_key) {
            (Some(rate), key) => rate.key = key,
            (None, Some(_)) => return Err(fail("rate_key needs rate=COUNT/MS".into())),
            (None, None) => {}
        }
        p.validate().map_err(fail)?;
        Ok(p)
    }
}

/// A cron schedule as configured (TOML `[[jobs.cron]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CronConfig {
    /// The schedule's name (one job per name and tick, cluster-wide).
    pub name: String,
    /// Five fields (minute first) or six (seconds first).
    pub schedule: String,
    /// The queue.
    pub queue: String,
    /// The worker's name.
    pub worker: String,
    /// The args.
    #[serde(default)]
    pub args: serde_json::Value,
}

/// A node's job settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// The store.
    pub store: StoreUrl,
    /// Key prefix in Redis.
    pub namespace: String,
    /// Pipelines besides `default` (which always exists).
    pub pipelines: Vec<PipelineConfig>,
    /// Cron schedules.
    pub cron: Vec<CronConfig>,
    /// Retries.
    pub backoff: Backoff,
    /// How long a fetched job is held without renewal before any node
    /// may take it back (the backstop for a node cut off but not
    /// declared down), in ms.
    pub lease_ms: u64,
    /// How often held jobs are renewed (and cancelled ones noticed), ms.
    pub heartbeat_ms: u64,
    /// How often an idle pipeline looks for due jobs, in ms.
    pub poll_ms: u64,
    /// The largest args, in bytes.
    pub max_args_bytes: usize,
    /// How long completed and cancelled jobs are kept, in ms.
    pub keep_finished_ms: u64,
    /// How long dead jobs are kept, in ms.
    pub keep_dead_ms: u64,
    /// How long a stopping node waits for its running jobs, in ms.
    pub shutdown_ms: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        JobsConfig {
            store: StoreUrl::default(),
            namespace: "drove".to_owned(),
            pipelines: Vec::new(),
            cron: Vec::new(),
            backoff: Backoff::default(),
            lease_ms: 30_000,
            heartbeat_ms: 500,
            poll_ms: 20,
            max_args_bytes: 1 << 20,
            keep_finished_ms: 3_600_000,
            keep_dead_ms: 7 * 86_400_000,
            shutdown_ms: 10_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_specs_parse() {
        let p: PipelineConfig = "mail:queue=email,max_demand=50,batch=5,rate=100/1000,rate_key=e"
            .parse()
            .unwrap();
        assert_eq!(p.name, "mail");
        assert_eq!(p.queue, "email");
        assert_eq!((p.max_demand, p.batch_size), (50, 5));
        assert_eq!(p.rate_key().as_deref(), Some("e"));
        let p: PipelineConfig = "bulk".parse().unwrap();
        assert_eq!(
            (p.queue.as_str(), p.max_demand, p.rate_key()),
            ("bulk", 10, None)
        );
        let p: PipelineConfig = "r:rate=5/100".parse().unwrap();
        assert_eq!(p.rate_key().as_deref(), Some("pipeline:r"));
        for bad in [
            "x:max_demand=0",
            "x:rate=5",
            "x:rate_key=k",
            "x:color=red",
            "x:batch=-1",
            ":queue=q",
        ] {
            assert!(bad.parse::<PipelineConfig>().is_err(), "{bad}");
        }
    }

    #[test]
    fn store_urls_parse() {
        assert_eq!(
            "redis://127.0.0.1:6379/0".parse::<StoreUrl>(),
            Ok(StoreUrl::Redis("redis://127.0.0.1:6379/0".into()))
        );
        assert_eq!(
            "sqlite:/tmp/j.db".parse::<StoreUrl>(),
            Ok(StoreUrl::Sqlite("/tmp/j.db".into()))
        );
        assert!("sqlite:".parse::<StoreUrl>().is_err());
        assert!("mysql://x".parse::<StoreUrl>().is_err());
    }
}
