//! The pub/sub API: subscribe, broadcast and friends.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use drove_replication::{Change, Replicated};
use drove_runtime::{wire, Handle, LocalRef, Message, Node, NodeId, SpawnError};

use drove_runtime::{Actor, ActorError, Context};

use crate::message::PubSubMsg;
use crate::metrics::Counters;
use crate::schema::SubscriptionsSchema;
use crate::subscribers::{LocalSubscribers, Sink, SubscriberKey};
use crate::subscription::{Subscription, DEFAULT_STREAM_CAPACITY, MAX_STREAM_CAPACITY};

/// The local name of the pub/sub service on every node.
pub const PUBSUB_NAME: &str = "drove.pubsub";

/// Longest accepted topic, in bytes.
pub const MAX_TOPIC_LEN: usize = 255;

/// Why a pub/sub operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// An empty or overlong topic.
    #[error("invalid topic: must be 1 to {MAX_TOPIC_LEN} bytes")]
    InvalidTopic,
    /// Only actors running on this node can subscribe through it.
    #[error("{0} is not a live actor on this node")]
    NotLocal(String),
    /// The message does not encode.
    #[error("cannot encode the message")]
    Encode(#[source] drove_runtime::WireError),
    /// The service's actor could not be spawned.
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    /// A stream subscription's capacity out of range.
    #[error("a stream subscription holds 1 to {MAX_STREAM_CAPACITY} messages, not {0}")]
    Capacity(usize),
}

/// What a broadcast did on the publishing node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Other nodes the message was sent to (one message each).
    pub nodes: usize,
    /// Subscribers on this node that received it.
    pub local: usize,
    /// Nodes with subscribers it could not be sent to: no link to them
    /// (yet, or any more), or their link is full (`Overloaded`).
    pub failed: usize,
}

/// The state of one node's service.
struct Shared {
    node: Node,
    subscriptions: Replicated<SubscriptionsSchema>,
    local: Mutex<LocalSubscribers>,
    next_stream: AtomicU64,
    counters: Counters,
}

/// Cluster pub/sub on one node. Cheap to clone.
#[derive(Clone)]
pub struct PubSub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubSub")
            .field("node", &self.node().id())
            .finish_non_exhaustive()
    }
}

fn check_topic(topic: &str) -> Result<(), PubSubError> {
    if topic.is_empty() || topic.len() > MAX_TOPIC_LEN {
        return Err(PubSubError::InvalidTopic);
    }
    Ok(())
}

impl PubSub {
    /// Starts the service on `node`.
    pub async fn start(node: &Node) -> Result<PubSub, PubSubError> {
        let mut builder = Replicated::builder(node);
        // This node rejoined as a new incarnation: the core dropped the
        // old incarnation's slots, so its topics are announced again.
        let mut rejoined_rx = builder.subscribe(|_, me, change| match change {
            Change::Purged { owner, .. } if owner == me => Some(()),
            _ => None,
        });
        let subscriptions = builder.start().await?;
        let shared = Arc::new(Shared {
            node: node.clone(),
            subscriptions,
            local: Mutex::default(),
            next_stream: AtomicU64::new(1),
            counters: Counters::default(),
        });
        node.spawn_named(PUBSUB_NAME, PubSubActor(Arc::downgrade(&shared)), ())
            .await?;
        let weak = Arc::downgrade(&shared);
        node.on_actor_stopped(Box::new(move |id, _| {
            if let Some(shared) = weak.upgrade() {
                let pubsub = PubSub { shared };
                let emptied = pubsub.lock().remove_actor(id);
                pubsub.withdraw(&emptied);
            }
        }));
        let weak = Arc::downgrade(&shared);
        tokio::spawn(async move {
            while rejoined_rx.recv().await.is_some() {
                let Some(shared) = weak.upgrade() else { return };
                let pubsub = PubSub { shared };
                let topics: Vec<String> = pubsub.lock().topics().cloned().collect();
                pubsub.announce(&topics);
            }
        });
        Ok(PubSub { shared })
    }

