//! [`Events`]: the handle a node signals through and reads events back
//! with; [`install`] and [`EventsSetup`], how it is wired into the node's
//! job system before that starts.

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use drove_jobs::job::AttemptError;
use drove_jobs::{Job, JobId, JobSpec, JobState, Jobs, JobsBuilder, JobsError, PipelineConfig};

use crate::builtin::Ledger;
use crate::config::EventsConfig;
use crate::event::{check_type, Envelope, Event, EventId};
use crate::handler::{EventCtx, Handlers};
use crate::metrics::EventMetrics;
use crate::route::{
    self, delivery_spec, now_ms, Core, Deliver, DeliveryArgs, Dispatch, EventArgs, QUEUE,
};

/// Why a signal or a lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// The type name is refused.
    #[error("bad event type: {0}")]
    Type(String),
    /// The payload is over the limit.
    #[error("the payload is {bytes} bytes, over the limit of {limit}")]
    TooLarge {
        /// Its encoded size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The event does not encode as JSON.
    #[error("the event does not encode: {0}")]
    Encode(#[source] serde_json::Error),
    /// A direct signal on a node that has no handler for the type (or no
    /// listener).
    #[error("no handler for {0:?} on this node: direct events are handled here")]
    NoHandler(String),
    /// The job store failed or refused the event.
    #[error(transparent)]
    Jobs(#[from] JobsError),
    /// The stored event does not decode (it was not written by this code).
    #[error("event {0} is stored in a form this node cannot read: {1}")]
    Corrupt(u64, String),
}

/// When a signalled event is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// As soon as a node takes it.
    Now,
    /// After this long (durable: no cap).
    After(Duration),
    /// At this time (Unix ms).
    AtMs(u64),
    /// At once on this node, bypassing the store (Dawdle's `direct:
    /// true`): not durable, not retried.
    Direct,
}

/// One handler's delivery of an event, as [`Events::get`] reports it.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryInfo {
    /// The handler.
    pub handler: String,
    /// The delivery's job.
    pub job: JobId,
    /// Its state.
    pub state: JobState,
    /// Attempts so far.
    pub attempts: u32,
    /// The node running it, or that ran it last.
    pub node: Option<String>,
    /// Every failed attempt.
    pub errors: Vec<AttemptError>,
    /// The last attempt's start (Unix ms).
    pub attempted_at_ms: Option<u64>,
    /// When it finished (Unix ms).
    pub completed_at_ms: Option<u64>,
}

/// Which events [`Events::list`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventList {
    /// Not dispatched yet: due later (delayed), due now, or waiting for a
    /// node with a handler; the next due first.
    Pending,
    /// Dispatched to their handlers, newest first; each delivery shows
    /// whether its handler finished.
    Dispatched,
    /// Events with a dead delivery (or a dead dispatch), newest first.
    Dead,
}

/// An event and its deliveries.
#[derive(Debug, Clone, Serialize)]
pub struct EventInfo {
    /// The event.
    pub id: EventId,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its payload.
    pub payload: serde_json::Value,
    /// `scheduled` (not due yet), `pending` (due, not dispatched yet),
    /// `waiting-for-handler` (no node that took it has a handler for the
    /// type), `dispatched` (its deliveries are stored), `dead` or
    /// `cancelled`.
    pub state: &'static str,
    /// The node that signalled it.
    pub signalled_by: String,
    /// When (Unix ms).
    pub signalled_at_ms: u64,
    /// When it is due (Unix ms).
    pub due_ms: u64,
    /// One per handler, once dispatched.
    pub handlers: Vec<DeliveryInfo>,
}

/// What [`install`] leaves to do once the job system has started.
pub struct EventsSetup {
    core: Arc<Core>,
    config: EventsConfig,
    ledger: Option<Arc<Ledger>>,
}

impl std::fmt::Debug for EventsSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventsSetup")
            .field("handlers", &self.core.handlers)
            .finish_non_exhaustive()
    }
}

/// Wires events into a node's job system: with a listener, the workers
/// that dispatch and deliver events and a pipeline on their queue
/// (`max_demand` from `config`); without one, nothing runs here.
/// `ledger` is the built-in `drove.record` handler's, if registered.
pub fn install(
    jobs: JobsBuilder,
    handlers: Handlers,
    config: &EventsConfig,
    ledger: Option<Arc<Ledger>>,
) -> (JobsBuilder, EventsSetup) {
    let core = Arc::new(Core {
        handlers,
        metrics: Arc::new(EventMetrics::default()),
        max_retries: config.max_retries,
        jobs: OnceLock::new(),
    });
    let jobs = if config.listener {
        jobs.worker(Dispatch(core.clone()))
            .worker(Deliver(core.clone()))
            .pipeline(PipelineConfig {
                name: QUEUE.to_owned(),
                queue: QUEUE.to_owned(),
                max_demand: config.max_demand.max(1),
                batch_size: 1,
                rate: None,
            })
    } else {
        jobs
    };
    let setup = EventsSetup {
        core,
        config: config.clone(),
        ledger,
    };
    (jobs, setup)
}

