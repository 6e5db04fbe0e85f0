//! Handlers: the typed trait ([`Handler`]), which types it takes
//! ([`Filter`], Dawdle's `only:` and `except:`), what a delivery knows
//! ([`EventCtx`]), and the node's table of handlers by name ([`Handlers`]).

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use drove_jobs::{JobCtx, JobError};

use crate::event::{Envelope, EventId};

/// Which event types a handler takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// These types only.
    Only(Vec<String>),
    /// Every type but these.
    Except(Vec<String>),
}

impl Filter {
    /// The types named.
    pub fn only<I: IntoIterator<Item = S>, S: Into<String>>(types: I) -> Filter {
        Filter::Only(types.into_iter().map(Into::into).collect())
    }

    /// Every type but those named.
    pub fn except<I: IntoIterator<Item = S>, S: Into<String>>(types: I) -> Filter {
        Filter::Except(types.into_iter().map(Into::into).collect())
    }

    /// Whether `kind` passes.
    pub fn takes(&self, kind: &str) -> bool {
        match self {
            Filter::Only(types) => types.iter().any(|t| t == kind),
            Filter::Except(types) => !types.iter().any(|t| t == kind),
        }
    }
}

/// What one delivery of an event to one handler knows.
#[derive(Clone)]
pub struct EventCtx {
    /// The event.
    pub event: EventId,
    /// The handler this delivery is for.
    pub handler: String,
    /// This delivery's attempt (1 is the first).
    pub attempt: u32,
    /// The node running it.
    pub node: String,
    /// When the event was signalled (Unix ms).
    pub signalled_at_ms: u64,
    /// When it was due (Unix ms).
    pub due_ms: u64,
    job: Option<JobCtx>,
    extension: Option<Arc<dyn Any + Send + Sync>>,
}

impl std::fmt::Debug for EventCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventCtx")
            .field("event", &self.event)
            .field("handler", &self.handler)
            .field("attempt", &self.attempt)
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

impl EventCtx {
    pub(crate) fn new(
        event: EventId,
        handler: &str,
        node: String,
        times: (u64, u64),
        job: Option<JobCtx>,
        extension: Option<Arc<dyn Any + Send + Sync>>,
    ) -> EventCtx {
        EventCtx {
            event,
            handler: handler.to_owned(),
            attempt: job.as_ref().map_or(1, |j| j.attempt),
            node,
            signalled_at_ms: times.0,
            due_ms: times.1,
            job,
            extension,
        }
    }

    /// `"<event>/<handler>"`: the same for every attempt of this handler's
    /// delivery. Delivery is at least once, so side effects should be
    /// keyed by it; [`attempt`](Self::attempt) tells the attempts apart.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.event, self.handler)
    }

    /// What the node shares with handlers (for a drove node, its
    /// `Services`), if it is a `T`.
    pub fn extension<T: Any + Send + Sync>(&self) -> Option<&T> {
        match &self.job {
            Some(job) => job.extension(),
            None => self.extension.as_deref()?.downcast_ref(),
        }
    }
}

/// A handler of one or more event types, registered on a node by a stable
/// name; each handler of a type gets its own delivery of each event.
///
/// ```
/// use drove_events::{Envelope, Event, EventCtx, Filter, Handler};
/// use drove_jobs::JobError;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Signup { user: String }
/// impl Event for Signup { const TYPE: &'static str = "app.signup"; }
///
/// struct Welcome;
///
/// impl Handler for Welcome {
///     const NAME: &'static str = "welcome-mail";
///
///     fn filter(&self) -> Filter {
///         Filter::only([Signup::TYPE])
///     }
///
///     async fn handle(&self, ctx: EventCtx, event: Envelope) -> Result<(), JobError> {
///         let signup: Signup = event.decode()?;
///         println!("welcome {} (key {})", signup.user, ctx.idempotency_key());
///         Ok(())
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// The stable name deliveries are addressed to.
    const NAME: &'static str;

    /// The types it takes.
    fn filter(&self) -> Filter;

    /// Handles one delivery. `Err(JobError::Retry)` tries again after the
    /// backoff and dead-letters once retries run out; `Discard`
    /// dead-letters at once.
    fn handle(
        &self,
        ctx: EventCtx,
        event: Envelope,
    ) -> impl Future<Output = Result<(), JobError>> + Send;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

trait ErasedHandler: Send + Sync {
    fn filter(&self) -> Filter;
    fn handle(&self, ctx: EventCtx, event: Envelope) -> BoxFuture<Result<(), JobError>>;
}

struct Typed<H>(Arc<H>);

impl<H: Handler> ErasedHandler for Typed<H> {
    fn filter(&self) -> Filter {
        self.0.filter()
    }

    fn handle(&self, ctx: EventCtx, event: Envelope) -> BoxFuture<Result<(), JobError>> {
        let handler = self.0.clone();
        Box::pin(async move { handler.handle(ctx, event).await })
    }
}

/// A node's handlers by name.
#[derive(Clone, Default)]
pub struct Handlers {
    by_name: BTreeMap<&'static str, (Filter, Arc<dyn ErasedHandler>)>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.by_name.keys()).finish()
    }
}

impl Handlers {
    /// No handlers.
    pub fn new() -> Handlers {
        Handlers::default()
    }

    /// Adds `handler` (a later one of the same name replaces it).
    pub fn add<H: Handler>(&mut self, handler: H) {
        let erased = Typed(Arc::new(handler));
        self.by_name
            .insert(H::NAME, (erased.filter(), Arc::new(erased)));
    }

    /// The names of the handlers that take `kind`, in name order.
    pub fn taking(&self, kind: &str) -> Vec<&'static str> {
        self.by_name
            .iter()
            .filter(|(_, (filter, _))| filter.takes(kind))
            .map(|(name, _)| *name)
            .collect()
    }

    /// Every handler's name.
    pub fn names(&self) -> Vec<&'static str> {
        self.by_name.keys().copied().collect()
    }

    /// Runs handler `name` on `event`, if this node has a handler of that
    /// name that takes the event's type (nodes may configure one name
    /// differently).
    pub(crate) fn run(
        &self,
        name: &str,
        ctx: EventCtx,
        event: Envelope,
    ) -> Option<BoxFuture<Result<(), JobError>>> {
        let (filter, handler) = self.by_name.get(name)?;
        filter
            .takes(&event.kind)
            .then(|| handler.handle(ctx, event))
    }
}
