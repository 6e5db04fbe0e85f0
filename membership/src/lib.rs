//! Sans-IO cluster membership for drove.
//!
//! This crate decides who is in the cluster. It does no IO: the runtime
//! feeds it gossip snapshots (from chitchat), transport connection events and
//! leave announcements, and carries out what it answers (connect, disconnect,
//! publish a down declaration, rejoin as a new incarnation). That keeps the
//! rules testable deterministically and by property tests.
//!
//! # Layout
//!
//! - [`node_id`]: [`NodeId`] = name + [`Incarnation`], the identity of one
//!   run of a node.
//! - [`view`]: [`MembershipView`], the state machine, its inputs
//!   ([`GossipNode`]) and outputs ([`Output`], [`MembershipEvent`]).
//! - `ALGORITHM.md` (beside this crate): the rules, in prose.

pub mod node_id;
pub mod view;

pub use node_id::{validate_name, Incarnation, NodeId, NodeIdParseError};
pub use view::{
    mutual_declaration_loses, Announced, GossipNode, Member, MemberInfo, MemberStatus,
    MembershipEvent, MembershipView, Output, ViewConfig,
};

#[cfg(test)]
mod tests;
