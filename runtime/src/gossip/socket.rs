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
//!   private *injector* socket, to chitchat's socket, which decodes it. One
//!   datagram is in the codec at a time, so the decoded envelope is known
//!   to come from the peer whose datagram was passed.
//!
//! Nothing but the node's own sockets can reach the codec: the codec socket
//! is connected to the injector and the capture socket to the codec, so the
//! kernel drops a datagram from any other address (a local process that
//! found the codec's port in `/proc/net/udp`) before chitchat could decode
//! it. chitchat does not hand out its socket, so the codec's descriptor is
//! found by its inode in `/proc/self/net/udp` and connected with `connect`
//! on the raw descriptor, then checked.

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
        let injector = UdpSocket::bind(LOOPBACK).await?;
        connect_codec(codec_addr, injector.local_addr()?)?;
        let capture = UdpSocket::bind(LOOPBACK).await?;
        capture.connect(codec_addr).await?;
        let capture_addr = capture.local_addr()?;
        Ok(Box::new(SealedSocket {
            public,
            codec,
            codec_addr,
            capture,
            capture_addr,
            injector,
            in_codec: None,
            sealer: Sealer::new(self.key),
            counters: self.counters.clone(),
            buf: vec![0; MAX_DATAGRAM + 1].into_boxed_slice(),
        }))
    }
}

/// Connects chitchat's codec socket, bound at `codec`, to `injector`: its
/// descriptor is the one whose inode `/proc/self/net/udp` lists at `codec`.
fn connect_codec(codec: SocketAddr, injector: SocketAddr) -> std::io::Result<()> {
    use nix::sys::socket::{connect, getpeername, getsockname, SockaddrIn};
    let other = |why: String| std::io::Error::other(why);
    let (SocketAddr::V4(codec4), SocketAddr::V4(injector4)) = (codec, injector) else {
        return Err(other("the codec sockets are on IPv4 loopback".into()));
    };
    let inode = udp_inode(codec4)?;
    let wanted = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let is_it = std::fs::read_link(entry.path())
            .map(|l| l.as_os_str() == wanted.as_str())
            .unwrap_or(false);
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        if !is_it {
            continue;
        }
        connect(fd, &SockaddrIn::from(injector4)).map_err(std::io::Error::from)?;
        // The descriptor could have been closed and reused in between:
        // check it is still the codec, now tied to the injector.
        let bound: SockaddrIn = getsockname(fd).map_err(std::io::Error::from)?;
        let peer: SockaddrIn = getpeername(fd).map_err(std::io::Error::from)?;
        if std::net::SocketAddrV4::from(bound) == codec4
            && std::net::SocketAddrV4::from(peer) == injector4
        {
            return Ok(());
        }
        return Err(other("the codec's descriptor changed under us".into()));
    }
    Err(other(format!(
        "no descriptor holds the codec socket {codec}"
    )))
}

/// The inode of the UDP socket bound at `addr`, from `/proc/self/net/udp`
/// (addresses there are the `u32` of the address bytes in host order, in
/// hex; ports are hex).
fn udp_inode(addr: std::net::SocketAddrV4) -> std::io::Result<u64> {
    let table = std::fs::read_to_string("/proc/self/net/udp")?;
    let want = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(addr.ip().octets()),
        addr.port()
    );
    table
        .lines()
        .skip(1)
        .find_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.get(1) == Some(&want.as_str()))
                .then(|| cols.get(9)?.parse().ok())
                .flatten()
        })
        .ok_or_else(|| std::io::Error::other(format!("{addr} is not in /proc/self/net/udp")))
}

struct SealedSocket {
    public: UdpSocket,
    codec: Codec,
    codec_addr: SocketAddr,
    capture: UdpSocket,
    capture_addr: SocketAddr,
    /// The only socket the codec takes datagrams from.
    injector: UdpSocket,
    /// The peer whose datagram is in the codec, not yet decoded (kept
    /// across a cancelled `recv`, so the envelope is still theirs).
    in_codec: Option<SocketAddr>,
    sealer: Sealer,
    counters: Arc<GossipCounters>,
    buf: Box<[u8]>,
}

/// How long chitchat may take to decode a datagram handed to it; past
/// this it dropped the datagram as undecodable.
const DECODE_WAIT: Duration = Duration::from_secs(1);

impl SealedSocket {
    /// Opens and checks one datagram from the public socket; passes its
    /// payload to the codec if it is fit.
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
        match self.injector.send_to(payload, self.codec_addr).await {
            Ok(_) => self.in_codec = Some(from),
            Err(e) => tracing::warn!(error = %e, "cannot pass a gossip datagram on"),
        }
    }

    /// The envelope of the datagram in the codec, attributed to its peer.
    async fn decoded(&mut self, peer: SocketAddr) -> anyhow::Result<Option<RecvOutcome>> {
        let outcome = tokio::time::timeout(DECODE_WAIT, self.codec.recv()).await;
        self.in_codec = None;
        match outcome {
            Ok(r) => {
                let outcome = r?;
                self.counters.accepted.fetch_add(1, Ordering::Relaxed);
                Ok(Some(RecvOutcome {
                    from_addr: peer,
                    ..outcome
                }))
            }
            Err(_) => {
                // chitchat refused what the checks passed.
                self.counters.malformed.fetch_add(1, Ordering::Relaxed);
                Ok(None)
            }
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
            if let Some(peer) = self.in_codec {
                if let Some(outcome) = self.decoded(peer).await? {
                    return Ok(outcome);
                }
            }
            match self.public.recv_from(&mut self.buf).await {
                Ok((len, from)) => self.admit(len, from).await,
                Err(e) => match e.kind() {
                    std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::OutOfMemory => {
                        tracing::debug!(error = %e, "transient gossip receive error");
                    }
                    _ => return Err(e.into()),
                },
            }
        }
    }
}
