//! The cache API and its housekeeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use drove_replication::{KeyPage, Loss, Lost, Replicated, ReplicationConfig, SchemaReplica};
use drove_runtime::{Node, NodeId, SpawnError};

use crate::schema::{
    adoptable, holds_a_copy, latest, orphaned, tidy, visible, weight, CacheData, CacheSchema,
    CacheValue, Tidy,
};
use crate::tidy_queue::TidyQueue;

/// Longest accepted key, in bytes.
pub const MAX_KEY_LEN: usize = 1024;

/// Largest accepted value, in bytes of JSON: every node holds a copy.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

/// How often each node tidies its own slots (expired, shadowed, deleted).
const TIDY_INTERVAL: Duration = Duration::from_millis(100);

/// Keys looked at per hold of the replica's lock in a tidy round, so reads
/// and writes wait for at most one batch.
const TIDY_BATCH: usize = 256;

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// An empty or overlong key.
    #[error("invalid key: must be 1 to {MAX_KEY_LEN} bytes")]
    InvalidKey,
    /// A value over [`MAX_VALUE_LEN`] bytes of JSON.
    #[error("value too large: {0} bytes of JSON, at most {MAX_VALUE_LEN}")]
    TooLarge(usize),
    /// The write would take the cache past its byte cap on this node
    /// ([`CacheConfig::max_bytes`]). Nothing was written.
    #[error("cache full: {used} bytes held, this write needs {needed} more, the cap is {max}")]
    Full {
        /// Bytes the cache holds on this node.
        used: usize,
        /// Bytes the write adds.
        needed: usize,
        /// The cap.
        max: usize,
    },
    /// A value that does not (de)serialize as the type asked for.
    #[error("value does not (de)serialize as the type asked for")]
    Value(#[source] serde_json::Error),
    /// The service could not be started.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

/// The default cap on the bytes the cache holds on one node.
pub const DEFAULT_MAX_BYTES: usize = 512 << 20;

/// Settings.
#[derive(Clone, Debug)]
pub struct CacheConfig {
    /// Added to this node's wall clock, to test clock skew.
    pub clock_offset_ms: i64,
    /// The bytes (keys, values as JSON, writers' names, over every node's
    /// copies) this node's cache may hold: a write that would pass it is
    /// refused with [`CacheError::Full`]. Copies that arrive from peers and
    /// copies adopted from a departed node are never refused (refusing
    /// them would lose data), so a node can go past it when its peers
    /// have a larger cap.
    pub max_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            clock_offset_ms: 0,
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// One entry as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// The value, JSON text.
    pub json: String,
    /// Its deadline in cluster time (ms since the Unix epoch), if any.
    pub expires_at_ms: Option<u64>,
    /// The node whose write this is.
    pub written_by: String,
}

/// The most keys one [`Cache::page`] returns.
pub const MAX_PAGE: usize = 500;

/// A key in [`Cache::page`]: its size and deadline, not its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    /// The key.
    pub key: String,
    /// Bytes of its value's JSON text.
    pub bytes: usize,
    /// Its deadline in cluster time (Unix ms), if any.
    pub expires_at_ms: Option<u64>,
    /// The node whose write this is.
    pub written_by: String,
}

/// One page of [`Cache::page`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeysPage {
    /// The page's keys, in order.
    pub keys: Vec<KeyInfo>,
    /// How many keys match the search, on every page.
    pub matched: usize,
    /// Whether more keys follow the page's last.
    pub more: bool,
}

#[derive(Default)]
pub(crate) struct Counters {
    expired: AtomicU64,
    tidied: AtomicU64,
    adopted: AtomicU64,
    refused: AtomicU64,
}

/// The replicated cache on one node. Cheap to clone.
#[derive(Clone)]
pub struct Cache {
    repl: Replicated<CacheSchema>,
    tidy_queue: TidyQueue,
    counters: Arc<Counters>,
    max_bytes: usize,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("node", &self.node().id())
            .field("keys", &self.len())
            .finish()
    }
}

fn check_key(key: &str) -> Result<(), CacheError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(CacheError::InvalidKey);
    }
    Ok(())
}

