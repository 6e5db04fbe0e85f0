//! How messages reach a local actor: [`ShellMsg`] (the user's message or a
//! system notice, as the ractor actor takes them) and the `Mailbox` a
//! local actor shows the node, which decodes messages from other nodes.

use std::any::Any;

use ractor::ActorRef;

use crate::error::DeliveryError;
use crate::lifecycle::NameConflict;
use crate::message::Message;
use crate::wire;
use drove_membership::NodeId;

/// Notices from the runtime's own layers to an actor. Boxed: every
/// message to a local actor is as large as the largest variant of
/// [`ShellMsg`], and these notices are rare.
#[derive(Debug)]
pub enum SystemMsg {
    /// A global name was lost.
    NameConflict(Box<NameConflict>),
}

/// The message type of a shell: the user's message or a system notice,
/// wrapped so ractor's `Message` can be implemented for it (ractor's
/// `cluster` feature turns off its blanket implementation).
pub enum ShellMsg<M> {
    /// A message of the actor's own type.
    User(M),
    /// A notice from the runtime.
    System(SystemMsg),
}

impl<M: Send + 'static> ractor::Message for ShellMsg<M> {}

/// A local actor as seen by the inbox: it can take an encoded message.
pub(crate) trait Mailbox: Send + Sync {
    /// Decodes and delivers a message that came from the node `from`.
    fn deliver_encoded(&self, tag: u64, payload: &[u8], from: &NodeId)
        -> Result<(), DeliveryError>;
    fn deliver_system(&self, msg: SystemMsg) -> Result<(), DeliveryError>;
    fn stop(&self);
    fn as_any(&self) -> &dyn Any;
}

pub(crate) struct TypedMailbox<M> {
    actor: ActorRef<ShellMsg<M>>,
}

impl<M: Message> TypedMailbox<M> {
    pub(crate) fn new(actor: ActorRef<ShellMsg<M>>) -> Self {
        Self { actor }
    }

    pub(crate) fn actor(&self) -> &ActorRef<ShellMsg<M>> {
        &self.actor
    }
}

impl<M: Message> Mailbox for TypedMailbox<M> {
    fn deliver_encoded(
        &self,
        tag: u64,
        payload: &[u8],
        from: &NodeId,
    ) -> Result<(), DeliveryError> {
        let expected = wire::tag_of(M::TAG);
        if tag != expected {
            return Err(DeliveryError::WrongType {
                actor: self.actor.get_id().to_string(),
                expected,
                got: tag,
            });
        }
        let msg: M =
            wire::decode(payload, "message").map_err(|e| DeliveryError::Decode(e.to_string()))?;
        if let Some(claimed) = msg.claimed_sender() {
            if claimed != from {
                return Err(DeliveryError::Impersonation {
                    claimed: claimed.to_string(),
                    from: from.to_string(),
                });
            }
        }
        self.actor
            .cast(ShellMsg::User(msg))
            .map_err(|_| DeliveryError::NoSuchActor(self.actor.get_id().to_string()))
    }

    fn deliver_system(&self, msg: SystemMsg) -> Result<(), DeliveryError> {
        self.actor
            .cast(ShellMsg::System(msg))
            .map_err(|_| DeliveryError::NoSuchActor(self.actor.get_id().to_string()))
    }

    fn stop(&self) {
        self.actor.stop(None);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_notice_does_not_grow_every_message() {
        // ractor boxes each message: its size is an allocation per cast.
        assert!(std::mem::size_of::<ShellMsg<u64>>() <= 16);
        assert!(std::mem::size_of::<ShellMsg<[u8; 64]>>() <= 72);
    }
}
