//! The membership view: a pure state machine fed with gossip snapshots and
//! connection events, answering with membership events and actions.
//!
//! See `ALGORITHM.md` beside this crate for the rules and why they hold.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::node_id::NodeId;

/// How to reach a node: its identity and its two listen addresses.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// The node's identity.
    pub id: NodeId,
    /// Its cluster (`--listen`) address.
    pub addr: String,
    /// Its admin HTTP (`--http`) address.
    pub http: String,
}

/// The status of one incarnation as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Reachable and serving.
    Up,
    /// Declared down: final for this incarnation.
    Down,
    /// Announced that it is leaving; still reachable.
    Leaving,
    /// Left gracefully: final for this incarnation.
    Left,
}

impl MemberStatus {
    /// The lower-case name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::Up => "up",
            MemberStatus::Down => "down",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Left => "left",
        }
    }

    fn is_alive(self) -> bool {
        matches!(self, MemberStatus::Up | MemberStatus::Leaving)
    }
}

/// One row of the member table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Identity and addresses.
    pub info: MemberInfo,
    /// Status as this node sees it.
    pub status: MemberStatus,
}

/// What a node says about itself in gossip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announced {
    /// Serving.
    Up,
    /// On its way out (SIGTERM received).
    Leaving,
}

/// What gossip currently says about one node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipNode {
    /// Identity and addresses, as the node published them.
    pub info: MemberInfo,
    /// The status the node published for itself.
    pub announced: Announced,
    /// The failure detector's verdict: `true` while heartbeats arrive.
    pub live: bool,
    /// The incarnations this node has declared down, with the wall-clock
    /// millisecond at which it did.
    pub declared_down: Vec<(NodeId, u64)>,
}

/// Something code can subscribe to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipEvent {
    /// A new incarnation joined.
    NodeUp(MemberInfo),
    /// An incarnation was declared down (crashed, silent, cut off, or
    /// replaced by a newer incarnation of the same name).
    NodeDown(NodeId),
    /// An incarnation announced it is leaving.
    NodeLeaving(NodeId),
    /// An incarnation left gracefully.
    NodeLeft(NodeId),
    /// This node was declared down by the cluster and rejoined as a new
    /// incarnation (emitted by the runtime, not by the view): everything the
    /// old incarnation held belongs to the survivors now.
    Rejoined {
        /// The incarnation that was declared down.
        old: NodeId,
        /// The incarnation it rejoined as.
        new: NodeId,
    },
}

impl std::fmt::Display for MembershipEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MembershipEvent::NodeUp(info) => write!(f, "{} up at {}", info.id, info.addr),
            MembershipEvent::NodeDown(id) => write!(f, "{id} down"),
            MembershipEvent::NodeLeaving(id) => write!(f, "{id} leaving"),
            MembershipEvent::NodeLeft(id) => write!(f, "{id} left"),
            MembershipEvent::Rejoined { old, new } => write!(f, "rejoined: {old} is now {new}"),
        }
    }
}

/// What the view asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Tell subscribers.
    Event(MembershipEvent),
    /// Open a transport connection to this member.
    Connect(MemberInfo),
    /// Close any transport connection to this incarnation.
    Disconnect(NodeId),
    /// Publish in gossip that this node declared `NodeId` down at this
    /// wall-clock millisecond.
    PublishDown(NodeId, u64),
    /// This incarnation was declared down by the cluster: drop what it held
    /// and rejoin as a new incarnation.
    Rejoin,
}

/// Tunables of the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewConfig {
    /// Two declarations closer than this many milliseconds are concurrent
    /// (a partition seen from both sides); see `ALGORITHM.md`.
    pub concurrent_window_ms: u64,
}

impl Default for ViewConfig {
    fn default() -> Self {
        Self {
            concurrent_window_ms: 2_000,
        }
    }
}

/// One node's view of the cluster.
#[derive(Debug, Clone)]
pub struct MembershipView {
    config: ViewConfig,
    me: MemberInfo,
    my_status: MemberStatus,
    /// The latest known incarnation of every name but ours.
    members: BTreeMap<String, Member>,
    /// Incarnations that are down or left: final, never admitted again.
    finished: BTreeSet<NodeId>,
    /// When this incarnation declared each node down (wall-clock ms).
    my_declarations: BTreeMap<NodeId, u64>,
    /// Declarations adopted for incarnations this node never held up, with
    /// the declarer's time: seconded once the target shows in gossip.
    unsaid: BTreeMap<NodeId, u64>,
    rejoin_requested: bool,
}

/// Whether this node must rejoin, given declarations against it by nodes it
/// had itself declared down (a mutual declaration, as after a partition).
///
/// `mine` are (declarer, when I declared it, when it declared me) triples
/// for declarers I had declared; `my_side` and `their_side` are the names on
/// each side. Exactly one side of a mutual pair rejoins: see `ALGORITHM.md`.
pub fn mutual_declaration_loses(
    window_ms: u64,
    pairs: &[(u64, u64)],
    my_side: &BTreeSet<String>,
    their_side: &BTreeSet<String>,
) -> bool {
    let mut concurrent = false;
    for &(i_declared_at, it_declared_at) in pairs {
        if it_declared_at.saturating_add(window_ms) < i_declared_at {
            // It declared me clearly first: I was the one out.
            return true;
        }
        if i_declared_at.saturating_add(window_ms) >= it_declared_at {
            concurrent = true;
        }
    }
    if !concurrent {
        return false;
    }
    match their_side.len().cmp(&my_side.len()) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => their_side.first() < my_side.first(),
    }
}

