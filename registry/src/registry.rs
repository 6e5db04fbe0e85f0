//! The registry API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use smallvec::SmallVec;
use tokio::sync::{broadcast, mpsc};

use drove_replication::{Hlc, KeyPage, Replicated, ReplicationConfig, SchemaReplica};
use drove_runtime::{
    Actor, ActorAddr, CallError, Handle, LocalRef, Message, NameConflict, Node, ReplyValue,
    SendError, SpawnError,
};

use crate::observer::{Eviction, RegObserver, RegistryEvent};
use crate::schema::{my_slot, slot_addr, winner, RegValue, RegistrySchema};

/// Longest accepted name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// Largest accepted metadata, in bytes of JSON: metadata is replicated on
/// every node, so it is meant to be small.
pub const MAX_META_LEN: usize = 16 * 1024;

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The name is held by another registration.
    #[error("name {name:?} is taken by {owner}")]
    Taken {
        /// The name.
        name: String,
        /// Who holds it.
        owner: ActorAddr,
    },
    /// No actor holds the name.
    #[error("name {0:?} is not registered")]
    NotRegistered(String),
    /// The name is held by an actor on another node: only its node may
    /// change or drop it.
    #[error("name {name:?} belongs to {owner}, not to this node")]
    NotOwner {
        /// The name.
        name: String,
        /// Who holds it.
        owner: ActorAddr,
    },
    /// Only actors running on this node can be registered from it.
    #[error("{0} is not a live actor on this node")]
    NotLocal(ActorAddr),
    /// An empty or overlong name.
    #[error("invalid name: must be 1 to {MAX_NAME_LEN} bytes")]
    InvalidName,
    /// Metadata that does not (de)serialize.
    #[error("metadata does not (de)serialize")]
    Meta(#[source] serde_json::Error),
    /// Metadata over the size limit.
    #[error("metadata of {0} bytes is over the {MAX_META_LEN}-byte limit")]
    MetaTooLarge(usize),
    /// A cast by name failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A call by name failed.
    #[error(transparent)]
    Call(#[from] CallError),
    /// `spawn_global` could not spawn.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
}

/// One row of [`Registry::select`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The name.
    pub name: String,
    /// Its actor.
    pub addr: ActorAddr,
    /// Its metadata as JSON text.
    pub meta: Option<String>,
}

/// The most entries one [`Registry::page`] returns.
pub const MAX_PAGE: usize = 500;

/// One page of [`Registry::page`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryPage {
    /// The page's names, in order.
    pub entries: Vec<Entry>,
    /// How many names match the search, on every page.
    pub matched: usize,
    /// Whether more names follow the page's last.
    pub more: bool,
}

/// What [`Registry::spawn_global`] did.
#[derive(Debug)]
pub enum Spawned<M> {
    /// Spawned here and registered.
    New(Handle<M>),
    /// The name was already held: this is its live owner.
    Existing(Handle<M>),
}

impl<M> Spawned<M> {
    /// The handle, new or existing.
    pub fn handle(&self) -> &Handle<M> {
        match self {
            Spawned::New(h) | Spawned::Existing(h) => h,
        }
    }
}

#[derive(Default)]
struct LocalIndex {
    by_name: HashMap<Arc<str>, u64>,
    by_actor: HashMap<u64, SmallVec<[Arc<str>; 2]>>,
}

impl LocalIndex {
    fn insert(&mut self, name: Arc<str>, local: u64) {
        self.by_name.insert(name.clone(), local);
        self.by_actor.entry(local).or_default().push(name);
    }

    fn remove(&mut self, name: &str) -> Option<u64> {
        let local = self.by_name.remove(name)?;
        if let Some(names) = self.by_actor.get_mut(&local) {
            names.retain(|n| &**n != name);
            if names.is_empty() {
                self.by_actor.remove(&local);
            }
        }
        Some(local)
    }
}

struct Shared {
    node: Node,
    local: Mutex<LocalIndex>,
    events: broadcast::Sender<RegistryEvent>,
    conflicts: Arc<AtomicU64>,
    names_lost: AtomicU64,
}

/// The cluster-wide registry, as seen from one node. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    repl: Replicated<RegistrySchema>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("node", &self.node().id())
            .field("names", &self.count())
            .finish()
    }
}

