//! A pipeline's fetch loop on one node, as Flume's producer: it asks the
//! store for no more jobs than it has free slots (`max_demand`), within
//! the shared rate limit, and stops asking while paused here or
//! cluster-wide. Idle, it waits for a local enqueue or the poll tick.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Notify, Semaphore};

use crate::config::PipelineConfig;
use crate::engine::{now_ms, Engine};
use crate::store::{FetchRequest, Fetched, RateLimit};

/// What a pipeline is doing, as it last reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineStatus {
    /// Fetching when it has free slots.
    Running,
    /// Paused on this node.
    PausedHere,
    /// Paused cluster-wide (seen at its last fetch).
    PausedCluster,
    /// Not fetching: this node's sessions reach only a minority of the
    /// cluster (see `drove_runtime::reach`), so it leaves the jobs to the
    /// nodes the others can reach.
    CutOff,
    /// The store could not be reached at its last fetch.
    StoreDown,
    /// Stopped (the node is shutting down).
    Stopped,
}

/// The control side of one running pipeline.
#[derive(Debug, Clone)]
pub(crate) struct PipelineHandle {
    pub(crate) config: PipelineConfig,
    pub(crate) paused_here: watch::Sender<bool>,
    pub(crate) status: watch::Receiver<PipelineStatus>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) slots: Arc<Semaphore>,
}

/// Starts `config`'s loop; it ends when `stop` turns true.
pub(crate) fn start(
    engine: Arc<Engine>,
    config: PipelineConfig,
    cut_off: watch::Receiver<bool>,
    stop: watch::Receiver<bool>,
) -> PipelineHandle {
    let (paused_here, paused_rx) = watch::channel(false);
    let (status_tx, status) = watch::channel(PipelineStatus::Running);
    let wake = Arc::new(Notify::new());
    let slots = Arc::new(Semaphore::new(config.max_demand as usize));
    let handle = PipelineHandle {
        config: config.clone(),
        paused_here,
        status,
        wake: wake.clone(),
        slots: slots.clone(),
    };
    let span = tracing::info_span!("pipeline", name = %config.name, queue = %config.queue);
    tokio::spawn(tracing::Instrument::instrument(
        run(
            engine,
            config,
            Controls {
                slots,
                wake,
                paused_here: paused_rx,
                cut_off,
                status: status_tx,
                stop,
            },
        ),
        span,
    ));
    handle
}

/// What drives a pipeline's loop besides its store.
struct Controls {
    slots: Arc<Semaphore>,
    wake: Arc<Notify>,
    paused_here: watch::Receiver<bool>,
    cut_off: watch::Receiver<bool>,
    status: watch::Sender<PipelineStatus>,
    stop: watch::Receiver<bool>,
}

async fn run(engine: Arc<Engine>, config: PipelineConfig, controls: Controls) {
    let Controls {
        slots,
        wake,
        mut paused_here,
        mut cut_off,
        status,
        mut stop,
    } = controls;
    let rate = config.rate.as_ref().map(|r| RateLimit {
        key: config.rate_key().unwrap_or_default(),
        count: r.count,
        scale_ms: r.scale_ms,
    });
    let poll = Duration::from_millis(engine.config.poll_ms.max(1));
    let mut store_wait = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            break;
        }
        let held_back = if *paused_here.borrow() {
            Some(PipelineStatus::PausedHere)
        } else if *cut_off.borrow() {
            Some(PipelineStatus::CutOff)
        } else {
            None
        };
        if let Some(held_back) = held_back {
            status.send_replace(held_back);
            tokio::select! {
                _ = paused_here.changed() => {}
                _ = cut_off.changed() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // Back-pressure: fetch nothing until a slot is free.
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                permit = slots.acquire() => drop(permit),
                _ = paused_here.changed() => {}
                _ = cut_off.changed() => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        let Ok(held) = slots.try_acquire_many(free as u32) else {
            continue;
        };
        held.forget();
        let asked = free as u32;
        let started = Instant::now();
        let now = now_ms();
        let consumer = engine.consumer();
        let fetched = engine
            .store
            .fetch(FetchRequest {
                queue: &config.queue,
                consumer: &consumer,
                limit: asked,
                now_ms: now,
                lease_until_ms: now.saturating_add(engine.config.lease_ms),
                rate: rate.as_ref(),
            })
            .await;
        let idle = match fetched {
            Ok(Fetched::Jobs(jobs)) => {
                store_wait = Duration::from_millis(100);
                status.send_replace(PipelineStatus::Running);
                let got = jobs.len();
                engine
                    .metrics
                    .fetched(&config.queue, got, started.elapsed());
                slots.add_permits(free - got);
                engine.dispatch(jobs, config.batch_size as usize, &slots);
                (got < free).then_some(poll)
            }
            Ok(Fetched::Paused) => {
                slots.add_permits(free);
                status.send_replace(PipelineStatus::PausedCluster);
                Some(poll.max(Duration::from_millis(100)))
            }
            Ok(Fetched::RateLimited(wait_ms)) => {
                slots.add_permits(free);
                status.send_replace(PipelineStatus::Running);
                Some(Duration::from_millis(wait_ms).min(Duration::from_secs(1)))
            }
            Err(e) => {
                slots.add_permits(free);
                status.send_replace(PipelineStatus::StoreDown);
                tracing::warn!(error = %e, retry_in = ?store_wait, "fetching jobs failed");
                let wait = store_wait;
                store_wait = (store_wait * 2).min(Duration::from_secs(5));
                Some(wait)
            }
        };
        if let Some(wait) = idle {
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = paused_here.changed() => {}
                _ = cut_off.changed() => {}
                _ = stop.changed() => {}
            }
        }
    }
    status.send_replace(PipelineStatus::Stopped);
}
