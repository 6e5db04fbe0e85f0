//! drove-events: durable events, Dawdle on drove.
//!
//! Code signals an [`Event`] (a serde type with a stable name); every
//! [`Handler`] registered for its type runs on some node of the cluster,
//! now or after a delay, at least once, retried with backoff and then
//! dead-lettered with its errors. Events live in the job store
//! (`drove-jobs`: Redis or SQLite), so they outlive the node that
//! signalled them, the node that was handling them, and a restart of the
//! whole cluster.
//!
//! Layout:
//! - [`event`]: [`Event`], [`EventId`], [`Envelope`] (what a handler gets).
//! - [`handler`]: [`Handler`], [`Filter`] (`only` / `except`),
//!   [`EventCtx`] (ids, attempt, idempotency key), [`Handlers`].
//! - `route`: how an event becomes one delivery job per handler (see its
//!   module doc for the algorithm).
//! - [`events`]: [`Events`] (signal, signal_after, signal_at,
//!   signal_direct, get) and [`install`], which wires them into a node's
//!   job system.
//! - [`builtin`]: `drove.record` (a node-local ledger) and `drove.flaky`.
//! - [`config`]: [`EventsConfig`]; [`metrics`]: Prometheus counters.

pub mod builtin;
pub mod config;
pub mod event;
pub mod events;
pub mod handler;
pub mod metrics;
mod route;

pub use config::EventsConfig;
pub use event::{Envelope, Event, EventId};
pub use events::{
    install, DeliveryInfo, EventInfo, EventList, Events, EventsError, EventsSetup, When,
};
pub use handler::{EventCtx, Filter, Handler, Handlers};
pub use route::{DELIVERY_WORKER, EVENT_WORKER, QUEUE};
