//! The cluster port's front door: drove accepts TCP itself and bounds every
//! connection before it authenticates, then hands it to ractor_cluster.
//!
//! What an outsider (no cookie, no certificate) can hold, and for how long:
//!
//! - **Connections**: at most [`GateLimits::max_pending`] unauthenticated
//!   connections, and [`GateLimits::max_pending_per_source`] from one
//!   address. A new connection past either cap drops the oldest pending one
//!   (from the same address when that address is at its cap), so a flood
//!   never holds more descriptors than the cap and never shuts a peer out
//!   for longer than its own handshake takes.
//! - **Time**: the TLS handshake and ractor_cluster's cookie challenge must
//!   both end within [`GateLimits::handshake`] of the accept.
//! - **Bytes**: before authentication a frame may declare at most
//!   [`GateLimits::pre_auth_frame`] bytes and a connection may send at most
//!   [`GateLimits::pre_auth_frames`] frames. A larger header is held back
//!   (ractor_cluster sizes its buffer by it) until the session authenticates
//!   or the deadline passes. After authentication ractor_cluster's own
//!   16 MiB frame limit applies.
//! - **The accept loop** never waits on one client: each TLS handshake runs
//!   in a task of its own. An accept error (out of descriptors) backs off
//!   instead of spinning, and refusals are counted and logged at most once
//!   per interval ([`crate::throttle`]).
//!
//! ractor_cluster 0.16 always starts a listener of its own. It is bound on
//! an ephemeral loopback port, given a TLS acceptor with no certificate (so
//! no handshake through it can ever succeed), and parked: the gate holds one
//! silent connection to it, on which its accept loop waits for good.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::task::AtomicWaker;
use ractor::ActorRef;
use ractor_cluster::{BoxRead, BoxWrite, ClusterBidiStream, NodeServerMessage};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{Instant, Sleep};

use crate::metrics::{bump, GateCounters};
use crate::throttle::Throttled;

/// The bounds on connections that have not authenticated yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateLimits {
    /// Unauthenticated connections held at once.
    pub max_pending: usize,
    /// Unauthenticated connections held at once from one address.
    pub max_pending_per_source: usize,
    /// Time from accept to an authenticated session.
    pub handshake: Duration,
    /// Largest frame before authentication, in bytes.
    pub pre_auth_frame: u64,
    /// Frames a connection may send before it authenticates (ractor's
    /// challenge takes two from the dialing side).
    pub pre_auth_frames: u32,
}

impl Default for GateLimits {
    fn default() -> Self {
        Self {
            max_pending: 64,
            max_pending_per_source: 16,
            handshake: Duration::from_secs(5),
            pre_auth_frame: 4096,
            pre_auth_frames: 8,
        }
    }
}

/// Why gate limits are not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GateLimitsError {
    /// A limit is zero or past what a node can hold.
    #[error("{what} must be between {min} and {max}, not {value}")]
    OutOfRange {
        /// Which limit.
        what: &'static str,
        /// Its value.
        value: u64,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
}

impl GateLimits {
    /// Checks every limit against a sane range.
    pub fn validate(&self) -> Result<(), GateLimitsError> {
        let check = |what, value: u64, min, max| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(GateLimitsError::OutOfRange {
                    what,
                    value,
                    min,
                    max,
                })
            }
        };
        check("max_pending", self.max_pending as u64, 1, 65_536)?;
        check(
            "max_pending_per_source",
            self.max_pending_per_source as u64,
            1,
            self.max_pending as u64,
        )?;
        check(
            "handshake (ms)",
            self.handshake.as_millis() as u64,
            100,
            120_000,
        )?;
        check("pre_auth_frame", self.pre_auth_frame, 512, 1 << 20)?;
        check("pre_auth_frames", u64::from(self.pre_auth_frames), 2, 1024)?;
        Ok(())
    }
}

const PENDING: u8 = 0;
const AUTHENTICATED: u8 = 1;
const DROPPED: u8 = 2;

/// One accepted connection, until it authenticates or goes.
struct Slot {
    state: AtomicU8,
    waker: AtomicWaker,
}

