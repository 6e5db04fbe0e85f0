//! The supervisor's distributed decisions as a pure state machine: when a
//! node's children fail over and where, who watches that some node runs
//! them, when a failed start is tried again, what a lost quorum stops, and
//! which children move when a node joins. No clocks or I/O: time comes in
//! as milliseconds, what this node knows comes in through an [`Outlook`],
//! and decisions go out as [`Action`]s for the I/O shell (`moves`) to carry
//! out; their results come back as inputs. The simulation floor
//! (`drove-sim`) runs this same decider on every simulated node.
//!
//! # The rules
//!
//! - **Failover.** A node's records leave the table when it is declared
//!   down ([`Decider::failover`]). Each survivor settles first: the
//!   quorum's fencing margin, or [`ALONE_SETTLE_MS`] if it is alone or
//!   woke from a freeze within [`WOKE_SUSPECT_MS`] (its view may be stale:
//!   it may be the one declared down). Then, for each child that should
//!   run again and that no live node runs, the node placement picks starts
//!   it; every other survivor watches ([`FAILOVER_WATCH_MS`] later) that
//!   some node handled it, and sends the record to the placed node if
//!   none did.
//! - **Retries.** A start that fails is tried again after
//!   [`RETRY_FIRST_WAIT_MS`], doubling up to [`RETRY_MAX_WAIT_MS`],
//!   [`FAILOVER_TRIES`] times in all; then the child is `given_up`. A
//!   watch gives up after as many rounds.
//! - **Rejoin.** A node declared down that comes back stops every local
//!   copy (the survivors own them now) and watches its old children.
//! - **Quorum.** A side that loses its majority stops every local child
//!   (keeping the records); failovers wait for the majority to come back,
//!   and no failover starts within the fencing margin of a membership
//!   change (a side that just lost a member may be the minority without
//!   knowing it yet).
//! - **Duplicates.** A node that runs a child another node started
//!   earlier stops its copy.
//! - **Redistribution.** With [`Redistribution::Active`], once the joins
//!   settle ([`REBALANCE_SETTLE_MS`]), each local child that placement now
//!   puts elsewhere is handed over, one at a time.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use drove_replication::Hlc;
use drove_runtime::NodeId;

use crate::spec::{ChildRecord, ChildStatus, Restart};
use crate::table::Orphan;

/// How long a node that finds itself alone, or that just woke from a
/// freeze, waits before failing children over.
pub const ALONE_SETTLE_MS: u64 = 2_000;

/// A node that woke from a freeze this recently settles before failing
/// over: its view of who is down may be the stale one.
pub const WOKE_SUSPECT_MS: u64 = 5_000;

/// How long a node that did not fail a child over itself waits before it
/// checks that some node runs it: past the placed node's own settle when
/// it just woke, and past a rejoined node's resync.
pub const FAILOVER_WATCH_MS: u64 = 2_500;

/// The first wait before a failed start is tried again; it doubles.
pub const RETRY_FIRST_WAIT_MS: u64 = 200;

/// The longest wait between two tries of a start.
pub const RETRY_MAX_WAIT_MS: u64 = 5_000;

/// Tries of a failover start, or rounds of a watch, before the child is
/// `given_up` (about 20 s).
pub const FAILOVER_TRIES: u32 = 8;

/// How long active redistribution waits after a node declared its types,
/// so that a burst of joins moves each child once, and the new node has
/// caught up with the registry before it adopts named children.
pub const REBALANCE_SETTLE_MS: u64 = 1_000;

/// What happens to running children when a node joins (Horde's
/// `process_redistribution`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Redistribution {
    /// Children stay where they run; only new children go to the new node.
    #[default]
    Passive,
    /// Each child whose placement now picks another node is handed over to
    /// it, with its last checkpoint.
    Active,
}

