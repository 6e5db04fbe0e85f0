//! A replicated cache for drove, as Nebulex's replicated adapter.
//!
//! Every node holds a full copy, so reads are local. Writes go through
//! `drove-replication` (the same core as the registry and the supervisor):
//! each node owns its own slot of a key, and a key shows the write with the
//! greatest hybrid-logical-clock stamp, ties broken by node id (last writer
//! wins). A node that joins receives the contents by the core's
//! anti-entropy.
//!
//! Each write carries its own stamp and writer, so a copy can change
//! hands: when a node departs (crash, leave, or declared down) the core
//! drops its slots, and each survivor adopts those that are newer than
//! every copy it still holds into a slot of its own, in the same locked
//! step as the drop (so no read finds them missing meanwhile), stamp and writer
//! unchanged (a survivor that already received another survivor's adopted
//! copy has nothing to adopt). Identical copies then tidy away to one: each
//! node drops its copy when it sees the same write in the slot of a greater
//! node. That greater node may depart too, and a survivor may hear of it
//! before the drop arrives; so a node that receives the removal of an
//! adopted copy it no longer holds elsewhere adopts the value itself, in
//! the step that applies the removal (the core's loss hook). A write that
//! no survivor had received when its writer died is lost, as with any
//! asynchronous replication.
//!
//! A node drops its own slot of a key once a newer write shadows it, but
//! only when that write is a second old (`SHADOW_GRACE_MS`): the drop and
//! the newer write reach a third node on different links, and in the
//! other order that node would show nothing for a moment.
//!
//! # Expiry
//!
//! A TTL becomes a deadline inside the replicated value (the writer's
//! cluster time plus the TTL), so every node expires the entry at the same
//! cluster time instead of by a local timer started when the write arrived.
//! Reads never return an expired value; each node also drops its own
//! expired slots within 100 ms of their deadline, found by a deadline
//! index, not a scan.
//!
//! # Clock skew
//!
//! Cluster time on a node is the later of its wall clock and the newest
//! stamp it has made or seen (an HLC), where a peer's stamp counts only if
//! it is at most the maximum offset (500 ms) ahead of this node's wall
//! clock. So, for a node A whose clock runs `d` ahead of node B's:
//!
//! - **LWW.** With `d` within the offset, a write on A beats a write made
//!   on B up to `d` later in real time; writes more than `d` apart, and
//!   writes B makes after seeing A's, are ordered as they happened. With
//!   `d` beyond the offset, A's stamps do not move B's clock (B counts them
//!   in `drove_repl_stamps_too_far_ahead_total` and names A in its log), so
//!   A's writes beat B's for up to `d`: a wrong clock costs that node's
//!   writes their order, never the cluster's time. On one node, writes are
//!   always ordered as made.
//! - **TTL.** A deadline is in the writer's time. A node whose clock runs
//!   ahead expires entries up to `d` early on its own reads; the others'
//!   clocks do not follow it past the offset, so they expire nothing early.
//!   A node removes its own expired entries by its own clock, so entries
//!   written by a node that runs ahead go when that node's clock says.
//!
//! Tested with an injected offset (`drove node --clock-offset-ms`).
//!
//! # Layout
//!
//! - [`cache`]: [`Cache`] (put, get, delete, put_new, update, TTL) and its
//!   housekeeping.
//! - [`schema`]: the replicated value, which write shows, adoption and
//!   tidying rules (property-tested).
//! - `tidy_queue`: which keys the housekeeping must look at (written with
//!   a deadline, or touched by a peer where this node holds a slot), so a
//!   round costs the work to do, not a scan of every key.
//! - `handoff_tests`: copies changing hands on the simulation floor
//!   (`drove-sim`: racing FIFO links, crashes, departures heard late),
//!   the cache's own hook and tidying driving the core's channels.

pub mod cache;
#[cfg(test)]
mod handoff_tests;
pub mod schema;
mod tidy_queue;

pub use cache::{
    Cache, CacheConfig, CacheError, EntryInfo, KeyInfo, KeysPage, DEFAULT_MAX_BYTES, MAX_KEY_LEN,
    MAX_PAGE, MAX_VALUE_LEN,
};
pub use schema::{CacheData, CacheSchema, CacheValue};
