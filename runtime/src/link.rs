//! Outbound links: one per connected peer, batching frames into casts.
//!
//! Senders append encoded frames to the link's buffer; one flusher task per
//! link swaps the buffer out and casts it to the peer's inbox through
//! ractor_cluster. Under load many frames share one transport message, which
//! is what lifts remote throughput above one ractor_cluster cast per message.
//!
//! Flow control is by bytes, end to end. ractor_cluster queues whatever it
//! is handed without limit, so the flusher hands it at most [`WINDOW`]
//! bytes the peer has not acknowledged; the peer acknowledges bytes once
//! its inbox has handled them (see `Grants::received`). What waits behind
//! the window is held here, up to [`MAX_QUEUED`] bytes; past that, sends
//! fail with `Overloaded`. A peer that stops reading (SIGSTOP, TCP still
//! open) therefore costs its senders at most about 16 MiB, and a call to a
//! peer that has acknowledged nothing for [`STALL`] fails at once.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ractor::ActorRef;
use serde::Serialize;
use tokio::sync::Notify;

use drove_membership::NodeId;

use crate::error::SendError;
use crate::metrics::PeerCounters;
use crate::wire::{self, BatchHeader, FrameHeader, MAX_BATCH};

/// Bytes handed to the transport and not yet acknowledged by the peer, at
/// most (one batch may always go, however large, so a big frame cannot
/// wedge the link).
pub(crate) const WINDOW: u64 = 8 << 20;

/// Bytes of frames waiting behind the window before sends get `Overloaded`.
pub(crate) const MAX_QUEUED: usize = 8 << 20;

/// With bytes outstanding and no acknowledgement for this long, the peer
/// counts as not reading: calls to it fail at once with `Overloaded`.
pub(crate) const STALL: Duration = Duration::from_secs(1);

struct Buffers {
    current: Vec<u8>,
    frames_in_current: u64,
    full: VecDeque<(Vec<u8>, u64)>,
    /// Frame bytes in `current` and `full`, not counting batch headers.
    queued: usize,
    /// Bytes handed to the transport, and how many of them the peer has
    /// acknowledged.
    sent: u64,
    acked: u64,
    /// When the peer last acknowledged something, or when bytes went out
    /// with nothing outstanding.
    progress_at: Instant,
}

impl Buffers {
    fn unacked(&self) -> u64 {
        self.sent - self.acked
    }

    fn stalled(&self) -> bool {
        self.unacked() > 0 && self.progress_at.elapsed() > STALL
    }

    /// The length of the next batch to go, if there is one.
    fn next_len(&self) -> Option<usize> {
        match self.full.front() {
            Some((batch, _)) => Some(batch.len()),
            None => (self.frames_in_current > 0).then_some(self.current.len()),
        }
    }
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
                queued: 0,
                sent: 0,
                acked: 0,
                progress_at: Instant::now(),
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

