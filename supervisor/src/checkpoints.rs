//! How a running child saves its checkpoint: `LocalChildren` attaches a
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

/// Largest checkpoint, in bytes of JSON: replicated to every node, and
/// well under a replication message's size.
pub const MAX_CHECKPOINT_BYTES: usize = 256 * 1024;

/// Saves `text` (JSON) as the checkpoint of the child whose context this
/// is; one over [`MAX_CHECKPOINT_BYTES`] is refused (and counted), and the
/// previous checkpoint stays.
pub(crate) fn checkpoint_json<A: Actor>(
    ctx: &Context<A>,
    text: String,
) -> Result<(), SupervisorError> {
    let ext = ctx
        .extension::<ChildExt>()
        .ok_or(SupervisorError::NotAChild)?;
    if text.len() > MAX_CHECKPOINT_BYTES {
        ctx.node()
            .metrics()
            .counter(
                "drove_supervisor_checkpoints_refused_total",
                "Checkpoints refused for being over the size limit.",
                &[],
            )
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(child = %ext.id, bytes = text.len(), max = MAX_CHECKPOINT_BYTES, "checkpoint refused: too large");
        return Err(SupervisorError::CheckpointTooLarge {
            len: text.len(),
            max: MAX_CHECKPOINT_BYTES,
        });
    }
    let text: Arc<str> = Arc::from(text);
    ext.records.update(&ext.id, |r| r.checkpoint = Some(text));
    Ok(())
}