/// What this node knows when it decides: its membership view, the tables,
/// its own children. Read, never written.
pub trait Outlook {
    /// This node's identity now (a rejoin changes its incarnation).
    fn me(&self) -> NodeId;
    /// Whether no other member is up.
    fn alone(&self) -> bool;
    /// When this node last woke from a freeze, on the decider's clock.
    fn woke_at_ms(&self) -> Option<u64>;
    /// Whether `node` is an up member.
    fn is_up(&self, node: &NodeId) -> bool;
    /// Whether this side may run children (always, without the quorum
    /// strategy).
    fn has_quorum(&self) -> bool;
    /// The node placement picks for child `id` of type `type_name`.
    fn place(&self, id: &str, type_name: &str) -> Option<NodeId>;
    /// The node whose record of `id` wins the table, if any holds one.
    fn runs(&self, id: &str) -> Option<NodeId>;
    /// Whether another node holds a record of child `id` showing it
    /// running.
    fn runs_elsewhere(&self, id: &str) -> bool;
    /// Whether some live node wrote or dropped a slot of `id` after `stamp`.
    fn handled_after(&self, id: &str, stamp: Hlc) -> bool;
    /// Whether child `id` runs on this node.
    fn running_here(&self, id: &str) -> bool;
    /// The records of the children that run here.
    fn running_records(&self) -> Vec<ChildRecord>;
    /// This node's records of children that should run here and do not
    /// (those it stopped when it lost its quorum).
    fn dropped_here(&self) -> Vec<ChildRecord>;
}

/// Which timer fired.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// The next step of child `id`'s failover (settle, watch or retry).
    Child(String),
    /// Active redistribution's settle.
    Rebalance,
}

/// What the shell should do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Start this child here from the record's checkpoint, counting
    /// `restarts`; answer with [`Decider::started`].
    Start {
        /// The child's record (spec and checkpoint).
        record: ChildRecord,
        /// Its count of earlier starts.
        restarts: u32,
    },
    /// Send the record to `target` for it to start the child; answer with
    /// [`Decider::adopted`].
    Adopt {
        /// The node placement picks.
        target: NodeId,
        /// The record, its `restarts` already counting this start.
        record: ChildRecord,
    },
    /// Stop local child `id`, then have `target` adopt it from its final
    /// record; answer with [`Decider::handed_over`].
    HandOver {
        /// The child.
        id: String,
        /// The node placement now picks.
        target: NodeId,
    },
    /// Stop the local copy of child `id` and forget its record: another
    /// node's copy wins.
    StopCopy(String),
    /// Stop every local child, keeping their records.
    StopAll,
    /// Write this node's record of a child (restarting, given up).
    Show(ChildRecord),
    /// Remove this node's record of child `id`.
    Forget(String),
    /// Call [`Decider::fire`] with `which` at `at` ms.
    SetTimer {
        /// When, on the decider's clock.
        at: u64,
        /// Which timer.
        which: Timer,
    },
}

/// How a start here ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartOutcome {
    /// The child runs here.
    Started,
    /// Another live actor holds the child's name: it runs elsewhere.
    NameHeld,
    /// The start failed.
    Failed(String),
}

/// The decider's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeciderConfig {
    /// The quorum strategy's fencing margin, ms; `None` without quorum.
    pub fencing_ms: Option<u64>,
    /// What a join does to running children.
    pub redistribution: Redistribution,
}

/// Where one child's failover stands on this node.
#[derive(Clone, Debug)]
enum Step {
    /// Waiting out the settle or the fencing margin, as incarnation `me`.
    Settling { orphan: Orphan, me: NodeId, at: u64 },
    /// Checking at `at` that some node runs it.
    Watching {
        orphan: Orphan,
        me: NodeId,
        rounds: u32,
        at: u64,
    },
    /// Its record went to a node that has not answered yet.
    Adopting { orphan: Orphan, rounds: u32 },
    /// Starting here: a start under way (`retry_at` none) or a wait.
    Starting {
        attempt: Attempt,
        retry_at: Option<u64>,
    },
}

