//! A reading of chitchat's wire format that decides, before chitchat
//! decodes a datagram, whether it is safe to hand over.
//!
//! Sealing (`seal`) keeps out anyone without the cookie. This check guards
//! against what a cookie holder, or a bug, could still send:
//!
//! - compressed blocks that inflate past [`Limits::max_inflated`] (a 64 KB
//!   datagram of tiny zstd blocks inflates to hundreds of MB in chitchat);
//! - a node delta whose `SetMaxVersion` is below one of its own keys'
//!   versions, which trips an assertion in chitchat's state and kills its
//!   gossip task;
//! - node names drove cannot use, gossip addresses no peer can answer on
//!   (unspecified, multicast, broadcast, port 0), too many nodes, keys or
//!   values larger than drove ever writes.
//!
//! The format, as chitchat 0.13 writes it: `[u16 LE magic][u8 version]
//! [u8 type]`, then for Syn a digest and the cluster id, for SynAck a digest
//! and a delta, for Ack a delta. A V0 digest is `u16 count` entries of
//! (ChitchatId, heartbeat, last gc version, max version); a V1 digest and a
//! delta are block streams (`u8 kind`: 0 end, 1 zstd, 2 raw; `u16 len`;
//! bytes) whose inflated bytes are the entries, or the delta's operations
//! (`u8 tag`: 0 node, 1 key-value, 2 set-max-version).

use std::net::{IpAddr, SocketAddr};

use chitchat::{ChitchatId, Deserializable};

const MAGIC: u16 = 45_139;
const BLOCK_MAX: usize = u16::MAX as usize;

/// What a datagram may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Bytes all compressed blocks of one datagram may inflate to.
    pub max_inflated: usize,
    /// Nodes in one digest or delta.
    pub max_nodes: usize,
    /// Bytes of one key.
    pub max_key: usize,
    /// Bytes of one value.
    pub max_value: usize,
}

impl Limits {
    /// The limits drove runs with: 1 MiB inflated, 1,024 nodes, keys of
    /// 256 bytes, values of 4 KiB (drove's own keys and values are short).
    pub const DEFAULT: Limits = Limits {
        max_inflated: 1 << 20,
        max_nodes: 1024,
        max_key: 256,
        max_value: 4096,
    };
}

/// Why a datagram is not handed to chitchat.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckError {
    /// The bytes end early or do not parse.
    #[error("malformed gossip: {0}")]
    Malformed(&'static str),
    /// Compressed blocks inflate past the limit.
    #[error("gossip inflates past {0} bytes")]
    TooLarge(usize),
    /// More nodes than the limit.
    #[error("gossip names more than {0} nodes")]
    TooManyNodes(usize),
    /// A key or value past its limit.
    #[error("a gossiped key or value is {0} bytes, past the limit")]
    EntryTooLarge(usize),
    /// A node name drove does not accept.
    #[error("gossip names a node {0:?} that is not a valid node name")]
    BadName(String),
    /// A gossip address no node can have.
    #[error("gossip gives node {name:?} the address {addr}, which no node can have")]
    BadAddress {
        /// The node.
        name: String,
        /// Its address.
        addr: SocketAddr,
    },
    /// A node delta whose max version is below one of its keys' versions.
    #[error("a node delta sets max version {max} below its key version {key}")]
    MaxVersionBelowKey {
        /// The max version set.
        max: u64,
        /// The key version it is below.
        key: u64,
    },
}

/// The kind of a datagram that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A Syn (digest, cluster id).
    Syn,
    /// A SynAck (digest, delta).
    SynAck,
    /// An Ack (delta).
    Ack,
    /// A BadCluster answer.
    BadCluster,
}

/// Checks one chitchat datagram against `limits`.
pub fn check_datagram(bytes: &[u8], limits: &Limits) -> Result<Kind, CheckError> {
    let mut buf = bytes;
    let magic = u16::deserialize(&mut buf).map_err(|_| CheckError::Malformed("header"))?;
    if magic != MAGIC {
        return Err(CheckError::Malformed("magic"));
    }
    let version = u8::deserialize(&mut buf).map_err(|_| CheckError::Malformed("header"))?;
    let kind = u8::deserialize(&mut buf).map_err(|_| CheckError::Malformed("header"))?;
    let mut budget = limits.max_inflated;
    let kind = match kind {
        0 => {
            digest(&mut buf, version, limits, &mut budget)?;
            String::deserialize(&mut buf).map_err(|_| CheckError::Malformed("cluster id"))?;
            Kind::Syn
        }
        1 => {
            digest(&mut buf, version, limits, &mut budget)?;
            delta(&mut buf, limits, &mut budget)?;
            Kind::SynAck
        }
        2 => {
            delta(&mut buf, limits, &mut budget)?;
            Kind::Ack
        }
        3 => Kind::BadCluster,
        _ => return Err(CheckError::Malformed("message type")),
    };
    Ok(kind)
}

