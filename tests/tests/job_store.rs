//! The job stores' conformance suite: every test runs against SQLite (a
//! fresh file) and Redis (a private `redis-server`, a fresh namespace).

// The suite's cases are plain functions the macro runs per backend: they
// fail the test as loudly as an assert.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use drove_jobs::job::{Attempt, Failure, JobId, JobState, NewJob, Unique, UniqueHold};
use drove_jobs::redis_store::RedisStore;
use drove_jobs::sqlite::SqliteStore;
use drove_jobs::store::{FetchRequest, Fetched, JobStore, RateLimit, RescueReason};
use drove_tests::random_hex;
use drove_tests::redis::RedisServer;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A store for one test, and what must live as long as it.
type Fixture = (Arc<dyn JobStore>, Box<dyn std::any::Any>);

fn sqlite() -> Fixture {
    let path = std::env::temp_dir().join(format!("drove-jobs-{}.sqlite3", random_hex()));
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    (store, Box::new(TempFile(path)))
}

fn redis() -> Fixture {
    let server = RedisServer::start();
    let store = Arc::new(RedisStore::open(&server.url(), "t").unwrap());
    (store, Box::new(server))
}

/// Removes a SQLite file and its WAL files when dropped.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut name = self.0.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

fn job(queue: &str, priority: u8, run_at_ms: u64) -> NewJob {
    NewJob {
        queue: queue.to_string(),
        worker: "w".to_string(),
        args: format!("{{\"p\":{priority}}}"),
        priority,
        max_retries: 2,
        run_at_ms,
        unique: None,
    }
}

async fn fetch(store: &dyn JobStore, consumer: &str, limit: u32) -> Vec<drove_jobs::job::Job> {
    fetch_rated(store, consumer, limit, None).await
}

async fn fetch_rated(
    store: &dyn JobStore,
    consumer: &str,
    limit: u32,
    rate: Option<&RateLimit>,
) -> Vec<drove_jobs::job::Job> {
    match fetch_raw(store, "q", consumer, limit, rate).await {
        Fetched::Jobs(jobs) => jobs,
        other => panic!("fetch answered {other:?}"),
    }
}

async fn fetch_raw(
    store: &dyn JobStore,
    queue: &str,
    consumer: &str,
    limit: u32,
    rate: Option<&RateLimit>,
) -> Fetched {
    let now = now();
    store
        .fetch(FetchRequest {
            queue,
            consumer,
            limit,
            now_ms: now,
            lease_until_ms: now + 30_000,
            rate,
        })
        .await
        .unwrap()
}

fn attempt(job: &drove_jobs::job::Job) -> Attempt {
    Attempt {
        id: job.id,
        attempt: job.attempt,
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite_store {
            $(#[tokio::test] async fn $name() {
                let (store, _keep) = super::sqlite();
                super::$name(store).await;
            })*
        }
        mod redis_store {
            $(#[tokio::test] async fn $name() {
                let (store, _keep) = super::redis();
                super::$name(store).await;
            })*
        }
    };
}

conformance!(
    fetch_takes_priority_then_time,
    scheduled_jobs_wait_for_their_time,
    answers_are_fenced_by_consumer_and_attempt,
    failures_retry_then_go_dead_with_every_error,
    rescue_hands_back_and_fences_the_old_attempt,
    expired_leases_are_rescued,
    cancel_stops_queued_and_running_jobs,
    unique_jobs_hold_for_their_period,
    cancelled_and_dead_jobs_release_a_live_hold,
    the_farthest_time_reads_back,
    paused_queues_give_nothing,
    rate_limits_slide,
    queues_count_by_state_and_prune,
    retry_brings_back_a_dead_job,
    snooze_reschedules_at_no_cost,
    concurrent_fetches_never_share_a_job,
    lists_page_through_one_queue_and_state,
);

async fn fetch_takes_priority_then_time(store: Arc<dyn JobStore>) {
    let t = now();
    let ids = store
        .enqueue(
            &[
                job("q", 5, t),
                job("q", 0, t),
                job("q", 5, t - 10),
                job("other", 0, t),
            ],
            t,
        )
        .await
        .unwrap();
    assert!(
        fetch(&*store, "a#1", 0).await.is_empty(),
        "a fetch of 0 takes none"
    );
    let got = fetch(&*store, "a#1", 10).await;
    let order: Vec<JobId> = got.iter().map(|j| j.id).collect();
    assert_eq!(order, vec![ids[1].id, ids[2].id, ids[0].id]);
    for j in &got {
        assert_eq!(j.state, JobState::Executing);
        assert_eq!(j.attempt, 1);
        assert_eq!(j.node.as_deref(), Some("a#1"));
        assert!(j.attempted_at_ms.is_some());
    }
    assert!(fetch(&*store, "a#1", 10).await.is_empty());
}