/// A start of a child here and its tries so far.
#[derive(Clone, Debug)]
struct Attempt {
    /// The orphan it fails over, to watch again if this node rejoins first.
    orphan: Option<Orphan>,
    record: ChildRecord,
    restarts: u32,
    /// This node's incarnation when the start began.
    me: NodeId,
    /// Tries so far, this one included.
    tries: u32,
    /// The wait before the next try.
    wait_ms: u64,
}

/// Whether a child whose node is gone should run again: it had not
/// finished, and its restart policy is not `temporary`.
pub fn should_run_again(record: &ChildRecord) -> bool {
    matches!(
        record.status,
        ChildStatus::Running | ChildStatus::Restarting
    ) && record.spec.restart != Restart::Temporary
}

/// The supervisor's decisions on one node.
#[derive(Clone, Debug, Default)]
pub struct Decider {
    config: DeciderConfig,
    steps: BTreeMap<String, Step>,
    /// Orphans waiting for this side's quorum to come back.
    awaiting_quorum: BTreeMap<String, Orphan>,
    had_quorum: bool,
    /// With the quorum strategy, no failover starts before this: the
    /// fencing margin after the last membership change, so a side that
    /// just lost a member (and may be the minority without knowing yet)
    /// does not start what placement moved to it at once.
    fenced_until: u64,
    /// When the pending redistribution runs.
    rebalance_at: Option<u64>,
    /// Children to hand over, one at a time, and the one under way.
    to_move: VecDeque<(String, NodeId)>,
    moving: Option<String>,
}

impl Decider {
    /// A decider with no work.
    pub fn new(config: DeciderConfig) -> Self {
        Decider {
            config,
            had_quorum: true,
            ..Decider::default()
        }
    }

    /// A node was declared down with these children.
    pub fn failover(&mut self, now: u64, orphans: Vec<Orphan>, o: &impl Outlook) -> Vec<Action> {
        let mut out = Vec::new();
        let settle = match self.config.fencing_ms {
            Some(fencing) => Some(fencing),
            None => {
                let woke = o
                    .woke_at_ms()
                    .is_some_and(|t| now.saturating_sub(t) < WOKE_SUSPECT_MS);
                (o.alone() || woke).then_some(ALONE_SETTLE_MS)
            }
        };
        let me = o.me();
        for orphan in orphans.into_iter().filter(|o| should_run_again(&o.record)) {
            let orphan = self.freshest(orphan);
            let id = orphan.record.spec.id.clone();
            self.awaiting_quorum.remove(&id);
            match settle {
                Some(ms) => {
                    let at = now + ms;
                    self.steps.insert(
                        id.clone(),
                        Step::Settling {
                            orphan,
                            me: me.clone(),
                            at,
                        },
                    );
                    out.push(timer(at, &id));
                }
                None => self.decide(now, orphan, o, &mut out),
            }
        }
        out
    }

    /// This node was declared down and came back as a new incarnation; the
    /// records of its old one.
    pub fn rejoined(&mut self, now: u64, orphans: Vec<Orphan>, o: &impl Outlook) -> Vec<Action> {
        let mut out = vec![Action::StopAll];
        for orphan in orphans.into_iter().filter(|o| should_run_again(&o.record)) {
            let orphan = self.freshest(orphan);
            // In a storm of freezes every node may have been declared down
            // by another, with no survivor left to fail these over.
            if self.config.fencing_ms.is_some() {
                self.await_quorum(now, orphan, o, &mut out);
            } else {
                self.watch(now, orphan, o.me(), 0, &mut out);
            }
        }
        out
    }

    /// Another node runs child `id` too, and its start was earlier.
    pub fn duplicate(&mut self, id: &str) -> Vec<Action> {
        self.steps.remove(id);
        vec![Action::StopCopy(id.to_string())]
    }

