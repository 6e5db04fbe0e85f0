//! [`Pool`]: a handle to one runner pool (`call`, `cast`, `place_child`,
//! bounds at run time, a snapshot), and [`PoolBuilder`], how one starts.

use std::any::Any;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use drove_runtime::{CallError, Handle, Message, Node};

use crate::backend::{Backend, ExecBackend, ProcessBackend};
use crate::config::{BackendKind, PoolConfig};
use crate::error::{PoolConfigError, PoolError, RemoteError};
use crate::metrics::PoolMetrics;
use crate::protocol::{Invoke, RunnerMsg, RUNNER_SERVICE};
use crate::remote::MAX_PAYLOAD;
use crate::remote::{build_id, decode, encode, functions, Ctx, RemoteFn};
use crate::runner::IdleCheck;
use crate::task::{Event, Home, Hooks, Lease, PoolTask, Request, Snapshot, Target};

/// Callers that may wait for a slot at once; more are refused.
const MAX_WAITING: usize = 10_000;

/// How many times a call moves to another runner when the one it got was
/// shutting down (the work had not started).
const ATTEMPTS: usize = 3;

pub(crate) struct PoolShared {
    pub(crate) config: Mutex<PoolConfig>,
    pub(crate) node: Node,
    pub(crate) requests: mpsc::Sender<Request>,
    pub(crate) events: mpsc::UnboundedSender<Event>,
    pub(crate) metrics: Arc<PoolMetrics>,
    pub(crate) snapshot: Arc<Mutex<Snapshot>>,
    pub(crate) extension: Option<Arc<dyn Any + Send + Sync>>,
    pub(crate) idle_check: Option<IdleCheck>,
}

/// A runner pool. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    pub(crate) shared: Arc<PoolShared>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({})", self.name())
    }
}

/// What a call returned, and where it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Ran<T> {
    /// The function's result.
    pub value: T,
    /// The runner's name.
    pub runner: String,
}

/// An actor placed on a runner by [`Pool::place_child`]. Dropping it stops
/// the actor (and frees its slot) unless it was [`PlacedChild::detach`]ed.
#[derive(Debug)]
pub struct PlacedChild<M> {
    handle: Handle<M>,
    runner: String,
    node: Node,
    lease: Option<Lease>,
}

impl<M> PlacedChild<M> {
    /// The actor.
    pub fn handle(&self) -> &Handle<M> {
        &self.handle
    }

    /// The runner it runs on.
    pub fn runner(&self) -> &str {
        &self.runner
    }

    /// Lets the actor outlive this value (and its caller); it keeps its
    /// slot, and its runner, until it stops. (On the local backend there is
    /// no runner to hold: the slot frees now.)
    pub fn detach(mut self) -> Handle<M> {
        if let Some(lease) = self.lease.as_mut() {
            lease.kept = lease.target != Target::Local;
        }
        self.lease = None;
        Handle::from_addr(self.handle.addr().clone())
    }
}

impl<M> Drop for PlacedChild<M> {
    fn drop(&mut self) {
        let Some(mut lease) = self.lease.take() else {
            return;
        };
        if lease.target == Target::Local {
            // No runner to report the stop: the slot frees with this value.
            lease.kept = false;
            self.node.stop_local(&self.handle);
        } else {
            let stop = RunnerMsg::StopChild {
                caller: self.node.id(),
                child: self.handle.addr().clone(),
            };
            let runner = Handle::named(self.handle.node().clone(), RUNNER_SERVICE);
            let _ = self.node.cast(&runner, stop);
        }
    }
}

/// Cancels the remote call when dropped armed (timeout, dropped future).
struct CancelOnDrop<'a> {
    node: &'a Node,
    runner: Option<Handle<RunnerMsg>>,
    call: u64,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(runner) = self.runner.take() {
            let cancel = RunnerMsg::Cancel {
                caller: self.node.id(),
                call: self.call,
            };
            let _ = self.node.cast(&runner, cancel);
        }
    }
}

