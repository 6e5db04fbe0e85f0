//! The transport: ractor_cluster's `NodeServer` (cookie handshake, framing,
//! frame-size limit) and drove's inbox, the one remote-visible actor per node.

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

struct Subscription(mpsc::UnboundedSender<TransportEvent>);

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
    }

    fn node_session_ready(&self, ses: ractor_cluster::node::NodeServerSessionInformation) {
        match peer_id(&ses) {
            Some(peer) => {
                let _ = self.0.send(TransportEvent::Ready {
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
        let _ = self.0.send(TransportEvent::Closed {
            peer: peer_id(&ses),
            cluster_node: ses.node_id,
            peer_addr: ses.peer_addr.clone(),
        });
    }
}

/// Starts ractor_cluster's server on `listen`, named `me` (`name#inc`);
/// with `tls`, every connection must present a certificate of the CA.
pub(crate) async fn start_server(
    listen: SocketAddr,
    cookie: &str,
    me: &NodeId,
    events: mpsc::UnboundedSender<TransportEvent>,
    tls: Option<&Tls>,
) -> Result<ActorRef<NodeServerMessage>, StartError> {
    let err = |source: Box<dyn std::error::Error + Send + Sync>| StartError::Transport {
        addr: listen.to_string(),
        source,
    };
    // Bind once ourselves first: ractor_cluster binds inside a child actor,
    // where a taken port would only surface as a log line.
    drop(
        tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| err(e.into()))?,
    );
    let server = NodeServer::new(
        listen.port(),
        cookie.to_string(),
        me.to_string(),
        listen.ip().to_string(),
        tls.map(|t| IncomingEncryptionMode::Tls(t.acceptor())),
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(listen.ip());
    let (server, _) = ractor::Actor::spawn(None, server, ())
        .await
        .map_err(|e| err(e.into()))?;
    server
        .cast(NodeServerMessage::SubscribeToEvents {
            id: "drove".to_string(),
            subscription: Box::new(Subscription(events)),
        })
        .map_err(|e| err(e.into()))?;
    Ok(server)
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
