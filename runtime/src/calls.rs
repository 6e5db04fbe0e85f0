//! Calls waiting for their reply.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use drove_membership::NodeId;

use crate::error::CallError;

/// A reply as it arrives: a value from a local callee, bytes from a remote
/// one, or the reason the request was not delivered.
pub(crate) enum ReplyPayload {
    Local(Box<dyn Any + Send>),
    Remote(Vec<u8>),
    Failed(CallError),
}

struct Pending {
    target: NodeId,
    tx: oneshot::Sender<ReplyPayload>,
}

/// Outstanding calls of this node, by call id.
#[derive(Default)]
pub(crate) struct PendingCalls {
    calls: Mutex<HashMap<u64, Pending>>,
}

impl PendingCalls {
    /// A new call to `target`: its id (random, so no peer can guess the
    /// ids of calls to others) and where its reply will arrive.
    pub(crate) fn register(&self, target: NodeId) -> (u64, oneshot::Receiver<ReplyPayload>) {
        let (tx, rx) = oneshot::channel();
        let mut calls = self.lock();
        let id = loop {
            let id: u64 = rand::random();
            if !calls.contains_key(&id) {
                break id;
            }
        };
        calls.insert(id, Pending { target, tx });
        (id, rx)
    }

    pub(crate) fn forget(&self, call: u64) {
        self.lock().remove(&call);
    }

    pub(crate) fn complete(&self, call: u64, payload: ReplyPayload) -> bool {
        match self.lock().remove(&call) {
            Some(p) => p.tx.send(payload).is_ok(),
            None => false,
        }
    }

    /// Completes `call` with a reply that arrived from `from`, if that is
    /// the node the call went to; a reply from any other node is refused.
    pub(crate) fn complete_from(&self, call: u64, from: &NodeId, payload: ReplyPayload) -> bool {
        let pending = {
            let mut calls = self.lock();
            match calls.get(&call) {
                Some(p) if p.target == *from => calls.remove(&call),
                _ => None,
            }
        };
        pending.is_some_and(|p| p.tx.send(payload).is_ok())
    }

    /// Fails every call waiting on `node`: it will never answer.
    pub(crate) fn fail_node(&self, node: &NodeId) {
        let failed: Vec<Pending> = {
            let mut calls = self.lock();
            let ids: Vec<u64> = calls
                .iter()
                .filter(|(_, p)| p.target == *node)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| calls.remove(&id)).collect()
        };
        for p in failed {
            let _ =
                p.tx.send(ReplyPayload::Failed(CallError::NodeDown(node.clone())));
        }
    }

    /// Fails every waiting call (this node rejoined as a new incarnation).
    pub(crate) fn fail_all(&self) {
        let targets: Vec<NodeId> = self.lock().values().map(|p| p.target.clone()).collect();
        for t in targets {
            self.fail_node(&t);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drove_membership::Incarnation;

    #[test]
    fn a_reply_completes_only_from_the_callee_and_ids_are_unpredictable() {
        let calls = PendingCalls::default();
        let n2 = NodeId::new("n2", Incarnation(1));
        let n3 = NodeId::new("n3", Incarnation(1));
        let (a, mut rx) = calls.register(n2.clone());
        let (b, _) = calls.register(n2.clone());
        assert_ne!(a.wrapping_add(1), b, "ids are not a counter");
        assert!(!calls.complete_from(a, &n3, ReplyPayload::Remote(vec![1])));
        assert!(rx.try_recv().is_err(), "n3 cannot answer a call to n2");
        assert!(calls.complete_from(a, &n2, ReplyPayload::Remote(vec![2])));
        assert!(matches!(rx.try_recv(), Ok(ReplyPayload::Remote(v)) if v == [2]));
        assert!(
            !calls.complete_from(a, &n2, ReplyPayload::Remote(vec![3])),
            "only once"
        );
    }
}
