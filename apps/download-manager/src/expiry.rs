//! Reports expire: when a file is ready, its tracker signals a
//! [`ReportReady`] event due after the report TTL; [`ExpireReport`]
//! handles it on whichever node takes it, and clears the download if the
//! user has not fetched it (nor started another). The event is stored in
//! the job store, so the expiry happens even if the node that signalled it
//! is gone by then.

use serde::{Deserialize, Serialize};

use drove::events::{Envelope, Event, EventCtx, Filter, Handler};
use drove::jobs::JobError;
use drove::Services;
use drove_cache::Cache;
use drove_pubsub::PubSub;

use crate::download::{self, Download, Manifest, Update};

/// A user's report is ready; due when it expires.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReportReady {
    /// The user.
    pub user: String,
    /// The download.
    pub download_id: String,
    /// Its chunks.
    pub chunks: u32,
}

impl Event for ReportReady {
    const TYPE: &'static str = "download-manager.report_ready";
}

/// Clears a ready report that is still there when it expires.
pub(crate) struct ExpireReport;

impl Handler for ExpireReport {
    const NAME: &'static str = "download-manager.expire_report";

    fn filter(&self) -> Filter {
        Filter::only([ReportReady::TYPE])
    }

    async fn handle(&self, ctx: EventCtx, event: Envelope) -> Result<(), JobError> {
        let ready: ReportReady = event.decode()?;
        let services = ctx
            .extension::<Services>()
            .ok_or_else(|| JobError::discard("no node services here"))?;
        let stored: Option<Download> = services
            .cache()
            .get(&download::download_key(&ready.user))
            .map_err(JobError::retry)?;
        match stored {
            Some(d) if d.id == ready.download_id => {
                forget(services.cache(), services.pubsub(), &d, ready.chunks);
                tracing::info!(download = %d.id, "report expired; cleared");
            }
            // Fetched (and so cleared), or replaced by a newer download.
            _ => {}
        }
        Ok(())
    }
}

/// Deletes a download's record, chunks and manifest, and tells the user's
/// pages. `chunks` is used when the manifest is gone.
pub(crate) fn forget(cache: &Cache, pubsub: &PubSub, d: &Download, chunks: u32) {
    let _ = cache.delete(&download::download_key(&d.user));
    let manifest: Option<Manifest> = cache.get(&download::manifest_key(&d.id)).ok().flatten();
    let chunks = manifest.map_or(chunks, |m| m.chunks);
    for n in 0..chunks {
        let _ = cache.delete(&download::chunk_key(&d.id, n));
    }
    let _ = cache.delete(&download::manifest_key(&d.id));
    let _ = pubsub.broadcast(&download::topic(&d.user), &Update::Cleared);
}
