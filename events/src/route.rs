//! How an event reaches its handlers through the job store.
//!
//! A signal stores one *event job* (worker `drove.event`, queue
//! `drove.events`) due at the event's time; its id is the event's id. The
//! node that runs it looks up the handlers that take the type and stores
//! one *delivery job* per handler (worker `drove.event.deliver`), each
//! unique by (event, index) so a dispatch that runs twice stores them
//! once. Each delivery is retried on its own, so one failing handler never
//! runs the others again. A node with no handler for the type snoozes the
//! event (no attempt used up) for a node that has one; so does a node
//! without a delivery's handler, or whose handler of that name does not
//! take the type.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use drove_jobs::job::UniqueHold;
use drove_jobs::spec::UniqueBy;
use drove_jobs::{JobCtx, JobError, JobSpec, Jobs, Worker};

use crate::event::{Envelope, EventId};
use crate::handler::{EventCtx, Handlers};
use crate::metrics::EventMetrics;

/// The queue events and deliveries wait in.
pub const QUEUE: &str = "drove.events";
/// The event job's worker.
pub const EVENT_WORKER: &str = "drove.event";
/// A delivery's worker.
pub const DELIVERY_WORKER: &str = "drove.event.deliver";
/// Retries of an event job: its dispatch fails only while the store does.
pub(crate) const DISPATCH_RETRIES: u32 = 20;
/// How long an event (or delivery) that a node has no handler for waits
/// before it is looked at again: a second at first, then half the time it
/// has waited, up to a minute, so events of a type nobody handles cost
/// little while they wait.
fn no_handler_wait(due_ms: u64) -> Duration {
    let waited = now_ms().saturating_sub(due_ms) / 2;
    Duration::from_millis(waited.clamp(1_000, 60_000))
}
/// How long a delivery's unique key is kept: the longest a dead delivery
/// is kept by default, so an event's deliveries can be found while stored.
const DELIVERY_KEY_PERIOD: Duration = Duration::from_secs(8 * 86_400);

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// What an event job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct EventArgs {
    #[serde(flatten)]
    pub(crate) envelope: Envelope,
    pub(crate) signalled_at_ms: u64,
    pub(crate) due_ms: u64,
    /// The node that signalled it.
    pub(crate) from: String,
}

/// What a delivery job carries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeliveryArgs {
    pub(crate) event: u64,
    pub(crate) index: u32,
    /// How many deliveries the event has.
    pub(crate) of: u32,
    pub(crate) handler: String,
    #[serde(flatten)]
    pub(crate) envelope: Envelope,
    pub(crate) signalled_at_ms: u64,
    pub(crate) due_ms: u64,
}

/// The spec of delivery `index` of `event`: with `args`, the one to store;
/// without, the one whose unique key finds the stored delivery.
pub(crate) fn delivery_spec(event: EventId, index: u32, args: Option<&DeliveryArgs>) -> JobSpec {
    let json = match args {
        Some(args) => serde_json::to_value(args).unwrap_or_default(),
        None => serde_json::json!({ "event": event.0, "index": index }),
    };
    JobSpec::raw(QUEUE, DELIVERY_WORKER, json).unique(UniqueBy {
        period: DELIVERY_KEY_PERIOD,
        keys: Some(vec!["event".to_owned(), "index".to_owned()]),
        // The key finds the delivery in every state, dead ones included.
        hold: UniqueHold::Always,
    })
}

/// What the workers share with the [`Events`](crate::Events) handle.
pub(crate) struct Core {
    pub(crate) handlers: Handlers,
    pub(crate) metrics: Arc<EventMetrics>,
    pub(crate) max_retries: Option<u32>,
    /// Set once the job system has started.
    pub(crate) jobs: OnceLock<Jobs>,
}

impl Core {
    fn jobs(&self) -> Result<&Jobs, JobError> {
        self.jobs
            .get()
            .ok_or_else(|| JobError::retry("events are not started on this node yet"))
    }
}

/// Runs event jobs: stores one delivery per handler of the type.
pub(crate) struct Dispatch(pub(crate) Arc<Core>);

impl Worker for Dispatch {
    const NAME: &'static str = EVENT_WORKER;
    type Args = EventArgs;

    async fn perform(&self, ctx: JobCtx, args: EventArgs) -> Result<(), JobError> {
        let handlers = self.0.handlers.taking(&args.envelope.kind);
        if handlers.is_empty() {
            tracing::debug!(event = %ctx.id, kind = %args.envelope.kind, "no handler here; snoozing");
            return Err(JobError::snooze(no_handler_wait(args.due_ms)));
        }
        let event = EventId(ctx.id.0);
        let of = u32::try_from(handlers.len()).unwrap_or(u32::MAX);
        let specs = handlers
            .iter()
            .zip(0u32..)
            .map(|(handler, index)| {
                let delivery = DeliveryArgs {
                    event: event.0,
                    index,
                    of,
                    handler: (*handler).to_owned(),
                    envelope: args.envelope.clone(),
                    signalled_at_ms: args.signalled_at_ms,
                    due_ms: args.due_ms,
                };
                let spec = delivery_spec(event, index, Some(&delivery));
                match self.0.max_retries {
                    Some(n) => spec.max_retries(n),
                    None => spec,
                }
            })
            .collect();
        self.0
            .jobs()?
            .insert_all(specs)
            .await
            .map_err(|e| JobError::retry(format!("storing the deliveries: {e}")))?;
        Ok(())
    }
}

/// Runs delivery jobs: one handler, one event.
pub(crate) struct Deliver(pub(crate) Arc<Core>);

impl Worker for Deliver {
    const NAME: &'static str = DELIVERY_WORKER;
    type Args = DeliveryArgs;

    async fn perform(&self, ctx: JobCtx, args: DeliveryArgs) -> Result<(), JobError> {
        let core = &self.0;
        let attempt = ctx.attempt;
        let event_ctx = EventCtx::new(
            EventId(args.event),
            &args.handler,
            ctx.node.clone(),
            (args.signalled_at_ms, args.due_ms),
            Some(ctx),
            None,
        );
        let Some(run) = core.handlers.run(&args.handler, event_ctx, args.envelope) else {
            return Err(JobError::snooze(no_handler_wait(args.due_ms)));
        };
        if attempt == 1 {
            core.metrics.started(now_ms().saturating_sub(args.due_ms));
        }
        let result = run.await;
        match &result {
            Ok(()) => core.metrics.handled(),
            Err(JobError::Retry(e)) => {
                let retries = match core.max_retries {
                    Some(n) => n,
                    None => core.jobs()?.config().backoff.max_retries,
                };
                tracing::warn!(event = args.event, handler = %args.handler, attempt, error = %e, "handler failed");
                core.metrics.failed(attempt > retries);
            }
            Err(JobError::Discard(e)) => {
                tracing::warn!(event = args.event, handler = %args.handler, attempt, error = %e, "handler failed for good");
                core.metrics.failed(true);
            }
            Err(JobError::Snooze(_)) => {}
        }
        result
    }
}
