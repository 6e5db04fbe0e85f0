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

    /// The cookie value for `user`, issued at `now` (seconds since the
    /// epoch): `user.issued.expires.signature`, the signature covering the
    /// three.
    pub(crate) fn sign_at(&self, user: &str, now: u64) -> String {
        let expires = now + LIFETIME_SECS;
        let body = format!("{user}.{now}.{expires}");
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        let sig: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{body}.{sig}")
    }

    /// The user of a cookie value at `now`, if its signature checks out,
    /// it has not expired, and it was not issued in the future.
    pub(crate) fn verify_at(&self, value: &str, now: u64) -> Option<String> {
        let (body, sig) = value.rsplit_once('.')?;
        let mut parts = body.splitn(3, '.');
        let (user, issued, expires) = (parts.next()?, parts.next()?, parts.next()?);
        if user.is_empty() || user.len() > 64 || !user.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let (issued, expires): (u64, u64) = (issued.parse().ok()?, expires.parse().ok()?);
        let sig = decode_hex(sig)?;
        let mut mac = self.mac();
        mac.update(body.as_bytes());
        mac.verify_slice(&sig).ok()?;
        let sane = issued <= now + CLOCK_SLACK_SECS
            && now < expires
            && expires.saturating_sub(issued) <= LIFETIME_SECS;
        sane.then(|| user.to_string())
    }

    /// The signed-in user of a request, if any.
    pub(crate) fn user(&self, headers: &HeaderMap) -> Option<String> {
        let now = now_secs();
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(&format!("{COOKIE_NAME}=")))
            .find_map(|v| self.verify_at(v, now))
    }

    /// The `Set-Cookie` value for `user` (readable by any node of the same
    /// host, whatever its port); `Secure` when the page came over https
    /// (a TLS-terminating balancer says so in `X-Forwarded-Proto`).
    pub(crate) fn set_cookie(&self, user: &str, headers: &HeaderMap) -> String {
        let https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        format!(
            "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={LIFETIME_SECS}{}",
            self.sign_at(user, now_secs()),
            if https { "; Secure" } else { "" }
        )
    }
}

/// How long a session lasts: 30 days.
const LIFETIME_SECS: u64 = 30 * 24 * 3600;

/// How far in the future an issue time may be (nodes' clocks differ).
const CLOCK_SLACK_SECS: u64 = 300;

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
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
        let now = 1_800_000_000;
        let a = Sessions::new("s3cret");
        let b = Sessions::new("s3cret");
        let other = Sessions::new("other");
        let value = a.sign_at("u1234", now);
        assert_eq!(b.verify_at(&value, now + 5).as_deref(), Some("u1234"));
        assert_eq!(other.verify_at(&value, now), None, "another secret");
        assert_eq!(
            a.verify_at(&value.replace("u1234", "u9999"), now),
            None,
            "tampered user"
        );
        let (body, _) = value.rsplit_once('.').unwrap();
        let longer = body.replace(
            &format!(".{}", now + LIFETIME_SECS),
            &format!(".{}", now + 10 * LIFETIME_SECS),
        );
        assert_eq!(
            a.verify_at(&format!("{longer}.00"), now),
            None,
            "tampered expiry"
        );
        assert_eq!(a.verify_at(&value, now + LIFETIME_SECS), None, "expired");
        let future = a.sign_at("u1234", now + 3600);
        assert_eq!(a.verify_at(&future, now), None, "issued in the future");
        for junk in ["garbage", "u1.zz", "u1.1.2.00", "", "....", "u1.x.y.00"] {
            assert_eq!(a.verify_at(junk, now), None, "{junk:?}");
        }
        let mut headers = HeaderMap::new();
        let fresh = a.sign_at("u1234", now_secs());
        headers.insert(
            axum::http::header::COOKIE,
            format!("x=1; {COOKIE_NAME}={fresh}")
                .parse()
                .expect("header"),
        );
        assert_eq!(a.user(&headers).as_deref(), Some("u1234"));
        assert!(!a.set_cookie("u1", &HeaderMap::new()).contains("Secure"));
        let mut https = HeaderMap::new();
        https.insert("x-forwarded-proto", "https".parse().expect("header"));
        assert!(a.set_cookie("u1", &https).ends_with("; Secure"));
    }

    proptest::proptest! {
        #[test]
        fn any_cookie_value_is_refused_without_the_key(value in ".{0,200}", user in "[a-z0-9]{1,20}") {
            let a = Sessions::new("s3cret");
            proptest::prop_assert_eq!(a.verify_at(&value, 1_800_000_000), None);
            // A real value with any suffix or any one character changed.
            let real = a.sign_at(&user, 1_800_000_000);
            let changed = format!("{real}{value}");
            if !value.is_empty() {
                proptest::prop_assert_eq!(a.verify_at(&changed, 1_800_000_000), None);
            }
        }
    }
}
