//! Cookie sessions, as the seed's AuthPlug: a random user id in a cookie,
//! signed with a key every node shares, so any node accepts it.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "dm_session";

/// Signs and checks session cookies.
#[derive(Clone)]
pub(crate) struct Sessions {
    key: [u8; 32],
}

impl Sessions {
    /// Sessions keyed by `secret` (the same on every node).
    pub(crate) fn new(secret: &str) -> Self {
        let key = Sha256::digest(format!("drove-download-manager-session:{secret}").as_bytes());
        Sessions { key: key.into() }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; 32 bytes never fails.
        <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    /// A new random user id.
    pub(crate) fn new_user() -> String {
        format!("u{:016x}", rand::random::<u64>())
    }

    /// The cookie value for `user`: `user.signature`.
    pub(crate) fn sign(&self, user: &str) -> String {
        let mut mac = self.mac();
        mac.update(user.as_bytes());
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{user}.{sig}")
    }

    /// The user of a cookie value, if its signature checks out.
    pub(crate) fn verify(&self, value: &str) -> Option<String> {
        let (user, sig) = value.rsplit_once('.')?;
        if user.is_empty() || user.len() > 64 || !user.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let sig = decode_hex(sig)?;
        let mut mac = self.mac();
        mac.update(user.as_bytes());
        mac.verify_slice(&sig).ok()?;
        Some(user.to_string())
    }

    /// The signed-in user of a request, if any.
    pub(crate) fn user(&self, headers: &HeaderMap) -> Option<String> {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(&format!("{COOKIE_NAME}=")))
            .find_map(|v| self.verify(v))
    }

    /// The `Set-Cookie` value for `user` (a year; readable by any node of
    /// the same host, whatever its port).
    pub(crate) fn set_cookie(&self, user: &str) -> String {
        format!(
            "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age=31536000",
            self.sign(user)
        )
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_cookies_verify_on_any_node_with_the_same_secret_only() {
        let a = Sessions::new("s3cret");
        let b = Sessions::new("s3cret");
        let other = Sessions::new("other");
        let value = a.sign("u1234");
        assert_eq!(b.verify(&value).as_deref(), Some("u1234"));
        assert_eq!(other.verify(&value), None);
        assert_eq!(a.verify("u1234.00"), None);
        assert_eq!(a.verify(&value.replace("u1234", "u9999")), None);
        assert_eq!(a.verify("garbage"), None);
        assert_eq!(a.verify("u1.zz"), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            axum::http::header::COOKIE,
            format!("x=1; {COOKIE_NAME}={value}")
                .parse()
                .expect("header"),
        );
        assert_eq!(a.user(&headers).as_deref(), Some("u1234"));
    }
}