/// Aborts a local call's task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Pool {
    /// A builder for a pool named `name` (FLAME's defaults).
    pub fn builder(name: impl Into<String>) -> PoolBuilder {
        PoolBuilder::new(PoolConfig::new(name))
    }

    /// The pool's name.
    pub fn name(&self) -> String {
        self.config().name
    }

    /// Its options now.
    pub fn config(&self) -> PoolConfig {
        self.shared
            .config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Its runners, boots and waiters now.
    pub fn snapshot(&self) -> Snapshot {
        self.shared
            .snapshot
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Its counters.
    pub fn metrics(&self) -> &PoolMetrics {
        &self.shared.metrics
    }

    pub(crate) fn idle_check(&self) -> Option<IdleCheck> {
        self.shared.idle_check.clone()
    }

    /// Changes min and max at run time. Runners above a lower max stop as
    /// they become idle.
    pub async fn set_bounds(&self, min: usize, max: usize) -> Result<(), PoolConfigError> {
        let (reply, answer) = oneshot::channel();
        self.shared
            .events
            .send(Event::SetBounds { min, max, reply })
            .map_err(|_| PoolConfigError::Invalid("the pool is stopped"))?;
        answer
            .await
            .map_err(|_| PoolConfigError::Invalid("the pool is stopped"))?
            .map_err(PoolConfigError::Invalid)?;
        let mut config = self.shared.config.lock().unwrap_or_else(|p| p.into_inner());
        config.min = min;
        config.max = max;
        Ok(())
    }

    /// Runs `f(args)` on a runner and returns its result, within the
    /// pool's timeout.
    pub async fn call<F: RemoteFn>(&self, f: F, args: F::Args) -> Result<F::Output, PoolError> {
        let timeout = self.config().timeout();
        self.call_timeout(f, args, timeout)
            .await
            .map(|ran| ran.value)
    }

    /// Runs `f(args)` on a runner within `timeout`; says which runner.
    pub async fn call_timeout<F: RemoteFn>(
        &self,
        _f: F,
        args: F::Args,
        timeout: Duration,
    ) -> Result<Ran<F::Output>, PoolError> {
        let bytes = encode_args(&args)?;
        let ran = self.call_raw(F::NAME, bytes, timeout, false).await?;
        let value = decode(&ran.value).map_err(|e| PoolError::Remote {
            runner: ran.runner.clone(),
            error: RemoteError::BadOutput(e),
        })?;
        Ok(Ran {
            value,
            runner: ran.runner,
        })
    }

    /// Runs `f(args)` on a runner without waiting for it; a failure is
    /// logged.
    pub fn cast<F: RemoteFn>(&self, f: F, args: F::Args) -> Result<(), PoolError> {
        let bytes = encode_args(&args)?;
        let pool = self.clone();
        let _ = f;
        tokio::spawn(async move {
            let timeout = pool.config().timeout();
            if let Err(e) = pool.call_raw(F::NAME, bytes, timeout, false).await {
                tracing::warn!(pool = %pool.name(), function = F::NAME, error = %e, "cast failed");
            }
        });
        Ok(())
    }

    /// Starts an actor on a runner: `f` spawns it there and returns its
    /// handle. The actor holds a slot, and keeps its runner up, while it
    /// runs; it stops when the returned value is dropped, unless detached.
    pub async fn place_child<F, M>(&self, f: F, args: F::Args) -> Result<PlacedChild<M>, PoolError>
    where
        F: RemoteFn<Output = Handle<M>>,
        M: Message,
    {
        let bytes = encode_args(&args)?;
        let _ = f;
        let timeout = self.config().timeout();
        let (ran, lease) = self.run(F::NAME, bytes, timeout, true).await?;
        let handle: Handle<M> = decode(&ran).map_err(|e| PoolError::Remote {
            runner: lease.name.clone(),
            error: RemoteError::BadOutput(e),
        })?;
        let mut lease = lease;
        lease.kept = true;
        Ok(PlacedChild {
            handle,
            runner: lease.name.clone(),
            node: self.shared.node.clone(),
            lease: Some(lease),
        })
    }

    /// A call by function name with JSON arguments and result (the admin
    /// API's).
    pub async fn call_json(
        &self,
        function: &str,
        args: serde_json::Value,
        timeout: Duration,
    ) -> Result<Ran<serde_json::Value>, PoolError> {
        let entry = functions()
            .get(function)
            .ok_or_else(|| PoolError::UnknownFunction(function.to_string()))?;
        let bytes = (entry.args_from_json)(args).map_err(PoolError::BadArgs)?;
        check_size(&bytes)?;
        let ran = self.call_raw(entry.name, bytes, timeout, false).await?;
        let value = (entry.output_to_json)(&ran.value).map_err(|e| PoolError::Remote {
            runner: ran.runner.clone(),
            error: RemoteError::BadOutput(e),
        })?;
        Ok(Ran {
            value,
            runner: ran.runner,
        })
    }

    async fn call_raw(
        &self,
        function: &str,
        args: Vec<u8>,
        timeout: Duration,
        place: bool,
    ) -> Result<Ran<Vec<u8>>, PoolError> {
        let (value, lease) = self.run(function, args, timeout, place).await?;
        Ok(Ran {
            value,
            runner: lease.name.clone(),
        })
    }

    /// Checks out a slot and runs the call there; the lease comes back
    /// with the result, still holding the slot.
    async fn run(
        &self,
        function: &str,
        args: Vec<u8>,
        timeout: Duration,
        place: bool,
    ) -> Result<(Vec<u8>, Lease), PoolError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let lease = self.checkout().await?;
            let started = Instant::now();
            let result = self
                .run_on(&lease, function, args.clone(), timeout, place)
                .await;
            let timed_out = matches!(result, Err(PoolError::Timeout { .. }));
            self.shared
                .metrics
                .called(started.elapsed(), result.is_ok(), timed_out);
            match result {
                Err(PoolError::Remote {
                    error: RemoteError::ShuttingDown | RemoteError::Busy,
                    ..
                }) if attempt < ATTEMPTS => continue,
                Err(e) => return Err(e),
                Ok(bytes) => return Ok((bytes, lease)),
            }
        }
    }

    async fn checkout(&self) -> Result<Lease, PoolError> {
        let config = self.config();
        let deadline = Instant::now() + config.boot_timeout();
        let (reply, answer) = oneshot::channel();
        self.shared
            .requests
            .try_send(Request::Checkout { deadline, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => PoolError::Overloaded(config.name.clone()),
                mpsc::error::TrySendError::Closed(_) => PoolError::Stopped(config.name.clone()),
            })?;
        answer.await.map_err(|_| PoolError::Stopped(config.name))?
    }

    async fn run_on(
        &self,
        lease: &Lease,
        function: &str,
        args: Vec<u8>,
        timeout: Duration,
        place: bool,
    ) -> Result<Vec<u8>, PoolError> {
        let timed_out = || PoolError::Timeout {
            function: function.to_string(),
            runner: lease.name.clone(),
            after: timeout,
        };
        let node = match &lease.target {
            Target::Local => return self.run_here(lease, function, args, timeout).await,
            Target::Remote(node) => node.clone(),
        };
        let me = &self.shared.node;
        let call = rand::random::<u64>();
        let runner = Handle::named(node, RUNNER_SERVICE);
        let mut cancel = CancelOnDrop {
            node: me,
            runner: Some(runner.clone()),
            call,
        };
        let invoke = Invoke {
            call,
            function: function.to_string(),
            build: build_id().to_string(),
            args,
            timeout_ms: timeout.as_millis() as u64,
            place,
        };
        let mut dead = lease.dead.clone();
        let answer = tokio::select! {
            answer = me.call(&runner, |reply| RunnerMsg::Invoke(invoke, reply), timeout) => answer,
            why = dead.wait_for(Option::is_some) => {
                let reason = why.map(|w| w.clone().unwrap_or_default()).unwrap_or_default();
                cancel.runner = None;
                return Err(PoolError::RunnerDied { runner: lease.name.clone(), reason });
            }
        };
        let died = |reason: String| PoolError::RunnerDied {
            runner: lease.name.clone(),
            reason,
        };
        match answer {
            Ok(Ok(bytes)) => {
                cancel.runner = None;
                Ok(bytes.into_vec())
            }
            Ok(Err(RemoteError::Timeout(_))) => Err(timed_out()),
            Ok(Err(error)) => {
                cancel.runner = None;
                Err(PoolError::Remote {
                    runner: lease.name.clone(),
                    error,
                })
            }
            Err(CallError::Timeout(_)) => Err(timed_out()),
            Err(CallError::NodeDown(_)) => {
                cancel.runner = None;
                Err(died("its node went down".into()))
            }
            Err(e) => Err(died(e.to_string())),
        }
    }

    /// The local backend: the call runs as a task in this process, aborted
    /// at its timeout or when the caller goes away.
    async fn run_here(
        &self,
        lease: &Lease,
        function: &str,
        args: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, PoolError> {
        let entry = functions()
            .get(function)
            .ok_or_else(|| PoolError::UnknownFunction(function.to_string()))?;
        let ctx = Ctx::new(self.shared.node.clone(), self.shared.extension.clone());
        let task = tokio::spawn((entry.invoke)(ctx, args));
        let _abort = AbortOnDrop(task.abort_handle());
        let remote = |error| PoolError::Remote {
            runner: lease.name.clone(),
            error,
        };
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(result)) => result.map_err(remote),
            Ok(Err(_)) => Err(remote(RemoteError::Panicked)),
            Err(_) => Err(PoolError::Timeout {
                function: function.to_string(),
                runner: lease.name.clone(),
                after: timeout,
            }),
        }
    }
}

