//! The application's operations, independent of HTTP: start a download,
//! read it, read its file, clear it.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use drove::runtime::Handle;
use drove::supervisor::{ChildSpec, SupervisorError};
use drove::Drove;

use crate::download::{self, Download, Manifest, State};
use crate::expiry::forget;
use crate::share::{self, Held};
use crate::tracker::{Tracker, TrackerArgs, TrackerMsg};

/// How long a start waits for the reports it cleared to leave the cache:
/// the cache's shadow grace, its next tidy round, and a delta.
const ROOM_WAIT: Duration = Duration::from_secs(3);

/// How downloads are produced (the same on every node).
#[derive(Clone, Debug)]
pub(crate) struct AppConfig {
    /// Steps (chunks) per file.
    pub steps: u32,
    /// Time per step, ms.
    pub step_ms: u64,
    /// Bytes per chunk.
    pub chunk_bytes: usize,
    /// How long a ready report stays unfetched, ms.
    pub report_ttl_ms: u64,
    /// Downloads, running or ready, one client address may hold.
    pub reports_per_client: usize,
}

/// Why an operation failed; each maps to an HTTP status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    /// The user already has a download.
    #[error("a download is already in progress")]
    InProgress(Box<Download>),
    /// The user has no download.
    #[error("no download")]
    NotFound,
    /// The download is not ready yet.
    #[error("the file is not ready yet")]
    NotReady,
    /// This client address holds its whole share of running downloads.
    #[error("too many downloads running from this address")]
    ShareTaken,
    /// The cluster could not take the request (no quorum, no node for the
    /// tracker type, a node unreachable).
    #[error("cannot start the download: {0}")]
    Unavailable(String),
    /// Stored data is missing or does not check out.
    #[error("stored file is damaged: {0}")]
    Damaged(String),
}

/// The application on one node.
#[derive(Clone)]
pub(crate) struct App {
    /// The drove node and its services.
    pub drove: Drove,
    /// Download settings.
    pub config: AppConfig,
}

impl App {
    /// The user's download, if any.
    /// The user's download record, if there is a valid one.
    pub(crate) fn current(&self, user: &str) -> Option<Download> {
        let d = self
            .drove
            .cache()
            .get::<Download>(&download::download_key(user))
            .ok()
            .flatten()?;
        match d.validate() {
            Ok(()) if d.user == user => Some(d),
            Ok(()) => {
                tracing::warn!(%user, owner = %d.user, "ignoring a download record of another user");
                None
            }
            Err(reason) => {
                tracing::warn!(%user, %reason, "ignoring an invalid download record");
                None
            }
        }
    }

    /// Starts a download for `user`: stores it (one per user), then starts
    /// its tracker where placement puts it.
    pub(crate) async fn start(&self, user: &str, client: IpAddr) -> Result<Download, AppError> {
        if let Some(d) = self.current(user) {
            return Err(AppError::InProgress(Box::new(d)));
        }
        self.make_room(client).await?;
        let id = format!("{:012x}", rand::random::<u64>() >> 16);
        let mut d = Download {
            id: id.clone(),
            user: user.to_string(),
            state: State::Pending,
            progress: 0,
            tracker_node: None,
            step_runner: None,
            file_url: None,
            error: None,
            client: Some(client.to_string()),
            created_ms: self.drove.cache().now_ms(),
        };
        let key = download::download_key(user);
        let stored = self
            .drove
            .cache()
            .put_new(&key, &d, Some(download::RECORD_TTL))
            .map_err(|e| AppError::Unavailable(e.to_string()))?;
        if !stored {
            tracing::debug!(%user, download = %id, "another download of this user is stored");
            let current = self.current(user).unwrap_or_else(|| d.clone());
            return Err(AppError::InProgress(Box::new(current)));
        }
        let args = TrackerArgs {
            user: user.to_string(),
            download_id: id.clone(),
            steps: self.config.steps,
            step_ms: self.config.step_ms,
            chunk_bytes: self.config.chunk_bytes,
            expire_ms: self.config.report_ttl_ms,
        };
        let spec = ChildSpec::of::<Tracker>(args)
            .transient()
            .id(download::tracker_id(user, &id))
            .name(download::tracker_name(user));
        match self.drove.supervisor().start_child(spec).await {
            Ok(handle) => {
                d.tracker_node = Some(handle.node().name.clone());
                Ok(d)
            }
            Err(SupervisorError::NameHeld { owner, .. }) => {
                // Another request of this user won: its tracker holds the
                // user's name, and says which download it runs.
                let _ = self.drove.cache().retract(&key);
                tracing::debug!(%user, download = %id, "another tracker of this user holds the name");
                let winner: Handle<TrackerMsg> = Handle::from_addr(owner);
                self.drove
                    .node()
                    .call(&winner, TrackerMsg::Describe, Duration::from_secs(5))
                    .await
                    .map(|other| Err(AppError::InProgress(Box::new(other))))
                    .unwrap_or_else(|e| Err(AppError::Unavailable(e.to_string())))
            }
            Err(e) => {
                // Withdraw our record, so no download shows that has no
                // tracker.
                let _ = self.drove.cache().retract(&key);
                Err(AppError::Unavailable(e.to_string()))
            }
        }
    }