enum Work {
    ActorStopped(u64),
    Evict(Eviction),
}

/// Why this node cannot change `name`: another node holds it, or nobody.
fn not_held_here(replica: &SchemaReplica<RegistrySchema>, name: &str) -> RegistryError {
    match winner(replica, name).and_then(|s| slot_addr(&s)) {
        Some(owner) => RegistryError::NotOwner {
            name: name.to_string(),
            owner,
        },
        None => RegistryError::NotRegistered(name.to_string()),
    }
}

fn check_name(name: &str) -> Result<Arc<str>, RegistryError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(RegistryError::InvalidName);
    }
    Ok(Arc::from(name))
}

impl Registry {
    /// Starts the registry on `node` with default replication settings.
    pub async fn start(node: &Node) -> Result<Registry, SpawnError> {
        Self::start_with(node, ReplicationConfig::default()).await
    }

    /// Starts the registry on `node`.
    pub async fn start_with(
        node: &Node,
        config: ReplicationConfig,
    ) -> Result<Registry, SpawnError> {
        let (events, _) = broadcast::channel(4096);
        let (work_tx, work_rx) = mpsc::unbounded_channel();
        let (evict_tx, mut evict_rx) = mpsc::unbounded_channel();
        let conflicts = Arc::new(AtomicU64::new(0));
        let observer = RegObserver {
            events: events.clone(),
            evictions: evict_tx,
            conflicts: conflicts.clone(),
        };
        let repl = Replicated::builder(node)
            .config(config)
            .observe(observer)
            .start()
            .await?;
        let registry = Registry {
            repl,
            shared: Arc::new(Shared {
                node: node.clone(),
                local: Mutex::new(LocalIndex::default()),
                events,
                conflicts,
                names_lost: AtomicU64::new(0),
            }),
        };
        let stopped = work_tx.clone();
        node.on_actor_stopped(Box::new(move |id, _reason| {
            let _ = stopped.send(Work::ActorStopped(id));
        }));
        tokio::spawn(async move {
            while let Some(e) = evict_rx.recv().await {
                if work_tx.send(Work::Evict(e)).is_err() {
                    return;
                }
            }
        });
        tokio::spawn(registry.clone().work(work_rx));
        Ok(registry)
    }

    fn local(&self) -> MutexGuard<'_, LocalIndex> {
        self.shared.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn work(self, mut rx: mpsc::UnboundedReceiver<Work>) {
        while let Some(work) = rx.recv().await {
            match work {
                Work::ActorStopped(id) => {
                    let names = {
                        let mut local = self.local();
                        let names = local.by_actor.remove(&id).unwrap_or_default();
                        for n in &names {
                            local.by_name.remove(n);
                        }
                        names
                    };
                    for name in names {
                        self.drop_my_slot(&name);
                    }
                }
                Work::Evict(e) => {
                    let Some(local) = self.local().remove(&e.name) else {
                        continue;
                    };
                    self.drop_my_slot(&e.name);
                    self.shared.names_lost.fetch_add(1, Ordering::Relaxed);
                    let notice = NameConflict {
                        name: e.name.to_string(),
                        winner: e.winner,
                        reason: e.reason.to_string(),
                    };
                    let _ = self.shared.node.notify_name_conflict(local, notice);
                }
            }
        }
    }

    fn drop_my_slot(&self, name: &Arc<str>) {
        self.repl.write(|w| {
            if let Some((lineage, _)) = my_slot(w.replica(), w.me(), name) {
                w.remove(name.clone(), lineage);
            }
        });
    }

    /// Registers `handle` (an actor on this node) under `name`. Fails with
    /// [`RegistryError::Taken`], naming the holder, if the name is held.
    /// A lookup on this node sees the name as soon as this returns.
    pub fn register<M>(&self, name: &str, handle: &Handle<M>) -> Result<(), RegistryError> {
        let key = check_name(name)?;
        let node = &self.shared.node;
        let not_local = || RegistryError::NotLocal(handle.addr().clone());
        if *handle.node() != node.id() {
            return Err(not_local());
        }
        let local = node.local_id(&handle.addr().local).ok_or_else(not_local)?;
        self.repl.write(|w| {
            if let Some(holder) = winner(w.replica(), &key).and_then(|s| slot_addr(&s)) {
                return Err(RegistryError::Taken {
                    name: name.to_string(),
                    owner: holder,
                });
            }
            w.put(key.clone(), None, RegValue { local, meta: None });
            Ok(())
        })?;
        self.local().insert(key.clone(), local);
        // The actor may have stopped before the index knew the name.
        if node.local_id(&LocalRef::Id(local)).is_none() {
            let _ = self.unregister(name);
        }
        Ok(())
    }

