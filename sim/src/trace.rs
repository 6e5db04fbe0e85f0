//! [`Trace`]: the last steps of a run. A scenario checks its invariant at
//! every step and stops at the first violation, so the trace it prints
//! ends where the run went wrong, and holds only what led there.

use std::collections::VecDeque;

/// Lines kept at most.
const KEEP: usize = 60;

/// The last 60 steps of a run, each with its simulated time.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    lines: VecDeque<(u64, String)>,
    dropped: u64,
}

impl Trace {
    /// Notes a step at `at_ms`.
    pub fn note(&mut self, at_ms: u64, what: String) {
        if self.lines.len() == KEEP {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back((at_ms, what));
    }

    /// The kept steps, oldest first, one line each.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.lines.len() + 1);
        if self.dropped > 0 {
            out.push(format!("({} earlier steps not kept)", self.dropped));
        }
        out.extend(self.lines.iter().map(|(t, w)| format!("{t:>7} ms  {w}")));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_steps_and_says_how_many_went() {
        let mut t = Trace::default();
        for i in 0..(KEEP as u64 + 5) {
            t.note(i, format!("step {i}"));
        }
        let lines = t.lines();
        assert_eq!(lines.len(), KEEP + 1);
        assert_eq!(lines[0], "(5 earlier steps not kept)");
        assert!(lines[KEEP].ends_with(&format!("step {}", KEEP + 4)));
    }
}