impl EventsSetup {
    /// The handle, on the started job system. `extension` is what direct
    /// deliveries see as [`EventCtx::extension`] (stored ones see the job
    /// system's).
    pub fn start(self, jobs: Jobs, extension: Option<Arc<dyn Any + Send + Sync>>) -> Events {
        let _ = self.core.jobs.set(jobs.clone());
        Events {
            inner: Arc::new(Inner {
                core: self.core,
                jobs,
                config: self.config,
                ledger: self.ledger,
                extension,
            }),
        }
    }
}

struct Inner {
    core: Arc<Core>,
    jobs: Jobs,
    config: EventsConfig,
    ledger: Option<Arc<Ledger>>,
    extension: Option<Arc<dyn Any + Send + Sync>>,
}

/// A node's events: signal them, look them up. Cheap to clone.
#[derive(Clone)]
pub struct Events {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("listener", &self.inner.config.listener)
            .field("handlers", &self.inner.core.handlers)
            .finish()
    }
}

impl Events {
    /// Signals `event`: stored at once, handled by every handler of its
    /// type on some node, at least once each.
    pub async fn signal<E: Event>(&self, event: &E) -> Result<EventId, EventsError> {
        self.signal_as(event, When::Now).await
    }

    /// Signals `event` to be handled after `delay` (any length: it is
    /// stored, not held in memory).
    pub async fn signal_after<E: Event>(
        &self,
        delay: Duration,
        event: &E,
    ) -> Result<EventId, EventsError> {
        self.signal_as(event, When::After(delay)).await
    }

    /// Signals `event` to be handled at `time`.
    pub async fn signal_at<E: Event>(
        &self,
        time: SystemTime,
        event: &E,
    ) -> Result<EventId, EventsError> {
        let at = time
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        self.signal_as(event, When::AtMs(at)).await
    }

    /// Hands `event` to this node's handlers of its type at once, each in a
    /// task of its own, bypassing the store: fast, but lost with the node
    /// and never retried. The id is this node's, not stored.
    pub async fn signal_direct<E: Event>(&self, event: &E) -> Result<EventId, EventsError> {
        self.signal_as(event, When::Direct).await
    }

    async fn signal_as<E: Event>(&self, event: &E, when: When) -> Result<EventId, EventsError> {
        let payload = serde_json::to_value(event).map_err(EventsError::Encode)?;
        self.signal_value(E::TYPE, payload, when).await
    }

    /// Signals an event given by type name and JSON payload (as the admin
    /// API receives them).
    pub async fn signal_value(
        &self,
        kind: &str,
        payload: serde_json::Value,
        when: When,
    ) -> Result<EventId, EventsError> {
        let mut ids = self
            .signal_all(vec![(kind.to_owned(), payload)], when)
            .await?;
        ids.pop()
            .ok_or_else(|| EventsError::Corrupt(0, "the store answered no id".into()))
    }