async fn scheduled_jobs_wait_for_their_time(store: Arc<dyn JobStore>) {
    let t = now();
    let id = store.enqueue(&[job("q", 0, t + 300)], t).await.unwrap()[0].id;
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Scheduled);
    assert_eq!(got.scheduled_at_ms, t + 300);
    assert!(fetch(&*store, "a#1", 10).await.is_empty());
    tokio::time::sleep(Duration::from_millis(350)).await;
    let got = fetch(&*store, "a#1", 10).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
}

async fn answers_are_fenced_by_consumer_and_attempt(store: Arc<dyn JobStore>) {
    let t = now();
    store.enqueue(&[job("q", 0, t)], t).await.unwrap();
    let j = fetch(&*store, "a#1", 1).await.remove(0);
    let wrong_attempt = Attempt {
        id: j.id,
        attempt: j.attempt + 1,
    };
    assert_eq!(
        store
            .complete("a#1", &[wrong_attempt], now())
            .await
            .unwrap(),
        vec![j.id]
    );
    assert_eq!(
        store.complete("b#1", &[attempt(&j)], now()).await.unwrap(),
        vec![j.id]
    );
    assert_eq!(
        store.get(j.id).await.unwrap().unwrap().state,
        JobState::Executing
    );
    assert!(store
        .complete("a#1", &[attempt(&j)], now())
        .await
        .unwrap()
        .is_empty());
    let done = store.get(j.id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert!(done.completed_at_ms.is_some());
    assert_eq!(
        store.complete("a#1", &[attempt(&j)], now()).await.unwrap(),
        vec![j.id]
    );
}

async fn failures_retry_then_go_dead_with_every_error(store: Arc<dyn JobStore>) {
    let t = now();
    store.enqueue(&[job("q", 0, t)], t).await.unwrap();
    let j = fetch(&*store, "a#1", 1).await.remove(0);
    let retry_at = now() + 200;
    let failure = Failure {
        attempt: attempt(&j),
        error: "boom 1".into(),
        retry_at_ms: Some(retry_at),
        snooze: false,
    };
    assert!(store
        .fail("a#1", &[failure], now())
        .await
        .unwrap()
        .is_empty());
    let got = store.get(j.id).await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Retryable);
    assert_eq!(got.scheduled_at_ms, retry_at);
    assert_eq!(got.errors.len(), 1);
    assert_eq!(got.errors[0].error, "boom 1");
    assert_eq!(got.errors[0].attempt, 1);
    assert_eq!(got.errors[0].node, "a#1");
    assert!(fetch(&*store, "a#1", 1).await.is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let j = fetch(&*store, "a#1", 1).await.remove(0);
    assert_eq!(j.attempt, 2);
    let failure = Failure {
        attempt: attempt(&j),
        error: "boom 2".into(),
        retry_at_ms: None,
        snooze: false,
    };
    assert!(store
        .fail("a#1", &[failure], now())
        .await
        .unwrap()
        .is_empty());
    let got = store.get(j.id).await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Dead);
    let errors: Vec<&str> = got.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(errors, vec!["boom 1", "boom 2"]);
    assert!(got.completed_at_ms.is_some());
}

async fn snooze_reschedules_at_no_cost(store: Arc<dyn JobStore>) {
    let t = now();
    store.enqueue(&[job("q", 0, t)], t).await.unwrap();
    let j = fetch(&*store, "a#1", 1).await.remove(0);
    let at = now() + 200;
    let snooze = Failure {
        attempt: attempt(&j),
        error: "not yet".into(),
        retry_at_ms: Some(at),
        snooze: true,
    };
    assert!(store
        .fail("a#1", std::slice::from_ref(&snooze), now())
        .await
        .unwrap()
        .is_empty());
    let got = store.get(j.id).await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Scheduled);
    assert_eq!(got.scheduled_at_ms, at);
    assert!(got.errors.is_empty(), "{:?}", got.errors);
    assert_eq!(got.max_retries, j.max_retries + 1);
    // The old attempt stays fenced: its answer is refused.
    assert_eq!(
        store.fail("a#1", &[snooze], now()).await.unwrap(),
        vec![j.id]
    );
    assert!(fetch(&*store, "a#1", 1).await.is_empty());
    tokio::time::sleep(Duration::from_millis(250)).await;
    let again = fetch(&*store, "a#1", 1).await.remove(0);
    assert_eq!(again.attempt, 2);
    assert_eq!(
        store.queues().await.unwrap()[0].counts[&JobState::Executing],
        1
    );
}