impl Slot {
    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    fn set(&self, state: u8) {
        // Only a pending slot changes: a dropped one stays dropped.
        let _ = self
            .state
            .compare_exchange(PENDING, state, Ordering::AcqRel, Ordering::Acquire);
        self.waker.wake();
    }
}

struct Entry {
    source: IpAddr,
    label: String,
    slot: Arc<Slot>,
}

/// The pending connections, oldest first.
#[derive(Default)]
struct Pending {
    next: u64,
    by_age: BTreeMap<u64, Entry>,
    by_label: HashMap<String, u64>,
    per_source: HashMap<IpAddr, usize>,
}

impl Pending {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.by_age.remove(&id)?;
        self.by_label.remove(&e.label);
        if let Some(n) = self.per_source.get_mut(&e.source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&e.source);
            }
        }
        Some(e)
    }

    /// Makes room for one more from `source`: the oldest pending connection
    /// of `source` if it is at its cap, else the oldest of all if the gate
    /// is full.
    fn make_room(&mut self, source: IpAddr, limits: &GateLimits) -> Option<Entry> {
        let of_source = self.per_source.get(&source).copied().unwrap_or(0);
        let victim = if of_source >= limits.max_pending_per_source {
            self.by_age
                .iter()
                .find(|(_, e)| e.source == source)
                .map(|(id, _)| *id)
        } else if self.by_age.len() >= limits.max_pending {
            self.by_age.keys().next().copied()
        } else {
            None
        }?;
        self.remove(victim)
    }

    fn insert(&mut self, source: IpAddr, label: String, slot: Arc<Slot>) -> u64 {
        let id = self.next;
        self.next += 1;
        self.by_label.insert(label.clone(), id);
        *self.per_source.entry(source).or_default() += 1;
        self.by_age.insert(
            id,
            Entry {
                source,
                label,
                slot,
            },
        );
        id
    }
}

struct Shared {
    limits: GateLimits,
    pending: Mutex<Pending>,
    counters: Arc<GateCounters>,
    refusals: Throttled,
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, id: u64) {
        self.pending().remove(id);
    }
}

/// The running front door of one transport server.
pub(crate) struct Gate {
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    /// The silent connection ractor_cluster's own listener waits on.
    parking: Option<TcpStream>,
}

/// ractor_cluster's own listener, parked (see the module doc).
pub(crate) struct Parked {
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
}

impl Parked {
    /// An ephemeral loopback port for ractor_cluster's listener.
    pub(crate) fn pick() -> io::Result<Parked> {
        let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        Ok(Parked {
            port: probe.local_addr()?.port(),
        })
    }

    /// A TLS acceptor with no certificate: every handshake through it fails.
    pub(crate) fn acceptor() -> Result<tokio_rustls::TlsAcceptor, rustls::Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(NoCertificate));
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Opens the connection the listener will wait on.
    async fn park(&self) -> io::Result<TcpStream> {
        TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).await
    }
}

#[derive(Debug)]
struct NoCertificate;

impl rustls::server::ResolvesServerCert for NoCertificate {
    fn resolve(
        &self,
        _: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        None
    }
}

impl Gate {
    /// A gate bounded by `limits`, not accepting yet: the transport
    /// subscribes its [`GateWatcher`] first, so no session authenticates
    /// unseen.
    pub(crate) fn new(limits: GateLimits, counters: Arc<GateCounters>) -> Gate {
        Gate {
            shared: Arc::new(Shared {
                limits,
                pending: Mutex::default(),
                counters,
                refusals: Throttled::new("cluster connections dropped before authenticating"),
            }),
            accept: None,
            parking: None,
        }
    }

