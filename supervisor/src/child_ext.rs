//! How a running child saves its checkpoint: the runner attaches a
//! [`ChildExt`] to every child's context, holding the child's id and the
//! children table.

use std::sync::Arc;

use drove_runtime::{Actor, Context};

use crate::error::SupervisorError;
use crate::records::Records;

/// Attached to every supervised child's context.
pub(crate) struct ChildExt {
    id: String,
    records: Records,
}

impl ChildExt {
    /// The extension for child `id`, whose record is in `records`.
    pub(crate) fn new(id: &str, records: &Records) -> Self {
        ChildExt {
            id: id.to_string(),
            records: records.clone(),
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
    let text: Arc<str> = Arc::from(text);
    ext.records.update(&ext.id, |r| r.checkpoint = Some(text));
    Ok(())
}
