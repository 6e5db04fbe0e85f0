//! [`PoolConfig`]: a pool's options as plain data (TOML `[[pools]]`, or
//! `--pool NAME:key=value,...`), with FLAME's meanings and defaults.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::PoolConfigError;

/// How a pool boots its runners.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// In this process: calls run as tasks here, with the pool's limits
    /// (FLAME's LocalBackend; for development and tests).
    #[default]
    Local,
    /// Child OS processes of this executable, on this machine.
    Process,
    /// A shell command template (`sh -c`) that boots a runner anywhere:
    /// `{env}` becomes `DROVE_PARENT_FILE='<path>'`, `{parent}` the quoted
    /// path alone, `{exe}` this executable, `{args}` this process's
    /// arguments.
    Exec(String),
}

/// A pool's options. Times are milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolConfig {
    /// The pool's name (also part of its runners' node names).
    pub name: String,
    /// Runners kept at all times (forced to 0 on a runner, so runners do
    /// not boot runners).
    pub min: usize,
    /// Runners at most, booting ones included.
    pub max: usize,
    /// Concurrent calls (and placed children) per runner.
    pub max_concurrency: usize,
    /// Each runner takes one call, then stops.
    pub single_use: bool,
    /// Default call timeout; the remote work is stopped at it.
    pub timeout_ms: u64,
    /// How long a runner may take to boot and join, and how long a caller
    /// waits for a slot.
    pub boot_timeout_ms: u64,
    /// How long a stopping runner has to finish its calls and children.
    pub shutdown_timeout_ms: u64,
    /// A runner above `min` idle this long stops.
    pub idle_ms: u64,
    /// A runner within `min` idle this long stops (and is replaced); never
    /// when absent.
    pub min_idle_ms: Option<u64>,
    /// How runners are booted.
    pub backend: BackendKind,
    /// The highest max this pool takes, here or at run time (API and
    /// dashboard included): at most [`MAX_LIMIT`].
    pub max_limit: usize,
    /// Runners booting at once at most.
    pub max_booting: usize,
}

/// The highest `max_limit` a pool may be given.
pub const MAX_LIMIT: usize = 1024;

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: String::new(),
            min: 0,
            max: 1,
            max_concurrency: 100,
            single_use: false,
            timeout_ms: 30_000,
            boot_timeout_ms: 30_000,
            shutdown_timeout_ms: 30_000,
            idle_ms: 30_000,
            min_idle_ms: None,
            backend: BackendKind::Local,
            max_limit: 64,
            max_booting: 4,
        }
    }
}

/// The longest pool name: it goes into runner node names (64 bytes).
const MAX_NAME: usize = 40;

impl PoolConfig {
    /// The defaults, named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        PoolConfig {
            name: name.into(),
            ..PoolConfig::default()
        }
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), PoolConfigError> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= MAX_NAME
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if !name_ok {
            return Err(PoolConfigError::Name(self.name.clone()));
        }
        if self.max == 0 {
            return Err(PoolConfigError::Invalid("max must be at least 1"));
        }
        if self.min > self.max {
            return Err(PoolConfigError::Invalid("min must not exceed max"));
        }
        if self.max_limit == 0 || self.max_limit > MAX_LIMIT {
            return Err(PoolConfigError::Invalid(
                "max_limit must be between 1 and 1024",
            ));
        }
        if self.max > self.max_limit {
            return Err(PoolConfigError::Invalid("max must not exceed max_limit"));
        }
        if self.max_booting == 0 || self.max_booting > 64 {
            return Err(PoolConfigError::Invalid(
                "max_booting must be between 1 and 64",
            ));
        }
        if self.max_concurrency == 0 {
            return Err(PoolConfigError::Invalid(
                "max_concurrency must be at least 1",
            ));
        }
        if self.timeout_ms == 0 || self.boot_timeout_ms == 0 {
            return Err(PoolConfigError::Invalid("timeouts must be positive"));
        }
        if matches!(&self.backend, BackendKind::Exec(t) if !t.contains("{env}") && !t.contains("{parent}"))
        {
            return Err(PoolConfigError::Invalid(
                "an exec template must pass {env} or {parent} to the runner",
            ));
        }
        Ok(())
    }

    /// [`PoolConfig::timeout_ms`] as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// [`PoolConfig::boot_timeout_ms`] as a duration.
    pub fn boot_timeout(&self) -> Duration {
        Duration::from_millis(self.boot_timeout_ms)
    }

    /// [`PoolConfig::shutdown_timeout_ms`] as a duration.
    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_millis(self.shutdown_timeout_ms)
    }
}

