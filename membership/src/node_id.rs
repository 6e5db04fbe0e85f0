//! Node identity: a name plus an incarnation.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A fresh value chosen at every start of a node (and at every rejoin after a
/// quarantine), so that a restarted node is a different node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Incarnation(pub u64);

impl fmt::Display for Incarnation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Incarnation {
    type Err = NodeIdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 16 {
            return Err(NodeIdParseError::Incarnation(s.to_string()));
        }
        u64::from_str_radix(s, 16)
            .map(Incarnation)
            .map_err(|_| NodeIdParseError::Incarnation(s.to_string()))
    }
}

/// The identity of one run of one node: `name#incarnation`.
///
/// Two runs of a node with the same name are different `NodeId`s, so state
/// owned by an old run (names, children) can never be confused with the new.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId {
    /// The operator-chosen name (`--name`).
    pub name: String,
    /// The run of that name.
    pub incarnation: Incarnation,
}

impl NodeId {
    /// A node id from its parts.
    pub fn new(name: impl Into<String>, incarnation: Incarnation) -> Self {
        Self {
            name: name.into(),
            incarnation,
        }
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.name, self.incarnation)
    }
}

/// Why a string is not a `name#incarnation` node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdParseError {
    /// No `#` separates the name from the incarnation.
    #[error("node id {0:?} has no '#' between name and incarnation")]
    MissingSeparator(String),
    /// The name part is empty or has characters outside `[A-Za-z0-9_.-]`.
    #[error(
        "node name {0:?} is empty or has characters other than letters, digits, '_', '.', '-'"
    )]
    Name(String),
    /// The incarnation is not 16 hex digits.
    #[error("incarnation {0:?} is not 16 hex digits")]
    Incarnation(String),
}

/// Checks that a node name is non-empty, at most 64 bytes, and made of
/// `[A-Za-z0-9_.-]`, so it can sit in gossip keys and node ids unescaped.
pub fn validate_name(name: &str) -> Result<(), NodeIdParseError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(NodeIdParseError::Name(name.to_string()))
    }
}

impl FromStr for NodeId {
    type Err = NodeIdParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, inc) = s
            .rsplit_once('#')
            .ok_or_else(|| NodeIdParseError::MissingSeparator(s.to_string()))?;
        validate_name(name)?;
        Ok(NodeId::new(name, inc.parse()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn display_parses_back(name in "[A-Za-z0-9_.-]{1,64}", inc in any::<u64>()) {
            let id = NodeId::new(name, Incarnation(inc));
            prop_assert_eq!(id.to_string().parse::<NodeId>(), Ok(id));
        }

        #[test]
        fn parse_never_panics(s in ".*") {
            let _ = s.parse::<NodeId>();
        }
    }

    #[test]
    fn rejects_bad_ids() {
        assert!("n1".parse::<NodeId>().is_err());
        assert!("#0000000000000001".parse::<NodeId>().is_err());
        assert!("n 1#0000000000000001".parse::<NodeId>().is_err());
        assert!("n1#xyz".parse::<NodeId>().is_err());
    }
}