fn encode<V: Serialize>(value: &V) -> Result<Arc<str>, CacheError> {
    let json = serde_json::to_string(value).map_err(CacheError::Value)?;
    if json.len() > MAX_VALUE_LEN {
        return Err(CacheError::TooLarge(json.len()));
    }
    Ok(Arc::from(json))
}

fn decode<V: DeserializeOwned>(json: &str) -> Result<V, CacheError> {
    serde_json::from_str(json).map_err(CacheError::Value)
}

impl Cache {
    /// Starts the cache on `node`.
    pub async fn start(node: &Node) -> Result<Cache, CacheError> {
        Self::start_with(node, CacheConfig::default()).await
    }

    /// Starts the cache on `node` with `config`.
    pub async fn start_with(node: &Node, config: CacheConfig) -> Result<Cache, CacheError> {
        let tidy_queue = TidyQueue::default();
        let counters: Arc<Counters> = Arc::default();
        let adopted = counters.clone();
        let repl = Replicated::builder(node)
            .config(ReplicationConfig {
                clock_offset_ms: config.clock_offset_ms,
                ..ReplicationConfig::default()
            })
            .observe(tidy_queue.clone())
            // Adopted in the step that lost them: no read finds a
            // departed writer's entries, or a copy whose keeper is gone
            // here, missing in between.
            .on_lost(move |w, lost| adopt(w, lost, &adopted))
            .start()
            .await?;
        let cache = Cache {
            repl,
            tidy_queue,
            counters,
            max_bytes: config.max_bytes,
        };
        tokio::spawn(cache.clone().tidy_loop());
        Ok(cache)
    }

