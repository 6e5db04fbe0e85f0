//! This node's subscribers: per topic, one group per message type, so a
//! message that arrives from another node is decoded once per type, not
//! once per subscriber.

use std::any::Any;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use drove_runtime::{wire, Handle, Message, Node};

/// Who a subscription is, so `broadcast_from` can leave the sender out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SubscriberKey {
    /// A local actor, by its local id.
    Actor(u64),
    /// A stream subscription, by the number this node gave it.
    Stream(u64),
}

/// Where one subscriber's messages go.
pub(crate) enum Sink<M> {
    Actor(Handle<M>),
    /// A bounded ring: a full one drops its oldest message.
    Stream(broadcast::Sender<M>),
}

impl<M: Message> Sink<M> {
    /// Hands over one message; false when the subscriber is gone.
    fn send(&self, node: &Node, msg: M) -> bool {
        match self {
            Sink::Actor(h) => node.cast(h, msg).is_ok(),
            // Fails only when the subscription is gone; a full ring drops
            // its oldest message instead.
            Sink::Stream(tx) => tx.send(msg).is_ok(),
        }
    }
}

/// What one delivery did.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Delivered {
    pub(crate) delivered: usize,
    pub(crate) gone: usize,
}

/// The subscribers of one topic that take one message type.
pub(crate) trait Group: Send {
    /// Delivers an encoded message (from another node): decodes it once.
    fn deliver_encoded(
        &mut self,
        node: &Node,
        payload: &[u8],
        except: Option<&SubscriberKey>,
    ) -> Result<Delivered, wire::WireError>;
    /// Delivers a message published on this node; `msg` is an `M`.
    fn deliver_local(
        &mut self,
        node: &Node,
        msg: &dyn Any,
        except: Option<&SubscriberKey>,
    ) -> Delivered;
    fn remove(&mut self, key: &SubscriberKey) -> bool;
    fn len(&self) -> usize;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

pub(crate) struct TypedGroup<M> {
    pub(crate) subs: Vec<(SubscriberKey, Sink<M>)>,
}

impl<M: Message + Clone> TypedGroup<M> {
    fn fan_out(&mut self, node: &Node, msg: &M, except: Option<&SubscriberKey>) -> Delivered {
        let mut out = Delivered::default();
        self.subs.retain(|(key, sink)| {
            if Some(key) == except {
                return true;
            }
            if sink.send(node, msg.clone()) {
                out.delivered += 1;
                true
            } else {
                out.gone += 1;
                false
            }
        });
        out
    }
}

impl<M: Message + Clone> Group for TypedGroup<M> {
    fn deliver_encoded(
        &mut self,
        node: &Node,
        payload: &[u8],
        except: Option<&SubscriberKey>,
    ) -> Result<Delivered, wire::WireError> {
        let msg: M = wire::decode(payload, "pub/sub message")?;
        Ok(self.fan_out(node, &msg, except))
    }

    fn deliver_local(
        &mut self,
        node: &Node,
        msg: &dyn Any,
        except: Option<&SubscriberKey>,
    ) -> Delivered {
        match msg.downcast_ref::<M>() {
            Some(msg) => self.fan_out(node, msg, except),
            None => Delivered::default(),
        }
    }

    fn remove(&mut self, key: &SubscriberKey) -> bool {
        let before = self.subs.len();
        self.subs.retain(|(k, _)| k != key);
        self.subs.len() != before
    }

    fn len(&self) -> usize {
        self.subs.len()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// Every local subscription: topic -> message tag -> group.
#[derive(Default)]
pub(crate) struct LocalSubscribers {
    topics: HashMap<String, HashMap<u64, Box<dyn Group>>>,
    /// Topics each local actor subscribes to, to drop them when it stops.
    by_actor: HashMap<u64, Vec<String>>,
}

impl LocalSubscribers {
    /// Adds a subscriber; true when it is the topic's first on this node.
    pub(crate) fn add<M: Message + Clone>(
        &mut self,
        topic: &str,
        key: SubscriberKey,
        sink: Sink<M>,
    ) -> bool {
        let first = !self.topics.contains_key(topic);
        let groups = self.topics.entry(topic.to_string()).or_default();
        let group = groups
            .entry(wire::tag_of(M::TAG))
            .or_insert_with(|| Box::new(TypedGroup::<M> { subs: Vec::new() }));
        if let Some(typed) = group.as_any_mut().downcast_mut::<TypedGroup<M>>() {
            typed.subs.retain(|(k, _)| *k != key);
            typed.subs.push((key.clone(), sink));
        }
        if let SubscriberKey::Actor(id) = key {
            let topics = self.by_actor.entry(id).or_default();
            if !topics.iter().any(|t| t == topic) {
                topics.push(topic.to_string());
            }
        }
        first
    }

    /// Removes a subscriber; true when the topic has none left here.
    pub(crate) fn remove(&mut self, topic: &str, key: &SubscriberKey) -> bool {
        if let SubscriberKey::Actor(id) = key {
            if let Some(topics) = self.by_actor.get_mut(id) {
                topics.retain(|t| t != topic);
                if topics.is_empty() {
                    self.by_actor.remove(id);
                }
            }
        }
        let Some(groups) = self.topics.get_mut(topic) else {
            return false;
        };
        for group in groups.values_mut() {
            group.remove(key);
        }
        self.prune(topic)
    }

    /// Removes an actor from every topic; returns the topics left empty.
    pub(crate) fn remove_actor(&mut self, id: u64) -> Vec<String> {
        let topics = self.by_actor.remove(&id).unwrap_or_default();
        let key = SubscriberKey::Actor(id);
        let mut emptied = Vec::new();
        for topic in topics {
            if let Some(groups) = self.topics.get_mut(&topic) {
                for group in groups.values_mut() {
                    group.remove(&key);
                }
            }
            if self.prune(&topic) {
                emptied.push(topic);
            }
        }
        emptied
    }

    /// Drops empty groups; true when the whole topic went.
    fn prune(&mut self, topic: &str) -> bool {
        let Some(groups) = self.topics.get_mut(topic) else {
            return false;
        };
        groups.retain(|_, g| g.len() > 0);
        if groups.is_empty() {
            self.topics.remove(topic);
            return true;
        }
        false
    }

    /// Runs `f` on each group of `topic`; returns the totals and whether the
    /// topic lost its last subscriber on the way.
    pub(crate) fn deliver(
        &mut self,
        topic: &str,
        mut f: impl FnMut(u64, &mut dyn Group) -> Delivered,
    ) -> (Delivered, bool) {
        let mut total = Delivered::default();
        let Some(groups) = self.topics.get_mut(topic) else {
            return (total, false);
        };
        for (tag, group) in groups.iter_mut() {
            let d = f(*tag, group.as_mut());
            total.delivered += d.delivered;
            total.gone += d.gone;
        }
        let emptied = total.gone > 0 && self.prune(topic);
        (total, emptied)
    }

    /// Local subscribers of `topic`.
    pub(crate) fn count(&self, topic: &str) -> usize {
        self.topics
            .get(topic)
            .map(|g| g.values().map(|g| g.len()).sum())
            .unwrap_or(0)
    }

    /// Topics with local subscribers.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &String> {
        self.topics.keys()
    }
}
