//! The pool task: one per pool, the only owner of its [`PoolState`]. It
//! takes callers' requests and runner events, carries out the state's
//! actions (boot through the backend, hand out leases, stop runners), and
//! publishes a snapshot for the admin API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use drove_runtime::{Handle, MembershipEvent, Node, NodeId};

use crate::backend::{Backend, RunnerProcess};
use crate::config::PoolConfig;
use crate::error::PoolError;
use crate::metrics::PoolMetrics;
use crate::parent::ParentInfo;
use crate::protocol::{RunnerMsg, RUNNER_SERVICE};
use crate::remote::build_id;
use crate::state::{Action, Limits, PoolState, Refusal, RunnerId, RunnerState, WaiterId};

/// Where a lease's calls run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// In this process (the local backend).
    Local,
    /// On a runner node.
    Remote(NodeId),
}

/// A slot on a runner, held by one caller; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Lease {
    pub(crate) runner: RunnerId,
    pub(crate) name: String,
    pub(crate) target: Target,
    /// Becomes `Some(why)` when the runner dies.
    pub(crate) dead: watch::Receiver<Option<String>>,
    events: mpsc::UnboundedSender<Event>,
    /// The slot stays taken after the lease is dropped (a placed child
    /// holds it until the runner says it stopped).
    pub(crate) kept: bool,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if !self.kept {
            let _ = self.events.send(Event::Release(self.runner));
        }
    }
}

/// A caller's request to the task.
pub(crate) enum Request {
    Checkout {
        deadline: Instant,
        reply: oneshot::Sender<Result<Lease, PoolError>>,
    },
}

/// A hook told the pool's name and its runner count.
pub type CountHook = Arc<dyn Fn(&str, usize) + Send + Sync>;

/// A hook told the pool's name, its runner count, and how a boot ended.
pub type BootHook = Arc<dyn Fn(&str, usize, Result<(), &str>) + Send + Sync>;

/// Hooks FLAME offers: `on_grow_start`, `on_grow_end`, `on_shrink`.
#[derive(Clone, Default)]
pub struct Hooks {
    /// A runner starts booting; the pool's runner count it grows to.
    pub on_grow_start: Option<CountHook>,
    /// A boot ended: the count now, and the failure if it failed.
    pub on_grow_end: Option<BootHook>,
    /// A runner is being stopped; the count it shrinks to.
    pub on_shrink: Option<CountHook>,
}

/// Runner events and operator requests. Unbounded, but bounded in fact:
/// one release per lease, a few events per runner, and runners are at most
/// `max`.
pub(crate) enum Event {
    Release(RunnerId),
    Hello {
        runner: RunnerId,
        node: NodeId,
        secret: String,
        build: String,
        pid: u32,
    },
    ChildStopped(RunnerId, NodeId),
    Leaving(RunnerId, NodeId, String),
    Exited(RunnerId, String),
    ShrinkAnswer(RunnerId, bool),
    SetBounds {
        min: usize,
        max: usize,
        reply: oneshot::Sender<Result<(), &'static str>>,
    },
    Stop(oneshot::Sender<()>),
}

/// One runner as the admin API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunnerInfo {
    /// Its node name (`local-N` for the local backend).
    pub name: String,
    /// Its OS pid, for runners that are child processes.
    pub pid: Option<u32>,
    /// Slots in use.
    pub busy: usize,
    /// `booting`, `ready`, `draining` (told to stop) or `stopping` (on
    /// its way out by itself).
    pub state: &'static str,
    /// Since it started booting.
    pub age: Duration,
}

/// A pool as the admin API shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Runners kept at all times.
    pub min: usize,
    /// Runners at most.
    pub max: usize,
    /// Slots per runner.
    pub max_concurrency: usize,
    /// The runners, booting ones included.
    pub runners: Vec<RunnerInfo>,
    /// Runners booting.
    pub booting: usize,
    /// Callers waiting for a slot.
    pub waiting: usize,
}

/// What runners need to join their parent's cluster.
#[derive(Clone, Debug)]
pub struct Home {
    /// The parent's cluster address.
    pub addr: std::net::SocketAddr,
    /// The cluster cookie.
    pub cookie: Arc<str>,
}