impl FromStr for PoolConfig {
    type Err = PoolConfigError;

    /// `NAME:min=0,max=3,max_concurrency=2,idle_ms=3000,backend=process`.
    /// Keys: min, max, max_limit, max_booting, max_concurrency, single_use, timeout_ms,
    /// boot_timeout_ms, shutdown_timeout_ms, idle_ms, min_idle_ms, backend
    /// (local, process, exec). `exec=TEMPLATE` comes last and takes the
    /// rest of the text, commas included; it implies backend=exec.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (name, rest) = text.split_once(':').unwrap_or((text, ""));
        let mut config = PoolConfig::new(name);
        let (options, template) = match rest.find("exec=") {
            Some(at) if at == 0 || rest[..at].ends_with(',') => {
                (rest[..at].trim_end_matches(','), Some(&rest[at + 5..]))
            }
            _ => (rest, None),
        };
        let mut backend = None;
        for option in options.split(',').filter(|o| !o.is_empty()) {
            let (key, value) = option
                .split_once('=')
                .ok_or_else(|| PoolConfigError::UnknownOption(option.to_string()))?;
            let bad = || PoolConfigError::BadValue {
                key: key.to_string(),
                value: value.to_string(),
            };
            let num = || value.parse::<u64>().map_err(|_| bad());
            let count = || value.parse::<usize>().map_err(|_| bad());
            match key {
                "min" => config.min = count()?,
                "max" => config.max = count()?,
                "max_concurrency" => config.max_concurrency = count()?,
                "max_limit" => config.max_limit = count()?,
                "max_booting" => config.max_booting = count()?,
                "single_use" => config.single_use = value.parse().map_err(|_| bad())?,
                "timeout_ms" => config.timeout_ms = num()?,
                "boot_timeout_ms" => config.boot_timeout_ms = num()?,
                "shutdown_timeout_ms" => config.shutdown_timeout_ms = num()?,
                "idle_ms" => config.idle_ms = num()?,
                "min_idle_ms" => config.min_idle_ms = Some(num()?),
                "backend" => backend = Some(value.to_string()),
                _ => return Err(PoolConfigError::UnknownOption(key.to_string())),
            }
        }
        config.backend = match (backend.as_deref(), template) {
            (None | Some("exec"), Some(t)) => BackendKind::Exec(t.to_string()),
            (Some("exec"), None) => {
                return Err(PoolConfigError::Invalid(
                    "backend=exec needs exec=TEMPLATE last",
                ))
            }
            (Some("local") | None, None) => BackendKind::Local,
            (Some("process"), None) => BackendKind::Process,
            (Some(other), _) => {
                return Err(PoolConfigError::BadValue {
                    key: "backend".into(),
                    value: other.to_string(),
                })
            }
        };
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_flag_form() {
        let c: PoolConfig = "ffmpeg:min=1,max=3,max_concurrency=2,idle_ms=3000,backend=process"
            .parse()
            .unwrap();
        assert_eq!(
            (c.min, c.max, c.max_concurrency, c.idle_ms),
            (1, 3, 2, 3000)
        );
        assert_eq!(c.backend, BackendKind::Process);
        assert_eq!(c.timeout_ms, 30_000);
    }

    #[test]
    fn an_exec_template_takes_the_rest() {
        let c: PoolConfig = "p:max=2,exec=env {env} {exe} {args}, with a comma"
            .parse()
            .unwrap();
        assert_eq!(
            c.backend,
            BackendKind::Exec("env {env} {exe} {args}, with a comma".into())
        );
        assert_eq!(c.max, 2);
    }

    #[test]
    fn refuses_what_does_not_make_a_pool() {
        let bad = [
            "",
            "a b:max=1",
            "p:max=0",
            "p:min=3,max=2",
            "p:max=x",
            "p:colour=red",
            "p:backend=cloud",
            "p:backend=exec",
            "p:exec=true",
            "p:max_concurrency=0",
        ];
        for text in bad {
            assert!(text.parse::<PoolConfig>().is_err(), "{text:?} parsed");
        }
    }
}