    /// Drops `name`, if this node holds it.
    pub fn unregister(&self, name: &str) -> Result<(), RegistryError> {
        let key = check_name(name)?;
        self.local().remove(&key);
        self.repl
            .write(|w| match my_slot(w.replica(), w.me(), &key) {
                Some((lineage, _)) => {
                    w.remove(key.clone(), lineage);
                    Ok(())
                }
                None => Err(not_held_here(w.replica(), name)),
            })
    }

    /// Where `name` is, from this node's replica (no network round trip).
    pub fn lookup(&self, name: &str) -> Option<ActorAddr> {
        self.repl
            .read(|r, _| winner(r, name).and_then(|s| slot_addr(&s)))
    }

    /// A typed handle to the actor holding `name`.
    pub fn whereis<M>(&self, name: &str) -> Option<Handle<M>> {
        self.lookup(name).map(Handle::from_addr)
    }

    /// Casts to the actor holding `name`.
    pub fn cast<M: Message>(&self, name: &str, msg: M) -> Result<(), RegistryError> {
        let h: Handle<M> = self
            .whereis(name)
            .ok_or_else(|| RegistryError::NotRegistered(name.to_string()))?;
        Ok(self.shared.node.cast(&h, msg)?)
    }

    /// Calls the actor holding `name`.
    pub async fn call<M: Message, R: ReplyValue>(
        &self,
        name: &str,
        make: impl FnOnce(drove_runtime::Reply<R>) -> M,
        timeout: Duration,
    ) -> Result<R, RegistryError> {
        let h: Handle<M> = self
            .whereis(name)
            .ok_or_else(|| RegistryError::NotRegistered(name.to_string()))?;
        Ok(self.shared.node.call(&h, make, timeout).await?)
    }

    /// Spawns `actor` here under `name`, or, if the name is held, hands
    /// back its live owner and spawns nothing.
    pub async fn spawn_global<A: Actor>(
        &self,
        name: &str,
        actor: A,
        args: A::Args,
    ) -> Result<Spawned<A::Msg>, RegistryError> {
        if let Some(h) = self.whereis(name) {
            return Ok(Spawned::Existing(h));
        }
        let handle = self.shared.node.spawn(actor, args).await?;
        match self.register(name, &handle) {
            Ok(()) => Ok(Spawned::New(handle)),
            Err(RegistryError::Taken { owner, .. }) => {
                self.shared.node.stop_local(&handle);
                Ok(Spawned::Existing(Handle::from_addr(owner)))
            }
            Err(e) => {
                self.shared.node.stop_local(&handle);
                Err(e)
            }
        }
    }