struct RunnerEntry {
    name: String,
    node: Option<NodeId>,
    pid: Option<u32>,
    started: Instant,
    secret: String,
    kill: Option<oneshot::Sender<()>>,
    dead: watch::Sender<Option<String>>,
}

pub(crate) struct PoolTask {
    pub(crate) config: PoolConfig,
    pub(crate) node: Node,
    pub(crate) backend: Option<Arc<dyn Backend>>,
    pub(crate) hooks: Hooks,
    pub(crate) metrics: Arc<PoolMetrics>,
    pub(crate) snapshot: Arc<Mutex<Snapshot>>,
    pub(crate) events_tx: mpsc::UnboundedSender<Event>,
    home: Home,
    state: PoolState,
    runners: HashMap<RunnerId, RunnerEntry>,
    waiters: HashMap<WaiterId, (oneshot::Sender<Result<Lease, PoolError>>, Instant)>,
    next_waiter: WaiterId,
    epoch: Instant,
}

/// How often deadlines, idle runners and boot timeouts are looked at.
const TICK: Duration = Duration::from_millis(25);

impl PoolTask {
    pub(crate) fn new(
        config: PoolConfig,
        node: Node,
        backend: Option<Arc<dyn Backend>>,
        hooks: Hooks,
        events_tx: mpsc::UnboundedSender<Event>,
        home: Home,
    ) -> Self {
        let state = PoolState::new(Limits {
            min: config.min,
            max: config.max,
            max_concurrency: config.max_concurrency,
            single_use: config.single_use,
            idle_ms: config.idle_ms,
            min_idle_ms: config.min_idle_ms,
            max_limit: config.max_limit,
            max_booting: config.max_booting,
        });
        PoolTask {
            config,
            node,
            backend,
            hooks,
            metrics: Arc::default(),
            snapshot: Arc::default(),
            events_tx,
            home,
            state,
            runners: HashMap::new(),
            waiters: HashMap::new(),
            next_waiter: 1,
            epoch: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn ms_until(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }

    pub(crate) async fn run(
        mut self,
        mut requests: mpsc::Receiver<Request>,
        mut events: mpsc::UnboundedReceiver<Event>,
    ) {
        let mut members = self.node.subscribe();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let actions = self.state.tick(0);
        self.carry_out(actions);
        loop {
            let actions = tokio::select! {
                Some(Request::Checkout { deadline, reply }) = requests.recv() => {
                    let waiter = self.next_waiter;
                    self.next_waiter += 1;
                    self.waiters.insert(waiter, (reply, Instant::now()));
                    let (now, deadline) = (self.now(), self.ms_until(deadline));
                    self.state.request(waiter, now, deadline)
                }
                Some(event) = events.recv() => match self.on_event(event) {
                    Some(actions) => actions,
                    None => return,
                },
                event = members.recv() => self.on_membership(event),
                _ = tick.tick() => self.on_tick(),
            };
            self.carry_out(actions);
            self.publish();
        }
    }

    fn on_event(&mut self, event: Event) -> Option<Vec<Action>> {
        let now = self.now();
        Some(match event {
            Event::Release(runner) => self.state.release(runner, now),
            Event::ChildStopped(runner, node) if self.is_runner(runner, &node) => {
                self.state.release(runner, now)
            }
            Event::Hello {
                runner,
                node,
                secret,
                build,
                pid,
            } => self.on_hello(runner, node, &secret, &build, pid),
            Event::Leaving(runner, node, why) if self.is_runner(runner, &node) => {
                tracing::info!(pool = %self.config.name, runner, why, "runner leaving");
                self.state.gone(runner, now)
            }
            Event::Exited(runner, status) => {
                self.runner_gone(runner, &format!("process exited ({status})"))
            }
            Event::ShrinkAnswer(runner, agreed) => {
                if agreed {
                    self.kill_later(runner);
                    Vec::new()
                } else {
                    self.state.stop_refused(runner, now)
                }
            }
            Event::SetBounds { min, max, reply } => match self.state.set_bounds(min, max, now) {
                Ok(actions) => {
                    self.config.min = min;
                    self.config.max = max;
                    let _ = reply.send(Ok(()));
                    actions
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                    Vec::new()
                }
            },
            Event::ChildStopped(..) | Event::Leaving(..) => Vec::new(),
            Event::Stop(done) => {
                self.stop_all();
                let _ = done.send(());
                return None;
            }
        })
    }

    /// Whether `node` is the node of `runner` (a message naming a runner
    /// must come from it).
    fn is_runner(&self, runner: RunnerId, node: &NodeId) -> bool {
        self.runners.get(&runner).and_then(|r| r.node.as_ref()) == Some(node)
    }

    fn on_hello(
        &mut self,
        runner: RunnerId,
        node: NodeId,
        secret: &str,
        build: &str,
        pid: u32,
    ) -> Vec<Action> {
        let Some(entry) = self.runners.get_mut(&runner) else {
            return Vec::new();
        };
        let genuine = subtle_eq(&entry.secret, secret) && node.name == entry.name;
        if !genuine || !self.state.is_booting(runner) {
            tracing::warn!(pool = %self.config.name, runner, %node, "hello refused: not the runner this pool is booting");
            return Vec::new();
        }
        entry.node = Some(node);
        if build != build_id() {
            let reason = format!("runner is build {build}, this node is build {}", build_id());
            // Told to stop, wherever it runs, then forgotten.
            let mut actions = self.shrink(runner, true);
            actions.extend(self.boot_failed(runner, reason));
            return actions;
        }
        entry.pid = entry.pid.or(Some(pid));
        let took = entry.started.elapsed();
        self.metrics.booted(took);
        tracing::info!(pool = %self.config.name, runner = %entry.name, ?took, "runner up");
        let now = self.now();
        let actions = self.state.booted(runner, now);
        let count = self.count();
        if let Some(hook) = &self.hooks.on_grow_end {
            hook(&self.config.name, count, Ok(()));
        }
        actions
    }

    fn on_membership(
        &mut self,
        event: Result<MembershipEvent, broadcast::error::RecvError>,
    ) -> Vec<Action> {
        let gone = match event {
            Ok(MembershipEvent::NodeDown(id) | MembershipEvent::NodeLeft(id)) => vec![id],
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let up = self.node.up_members();
                self.runners
                    .values()
                    .filter_map(|r| r.node.clone())
                    .filter(|n| !up.contains(n))
                    .collect()
            }
            _ => return Vec::new(),
        };
        let ids: Vec<RunnerId> = self
            .runners
            .iter()
            .filter(|(_, r)| r.node.as_ref().is_some_and(|n| gone.contains(n)))
            .map(|(&id, _)| id)
            .collect();
        ids.into_iter()
            .flat_map(|id| self.runner_gone(id, "its node went down"))
            .collect()
    }

    fn on_tick(&mut self) -> Vec<Action> {
        let boot_timeout = self.config.boot_timeout();
        let late: Vec<RunnerId> = self
            .runners
            .iter()
            .filter(|(id, r)| self.state.is_booting(**id) && r.started.elapsed() > boot_timeout)
            .map(|(&id, _)| id)
            .collect();
        let mut actions: Vec<Action> = late
            .into_iter()
            .flat_map(|id| {
                self.kill(id);
                self.boot_failed(id, format!("runner did not join within {boot_timeout:?}"))
            })
            .collect();
        actions.extend(self.state.tick(self.now()));
        actions
    }

    fn runner_gone(&mut self, runner: RunnerId, why: &str) -> Vec<Action> {
        if self.state.is_booting(runner) {
            return self.boot_failed(runner, format!("runner exited before joining: {why}"));
        }
        let Some(entry) = self.runners.remove(&runner) else {
            return Vec::new();
        };
        tracing::info!(pool = %self.config.name, runner = %entry.name, why, "runner gone");
        let _ = entry.dead.send(Some(why.to_string()));
        if let Some(kill) = entry.kill {
            let _ = kill.send(());
        }
        self.state.gone(runner, self.now())
    }

    fn boot_failed(&mut self, runner: RunnerId, reason: String) -> Vec<Action> {
        tracing::warn!(pool = %self.config.name, runner, reason, "runner boot failed");
        self.metrics.boot_failed();
        if let Some(entry) = self.runners.remove(&runner) {
            if let Some(kill) = entry.kill {
                let _ = kill.send(());
            }
        }
        let actions = self.state.boot_failed(runner, self.now(), reason.clone());
        let count = self.count();
        if let Some(hook) = &self.hooks.on_grow_end {
            hook(&self.config.name, count, Err(&reason));
        }
        actions
    }

    fn count(&self) -> usize {
        self.state.runners().len() + self.state.booting()
    }

    fn carry_out(&mut self, actions: Vec<Action>) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(action) = queue.pop_front() {
            let more = match action {
                Action::Boot(runner) => self.boot(runner),
                Action::Assign { waiter, runner } => self.assign(waiter, runner),
                Action::Fail { waiter, reason } => {
                    self.fail(waiter, reason);
                    Vec::new()
                }
                Action::Stop(runner) => {
                    let force = self.config.single_use || self.count() > self.config.max;
                    self.shrink(runner, force)
                }
            };
            queue.extend(more);
        }
    }