    /// Parks ractor_cluster's own listener, then accepts on `listener` for
    /// `server`; with `tls`, each connection's TLS handshake runs before
    /// the hand-over.
    pub(crate) async fn open(
        &mut self,
        listener: TcpListener,
        parked: &Parked,
        server: ActorRef<NodeServerMessage>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> io::Result<()> {
        self.parking = Some(parked.park().await?);
        self.accept = Some(tokio::spawn(accept_loop(
            listener,
            self.shared.clone(),
            server,
            tls,
        )));
        Ok(())
    }

    /// A handle the transport's event subscription tells about sessions.
    pub(crate) fn watcher(&self) -> GateWatcher {
        GateWatcher(Arc::downgrade(&self.shared))
    }

    /// Stops accepting and waits until the port is free.
    pub(crate) async fn close(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        self.parking = None;
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(accept) = &self.accept {
            accept.abort();
        }
    }
}

/// What the transport tells the gate: a session authenticated or closed.
#[derive(Clone)]
pub(crate) struct GateWatcher(std::sync::Weak<Shared>);

impl GateWatcher {
    fn settle(&self, label: &str, state: u8) {
        let Some(shared) = self.0.upgrade() else {
            return;
        };
        let mut pending = shared.pending();
        if let Some(id) = pending.by_label.get(label).copied() {
            if let Some(e) = pending.remove(id) {
                e.slot.set(state);
            }
        }
    }

    /// The session accepted from `label` passed the cookie challenge.
    pub(crate) fn authenticated(&self, label: &str) {
        self.settle(label, AUTHENTICATED);
    }

