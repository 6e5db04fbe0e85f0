//! The client behind a trusted reverse proxy: with `--trusted-proxy CIDR`,
//! a request from a proxy in one of those ranges is the client's that the
//! proxy names in `X-Forwarded-For`, so per-client limits key on visitors,
//! not on the proxy. From anyone else the header is ignored: a visitor
//! cannot pick the address its limits are counted under.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use drove_admin::listener::ClientAddr;

/// An address range: `198.18.0.0/15`, `::1/128`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, bits) = text.split_once('/').unwrap_or((text, ""));
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = if bits.is_empty() {
            max
        } else {
            bits.parse::<u8>()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("{text:?}: the prefix must be 0 to {max}"))?
        };
        Ok(Cidr { net, bits })
    }
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        let mask = |bits: u8, width: u32| -> u128 {
            if bits == 0 {
                0
            } else {
                (!0u128 << (width - u32::from(bits))) & (!0u128 >> (128 - width))
            }
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = mask(self.bits, 32);
                u128::from(u32::from(n)) & m == u128::from(u32::from(a)) & m
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = mask(self.bits, 128);
                u128::from(n) & m == u128::from(a) & m
            }
            _ => false,
        }
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrustedProxies(pub(crate) Vec<Cidr>);

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }

    /// The client of a request from `peer` carrying `forwarded` (the
    /// `X-Forwarded-For` values, in order): walking from the right, past
    /// trusted proxies, the first address that is not one. A header that
    /// does not parse leaves the last trusted hop as the client.
    pub(crate) fn client(&self, peer: IpAddr, forwarded: &[&str]) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

/// Replaces the connection's address with the client's, for the limits.
pub(crate) async fn real_client(
    State(proxies): State<Arc<TrustedProxies>>,
    ConnectInfo(ClientAddr(peer)): ConnectInfo<ClientAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    if !proxies.0.is_empty() {
        let forwarded: Vec<&str> = request
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let ip = proxies.client(peer.ip(), &forwarded);
        let client = SocketAddr::new(ip, peer.port());
        request
            .extensions_mut()
            .insert(ConnectInfo(ClientAddr(client)));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_match() {
        let c: Cidr = "198.18.0.0/15".parse().unwrap();
        assert!(c.contains(ip("198.19.255.1")));
        assert!(!c.contains(ip("198.20.0.1")));
        assert!(!c.contains(ip("::1")));
        let one: Cidr = "127.0.0.1".parse().unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains(ip("2001:db8::1")));
        for bad in ["", "x", "10.0.0.0/33", "::1/129", "1.2.3.4/-1"] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let proxies = TrustedProxies(vec!["127.0.0.1/32".parse().unwrap()]);
        // Through the proxy: the visitor it names.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &["203.0.113.7"]),
            ip("203.0.113.7")
        );
        // A visitor's own forged entry sits left of what the proxy added.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &["1.1.1.1, 203.0.113.7"]),
            ip("203.0.113.7")
        );
        // Straight to the node: the header is the visitor's own, ignored.
        assert_eq!(
            proxies.client(ip("203.0.113.9"), &["1.1.1.1"]),
            ip("203.0.113.9")
        );
        // Garbage leaves the proxy as the client.
        assert_eq!(
            proxies.client(ip("127.0.0.1"), &["not an address"]),
            ip("127.0.0.1")
        );
        assert_eq!(proxies.client(ip("127.0.0.1"), &[]), ip("127.0.0.1"));
        assert_eq!(
            TrustedProxies::default().client(ip("127.0.0.1"), &["203.0.113.7"]),
            ip("127.0.0.1")
        );
    }
}