    fn boot(&mut self, runner: RunnerId) -> Vec<Action> {
        self.metrics.boot_started();
        let count = self.count();
        if let Some(hook) = &self.hooks.on_grow_start {
            hook(&self.config.name, count);
        }
        let (dead, _) = watch::channel(None);
        let Some(backend) = self.backend.clone() else {
            let name = format!("local-{runner}");
            self.runners.insert(
                runner,
                RunnerEntry {
                    name,
                    node: None,
                    pid: None,
                    started: Instant::now(),
                    secret: String::new(),
                    kill: None,
                    dead,
                },
            );
            self.metrics.booted(Duration::ZERO);
            return self.state.booted(runner, self.now());
        };
        let me = self.node.id();
        let name = ParentInfo::runner_name(&me.name, &self.config.name, runner);
        let info = ParentInfo {
            parent: me,
            addr: self.home.addr,
            pool: self.config.name.clone(),
            runner,
            name: name.clone(),
            build: build_id().to_string(),
            cookie: self.home.cookie.to_string(),
            secret: format!("{:032x}", rand::random::<u128>()),
            listen_host: self.home.addr.ip(),
            boot_timeout_ms: self.config.boot_timeout_ms,
            shutdown_timeout_ms: self.config.shutdown_timeout_ms,
            watch_stdin: backend.pipes_stdin(),
            single_use: self.config.single_use,
            max_concurrency: self.config.max_concurrency,
        };
        tracing::info!(pool = %self.config.name, runner = %name, backend = backend.kind(), "booting a runner");
        match backend.boot(&info) {
            Ok(RunnerProcess {
                pid,
                exited,
                kill,
                exit_is_death,
            }) => {
                let events = self.events_tx.clone();
                tokio::spawn(async move {
                    if let Ok(status) = exited.await {
                        // An exec command that only launched the runner
                        // elsewhere may end with success; anything else
                        // before the hello is a failed boot.
                        if exit_is_death || !status.contains("exit status: 0") {
                            let _ = events.send(Event::Exited(runner, status));
                        }
                    }
                });
                self.runners.insert(
                    runner,
                    RunnerEntry {
                        name,
                        node: None,
                        pid,
                        started: Instant::now(),
                        secret: info.secret,
                        kill: Some(kill),
                        dead,
                    },
                );
                Vec::new()
            }
            Err(reason) => {
                self.runners.insert(
                    runner,
                    RunnerEntry {
                        name,
                        node: None,
                        pid: None,
                        started: Instant::now(),
                        secret: String::new(),
                        kill: None,
                        dead,
                    },
                );
                self.boot_failed(runner, reason)
            }
        }
    }