    /// Another node declared its types: placement may have moved.
    pub fn types_changed(&mut self, now: u64) -> Vec<Action> {
        if self.config.redistribution != Redistribution::Active || self.rebalance_at.is_some() {
            return Vec::new();
        }
        let at = now + REBALANCE_SETTLE_MS;
        self.rebalance_at = Some(at);
        vec![Action::SetTimer {
            at,
            which: Timer::Rebalance,
        }]
    }

    /// The membership changed: with the quorum strategy, a side that lost
    /// its majority stops its children, and one that got it back runs them
    /// again and fails over what waited for it.
    pub fn membership_changed(&mut self, now: u64, o: &impl Outlook) -> Vec<Action> {
        let mut out = Vec::new();
        let Some(fencing) = self.config.fencing_ms else {
            return out;
        };
        self.fenced_until = self.fenced_until.max(now + fencing);
        if !o.has_quorum() {
            self.had_quorum = false;
            out.push(Action::StopAll);
            return out;
        }
        if std::mem::replace(&mut self.had_quorum, true) {
            return out;
        }
        // Its own children it stopped without quorum: no other side took
        // them over, or this node would have been declared down and have
        // rejoined (its records purged with it).
        let me = o.me();
        for mut record in o.dropped_here() {
            if record.spec.restart == Restart::Temporary {
                // Stopped for good: a temporary child is never restarted.
                record.status = ChildStatus::Stopped;
                record.local = None;
                out.push(Action::Show(record));
                continue;
            }
            let restarts = record.restarts + 1;
            self.start(None, record, restarts, me.clone(), o, &mut out);
        }
        let waiting = std::mem::take(&mut self.awaiting_quorum);
        out.extend(self.failover(now, waiting.into_values().collect(), o));
        out
    }

    /// A timer fired.
    pub fn fire(&mut self, now: u64, which: &Timer, o: &impl Outlook) -> Vec<Action> {
        let mut out = Vec::new();
        match which {
            Timer::Rebalance => self.rebalance(now, o, &mut out),
            Timer::Child(id) => self.child_timer(now, id, o, &mut out),
        }
        out
    }

    /// A start that [`Action::Start`] asked for ended.
    pub fn started(
        &mut self,
        now: u64,
        id: &str,
        outcome: StartOutcome,
        o: &impl Outlook,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        // A late answer to a start this child's failover has moved past
        // leaves its current step alone.
        if !matches!(
            self.steps.get(id),
            Some(Step::Starting { retry_at: None, .. })
        ) {
            return out;
        }
        let Some(Step::Starting { mut attempt, .. }) = self.steps.remove(id) else {
            return out;
        };
        let error = match outcome {
            StartOutcome::Started => {
                if !o.has_quorum() {
                    // The quorum went while it started: it stops with the
                    // others, its record kept for when the quorum is back.
                    out.push(Action::StopAll);
                }
                return out;
            }
            StartOutcome::NameHeld => {
                out.push(Action::Forget(id.to_string()));
                return out;
            }
            StartOutcome::Failed(e) => e,
        };
        let mut shown = attempt.record.clone();
        shown.local = None;
        shown.restarts = attempt.restarts;
        if o.me() != attempt.me {
            // This node rejoined meanwhile: the survivors own the child;
            // it watches that one of them runs it.
            self.rejoined_while_starting(now, id, attempt.orphan, o, &mut out);
            return out;
        }
        let tries = attempt.tries;
        if tries >= FAILOVER_TRIES {
            shown.status = ChildStatus::GivenUp;
            tracing::error!(child = %id, error = %error, tries, "failover start failed; giving up");
            out.push(Action::Show(shown));
            return out;
        }
        let wait_ms = attempt.wait_ms;
        tracing::warn!(child = %id, error = %error, tries, retry_in_ms = wait_ms, "failover start failed; trying again");
        shown.status = ChildStatus::Restarting;
        out.push(Action::Show(shown));
        let at = now + wait_ms;
        attempt.wait_ms = (wait_ms * 2).min(RETRY_MAX_WAIT_MS);
        self.steps.insert(
            id.to_string(),
            Step::Starting {
                attempt,
                retry_at: Some(at),
            },
        );
        out.push(timer(at, id));
        out
    }