    /// The session accepted from `label` closed.
    pub(crate) fn closed(&self, label: &str) {
        self.settle(label, DROPPED);
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    server: ActorRef<NodeServerMessage>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => admit(stream, peer, &shared, &server, tls.clone()),
            Err(e) => {
                // Out of descriptors, most likely: retrying at once would
                // spin a core and log a line per turn.
                bump(&shared.counters.accept_errors);
                shared.refusals.note(format_args!("accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    server: &ActorRef<NodeServerMessage>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let _ = stream.set_nodelay(true);
    bump(&shared.counters.accepted);
    let slot = Arc::new(Slot {
        state: AtomicU8::new(PENDING),
        waker: AtomicWaker::new(),
    });
    let (id, label) = {
        let mut pending = shared.pending();
        if let Some(victim) = pending.make_room(peer.ip(), &shared.limits) {
            victim.slot.set(DROPPED);
            bump(&shared.counters.dropped_for_room);
            shared
                .refusals
                .note(format_args!("{} dropped to make room", victim.label));
        }
        // The id keeps a label unique when a source port is reused.
        let label = format!("{peer}/{}", pending.next);
        (
            pending.insert(peer.ip(), label.clone(), slot.clone()),
            label,
        )
    };
    let deadline = Instant::now() + shared.limits.handshake;
    let shared = shared.clone();
    let server = server.clone();
    tokio::spawn(async move {
        let halves = match tls {
            None => {
                let (r, w) = stream.into_split();
                Some((Box::new(r) as BoxRead, Box::new(w) as BoxWrite))
            }
            Some(acceptor) => {
                let handshake = tokio::time::timeout_at(deadline, acceptor.accept(stream));
                let dropped = futures::future::poll_fn(|cx| {
                    slot.waker.register(cx.waker());
                    if slot.state() == DROPPED {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                });
                tokio::select! {
                    r = handshake => match r {
                        Ok(Ok(s)) => {
                            let (r, w) = tokio::io::split(s);
                            Some((Box::new(r) as BoxRead, Box::new(w) as BoxWrite))
                        }
                        Ok(Err(e)) => {
                            bump(&shared.counters.tls_failures);
                            shared.refusals.note(format_args!("TLS handshake from {peer} failed: {e}"));
                            None
                        }
                        Err(_) => {
                            bump(&shared.counters.handshake_timeouts);
                            shared.refusals.note(format_args!("no TLS handshake from {peer} in time"));
                            None
                        }
                    },
                    () = dropped => None,
                }
            }
        };
        let Some((reader, writer)) = halves else {
            shared.release(id);
            return;
        };
        let reader = Guarded::new(reader, slot, id, shared.clone(), deadline);
        let stream = Accepted {
            label,
            reader: Box::new(reader),
            writer,
        };
        if server
            .cast(NodeServerMessage::ConnectionOpenedExternal {
                stream: Box::new(stream),
                is_server: true,
            })
            .is_err()
        {
            shared.release(id);
        }
    });
}

/// An accepted connection, ready for ractor_cluster.
struct Accepted {
    label: String,
    reader: BoxRead,
    writer: BoxWrite,
}

impl ClusterBidiStream for Accepted {
    fn split(self: Box<Self>) -> (BoxRead, BoxWrite) {
        (self.reader, self.writer)
    }

    fn peer_label(&self) -> Option<String> {
        Some(self.label.clone())
    }
}

/// The read side of an accepted connection: until its session
/// authenticates it reads ractor_cluster's frames (`u64` big-endian length,
/// then the payload) itself and enforces the pre-authentication bounds;
/// from the first frame boundary after authentication it passes bytes
/// through untouched.
struct Guarded {
    inner: BoxRead,
    slot: Arc<Slot>,
    id: u64,
    shared: Arc<Shared>,
    deadline: Pin<Box<Sleep>>,
    header: [u8; 8],
    /// Header bytes read from the socket.
    header_len: usize,
    /// Header bytes handed on: from here to 8 are still to go.
    release_from: usize,
    payload_left: u64,
    frames: u32,
    passthrough: bool,
}

impl Guarded {
    fn new(
        inner: BoxRead,
        slot: Arc<Slot>,
        id: u64,
        shared: Arc<Shared>,
        deadline: Instant,
    ) -> Self {
        Guarded {
            inner,
            slot,
            id,
            shared,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            header: [0; 8],
            header_len: 0,
            release_from: 8,
            payload_left: 0,
            frames: 0,
            passthrough: false,
        }
    }

    fn refuse(&self, why: &'static str, counter: &std::sync::atomic::AtomicU64) -> io::Error {
        bump(counter);
        self.shared.release(self.id);
        self.slot.set(DROPPED);
        io::Error::new(io::ErrorKind::PermissionDenied, why)
    }

    /// `Ready(Err)` if the connection must close now.
    fn check_alive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.slot.waker.register(cx.waker());
        match self.slot.state() {
            DROPPED => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "dropped before authenticating",
            ))),
            AUTHENTICATED => Poll::Ready(Ok(())),
            _ => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(self.refuse(
                    "no authentication in time",
                    &self.shared.counters.handshake_timeouts,
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.passthrough {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        loop {
            let authenticated = match this.check_alive(cx) {
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => true,
                Poll::Pending => false,
            };
            // A validated header being handed on.
            if this.release_from < 8 {
                let n = (8 - this.release_from).min(buf.remaining());
                buf.put_slice(&this.header[this.release_from..this.release_from + n]);
                this.release_from += n;
                return Poll::Ready(Ok(()));
            }
            if this.payload_left > 0 {
                let left = usize::try_from(this.payload_left).unwrap_or(usize::MAX);
                if buf.remaining() <= left {
                    let before = buf.filled().len();
                    let r = Pin::new(&mut this.inner).poll_read(cx, buf);
                    if let Poll::Ready(Ok(())) = r {
                        this.payload_left -= (buf.filled().len() - before) as u64;
                    }
                    return r;
                }
                // The reader asks past this frame: read only to its end.
                let mut chunk = [0u8; 8192];
                let mut part = ReadBuf::new(&mut chunk[..left.min(8192)]);
                return match Pin::new(&mut this.inner).poll_read(cx, &mut part) {
                    Poll::Ready(Ok(())) => {
                        buf.put_slice(part.filled());
                        this.payload_left -= part.filled().len() as u64;
                        Poll::Ready(Ok(()))
                    }
                    other => other,
                };
            }
            // At a frame boundary.
            if authenticated && this.header_len == 0 {
                this.passthrough = true;
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            }
            if this.header_len < 8 {
                let mut part = ReadBuf::new(&mut this.header[this.header_len..]);
                match Pin::new(&mut this.inner).poll_read(cx, &mut part) {
                    Poll::Ready(Ok(())) => {
                        let n = part.filled().len();
                        if n == 0 {
                            // End of stream: let the reader see it.
                            return Poll::Ready(Ok(()));
                        }
                        this.header_len += n;
                        if this.header_len < 8 {
                            continue;
                        }
                    }
                    other => return other,
                }
            }
            let len = u64::from_be_bytes(this.header);
            if !authenticated {
                if this.frames >= this.shared.limits.pre_auth_frames {
                    return Poll::Ready(Err(this.refuse(
                        "too many frames before authenticating",
                        &this.shared.counters.oversized,
                    )));
                }
                if len > this.shared.limits.pre_auth_frame {
                    // Held back until the session authenticates (the
                    // slot's waker) or the deadline passes.
                    return Poll::Pending;
                }
                this.frames += 1;
            }
            this.header_len = 0;
            this.release_from = 0;
            this.payload_left = len;
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if !self.passthrough {
            self.shared.release(self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    /// A guarded reader over `bytes`, not authenticated, with the default
    /// limits and a deadline far away.
    fn guarded(bytes: Vec<u8>) -> Guarded {
        let shared = Arc::new(Shared {
            limits: GateLimits::default(),
            pending: Mutex::default(),
            counters: Arc::default(),
            refusals: Throttled::new("test"),
        });
        let slot = Arc::new(Slot {
            state: AtomicU8::new(PENDING),
            waker: AtomicWaker::new(),
        });
        let deadline = Instant::now() + Duration::from_secs(3600);
        Guarded::new(
            Box::new(std::io::Cursor::new(bytes)),
            slot,
            0,
            shared,
            deadline,
        )
    }

    /// What the reader hands on before it errs, ends, or holds a header
    /// back (it then waits for authentication).
    fn handed_on(bytes: Vec<u8>, chunk: usize) -> Vec<u8> {
        use futures::FutureExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = guarded(bytes);
            let mut out = Vec::new();
            let mut buf = vec![0u8; chunk];
            loop {
                // The bytes are all there: a read that waits is one held
                // back until authentication.
                match r.read(&mut buf).now_or_never() {
                    None | Some(Ok(0)) | Some(Err(_)) => return out,
                    Some(Ok(n)) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
    }

    /// The frames in `out`: each declared length.
    fn declared(out: &[u8]) -> Vec<u64> {
        let mut lens = Vec::new();
        let mut at = 0;
        while at + 8 <= out.len() {
            let len = u64::from_be_bytes(out[at..at + 8].try_into().unwrap());
            lens.push(len);
            at = at.saturating_add(8).saturating_add(len as usize);
        }
        lens
    }

    #[test]
    fn a_small_frame_passes_and_a_large_header_is_held() {
        let mut bytes = 3u64.to_be_bytes().to_vec();
        bytes.extend(b"abc");
        bytes.extend(((16u64 << 20) - 1).to_be_bytes());
        bytes.extend(vec![7; 1000]);
        let out = handed_on(bytes, 8192);
        assert_eq!(out, [&3u64.to_be_bytes()[..], b"abc"].concat());
    }

    #[test]
    fn frames_past_the_count_close_the_connection() {
        let frame: Vec<u8> = [&2u64.to_be_bytes()[..], &[0x12, 0x00]].concat();
        let out = handed_on(frame.repeat(100), 8192);
        assert_eq!(
            declared(&out).len(),
            GateLimits::default().pre_auth_frames as usize
        );
    }

    proptest! {
        /// Whatever an unauthenticated peer sends, in whatever pieces the
        /// reader asks for, no header past the limit and no more frames
        /// than allowed reach ractor_cluster.
        #[test]
        fn nothing_large_passes_before_authentication(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            lens in proptest::collection::vec(0u64..10_000, 0..12),
            chunk in 1usize..9000,
        ) {
            let mut stream = Vec::new();
            for (i, len) in lens.iter().enumerate() {
                stream.extend(len.to_be_bytes());
                stream.extend(bytes.iter().cycle().skip(i).take(*len as usize));
            }
            stream.extend(&bytes);
            let limits = GateLimits::default();
            let out = handed_on(stream, chunk);
            let frames = declared(&out);
            prop_assert!(frames.len() <= limits.pre_auth_frames as usize);
            prop_assert!(frames.iter().all(|l| *l <= limits.pre_auth_frame));
        }
    }
}
