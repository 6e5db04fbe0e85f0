//! The cluster driver: one task per node that owns gossip and the transport
//! server, feeds the membership view, and carries out what it decides.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chitchat::ChitchatHandle;
use ractor::ActorRef;
use ractor_cluster::{NodeServerMessage, NodeSessionMessage};
use tokio::sync::mpsc;

use drove_membership::{
    Incarnation, MemberInfo, MembershipEvent, MembershipView, NodeId, Output, ViewConfig,
};

use crate::error::StartError;
use crate::gossip;
use crate::link::Link;
use crate::node::{Control, Node, NodeConfig};
use crate::transport::{self, Inbox, TransportEvent};
use crate::wire::FrameHeader;

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

struct Session {
    cluster_node: u64,
    actor: ActorRef<NodeSessionMessage>,
}

struct Driver {
    node: Node,
    gossip: Option<ChitchatHandle>,
    server: ActorRef<NodeServerMessage>,
    inbox: ActorRef<Vec<u8>>,
    transport_tx: mpsc::UnboundedSender<TransportEvent>,
    transport_rx: mpsc::UnboundedReceiver<TransportEvent>,
    control_rx: mpsc::UnboundedReceiver<Control>,
    sessions: HashMap<NodeId, Session>,
}

impl Node {
    /// Starts a node: gossip on UDP `listen`, the transport on TCP `listen`,
    /// and the driver that joins them. Seeds that are down are retried by
    /// gossip for as long as the node runs.
    pub async fn start(config: NodeConfig) -> Result<Node, StartError> {
        drove_membership::validate_name(&config.name)
            .map_err(|e| StartError::Config(e.to_string()))?;
        let me = member_info(&config, Incarnation(rand::random()));
        let view = MembershipView::new(
            me.clone(),
            ViewConfig {
                concurrent_window_ms: config.concurrent_window.as_millis() as u64,
            },
        );
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        let node = Node::new_inner(config.clone(), me.clone(), view, control_tx);
        // The inbox joins its process group before any peer can connect,
        // so the first group sync already carries it.
        let (inbox, _) = ractor::Actor::spawn(None, Inbox { node: node.clone() }, ())
            .await
            .map_err(|e| StartError::Transport {
                addr: config.listen.to_string(),
                reason: e.to_string(),
            })?;
        let gossip = gossip::start(&config, &me).await?;
        let (transport_tx, transport_rx) = mpsc::unbounded_channel();
        let server =
            transport::start_server(config.listen, &config.cookie, &me.id, transport_tx.clone())
                .await?;
        node.spawn_named(crate::echo::ECHO_NAME, crate::echo::Echo, ())
            .await
            .map_err(|e| StartError::Config(e.to_string()))?;
        tracing::info!(node = %me.id, listen = %config.listen, http = %config.http, "node started");
        let driver = Driver {
            node: node.clone(),
            gossip: Some(gossip),
            server,
            inbox,
            transport_tx,
            transport_rx,
            control_rx,
            sessions: HashMap::new(),
        };
        tokio::spawn(driver.run());
        Ok(node)
    }

    /// Whether the driver should (still) be connecting to `id`.
    fn wants_connection(&self, id: &NodeId) -> bool {
        let alive = self
            .view()
            .alive_member(&id.name)
            .is_some_and(|m| m.info.id == *id);
        let linked = self
            .inner
            .links
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id.name)
            .is_some_and(|l| l.peer == *id);
        alive && !linked
    }
}

impl Driver {
    async fn run(mut self) {
        let period = (self.node.config().gossip_interval / 2).max(Duration::from_millis(20));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_tick = std::time::Instant::now();
        let freeze = (self.node.config().gossip_interval * 5).max(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if last_tick.elapsed() > freeze {
                        tracing::warn!(gap = ?last_tick.elapsed(), "this process was frozen");
                        *self.node.inner.woke_at.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(std::time::Instant::now());
                    }
                    last_tick = std::time::Instant::now();
                    self.observe_gossip().await
                }
                Some(event) = self.transport_rx.recv() => self.on_transport(event).await,
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
        let _ = self.node.inner.events.send(event);
    }

