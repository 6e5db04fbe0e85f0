//! `drove cluster`: N child nodes on 127.0.0.1, shown until Ctrl-C.

use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::process::{Child, Command};

/// Starts the children, waits until every node sees all of them up,
/// prints the table, and on Ctrl-C stops them (SIGTERM, then kill).
pub(crate) async fn run(nodes: u16, base_port: u16, base_http: u16) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=50).contains(&nodes),
        "--nodes must be between 1 and 50"
    );
    let exe = std::env::current_exe().context("locating the drove binary")?;
    let seed = format!("127.0.0.1:{base_port}");
    let mut children: Vec<Child> = Vec::new();
    for i in 0..nodes {
        let mut cmd = Command::new(&exe);
        cmd.arg("node")
            .args(["--name", &format!("n{}", i + 1)])
            .args(["--listen", &format!("127.0.0.1:{}", base_port + i)])
            .args(["--http", &format!("127.0.0.1:{}", base_http + i)])
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if i > 0 {
            cmd.args(["--seeds", &seed]);
        }
        children.push(cmd.spawn().context("starting a node")?);
    }
    let first_http = format!("127.0.0.1:{base_http}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, body)) =
            drove_admin::client::get(&first_http, "/api/cluster", Duration::from_secs(2)).await
        {
            if let Ok(c) = serde_json::from_str::<drove_admin::ClusterJson>(&body) {
                if c.members.iter().filter(|m| m.status == "up").count() == nodes as usize {
                    break;
                }
            }
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the cluster did not form within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("A {nodes}-node drove cluster is up:");
    crate::print_status(&first_http).await?;
    for i in 0..nodes {
        println!(
            "  n{}: http://127.0.0.1:{}/api/cluster",
            i + 1,
            base_http + i
        );
    }
    println!("Try `drove status --http 127.0.0.1:{}`, kill a node and look again. Ctrl-C stops the cluster.", base_http + 1);
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    for child in &children {
        if let Some(pid) = child.id() {
            // The whole cluster is going: SIGINT, which leaves without
            // handing children to nodes that are leaving too.
            let _ = nix_kill(pid);
        }
    }
    for mut child in children {
        if tokio::time::timeout(Duration::from_secs(5), child.wait())
            .await
            .is_err()
        {
            let _ = child.kill().await;
        }
    }
    Ok(())
}

fn nix_kill(pid: u32) -> nix::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| nix::errno::Errno::EINVAL)?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
}
