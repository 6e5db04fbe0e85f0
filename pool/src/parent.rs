//! [`ParentInfo`]: what a runner is told at boot (its parent, pool, id,
//! the build, credentials), and [`parent`], how the app asks whether it is
//! a runner (Dragonfly's `Parent.get/0`).
//!
//! The credentials never travel in argv or the environment: the pool
//! writes the encoded [`ParentInfo`] to a new 0600 file ([`ParentFile`])
//! and the runner gets only its path in `DROVE_PARENT_FILE`. The runner
//! reads the file once, removes it and clears the variable, so nothing it
//! spawns inherits a way to its secrets; the pool removes a file no runner
//! took.

use std::net::SocketAddr;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use drove_runtime::NodeId;

/// The environment variable a runner is booted with: the path of its
/// parent file.
pub const PARENT_VAR: &str = "DROVE_PARENT_FILE";

/// The variable that once carried the credentials themselves: refused
/// with a clear error.
const OLD_VAR: &str = "DROVE_PARENT";

/// The longest parent file read (it is hex of a small JSON).
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
    #[error("the runner's parent file is malformed: {0}")]
    Malformed(String),
    /// The parent file cannot be read, or anyone but its owner could.
    #[error("the runner's parent file {path}: {reason}")]
    File {
        /// The path given in `DROVE_PARENT_FILE`.
        path: String,
        /// Why it is not used.
        reason: String,
    },
}

/// A parent file: written 0600 and new (never through an existing path or
/// link), removed when dropped if the runner has not removed it already.
#[derive(Debug)]
pub struct ParentFile {
    path: std::path::PathBuf,
}

impl ParentFile {
    /// Writes `info` to a new file in the temporary directory.
    pub fn write(info: &ParentInfo) -> std::io::Result<ParentFile> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path =
            std::env::temp_dir().join(format!("drove-runner-{:032x}", rand::random::<u128>()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        let file_guard = ParentFile { path };
        file.write_all(info.encode().as_bytes())?;
        Ok(file_guard)
    }

    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for ParentFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ParentInfo {
    /// The parent file's content: hex of JSON, so any shell or
    /// orchestrator passes it through unquoted.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        json.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads a parent file's content.
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

/// This process's parent if it is a runner (booted with
/// `DROVE_PARENT_FILE`), else `None`. An app skips what a runner does not
/// need, such as its web endpoint. A bad file reads as an error at
/// [`parent_from_env`], and as `None` here.
pub fn parent() -> Option<&'static ParentInfo> {
    read_once().as_ref().ok().and_then(Option::as_ref)
}

/// Reads the parent file named by `DROVE_PARENT_FILE` (once per process:
/// the file is removed as it is read): `None` when the variable is unset.
pub fn parent_from_env() -> Result<Option<ParentInfo>, ParentError> {
    read_once().clone()
}

fn read_once() -> &'static Result<Option<ParentInfo>, ParentError> {
    static PARENT: OnceLock<Result<Option<ParentInfo>, ParentError>> = OnceLock::new();
    PARENT.get_or_init(read_parent_file)
}

fn read_parent_file() -> Result<Option<ParentInfo>, ParentError> {
    if std::env::var_os(OLD_VAR).is_some() {
        return Err(ParentError::Malformed(format!(
            "{OLD_VAR} no longer carries credentials; a pool passes {PARENT_VAR}"
        )));
    }
    let Some(path) = std::env::var_os(PARENT_VAR) else {
        return Ok(None);
    };
    // What this process spawns must not find the way to its secrets.
    std::env::remove_var(PARENT_VAR);
    let path = std::path::PathBuf::from(path);
    let refuse = |reason: String| ParentError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = read_private(&path).map_err(refuse);
    let _ = std::fs::remove_file(&path);
    ParentInfo::decode(&text?).map(Some)
}

/// The file's text, if it is a regular file of this user that no one else
/// may read, of a bounded size.
fn read_private(path: &std::path::Path) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "mode {:o}: others may read it",
            meta.mode() & 0o777
        ));
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err("owned by another user".into());
    }
    if meta.len() > MAX_VAR as u64 {
        return Err("too large".into());
    }
    std::fs::read_to_string(path).map_err(|e| e.to_string())
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
    fn a_parent_file_is_private_and_goes_away() {
        use std::os::unix::fs::PermissionsExt;
        let file = ParentFile::write(&info()).unwrap();
        let meta = std::fs::metadata(file.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(
            ParentInfo::decode(&read_private(file.path()).unwrap()),
            Ok(info())
        );
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(read_private(file.path()).is_err(), "readable by others");
        let path = file.path().to_path_buf();
        drop(file);
        assert!(!path.exists());
    }

    #[test]
    fn runner_names_fit_a_node_name() {
        assert_eq!(ParentInfo::runner_name("n1", "ffmpeg", 3), "n1.ffmpeg.3");
        let long = ParentInfo::runner_name(&"n".repeat(64), &"p".repeat(40), u64::MAX);
        assert!(drove_runtime::validate_name(&long).is_ok(), "{long}");
    }
}