    fn lock(&self) -> MutexGuard<'_, LocalSubscribers> {
        self.shared.local.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks this node as having subscribers to `topics`.
    fn announce(&self, topics: &[String]) {
        if topics.is_empty() {
            return;
        }
        self.shared.subscriptions.write(|w| {
            for topic in topics {
                let mine = w
                    .replica()
                    .slots(topic.as_str())
                    .any(|s| s.owner == w.me() && s.value.is_some());
                if !mine {
                    w.put(Arc::from(topic.as_str()), None, true);
                }
            }
        });
    }

    /// Marks this node as having no subscribers to `topics` any more.
    fn withdraw(&self, topics: &[String]) {
        if topics.is_empty() {
            return;
        }
        self.shared.subscriptions.write(|w| {
            for topic in topics {
                let mine = w
                    .replica()
                    .slots(topic.as_str())
                    .find(|s| s.owner == w.me() && s.value.is_some())
                    .map(|s| s.lineage);
                if let Some(lineage) = mine {
                    w.remove(Arc::from(topic.as_str()), lineage);
                }
            }
        });
    }

    fn add<M: Message + Clone>(
        &self,
        topic: &str,
        key: SubscriberKey,
        sink: Sink<M>,
    ) -> Result<(), PubSubError> {
        check_topic(topic)?;
        let first = self.lock().add(topic, key, sink);
        if first {
            self.announce(&[topic.to_string()]);
        }
        Ok(())
    }

    fn remove(&self, topic: &str, key: &SubscriberKey) {
        let emptied = self.lock().remove(topic, key);
        if emptied {
            self.withdraw(&[topic.to_string()]);
        }
    }

    /// Subscribes a local actor to `topic`: it receives every message of
    /// type `M` broadcast to the topic anywhere in the cluster, until it
    /// unsubscribes or stops.
    pub fn subscribe<M: Message + Clone>(
        &self,
        topic: &str,
        actor: &Handle<M>,
    ) -> Result<(), PubSubError> {
        let id = self.local_actor(actor)?;
        self.add(topic, SubscriberKey::Actor(id), Sink::Actor(actor.clone()))
    }

    /// Stops a local actor's subscription to `topic`.
    pub fn unsubscribe<M: Message>(&self, topic: &str, actor: &Handle<M>) {
        if let Ok(id) = self.local_actor(actor) {
            self.remove(topic, &SubscriberKey::Actor(id));
        }
    }

    /// Subscribes a stream to `topic`, holding up to
    /// [`DEFAULT_STREAM_CAPACITY`] messages it has not read; dropping it
    /// unsubscribes.
    pub fn subscribe_stream<M: Message + Clone>(
        &self,
        topic: &str,
    ) -> Result<Subscription<M>, PubSubError> {
        self.subscribe_stream_with(topic, DEFAULT_STREAM_CAPACITY)
    }

    /// As [`subscribe_stream`](Self::subscribe_stream), holding up to
    /// `capacity` unread messages (1 to [`MAX_STREAM_CAPACITY`]) before the
    /// oldest is dropped and the subscriber told so with a
    /// [`Lagged`](crate::Lagged) notice.
    pub fn subscribe_stream_with<M: Message + Clone>(
        &self,
        topic: &str,
        capacity: usize,
    ) -> Result<Subscription<M>, PubSubError> {
        if capacity == 0 || capacity > MAX_STREAM_CAPACITY {
            return Err(PubSubError::Capacity(capacity));
        }
        let (tx, rx) = broadcast::channel(capacity);
        let key = SubscriberKey::Stream(self.shared.next_stream.fetch_add(1, Ordering::Relaxed));
        self.add(topic, key.clone(), Sink::Stream(tx))?;
        let weak = Arc::downgrade(&self.shared);
        let unsubscribe = Box::new(move |topic: &str, key: &SubscriberKey| {
            if let Some(shared) = weak.upgrade() {
                PubSub { shared }.remove(topic, key);
            }
        });
        let lagged = self.shared.counters.lagged();
        Ok(Subscription::new(topic, key, rx, lagged, unsubscribe))
    }