fn check_size(bytes: &[u8]) -> Result<(), PoolError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(PoolError::TooLarge {
            len: bytes.len(),
            max: MAX_PAYLOAD,
        });
    }
    Ok(())
}

fn encode_args<T: serde::Serialize>(args: &T) -> Result<Vec<u8>, PoolError> {
    let bytes = encode(args).map_err(PoolError::BadArgs)?;
    check_size(&bytes)?;
    Ok(bytes)
}

/// Builds a [`Pool`]: options with FLAME's meanings, hooks, a backend.
pub struct PoolBuilder {
    config: PoolConfig,
    hooks: Hooks,
    backend: Option<Arc<dyn Backend>>,
    idle_check: Option<IdleCheck>,
}

impl std::fmt::Debug for PoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("config", &self.config)
            .finish()
    }
}

impl PoolBuilder {
    /// A builder from plain options.
    pub fn new(config: PoolConfig) -> Self {
        PoolBuilder {
            config,
            hooks: Hooks::default(),
            backend: None,
            idle_check: None,
        }
    }

    /// The options so far.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Runners kept at all times (0 on a runner).
    pub fn min(mut self, min: usize) -> Self {
        self.config.min = min;
        self
    }

    /// Runners at most.
    pub fn max(mut self, max: usize) -> Self {
        self.config.max = max;
        self
    }

