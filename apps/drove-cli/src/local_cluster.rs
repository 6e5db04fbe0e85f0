//! A local cluster of child node processes on 127.0.0.1, for `drove
//! cluster` and the download-manager demo.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// Why the local cluster did not come up.
#[derive(Debug, thiserror::Error)]
pub enum LocalClusterError {
    /// A bad node count.
    #[error("--nodes must be between 1 and 50")]
    NodeCount,
    /// A child process did not start.
    #[error("starting node {node}: {source}")]
    Spawn {
        /// Which node.
        node: String,
        /// Why.
        source: std::io::Error,
    },
    /// The nodes did not all see each other in time.
    #[error("the cluster did not form within 30 s")]
    NotFormed,
}

/// Child node processes `n1..nN`: node i listens on `base_port + i` and
/// serves HTTP on `base_http + i`; all seed with `n1`.
pub struct LocalCluster {
    children: Vec<Child>,
    /// The nodes' HTTP addresses, `n1` first.
    pub https: Vec<String>,
}

impl LocalCluster {
    /// Starts `nodes` children running `exe` with `command` (e.g.
    /// `["node", "--cookie-file", PATH]`), then each node's flags, then
    /// `per_node(i)` (flags of node `i`, from 0).
    pub fn start(
        exe: &std::path::Path,
        command: &[std::ffi::OsString],
        nodes: u16,
        base_port: u16,
        base_http: u16,
        per_node: &dyn Fn(u16) -> Vec<std::ffi::OsString>,
    ) -> Result<LocalCluster, LocalClusterError> {
        if !(1..=50).contains(&nodes) {
            return Err(LocalClusterError::NodeCount);
        }
        let seed = format!("127.0.0.1:{base_port}");
        let mut children = Vec::new();
        let mut https = Vec::new();
        for i in 0..nodes {
            let name = format!("n{}", i + 1);
            let http = format!("127.0.0.1:{}", base_http + i);
            let mut cmd = Command::new(exe);
            cmd.args(command)
                .args(["--name", &name])
                .args(["--listen", &format!("127.0.0.1:{}", base_port + i)])
                .args(["--http", &http])
                .args(per_node(i))
                .stdin(Stdio::null())
                .kill_on_drop(true);
            if i > 0 {
                cmd.args(["--seeds", &seed]);
            }
            let child = cmd
                .spawn()
                .map_err(|source| LocalClusterError::Spawn { node: name, source })?;
            children.push(child);
            https.push(http);
        }
        Ok(LocalCluster { children, https })
    }

    /// The nodes' process ids, `n1` first (0 for one that has exited).
    pub fn pids(&self) -> Vec<u32> {
        self.children
            .iter()
            .map(|c| c.id().unwrap_or_default())
            .collect()
    }

    /// Waits until the first node sees every node up.
    pub async fn wait_formed(&self) -> Result<(), LocalClusterError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok((200, body)) =
                drove_admin::client::get(&self.https[0], "/api/cluster", Duration::from_secs(2))
                    .await
            {
                if let Ok(c) = serde_json::from_str::<drove_admin::ClusterJson>(&body) {
                    let up = c.members.iter().filter(|m| m.status == "up").count();
                    if up == self.children.len() {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(LocalClusterError::NotFormed);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for Ctrl-C (SIGINT) or SIGTERM.
    pub async fn wait_for_stop_signal() -> std::io::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    }

    /// Stops every node: SIGINT, which leaves without handing children to
    /// nodes that are going too; a node still running after 5 s is killed.
    pub async fn stop(self) {
        for child in &self.children {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGINT,
                );
            }
        }
        for mut child in self.children {
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}
