//! What happens to an actor over its life, as data: why it stopped
//! ([`ExitReason`]), a lost global name ([`NameConflict`]) and what the
//! actor does about it ([`ConflictAction`]).

use crate::addr::ActorAddr;

/// A notice that an actor lost a global name.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NameConflict {
    /// The name.
    pub name: String,
    /// Who holds it now, if anyone.
    pub winner: Option<ActorAddr>,
    /// Why it was lost.
    pub reason: String,
}

/// What an actor does about a [`NameConflict`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConflictAction {
    /// Stop (the default).
    Stop,
    /// Keep running without the name.
    Continue,
}

/// Why an actor stopped, as told to [`crate::Node::on_actor_stopped`] hooks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// It stopped itself, was stopped, or its node stopped it.
    Normal,
    /// Its `handle` returned an error or panicked.
    Failed(String),
}