    /// Signals many events in one store call; every one is checked before
    /// any is stored.
    pub async fn signal_all(
        &self,
        events: Vec<(String, serde_json::Value)>,
        when: When,
    ) -> Result<Vec<EventId>, EventsError> {
        let now = now_ms();
        let due_ms = match when {
            When::Now | When::Direct => now,
            When::After(delay) => {
                now.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
            }
            When::AtMs(at) => at,
        };
        let mut envelopes = Vec::with_capacity(events.len());
        for (kind, payload) in events {
            check_type(&kind).map_err(EventsError::Type)?;
            let bytes = serde_json::to_string(&payload)
                .map_err(EventsError::Encode)?
                .len();
            let limit = self.inner.config.max_payload_bytes;
            if bytes > limit {
                return Err(EventsError::TooLarge { bytes, limit });
            }
            envelopes.push(Envelope { kind, payload });
        }
        if when == When::Direct {
            return envelopes
                .into_iter()
                .map(|e| self.deliver_here(e, now))
                .collect();
        }
        let mut specs = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let args = EventArgs {
                envelope,
                signalled_at_ms: now,
                due_ms,
                from: self.node(),
            };
            let json = serde_json::to_value(&args).map_err(EventsError::Encode)?;
            specs.push(
                JobSpec::raw(QUEUE, route::EVENT_WORKER, json)
                    .run_at_ms(due_ms)
                    .max_retries(route::DISPATCH_RETRIES),
            );
        }
        let enqueued = self.inner.jobs.insert_all(specs).await?;
        for _ in &enqueued {
            self.inner.core.metrics.signalled(false);
        }
        Ok(enqueued.into_iter().map(|e| EventId(e.id.0)).collect())
    }

    fn deliver_here(&self, envelope: Envelope, now: u64) -> Result<EventId, EventsError> {
        let core = &self.inner.core;
        let names = core.handlers.taking(&envelope.kind);
        if !self.inner.config.listener || names.is_empty() {
            return Err(EventsError::NoHandler(envelope.kind));
        }
        let id = EventId(rand::random::<u64>() >> 1);
        core.metrics.signalled(true);
        for name in names {
            let ctx = EventCtx::new(
                id,
                name,
                self.node(),
                (now, now),
                None,
                self.inner.extension.clone(),
            );
            let Some(run) = core.handlers.run(name, ctx, envelope.clone()) else {
                continue;
            };
            let core = core.clone();
            tokio::spawn(async move {
                core.metrics.started(0);
                match run.await {
                    Ok(()) => core.metrics.handled(),
                    Err(e) => {
                        tracing::warn!(event = %id, handler = name, error = %e, "direct handler failed (direct events are not retried)");
                        core.metrics.failed(true);
                    }
                }
            });
        }
        Ok(id)
    }

    /// The event `id` with each handler's delivery; `None` if no such
    /// event is stored (never signalled, pruned, or a direct one).
    pub async fn get(&self, id: EventId) -> Result<Option<EventInfo>, EventsError> {
        let jobs = &self.inner.jobs;
        let Some(job) = jobs.get(JobId(id.0)).await? else {
            return Ok(None);
        };
        if job.worker != route::EVENT_WORKER {
            return Ok(None);
        }
        let args: EventArgs = serde_json::from_str(&job.args)
            .map_err(|e| EventsError::Corrupt(id.0, e.to_string()))?;
        let mut handlers = Vec::new();
        let mut of = 1;
        let mut index = 0;
        while index < of {
            let Some(found) = jobs.unique_holder(&delivery_spec(id, index, None)).await? else {
                break;
            };
            let Some(delivery) = jobs.get(found).await? else {
                break;
            };
            let d: DeliveryArgs = serde_json::from_str(&delivery.args)
                .map_err(|e| EventsError::Corrupt(id.0, e.to_string()))?;
            of = d.of;
            handlers.push(delivery_info(d.handler, delivery));
            index += 1;
        }
        Ok(Some(EventInfo {
            id,
            state: event_state(&job),
            kind: args.envelope.kind,
            payload: args.envelope.payload,
            signalled_by: args.from,
            signalled_at_ms: args.signalled_at_ms,
            due_ms: args.due_ms,
            handlers,
        }))
    }

    /// Up to `limit` (at most 50) events of one kind, each with its
    /// handlers' deliveries: see [`EventList`]. Event and delivery jobs
    /// share a queue, so this looks at up to four times `limit` jobs of
    /// each state it reads and may return fewer.
    pub async fn list(&self, which: EventList, limit: u32) -> Result<Vec<EventInfo>, EventsError> {
        let limit = limit.min(50);
        let scan = limit * 4;
        let jobs = &self.inner.jobs;
        let mut ids: Vec<EventId> = Vec::new();
        let states: &[JobState] = match which {
            EventList::Pending => &[
                JobState::Available,
                JobState::Retryable,
                JobState::Scheduled,
            ],
            EventList::Dispatched => &[JobState::Completed],
            EventList::Dead => &[JobState::Dead],
        };
        for &state in states {
            for job in jobs.list(route::QUEUE, state, 0, scan).await? {
                let id = match (which, job.worker.as_str()) {
                    (EventList::Dead, route::DELIVERY_WORKER) => {
                        let Ok(d) = serde_json::from_str::<DeliveryArgs>(&job.args) else {
                            continue;
                        };
                        EventId(d.event)
                    }
                    (_, route::EVENT_WORKER) => EventId(job.id.0),
                    _ => continue,
                };
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        let mut out = Vec::new();
        for id in ids.into_iter().take(limit as usize) {
            if let Some(info) = self.get(id).await? {
                out.push(info);
            }
        }
        Ok(out)
    }

    /// The built-in `drove.record` handler's ledger, if this node has it.
    pub fn ledger(&self) -> Option<&Arc<Ledger>> {
        self.inner.ledger.as_ref()
    }

    /// Whether this node handles events.
    pub fn listener(&self) -> bool {
        self.inner.config.listener
    }

    /// This node's handlers, by name.
    pub fn handlers(&self) -> Vec<&'static str> {
        self.inner.core.handlers.names()
    }

    /// The counters in Prometheus' text format.
    pub fn metrics_text(&self) -> String {
        self.inner.core.metrics.render()
    }

    /// Deliveries handled on this node.
    pub fn handled_total(&self) -> u64 {
        self.inner.core.metrics.handled_total()
    }

    fn node(&self) -> String {
        self.inner.jobs.consumer()
    }
}

fn event_state(job: &Job) -> &'static str {
    match job.state {
        JobState::Completed => "dispatched",
        JobState::Dead => "dead",
        JobState::Cancelled => "cancelled",
        // A snooze grows max_retries: only a node without a handler snoozes.
        _ if job.max_retries > route::DISPATCH_RETRIES => "waiting-for-handler",
        JobState::Scheduled if job.attempt == 0 => "scheduled",
        _ => "pending",
    }
}

fn delivery_info(handler: String, job: Job) -> DeliveryInfo {
    DeliveryInfo {
        handler,
        job: job.id,
        state: job.state,
        attempts: job.attempt,
        node: job.node,
        errors: job.errors,
        attempted_at_ms: job.attempted_at_ms,
        completed_at_ms: job.completed_at_ms,
    }
}
