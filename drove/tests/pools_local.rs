//! Runner pools on the local backend, in one process: typed calls through
//! `#[drove::remote]`, errors, services inside a function, deadlines and
//! dropped callers that stop the work, casts, placed children, capacity,
//! bounds and hooks.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use drove::pool::{Ctx, PoolError, RemoteError};
use drove::prelude::*;
use drove::runtime::testing::free_port;
use drove::Services;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Video {
    id: u32,
    frames: u32,
}

/// The seed's example: a transcode that names its output.
#[drove::remote]
async fn transcode(video: Video) -> Result<String, String> {
    if video.frames == 0 {
        return Err(format!("video {} has no frames", video.id));
    }
    Ok(format!("{}_720p.mp4", video.id))
}

/// Writes to the replicated cache from inside the function.
#[drove::remote(name = "test.store.v1")]
async fn store(ctx: Ctx, key: String) -> Result<bool, String> {
    let services = ctx
        .extension::<Services>()
        .ok_or("no services in the context")?;
    services
        .cache()
        .put(&key, &7u32, None)
        .map_err(|e| e.to_string())?;
    Ok(true)
}

#[drove::remote]
async fn measure(bytes: Vec<u8>) -> Result<usize, String> {
    Ok(bytes.len())
}

static STOPPED_EARLY: AtomicUsize = AtomicUsize::new(0);

/// Counts, when dropped before it finished, that its work was stopped.
struct Unfinished(bool);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.0 {
            STOPPED_EARLY.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[drove::remote]
async fn slow(ms: u64) -> Result<u64, String> {
    let mut guard = Unfinished(false);
    tokio::time::sleep(Duration::from_millis(ms)).await;
    guard.0 = true;
    Ok(ms)
}

#[derive(Debug, Serialize, Deserialize)]
enum CounterMsg {
    Get(Reply<u64>),
}

impl Message for CounterMsg {
    const TAG: &'static str = "test.pool.counter.v1";
}

struct Counter;

impl Actor for Counter {
    type Msg = CounterMsg;
    type State = u64;
    type Args = u64;
    async fn init(&self, _: &Context<Self>, n: u64) -> Result<u64, ActorError> {
        Ok(n)
    }
    async fn handle(
        &self,
        ctx: &Context<Self>,
        msg: CounterMsg,
        n: &mut u64,
    ) -> Result<(), ActorError> {
        let CounterMsg::Get(reply) = msg;
        ctx.reply(reply, *n)?;
        Ok(())
    }
}

/// Starts an actor on the runner and hands back its handle.
#[drove::remote]
async fn start_counter(ctx: Ctx, start: u64) -> Result<Handle<CounterMsg>, String> {
    ctx.node()
        .spawn(Counter, start)
        .await
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn local_pools_run_typed_functions_within_their_limits() {
    let mut config = Config::new("solo");
    config.listen = (std::net::Ipv4Addr::LOCALHOST, free_port()).into();
    config.cookie = Some(format!("{:032x}", rand::random::<u128>()));
    config.jobs.store = drove::jobs::StoreUrl::Sqlite(":memory:".into());
    let grew = Arc::new(AtomicUsize::new(0));
    let grown = grew.clone();
    let drove = Drove::builder(config)
        .pool(
            Pool::builder("local")
                .max(2)
                .max_concurrency(2)
                .on_grow_start(move |_, _| {
                    grown.fetch_add(1, Ordering::SeqCst);
                }),
        )
        .start()
        .await
        .unwrap();
    let pool = drove.pool("local").unwrap();

    // Typed both ways; the function's error comes back as its text.
    let video = Video { id: 7, frames: 10 };
    assert_eq!(pool.call(transcode, video).await.unwrap(), "7_720p.mp4");
    let err = pool
        .call(transcode, Video { id: 8, frames: 0 })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PoolError::Remote { error: RemoteError::Failed(text), .. } if text.contains("no frames")),
        "{err}"
    );
    assert_eq!(grew.load(Ordering::SeqCst), 1, "one runner booted");