    /// An adoption that [`Action::Adopt`] asked for ended.
    pub fn adopted(
        &mut self,
        now: u64,
        id: &str,
        result: Result<(), String>,
        o: &impl Outlook,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if !matches!(self.steps.get(id), Some(Step::Adopting { .. })) {
            return out;
        }
        let Some(Step::Adopting { orphan, rounds }) = self.steps.remove(id) else {
            return out;
        };
        match result {
            Ok(()) => {
                tracing::info!(child = %id, "no node ran a failed-over child: sent its record to the node placed to run it")
            }
            Err(e) => {
                tracing::warn!(child = %id, error = %e, "the node placed to run a failed-over child did not take its record");
                self.watch(now, orphan, o.me(), rounds, &mut out);
            }
        }
        out
    }

    /// A handover that [`Action::HandOver`] asked for ended; on failure,
    /// the child's final record, to run it here again.
    pub fn handed_over(
        &mut self,
        id: &str,
        result: Result<(), ChildRecord>,
        o: &impl Outlook,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if self.moving.as_deref() == Some(id) {
            self.moving = None;
        }
        if let Err(record) = result {
            tracing::warn!(child = %id, "redistribution failed; running it here again");
            let restarts = record.restarts;
            self.start(None, record, restarts, o.me(), o, &mut out);
        }
        self.next_move(&mut out);
        out
    }

    /// Settles, watches or starts each orphan once its wait is over.
    fn child_timer(&mut self, now: u64, id: &str, o: &impl Outlook, out: &mut Vec<Action>) {
        let due = match self.steps.get(id) {
            Some(Step::Settling { at, .. } | Step::Watching { at, .. }) => *at <= now,
            Some(Step::Starting {
                retry_at: Some(at), ..
            }) => *at <= now,
            _ => false,
        };
        if !due {
            return;
        }
        match self.steps.remove(id) {
            Some(Step::Settling { orphan, me, .. }) => {
                if self.config.fencing_ms.is_some() && (!o.has_quorum() || o.me() != me) {
                    tracing::warn!(child = %id, "no quorum, or rejoined: it fails over once the quorum is back");
                    self.await_quorum(now, orphan, o, out);
                } else if o.me() != me {
                    self.watch(now, orphan, o.me(), 0, out);
                } else {
                    self.decide(now, orphan, o, out);
                }
            }
            Some(Step::Watching {
                orphan, me, rounds, ..
            }) => self.check(now, orphan, me, rounds + 1, o, out),
            Some(Step::Starting { mut attempt, .. }) => {
                if o.me() != attempt.me {
                    self.rejoined_while_starting(now, id, attempt.orphan, o, out);
                } else if o.runs_elsewhere(id) {
                    // Another node runs it (whichever record wins by start
                    // order, this one only says it is restarting).
                    out.push(Action::Forget(id.to_string()));
                } else if !o.has_quorum() {
                    // Its record shows it restarting: it runs again with
                    // the others this node stopped, once the quorum is back.
                } else if !o.running_here(id) {
                    attempt.tries += 1;
                    self.try_start(attempt, out);
                }
            }
            Some(step @ Step::Adopting { .. }) => {
                self.steps.insert(id.to_string(), step);
            }
            None => {}
        }
    }

