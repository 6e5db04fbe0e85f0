//! Distributed supervision for drove, as Horde's DynamicSupervisor and
//! cluster singletons.
//!
//! Each node declares the child types it can run
//! ([`SupervisorBuilder::child`], a type implementing [`Child`]); the
//! declarations are replicated, and a
//! child is placed on an up member that declared its type, by rendezvous
//! hashing of the child's id (the default [`Placement`]). The child's
//! record (spec, status, restarts, last checkpoint) is replicated through
//! `drove-replication`, owned by the node that runs it.
//!
//! - **Locally**, a crashed child restarts by its policy (permanent,
//!   transient, temporary) within its intensity (at most N restarts in T,
//!   then given up), from its last checkpoint.
//! - **Failover.** When a node is declared down, every survivor sees its
//!   records leave the replica, and the one that placement picks among the
//!   survivors starts each unfinished permanent or transient child again,
//!   from its last checkpoint, with the same id. Temporary and finished
//!   children are not restarted. If two nodes ever start the same child,
//!   the later start stops. The survivor starts it at once: only a node
//!   that is alone, or that has just woken from a freeze (whose view may be
//!   stale), waits 2 s first. The other survivors check 2.5 s later that
//!   some node runs the child, and send its record to the node placement
//!   picks if none does.
//! - **Rejoin.** A node that was declared down and rejoins stops its stale
//!   copies: the survivors own them now. It watches, as the other
//!   survivors do, that some node runs them: in a storm of freezes, every
//!   node may have been declared down by another.
//! - **Checkpoints**: [`checkpoint`]`(ctx, &state)` from inside the child.
//! - **Names.** A child's global name is taken before its `init` runs, as
//!   Erlang registers a global name before `init/1`: a start refused
//!   because another actor holds the name ([`SupervisorError::NameHeld`])
//!   never ran any of the child's code.
//!
//! - **Quorum** (optional, [`SupervisorBuilder::quorum`]): a side without a
//!   strict majority starts nothing and stops what it runs; the majority
//!   waits a fencing margin after a down declaration before failing over.
//! - **Handoff.** [`Supervisor::handoff`] before a graceful leave.
//! - **Redistribution** when a node joins ([`SupervisorBuilder::redistribution`]):
//!   passive by default (only new children go there); active hands each
//!   child whose placement moved to its new node, with its checkpoint.
//!
//! # Windows that stay open
//!
//! - **Without quorum**, a node that is wrongly declared down (a partition,
//!   a long pause) keeps running its children until it hears that it was
//!   declared down and rejoins; meanwhile the survivors run their copies.
//!   After a freeze that is one gossip round after waking (and the woken
//!   node waits 2 s before failing anything over itself, so it does not add
//!   copies of its own); after a partition, it lasts until the partition
//!   heals. The SIGSTOP test checks that no copy outlives the rejoin.
//! - **With quorum**, the minority stops its children as soon as it sees
//!   itself without a majority (its own failure detector, about 1.3 s for
//!   a silent link), and the majority starts them `fencing_margin` (default
//!   2 s) after its own down declaration. The two declarations are
//!   independent, so the margin must cover their spread; the partition test
//!   samples every 50 ms and finds no overlap. A *frozen* minority runs
//!   nothing while frozen; on waking, its children run until its failure
//!   detector's next round (one gossip interval, 200 ms by default) shows
//!   it without a majority and it stops them.
//! - **Orphans live in the survivors' memory.** Once a dead node's records
//!   are purged, its unfinished children exist only in the deciders of
//!   the survivors that saw the death. A node that joined after it holds
//!   none; if every survivor that did dies before the child is started
//!   (within the watch, 2.5 s), the child is lost. The simulation's crash
//!   scenario keeps one such survivor alive.
//! - **Checkpoints of a copy nobody else saw.** A node that was frozen
//!   while another copy of a child checkpointed, and that never received
//!   those checkpoints, starts the child from the last one it holds; the
//!   newer ones go when their holder is declared down.
//! - **A minority that does not know it yet** (its failure detector has
//!   not fired, up to about a second after the cut) can start a child
//!   whose fencing margin ends in that window, while the majority runs it
//!   too; the simulation finds this in a few seeds per thousand of the
//!   quorum partition scenario. Starting only under a lease on a majority
//!   (heard from within the detector's window) would close it.
//! - **Two starts of one child id** at the same moment on two nodes: both
//!   run until each sees the other's record (one delta, under a
//!   millisecond on a LAN), then the later start stops.
//!
//! # Layout
//!
//! Bottom up (each module uses only those above it):
//!
//! - [`error`]: why an operation failed, [`SupervisorError`].
//! - [`spec`]: the [`Child`] trait, typed and untyped specs, records and
//!   their views; the two tables' schemas.
//! - [`placement`]: rendezvous hashing, the [`Placement`] trait, [`Quorum`].
//! - [`table`]: the children table's rules (the winning record, what a
//!   change means for this node).
//! - [`decider`]: the distributed decisions (failover, watch, retries,
//!   quorum, duplicates, redistribution) as a pure state machine.
//! - `ledger`: the children this node runs now (plain data).
//! - `records`: the replicated children table.
//! - `checkpoints`: where a running child's checkpoint goes (its context
//!   reaches its record).
//! - [`child`]: [`checkpoint`], and the factory that starts a child type.
//! - `candidates`: the nodes that may run a child (up, reachable, its type
//!   declared) and the one placement picks; the quorum strategy.
//! - `local_children`: `LocalChildren`, this node's children: local starts,
//!   restarts and stops.
//! - [`protocol`]: [`SupMsg`] between supervisors, and the actor that
//!   answers it.
//! - `moves`: the I/O shell that feeds the decider and carries out its
//!   actions; graceful handoff.
//! - [`supervisor`]: [`Supervisor`], the cluster-wide operations.
//! - [`builder`]: [`SupervisorBuilder`]: declaring types and strategies.
//! - [`builtin`]: the `ticker` and `echo` types.

pub mod builder;
pub mod builtin;
mod candidates;
mod checkpoints;
pub mod child;
pub mod decider;
pub mod error;
mod ledger;
mod local_children;
mod moves;
pub mod placement;
pub mod protocol;
mod records;
pub mod spec;
pub mod supervisor;
pub mod table;

pub use builder::SupervisorBuilder;
pub use candidates::QuorumConfig;
pub use checkpoints::MAX_CHECKPOINT_BYTES;
pub use child::checkpoint;
pub use decider::Redistribution;
pub use error::{StartRefused, SupervisorError};
pub use placement::{rendezvous, Placement, Quorum, Uniform};
pub use protocol::{SupMsg, SUPERVISOR_NAME};
pub use spec::{
    Child, ChildCounts, ChildInfo, ChildRecord, ChildSpec, ChildStatus, Restart, Started, TypedSpec,
};
pub use supervisor::Supervisor;
