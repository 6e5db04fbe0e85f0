//! [`DiscoverySpec`]: which strategy a node runs, parsed from `--discovery`
//! or the config file's `discovery` key.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest DNS name (RFC 1035).
const MAX_NAME: usize = 253;

/// A `--discovery` value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--discovery {value:?}: {reason} (expected static, mdns, dns:NAME, dns:NAME:PORT or dns:_service._proto.NAME)")]
pub struct SpecError {
    value: String,
    reason: &'static str,
}

/// Which strategy finds the other nodes (`--seeds` always work besides).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum DiscoverySpec {
    /// Only `--seeds` (the default).
    #[default]
    Static,
    /// LAN multicast DNS (libp2p's mDNS); opt-in.
    Mdns,
    /// The A/AAAA records of `name`, each an address with `port` (this
    /// node's own cluster port when `None`).
    DnsA {
        /// The name polled.
        name: String,
        /// The cluster port of the found nodes.
        port: Option<u16>,
    },
    /// The SRV records of `name` (`_service._proto.domain`): each target's
    /// addresses with the record's port.
    DnsSrv {
        /// The name polled.
        name: String,
    },
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME
        && name.split('.').enumerate().all(|(i, label)| {
            let last = name.ends_with('.') && i == name.split('.').count() - 1;
            (last && label.is_empty())
                || (!label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        })
}

impl FromStr for DiscoverySpec {
    type Err = SpecError;

    fn from_str(value: &str) -> Result<Self, SpecError> {
        let err = |reason| SpecError {
            value: value.chars().take(300).collect(),
            reason,
        };
        match value {
            "static" | "" => return Ok(DiscoverySpec::Static),
            "mdns" => return Ok(DiscoverySpec::Mdns),
            _ => {}
        }
        let Some(rest) = value.strip_prefix("dns:") else {
            return Err(err("unknown strategy"));
        };
        let (name, port) = match rest.rsplit_once(':') {
            Some((name, port)) => {
                let port: u16 = port.parse().map_err(|_| err("the port is not a number"))?;
                if port == 0 {
                    return Err(err("the port is 0"));
                }
                (name, Some(port))
            }
            None => (rest, None),
        };
        if !valid_name(name) {
            return Err(err("not a DNS name"));
        }
        if name.starts_with('_') {
            if port.is_some() {
                return Err(err("SRV records carry their own ports"));
            }
            return Ok(DiscoverySpec::DnsSrv {
                name: name.to_string(),
            });
        }
        Ok(DiscoverySpec::DnsA {
            name: name.to_string(),
            port,
        })
    }
}

impl fmt::Display for DiscoverySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiscoverySpec::Static => f.write_str("static"),
            DiscoverySpec::Mdns => f.write_str("mdns"),
            DiscoverySpec::DnsA { name, port: None } => write!(f, "dns:{name}"),
            DiscoverySpec::DnsA {
                name,
                port: Some(p),
            } => write!(f, "dns:{name}:{p}"),
            DiscoverySpec::DnsSrv { name } => write!(f, "dns:{name}"),
        }
    }
}

impl Serialize for DiscoverySpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DiscoverySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_forms_parse() {
        assert_eq!("static".parse(), Ok(DiscoverySpec::Static));
        assert_eq!("mdns".parse(), Ok(DiscoverySpec::Mdns));
        assert_eq!(
            "dns:drove.default.svc.cluster.local".parse(),
            Ok(DiscoverySpec::DnsA {
                name: "drove.default.svc.cluster.local".into(),
                port: None
            })
        );
        assert_eq!(
            "dns:nodes.lab:4370".parse(),
            Ok(DiscoverySpec::DnsA {
                name: "nodes.lab".into(),
                port: Some(4370)
            })
        );
        assert_eq!(
            "dns:_drove._udp.lab.".parse(),
            Ok(DiscoverySpec::DnsSrv {
                name: "_drove._udp.lab.".into()
            })
        );
    }

    #[test]
    fn bad_values_say_why() {
        for (bad, why) in [
            ("gossip", "unknown strategy"),
            ("dns:", "not a DNS name"),
            ("dns:a..b", "not a DNS name"),
            ("dns:a b", "not a DNS name"),
            ("dns:host:0", "the port is 0"),
            ("dns:host:70000", "the port is not a number"),
            ("dns:_x._udp.lab:4370", "SRV records carry their own ports"),
        ] {
            let e = bad.parse::<DiscoverySpec>().unwrap_err();
            assert_eq!(e.reason, why, "{bad}");
            assert!(e.to_string().contains("expected static"), "{e}");
        }
        let long = format!("dns:{}", "a.".repeat(200));
        assert!(long.parse::<DiscoverySpec>().is_err());
    }

    proptest! {
        #[test]
        fn display_parses_back(name in "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,20}){0,3}", port in proptest::option::of(1u16..)) {
            let spec = DiscoverySpec::DnsA { name, port };
            prop_assert_eq!(spec.to_string().parse::<DiscoverySpec>(), Ok(spec));
        }

        #[test]
        fn any_text_parses_or_errs_without_panicking(text in ".{0,80}") {
            let _ = text.parse::<DiscoverySpec>();
        }
    }
}
