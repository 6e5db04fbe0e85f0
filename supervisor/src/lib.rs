//! Distributed supervision for drove.
//!
//! The goal (see the supervisor issue): child specs replicated through
//! `drove-replication`, children placed on the up members that declared
//! their type, restarted on a survivor when their node is declared down,
//! honouring permanent / transient / temporary, with checkpoints, handoff
//! on graceful leave, and quorum-fenced singletons.
//!
//! What is here now is the placement core those build on, pure and
//! property-tested: every node must compute the same placement from the
//! same membership without asking anyone.
//!
//! # Layout
//!
//! - [`placement`]: rendezvous hashing, the [`placement::Placement`] trait,
//!   and the [`placement::Quorum`] majority rule.
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod placement;

pub use placement::{rendezvous, Placement, Quorum, Uniform};