async fn rescue_hands_back_and_fences_the_old_attempt(store: Arc<dyn JobStore>) {
    let t = now();
    let mut last = job("q", 0, t);
    last.max_retries = 0;
    let ids = store.enqueue(&[job("q", 0, t), last], t).await.unwrap();
    let held = fetch(&*store, "a#1", 10).await;
    assert_eq!(held.len(), 2);
    assert_eq!(store.consumers().await.unwrap(), vec!["a#1".to_string()]);
    let n = store
        .rescue("a#1", RescueReason::NodeDown, now())
        .await
        .unwrap();
    assert_eq!(n, 2);
    let back = store.get(ids[0].id).await.unwrap().unwrap();
    assert_eq!(back.state, JobState::Available);
    assert!(back.errors[0].error.contains("a#1"), "{:?}", back.errors);
    let dead = store.get(ids[1].id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead, "its only attempt was lost");
    let again = fetch(&*store, "b#1", 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    let stale: Vec<Attempt> = held.iter().map(attempt).collect();
    assert_eq!(store.complete("a#1", &stale, now()).await.unwrap().len(), 2);
    assert_eq!(
        store
            .renew("a#1", &stale, now() + 1000)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(store
        .complete("b#1", &[attempt(&again[0])], now())
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .consumers()
        .await
        .unwrap()
        .contains(&"a#1".to_string()));
}

async fn expired_leases_are_rescued(store: Arc<dyn JobStore>) {
    let t = now();
    let id = store.enqueue(&[job("q", 0, t)], t).await.unwrap()[0].id;
    let fetched = store
        .fetch(FetchRequest {
            queue: "q",
            consumer: "a#1",
            limit: 1,
            now_ms: t,
            lease_until_ms: t + 100,
            rate: None,
        })
        .await
        .unwrap();
    assert!(matches!(fetched, Fetched::Jobs(ref j) if j.len() == 1));
    assert_eq!(store.rescue_expired(t + 50).await.unwrap(), 0);
    let j = Attempt { id, attempt: 1 };
    assert!(store.renew("a#1", &[j], t + 200).await.unwrap().is_empty());
    assert_eq!(store.rescue_expired(t + 150).await.unwrap(), 0);
    assert_eq!(store.rescue_expired(t + 250).await.unwrap(), 1);
    let got = store.get(id).await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Available);
    assert!(got.errors[0].error.contains("lease"), "{:?}", got.errors);
}

async fn cancel_stops_queued_and_running_jobs(store: Arc<dyn JobStore>) {
    let t = now();
    let ids = store
        .enqueue(
            &[job("q", 0, t), job("q", 1, t), job("q", 0, t + 60_000)],
            t,
        )
        .await
        .unwrap();
    let running = fetch(&*store, "a#1", 1).await.remove(0);
    assert_eq!(running.id, ids[0].id);
    assert_eq!(
        store.cancel(ids[0].id, now()).await.unwrap(),
        Some(JobState::Executing)
    );
    assert_eq!(
        store.cancel(ids[1].id, now()).await.unwrap(),
        Some(JobState::Available)
    );
    assert_eq!(
        store.cancel(ids[2].id, now()).await.unwrap(),
        Some(JobState::Scheduled)
    );
    assert_eq!(
        store.cancel(ids[2].id, now()).await.unwrap(),
        Some(JobState::Cancelled)
    );
    assert_eq!(store.cancel(JobId(999_999), now()).await.unwrap(), None);
    assert_eq!(
        store
            .renew("a#1", &[attempt(&running)], now() + 1000)
            .await
            .unwrap(),
        vec![running.id]
    );
    assert_eq!(
        store
            .complete("a#1", &[attempt(&running)], now())
            .await
            .unwrap(),
        vec![running.id]
    );
    for e in &ids {
        assert_eq!(
            store.get(e.id).await.unwrap().unwrap().state,
            JobState::Cancelled
        );
    }
    assert!(fetch(&*store, "a#1", 10).await.is_empty());
}

async fn unique_jobs_hold_for_their_period(store: Arc<dyn JobStore>) {
    let t = now();
    let mut u = job("q", 0, t);
    u.unique = Some(Unique {
        key: "k1".into(),
        period_ms: 300,
        hold: UniqueHold::Live,
    });
    let first = store.enqueue(&[u.clone()], t).await.unwrap()[0];
    assert!(!first.duplicate);
    let second = store
        .enqueue(&[u.clone(), job("q", 0, t)], now())
        .await
        .unwrap();
    assert!(second[0].duplicate);
    assert_eq!(second[0].id, first.id);
    assert!(!second[1].duplicate);
    assert_eq!(
        store.unique_holder("k1", now()).await.unwrap(),
        Some(first.id)
    );
    assert_eq!(store.unique_holder("k2", now()).await.unwrap(), None);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(store.unique_holder("k1", now()).await.unwrap(), None);
    let third = store.enqueue(&[u], now()).await.unwrap()[0];
    assert!(!third.duplicate);
    assert_ne!(third.id, first.id);
}

/// Enqueue-then-cancel must not keep everyone else's job out for the
/// whole period: by default a cancelled or dead job lets go of its key; a
/// job that holds its key always keeps it.
async fn cancelled_and_dead_jobs_release_a_live_hold(store: Arc<dyn JobStore>) {
    let t = now();
    let unique = |key: &str, hold| {
        let mut u = job("q", 0, t);
        u.unique = Some(Unique {
            key: key.into(),
            period_ms: 3_600_000,
            hold,
        });
        u
    };
    let planted = store
        .enqueue(&[unique("k", UniqueHold::Live)], t)
        .await
        .unwrap()[0];
    store.cancel(planted.id, now()).await.unwrap();
    let got = store.get(planted.id).await.unwrap().unwrap();
    assert_eq!(got.state, JobState::Cancelled);
    assert_eq!(store.unique_holder("k", now()).await.unwrap(), None);
    let honest = store
        .enqueue(&[unique("k", UniqueHold::Live)], now())
        .await
        .unwrap()[0];
    assert!(!honest.duplicate, "the cancelled job's key was released");

    // A job that goes dead releases its key too.
    let j = fetch(&*store, "a#1", 1).await.remove(0);
    assert_eq!(j.id, honest.id);
    let failure = Failure {
        attempt: attempt(&j),
        error: "discarded".into(),
        retry_at_ms: None,
        snooze: false,
    };
    store.fail("a#1", &[failure], now()).await.unwrap();
    assert_eq!(
        store.get(j.id).await.unwrap().unwrap().state,
        JobState::Dead
    );
    assert_eq!(store.unique_holder("k", now()).await.unwrap(), None);
    // Cancelling a job that no longer holds the key leaves the holder be.
    let holder = store
        .enqueue(&[unique("k", UniqueHold::Live)], now())
        .await
        .unwrap()[0];
    store.cancel(j.id, now()).await.unwrap();
    assert_eq!(
        store.unique_holder("k", now()).await.unwrap(),
        Some(holder.id)
    );

    // A key held always stays through a cancel.
    let kept = store
        .enqueue(&[unique("kept", UniqueHold::Always)], now())
        .await
        .unwrap()[0];
    store.cancel(kept.id, now()).await.unwrap();
    assert_eq!(
        store.unique_holder("kept", now()).await.unwrap(),
        Some(kept.id)
    );
    let again = store
        .enqueue(&[unique("kept", UniqueHold::Always)], now())
        .await
        .unwrap()[0];
    assert!(again.duplicate);
}

/// The farthest run time and unique period the API takes (ten years)
/// store and read back exactly.
async fn the_farthest_time_reads_back(store: Arc<dyn JobStore>) {
    let t = now();
    let far = t + drove_jobs::spec::MAX_AHEAD_MS;
    let mut u = job("q", 9, far);
    u.unique = Some(Unique {
        key: "far".into(),
        period_ms: drove_jobs::spec::MAX_AHEAD_MS,
        hold: UniqueHold::Always,
    });
    u.max_retries = u32::MAX;
    let e = store.enqueue(&[u], t).await.unwrap()[0];
    let got = store.get(e.id).await.unwrap().unwrap();
    assert_eq!(got.scheduled_at_ms, far);
    assert_eq!(got.max_retries, u32::MAX);
    assert_eq!(got.state, JobState::Scheduled);
    assert_eq!(store.unique_holder("far", now()).await.unwrap(), Some(e.id));
}

async fn paused_queues_give_nothing(store: Arc<dyn JobStore>) {
    let t = now();
    store.enqueue(&[job("q", 0, t)], t).await.unwrap();
    store.set_paused("q", true).await.unwrap();
    assert_eq!(
        fetch_raw(&*store, "q", "a#1", 10, None).await,
        Fetched::Paused
    );
    let queues = store.queues().await.unwrap();
    assert!(queues.iter().any(|q| q.queue == "q" && q.paused));
    store.set_paused("q", false).await.unwrap();
    assert_eq!(fetch(&*store, "a#1", 10).await.len(), 1);
    store.set_node_paused("q", "n2", true).await.unwrap();
    store.set_node_paused("q", "n1", true).await.unwrap();
    store.set_node_paused("q", "n2", false).await.unwrap();
    let queues = store.queues().await.unwrap();
    let q = queues.iter().find(|q| q.queue == "q").unwrap();
    assert_eq!(q.paused_nodes, vec!["n1".to_string()]);
    assert!(!q.paused);
}

async fn rate_limits_slide(store: Arc<dyn JobStore>) {
    let t = now();
    let jobs: Vec<NewJob> = (0..10).map(|_| job("q", 0, t)).collect();
    store.enqueue(&jobs, t).await.unwrap();
    let rate = RateLimit {
        key: format!("r{}", random_hex()),
        count: 3,
        scale_ms: 300,
    };
    assert_eq!(fetch_rated(&*store, "a#1", 10, Some(&rate)).await.len(), 3);
    let wait = match fetch_raw(&*store, "q", "b#1", 10, Some(&rate)).await {
        Fetched::RateLimited(wait) => wait,
        other => panic!("expected a rate limit, got {other:?}"),
    };
    assert!((1..=300).contains(&wait), "wait {wait}");
    tokio::time::sleep(Duration::from_millis(wait + 20)).await;
    assert_eq!(fetch_rated(&*store, "b#1", 10, Some(&rate)).await.len(), 3);
}

async fn queues_count_by_state_and_prune(store: Arc<dyn JobStore>) {
    let t = now();
    store
        .enqueue(
            &[job("q", 0, t), job("q", 0, t), job("q", 0, t + 60_000)],
            t,
        )
        .await
        .unwrap();
    let j = fetch(&*store, "a#1", 1).await.remove(0);
    let counts = |infos: Vec<drove_jobs::store::QueueInfo>, state: JobState| {
        infos
            .into_iter()
            .find(|q| q.queue == "q")
            .and_then(|q| q.counts.get(&state).copied())
            .unwrap_or(0)
    };
    assert_eq!(
        counts(store.queues().await.unwrap(), JobState::Executing),
        1
    );
    assert_eq!(
        counts(store.queues().await.unwrap(), JobState::Available),
        1
    );
    assert_eq!(
        counts(store.queues().await.unwrap(), JobState::Scheduled),
        1
    );
    store.complete("a#1", &[attempt(&j)], now()).await.unwrap();
    assert_eq!(
        counts(store.queues().await.unwrap(), JobState::Completed),
        1
    );
    assert_eq!(
        counts(store.queues().await.unwrap(), JobState::Executing),
        0
    );
    let pruned = store.prune(now() + 1, 0, now()).await.unwrap();
    assert_eq!(pruned, 1);
    assert_eq!(
        counts(store.queues().await.unwrap(), JobState::Completed),
        0
    );
    assert!(store.get(j.id).await.unwrap().is_none());
}

async fn retry_brings_back_a_dead_job(store: Arc<dyn JobStore>) {
    let t = now();
    let id = store.enqueue(&[job("q", 0, t)], t).await.unwrap()[0].id;
    let j = fetch(&*store, "a#1", 1).await.remove(0);
    let failure = Failure {
        attempt: attempt(&j),
        error: "bad".into(),
        retry_at_ms: None,
        snooze: false,
    };
    store.fail("a#1", &[failure], now()).await.unwrap();
    assert_eq!(store.retry(id, now()).await.unwrap(), Some(JobState::Dead));
    let again = fetch(&*store, "a#1", 1).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 2);
    assert_eq!(store.retry(JobId(999_999), now()).await.unwrap(), None);
}