    /// Cluster time now on this node, ms since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        self.repl.now().ms()
    }

    /// Writes `key`, replacing any value, expiring after `ttl` if given.
    pub fn put<V: Serialize>(
        &self,
        key: &str,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<(), CacheError> {
        check_key(key)?;
        let json = encode(value)?;
        self.repl.write(|w| {
            self.room_for(w, key, &json)?;
            let data = live(json, w.now().ms(), ttl);
            write_mine(w, key, data);
            Ok(())
        })
    }

    /// Writes `key` only if it has no live value on this node; returns
    /// whether it wrote. The check is local: two nodes that put the same
    /// new key at once both succeed, and the later write wins everywhere.
    pub fn put_new<V: Serialize>(
        &self,
        key: &str,
        value: &V,
        ttl: Option<Duration>,
    ) -> Result<bool, CacheError> {
        check_key(key)?;
        let json = encode(value)?;
        self.repl.write(|w| {
            let now = w.now().ms();
            if visible(w.replica(), key, now).is_some() {
                return Ok(false);
            }
            self.room_for(w, key, &json)?;
            write_mine(w, key, live(json, now, ttl));
            Ok(true)
        })
    }

    /// Reads, changes and writes `key` in one step on this node: `f` gets
    /// the current value (or `None`) and returns the new one. Concurrent
    /// updates on two nodes are not merged: the later write wins.
    pub fn update<V, F>(&self, key: &str, ttl: Option<Duration>, f: F) -> Result<V, CacheError>
    where
        V: Serialize + DeserializeOwned,
        F: FnOnce(Option<V>) -> V,
    {
        check_key(key)?;
        self.repl.write(|w| {
            let now = w.now().ms();
            let current = match visible(w.replica(), key, now) {
                Some((_, json, _)) => Some(decode::<V>(json)?),
                None => None,
            };
            let new = f(current);
            let json = encode(&new)?;
            self.room_for(w, key, &json)?;
            write_mine(w, key, live(json, now, ttl));
            Ok(new)
        })
    }

    /// Whether writing `json` under `key` stays within the byte cap: what
    /// it adds is its size less that of this node's copy it replaces.
    fn room_for(
        &self,
        w: &drove_replication::Writer<'_, CacheSchema>,
        key: &str,
        json: &str,
    ) -> Result<(), CacheError> {
        let replica = w.replica();
        let mine = replica
            .slots(key)
            .find(|s| s.owner == w.me())
            .and_then(|s| s.value)
            .map_or(0, |v| weight(key, v));
        let needed = (key.len() + w.me().to_string().len() + json.len()).saturating_sub(mine);
        let used = replica.bytes();
        if needed > 0 && used.saturating_add(needed) > self.max_bytes {
            self.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Err(CacheError::Full {
                used,
                needed,
                max: self.max_bytes,
            });
        }
        Ok(())
    }

    /// The bytes this node's cache may hold ([`CacheConfig::max_bytes`]).
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// The bytes this node's cache holds (see [`CacheConfig::max_bytes`]).
    pub fn bytes(&self) -> usize {
        self.repl.read(|r, _| r.bytes())
    }

    /// The bytes this node's live entries weigh: what [`bytes`](Self::bytes)
    /// comes down to once the deleted, expired and shadowed copies still
    /// counted there are tidied away (a moment after they are written over).
    /// One pass over the keys.
    pub fn live_bytes(&self) -> usize {
        let now = self.now_ms();
        self.repl.read(|r, _| {
            r.keys()
                .filter_map(|k| {
                    visible(r, k, now).and_then(|(slot, _, _)| Some(weight(k, slot.value?)))
                })
                .sum()
        })
    }

    /// The live value of `key`, read locally.
    pub fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, CacheError> {
        match self.entry(key) {
            Some(e) => decode(&e.json).map(Some),
            None => Ok(None),
        }
    }

    /// The live entry of `key` with its deadline and writer, read locally.
    pub fn entry(&self, key: &str) -> Option<EntryInfo> {
        let now = self.now_ms();
        self.repl.read(|r, _| {
            visible(r, key, now).map(|(slot, json, expires_at_ms)| EntryInfo {
                json: json.to_string(),
                expires_at_ms,
                written_by: slot.owner.name.clone(),
            })
        })
    }

    /// Deletes `key` everywhere; returns whether it had a live value here.
    pub fn delete(&self, key: &str) -> Result<bool, CacheError> {
        check_key(key)?;
        Ok(self.repl.write(|w| {
            let now = w.now().ms();
            let existed = visible(w.replica(), key, now).is_some();
            let others = w
                .replica()
                .slots(key)
                .any(|s| s.owner != w.me() && s.value.is_some());
            if others || holds_a_copy(w.replica(), w.me(), key) {
                // Older writes of other nodes stay until their owners drop
                // them: hide them behind a newer deletion. A removed copy
                // would be adopted again by peers (see `orphaned`).
                write_mine(w, key, CacheData::Deleted);
            } else if let Some(lineage) = my_lineage(w.replica(), w.me(), key) {
                w.remove(Arc::from(key), lineage);
            }
            existed
        }))
    }

    /// Withdraws this node's own write of `key`, if it has one, so that
    /// another node's older write shows again (where [`delete`](Self::delete)
    /// hides every older write). Returns whether there was one. For undoing
    /// a write that lost a race.
    pub fn retract(&self, key: &str) -> Result<bool, CacheError> {
        check_key(key)?;
        Ok(self.repl.write(|w| {
            if holds_a_copy(w.replica(), w.me(), key) {
                // Another node's write, adopted: not this node's to withdraw.
                return false;
            }
            match my_lineage(w.replica(), w.me(), key) {
                Some(lineage) => {
                    w.remove(Arc::from(key), lineage);
                    true
                }
                None => false,
            }
        }))
    }

    /// Keys with a live value, read locally.
    pub fn keys(&self) -> Vec<String> {
        let now = self.now_ms();
        let mut keys: Vec<String> = self.repl.read(|r, _| {
            r.keys()
                .filter(|k| visible(r, k, now).is_some())
                .map(|k| k.to_string())
                .collect()
        });
        keys.sort();
        keys
    }

    /// One page of the live keys that contain `search`, in key order after
    /// `after`: at most `limit` (capped at [`MAX_PAGE`]) entries with their
    /// sizes and deadlines, and how many keys match in all. One pass over
    /// the table, holding only the page.
    pub fn page(&self, search: &str, after: Option<&str>, limit: usize) -> KeysPage {
        let now = self.now_ms();
        let limit = limit.min(MAX_PAGE);
        self.repl.read(|r, _| {
            let mut page = KeyPage::new(search, after, limit);
            for k in r.keys() {
                if page.matches(k) && visible(r, k, now).is_some() {
                    page.offer(k);
                }
            }
            let page = page.finish();
            let keys = page
                .keys
                .into_iter()
                .filter_map(|key| {
                    let (slot, json, expires_at_ms) = visible(r, &key, now)?;
                    Some(KeyInfo {
                        bytes: json.len(),
                        expires_at_ms,
                        written_by: slot.owner.name.clone(),
                        key,
                    })
                })
                .collect();
            KeysPage {
                keys,
                matched: page.matched,
                more: page.more,
            }
        })
    }

    /// How many keys hold a value or a deletion here, read from a counter
    /// the table keeps (no scan, unlike [`len`](Self::len)); expired keys
    /// count until they are tidied away.
    pub fn held(&self) -> usize {
        self.repl.read(|r, _| r.live_key_count())
    }

    /// How many keys have a live value here.
    pub fn len(&self) -> usize {
        let now = self.now_ms();
        self.repl
            .read(|r, _| r.keys().filter(|k| visible(r, k, now).is_some()).count())
    }

    /// Whether no key has a live value here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The node the cache runs on.
    pub fn node(&self) -> &Node {
        self.repl.node()
    }

    /// Removes or marks this node's own slots that expired or that a newer
    /// write shadows, so each key keeps about one slot. Looks only at the
    /// keys the [`TidyQueue`] names, a batch per hold of the lock.
    fn tidy(&self) {
        let now = self.now_ms();
        let keys = self.tidy_queue.take_due(now);
        for batch in keys.chunks(TIDY_BATCH) {
            let mut later = Vec::new();
            let work: Vec<(Arc<str>, Tidy, bool)> = self.repl.read(|r, me| {
                batch
                    .iter()
                    .filter_map(|k| match tidy(r, me, k, now) {
                        Tidy::Keep => None,
                        Tidy::Later(at) => {
                            later.push((at, k.clone()));
                            None
                        }
                        t => Some((k.clone(), t, is_expired(r, me, k, now))),
                    })
                    .collect()
            });
            self.tidy_queue.later(later);
            if !work.is_empty() {
                self.apply_tidy(work, now);
            }
        }
    }

    fn apply_tidy(&self, work: Vec<(Arc<str>, Tidy, bool)>, now: u64) {
        self.repl.write(|w| {
            for (key, action, expired) in work {
                // Re-check under the write lock: a write may have come in.
                if tidy(w.replica(), w.me(), &key, now) != action {
                    continue;
                }
                tidy_slot(w, key, action);
                let counter = if expired {
                    &self.counters.expired
                } else {
                    &self.counters.tidied
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    async fn tidy_loop(self) {
        let mut tick = tokio::time::interval(TIDY_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            self.tidy();
        }
    }

    /// Prometheus text: entries, slots, replication and housekeeping.
    pub fn metrics_text(&self) -> String {
        let node = self.repl.node().name().to_string();
        let m = self.repl.stats();
        let (entries, slots, tombstones) = self
            .repl
            .read(|r, _| (r.live_key_count(), r.live_slot_count(), r.tombstone_count()));
        let rows: [drove_runtime::metrics::Sample<'_>; 11] = [
            (
                "drove_cache_entries",
                "gauge",
                "Keys with a live slot on this node (an expired or deleted key counts until its writer tidies it, within 100 ms).",
                entries as u64,
            ),
            (
                "drove_cache_tidy_pending",
                "gauge",
                "Keys waiting for this node's tidy: due ones and those with a future deadline.",
                self.tidy_queue.len() as u64,
            ),
            (
                "drove_cache_slots",
                "gauge",
                "Slots held in this replica (each node's latest write of a key: a value or a deletion marker).",
                slots as u64,
            ),
            (
                "drove_cache_tombstones",
                "gauge",
                "Tombstones held.",
                tombstones as u64,
            ),
            (
                "drove_cache_deltas_sent_total",
                "counter",
                "Delta messages sent to peers.",
                m.deltas_sent,
            ),
            (
                "drove_cache_expired_total",
                "counter",
                "Entries this node removed when they expired.",
                self.counters.expired.load(Ordering::Relaxed),
            ),
            (
                "drove_cache_adopted_total",
                "counter",
                "Entries this node took over: a departed node's, or copies a peer dropped whose keeper is gone here.",
                self.counters.adopted.load(Ordering::Relaxed),
            ),
            (
                "drove_cache_bytes",
                "gauge",
                "Bytes the cache holds on this node (keys, values as JSON, writers), over every node's copies.",
                self.bytes() as u64,
            ),
            (
                "drove_cache_max_bytes",
                "gauge",
                "The cap on drove_cache_bytes past which this node refuses writes.",
                self.max_bytes as u64,
            ),
            (
                "drove_cache_refused_total",
                "counter",
                "Writes refused because the cache was at its byte cap.",
                self.counters.refused.load(Ordering::Relaxed),
            ),
            (
                "drove_cache_tidied_total",
                "counter",
                "Shadowed or deleted slots this node dropped.",
                self.counters.tidied.load(Ordering::Relaxed),
            ),
        ];
        drove_runtime::metrics::render_samples(&node, &rows)
    }
}

/// Does what [`tidy`] decided for this node's slot of `key`.
pub(crate) fn tidy_slot(
    w: &mut drove_replication::Writer<'_, CacheSchema>,
    key: Arc<str>,
    action: Tidy,
) {
    match action {
        Tidy::Keep | Tidy::Later(_) => {}
        Tidy::Remove(lineage) => w.remove(key, lineage),
        Tidy::MarkDeleted(lineage) => {
            let value = CacheValue {
                written: w.tick(),
                writer: Arc::from(w.me().to_string().as_str()),
                data: CacheData::Deleted,
            };
            w.put(key, Some(lineage), value);
        }
    }
}

/// Whether this node's slot is what `key` shows, and expired at `now_ms`.
fn is_expired(r: &SchemaReplica<CacheSchema>, me: &NodeId, key: &str, now_ms: u64) -> bool {
    latest(r, key).is_some_and(|l| {
        l.owner == me
            && l.value
                .is_some_and(|v| matches!(v.data, CacheData::Live { .. }) && !v.is_live_at(now_ms))
    })
}

fn live(json: Arc<str>, now_ms: u64, ttl: Option<Duration>) -> CacheData {
    CacheData::Live {
        json,
        expires_at_ms: ttl.map(|t| now_ms.saturating_add(t.as_millis() as u64)),
    }
}

fn my_lineage(
    replica: &SchemaReplica<CacheSchema>,
    me: &NodeId,
    key: &str,
) -> Option<drove_replication::Hlc> {
    replica
        .slots(key)
        .find(|s| s.owner == me && s.value.is_some())
        .map(|s| s.lineage)
}

/// Writes `data` as a new write of this node into its slot of `key`.
fn write_mine(w: &mut drove_replication::Writer<'_, CacheSchema>, key: &str, data: CacheData) {
    let value = CacheValue {
        written: w.tick(),
        writer: Arc::from(w.me().to_string().as_str()),
        data,
    };
    put_mine(w, key, value);
}

/// Slots were lost: a departed node's latest writes, or copies a peer
/// dropped whose keeper this node no longer holds. Keep them by copying
/// them, stamp and writer unchanged, into this node's own slots (those no
/// copy held here already matches). Identical copies on several nodes tidy
/// away to one.
pub(crate) fn adopt(
    w: &mut drove_replication::Writer<'_, CacheSchema>,
    lost: Lost<'_, Arc<str>, CacheValue>,
    counters: &Counters,
) {
    let adopted = match lost.cause {
        Loss::Departed => adoptable(w.replica(), lost.slots),
        Loss::Removed => orphaned(w.replica(), lost.owner, lost.slots, w.now().ms()),
    };
    let n = adopted.len();
    for (key, value) in adopted {
        put_mine(w, &key, value);
    }
    if n > 0 {
        counters.adopted.fetch_add(n as u64, Ordering::Relaxed);
        match lost.cause {
            Loss::Departed => {
                tracing::info!(entries = n, from = %lost.owner, "adopted a departed node's cache entries");
            }
            Loss::Removed => {
                tracing::debug!(entries = n, from = %lost.owner, "adopted copies a peer dropped");
            }
        }
    }
}

/// Puts `value` (a new write, or an adopted copy) into this node's slot.
fn put_mine(w: &mut drove_replication::Writer<'_, CacheSchema>, key: &str, value: CacheValue) {
    let lineage = my_lineage(w.replica(), w.me(), key);
    w.put(Arc::from(key), lineage, value);
}