    /// Every name for which `pred(name, addr)` holds, sorted by name.
    pub fn select(&self, pred: impl Fn(&str, &ActorAddr) -> bool) -> Vec<Entry> {
        let mut out: Vec<Entry> = self.repl.read(|r, _| {
            r.keys()
                .filter_map(|k| {
                    let w = winner(r, k)?;
                    let addr = slot_addr(&w)?;
                    pred(k, &addr).then(|| Entry {
                        name: k.to_string(),
                        addr,
                        meta: w.value.and_then(|v| v.meta.as_deref().map(str::to_string)),
                    })
                })
                .collect()
        });
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One page of the names that contain `search`, in name order after
    /// `after`: at most `limit` (capped at [`MAX_PAGE`]) entries, with how
    /// many names match in all. One pass over the table, holding only the
    /// page: for dashboards over millions of names.
    pub fn page(&self, search: &str, after: Option<&str>, limit: usize) -> EntryPage {
        let limit = limit.min(MAX_PAGE);
        self.repl.read(|r, _| {
            let mut page = KeyPage::new(search, after, limit);
            for k in r.keys() {
                if page.matches(k) && winner(r, k).is_some() {
                    page.offer(k);
                }
            }
            let page = page.finish();
            let entries = page
                .keys
                .into_iter()
                .filter_map(|name| {
                    let w = winner(r, name.as_str())?;
                    let addr = slot_addr(&w)?;
                    let meta = w.value.and_then(|v| v.meta.as_deref().map(str::to_string));
                    Some(Entry { name, addr, meta })
                })
                .collect();
            EntryPage {
                entries,
                matched: page.matched,
                more: page.more,
            }
        })
    }

    /// Every name starting with `prefix`.
    pub fn select_prefix(&self, prefix: &str) -> Vec<Entry> {
        self.select(|name, _| name.starts_with(prefix))
    }

    /// How many names are held, read from a counter the table keeps (no
    /// scan, unlike [`count`](Self::count)): for a dashboard's summary.
    pub fn held(&self) -> usize {
        self.repl.read(|r, _| r.live_key_count())
    }

    /// How many names resolve.
    pub fn count(&self) -> usize {
        self.repl
            .read(|r, _| r.keys().filter(|k| winner(r, k).is_some()).count())
    }

    /// Sets `name`'s metadata (only on the node that holds it).
    pub fn put_meta<T: Serialize>(&self, name: &str, meta: &T) -> Result<(), RegistryError> {
        let key = check_name(name)?;
        let text = serde_json::to_string(meta).map_err(RegistryError::Meta)?;
        if text.len() > MAX_META_LEN {
            return Err(RegistryError::MetaTooLarge(text.len()));
        }
        self.repl
            .write(|w| match my_slot(w.replica(), w.me(), &key) {
                Some((lineage, value)) => {
                    let value = RegValue {
                        local: value.local,
                        meta: Some(Arc::from(text.as_str())),
                    };
                    w.put(key.clone(), Some(lineage), value);
                    Ok(())
                }
                None => Err(not_held_here(w.replica(), name)),
            })
    }

    /// `name`'s metadata, decoded as `T`; `Ok(None)` if it has none.
    pub fn meta<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, RegistryError> {
        let text = self
            .repl
            .read(|r, _| winner(r, name).map(|w| w.value.and_then(|v| v.meta.clone())));
        match text {
            None => Err(RegistryError::NotRegistered(name.to_string())),
            Some(None) => Ok(None),
            Some(Some(t)) => serde_json::from_str(&t)
                .map(Some)
                .map_err(RegistryError::Meta),
        }
    }

    /// Registry events from now on, from every node.
    pub fn subscribe(&self) -> broadcast::Receiver<RegistryEvent> {
        self.shared.events.subscribe()
    }

    /// Prometheus text for the registry's counters.
    pub fn metrics_text(&self) -> String {
        let node = self.shared.node.name();
        let m = self.repl.stats();
        let (keys, tombstones) = self.repl.read(|r, _| (r.key_count(), r.tombstone_count()));
        let rows: [drove_runtime::metrics::Sample<'_>; 7] = [
            (
                "drove_registry_keys",
                "gauge",
                "Names with at least one registration or tombstone in this replica.",
                keys as u64,
            ),
            (
                "drove_registry_tombstones",
                "gauge",
                "Tombstones held.",
                tombstones as u64,
            ),
            (
                "drove_registry_deltas_sent_total",
                "counter",
                "Delta messages sent to peers.",
                m.deltas_sent,
            ),
            (
                "drove_registry_deltas_received_total",
                "counter",
                "Delta messages received.",
                m.deltas_received,
            ),
            (
                "drove_registry_anti_entropy_rounds_total",
                "counter",
                "Anti-entropy rounds run.",
                m.anti_entropy_rounds,
            ),
            (
                "drove_registry_conflicts_total",
                "counter",
                "Name conflicts resolved.",
                self.shared.conflicts.load(Ordering::Relaxed),
            ),
            (
                "drove_registry_names_lost_total",
                "counter",
                "Names this node's actors lost (conflict or quarantine).",
                self.shared.names_lost.load(Ordering::Relaxed),
            ),
        ];
        drove_runtime::metrics::render_samples(node, &rows)
    }

    /// The node this registry runs on.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// The lineage stamp of this node's registration of `name`, if any
    /// (for diagnostics).
    pub fn my_lineage(&self, name: &str) -> Option<Hlc> {
        self.repl.read(|r, me| my_slot(r, me, name).map(|(l, _)| l))
    }
}
