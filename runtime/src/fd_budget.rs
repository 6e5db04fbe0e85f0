//! The descriptor budget: a node raises its soft `RLIMIT_NOFILE` to the
//! hard limit at start, so that the caps on listeners (the gate's pending
//! connections, the HTTP listeners' connection caps) stay far below what
//! the process may open and peers and health probes always find one.

/// Raises the soft descriptor limit to the hard one; logs and goes on if
/// the system refuses.
pub(crate) fn raise() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(soft, hard, error = %e, "cannot raise the descriptor limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the descriptor limit"),
    }
}
