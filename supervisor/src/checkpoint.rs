//! How a running child reaches its supervisor to save a checkpoint: the
//! supervisor attaches a [`ChildExt`] to every child's context.

use std::sync::Arc;

use drove_runtime::{Actor, Context};

use crate::supervisor::{Supervisor, WeakSupervisor};
use crate::SupervisorError;

/// Attached to every supervised child's context.
pub(crate) struct ChildExt {
    id: String,
    supervisor: WeakSupervisor,
}

impl ChildExt {
    /// The extension for child `id` of `supervisor`.
    pub(crate) fn new(id: &str, supervisor: &Supervisor) -> Self {
        ChildExt {
            id: id.to_string(),
            supervisor: supervisor.downgrade(),
        }
    }
}

/// Saves `text` (JSON) as the checkpoint of the child whose context this is.
pub(crate) fn checkpoint_json<A: Actor>(
    ctx: &Context<A>,
    text: String,
) -> Result<(), SupervisorError> {
    let ext = ctx
        .extension::<ChildExt>()
        .ok_or(SupervisorError::NotAChild)?;
    let sup = ext.supervisor.upgrade().ok_or(SupervisorError::NotAChild)?;
    let text: Arc<str> = Arc::from(text);
    sup.update_record(&ext.id, |r| r.checkpoint = Some(text));
    Ok(())
}
