//! Ask a discovery strategy what it finds, three times, without starting a
//! node: a check of a DNS name (or of mDNS, inside a lab network only: it
//! multicasts on every interface).
//!
//! `cargo run -p drove-examples --example discover -- dns:localhost:4370`

use std::time::Duration;

use drove::discovery::{task, DiscoverySpec};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let spec: DiscoverySpec = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "dns:localhost:4370".into())
        .parse()?;
    let listen = "127.0.0.1:4370".parse()?;
    let mut strategy = task::strategy(&spec, listen, &[], Duration::from_secs(1))?;
    for round in 1..=3 {
        match tokio::time::timeout(Duration::from_secs(5), strategy.discover()).await {
            Ok(Ok(found)) => println!("round {round}: {found:?}"),
            Ok(Err(e)) => println!("round {round}: {e}"),
            Err(_) => println!("round {round}: nothing within 5 s"),
        }
    }
    Ok(())
}