    // The node's services work inside a function.
    assert!(pool.call(store, "from-fn".into()).await.unwrap());
    assert_eq!(drove.cache().get::<u32>("from-fn").unwrap(), Some(7));

    // A cast runs without its caller waiting.
    pool.cast(store, "from-cast".into()).unwrap();
    for _ in 0..100 {
        if drove.cache().get::<u32>("from-cast").unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(drove.cache().get::<u32>("from-cast").unwrap(), Some(7));

    // By name with JSON, as the admin API calls.
    let ran = pool
        .call_json(
            "test.store.v1",
            serde_json::json!("by-json"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(ran.value, serde_json::json!(true));
    let unknown = pool
        .call_json("nope", serde_json::json!({}), Duration::from_secs(1))
        .await;
    assert!(matches!(unknown, Err(PoolError::UnknownFunction(_))));
    let bad = pool
        .call_json(
            "test.store.v1",
            serde_json::json!({"not": "a string"}),
            Duration::from_secs(1),
        )
        .await;
    assert!(matches!(bad, Err(PoolError::BadArgs(_))), "{bad:?}");

    // A payload over the limit is refused before it goes anywhere.
    let huge = pool
        .call(measure, vec![0u8; drove::pool::MAX_PAYLOAD + 1])
        .await;
    assert!(matches!(huge, Err(PoolError::TooLarge { .. })), "{huge:?}");
    assert_eq!(pool.call(measure, vec![1, 2, 3]).await.unwrap(), 3);

    // A deadline stops the work; so does dropping the call.
    let timed_out = pool
        .call_timeout(slow, 5_000, Duration::from_millis(100))
        .await;
    assert!(
        matches!(timed_out, Err(PoolError::Timeout { .. })),
        "{timed_out:?}"
    );
    let dropped = tokio::time::timeout(Duration::from_millis(100), pool.call(slow, 5_000)).await;
    assert!(dropped.is_err());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(STOPPED_EARLY.load(Ordering::SeqCst), 2);

    // A placed child runs until its value is dropped.
    let placed = pool.place_child(start_counter, 41).await.unwrap();
    let n: u64 = drove
        .node()
        .call(placed.handle(), CounterMsg::Get, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(n, 41);
    let handle = Handle::<CounterMsg>::from_addr(placed.handle().addr().clone());
    drop(placed);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let gone = drove
        .node()
        .call(&handle, CounterMsg::Get, Duration::from_secs(1))
        .await;
    assert!(gone.is_err(), "the placed child stopped with its caller");

    // Two runners of two slots: a fifth concurrent call waits for a slot
    // and, past boot_timeout, gets no capacity.
    let small = drove
        .add_pool(
            Pool::builder("small")
                .max(1)
                .max_concurrency(1)
                .boot_timeout(Duration::from_millis(200)),
        )
        .unwrap();
    let busy = tokio::spawn({
        let small = small.clone();
        async move { small.call(slow, 600).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = small.call(slow, 1).await;
    assert!(
        matches!(refused, Err(PoolError::NoCapacity { .. })),
        "{refused:?}"
    );
    assert_eq!(busy.await.unwrap().unwrap(), 600);

    // Bounds change at run time; bad ones are refused.
    small.set_bounds(1, 3).await.unwrap();
    assert_eq!((small.config().min, small.config().max), (1, 3));
    assert!(small.set_bounds(4, 3).await.is_err());
    assert!(
        drove.add_pool(Pool::builder("small")).is_err(),
        "one pool per name"
    );

    let metrics = drove.pools().metrics_text();
    assert!(
        metrics.contains("drove_pool_calls_total{pool=\"local\"}"),
        "{metrics}"
    );
    drove.shutdown(Shutdown::Leave).await;
}
