//! Sealed gossip datagrams: a MAC over every datagram, with a timestamp and
//! a nonce so a captured datagram cannot be replayed.
//!
//! ```text
//! [b"DG1"][u64 LE sent_ms][12-byte nonce][chitchat payload][32-byte HMAC-SHA256]
//! ```
//!
//! The MAC covers everything before it. A receiver accepts a datagram only
//! if the MAC checks, `sent_ms` is within [`WINDOW_MS`] of its own clock,
//! and the nonce was not seen within that window. Nothing of the payload is
//! looked at before the MAC checks.

use std::collections::{HashSet, VecDeque};

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const MAGIC: &[u8; 3] = b"DG1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 32;
const HEADER_LEN: usize = MAGIC.len() + 8 + NONCE_LEN;

/// Bytes a seal adds to a payload.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// How far a datagram's timestamp may be from the receiver's clock, either
/// way. Clocks of the cluster's machines must agree within this.
pub const WINDOW_MS: u64 = 30_000;

/// Nonces remembered at most; past this, fresh datagrams are refused until
/// old nonces age out (a flood must not grow memory).
pub const MAX_REMEMBERED: usize = 262_144;

/// Why a datagram was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// Too short to hold a seal, or not starting with the magic bytes.
    #[error("not a sealed gossip datagram")]
    NotSealed,
    /// The MAC does not check: another cookie, or tampered bytes.
    #[error("the MAC does not check")]
    BadMac,
    /// The timestamp is outside the window.
    #[error("the timestamp is outside the replay window")]
    Stale,
    /// The nonce was seen within the window.
    #[error("the nonce was seen before (a replay)")]
    Replayed,
    /// Too many nonces within the window.
    #[error("too many datagrams within the replay window")]
    Flooded,
}

/// Seals outgoing datagrams and opens incoming ones under one key.
pub struct Sealer {
    key: [u8; 32],
    seen: HashSet<[u8; NONCE_LEN]>,
    by_time: VecDeque<(u64, [u8; NONCE_LEN])>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("remembered", &self.seen.len())
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for the cluster key (see `ClusterKeys::gossip_key`).
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key,
            seen: HashSet::new(),
            by_time: VecDeque::new(),
        }
    }

    fn mac(&self) -> HmacSha256 {
        let Ok(mac) = HmacSha256::new_from_slice(&self.key) else {
            unreachable!("HMAC takes a key of any length")
        };
        mac
    }

    /// `payload`, sealed at `now_ms` with `nonce`.
    pub fn seal(&self, now_ms: u64, nonce: [u8; NONCE_LEN], payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + OVERHEAD);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&now_ms.to_le_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(payload);
        let mut mac = self.mac();
        mac.update(&out);
        out.extend_from_slice(&mac.finalize().into_bytes());
        out
    }

    /// The payload of `datagram` if it is sealed under this key, fresh, and
    /// not seen before; its nonce is then remembered.
    pub fn open<'a>(&mut self, now_ms: u64, datagram: &'a [u8]) -> Result<&'a [u8], Rejected> {
        if datagram.len() < OVERHEAD || !datagram.starts_with(MAGIC) {
            return Err(Rejected::NotSealed);
        }
        let (signed, tag) = datagram.split_at(datagram.len() - TAG_LEN);
        let mut mac = self.mac();
        mac.update(signed);
        // Constant time: the comparison must not tell how much of a guess
        // was right.
        mac.verify_slice(tag).map_err(|_| Rejected::BadMac)?;
        let mut sent = [0u8; 8];
        sent.copy_from_slice(&signed[MAGIC.len()..MAGIC.len() + 8]);
        let sent_ms = u64::from_le_bytes(sent);
        if sent_ms.abs_diff(now_ms) > WINDOW_MS {
            return Err(Rejected::Stale);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&signed[MAGIC.len() + 8..HEADER_LEN]);
        self.forget_expired(now_ms);
        if self.seen.contains(&nonce) {
            return Err(Rejected::Replayed);
        }
        if self.seen.len() >= MAX_REMEMBERED {
            return Err(Rejected::Flooded);
        }
        self.seen.insert(nonce);
        // Remembered for as long as the datagram could pass the timestamp
        // check.
        self.by_time
            .push_back((sent_ms.saturating_add(WINDOW_MS), nonce));
        Ok(&signed[HEADER_LEN..])
    }

    /// Nonces remembered now.
    pub fn remembered(&self) -> usize {
        self.seen.len()
    }

    fn forget_expired(&mut self, now_ms: u64) {
        // Expiries are not strictly ordered (senders' clocks differ); an
        // entry behind a later one only lingers longer, never leaves early.
        while let Some(&(expires, nonce)) = self.by_time.front() {
            if expires >= now_ms {
                break;
            }
            self.by_time.pop_front();
            self.seen.remove(&nonce);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn a_sealed_payload_opens_once() {
        let mut s = Sealer::new([7; 32]);
        let d = s.seal(NOW, [1; 12], b"hello");
        assert_eq!(s.open(NOW + 5, &d), Ok(&b"hello"[..]));
        assert_eq!(s.open(NOW + 6, &d), Err(Rejected::Replayed));
    }

    #[test]
    fn another_key_tampering_and_age_are_refused() {
        let mut s = Sealer::new([7; 32]);
        let mut other = Sealer::new([8; 32]);
        let d = s.seal(NOW, [1; 12], b"hello");
        assert_eq!(other.open(NOW, &d), Err(Rejected::BadMac));
        let mut t = d.clone();
        t[HEADER_LEN] ^= 1;
        assert_eq!(s.open(NOW, &t), Err(Rejected::BadMac));
        assert_eq!(s.open(NOW + WINDOW_MS + 1, &d), Err(Rejected::Stale));
        assert_eq!(s.open(NOW - WINDOW_MS - 1, &d), Err(Rejected::Stale));
        assert_eq!(s.open(NOW, b"DG1"), Err(Rejected::NotSealed));
        assert_eq!(s.open(NOW, &[0u8; 100]), Err(Rejected::NotSealed));
    }

    #[test]
    fn nonces_age_out_after_the_window() {
        let mut s = Sealer::new([7; 32]);
        for i in 0..100u8 {
            let d = s.seal(NOW, [i; 12], b"x");
            assert!(s.open(NOW, &d).is_ok());
        }
        assert_eq!(s.remembered(), 100);
        let d = s.seal(NOW + 2 * WINDOW_MS + 1, [200; 12], b"x");
        assert!(s.open(NOW + 2 * WINDOW_MS + 1, &d).is_ok());
        assert_eq!(s.remembered(), 1);
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic_and_never_open(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut s = Sealer::new([9; 32]);
            prop_assert!(s.open(NOW, &bytes).is_err());
        }

        #[test]
        fn any_flipped_bit_is_refused(payload in proptest::collection::vec(any::<u8>(), 0..64), bit in 0usize..1000) {
            let mut s = Sealer::new([9; 32]);
            let mut d = s.seal(NOW, [3; 12], &payload);
            let bit = bit % (d.len() * 8);
            d[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(s.open(NOW, &d).is_err());
        }
    }
}