    /// Queues one frame for the peer. A frame that expects an answer (a
    /// call) is refused at once when the peer has stopped acknowledging.
    pub(crate) fn push<P: Serialize + ?Sized>(
        &self,
        header: &FrameHeader,
        payload: Option<&P>,
    ) -> Result<(), SendError> {
        if self.closed.load(Ordering::Relaxed) {
            return Err(SendError::NodeUnreachable(self.peer.clone()));
        }
        let expects_answer = matches!(header, FrameHeader::Send { call: Some(_), .. });
        let mut b = self.lock();
        if b.queued >= MAX_QUEUED || (expects_answer && b.stalled()) {
            drop(b);
            self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(SendError::Overloaded(self.peer.clone()));
        }
        let was_idle = b.frames_in_current == 0 && b.full.is_empty();
        let before = b.current.len();
        wire::push_frame(&mut b.current, header, payload)?;
        b.queued += b.current.len() - before;
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

    /// The batches the window lets go now, counted as sent.
    fn take(&self) -> Vec<(Vec<u8>, u64)> {
        let mut b = self.lock();
        let mut out = Vec::new();
        while let Some(len) = b.next_len() {
            let unacked = b.unacked();
            if unacked > 0 && unacked + len as u64 > WINDOW {
                break;
            }
            let next = match b.full.pop_front() {
                Some(batch) => batch,
                None => {
                    let batch = std::mem::replace(&mut b.current, self.prefix.clone());
                    (batch, std::mem::take(&mut b.frames_in_current))
                }
            };
            if unacked == 0 {
                b.progress_at = Instant::now();
            }
            b.sent += len as u64;
            b.queued -= len - self.prefix.len();
            out.push(next);
        }
        self.counters
            .queued_bytes
            .store(b.queued as u64, Ordering::Relaxed);
        self.counters
            .unacked_bytes
            .store(b.unacked(), Ordering::Relaxed);
        out
    }

    /// The peer acknowledged handling `bytes` bytes of this link's batches
    /// (a cumulative count; `token` names the link it counts for).
    pub(crate) fn acknowledge(&self, token: u128, bytes: u64) {
        if token != self.header.token {
            return;
        }
        let mut b = self.lock();
        // A peer cannot acknowledge what was never sent.
        let bytes = bytes.min(b.sent);
        if bytes <= b.acked {
            return;
        }
        b.acked = bytes;
        b.progress_at = Instant::now();
        self.counters
            .unacked_bytes
            .store(b.unacked(), Ordering::Relaxed);
        drop(b);
        self.notify.notify_one();
    }

    /// Tells the peer, outside the window, that this node has handled
    /// `bytes` bytes of the peer's link here (granted `token`).
    pub(crate) fn send_ack(&self, token: u128, bytes: u64) -> bool {
        let mut batch = self.prefix.clone();
        wire::push_frame::<()>(&mut batch, &FrameHeader::Ack { token, bytes }, None).is_ok()
            && self.send_raw(batch)
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use drove_membership::Incarnation;
    use ractor::{Actor, ActorProcessingErr};
    use tokio::sync::mpsc;

    /// Stands in for a peer's inbox: reports the length of each batch.
    pub(crate) struct Collector;

    impl Actor for Collector {
        type Msg = Vec<u8>;
        type State = mpsc::UnboundedSender<usize>;
        type Arguments = mpsc::UnboundedSender<usize>;

        async fn pre_start(
            &self,
            _: ActorRef<Vec<u8>>,
            tx: Self::Arguments,
        ) -> Result<Self::State, ActorProcessingErr> {
            Ok(tx)
        }

        async fn handle(
            &self,
            _: ActorRef<Vec<u8>>,
            batch: Vec<u8>,
            tx: &mut Self::State,
        ) -> Result<(), ActorProcessingErr> {
            let _ = tx.send(batch.len());
            Ok(())
        }
    }

    const TOKEN: u128 = 7;

    async fn link() -> (Arc<Link>, mpsc::UnboundedReceiver<usize>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (inbox, _) = Actor::spawn(None, Collector, tx).await.unwrap();
        let link = Link::new(
            NodeId::new("me", Incarnation(1)),
            NodeId::new("peer", Incarnation(2)),
            TOKEN,
            inbox,
            Arc::default(),
        )
        .unwrap();
        tokio::spawn(link.clone().run());
        (link, rx)
    }

    fn cast_frame() -> FrameHeader {
        FrameHeader::Send {
            to: crate::LocalRef::Id(1),
            tag: 0,
            call: None,
        }
    }

    fn call_frame() -> FrameHeader {
        FrameHeader::Send {
            to: crate::LocalRef::Id(1),
            tag: 0,
            call: Some(1),
        }
    }

    /// The bytes of the batches that arrive until none comes for 200 ms.
    async fn drain(rx: &mut mpsc::UnboundedReceiver<usize>) -> u64 {
        let mut total = 0;
        while let Ok(Some(len)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await
        {
            total += len as u64;
        }
        total
    }

    #[tokio::test]
    async fn the_window_holds_back_what_the_peer_has_not_acknowledged() {
        let (link, mut rx) = link().await;
        let payload = serde_bytes::ByteBuf::from(vec![0u8; 64 << 10]);
        let mut pushed = 0;
        let overloaded = loop {
            match link.push(&cast_frame(), Some(&payload)) {
                Ok(()) => pushed += 1,
                Err(e) => break e,
            }
            tokio::task::yield_now().await;
        };
        assert!(matches!(overloaded, SendError::Overloaded(_)));
        assert!(pushed > 200, "window and queue both filled: {pushed}");
        let sent = drain(&mut rx).await;
        assert!(
            sent <= WINDOW + MAX_BATCH as u64,
            "{sent} bytes went unacknowledged"
        );
        assert!(
            sent >= WINDOW - MAX_BATCH as u64,
            "the window was used: {sent}"
        );

        // An acknowledgement for another link, or beyond what was sent,
        // frees nothing more than was sent.
        link.acknowledge(TOKEN + 1, sent);
        assert_eq!(drain(&mut rx).await, 0);
        link.acknowledge(TOKEN, u64::MAX);
        let more = drain(&mut rx).await;
        assert!(more > 0 && more <= WINDOW + MAX_BATCH as u64, "{more}");
        // Room in the queue again.
        link.push(&cast_frame(), Some(&payload)).unwrap();
    }

    #[tokio::test]
    async fn calls_fail_fast_to_a_peer_that_stopped_acknowledging() {
        let (link, mut rx) = link().await;
        link.push(&call_frame(), Some(&1u8)).unwrap();
        let sent = drain(&mut rx).await;
        assert!(sent > 0);
        tokio::time::sleep(STALL + Duration::from_millis(50)).await;
        assert!(matches!(
            link.push(&call_frame(), Some(&1u8)),
            Err(SendError::Overloaded(_))
        ));
        link.push(&cast_frame(), Some(&1u8)).unwrap();
        link.acknowledge(TOKEN, sent);
        link.push(&call_frame(), Some(&1u8)).unwrap();
    }
}