impl MembershipView {
    /// A view holding only this node.
    pub fn new(me: MemberInfo, config: ViewConfig) -> Self {
        Self {
            config,
            me,
            my_status: MemberStatus::Up,
            members: BTreeMap::new(),
            finished: BTreeSet::new(),
            my_declarations: BTreeMap::new(),
            unsaid: BTreeMap::new(),
            rejoin_requested: false,
        }
    }

    /// This node's identity.
    pub fn me(&self) -> &MemberInfo {
        &self.me
    }

    /// Every known member, this node first, then by name.
    pub fn members(&self) -> Vec<Member> {
        let mut all = vec![Member {
            info: self.me.clone(),
            status: self.my_status,
        }];
        all.extend(self.members.values().cloned());
        all
    }

    /// The status of one incarnation, if known.
    pub fn status_of(&self, id: &NodeId) -> Option<MemberStatus> {
        if *id == self.me.id {
            return Some(self.my_status);
        }
        match self.members.get(&id.name) {
            Some(m) if m.info.id == *id => Some(m.status),
            _ if self.finished.contains(id) => Some(MemberStatus::Down),
            _ => None,
        }
    }

    /// The incarnation of `name` that is currently up or leaving, if any.
    pub fn alive_member(&self, name: &str) -> Option<&Member> {
        self.members.get(name).filter(|m| m.status.is_alive())
    }

    /// Marks this node as leaving (SIGTERM received).
    pub fn set_leaving(&mut self) {
        self.my_status = MemberStatus::Leaving;
    }

    /// After a rejoin: adopt the new identity and forget the old view, so the
    /// new incarnation learns the cluster afresh from gossip.
    pub fn rejoined(&mut self, me: MemberInfo) {
        *self = MembershipView::new(me, self.config);
    }

    fn trusted(&self, id: &NodeId, candidates: &BTreeSet<NodeId>) -> bool {
        if self.finished.contains(id) {
            return false;
        }
        candidates.contains(id)
            || self
                .members
                .get(&id.name)
                .is_some_and(|m| m.info.id == *id && m.status.is_alive())
    }

    /// Feeds the current gossip state (every node chitchat knows, live or
    /// not). `now_ms` is this node's wall clock, used to stamp declarations.
    pub fn observe(&mut self, gossip: &[GossipNode], now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        let others: Vec<&GossipNode> = gossip
            .iter()
            .filter(|g| g.info.id.name != self.me.id.name)
            .collect();
        let candidates: BTreeSet<NodeId> = others
            .iter()
            .filter(|g| g.live && !self.finished.contains(&g.info.id))
            .map(|g| g.info.id.clone())
            .collect();

        self.apply_declarations(gossip, &candidates, &mut out);
        self.second_unsaid(gossip, &mut out);
        self.check_self_declared(gossip, &candidates);

        for g in &others {
            let id = &g.info.id;
            if self.finished.contains(id) {
                continue;
            }
            let current = self.members.get(&id.name).cloned();
            match current {
                Some(m) if m.info.id == *id => {
                    if !g.live {
                        self.finish(id, now_ms, true, &mut out);
                    } else if g.announced == Announced::Leaving && m.status == MemberStatus::Up {
                        self.set_status(id, MemberStatus::Leaving);
                        out.push(Output::Event(MembershipEvent::NodeLeaving(id.clone())));
                    }
                }
                _ if !g.live => {}
                other => {
                    if let Some(old) = other {
                        if old.status.is_alive() {
                            // A newer incarnation proves the old one is gone.
                            self.finish(&old.info.id, now_ms, false, &mut out);
                        }
                    }
                    let status = match g.announced {
                        Announced::Up => MemberStatus::Up,
                        Announced::Leaving => MemberStatus::Leaving,
                    };
                    self.members.insert(
                        id.name.clone(),
                        Member {
                            info: g.info.clone(),
                            status,
                        },
                    );
                    out.push(Output::Event(MembershipEvent::NodeUp(g.info.clone())));
                    if status == MemberStatus::Up {
                        out.push(Output::Connect(g.info.clone()));
                    }
                }
            }
        }
        if std::mem::take(&mut self.rejoin_requested) {
            out.push(Output::Rejoin);
        }
        out
    }