    /// After the settle: start the orphan here if placement picks this
    /// node, else watch that the placed node does.
    fn decide(&mut self, now: u64, orphan: Orphan, o: &impl Outlook, out: &mut Vec<Action>) {
        if self.fenced(now) {
            let (id, at) = (orphan.record.spec.id.clone(), self.fenced_until);
            self.steps.insert(
                id.clone(),
                Step::Settling {
                    orphan,
                    me: o.me(),
                    at,
                },
            );
            out.push(timer(at, &id));
            return;
        }
        // Its owner is up: a stale view (this node froze) took it for dead.
        if o.is_up(&orphan.owner) || !should_run_again(&orphan.record) {
            return;
        }
        let spec = &orphan.record.spec;
        let Some(target) = o.place(&spec.id, &spec.type_name) else {
            return;
        };
        // A live node runs it already (it adopted it from a leaver that
        // died before dropping its record, say).
        if o.runs(&spec.id).is_some() {
            return;
        }
        let me = o.me();
        if target == me {
            let restarts = orphan.record.restarts + 1;
            self.start(Some(orphan.clone()), orphan.record, restarts, me, o, out);
        } else {
            self.watch(now, orphan, me, 0, out);
        }
    }

    /// Watches, [`FAILOVER_WATCH_MS`] from now, that some node handles the
    /// orphan; `rounds` already done.
    fn watch(&mut self, now: u64, orphan: Orphan, me: NodeId, rounds: u32, out: &mut Vec<Action>) {
        let id = orphan.record.spec.id.clone();
        if rounds >= FAILOVER_TRIES {
            tracing::error!(child = %id, "no node would run a failed-over child; giving up");
            let mut record = orphan.record;
            record.status = ChildStatus::GivenUp;
            record.local = None;
            out.push(Action::Show(record));
            return;
        }
        self.watch_at(now + FAILOVER_WATCH_MS, orphan, me, rounds, out);
    }

    /// Checks at `at` that some node handles the orphan.
    fn watch_at(
        &mut self,
        at: u64,
        orphan: Orphan,
        me: NodeId,
        rounds: u32,
        out: &mut Vec<Action>,
    ) {
        let id = orphan.record.spec.id.clone();
        out.push(timer(at, &id));
        self.steps.insert(
            id,
            Step::Watching {
                orphan,
                me,
                rounds,
                at,
            },
        );
    }

    /// A watch's round: nothing if some node handled the child since its
    /// owner's last record (or the owner is back); else this node starts
    /// it, or sends its record to the node placement picks. A watch that
    /// spans a rejoin of this node waits again, so the new incarnation has
    /// the tables first.
    fn check(
        &mut self,
        now: u64,
        orphan: Orphan,
        me: NodeId,
        rounds: u32,
        o: &impl Outlook,
        out: &mut Vec<Action>,
    ) {
        let id = orphan.record.spec.id.clone();
        if o.me() != me {
            return self.watch(now, orphan, o.me(), rounds, out);
        }
        if !o.has_quorum() {
            return self.await_quorum(now, orphan, o, out);
        }
        if self.fenced(now) {
            return self.watch_at(self.fenced_until, orphan, me, rounds, out);
        }
        if o.handled_after(&id, orphan.stamp) || o.is_up(&orphan.owner) {
            return;
        }
        let Some(target) = o.place(&id, &orphan.record.spec.type_name) else {
            return self.watch(now, orphan, me, rounds, out);
        };
        if target == me {
            let restarts = orphan.record.restarts + 1;
            return self.start(Some(orphan.clone()), orphan.record, restarts, me, o, out);
        }
        let mut sent = orphan.record.clone();
        sent.restarts += 1;
        self.steps.insert(id, Step::Adopting { orphan, rounds });
        out.push(Action::Adopt {
            target,
            record: sent,
        });
    }

    /// This node rejoined while it started child `id`: a failover's orphan
    /// is watched again (the survivors may all be gone); anything else is
    /// forgotten (its own records were purged, and watched, with the old
    /// incarnation).
    fn rejoined_while_starting(
        &mut self,
        now: u64,
        id: &str,
        orphan: Option<Orphan>,
        o: &impl Outlook,
        out: &mut Vec<Action>,
    ) {
        match orphan {
            Some(orphan) => self.watch(now, orphan, o.me(), 0, out),
            None => out.push(Action::Forget(id.to_string())),
        }
    }

