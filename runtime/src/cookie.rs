//! The cluster cookie: what it must look like, and the keys derived from it.
//!
//! The cookie never goes on the wire. Gossip datagrams carry a MAC under a
//! key derived from it, and the cluster id that chitchat compares is derived
//! with a keyed function. Both derivations start with PBKDF2 (salted,
//! iterated), so a captured datagram does not let anyone test cookie
//! guesses cheaply; a random 256-bit cookie (the default) makes guessing
//! hopeless in any case.

use std::net::SocketAddr;

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Cookies anyone would try first; refused on a non-loopback address.
const WELL_KNOWN: &[&str] = &[
    "",
    "drove",
    "cookie",
    "secret",
    "changeme",
    "change-me",
    "password",
    "test",
    "dev",
    "default",
    "erlang",
    "nocookie",
];

/// Shortest cookie accepted on a non-loopback address.
pub const MIN_COOKIE_LEN: usize = 16;

const SALT: &[u8] = b"drove cluster key v1";
const ROUNDS: u32 = 20_000;

/// Why a cookie may not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CookieError {
    /// A well-known or empty cookie on an address others can reach.
    #[error("the cookie is a well-known default; give a random one (--cookie-file) before listening on {0}")]
    WellKnown(SocketAddr),
    /// A short cookie on an address others can reach.
    #[error("the cookie is shorter than {MIN_COOKIE_LEN} bytes; give a random one (--cookie-file) before listening on {0}")]
    TooShort(SocketAddr),
}

/// Whether `cookie` may be used by a node listening on `listen`. On
/// loopback anything goes (only this machine can reach it); elsewhere a
/// well-known or short cookie is refused.
pub fn check_cookie(cookie: &str, listen: SocketAddr) -> Result<(), CookieError> {
    if listen.ip().is_loopback() {
        return Ok(());
    }
    if WELL_KNOWN.contains(&cookie.trim()) {
        return Err(CookieError::WellKnown(listen));
    }
    if cookie.len() < MIN_COOKIE_LEN {
        return Err(CookieError::TooShort(listen));
    }
    Ok(())
}

/// A fresh random cookie: 32 random bytes, hex.
pub fn random_cookie() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The keys a node derives from its cookie once, at start.
#[derive(Clone)]
pub struct ClusterKeys {
    gossip: [u8; 32],
    cluster_id: String,
}

impl std::fmt::Debug for ClusterKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterKeys")
            .field("cluster_id", &self.cluster_id)
            .finish_non_exhaustive()
    }
}

impl ClusterKeys {
    /// Derives the keys (PBKDF2-HMAC-SHA256, then HMAC per purpose).
    pub fn derive(cookie: &str) -> Self {
        let mut master = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(cookie.as_bytes(), SALT, ROUNDS, &mut master);
        let gossip = purpose(&master, b"gossip datagrams");
        let id = purpose(&master, b"cluster id");
        let hex: String = id[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self {
            gossip,
            cluster_id: format!("drove-{hex}"),
        }
    }

    /// The key that authenticates gossip datagrams.
    pub fn gossip_key(&self) -> &[u8; 32] {
        &self.gossip
    }

    /// The cluster id chitchat compares on every Syn.
    pub fn cluster_id(&self) -> &str {
        &self.cluster_id
    }
}

fn purpose(master: &[u8; 32], label: &[u8]) -> [u8; 32] {
    let Ok(mut mac) = HmacSha256::new_from_slice(master) else {
        unreachable!("HMAC takes a key of any length")
    };
    mac.update(label);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_takes_any_cookie_elsewhere_only_strong_ones() {
        assert_eq!(check_cookie("drove", addr("127.0.0.1:4370")), Ok(()));
        assert_eq!(check_cookie("", addr("[::1]:4370")), Ok(()));
        let lan = addr("198.18.0.1:4370");
        assert_eq!(check_cookie("drove", lan), Err(CookieError::WellKnown(lan)));
        assert_eq!(
            check_cookie(" secret ", lan),
            Err(CookieError::WellKnown(lan))
        );
        assert_eq!(
            check_cookie("short-one", lan),
            Err(CookieError::TooShort(lan))
        );
        assert_eq!(check_cookie(&random_cookie(), lan), Ok(()));
    }

    #[test]
    fn keys_depend_on_the_cookie_and_differ_per_purpose() {
        let a = ClusterKeys::derive("one cookie");
        let b = ClusterKeys::derive("another cookie");
        assert_ne!(a.cluster_id(), b.cluster_id());
        assert_ne!(a.gossip_key(), b.gossip_key());
        assert_eq!(
            a.cluster_id(),
            ClusterKeys::derive("one cookie").cluster_id()
        );
        // Debug output never shows the key.
        assert!(!format!("{a:?}").contains(&hex_of(a.gossip_key())));
    }

    fn hex_of(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}
