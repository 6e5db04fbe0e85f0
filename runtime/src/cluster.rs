//! The cluster driver: one task per node that owns gossip and the transport
//! server, feeds the membership view, and carries out what it decides.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::ChitchatHandle;
use ractor::ActorRef;
use tokio::sync::mpsc;

use drove_membership::{
    Incarnation, MemberInfo, MembershipEvent, MembershipView, NodeId, Output, ViewConfig,
};

use crate::cookie::{check_cookie, random_cookie, ClusterKeys};
use crate::echo::{Echo, ECHO_NAME};
use crate::error::StartError;
use crate::gate::GateLimits;
use crate::gossip::{self, GossipSettings};
use crate::link::Link;
use crate::node::{Control, Node};
use crate::sessions::{Session, SessionPeers, Sessions};
use crate::tls::{self, Tls};
use crate::transport::{self, Inbox, TransportEvent};
use crate::wire::{self, BatchHeader, FrameHeader};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn member_info(config: &NodeConfig, incarnation: Incarnation) -> MemberInfo {
    MemberInfo {
        id: NodeId::new(config.name.clone(), incarnation),
        addr: config.listen.to_string(),
        http: config.http.clone(),
    }
}

/// How a node starts. `NodeConfig::new("n1")` runs alone on the defaults.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The node's name (`[A-Za-z0-9_.-]`, at most 64 bytes).
    pub name: String,
    /// The cluster address: TCP for the transport, UDP for gossip.
    pub listen: SocketAddr,
    /// Other nodes' `listen` addresses (`host:port`), tried until one answers.
    pub seeds: Vec<String>,
    /// The shared secret; nodes with different cookies never mix. On a
    /// non-loopback `listen` a well-known or short cookie is refused.
    pub cookie: String,
    /// The admin HTTP address this node advertises to others.
    pub http: String,
    /// How often gossip runs.
    pub gossip_interval: Duration,
    /// The phi-accrual threshold: silence longer than this many mean
    /// heartbeat intervals declares a node down.
    pub phi_threshold: f64,
    /// How long down declarations and dead nodes stay in gossip.
    pub tombstone_ttl: Duration,
    /// See `ViewConfig::concurrent_window_ms` in drove-membership.
    pub concurrent_window: Duration,
    /// Mutual TLS for the transport; plaintext (cookie handshake only)
    /// when `None`.
    pub tls: Option<Tls>,
    /// The bounds on cluster connections that have not authenticated.
    pub gate: GateLimits,
}

impl NodeConfig {
    /// Defaults: listen on 127.0.0.1:4370, HTTP 127.0.0.1:8370, no seeds,
    /// a random cookie (set the same one on every node of a cluster),
    /// gossip every 200 ms, phi threshold 8.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 4370)),
            seeds: Vec::new(),
            cookie: random_cookie(),
            http: "127.0.0.1:8370".to_string(),
            gossip_interval: Duration::from_millis(200),
            phi_threshold: 8.0,
            tombstone_ttl: Duration::from_secs(3600),
            concurrent_window: Duration::from_secs(2),
            tls: None,
            gate: GateLimits::default(),
        }
    }

    /// Starts a node: gossip on UDP `listen`, the transport on TCP
    /// `listen`, and the driver that joins them. Seeds that are down are
    /// retried by gossip for as long as the node runs.
    pub async fn start(self) -> Result<Node, StartError> {
        drove_membership::validate_name(&self.name).map_err(StartError::Name)?;
        if !crate::gossip::check::addr_usable(self.listen) {
            return Err(StartError::Listen(self.listen));
        }
        check_cookie(&self.cookie, self.listen).map_err(StartError::Cookie)?;
        self.gate.validate().map_err(StartError::Gate)?;
        crate::fd_budget::raise();
        let keys = ClusterKeys::derive(&self.cookie);
        let me = member_info(&self, Incarnation(rand::random()));
        let view = MembershipView::new(
            me.clone(),
            ViewConfig {
                concurrent_window_ms: self.concurrent_window.as_millis() as u64,
            },
        );
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let node = Node::new(&me, view, control_tx);
        // The inbox joins its process group before any peer can connect,
        // so the first group sync already carries it.
        let (inbox, _) = ractor::Actor::spawn(None, Inbox { node: node.clone() }, ())
            .await
            .map_err(|e| StartError::Transport {
                addr: self.listen.to_string(),
                source: e.into(),
            })?;
        let gossip = gossip::start(&self.gossip_settings(&keys, &node), &me).await?;
        watch_gossip(&gossip, &node);
        let (transport_tx, transport_rx) = mpsc::unbounded_channel();
        if self.tls.is_some() {
            tls::server_name(&self.name).map_err(StartError::Tls)?;
        }
        let server = transport::start_server(
            self.listen,
            &self.cookie,
            &me.id,
            transport_tx.clone(),
            self.tls.as_ref(),
            self.gate,
            node.metrics().gate.clone(),
        )
        .await?;
        node.spawn_named(ECHO_NAME, Echo, ())
            .await
            .map_err(StartError::Echo)?;
        tracing::info!(node = %me.id, listen = %self.listen, http = %self.http, "node started");
        let driver = Driver {
            config: self,
            keys,
            node: node.clone(),
            gossip: Some(gossip),
            server,
            inbox,
            transport_tx,
            transport_rx,
            control_rx,
            sessions: Sessions::default(),
            pending_links: HashMap::new(),
            held_grants: HashMap::new(),
            rejoin_peers: RejoinPeers::default(),
        };
        tokio::spawn(driver.run());
        Ok(node)
    }

    fn gossip_settings<'a>(&'a self, keys: &'a ClusterKeys, node: &Node) -> GossipSettings<'a> {
        GossipSettings {
            listen: self.listen,
            keys,
            counters: node.metrics().gossip.clone(),
            seeds: &self.seeds,
            interval: self.gossip_interval,
            phi_threshold: self.phi_threshold,
            tombstone_ttl: self.tombstone_ttl,
        }
    }
}