    fn assign(&mut self, waiter: WaiterId, runner: RunnerId) -> Vec<Action> {
        let now = self.now();
        let (Some((reply, since)), Some(entry)) =
            (self.waiters.remove(&waiter), self.runners.get(&runner))
        else {
            return self.state.release(runner, now);
        };
        self.metrics.waited(since.elapsed());
        let lease = Lease {
            runner,
            name: entry.name.clone(),
            target: entry.node.clone().map_or(Target::Local, Target::Remote),
            dead: entry.dead.subscribe(),
            events: self.events_tx.clone(),
            kept: false,
        };
        // A caller that is gone drops the lease, which frees the slot.
        let _ = reply.send(Ok(lease));
        Vec::new()
    }

    fn fail(&mut self, waiter: WaiterId, reason: Refusal) {
        let Some((reply, since)) = self.waiters.remove(&waiter) else {
            return;
        };
        let pool = self.config.name.clone();
        let error = match reason {
            Refusal::Deadline => PoolError::NoCapacity {
                pool,
                waited: since.elapsed(),
            },
            Refusal::BootFailed(reason) => PoolError::BootFailed { pool, reason },
        };
        let _ = reply.send(Err(error));
    }

    /// Asks a runner to stop (an idle one may refuse through its idle
    /// check; a forced one may not).
    fn shrink(&mut self, runner: RunnerId, force: bool) -> Vec<Action> {
        let count = self.count().saturating_sub(1);
        if let Some(hook) = &self.hooks.on_shrink {
            hook(&self.config.name, count);
        }
        let Some(entry) = self.runners.get(&runner) else {
            return Vec::new();
        };
        let Some(node) = entry.node.clone() else {
            // A local runner, or one that never joined: nothing to ask.
            return self.runner_gone(runner, "stopped by its pool");
        };
        let (me, events) = (self.node.clone(), self.events_tx.clone());
        let grace = self.config.shutdown_timeout();
        tokio::spawn(async move {
            let handle = Handle::named(node, RUNNER_SERVICE);
            let caller = me.id();
            let agreed = me
                .call(
                    &handle,
                    |reply| RunnerMsg::Shrink {
                        caller,
                        reply,
                        force,
                    },
                    grace.max(Duration::from_secs(1)),
                )
                .await
                .unwrap_or(true);
            let _ = events.send(Event::ShrinkAnswer(runner, agreed));
        });
        Vec::new()
    }

