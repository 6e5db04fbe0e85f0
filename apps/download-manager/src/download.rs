//! A download request, its file, and where they live: the download in the
//! replicated cache under the user's id, the file as chunks in the cache
//! (so any node serves it, also after its producer is gone), progress on a
//! pub/sub topic per user.

use serde::{Deserialize, Serialize};

use drove_runtime::{Message, NodeId};
use drove_supervisor::{rendezvous, Placement};

/// Where a download is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    /// Accepted, the tracker has not started work yet.
    Pending,
    /// The tracker is producing the file.
    Processing,
    /// The file is stored and can be downloaded.
    Ready,
    /// The tracker gave up.
    Error,
}

/// One user's download, as the API and the page show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Download {
    /// The download's id.
    pub id: String,
    /// The user who asked for it.
    pub user: String,
    /// Where it is.
    pub state: State,
    /// 0 to 100.
    pub progress: u8,
    /// The node running its tracker (last seen).
    pub tracker_node: Option<String>,
    /// The runner that rendered the latest step.
    #[serde(default)]
    pub step_runner: Option<String>,
    /// Where to fetch the file once ready.
    pub file_url: Option<String>,
    /// Why it failed, for `error`.
    pub error: Option<String>,
    /// The address of the client that started it, which its share of the
    /// cache counts against (see `share`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// When it was started, ms since the Unix epoch.
    #[serde(default)]
    pub created_ms: u64,
}

/// The stored file's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    /// The download.
    pub download_id: String,
    /// How many chunks.
    pub chunks: u32,
    /// Total bytes.
    pub size: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
    /// The nodes that produced parts of it, in order.
    pub nodes: Vec<String>,
}

/// The one URL a ready download's file is served at.
pub(crate) const FILE_URL: &str = "/api/downloads/current/file";

/// How long a download's record lives after its last write: an abandoned
/// download (its user never comes back) leaves nothing behind for good.
pub(crate) const RECORD_TTL: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Largest file the app serves (steps x chunk bytes stay far below).
pub(crate) const MAX_FILE_BYTES: u64 = 64 << 20;

/// Most chunks a file has (`--steps` is at most 10,000).
pub(crate) const MAX_CHUNKS: u32 = 10_000;

fn id_like(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl Download {
    /// Checks a record read back from the cache: anything a member (or an
    /// operator's admin API) stored is checked before it reaches a page.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !id_like(&self.id, 32) || !id_like(&self.user, 64) {
            return Err("bad id or user".into());
        }
        if self.progress > 100 {
            return Err(format!("progress {} is over 100", self.progress));
        }
        if self.file_url.as_deref().is_some_and(|u| u != FILE_URL) {
            return Err("the file URL is not the app's".into());
        }
        let name_ok = |n: &String| drove::runtime::validate_name(n).is_ok();
        if !self.tracker_node.as_ref().is_none_or(name_ok)
            || !self.step_runner.as_ref().is_none_or(name_ok)
        {
            return Err("bad tracker node or runner".into());
        }
        if self
            .client
            .as_ref()
            .is_some_and(|c| c.parse::<std::net::IpAddr>().is_err())
        {
            return Err("the client is not an address".into());
        }
        if self.error.as_ref().is_some_and(|e| e.len() > 1024) {
            return Err("error text too long".into());
        }
        Ok(())
    }
}

impl Manifest {
    /// Checks a manifest read back from the cache before it sizes anything.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.size > MAX_FILE_BYTES {
            return Err(format!("size {} is over {MAX_FILE_BYTES}", self.size));
        }
        if self.chunks > MAX_CHUNKS {
            return Err(format!("{} chunks is over {MAX_CHUNKS}", self.chunks));
        }
        let hex = self.sha256.len() == 64 && self.sha256.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex {
            return Err("the checksum is not SHA-256 hex".into());
        }
        if self.nodes.len() > self.chunks as usize {
            return Err("more producing nodes than chunks".into());
        }
        Ok(())
    }
}

/// What the page hears on its user's topic.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Update {
    /// The download changed.
    Changed(Download),
    /// The download was cleared (fetched or deleted).
    Cleared,
}

impl Message for Update {
    const TAG: &'static str = "download-manager.update.v1";
}

/// The prefix of every user's download key.
pub(crate) const DOWNLOAD_PREFIX: &str = "dm:download:";

/// The cache key of a user's download.
pub(crate) fn download_key(user: &str) -> String {
    format!("{DOWNLOAD_PREFIX}{user}")
}

/// The cache key of a file's manifest.
pub(crate) fn manifest_key(download_id: &str) -> String {
    format!("dm:file:{download_id}")
}

/// The cache key of one chunk of a file.
pub(crate) fn chunk_key(download_id: &str, n: u32) -> String {
    format!("dm:chunk:{download_id}:{n}")
}

/// The pub/sub topic of a user's progress.
pub(crate) fn topic(user: &str) -> String {
    format!("dm:progress:{user}")
}

/// The supervised child id of a download's tracker.
pub(crate) fn tracker_id(user: &str, download_id: &str) -> String {
    format!("download:{user}:{download_id}")
}

/// The global name of a user's running tracker.
pub(crate) fn tracker_name(user: &str) -> String {
    format!("download:{user}")
}

/// Places a user's trackers by the user, not by the download: two requests
/// of one user on two nodes then start their trackers on the same node,
/// where the second finds the user's tracker name taken at once, instead
/// of on two nodes that have not heard of each other's yet. Other children
/// are placed by their id, as usual.
pub(crate) struct ByUser;

impl Placement for ByUser {
    fn place<'a>(&self, child: &str, candidates: &'a [NodeId]) -> Option<&'a NodeId> {
        let key = match child.strip_prefix("download:") {
            Some(rest) => rest.rsplit_once(':').map_or(child, |(user, _)| user),
            None => child,
        };
        rendezvous(key, candidates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drove_runtime::Incarnation;

    #[test]
    fn a_users_trackers_go_to_one_node_and_users_spread() {
        let nodes: Vec<NodeId> = (0..3)
            .map(|i| NodeId::new(format!("n{i}"), Incarnation(i * 7 + 1)))
            .collect();
        let place = |id: &str| ByUser.place(id, &nodes).cloned();
        for user in ["u1", "u2", "u3"] {
            let first = place(&tracker_id(user, "aaa"));
            for other in ["bbb", "ccc", "ddd"] {
                assert_eq!(place(&tracker_id(user, other)), first);
            }
            assert_eq!(
                first,
                rendezvous(&tracker_name(user)["download:".len()..], &nodes).cloned()
            );
        }
        let spread: std::collections::BTreeSet<_> = (0..60)
            .filter_map(|u| place(&tracker_id(&format!("user{u}"), "x")))
            .collect();
        assert_eq!(spread.len(), 3, "users spread over every node");
        assert_eq!(
            place("singleton:x"),
            rendezvous("singleton:x", &nodes).cloned()
        );
    }
}
