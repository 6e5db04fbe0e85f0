//! Pub/sub and the replicated cache on one node: a job publishes its
//! progress on a topic and keeps its state in the cache; a stream
//! subscriber prints what it hears.
//!
//! `cargo run -p drove-examples --example progress`

use std::time::Duration;

use drove_cache::Cache;
use drove_pubsub::{Lagged, PubSub};
use drove_runtime::{Message, NodeConfig};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Progress {
    job: String,
    percent: u8,
}

impl Message for Progress {
    const TAG: &'static str = "examples.progress.v1";
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut config = NodeConfig::new("progress-example");
    config.listen = "127.0.0.1:47371".parse()?;
    let node = config.start().await?;
    let pubsub = PubSub::start(&node).await?;
    let cache = Cache::start(&node).await?;

    let mut updates = pubsub.subscribe_stream::<Progress>("jobs:42")?; // or subscribe(topic, &actor)
    for percent in [0, 25, 50, 75, 100] {
        let p = Progress {
            job: "42".into(),
            percent,
        };
        // The state, for whoever looks later (any node, any time)...
        cache.put("job:42", &p, Some(Duration::from_secs(60)))?;
        // ...and the news, for whoever listens now.
        pubsub.broadcast("jobs:42", &p)?; // also broadcast_from, local_broadcast, direct_broadcast
    }
    for _ in 0..5 {
        match updates.recv().await {
            Some(Ok(p)) => println!("heard: job {} at {}%", p.job, p.percent),
            Some(Err(Lagged(n))) => println!("fell behind: {n} updates dropped"), // bounded: 256 by default
            None => break,
        }
    }
    let last: Option<Progress> = cache.get("job:42")?; // a local read
    println!("cache says: {last:?}");
    node.leave().await;
    Ok(())
}