    /// Concurrent calls per runner.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.config.max_concurrency = n;
        self
    }

    /// Each runner takes one call, then stops.
    pub fn single_use(mut self, yes: bool) -> Self {
        self.config.single_use = yes;
        self
    }

    /// Default call timeout.
    pub fn timeout(mut self, t: Duration) -> Self {
        self.config.timeout_ms = t.as_millis() as u64;
        self
    }

    /// How long a boot may take (and a caller wait for a slot).
    pub fn boot_timeout(mut self, t: Duration) -> Self {
        self.config.boot_timeout_ms = t.as_millis() as u64;
        self
    }

    /// How long a stopping runner has to finish.
    pub fn shutdown_timeout(mut self, t: Duration) -> Self {
        self.config.shutdown_timeout_ms = t.as_millis() as u64;
        self
    }

    /// Runners above min stop after this long idle.
    pub fn idle_shutdown_after(mut self, t: Duration) -> Self {
        self.config.idle_ms = t.as_millis() as u64;
        self
    }

    /// As [`PoolBuilder::idle_shutdown_after`], and only if `check` (run
    /// on the runner, which defines the same pool) says so.
    pub fn idle_shutdown_after_check(
        mut self,
        t: Duration,
        check: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        self.config.idle_ms = t.as_millis() as u64;
        self.idle_check = Some(Arc::new(check));
        self
    }

    /// Runners within min stop (and are replaced) after this long idle.
    pub fn min_idle_shutdown_after(mut self, t: Duration) -> Self {
        self.config.min_idle_ms = Some(t.as_millis() as u64);
        self
    }

    /// How runners boot.
    pub fn backend_kind(mut self, kind: BackendKind) -> Self {
        self.config.backend = kind;
        self.backend = None;
        self
    }

    /// A backend of the app's own.
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// Called when a runner starts booting, with the count it grows to.
    pub fn on_grow_start(mut self, f: impl Fn(&str, usize) + Send + Sync + 'static) -> Self {
        self.hooks.on_grow_start = Some(Arc::new(f));
        self
    }

    /// Called when a boot ends, with the count and the failure if any.
    pub fn on_grow_end(
        mut self,
        f: impl Fn(&str, usize, Result<(), &str>) + Send + Sync + 'static,
    ) -> Self {
        self.hooks.on_grow_end = Some(Arc::new(f));
        self
    }

    /// Called when a runner is stopped, with the count it shrinks to.
    pub fn on_shrink(mut self, f: impl Fn(&str, usize) + Send + Sync + 'static) -> Self {
        self.hooks.on_shrink = Some(Arc::new(f));
        self
    }

    /// Starts the pool's task on `node`. `home` is how runners reach this
    /// node; on a runner, min is forced to 0.
    pub(crate) fn start(
        self,
        node: &Node,
        home: Home,
        extension: Option<Arc<dyn Any + Send + Sync>>,
        on_runner: bool,
    ) -> Result<Pool, PoolConfigError> {
        let mut config = self.config;
        config.validate()?;
        if on_runner {
            config.min = 0;
        }
        let backend: Option<Arc<dyn Backend>> = match (self.backend, &config.backend) {
            (Some(b), _) => Some(b),
            (None, BackendKind::Local) => None,
            (None, BackendKind::Process) => Some(Arc::new(ProcessBackend)),
            (None, BackendKind::Exec(t)) => Some(Arc::new(ExecBackend::new(t.clone()))),
        };
        let (requests_tx, requests) = mpsc::channel(MAX_WAITING);
        let (events_tx, events) = mpsc::unbounded_channel();
        let task = PoolTask::new(
            config.clone(),
            node.clone(),
            backend,
            self.hooks,
            events_tx.clone(),
            home,
        );
        let shared = Arc::new(PoolShared {
            config: Mutex::new(config),
            node: node.clone(),
            requests: requests_tx,
            events: events_tx,
            metrics: task.metrics.clone(),
            snapshot: task.snapshot.clone(),
            extension,
            idle_check: self.idle_check,
        });
        tokio::spawn(task.run(requests, events));
        Ok(Pool { shared })
    }
}