fn digest(
    buf: &mut &[u8],
    version: u8,
    limits: &Limits,
    budget: &mut usize,
) -> Result<(), CheckError> {
    let entries = match version {
        0 => {
            let count = u16::deserialize(buf).map_err(|_| CheckError::Malformed("digest"))?;
            if usize::from(count) > limits.max_nodes {
                return Err(CheckError::TooManyNodes(limits.max_nodes));
            }
            for _ in 0..count {
                digest_entry(buf)?;
            }
            return Ok(());
        }
        1 => inflate(buf, budget)?,
        _ => return Err(CheckError::Malformed("protocol version")),
    };
    let mut cursor = &entries[..];
    let mut count = 0;
    while !cursor.is_empty() {
        count += 1;
        if count > limits.max_nodes {
            return Err(CheckError::TooManyNodes(limits.max_nodes));
        }
        digest_entry(&mut cursor)?;
    }
    Ok(())
}

fn digest_entry(buf: &mut &[u8]) -> Result<(), CheckError> {
    node_id(buf)?;
    for _ in 0..3 {
        u64::deserialize(buf).map_err(|_| CheckError::Malformed("digest entry"))?;
    }
    Ok(())
}

fn delta(buf: &mut &[u8], limits: &Limits, budget: &mut usize) -> Result<(), CheckError> {
    let ops = inflate(buf, budget)?;
    let mut cursor = &ops[..];
    let mut nodes = 0;
    // The highest key version of the node delta being read.
    let mut key_max: Option<u64> = None;
    while !cursor.is_empty() {
        let tag = u8::deserialize(&mut cursor).map_err(|_| CheckError::Malformed("delta op"))?;
        match tag {
            0 => {
                nodes += 1;
                if nodes > limits.max_nodes {
                    return Err(CheckError::TooManyNodes(limits.max_nodes));
                }
                node_id(&mut cursor)?;
                for _ in 0..2 {
                    u64::deserialize(&mut cursor)
                        .map_err(|_| CheckError::Malformed("node delta"))?;
                }
                key_max = Some(0);
            }
            1 => {
                let Some(max) = key_max.as_mut() else {
                    return Err(CheckError::Malformed("key before node"));
                };
                for limit in [limits.max_key, limits.max_value] {
                    let s = String::deserialize(&mut cursor)
                        .map_err(|_| CheckError::Malformed("key-value"))?;
                    if s.len() > limit {
                        return Err(CheckError::EntryTooLarge(s.len()));
                    }
                }
                let version = u64::deserialize(&mut cursor)
                    .map_err(|_| CheckError::Malformed("key-value"))?;
                u8::deserialize(&mut cursor).map_err(|_| CheckError::Malformed("key-value"))?;
                *max = (*max).max(version);
            }
            2 => {
                let Some(max) = key_max.as_mut() else {
                    return Err(CheckError::Malformed("max version before node"));
                };
                let set = u64::deserialize(&mut cursor)
                    .map_err(|_| CheckError::Malformed("set max version"))?;
                if set < *max {
                    return Err(CheckError::MaxVersionBelowKey {
                        max: set,
                        key: *max,
                    });
                }
                *max = set;
            }
            _ => return Err(CheckError::Malformed("delta op tag")),
        }
    }
    Ok(())
}

fn node_id(buf: &mut &[u8]) -> Result<(), CheckError> {
    let id = ChitchatId::deserialize(buf).map_err(|_| CheckError::Malformed("node id"))?;
    if drove_membership::validate_name(&id.node_id).is_err() {
        return Err(CheckError::BadName(id.node_id.to_string()));
    }
    if !addr_usable(id.gossip_advertise_addr) {
        return Err(CheckError::BadAddress {
            name: id.node_id.to_string(),
            addr: id.gossip_advertise_addr,
        });
    }
    Ok(())
}

/// Whether a peer could be reached at `addr`.
pub fn addr_usable(addr: SocketAddr) -> bool {
    let ip = addr.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    addr.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
}

