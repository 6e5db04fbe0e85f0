//! Time to notice a killed node and to declare a silent one down, seen
//! from an observer node (this process) through its membership events.

use std::time::{Duration, Instant};

use drove_runtime::{MembershipEvent, Node, NodeConfig, NodeId};
use drove_tests::NodeProc;
use nix::sys::signal::Signal;
use tokio::sync::broadcast;

pub(crate) async fn next_matching(
    events: &mut broadcast::Receiver<MembershipEvent>,
    timeout: Duration,
    want: impl Fn(&MembershipEvent) -> bool,
) -> anyhow::Result<MembershipEvent> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(e)) if want(&e) => return Ok(e),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(e)) => anyhow::bail!("event stream ended: {e}"),
            Err(_) => anyhow::bail!("no matching membership event within {timeout:?}"),
        }
    }
}

pub(crate) async fn wait_up(
    node: &Node,
    events: &mut broadcast::Receiver<MembershipEvent>,
    name: &str,
) -> anyhow::Result<NodeId> {
    let existing = node
        .members()
        .into_iter()
        .find(|m| m.info.id.name == name && m.status == drove_runtime::MemberStatus::Up)
        .map(|m| m.info.id);
    let id = match existing {
        Some(id) => id,
        None => match next_matching(
            events,
            Duration::from_secs(30),
            |e| matches!(e, MembershipEvent::NodeUp(i) if i.id.name == name),
        )
        .await?
        {
            MembershipEvent::NodeUp(info) => info.id,
            other => anyhow::bail!("unexpected {other}"),
        },
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while drove_runtime::echo::ping(node, &id, Duration::from_millis(500))
        .await
        .is_err()
    {
        anyhow::ensure!(Instant::now() < deadline, "{id} never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(id)
}

/// Returns (kill -9 detection samples, silent-node detection samples).
pub(crate) async fn run(trials: usize) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let ip = drove_tests::fresh_loopback_ip();
    let mut config = NodeConfig::new("observer");
    config.listen = format!("{ip}:{}", drove_tests::free_port(&ip)).parse()?;
    config.cookie = "failover-bench".to_string();
    let node = config.clone().start().await?;
    let mut events = node.subscribe();
    let seeds = vec![config.listen.to_string()];
    let mut peer = NodeProc::new("n2", seeds.clone(), &config.cookie);
    let mut other = NodeProc::new("n3", seeds, &config.cookie);
    peer.start();
    other.start();
    wait_up(&node, &mut events, "n3").await?;

    let mut killed = Vec::new();
    for _ in 0..trials {
        let id = wait_up(&node, &mut events, "n2").await?;
        let t0 = Instant::now();
        peer.kill9();
        next_matching(&mut events, Duration::from_secs(30), |e| {
            *e == MembershipEvent::NodeDown(id.clone())
        })
        .await?;
        killed.push(t0.elapsed());
        peer.start();
    }

    let mut silent = Vec::new();
    for _ in 0..trials {
        let id = wait_up(&node, &mut events, "n2").await?;
        let t0 = Instant::now();
        peer.signal(Signal::SIGSTOP);
        next_matching(&mut events, Duration::from_secs(30), |e| {
            *e == MembershipEvent::NodeDown(id.clone())
        })
        .await?;
        silent.push(t0.elapsed());
        // Past the concurrent-declaration window, so the frozen node rejoins.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        peer.signal(Signal::SIGCONT);
    }
    node.leave().await;
    Ok((killed, silent))
}
