//! [`ParentInfo`]: what a runner is told at boot through the `DROVE_PARENT`
//! environment variable (its parent, pool, id, the build, credentials),
//! and [`parent`], how the app asks whether it is a runner (Dragonfly's
//! `Parent.get/0`).

use std::net::SocketAddr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use drove_runtime::NodeId;

/// The environment variable a runner is booted with.
pub const PARENT_VAR: &str = "DROVE_PARENT";

/// The longest `DROVE_PARENT` value read (it is hex of a small JSON).
const MAX_VAR: usize = 16 * 1024;

/// Who booted this runner, and how it joins.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentInfo {
    /// The parent node (name and incarnation): the runner stops when it
    /// goes down or leaves.
    pub parent: NodeId,
    /// The parent's cluster address, the runner's seed.
    pub addr: SocketAddr,
    /// The pool the runner serves.
    pub pool: String,
    /// The runner's id in that pool.
    pub runner: u64,
    /// The node name the runner takes.
    pub name: String,
    /// The parent's build id; a runner of another build refuses to serve.
    pub build: String,
    /// The cluster cookie.
    pub cookie: String,
    /// A per-runner secret the runner's hello must carry.
    pub secret: String,
    /// The host the runner listens on (port chosen by the runner).
    pub listen_host: std::net::IpAddr,
    /// How long the runner may take to reach its parent before it exits.
    pub boot_timeout_ms: u64,
    /// How long a stopping runner waits for its calls.
    pub shutdown_timeout_ms: u64,
    /// The runner's stdin is a pipe from the parent: end of file means the
    /// parent process is gone.
    pub watch_stdin: bool,
    /// The runner takes one call (or placed child), then exits.
    pub single_use: bool,
    /// Calls and placed children the runner runs at once, at most; more
    /// are refused as busy (the pool never sends more, a hostile member
    /// might).
    pub max_concurrency: usize,
}

/// Why `DROVE_PARENT` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParentError {
    /// It is not hex of JSON describing a parent.
    #[error("DROVE_PARENT is malformed: {0}")]
    Malformed(String),
}

impl ParentInfo {
    /// The value of `DROVE_PARENT`: hex of JSON, so any shell or
    /// orchestrator passes it through unquoted.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        json.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads a `DROVE_PARENT` value.
    pub fn decode(text: &str) -> Result<Self, ParentError> {
        let bad = |why: &str| ParentError::Malformed(why.to_string());
        let text = text.trim();
        if text.len() > MAX_VAR || !text.len().is_multiple_of(2) {
            return Err(bad("not hex of a bounded length"));
        }
        let bytes = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| bad("not hex"))?;
        let info: ParentInfo =
            serde_json::from_slice(&bytes).map_err(|e| ParentError::Malformed(e.to_string()))?;
        drove_runtime::validate_name(&info.name)
            .map_err(|e| ParentError::Malformed(e.to_string()))?;
        Ok(info)
    }

    /// The node name of runner `runner` of `pool` booted by `parent`:
    /// unique in the cluster, at most 64 bytes.
    pub fn runner_name(parent: &str, pool: &str, runner: u64) -> String {
        let name = format!("{parent}.{pool}.{runner}");
        if name.len() <= 64 {
            return name;
        }
        let hash = blake3::hash(parent.as_bytes()).to_hex();
        let shorter = format!("r{}.{pool}.{runner}", &hash[..8]);
        if shorter.len() <= 64 {
            return shorter;
        }
        format!("r{}", &blake3::hash(name.as_bytes()).to_hex()[..32])
    }
}

/// This process's parent if it is a runner (booted with `DROVE_PARENT`),
/// else `None`. An app skips what a runner does not need, such as its web
/// endpoint. A malformed variable reads as an error once, at
/// [`parent_from_env`], and as `None` here.
pub fn parent() -> Option<&'static ParentInfo> {
    static PARENT: OnceLock<Option<ParentInfo>> = OnceLock::new();
    PARENT
        .get_or_init(|| parent_from_env().ok().flatten())
        .as_ref()
}

/// Reads `DROVE_PARENT`: `None` when unset.
pub fn parent_from_env() -> Result<Option<ParentInfo>, ParentError> {
    match std::env::var(PARENT_VAR) {
        Ok(value) => ParentInfo::decode(&value).map(Some),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(ParentError::Malformed("not UTF-8".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> ParentInfo {
        ParentInfo {
            parent: "n1#0000000000000007".parse().unwrap(),
            addr: "127.0.0.1:4370".parse().unwrap(),
            pool: "ffmpeg".into(),
            runner: 3,
            name: ParentInfo::runner_name("n1", "ffmpeg", 3),
            build: "abc".into(),
            cookie: "secret".into(),
            secret: "s".into(),
            listen_host: "127.0.0.1".parse().unwrap(),
            boot_timeout_ms: 1000,
            shutdown_timeout_ms: 1000,
            watch_stdin: true,
            single_use: false,
            max_concurrency: 2,
        }
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let i = info();
        assert_eq!(ParentInfo::decode(&i.encode()), Ok(i));
        for bad in ["", "zz", "abc", "7b7d"] {
            assert!(ParentInfo::decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn runner_names_fit_a_node_name() {
        assert_eq!(ParentInfo::runner_name("n1", "ffmpeg", 3), "n1.ffmpeg.3");
        let long = ParentInfo::runner_name(&"n".repeat(64), &"p".repeat(40), u64::MAX);
        assert!(drove_runtime::validate_name(&long).is_ok(), "{long}");
    }
}