    /// The node with the smaller id dials, so a pair has one session.
    fn connect(&self, info: MemberInfo) {
        if self.node.id().to_string() >= info.id.to_string() {
            return;
        }
        let node = self.node.clone();
        let server = self.server.clone();
        tokio::spawn(async move {
            for attempt in 0..60u32 {
                if !node.wants_connection(&info.id) {
                    return;
                }
                if let Err(e) = ractor_cluster::client_connect(&server, info.addr.as_str()).await {
                    tracing::debug!(peer = %info.id, attempt, error = %e, "connect failed; retrying");
                }
                let wait = Duration::from_millis(250 * u64::from(attempt.min(8) + 1));
                tokio::time::sleep(wait).await;
            }
            tracing::warn!(peer = %info.id, "gave up connecting");
        });
    }

    fn disconnect(&mut self, id: &NodeId) {
        if let Some(session) = self.sessions.remove(id) {
            session.actor.stop(Some("declared down".to_string()));
        }
        self.drop_link(id);
        self.node.inner.calls.fail_node(id);
    }

    fn drop_link(&self, id: &NodeId) {
        let mut links = self
            .node
            .inner
            .links
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if links.get(&id.name).is_some_and(|l| l.peer == *id) {
            if let Some(link) = links.remove(&id.name) {
                link.close();
            }
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
                self.sessions.insert(
                    peer.clone(),
                    Session {
                        cluster_node,
                        actor: session,
                    },
                );
                let control = self.node.inner.control.clone();
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
                self.node.inner.calls.fail_node(&peer);
                let outputs = self.node.view().connection_lost(&peer, now_ms());
                self.apply(outputs).await;
            }
            TransportEvent::Closed {
                peer: None,
                peer_addr,
                ..
            } => {
                tracing::warn!(%peer_addr, "cluster connection closed before authentication (wrong cookie or bad bytes)");
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
                let counters = self.node.inner.metrics.peer(&peer.name);
                match Link::new(self.node.id(), peer.clone(), inbox, counters) {
                    Ok(link) => {
                        let old = self
                            .node
                            .inner
                            .links
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(peer.name.clone(), link.clone());
                        if let Some(old) = old {
                            old.close();
                        }
                        tracing::debug!(%peer, "link ready");
                        tokio::spawn(link.run());
                    }
                    Err(e) => tracing::error!(%peer, error = %e, "cannot build link"),
                }
            }
            Control::Leave(_) => {}
        }
    }

    fn close_all(&mut self) {
        for (_, session) in self.sessions.drain() {
            session.actor.stop(None);
        }
        let links: Vec<Arc<Link>> = self
            .node
            .inner
            .links
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .map(|(_, l)| l)
            .collect();
        for link in links {
            link.close();
        }
        self.node.inner.calls.fail_all();
    }

    /// Declared down by the cluster: drop everything tied to the old
    /// incarnation and come back as a new one.
    async fn rejoin(&mut self) {
        let old = self.node.id();
        tracing::warn!(node = %old, "this incarnation was declared down; rejoining as a new one");
        if let Some(g) = self.gossip.take() {
            let _ = g.shutdown().await;
        }
        let _ = self
            .server
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
        self.close_all();
        let config = self.node.config().clone();
        let me = member_info(&config, Incarnation(rand::random()));
        self.node
            .inner
            .incarnation
            .store(me.id.incarnation.0, Ordering::Release);
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
        *self
            .node
            .inner
            .woke_at
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.emit(MembershipEvent::Rejoined { old, new: me.id });
    }

    async fn restart_parts(
        &mut self,
        config: &NodeConfig,
        me: &MemberInfo,
    ) -> Result<(), StartError> {
        if self.gossip.is_none() {
            self.gossip = Some(gossip::start(config, me).await?);
        }
        self.server = transport::start_server(
            config.listen,
            &config.cookie,
            &me.id,
            self.transport_tx.clone(),
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
        let links: Vec<Arc<Link>> = self
            .node
            .inner
            .links
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
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
        let _ = self
            .server
            .stop_and_wait(None, Some(Duration::from_secs(5)))
            .await;
        self.close_all();
        if let Some(g) = self.gossip.take() {
            let _ = g.shutdown().await;
        }
        self.inbox.stop(None);
    }
}
