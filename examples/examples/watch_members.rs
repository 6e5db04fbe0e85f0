//! Joins a cluster and prints membership events as they happen.
//!
//! Start a cluster with `cargo run --bin drove -- cluster`, then:
//! `cargo run -p drove-examples --example watch_members -- 127.0.0.1:4370`
//! and kill or stop a node to watch it go down.

use drove_runtime::NodeConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let seed = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:4370".to_string());
    let mut config = NodeConfig::new("watcher");
    config.listen = "127.0.0.1:47390".parse()?;
    config.http = "-".to_string();
    config.seeds = vec![seed];
    // The cookie `drove cluster` gave its nodes.
    config.cookie = drove::cookie_file::read_or_create(&drove::cookie_file::default_path()?)?;
    let node = config.start().await?;
    let mut events = node.subscribe();
    println!("watching from {}; Ctrl-C to stop", node.id());
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) => println!("{e}"),
                Err(e) => println!("(missed events: {e})"),
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    node.leave().await;
    Ok(())
}