    /// Of `orphan` and any orphan of the same child this node already
    /// holds (two dead incarnations can both leave a record of it), the one
    /// with the later record: the child fails over from its latest
    /// checkpoint.
    fn freshest(&self, orphan: Orphan) -> Orphan {
        let id = &orphan.record.spec.id;
        let held = match self.steps.get(id) {
            Some(
                Step::Settling { orphan: o, .. }
                | Step::Watching { orphan: o, .. }
                | Step::Adopting { orphan: o, .. },
            ) => Some(o),
            Some(Step::Starting { attempt, .. }) => attempt.orphan.as_ref(),
            None => self.awaiting_quorum.get(id),
        };
        match held {
            Some(held) if held.stamp > orphan.stamp => held.clone(),
            _ => orphan,
        }
    }

    /// Whether the fencing margin after the last membership change holds
    /// failovers back now.
    fn fenced(&self, now: u64) -> bool {
        self.config.fencing_ms.is_some() && now < self.fenced_until
    }

    /// Starts a child here (first try), unless it runs here already.
    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        orphan: Option<Orphan>,
        record: ChildRecord,
        restarts: u32,
        me: NodeId,
        o: &impl Outlook,
        out: &mut Vec<Action>,
    ) {
        if o.running_here(&record.spec.id) {
            return;
        }
        let attempt = Attempt {
            orphan,
            record,
            restarts,
            me,
            tries: 1,
            wait_ms: RETRY_FIRST_WAIT_MS,
        };
        self.try_start(attempt, out);
    }

    /// Asks the shell for one try of `attempt`.
    fn try_start(&mut self, attempt: Attempt, out: &mut Vec<Action>) {
        out.push(Action::Start {
            record: attempt.record.clone(),
            restarts: attempt.restarts,
        });
        self.steps.insert(
            attempt.record.spec.id.clone(),
            Step::Starting {
                attempt,
                retry_at: None,
            },
        );
    }

    /// Keeps the orphan until this side has its quorum: fails it over now
    /// if it has it.
    fn await_quorum(&mut self, now: u64, orphan: Orphan, o: &impl Outlook, out: &mut Vec<Action>) {
        let id = orphan.record.spec.id.clone();
        self.steps.remove(&id);
        if o.has_quorum() {
            out.extend(self.failover(now, vec![orphan], o));
        } else {
            self.awaiting_quorum.insert(id, orphan);
        }
    }

    /// Active redistribution: queues each local child that placement now
    /// puts elsewhere, and starts moving the first.
    fn rebalance(&mut self, now: u64, o: &impl Outlook, out: &mut Vec<Action>) {
        if self.rebalance_at.is_none_or(|at| at > now) {
            return;
        }
        self.rebalance_at = None;
        if !o.has_quorum() {
            return;
        }
        let me = o.me();
        let queued: BTreeSet<String> = self.to_move.iter().map(|(id, _)| id.clone()).collect();
        for record in o.running_records() {
            let id = &record.spec.id;
            if queued.contains(id) || self.moving.as_ref() == Some(id) {
                continue;
            }
            if let Some(target) = o.place(id, &record.spec.type_name).filter(|t| *t != me) {
                self.to_move.push_back((id.clone(), target));
            }
        }
        self.next_move(out);
    }

    /// Starts the next queued handover, if none is under way.
    fn next_move(&mut self, out: &mut Vec<Action>) {
        if self.moving.is_some() {
            return;
        }
        if let Some((id, target)) = self.to_move.pop_front() {
            self.moving = Some(id.clone());
            out.push(Action::HandOver { id, target });
        }
    }
}

fn timer(at: u64, id: &str) -> Action {
    Action::SetTimer {
        at,
        which: Timer::Child(id.to_string()),
    }
}