async fn concurrent_fetches_never_share_a_job(store: Arc<dyn JobStore>) {
    let t = now();
    let jobs: Vec<NewJob> = (0..300).map(|i| job("q", (i % 10) as u8, t)).collect();
    store.enqueue(&jobs, t).await.unwrap();
    let mut tasks = Vec::new();
    for c in 0..4 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let consumer = format!("c{c}#1");
            let mut got = Vec::new();
            loop {
                let batch = fetch(&*store, &consumer, 7).await;
                if batch.is_empty() {
                    return got;
                }
                let done: Vec<Attempt> = batch.iter().map(attempt).collect();
                assert!(store
                    .complete(&consumer, &done, now())
                    .await
                    .unwrap()
                    .is_empty());
                got.extend(batch.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        for id in task.await.unwrap() {
            assert!(seen.insert(id), "{id} fetched twice");
        }
    }
    assert_eq!(seen.len(), 300);
}

async fn lists_page_through_one_queue_and_state(store: Arc<dyn JobStore>) {
    let t = now();
    let mut new: Vec<NewJob> = (0..7).map(|i| job("q", (i % 3) as u8, t)).collect();
    new.extend((0..3).map(|_| job("q", 0, t + 60_000)));
    new.push(job("other", 0, t));
    store.enqueue(&new, t).await.unwrap();
    // One job of q runs and one fails into retryable: they share indexes
    // with the scheduled ones and other queues, and must not show there.
    let running = fetch(&*store, "a#1", 2).await;
    let failure = Failure {
        attempt: attempt(&running[1]),
        error: "boom".into(),
        retry_at_ms: Some(t + 60_000),
        snooze: false,
    };
    store.fail("a#1", &[failure], now()).await.unwrap();

    let ids = |jobs: Vec<drove_jobs::job::Job>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let first = ids(store.list("q", JobState::Available, 0, 3).await.unwrap());
    let second = ids(store.list("q", JobState::Available, 3, 3).await.unwrap());
    let rest = ids(store.list("q", JobState::Available, 6, 3).await.unwrap());
    assert_eq!((first.len(), second.len(), rest.len()), (3, 2, 0));
    let all: HashSet<JobId> = first.iter().chain(&second).copied().collect();
    assert_eq!(all.len(), 5, "pages overlap: {first:?} {second:?}");

    let scheduled = store.list("q", JobState::Scheduled, 0, 10).await.unwrap();
    assert_eq!(scheduled.len(), 3);
    assert!(scheduled
        .iter()
        .all(|j| j.state == JobState::Scheduled && j.queue == "q"));
    let retryable = store.list("q", JobState::Retryable, 0, 10).await.unwrap();
    assert_eq!(ids(retryable.clone()), vec![running[1].id]);
    assert_eq!(
        retryable[0].errors.len(),
        1,
        "a listed job carries its errors"
    );
    let executing = store.list("q", JobState::Executing, 0, 10).await.unwrap();
    assert_eq!(ids(executing), vec![running[0].id]);
    assert!(store
        .list("other", JobState::Executing, 0, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .list("other", JobState::Available, 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );

    store
        .complete("a#1", &[attempt(&running[0])], now())
        .await
        .unwrap();
    let done = store.list("q", JobState::Completed, 0, 10).await.unwrap();
    assert_eq!(ids(done), vec![running[0].id]);
    assert!(store
        .list("nowhere", JobState::Dead, 0, 10)
        .await
        .unwrap()
        .is_empty());
}

/// A batch holding a number a Lua double cannot keep exactly fails before
/// its script writes anything: not the good job before it, not a unique key.
#[tokio::test]
async fn a_redis_batch_with_a_number_out_of_range_writes_nothing() {
    let (store, _keep) = redis();
    let t = now();
    let mut bad = job("q", 0, 1 << 60);
    bad.unique = Some(Unique {
        key: "bad".into(),
        period_ms: 1 << 60,
        hold: UniqueHold::Live,
    });
    assert!(store.enqueue(&[job("q", 0, t), bad], t).await.is_err());
    assert!(fetch(&*store, "a#1", 10).await.is_empty());
    assert_eq!(store.unique_holder("bad", now()).await.unwrap(), None);
}

/// Every field of a job, over its whole accepted range: any text in names,
/// keys and args, every priority, every retry count, run times from the
/// epoch to the farthest the API takes, unique periods up to ten years.
fn any_new_job(case: u32, now_ms: u64) -> impl proptest::strategy::Strategy<Value = NewJob> {
    use proptest::prelude::*;
    let text = "(?s).{0,40}";
    let unique = proptest::option::of((
        text,
        1..=drove_jobs::spec::MAX_AHEAD_MS,
        prop_oneof![Just(UniqueHold::Live), Just(UniqueHold::Always)],
    ));
    (
        (text, text, text),
        0..=drove_jobs::job::MAX_PRIORITY,
        any::<u32>(),
        prop_oneof![
            Just(0u64),
            0..=now_ms,
            Just(now_ms + drove_jobs::spec::MAX_AHEAD_MS),
            now_ms..=now_ms + drove_jobs::spec::MAX_AHEAD_MS,
        ],
        unique,
    )
        .prop_map(
            move |((queue, worker, arg), priority, max_retries, run_at_ms, unique)| {
                // A case's own prefix: a shrunk case does not meet an earlier
                // case's queue or unique key.
                NewJob {
                    queue: format!("{case}/{queue}"),
                    worker: format!("w{worker}"),
                    args: serde_json::json!({ "a": arg }).to_string(),
                    priority,
                    max_retries,
                    run_at_ms,
                    unique: unique.map(|(key, period_ms, hold)| Unique {
                        key: format!("{case}/{key}"),
                        period_ms,
                        hold,
                    }),
                }
            },
        )
}

/// What a store gives back is what went in, for every field.
fn round_trip(store: Arc<dyn JobStore>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cases = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let checked = Arc::new(std::sync::atomic::AtomicU32::new(0));
    // scripts/fuzz runs it with many more cases.
    let want = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: want,
        ..Default::default()
    });
    let now_ms = now();
    let counter = cases.clone();
    let strategy = proptest::strategy::Strategy::prop_flat_map(0u32..1, move |_| {
        let case = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        any_new_job(case, now_ms)
    });
    let result = runner.run(&strategy, |new| {
        rt.block_on(async {
            let at = now();
            let e = store.enqueue(std::slice::from_ref(&new), at).await.unwrap()[0];
            proptest::prop_assert!(!e.duplicate);
            let got = store.get(e.id).await.unwrap();
            let got = got.ok_or_else(|| proptest::test_runner::TestCaseError::fail("no job"))?;
            proptest::prop_assert_eq!(&got.queue, &new.queue);
            proptest::prop_assert_eq!(&got.worker, &new.worker);
            proptest::prop_assert_eq!(&got.args, &new.args);
            proptest::prop_assert_eq!(got.priority, new.priority);
            proptest::prop_assert_eq!(got.max_retries, new.max_retries);
            let due = new.run_at_ms <= at;
            let want = if due {
                JobState::Available
            } else {
                JobState::Scheduled
            };
            proptest::prop_assert_eq!(got.state, want);
            if !due {
                proptest::prop_assert_eq!(got.scheduled_at_ms, new.run_at_ms);
            }
            if let Some(u) = &new.unique {
                let holder = store.unique_holder(&u.key, at).await.unwrap();
                proptest::prop_assert_eq!(holder, Some(e.id));
            }
            if due {
                let fetched = fetch_raw(store.as_ref(), &new.queue, "c", 1, None).await;
                let Fetched::Jobs(jobs) = fetched else {
                    return Err(proptest::test_runner::TestCaseError::fail(format!(
                        "fetch answered {fetched:?}"
                    )));
                };
                proptest::prop_assert_eq!(jobs.len(), 1);
                proptest::prop_assert_eq!(jobs[0].id, e.id);
                proptest::prop_assert_eq!(&jobs[0].args, &new.args);
            }
            checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let checked = checked.load(std::sync::atomic::Ordering::Relaxed);
    assert!(checked >= want, "only {checked} of {want} cases ran");
}

#[test]
fn sqlite_store_round_trips_every_field() {
    let (store, _keep) = sqlite();
    round_trip(store);
}

#[test]
fn redis_store_round_trips_every_field() {
    let (store, _keep) = redis();
    round_trip(store);
}