    fn local_actor<M>(&self, actor: &Handle<M>) -> Result<u64, PubSubError> {
        let addr = actor.addr();
        let not_local = || PubSubError::NotLocal(addr.to_string());
        if addr.node != self.shared.node.id() {
            return Err(not_local());
        }
        match &addr.local {
            LocalRef::Id(id) => self
                .shared
                .node
                .local_id(&LocalRef::Id(*id))
                .ok_or_else(not_local),
            name @ LocalRef::Name(_) => self.shared.node.local_id(name).ok_or_else(not_local),
        }
    }

    /// Sends `msg` to every subscriber of `topic` in the cluster.
    pub fn broadcast<M: Message + Clone>(
        &self,
        topic: &str,
        msg: &M,
    ) -> Result<Published, PubSubError> {
        self.publish(topic, msg, None, Scope::Cluster)
    }

    /// As [`broadcast`](Self::broadcast), but not to `from` (the sender's own
    /// subscription on this node).
    pub fn broadcast_from<M: Message + Clone>(
        &self,
        from: &SubscriberKey,
        topic: &str,
        msg: &M,
    ) -> Result<Published, PubSubError> {
        self.publish(topic, msg, Some(from), Scope::Cluster)
    }

    /// Sends `msg` to the subscribers of `topic` on this node only.
    pub fn local_broadcast<M: Message + Clone>(
        &self,
        topic: &str,
        msg: &M,
    ) -> Result<Published, PubSubError> {
        self.publish(topic, msg, None, Scope::Local)
    }

    /// Sends `msg` to the subscribers of `topic` on `node` only.
    pub fn direct_broadcast<M: Message + Clone>(
        &self,
        node: &NodeId,
        topic: &str,
        msg: &M,
    ) -> Result<Published, PubSubError> {
        if *node == self.shared.node.id() {
            return self.publish(topic, msg, None, Scope::Local);
        }
        self.publish(topic, msg, None, Scope::Node(node))
    }

    fn publish<M: Message + Clone>(
        &self,
        topic: &str,
        msg: &M,
        except: Option<&SubscriberKey>,
        scope: Scope<'_>,
    ) -> Result<Published, PubSubError> {
        check_topic(topic)?;
        let mut published = Published::default();
        let targets: Vec<NodeId> = match scope {
            Scope::Local => Vec::new(),
            Scope::Node(node) => vec![node.clone()],
            Scope::Cluster => self.remote_subscribers(topic),
        };
        if !targets.is_empty() {
            let payload = wire::encode(msg).map_err(PubSubError::Encode)?;
            for target in targets {
                if self.send_to(&target, topic, wire::tag_of(M::TAG), payload.clone()) {
                    published.nodes += 1;
                } else {
                    published.failed += 1;
                }
            }
        }
        if !matches!(scope, Scope::Node(_)) {
            published.local = self.deliver_local(topic, msg, except);
        }
        Ok(published)
    }

    fn send_to(&self, target: &NodeId, topic: &str, tag: u64, payload: Vec<u8>) -> bool {
        let bytes = payload.len() as u64;
        let handle: Handle<PubSubMsg> = Handle::named(target.clone(), PUBSUB_NAME);
        let msg = PubSubMsg::Deliver {
            from: self.shared.node.name().to_string(),
            topic: topic.to_string(),
            tag,
            payload,
        };
        match self.shared.node.cast(&handle, msg) {
            Ok(()) => {
                self.shared.counters.sent(&target.name, bytes);
                true
            }
            Err(e) => {
                self.shared.counters.send_failed();
                tracing::debug!(peer = %target, error = %e, "pub/sub message not sent");
                false
            }
        }
    }

    fn deliver_local<M: Message + Clone>(
        &self,
        topic: &str,
        msg: &M,
        except: Option<&SubscriberKey>,
    ) -> usize {
        let tag = wire::tag_of(M::TAG);
        let node = &self.shared.node;
        let (done, emptied) = self.lock().deliver(topic, |group_tag, group| {
            if group_tag == tag {
                group.deliver_local(node, msg as &dyn Any, except)
            } else {
                Default::default()
            }
        });
        self.after_delivery(topic, done.delivered, emptied);
        done.delivered
    }

