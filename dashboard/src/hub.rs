//! [`Hub`]: a node's dashboard state. It samples the node's counters into
//! [`Series`] every [`SAMPLE_EVERY`], keeps the latest name conflicts, and
//! builds the summary every panel shows at most once per
//! [`SUMMARY_FRESH`] however many browsers watch, asking the members'
//! agents for their cards only then.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use drove::registry::RegistryEvent;
use drove::runtime::{MemberStatus, NodeId};
use drove::Drove;

use crate::agent::{self, Agent, Asked, NodeCard, AGENT_NAME};
use crate::series::{Reading, Series, SAMPLE_EVERY};
use crate::views::{self, View, PANELS};

/// How long a summary serves every watcher before it is built again.
pub const SUMMARY_FRESH: Duration = Duration::from_millis(900);

/// Name conflicts kept for the registry panel.
pub const CONFLICTS_KEPT: usize = 20;

/// Streams open at once at most; past it a watcher gets 503.
pub const MAX_WATCHERS: usize = 64;

/// Pages kept for sharing between watchers; past it, stale ones go.
pub const PAGES_KEPT: usize = 256;

/// Peers whose traffic rates are kept at most.
pub const PEERS_RATED: usize = 1024;

/// Members without an agent remembered (so not asked every second).
pub const NO_AGENT_KEPT: usize = 1024;

/// A summary (JSON text) and the cards it was built from.
struct Built {
    at: Instant,
    summary: Arc<str>,
    cards: Arc<BTreeMap<String, NodeCard>>,
}

/// One panel's page (JSON text), and how long it serves.
struct Page {
    at: Instant,
    fresh: Duration,
    json: Arc<str>,
}

/// A node's dashboard: cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    drove: Drove,
    started_at_ms: u64,
    /// The charts: pools, jobs, events.
    series: Mutex<Series>,
    /// Traffic with each peer: two samples, for the latest rates only.
    peers: Mutex<Series>,
    conflicts: Mutex<VecDeque<Value>>,
    built: tokio::sync::Mutex<Option<Built>>,
    pages: Mutex<HashMap<View, Page>>,
    /// Member incarnations that answered they run no agent.
    no_agent: Mutex<HashSet<NodeId>>,
    watchers: AtomicUsize,
}