    /// A runner agreed to stop: if it is still there after its shutdown
    /// timeout, its process is killed.
    fn kill_later(&mut self, runner: RunnerId) {
        let Some(kill) = self.runners.get_mut(&runner).and_then(|r| r.kill.take()) else {
            return;
        };
        let grace = self.config.shutdown_timeout() + Duration::from_secs(2);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            let _ = kill.send(());
        });
    }

    fn kill(&mut self, runner: RunnerId) {
        if let Some(kill) = self.runners.get_mut(&runner).and_then(|r| r.kill.take()) {
            let _ = kill.send(());
        }
    }

    fn stop_all(&mut self) {
        let ids: Vec<RunnerId> = self.runners.keys().copied().collect();
        for id in ids {
            self.shrink(id, true);
            self.kill_later(id);
        }
        for (_, (reply, _)) in self.waiters.drain() {
            let _ = reply.send(Err(PoolError::Stopped(self.config.name.clone())));
        }
    }

    fn publish(&self) {
        let views: HashMap<RunnerId, (usize, RunnerState)> = self
            .state
            .runners()
            .into_iter()
            .map(|v| (v.id, (v.busy, v.state)))
            .collect();
        let mut runners: Vec<RunnerInfo> = self
            .runners
            .iter()
            .map(|(id, r)| {
                let (busy, state) = match views.get(id) {
                    Some((busy, RunnerState::Ready)) => (*busy, "ready"),
                    Some((busy, RunnerState::Draining)) => (*busy, "draining"),
                    None if self.state.is_booting(*id) => (0, "booting"),
                    None => (0, "stopping"),
                };
                RunnerInfo {
                    name: r.name.clone(),
                    pid: r.pid,
                    busy,
                    state,
                    age: r.started.elapsed(),
                }
            })
            .collect();
        runners.sort_by(|a, b| a.name.cmp(&b.name));
        let limits = self.state.limits();
        let snapshot = Snapshot {
            min: limits.min,
            max: limits.max,
            max_concurrency: limits.max_concurrency,
            runners,
            booting: self.state.booting(),
            waiting: self.state.waiting(),
        };
        *self.snapshot.lock().unwrap_or_else(|p| p.into_inner()) = snapshot;
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn subtle_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}