/// Connections that closed before authenticating, logged at most once per
/// interval: an outsider can make as many as it likes.
static UNAUTHENTICATED_CLOSES: crate::throttle::Throttled = crate::throttle::Throttled::new(
    "cluster connections closed before authentication (wrong cookie or bad bytes)",
);

/// Tells the driver if this incarnation's gossip task ends by itself (a
/// panic inside chitchat): a node without gossip must not run on.
fn watch_gossip(gossip: &ChitchatHandle, node: &Node) {
    let done = gossip.termination_watcher();
    let incarnation = node.id().incarnation.0;
    let control = node.control().clone();
    tokio::spawn(async move {
        let reason = match done.await {
            Ok(()) => "stopped".to_string(),
            Err(e) => e.to_string(),
        };
        let _ = control.send(Control::GossipDied(incarnation, reason));
    });
}

/// Whether the driver should (still) be connecting to `id`: it is alive in
/// the view and has neither a session nor a link yet.
fn wants_connection(node: &Node, sessions: &SessionPeers, id: &NodeId) -> bool {
    let alive = node
        .view()
        .alive_member(&id.name)
        .is_some_and(|m| m.info.id == *id);
    alive && !sessions.has(id) && !node.links().has(id)
}

/// How long a dial whose TCP connection opened may take to become a session
/// before it is tried again: a peer that is slow to answer the handshake is
/// left to finish it rather than handed a duplicate.
const HANDSHAKE_WAIT: Duration = Duration::from_secs(5);

/// Half of a link: the peer's inbox, found on its session, waits for the
/// peer's grant, or the grant waits for the inbox.
struct PendingLink {
    cluster_node: u64,
    inbox: ActorRef<Vec<u8>>,
}

/// Grants held for peers whose inbox is not found yet, at most.
const MAX_HELD_GRANTS: usize = 1024;

struct Driver {
    config: NodeConfig,
    keys: ClusterKeys,
    node: Node,
    gossip: Option<ChitchatHandle>,
    server: transport::Server,
    inbox: ActorRef<Vec<u8>>,
    transport_tx: mpsc::UnboundedSender<TransportEvent>,
    transport_rx: mpsc::UnboundedReceiver<TransportEvent>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    sessions: Sessions,
    pending_links: HashMap<NodeId, PendingLink>,
    /// Tokens peers granted this node, waiting for their link.
    held_grants: HashMap<NodeId, u128>,
    /// The members known before a rejoin, introduced again until one is up.
    rejoin_peers: RejoinPeers,
}