    fn deliver_remote(&self, from: &str, topic: &str, tag: u64, payload: &[u8]) {
        self.shared.counters.received(from);
        let node = &self.shared.node;
        let mut undecodable = false;
        let (done, emptied) = self.lock().deliver(topic, |group_tag, group| {
            if group_tag != tag {
                return Default::default();
            }
            match group.deliver_encoded(node, payload, None) {
                Ok(d) => d,
                Err(e) => {
                    undecodable = true;
                    tracing::warn!(%from, %topic, error = %e, "pub/sub message does not decode");
                    Default::default()
                }
            }
        });
        if undecodable {
            self.shared.counters.undecodable();
        }
        self.after_delivery(topic, done.delivered, emptied);
    }

    fn after_delivery(&self, topic: &str, delivered: usize, emptied: bool) {
        self.shared.counters.delivered(delivered as u64);
        if emptied {
            self.withdraw(&[topic.to_string()]);
        }
    }

    /// Other nodes that have subscribers to `topic`, as far as this node's
    /// table knows. Not filtered by this node's view of the members: a node
    /// that has just joined can learn the table before it sees the owners
    /// up or has links to them, and a send to such an owner must count as
    /// failed, never vanish. (The slots of owners that go down or leave
    /// are purged from the table.)
    fn remote_subscribers(&self, topic: &str) -> Vec<NodeId> {
        self.shared.subscriptions.read(|r, me| {
            r.slots(topic)
                .filter(|s| s.value.is_some() && s.owner != me)
                .map(|s| s.owner.clone())
                .collect()
        })
    }

    /// Nodes with subscribers to `topic`, this one included.
    pub fn subscriber_nodes(&self, topic: &str) -> Vec<NodeId> {
        let mut nodes: Vec<NodeId> = self.shared.subscriptions.read(|r, _| {
            r.slots(topic)
                .filter(|s| s.value.is_some())
                .map(|s| s.owner.clone())
                .collect()
        });
        nodes.sort();
        nodes
    }

    /// Every topic with subscribers somewhere, with the nodes that have them.
    pub fn topics(&self) -> Vec<(String, Vec<NodeId>)> {
        let mut out: Vec<(String, Vec<NodeId>)> = self.shared.subscriptions.read(|r, _| {
            r.keys()
                .filter_map(|k| {
                    let mut nodes: Vec<NodeId> = r
                        .slots(&**k)
                        .filter(|s| s.value.is_some())
                        .map(|s| s.owner.clone())
                        .collect();
                    nodes.sort();
                    (!nodes.is_empty()).then(|| (k.to_string(), nodes))
                })
                .collect()
        });
        out.sort();
        out
    }

    /// Subscribers of `topic` on this node.
    pub fn local_subscribers(&self, topic: &str) -> usize {
        self.lock().count(topic)
    }

    /// The node the service runs on.
    pub fn node(&self) -> &Node {
        &self.shared.node
    }

    /// Prometheus text: per-peer messages and bytes, deliveries, errors.
    pub fn metrics_text(&self) -> String {
        let topics = self.lock().topics().count();
        self.shared.counters.render(self.shared.node.name(), topics)
    }
}

enum Scope<'a> {
    Cluster,
    Local,
    Node(&'a NodeId),
}

/// Receives other nodes' [`PubSubMsg`]s for this node's subscribers.
struct PubSubActor(Weak<Shared>);

impl Actor for PubSubActor {
    type Msg = PubSubMsg;
    type State = ();
    type Args = ();

    async fn init(&self, _: &Context<Self>, _: ()) -> Result<(), ActorError> {
        Ok(())
    }

    async fn handle(
        &self,
        _: &Context<Self>,
        msg: PubSubMsg,
        _: &mut (),
    ) -> Result<(), ActorError> {
        let Some(shared) = self.0.upgrade() else {
            return Ok(());
        };
        let PubSubMsg::Deliver {
            from,
            topic,
            tag,
            payload,
        } = msg;
        PubSub { shared }.deliver_remote(&from, &topic, tag, &payload);
        Ok(())
    }
}
