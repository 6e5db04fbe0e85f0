//! Hand-made gossip datagrams, as an attacker with a plain UDP socket would
//! write them: chitchat's wire format (see drove-runtime's `gossip::check`
//! for the layout), optionally sealed with a cookie to play an insider.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use drove_runtime::cookie::ClusterKeys;
use drove_runtime::gossip::seal::Sealer;

const MAGIC: u16 = 45_139;

/// A chitchat node id: name, generation (drove's incarnation), address.
#[derive(Debug, Clone)]
pub struct ForgedId {
    /// The node name.
    pub name: String,
    /// The generation (a drove incarnation).
    pub generation: u64,
    /// The gossip address.
    pub addr: SocketAddr,
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend((s.len() as u16).to_le_bytes());
    buf.extend(s.as_bytes());
}

fn put_id(buf: &mut Vec<u8>, id: &ForgedId) {
    put_str(buf, &id.name);
    buf.extend(id.generation.to_le_bytes());
    match id.addr {
        SocketAddr::V4(a) => {
            buf.push(4);
            buf.extend(a.ip().octets());
        }
        SocketAddr::V6(a) => {
            buf.push(6);
            buf.extend(a.ip().octets());
        }
    }
    buf.extend(id.addr.port().to_le_bytes());
}

/// One operation of a delta.
#[derive(Debug, Clone)]
pub enum Op {
    /// Starts a node's part of the delta.
    Node(ForgedId),
    /// A key, value and version.
    Kv(String, String, u64),
    /// Sets the node's max version.
    SetMaxVersion(u64),
}

/// Delta operations as one uncompressed block stream.
pub fn delta(ops: &[Op]) -> Vec<u8> {
    let mut body = Vec::new();
    for op in ops {
        match op {
            Op::Node(id) => {
                body.push(0);
                put_id(&mut body, id);
                body.extend(0u64.to_le_bytes());
                body.extend(0u64.to_le_bytes());
            }
            Op::Kv(k, v, version) => {
                body.push(1);
                put_str(&mut body, k);
                put_str(&mut body, v);
                body.extend(version.to_le_bytes());
                body.push(0);
            }
            Op::SetMaxVersion(v) => {
                body.push(2);
                body.extend(v.to_le_bytes());
            }
        }
    }
    let mut out = vec![2];
    out.extend((body.len() as u16).to_le_bytes());
    out.extend(body);
    out.push(0);
    out
}

fn header(kind: u8) -> Vec<u8> {
    let mut b = MAGIC.to_le_bytes().to_vec();
    b.push(0);
    b.push(kind);
    b
}

/// A SynAck with an empty digest (asks for everything) and `delta`.
pub fn syn_ack(delta_bytes: &[u8]) -> Vec<u8> {
    let mut b = header(1);
    b.extend(0u16.to_le_bytes());
    b.extend(delta_bytes);
    b
}

/// An Ack carrying `delta`.
pub fn ack(delta_bytes: &[u8]) -> Vec<u8> {
    let mut b = header(2);
    b.extend(delta_bytes);
    b
}

/// An Ack of tiny zstd blocks that each inflate to 64 KiB, filling one
/// datagram: hundreds of MB once inflated.
pub fn inflation_bomb() -> Vec<u8> {
    let zeros = vec![0u8; u16::MAX as usize];
    let small = zstd_frame(&zeros);
    let mut b = header(2);
    while b.len() + small.len() + 4 < 65_000 {
        b.push(1);
        b.extend((small.len() as u16).to_le_bytes());
        b.extend(&small);
    }
    b.push(0);
    b
}

fn zstd_frame(data: &[u8]) -> Vec<u8> {
    match zstd::bulk::compress(data, 19) {
        Ok(v) => v,
        Err(e) => panic!("zstd: {e}"),
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `payload` sealed as a node holding `cookie` would, at `at_ms`.
pub fn sealed(cookie: &str, at_ms: u64, payload: &[u8]) -> Vec<u8> {
    let keys = ClusterKeys::derive(cookie);
    Sealer::new(*keys.gossip_key()).seal(at_ms, rand::random(), payload)
}