    /// Makes room for one more download of `client` (see `share`): past
    /// its share, its own oldest ready report is cleared; then, while the
    /// cache has no room for another file, the heaviest client's oldest
    /// ready report, and waits (a moment) until the room is there.
    async fn make_room(&self, client: IpAddr) -> Result<(), AppError> {
        let cache = self.drove.cache();
        let mut downloads: Vec<Download> = cache
            .keys()
            .iter()
            .filter(|k| k.starts_with(download::DOWNLOAD_PREFIX))
            .filter_map(|k| cache.get::<Download>(k).ok().flatten())
            .filter(|d| d.validate().is_ok())
            .collect();
        let mut held: Vec<Held> = downloads
            .iter()
            .map(|d| Held {
                client: d.client.clone(),
                ready: d.state == State::Ready,
                created_ms: d.created_ms,
            })
            .collect();
        match share::over_share(&held, &client.to_string(), self.config.reports_per_client) {
            Err(share::ShareTaken) => return Err(AppError::ShareTaken),
            Ok(Some(i)) => {
                held.remove(i);
                self.clear_unfetched(downloads.remove(i), "its client's share is taken");
            }
            Ok(None) => {}
        }
        // What is cleared leaves the cache's count only once its writer has
        // dropped it (after the cache's shadow grace): what to clear is
        // decided on the live bytes, so copies still waiting out that grace
        // are not taken for held reports (and someone else's cleared for
        // them); the start then waits until the write fits.
        let need = self.file_bytes();
        let mut used = cache.live_bytes();
        while cache.max_bytes().saturating_sub(used) < need {
            let Some(i) = share::heaviest_oldest(&held) else {
                break;
            };
            held.remove(i);
            let freed = self.clear_unfetched(downloads.remove(i), "the cache is full");
            used = used.saturating_sub(freed);
        }
        let fits = cache.max_bytes().saturating_sub(used) >= need;
        let room = || cache.max_bytes().saturating_sub(cache.bytes()) >= need;
        let deadline = Instant::now() + ROOM_WAIT;
        while fits && !room() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Clears a ready report nobody fetched; returns the bytes it held.
    fn clear_unfetched(&self, d: Download, why: &str) -> usize {
        let bytes = self.held_bytes(&d);
        forget(
            self.drove.cache(),
            self.drove.pubsub(),
            &d,
            self.config.steps,
        );
        tracing::info!(download = %d.id, user = %d.user, bytes, "{why}: an unfetched report cleared");
        bytes
    }

    /// About how many bytes one file takes in the cache.
    fn file_bytes(&self) -> usize {
        let steps = self.config.steps as usize;
        steps * (self.config.chunk_bytes + self.config.chunk_bytes / 8 + 128) + 1024
    }

    /// The bytes a download's record and file take in the cache here.
    fn held_bytes(&self, d: &Download) -> usize {
        let cache = self.drove.cache();
        let entry = |k: String| cache.entry(&k).map_or(0, |e| k.len() + e.json.len());
        (0..self.config.steps)
            .map(|n| entry(download::chunk_key(&d.id, n)))
            .sum::<usize>()
            + entry(download::manifest_key(&d.id))
            + entry(download::download_key(&d.user))
    }

    /// The ready file of the user's download, checked against its manifest.
    pub(crate) fn file(&self, user: &str) -> Result<(Download, Manifest, Vec<u8>), AppError> {
        let d = self.current(user).ok_or(AppError::NotFound)?;
        if d.state != State::Ready {
            return Err(AppError::NotReady);
        }
        let cache = self.drove.cache();
        let manifest: Manifest = cache
            .get(&download::manifest_key(&d.id))
            .map_err(|e| AppError::Damaged(e.to_string()))?
            .ok_or_else(|| AppError::Damaged("no manifest".into()))?;
        manifest.validate().map_err(AppError::Damaged)?;
        let mut body = Vec::with_capacity(manifest.size as usize);
        for n in 0..manifest.chunks {
            let chunk: String = cache
                .get(&download::chunk_key(&d.id, n))
                .map_err(|e| AppError::Damaged(e.to_string()))?
                .ok_or_else(|| AppError::Damaged(format!("chunk {n} is missing")))?;
            body.extend_from_slice(chunk.as_bytes());
            if body.len() as u64 > manifest.size {
                return Err(AppError::Damaged(
                    "chunks larger than the manifest says".into(),
                ));
            }
        }
        let sha: String = Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if sha != manifest.sha256 {
            return Err(AppError::Damaged("checksum mismatch".into()));
        }
        Ok((d, manifest, body))
    }

    /// Clears the user's download: stops its tracker if it still runs,
    /// forgets its record, drops the file, tells the user's pages.
    pub(crate) async fn clear(&self, user: &str) -> Result<(), AppError> {
        let d = self.current(user).ok_or(AppError::NotFound)?;
        let child = download::tracker_id(user, &d.id);
        match self.drove.supervisor().terminate_child(&child).await {
            Ok(()) | Err(SupervisorError::NoSuchChild(_)) => {}
            Err(e) => tracing::warn!(%child, error = %e, "could not stop the tracker"),
        }
        // A tracker in the middle of a step may write once more: wait
        // until its name is gone with it.
        let deadline = Instant::now() + Duration::from_secs(2);
        let name = download::tracker_name(user);
        while self.drove.registry().lookup(&name).is_some() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        forget(
            self.drove.cache(),
            self.drove.pubsub(),
            &d,
            self.config.steps,
        );
        Ok(())
    }
}
