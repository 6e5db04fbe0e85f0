//! Calls waiting for their reply.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::oneshot;

use drove_membership::NodeId;

use crate::error::{CallError, DeliveryError};

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
    pub(crate) fn register(&self, call: u64, target: NodeId) -> oneshot::Receiver<ReplyPayload> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(call, Pending { target, tx });
        rx
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

    pub(crate) fn fail(&self, call: u64, error: DeliveryError) {
        self.complete(call, ReplyPayload::Failed(CallError::Delivery(error)));
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