/// How long a rejoined node keeps introducing itself to the members it
/// knew before, and how often.
const REJOIN_INTRODUCE_FOR: Duration = Duration::from_secs(60);
const REJOIN_INTRODUCE_EVERY: Duration = Duration::from_secs(1);

/// The members a rejoined node knew as its old incarnation. Its configured
/// seeds may all be dead (a seed that was killed while two survivors
/// declared each other down): without these, two rejoined survivors would
/// never find each other again.
#[derive(Default)]
struct RejoinPeers {
    addrs: Vec<SocketAddr>,
    until: Option<std::time::Instant>,
    last: Option<std::time::Instant>,
}

impl Driver {
    async fn run(mut self) {
        let period = (self.config.gossip_interval / 2).max(Duration::from_millis(20));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_tick = std::time::Instant::now();
        let freeze = (self.config.gossip_interval * 5).max(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    self.notice_freeze(&mut last_tick, freeze);
                    last_tick = std::time::Instant::now();
                    self.node.send_owed_acks();
                    self.observe_gossip().await;
                    self.observe_reach();
                    self.introduce_rejoin_peers();
                }
                Some(event) = self.transport_rx.recv() => {
                    // A woken process may hear of its closed sessions
                    // before its next tick: it notes the freeze first, so
                    // whoever hears of these downs knows they may be its
                    // own stale view.
                    self.notice_freeze(&mut last_tick, freeze);
                    self.on_transport(event).await
                }
                Some(control) = self.control_rx.recv() => match control {
                    Control::Leave(done) => {
                        self.leave().await;
                        let _ = done.send(());
                        return;
                    }
                    other => self.on_control(other).await,
                },
            }
        }
    }

    /// Notes that this process was frozen if its driver last ticked more
    /// than `freeze` ago (see [`Node::woke_at`]).
    fn notice_freeze(&self, last_tick: &mut std::time::Instant, freeze: Duration) {
        if last_tick.elapsed() > freeze {
            tracing::warn!(gap = ?last_tick.elapsed(), "this process was frozen");
            self.node.set_woke_at(Some(std::time::Instant::now()));
            *last_tick = std::time::Instant::now();
        }
    }

    /// Which up members have a link, for the reachability table.
    fn observe_reach(&self) {
        let me = self.node.id();
        let peers: Vec<(NodeId, bool)> = self
            .node
            .up_members()
            .into_iter()
            .filter(|m| *m != me)
            .map(|m| {
                let linked = self.node.links().has(&m);
                (m, linked)
            })
            .collect();
        self.node.reach().observe(&peers, std::time::Instant::now());
    }

    async fn observe_gossip(&mut self) {
        let Some(gossip) = &self.gossip else { return };
        let snapshot = gossip::snapshot(gossip).await;
        let outputs = self.node.view().observe(&snapshot, now_ms());
        self.apply(outputs).await;
    }

    async fn apply(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Event(event) => self.emit(event),
                Output::Connect(info) => self.connect(info),
                Output::Disconnect(id) => self.disconnect(&id),
                Output::PublishDown(id, at) => {
                    if let Some(g) = &self.gossip {
                        gossip::publish_down(g, &id, at).await;
                    }
                }
                Output::Rejoin => self.rejoin().await,
            }
        }
    }

    fn emit(&self, event: MembershipEvent) {
        tracing::info!(node = %self.node.id(), %event, "membership");
        self.node.emit(event);
    }

    /// The node with the smaller id dials, so a pair has one session.
    fn connect(&self, info: MemberInfo) {
        if self.node.id().to_string() >= info.id.to_string() {
            return;
        }
        let node = self.node.clone();
        let server = self.server.node_server.clone();
        let tls = self.config.tls.clone();
        let sessions = self.sessions.peers();
        tokio::spawn(async move {
            for attempt in 0..60u32 {
                if !wants_connection(&node, &sessions, &info.id) {
                    return;
                }
                let dialed = match &tls {
                    None => ractor_cluster::client_connect(&server, info.addr.as_str())
                        .await
                        .map_err(|e| format!("cannot connect: {e}")),
                    // A peer that accepts TCP but never finishes TLS must
                    // not hold this dialer for good.
                    Some(tls) => match tls::server_name(&info.id.name) {
                        Ok(name) => match tokio::time::timeout(
                            HANDSHAKE_WAIT,
                            ractor_cluster::client_connect_enc(
                                &server,
                                info.addr.as_str(),
                                tls.connector(),
                                name,
                            ),
                        )
                        .await
                        {
                            Ok(Ok(())) => Ok(()),
                            Ok(Err(ractor_cluster::ClientConnectErr::Encryption(e))) => {
                                Err(format!("TLS refused: {e}"))
                            }
                            Ok(Err(e)) => Err(format!("cannot connect: {e}")),
                            Err(_) => Err("TLS handshake timed out".to_string()),
                        },
                        Err(e) => Err(e.to_string()),
                    },
                };
                match dialed {
                    Ok(()) => {
                        let deadline = tokio::time::Instant::now() + HANDSHAKE_WAIT;
                        while wants_connection(&node, &sessions, &info.id)
                            && tokio::time::Instant::now() < deadline
                        {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(peer = %info.id, attempt, error = %e, "connect failed; retrying");
                        node.reach().dial_failed(&info.id, e);
                        let wait = Duration::from_millis(250 * u64::from(attempt.min(8) + 1));
                        tokio::time::sleep(wait).await;
                    }
                }
            }
            tracing::warn!(peer = %info.id, "gave up connecting");
        });
    }

    fn disconnect(&mut self, id: &NodeId) {
        if let Some(session) = self.sessions.remove(id) {
            session.actor.stop(Some("declared down".to_string()));
        }
        self.drop_link(id);
        self.node.calls().fail_node(id);
    }

    fn drop_link(&mut self, id: &NodeId) {
        self.node.links().remove(id);
        self.node.grants().revoke(id);
        self.pending_links.remove(id);
        self.held_grants.remove(id);
    }

    /// Grants `peer` its token, over `peer`'s own session (`inbox` was
    /// found on it), in a batch of its own.
    fn send_grant(&self, peer: &NodeId, inbox: &ActorRef<Vec<u8>>) {
        let token = self.node.grants().grant(peer);
        let header = BatchHeader {
            from: self.node.id(),
            to: peer.incarnation,
            token: 0,
        };
        let batch = wire::begin_batch(&header).and_then(|mut b| {
            wire::push_frame::<()>(&mut b, &FrameHeader::Grant { token }, None)?;
            Ok(b)
        });
        match batch {
            Ok(b) => {
                if inbox.cast(b).is_err() {
                    tracing::warn!(%peer, "cannot send the grant; the session is gone");
                }
            }
            Err(e) => tracing::error!(%peer, error = %e, "cannot encode a grant"),
        }
    }

    /// Builds the link to `peer` once both its inbox and its grant are here.
    fn try_link(&mut self, peer: &NodeId) {
        if !self.pending_links.contains_key(peer) || !self.held_grants.contains_key(peer) {
            return;
        }
        let (Some(pending), Some(token)) = (
            self.pending_links.remove(peer),
            self.held_grants.remove(peer),
        ) else {
            return;
        };
        let current = self.sessions.get(peer).map(|s| s.cluster_node);
        if current != Some(pending.cluster_node) {
            return;
        }
        let counters = self.node.metrics().peer(&peer.name);
        match Link::new(self.node.id(), peer.clone(), token, pending.inbox, counters) {
            Ok(link) => {
                self.node.links().insert(link.clone());
                tracing::debug!(%peer, "link ready");
                tokio::spawn(link.run());
            }
            Err(e) => tracing::error!(%peer, error = %e, "cannot build link"),
        }
    }

    async fn on_transport(&mut self, event: TransportEvent) {
        match event {
            TransportEvent::Ready {
                peer,
                cluster_node,
                session,
            } => {
                let status = self.node.view().status_of(&peer);
                let finished = matches!(
                    status,
                    Some(
                        drove_membership::MemberStatus::Down | drove_membership::MemberStatus::Left
                    )
                );
                if finished || peer.name == self.node.name() {
                    tracing::info!(%peer, "refusing a session from a finished incarnation");
                    session.stop(None);
                    return;
                }
                // The first session for a name keeps it until it closes: a
                // second one claiming the same node does not take its link.
                if self.sessions.has_name(&peer.name) {
                    tracing::warn!(%peer, "refusing a second session for a node that has one");
                    session.stop(None);
                    return;
                }
                self.sessions.insert(
                    peer.clone(),
                    Session {
                        cluster_node,
                        actor: session,
                    },
                );
                let control = self.node.control().clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        if let Some(inbox) = transport::remote_inbox(cluster_node) {
                            let _ = control.send(Control::LinkReady {
                                peer,
                                cluster_node,
                                inbox,
                            });
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    tracing::warn!(%peer, "peer's inbox never appeared");
                });
            }
            TransportEvent::Closed {
                peer: Some(peer),
                cluster_node,
                ..
            } => {
                let ours = self
                    .sessions
                    .get(&peer)
                    .is_some_and(|s| s.cluster_node == cluster_node);
                if !ours {
                    return;
                }
                self.sessions.remove(&peer);
                self.drop_link(&peer);
                self.node.calls().fail_node(&peer);
                let outputs = self.node.view().connection_lost(&peer, now_ms());
                self.apply(outputs).await;
            }
            TransportEvent::Closed {
                peer: None,
                peer_addr,
                ..
            } => {
                UNAUTHENTICATED_CLOSES.note(format_args!("the last from {peer_addr}"));
            }
        }
    }

    async fn on_control(&mut self, control: Control) {
        match control {
            Control::LeaveAnnounced(peer) => {
                let outputs = self.node.view().leave_announced(&peer);
                self.apply(outputs).await;
            }
            Control::LinkReady {
                peer,
                cluster_node,
                inbox,
            } => {
                let current = self.sessions.get(&peer).map(|s| s.cluster_node);
                if current != Some(cluster_node) {
                    return;
                }
                self.send_grant(&peer, &inbox);
                self.pending_links.insert(
                    peer.clone(),
                    PendingLink {
                        cluster_node,
                        inbox,
                    },
                );
                self.try_link(&peer);
            }
            Control::Granted { peer, token } => {
                // Only the first grant while there is no link: a later one
                // cannot redirect a working link. The grant may arrive
                // before gossip or the session shows the peer, so it is
                // held; when the table is full, grants of peers that are
                // neither members nor connected make room.
                if self.node.links().has(&peer) || self.held_grants.contains_key(&peer) {
                    return;
                }
                if self.held_grants.len() >= MAX_HELD_GRANTS {
                    let view = self.node.view();
                    let sessions = &self.sessions;
                    self.held_grants.retain(|id, _| {
                        sessions.contains(id)
                            || view
                                .alive_member(&id.name)
                                .is_some_and(|m| m.info.id == *id)
                    });
                }
                if self.held_grants.len() < MAX_HELD_GRANTS {
                    self.held_grants.insert(peer.clone(), token);
                    self.try_link(&peer);
                }
            }
            Control::GossipDied(incarnation, reason) => {
                // A shutdown for a rejoin or a leave also ends gossip; only
                // the current incarnation's own death counts.
                let current = self.node.id().incarnation.0;
                if incarnation == current && self.gossip.is_some() {
                    self.gossip_died(&reason).await;
                }
            }
            Control::Introduce(addrs) => self.introduce(&addrs),
            Control::Leave(_) => {}
        }
    }

    /// One gossip exchange with each found address that is neither this
    /// node nor a live member (members already gossip with each other).
    fn introduce(&self, addrs: &[SocketAddr]) {
        let Some(gossip) = &self.gossip else { return };
        let members: std::collections::HashSet<String> = self
            .node
            .members()
            .into_iter()
            .filter(|m| m.status == drove_membership::MemberStatus::Up)
            .map(|m| m.info.addr)
            .collect();
        for addr in addrs {
            if *addr == self.config.listen || members.contains(&addr.to_string()) {
                continue;
            }
            if !crate::gossip::check::addr_usable(*addr) {
                continue;
            }
            tracing::debug!(%addr, "introducing a discovered address to gossip");
            let _ = gossip.gossip(*addr);
        }
    }

    /// Gossip died under a running node: peers will declare it down and
    /// restart its work elsewhere, so it must not go on running that work.
    /// The process exits (code 70), as a node whose net kernel died would.
    async fn gossip_died(&mut self, reason: &str) {
        tracing::error!(node = %self.node.id(), %reason, "gossip stopped by itself; taking this node down");
        self.server.stop(Duration::from_secs(2)).await;
        self.close_all();
        std::process::exit(70);
    }

    fn close_all(&mut self) {
        for session in self.sessions.drain() {
            session.actor.stop(None);
        }
        self.pending_links.clear();
        self.held_grants.clear();
        self.node.grants().revoke_all();
        self.node.links().close_all();
        self.node.calls().fail_all();
    }

    /// After a rejoin, introduces this node to the members its old
    /// incarnation knew, every [`REJOIN_INTRODUCE_EVERY`], until one of them
    /// is up again or [`REJOIN_INTRODUCE_FOR`] has passed.
    fn introduce_rejoin_peers(&mut self) {
        let Some(until) = self.rejoin_peers.until else {
            return;
        };
        let now = std::time::Instant::now();
        let me = self.node.id();
        let peer_up = self
            .node
            .members()
            .iter()
            .any(|m| m.status == drove_membership::MemberStatus::Up && m.info.id != me);
        if peer_up || now > until {
            self.rejoin_peers = RejoinPeers::default();
            return;
        }
        if self
            .rejoin_peers
            .last
            .is_some_and(|t| now.duration_since(t) < REJOIN_INTRODUCE_EVERY)
        {
            return;
        }
        self.rejoin_peers.last = Some(now);
        let addrs = self.rejoin_peers.addrs.clone();
        self.introduce(&addrs);
    }

    /// Declared down by the cluster: drop everything tied to the old
    /// incarnation and come back as a new one.
    async fn rejoin(&mut self) {
        let old = self.node.id();
        let known: Vec<SocketAddr> = self
            .node
            .members()
            .into_iter()
            .filter(|m| m.info.id.name != old.name)
            .filter_map(|m| m.info.addr.parse().ok())
            .take(crate::node::MAX_INTRODUCED)
            .collect();
        tracing::warn!(node = %old, "this incarnation was declared down; rejoining as a new one");
        if let Some(g) = self.gossip.take() {
            let _ = g.shutdown().await;
        }
        self.server.stop(Duration::from_secs(5)).await;
        self.close_all();
        let config = self.config.clone();
        let me = member_info(&config, Incarnation(rand::random()));
        self.node.set_incarnation(me.id.incarnation);
        self.node.view().rejoined(me.clone());
        for attempt in 0..50u32 {
            match self.restart_parts(&config, &me).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(attempt, error = %e, "rejoin: restart failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        // The freeze, if there was one, has been dealt with.
        self.node.set_woke_at(None);
        self.rejoin_peers = RejoinPeers {
            addrs: known,
            until: Some(std::time::Instant::now() + REJOIN_INTRODUCE_FOR),
            last: None,
        };
        self.emit(MembershipEvent::Rejoined { old, new: me.id });
    }

    async fn restart_parts(
        &mut self,
        config: &NodeConfig,
        me: &MemberInfo,
    ) -> Result<(), StartError> {
        if self.gossip.is_none() {
            let gossip = gossip::start(&config.gossip_settings(&self.keys, &self.node), me).await?;
            watch_gossip(&gossip, &self.node);
            self.gossip = Some(gossip);
        }
        self.server = transport::start_server(
            config.listen,
            &config.cookie,
            &me.id,
            self.transport_tx.clone(),
            config.tls.as_ref(),
            config.gate,
            self.node.metrics().gate.clone(),
        )
        .await?;
        Ok(())
    }

    /// Graceful leave: announce, flush, close connections, stop gossip.
    async fn leave(&mut self) {
        tracing::info!(node = %self.node.id(), "leaving the cluster");
        self.node.view().set_leaving();
        if let Some(g) = &self.gossip {
            gossip::publish_leaving(g).await;
        }
        let links: Vec<Arc<Link>> = self.node.links().all();
        for link in &links {
            let _ = link.push::<()>(&FrameHeader::Leaving, None);
        }
        for _ in 0..100 {
            if links.iter().all(|l| l.is_drained()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Let the Leaving frames be read before the sockets close.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.server.stop(Duration::from_secs(5)).await;
        self.close_all();
        if let Some(g) = self.gossip.take() {
            let _ = g.shutdown().await;
        }
        self.inbox.stop(None);
    }
}
