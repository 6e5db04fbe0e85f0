//! The gossip socket: chitchat's `Transport`, sealing every datagram that
//! leaves and admitting only sealed, fresh, checked ones.
//!
//! chitchat 0.13 keeps its envelope encoder and decoder private, so this
//! socket uses chitchat's own UDP socket, bound on loopback, as the codec:
//!
//! - send: chitchat's socket encodes the envelope and sends it to a private
//!   *capture* socket; the bytes read there are sealed and sent from the
//!   public socket.
//! - receive: a datagram on the public socket is opened (`seal`) and checked
//!   (`check`) before any decoding; only then is the payload passed, from a
//!   private *injector* socket kept per peer address, to chitchat's socket,
//!   which decodes it. The injector's port tells which peer it came from.
//!
//! Datagrams on the private sockets from anywhere else are dropped.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport, UdpSocket as Codec};
use chitchat::ChitchatEnvelope;
use tokio::net::UdpSocket;

use super::check::{check_datagram, Limits};
use super::seal::{Rejected, Sealer, OVERHEAD};
use crate::metrics::GossipCounters;

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_507;

/// Peer addresses with an injector at most; past this the oldest-made one is
/// closed (a peer that comes back gets a new one).
const MAX_PEERS: usize = 4096;

/// How long an encoded datagram may take to reach the capture socket.
const CAPTURE_WAIT: Duration = Duration::from_secs(1);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

const LOOPBACK: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// chitchat's transport over sealed UDP.
pub(crate) struct SealedUdp {
    pub(crate) key: [u8; 32],
    pub(crate) counters: Arc<GossipCounters>,
}

#[async_trait]
impl Transport for SealedUdp {
    async fn open(&self, listen: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let public = UdpSocket::bind(listen).await?;
        let codec = Codec::open(LOOPBACK).await?;
        let codec_addr = codec.local_addr()?;
        let capture = UdpSocket::bind(LOOPBACK).await?;
        let capture_addr = capture.local_addr()?;
        Ok(Box::new(SealedSocket {
            public,
            codec,
            codec_addr,
            capture,
            capture_addr,
            sealer: Sealer::new(self.key),
            injectors: Injectors::default(),
            counters: self.counters.clone(),
            buf: vec![0; MAX_DATAGRAM + 1].into_boxed_slice(),
        }))
    }
}

/// One private socket per peer address, and the way back.
#[derive(Default)]
struct Injectors {
    by_peer: HashMap<SocketAddr, Arc<UdpSocket>>,
    peer_of: HashMap<SocketAddr, SocketAddr>,
    order: std::collections::VecDeque<SocketAddr>,
}

impl Injectors {
    async fn for_peer(&mut self, peer: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
        if let Some(s) = self.by_peer.get(&peer) {
            return Ok(s.clone());
        }
        if self.by_peer.len() >= MAX_PEERS {
            if let Some(old) = self.order.pop_front() {
                if let Some(s) = self.by_peer.remove(&old) {
                    if let Ok(a) = s.local_addr() {
                        self.peer_of.remove(&a);
                    }
                }
            }
        }
        let socket = Arc::new(UdpSocket::bind(LOOPBACK).await?);
        self.peer_of.insert(socket.local_addr()?, peer);
        self.by_peer.insert(peer, socket.clone());
        self.order.push_back(peer);
        Ok(socket)
    }

    fn peer_of(&self, injector: SocketAddr) -> Option<SocketAddr> {
        self.peer_of.get(&injector).copied()
    }
}

struct SealedSocket {
    public: UdpSocket,
    codec: Codec,
    codec_addr: SocketAddr,
    capture: UdpSocket,
    capture_addr: SocketAddr,
    sealer: Sealer,
    injectors: Injectors,
    counters: Arc<GossipCounters>,
    buf: Box<[u8]>,
}

/// What one turn of the receive loop produced.
enum Turn {
    Public(std::io::Result<(usize, SocketAddr)>),
    Decoded(anyhow::Result<RecvOutcome>),
}

impl SealedSocket {
    /// Opens, checks and forwards one datagram from the public socket.
    async fn admit(&mut self, len: usize, from: SocketAddr) {
        let c = &self.counters;
        c.bytes_received.fetch_add(len as u64, Ordering::Relaxed);
        let payload = match self.sealer.open(now_ms(), &self.buf[..len]) {
            Ok(p) => p,
            Err(e) => {
                let counter = match e {
                    Rejected::NotSealed | Rejected::BadMac => &c.unauthenticated,
                    Rejected::Stale | Rejected::Replayed | Rejected::Flooded => &c.replayed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%from, len, reason = %e, "gossip datagram refused");
                return;
            }
        };
        if let Err(e) = check_datagram(payload, &Limits::DEFAULT) {
            c.malformed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%from, reason = %e, "authenticated gossip datagram refused");
            return;
        }
        let payload = payload.to_vec();
        match self.injectors.for_peer(from).await {
            Ok(injector) => {
                if let Err(e) = injector.send_to(&payload, self.codec_addr).await {
                    tracing::warn!(error = %e, "cannot pass a gossip datagram on");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot open an injector socket"),
        }
    }
}

#[async_trait]
impl Socket for SealedSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.public.local_addr()?)
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        self.codec.send(self.capture_addr, envelope).await?;
        let encoded = tokio::time::timeout(CAPTURE_WAIT, async {
            loop {
                let (n, from) = self.capture.recv_from(&mut self.buf).await?;
                if from == self.codec_addr {
                    return Ok::<usize, std::io::Error>(n);
                }
            }
        })
        .await;
        let n = match encoded {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                self.counters.dropped_sends.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("an encoded gossip datagram never reached the capture socket");
                return Ok(SendOutcome { num_bytes_sent: 0 });
            }
        };
        if n + OVERHEAD > MAX_DATAGRAM {
            self.counters.dropped_sends.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(len = n, "gossip datagram too large to seal; dropped");
            return Ok(SendOutcome { num_bytes_sent: 0 });
        }
        let sealed = self.sealer.seal(now_ms(), rand::random(), &self.buf[..n]);
        match self.public.send_to(&sealed, to).await {
            Ok(sent) => {
                self.counters
                    .bytes_sent
                    .fetch_add(sent as u64, Ordering::Relaxed);
                Ok(SendOutcome {
                    num_bytes_sent: sent,
                })
            }
            Err(e) => {
                // A peer that is gone, or a route that is not there, must
                // not stop gossip with everyone else.
                self.counters.dropped_sends.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%to, error = %e, "gossip send failed");
                Ok(SendOutcome { num_bytes_sent: 0 })
            }
        }
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let turn = tokio::select! {
                r = self.public.recv_from(&mut self.buf) => Turn::Public(r),
                r = self.codec.recv() => Turn::Decoded(r),
            };
            match turn {
                Turn::Public(Ok((len, from))) => self.admit(len, from).await,
                Turn::Public(Err(e)) => match e.kind() {
                    std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::OutOfMemory => {
                        tracing::debug!(error = %e, "transient gossip receive error");
                    }
                    _ => return Err(e.into()),
                },
                Turn::Decoded(r) => {
                    let outcome = r?;
                    match self.injectors.peer_of(outcome.from_addr) {
                        Some(peer) => {
                            self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                            return Ok(RecvOutcome {
                                from_addr: peer,
                                ..outcome
                            });
                        }
                        None => {
                            self.counters
                                .unauthenticated
                                .fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(from = %outcome.from_addr, "gossip datagram on the private socket refused");
                        }
                    }
                }
            }
        }
    }
}
