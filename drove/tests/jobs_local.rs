//! Durable jobs in one process on a SQLite file: typed workers that use
//! the node's services, batch workers that get their jobs grouped,
//! priorities, delays, and the testing modes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drove::jobs::testing::{perform_job, TestJobs, TestMode};
use drove::jobs::{
    BatchWorker, JobCtx, JobError, JobSpec, JobState, PipelineConfig, Scope, StoreUrl, Worker,
};
use drove::prelude::*;
use drove::runtime::testing::{free_port, wait_until};
use drove::Services;

/// How long a test waits for what it expects.
const WAIT: Duration = Duration::from_secs(30);

/// Writes its args to the replicated cache (services from the context).
struct Remember;

impl Worker for Remember {
    const NAME: &'static str = "test.remember";
    type Args = (String, u32);

    async fn perform(&self, ctx: JobCtx, (key, value): (String, u32)) -> Result<(), JobError> {
        let services = ctx
            .extension::<Services>()
            .ok_or_else(|| JobError::discard("no services"))?;
        services
            .cache()
            .put(&key, &value, None)
            .map_err(JobError::retry)
    }
}

/// Records the group sizes and the order it saw.
#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Vec<Vec<u32>>>>);

impl BatchWorker for Collect {
    const NAME: &'static str = "test.collect";
    type Args = u32;

    async fn perform_batch(&self, _ctxs: Vec<JobCtx>, args: Vec<u32>) -> Result<(), JobError> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(args);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_and_batch_workers_with_priorities_and_delays() {
    let file = std::env::temp_dir().join(format!(
        "drove-jobs-local-{:x}.sqlite3",
        rand::random::<u64>()
    ));
    let mut config = Config::new("solo");
    config.listen = (std::net::Ipv4Addr::LOCALHOST, free_port()).into();
    config.cookie = Some(format!("{:032x}", rand::random::<u128>()));
    config.jobs.store = StoreUrl::Sqlite(file.clone());
    config.jobs.pipelines = vec![
        "batch:queue=b,max_demand=20,batch=5".parse().unwrap(),
        PipelineConfig {
            max_demand: 1,
            batch_size: 1,
            ..PipelineConfig::new("ordered", "o")
        },
    ];
    let seen = Collect::default();
    let drove = Drove::builder(config)
        .worker(Remember)
        .batch_worker(seen.clone())
        .start()
        .await
        .unwrap();
    let jobs = drove.jobs().unwrap().clone();

    // Typed enqueue; the worker reaches the cache through its context.
    let started = Instant::now();
    let id = jobs
        .enqueue_in(
            "default",
            Duration::from_millis(300),
            Remember,
            ("k".into(), 7),
        )
        .await
        .unwrap()
        .id;
    wait_until("the delayed job", WAIT, || {
        drove.cache().get::<u32>("k").ok().flatten() == Some(7)
    })
    .await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let job = jobs.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Completed);

    // Twenty jobs in one bulk enqueue arrive in groups of at most five.
    jobs.pause("b", Scope::Cluster, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let specs: Vec<JobSpec> = (0..20)
        .map(|i| JobSpec::of_batch::<Collect>("b", &i).unwrap())
        .collect();
    assert_eq!(jobs.insert_all(specs).await.unwrap().len(), 20);
    jobs.resume("b", Scope::Cluster, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    wait_until("every batched job", WAIT, || {
        seen.0.lock().unwrap().iter().map(Vec::len).sum::<usize>() == 20
    })
    .await;
    let groups: Vec<usize> = seen.0.lock().unwrap().iter().map(Vec::len).collect();
    assert!(groups.iter().all(|g| *g <= 5), "{groups:?}");
    assert!(groups.contains(&5), "{groups:?}");
    seen.0.lock().unwrap().clear();

    // Priority 0 runs first, then by time.
    jobs.pause("o", Scope::Node, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    for (value, priority) in [(5u32, 5u8), (0, 0), (9, 9), (1, 0)] {
        let spec = JobSpec::of_batch::<Collect>("o", &value)
            .unwrap()
            .priority(priority);
        jobs.insert(spec).await.unwrap();
    }
    jobs.resume("o", Scope::Node, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    wait_until("the ordered jobs", WAIT, || {
        seen.0.lock().unwrap().len() == 4
    })
    .await;
    let order: Vec<u32> = seen.0.lock().unwrap().iter().flatten().copied().collect();
    assert_eq!(order, vec![0, 1, 5, 9]);

    drove.shutdown(Shutdown::Leave).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
    }
}

struct Flaky;

impl Worker for Flaky {
    const NAME: &'static str = "test.flaky";
    type Args = u32;

    async fn perform(&self, ctx: JobCtx, fails: u32) -> Result<(), JobError> {
        if ctx.attempt <= fails {
            return Err(JobError::retry("not yet"));
        }
        Ok(())
    }
}

#[tokio::test]
async fn testing_modes() {
    let inline = TestJobs::new(TestMode::Inline)
        .worker(Flaky)
        .build()
        .unwrap();
    let id = inline.enqueue("q", Flaky, 2).await.unwrap().id;
    let job = inline.get(id).await.unwrap().unwrap();
    assert_eq!((job.state, job.attempt), (JobState::Completed, 3));

    let manual = TestJobs::new(TestMode::Manual)
        .worker(Flaky)
        .build()
        .unwrap();
    manual.enqueue("q", Flaky, 0).await.unwrap();
    manual.enqueue("q", Flaky, 99).await.unwrap();
    manual
        .assert_enqueued("q", "test.flaky", Some(serde_json::json!(99)), None)
        .await
        .unwrap();
    assert!(manual
        .assert_enqueued(
            "q",
            "test.flaky",
            Some(serde_json::json!(7)),
            Some(Duration::from_millis(50))
        )
        .await
        .is_err());
    let drained = manual.drain_queue("q", false).await.unwrap();
    assert_eq!(
        (drained.completed, drained.retried, drained.dead),
        (1, 1, 0)
    );
    let drained = manual.drain_queue("q", true).await.unwrap();
    assert_eq!(drained.dead, 1);
    assert_eq!(perform_job(&Flaky, 0).await, Ok(()));
    assert_eq!(
        perform_job(&Flaky, 1).await,
        Err(JobError::retry("not yet"))
    );
}