    /// Third-party declarations, in time order: a declarer's word counts while
    /// it is trusted, and a declarer finished by an earlier declaration is not.
    fn apply_declarations(
        &mut self,
        gossip: &[GossipNode],
        candidates: &BTreeSet<NodeId>,
        out: &mut Vec<Output>,
    ) {
        let mut declarations: Vec<(u64, &NodeId, &NodeId)> = gossip
            .iter()
            .filter(|g| g.info.id != self.me.id)
            .flat_map(|g| {
                g.declared_down
                    .iter()
                    .map(move |(target, at)| (*at, &g.info.id, target))
            })
            .filter(|(_, _, target)| **target != self.me.id)
            .collect();
        declarations.sort();
        for (at, declarer, target) in declarations {
            if self.finished.contains(target) || !self.trusted(declarer, candidates) {
                continue;
            }
            if target.name == self.me.id.name {
                continue;
            }
            match self.members.get(&target.name) {
                // Seconded in gossip, with the declarer's time: the target
                // must learn that this node, too, holds it down. Unsaid, a
                // target that sees this node up counts it on its own side
                // of a mutual declaration, while the declarer counts it on
                // the other, and neither end rejoins.
                Some(m) if m.info.id == *target => self.finish(target, at, true, out),
                _ => {
                    self.finished.insert(target.clone());
                    self.unsaid.insert(target.clone(), at);
                }
            }
        }
    }

    /// Seconds the declarations this node adopted for incarnations it never
    /// held up (a node frozen before this fresh incarnation saw it live),
    /// once the target is in gossip: when it wakes it must hear that this
    /// node holds it down too, for the same reason as any seconding.
    fn second_unsaid(&mut self, gossip: &[GossipNode], out: &mut Vec<Output>) {
        if self.unsaid.is_empty() {
            return;
        }
        for g in gossip {
            if let Some(at) = self.unsaid.remove(&g.info.id) {
                self.my_declarations.insert(g.info.id.clone(), at);
                out.push(Output::PublishDown(g.info.id.clone(), at));
            }
        }
    }

    fn check_self_declared(&mut self, gossip: &[GossipNode], candidates: &BTreeSet<NodeId>) {
        let mut pairs = Vec::new();
        let mut their_side = BTreeSet::new();
        for g in gossip {
            let Some(&(_, at)) = g.declared_down.iter().find(|(t, _)| *t == self.me.id) else {
                continue;
            };
            if self.trusted(&g.info.id, candidates) {
                self.rejoin_requested = true;
                return;
            }
            if let Some(&mine) = self.my_declarations.get(&g.info.id) {
                pairs.push((mine, at));
                their_side.insert(g.info.id.name.clone());
            }
        }
        if pairs.is_empty() {
            return;
        }
        // The other side is everyone this node finished that is back in
        // gossip, not only those whose declaration it sees: a node there
        // that adopted a peer's declaration counts on the other end's side
        // (which sees it as alive) before its seconding reaches this node.
        their_side.extend(
            gossip
                .iter()
                .filter(|g| g.live && self.finished.contains(&g.info.id))
                .map(|g| g.info.id.name.clone()),
        );
        let my_side: BTreeSet<String> = std::iter::once(self.me.id.name.clone())
            .chain(
                self.members
                    .values()
                    .filter(|m| m.status.is_alive())
                    .map(|m| m.info.id.name.clone()),
            )
            .collect();
        if mutual_declaration_loses(
            self.config.concurrent_window_ms,
            &pairs,
            &my_side,
            &their_side,
        ) {
            self.rejoin_requested = true;
        }
    }

    /// The transport connection to `id` closed. For a member that is up this
    /// is the fast crash signal; for one that announced leaving it is the end.
    pub fn connection_lost(&mut self, id: &NodeId, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.status_of(id).is_some_and(MemberStatus::is_alive) && *id != self.me.id {
            self.finish(id, now_ms, true, &mut out);
        }
        out
    }

    /// `id` told us directly that it is leaving.
    pub fn leave_announced(&mut self, id: &NodeId) -> Vec<Output> {
        let mut out = Vec::new();
        if self.status_of(id) == Some(MemberStatus::Up) && *id != self.me.id {
            self.set_status(id, MemberStatus::Leaving);
            out.push(Output::Event(MembershipEvent::NodeLeaving(id.clone())));
        }
        out
    }

    fn set_status(&mut self, id: &NodeId, status: MemberStatus) {
        if let Some(m) = self.members.get_mut(&id.name) {
            if m.info.id == *id {
                m.status = status;
            }
        }
    }

    /// Moves an alive incarnation to its final status: Left if it had
    /// announced leaving, Down otherwise (published when `publish`).
    fn finish(&mut self, id: &NodeId, now_ms: u64, publish: bool, out: &mut Vec<Output>) {
        let Some(status) = self.status_of(id) else {
            self.finished.insert(id.clone());
            return;
        };
        self.finished.insert(id.clone());
        match status {
            MemberStatus::Leaving => {
                self.set_status(id, MemberStatus::Left);
                out.push(Output::Event(MembershipEvent::NodeLeft(id.clone())));
            }
            MemberStatus::Up => {
                self.set_status(id, MemberStatus::Down);
                out.push(Output::Event(MembershipEvent::NodeDown(id.clone())));
                if publish {
                    self.my_declarations.insert(id.clone(), now_ms);
                    out.push(Output::PublishDown(id.clone(), now_ms));
                }
            }
            MemberStatus::Down | MemberStatus::Left => return,
        }
        out.push(Output::Disconnect(id.clone()));
    }
}
