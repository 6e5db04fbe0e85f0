//! [`Faults`]: what a run went through, counted by kind, so a scenario
//! can show that its seeds exercised every fault it claims.

use std::collections::BTreeMap;
use std::fmt;

/// Counts of faults by kind (`lost`, `duplicated`, `crash`, `freeze`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    counts: BTreeMap<&'static str, u64>,
}

impl Faults {
    /// Counts one fault of `kind`.
    pub fn note(&mut self, kind: &'static str) {
        *self.counts.entry(kind).or_default() += 1;
    }

    /// How many faults of `kind`.
    pub fn count(&self, kind: &str) -> u64 {
        self.counts.get(kind).copied().unwrap_or(0)
    }

    /// Adds another run's counts to these.
    pub fn add(&mut self, other: &Faults) {
        for (kind, n) in &other.counts {
            *self.counts.entry(kind).or_default() += n;
        }
    }

    /// The kinds of `claimed` that never happened.
    pub fn missing<'a>(&self, claimed: &[&'a str]) -> Vec<&'a str> {
        claimed
            .iter()
            .copied()
            .filter(|k| self.count(k) == 0)
            .collect()
    }
}

impl fmt::Display for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (kind, n) in &self.counts {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{kind} {n}")?;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_and_missing_claims_show() {
        let mut a = Faults::default();
        a.note("lost");
        a.note("lost");
        let mut b = Faults::default();
        b.note("crash");
        a.add(&b);
        assert_eq!(a.count("lost"), 2);
        assert_eq!(a.count("crash"), 1);
        assert_eq!(a.missing(&["lost", "freeze", "crash"]), vec!["freeze"]);
        assert_eq!(a.to_string(), "crash 1, lost 2");
        assert_eq!(Faults::default().to_string(), "none");
    }
}
