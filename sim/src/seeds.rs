//! [`run_seeds`]: a scenario over many seeds, one line of report, and the
//! replay of one seed.
//!
//! - `DROVE_SIM_SEED=S` runs seed `S` only (to replay a failure).
//! - `DROVE_SIM_SEEDS=N` runs seeds `0..N` instead of the scenario's
//!   default count.
//!
//! The report goes to stderr past the test harness's capture, so
//! `cargo test -p drove-sim` shows one line per scenario.

use std::fmt;
use std::io::Write;

use crate::faults::Faults;

/// An invariant that failed: when, what, and the steps that led there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Simulated time of the failing step, ms.
    pub at_ms: u64,
    /// The invariant and how it failed.
    pub message: String,
    /// The last steps before it.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "at {} ms: {}", self.at_ms, self.message)?;
        for line in &self.trace {
            writeln!(f, "    {line}")?;
        }
        Ok(())
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Runs scenario `name` over `default_seeds` seeds (or as the environment
/// says), checks that together they went through every fault in
/// `claims`, prints `scenario NAME: N seeds ok, faults: ...`, and panics
/// with the first failing seed, its trace and how to replay it.
pub fn run_seeds(
    name: &str,
    default_seeds: u64,
    claims: &[&str],
    run: impl Fn(u64) -> Result<Faults, Failure>,
) {
    if let Some(seed) = env_u64("DROVE_SIM_SEED") {
        match run(seed) {
            Ok(faults) => report(&format!(
                "scenario {name}: seed {seed} ok, faults: {faults}"
            )),
            Err(f) => panic!("scenario {name}, seed {seed}, {f}"),
        }
        return;
    }
    let seeds = env_u64("DROVE_SIM_SEEDS").unwrap_or(default_seeds);
    let mut total = Faults::default();
    let mut failed = Vec::new();
    for seed in 0..seeds {
        match run(seed) {
            Ok(faults) => total.add(&faults),
            Err(f) => failed.push((seed, f)),
        }
    }
    if let Some((seed, first)) = failed.first() {
        let seeds_list: Vec<String> = failed.iter().take(10).map(|(s, _)| s.to_string()).collect();
        panic!(
            "scenario {name}: {} of {seeds} seeds failed (seeds {}); seed {seed}, {first}\
             replay with DROVE_SIM_SEED={seed}",
            failed.len(),
            seeds_list.join(", ")
        );
    }
    if seeds >= 100 {
        let missing = total.missing(claims);
        assert!(
            missing.is_empty(),
            "scenario {name} never went through {missing:?} in {seeds} seeds: {total}"
        );
    }
    report(&format!(
        "scenario {name}: {seeds} seeds ok, faults: {total}"
    ));
}

/// Runs one named seed that once showed a race (a regression seed): it
/// must pass.
pub fn regression(name: &str, seed: u64, run: impl Fn(u64) -> Result<Faults, Failure>) {
    if let Err(f) = run(seed) {
        panic!("regression {name}, seed {seed}, {f}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_seed_is_named_with_its_trace() {
        let caught = std::panic::catch_unwind(|| {
            run_seeds("odd", 10, &[], |seed| {
                if seed == 7 {
                    Err(Failure {
                        at_ms: 3,
                        message: "seven".into(),
                        trace: vec!["step".into()],
                    })
                } else {
                    Ok(Faults::default())
                }
            })
        });
        let text = caught
            .err()
            .and_then(|p| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        assert!(text.contains("seed 7"), "{text}");
        assert!(text.contains("DROVE_SIM_SEED=7"), "{text}");
        assert!(text.contains("step"), "{text}");
    }

    #[test]
    fn unexercised_claims_fail() {
        let caught = std::panic::catch_unwind(|| {
            run_seeds("quiet", 100, &["crash"], |_| Ok(Faults::default()))
        });
        assert!(caught.is_err());
    }
}
