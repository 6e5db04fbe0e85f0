//! The transport: ractor_cluster's `NodeServer` (cookie handshake, framing,
//! frame-size limit) behind drove's gate ([`crate::gate`]), and drove's
//! inbox, the one remote-visible actor per node.

use std::net::SocketAddr;

use ractor::{ActorCell, ActorProcessingErr, ActorRef};
use ractor_cluster::node::NodeConnectionMode;
use ractor_cluster::{
    IncomingEncryptionMode, NodeEventSubscription, NodeServer, NodeServerMessage,
    NodeSessionMessage,
};
use tokio::sync::mpsc;

use drove_membership::NodeId;

use crate::error::StartError;
use crate::gate::{Gate, GateLimits, GateWatcher, Parked};
use crate::metrics::GateCounters;
use crate::node::Node;
use crate::tls::Tls;

/// The process group every node's inbox joins; ractor_cluster synchronizes
/// it, which is how a node finds a peer's inbox after the handshake.
pub(crate) const INBOX_GROUP: &str = "drove.inbox";

/// What the transport tells the cluster driver.
#[derive(Debug)]
pub(crate) enum TransportEvent {
    /// A session finished its handshake and state exchange.
    Ready {
        peer: NodeId,
        cluster_node: u64,
        session: ActorRef<NodeSessionMessage>,
    },
    /// A session closed.
    Closed {
        peer: Option<NodeId>,
        cluster_node: u64,
        peer_addr: String,
    },
}

struct Subscription {
    events: mpsc::UnboundedSender<TransportEvent>,
    gate: GateWatcher,
}

fn peer_id(ses: &ractor_cluster::node::NodeServerSessionInformation) -> Option<NodeId> {
    // ractor_cluster names a node `name@host`; ours is `name#incarnation`.
    ses.peer_name
        .as_ref()
        .and_then(|n| n.name.split('@').next()?.parse().ok())
}

impl NodeEventSubscription for Subscription {
    fn node_session_opened(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        tracing::debug!(peer_addr = %ses.peer_addr, "cluster session opened");
    }

    fn node_session_authenticated(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        tracing::debug!(peer_addr = %ses.peer_addr, "cluster session authenticated");
        self.gate.authenticated(&ses.peer_addr);
    }

    fn node_session_ready(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        match peer_id(&ses) {
            Some(peer) => {
                let _ = self.events.send(TransportEvent::Ready {
                    peer,
                    cluster_node: ses.node_id,
                    session: ses.actor.clone(),
                });
            }
            None => {
                tracing::warn!(peer_addr = %ses.peer_addr, "peer's node name is not a drove node id; closing");
                ses.actor.stop(None);
            }
        }
    }

    fn node_session_disconnected(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        self.gate.closed(&ses.peer_addr);
        let _ = self.events.send(TransportEvent::Closed {
            peer: peer_id(&ses),
            cluster_node: ses.node_id,
            peer_addr: ses.peer_addr.clone(),
        });
    }
}

/// What accepts on the cluster port: the gate in front, the
/// ractor_cluster server behind it.
pub(crate) struct Server {
    pub(crate) node_server: ActorRef<NodeServerMessage>,
    pub(crate) gate: Gate,
}

impl Server {
    /// Stops accepting, then stops the ractor_cluster server and its
    /// sessions, waiting at most `timeout` for them.
    pub(crate) async fn stop(&mut self, timeout: std::time::Duration) {
        self.gate.close().await;
        let _ = self.node_server.stop_and_wait(None, Some(timeout)).await;
    }
}

/// Starts ractor_cluster's server for `me` (`name#inc`) behind a gate on
/// `listen`; with `tls`, every connection must present a certificate of
/// the CA.
pub(crate) async fn start_server(
    listen: SocketAddr,
    cookie: &str,
    me: &NodeId,
    events: mpsc::UnboundedSender<TransportEvent>,
    tls: Option<&Tls>,
    limits: GateLimits,
    counters: std::sync::Arc<GateCounters>,
) -> Result<Server, StartError> {
    let err = |source: Box<dyn std::error::Error + Send + Sync>| StartError::Transport {
        addr: listen.to_string(),
        source,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| err(e.into()))?;
    let parked = Parked::pick().map_err(|e| err(e.into()))?;
    let server = NodeServer::new(
        parked.port,
        cookie.to_string(),
        me.to_string(),
        listen.ip().to_string(),
        Some(IncomingEncryptionMode::Tls(
            Parked::acceptor().map_err(|e| err(e.into()))?,
        )),
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(std::net::Ipv4Addr::LOCALHOST.into());
    let (server, _) = ractor::Actor::spawn(None, server, ())
        .await
        .map_err(|e| err(e.into()))?;
    let mut gate = Gate::new(limits, counters);
    server
        .cast(NodeServerMessage::SubscribeToEvents {
            id: "drove".to_string(),
            subscription: Box::new(Subscription {
                events,
                gate: gate.watcher(),
            }),
        })
        .map_err(|e| err(e.into()))?;
    if let Err(e) = gate
        .open(listener, &parked, server.clone(), tls.map(|t| t.acceptor()))
        .await
    {
        server.stop(None);
        return Err(err(e.into()));
    }
    Ok(Server {
        node_server: server,
        gate,
    })
}

/// The peer's inbox, once ractor_cluster has synchronized its group.
pub(crate) fn remote_inbox(cluster_node: u64) -> Option<ActorRef<Vec<u8>>> {
    ractor::pg::get_members(&INBOX_GROUP.to_string())
        .into_iter()
        .find(|c: &ActorCell| !c.get_id().is_local() && c.get_id().node() == cluster_node)
        .map(ActorRef::from)
}

/// The inbox: takes batches from peers and hands them to the node.
pub(crate) struct Inbox {
    pub(crate) node: Node,
}

impl ractor::Actor for Inbox {
    type Msg = Vec<u8>;
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _: (),
    ) -> Result<(), ActorProcessingErr> {
        ractor::pg::join(INBOX_GROUP.to_string(), vec![myself.get_cell()]);
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        batch: Vec<u8>,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        self.node.receive_batch(&batch);
        Ok(())
    }
}
