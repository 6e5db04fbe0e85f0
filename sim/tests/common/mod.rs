//! What the scenarios over replication channels share: the channels of a
//! simulated cluster, addressed by node index, each named `n<i>` with the
//! incarnation its life in the simulation has.

use drove_replication::{Channel, Outgoing, ReplMsg, ReplicationConfig, Schema};
use drove_runtime::{Incarnation, NodeId};
use drove_sim::Sim;

/// One replication channel per simulated node; `None` while it is down.
pub(crate) struct Replicas<S: Schema> {
    /// The running channels, by node index.
    pub(crate) channels: Vec<Option<Channel<S>>>,
    config: ReplicationConfig,
}

impl<S: Schema> Replicas<S> {
    /// `n` nodes, none booted yet.
    pub(crate) fn new(n: usize, config: ReplicationConfig) -> Self {
        Replicas {
            channels: (0..n).map(|_| None).collect(),
            config,
        }
    }

    /// The identity node `i` runs as, while it runs.
    pub(crate) fn id(&self, i: usize) -> Option<NodeId> {
        self.channels[i].as_ref().map(|c| c.me().clone())
    }

    /// Node `i`'s identity for the incarnation its life has now.
    pub(crate) fn current_id(sim: &Sim<ReplMsg<S>>, i: usize) -> NodeId {
        NodeId::new(format!("n{i}"), Incarnation(sim.lives.incarnation(i)))
    }

    /// Ships what node `from` sent, to whichever node still runs each
    /// addressee (a message to an identity no node has is lost).
    pub(crate) fn send(&self, sim: &mut Sim<ReplMsg<S>>, from: usize, out: Vec<Outgoing<S>>) {
        for Outgoing { to, msg } in out {
            match (0..self.channels.len()).find(|&j| self.id(j).as_ref() == Some(&to)) {
                Some(j) => sim.send(from, j, msg),
                None => sim.faults.note("to_dead"),
            }
        }
    }

    /// Starts node `i` as its current incarnation; membership tells
    /// everyone.
    pub(crate) fn boot(&mut self, sim: &mut Sim<ReplMsg<S>>, i: usize) {
        let me = Self::current_id(sim, i);
        let mut channel = Channel::new(me.clone(), &self.config, Vec::new());
        let mut out = Vec::new();
        for j in 0..self.channels.len() {
            if let Some(other) = self.id(j) {
                out.extend(channel.peer_up(other));
            }
        }
        self.channels[i] = Some(channel);
        self.send(sim, i, out);
        for j in (0..self.channels.len()).filter(|&j| j != i) {
            if let Some(c) = self.channels[j].as_mut() {
                let out = c.peer_up(me.clone());
                self.send(sim, j, out);
            }
        }
    }

    /// Membership declares `gone` down on every other running channel.
    pub(crate) fn declare_down(&mut self, sim: &mut Sim<ReplMsg<S>>, gone: &NodeId, wall: u64) {
        for j in 0..self.channels.len() {
            let out = match self.channels[j].as_mut() {
                Some(c) if c.me() != gone => c.peer_gone(gone, wall),
                _ => continue,
            };
            self.send(sim, j, out);
        }
    }

    /// Node `i` dies for `down_ms`; membership declares it down. Returns
    /// the identity it had.
    pub(crate) fn crash(
        &mut self,
        sim: &mut Sim<ReplMsg<S>>,
        i: usize,
        down_ms: u64,
        wall: u64,
    ) -> Option<NodeId> {
        let gone = self.channels[i].take()?.me().clone();
        sim.crash(i, down_ms);
        self.declare_down(sim, &gone, wall);
        Some(gone)
    }
}