/// The inflated bytes of one block stream, charged against `budget`.
fn inflate(buf: &mut &[u8], budget: &mut usize) -> Result<Vec<u8>, CheckError> {
    let mut out = Vec::new();
    let mut block = vec![0u8; BLOCK_MAX];
    loop {
        let kind = u8::deserialize(buf).map_err(|_| CheckError::Malformed("block"))?;
        if kind == 0 {
            return Ok(out);
        }
        let len = usize::from(u16::deserialize(buf).map_err(|_| CheckError::Malformed("block"))?);
        let Some(bytes) = buf.get(..len) else {
            return Err(CheckError::Malformed("block length"));
        };
        *buf = &buf[len..];
        let inflated = match kind {
            1 => {
                let n = zstd::bulk::decompress_to_buffer(bytes, &mut block[..])
                    .map_err(|_| CheckError::Malformed("zstd block"))?;
                &block[..n]
            }
            2 => bytes,
            _ => return Err(CheckError::Malformed("block kind")),
        };
        let Some(left) = budget.checked_sub(inflated.len()) else {
            return Err(CheckError::TooLarge(out.len() + inflated.len()));
        };
        *budget = left;
        out.extend_from_slice(inflated);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(kind: u8) -> Vec<u8> {
        let mut b = MAGIC.to_le_bytes().to_vec();
        b.push(0);
        b.push(kind);
        b
    }

    fn id(buf: &mut Vec<u8>, name: &str, addr: [u8; 4], port: u16) {
        buf.extend((name.len() as u16).to_le_bytes());
        buf.extend(name.as_bytes());
        buf.extend(7u64.to_le_bytes());
        buf.push(4);
        buf.extend(addr);
        buf.extend(port.to_le_bytes());
    }

    fn raw_block(ops: &[u8]) -> Vec<u8> {
        let mut b = vec![2];
        b.extend((ops.len() as u16).to_le_bytes());
        b.extend(ops);
        b.push(0);
        b
    }

    fn kv(ops: &mut Vec<u8>, key: &str, value: &str, version: u64) {
        ops.push(1);
        for s in [key, value] {
            ops.extend((s.len() as u16).to_le_bytes());
            ops.extend(s.as_bytes());
        }
        ops.extend(version.to_le_bytes());
        ops.push(0);
    }

    fn ack(ops: &[u8]) -> Vec<u8> {
        let mut d = header(2);
        d.extend(raw_block(ops));
        d
    }

    fn node_op(name: &str, addr: [u8; 4], port: u16) -> Vec<u8> {
        let mut ops = vec![0];
        id(&mut ops, name, addr, port);
        ops.extend(0u64.to_le_bytes());
        ops.extend(0u64.to_le_bytes());
        ops
    }

    #[test]
    fn a_plain_ack_passes() {
        let mut ops = node_op("n1", [127, 0, 0, 1], 4370);
        kv(&mut ops, "status", "up", 3);
        ops.push(2);
        ops.extend(3u64.to_le_bytes());
        assert_eq!(check_datagram(&ack(&ops), &Limits::DEFAULT), Ok(Kind::Ack));
    }

    #[test]
    fn max_version_below_a_key_is_refused() {
        // The datagram that panicked chitchat's gossip task.
        let mut ops = node_op("n1", [127, 0, 0, 1], 4370);
        kv(&mut ops, "k", "v", 10);
        ops.push(2);
        ops.extend(1u64.to_le_bytes());
        assert_eq!(
            check_datagram(&ack(&ops), &Limits::DEFAULT),
            Err(CheckError::MaxVersionBelowKey { max: 1, key: 10 })
        );
    }

    #[test]
    fn bad_addresses_and_names_are_refused() {
        for (addr, port) in [
            ([0, 0, 0, 0], 4370),
            ([224, 0, 0, 1], 4370),
            ([255; 4], 1),
            ([127, 0, 0, 1], 0),
        ] {
            let ops = node_op("n1", addr, port);
            assert!(matches!(
                check_datagram(&ack(&ops), &Limits::DEFAULT),
                Err(CheckError::BadAddress { .. })
            ));
        }
        let ops = node_op("no spaces", [127, 0, 0, 1], 1);
        assert!(matches!(
            check_datagram(&ack(&ops), &Limits::DEFAULT),
            Err(CheckError::BadName(_))
        ));
    }

    #[test]
    fn a_bomb_of_compressed_blocks_is_refused_before_it_inflates() {
        let zeros = vec![0u8; BLOCK_MAX];
        let Ok(small) = zstd::bulk::compress(&zeros, 19) else {
            panic!("zstd compresses")
        };
        let mut d = header(2);
        for _ in 0..(65_000 / (small.len() + 3)) {
            d.push(1);
            d.extend((small.len() as u16).to_le_bytes());
            d.extend(&small);
        }
        d.push(0);
        assert!(d.len() < 65_507);
        assert!(matches!(
            check_datagram(&d, &Limits::DEFAULT),
            Err(CheckError::TooLarge(_))
        ));
    }

    #[test]
    fn oversized_values_are_refused() {
        let mut ops = node_op("n1", [127, 0, 0, 1], 4370);
        kv(&mut ops, "k", &"v".repeat(5000), 1);
        assert_eq!(
            check_datagram(&ack(&ops), &Limits::DEFAULT),
            Err(CheckError::EntryTooLarge(5000))
        );
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = check_datagram(&bytes, &Limits::DEFAULT);
        }

        #[test]
        fn any_header_then_bytes_never_panic(kind in 0u8..5, rest in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut d = header(kind);
            d.extend(rest);
            let _ = check_datagram(&d, &Limits::DEFAULT);
        }
    }
}