/// A watcher's place among the [`MAX_WATCHERS`]: freed on drop.
pub struct WatcherSlot(Hub);

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.inner.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Hub {
    /// Starts the dashboard of `drove`: its agent (so peers' dashboards can
    /// ask for this node's card), its sampler and its conflict log. Both
    /// tasks end when the last clone of the hub is dropped.
    pub async fn start(drove: &Drove) -> Hub {
        let hub = Hub {
            inner: Arc::new(Inner {
                drove: drove.clone(),
                started_at_ms: now_ms(),
                series: Mutex::default(),
                peers: Mutex::new(Series::new(2, 4 * PEERS_RATED)),
                conflicts: Mutex::default(),
                built: tokio::sync::Mutex::new(None),
                pages: Mutex::default(),
                no_agent: Mutex::default(),
                watchers: AtomicUsize::new(0),
            }),
        };
        let agent = Agent {
            drove: drove.clone(),
            started_at_ms: hub.inner.started_at_ms,
        };
        if let Err(e) = drove.node().spawn_named(AGENT_NAME, agent, ()).await {
            // A second dashboard on one node: the first one's agent answers.
            tracing::debug!(error = %e, "dashboard agent not started");
        }
        tokio::spawn(sample_loop(Arc::downgrade(&hub.inner)));
        tokio::spawn(conflict_log(
            Arc::downgrade(&hub.inner),
            drove.registry().subscribe(),
        ));
        hub
    }

    /// The node this dashboard shows.
    pub fn drove(&self) -> &Drove {
        &self.inner.drove
    }

    /// A place for one more watcher, or `None` past [`MAX_WATCHERS`].
    pub fn watch(&self) -> Option<WatcherSlot> {
        let taken = self.inner.watchers.fetch_add(1, Ordering::AcqRel);
        let slot = WatcherSlot(self.clone());
        (taken < MAX_WATCHERS).then_some(slot)
    }

    fn series(&self) -> MutexGuard<'_, Series> {
        self.inner.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn peers(&self) -> MutexGuard<'_, Series> {
        self.inner.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conflicts(&self) -> MutexGuard<'_, VecDeque<Value>> {
        self.inner
            .conflicts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// The summary and the panel `view` asks for, as one JSON document.
    /// A panel's page is shared by every watcher of the same view and
    /// built again no sooner than [`SUMMARY_FRESH`] or ten times what it
    /// took to build, whichever is longer: ten browsers on a page of a
    /// million names scan the table once, and never for more than a tenth
    /// of the time.
    pub async fn frame(&self, view: &View) -> String {
        let (summary, cards) = self.summary().await;
        let panel = self.page(view, &cards).await;
        format!("{{\"summary\":{summary},\"panel\":{panel}}}")
    }

    async fn page(&self, view: &View, cards: &BTreeMap<String, NodeCard>) -> Arc<str> {
        if let Some(page) = self.pages().get(view).filter(|p| p.at.elapsed() < p.fresh) {
            return page.json.clone();
        }
        let started = Instant::now();
        let conflicts = Value::Array(self.conflicts().iter().cloned().collect());
        let json: Arc<str> = views::panel(&self.inner.drove, view, cards, conflicts)
            .await
            .to_string()
            .into();
        let took = started.elapsed();
        let mut pages = self.pages();
        if pages.len() >= PAGES_KEPT {
            pages.retain(|_, p| p.at.elapsed() < p.fresh);
            if pages.len() >= PAGES_KEPT {
                pages.clear();
            }
        }
        pages.insert(
            view.clone(),
            Page {
                at: Instant::now(),
                fresh: SUMMARY_FRESH.max(took * 10),
                json: json.clone(),
            },
        );
        json
    }

    fn pages(&self) -> MutexGuard<'_, HashMap<View, Page>> {
        self.inner.pages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The summary, built again if older than [`SUMMARY_FRESH`].
    async fn summary(&self) -> (Arc<str>, Arc<BTreeMap<String, NodeCard>>) {
        let mut built = self.inner.built.lock().await;
        if let Some(b) = built.as_ref().filter(|b| b.at.elapsed() < SUMMARY_FRESH) {
            return (b.summary.clone(), b.cards.clone());
        }
        let cards = Arc::new(self.cards().await);
        let summary: Arc<str> = self.build_summary(&cards).await.to_string().into();
        *built = Some(Built {
            at: Instant::now(),
            summary: summary.clone(),
            cards: cards.clone(),
        });
        (summary, cards)
    }

    /// Every up member's card, asked in parallel; this node's read here.
    async fn cards(&self) -> BTreeMap<String, NodeCard> {
        let drove = &self.inner.drove;
        let me = drove.node().id();
        let mut cards = BTreeMap::new();
        cards.insert(
            me.name.clone(),
            agent::card_of(drove, self.inner.started_at_ms),
        );
        let skip = self.no_agent().clone();
        let mut asks = tokio::task::JoinSet::new();
        for m in drove.node().members() {
            if m.status == MemberStatus::Up && m.info.id != me && !skip.contains(&m.info.id) {
                let drove = drove.clone();
                asks.spawn(async move {
                    let asked = agent::ask_card(&drove, &m.info.id).await;
                    (m.info.id, asked)
                });
            }
        }
        while let Some(Ok((id, asked))) = asks.join_next().await {
            match asked {
                Asked::Card(card) => {
                    cards.insert(id.name, card);
                }
                Asked::NoAgent => {
                    let mut no_agent = self.no_agent();
                    // Incarnations that are gone do not stay.
                    if no_agent.len() >= NO_AGENT_KEPT {
                        no_agent.clear();
                    }
                    no_agent.insert(id);
                }
                Asked::Nothing => {}
            }
        }
        cards
    }

    fn no_agent(&self) -> MutexGuard<'_, HashSet<NodeId>> {
        self.inner
            .no_agent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    async fn build_summary(&self, cards: &BTreeMap<String, NodeCard>) -> Value {
        let drove = &self.inner.drove;
        let now = now_ms();
        let id = drove.node().id();
        let queues = views::queues(drove).await;
        let series = self.series();
        let peers = self.peers();
        let rates = |peer: &str| {
            json!({
                "bytes_out": peers.latest(&format!("{peer}:bytes_out")),
                "bytes_in": peers.latest(&format!("{peer}:bytes_in")),
                "messages_out": peers.latest(&format!("{peer}:messages_out")),
                "messages_in": peers.latest(&format!("{peer}:messages_in")),
            })
        };
        json!({
            "node": id.name,
            "incarnation": id.incarnation.to_string(),
            "at_ms": now,
            "uptime_ms": now.saturating_sub(self.inner.started_at_ms),
            "quorum": drove.supervisor().has_quorum(),
            "panels": PANELS,
            "members": views::members(drove, cards, now, &rates),
            "counts": {
                "names": drove.registry().held(),
                "children": drove.supervisor().count_children(),
                "topics": drove.pubsub().topics().len(),
                "cache_keys": drove.cache().held(),
                "cache_bytes": drove.cache().bytes(),
            },
            "pools": views::pools(drove),
            "queues": queues,
            "series": series.json(),
        })
    }

    /// Reads every counter the charts and rates need, once.
    fn sample(&self) {
        let drove = &self.inner.drove;
        let mut readings = Vec::new();
        for pool in drove.pools().all() {
            let name = pool.name();
            let m = pool.metrics();
            let (queued, waited) = m.queue_wait();
            let snapshot = pool.snapshot();
            readings.push((format!("pool:{name}:calls"), Reading::Total(m.calls())));
            readings.push((format!("pool:{name}:boots"), Reading::Total(m.boots())));
            readings.push((
                format!("pool:{name}:wait_ms"),
                Reading::MeanOf {
                    count: queued,
                    micros: u64::try_from(waited.as_micros()).unwrap_or(u64::MAX),
                },
            ));
            readings.push((
                format!("pool:{name}:runners"),
                Reading::Gauge(snapshot.runners.len() as f64),
            ));
        }
        if let Some(jobs) = drove.jobs() {
            for outcome in ["completed", "retried", "dead"] {
                readings.push((
                    format!("jobs:{outcome}"),
                    Reading::Total(jobs.outcome_total(outcome)),
                ));
            }
        }
        if let Some(events) = drove.events() {
            readings.push((
                "events:handled".into(),
                Reading::Total(events.handled_total()),
            ));
        }
        self.series().sample(now_ms(), readings);
        let mut readings = Vec::new();
        let me = drove.node().id();
        let metrics = drove.node().metrics();
        for m in drove.node().members() {
            if m.info.id == me || m.status != MemberStatus::Up {
                continue;
            }
            let p = metrics.peer(&m.info.id.name);
            let n = |c: &std::sync::atomic::AtomicU64| Reading::Total(c.load(Ordering::Relaxed));
            let name = &m.info.id.name;
            readings.push((format!("{name}:bytes_out"), n(&p.bytes_out)));
            readings.push((format!("{name}:bytes_in"), n(&p.bytes_in)));
            readings.push((format!("{name}:messages_out"), n(&p.messages_out)));
            readings.push((format!("{name}:messages_in"), n(&p.messages_in)));
        }
        self.peers().sample(now_ms(), readings);
    }
}

async fn sample_loop(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        Hub { inner }.sample();
    }
}

async fn conflict_log(
    inner: Weak<Inner>,
    mut events: tokio::sync::broadcast::Receiver<RegistryEvent>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        let Some(inner) = inner.upgrade() else { return };
        if let RegistryEvent::ConflictResolved {
            name,
            winner,
            loser,
        } = event
        {
            let hub = Hub { inner };
            let mut log = hub.conflicts();
            if log.len() == CONFLICTS_KEPT {
                log.pop_back();
            }
            log.push_front(json!({
                "name": name, "at_ms": now_ms(),
                "winner": winner.to_string(), "loser": loser.to_string(),
            }));
        }
    }
}
