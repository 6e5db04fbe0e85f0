//! Outbound links: one per connected peer, batching frames into casts.
//!
//! Senders append encoded frames to the link's buffer; one flusher task per
//! link swaps the buffer out and casts it to the peer's inbox through
//! ractor_cluster. Under load many frames share one transport message, which
//! is what lifts remote throughput above one ractor_cluster cast per message.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use ractor::ActorRef;
use serde::Serialize;
use tokio::sync::Notify;

use drove_membership::NodeId;

use crate::error::SendError;
use crate::metrics::PeerCounters;
use crate::wire::{self, BatchHeader, FrameHeader, MAX_BATCH};

/// Full batches a link may hold before senders get `Overloaded` (64 MiB).
const MAX_QUEUED_BATCHES: usize = 64;

struct Buffers {
    current: Vec<u8>,
    frames_in_current: u64,
    full: VecDeque<(Vec<u8>, u64)>,
}

pub(crate) struct Link {
    peer: NodeId,
    header: BatchHeader,
    inbox: ActorRef<Vec<u8>>,
    prefix: Vec<u8>,
    buffers: Mutex<Buffers>,
    notify: Notify,
    closed: AtomicBool,
    counters: Arc<PeerCounters>,
}

impl Link {
    /// A link to `peer`, whose batches carry `token`, the one `peer`
    /// granted this node.
    pub(crate) fn new(
        me: NodeId,
        peer: NodeId,
        token: u128,
        inbox: ActorRef<Vec<u8>>,
        counters: Arc<PeerCounters>,
    ) -> Result<Arc<Self>, wire::WireError> {
        let header = BatchHeader {
            from: me,
            to: peer.incarnation,
            token,
        };
        let prefix = wire::begin_batch(&header)?;
        Ok(Arc::new(Self {
            peer,
            header,
            inbox,
            buffers: Mutex::new(Buffers {
                current: prefix.clone(),
                frames_in_current: 0,
                full: VecDeque::new(),
            }),
            prefix,
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            counters,
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buffers> {
        self.buffers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one frame for the peer.
    pub(crate) fn push<P: Serialize + ?Sized>(
        &self,
        header: &FrameHeader,
        payload: Option<&P>,
    ) -> Result<(), SendError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(SendError::NodeUnreachable(self.peer.clone()));
        }
        let mut b = self.lock();
        if b.full.len() >= MAX_QUEUED_BATCHES {
            return Err(SendError::Overloaded(self.peer.clone()));
        }
        let was_idle = b.frames_in_current == 0 && b.full.is_empty();
        wire::push_frame(&mut b.current, header, payload)?;
        b.frames_in_current += 1;
        if b.current.len() >= MAX_BATCH {
            let batch = std::mem::replace(&mut b.current, self.prefix.clone());
            let frames = std::mem::take(&mut b.frames_in_current);
            b.full.push_back((batch, frames));
        }
        drop(b);
        if was_idle {
            self.notify.notify_one();
        }
        Ok(())
    }

    fn take(&self) -> Vec<(Vec<u8>, u64)> {
        let mut b = self.lock();
        let mut out: Vec<(Vec<u8>, u64)> = b.full.drain(..).collect();
        if b.frames_in_current > 0 {
            let batch = std::mem::replace(&mut b.current, self.prefix.clone());
            out.push((batch, std::mem::take(&mut b.frames_in_current)));
        }
        out
    }

    /// The header of this link's batches.
    pub(crate) fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Casts raw bytes to the peer's inbox, bypassing the batcher.
    pub(crate) fn send_raw(&self, bytes: Vec<u8>) -> bool {
        self.inbox.cast(bytes).is_ok()
    }

    /// Whether every queued frame has been handed to the transport.
    pub(crate) fn is_drained(&self) -> bool {
        let b = self.lock();
        b.frames_in_current == 0 && b.full.is_empty()
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.notify.notify_one();
    }

    /// The flusher: runs until the link is closed or the peer's inbox is gone.
    pub(crate) async fn run(self: Arc<Self>) {
        loop {
            self.notify.notified().await;
            if self.closed.load(Ordering::Relaxed) {
                return;
            }
            // Let concurrent senders add to this batch before it goes.
            tokio::task::yield_now().await;
            for (batch, frames) in self.take() {
                let len = batch.len() as u64;
                if let Err(e) = self.inbox.cast(batch) {
                    tracing::debug!(peer = %self.peer, error = %e, "peer inbox gone; closing link");
                    self.closed.store(true, Ordering::Relaxed);
                    return;
                }
                self.counters
                    .messages_out
                    .fetch_add(frames, Ordering::Relaxed);
                self.counters.bytes_out.fetch_add(len, Ordering::Relaxed);
            }
        }
    }
}

/// The links of one node, by peer name: at most one per peer, to the
/// peer's current incarnation.
#[derive(Default)]
pub(crate) struct Links {
    by_name: RwLock<HashMap<String, Arc<Link>>>,
}

impl Links {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Link>>> {
        self.by_name.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Link>>> {
        self.by_name.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The link to `peer` (that incarnation), if there is one.
    pub(crate) fn get(&self, peer: &NodeId) -> Option<Arc<Link>> {
        self.read()
            .get(&peer.name)
            .filter(|l| l.peer == *peer)
            .cloned()
    }

    /// Every link.
    pub(crate) fn all(&self) -> Vec<Arc<Link>> {
        self.read().values().cloned().collect()
    }

    /// Whether there is a link to `peer` (that incarnation).
    pub(crate) fn has(&self, peer: &NodeId) -> bool {
        self.read().get(&peer.name).is_some_and(|l| l.peer == *peer)
    }

    /// Adds a link, closing the one it replaces.
    pub(crate) fn insert(&self, link: Arc<Link>) {
        let old = self.write().insert(link.peer.name.clone(), link);
        if let Some(old) = old {
            old.close();
        }
    }

    /// Closes and drops the link to `peer` (that incarnation).
    pub(crate) fn remove(&self, peer: &NodeId) {
        let mut links = self.write();
        if links.get(&peer.name).is_some_and(|l| l.peer == *peer) {
            if let Some(link) = links.remove(&peer.name) {
                link.close();
            }
        }
    }

    /// Closes and drops every link.
    pub(crate) fn close_all(&self) {
        let links: Vec<Arc<Link>> = self.write().drain().map(|(_, l)| l).collect();
        for link in links {
            link.close();
        }
    }
}
